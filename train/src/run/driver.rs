//! A training run: epochs of train + validate, each ending in a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shared::cache::CacheReader;
use shared::lock::FolderLock;

use super::activations::ActivationProbe;
use super::best::{BestEpoch, BEST_DIR};
use super::checkpoint::RunState;
use super::classifier_data::ClassifierData;
use super::finetune::{self, Pretrained};
use super::interrupt::{Interrupted, StopRequested};
use super::phase::{run_phase, AfterStep, Phase, PhaseKind};
use super::recorder::{PhaseExtras, Recorder};
use super::run_dir::{refuse_read_only, timestamp, RunDir};
use super::task::Task;
use super::trainer::Trainer;
use crate::config::resolve::Resolved;
use crate::config::{BalanceSampler, RunConfig, SplitBy};
use crate::data::loader::LoaderConfig;
use crate::data::malignancy::MalignancyLabels;
use crate::data::sampler::{Balance, TrainSampler};
use crate::evaluate::{EpochMetrics, MetricsLine};

/// What to run: a validated configuration, and the run folder to continue
/// for `--resume`.
#[derive(Clone, Debug, Default)]
pub struct TrainPlan {
    pub config: RunConfig,
    pub resume: Option<PathBuf>,
    /// `--allow-other-cache`: resume on a cache other than the run's.
    pub allow_other_cache: bool,
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: RunDir,
    pub last_val: Option<EpochMetrics>,
    pub state: RunState,
}

/// The epochs' sample lists: the shuffled (or balanced) training order per
/// epoch, and the fixed validation list.
pub struct Epochs {
    sampler: TrainSampler,
    val: Vec<u32>,
    train_len: usize,
}

impl Epochs {
    /// The lists over a task's `train` and `val` samples (split as its data
    /// is split); `is_positive` is what balancing balances.
    pub fn new(
        train: Vec<u32>,
        val: Vec<u32>,
        is_positive: impl Fn(u32) -> bool,
        config: &RunConfig,
    ) -> Result<Self> {
        let d = &config.data;
        let train_len = train.len();
        let sampler = TrainSampler::new(
            train,
            is_positive,
            d.balanced.map(|ratio| Balance {
                ratio,
                sampler: d.sampler,
                schedule: d.balanced_schedule.clone(),
            }),
            d.epoch_samples.map(|n| n as usize),
            config.seed(),
        )?;
        Ok(Epochs::of(sampler, val, train_len, config))
    }

    /// Chapter 14's lists over labelled `train` and `val` samples: a
    /// balanced run walks the book's malignant/benign/non-nodule
    /// interleave, an unbalanced one shuffles them all.
    pub fn malignancy(
        train: Vec<u32>,
        val: Vec<u32>,
        labels: &MalignancyLabels,
        config: &RunConfig,
    ) -> Result<Self> {
        let d = &config.data;
        let train_len = train.len();
        let epoch_samples = d.epoch_samples.map(|n| n as usize);
        let sampler = if d.balanced.is_some() {
            TrainSampler::malignancy(labels.lists(&train), epoch_samples, config.seed())?
        } else {
            let is_malignant = |i| labels.class(i).is_malignant();
            TrainSampler::new(train, is_malignant, None, epoch_samples, config.seed())?
        };
        Ok(Epochs::of(sampler, val, train_len, config))
    }

    fn of(sampler: TrainSampler, mut val: Vec<u32>, train_len: usize, config: &RunConfig) -> Self {
        if let Some(n) = config.data.val_samples {
            val.truncate(n as usize);
        }
        Epochs {
            sampler,
            val,
            train_len,
        }
    }

    /// Training samples per epoch.
    pub fn samples_per_epoch(&self) -> usize {
        self.sampler.samples_per_epoch()
    }
}

/// Runs `plan`, with its settings decided ([`resolve`](crate::config::resolve::resolve)),
/// to its last epoch.
pub fn run(plan: &TrainPlan, resolved: Resolved) -> Result<RunOutcome> {
    run_until(plan, resolved, &AtomicBool::new(false))
}

