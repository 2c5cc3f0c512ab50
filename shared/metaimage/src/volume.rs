//! 3-D int16 volumes (CT scans: Hounsfield units) in `[i][r][c]` order plus
//! their geometry, either decoded into memory ([`Volume`]) or memory-mapped
//! from the data file ([`MappedVolume`]), both read row by row through
//! [`VoxelSource`]. Values are always as stored: windowing them is the
//! caller's policy, not the reader's.

use crate::geometry::Geometry;

/// A 3-D int16 volume decoded into memory, `[i][r][c]` order, values as
/// stored (a CT scan's are Hounsfield units).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Volume {
    /// (i, r, c) = (slices, rows, columns) = DimSize reversed.
    pub shape: [usize; 3],
    /// Voxels in `[i][r][c]` order (c fastest).
    pub voxels: Vec<i16>,
    /// Origin, spacing and direction from the header.
    pub geometry: Geometry,
}

impl Volume {
    /// A volume of `shape` holding `voxels` in `[i][r][c]` order. None
    /// unless `voxels` holds exactly `shape`'s product of values, as
    /// [`MappedVolume::new`] checks its map.
    pub fn new(shape: [usize; 3], voxels: Vec<i16>, geometry: Geometry) -> Option<Self> {
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        (count == voxels.len()).then_some(Volume {
            shape,
            voxels,
            geometry,
        })
    }

    /// Product of `shape`.
    pub fn voxel_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Position of voxel (i, r, c) in `voxels`. Not bounds-checked against
    /// `shape`; an index past the end makes [`Volume::get`] panic.
    pub fn index(&self, irc: [usize; 3]) -> usize {
        (irc[0] * self.shape[1] + irc[1]) * self.shape[2] + irc[2]
    }

    /// The value of voxel (i, r, c). Panics when it is outside `voxels`.
    pub fn get(&self, irc: [usize; 3]) -> i16 {
        self.voxels[self.index(irc)]
    }
}

/// Read access to a scan's voxels for cropping, whether decoded into memory
/// ([`Volume`]) or mapped straight from an uncompressed data file
/// ([`MappedVolume`]). Row-granular so a crop pays one call per row (48
/// voxels for LUNA's crops), never one per voxel.
pub trait VoxelSource {
    /// (i, r, c) = (slices, rows, columns).
    fn shape(&self) -> [usize; 3];
    /// Origin, spacing and direction of the scan.
    fn geometry(&self) -> &Geometry;
    /// Voxels actually held; only a hand-built, inconsistent [`Volume`] makes
    /// this differ from the product of `shape`.
    fn stored_voxels(&self) -> usize;
    /// Copy `N` voxels of row (i, r), from column c on, as stored. Panics
    /// if the run leaves the volume: callers check bounds once per crop, not
    /// per row. `N` is a constant (the crop width) because per-row overhead
    /// dominates: a LUNA scan's crops copy ~10⁶ rows of 48 voxels, and a
    /// caller that windows the row right after the copy gets one fused,
    /// vectorised loop once this inlines.
    fn copy_row<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]);
}

impl VoxelSource for Volume {
    fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    fn stored_voxels(&self) -> usize {
        self.voxels.len()
    }

    fn copy_row<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        let from = self.index(start_irc);
        out.copy_from_slice(&self.voxels[from..from + N]);
    }
}

/// A scan whose voxels stay in the (page-cached) data file: little-endian
/// int16, `[i][r][c]` order. Crops read only the pages
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

    /// Every voxel as stored, `[i][r][c]`, viewed in place:
    /// a pass over a whole scan this way measured 1.2–1.45× the time of
    /// `cat`-ing its data file (warm page cache), where decoding it into a
    /// fresh owned buffer took ~3.5×, mostly page faults on the buffer. None
    /// when the data cannot be viewed as `i16` where it lies: a big-endian
    /// host, or an odd data offset (a `HeaderSize` or `LOCAL` header can
    /// leave one); use [`VoxelSource::copy_row`] then.
    pub fn voxels(&self) -> Option<&[i16]> {
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

    fn copy_row<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        // Decoded from bytes: a LOCAL or HeaderSize offset can leave the data
        // at an odd address. Staging the row in a fixed-size array lets the
        // copy inline and the decode (and a caller's window) vectorise; with a
        // slice of run-time length the crops of a LUNA scan took ~2× as long.
        let from = 2 * self.index(start_irc);
        let mut staged = [[0u8; 2]; N];
        staged
            .as_flattened_mut()
            .copy_from_slice(&self.map[from..from + 2 * N]);
        for (v, b) in out.iter_mut().zip(staged) {
            *v = i16::from_le_bytes(b);
        }
    }
}

/// A scan opened for cropping: mapped when the file layout allows it,
/// otherwise decoded (see [`crate::open_scan`]). Crops read it through
/// [`VoxelSource`] either way and get the same values.
#[derive(Debug)]
#[non_exhaustive]
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
            Scan::Owned(v) => Some(v.voxels),
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

    fn copy_row<const N: usize>(&self, start_irc: [usize; 3], out: &mut [i16; N]) {
        match self {
            Scan::Owned(v) => v.copy_row(start_irc, out),
            Scan::Mapped(m) => m.copy_row(start_irc, out),
        }
    }
}
