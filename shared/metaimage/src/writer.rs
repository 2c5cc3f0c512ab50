//! Writes a [`Volume`] as an uncompressed little-endian int16 MetaImage pair
//! (.mhd + .raw), the layout LUNA16 ships; the files read back through
//! [`crate::open_scan`] as memory-mapped scans.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::geometry::Geometry;
use crate::volume::Volume;
use crate::MetaImageError;

/// Write `volume` to `mhd` and the `.raw` beside it. Both files go to
/// temporary names first and are renamed into place, so a crash leaves no
/// half file. Both get the usual mode for new files (0666 less the umask:
/// 0644 under umask 022), not the private 0600 of temporary files.
///
/// The `.raw` name is the header's with its extension replaced. Values are
/// written as they are. The direction is written as the `TransformMatrix` it
/// transposes to (see
/// [`Geometry::direction_from_transform_matrix`](crate::geometry::Geometry::direction_from_transform_matrix)),
/// so [`crate::read_volume`] gives `volume` back exactly. Fails with
/// [`MetaImageError::Invalid`] when `voxels` does not hold `shape`'s product
/// of values or the `.raw` name is not UTF-8, and [`MetaImageError::Io`]
/// when a file cannot be written.
pub fn write_volume(mhd: impl AsRef<Path>, volume: &Volume) -> Result<(), MetaImageError> {
    let bytes: Vec<u8> = volume.voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_image(
        mhd.as_ref(),
        volume.shape,
        &volume.geometry,
        "MET_SHORT",
        &bytes,
        volume.voxels.len(),
    )
}

/// Writes a uint8 image (`MET_UCHAR`: a mask or a label map, one byte per
/// voxel in `[i][r][c]` order) with `geometry`, as [`write_volume`] writes
/// a scan: both files atomically, the data file first.
pub fn write_u8_image(
    mhd: impl AsRef<Path>,
    shape: [usize; 3],
    geometry: &Geometry,
    voxels: &[u8],
) -> Result<(), MetaImageError> {
    write_image(
        mhd.as_ref(),
        shape,
        geometry,
        "MET_UCHAR",
        voxels,
        voxels.len(),
    )
}

fn write_image(
    mhd: &Path,
    shape: [usize; 3],
    geometry: &Geometry,
    element_type: &str,
    bytes: &[u8],
    count: usize,
) -> Result<(), MetaImageError> {
    if Some(count) != shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        let reason = format!("{count} voxels given for shape {shape:?}");
        return Err(MetaImageError::invalid(mhd, reason));
    }
    let raw = mhd.with_extension("raw");
    let raw_name = raw
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| MetaImageError::invalid(mhd, "the .raw file name is not UTF-8"))?;
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let [ni, nr, nc] = shape;
    let header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n\
         TransformMatrix = {}\nOffset = {}\nCenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n\
         ElementSpacing = {}\nDimSize = {nc} {nr} {ni}\nElementType = {element_type}\nElementDataFile = {raw_name}\n",
        fmt(&geometry.transform_matrix()),
        fmt(&geometry.origin),
        fmt(&geometry.spacing),
    );
    // The data file first: a header that exists always finds its voxels.
    write_atomically(&raw, bytes).map_err(|e| MetaImageError::io(&raw, e))?;
    write_atomically(mhd, header.as_bytes()).map_err(|e| MetaImageError::io(mhd, e))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`, then syncs the directory so the rename survives a power cut.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".metaimage-").suffix(".tmp");
    // tempfile makes private (0600) files; a scan is data others read, so
    // it gets what `File::create` gives: 0666 less the umask.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}
