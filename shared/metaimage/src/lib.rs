//! Reader (and a small writer) for ITK MetaImage files: `.mhd` headers with
//! `.raw`/`.zraw` data files, and single-file `.mha` images.
//!
//! Reads what SimpleITK reads, with the same geometry: `origin`, `spacing`
//! and `direction` (the transpose of the row-major `TransformMatrix`), so
//! voxels and coordinates agree with Python code that loads the same files
//! through SimpleITK.
//!
//! - [`read_header`]: header keys only.
//! - [`read_image`]: any supported image (1–10 dims, any element type,
//!   interleaved channels) as typed voxels in file order.
//! - [`read_volume`]: the hot path for CT scans — a 3-D scalar image as int16
//!   values as stored (HU for CT) in `[z][y][x]` order. Little-endian
//!   uncompressed MET_SHORT (the LUNA16 format) is read straight into the
//!   final buffer.
//! - [`open_scan`]: a CT volume opened for cropping — memory-mapped when
//!   the voxels are one uncompressed little-endian MET_SHORT run (LUNA16),
//!   so crops read only the pages they touch; otherwise decoded as
//!   `read_volume` does.
//! - [`inspect`]: a human-readable report of one image ([`inspect_volume`]:
//!   of a volume read some other way).
//! - [`geometry`]: world (x, y, z millimetres) ↔ voxel index (i, r, c).
//! - [`write_volume`]: writes a [`volume::Volume`] as an uncompressed
//!   little-endian int16 `.mhd` + `.raw` pair.
//!
//! Every reader and writer takes its path as `impl AsRef<Path>` and fails
//! with [`MetaImageError`]. Values are never windowed or clipped: which HU
//! range matters is the caller's policy.
//!
//! Data files may be `LOCAL` (after the header), one named file, a `LIST` of
//! files or a printf pattern (`slice%03d.raw 1 100 1`); data may be zlib or
//! gzip compressed, either byte order, with a `HeaderSize` to skip.
//!
//! Not supported (each an [`MetaImageError::Invalid`] naming the file and the
//! reason): `BinaryData = False` (voxels as ASCII text), `MET_*_ARRAY` and
//! other element types not listed in [`ElementType`], `.Z` (LZW) data files.
//!
//! # Example
//!
//! Write a tiny scan, read it back as it was written and map a world point
//! to its voxel:
//!
//! ```
//! use metaimage::geometry::{Geometry, IDENTITY};
//! use metaimage::volume::Volume;
//! use metaimage::{read_volume, write_volume};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("scan.mhd");
//! let geometry = Geometry::new([-100.0, -100.0, -50.0], [0.5, 0.5, 2.0], IDENTITY);
//! // Shape (i, r, c) = (z, y, x) = (2, 3, 4); voxels in [z][y][x] order.
//! let voxels: Vec<i16> = (0..24).map(|k| k * 200 - 2000).collect();
//! let written = Volume::new([2, 3, 4], voxels, geometry).expect("24 voxels");
//! write_volume(&path, &written)?;
//!
//! let volume = read_volume(&path)?;
//! assert_eq!(volume, written);
//! assert_eq!(volume.get([0, 0, 0]), -2000); // as stored, never clipped
//! assert_eq!(volume.get([1, 2, 3]), 2600);
//!
//! // World millimetres → (i, r, c) and back.
//! let irc = volume.geometry.xyz_to_irc([-99.0, -99.5, -48.0])?;
//! assert_eq!(irc, [1, 1, 2]);
//! assert_eq!(volume.geometry.irc_to_xyz([1.0, 1.0, 2.0]), [-99.0, -99.5, -48.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod element;
mod files;
pub mod geometry;
mod header;
mod inspect;
mod mapped;
mod pattern;
mod payload;
pub mod volume;
mod writer;

/// The README's code samples, compiled (and run, unless marked `no_run`) as
/// doctests so the published examples cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::path::{Path, PathBuf};

pub use element::{ElementType, VoxelData};
pub use files::describe_file_type;
pub use header::{read_header, DataFile, Header, HeaderSize};
pub use inspect::{inspect, inspect_volume};
pub use mapped::{open_scan, open_scan_reusing};
pub use writer::{write_u8_image, write_volume};

use crate::geometry::Geometry;
use crate::volume::Volume;
use element::{to_native, with_voxels, Element};

