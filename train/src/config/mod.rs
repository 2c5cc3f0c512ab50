//! The run configuration: every setting of a training run, typed, versioned
//! and validated before any work starts.
//!
//! A [`RunConfig`] is resolved once from (in rising priority) the defaults,
//! an optional `--config FILE.toml` and the command-line flags
//! (the `cli` module).
//! The run writes it as `config.toml` into its folder and into every
//! checkpoint, so `train --config runs/…/config.toml` repeats a run and
//! `--resume` continues it with exactly its settings. Checkpoints written
//! before this type existed hold the raw flags instead; [`legacy`] reads them.

pub mod device;
pub mod dotted;
pub mod legacy;
pub mod presets;
pub mod resolve;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::augment::AugmentConfig;
use crate::model::{BiasInit, ModelConfig, ModelConfigError, INPUT_SHAPE};
// Each section type lives in the module that uses it; these re-exports
// keep `config::X` the one place that names them all.
pub use crate::data::balance::{self, BalanceSampler, BalanceSchedule};
pub use crate::data::malignancy::Label;
pub use crate::data::split::SplitRule;
pub use crate::evaluate::select::{self, Select};
pub use crate::model::compute::{self, ComputeConfig, MemoryFormat, Precision};
pub use crate::optim::config::{LrSchedule, OptimizerConfig, OptimizerKind};
pub use shared::luna::SplitBy;

/// Bumped whenever a key changes meaning or disappears; files of another
/// version are refused instead of being misread.
pub const CONFIG_VERSION: u32 = 1;

/// File name of the configuration inside a run folder.
pub const CONFIG_FILE: &str = "config.toml";

/// More loader threads than this is a typo, not a setting: each one holds
/// a batch buffer and a zstd context.
pub const MAX_WORKERS: u32 = 256;
/// Likewise for libtorch's intra-op threads.
pub const MAX_THREADS: u32 = 1024;
/// Samples per batch beyond which a value is a typo: the loader's buffers
/// hold `min(batch, epoch samples)` crops (72 KiB each as int16, four
/// times that as float on the device), so this much is already ~7 GiB.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// `--batch-size` (of every command) within 1..=[`MAX_BATCH_SIZE`].
pub fn check_batch_size(n: u32) -> Result<(), ConfigError> {
    if (1..=MAX_BATCH_SIZE).contains(&n) {
        return Ok(());
    }
    Err(invalid(
        "data.batch_size",
        "batch-size",
        n,
        "must be between 1 and 100000",
    ))
}

/// `--num-workers` (of every command) within 1..=[`MAX_WORKERS`].
pub fn check_num_workers(n: u32) -> Result<(), ConfigError> {
    if (1..=MAX_WORKERS).contains(&n) {
        return Ok(());
    }
    Err(invalid(
        "data.num_workers",
        "num-workers",
        n,
        "must be between 1 and 256",
    ))
}

/// Everything a training run depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// [`CONFIG_VERSION`] of the file this came from.
    pub version: u32,
    /// A file may leave out any section or key: what is missing is the
    /// default (so a short file says only what differs from the book).
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub init: InitConfig,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub augment: AugmentConfig,
    /// A file without this section predates it, and ran fp32/contiguous.
    #[serde(default = "ComputeConfig::fp32_contiguous")]
    pub compute: ComputeConfig,
    #[serde(default)]
    pub run: RunControl,
}

