//! The augmentation's warp and noise, fused for float batches on the CPU.
//!
//! `affine_grid` + `grid_sample` materialize a `[B,D,H,W,3]` grid and walk
//! it a second time; on a 2-core CPU that was most of a batch's augmentation
//! time. Here each output voxel's source coordinate is computed where it is
//! sampled (once per volume when the affine turns in-plane), slices in
//! parallel on libtorch's own threads ([`crate::torch_threads`]: not
//! rayon's), and each slice gets its noise while it is in cache
//! ([`Noise`]: the same distribution as libtorch's `randn_like`, other
//! draws).
//!
//! The arithmetic is libtorch's, operation for operation: `grid_coord` is
//! `affine_grid`'s `base @ theta^T` (a fused multiply-add chain in MKL's
//! sgemm), `corner` and `sample` are `grid_sampler_3d`'s bilinear border
//! path. Where the BLAS rounds that way the result is `super::warp`'s bit
//! for bit, elsewhere it is within float rounding.

use std::mem::MaybeUninit;

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Device, Kind, Tensor};

use crate::torch_threads::{for_each_index, Lent};

/// A voxel type the warp reads: the loader's int16 HU, or float.
pub(super) trait Voxel: Copy + Send + Sync + Into<f32> {
    const KIND: Kind;
}

impl Voxel for f32 {
    const KIND: Kind = Kind::Float;
}

impl Voxel for i16 {
    const KIND: Kind = Kind::Int16;
}

/// Whether `warp_with_noise` takes this batch: a 5-D float tensor on the
/// CPU, volumes under 2³² voxels and axes under 2²³ (see `floor_small`).
pub(super) fn supports(input: &Tensor) -> bool {
    let size = input.size();
    // Offsets within a volume are u32, the width the vectorized index math needs.
    let volume = size.iter().skip(2).product::<i64>();
    input.device() == Device::Cpu
        && matches!(input.kind(), Kind::Float | Kind::Int16)
        && size.len() == 5
        && volume < i64::from(u32::MAX)
        && size.iter().skip(2).all(|&s| s < 1 << 23)
}

/// `warp(input, theta)` plus `noise`, computed slice by slice in parallel.
pub(super) fn warp_with_noise(input: &Tensor, theta: &Tensor, noise: Option<Noise>) -> Tensor {
    let size = input.size();
    let grid = Grid::new(&size);
    let theta = Vec::<f32>::try_from(theta.to_kind(Kind::Float).flatten(0, -1))
        .expect("theta is a [B,3,4] CPU tensor");
    assert_eq!(
        theta.len(),
        grid.volumes / grid.channels * 12,
        "one 3×4 affine per sample"
    );
    let source = input.contiguous();
    let mut out = Tensor::empty(&size, (Kind::Float, Device::Cpu));
    let dst = uninit_elements_mut(&mut out);
    // Read as stored: int16 HU convert to f32 exactly, as `to_kind` would.
    if source.kind() == Kind::Int16 {
        warp_into(elements::<i16>(&source), &theta, &grid, dst, noise);
    } else {
        warp_into(elements::<f32>(&source), &theta, &grid, dst, noise);
    }
    out
}

/// `input` plus `noise`, without a warp.
pub(super) fn with_noise(input: &Tensor, noise: Noise) -> Tensor {
    // One pass: the conversion to float, the layout and the copy at once.
    let mut out = Tensor::empty(input.size(), (Kind::Float, Device::Cpu));
    out.copy_(input);
    // SAFETY: `copy_` set every element of the fresh tensor `out`.
    let values = unsafe { elements_mut(&mut out) };
    let slice = input.size().iter().rev().take(2).product::<i64>().max(1) as usize;
    let slices = Lent::new(values.chunks_mut(slice));
    for_each_index(slices.len(), |k| noise.add_to(k, &mut slices.take(k)));
    out
}

/// The augmentation's Gaussian noise on the CPU: σ, and the seed the
/// batch's streams start from, one stream per output slice so slices fill
/// in parallel and the values do not depend on the threads. libtorch's
/// `randn_like` fills serially from one generator (~6–9 ms of a
/// [32,1,32,48,48] batch on 2 cores, most of the augmentation once the
/// warp is fused); xoshiro256++ with the ziggurat draws the same N(0, σ²)
/// in a fraction of that, in the slice while it is in cache.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Noise {
    pub sigma: f32,
    pub seed: u64,
}

