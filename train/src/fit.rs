//! The training loop: epochs of train + validate, with logging and checkpoints.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use shared::cache::CacheReader;
use tch::nn::VarStore;
use tch::{Device, Kind, Reduction};

use crate::augment::{AugmentConfig, BOOK_NOISE, BOOK_OFFSET, BOOK_SCALE};
use crate::checkpoint::{self, RunState};
use crate::cli::TrainArgs;
use crate::loader::{Loader, LoaderConfig};
use crate::metrics::{EpochMetrics, MetricRows, MetricsRecord, Samples};
use crate::model::{self, BiasInit, LunaModel};
use crate::sampler::{self, TrainSampler};
use crate::sgd::Sgd;
use crate::tensorboard::EventWriter;

const PHASE_TRAIN: u64 = 0;
const PHASE_VAL: u64 = 1;
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    /// Holds `metrics.jsonl` and the checkpoint files.
    pub run_dir: PathBuf,
    pub trn_dir: PathBuf,
    pub val_dir: PathBuf,
    pub last_val: Option<EpochMetrics>,
    pub state: RunState,
}

/// The error a run ends with when a stop was requested (Ctrl-C): between two
/// batches, after the last finished epoch's checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("interrupted during epoch {epoch}")]
pub struct Interrupted {
    pub epoch: usize,
    /// Last finished epoch (0: none, nothing saved) and where it is saved.
    pub saved_epoch: usize,
    pub run_dir: PathBuf,
    pub epochs: usize,
}

impl Interrupted {
    /// What to tell the user: what is kept and how to go on.
    pub fn advice(&self) -> String {
        if self.saved_epoch == 0 {
            format!(
                "train: interrupted during epoch {}; no epoch had finished, so nothing was saved",
                self.epoch
            )
        } else {
            format!(
                "train: interrupted during epoch {}; the checkpoint of epoch {} is in {}\n\
                 train: to go on: train --resume {} --epochs {}",
                self.epoch,
                self.saved_epoch,
                self.run_dir.display(),
                self.run_dir.display(),
                self.epochs
            )
        }
    }
}

/// Raised inside a phase; `run` turns it into [`Interrupted`].
#[derive(Debug, thiserror::Error)]
#[error("stop requested")]
struct StopRequested;

/// `auto`, `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match s {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => bail!("--device {other:?}: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(i) = device {
        let count = tch::Cuda::device_count().max(0) as usize;
        if i >= count {
            bail!("--device {s}: libtorch sees {count} CUDA device(s) (run `train doctor`)");
        }
    }
    Ok(device)
}

pub fn augment_config(args: &TrainArgs) -> AugmentConfig {
    if args.augmented {
        return AugmentConfig::book();
    }
    AugmentConfig {
        flip: args.augment_flip,
        offset: if args.augment_offset {
            BOOK_OFFSET
        } else {
            0.0
        },
        scale: if args.augment_scale { BOOK_SCALE } else { 0.0 },
        rotate: args.augment_rotate,
        noise: if args.augment_noise { BOOK_NOISE } else { 0.0 },
    }
}

/// UTC `YYYY-MM-DD_HH.MM.SS`, the book's run-name timestamp format.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02}_{:02}.{:02}.{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Settings of the run: the command line, or for `--resume` the saved run's
/// settings with only where/how-fast options (cache, epochs, workers,
/// device, threads) taken from the command line.
fn effective_args(cli: &TrainArgs) -> Result<(TrainArgs, Option<(PathBuf, RunState)>)> {
    let Some(resume) = &cli.resume else {
        return Ok((cli.clone(), None));
    };
    let dir = checkpoint::checkpoint_dir(resume);
    let state = checkpoint::read_state(&dir)
        .with_context(|| format!("reading the checkpoint to resume from {}", resume.display()))?;
    let mut args: TrainArgs = serde_json::from_value(state.args.clone())
        .with_context(|| format!("{}: saved settings do not parse", dir.display()))?;
    args.cache = cli.cache.clone().or(args.cache);
    args.epochs = cli.epochs;
    args.num_workers = cli.num_workers;
    args.device = cli.device.clone();
    args.threads = cli.threads;
    args.resume = cli.resume.clone();
    Ok((args, Some((dir, state))))
}

