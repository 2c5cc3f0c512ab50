//! Opening one DICOM file: read it whole (bounded), check its lengths, then
//! let dicom-object parse it (or only its header) from memory.

use std::io::Read;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use crate::error::DicomError;
use crate::guard::{self, PixelBytes};

/// The largest file read: 2 GiB, four times a 16-bit 16384² slice. A
/// bigger one cannot be a slice this reader accepts.
pub(crate) const MAX_FILE_BYTES: u64 = 2 << 30;

/// Whether `path` starts like a DICOM file (`DICM` at offset 128), judged
/// from its first 132 bytes so that other files cost one small read.
pub(crate) fn sniff(path: &Path) -> Result<bool, DicomError> {
    let mut head = Vec::with_capacity(132);
    std::fs::File::open(path)
        .and_then(|f| f.take(132).read_to_end(&mut head))
        .map_err(|e| DicomError::io(path, e))?;
    Ok(guard::has_preamble(&head))
}

/// A DICOM file read whole (bounded) whose every declared length fits in
/// it, with the root dataset's pixel data as the lengths declare it.
pub(crate) struct Checked {
    pub bytes: Vec<u8>,
    pub pixels: PixelBytes,
}

/// Reads `path` and checks its lengths, so that no parse of it can
/// allocate more than the file holds.
pub(crate) fn read_checked(path: &Path) -> Result<Checked, DicomError> {
    let bytes = read_bounded(path)?;
    let pixels = guard::check_lengths(&bytes).map_err(|reason| DicomError::file(path, reason))?;
    Ok(Checked { bytes, pixels })
}

/// Reads a DICOM file and parses everything before its pixel data: a
/// series' headers cost a fraction of its pixels. The lengths are checked
/// over the whole file all the same, and how much pixel data it holds
/// comes with it.
pub(crate) fn open_header(path: &Path) -> Result<(DefaultDicomObject, PixelBytes), DicomError> {
    let checked = read_checked(path)?;
    Ok((parse_header(path, &checked)?, checked.pixels))
}

/// The part of a checked file before its pixel data.
pub(crate) fn parse_header(path: &Path, file: &Checked) -> Result<DefaultDicomObject, DicomError> {
    parse(
        path,
        file,
        OpenFileOptions::new().read_until(tags::PIXEL_DATA),
    )
}

/// The whole of a checked file (preamble, meta group, dataset).
pub(crate) fn parse_whole(path: &Path, file: &Checked) -> Result<DefaultDicomObject, DicomError> {
    parse(path, file, OpenFileOptions::new())
}

fn parse(
    path: &Path,
    file: &Checked,
    options: OpenFileOptions,
) -> Result<DefaultDicomObject, DicomError> {
    options
        .read_preamble(ReadPreamble::Never)
        .from_reader(&file.bytes[128..])
        .map_err(|e| DicomError::file(path, format!("unreadable DICOM: {}", chain(&e))))
}

/// The series a file that failed to read says it belongs to, if its
/// intact part reaches the SeriesInstanceUID (see
/// [`guard::salvage_series_uid`]).
pub(crate) fn salvage_series_uid(path: &Path) -> Option<String> {
    guard::salvage_series_uid(&read_bounded(path).ok()?)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, DicomError> {
    let file = std::fs::File::open(path).map_err(|e| DicomError::io(path, e))?;
    let size = file.metadata().map_err(|e| DicomError::io(path, e))?.len();
    if size > MAX_FILE_BYTES {
        return Err(DicomError::file(
            path,
            format!("{size} bytes, over the {MAX_FILE_BYTES}-byte limit for one slice"),
        ));
    }
    let mut bytes = Vec::new();
    // `take`: the file may grow after the size was read.
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| DicomError::io(path, e))?;
    Ok(bytes)
}

/// An error with its sources, "a: b: c": dicom-rs errors put the detail
/// (which element, which offset) in the source chain.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
