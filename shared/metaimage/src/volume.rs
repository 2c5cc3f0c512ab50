//! CT volumes as croppers see them: int16 Hounsfield units (HU) in
//! `[i][r][c]` order plus their geometry, either decoded into memory
//! ([`Volume`]) or memory-mapped from the data file ([`MappedVolume`]), both
//! read through [`VoxelSource`].

use crate::geometry::Geometry;

/// Lowest HU a volume holds after clipping: air.
///
/// Every volume is clipped to [-1000, 1000] before cropping because that is
/// the window the LUNA nodule classifiers this toolkit reproduces work in:
/// below it lie only air and the scanner's out-of-view padding (-2000,
/// -3024), above it dense bone, metal and contrast, none of which set a
/// nodule apart.
pub const HU_MIN: i16 = -1000;
/// Highest HU a volume holds after clipping: dense bone, metal and contrast
/// above it say nothing about lung tissue (see [`HU_MIN`]).
pub const HU_MAX: i16 = 1000;

/// A scan decoded into memory: int16 HU, clipped, `[i][r][c]` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// (i, r, c) = (slices, rows, columns) = DimSize reversed.
    pub shape: [usize; 3],
    /// Voxels in `[i][r][c]` order (c fastest), already clipped to
    /// `[HU_MIN, HU_MAX]`.
    pub hu: Vec<i16>,
    /// Origin, spacing and direction from the header.
    pub geometry: Geometry,
}

impl Volume {
    /// Product of `shape`.
    pub fn voxel_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Position of voxel (i, r, c) in `hu`. Not bounds-checked against
    /// `shape`; an index past the end makes [`Volume::get`] panic.
    pub fn index(&self, irc: [usize; 3]) -> usize {
        (irc[0] * self.shape[1] + irc[1]) * self.shape[2] + irc[2]
    }

    /// The HU value of voxel (i, r, c). Panics when it is outside `hu`.
    pub fn get(&self, irc: [usize; 3]) -> i16 {
        self.hu[self.index(irc)]
    }
}

/// Clip in place to [-1000, 1000] ([`HU_MIN`]..=[`HU_MAX`]), the window every
/// volume is stored in (see [`HU_MIN`] for why).
pub fn clip_hu(values: &mut [i16]) {
    for v in values {
        *v = (*v).clamp(HU_MIN, HU_MAX);
    }
}

/// Read access to a scan's voxels for cropping, whether decoded into memory
/// ([`Volume`]) or mapped straight from an uncompressed data file
/// ([`MappedVolume`]). Row-granular so a crop pays one call per 48 voxels,
/// never one per voxel.
pub trait VoxelSource {
    /// (i, r, c) = (slices, rows, columns).
    fn shape(&self) -> [usize; 3];
    /// Origin, spacing and direction of the scan.
    fn geometry(&self) -> &Geometry;
    /// Voxels actually held; only a hand-built, inconsistent [`Volume`] makes
    /// this differ from the product of `shape`.
    fn stored_voxels(&self) -> usize;
    /// Copy `N` voxels of row (i, r), from column c on, clipped to
    /// `[HU_MIN, HU_MAX]`. Panics if the run leaves the volume: callers
    /// check bounds once per crop, not per row. `N` is a constant (the crop
    /// width) because per-row overhead dominates: a LUNA scan's crops copy
    /// ~10⁶ rows of 48 voxels.
    fn copy_row_hu<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]);
}

impl VoxelSource for Volume {
    fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    fn stored_voxels(&self) -> usize {
        self.hu.len()
    }

    /// `hu` is clipped when the volume is built, so this is a plain copy.
    fn copy_row_hu<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        let from = self.index(start_irc);
        out.copy_from_slice(&self.hu[from..from + N]);
    }
}

/// A scan whose voxels stay in the (page-cached) data file: little-endian
/// int16, `[i][r][c]` order, not yet clipped. Crops read only the pages
/// they touch, straight from the page cache, instead of first faulting in
/// and filling a 150 MB buffer.
///
/// The file must not be truncated while mapped (the OS would raise SIGBUS);
/// scan inputs are read-only datasets, which is what makes this acceptable.
///
/// Built by [`crate::open_scan`], which checks the layout; [`MappedVolume::new`]
/// only checks the size.
#[derive(Debug)]
pub struct MappedVolume {
    map: memmap2::Mmap,
    shape: [usize; 3],
    geometry: Geometry,
}