impl Noise {
    /// The batch's noise, its seed drawn from libtorch's generator after the
    /// affines, so the batch's seed decides both; none when σ is 0.
    pub(super) fn draw(sigma: f64) -> Option<Noise> {
        (sigma != 0.0).then(|| {
            let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu));
            Noise {
                sigma: sigma as f32,
                seed: seed.int64_value(&[0]) as u64,
            }
        })
    }

    /// Adds σ·N(0, 1) to each value of output slice `k` (the slice's own
    /// stream; `seed_from_u64` mixes the word with SplitMix64).
    fn add_to(&self, k: usize, slice: &mut [f32]) {
        let word = self.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(word);
        for v in slice {
            let n: f32 = rng.sample(StandardNormal);
            *v += n * self.sigma;
        }
    }
}

/// The batch's extents and `affine_grid`'s normalized output coordinates
/// per axis.
struct Grid {
    channels: usize,
    volumes: usize,
    dims: [usize; 3],
    x: Vec<f32>,
    y: Vec<f32>,
    z: Vec<f32>,
}

impl Grid {
    fn new(size: &[i64]) -> Grid {
        let &[n, c, d, h, w] = size else {
            panic!("the warp takes [B,C,D,H,W] batches, got {size:?}");
        };
        Grid {
            channels: c as usize,
            volumes: (n * c) as usize,
            dims: [d, h, w].map(|s| s as usize),
            x: normalized_coords(w),
            y: normalized_coords(h),
            z: normalized_coords(d),
        }
    }
}

/// `linspace_from_neg_one` of libtorch's AffineGridGenerator, computed by
/// the same libtorch calls so that the values are its values to the bit
/// (align_corners=false: ≈ (2i+1)/n - 1).
fn normalized_coords(n: i64) -> Vec<f32> {
    if n <= 1 {
        return vec![0.0; n.max(0) as usize];
    }
    let range = Tensor::linspace(-1.0, 1.0, n, (Kind::Float, Device::Cpu))
        .g_mul_scalar(n - 1)
        .g_div_scalar(n);
    Vec::<f32>::try_from(&range).expect("a float linspace")
}

/// Warps every `(sample, channel)` volume of `src` into `dst`, one output
/// slice per task (1024 for a `[32,1,32,48,48]` batch), split evenly
/// between libtorch's threads, each slice with its own noise stream.
fn warp_into<V: Voxel>(
    src: &[V],
    theta: &[f32],
    grid: &Grid,
    dst: &mut [MaybeUninit<f32>],
    noise: Option<Noise>,
) {
    let [d, h, w] = grid.dims;
    let (slice, volume) = (h * w, d * h * w);
    if slice == 0 || d == 0 {
        return;
    }
    let affine =
        |v: usize| -> &[f32; 12] { theta[v / grid.channels * 12..][..12].try_into().unwrap() };
    let in_plane = Lent::new((0..grid.volumes).map(|_| None));
    for_each_index(grid.volumes, |v| {
        *in_plane.take(v) = turns_in_plane(affine(v)).then(|| InPlane::new(affine(v), grid));
    });
    let in_plane: Vec<Option<InPlane>> = in_plane.into_vec();
    let slices = Lent::new(dst.chunks_mut(slice));
    for_each_index(slices.len(), |k| {
        let out: &mut [MaybeUninit<f32>] = &mut slices.take(k);
        let (v, z) = (k / d, k % d);
        let vol = &src[v * volume..][..volume];
        match &in_plane[v] {
            Some(tables) => tables.interpolate(vol, z, out),
            None => warp_slice(vol, affine(v), grid, z, out),
        }
        if let Some(noise) = &noise {
            // SAFETY: the slice functions above wrote every element of `out`,
            // and `MaybeUninit<f32>` has f32's layout.
            let out = unsafe { &mut *(std::ptr::from_mut(out) as *mut [f32]) };
            noise.add_to(k, out);
        }
    });
}

/// Whether θ turns only within slices: the x and y rows take nothing of z
/// and the z row nothing of x or y, as every affine the book draws (flip,
/// offset and scale per axis, one rotation about z). Then every slice reads
/// the same in-plane corners with the same weights and only its z corner
/// moves, so the in-plane arithmetic runs once per volume, not per slice.
/// (A zero term adds an exact zero to `affine_grid`'s sum: the values are
/// those of the per-voxel path.)
fn turns_in_plane(t: &[f32; 12]) -> bool {
    t[2] == 0.0 && t[6] == 0.0 && t[8] == 0.0 && t[9] == 0.0
}

