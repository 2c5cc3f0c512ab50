//! Minimal TensorBoard event-file writer: scalars, histograms, PR curves,
//! images.
//!
//! An event file is a sequence of TFRecords (`u64` length, masked CRC32C of
//! the length, payload, masked CRC32C of the payload), each holding one
//! serialized `tensorflow.Event` protobuf. Only the handful of messages we
//! write are declared here, with the field numbers of TensorFlow's
//! `event.proto`, `summary.proto`, `tensor.proto` and the `pr_curves` plugin.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// Messages from TensorFlow's protos, only the fields we write.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(oneof = "event::What", tags = "3, 5")]
        pub what: Option<event::What>,
    }

    pub mod event {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum What {
            #[prost(string, tag = "3")]
            FileVersion(String),
            #[prost(message, tag = "5")]
            Summary(super::Summary),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<Value>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<SummaryMetadata>,
        #[prost(oneof = "value::Kind", tags = "2, 4, 5, 8")]
        pub kind: Option<value::Kind>,
    }

    pub mod value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            #[prost(float, tag = "2")]
            SimpleValue(f32),
            #[prost(message, tag = "4")]
            Image(super::Image),
            #[prost(message, tag = "5")]
            Histo(super::HistogramProto),
            #[prost(message, tag = "8")]
            Tensor(super::TensorProto),
        }
    }

    /// `tensorflow.Summary.Image`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }

    /// `tensorflow.HistogramProto`: `bucket[i]` counts the values between
    /// `bucket_limit[i-1]` and `bucket_limit[i]` (TensorBoard draws the
    /// first bucket from `min` and the last one up to `max`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HistogramProto {
        #[prost(double, tag = "1")]
        pub min: f64,
        #[prost(double, tag = "2")]
        pub max: f64,
        #[prost(double, tag = "3")]
        pub num: f64,
        #[prost(double, tag = "4")]
        pub sum: f64,
        #[prost(double, tag = "5")]
        pub sum_squares: f64,
        #[prost(double, repeated, tag = "6")]
        pub bucket_limit: Vec<f64>,
        #[prost(double, repeated, tag = "7")]
        pub bucket: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
        #[prost(string, tag = "2")]
        pub display_name: String,
        #[prost(string, tag = "3")]
        pub summary_description: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }

    /// `tensorflow.DataType.DT_FLOAT`.
    pub const DT_FLOAT: i32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
        #[prost(float, repeated, tag = "5")]
        pub float_val: Vec<f32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<tensor_shape_proto::Dim>,
    }

    pub mod tensor_shape_proto {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dim {
            #[prost(int64, tag = "1")]
            pub size: i64,
        }
    }

    /// `tensorboard.PrCurvePluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PrCurvePluginData {
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(uint32, tag = "2")]
        pub num_thresholds: u32,
    }
}

use proto::{event, value, Event, Summary, Value};

/// TensorBoard's (and torch's `add_pr_curve`'s) default resolution.
pub const PR_CURVE_THRESHOLDS: usize = 127;
/// The book's histogram bins: 50 equal bins over [0, 1].
pub const HISTOGRAM_BINS: usize = 50;

/// CRC32C as TFRecord stores it: rotated and offset so that CRCs of data
/// that itself contains CRCs stay well distributed.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// A PNG-encoded 8-bit image (grey or RGB) and its size, as an image
/// summary declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Png {
    pub height: u32,
    pub width: u32,
    /// 1 (grey) or 3 (RGB): the summary's colorspace.
    pub channels: u8,
    pub png: Vec<u8>,
}

impl Png {
    /// Encodes `pixels`, `height` rows of `width` grey bytes.
    pub fn grey(width: u32, height: u32, pixels: &[u8]) -> Result<Png, String> {
        Png::encode(width, height, pixels, image::ColorType::L8, 1)
    }

    /// Encodes `pixels`, `height` rows of `width` RGB triples.
    pub fn rgb(width: u32, height: u32, pixels: &[u8]) -> Result<Png, String> {
        Png::encode(width, height, pixels, image::ColorType::Rgb8, 3)
    }

