//! Validation F1 and recall per epoch, one line per run on shared axes, in
//! the style (size, font) of the eval plots.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use shared::durable::DurableWriteError;

use super::{CompareError, Comparison};
use crate::evaluate::metrics_log::{defined, MetricsLine};
use crate::evaluate::plots::{text_available, FONT_FAMILY, SIZE};
use crate::evaluate::PlotError;

pub const F1_FILE: &str = "compare_f1.png";
pub const RECALL_FILE: &str = "compare_recall.png";

type Metric = fn(&MetricsLine) -> Option<f64>;
type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Writes compare_f1.png and compare_recall.png into `out` (which must
/// exist); returns their paths.
pub fn write_plots(out: &Path, c: &Comparison) -> Result<Vec<PathBuf>, CompareError> {
    let text = text_available();
    let plots: [(&str, &str, Metric); 2] = [
        (F1_FILE, "F1", |e| defined(e.metrics.f1)),
        (RECALL_FILE, "Recall", |e| defined(e.metrics.recall)),
    ];
    let mut written = Vec::new();
    for (file, metric_name, metric) in plots {
        let path = out.join(file);
        write_one(&path, c, metric_name, metric, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Drawn under a temporary name and renamed into place, so a reader never
/// sees half a PNG. The temporary keeps the `.png` extension: plotters
/// picks the image format from it.
fn write_one(
    path: &Path,
    c: &Comparison,
    metric_name: &str,
    metric: Metric,
    text: bool,
) -> Result<(), CompareError> {
    let name = path
        .file_name()
        .map_or_else(|| "plot".to_owned(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    let outcome = {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        draw(&root, c, metric_name, metric, text)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    let synced = outcome.and_then(|()| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())
    });
    if let Err(reason) = synced {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlotError {
            path: path.to_owned(),
            reason,
        }
        .into());
    }
    std::fs::rename(&tmp, path).map_err(DurableWriteError::at(path))?;
    shared::durable::sync_parent(path)?;
    Ok(())
}

fn draw(
    root: &Root<'_>,
    c: &Comparison,
    metric_name: &str,
    metric: Metric,
    text: bool,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let last_epoch = c
        .runs
        .iter()
        .filter_map(|r| r.last().map(|e| e.epoch))
        .max()
        .unwrap_or(1)
        .max(1);
    let last_epoch = i64::try_from(last_epoch).unwrap_or(i64::MAX - 1);
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        // Label areas only with a font: plotters renders tick values into them.
        builder.x_label_area_size(45).y_label_area_size(55);
        builder.caption(
            format!("Validation {metric_name} per epoch"),
            (FONT_FAMILY, 22),
        );
    }
    // Integer epochs, with a margin of one on either side.
    let mut chart = builder
        .build_cartesian_2d(0i64..last_epoch + 1, 0f64..1.02f64)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("Epoch").y_desc(metric_name);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (index, run) in c.runs.iter().enumerate() {
        let points: Vec<(i64, f64)> = run
            .epochs
            .iter()
            .filter_map(|e| {
                let value = metric(e).filter(|v| v.is_finite())?;
                Some((i64::try_from(e.epoch).ok()?, value))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(c.run_label(index))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // A run of one epoch is a point, which a line alone would not show.
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 14))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