/// [`run`], stopping between batches once `stop` is set, with an
/// [`Interrupted`] error; checkpoints of finished epochs stay.
pub fn run_until(plan: &TrainPlan, resolved: Resolved, stop: &AtomicBool) -> Result<RunOutcome> {
    let Resolved {
        config,
        device,
        reader,
    } = resolved;
    let cache = config.cache()?.to_owned();
    let data = ClassifierData::new(&config, &reader)
        .with_context(|| format!("sampling {}", cache.display()))?;
    let samples = data.epochs.samples_per_epoch();
    let trainer = Trainer::new(&config, device, samples).context("building the model")?;
    if let Some(source) = config.init.finetune.as_deref() {
        // A resumed run's weights, frozen ones included, are its checkpoint's.
        if plan.resume.is_none() {
            Pretrained::read(source, &config.model)?.load_into(trainer.var_store())?;
        }
    }
    let probe = if config.run.tb_activations {
        let is_positive = |i| data.targets.is_positive(&reader, i);
        ActivationProbe::load(&reader, &data.epochs.val, is_positive, device).with_context(
            || {
                format!(
                    "reading the --tb-activations samples of {}",
                    cache.display()
                )
            },
        )?
    } else {
        None
    };
    let loader = data.loader(
        Arc::clone(&reader),
        LoaderConfig {
            batch_size: config.data.batch_size as usize,
            num_workers: config.data.num_workers as usize,
            device,
        },
    );
    let mut lines = vec![data_line(&config, &reader, &data.epochs)];
    lines.extend(data.label_line);
    lines.extend(finetune::describe_run(
        &config,
        trainer.trainable_count(),
        trainer.parameter_count(),
        plan.resume.is_some(),
    ));
    let epochs = data.epochs;
    let task_run = TaskRun {
        data_line: lines.join("\n"),
        fingerprint: reader.manifest().fingerprint.clone(),
        config,
        epochs,
        trainer,
        source: loader,
        probe,
    };
    run_task(plan, task_run, stop)
}

/// A task ready to train: everything [`run_task`] needs besides the plan.
pub struct TaskRun<T: Task> {
    pub config: RunConfig,
    pub epochs: Epochs,
    pub trainer: Trainer<T>,
    pub source: T::Source,
    /// The data's fingerprint: checkpoints record it, a resume checks it.
    pub fingerprint: String,
    /// The run log's lines about the data (and the start, when fine-tuning).
    pub data_line: String,
    /// `--tb-activations`' fixed samples.
    pub probe: Option<ActivationProbe>,
}

/// Trains any [`Task`]: the run folder (new or resumed), then the epochs,
/// each ending in a checkpoint, until the last, `--patience` or `stop`.
pub fn run_task<T: Task>(
    plan: &TrainPlan,
    run: TaskRun<T>,
    stop: &AtomicBool,
) -> Result<RunOutcome> {
    let TaskRun {
        config,
        epochs,
        mut trainer,
        source,
        fingerprint,
        data_line,
        probe,
    } = run;
    // Held until the run returns: a second writer of the folder refuses.
    let (mut state, dir, _lock) = start_or_resume(plan, &config, &fingerprint, &mut trainer)?;
    state.config = config.clone();
    dir.write_config(&config)?;
    let recorder = Recorder::open(&dir, state.epoch)?;
    println!("{data_line}");
    announce(&config, &trainer, &dir, &state);
    let mut run = EpochLoop {
        config,
        epochs,
        trainer,
        source,
        recorder,
        probe,
        dir,
        state,
        stop,
    };
    let last_val = run.all()?;
    println!(
        "train: done; checkpoint and metrics in {}",
        run.dir.root.display()
    );
    Ok(RunOutcome {
        dir: run.dir,
        last_val,
        state: run.state,
    })
}

