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
//!   HU clipped to [-1000, 1000] in `[z][y][x]` order. Little-endian
//!   uncompressed MET_SHORT (the LUNA16 format) is read straight into the
//!   final buffer.
//! - [`open_scan`]: a CT volume opened for cropping — memory-mapped when
//!   the voxels are one uncompressed little-endian MET_SHORT run (LUNA16),
//!   so crops read only the pages they touch; otherwise decoded as
//!   `read_volume` does.
//! - [`inspect`]: a human-readable report of one image.
//! - [`geometry`]: world (x, y, z millimetres) ↔ voxel index (i, r, c).
//! - [`writer`]: writes uncompressed little-endian int16 `.mhd` + `.raw` pairs.
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
//! Write a tiny scan, read it back as a clipped HU volume and map a world
//! point to its voxel:
//!
//! ```
//! use metaimage::geometry::Geometry;
//! use metaimage::{read_volume, writer};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("scan.mhd");
//! let geometry = Geometry {
//!     origin: [-100.0, -100.0, -50.0],
//!     spacing: [0.5, 0.5, 2.0],
//!     ..Geometry::default()
//! };
//! // DimSize order (x, y, z) = (4, 3, 2); voxels in [z][y][x] order.
//! let voxels: Vec<i16> = (0..24).map(|k| k * 200 - 2000).collect();
//! writer::write_mhd_i16(&path, [4, 3, 2], &geometry, &voxels)?;
//!
//! let volume = read_volume(&path)?;
//! assert_eq!(volume.shape, [2, 3, 4]); // (i, r, c) = (z, y, x)
//! assert_eq!(volume.get([0, 0, 0]), -1000); // -2000 clipped
//! assert_eq!(volume.get([1, 2, 3]), 1000); // 2600 clipped
//! assert_eq!(volume.geometry, geometry);
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
pub mod writer;

/// The README's code samples, compiled (and run, unless marked `no_run`) as
/// doctests so the published examples cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::path::{Path, PathBuf};

pub use element::{ElementType, VoxelData};
pub use header::{read_header, DataFile, Header, HeaderSize};
pub use inspect::inspect;
pub use mapped::{open_scan, open_scan_reusing};

use crate::geometry::Geometry;
use crate::volume::{clip_hu, Volume, HU_MAX, HU_MIN};
use element::{to_native, with_voxels, Element};

/// Why a MetaImage could not be read. The message always starts with the
/// file concerned, so it can be shown to a user as it is.
#[derive(Debug, thiserror::Error)]
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
pub fn read_image(path: &Path) -> Result<Image, MetaImageError> {
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

/// Read a 3-D single-channel scan as int16 HU clipped to [-1000, 1000]
/// ([`volume::HU_MIN`], [`volume::HU_MAX`]).
///
/// `shape` is DimSize reversed, (z, y, x). Any element type is accepted;
/// float voxels are clipped, then rounded to the nearest integer with ties
/// to even, like numpy's `np.round`, so a float scan gives the same HU as the
/// numpy pipelines this crate is checked against; NaN is an error. An image
/// that is not 3-D with one channel is [`MetaImageError::Invalid`].
pub fn read_volume(path: &Path) -> Result<Volume, MetaImageError> {
    read_volume_reusing(path, Vec::new())
}

/// [`read_volume`] into a recycled buffer (e.g. the previous scan's
/// `Volume::hu`). Faulting in a fresh 150 MB buffer costs more than reading
/// the file itself; a loop over many scans should pass its last buffer back.
pub fn read_volume_reusing(path: &Path, buffer: Vec<i16>) -> Result<Volume, MetaImageError> {
    let header = read_volume_header(path)?;
    let plan = payload::plan(&header)?;
    decode_volume(&header, &plan, buffer)
}

/// The header of a CT volume: 3-D, one channel.
fn read_volume_header(path: &Path) -> Result<Header, MetaImageError> {
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

/// Decode the voxels of a checked volume header into HU, reusing `buffer`
/// when the data is int16.
fn decode_volume(
    header: &Header,
    plan: &payload::Plan,
    buffer: Vec<i16>,
) -> Result<Volume, MetaImageError> {
    let hu = if header.element_type == ElementType::I16 {
        // Hot path: the file bytes land in the final buffer, and each piece
        // is clipped (and byte-swapped if needed) while still in cache.
        let mut hu = recycle(header, plan, buffer)?;
        let swap = header.big_endian != cfg!(target_endian = "big");
        payload::fill(header, plan, &mut hu, |piece| {
            if swap {
                piece.iter_mut().for_each(|v| *v = v.swap_bytes());
            }
            clip_hu(piece);
        })?;
        hu
    } else {
        to_hu(header, &read_typed(header, plan)?)?
    };
    Ok(Volume {
        shape: volume_shape(header),
        hu,
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

/// Non-int16 voxels → HU: clip, then round ties to even (numpy's rule).
fn to_hu(header: &Header, data: &VoxelData) -> Result<Vec<i16>, MetaImageError> {
    let (lo, hi) = (f64::from(HU_MIN), f64::from(HU_MAX));
    with_voxels!(data, values => values
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let x = x.to_f64();
            if x.is_nan() {
                return Err(header.invalid(format!("voxel {i} is NaN; cannot convert to HU")));
            }
            Ok(x.clamp(lo, hi).round_ties_even() as i16)
        })
        .collect())
}
