//! A minimal DICOM writer for the tests: CT slices assembled byte by byte
//! (explicit or implicit VR little endian, or RLE-compressed), so that
//! refusals and fuzzing need neither Python nor a DICOM writing library,
//! and any attribute can be made wrong.

use std::path::Path;

/// How the dataset and its pixel data are encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    Explicit,
    Implicit,
    /// Explicit VR, pixel data RLE-compressed in one encapsulated fragment.
    Rle,
    /// Explicit VR, the whole dataset one raw deflate stream.
    Deflated,
    /// Explicit VR with pixel data encapsulated under JPEG-LS, which this
    /// reader does not decode (the fragment is RLE bytes, never looked at).
    JpegLs,
}

impl Encoding {
    fn transfer_syntax(self) -> &'static [u8] {
        match self {
            Encoding::Explicit => b"1.2.840.10008.1.2.1",
            Encoding::Implicit => b"1.2.840.10008.1.2",
            Encoding::Rle => b"1.2.840.10008.1.2.5",
            Encoding::Deflated => b"1.2.840.10008.1.2.1.99",
            Encoding::JpegLs => b"1.2.840.10008.1.2.4.80",
        }
    }
}

/// One CT slice's attributes; `Slice::default()` is a valid 4×3 axial slice.
#[derive(Clone)]
pub struct Slice {
    pub encoding: Encoding,
    pub sop_class: String,
    pub series_uid: String,
    pub modality: String,
    pub rows: u16,
    pub columns: u16,
    pub orientation: [f64; 6],
    pub position: [f64; 3],
    pub pixel_spacing: [f64; 2],
    pub frames: Option<u32>,
    pub slope: f64,
    pub intercept: f64,
    /// Stored int16 values; `rows × columns` ramp values when None.
    pub pixels: Option<Vec<i16>>,
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            encoding: Encoding::Explicit,
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
            series_uid: "1.2.3.4.5".into(),
            modality: "CT".into(),
            rows: 4,
            columns: 3,
            orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            position: [-10.0, 20.0, -100.0],
            pixel_spacing: [0.75, 0.5],
            frames: None,
            slope: 1.0,
            intercept: -1024.0,
            pixels: None,
        }
    }
}

/// `count` slices 2 mm apart along z.
pub fn axial_series(count: usize) -> Vec<Slice> {
    (0..count)
        .map(|k| {
            let mut s = Slice::default();
            s.position[2] += 2.0 * k as f64;
            s
        })
        .collect()
}

/// Writes each slice as `dir/slice<k>.dcm`.
pub fn write_series(dir: &Path, slices: &[Slice]) {
    for (k, s) in slices.iter().enumerate() {
        std::fs::write(dir.join(format!("slice{k}.dcm")), s.encode(k)).unwrap();
    }
}

/// Decimal strings, backslash-separated.
fn ds(values: &[f64]) -> Vec<u8> {
    let text: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    text.join("\\").into_bytes()
}

impl Slice {
    /// The file's bytes; `k` makes the SOP instance UID unique.
    pub fn encode(&self, k: usize) -> Vec<u8> {
        let instance = format!("1.2.3.4.6.{k}");
        let sop = self.sop_class.as_bytes();
        let mut out = Out {
            bytes: Vec::new(),
            implicit: self.encoding == Encoding::Implicit,
        };
        out.put((0x0008, 0x0016), b"UI", sop);
        out.put((0x0008, 0x0018), b"UI", instance.as_bytes());
        out.put((0x0008, 0x0060), b"CS", self.modality.as_bytes());
        out.put((0x0020, 0x000E), b"UI", self.series_uid.as_bytes());
        out.put((0x0020, 0x0032), b"DS", &ds(&self.position));
        out.put((0x0020, 0x0037), b"DS", &ds(&self.orientation));
        out.put((0x0028, 0x0002), b"US", &1u16.to_le_bytes());
        out.put((0x0028, 0x0004), b"CS", b"MONOCHROME2");
        if let Some(frames) = self.frames {
            out.put((0x0028, 0x0008), b"IS", frames.to_string().as_bytes());
        }
        out.put((0x0028, 0x0010), b"US", &self.rows.to_le_bytes());
        out.put((0x0028, 0x0011), b"US", &self.columns.to_le_bytes());
        out.put((0x0028, 0x0030), b"DS", &ds(&self.pixel_spacing));
        for (element, value) in [(0x0100, 16u16), (0x0101, 16), (0x0102, 15), (0x0103, 1)] {
            out.put((0x0028, element), b"US", &value.to_le_bytes());
        }
        out.put((0x0028, 0x1052), b"DS", &ds(&[self.intercept]));
        out.put((0x0028, 0x1053), b"DS", &ds(&[self.slope]));
        self.put_pixels(&mut out);
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend(meta_group(sop, instance.as_bytes(), self.encoding));
        if self.encoding == Encoding::Deflated {
            file.extend(deflate(&out.bytes));
        } else {
            file.extend(out.bytes);
        }
        file
    }

