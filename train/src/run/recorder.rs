//! Everything a run tells the world about a phase, fanned out from one
//! record: the progress bar while it runs, then the terminal table, a
//! metrics.jsonl line and TensorBoard events. A new logger is a new field
//! here and nothing else.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::phase::{Phase, PhaseKind};
use super::run_dir::RunDir;
use super::task::PhaseSummary;
use super::tensorboard::proto::HistogramProto;
use super::tensorboard::{EventWriter, Png};
use crate::evaluate::{EpochMetrics, MetricsLine, MetricsLog, Samples};

pub struct Recorder {
    trn_events: EventWriter,
    val_events: EventWriter,
    metrics: MetricsLog,
}

impl Recorder {
    /// Opens the run's loggers; metrics.jsonl is appended to, after dropping
    /// records of epochs later than `resumed_epoch` (see
    /// [`MetricsLog::open`]).
    pub fn open(dir: &RunDir, resumed_epoch: usize) -> Result<Self> {
        let events = |path: &std::path::Path| {
            EventWriter::create(path).with_context(|| format!("creating {}", path.display()))
        };
        let metrics = MetricsLog::open(&dir.metrics_file(), resumed_epoch)?;
        Ok(Recorder {
            trn_events: events(&dir.trn_events)?,
            val_events: events(&dir.val_events)?,
            metrics,
        })
    }

    /// A bar over the phase's samples, with rate and ETA.
    pub fn progress(phase: &Phase) -> ProgressBar {
        let bar = ProgressBar::new(phase.order.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} samples, {per_sec}, ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(format!("E{} {}", phase.epoch, phase.kind.name()));
        bar
    }

    /// The phase's speed, and how much of it went into waiting for data.
    pub fn timing(phase: &Phase, secs: f64, waited: f64) {
        println!(
            "E{} {:<8} {} samples in {:.1}s ({:.1} samples/s; waited {:.2}s = {:.1}% for data)",
            phase.epoch,
            phase.kind.name(),
            phase.order.len(),
            secs,
            phase.order.len() as f64 / secs.max(1e-9),
            waited,
            100.0 * waited / secs.max(1e-9)
        );
    }

    /// `--profile`'s breakdown of the phase.
    pub fn profile(phase: &Phase, breakdown: &str) {
        println!(
            "E{} {:<8} profile: {breakdown}",
            phase.epoch,
            phase.kind.name()
        );
    }

    /// `--tb-histograms-every`: one step's parameter histograms, in the
    /// training events; `samples_seen` is the step.
    pub fn parameter_histograms(
        &mut self,
        samples_seen: u64,
        histograms: &[(String, HistogramProto)],
    ) -> Result<()> {
        let tb = &mut self.trn_events;
        let path = tb.path().to_owned();
        tb.histograms(samples_seen, histograms)
            .with_context(|| format!("writing TensorBoard events to {}", path.display()))
    }

    /// Images drawn after a validation (`--tb-activations`, segmentation
    /// slices), in the validation events; `samples_seen` is the step.
    pub fn val_images(&mut self, samples_seen: u64, images: &[(String, Png)]) -> Result<()> {
        let tb = &mut self.val_events;
        let path = tb.path().to_owned();
        tb.images(samples_seen, images)
            .and_then(|()| tb.flush())
            .with_context(|| format!("writing TensorBoard events to {}", path.display()))
    }

    /// Prints, appends to metrics.jsonl and writes TensorBoard events for one
    /// finished phase; `samples_seen` is TensorBoard's step. Returns the
    /// phase's metrics.jsonl line.
    pub fn record(
        &mut self,
        phase: &Phase,
        samples_seen: u64,
        summary: PhaseSummary,
        extras: PhaseExtras,
    ) -> Result<MetricsLine> {
        let name = phase.kind.name();
        let PhaseSummary {
            metrics,
            auc,
            samples,
        } = summary;
        println!("{}", metrics.table(phase.epoch, name));
        // Figures beyond the book's, each as a TensorBoard scalar and a log note.
        let extra: Vec<(&str, f64, String)> = [
            auc.flatten()
                .map(|v| ("pr/roc_auc", v, format!("{v:.4} ROC AUC"))),
            extras.lr.map(|v| ("optim/lr", v, format!("lr {v:.3e}"))),
            extras.balance_ratio.map(|r| {
                (
                    "data/balance_ratio",
                    f64::from(r),
                    format!("balanced 1:{r}"),
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !extra.is_empty() {
            let notes: Vec<&str> = extra.iter().map(|(_, _, note)| note.as_str()).collect();
            println!("E{} {name:<8} {}", phase.epoch, notes.join(", "));
        }
        let line = MetricsLine {
            epoch: phase.epoch,
            phase: name.to_owned(),
            samples_seen,
            metrics,
            auc,
            lr: extras.lr,
            balance_ratio: extras.balance_ratio,
        };
        self.metrics.append(&line)?;
        let tb = match phase.kind {
            PhaseKind::Train => &mut self.trn_events,
            PhaseKind::Validate => &mut self.val_events,
        };
        let extra: Vec<(&str, f64)> = extra.iter().map(|&(tag, v, _)| (tag, v)).collect();
        write_events(tb, samples_seen, &line.metrics, &extra, samples.as_ref())?;
        Ok(line)
    }
}

/// What the run knows of a phase besides its samples (training phases).
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseExtras {
    /// The learning rate at the phase's last step.
    pub lr: Option<f64>,
    /// Negatives per positive, for balanced runs.
    pub balance_ratio: Option<u32>,
}

/// The book's TensorBoard content (scalars, and for a task with
/// per-sample probabilities a PR curve and histograms of P(nodule) per
/// class), plus the `extra` scalars.
fn write_events(
    tb: &mut EventWriter,
    step: u64,
    metrics: &EpochMetrics,
    extra: &[(&str, f64)],
    samples: Option<&Samples>,
) -> Result<()> {
    let tb_path = tb.path().to_owned();
    let tb_err = || format!("writing TensorBoard events to {}", tb_path.display());
    let mut scalars: Vec<(&str, f64)> = metrics.scalars().to_vec();
    scalars.extend_from_slice(extra);
    tb.scalars(step, &scalars).with_context(tb_err)?;
    if let Some(samples) = samples {
        write_probabilities(tb, step, samples).with_context(tb_err)?;
    }
    tb.flush().with_context(tb_err)
}

/// The PR curve and the histograms of P(nodule) per class.
fn write_probabilities(tb: &mut EventWriter, step: u64, samples: &Samples) -> std::io::Result<()> {
    tb.pr_curve("pr", step, &samples.labels, &samples.prob_pos)?;
    // The book leaves out the confidently right ones so the interesting middle shows.
    let pick = |positive: bool| -> Vec<f32> {
        samples
            .labels
            .iter()
            .zip(&samples.prob_pos)
            .filter(|&(&l, &p)| l == positive && if positive { p < 0.99 } else { p > 0.01 })
            .map(|(_, &p)| p)
            .collect()
    };
    tb.probability_histogram("is_neg", step, &pick(false))?;
    tb.probability_histogram("is_pos", step, &pick(true))
}