    fn encode(
        width: u32,
        height: u32,
        pixels: &[u8],
        color: image::ColorType,
        channels: u8,
    ) -> Result<Png, String> {
        use image::ImageEncoder;
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(pixels, width, height, color)
            .map_err(|e| e.to_string())?;
        Ok(Png {
            height,
            width,
            channels,
            png,
        })
    }
}

/// Appends TFRecord-framed events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` and a new event file in it, starting with the file-version record.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or_else(|| "localhost".to_owned());
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}",
            now.as_secs(),
            host,
            std::process::id(),
            now.subsec_nanos()
        );
        let path = dir.join(name);
        let out = BufWriter::new(File::create(&path)?);
        let mut w = EventWriter { path, out };
        w.write_event(Event {
            wall_time: wall_time(),
            step: 0,
            what: Some(event::What::FileVersion("brain.Event:2".to_owned())),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: Event) -> io::Result<()> {
        let payload = event.encode_to_vec();
        let len = (payload.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc32c(&len).to_le_bytes())?;
        self.out.write_all(&payload)?;
        self.out.write_all(&masked_crc32c(&payload).to_le_bytes())
    }

    fn write_values(&mut self, step: u64, value: Vec<Value>) -> io::Result<()> {
        self.write_event(Event {
            wall_time: wall_time(),
            step: step as i64,
            what: Some(event::What::Summary(Summary { value })),
        })
    }

    /// Several scalars at one step, in one event.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> io::Result<()> {
        let values = scalars
            .iter()
            .map(|&(tag, v)| Value {
                tag: tag.to_owned(),
                metadata: None,
                kind: Some(value::Kind::SimpleValue(v as f32)),
            })
            .collect();
        self.write_values(step, values)
    }

    /// A histogram of values in [0, 1] over [`HISTOGRAM_BINS`] equal bins
    /// (numpy's convention: each bin half-open, the last one closed).
    /// Nothing is written for an empty slice, as in the book.
    pub fn probability_histogram(
        &mut self,
        tag: &str,
        step: u64,
        values: &[f32],
    ) -> io::Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut counts = vec![0f64; HISTOGRAM_BINS];
        let (mut min, mut max, mut sum, mut sum_squares) =
            (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
        for &v in values {
            let v = v as f64;
            let bin =
                ((v * HISTOGRAM_BINS as f64).floor().max(0.0) as usize).min(HISTOGRAM_BINS - 1);
            counts[bin] += 1.0;
            min = min.min(v);
            max = max.max(v);
            sum += v;
            sum_squares += v * v;
        }
        let histo = proto::HistogramProto {
            min,
            max,
            num: values.len() as f64,
            sum,
            sum_squares,
            bucket_limit: (1..=HISTOGRAM_BINS)
                .map(|i| i as f64 / HISTOGRAM_BINS as f64)
                .collect(),
            bucket: counts,
        };
        let value = Value {
            tag: tag.to_owned(),
            metadata: None,
            kind: Some(value::Kind::Histo(histo)),
        };
        self.write_values(step, vec![value])
    }

    /// Histograms built by the caller (see [`proto::HistogramProto`] for
    /// the bucket convention), in one event.
    pub fn histograms(
        &mut self,
        step: u64,
        histograms: &[(String, proto::HistogramProto)],
    ) -> io::Result<()> {
        let values = histograms
            .iter()
            .map(|(tag, histo)| Value {
                tag: tag.clone(),
                metadata: None,
                kind: Some(value::Kind::Histo(histo.clone())),
            })
            .collect();
        self.write_values(step, values)
    }

    /// 8-bit PNG images, in one event.
    pub fn images(&mut self, step: u64, images: &[(String, Png)]) -> io::Result<()> {
        let values = images
            .iter()
            .map(|(tag, image)| Value {
                tag: tag.clone(),
                metadata: None,
                kind: Some(value::Kind::Image(proto::Image {
                    height: image.height as i32,
                    width: image.width as i32,
                    colorspace: i32::from(image.channels),
                    encoded_image_string: image.png.clone(),
                })),
            })
            .collect();
        self.write_values(step, values)
    }

    /// A PR curve as the `pr_curves` plugin stores it: a `[6, thresholds]`
    /// float tensor of TP, FP, TN, FN, precision, recall.
    pub fn pr_curve(
        &mut self,
        tag: &str,
        step: u64,
        labels: &[bool],
        prob_pos: &[f32],
    ) -> io::Result<()> {
        let curve = pr_curve_data(labels, prob_pos, PR_CURVE_THRESHOLDS);
        let plugin = proto::PrCurvePluginData {
            version: 0,
            num_thresholds: PR_CURVE_THRESHOLDS as u32,
        };
        let value = Value {
            tag: tag.to_owned(),
            metadata: Some(proto::SummaryMetadata {
                plugin_data: Some(proto::PluginData {
                    plugin_name: "pr_curves".to_owned(),
                    content: plugin.encode_to_vec(),
                }),
                display_name: tag.to_owned(),
                summary_description: String::new(),
            }),
            kind: Some(value::Kind::Tensor(proto::TensorProto {
                dtype: proto::DT_FLOAT,
                tensor_shape: Some(proto::TensorShapeProto {
                    dim: [6, PR_CURVE_THRESHOLDS as i64]
                        .into_iter()
                        .map(|size| proto::tensor_shape_proto::Dim { size })
                        .collect(),
                }),
                float_val: curve,
            })),
        };
        self.write_values(step, vec![value])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `pr_curves` plugin's `compute_curve`: predictions bucketed by
/// `floor(p·(n-1))`, counts accumulated from the top threshold down.
/// Returns the 6×n rows flattened row-major.
pub fn pr_curve_data(labels: &[bool], prob_pos: &[f32], thresholds: usize) -> Vec<f32> {
    const MINIMUM_COUNT: f64 = 1e-7;
    let n = thresholds;
    let (mut tp_buckets, mut fp_buckets) = (vec![0f64; n], vec![0f64; n]);
    for (&label, &p) in labels.iter().zip(prob_pos) {
        let bucket = ((p as f64 * (n - 1) as f64).floor().max(0.0) as usize).min(n - 1);
        if label {
            tp_buckets[bucket] += 1.0;
        } else {
            fp_buckets[bucket] += 1.0;
        }
    }
    let (mut tp, mut fp) = (vec![0f64; n], vec![0f64; n]);
    let (mut tp_acc, mut fp_acc) = (0.0, 0.0);
    for i in (0..n).rev() {
        tp_acc += tp_buckets[i];
        fp_acc += fp_buckets[i];
        tp[i] = tp_acc;
        fp[i] = fp_acc;
    }
    let mut out = Vec::with_capacity(6 * n);
    out.extend(tp.iter().map(|&v| v as f32));
    out.extend(fp.iter().map(|&v| v as f32));
    out.extend(fp.iter().map(|&v| (fp[0] - v) as f32));
    out.extend(tp.iter().map(|&v| (tp[0] - v) as f32));
    out.extend(
        tp.iter()
            .zip(&fp)
            .map(|(&t, &f)| (t / (t + f).max(MINIMUM_COUNT)) as f32),
    );
    out.extend(tp.iter().map(|&t| (t / tp[0].max(MINIMUM_COUNT)) as f32));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow_test_vector() {
        // CRC32C("123456789") = 0xE3069283, the standard check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // Rotated right by 15 and offset by 0xa282ead8, as TensorFlow's crc32c::Mask.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn pr_curve_counts_from_the_top_threshold_down() {
        let labels = [true, false, true, false];
        let probs = [0.9f32, 0.6, 0.3, 0.1];
        let c = pr_curve_data(&labels, &probs, 5);
        let row = |r: usize| c[r * 5..(r + 1) * 5].to_vec();
        // buckets: floor(p*4) = 3, 2, 1, 0
        assert_eq!(row(0), vec![2.0, 2.0, 1.0, 1.0, 0.0]); // TP
        assert_eq!(row(1), vec![2.0, 1.0, 1.0, 0.0, 0.0]); // FP
        assert_eq!(row(2), vec![0.0, 1.0, 1.0, 2.0, 2.0]); // TN
        assert_eq!(row(3), vec![0.0, 0.0, 1.0, 1.0, 2.0]); // FN
        assert_eq!(row(4), vec![0.5, 2.0 / 3.0, 0.5, 1.0, 0.0]); // precision
        assert_eq!(row(5), vec![1.0, 1.0, 0.5, 0.5, 0.0]); // recall
    }
}