/// Why a MetaImage could not be read. The message always starts with the
/// file concerned, so it can be shown to a user as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaImageError {
    /// The header or its data files are malformed, inconsistent or use a
    /// feature this reader does not support.
    #[error("{path}: {reason}")]
    Invalid {
        /// The header file (or, for an error about one data file, the header
        /// that names it).
        path: PathBuf,
        /// What is wrong, in words (names the data file when it is at fault).
        reason: String,
    },
    /// The operating system failed to open or read a file.
    #[error("{path}: {error}")]
    Io {
        /// The file being opened or read.
        path: PathBuf,
        /// The underlying I/O error.
        // Shown in the message, so not also returned as source(): the
        // "a: b" chain printers would repeat it.
        error: std::io::Error,
    },
}

impl MetaImageError {
    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        MetaImageError::Invalid {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        MetaImageError::Io {
            path: path.to_owned(),
            error: source,
        }
    }
}

/// An image as stored, with SimpleITK's geometry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Image {
    /// The parsed header, including every key as written.
    pub header: Header,
    /// DimSize order, x fastest.
    pub dims: Vec<usize>,
    /// Values per pixel (`ElementNumberOfChannels`, 1 when absent).
    pub channels: usize,
    /// World position of the first voxel's centre, one value per axis.
    pub origin: Vec<f64>,
    /// Distance between voxel centres along each axis (DimSize order).
    pub spacing: Vec<f64>,
    /// Row-major N×N, ITK convention (column k = world direction of axis k),
    /// i.e. the transpose of the header's `TransformMatrix`.
    pub direction: Vec<f64>,
    /// `prod(dims) * channels` values, x fastest, channels interleaved.
    pub data: VoxelData,
}

/// Read any supported MetaImage: header, geometry and every voxel in its
/// stored element type (byte order converted to the host's).
///
/// Fails with [`MetaImageError::Invalid`] for a malformed header, a data
/// file of the wrong size, corrupt compressed data or an unsupported feature,
/// and with [`MetaImageError::Io`] when a file cannot be read.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image, MetaImageError> {
    let header = read_header(path)?;
    let plan = payload::plan(&header)?;
    let data = read_typed(&header, &plan)?;
    Ok(Image {
        dims: header.dims.clone(),
        channels: header.channels,
        origin: header.origin.clone(),
        spacing: header.spacing.clone(),
        direction: header.direction(),
        data,
        header,
    })
}

fn read_typed(header: &Header, plan: &payload::Plan) -> Result<VoxelData, MetaImageError> {
    fn load<T: Element>(header: &Header, plan: &payload::Plan) -> Result<Vec<T>, MetaImageError> {
        let mut v = zeroed(header, plan)?;
        payload::fill(header, plan, &mut v, |piece| {
            to_native(piece, header.big_endian)
        })?;
        Ok(v)
    }
    Ok(match header.element_type {
        ElementType::U8 => VoxelData::U8(load(header, plan)?),
        ElementType::I8 => VoxelData::I8(load(header, plan)?),
        ElementType::U16 => VoxelData::U16(load(header, plan)?),
        ElementType::I16 => VoxelData::I16(load(header, plan)?),
        ElementType::U32 => VoxelData::U32(load(header, plan)?),
        ElementType::I32 => VoxelData::I32(load(header, plan)?),
        ElementType::U64 => VoxelData::U64(load(header, plan)?),
        ElementType::I64 => VoxelData::I64(load(header, plan)?),
        ElementType::F32 => VoxelData::F32(load(header, plan)?),
        ElementType::F64 => VoxelData::F64(load(header, plan)?),
    })
}

/// The most voxel bytes decoded into memory at once: 32 GiB, 80× a large
/// LUNA scan (764 × 512 × 512 int16, 0.4 GB). File sizes alone cannot bound
/// the buffer: a sparse 1 TB data file matches a 1 TB DimSize while costing
/// no disk, and a compressed stream may claim ~1000× its size.
pub const MAX_DECODED_BYTES: u64 = 32 << 30;

/// The output buffer, allocated only after `plan` checked the data files,
/// and only up to [`MAX_DECODED_BYTES`]. The allocation is lazily zeroed
/// (calloc-like), and one the system refuses is an error, never an abort.
fn zeroed<T: Element>(header: &Header, plan: &payload::Plan) -> Result<Vec<T>, MetaImageError> {
    if plan.len as u64 > MAX_DECODED_BYTES {
        return Err(header.invalid(format!(
            "DimSize {:?} needs {} bytes of voxels in memory, over the {} GiB this reader decodes at once",
            header.dims,
            plan.len,
            MAX_DECODED_BYTES >> 30
        )));
    }
    let n = plan.len / std::mem::size_of::<T>();
    element::try_zeroed(n)
        .ok_or_else(|| header.invalid(format!("cannot allocate {} bytes for the voxels", plan.len)))
}

