//! A PyTorch state dict (the book's `.state` checkpoints, read by
//! [`torch_state`](super::torch_state)) taken into one of our models: which
//! of the book's two models it is, every tensor's name and shape checked
//! against that model built with its default (the book's) configuration,
//! then copied into a fresh [`VarStore`]. The first tensor that does not
//! fit is named, in the file's order, so a user sees the one to look at.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::torch_state::StateDict;
use super::{BiasInit, LunaModel, ModelConfig, UNet, UNetConfig};

/// PyTorch's BatchNorm step counter: no variable of ours, only a count.
const BN_STEPS_SUFFIX: &str = ".num_batches_tracked";

/// Which of the book's models a state dict holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookModel {
    /// Chapters 11–12's classifier, `LunaModel`.
    Luna,
    /// Chapter 13's `UNetWrapper`.
    UNet,
}

impl BookModel {
    /// By the top-level module of a tensor name (`tail_batchnorm.weight`,
    /// `unet.down_path.0…`).
    fn of_name(name: &str) -> Option<Self> {
        let module = name.split('.').next().unwrap_or_default();
        match module {
            "tail_batchnorm" | "head_linear" => Some(BookModel::Luna),
            m if m
                .strip_prefix("block")
                .is_some_and(|n| n.parse::<u32>().is_ok()) =>
            {
                Some(BookModel::Luna)
            }
            "input_batchnorm" | "unet" => Some(BookModel::UNet),
            _ => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            BookModel::Luna => "the book's LunaModel",
            BookModel::UNet => "the book's U-Net (UNetWrapper, depth 3, wf 4)",
        }
    }

    /// The model with its default configuration, in a fresh CPU store.
    fn build(self) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        // Every weight is overwritten by the import; the init scheme is moot.
        match self {
            BookModel::Luna => {
                LunaModel::with_config(&vs.root(), &ModelConfig::default(), BiasInit::Uniform);
            }
            BookModel::UNet => {
                UNet::new(&vs.root(), &UNetConfig::default());
            }
        }
        vs
    }
}

impl std::fmt::Display for BookModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: the state dict holds no tensors")]
    Empty { path: PathBuf },
    #[error("{path}: tensor {name:?} belongs to neither the book's LunaModel nor its U-Net")]
    Unknown { path: PathBuf, name: String },
    #[error("{path}: tensor {name:?} is {found:?}, {model} expects {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        model: BookModel,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("{path}: tensor {name:?} is {kind:?}, {model} expects floating point")]
    Kind {
        path: PathBuf,
        name: String,
        model: BookModel,
        kind: Kind,
    },
    #[error("{path}: tensor {name:?} is not part of {model}")]
    Unexpected {
        path: PathBuf,
        name: String,
        model: BookModel,
    },
    #[error("{path}: no tensor {name:?}, which {model} needs")]
    Missing {
        path: PathBuf,
        name: String,
        model: BookModel,
    },
}

/// A state dict as one of our models.
pub struct Imported {
    pub model: BookModel,
    /// The weights, on the CPU.
    pub vs: VarStore,
    /// The file's largest `num_batches_tracked` (0 without any).
    pub bn_steps: i64,
    /// Elements over all weights and buffers copied.
    pub elements: i64,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("model", &self.model)
            .field("bn_steps", &self.bn_steps)
            .field("elements", &self.elements)
            .finish_non_exhaustive()
    }
}

/// Recognises the model of `state` and copies its tensors into it.
pub fn import(state: &StateDict) -> Result<Imported, ImportError> {
    let path = || state.path.clone();
    let weights: Vec<&(String, Tensor)> = state
        .tensors
        .iter()
        .filter(|(n, _)| !n.ends_with(BN_STEPS_SUFFIX))
        .collect();
    let first = weights
        .first()
        .ok_or_else(|| ImportError::Empty { path: path() })?;
    let model = BookModel::of_name(&first.0).ok_or_else(|| ImportError::Unknown {
        path: path(),
        name: first.0.clone(),
    })?;
    let vs = model.build();
    let vars: HashMap<String, Tensor> = vs.variables();
    check(state, model, &weights, &vars)?;
    let mut elements = 0;
    tch::no_grad(|| {
        for (name, src) in &weights {
            let dst = &vars[name];
            dst.shallow_clone().copy_(&src.to_kind(dst.kind()));
            elements += src.numel() as i64;
        }
    });
    let bn_steps = state
        .tensors
        .iter()
        .filter(|(n, t)| n.ends_with(BN_STEPS_SUFFIX) && t.numel() == 1)
        .map(|(_, t)| t.int64_value(&[]))
        .max()
        .unwrap_or(0);
    Ok(Imported {
        model,
        vs,
        bn_steps,
        elements,
    })
}

/// Every tensor of the file is one of `vars` with its shape and a float
/// dtype, and every one of `vars` is in the file.
fn check(
    state: &StateDict,
    model: BookModel,
    weights: &[&(String, Tensor)],
    vars: &HashMap<String, Tensor>,
) -> Result<(), ImportError> {
    let path = || state.path.clone();
    for (name, tensor) in weights {
        let Some(var) = vars.get(name) else {
            let unknown = BookModel::of_name(name).is_none();
            return Err(if unknown {
                ImportError::Unknown {
                    path: path(),
                    name: name.clone(),
                }
            } else {
                ImportError::Unexpected {
                    path: path(),
                    name: name.clone(),
                    model,
                }
            });
        };
        if tensor.size() != var.size() {
            return Err(ImportError::Shape {
                path: path(),
                name: name.clone(),
                model,
                found: tensor.size(),
                expected: var.size(),
            });
        }
        if !tensor.is_floating_point() {
            return Err(ImportError::Kind {
                path: path(),
                name: name.clone(),
                model,
                kind: tensor.kind(),
            });
        }
    }
    let present: HashSet<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
    let mut missing: Vec<&String> = vars
        .keys()
        .filter(|n| !present.contains(n.as_str()))
        .collect();
    missing.sort();
    match missing.first() {
        Some(name) => Err(ImportError::Missing {
            path: path(),
            name: (*name).clone(),
            model,
        }),
        None => Ok(()),
    }
}
