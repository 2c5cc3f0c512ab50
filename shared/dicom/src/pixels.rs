//! One slice's stored pixels → int16 values: decoded by dicom-pixeldata,
//! then stored × RescaleSlope + RescaleIntercept of that slice.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, PixelRepresentation};

use crate::error::DicomError;
use crate::file::chain;
use crate::guard::PixelBytes;
use crate::header::SliceHeader;

/// Encapsulated (compressed) pixel data may decode to at most this many
/// times its size plus [`SLACK_BYTES`]: a corrupt Rows × Columns must not
/// make a small file allocate gigabytes. Far above real CT compression
/// ratios (lossless ≤ ~4×, lossy JPEG of a CT slice ≤ ~50×).
const MAX_RATIO: usize = 1024;
const SLACK_BYTES: usize = 1 << 20;

/// Fills `out` (rows × columns values) with the slice's rescaled values,
/// through dicom-pixeldata's decoder; the caller has checked the stored
/// size against `out` ([`check_size`]), which bounds what it inflates.
pub(crate) fn decode_slice(
    obj: &DefaultDicomObject,
    header: &SliceHeader,
    path: &Path,
    out: &mut [i16],
) -> Result<(), DicomError> {
    let bad = |reason: String| DicomError::file(path, reason);
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| bad(format!("cannot decode pixel data: {}", chain(&e))))?;
    // The decoder's own view of the format, which is what its bytes follow.
    let bits_allocated = decoded.bits_allocated();
    if !matches!(bits_allocated, 8 | 16) {
        return Err(bad(format!(
            "decoded to {bits_allocated} bits per pixel; only 8 and 16 are read"
        )));
    }
    let format = Format {
        bits_allocated,
        bits_stored: decoded.bits_stored().clamp(1, bits_allocated),
        signed: decoded.pixel_representation() == PixelRepresentation::Signed,
    };
    fill(&format, decoded.data(), header, out).map_err(bad)
}

/// Fills `out` from native pixel data read in place from the file's bytes
/// (`data`, where the length walk found it): no parse of the pixel data,
/// no decoder copy. The format comes from the slice's own attributes, as
/// the decoder would take it for native data.
pub(crate) fn native_slice(
    obj: &DefaultDicomObject,
    data: &[u8],
    header: &SliceHeader,
    path: &Path,
    out: &mut [i16],
) -> Result<(), DicomError> {
    let bad = |reason: String| DicomError::file(path, reason);
    let attribute = |tag| crate::header::uint(obj, tag);
    let bits_allocated = attribute(tags::BITS_ALLOCATED).unwrap_or(0) as u16;
    if !matches!(bits_allocated, 8 | 16) {
        return Err(bad(format!(
            "{bits_allocated} bits per pixel; only 8 and 16 are read"
        )));
    }
    let format = Format {
        bits_allocated,
        bits_stored: (attribute(tags::BITS_STORED).unwrap_or(bits_allocated.into()) as u16)
            .clamp(1, bits_allocated),
        signed: attribute(tags::PIXEL_REPRESENTATION) == Some(1),
    };
    fill(&format, data, header, out).map_err(bad)
}

/// `data`'s stored values rescaled into `out`, once it is long enough.
fn fill(format: &Format, data: &[u8], header: &SliceHeader, out: &mut [i16]) -> Result<(), String> {
    let needed = out.len() * usize::from(format.bits_allocated / 8);
    if data.len() < needed {
        return Err(format!(
            "pixel data holds {} bytes, {}×{} pixels need {needed}",
            data.len(),
            header.rows,
            header.columns
        ));
    }
    match Rescale::of(header) {
        Rescale::Integer { slope, intercept } if full_16_bit(format) => {
            convert_16(data, out, format.signed, slope, intercept)
        }
        Rescale::Integer { slope, intercept } => convert(format, data, out, |stored| {
            (i64::from(stored) * slope + intercept).clamp(i16::MIN.into(), i16::MAX.into()) as i16
        }),
        // `as` saturates: values past the int16 range become its ends.
        Rescale::Real { slope, intercept } => convert(format, data, out, |stored| {
            (f64::from(stored) * slope + intercept).round_ties_even() as i16
        }),
    }
    Ok(())
}

/// Stored values to HU. Integer slope and intercept (CT's usual 1 and
/// -1024) take integer arithmetic: the float formula's result, several
/// times faster over a whole series.
enum Rescale {
    Integer { slope: i64, intercept: i64 },
    Real { slope: f64, intercept: f64 },
}

impl Rescale {
    fn of(header: &SliceHeader) -> Rescale {
        let integer = |x: f64| (x.fract() == 0.0 && x.abs() <= 1e9).then_some(x as i64);
        match (integer(header.slope), integer(header.intercept)) {
            (Some(slope), Some(intercept)) => Rescale::Integer { slope, intercept },
            _ => Rescale::Real {
                slope: header.slope,
                intercept: header.intercept,
            },
        }
    }
}

