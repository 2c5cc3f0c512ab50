//! PNG plots of an [`EvalReport`]: the precision–recall curve, the FROC curve
//! (log FP/scan axis, the seven CPM rates marked) and P(nodule) histograms of
//! negatives versus positives.
//!
//! Text needs a TrueType font, found at run time: `LUNA_PLOT_FONT`, else the
//! usual DejaVu/Liberation/Noto paths of Debian-like systems. Without one the
//! plots are still drawn, with grid lines but no titles, labels or tick values.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::luna16::Score;
use super::{EvalReport, FP_RATES};

pub const PR_CURVE_FILE: &str = "pr_curve.png";
pub const FROC_FILE: &str = "froc.png";
pub const HISTOGRAM_FILE: &str = "prob_histogram.png";

pub(crate) const SIZE: (u32, u32) = (800, 600);
pub(crate) const FONT_FAMILY: &str = "sans-serif";
const FONT_ENV: &str = "LUNA_PLOT_FONT";
const FONT_CANDIDATES: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PlotError {
    pub path: PathBuf,
    pub reason: String,
}

/// Registers the first usable font once per process; false when there is none.
pub(crate) fn text_available() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let from_env = std::env::var_os(FONT_ENV).map(PathBuf::from);
        let paths = from_env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in paths {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the whole process; one file, leaked once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
        false
    })
}

/// Writes the three plots into `dir` (created if needed); returns their paths.
pub fn write_plots(dir: &Path, report: &EvalReport) -> Result<Vec<PathBuf>, PlotError> {
    write_plots_with_text(dir, report, text_available())
}

fn write_plots_with_text(
    dir: &Path,
    report: &EvalReport,
    text: bool,
) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|e| PlotError {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut written = Vec::new();
    for (name, draw) in [
        (PR_CURVE_FILE, draw_pr_curve as DrawFn),
        (FROC_FILE, draw_froc),
        (HISTOGRAM_FILE, draw_histogram),
    ] {
        let path = dir.join(name);
        write_png(&path, |root| draw(root, report, text))?;
        written.push(path);
    }
    Ok(written)
}

pub(crate) type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawFn = fn(&Root<'_>, &EvalReport, bool) -> Result<(), String>;

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"))
}

fn draw_pr_curve(root: &Root<'_>, report: &EvalReport, text: bool) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        // Label areas only with a font: plotters renders tick values into them.
        builder.x_label_area_size(45).y_label_area_size(55);
        let title = format!(
            "Precision-recall (AP {}, ROC AUC {})",
            fmt_opt(report.average_precision),
            fmt_opt(report.roc_auc)
        );
        builder.caption(title, (FONT_FAMILY, 22));
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("Recall").y_desc("Precision");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    let points = report.pr_curve.iter().map(|p| (p.recall, p.precision));
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// What a FROC plot shows: the curve, the sensitivities at the CPM's
/// rates, and the bootstrap band when there is one.
pub struct FrocPlot {
    pub title: String,
    /// (FP per scan, sensitivity), in curve order.
    pub curve: Vec<(f64, f64)>,
    pub operating_points: Vec<(f64, f64)>,
    /// (FP per scan, lower, upper) of the 95 % interval.
    pub band: Vec<(f64, f64, f64)>,
}

impl FrocPlot {
    /// The plot of an official score, titled with its counts and CPM.
    pub fn of(score: &Score, what: &str) -> Self {
        let band = score.bootstrap.as_ref().map_or_else(Vec::new, |b| {
            b.band_fps
                .iter()
                .zip(&b.band)
                .map(|(&x, i)| (x, i.lower, i.upper))
                .collect()
        });
        FrocPlot {
            title: format!(
                "FROC {what} ({} nodules, {} scans), CPM {:.4}",
                score.nodules, score.scans, score.cpm
            ),
            curve: score
                .froc
                .fps_per_scan
                .iter()
                .copied()
                .zip(score.froc.sensitivity.iter().copied())
                .collect(),
            operating_points: FP_RATES.iter().copied().zip(score.sensitivities).collect(),
            band,
        }
    }
}

/// Writes `plot` as a PNG at `path`.
pub fn write_froc_plot(path: &Path, plot: &FrocPlot) -> Result<(), PlotError> {
    let text = text_available();
    write_png(path, |root| draw_froc_plot(root, plot, text))
}

/// Draws into memory and writes the PNG crash-safely (temporary name,
/// fsync, rename): a full disk or a kill leaves the previous plot intact,
/// never a truncated or empty one.
pub(crate) fn write_png(
    path: &Path,
    draw: impl FnOnce(&Root<'_>) -> Result<(), String>,
) -> Result<(), PlotError> {
    let (width, height) = SIZE;
    let black = vec![0u8; width as usize * height as usize * 3];
    write_png_over(path, SIZE, black, draw)
}

/// [`write_png`] of a `size` picture whose RGB `pixels` are already there
/// (a CT slice, say) before `draw` adds to them.
pub(crate) fn write_png_over(
    path: &Path,
    size: (u32, u32),
    mut pixels: Vec<u8>,
    draw: impl FnOnce(&Root<'_>) -> Result<(), String>,
) -> Result<(), PlotError> {
    let fail = |reason: String| PlotError {
        path: path.to_owned(),
        reason,
    };
    let (width, height) = size;
    if pixels.len() != width as usize * height as usize * 3 {
        return Err(fail(format!(
            "{} bytes of pixels for a {width}×{height} RGB picture",
            pixels.len()
        )));
    }
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(|e| e.to_string()))
    }
    .map_err(fail)?;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ColorType::Rgb8)
        .map_err(|e| fail(e.to_string()))?;
    shared::durable::write_atomically(path, &png).map_err(|e| fail(e.error.to_string()))
}