/// Which samples the run sees, and how they are batched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Cache directory written by `prepcache build`.
    pub cache: Option<PathBuf>,
    /// Every N-th candidate of the canonical list is validation, or every
    /// N-th series (`split_by`).
    pub val_stride: u32,
    /// What `val_stride` counts: candidates (the book's chapter 12) or
    /// series (chapters 13–14).
    pub split_by: SplitBy,
    pub batch_size: u32,
    /// Threads decoding cached crops ahead of the training step.
    pub num_workers: u32,
    /// `Some(r)`: balanced training with r negatives per positive.
    pub balanced: Option<u32>,
    /// How a balanced epoch draws: the book's interleave, or weighted
    /// random draws with replacement.
    pub sampler: BalanceSampler,
    /// The ratio as a function of the epoch (`1:1,3:2,6:4`); `balanced`
    /// holds before its first entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balanced_schedule: Option<BalanceSchedule>,
    /// The balanced epoch length, or a cap on an unbalanced one.
    pub epoch_samples: Option<u64>,
    /// Validate on the first N samples of the validation split only.
    pub val_samples: Option<u64>,
    /// What the run classifies: nodules (chapters 11–12) or malignancy
    /// (chapter 14). Left out of config.toml when `nodule`.
    #[serde(skip_serializing_if = "Label::is_nodule")]
    pub label: Label,
    /// `label = "malignancy"`: the book's `annotations_with_malignancy.csv`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malignancy_csv: Option<PathBuf>,
}

/// How the weights start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    pub bias: BiasInit,
    /// Fine-tuning (chapter 14): start from this LunaModel's weights (a run
    /// folder, a model.safetensors or the book's .state), all but the
    /// head's, and train only the last `finetune_depth` blocks. Recorded,
    /// so a resumed run keeps the same blocks frozen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetune: Option<PathBuf>,
    /// How many of the model's parameterised blocks, counted from the
    /// head, train; 1 (the head alone) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetune_depth: Option<u32>,
}

impl InitConfig {
    /// The blocks that train when fine-tuning: `finetune_depth`, else 1.
    pub fn finetune_depth(&self) -> usize {
        self.finetune_depth.unwrap_or(1) as usize
    }
}

/// Where and how long the run goes, and what it is called.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunControl {
    /// Epochs in total; a resumed run counts the ones already done.
    pub epochs: usize,
    /// Initialisation, shuffling and augmentation seed; drawn at random (and
    /// then recorded) when absent.
    pub seed: Option<u64>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// libtorch CPU threads; libtorch's choice when absent.
    pub threads: Option<u32>,
    /// Root folder of run directories.
    pub runs: PathBuf,
    /// Run group: runs go to `<runs>/<tb_prefix>/`.
    pub tb_prefix: String,
    /// Run name suffix (the book's `comment`).
    pub comment: String,
    /// Time each part of the step and print the breakdown per phase
    /// (`--profile`); it does not change results. Left out of config.toml
    /// when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub profile: bool,
    /// Keep the best epoch's checkpoint in `best/` by this validation metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// Stop after this many epochs without a better `select` score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    /// Validate at epoch 1, every N-th epoch and the last (the book's
    /// chapter 13 `validation_cadence`); every epoch when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate_every: Option<u32>,
    /// Weight and gradient histograms every N optimizer steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tb_histograms_every: Option<u64>,
    /// Mid-slice images of each block's output after each validation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tb_activations: bool,
}

impl Default for RunConfig {
    /// The book's chapter 12 settings.
    fn default() -> Self {
        RunConfig {
            version: CONFIG_VERSION,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            init: InitConfig::default(),
            optimizer: OptimizerConfig::default(),
            augment: AugmentConfig::default(),
            compute: ComputeConfig::default(),
            run: RunControl::default(),
        }
    }
}

impl DataConfig {
    /// How the cache splits into training and validation.
    pub fn split_rule(&self) -> SplitRule {
        SplitRule {
            by: self.split_by,
            val_stride: self.val_stride as usize,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            cache: None,
            val_stride: 10,
            split_by: SplitBy::Candidate,
            batch_size: 32,
            num_workers: 2,
            balanced: None,
            sampler: BalanceSampler::Ratio,
            balanced_schedule: None,
            epoch_samples: None,
            val_samples: None,
            label: Label::Nodule,
            malignancy_csv: None,
        }
    }
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            bias: BiasInit::Uniform,
            finetune: None,
            finetune_depth: None,
        }
    }
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            epochs: 1,
            seed: None,
            device: "auto".to_owned(),
            threads: None,
            runs: PathBuf::from("runs"),
            tb_prefix: "p2ch12".to_owned(),
            comment: "dwlpt".to_owned(),
            profile: false,
            select: None,
            patience: None,
            validate_every: None,
            tb_histograms_every: None,
            tb_activations: false,
        }
    }
}

