//! ITK MetaIO (.mhd/.mha/.raw/.zraw) reader.
//!
//! Reads what SimpleITK reads, with the same geometry: `origin`, `spacing`
//! and `direction` (the transpose of the row-major `TransformMatrix`).
//!
//! - [`read_header`]: header keys only.
//! - [`read_image`]: any supported image (1–10 dims, any element type,
//!   interleaved channels) as typed voxels in file order.
//! - [`read_volume`]: the hot path for CT scans — a 3-D scalar image as int16
//!   HU clipped to [-1000, 1000] in `[z][y][x]` order. Little-endian
//!   uncompressed MET_SHORT (LUNA's format) is read straight into the final
//!   buffer.
//! - [`open_scan`]: a CT volume opened for cropping — memory-mapped when
//!   the voxels are one uncompressed little-endian MET_SHORT run (LUNA), so
//!   crops read only the pages they touch; otherwise decoded as `read_volume`.
//! - [`inspect`]: a human-readable report of one scan.
//!
//! Not supported (clear error): `BinaryData = False` (voxels as ASCII text),
//! `MET_*_ARRAY` element types, `.Z` (LZW) data files.
//!
//! ```no_run
//! let vol = metaimage::read_volume(std::path::Path::new("subset0/1.3.6.mhd"))?;
//! println!("{:?} slices×rows×cols, spacing {:?}", vol.shape, vol.geometry.spacing);
//! # Ok::<(), metaimage::MetaImageError>(())
//! ```

mod element;
pub mod geometry;
mod header;
mod inspect;
mod mapped;
mod pattern;
mod payload;
pub mod volume;
pub mod writer;

use std::path::{Path, PathBuf};

pub use element::{ElementType, VoxelData};
pub use header::{read_header, DataFile, Header, HeaderSize};
pub use inspect::inspect;
pub use mapped::{open_scan, open_scan_reusing};

use crate::geometry::Geometry;
use crate::volume::{clip_hu, Volume, HU_MAX, HU_MIN};
use element::{to_native, with_voxels, Element};

#[derive(Debug, thiserror::Error)]
pub enum MetaImageError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
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
    pub header: Header,
    /// DimSize order, x fastest.
    pub dims: Vec<usize>,
    pub channels: usize,
    pub origin: Vec<f64>,
    pub spacing: Vec<f64>,
    /// Row-major N×N, ITK convention (column k = world direction of axis k).
    pub direction: Vec<f64>,
    /// `prod(dims) * channels` values, x fastest, channels interleaved.
    pub data: VoxelData,
}

/// Read any supported MetaImage.
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

/// The output buffer, allocated only after `plan` checked the data files.
///
/// Uncompressed sizes match real file bytes, so the plain (calloc-backed,
/// lazily zeroed) allocation is right. A compressed stream may still claim
/// up to ~1000× its size; that allocation must fail as an error, not abort.
fn zeroed<T: Element>(header: &Header, plan: &payload::Plan) -> Result<Vec<T>, MetaImageError> {
    let n = plan.len / std::mem::size_of::<T>();
    if !plan.is_compressed() {
        return Ok(vec![T::default(); n]);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        header.invalid(format!("cannot allocate {} bytes for the voxels", plan.len))
    })?;
    v.resize(n, T::default());
    Ok(v)
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

/// Read a 3-D single-channel scan as int16 HU clipped to [-1000, 1000].
///
/// `shape` is DimSize reversed, (z, y, x). Float voxels are rounded to the
/// nearest integer (ties to even, like numpy) after clipping; NaN is an error.
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
