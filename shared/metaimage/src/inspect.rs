//! What an image holds, in words and numbers: the report behind [`inspect`]
//! (and the toolkit's `prepcache inspect FILE.mhd`).

use std::fmt::Write as _;
use std::path::Path;

use super::element::{with_voxels, Element};
use super::{payload, read_header, read_typed, Header, MetaImageError, VoxelData};

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
    let mut s = Stats {
        count: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        mean: 0.0,
        std: 0.0,
        below_minus_900: 0,
        histogram: [0; HISTOGRAM_EDGES.len() + 1],
    };
    // Welford's update: stable for 10^8 voxels where sum/sum² would lose digits.
    let mut m2 = 0.0;
    with_voxels!(data, values => {
        for &v in values {
            let x = v.to_f64();
            if x.is_nan() {
                continue;
            }
            s.count += 1;
            s.min = s.min.min(x);
            s.max = s.max.max(x);
            let delta = x - s.mean;
            s.mean += delta / s.count as f64;
            m2 += delta * (x - s.mean);
            if x < -900.0 {
                s.below_minus_900 += 1;
            }
            s.histogram[HISTOGRAM_EDGES.partition_point(|&e| e <= x)] += 1;
        }
    });
    if s.count > 0 {
        s.std = (m2 / s.count as f64).sqrt();
    }
    s
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

fn report(h: &Header, data_files: &str, s: &Stats) -> String {
    let mut out = String::new();
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
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
    let _ = writeln!(out, "spacing:     {}", list(&h.spacing));
    let _ = writeln!(out, "origin:      {}", list(&h.origin));
    let n = h.ndims();
    let direction = h.direction();
    let _ = writeln!(out, "direction:   (ITK, row-major; column k = axis k)");
    for row in direction.chunks(n.max(1)) {
        let _ = writeln!(
            out,
            "  [{}]",
            row.iter()
                .map(|x| format!("{x:>9.6}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let _ = writeln!(out, "data:        {data_files}");
    let _ = writeln!(out, "values:      {} voxels", s.count);
    if s.count == 0 {
        return out;
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
    out
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
