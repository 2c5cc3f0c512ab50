//! What a classifier run trains and validates on, and with which labels:
//! the cache's `is_nodule` (chapters 11–12), or chapter 14's malignancy
//! labels from `--malignancy-csv` (validation on the split's nodules only).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use shared::cache::CacheReader;

use super::driver::Epochs;
use crate::config::{Label, RunConfig};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::malignancy::{ClassCounts, MalignancyLabels};

/// The labels a classifier run trains on.
pub enum Targets {
    /// The cache's `is_nodule`.
    Nodule,
    /// Chapter 14's, by cache index.
    Malignancy(MalignancyLabels),
}

impl Targets {
    /// Whether cache index `i` is a positive of the run.
    pub fn is_positive(&self, reader: &CacheReader, i: u32) -> bool {
        match self {
            Targets::Nodule => reader
                .entries()
                .get(i as usize)
                .is_some_and(|e| e.is_nodule),
            Targets::Malignancy(labels) => labels.class(i).is_malignant(),
        }
    }
}

/// A classifier run's samples and labels.
pub struct ClassifierData {
    pub epochs: Epochs,
    pub targets: Targets,
    /// What the run log says about the malignancy labels.
    pub label_line: Option<String>,
}

impl ClassifierData {
    /// The run's split of `reader`, labelled as `config.data.label` says.
    pub fn new(config: &RunConfig, reader: &CacheReader) -> Result<Self> {
        let (train, val) = config.data.split_rule().parts(reader);
        if config.data.label == Label::Nodule {
            let entries = reader.entries();
            let is_nodule = |i: u32| entries[i as usize].is_nodule;
            return Ok(ClassifierData {
                epochs: Epochs::new(train, val, is_nodule, config)?,
                targets: Targets::Nodule,
                label_line: None,
            });
        }
        let csv = config
            .data
            .malignancy_csv
            .as_deref()
            .unwrap_or(Path::new(""));
        let labels = MalignancyLabels::read(reader, csv)?;
        let line = label_line(csv, &labels.counts(&train), &labels.counts(&val));
        let (train, val) = labels.restrict(train, val);
        let epochs = Epochs::malignancy(train, val, &labels, config)
            .with_context(|| format!("labels of {}", csv.display()))?;
        Ok(ClassifierData {
            epochs,
            targets: Targets::Malignancy(labels),
            label_line: Some(line),
        })
    }

    /// The loader of the run's batches, labelled with its targets.
    pub fn loader(&self, reader: Arc<CacheReader>, config: LoaderConfig) -> Loader {
        let loader = Loader::new(reader, config);
        match &self.targets {
            Targets::Nodule => loader,
            Targets::Malignancy(labels) => loader.with_targets(labels.targets()),
        }
    }
}

/// One line: what the malignancy labels make of each split, and how many
/// positives no annotation row labels (left out).
fn label_line(csv: &Path, train: &ClassCounts, val: &ClassCounts) -> String {
    format!(
        "train: malignancy labels from {}: training on {} malignant, {} benign, {} non-nodules; validating on {} malignant and {} benign nodules; {} positive candidates in no annotation's box left out ({} training, {} validation)",
        csv.display(),
        train.malignant,
        train.benign,
        train.non_nodules,
        val.malignant,
        val.benign,
        train.unmatched + val.unmatched,
        train.unmatched,
        val.unmatched
    )
}