struct Phase<'a> {
    name: &'static str,
    epoch: usize,
    order: &'a [u32],
    train: bool,
}

pub fn run(cli: &TrainArgs) -> Result<RunOutcome> {
    run_until(cli, &AtomicBool::new(false))
}

/// [`run`], stopping between batches once `stop` is set, with an
/// [`Interrupted`] error; checkpoints of finished epochs stay.
pub fn run_until(cli: &TrainArgs, stop: &AtomicBool) -> Result<RunOutcome> {
    let (mut args, resume) = effective_args(cli)?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n as i32);
    }
    let device = parse_device(&args.device)?;
    let seed = *args.seed.get_or_insert_with(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            & 0xFFFF_FFFF
    });
    let cache = args.cache.clone().context("--cache is required")?;
    let reader =
        CacheReader::open(&cache).with_context(|| format!("opening cache {}", cache.display()))?;
    let crop = reader.manifest().crop_shape;
    let expected: Vec<usize> = model::INPUT_SHAPE.iter().map(|&d| d as usize).collect();
    if crop[..] != expected[..] {
        bail!(
            "{}: crops are {crop:?}, LunaModel needs {expected:?}",
            cache.display()
        );
    }
    let reader = Arc::new(reader);
    let architecture = args.model_config();
    architecture
        .validate(model::INPUT_SHAPE)
        .context("model variant")?;
    if !(args.weight_decay >= 0.0 && args.weight_decay.is_finite()) {
        bail!(
            "--weight-decay {}: must be a finite value >= 0",
            args.weight_decay
        );
    }

    let (train_idx, mut val_idx) = sampler::split(reader.len(), args.val_stride as usize);
    if let Some(n) = args.val_samples {
        val_idx.truncate(n as usize);
    }
    let entries = reader.entries();
    let sampler = TrainSampler::new(
        train_idx,
        |i| entries[i as usize].is_nodule,
        args.balanced.map(|r| r as usize),
        args.epoch_samples.map(|n| n as usize),
        seed,
    )
    .with_context(|| format!("sampling {}", cache.display()))?;

    tch::manual_seed(seed as i64);
    let mut vs = VarStore::new(device);
    let bias = if args.book_bias_init {
        BiasInit::Book
    } else {
        BiasInit::Uniform
    };
    let model = LunaModel::with_config(&vs.root(), &architecture, bias);
    let mut sgd = Sgd::new(&vs, args.lr, args.momentum).with_weight_decay(args.weight_decay);
    let augment = augment_config(&args);

    let (mut state, prefix_dir) = match resume {
        Some((dir, _)) => {
            let state = checkpoint::load(&dir, &mut vs, &mut sgd)
                .with_context(|| format!("resuming from {}", dir.display()))?;
            let prefix = dir.parent().map(Path::to_owned).unwrap_or_default();
            (state, prefix)
        }
        None => (
            RunState {
                epoch: 0,
                samples_seen: 0,
                steps: 0,
                seed,
                best_val_f1: 0.0,
                run_stamp: timestamp(),
                comment: args.comment.clone(),
                args: serde_json::Value::Null,
            },
            args.runs.join(&args.tb_prefix),
        ),
    };
    state.args = serde_json::to_value(&args).context("recording the settings")?;
    let name = |kind: &str| format!("{}-{kind}-{}", state.run_stamp, state.comment);
    let run_dir = prefix_dir.join(name("cls"));
    let trn_dir = prefix_dir.join(name("trn_cls"));
    let val_dir = prefix_dir.join(name("val_cls"));
    fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut trn_tb =
        EventWriter::create(&trn_dir).with_context(|| format!("creating {}", trn_dir.display()))?;
    let mut val_tb =
        EventWriter::create(&val_dir).with_context(|| format!("creating {}", val_dir.display()))?;
    let metrics_path = run_dir.join(METRICS_FILE);
    if state.epoch > 0 {
        // A crash or Ctrl-C after an epoch's training line but before its
        // checkpoint leaves lines the resumed run is about to write again.
        drop_records_after(&metrics_path, state.epoch)?;
    }
    let mut metrics_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;

    let m = reader.manifest();
    println!(
        "train: cache {} ({} candidates, {} positive); training on {} ({} samples/epoch{}), validating on {}",
        cache.display(),
        m.candidates,
        m.positives,
        reader.len() - sampler::split(reader.len(), args.val_stride as usize).1.len(),
        sampler.samples_per_epoch(),
        args.balanced.map_or(String::new(), |r| format!(", balanced 1:{r}")),
        val_idx.len()
    );
    println!(
        "train: device {device:?}, LunaModel{} {} parameters, seed {seed}, augmentation: {}, run {}",
        if architecture.is_book() {
            String::new()
        } else {
            format!(" {architecture:?}")
        },
        model::parameter_count(&vs),
        augment,
        run_dir.display()
    );
    if state.epoch > 0 {
        println!(
            "train: resuming after epoch {} ({} samples seen)",
            state.epoch, state.samples_seen
        );
    }

    let mut loader = Loader::new(
        Arc::clone(&reader),
        LoaderConfig {
            batch_size: args.batch_size as usize,
            num_workers: args.num_workers as usize,
            device,
        },
    );
    let mut last_val = None;
    for epoch in state.epoch + 1..=args.epochs {
        let order = sampler.epoch_order(epoch);
        let trn = Phase {
            name: "trn",
            epoch,
            order: &order,
            train: true,
        };
        let samples = run_phase(
            &trn,
            &mut loader,
            &model,
            &mut sgd,
            &augment,
            seed,
            device,
            &mut state,
            stop,
        )
        .map_err(|e| interrupted(e, epoch, &state, &run_dir, args.epochs))?;
        state.samples_seen += order.len() as u64;
        report(&trn, &samples, &state, &mut trn_tb, &mut metrics_file)?;

        let val = Phase {
            name: "val",
            epoch,
            order: &val_idx,
            train: false,
        };
        let samples = run_phase(
            &val,
            &mut loader,
            &model,
            &mut sgd,
            &augment,
            seed,
            device,
            &mut state,
            stop,
        )
        .map_err(|e| interrupted(e, epoch, &state, &run_dir, args.epochs))?;
        let metrics = report(&val, &samples, &state, &mut val_tb, &mut metrics_file)?;
        state.best_val_f1 = state.best_val_f1.max(metrics.f1);
        state.epoch = epoch;
        last_val = Some(metrics);

        checkpoint::save_with_architecture(&run_dir, &vs, &architecture, &sgd, &state)
            .with_context(|| format!("saving the epoch {epoch} checkpoint"))?;
    }
    println!(
        "train: done; checkpoint and metrics in {}",
        run_dir.display()
    );
    Ok(RunOutcome {
        run_dir,
        trn_dir,
        val_dir,
        last_val,
        state,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    phase: &Phase,
    loader: &mut Loader,
    model: &LunaModel,
    sgd: &mut Sgd,
    augment: &AugmentConfig,
    seed: u64,
    device: Device,
    state: &mut RunState,
    stop: &AtomicBool,
) -> Result<Samples> {
    let mut rows = MetricRows::new(phase.order.len(), device);
    let bar = progress_bar(phase);
    let started = Instant::now();
    let phase_id = if phase.train { PHASE_TRAIN } else { PHASE_VAL };
    let _no_grad = (!phase.train).then(tch::no_grad_guard);
    loader.run_epoch::<anyhow::Error>(phase.order, |batch| {
        if stop.load(Ordering::SeqCst) {
            return Err(StopRequested.into());
        }
        tch::manual_seed(sampler::batch_seed(
            seed,
            phase.epoch,
            phase_id,
            batch.index,
        ));
        let mut x = batch.images.to_kind(Kind::Float);
        if phase.train && !augment.is_off() {
            x = augment.apply(&x);
        }
        if phase.train {
            sgd.zero_grad();
        }
        let (logits, probs) = model.forward(&x, phase.train);
        let loss = logits.cross_entropy_loss::<tch::Tensor>(
            &batch.labels,
            None,
            Reduction::None,
            -100,
            0.0,
        );
        if phase.train {
            loss.mean(Kind::Float).backward();
            sgd.step();
            state.steps += 1;
        }
        rows.push(&batch.labels, &probs.select(1, 1), &loss);
        bar.inc(batch.labels.size()[0] as u64);
        Ok(())
    })?;
    let samples = rows.to_host();
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let waited = loader.last_wait().as_secs_f64();
    println!(
        "E{} {:<8} {} samples in {:.1}s ({:.1} samples/s; waited {:.2}s = {:.1}% for data)",
        phase.epoch,
        phase.name,
        phase.order.len(),
        secs,
        phase.order.len() as f64 / secs.max(1e-9),
        waited,
        100.0 * waited / secs.max(1e-9)
    );
    Ok(samples)
}

fn interrupted(
    error: anyhow::Error,
    epoch: usize,
    state: &RunState,
    run_dir: &Path,
    epochs: usize,
) -> anyhow::Error {
    if error.is::<StopRequested>() {
        Interrupted {
            epoch,
            saved_epoch: state.epoch,
            run_dir: run_dir.to_owned(),
            epochs,
        }
        .into()
    } else {
        error
    }
}

/// Rewrites `path` (atomically) without the records of epochs after `epoch`.
fn drop_records_after(path: &Path, epoch: usize) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut kept = String::with_capacity(text.len());
    for (n, line) in text.lines().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {} is not JSON", path.display(), n + 1))?;
        if record["epoch"]
            .as_u64()
            .is_some_and(|e| e as usize <= epoch)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if kept.len() != text.len() {
        shared::durable::write_atomically(path, kept.as_bytes())
            .with_context(|| format!("rewriting {}", path.display()))?;
    }
    Ok(())
}

