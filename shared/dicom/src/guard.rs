//! A walk over a file's element lengths before dicom-object parses it.
//!
//! dicom-parser allocates and zero-fills each value's declared length before
//! reading it, so one corrupt 32-bit length in a 1 KB file costs 4 GB of
//! memory. Checking that every declared length fits in the bytes left in the
//! file bounds every allocation by the file's size.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Implicit VR Little Endian: the dataset's lengths are all 32-bit.
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Big Endian (retired): refused, nothing current writes it.
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
/// Deflated Explicit VR Little Endian: the dataset is a raw deflate stream,
/// inflated (bounded) to be walked.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const UNDEFINED: u32 = u32::MAX;

/// The pixel data of a file's root dataset, as its lengths declare it:
/// what a parse that stops before PixelData still needs to know (whether
/// the file is an image, and whether its pixels can fill Rows × Columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PixelBytes {
    None,
    /// Native (uncompressed) pixel data of this many bytes.
    Native(u64),
    /// Native pixel data of `len` bytes at byte `at` of the file itself
    /// (not of a deflated dataset), readable in place.
    NativeAt {
        at: usize,
        len: u64,
    },
    /// Encapsulated (compressed) fragments of this many bytes in all.
    Encapsulated(u64),
}

/// Checks the DICM preamble and that every declared length fits in the
/// file, and finds the root dataset's pixel data; the error is the reason,
/// for the caller to attach the path to.
pub(crate) fn check_lengths(bytes: &[u8]) -> Result<PixelBytes, String> {
    if !has_preamble(bytes) {
        return Err("not a DICOM file (no DICM marker at offset 128)".into());
    }
    let mut walk = Walk::new(bytes, 132);
    let ts = walk.meta_group()?;
    match ts.as_str() {
        EXPLICIT_BE => Err("explicit VR big endian (retired) is not supported".into()),
        DEFLATED => {
            let inflated = inflate(&bytes[walk.pos.min(bytes.len())..])?;
            let mut walk = Walk::new(&inflated, 0);
            walk.dataset()?;
            // Offsets into the inflated copy mean nothing in the file.
            Ok(match walk.pixels {
                PixelBytes::NativeAt { len, .. } => PixelBytes::Native(len),
                other => other,
            })
        }
        _ => {
            walk.implicit = ts == IMPLICIT_LE;
            walk.dataset()?;
            Ok(walk.pixels)
        }
    }
}

/// The root dataset's SeriesInstanceUID as far as the file can be walked:
/// what a truncated or otherwise broken file still says about the series
/// it belongs to, so that the series can be refused rather than read
/// without it. `None` when the file breaks before the UID.
pub(crate) fn salvage_series_uid(bytes: &[u8]) -> Option<String> {
    if !has_preamble(bytes) {
        return None;
    }
    let mut walk = Walk::new(bytes, 132);
    let ts = walk.meta_group().ok()?;
    if ts == DEFLATED {
        let inflated = inflate(&bytes[walk.pos.min(bytes.len())..]).ok()?;
        let mut walk = Walk::new(&inflated, 0);
        let _ = walk.dataset();
        return walk.series_uid;
    }
    walk.implicit = ts == IMPLICIT_LE;
    let _ = walk.dataset();
    walk.series_uid
}

/// Inflating at most this many times the stream's size (plus
/// [`INFLATE_SLACK`]): far above what a CT slice deflates by (~2–4×), far
/// below what a deflate bomb claims.
const MAX_INFLATE_RATIO: usize = 1024;
const INFLATE_SLACK: usize = 1 << 20;

/// The deflated dataset, inflated up to the ratio bound.
fn inflate(stream: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = stream.len().saturating_mul(MAX_INFLATE_RATIO) + INFLATE_SLACK;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt deflated dataset: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "deflated dataset of {} bytes inflates to over {limit} bytes",
            stream.len()
        ));
    }
    Ok(out)
}

