//! The augmentation's warp and noise, fused for float batches on the CPU.
//!
//! `affine_grid` + `grid_sample` materialize a `[B,D,H,W,3]` grid and walk
//! it a second time; on a 2-core CPU that was most of a batch's augmentation
//! time. Here each output voxel's source coordinate is computed where it is
//! sampled, slices in parallel with rayon, while libtorch draws the noise
//! beside them (its normal fill is serial, so it would otherwise add its
//! whole time).
//!
//! The arithmetic is libtorch's, operation for operation: `grid_coord` is
//! `affine_grid`'s `base @ theta^T` (a fused multiply-add chain in MKL's
//! sgemm), `corner` and `sample` are `grid_sampler_3d`'s bilinear border
//! path. Where the BLAS rounds that way the result is `super::warp`'s bit
//! for bit, elsewhere it is within float rounding.

use std::mem::MaybeUninit;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Whether `warp_with_noise` takes this batch: a 5-D float tensor on the
/// CPU, volumes under 2³² voxels and axes under 2²³ (see `floor_small`).
pub(super) fn supports(input: &Tensor) -> bool {
    let size = input.size();
    // Offsets within a volume are u32, the width the vectorized index math needs.
    let volume = size.iter().skip(2).product::<i64>();
    input.device() == Device::Cpu
        && input.kind() == Kind::Float
        && size.len() == 5
        && volume < i64::from(u32::MAX)
        && size.iter().skip(2).all(|&s| s < 1 << 23)
}

