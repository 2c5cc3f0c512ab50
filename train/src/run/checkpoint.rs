//! Checkpoints: `model.safetensors` (weights under the book's `state_dict`
//! names, loadable by PyTorch, with the architecture as JSON metadata so
//! `train eval`/`predict` can rebuild the model from this file alone) and `trainer.safetensors` (the optimizer's
//! state as `<slot>.<param>` tensors, e.g. SGD's `momentum.<param>`, plus the run state as JSON metadata). Both are written
//! atomically: temporary file, fsync, rename.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use shared::durable::DurableWriteError;

use super::best::BestEpoch;
use super::tensor_file::{self, HostTensor, TensorFile};
use crate::config::{legacy, Label, RunConfig};
use crate::model::{ModelConfig, UNetConfig};
use crate::optim::{LossScaleState, Optimize};

pub const MODEL_FILE: &str = "model.safetensors";
pub const TRAINER_FILE: &str = "trainer.safetensors";
const RUN_STATE_KEY: &str = "run_state";
/// `model.safetensors` metadata key holding the [`ModelConfig`] JSON; files
/// without it (older runs, PyTorch exports) hold the book's model.
const ARCHITECTURE_KEY: &str = "luna_architecture";
/// `model.safetensors` metadata key saying what a LunaModel classifies
/// (`nodule` or `malignancy`, [`Label`]); files without it (older runs,
/// imports, PyTorch exports) do not say.
const LABEL_KEY: &str = "luna_label";
/// `model.safetensors` metadata key holding the fingerprint (the index
/// hash) of the cache the weights were trained on, for `eval`/`predict`.
const CACHE_KEY: &str = "luna_cache_fingerprint";
/// No run gets near this many epochs; a larger count is a damaged state.
const MAX_EPOCHS: usize = 1_000_000;
/// PyTorch's BatchNorm keeps this buffer per layer; tch does not, but a
/// strict `load_state_dict` wants it.
pub const BN_STEPS_SUFFIX: &str = ".num_batches_tracked";
const BN_RUNNING_MEAN_SUFFIX: &str = ".running_mean";

/// Where a run stands after a finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunState {
    /// Last finished epoch (1-based).
    pub epoch: usize,
    pub samples_seen: u64,
    pub steps: u64,
    pub best_val_f1: f64,
    /// `<timestamp>` the run's directories are named after (with
    /// `config.run.comment`).
    pub run_stamp: String,
    /// The run's settings, for the record and for resuming.
    pub config: RunConfig,
    /// fp16 runs: the loss scaler, so a resumed run goes on with its scale.
    /// Absent otherwise, which keeps other checkpoints as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScaleState>,
    /// `--select` runs: the best epoch so far (its checkpoint is in `best/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestEpoch>,
    /// The `manifest.json` fingerprint (BLAKE3 of `index.bin`) of the cache
    /// the run trains on; absent in checkpoints of an older `train`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_fingerprint: Option<String>,
}

/// A run state as any version wrote it: checkpoints made before the typed
/// configuration hold the raw flags under `args` instead of `config`.
#[derive(Deserialize)]
struct StoredRunState {
    epoch: usize,
    samples_seen: u64,
    steps: u64,
    best_val_f1: f64,
    run_stamp: String,
    config: Option<RunConfig>,
    args: Option<serde_json::Value>,
    #[serde(default)]
    loss_scale: Option<LossScaleState>,
    #[serde(default)]
    best: Option<BestEpoch>,
    #[serde(default)]
    cache_fingerprint: Option<String>,
}