/// A setting that cannot run, named by its key and flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Augment(#[from] crate::data::augment::AugmentError),
    #[error("{key} (--{flag}) = {value}: {why}")]
    Invalid {
        key: &'static str,
        flag: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("model (--width/--depth/--dropout): {0}")]
    Model(#[from] ModelConfigError),
    #[error("init.finetune_depth (--finetune-depth) = {depth}: the model has {blocks} blocks with parameters; 1 trains the head alone, {blocks} every block")]
    FinetuneDepth { depth: u32, blocks: usize },
    #[error("no cache given: pass --cache DIR (a folder written by `prepcache build`)")]
    NoCache,
    #[error("{0}: not a cache (no manifest.json); write one with `prepcache build --data DIR --out {0}`")]
    NotACache(PathBuf),
    #[error(
        "{0}: incomplete cache (shards/ but no manifest.json: a build that did not finish, or \
         --shard builds not sealed yet); rerun `prepcache build --data DIR --out {0}` without \
         --shard to complete it"
    )]
    IncompleteCache(PathBuf),
    #[error("{0}: not a segmentation cache (no seg-train/manifest.json); write one with `prepcache seg --data DIR --out {0}`")]
    NotASegCache(PathBuf),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("--resume continues a run with its saved settings; only --cache, --epochs, --num-workers, --device, --threads and --profile may be given (start a new run with --config <run>/config.toml to change others)")]
    ResumeChangesSettings,
    #[error("{path}: config version {found}; this train reads version {CONFIG_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

fn invalid(
    key: &'static str,
    flag: &'static str,
    value: impl std::fmt::Display,
    why: &'static str,
) -> ConfigError {
    ConfigError::Invalid {
        key,
        flag,
        value: value.to_string(),
        why,
    }
}