fn draw_froc(root: &Root<'_>, report: &EvalReport, text: bool) -> Result<(), String> {
    let plot = match &report.detection.score {
        Some(score) => FrocPlot::of(score, "over the scored candidates"),
        None => FrocPlot {
            title: "FROC: no nodule in the scored scans".to_owned(),
            curve: Vec::new(),
            operating_points: Vec::new(),
            band: Vec::new(),
        },
    };
    draw_froc_plot(root, &plot, text)
}

fn draw_froc_plot(root: &Root<'_>, plot: &FrocPlot, text: bool) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // A log axis has no zero: the curve starts at the first nonzero rate,
    // and the axis spans at least the CPM's 1/8..8.
    let max_rate = plot.curve.iter().map(|p| p.0).fold(FP_RATES[6], f64::max);
    let min_rate = plot
        .curve
        .iter()
        .map(|p| p.0)
        .filter(|&r| r > 0.0)
        .fold(FP_RATES[0], f64::min);
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        // Label areas only with a font: plotters renders tick values into them.
        builder.x_label_area_size(45).y_label_area_size(55);
        builder.caption(&plot.title, (FONT_FAMILY, 20));
    }
    let mut chart = builder
        .build_cartesian_2d(
            ((min_rate / 2.0)..(max_rate * 2.0)).log_scale(),
            0f64..1.02f64,
        )
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("Average false positives per scan")
            .y_desc("Sensitivity");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    if !plot.band.is_empty() {
        let upper = plot.band.iter().map(|&(x, _, hi)| (x, hi));
        let lower = plot.band.iter().rev().map(|&(x, lo, _)| (x, lo));
        let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                BLUE.mix(0.2).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    // Zero FP/scan sits at the axis' left end.
    let points = plot.curve.iter().map(|&(x, y)| (x.max(min_rate / 2.0), y));
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(
            plot.operating_points
                .iter()
                .map(|&p| Circle::new(p, 5, RED.filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn draw_histogram(root: &Root<'_>, report: &EvalReport, text: bool) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let h = &report.histogram;
    // Per-class fractions: negatives outnumber positives ~300 to 1 on LUNA,
    // raw counts would flatten the positives to nothing.
    let fractions = |counts: &[u64]| -> Vec<f64> {
        let total: u64 = counts.iter().sum();
        counts
            .iter()
            .map(|&c| {
                if total == 0 {
                    0.0
                } else {
                    c as f64 / total as f64
                }
            })
            .collect()
    };
    let (neg, pos) = (fractions(&h.negatives), fractions(&h.positives));
    let top = neg
        .iter()
        .chain(&pos)
        .fold(0.0f64, |a, &b| a.max(b))
        .max(0.01)
        * 1.05;
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        // Label areas only with a font: plotters renders tick values into them.
        builder.x_label_area_size(45).y_label_area_size(55);
        builder.caption(
            format!(
                "P(nodule): {} negatives (blue), {} positives (red)",
                report.negatives, report.positives
            ),
            (FONT_FAMILY, 22),
        );
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..1f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("P(nodule)").y_desc("Fraction of the class");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.disable_x_mesh().draw().map_err(|e| e.to_string())?;
    let width = 1.0 / h.bins as f64;
    // Each bin holds two half-width bars: negatives left, positives right.
    let bars = neg.iter().zip(&pos).enumerate().flat_map(|(k, (&n, &p))| {
        let x0 = k as f64 * width;
        let mid = x0 + width / 2.0;
        [
            Rectangle::new([(x0, 0.0), (mid, n)], BLUE.mix(0.7).filled()),
            Rectangle::new([(mid, 0.0), (x0 + width, p)], RED.mix(0.7).filled()),
        ]
    });
    chart.draw_series(bars).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{evaluate, samples_of, Prediction, Reference};

    fn report() -> EvalReport {
        let mut preds = Vec::new();
        for k in 0..200u32 {
            let is_nodule = k % 20 == 0;
            let prob = ((k * 37 % 101) as f32 / 100.0 + if is_nodule { 0.4 } else { 0.0 }).min(1.0);
            preds.push(Prediction {
                prob_nodule: prob,
                is_nodule,
                series_uid: format!("scan-{}", k % 5),
                center_xyz: [k as f64 * 30.0, 0.0, 0.0],
                diameter_mm: if is_nodule { 8.0 } else { 0.0 },
            });
        }
        evaluate(&preds, &samples_of(&preds), &Reference::PositiveCandidates).unwrap()
    }

    fn assert_pngs(paths: &[PathBuf], expected: &[&str]) {
        assert_eq!(paths.len(), expected.len());
        for (path, name) in paths.iter().zip(expected) {
            assert_eq!(path.file_name().unwrap(), *name);
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
            // IHDR: width and height, big-endian, right after the signature and chunk header.
            let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
            let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
            assert_eq!((width, height), SIZE);
            assert!(
                bytes.len() > 4_000,
                "{} is only {} bytes",
                path.display(),
                bytes.len()
            );
        }
    }

    #[test]
    fn writes_three_pngs_with_and_without_text() {
        let report = report();
        let names = [PR_CURVE_FILE, FROC_FILE, HISTOGRAM_FILE];
        let dir = tempfile::tempdir().unwrap();
        let plain = write_plots_with_text(&dir.path().join("plain"), &report, false).unwrap();
        assert_pngs(&plain, &names);
        let labelled = write_plots(&dir.path().join("labelled"), &report).unwrap();
        assert_pngs(&labelled, &names);
        if text_available() {
            // Text adds pixels: the labelled PR plot differs from the plain one.
            assert_ne!(
                std::fs::read(&plain[0]).unwrap(),
                std::fs::read(&labelled[0]).unwrap()
            );
        }
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = write_plots(&file, &report()).unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
