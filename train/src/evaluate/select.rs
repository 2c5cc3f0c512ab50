//! `--select`: which validation metric picks the best epoch. It lives with
//! the metrics record it reads (not in `run`, which uses it) so that
//! `config`, which holds it in `[run]`, stays below `run`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::MetricsLine;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Select {
    #[serde(rename = "f1")]
    F1,
    #[serde(rename = "f2")]
    F2,
    #[serde(rename = "f0.5")]
    F05,
    #[serde(rename = "recall")]
    Recall,
    #[serde(rename = "auc")]
    Auc,
    #[serde(rename = "loss")]
    Loss,
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Select::F1 => "f1",
            Select::F2 => "f2",
            Select::F05 => "f0.5",
            Select::Recall => "recall",
            Select::Auc => "auc",
            Select::Loss => "loss",
        })
    }
}

impl Select {
    /// The metric's value in a validation line, as it reads; `None` when
    /// undefined (NaN, AUC without both classes, or left out by an older
    /// `train`). The one place a `--select` name meets a metric.
    pub fn value(self, line: &MetricsLine) -> Option<f64> {
        let m = &line.metrics;
        let value = match self {
            Select::F1 => m.f1,
            Select::F2 => m.f2,
            Select::F05 => m.f05,
            Select::Recall => m.recall,
            Select::Auc => line.auc()?,
            Select::Loss => m.loss_all,
        };
        (!value.is_nan()).then_some(value)
    }

    /// Converts between the metric as it reads and its ranked form (higher
    /// is better): the loss changes sign, the others stay. Its own inverse.
    pub fn ranked(self, value: f64) -> f64 {
        if self == Select::Loss {
            -value
        } else {
            value
        }
    }
}