impl RunConfig {
    /// Rejects settings that cannot run, before any file is opened or
    /// written; the cache itself is checked by [`RunConfig::cache`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_data()?;
        self.validate_label()?;
        self.model.validate(INPUT_SHAPE)?;
        self.validate_finetune()?;
        self.validate_optimizer_and_augment()?;
        self.validate_run()
    }

    /// `--label malignancy` needs its CSV, and balances only the book's
    /// way: its interleave has no ratio, schedule or weights.
    fn validate_label(&self) -> Result<(), ConfigError> {
        let d = &self.data;
        if d.label.is_nodule() {
            return match &d.malignancy_csv {
                Some(csv) => Err(invalid(
                    "data.malignancy_csv",
                    "malignancy-csv",
                    csv.display(),
                    "labels only a --label malignancy run",
                )),
                None => Ok(()),
            };
        }
        if d.malignancy_csv.is_none() {
            return Err(invalid(
                "data.label",
                "label",
                d.label,
                "needs --malignancy-csv CSV (the book's annotations_with_malignancy.csv)",
            ));
        }
        const FIXED: &str = "the malignancy interleave is fixed (1/2 malignant, 1/4 benign, 1/4 non-nodules): give a bare --balanced";
        if d.balanced.is_some_and(|r| r != 1) {
            return Err(invalid(
                "data.balanced",
                "balanced",
                d.balanced.unwrap_or(1),
                FIXED,
            ));
        }
        if d.sampler != BalanceSampler::Ratio {
            return Err(invalid(
                "data.sampler",
                "balanced-sampler",
                "weighted",
                FIXED,
            ));
        }
        if let Some(schedule) = &d.balanced_schedule {
            return Err(invalid(
                "data.balanced_schedule",
                "balanced-schedule",
                schedule,
                FIXED,
            ));
        }
        Ok(())
    }

    /// `--finetune-depth` within the model's parameterised blocks, and only
    /// with a model to fine-tune.
    fn validate_finetune(&self) -> Result<(), ConfigError> {
        let i = &self.init;
        let Some(depth) = i.finetune_depth else {
            return Ok(());
        };
        if i.finetune.is_none() {
            return Err(invalid(
                "init.finetune_depth",
                "finetune-depth",
                depth,
                "needs --finetune MODEL",
            ));
        }
        let blocks = crate::model::luna::block_names(&self.model).len();
        if depth == 0 || depth as usize > blocks {
            return Err(ConfigError::FinetuneDepth { depth, blocks });
        }
        Ok(())
    }

    fn validate_data(&self) -> Result<(), ConfigError> {
        let d = &self.data;
        if d.val_stride < 2 {
            return Err(invalid(
                "data.val_stride",
                "val-stride",
                d.val_stride,
                "must be at least 2 (1 would leave nothing to train on)",
            ));
        }
        check_batch_size(d.batch_size)?;
        check_num_workers(d.num_workers)?;
        if d.balanced == Some(0) {
            return Err(invalid(
                "data.balanced",
                "balanced",
                0,
                "the ratio must be at least 1",
            ));
        }
        if d.balanced_schedule.is_some() && d.balanced.is_none() {
            return Err(invalid(
                "data.balanced_schedule",
                "balanced-schedule",
                d.balanced_schedule
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                "needs --balanced (the ratio before the schedule's first epoch)",
            ));
        }
        if d.sampler != BalanceSampler::Ratio && d.balanced.is_none() {
            return Err(invalid(
                "data.sampler",
                "balanced-sampler",
                "weighted",
                "needs --balanced (an unbalanced epoch is a plain shuffle)",
            ));
        }
        if d.epoch_samples == Some(0) {
            return Err(invalid(
                "data.epoch_samples",
                "epoch-samples",
                0,
                "an epoch needs at least one sample",
            ));
        }
        if d.val_samples == Some(0) {
            return Err(invalid(
                "data.val_samples",
                "val-samples",
                0,
                "validation needs at least one sample",
            ));
        }
        Ok(())
    }

    fn validate_optimizer_and_augment(&self) -> Result<(), ConfigError> {
        let o = &self.optimizer;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(invalid(
                "optimizer.lr",
                "lr",
                o.lr,
                "must be a finite value > 0",
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(invalid(
                "optimizer.momentum",
                "momentum",
                o.momentum,
                "must be in [0, 1)",
            ));
        }
        for (key, flag, v) in [
            ("optimizer.weight_decay", "weight-decay", o.weight_decay),
            ("optimizer.gamma", "lr-gamma", o.gamma),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(invalid(key, flag, v, "must be a finite value >= 0"));
            }
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(invalid(
                "optimizer.betas",
                "betas",
                format!("{},{}", o.betas[0], o.betas[1]),
                "both must be in [0, 1)",
            ));
        }
        if !(o.eps > 0.0 && o.eps.is_finite()) {
            return Err(invalid(
                "optimizer.eps",
                "eps",
                o.eps,
                "must be a finite value > 0",
            ));
        }
        if !(0.0..1.0).contains(&o.alpha) {
            return Err(invalid(
                "optimizer.alpha",
                "rmsprop-alpha",
                o.alpha,
                "must be in [0, 1)",
            ));
        }
        if o.step_epochs == 0 {
            return Err(invalid(
                "optimizer.step_epochs",
                "lr-step-epochs",
                0,
                "must be at least 1",
            ));
        }
        if o.schedule_epochs == Some(0) {
            return Err(invalid(
                "optimizer.schedule_epochs",
                "lr-schedule-epochs",
                0,
                "must be at least 1",
            ));
        }
        if o.nesterov && (o.name != OptimizerKind::Sgd || o.momentum == 0.0) {
            return Err(invalid(
                "optimizer.nesterov",
                "nesterov",
                true,
                "needs --optimizer sgd with a momentum > 0 (as torch.optim.SGD)",
            ));
        }
        self.augment.validate()?;
        Ok(())
    }

    fn validate_run(&self) -> Result<(), ConfigError> {
        let r = &self.run;
        if r.epochs == 0 {
            return Err(invalid("run.epochs", "epochs", 0, "must be at least 1"));
        }
        if let Some(t) = r.threads {
            if !(1..=MAX_THREADS).contains(&t) {
                return Err(invalid(
                    "run.threads",
                    "threads",
                    t,
                    "must be between 1 and 1024",
                ));
            }
        }
        if r.patience == Some(0) {
            return Err(invalid("run.patience", "patience", 0, "must be at least 1"));
        }
        if r.patience.is_some() && r.select.is_none() {
            return Err(invalid(
                "run.patience",
                "patience",
                r.patience.unwrap_or_default(),
                "needs --select (the metric that must improve)",
            ));
        }
        if r.validate_every == Some(0) {
            return Err(invalid(
                "run.validate_every",
                "validate-every",
                0,
                "must be at least 1 (1 validates every epoch)",
            ));
        }
        if r.tb_histograms_every == Some(0) {
            return Err(invalid(
                "run.tb_histograms_every",
                "tb-histograms-every",
                0,
                "must be at least 1 (leave it out for no histograms)",
            ));
        }
        device::parse_device_name(&r.device)
            .map_err(|why| invalid("run.device", "device", &r.device, why))?;
        if r.comment.is_empty() || r.comment.contains(['/', '\\']) {
            return Err(invalid(
                "run.comment",
                "COMMENT",
                &r.comment,
                "names folders: must be non-empty, without / or \\",
            ));
        }
        // Names the folder under --runs: a path would put runs outside it.
        let prefix = r.tb_prefix.as_str();
        if prefix.is_empty() || prefix.contains(['/', '\\']) || prefix == "." || prefix == ".." {
            return Err(invalid(
                "run.tb_prefix",
                "tb-prefix",
                prefix,
                "names a folder inside --runs: must be non-empty, not . or .., without / or \\",
            ));
        }
        Ok(())
    }

    /// The cache folder, checked to be one.
    pub fn cache(&self) -> Result<&Path, ConfigError> {
        let cache = self.data.cache.as_deref().ok_or(ConfigError::NoCache)?;
        if !cache.join(shared::cache::format::MANIFEST_FILE).is_file() {
            if cache.join(shared::cache::format::SHARD_DIR).is_dir() {
                return Err(ConfigError::IncompleteCache(cache.to_owned()));
            }
            return Err(ConfigError::NotACache(cache.to_owned()));
        }
        Ok(cache)
    }

    /// The segmentation cache folder (`prepcache seg`'s), checked to hold
    /// its training half.
    pub fn seg_cache(&self) -> Result<&Path, ConfigError> {
        let cache = self.data.cache.as_deref().ok_or(ConfigError::NoCache)?;
        let train = cache.join(shared::seg::TRAIN_DIR);
        if !train.join(shared::cache::format::MANIFEST_FILE).is_file() {
            return Err(ConfigError::NotASegCache(cache.to_owned()));
        }
        Ok(cache)
    }

    /// Reads a `config.toml`; unknown keys and other versions are errors.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        RunConfig::read_on(path, RunConfig::default())
    }

    /// Reads a `config.toml` whose missing keys keep `base`'s values (a
    /// command's preset, such as `train seg`'s chapter 13 recipe).
    pub fn read_on(path: &Path, base: RunConfig) -> Result<Self, ConfigError> {
        let file_err = |reason: String| ConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let found = file
            .get("version")
            .and_then(toml::Value::as_integer)
            .ok_or_else(|| file_err("no `version = 1` key".to_owned()))?;
        if found != i64::from(CONFIG_VERSION) {
            return Err(ConfigError::Version {
                path: path.to_owned(),
                found: found.try_into().unwrap_or(u32::MAX),
            });
        }
        // Checked alone first, from the text, so that errors point at the
        // file's lines.
        let own: RunConfig = toml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        if base == RunConfig::default() {
            return Ok(own);
        }
        let mut merged = toml::Table::try_from(&base).map_err(|e| file_err(e.to_string()))?;
        dotted::merge(&mut merged, file);
        merged
            .try_into()
            .map_err(|e: toml::de::Error| file_err(e.to_string()))
    }

    /// The TOML text `config.toml` holds.
    pub fn to_toml(&self) -> String {
        // Every field is a TOML-representable value, so this cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// The seed, once resolved (a run always resolves it before training).
    pub fn seed(&self) -> u64 {
        self.run.seed.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let mut c = RunConfig::default();
        c.validate().unwrap();
        c.data.cache = Some("cache/demo".into());
        c.data.balanced = Some(2);
        c.run.seed = Some(7);
        c.augment = AugmentConfig::book();
        let text = c.to_toml();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(RunConfig::read(&path).unwrap(), c, "{text}");
        assert!(
            text.contains("[optimizer]") && text.contains("lr = 0.001"),
            "{text}"
        );
    }

    #[test]
    fn a_partial_file_over_a_preset_keeps_the_presets_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.toml");
        std::fs::write(
            &path,
            "version = 1\n[data]\nepoch_samples = 4000\n[run]\nepochs = 8\n",
        )
        .unwrap();
        let mut preset = RunConfig::default();
        preset.optimizer.name = OptimizerKind::Adam;
        preset.data.batch_size = 16;
        preset.run.validate_every = Some(5);
        let c = RunConfig::read_on(&path, preset.clone()).unwrap();
        let mut expected = preset;
        expected.data.epoch_samples = Some(4000);
        expected.run.epochs = 8;
        assert_eq!(c, expected);
        // Errors still name the file's line.
        std::fs::write(&path, "version = 1\n[data]\nepoch_samples = \"many\"\n").unwrap();
        let err = RunConfig::read_on(&path, RunConfig::default()).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn a_partial_file_takes_the_defaults_for_what_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.toml");
        std::fs::write(
            &path,
            "version = 1\n[optimizer]\nname = \"adamw\"\nschedule = \"onecycle\"\n[augment]\nnoise = 10.0\n[data]\nbalanced = 2\nsampler = \"weighted\"\nbalanced_schedule = \"1:1,4:3\"\n",
        )
        .unwrap();
        let c = RunConfig::read(&path).unwrap();
        let mut expected = RunConfig::default();
        expected.optimizer.name = OptimizerKind::AdamW;
        expected.optimizer.schedule = LrSchedule::OneCycle;
        expected.augment.noise = 10.0;
        expected.data.balanced = Some(2);
        expected.data.sampler = BalanceSampler::Weighted;
        expected.data.balanced_schedule = Some("1:1,4:3".parse().unwrap());
        // A file without [compute] predates it: fp32, as it ran then.
        expected.compute = ComputeConfig::fp32_contiguous();
        assert_eq!(c, expected);
        c.validate().unwrap();
        // And the full text of a run reads back to the same settings.
        std::fs::write(&path, c.to_toml()).unwrap();
        assert_eq!(RunConfig::read(&path).unwrap(), c);
        std::fs::write(
            &path,
            "version = 1\n[data]\nbalanced_schedule = \"1:1,1:2\"\n",
        )
        .unwrap();
        let err = RunConfig::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("short.toml") && err.contains("--balanced-schedule"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_other_versions_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = RunConfig::default().to_toml();
        std::fs::write(&path, text.replace("lr = ", "learning_rate = ")).unwrap();
        let err = RunConfig::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("c.toml") && err.contains("learning_rate"),
            "{err}"
        );
        std::fs::write(&path, text.replace("version = 1", "version = 9")).unwrap();
        let err = RunConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains("config version 9"), "{err}");
    }

    #[test]
    fn impossible_settings_name_their_flag() {
        type Breaks = fn(&mut RunConfig);
        let cases: [(&str, Breaks); 11] = [
            ("--batch-size", |c| c.data.batch_size = 0),
            ("--num-workers", |c| c.data.num_workers = 10_000),
            ("--lr", |c| c.optimizer.lr = 0.0),
            ("--lr", |c| c.optimizer.lr = f64::NAN),
            ("--epoch-samples", |c| c.data.epoch_samples = Some(0)),
            ("--momentum", |c| c.optimizer.momentum = 1.0),
            ("--device", |c| c.run.device = "gpu".into()),
            ("--augment-noise", |c| c.augment.noise = -1.0),
            ("--tb-prefix", |c| c.run.tb_prefix = "../x".into()),
            ("--tb-prefix", |c| c.run.tb_prefix = "..".into()),
            ("--batch-size", |c| c.data.batch_size = MAX_BATCH_SIZE + 1),
        ];
        for (flag, break_it) in cases {
            let mut c = RunConfig::default();
            break_it(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn malignancy_and_finetune_settings_are_checked_and_recorded() {
        let mut c = RunConfig::default();
        c.data.label = Label::Malignancy;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--malignancy-csv"), "{err}");
        c.data.malignancy_csv = Some("annotations_with_malignancy.csv".into());
        c.data.balanced = Some(1);
        c.init.finetune = Some("runs/nodule".into());
        c.init.finetune_depth = Some(2);
        c.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, c.to_toml()).unwrap();
        assert_eq!(RunConfig::read(&path).unwrap(), c);
        // The interleave has no ratio, weights or schedule.
        type Breaks = fn(&mut RunConfig);
        let cases: [(&str, Breaks); 5] = [
            ("--balanced", |c| c.data.balanced = Some(3)),
            ("--balanced-sampler", |c| {
                c.data.sampler = BalanceSampler::Weighted
            }),
            ("--balanced-schedule", |c| {
                c.data.balanced_schedule = Some("1:1".parse().unwrap())
            }),
            ("--finetune-depth", |c| c.init.finetune_depth = Some(7)),
            ("--finetune-depth", |c| c.init.finetune = None),
        ];
        for (flag, break_it) in cases {
            let mut broken = c.clone();
            break_it(&mut broken);
            let err = broken.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
        // The book's model has 6 blocks with parameters; depth 6 trains all.
        c.init.finetune_depth = Some(6);
        c.validate().unwrap();
        // A nodule run neither needs nor takes the CSV, and its file says
        // nothing of labels or fine-tuning (as before these keys existed).
        let mut nodule = RunConfig::default();
        let text = nodule.to_toml();
        assert!(
            !text.contains("label") && !text.contains("finetune") && !text.contains("malignancy"),
            "{text}"
        );
        nodule.data.malignancy_csv = Some("x.csv".into());
        let err = nodule.validate().unwrap_err().to_string();
        assert!(err.contains("--malignancy-csv"), "{err}");
    }

    #[test]
    fn a_folder_without_a_manifest_is_not_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = RunConfig::default();
        assert!(matches!(c.cache(), Err(ConfigError::NoCache)));
        c.data.cache = Some(dir.path().to_owned());
        let err = c.cache().unwrap_err().to_string();
        assert!(
            err.contains("not a cache") && err.contains("prepcache build"),
            "{err}"
        );
        // shards/ without a manifest: a build not finished, or not sealed.
        std::fs::create_dir(dir.path().join(shared::cache::format::SHARD_DIR)).unwrap();
        let err = c.cache().unwrap_err().to_string();
        assert!(
            err.contains("incomplete cache") && err.contains("without --shard"),
            "{err}"
        );
        // A classifier cache is not a segmentation cache.
        std::fs::write(dir.path().join(shared::cache::format::MANIFEST_FILE), "{}").unwrap();
        let err = c.seg_cache().unwrap_err().to_string();
        assert!(
            err.contains("not a segmentation cache") && err.contains("prepcache seg"),
            "{err}"
        );
        let train = dir.path().join(shared::seg::TRAIN_DIR);
        std::fs::create_dir(&train).unwrap();
        std::fs::write(train.join(shared::cache::format::MANIFEST_FILE), "{}").unwrap();
        assert_eq!(c.seg_cache().unwrap(), dir.path());
    }
}
