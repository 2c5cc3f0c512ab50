//! A finished run in one line: its last validation epoch from
//! `metrics.jsonl`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::evaluate::{metrics_log, METRICS_FILE};

/// The last validation line of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LastVal {
    pub epoch: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Absent in runs from before AUC was recorded, `None` when the
    /// validation had one class only.
    pub auc: Option<f64>,
}

impl LastVal {
    /// The run's last validation line, as written (an undefined value is
    /// NaN); `None` when it has none (or no metrics file). A one-line
    /// summary never fails: lines [`metrics_log::read`] reports as broken
    /// are passed over (`train compare` names them).
    pub fn of_run(run_dir: &Path) -> Option<LastVal> {
        let records = metrics_log::read(&run_dir.join(METRICS_FILE)).ok()?;
        let last = records
            .into_iter()
            .filter_map(Result::ok)
            .filter(|line| line.is_validation())
            .last()?;
        Some(LastVal {
            epoch: last.epoch as u64,
            precision: last.metrics.precision,
            recall: last.metrics.recall,
            f1: last.metrics.f1,
            auc: last.auc(),
        })
    }
}

impl std::fmt::Display for LastVal {
    /// `epoch 2 val precision 0.412 recall 0.870 F1 0.559 AUC 0.912`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {} val precision {:.3} recall {:.3} F1 {:.3} AUC ",
            self.epoch, self.precision, self.recall, self.f1
        )?;
        match self.auc {
            Some(auc) => write!(f, "{auc:.3}"),
            None => f.write_str("-"),
        }
    }
}

/// `1h02m03s`, `4m05s`, `6.7s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{:.1}s", d.as_secs_f64()),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m{:02}s", secs / 3600, secs % 3600 / 60, secs % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_val_line_is_read_with_or_without_auc() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(LastVal::of_run(tmp.path()), None);
        let lines = [
            r#"{"epoch":1,"phase":"trn","precision":0.1,"recall":0.2,"f1":0.3}"#,
            r#"{"epoch":1,"phase":"val","precision":0.5,"recall":0.25,"f1":0.3333,"auc":0.75}"#,
            r#"{"epoch":2,"phase":"trn","precision":0.1,"recall":0.2,"f1":0.3}"#,
            r#"{"epoch":2,"phase":"val","precision":0.6,"recall":0.5,"f1":0.5454}"#,
            r#"{"epoch":3,"phase":"tr"#,
        ];
        std::fs::write(tmp.path().join(METRICS_FILE), lines.join("\n")).unwrap();
        let last = LastVal::of_run(tmp.path()).unwrap();
        assert_eq!(last.epoch, 2);
        assert_eq!(last.auc, None);
        assert_eq!(
            last.to_string(),
            "epoch 2 val precision 0.600 recall 0.500 F1 0.545 AUC -"
        );
        std::fs::write(tmp.path().join(METRICS_FILE), lines[..2].join("\n")).unwrap();
        let last = LastVal::of_run(tmp.path()).unwrap();
        assert_eq!(last.auc, Some(0.75));
        assert!(last.to_string().ends_with("AUC 0.750"), "{last}");
    }

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(duration(Duration::from_millis(6_700)), "6.7s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h02m03s");
    }
}