/// A started run: what its epochs use and change.
struct EpochLoop<'a, T: Task> {
    config: RunConfig,
    epochs: Epochs,
    trainer: Trainer<T>,
    source: T::Source,
    recorder: Recorder,
    probe: Option<ActivationProbe>,
    dir: RunDir,
    state: RunState,
    stop: &'a AtomicBool,
}

impl<T: Task> EpochLoop<'_, T> {
    /// The epochs after the last saved one, up to the last or until
    /// `--patience` ends the run; the last validation's metrics.
    fn all(&mut self) -> Result<Option<EpochMetrics>> {
        let mut last_val = None;
        for epoch in self.state.epoch + 1..=self.config.run.epochs {
            if let Some(why) = patience_exhausted(&self.config, &self.state) {
                println!("train: stopping early before epoch {epoch}: {why}");
                break;
            }
            self.train(epoch)?;
            let val = if self.validates(epoch) {
                Some(self.validate(epoch)?)
            } else {
                None
            };
            self.save(epoch, val.as_ref())?;
            last_val = val.map(|v| v.metrics).or(last_val);
        }
        Ok(last_val)
    }

    /// `--validate-every N`: epoch 1, every N-th and the last validate.
    fn validates(&self, epoch: usize) -> bool {
        let every = self.config.run.validate_every.unwrap_or(1).max(1) as usize;
        epoch == 1 || epoch.is_multiple_of(every) || epoch == self.config.run.epochs
    }

    fn train(&mut self, epoch: usize) -> Result<()> {
        let order = self.epochs.sampler.epoch_order(epoch);
        let trn = Phase {
            kind: PhaseKind::Train,
            epoch,
            order: &order,
        };
        let summary = {
            let mut histograms =
                self.config.run.tb_histograms_every.map(|every| {
                    histograms_every(every, &mut self.recorder, self.state.samples_seen)
                });
            let hook = histograms.as_mut().map(|h| h as AfterStep<T>);
            run_phase(&trn, &mut self.source, &mut self.trainer, self.stop, hook)
        }
        .map_err(|e| self.stopped(e, epoch))?;
        self.state.samples_seen += order.len() as u64;
        self.state.steps = self.trainer.steps;
        let extras = PhaseExtras {
            lr: Some(self.trainer.current_lr()),
            balance_ratio: self.epochs.sampler.ratio_at(epoch),
        };
        self.recorder
            .record(&trn, self.state.samples_seen, summary, extras)?;
        Ok(())
    }

    /// The validation phase, its line and `--tb-activations` images.
    fn validate(&mut self, epoch: usize) -> Result<MetricsLine> {
        let val = Phase {
            kind: PhaseKind::Validate,
            epoch,
            order: &self.epochs.val,
        };
        let summary = run_phase(&val, &mut self.source, &mut self.trainer, self.stop, None)
            .map_err(|e| self.stopped(e, epoch))?;
        let seen = self.state.samples_seen;
        let line = self
            .recorder
            .record(&val, seen, summary, PhaseExtras::default())?;
        if let Some(probe) = &self.probe {
            let images = probe
                .images(&self.trainer.task().block_outputs(&probe.images))
                .context("drawing --tb-activations")?;
            self.recorder.val_images(seen, &images)?;
        }
        let images = self.trainer.task().validation_images(epoch)?;
        if !images.is_empty() {
            self.recorder.val_images(seen, &images)?;
        }
        Ok(line)
    }

    /// The epoch's checkpoints. The best first: a crash between the two
    /// saves resumes from the epoch before, whose rerun finds the same
    /// best again.
    fn save(&mut self, epoch: usize, val: Option<&MetricsLine>) -> Result<()> {
        let state = &mut self.state;
        state.epoch = epoch;
        if let Some(val) = val {
            state.best_val_f1 = state.best_val_f1.max(val.metrics.f1);
        }
        if let Some(best) = val.and_then(|val| improved_best(&self.config, state, val)) {
            state.best = Some(best);
            let best_dir = self.dir.root.join(BEST_DIR);
            self.trainer
                .save(&best_dir, state)
                .with_context(|| format!("saving the best checkpoint (epoch {epoch})"))?;
            best.write(&best_dir)?;
            println!(
                "E{epoch} best so far by {} ({:.4}): checkpoint in {}",
                best.select,
                best.score,
                best_dir.display()
            );
        }
        self.trainer
            .save(&self.dir.root, state)
            .with_context(|| format!("saving the epoch {epoch} checkpoint"))
    }

    /// A stop request as the [`Interrupted`] error that says what is kept.
    fn stopped(&self, e: anyhow::Error, epoch: usize) -> anyhow::Error {
        if !e.is::<StopRequested>() {
            return e;
        }
        Interrupted {
            epoch,
            saved_epoch: self.state.epoch,
            run_dir: self.dir.root.clone(),
            epochs: self.config.run.epochs,
        }
        .into()
    }
}

