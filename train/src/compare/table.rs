//! The comparison as text: a Markdown table with one row per group of
//! seeds, and a CSV with one row per run.

use std::fmt::Write as _;

use super::{CompareError, Comparison, Group, Run, Spread};
use crate::config::Select;
use crate::evaluate::metrics_log::{defined, MetricsLine};

type Metric = fn(&MetricsLine) -> Option<f64>;

/// The metrics shown at the best and at the last epoch: (Markdown name,
/// CSV name, value).
const METRICS: [(&str, &str, Metric); 5] = [
    ("P", "precision", |e| defined(e.metrics.precision)),
    ("R", "recall", |e| defined(e.metrics.recall)),
    ("F1", "f1", |e| defined(e.metrics.f1)),
    ("F2", "f2", |e| defined(e.metrics.f2)),
    ("AUC", "auc", MetricsLine::auc),
];

const NO_EPOCHS: &str = "no epochs yet";
const MISSING: &str = "—";

fn cell(text: &str) -> String {
    // A pipe would end the cell; a newline the row.
    text.replace('|', "\\|").replace('\n', " ")
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// The Markdown report: a short legend, the table, and which runs each
/// row holds.
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!("# Comparison of {} runs\n\n", c.runs.len());
    out.push_str(
        "Best epoch: by each run's `run.select` (F1 when unset; lowest validation loss for \
         `loss`). A row of several runs differs only in `run.seed`: mean ± sd over those runs.\n\n",
    );
    let mut header = vec!["run".to_owned()];
    header.extend(c.differing.iter().map(|k| cell(k)));
    header.extend(["runs", "seeds", "best by", "best epoch"].map(String::from));
    header.extend(METRICS.iter().map(|(name, _, _)| format!("best {name}")));
    header.push("last epoch".to_owned());
    header.extend(METRICS.iter().map(|(name, _, _)| format!("last {name}")));
    out.push_str(&row(&header));
    out.push_str(&row(&vec!["---".to_owned(); header.len()]));
    for group in &c.groups {
        out.push_str(&row(&group_cells(c, group)));
    }
    out.push_str("\n## Runs\n\n");
    for group in &c.groups {
        let runs: Vec<String> = group
            .members
            .iter()
            .map(|&i| describe_run(&c.runs[i]))
            .collect();
        let _ = writeln!(
            out,
            "- {}: {}",
            cell(&c.group_label(group)),
            runs.join("; ")
        );
    }
    out
}

fn describe_run(run: &Run) -> String {
    let mut notes = Vec::new();
    if let Some(seed) = run.seed {
        notes.push(format!("seed {seed}"));
    }
    if run.epochs.is_empty() {
        notes.push(NO_EPOCHS.to_owned());
    }
    let dir = cell(&run.dir.display().to_string());
    if notes.is_empty() {
        format!("`{dir}`")
    } else {
        format!("`{dir}` ({})", notes.join(", "))
    }
}

fn group_cells(c: &Comparison, group: &Group) -> Vec<String> {
    let runs: Vec<&Run> = group.members.iter().map(|&i| &c.runs[i]).collect();
    let with_epochs: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| !r.epochs.is_empty())
        .collect();
    let mut cells = vec![cell(&c.comments(group))];
    cells.extend(group.values.iter().map(|v| cell(v)));
    let waiting = runs.len() - with_epochs.len();
    cells.push(if waiting > 0 && !with_epochs.is_empty() {
        format!("{} ({waiting} {NO_EPOCHS})", runs.len())
    } else {
        runs.len().to_string()
    });
    cells.push(c.seed_count(group).to_string());
    if with_epochs.is_empty() {
        let by = runs[0].select.unwrap_or(Select::F1).to_string();
        cells.push(by);
        cells.push(NO_EPOCHS.to_owned());
        cells.extend(std::iter::repeat_n(
            MISSING.to_owned(),
            2 * METRICS.len() + 1,
        ));
        return cells;
    }
    let best: Vec<(Select, &MetricsLine)> = with_epochs.iter().filter_map(|r| r.best()).collect();
    let last: Vec<&MetricsLine> = with_epochs.iter().filter_map(|r| r.last()).collect();
    let mut selects: Vec<String> = Vec::new();
    for (select, _) in &best {
        let name = select.to_string();
        if !selects.contains(&name) {
            selects.push(name);
        }
    }
    cells.push(selects.join(", "));
    let best_epochs: Vec<&MetricsLine> = best.iter().map(|(_, e)| *e).collect();
    for epochs in [best_epochs, last] {
        let numbers: Vec<String> = epochs.iter().map(|e| e.epoch.to_string()).collect();
        cells.push(numbers.join(", "));
        for (_, _, value) in METRICS {
            let spread = Spread::of(epochs.iter().filter_map(|e| value(e)));
            cells.push(spread.map_or_else(|| MISSING.to_owned(), |s| s.to_string()));
        }
    }
    cells
}

/// One row per run: its group, folder, comment, seed, differing settings,
/// and the best and last epochs' metrics (empty where there is none).
pub fn csv(c: &Comparison) -> Result<String, CompareError> {
    let mut header: Vec<String> = ["group", "run", "comment", "seed"]
        .map(String::from)
        .to_vec();
    header.extend(c.differing.iter().cloned());
    header.extend(["best_by", "best_epoch"].map(String::from));
    header.extend(METRICS.iter().map(|(_, name, _)| format!("best_{name}")));
    header.push("last_epoch".to_owned());
    header.extend(METRICS.iter().map(|(_, name, _)| format!("last_{name}")));
    header.push("val_epochs".to_owned());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| CompareError::Io {
        path: super::CSV_FILE.into(),
        source: std::io::Error::other(e),
    };
    writer.write_record(&header).map_err(csv_err)?;
    for group in &c.groups {
        let label = c.group_label(group);
        for &i in &group.members {
            let run = &c.runs[i];
            let mut record = vec![
                label.clone(),
                run.dir.display().to_string(),
                run.comment.clone(),
                run.seed.map(|s| s.to_string()).unwrap_or_default(),
            ];
            record.extend(group.values.iter().cloned());
            let best = run.best();
            record.push(best.map(|(s, _)| s.to_string()).unwrap_or_default());
            for epoch in [best.map(|(_, e)| e), run.last()] {
                record.push(epoch.map(|e| e.epoch.to_string()).unwrap_or_default());
                for (_, _, value) in METRICS {
                    let v = epoch.and_then(value);
                    record.push(v.map(|v| v.to_string()).unwrap_or_default());
                }
            }
            record.push(run.epochs.len().to_string());
            writer.write_record(&record).map_err(csv_err)?;
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