/// `buffer` resized to the plan; its existing elements are overwritten, so
/// only growth costs zeroing.
fn recycle(
    header: &Header,
    plan: &payload::Plan,
    mut buffer: Vec<i16>,
) -> Result<Vec<i16>, MetaImageError> {
    let n = plan.len / 2;
    if buffer.capacity() < n {
        return zeroed(header, plan);
    }
    buffer.truncate(n);
    buffer.resize(n, 0);
    Ok(buffer)
}

/// Read a 3-D single-channel scan as int16 voxels, values as stored.
///
/// `shape` is DimSize reversed, (z, y, x). Any element type is accepted:
/// int16 is read as it is; other types are rounded to the nearest integer
/// with ties to even, like numpy's `np.round`, and saturated to the int16
/// range, so a float scan gives the same values as the numpy pipelines this
/// crate is checked against; NaN is an error. An image that is not 3-D with
/// one channel is [`MetaImageError::Invalid`].
pub fn read_volume(path: impl AsRef<Path>) -> Result<Volume, MetaImageError> {
    read_volume_reusing(path, Vec::new())
}

/// [`read_volume`] into a recycled buffer (e.g. the previous scan's
/// `Volume::voxels`). Faulting in a fresh 150 MB buffer costs more than
/// reading the file itself; a loop over many scans should pass its last
/// buffer back.
pub fn read_volume_reusing(
    path: impl AsRef<Path>,
    buffer: Vec<i16>,
) -> Result<Volume, MetaImageError> {
    let header = read_volume_header(path)?;
    let plan = payload::plan(&header)?;
    decode_volume(&header, &plan, buffer)
}

/// The header of a CT volume: 3-D, one channel.
fn read_volume_header(path: impl AsRef<Path>) -> Result<Header, MetaImageError> {
    let header = read_header(path)?;
    if header.ndims() != 3 || header.channels != 1 {
        return Err(header.invalid(format!(
            "a CT volume must be 3-D with one channel; this image is {}-D with {} channel(s)",
            header.ndims(),
            header.channels
        )));
    }
    Ok(header)
}

/// Decode the voxels of a checked volume header into int16, reusing `buffer`
/// when the data is int16.
fn decode_volume(
    header: &Header,
    plan: &payload::Plan,
    buffer: Vec<i16>,
) -> Result<Volume, MetaImageError> {
    let voxels = if header.element_type == ElementType::I16 {
        // Hot path: the file bytes land in the final buffer, byte-swapped
        // (if needed) piece by piece while still in cache.
        let mut voxels = recycle(header, plan, buffer)?;
        payload::fill(header, plan, &mut voxels, |piece| {
            to_native(piece, header.big_endian)
        })?;
        voxels
    } else {
        to_i16(header, &read_typed(header, plan)?)?
    };
    Ok(Volume {
        shape: volume_shape(header),
        voxels,
        geometry: volume_geometry(header),
    })
}

/// (i, r, c): DimSize reversed. Only for headers checked to be 3-D.
fn volume_shape(header: &Header) -> [usize; 3] {
    [header.dims[2], header.dims[1], header.dims[0]]
}

/// The 3-D geometry of a checked volume header; the direction is the
/// transpose of `TransformMatrix`, because MetaIO writes axis k's world
/// direction as row k while ITK's direction matrix holds it as column k.
fn volume_geometry(header: &Header) -> Geometry {
    let tm = &header.transform_matrix;
    Geometry {
        origin: [header.origin[0], header.origin[1], header.origin[2]],
        spacing: [header.spacing[0], header.spacing[1], header.spacing[2]],
        direction: Geometry::direction_from_transform_matrix([
            tm[0], tm[1], tm[2], tm[3], tm[4], tm[5], tm[6], tm[7], tm[8],
        ]),
    }
}

/// Non-int16 voxels → int16: round ties to even (numpy's rule), saturating
/// at the int16 range (`as` saturates). A caller's integer window applied
/// afterwards gives what clipping before rounding would.
fn to_i16(header: &Header, data: &VoxelData) -> Result<Vec<i16>, MetaImageError> {
    with_voxels!(data, values => values
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let x = x.to_f64();
            if x.is_nan() {
                return Err(header.invalid(format!("voxel {i} is NaN; cannot convert to int16")));
            }
            Ok(x.round_ties_even() as i16)
        })
        .collect())
}
