//! metrics.jsonl, a run's record: one [`MetricsLine`] per finished phase,
//! appended as the phase ends ([`MetricsLog`]), trimmed when a run resumes
//! ([`truncate_after`]) and read back ([`read`]) by `train compare`, the
//! sweep summary and whoever else wants a run's figures. The metrics are
//! [`EpochMetrics`]'s fields, named there and nowhere else.
//!
//! Reading, for every caller: a missing file is an empty log; blank lines
//! are skipped; an unfinished last line (no newline) that does not parse
//! is being written, or was torn by a crash, and is skipped; any other
//! line that is not a record comes back as a [`MetricsLogError::Line`]
//! naming the file and the line, and the caller decides (compare and
//! resume refuse, the sweep summary passes over it). Lines an older
//! `train` wrote may leave fields out: see [`EpochMetrics`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::EpochMetrics;

pub const METRICS_FILE: &str = "metrics.jsonl";
/// The book's names of the phases, as lines carry them.
pub const TRAIN_PHASE: &str = "trn";
pub const VAL_PHASE: &str = "val";

/// One line of metrics.jsonl: one phase of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub epoch: usize,
    /// `trn` or `val`.
    pub phase: String,
    /// Training samples seen so far in the run (TensorBoard's step).
    #[serde(default)]
    pub samples_seen: u64,
    #[serde(flatten)]
    pub metrics: EpochMetrics,
    /// Validation lines: the ROC AUC, `null` when a class is missing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub auc: Option<Option<f64>>,
    /// Training lines: the learning rate at the phase's last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Balanced training lines: negatives per positive in this epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_ratio: Option<u32>,
}

/// A field that is there, even as `null`, is `Some` (a validation line's
/// undefined AUC); only one left out is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

impl MetricsLine {
    pub fn is_validation(&self) -> bool {
        self.phase == VAL_PHASE
    }

    /// The ROC AUC, when the line has a defined one.
    pub fn auc(&self) -> Option<f64> {
        self.auc.flatten()
    }
}