/// Whether `bytes` start with a 128-byte preamble and the `DICM` marker.
pub(crate) fn has_preamble(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    implicit: bool,
    /// Inside encapsulated pixel data, whose items are opaque fragments.
    fragments: bool,
    /// Where each entered defined-length sequence or item ends: none open
    /// (and no undefined-length one) is the root dataset.
    ends: Vec<usize>,
    /// The root dataset's PixelData (an icon's, inside a sequence, is not).
    pixels: PixelBytes,
    /// The root dataset's SeriesInstanceUID, once walked past.
    series_uid: Option<String>,
}

/// One element header: tag, explicit VR (None when implicit or an item)
/// and declared length.
struct Header {
    tag: Tag,
    vr: Option<[u8; 2]>,
    len: u32,
}

impl<'a> Walk<'a> {
    fn new(bytes: &'a [u8], pos: usize) -> Self {
        Walk {
            bytes,
            pos,
            implicit: false,
            fragments: false,
            ends: Vec::new(),
            pixels: PixelBytes::None,
            series_uid: None,
        }
    }

    fn u16_at(&self, at: usize) -> Result<u16, String> {
        self.bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("truncated: element header at byte {} cut off", self.pos))
    }

    fn u32_at(&self, at: usize) -> Result<u32, String> {
        self.bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated: element header at byte {} cut off", self.pos))
    }

    /// Reads the header at `pos` and moves past it.
    fn header(&mut self, implicit: bool) -> Result<Header, String> {
        let tag = Tag(self.u16_at(self.pos)?, self.u16_at(self.pos + 2)?);
        if tag.0 == 0xFFFE || implicit {
            let len = self.u32_at(self.pos + 4)?;
            self.pos += 8;
            return Ok(Header { tag, vr: None, len });
        }
        let vr = self.u16_at(self.pos + 4)?.to_le_bytes();
        let (len, size) = if long_length(vr) {
            (self.u32_at(self.pos + 8)?, 12)
        } else {
            (u32::from(self.u16_at(self.pos + 6)?), 8)
        };
        self.pos += size;
        Ok(Header {
            tag,
            vr: Some(vr),
            len,
        })
    }

    /// Fails unless `len` bytes remain after the current position.
    fn fits(&self, h: &Header) -> Result<(), String> {
        let left = self.bytes.len() - self.pos.min(self.bytes.len());
        if h.len as usize > left {
            return Err(format!(
                "truncated: element {} declares {} bytes at byte {} but only {left} remain",
                h.tag, h.len, self.pos
            ));
        }
        Ok(())
    }

    /// Walks the file meta group (always explicit VR little endian) and
    /// returns its transfer syntax UID.
    fn meta_group(&mut self) -> Result<String, String> {
        let mut ts = None;
        while self.u16_at(self.pos).ok() == Some(0x0002) {
            let h = self.header(false)?;
            if h.len == UNDEFINED {
                return Err(format!("meta element {} has undefined length", h.tag));
            }
            self.fits(&h)?;
            let value = &self.bytes[self.pos..self.pos + h.len as usize];
            if h.tag == Tag(0x0002, 0x0010) {
                let text = String::from_utf8_lossy(value);
                ts = Some(text.trim_end_matches(['\0', ' ']).to_owned());
            }
            self.pos += h.len as usize;
        }
        ts.ok_or_else(|| "file meta group has no TransferSyntaxUID".into())
    }

    /// Walks every element, item and fragment of the dataset linearly:
    /// sequences and items are entered (their contents are elements with
    /// lengths of their own), other values skipped.
    fn dataset(&mut self) -> Result<(), String> {
        // One entry per open undefined-length sequence: the encoding to go
        // back to at its delimiter. An undefined-length UN (or an unknown
        // VR, which dicom-parser reads as UN) holds implicit VR items.
        let mut open: Vec<bool> = Vec::new();
        while self.pos < self.bytes.len() {
            while self.ends.last().is_some_and(|&end| self.pos >= end) {
                self.ends.pop();
            }
            let root = open.is_empty() && self.ends.is_empty();
            let h = self.header(self.implicit)?;
            if h.len == UNDEFINED {
                if h.tag == Tag(0x7FE0, 0x0010) && !self.implicit_un(&h) {
                    self.fragments = true;
                    if root {
                        self.pixels = PixelBytes::Encapsulated(0);
                    }
                } else if h.tag.0 != 0xFFFE {
                    open.push(self.implicit);
                    self.implicit |= self.implicit_un(&h);
                }
                continue;
            }
            self.fits(&h)?;
            self.note_pixels(&h, root);
            if root {
                self.note_series_uid(&h);
            }
            if h.tag == Tag(0xFFFE, 0xE0DD) {
                if self.fragments {
                    self.fragments = false;
                } else if let Some(implicit) = open.pop() {
                    self.implicit = implicit;
                }
            }
            if self.enters(&h) {
                self.ends.push(self.pos + h.len as usize);
            } else {
                self.pos += h.len as usize;
            }
        }
        Ok(())
    }

    /// Counts the root dataset's native pixel data and the fragments of its
    /// encapsulated pixel data (an offset table included: a bound, not a
    /// size).
    fn note_pixels(&mut self, h: &Header, root: bool) {
        if h.tag == Tag(0x7FE0, 0x0010) && root {
            self.pixels = PixelBytes::NativeAt {
                at: self.pos,
                len: u64::from(h.len),
            };
        } else if self.fragments && h.tag == Tag(0xFFFE, 0xE000) {
            if let PixelBytes::Encapsulated(n) = &mut self.pixels {
                *n += u64::from(h.len);
            }
        }
    }

    /// Keeps a (plausibly sized) SeriesInstanceUID's text.
    fn note_series_uid(&mut self, h: &Header) {
        const SERIES_INSTANCE_UID: Tag = Tag(0x0020, 0x000E);
        if h.tag == SERIES_INSTANCE_UID && h.len <= 128 {
            let value = &self.bytes[self.pos..self.pos + h.len as usize];
            let text = String::from_utf8_lossy(value);
            self.series_uid = Some(text.trim_end_matches(['\0', ' ']).to_owned());
        }
    }

    /// Whether an undefined-length element switches its contents to
    /// implicit VR: an explicit VR other than SQ, OB or OW.
    fn implicit_un(&self, h: &Header) -> bool {
        h.vr.is_some_and(|vr| !matches!(&vr, b"SQ" | b"OB" | b"OW"))
    }

    /// Whether a defined-length value holds further elements to check.
    fn enters(&self, h: &Header) -> bool {
        if h.tag.0 == 0xFFFE {
            return !self.fragments;
        }
        match h.vr {
            Some(vr) => vr == *b"SQ",
            None => is_sequence(h.tag),
        }
    }
}