/// 16 bits allocated and stored: no masking, no sign bit to move.
fn full_16_bit(format: &Format) -> bool {
    format.bits_allocated == 16 && format.bits_stored == 16
}

/// CT's common case, in straight loops the compiler vectorises: 16-bit
/// values and a small integer slope and intercept, in i32 without
/// overflow (|65535 × 1024| + 2^24 < 2^31). A whole series' pixels go
/// through here: it was most of a read's CPU time.
fn convert_16(data: &[u8], out: &mut [i16], signed: bool, slope: i64, intercept: i64) {
    if slope.abs() > 1024 || intercept.abs() > 1 << 24 {
        let rescale = |s: i32| (i64::from(s) * slope + intercept).clamp(-32768, 32767) as i16;
        return convert_each(data, out, signed, rescale);
    }
    let (slope, intercept) = (slope as i32, intercept as i32);
    let (lo, hi) = (i32::from(i16::MIN), i32::from(i16::MAX));
    convert_each(data, out, signed, |s| {
        (s * slope + intercept).clamp(lo, hi) as i16
    });
}

fn convert_each(data: &[u8], out: &mut [i16], signed: bool, rescale: impl Fn(i32) -> i16) {
    let pairs = out.iter_mut().zip(data.chunks_exact(2));
    if signed {
        for (v, b) in pairs {
            *v = rescale(i32::from(i16::from_le_bytes([b[0], b[1]])));
        }
    } else {
        for (v, b) in pairs {
            *v = rescale(i32::from(u16::from_le_bytes([b[0], b[1]])));
        }
    }
}

/// Every stored value of `data` through `rescale` into `out`.
fn convert(format: &Format, data: &[u8], out: &mut [i16], rescale: impl Fn(i32) -> i16) {
    match format.bits_allocated {
        16 => {
            for (v, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                *v = rescale(format.value(u32::from(u16::from_le_bytes([b[0], b[1]]))));
            }
        }
        _ => {
            for (v, &b) in out.iter_mut().zip(data) {
                *v = rescale(format.value(u32::from(b)));
            }
        }
    }
}

/// Whether `stored` pixel bytes can fill `pixels` pixels of `obj`'s
/// BitsAllocated: native data at least that long, compressed data at most
/// [`MAX_RATIO`] times smaller (plus [`SLACK_BYTES`]). Checked from the
/// file's declared lengths before a volume is allocated for it.
pub(crate) fn check_size(
    obj: &DefaultDicomObject,
    stored: PixelBytes,
    pixels: usize,
) -> Result<(), String> {
    let bits = crate::header::uint(obj, tags::BITS_ALLOCATED).unwrap_or(0);
    let bytes_per_pixel = if bits == 8 { 1 } else { 2 };
    let needed = (pixels * bytes_per_pixel) as u64;
    match stored {
        PixelBytes::None => Err("no PixelData".into()),
        PixelBytes::Encapsulated(n) => {
            if needed > n.saturating_mul(MAX_RATIO as u64) + SLACK_BYTES as u64 {
                return Err(format!(
                    "{n} bytes of compressed pixel data cannot hold {needed} bytes of pixels"
                ));
            }
            Ok(())
        }
        PixelBytes::Native(n) | PixelBytes::NativeAt { len: n, .. } if n < needed => Err(format!(
            "truncated pixel data: {n} bytes where {needed} are needed"
        )),
        PixelBytes::Native(_) | PixelBytes::NativeAt { .. } => Ok(()),
    }
}

struct Format {
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

impl Format {
    /// The stored value: bits above BitsStored dropped (they may hold
    /// overlays or junk) and the sign bit extended, as GDCM does.
    fn value(&self, raw: u32) -> i32 {
        let bits = u32::from(self.bits_stored);
        let masked = raw & ((1u32 << bits) - 1);
        if self.signed && masked >> (bits - 1) & 1 == 1 {
            masked as i32 - (1i32 << bits)
        } else {
            masked as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn bits_above_bits_stored_are_dropped_and_the_sign_extended() {
        let signed12 = Format {
            bits_allocated: 16,
            bits_stored: 12,
            signed: true,
        };
        // -2000 as int16 (0xF830), and with junk in the top nibble.
        assert_eq!(signed12.value(0xF830), -2000);
        assert_eq!(signed12.value(0x5830), -2000);
        assert_eq!(signed12.value(0x07FF), 2047);
        let unsigned12 = Format {
            signed: false,
            ..signed12
        };
        assert_eq!(unsigned12.value(0xFFFF), 4095);
        let signed16 = Format {
            bits_stored: 16,
            ..signed12
        };
        assert_eq!(signed16.value(0x8000), -32768);
        let unsigned8 = Format {
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
        };
        assert_eq!(unsigned8.value(0xFF), 255);
    }
}
