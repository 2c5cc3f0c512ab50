//! What an image holds, in words and numbers: the report behind [`inspect`]
//! (and the toolkit's `prepcache inspect FILE.mhd`).

use std::fmt::Write as _;
use std::path::Path;

use super::element::{with_voxels, Element};
use super::{payload, read_header, read_typed, Header, MetaImageError, VoxelData};
use crate::volume::Volume;

/// Bin edges of the coarse HU histogram: air, lung, fat, soft tissue, bone.
const HISTOGRAM_EDGES: [f64; 8] = [
    -1000.0, -900.0, -500.0, -100.0, 100.0, 400.0, 1000.0, 3000.0,
];
const BAR_WIDTH: f64 = 40.0;

/// Summary statistics of voxel values (all channels together).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stats {
    pub count: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub below_minus_900: usize,
    /// Counts for `< edges[0]`, each `[edges[k], edges[k+1])`, `>= last edge`.
    pub histogram: [usize; HISTOGRAM_EDGES.len() + 1],
}

pub(crate) fn stats(data: &VoxelData) -> Stats {
    let mut acc = Accumulator::new();
    with_voxels!(data, values => {
        for &v in values {
            acc.push(v.to_f64());
        }
    });
    acc.finish()
}

/// Welford's update: stable for 10^8 voxels where sum/sum² would lose digits.
struct Accumulator {
    s: Stats,
    m2: f64,
}

impl Accumulator {
    fn new() -> Self {
        Accumulator {
            s: Stats {
                count: 0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                mean: 0.0,
                std: 0.0,
                below_minus_900: 0,
                histogram: [0; HISTOGRAM_EDGES.len() + 1],
            },
            m2: 0.0,
        }
    }

    fn push(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        let s = &mut self.s;
        s.count += 1;
        s.min = s.min.min(x);
        s.max = s.max.max(x);
        let delta = x - s.mean;
        s.mean += delta / s.count as f64;
        self.m2 += delta * (x - s.mean);
        if x < -900.0 {
            s.below_minus_900 += 1;
        }
        s.histogram[HISTOGRAM_EDGES.partition_point(|&e| e <= x)] += 1;
    }

    fn finish(mut self) -> Stats {
        if self.s.count > 0 {
            self.s.std = (self.m2 / self.s.count as f64).sqrt();
        }
        self.s
    }
}

/// Header keys, geometry, data files and HU statistics of one image, as a
/// multi-line human-readable report.
///
/// Reads every voxel (as [`crate::read_image`] does, with the same errors):
/// the statistics are min, max, mean and standard deviation over all values
/// and channels, the share below -900 HU (air) and a coarse histogram over
/// air, lung, fat, soft tissue and bone. NaN values are left out of them.
/// The layout is for people, not for parsing, and may change.
pub fn inspect(path: impl AsRef<Path>) -> Result<String, MetaImageError> {
    let header = read_header(path)?;
    let plan = payload::plan(&header)?;
    let data = read_typed(&header, &plan)?;
    Ok(report(&header, &plan.describe(), &stats(&data)))
}

/// [`inspect`]'s report for a volume read some other way (a DICOM series,
/// say), named by `path`: its size, geometry and the same statistics.
pub fn inspect_volume(path: impl AsRef<Path>, volume: &Volume) -> String {
    let mut out = String::new();
    let [slices, rows, columns] = volume.shape;
    let g = &volume.geometry;
    let _ = writeln!(out, "scan:        {}", path.as_ref().display());
    let _ = writeln!(
        out,
        "dims:        {columns} × {rows} × {slices} (x fastest)"
    );
    let _ = writeln!(out, "element:     MET_SHORT (2 B, as decoded)");
    let direction: Vec<f64> = g.direction.iter().flatten().copied().collect();
    geometry_lines(&mut out, &g.spacing, &g.origin, &direction);
    let mut acc = Accumulator::new();
    for &v in &volume.voxels {
        acc.push(f64::from(v));
    }
    values_lines(&mut out, &acc.finish());
    out
}

fn report(h: &Header, data_files: &str, s: &Stats) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "file:        {}", h.path.display());
    let _ = writeln!(out, "header:");
    for (k, v) in &h.entries {
        let _ = writeln!(out, "  {k} = {v}");
    }
    let dims = h
        .dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" × ");
    let _ = writeln!(
        out,
        "dims:        {dims} (x fastest){}",
        if h.channels > 1 {
            format!(", {} channels", h.channels)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "element:     {} ({} B, {})",
        h.element_type.name(),
        h.element_type.size(),
        if h.big_endian {
            "big-endian"
        } else {
            "little-endian"
        }
    );
    geometry_lines(&mut out, &h.spacing, &h.origin, &h.direction());
    let _ = writeln!(out, "data:        {data_files}");
    values_lines(&mut out, s);
    out
}

/// Spacing, origin and the row-major direction matrix.
fn geometry_lines(out: &mut String, spacing: &[f64], origin: &[f64], direction: &[f64]) {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "spacing:     {}", list(spacing));
    let _ = writeln!(out, "origin:      {}", list(origin));
    let _ = writeln!(out, "direction:   (ITK, row-major; column k = axis k)");
    for row in direction.chunks(spacing.len().max(1)) {
        let _ = writeln!(
            out,
            "  [{}]",
            row.iter()
                .map(|x| format!("{x:>9.6}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// The value count, min/max/mean/std, the air share and the histogram.
fn values_lines(out: &mut String, s: &Stats) {
    let _ = writeln!(out, "values:      {} voxels", s.count);
    if s.count == 0 {
        return;
    }
    let pct = |k: usize| 100.0 * k as f64 / s.count as f64;
    let _ = writeln!(
        out,
        "  min {}  max {}  mean {:.2}  std {:.2}",
        s.min, s.max, s.mean, s.std
    );
    let _ = writeln!(out, "  {:.2}% below -900 HU (air)", pct(s.below_minus_900));
    let _ = writeln!(out, "histogram (HU):");
    let top = s.histogram.iter().copied().max().unwrap_or(0).max(1);
    for (k, &count) in s.histogram.iter().enumerate() {
        let label = match k {
            0 => format!("< {}", HISTOGRAM_EDGES[0]),
            k if k == HISTOGRAM_EDGES.len() => format!(">= {}", HISTOGRAM_EDGES[k - 1]),
            k => format!("[{}, {})", HISTOGRAM_EDGES[k - 1], HISTOGRAM_EDGES[k]),
        };
        let bar = "#".repeat((BAR_WIDTH * count as f64 / top as f64).round() as usize);
        let _ = writeln!(out, "  {label:>14} {:>6.2}% {bar}", pct(count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_hand_computation() {
        let s = stats(&VoxelData::I16(vec![-1024, -950, 0, 40, 1500]));
        assert_eq!(s.count, 5);
        assert_eq!((s.min, s.max), (-1024.0, 1500.0));
        let mean = (-1024.0 - 950.0 + 0.0 + 40.0 + 1500.0) / 5.0;
        assert!((s.mean - mean).abs() < 1e-9);
        let var = [-1024.0, -950.0, 0.0, 40.0, 1500.0]
            .iter()
            .map(|x: &f64| (x - mean).powi(2))
            .sum::<f64>()
            / 5.0;
        assert!((s.std - var.sqrt()).abs() < 1e-9);
        assert_eq!(s.below_minus_900, 2);
        // < -1000 | [-1000,-900) | ... | [-100,100) | ... | [1000,3000) | >= 3000
        assert_eq!(s.histogram, [1, 1, 0, 0, 2, 0, 0, 1, 0]);
    }
}