/// `--tb-histograms-every N`: parameter histograms after every N-th step
/// of the run, at the samples seen by then.
fn histograms_every<T: Task>(
    every: u64,
    recorder: &mut Recorder,
    samples_before: u64,
) -> impl FnMut(&Trainer<T>, usize) -> Result<()> + '_ {
    move |trainer, done| {
        if trainer.steps % every != 0 {
            return Ok(());
        }
        let histograms = trainer
            .parameter_histograms()
            .context("computing --tb-histograms-every histograms")?;
        recorder.parameter_histograms(samples_before + done as u64, &histograms)
    }
}

/// With `--select`: the new best epoch when this validation line beats the
/// last best (an undefined score, AUC without both classes, never does).
fn improved_best(config: &RunConfig, state: &RunState, val: &MetricsLine) -> Option<BestEpoch> {
    let select = config.run.select?;
    let value = select.value(val)?;
    if state.best.is_some_and(|b| !b.beaten_by(value)) {
        return None;
    }
    Some(BestEpoch {
        epoch: state.epoch,
        select,
        score: value,
    })
}

/// With `--patience N`: why the run stops, once N epochs have passed
/// without a better score.
fn patience_exhausted(config: &RunConfig, state: &RunState) -> Option<String> {
    let patience = config.run.patience? as usize;
    let select = config.run.select?;
    let since = state.best.map_or(0, |b| b.epoch);
    (state.epoch >= since + patience).then(|| match state.best {
        Some(b) => format!(
            "no better {select} in the {} epochs since epoch {} ({select} {:.4}, kept in {BEST_DIR}/) (--patience {patience})",
            state.epoch - b.epoch,
            b.epoch,
            b.score
        ),
        None => format!("no defined {select} in {} epochs (--patience {patience})", state.epoch),
    })
}

/// A fresh run's state and folder, or the resumed checkpoint's (loaded
/// into `trainer`), with the folder locked for this run.
fn start_or_resume<T: Task>(
    plan: &TrainPlan,
    config: &RunConfig,
    fingerprint: &str,
    trainer: &mut Trainer<T>,
) -> Result<(RunState, RunDir, FolderLock)> {
    let Some(root) = &plan.resume else {
        let group = config.run.runs.join(&config.run.tb_prefix);
        let kind = trainer.task().run_kind();
        let (dir, stamp) = RunDir::create_new(&group, &timestamp(), kind, &config.run.comment)?;
        let lock = FolderLock::acquire(&dir.root, "train run")?;
        let state = RunState {
            epoch: 0,
            samples_seen: 0,
            steps: 0,
            best_val_f1: 0.0,
            run_stamp: stamp,
            config: config.clone(),
            loss_scale: None,
            best: None,
            cache_fingerprint: Some(fingerprint.to_owned()),
        };
        return Ok((state, dir, lock));
    };
    refuse_read_only(root)?;
    let lock = FolderLock::acquire(root, "train run")?;
    let mut state = trainer
        .restore(root)
        .with_context(|| format!("resuming from {}", root.display()))?;
    check_cache(plan, config, &state, fingerprint)?;
    state.cache_fingerprint = Some(fingerprint.to_owned());
    Ok((
        state,
        RunDir::existing(root, trainer.task().run_kind()),
        lock,
    ))
}

