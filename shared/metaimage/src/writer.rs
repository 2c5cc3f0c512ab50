//! Writes uncompressed little-endian int16 MetaImage pairs (.mhd + .raw), the
//! layout LUNA16 ships. Used for synthetic datasets and tests; the files read
//! back through [`crate::open_scan`] as memory-mapped scans.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::geometry::Geometry;

/// Write `<mhd>` and the `.raw` beside it. `dims_xyz` is DimSize order (x
/// fastest); `voxels` is in `[z][y][x]` order. Both files go to temporary
/// names first and are renamed into place, so a crash leaves no half file.
/// Both get the usual mode for new files (0666 less the umask: 0644 under
/// umask 022), not the private 0600 of temporary files.
///
/// The `.raw` name is the header's with its extension replaced. Values are
/// written as given (not clipped). The direction is written as the
/// `TransformMatrix` it transposes to (see
/// [`Geometry::direction_from_transform_matrix`]), so reading the pair back
/// gives `geometry` exactly. Fails with `InvalidInput` when `voxels` does not
/// hold `dims_xyz`'s product of values.
pub fn write_mhd_i16(
    mhd: &Path,
    dims_xyz: [usize; 3],
    geometry: &Geometry,
    voxels: &[i16],
) -> io::Result<()> {
    let expected: usize = dims_xyz.iter().product();
    if voxels.len() != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: {} voxels given for DimSize {:?}",
                mhd.display(),
                voxels.len(),
                dims_xyz
            ),
        ));
    }
    let raw = mhd.with_extension("raw");
    let raw_name = raw
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "raw file name is not UTF-8"))?
        .to_owned();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n\
         TransformMatrix = {}\nOffset = {}\nCenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\n\
         ElementSpacing = {}\nDimSize = {} {} {}\nElementType = MET_SHORT\nElementDataFile = {}\n",
        fmt(&geometry.transform_matrix()),
        fmt(&geometry.origin),
        fmt(&geometry.spacing),
        dims_xyz[0],
        dims_xyz[1],
        dims_xyz[2],
        raw_name
    );
    let mut bytes = Vec::with_capacity(voxels.len() * 2);
    for v in voxels {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    // The data file first: a header that exists always finds its voxels.
    write_atomically(&raw, &bytes)?;
    write_atomically(mhd, header.as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`, then syncs the directory so the rename survives a power cut.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".metaimage-").suffix(".tmp");
    // tempfile makes private (0600) files; a scan is data others read, so
    // it gets what `File::create` gives: 0666 less the umask.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(at)?;
    tmp.write_all(bytes).map_err(at)?;
    tmp.as_file().sync_all().map_err(at)?;
    tmp.persist(path).map_err(|e| at(e.error))?;
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(at)?;
    }
    Ok(())
}
