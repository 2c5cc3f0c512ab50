//! `--tb-activations`: what each block makes of a few fixed validation
//! samples, as grey images. Each image is one tensor's mid-depth slice:
//! one row per sample, one tile per channel.

use shared::cache::{CacheError, CacheReader};
use tch::{Device, Kind, TchError, Tensor};

use super::tensorboard::Png;

/// Samples drawn per class: the first positives and negatives of the
/// validation list, so every epoch shows the same ones.
pub const SAMPLES_PER_CLASS: usize = 3;
/// Tiles smaller than this (in pixels, the shorter side) are enlarged by a
/// whole factor, so the last block's 3×3 maps stay visible next to 48×48 inputs.
const MIN_TILE_SIDE: usize = 24;
/// Mid-grey lines between tiles, told apart from a tile's black and white.
const GAP: usize = 1;
const GAP_VALUE: u8 = 128;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("computing activation images: {0}")]
    Torch(#[from] TchError),
    #[error("activation {tag}: expected a [samples, channels, depth, height, width] tensor, got {shape:?}")]
    Shape { tag: String, shape: Vec<i64> },
    #[error("encoding the {tag} PNG: {reason}")]
    Png { tag: String, reason: String },
}

/// The fixed samples whose activations every epoch draws.
pub struct ActivationProbe {
    /// Cache indices: positives first.
    pub indices: Vec<u32>,
    /// Float HU `[n,1,D,H,W]` on the training device, as the model takes them.
    pub images: Tensor,
}

impl ActivationProbe {
    /// The first [`SAMPLES_PER_CLASS`] positives and negatives of `val`
    /// (fewer when it holds fewer; `is_positive` says which is which),
    /// read from `reader` onto `device`; `None` when `val` is empty.
    pub fn load(
        reader: &CacheReader,
        val: &[u32],
        is_positive: impl Fn(u32) -> bool,
        device: Device,
    ) -> Result<Option<Self>, ActivationError> {
        let indices = pick(val, is_positive);
        if indices.is_empty() {
            return Ok(None);
        }
        let [d, h, w] = reader.manifest().crop_shape;
        let voxels = d * h * w;
        let mut host = vec![0i16; voxels * indices.len()];
        let mut decoder = reader.decoder();
        for (&i, out) in indices.iter().zip(host.chunks_exact_mut(voxels)) {
            reader.read_chunk(&mut decoder, i as usize, out)?;
        }
        let shape = [indices.len() as i64, 1, d as i64, h as i64, w as i64];
        let images = Tensor::f_from_slice(&host)?
            .f_view(shape)?
            .f_to_device(device)?
            .f_to_kind(Kind::Float)?;
        Ok(Some(ActivationProbe { indices, images }))
    }

    /// `activations/input` (the HU crops) and `activations/block<k>` for
    /// each of `blocks`, the block outputs for [`ActivationProbe::images`].
    pub fn images(&self, blocks: &[Tensor]) -> Result<Vec<(String, Png)>, ActivationError> {
        let input = ("activations/input".to_owned(), &self.images);
        let blocks = blocks
            .iter()
            .enumerate()
            .map(|(k, t)| (format!("activations/block{}", k + 1), t));
        std::iter::once(input)
            .chain(blocks)
            .map(|(tag, t)| {
                let png = mid_slice_grid(&tag, t)?;
                Ok((tag, png))
            })
            .collect()
    }
}

/// Positives first, then negatives, each in `val`'s order.
fn pick(val: &[u32], is_nodule: impl Fn(u32) -> bool) -> Vec<u32> {
    let first = |positive: bool| {
        val.iter()
            .copied()
            .filter(|&i| is_nodule(i) == positive)
            .take(SAMPLES_PER_CLASS)
            .collect::<Vec<_>>()
    };
    let mut picked = first(true);
    picked.extend(first(false));
    picked
}