/// A resumed run goes on with the cache it was trained on: the cache's
/// fingerprint (the hash of its index) must be the one the checkpoint
/// recorded, unless `--allow-other-cache` says otherwise.
fn check_cache(
    plan: &TrainPlan,
    config: &RunConfig,
    state: &RunState,
    fingerprint: &str,
) -> Result<()> {
    let cache = config
        .data
        .cache
        .as_deref()
        .unwrap_or(Path::new(""))
        .display();
    match &state.cache_fingerprint {
        None => println!(
            "note: the checkpoint does not record its cache (an older train wrote it); cannot check that {cache} is the one it was trained on"
        ),
        Some(saved) if saved == fingerprint => {}
        Some(saved) if plan.allow_other_cache => println!(
            "train: note: {cache} is not the cache the run was trained on (index {}…, was {}…); going on as --allow-other-cache says",
            short(fingerprint),
            short(saved)
        ),
        Some(saved) => bail!(
            "--cache {cache}: not the cache this run was trained on (its index hashes to {}…, the checkpoint's cache to {}…; rebuilt or other data); pass --allow-other-cache to resume on it anyway",
            short(fingerprint),
            short(saved)
        ),
    }
    Ok(())
}

/// The first 12 hex digits of a fingerprint, enough to tell two apart.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

/// The run log's line about the cache and the epochs' sample lists.
fn data_line(config: &RunConfig, reader: &CacheReader, epochs: &Epochs) -> String {
    let m = reader.manifest();
    let cache = config.data.cache.as_deref().unwrap_or(Path::new(""));
    format!(
        "train: cache {} ({} candidates, {} positive); training on {} ({} samples/epoch{}), validating on {}{}",
        cache.display(),
        m.candidates,
        m.positives,
        epochs.train_len,
        epochs.samples_per_epoch(),
        balance_description(config),
        epochs.val.len(),
        match config.data.split_by {
            SplitBy::Candidate => String::new(),
            SplitBy::Series => format!(
                " (split by series: every {}th scan validates, whole)",
                config.data.val_stride
            ),
        }
    )
}

/// The run's opening line about the model, the seed and where it writes.
fn announce<T: Task>(config: &RunConfig, trainer: &Trainer<T>, dir: &RunDir, state: &RunState) {
    println!(
        "train: device {:?} ({}), {} {} parameters, seed {}, augmentation: {}, run {}",
        trainer.device(),
        config.compute.describe(),
        trainer.task().describe(),
        trainer.parameter_count(),
        config.seed(),
        config.augment,
        dir.root.display()
    );
    if state.epoch > 0 {
        println!(
            "train: resuming after epoch {} ({} samples seen)",
            state.epoch, state.samples_seen
        );
    }
}

/// ", balanced 1:2 (weighted, schedule 3:4)" or nothing.
fn balance_description(config: &RunConfig) -> String {
    let d = &config.data;
    let Some(ratio) = d.balanced else {
        return String::new();
    };
    if !d.label.is_nodule() {
        return ", balanced 1/2 malignant, 1/4 benign, 1/4 non-nodules".to_owned();
    }
    let mut how = Vec::new();
    if d.sampler == BalanceSampler::Weighted {
        how.push("weighted".to_owned());
    }
    if let Some(schedule) = &d.balanced_schedule {
        how.push(format!("schedule {schedule}"));
    }
    if how.is_empty() {
        format!(", balanced 1:{ratio}")
    } else {
        format!(", balanced 1:{ratio} ({})", how.join(", "))
    }
}
