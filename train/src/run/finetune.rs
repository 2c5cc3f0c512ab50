//! Fine-tuning (chapter 14's `--finetune MODEL --finetune-depth N`): a new
//! run starts from another LunaModel's weights, all but the head's, which
//! keeps its fresh initialisation, and trains only its last N blocks.
//!
//! Which blocks are frozen is the run's configuration (`init.finetune`,
//! `init.finetune_depth`), applied when the model is built
//! ([`LunaModel::freeze_all_but_last`](crate::model::LunaModel::freeze_all_but_last)),
//! so a resumed run freezes the same ones; the weights are read here, once,
//! when the run starts. MODEL is what `train analyze` takes: a run folder
//! (its `best/` epoch when it has one), a `model.safetensors`, or one of
//! the book's `torch.save` files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::Tensor;

use super::best;
use super::checkpoint::{self, CheckpointError, SavedArchitecture, BN_STEPS_SUFFIX};
use super::tensor_file;
use crate::config::RunConfig;
use crate::model::import::{self, BookModel};
use crate::model::luna::{block_names, block_of, HEAD_BLOCK};
use crate::model::{torch_state, ModelConfig};

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error("--finetune {0}: no such file or folder")]
    Missing(PathBuf),
    #[error("--finetune {path}: holds {holds}, not a LunaModel classifier")]
    NotLuna { path: PathBuf, holds: &'static str },
    #[error("--finetune: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("--finetune {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("--finetune {path}: holds LunaModel {found}, this run builds {wanted}; give the run the same --width, --depth, --block-batchnorm, --residual and --input-* settings")]
    Architecture {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("--finetune {path}: {reason}")]
    Tensor { path: PathBuf, reason: String },
}

/// The weights a fine-tuned run starts from.
pub struct Pretrained {
    /// The file they came from.
    pub file: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Pretrained {
    /// Reads `path` and checks that it is a LunaModel of the architecture
    /// `wanted` (dropout, which has no weights, may differ).
    pub fn read(path: &Path, wanted: &ModelConfig) -> Result<Self, FinetuneError> {
        if !path.exists() {
            return Err(FinetuneError::Missing(path.to_owned()));
        }
        let is_ours = path.is_dir() || path.extension().is_some_and(|e| e == "safetensors");
        let (file, found, tensors) = if is_ours {
            read_checkpoint(&best::prefer_best(path, "train --finetune"))?
        } else {
            read_torch_save(path)?
        };
        let same = ModelConfig {
            dropout: wanted.dropout,
            ..found
        };
        if same != *wanted {
            return Err(FinetuneError::Architecture {
                path: file,
                found: describe(&found),
                wanted: describe(wanted),
            });
        }
        Ok(Pretrained { file, tensors })
    }

    /// Copies every weight but the head's into `vs` (the run's model, built
    /// for the same architecture); returns how many tensors it copied.
    pub fn load_into(&self, vs: &VarStore) -> Result<usize, FinetuneError> {
        let err = |reason: String| FinetuneError::Tensor {
            path: self.file.clone(),
            reason,
        };
        let mut copied = 0;
        for (name, var) in vs.variables() {
            if block_of(&name) == HEAD_BLOCK {
                continue;
            }
            let src = self
                .tensors
                .get(&name)
                .ok_or_else(|| err(format!("has no tensor {name}")))?;
            if src.size() != var.size() {
                return Err(err(format!(
                    "{name} is {:?}, the run's model wants {:?}",
                    src.size(),
                    var.size()
                )));
            }
            tch::no_grad(|| var.shallow_clone().f_copy_(src))
                .map_err(|e| err(format!("copying {name}: {e}")))?;
            copied += 1;
        }
        Ok(copied)
    }
}

/// Our `model.safetensors` (of a run folder or named), its tensors
/// checksum-verified.
fn read_checkpoint(
    ckpt: &Path,
) -> Result<(PathBuf, ModelConfig, HashMap<String, Tensor>), FinetuneError> {
    let file = checkpoint::model_file(ckpt);
    let config = match checkpoint::read_saved_architecture(ckpt)? {
        SavedArchitecture::Luna(config) => config,
        SavedArchitecture::UNet(_) => {
            return Err(FinetuneError::NotLuna {
                path: file,
                holds: "chapter 13's U-Net",
            })
        }
    };
    let tensors = tensor_file::read(&file)?
        .tensors
        .into_iter()
        .filter(|(name, _)| !name.ends_with(BN_STEPS_SUFFIX))
        .collect();
    Ok((file, config, tensors))
}

/// One of the book's `torch.save` files, read as `train import-state`
/// reads it (nothing in it is executed).
fn read_torch_save(
    path: &Path,
) -> Result<(PathBuf, ModelConfig, HashMap<String, Tensor>), FinetuneError> {
    let unreadable = |reason: String| FinetuneError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let state = torch_state::read(path).map_err(|e| unreadable(e.to_string()))?;
    let imported = import::import(&state).map_err(|e| unreadable(e.to_string()))?;
    if imported.model == BookModel::UNet {
        return Err(FinetuneError::NotLuna {
            path: path.to_owned(),
            holds: "the book's U-Net",
        });
    }
    Ok((
        path.to_owned(),
        ModelConfig::default(),
        imported.vs.variables(),
    ))
}

/// "the book's" or the variant's settings.
fn describe(config: &ModelConfig) -> String {
    if config.is_book() {
        "(the book's)".to_owned()
    } else {
        format!("{config:?}")
    }
}

/// The run log's line about fine-tuning: what trains (`trainable` of
/// `total` parameters) and what is frozen; `None` for a run that does not
/// fine-tune. A `resumed` run's weights are its checkpoint's.
pub fn describe_run(
    config: &RunConfig,
    trainable: i64,
    total: i64,
    resumed: bool,
) -> Option<String> {
    let source = config.init.finetune.as_ref()?;
    let names = block_names(&config.model);
    let split = names.len().saturating_sub(config.init.finetune_depth());
    let frozen = if split == 0 {
        "none".to_owned()
    } else {
        names[..split].join(" ")
    };
    Some(format!(
        "train: fine-tuning from {}{} (--finetune-depth {}): training {} ({trainable} of {total} parameters); frozen: {frozen}",
        source.display(),
        if resumed { ", resumed from the run's checkpoint" } else { "" },
        config.init.finetune_depth(),
        names[split..].join(" "),
    ))
}
