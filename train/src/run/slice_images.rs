//! TensorBoard pictures of the U-Net at work, as the book's chapter 13
//! `logImages` draws them: whole validation slices, the CT in grey, with
//! the prediction over the label. True positives are green, false
//! positives red, false negatives orange (red plus half green).
//!
//! The book takes the first 12 series of the sorted validation list and 6
//! slices of each, evenly spaced from the first to the last, after every
//! validation; at the first validation it also draws each slice with its
//! label alone. Its label picture is built in an 8-bit array from the
//! float CT, which truncates the CT to black; ours keeps the CT grey under
//! the green label, as its prediction picture does.

use std::sync::Arc;

use anyhow::{Context, Result};
use shared::cache::CacheReader;
use shared::seg::{CONTEXT_SLICES, HU_PLANES, MASK_PLANE};
use tch::{Device, Kind, Tensor};

use super::tensorboard::Png;

/// Validation series drawn (the book's `[:12]`).
const SERIES: usize = 12;
/// Slices drawn per series (the book's `range(6)`).
const SLICES_PER_SERIES: usize = 6;

/// One drawn slice: its place in the book's numbering and its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pick {
    series: usize,
    slice: usize,
    entry: u32,
}

/// The validation slices a segmentation run draws after each validation.
pub struct SliceImages {
    reader: Arc<CacheReader>,
    picks: Vec<Pick>,
}

impl SliceImages {
    /// The book's choice of slices among `reader`'s (a `seg-val/` cache:
    /// one chunk per slice, ordered by series uid, then slice).
    pub fn new(reader: Arc<CacheReader>) -> Self {
        let slices: Vec<(u32, i32)> = reader
            .entries()
            .iter()
            .map(|e| (e.series, e.center_irc[0]))
            .collect();
        let picks = pick(&slices);
        SliceImages { reader, picks }
    }

    /// The pictures of this validation: `predict` maps HU slices
    /// `[n, 7, H, W]` (on `device`) to P(nodule) `[n, 1, H, W]`; `first`
    /// adds the label pictures.
    pub fn draw(
        &self,
        predict: &dyn Fn(&Tensor) -> Tensor,
        device: Device,
        first: bool,
    ) -> Result<Vec<(String, Png)>> {
        let mut images = Vec::new();
        for picks in self.picks.chunks(SLICES_PER_SERIES) {
            let chunks = self.read(picks)?.to_device(device);
            let hu = chunks.narrow(1, 0, HU_PLANES as i64);
            let label = chunks.narrow(1, MASK_PLANE as i64, 1).gt(0.5);
            let predicted = tch::no_grad(|| predict(&hu)).gt(0.5);
            let ct = (hu.narrow(1, CONTEXT_SLICES as i64, 1) / 2000.0 + 0.5).clamp(0.0, 1.0);
            for (k, p) in picks.iter().enumerate() {
                let k = k as i64;
                let (ct, label, predicted) = (ct.get(k), label.get(k), predicted.get(k));
                let tag = |what: &str| format!("val/{}_{what}_{}", p.series, p.slice);
                images.push((
                    tag("prediction"),
                    prediction_picture(&ct, &predicted, &label)?,
                ));
                if first {
                    images.push((tag("label"), label_picture(&ct, &label)?));
                }
            }
        }
        Ok(images)
    }

    /// The chunks of `picks` as float `[n, 8, H, W]` on the CPU.
    fn read(&self, picks: &[Pick]) -> Result<Tensor> {
        let [planes, h, w] = self.reader.manifest().crop_shape;
        let voxels = self.reader.chunk_voxels();
        let mut host = vec![0i16; voxels * picks.len()];
        let mut decoder = self.reader.decoder();
        for (p, out) in picks.iter().zip(host.chunks_exact_mut(voxels)) {
            self.reader
                .read_chunk(&mut decoder, p.entry as usize, out)
                .with_context(|| format!("drawing validation slice {}", p.entry))?;
        }
        let shape = [picks.len() as i64, planes as i64, h as i64, w as i64];
        Ok(Tensor::from_slice(&host).view(shape).to_kind(Kind::Float))
    }
}

/// The first [`SERIES`] series of `slices` ((series, slice) per chunk, in
/// cache order) and, of each, the slices `k·(depth−1)/5` for k in 0..6.
fn pick(slices: &[(u32, i32)]) -> Vec<Pick> {
    let mut picks = Vec::new();
    let mut start = 0;
    let mut series = 0;
    while start < slices.len() && series < SERIES {
        let id = slices[start].0;
        let depth = slices[start..].iter().take_while(|s| s.0 == id).count();
        for slice in 0..SLICES_PER_SERIES {
            let ct_ndx = slice * (depth - 1) / (SLICES_PER_SERIES - 1);
            let found = slices[start..start + depth]
                .iter()
                .position(|s| s.1 == ct_ndx as i32);
            if let Some(at) = found {
                let entry = (start + at) as u32;
                picks.push(Pick {
                    series,
                    slice,
                    entry,
                });
            }
        }
        start += depth;
        series += 1;
    }
    picks
}