/// One volume's corners and weights when θ turns in-plane: per (row,
/// column) of a slice the in-plane near corner, the steps to the far ones
/// and the four in-plane weight products; per slice its z corner.
struct InPlane {
    offset: Vec<u32>,
    step: Vec<[u32; 2]>,
    xy: Vec<[f32; 4]>,
    depth: Vec<Depth>,
}

/// A slice's z corner: its offset, the step to the far one, both weights.
struct Depth {
    offset: u32,
    step: u32,
    near: f32,
    far: f32,
}

impl InPlane {
    fn new(t: &[f32; 12], grid: &Grid) -> InPlane {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { in_plane_avx2(t, grid) };
        }
        InPlane::locate::<false>(t, grid)
    }

    /// [`Run::locate`]'s arithmetic, on the first slice for the in-plane
    /// axes and on one voxel of each slice for z.
    #[inline(always)]
    fn locate<const FMA: bool>(t: &[f32; 12], grid: &Grid) -> InPlane {
        let plane = grid.dims[1] * grid.dims[2];
        let mut tables = InPlane {
            offset: Vec::with_capacity(plane),
            step: Vec::with_capacity(plane),
            xy: Vec::with_capacity(plane),
            depth: Vec::with_capacity(grid.dims[0]),
        };
        let mut run = Run::default();
        let bz = grid.z.first().copied().unwrap_or(0.0);
        for &by in &grid.y {
            for bx in grid.x.chunks(RUN) {
                run.locate::<FMA>(bx, t, [by, bz], grid.dims);
                let [x, y, _] = &run.axes;
                for k in 0..run.len {
                    tables.offset.push(x.offset[k] + y.offset[k]);
                    tables.step.push([x.step[k], y.step[k]]);
                    tables.xy.push([
                        x.near[k] * y.near[k],
                        x.far[k] * y.near[k],
                        x.near[k] * y.far[k],
                        x.far[k] * y.far[k],
                    ]);
                }
            }
        }
        let (bx, by) = (&grid.x[..grid.x.len().min(1)], grid.y.first().copied());
        for &bz in &grid.z {
            run.locate::<FMA>(bx, t, [by.unwrap_or(0.0), bz], grid.dims);
            let z = &run.axes[2];
            tables.depth.push(Depth {
                offset: z.offset[0],
                step: z.step[0],
                near: z.near[0],
                far: z.far[0],
            });
        }
        tables
    }

    /// Output slice `z`: [`Run::interpolate`]'s weights and sum, from the
    /// tables.
    fn interpolate<V: Voxel>(&self, vol: &[V], z: usize, out: &mut [MaybeUninit<f32>]) {
        let depth = &self.depth[z];
        let (dz, zn, zf) = (depth.step as usize, depth.near, depth.far);
        let corners = self.offset.iter().zip(&self.step).zip(&self.xy);
        for (o, ((&offset, &[dx, dy]), xy)) in out.iter_mut().zip(corners) {
            let near = &vol[(offset + depth.offset) as usize..];
            let (dx, dy) = (dx as usize, dy as usize);
            let far = &near[dz..];
            let mut v = near[0].into() * (xy[0] * zn);
            v += near[dx].into() * (xy[1] * zn);
            v += near[dy].into() * (xy[2] * zn);
            v += near[dy + dx].into() * (xy[3] * zn);
            v += far[0].into() * (xy[0] * zf);
            v += far[dx].into() * (xy[1] * zf);
            v += far[dy].into() * (xy[2] * zf);
            v += far[dy + dx].into() * (xy[3] * zf);
            o.write(v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn in_plane_avx2(t: &[f32; 12], grid: &Grid) -> InPlane {
    InPlane::locate::<true>(t, grid)
}

/// Voxels of a row handled together: their coordinate and weight
/// arithmetic runs over arrays this long, which the compiler vectorizes
/// (per voxel it was twice the time of the eight loads left scalar).
const RUN: usize = 64;

/// One output slice `z` of one volume, compiled for AVX2 and FMA where the
/// CPU has them: twice the lanes for the coordinate arithmetic, which is
/// most of the time (the build targets baseline x86-64, SSE2), and
/// `affine_grid`'s fused multiply-adds as single instructions.
fn warp_slice<V: Voxel>(
    vol: &[V],
    t: &[f32; 12],
    grid: &Grid,
    z: usize,
    out: &mut [MaybeUninit<f32>],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { warp_slice_avx2(vol, t, grid, z, out) };
    }
    warp_slice_body::<V, false>(vol, t, grid, z, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn warp_slice_avx2<V: Voxel>(
    vol: &[V],
    t: &[f32; 12],
    grid: &Grid,
    z: usize,
    out: &mut [MaybeUninit<f32>],
) {
    warp_slice_body::<V, true>(vol, t, grid, z, out);
}

/// `FMA`: `f32::mul_add` is an instruction here (else a libm call).
#[inline(always)]
fn warp_slice_body<V: Voxel, const FMA: bool>(
    vol: &[V],
    t: &[f32; 12],
    grid: &Grid,
    z: usize,
    out: &mut [MaybeUninit<f32>],
) {
    let mut run = Run::default();
    for (row, &by) in out.chunks_exact_mut(grid.dims[2]).zip(&grid.y) {
        for (bx, out) in grid.x.chunks(RUN).zip(row.chunks_mut(RUN)) {
            run.locate::<FMA>(bx, t, [by, grid.z[z]], grid.dims);
            run.interpolate(vol, out);
        }
    }
}

/// Where up to `RUN` output voxels of a row read: per axis each voxel's
/// near corner (as a flat offset), the step to its far corner, and the two
/// corners' weights; then the eight trilinear weights.
struct Run {
    len: usize,
    axes: [Axis; 3],
    weight: [[f32; RUN]; 8],
}

#[derive(Clone, Copy)]
struct Axis {
    offset: [u32; RUN],
    step: [u32; RUN],
    near: [f32; RUN],
    far: [f32; RUN],
}

impl Default for Run {
    fn default() -> Self {
        let axis = Axis {
            offset: [0; RUN],
            step: [0; RUN],
            near: [0.0; RUN],
            far: [0.0; RUN],
        };
        Run {
            len: 0,
            axes: [axis; 3],
            weight: [[0.0; RUN]; 8],
        }
    }
}

impl Run {
    /// For the voxels at normalized x `bx` of the row at normalized y and z
    /// `yz`. Straight loops over arrays, without branches, so that they
    /// vectorize.
    #[inline(always)]
    fn locate<const FMA: bool>(
        &mut self,
        bx: &[f32],
        t: &[f32; 12],
        yz: [f32; 2],
        [d, h, w]: [usize; 3],
    ) {
        self.len = bx.len().min(RUN);
        let bx = &bx[..self.len];
        let sizes = [(w, 1), (h, w), (d, h * w)];
        for (i, (axis, (size, stride))) in self.axes.iter_mut().zip(sizes).enumerate() {
            let theta = t[4 * i..][..4].try_into().unwrap();
            axis.locate::<FMA>(bx, theta, yz, size, stride as u32);
        }
        let [x, y, z] = &self.axes;
        for k in 0..self.len {
            // libtorch's corner weights, `(wx * wy) * wz`, x fastest.
            let xy = [
                x.near[k] * y.near[k],
                x.far[k] * y.near[k],
                x.near[k] * y.far[k],
                x.far[k] * y.far[k],
            ];
            for (j, xy) in xy.into_iter().enumerate() {
                self.weight[j][k] = xy * z.near[k];
                self.weight[4 + j][k] = xy * z.far[k];
            }
        }
    }

    /// The located voxels' values: libtorch's sum over the eight corners,
    /// in its order, each step rounded to f32.
    #[inline(always)]
    fn interpolate<V: Voxel>(&self, vol: &[V], out: &mut [MaybeUninit<f32>]) {
        let [x, y, z] = &self.axes;
        for (k, o) in out[..self.len].iter_mut().enumerate() {
            let near = &vol[(x.offset[k] + y.offset[k] + z.offset[k]) as usize..];
            let [dx, dy, dz] = [x.step[k], y.step[k], z.step[k]].map(|s| s as usize);
            let far = &near[dz..];
            let w = |j: usize| self.weight[j][k];
            let mut v = near[0].into() * w(0);
            v += near[dx].into() * w(1);
            v += near[dy].into() * w(2);
            v += near[dy + dx].into() * w(3);
            v += far[0].into() * w(4);
            v += far[dx].into() * w(5);
            v += far[dy].into() * w(6);
            v += far[dy + dx].into() * w(7);
            o.write(v);
        }
    }
}

impl Axis {
    /// grid_sampler's source index on one axis: the grid coordinate
    /// (`theta` is the axis' row of θ), unnormalized with
    /// align_corners=false and clipped to the border as libtorch clips it
    /// (NaN goes to the far edge).
    #[inline(always)]
    fn locate<const FMA: bool>(
        &mut self,
        bx: &[f32],
        theta: &[f32; 4],
        [by, bz]: [f32; 2],
        size: usize,
        stride: u32,
    ) {
        let s = size as f32;
        let [t0, t1, t2, t3] = *theta;
        let (cy, cz) = (f64::from(by) * f64::from(t1), f64::from(bz) * f64::from(t2));
        let corners = self.offset.iter_mut().zip(&mut self.step);
        let weights = self.near.iter_mut().zip(&mut self.far);
        for ((&bx, (offset, step)), (near, far)) in bx.iter().zip(corners).zip(weights) {
            let coord = if FMA {
                bz.mul_add(t2, by.mul_add(t1, bx * t0)) + t3
            } else {
                grid_coord(bx * t0, cy, cz, t3)
            };
            let i = ((coord + 1.0) * s - 1.0) / 2.0;
            let i = if i < 0.0 { 0.0 } else { i };
            let i = if i < s - 1.0 { i } else { s - 1.0 };
            let i0 = floor_small(i);
            (*near, *far) = ((i0 + 1.0) - i, i - i0);
            *offset = small_to_u32(i0) * stride;
            // libtorch skips a far corner past the edge; its weight is 0
            // there, so reading the edge voxel instead adds the same 0.
            *step = if i0 < s - 1.0 { stride } else { 0 };
        }
    }
}

/// 2²³: from here up, f32s are the integers.
const TWO_23: f32 = 8_388_608.0;

/// `x.floor()` for `0 <= x < 2²³`, in f32 arithmetic that vectorizes
/// (`floor` is a libm call before SSE4.1, and `as i32` saturates lane by
/// lane): adding 2²³ rounds to the nearest integer, one less when that
/// rounded up.
#[inline(always)]
fn floor_small(x: f32) -> f32 {
    let nearest = (x + TWO_23) - TWO_23;
    if nearest > x {
        nearest - 1.0
    } else {
        nearest
    }
}

/// An integral `0 <= x < 2²³` as an integer: the low mantissa bits of
/// `x + 2²³`.
#[inline(always)]
fn small_to_u32(x: f32) -> u32 {
    (x + TWO_23).to_bits() - TWO_23.to_bits()
}

/// One coordinate of `affine_grid` without an FMA instruction: MKL's sgemm
/// sums the four products (x, y, z, 1) in order with fused multiply-adds.
/// `by·t1` and `bz·t2` are exact in f64, so an f64 add rounded to f32 is
/// that fused multiply-add (`f32::mul_add` would be a libm call).
#[inline(always)]
fn grid_coord(px: f32, cy: f64, cz: f64, t3: f32) -> f32 {
    let xy = (f64::from(px) + cy) as f32;
    (f64::from(xy) + cz) as f32 + t3
}

/// The data pointer and length of a contiguous CPU tensor of `V`s.
fn raw_parts<V: Voxel>(t: &Tensor) -> (*mut V, usize) {
    assert!(t.device() == Device::Cpu && t.kind() == V::KIND && t.is_contiguous());
    let n = t.numel();
    let ptr = if n == 0 {
        std::ptr::NonNull::dangling().as_ptr()
    } else {
        t.data_ptr().cast::<V>()
    };
    (ptr, n)
}

/// A contiguous CPU tensor's elements, borrowed for reading.
fn elements<V: Voxel>(t: &Tensor) -> &[V] {
    let (ptr, n) = raw_parts::<V>(t);
    // SAFETY: `raw_parts` checked a contiguous CPU tensor of `V`: `n`
    // aligned values (or a dangling pointer for none) in storage that `t`
    // keeps alive for the borrow. The tensors passed here are this module's
    // own or the caller's input, which nothing writes during the call.
    unsafe { std::slice::from_raw_parts(ptr, n) }
}

/// A fresh tensor's elements, not yet initialized, borrowed for writing.
fn uninit_elements_mut(t: &mut Tensor) -> &mut [MaybeUninit<f32>] {
    let (ptr, n) = raw_parts::<f32>(t);
    // SAFETY: as in `elements`; any bytes are a valid `MaybeUninit`, and the
    // tensors passed here are fresh from `Tensor::empty`, so no other handle
    // reads or writes their storage while this borrow of `t` lives.
    unsafe { std::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<f32>>(), n) }
}

/// A tensor's elements borrowed for writing, once they are initialized.
///
/// # Safety
/// Every element of `t` must have been written, and `t` must share its
/// storage with no other tensor.
unsafe fn elements_mut(t: &mut Tensor) -> &mut [f32] {
    let (ptr, n) = raw_parts::<f32>(t);
    // SAFETY: as in `uninit_elements_mut`, and the caller guarantees the
    // elements are initialized f32s.
    unsafe { std::slice::from_raw_parts_mut(ptr, n) }
}

#[cfg(test)]
mod tests {
    use super::super::tests::generator;
    use super::super::{warp, AugmentConfig};
    use super::*;

    /// Uniform in ±1000 HU: voxel to voxel jumps as large as CT's, so a
    /// coordinate off by an ulp would show.
    fn hu_volume(size: &[i64]) -> Tensor {
        Tensor::rand(size, (Kind::Float, Device::Cpu)) * 2000.0 - 1000.0
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    fn assert_fused_equals_grid_sample(size: &[i64], theta: &Tensor) {
        let x = hu_volume(size);
        let expected = warp(&x, theta);
        let got = warp_with_noise(&x, theta, None);
        assert_eq!(got.size(), expected.size());
        let diff = max_abs_diff(&got, &expected);
        assert!(diff <= 1e-3, "{size:?}: max |fused - grid_sample| = {diff}");
    }

    #[test]
    fn fused_warp_equals_grid_sample_for_book_affines() {
        let _generator = generator();
        let cfg = AugmentConfig::book();
        tch::manual_seed(21);
        for size in [
            [3, 1, 5, 7, 9],
            [2, 2, 4, 6, 8],
            [2, 1, 1, 3, 1],
            [5, 1, 6, 5, 4],
        ] {
            for _ in 0..20 {
                assert_fused_equals_grid_sample(&size, &cfg.random_affines(size[0] as usize));
            }
        }
        for _ in 0..3 {
            assert_fused_equals_grid_sample(&[4, 1, 32, 48, 48], &cfg.random_affines(4));
        }
    }

    #[test]
    fn fused_warp_clamps_far_outside_affines_to_the_border() {
        let _generator = generator();
        // Entries in ±2: shifts past the volume, scales and shears to 2x.
        tch::manual_seed(22);
        for _ in 0..20 {
            let theta = Tensor::rand([3, 3, 4], (Kind::Float, Device::Cpu)) * 4.0 - 2.0;
            assert_fused_equals_grid_sample(&[3, 1, 5, 7, 9], &theta);
        }
    }

    #[test]
    fn identity_affine_reproduces_the_input() {
        let _generator = generator();
        let x = hu_volume(&[2, 1, 5, 7, 9]);
        let identity: Vec<f32> = vec![1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.];
        let theta = Tensor::from_slice(&identity)
            .view([1, 3, 4])
            .repeat([2, 1, 1]);
        let y = warp_with_noise(&x, &theta, None);
        assert!(max_abs_diff(&x, &y) <= 1e-3, "{}", max_abs_diff(&x, &y));
    }

    #[test]
    fn the_portable_path_equals_the_dispatched_one() {
        let _generator = generator();
        tch::manual_seed(23);
        let (d, slice) = (6, 9 * 11);
        let x = hu_volume(&[2, 1, d, 9, 11]);
        let grid = Grid::new(&x.size());
        let theta = AugmentConfig::book().random_affines(2);
        let expected = warp_with_noise(&x, &theta, None).view([-1, slice]);
        let theta = Vec::<f32>::try_from(theta.flatten(0, -1)).unwrap();
        let src = elements::<f32>(&x);
        for k in 0..2 * d as usize {
            let (v, z) = (k / d as usize, k % d as usize);
            let mut got = Tensor::zeros([slice], (Kind::Float, Device::Cpu));
            let t = theta[v * 12..][..12].try_into().unwrap();
            let vol = &src[v * d as usize * slice as usize..][..d as usize * slice as usize];
            warp_slice_body::<f32, false>(vol, t, &grid, z, uninit_elements_mut(&mut got));
            assert!(got.equal(&expected.get(k as i64)), "slice {k}");
        }
    }

    #[test]
    fn apply_on_the_cpu_warps_with_the_grid_paths_affines() {
        let _generator = generator();
        let cfg = AugmentConfig {
            noise: 0.0,
            ..AugmentConfig::book()
        };
        let x = hu_volume(&[4, 1, 32, 48, 48]);
        // And a strided batch.
        let strided = hu_volume(&[3, 1, 5, 9, 9]).transpose(3, 4);
        for (x, seed) in [(x, 31), (strided, 32)] {
            assert!(supports(&x));
            // Other modules' tests draw from the process-wide generator
            // without this module's lock, and one drawing between the seed
            // and the draws here changes them: a few tries tell that from a
            // real difference, which every try shows.
            let matched = (0..5).any(|_| {
                let expected = warp(&x, &old_affines(&cfg, &x, seed));
                tch::manual_seed(seed);
                max_abs_diff(&cfg.apply(&x), &expected) <= 1e-3
            });
            assert!(matched, "apply differs from the grid path in 5 tries");
        }
    }

    /// Mean, standard deviation, and the shares within 1σ and 2σ.
    fn moments(values: &Tensor, sigma: f64) -> [f64; 4] {
        let v = values.to_kind(Kind::Double);
        let within = |k: f64| {
            v.abs()
                .le(k * sigma)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        };
        let mean = v.mean(Kind::Double).double_value(&[]);
        let sd = v.std(true).double_value(&[]);
        [mean, sd, within(1.0), within(2.0)]
    }

    #[test]
    fn the_cpu_noise_is_normal_with_sigma_independent_and_seeded() {
        let zeros = Tensor::zeros([8, 1, 16, 24, 24], (Kind::Float, Device::Cpu));
        let noise = Noise {
            sigma: 25.0,
            seed: 7,
        };
        let n = with_noise(&zeros, noise);
        let [mean, sd, one, two] = moments(&n, 25.0);
        let count = zeros.numel() as f64;
        assert!(mean.abs() < 4.0 * 25.0 / count.sqrt(), "mean {mean}");
        assert!((sd / 25.0 - 1.0).abs() < 0.01, "sd {sd}");
        assert!((one - 0.6827).abs() < 0.005, "within 1σ: {one}");
        assert!((two - 0.9545).abs() < 0.003, "within 2σ: {two}");
        // Neighbours along a row, across slices and across samples are
        // uncorrelated (each slice has its own stream).
        let corr = |a: Tensor, b: Tensor| {
            let (a, b) = (a.flatten(0, -1), b.flatten(0, -1));
            Tensor::stack(&[a, b], 0)
                .to_kind(Kind::Double)
                .corrcoef()
                .double_value(&[0, 1])
        };
        let pairs = [
            (n.narrow(4, 0, 23), n.narrow(4, 1, 23)),
            (n.narrow(2, 0, 15), n.narrow(2, 1, 15)),
            (n.narrow(0, 0, 7), n.narrow(0, 1, 7)),
        ];
        for (axis, (a, b)) in pairs.into_iter().enumerate() {
            let r = corr(a, b);
            assert!(r.abs() < 0.02, "axis {axis}: correlation {r}");
        }
        // One seed, one field; another seed, another.
        assert_eq!(max_abs_diff(&with_noise(&zeros, noise), &n), 0.0);
        let other = with_noise(&zeros, Noise { seed: 8, ..noise });
        assert!(max_abs_diff(&other, &n) > 10.0);
    }

    #[test]
    fn the_warp_gets_exactly_the_noise_field_of_its_seed() {
        let _generator = generator();
        tch::manual_seed(33);
        let x = hu_volume(&[3, 1, 6, 10, 12]);
        let theta = AugmentConfig::book().random_affines(3);
        let noise = Noise {
            sigma: 25.0,
            seed: 99,
        };
        let noisy = warp_with_noise(&x, &theta, Some(noise));
        let clean = warp_with_noise(&x, &theta, None);
        let field = with_noise(&Tensor::zeros_like(&x), noise);
        assert!(max_abs_diff(&(noisy - clean), &field) < 1e-3);
    }

    #[test]
    fn the_in_plane_tables_give_the_per_voxel_path_bit_for_bit() {
        let _generator = generator();
        tch::manual_seed(23);
        let size = [6, 1, 7, 10, 9];
        let x = hu_volume(&size);
        let src = elements::<f32>(&x);
        let grid = Grid::new(&size);
        let theta =
            Vec::<f32>::try_from(AugmentConfig::book().random_affines(6).flatten(0, -1)).unwrap();
        let volume = 7 * 10 * 9;
        for (v, t) in theta.chunks_exact(12).enumerate() {
            let t: &[f32; 12] = t.try_into().unwrap();
            assert!(turns_in_plane(t), "the book's affines turn in-plane: {t:?}");
            let tables = InPlane::new(t, &grid);
            let vol = &src[v * volume..][..volume];
            for z in 0..7 {
                let mut a = vec![MaybeUninit::new(0.0f32); 90];
                let mut b = vec![MaybeUninit::new(0.0f32); 90];
                tables.interpolate(vol, z, &mut a);
                warp_slice(vol, t, &grid, z, &mut b);
                // SAFETY: both were initialized above.
                let bits = |s: &[MaybeUninit<f32>]| -> Vec<u32> {
                    s.iter()
                        .map(|v| unsafe { v.assume_init() }.to_bits())
                        .collect()
                };
                assert_eq!(bits(&a), bits(&b), "volume {v}, slice {z}");
            }
        }
    }

    fn old_affines(cfg: &AugmentConfig, x: &Tensor, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        cfg.random_affines(x.size()[0] as usize)
    }

    fn millis(runs: u32, mut f: impl FnMut() -> Tensor) -> f64 {
        let _ = f();
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let _ = f();
        }
        start.elapsed().as_secs_f64() * 1e3 / f64::from(runs)
    }

    #[test]
    #[ignore = "a timing"]
    fn time_normals() {
        let mut v = vec![0.0f32; 2_359_296];
        let noise = Noise {
            sigma: 25.0,
            seed: 3,
        };
        for _ in 0..3 {
            let t = std::time::Instant::now();
            for (k, s) in v.chunks_mut(2304).enumerate() {
                noise.add_to(k, s);
            }
            println!("normals 1 thread: {:?}", t.elapsed());
        }
    }

    /// By hand: `cargo test --release -p train --lib warp_cpu -- --ignored --nocapture`.
    #[test]
    #[ignore = "a timing, not a check"]
    fn time_fused_against_grid_sample() {
        let _generator = generator();
        tch::set_num_threads(2);
        // As `train` runs: freed buffers stay in the heap, no page faults per batch.
        if std::env::var_os("WARP_BENCH_MMAP").is_none() {
            crate::host_memory::keep_freed_memory();
        }
        let cfg = AugmentConfig::book();
        let x = hu_volume(&[32, 1, 32, 48, 48]);
        let theta = cfg.random_affines(32);
        let grid = Tensor::affine_grid_generator(&theta, x.size(), false);
        let noise = x.randn_like();
        let warped = warp(&x, &theta);
        let runs = 30;
        let threads = tch::get_num_threads();
        tch::set_num_threads(1);
        let single = millis(runs, || warp_with_noise(&x, &theta, None));
        tch::set_num_threads(threads);
        println!("new warp 1 thread: {single:6.2} ms");
        let parts = [
            (
                "old affine_grid",
                millis(runs, || {
                    Tensor::affine_grid_generator(&theta, x.size(), false)
                }),
            ),
            (
                "old grid_sample",
                millis(runs, || x.grid_sampler(&grid, 0, 1, false)),
            ),
            ("old randn_like", millis(runs, || x.randn_like())),
            ("old mul+add", millis(runs, || &warped + &noise * cfg.noise)),
            (
                "old apply",
                millis(runs, || {
                    let theta = cfg.random_affines(32);
                    warp(&x, &theta) + x.randn_like() * cfg.noise
                }),
            ),
            (
                "new noise",
                millis(runs, || {
                    with_noise(
                        &x,
                        Noise {
                            sigma: 25.0,
                            seed: 1,
                        },
                    )
                }),
            ),
            (
                "new warp only",
                millis(runs, || warp_with_noise(&x, &theta, None)),
            ),
            (
                "new warp+noise",
                millis(runs, || warp_with_noise(&x, &theta, Noise::draw(cfg.noise))),
            ),
            ("new apply", millis(runs, || cfg.apply(&x))),
        ];
        for (name, ms) in parts {
            println!("{name:>16}: {ms:6.2} ms");
        }
    }
}