/// Whether an explicit header has a 32-bit length after two reserved
/// bytes: every VR but those with a 16-bit length, unknown ones included
/// (dicom-parser reads an unknown VR as UN).
fn long_length(vr: [u8; 2]) -> bool {
    !matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// In implicit VR only the dictionary says which elements are sequences.
fn is_sequence(tag: Tag) -> bool {
    StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ)))
}

#[cfg(test)]
mod tests {
    use super::{check_lengths, PixelBytes};

    /// An explicit VR little endian element with a 32-bit length.
    fn long(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = [group.to_le_bytes(), element.to_le_bytes()].concat();
        out.extend_from_slice(vr);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    /// Preamble, `DICM`, a meta group naming explicit VR little endian,
    /// then `dataset`.
    fn file(dataset: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.1\0";
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00]);
        out.extend_from_slice(b"UI");
        out.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        out.extend_from_slice(ts);
        out.extend_from_slice(dataset);
        out
    }

    fn item(content: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
        out.extend_from_slice(&(content.len() as u32).to_le_bytes());
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn only_the_root_datasets_pixel_data_counts() {
        // An icon image sequence holding pixel data of its own.
        let icon = long(
            0x0088,
            0x0200,
            b"SQ",
            &item(&long(0x7FE0, 0x0010, b"OW", &[0; 4])),
        );
        assert_eq!(check_lengths(&file(&icon)), Ok(PixelBytes::None));
        let root = [icon, long(0x7FE0, 0x0010, b"OW", &[0; 8])].concat();
        let pixels = check_lengths(&file(&root));
        let at = file(&root).len() - 8;
        assert_eq!(pixels, Ok(PixelBytes::NativeAt { at, len: 8 }));
    }
}