/// The book's prediction picture: CT grey, plus red where prediction and
/// label disagree, green where the label holds (full where predicted,
/// half where missed), all halved.
fn prediction_picture(ct: &Tensor, predicted: &Tensor, label: &Tensor) -> Result<Png> {
    let float = |t: &Tensor| t.to_kind(Kind::Float);
    let (p, l) = (float(predicted), float(label));
    let false_pos = &p * (1.0 - &l);
    let false_neg = (1.0 - &p) * &l;
    let red = ct + &false_pos + &false_neg;
    let green = ct + &false_neg * 0.5 + &p * &l;
    rgb_png(&Tensor::cat(&[red, green, ct.shallow_clone()], 0))
}

/// The label alone: CT grey, label green, halved as the prediction's.
fn label_picture(ct: &Tensor, label: &Tensor) -> Result<Png> {
    let green = ct + label.to_kind(Kind::Float);
    rgb_png(&Tensor::cat(
        &[ct.shallow_clone(), green, ct.shallow_clone()],
        0,
    ))
}

/// `[3, H, W]` floats → halved, clipped to [0, 1] and encoded as RGB bytes.
fn rgb_png(rgb: &Tensor) -> Result<Png> {
    let size = rgb.size();
    let (h, w) = (size[1], size[2]);
    let bytes = (rgb * 0.5 * 255.0)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .to_device(Device::Cpu)
        .contiguous();
    let pixels = Vec::<u8>::try_from(bytes.flatten(0, -1)).context("copying a picture")?;
    Png::rgb(w as u32, h as u32, &pixels).map_err(|why| anyhow::anyhow!("encoding a PNG: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_six_evenly_spaced_slices_of_the_first_twelve_series() {
        // 14 series of 11 slices: slices 0, 2, 4, 6, 8, 10 of the first 12.
        let slices: Vec<(u32, i32)> = (0..14u32)
            .flat_map(|s| (0..11).map(move |i| (s, i)))
            .collect();
        let picks = pick(&slices);
        assert_eq!(picks.len(), SERIES * SLICES_PER_SERIES);
        assert_eq!(
            picks[1],
            Pick {
                series: 0,
                slice: 1,
                entry: 2
            }
        );
        assert_eq!(
            picks[5],
            Pick {
                series: 0,
                slice: 5,
                entry: 10
            }
        );
        assert_eq!(
            picks[6],
            Pick {
                series: 1,
                slice: 0,
                entry: 11
            }
        );
        assert!(picks.iter().all(|p| p.series < SERIES));
        // The book's integer division: depth 4 → slices 0, 0, 1, 1, 2, 3.
        let short: Vec<(u32, i32)> = (0..4).map(|i| (0, i)).collect();
        let entries: Vec<u32> = pick(&short).iter().map(|p| p.entry).collect();
        assert_eq!(entries, [0, 0, 1, 1, 2, 3]);
    }

    #[test]
    fn colours_are_the_books() {
        // One row of four pixels on mid-grey CT (0.5): TP, FP, FN, TN.
        let ct = Tensor::from_slice(&[0.5f32; 4]).view([1, 1, 4]);
        let predicted = Tensor::from_slice(&[true, true, false, false]).view([1, 1, 4]);
        let label = Tensor::from_slice(&[true, false, true, false]).view([1, 1, 4]);
        let png = prediction_picture(&ct, &predicted, &label).unwrap();
        assert_eq!((png.width, png.height, png.channels), (4, 1, 3));
        let rgb = image::load_from_memory(&png.png)
            .unwrap()
            .to_rgb8()
            .into_raw();
        // (0.5 + r) / 2 etc., clipped, ×255: TP green, FP red, FN orange, TN grey.
        let px = |r: f32, g: f32, b: f32| {
            [r, g, b].map(|v| ((v * 0.5).clamp(0.0, 1.0) * 255.0).round() as u8)
        };
        let want: Vec<u8> = [
            px(0.5, 1.5, 0.5),
            px(1.5, 0.5, 0.5),
            px(1.5, 1.0, 0.5),
            px(0.5, 0.5, 0.5),
        ]
        .concat();
        assert_eq!(rgb, want);
    }
}