impl MappedVolume {
    /// Wrap a map of little-endian int16 voxels in `[i][r][c]` order. None
    /// unless `map` holds exactly `shape`'s voxels as 2-byte values.
    pub fn new(map: memmap2::Mmap, shape: [usize; 3], geometry: Geometry) -> Option<Self> {
        let voxels = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        (voxels.checked_mul(2)? == map.len()).then_some(MappedVolume {
            map,
            shape,
            geometry,
        })
    }

    fn index(&self, irc: [usize; 3]) -> usize {
        (irc[0] * self.shape[1] + irc[1]) * self.shape[2] + irc[2]
    }

    /// Every voxel as stored, `[i][r][c]`, *not* clipped, viewed in place:
    /// a pass over a whole scan this way measured 1.2–1.45× the time of
    /// `cat`-ing its data file (warm page cache), where decoding it into a
    /// fresh owned buffer took ~3.5×, mostly page faults on the buffer. None
    /// when the data cannot be viewed as `i16` where it lies: a big-endian
    /// host, or an odd data offset (a `HeaderSize` or `LOCAL` header can
    /// leave one); use [`VoxelSource::copy_row_hu`] then.
    pub fn stored_hu(&self) -> Option<&[i16]> {
        if cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(&self.map[..]).ok()
    }
}

impl VoxelSource for MappedVolume {
    fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    fn stored_voxels(&self) -> usize {
        self.map.len() / 2
    }

    fn copy_row_hu<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        // Decoded from bytes: a LOCAL or HeaderSize offset can leave the data
        // at an odd address. Staging the row in a fixed-size array lets the
        // copy inline and the decode + clip vectorise; with a slice of
        // run-time length the crops of a LUNA scan took ~2× as long.
        let from = 2 * self.index(start_irc);
        let mut staged = [[0u8; 2]; N];
        staged
            .as_flattened_mut()
            .copy_from_slice(&self.map[from..from + 2 * N]);
        for (v, b) in out.iter_mut().zip(staged) {
            *v = i16::from_le_bytes(b).clamp(HU_MIN, HU_MAX);
        }
    }
}

/// A scan opened for cropping: mapped when the file layout allows it,
/// otherwise decoded (see [`crate::open_scan`]). Crops read it through
/// [`VoxelSource`] either way and get the same clipped values.
#[derive(Debug)]
pub enum Scan {
    /// Decoded into memory (compressed, big-endian, non-int16, multi-file
    /// data, or a file system that cannot map).
    Owned(Volume),
    /// Mapped from one uncompressed little-endian int16 data file.
    Mapped(MappedVolume),
}

impl Scan {
    /// The decoded buffer, for reuse by the next owned read
    /// ([`crate::read_volume_reusing`], [`crate::open_scan_reusing`]); None
    /// for a mapped scan, which has none.
    pub fn into_buffer(self) -> Option<Vec<i16>> {
        match self {
            Scan::Owned(v) => Some(v.hu),
            Scan::Mapped(_) => None,
        }
    }
}

impl VoxelSource for Scan {
    fn shape(&self) -> [usize; 3] {
        match self {
            Scan::Owned(v) => v.shape(),
            Scan::Mapped(m) => m.shape(),
        }
    }

    fn geometry(&self) -> &Geometry {
        match self {
            Scan::Owned(v) => v.geometry(),
            Scan::Mapped(m) => m.geometry(),
        }
    }

    fn stored_voxels(&self) -> usize {
        match self {
            Scan::Owned(v) => v.stored_voxels(),
            Scan::Mapped(m) => m.stored_voxels(),
        }
    }

    fn copy_row_hu<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        match self {
            Scan::Owned(v) => v.copy_row_hu(start_irc, out),
            Scan::Mapped(m) => m.copy_row_hu(start_irc, out),
        }
    }
}