    fn put_pixels(&self, out: &mut Out) {
        let pixels: Vec<i16> = self.pixels.clone().unwrap_or_else(|| {
            let n = usize::from(self.rows) * usize::from(self.columns);
            (0..n as i16).map(|v| v * 37 - 200).collect()
        });
        match self.encoding {
            Encoding::Explicit | Encoding::Implicit | Encoding::Deflated => {
                let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.put((0x7FE0, 0x0010), b"OW", &bytes);
            }
            Encoding::Rle | Encoding::JpegLs => out.encapsulated(&rle_frame(&pixels)),
        }
    }
}

/// A raw deflate stream (no zlib header), as DICOM's deflated syntax has.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An RLE frame of 16-bit values: two segments (high bytes, then low
/// bytes), each a series of literal runs of at most 128 bytes.
fn rle_frame(pixels: &[i16]) -> Vec<u8> {
    let segment = |byte: usize| -> Vec<u8> {
        let plane: Vec<u8> = pixels.iter().map(|v| v.to_be_bytes()[byte]).collect();
        let mut seg = Vec::new();
        for run in plane.chunks(128) {
            seg.push((run.len() - 1) as u8);
            seg.extend_from_slice(run);
        }
        if seg.len() % 2 == 1 {
            seg.push(0);
        }
        seg
    };
    let (high, low) = (segment(0), segment(1));
    let mut header = [0u32; 16];
    header[0] = 2;
    header[1] = 64;
    header[2] = 64 + high.len() as u32;
    let mut frame: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    frame.extend(high);
    frame.extend(low);
    frame
}

fn meta_group(sop_class: &[u8], instance: &[u8], encoding: Encoding) -> Vec<u8> {
    let mut meta = Out {
        bytes: Vec::new(),
        implicit: false,
    };
    meta.put((0x0002, 0x0001), b"OB", &[0, 1]);
    meta.put((0x0002, 0x0002), b"UI", sop_class);
    meta.put((0x0002, 0x0003), b"UI", instance);
    meta.put((0x0002, 0x0010), b"UI", encoding.transfer_syntax());
    meta.put((0x0002, 0x0012), b"UI", b"1.2.3.4.99");
    let mut group = Out {
        bytes: Vec::new(),
        implicit: false,
    };
    let len = meta.bytes.len() as u32;
    group.put((0x0002, 0x0000), b"UL", &len.to_le_bytes());
    group.bytes.extend(meta.bytes);
    group.bytes
}

/// Encoded elements, in the dataset's VR encoding.
struct Out {
    bytes: Vec<u8>,
    implicit: bool,
}

impl Out {
    fn tag(&mut self, tag: (u16, u16)) {
        self.bytes.extend_from_slice(&tag.0.to_le_bytes());
        self.bytes.extend_from_slice(&tag.1.to_le_bytes());
    }

    /// One element, its value padded to even length (UIs with NUL, text
    /// with a space).
    fn put(&mut self, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        self.tag(tag);
        let len = value.len() as u32;
        if self.implicit {
            self.bytes.extend_from_slice(&len.to_le_bytes());
        } else if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            self.bytes.extend_from_slice(vr);
            self.bytes.extend_from_slice(&[0, 0]);
            self.bytes.extend_from_slice(&len.to_le_bytes());
        } else {
            self.bytes.extend_from_slice(vr);
            self.bytes.extend_from_slice(&(len as u16).to_le_bytes());
        }
        self.bytes.extend(value);
    }

    /// Encapsulated PixelData: an empty offset table, one fragment, the
    /// sequence delimiter.
    fn encapsulated(&mut self, fragment: &[u8]) {
        self.tag((0x7FE0, 0x0010));
        self.bytes.extend_from_slice(b"OB\0\0");
        self.bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        for item in [&[][..], fragment] {
            self.tag((0xFFFE, 0xE000));
            self.bytes
                .extend_from_slice(&(item.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(item);
        }
        self.tag((0xFFFE, 0xE0DD));
        self.bytes.extend_from_slice(&0u32.to_le_bytes());
    }
}