/// `warp(input, theta) + input.randn_like() * noise` (no draw when `noise`
/// is 0), with the same noise values as that expression.
pub(super) fn warp_with_noise(input: &Tensor, theta: &Tensor, noise: f64) -> Tensor {
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
    // Drawn from the caller's tensor, as before: for a strided input,
    // randn_like fills in its memory order, and `contiguous` puts the values
    // where the old `out + noise` found them.
    let drawer = (noise != 0.0).then(|| input.shallow_clone());
    let (src, dst) = (elements(&source), uninit_elements_mut(&mut out));
    let (noise_values, ()) = rayon::join(
        move || drawer.map(|t| t.randn_like().contiguous()),
        || warp_into(src, &theta, &grid, dst),
    );
    if let Some(noise_values) = noise_values {
        // SAFETY: `warp_into` wrote every element of `out`.
        let warped = unsafe { elements_mut(&mut out) };
        add_scaled(warped, elements(&noise_values), noise as f32);
    }
    out
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
/// slice per rayon task (1024 for a `[32,1,32,48,48]` batch: enough to
/// balance two cores while one of them draws the noise).
fn warp_into(src: &[f32], theta: &[f32], grid: &Grid, dst: &mut [MaybeUninit<f32>]) {
    let [d, h, w] = grid.dims;
    let (slice, volume) = (h * w, d * h * w);
    if slice == 0 || d == 0 {
        return;
    }
    let affine =
        |v: usize| -> &[f32; 12] { theta[v / grid.channels * 12..][..12].try_into().unwrap() };
    let in_plane: Vec<Option<InPlane>> = (0..grid.volumes)
        .into_par_iter()
        .map(|v| turns_in_plane(affine(v)).then(|| InPlane::new(affine(v), grid)))
        .collect();
    dst.par_chunks_mut(slice).enumerate().for_each(|(k, out)| {
        let (v, z) = (k / d, k % d);
        let vol = &src[v * volume..][..volume];
        match &in_plane[v] {
            Some(tables) => tables.interpolate(vol, z, out),
            None => warp_slice(vol, affine(v), grid, z, out),
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
    fn interpolate(&self, vol: &[f32], z: usize, out: &mut [MaybeUninit<f32>]) {
        let depth = &self.depth[z];
        let (dz, zn, zf) = (depth.step as usize, depth.near, depth.far);
        let corners = self.offset.iter().zip(&self.step).zip(&self.xy);
        for (o, ((&offset, &[dx, dy]), xy)) in out.iter_mut().zip(corners) {
            let near = &vol[(offset + depth.offset) as usize..];
            let (dx, dy) = (dx as usize, dy as usize);
            let far = &near[dz..];
            let mut v = near[0] * (xy[0] * zn);
            v += near[dx] * (xy[1] * zn);
            v += near[dy] * (xy[2] * zn);
            v += near[dy + dx] * (xy[3] * zn);
            v += far[0] * (xy[0] * zf);
            v += far[dx] * (xy[1] * zf);
            v += far[dy] * (xy[2] * zf);
            v += far[dy + dx] * (xy[3] * zf);
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
fn warp_slice(vol: &[f32], t: &[f32; 12], grid: &Grid, z: usize, out: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { warp_slice_avx2(vol, t, grid, z, out) };
    }
    warp_slice_body::<false>(vol, t, grid, z, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn warp_slice_avx2(
    vol: &[f32],
    t: &[f32; 12],
    grid: &Grid,
    z: usize,
    out: &mut [MaybeUninit<f32>],
) {
    warp_slice_body::<true>(vol, t, grid, z, out);
}

/// `FMA`: `f32::mul_add` is an instruction here (else a libm call).
#[inline(always)]
fn warp_slice_body<const FMA: bool>(
    vol: &[f32],
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
    fn interpolate(&self, vol: &[f32], out: &mut [MaybeUninit<f32>]) {
        let [x, y, z] = &self.axes;
        for (k, o) in out[..self.len].iter_mut().enumerate() {
            let near = &vol[(x.offset[k] + y.offset[k] + z.offset[k]) as usize..];
            let [dx, dy, dz] = [x.step[k], y.step[k], z.step[k]].map(|s| s as usize);
            let far = &near[dz..];
            let w = |j: usize| self.weight[j][k];
            let mut v = near[0] * w(0);
            v += near[dx] * w(1);
            v += near[dy] * w(2);
            v += near[dy + dx] * w(3);
            v += far[0] * w(4);
            v += far[dx] * w(5);
            v += far[dy] * w(6);
            v += far[dy + dx] * w(7);
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

/// `out += noise * s`, as libtorch's `out + noise * s` rounds it.
fn add_scaled(out: &mut [f32], noise: &[f32], s: f32) {
    const CHUNK: usize = 1 << 16;
    out.par_chunks_mut(CHUNK)
        .zip(noise.par_chunks(CHUNK))
        .for_each(|(out, noise)| {
            for (o, n) in out.iter_mut().zip(noise) {
                *o += n * s;
            }
        });
}

/// The data pointer and length of a contiguous CPU float tensor.
fn raw_parts(t: &Tensor) -> (*mut f32, usize) {
    assert!(t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous());
    let n = t.numel();
    let ptr = if n == 0 {
        std::ptr::NonNull::dangling().as_ptr()
    } else {
        t.data_ptr().cast::<f32>()
    };
    (ptr, n)
}

/// A contiguous CPU float tensor's elements, borrowed for reading.
fn elements(t: &Tensor) -> &[f32] {
    let (ptr, n) = raw_parts(t);
    // SAFETY: `raw_parts` checked a contiguous CPU float tensor: `n`
    // aligned f32s (or a dangling pointer for none) in storage that `t`
    // keeps alive for the borrow. The tensors passed here are this module's
    // own or the caller's input, which nothing writes during the call.
    unsafe { std::slice::from_raw_parts(ptr, n) }
}

/// A fresh tensor's elements, not yet initialized, borrowed for writing.
fn uninit_elements_mut(t: &mut Tensor) -> &mut [MaybeUninit<f32>] {
    let (ptr, n) = raw_parts(t);
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
    let (ptr, n) = raw_parts(t);
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
        let got = warp_with_noise(&x, theta, 0.0);
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
        let y = warp_with_noise(&x, &theta, 0.0);
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
        let expected = warp_with_noise(&x, &theta, 0.0).view([-1, slice]);
        let theta = Vec::<f32>::try_from(theta.flatten(0, -1)).unwrap();
        let src = elements(&x);
        for k in 0..2 * d as usize {
            let (v, z) = (k / d as usize, k % d as usize);
            let mut got = Tensor::zeros([slice], (Kind::Float, Device::Cpu));
            let t = theta[v * 12..][..12].try_into().unwrap();
            let vol = &src[v * d as usize * slice as usize..][..d as usize * slice as usize];
            warp_slice_body::<false>(vol, t, &grid, z, uninit_elements_mut(&mut got));
            assert!(got.equal(&expected.get(k as i64)), "slice {k}");
        }
    }

    /// The old path by hand: one seed, affines, grid_sample, then the noise.
    fn old_path(cfg: &AugmentConfig, x: &Tensor, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let theta = cfg.random_affines(x.size()[0] as usize);
        warp(x, &theta) + x.randn_like() * cfg.noise
    }

    #[test]
    fn apply_on_the_cpu_draws_what_the_grid_path_draws() {
        let _generator = generator();
        let cfg = AugmentConfig::book();
        let x = hu_volume(&[4, 1, 32, 48, 48]);
        // And a strided batch, whose noise randn_like lays out in its own order.
        let strided = hu_volume(&[3, 1, 5, 9, 9]).transpose(3, 4);
        for (x, seed) in [(x, 31), (strided, 32)] {
            assert!(supports(&x));
            // Other modules' tests draw from the process-wide generator
            // without this module's lock, and one drawing between the seed
            // and the draws here changes them: a few tries tell that from a
            // real difference, which every try shows.
            let (got, diff) = (0..5)
                .map(|_| {
                    let expected = old_path(&cfg, &x, seed);
                    tch::manual_seed(seed);
                    let got = cfg.apply(&x);
                    let diff = max_abs_diff(&got, &expected);
                    (got, diff)
                })
                .find(|&(_, diff)| diff <= 1e-3)
                .unwrap_or_else(|| panic!("apply differs from the old path in 5 tries"));
            assert!(diff <= 1e-3);
            // The noise is there: the draws were not skipped.
            assert!(
                max_abs_diff(
                    &got,
                    &warp_with_noise(&x, &old_affines(&cfg, &x, seed), 0.0)
                ) > 10.0
            );
        }
    }

    #[test]
    fn the_in_plane_tables_give_the_per_voxel_path_bit_for_bit() {
        let _generator = generator();
        tch::manual_seed(23);
        let size = [6, 1, 7, 10, 9];
        let x = hu_volume(&size);
        let src = elements(&x);
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
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single = millis(runs, || {
            let (x, theta) = (x.shallow_clone(), theta.shallow_clone());
            one.install(move || warp_with_noise(&x, &theta, 0.0))
        });
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
                "new warp only",
                millis(runs, || warp_with_noise(&x, &theta, 0.0)),
            ),
            (
                "new warp+noise",
                millis(runs, || warp_with_noise(&x, &theta, cfg.noise)),
            ),
            ("new apply", millis(runs, || cfg.apply(&x))),
        ];
        for (name, ms) in parts {
            println!("{name:>16}: {ms:6.2} ms");
        }
    }
}
