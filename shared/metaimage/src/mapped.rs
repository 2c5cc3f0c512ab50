//! Scans opened for cropping without decoding them whole.
//!
//! Decoding a LUNA scan faults in and fills a fresh 150 MB buffer (~170 ms,
//! ~90 ms into a recycled one), while cropping its ~600 candidates straight
//! from the page cache takes ~30 ms. So when the voxels are usable in place
//! — one uncompressed little-endian MET_SHORT run in one file, as LUNA ships
//! them — the file is mapped and crops copy rows out of the map. Plain
//! mapping measured as fast as `populate` or any `madvise` hint.

use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use super::element::ElementType;
use super::header::Header;
use super::{
    decode_volume, payload, read_volume_header, volume_geometry, volume_shape, MetaImageError,
};
use crate::volume::{MappedVolume, Scan};

/// Open a 3-D single-channel scan for cropping: mapped when its layout
/// allows, else decoded like [`super::read_volume`]. Header and data-size
/// checks, and their errors, are the same as `read_volume`'s either way.
///
/// The voxels are mapped ([`Scan::Mapped`]) when they are uncompressed
/// little-endian `MET_SHORT` in one data file (`.mhd` + `.raw`, or `.mha`
/// with `LOCAL` data) and the OS can map that file; crops then read only the
/// pages they touch. Anything else is decoded into a
/// [`Scan::Owned`] volume. The mapped file must not be truncated while the
/// scan is alive.
pub fn open_scan(path: impl AsRef<Path>) -> Result<Scan, MetaImageError> {
    open_scan_reusing(path, Vec::new())
}

/// [`open_scan`], decoding (when it must) into a recycled buffer; see
/// [`super::read_volume_reusing`].
pub fn open_scan_reusing(path: impl AsRef<Path>, buffer: Vec<i16>) -> Result<Scan, MetaImageError> {
    let header = read_volume_header(path)?;
    let plan = payload::plan(&header)?;
    if let Some((data, start)) = mappable(&header, &plan) {
        if let Some(mapped) = map_voxels(&header, data, start, plan.len)? {
            return Ok(Scan::Mapped(mapped));
        }
    }
    decode_volume(&header, &plan, buffer).map(Scan::Owned)
}

fn mappable<'p>(header: &Header, plan: &'p payload::Plan) -> Option<(&'p Path, u64)> {
    let raw_le_i16 = header.element_type == ElementType::I16 && !header.big_endian;
    // An empty volume has nothing to map (and mmap refuses length 0).
    if !raw_le_i16 || plan.len == 0 {
        return None;
    }
    plan.single_raw_run()
}

/// `Ok(None)` when the OS cannot map this file (some network or FUSE file
/// systems): the caller decodes it instead.
fn map_voxels(
    header: &Header,
    data: &Path,
    start: u64,
    len: usize,
) -> Result<Option<MappedVolume>, MetaImageError> {
    let (file, _) = super::files::open_regular(data, &header.path)?;
    // `plan` checked the size by path; check the handle actually mapped, so a
    // file swapped in between cannot leave the map past its end.
    let file_len = file
        .metadata()
        .map_err(|e| MetaImageError::io(data, e))?
        .len();
    if file_len != start + len as u64 {
        return Err(header.invalid(format!(
            "data file {} changed while being opened: {file_len} bytes, expected {}",
            data.display(),
            start + len as u64
        )));
    }
    // SAFETY: the map is read-only and private to this process; the input
    // scans are not modified while a build reads them (a truncation would
    // raise SIGBUS, as for any mapped input — see `MappedVolume`).
    let map: Mmap = match unsafe { MmapOptions::new().offset(start).len(len).map(&file) } {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    Ok(MappedVolume::new(
        map,
        volume_shape(header),
        volume_geometry(header),
    ))
}
