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

/// Checks the DICM preamble and that every declared length fits in the
/// file; the error is the reason, for the caller to attach the path to.
pub(crate) fn check_lengths(bytes: &[u8]) -> Result<(), String> {
    if !has_preamble(bytes) {
        return Err("not a DICOM file (no DICM marker at offset 128)".into());
    }
    let mut walk = Walk {
        bytes,
        pos: 132,
        implicit: false,
        fragments: false,
    };
    let ts = walk.meta_group()?;
    match ts.as_str() {
        EXPLICIT_BE => Err("explicit VR big endian (retired) is not supported".into()),
        DEFLATED => {
            let inflated = inflate(&bytes[walk.pos.min(bytes.len())..])?;
            Walk {
                bytes: &inflated,
                pos: 0,
                implicit: false,
                fragments: false,
            }
            .dataset()
        }
        _ => {
            walk.implicit = ts == IMPLICIT_LE;
            walk.dataset()
        }
    }
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
}

/// One element header: tag, explicit VR (None when implicit or an item)
/// and declared length.
struct Header {
    tag: Tag,
    vr: Option<[u8; 2]>,
    len: u32,
}

impl Walk<'_> {
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
            let h = self.header(self.implicit)?;
            if h.len == UNDEFINED {
                if h.tag == Tag(0x7FE0, 0x0010) && !self.implicit_un(&h) {
                    self.fragments = true;
                } else if h.tag.0 != 0xFFFE {
                    open.push(self.implicit);
                    self.implicit |= self.implicit_un(&h);
                }
                continue;
            }
            self.fits(&h)?;
            if h.tag == Tag(0xFFFE, 0xE0DD) {
                if self.fragments {
                    self.fragments = false;
                } else if let Some(implicit) = open.pop() {
                    self.implicit = implicit;
                }
            }
            if !self.enters(&h) {
                self.pos += h.len as usize;
            }
        }
        Ok(())
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
