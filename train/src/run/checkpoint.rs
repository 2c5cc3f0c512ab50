//! Checkpoints: `model.safetensors` (weights under the book's `state_dict`
//! names, loadable by PyTorch, with the architecture as JSON metadata so
//! `train eval`/`predict` can rebuild the model from this file alone) and `trainer.safetensors` (the optimizer's
//! state as `<slot>.<param>` tensors, e.g. SGD's `momentum.<param>`, plus the run state as JSON metadata). Both are written
//! atomically: temporary file, fsync, rename.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use shared::durable::{write_atomically, DurableWriteError};

use super::best::BestEpoch;
use crate::config::{legacy, RunConfig};
use crate::model::ModelConfig;
use crate::optim::{LossScaleState, Optimize};

pub const MODEL_FILE: &str = "model.safetensors";
pub const TRAINER_FILE: &str = "trainer.safetensors";
const RUN_STATE_KEY: &str = "run_state";
/// `model.safetensors` metadata key holding the [`ModelConfig`] JSON; files
/// without it (older runs, PyTorch exports) hold the book's model.
const ARCHITECTURE_KEY: &str = "luna_architecture";
/// PyTorch's BatchNorm keeps this buffer per layer; tch does not, but a
/// strict `load_state_dict` wants it.
const BN_STEPS_SUFFIX: &str = ".num_batches_tracked";
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
        Ok(RunState {
            epoch: self.epoch,
            samples_seen: self.samples_seen,
            steps: self.steps,
            best_val_f1: self.best_val_f1,
            run_stamp: self.run_stamp,
            config,
            loss_scale: self.loss_scale,
            best: self.best,
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

/// A host copy of a tensor in safetensors' terms.
struct HostTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    fn from_tensor(t: &Tensor) -> Self {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let (dtype, kind) = match t.kind() {
            Kind::Int64 => (Dtype::I64, Kind::Int64),
            _ => (Dtype::F32, Kind::Float),
        };
        let t = t.to_kind(kind);
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, numel);
        HostTensor {
            dtype,
            shape: t.size().iter().map(|&d| d as usize).collect(),
            bytes,
        }
    }
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// One metadata entry per file, on purpose: the safetensors crate writes the
/// metadata map in `HashMap` order, which differs from process to process
/// (safetensors issue #584), and a checkpoint must be byte-identical when the
/// weights are.
fn write_safetensors(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: (&str, String),
) -> Result<(), CheckpointError> {
    let metadata = HashMap::from([(metadata.0.to_owned(), metadata.1)]);
    let bytes = safetensors::tensor::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &Some(metadata),
    )
    .map_err(|e| CheckpointError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(write_atomically(path, &bytes)?)
}

/// Writes both files into `dir`, recording the run's architecture
/// (`state.config.model`) with the weights.
pub fn save(
    dir: &Path,
    vs: &VarStore,
    optimizer: &impl Optimize,
    state: &RunState,
) -> Result<(), CheckpointError> {
    let architecture = &state.config.model;
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
                HostTensor::from_tensor(&Tensor::from(state.steps as i64)),
            ));
        }
    }
    let model_path = dir.join(MODEL_FILE);
    let architecture_json =
        serde_json::to_string(architecture).map_err(|e| CheckpointError::Format {
            path: model_path.clone(),
            reason: e.to_string(),
        })?;
    write_safetensors(&model_path, &weights, (ARCHITECTURE_KEY, architecture_json))?;

    let optimizer_state: Vec<(String, HostTensor)> = optimizer
        .state()
        .iter()
        .map(|(n, t)| (n.clone(), HostTensor::from_tensor(t)))
        .collect();
    let state_json = serde_json::to_string(state).map_err(|e| CheckpointError::Format {
        path: dir.join(TRAINER_FILE),
        reason: e.to_string(),
    })?;
    write_safetensors(
        &dir.join(TRAINER_FILE),
        &optimizer_state,
        (RUN_STATE_KEY, state_json),
    )
}

type NamedTensors = Vec<(String, Tensor)>;

/// Named tensors and metadata of one safetensors file.
fn read_safetensors(
    path: &Path,
) -> Result<(NamedTensors, HashMap<String, String>), CheckpointError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let format = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_owned(),
        reason: format!("{e:?}"),
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(format)?;
    let st = SafeTensors::deserialize(&bytes).map_err(format)?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::I64 => Kind::Int64,
            other => {
                return Err(CheckpointError::Mismatch {
                    path: path.to_owned(),
                    reason: format!("tensor {name} has dtype {other:?}; expected F32 or I64"),
                })
            }
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.push((name, Tensor::from_data_size(view.data(), &shape, kind)));
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
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
    let (_, meta) = read_safetensors(&path)?;
    let json = meta
        .get(RUN_STATE_KEY)
        .ok_or_else(|| CheckpointError::Mismatch {
            path: path.clone(),
            reason: format!("no {RUN_STATE_KEY:?} metadata"),
        })?;
    let stored: StoredRunState =
        serde_json::from_str(json).map_err(|e| CheckpointError::Format {
            path: path.clone(),
            reason: format!("run state: {e}"),
        })?;
    stored
        .into_state()
        .map_err(|reason| CheckpointError::Mismatch {
            path: path.clone(),
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
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Format {
        path: path.clone(),
        reason: format!("{e:?}"),
    })?;
    match meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(ARCHITECTURE_KEY))
    {
        None => Ok(ModelConfig::default()),
        Some(json) => serde_json::from_str(json).map_err(|e| CheckpointError::Format {
            path: path.clone(),
            reason: format!("architecture: {e}"),
        }),
    }
}

/// Copies the weights of the checkpoint `ckpt` (directory or file) into
/// `vs`; needs only `model.safetensors`. Every variable of `vs` must be
/// there with its shape, and nothing else.
pub fn load_weights(ckpt: &Path, vs: &mut VarStore) -> Result<(), CheckpointError> {
    let model_path = model_file(ckpt);
    let (tensors, _) = read_safetensors(&model_path)?;
    let saved: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(name, _)| !name.ends_with(BN_STEPS_SUFFIX))
        .collect();
    copy_weights(&model_path, saved, vs)
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
/// returns the run state.
pub fn load(
    dir: &Path,
    vs: &mut VarStore,
    optimizer: &mut impl Optimize,
) -> Result<RunState, CheckpointError> {
    load_weights(dir, vs)?;

    let trainer_path = dir.join(TRAINER_FILE);
    let (tensors, _) = read_safetensors(&trainer_path)?;
    optimizer
        .load_state(tensors)
        .map_err(|e| CheckpointError::Mismatch {
            path: trainer_path.clone(),
            reason: e.to_string(),
        })?;
    read_state(dir)
}