impl StoredRunState {
    fn into_state(self) -> Result<RunState, String> {
        let config = match (self.config, self.args) {
            (Some(config), _) => config,
            (None, Some(args)) => legacy::from_args(&args).map_err(|e| e.to_string())?,
            (None, None) => return Err("no `config` (nor older `args`) in the run state".into()),
        };
        config
            .validate()
            .map_err(|e| format!("recorded settings: {e}"))?;
        if self.epoch > MAX_EPOCHS {
            return Err(format!(
                "records epoch {}, more than any run has ({MAX_EPOCHS})",
                self.epoch
            ));
        }
        Ok(RunState {
            epoch: self.epoch,
            samples_seen: self.samples_seen,
            steps: self.steps,
            best_val_f1: self.best_val_f1,
            run_stamp: self.run_stamp,
            config,
            loss_scale: self.loss_scale,
            best: self.best,
            cache_fingerprint: self.cache_fingerprint,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("{path}: tensor {tensor} does not match its checksum: the file is damaged")]
    Damaged { path: PathBuf, tensor: String },
}

impl From<DurableWriteError> for CheckpointError {
    fn from(e: DurableWriteError) -> Self {
        CheckpointError::Io {
            path: e.path,
            source: e.error,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A model's architecture as its weights file records it: a metadata key
/// (each model's own, so no reader mistakes one model for another) and
/// its configuration as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub key: &'static str,
    pub json: String,
}

/// The segmentation U-Net's metadata key.
pub const UNET_ARCHITECTURE_KEY: &str = "luna_unet_architecture";

impl Architecture {
    /// LunaModel (or a variant) as `config` builds it.
    pub fn luna(config: &ModelConfig) -> Result<Self, serde_json::Error> {
        Ok(Architecture {
            key: ARCHITECTURE_KEY,
            json: serde_json::to_string(config)?,
        })
    }

    /// The segmentation U-Net as `config` builds it.
    pub fn unet(config: &UNetConfig) -> Result<Self, serde_json::Error> {
        Ok(Architecture {
            key: UNET_ARCHITECTURE_KEY,
            json: serde_json::to_string(config)?,
        })
    }
}

/// Writes `dir/model.safetensors` alone: the weights of `vs`, a
/// `num_batches_tracked` of `bn_steps` beside each BatchNorm (what a
/// strict PyTorch `load_state_dict` wants), the architecture, what the
/// model classifies and the cache's fingerprint when known. Returns the
/// file's path.
pub fn write_model(
    dir: &Path,
    vs: &VarStore,
    bn_steps: i64,
    architecture: &Architecture,
    label: Option<Label>,
    cache_fingerprint: Option<&str>,
) -> Result<PathBuf, CheckpointError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let variables = vs.variables();
    let mut weights: Vec<(String, HostTensor)> = variables
        .iter()
        .map(|(n, t)| (n.clone(), HostTensor::from_tensor(t)))
        .collect();
    for name in variables.keys() {
        if let Some(layer) = name.strip_suffix(BN_RUNNING_MEAN_SUFFIX) {
            weights.push((
                format!("{layer}{BN_STEPS_SUFFIX}"),
                HostTensor::from_tensor(&Tensor::from(bn_steps)),
            ));
        }
    }
    let mut meta = BTreeMap::from([(architecture.key.to_owned(), architecture.json.clone())]);
    if let Some(label) = label {
        meta.insert(LABEL_KEY.to_owned(), label.to_string());
    }
    if let Some(fingerprint) = cache_fingerprint {
        meta.insert(CACHE_KEY.to_owned(), fingerprint.to_owned());
    }
    let path = dir.join(MODEL_FILE);
    tensor_file::write(&path, &weights, meta)?;
    Ok(path)
}

/// Writes both files into `dir`, recording LunaModel's architecture
/// (`state.config.model`) and the cache's fingerprint with the weights.
pub fn save(
    dir: &Path,
    vs: &VarStore,
    optimizer: &impl Optimize,
    state: &RunState,
) -> Result<(), CheckpointError> {
    save_as(dir, vs, optimizer, state, None)
}

/// [`save`] for any model: `architecture` is what the weights file
/// records (LunaModel's from `state` when `None`, with the run's label).
pub fn save_as(
    dir: &Path,
    vs: &VarStore,
    optimizer: &impl Optimize,
    state: &RunState,
    architecture: Option<&Architecture>,
) -> Result<(), CheckpointError> {
    let (architecture, label) = match architecture {
        Some(a) => (a.clone(), None),
        None => {
            let luna =
                Architecture::luna(&state.config.model).map_err(|e| CheckpointError::Format {
                    path: dir.join(MODEL_FILE),
                    reason: e.to_string(),
                })?;
            (luna, Some(state.config.data.label))
        }
    };
    let bn_steps = state.steps as i64;
    write_model(
        dir,
        vs,
        bn_steps,
        &architecture,
        label,
        state.cache_fingerprint.as_deref(),
    )?;
    let optimizer_state: Vec<(String, HostTensor)> = optimizer
        .state()
        .iter()
        .map(|(n, t)| (n.clone(), HostTensor::from_tensor(t)))
        .collect();
    let trainer_path = dir.join(TRAINER_FILE);
    let state_json = serde_json::to_string(state).map_err(|e| CheckpointError::Format {
        path: trainer_path.clone(),
        reason: e.to_string(),
    })?;
    tensor_file::write(
        &trainer_path,
        &optimizer_state,
        BTreeMap::from([(RUN_STATE_KEY.to_owned(), state_json)]),
    )
}

/// The directory a `--resume` argument names: the checkpoint directory
/// itself or either file in it.
pub fn checkpoint_dir(arg: &Path) -> PathBuf {
    if arg.is_file() {
        arg.parent().map(Path::to_owned).unwrap_or_default()
    } else {
        arg.to_owned()
    }
}

/// Reads only the run state (to rebuild the run's settings before the model exists).
pub fn read_state(dir: &Path) -> Result<RunState, CheckpointError> {
    let path = dir.join(TRAINER_FILE);
    state_of(&path, &tensor_file::read(&path)?.metadata)
}

fn state_of(path: &Path, meta: &HashMap<String, String>) -> Result<RunState, CheckpointError> {
    let json = meta
        .get(RUN_STATE_KEY)
        .ok_or_else(|| CheckpointError::Mismatch {
            path: path.to_owned(),
            reason: format!("no {RUN_STATE_KEY:?} metadata"),
        })?;
    let stored: StoredRunState =
        serde_json::from_str(json).map_err(|e| CheckpointError::Format {
            path: path.to_owned(),
            reason: format!("run state: {e}"),
        })?;
    stored
        .into_state()
        .map_err(|reason| CheckpointError::Mismatch {
            path: path.to_owned(),
            reason,
        })
}

/// The `model.safetensors` a `--checkpoint` argument names: the run's
/// checkpoint directory or either file in it.
pub fn model_file(arg: &Path) -> PathBuf {
    checkpoint_dir(arg).join(MODEL_FILE)
}

/// The architecture recorded in the checkpoint's `model.safetensors`
/// (the book's model when the file has none).
pub fn read_architecture(ckpt: &Path) -> Result<ModelConfig, CheckpointError> {
    let path = model_file(ckpt);
    let meta = tensor_file::read_metadata(&path)?;
    luna_architecture(&path, &meta)
}

fn luna_architecture(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<ModelConfig, CheckpointError> {
    match meta.get(ARCHITECTURE_KEY) {
        None => Ok(ModelConfig::default()),
        Some(json) => serde_json::from_str(json).map_err(|e| CheckpointError::Format {
            path: path.to_owned(),
            reason: format!("architecture: {e}"),
        }),
    }
}

/// What the checkpoint's LunaModel classifies, as its `model.safetensors`
/// records it: `None` for a file that does not say (a run of an older
/// `train`, an import, a PyTorch export, a U-Net).
pub fn read_label(ckpt: &Path) -> Result<Option<Label>, CheckpointError> {
    let path = model_file(ckpt);
    let meta = tensor_file::read_metadata(&path)?;
    meta.get(LABEL_KEY)
        .map(|text| {
            text.parse().map_err(|why| CheckpointError::Format {
                path: path.clone(),
                reason: format!("{LABEL_KEY}: {why}"),
            })
        })
        .transpose()
}

/// Which model a `model.safetensors` holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SavedArchitecture {
    /// LunaModel (the nodule or the malignancy classifier).
    Luna(ModelConfig),
    /// Chapter 13's U-Net.
    UNet(UNetConfig),
}

/// The model recorded in the checkpoint's `model.safetensors`: the U-Net
/// when its key is there, else LunaModel as [`read_architecture`] reads it.
pub fn read_saved_architecture(ckpt: &Path) -> Result<SavedArchitecture, CheckpointError> {
    let path = model_file(ckpt);
    let meta = tensor_file::read_metadata(&path)?;
    match meta.get(UNET_ARCHITECTURE_KEY) {
        Some(json) => serde_json::from_str(json)
            .map(SavedArchitecture::UNet)
            .map_err(|e| CheckpointError::Format {
                path: path.clone(),
                reason: format!("U-Net architecture: {e}"),
            }),
        None => luna_architecture(&path, &meta).map(SavedArchitecture::Luna),
    }
}

/// What a `model.safetensors` says about itself besides its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFileInfo {
    pub path: PathBuf,
    /// Whether its tensors carried checksums (all verified on loading).
    pub checksummed: bool,
    /// The fingerprint of the cache it was trained on, when recorded.
    pub cache_fingerprint: Option<String>,
}

/// Copies the weights of the checkpoint `ckpt` (directory or file) into
/// `vs`; needs only `model.safetensors`. Every variable of `vs` must be
/// there with its shape, and nothing else.
pub fn load_weights(ckpt: &Path, vs: &mut VarStore) -> Result<ModelFileInfo, CheckpointError> {
    let model_path = model_file(ckpt);
    let TensorFile {
        tensors,
        mut metadata,
        checksummed,
    } = tensor_file::read(&model_path)?;
    let saved: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(name, _)| !name.ends_with(BN_STEPS_SUFFIX))
        .collect();
    copy_weights(&model_path, saved, vs)?;
    Ok(ModelFileInfo {
        path: model_path,
        checksummed,
        cache_fingerprint: metadata.remove(CACHE_KEY),
    })
}

fn copy_weights(
    model_path: &Path,
    mut saved: HashMap<String, Tensor>,
    vs: &mut VarStore,
) -> Result<(), CheckpointError> {
    let vars = vs.variables();
    for (name, var) in &vars {
        let src = saved
            .remove(name)
            .ok_or_else(|| CheckpointError::Mismatch {
                path: model_path.to_owned(),
                reason: format!("missing tensor {name}"),
            })?;
        if src.size() != var.size() {
            return Err(CheckpointError::Mismatch {
                path: model_path.to_owned(),
                reason: format!(
                    "{name} has shape {:?}, the model wants {:?}",
                    src.size(),
                    var.size()
                ),
            });
        }
        tch::no_grad(|| var.shallow_clone().copy_(&src));
    }
    if let Some(extra) = saved.keys().next() {
        return Err(CheckpointError::Mismatch {
            path: model_path.to_owned(),
            reason: format!("tensor {extra} is not part of this LunaModel"),
        });
    }
    Ok(())
}

/// Loads weights into `vs` and the optimizer's state into `optimizer`;
/// returns the run state. Files without checksums (an older `train`'s)
/// load with a note saying they could not be verified.
pub fn load(
    dir: &Path,
    vs: &mut VarStore,
    optimizer: &mut impl Optimize,
) -> Result<RunState, CheckpointError> {
    let weights = load_weights(dir, vs)?;

    let trainer_path = dir.join(TRAINER_FILE);
    let trainer = tensor_file::read(&trainer_path)?;
    let state = state_of(&trainer_path, &trainer.metadata)?;
    optimizer
        .load_state(trainer.tensors)
        .map_err(|e| CheckpointError::Mismatch {
            path: trainer_path.clone(),
            reason: e.to_string(),
        })?;
    let unverified: Vec<String> = [
        (!weights.checksummed).then_some(MODEL_FILE),
        (!trainer.checksummed).then_some(TRAINER_FILE),
    ]
    .into_iter()
    .flatten()
    .map(str::to_owned)
    .collect();
    if !unverified.is_empty() {
        println!(
            "note: {} in {} carry no tensor checksums (an older train wrote them): loaded unverified",
            unverified.join(" and "),
            dir.display()
        );
    }
    Ok(state)
}