fn progress_bar(phase: &Phase) -> ProgressBar {
    let bar = ProgressBar::new(phase.order.len() as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} samples, {per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(format!("E{} {}", phase.epoch, phase.name));
    bar
}

/// Prints, appends to metrics.jsonl and writes TensorBoard events for one phase.
fn report(
    phase: &Phase,
    samples: &Samples,
    state: &RunState,
    tb: &mut EventWriter,
    jsonl: &mut fs::File,
) -> Result<EpochMetrics> {
    let metrics = EpochMetrics::compute(samples);
    println!("{}", metrics.table(phase.epoch, phase.name));
    let record = MetricsRecord {
        epoch: phase.epoch,
        phase: phase.name,
        samples_seen: state.samples_seen,
        metrics: &metrics,
    };
    let mut line = serde_json::to_string(&record).context("encoding metrics")?;
    line.push('\n');
    jsonl
        .write_all(line.as_bytes())
        .context("writing metrics.jsonl")?;
    jsonl.flush().context("writing metrics.jsonl")?;

    let step = state.samples_seen;
    let tb_path = tb.path().to_owned();
    let tb_err = || format!("writing TensorBoard events to {}", tb_path.display());
    tb.scalars(step, &metrics.scalars()).with_context(tb_err)?;
    tb.pr_curve("pr", step, &samples.labels, &samples.prob_pos)
        .with_context(tb_err)?;
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
    tb.probability_histogram("is_neg", step, &pick(false))
        .with_context(tb_err)?;
    tb.probability_histogram("is_pos", step, &pick(true))
        .with_context(tb_err)?;
    tb.flush().with_context(tb_err)?;
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("0 CUDA device"));
            assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
        }
    }

    #[test]
    fn timestamp_has_the_books_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "_");
        assert_eq!(&t[13..14], ".");
        assert!(t.starts_with("20"));
    }
}
