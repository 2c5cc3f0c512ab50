//! `--select`: which validation metric picks the best epoch.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evaluate::EpochMetrics;

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
    /// The epoch's value of the metric as it reads; `None` when it is
    /// undefined (AUC without both classes).
    pub fn value(self, m: &EpochMetrics, auc: Option<f64>) -> Option<f64> {
        match self {
            Select::F1 => Some(m.f1),
            Select::F2 => Some(m.f2),
            Select::F05 => Some(m.f05),
            Select::Recall => Some(m.recall),
            Select::Auc => auc,
            Select::Loss => Some(m.loss_all),
        }
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