/// A value read back as a reader shows it: `None` when undefined (NaN,
/// or left out by an older `train`).
pub fn defined(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsLogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: encoding a record: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Names the file itself.
    #[error(transparent)]
    Rewrite(#[from] shared::durable::DurableWriteError),
}

/// metrics.jsonl open for appending.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens (or creates) `path` for appending; a run resumed after
    /// `resumed_epoch` first drops the lines of later epochs
    /// ([`truncate_after`]).
    pub fn open(path: &Path, resumed_epoch: usize) -> Result<Self, MetricsLogError> {
        if resumed_epoch > 0 {
            truncate_after(path, resumed_epoch)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(MetricsLog {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends `line` in one write, flushed: a reader sees whole lines.
    pub fn append(&mut self, line: &MetricsLine) -> Result<(), MetricsLogError> {
        let mut text = serde_json::to_string(line).map_err(|source| MetricsLogError::Encode {
            path: self.path.clone(),
            source,
        })?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(io_error(&self.path))
    }
}

/// The records of the metrics.jsonl at `path`, in file order, each parsed
/// or the error naming its line (the module's reading rules).
pub fn read(path: &Path) -> Result<Vec<Result<MetricsLine, MetricsLogError>>, MetricsLogError> {
    let text = read_text(path)?;
    Ok(records(path, &text).map(|(_, record)| record).collect())
}

/// Rewrites `path` (atomically) without the lines of epochs after `epoch`:
/// a crash or Ctrl-C after an epoch's training line but before its
/// checkpoint leaves lines that the resumed run writes again. Refuses a
/// file with a line that is not a record.
pub fn truncate_after(path: &Path, epoch: usize) -> Result<(), MetricsLogError> {
    let text = read_text(path)?;
    let mut kept = String::with_capacity(text.len());
    for (line, record) in records(path, &text) {
        if record?.epoch <= epoch {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if kept != text {
        shared::durable::write_atomically(path, kept.as_bytes())?;
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MetricsLogError + '_ {
    move |source| MetricsLogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The file's text; a missing file is an empty one.
fn read_text(path: &Path) -> Result<String, MetricsLogError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        read => read.map_err(io_error(path)),
    }
}

/// Each line that counts (see the module's rules) with its parse.
fn records<'a>(
    path: &'a Path,
    text: &'a str,
) -> impl Iterator<Item = (&'a str, Result<MetricsLine, MetricsLogError>)> + 'a {
    let count = text.lines().count();
    let unfinished = move |n: usize| n + 1 == count && !text.ends_with('\n');
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .filter_map(move |(n, line)| match serde_json::from_str(line) {
            Ok(record) => Some((line, Ok(record))),
            Err(_) if unfinished(n) => None,
            Err(e) => Some((
                line,
                Err(MetricsLogError::Line {
                    path: path.to_owned(),
                    line: n + 1,
                    reason: e.to_string(),
                }),
            )),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::Samples;

    fn val_line(epoch: usize) -> MetricsLine {
        let samples = Samples {
            labels: vec![true, false],
            prob_pos: vec![0.9, 0.1],
            loss: vec![0.1, 0.2],
        };
        MetricsLine {
            epoch,
            phase: VAL_PHASE.to_owned(),
            samples_seen: 640,
            metrics: EpochMetrics::compute(&samples),
            auc: Some(None),
            lr: None,
            balance_ratio: None,
        }
    }

    #[test]
    fn a_line_keeps_the_books_field_order_and_reads_back_as_written() {
        let line = val_line(3);
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.starts_with(
                r#"{"epoch":3,"phase":"val","samples_seen":640,"samples":2,"positives":1,"negatives":1,"tp":1,"fp":0,"tn":1,"fn":0,"loss_all":0.15"#
            ),
            "{text}"
        );
        assert!(
            text.ends_with(r#""f05":1.0,"zero_division":[],"auc":null}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<MetricsLine>(&text).unwrap(), line);
    }

    #[test]
    fn older_lines_read_with_left_out_and_null_values_undefined() {
        let old = r#"{"epoch":1,"phase":"val","f1":null,"recall":0.0,"loss_all":0.5}"#;
        let line: MetricsLine = serde_json::from_str(old).unwrap();
        assert_eq!(defined(line.metrics.f1), None);
        assert_eq!(defined(line.metrics.recall), Some(0.0));
        assert_eq!(defined(line.metrics.precision), None);
        assert_eq!((line.samples_seen, line.metrics.confusion.tp), (0, 0));
        assert_eq!((line.auc, line.lr), (None, None));
        let trn = r#"{"epoch":2,"phase":"trn","lr":0.001,"balance_ratio":2}"#;
        let line: MetricsLine = serde_json::from_str(trn).unwrap();
        assert!(!line.is_validation());
        assert_eq!((line.lr, line.balance_ratio), (Some(0.001), Some(2)));
    }

    #[test]
    fn appended_lines_read_back_and_resume_trims_later_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(METRICS_FILE);
        assert!(read(&path).unwrap().is_empty());
        let mut log = MetricsLog::open(&path, 0).unwrap();
        for epoch in 1..=3 {
            log.append(&val_line(epoch)).unwrap();
        }
        drop(log);
        let written = std::fs::read_to_string(&path).unwrap();
        let epochs: Vec<usize> = read(&path)
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().epoch)
            .collect();
        assert_eq!(epochs, [1, 2, 3]);
        // A crash tore epoch 4's line; the resumed run goes on after epoch 2.
        std::fs::write(&path, format!("{written}{{\"epoch\":4,\"ph")).unwrap();
        MetricsLog::open(&path, 2)
            .unwrap()
            .append(&val_line(3))
            .unwrap();
        let lines: Vec<&str> = written.lines().collect();
        let expected = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }

    #[test]
    fn a_broken_line_names_file_and_line_an_unfinished_last_one_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(METRICS_FILE);
        let good = serde_json::to_string(&val_line(1)).unwrap();
        std::fs::write(&path, format!("{good}\n\nnot json\n{good}\n{{\"epo")).unwrap();
        let records = read(&path).unwrap();
        assert_eq!(records.len(), 3);
        let err = records[1].as_ref().unwrap_err().to_string();
        assert!(
            err.contains(METRICS_FILE) && err.contains("line 3"),
            "{err}"
        );
        let err = truncate_after(&path, 1).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        // A last line without its newline that parses is a record.
        std::fs::write(&path, format!("{good}\n{good}")).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
    }
}