/// The mid-depth slice of `t` `[n,C,D,H,W]`, each (sample, channel) tile
/// stretched to 0–255 on its own range (channels differ in scale by orders
/// of magnitude; a constant tile is black), tiled as n rows of C tiles.
fn mid_slice_grid(tag: &str, t: &Tensor) -> Result<Png, ActivationError> {
    let shape = t.size();
    let &[n, c, d, h, w] = shape.as_slice() else {
        return Err(ActivationError::Shape {
            tag: tag.to_owned(),
            shape,
        });
    };
    if [n, c, d, h, w].contains(&0) {
        return Err(ActivationError::Shape {
            tag: tag.to_owned(),
            shape,
        });
    }
    let tiles = tch::no_grad(|| -> Result<Vec<u8>, TchError> {
        let mid = t.f_select(2, d / 2)?.f_to_kind(Kind::Float)?;
        let mid = mid.f_nan_to_num(0.0, None, None)?;
        let lo = mid.f_amin([2, 3], true)?;
        let range = (mid.f_amax([2, 3], true)? - &lo).f_clamp_min(f64::from(f32::MIN_POSITIVE))?;
        let pixels = ((mid - lo) / range * 255.0)
            .f_round()?
            .f_clamp(0.0, 255.0)?
            .f_to_kind(Kind::Uint8)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?;
        Vec::<u8>::try_from(pixels.f_flatten(0, -1)?)
    })?;
    let (n, c, h, w) = (n as usize, c as usize, h as usize, w as usize);
    let grid = tile(&tiles, [n, c, h, w]);
    Png::grey(grid.width as u32, grid.height as u32, &grid.pixels).map_err(|reason| {
        ActivationError::Png {
            tag: tag.to_owned(),
            reason,
        }
    })
}

struct GreyGrid {
    height: usize,
    width: usize,
    pixels: Vec<u8>,
}

/// Lays out `tiles` (`[n, c, h, w]` row-major) as n rows of c tiles, each
/// enlarged by the whole factor that brings its shorter side to
/// [`MIN_TILE_SIDE`], with [`GAP`] lines between them.
fn tile(tiles: &[u8], [n, c, h, w]: [usize; 4]) -> GreyGrid {
    let zoom = (MIN_TILE_SIDE / h.min(w)).max(1);
    let (tile_h, tile_w) = (h * zoom, w * zoom);
    let height = n * tile_h + (n - 1) * GAP;
    let width = c * tile_w + (c - 1) * GAP;
    let mut pixels = vec![GAP_VALUE; height * width];
    for sample in 0..n {
        for channel in 0..c {
            let src = &tiles[(sample * c + channel) * h * w..][..h * w];
            let (top, left) = (sample * (tile_h + GAP), channel * (tile_w + GAP));
            for y in 0..tile_h {
                let row = &mut pixels[(top + y) * width + left..][..tile_w];
                for (x, px) in row.iter_mut().enumerate() {
                    *px = src[(y / zoom) * w + x / zoom];
                }
            }
        }
    }
    GreyGrid {
        height,
        width,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_positives_then_the_first_negatives() {
        let val = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
        let positive = |i: u32| i % 4 == 1; // 13, 17
        assert_eq!(pick(&val, positive), vec![13, 17, 10, 11, 12]);
        assert_eq!(pick(&[], positive), Vec::<u32>::new());
    }

    #[test]
    fn tiles_are_stretched_per_channel_enlarged_and_separated() {
        // Two samples, two channels, 2×3 maps; of depth 3 the middle is index 1.
        let t = Tensor::zeros([2, 2, 3, 2, 3], (Kind::Float, Device::Cpu));
        let ramp = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).view([2, 3]);
        t.get(0).get(0).get(1).copy_(&(&ramp * 1000.0));
        t.get(1).get(1).get(1).copy_(&(&ramp - 7.0));
        // The other slices must not show: a huge value off the middle.
        let _ = t.get(0).get(0).get(0).fill_(1e6);
        let image = mid_slice_grid("t", &t).unwrap();
        let zoom = MIN_TILE_SIDE / 2;
        let (tile_h, tile_w) = (2 * zoom, 3 * zoom);
        assert_eq!(image.width as usize, 2 * tile_w + GAP);
        assert_eq!(image.height as usize, 2 * tile_h + GAP);
        let grid = tile_pixels(&image);
        let at = |y: usize, x: usize| grid[y * image.width as usize + x];
        // Sample 0, channel 0: the ramp from 0 to 255, row-major.
        assert_eq!(at(0, 0), 0);
        assert_eq!(at(0, zoom), 51);
        assert_eq!(at(tile_h - 1, tile_w - 1), 255);
        // A constant tile is black; the gap is mid-grey.
        assert_eq!(at(0, tile_w + GAP), 0);
        assert_eq!(at(0, tile_w), GAP_VALUE);
        assert_eq!(at(tile_h, 0), GAP_VALUE);
        // Sample 1, channel 1: the shifted ramp, stretched on its own range.
        let (top, left) = (tile_h + GAP, tile_w + GAP);
        assert_eq!(at(top, left), 0);
        assert_eq!(at(top + zoom, left + 2 * zoom), 255);
        assert!(mid_slice_grid("flat", &t.view([4, 3, 2, 3])).is_err());
    }

    fn tile_pixels(image: &Png) -> Vec<u8> {
        let decoded = image::load_from_memory(&image.png).unwrap().to_luma8();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (image.width, image.height)
        );
        decoded.into_raw()
    }
}
