//! The models `train analyze` runs, each from what a user has at hand: a
//! run's checkpoint folder (its `best/` epoch when there is one), a
//! `model.safetensors`, or one of the book's `torch.save` files (`.state`),
//! read in place as `train import-state` reads it. Each is checked to be
//! the model its flag wants before anything runs, so a U-Net given as the
//! classifier is one line naming the flag, the file and what it holds.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::nn::VarStore;
use tch::Device;

use crate::model::compute::ComputeConfig;
use crate::model::import::{self, BookModel};
use crate::model::{prepare_weights, torch_state, BiasInit, LunaModel, ModelConfig, UNet};
use crate::model::{UNetConfig, INPUT_SHAPE};
use crate::run::best;
use crate::run::checkpoint::{self, SavedArchitecture};

/// What a model is for, which names its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Segmentation,
    Nodule,
    Malignancy,
}

impl Role {
    pub fn flag(self) -> &'static str {
        match self {
            Role::Segmentation => "--seg-model",
            Role::Nodule => "--cls-model",
            Role::Malignancy => "--mal-model",
        }
    }

    fn wants(self) -> &'static str {
        match self {
            Role::Segmentation => "chapter 13's U-Net",
            Role::Nodule | Role::Malignancy => "a LunaModel classifier",
        }
    }
}

/// A model in eval mode on its device, with the weights it refers to.
pub struct Loaded<M> {
    pub model: M,
    /// The file the weights came from.
    pub file: PathBuf,
    // Owns the tensors `model` refers to.
    _vs: VarStore,
}

/// What a model file holds, before it is built.
enum Stored {
    /// Our `model.safetensors`, with its recorded architecture.
    Checkpoint(PathBuf, SavedArchitecture),
    /// A `torch.save` state dict, imported on the CPU.
    TorchSave(PathBuf, import::Imported),
}

impl Stored {
    fn read(path: &Path, role: Role) -> Result<Stored> {
        let flag = role.flag();
        if !path.exists() {
            bail!("{flag} {}: no such file or folder", path.display());
        }
        let is_ours = path.is_dir() || path.extension().is_some_and(|e| e == "safetensors");
        if is_ours {
            let path = best::prefer_best(path, "analyze");
            let architecture = checkpoint::read_saved_architecture(&path)
                .with_context(|| format!("{flag} {}", path.display()))?;
            return Ok(Stored::Checkpoint(
                checkpoint::model_file(&path),
                architecture,
            ));
        }
        let state =
            torch_state::read(path).with_context(|| format!("{flag} {}", path.display()))?;
        let imported =
            import::import(&state).with_context(|| format!("{flag} {}", path.display()))?;
        Ok(Stored::TorchSave(path.to_owned(), imported))
    }

    fn file(&self) -> &Path {
        match self {
            Stored::Checkpoint(p, _) | Stored::TorchSave(p, _) => p,
        }
    }

    fn holds(&self) -> &'static str {
        match self {
            Stored::Checkpoint(_, SavedArchitecture::UNet(_))
            | Stored::TorchSave(
                _,
                import::Imported {
                    model: BookModel::UNet,
                    ..
                },
            ) => "chapter 13's U-Net",
            _ => "a LunaModel classifier",
        }
    }

    fn wrong_kind(&self, role: Role) -> anyhow::Error {
        anyhow::anyhow!(
            "{} {}: holds {}, not {}",
            role.flag(),
            self.file().display(),
            self.holds(),
            role.wants()
        )
    }

    /// Fills `vs` (built for the same model) with the stored weights.
    fn copy_into(self, vs: &mut VarStore, role: Role) -> Result<PathBuf> {
        let flag = role.flag();
        match self {
            Stored::Checkpoint(file, _) => {
                checkpoint::load_weights(&file, vs)
                    .with_context(|| format!("{flag} {}", file.display()))?;
                Ok(file)
            }
            Stored::TorchSave(file, imported) => {
                vs.copy(&imported.vs)
                    .with_context(|| format!("{flag} {}: copying the weights", file.display()))?;
                Ok(file)
            }
        }
    }
}

/// The U-Net of `path` on `device`, its weights in `compute`'s layout.
pub fn load_unet(path: &Path, device: Device, compute: ComputeConfig) -> Result<Loaded<UNet>> {
    let role = Role::Segmentation;
    let stored = Stored::read(path, role)?;
    let config = match &stored {
        Stored::Checkpoint(_, SavedArchitecture::UNet(c)) => *c,
        Stored::TorchSave(_, i) if i.model == BookModel::UNet => UNetConfig::default(),
        _ => return Err(stored.wrong_kind(role)),
    };
    let mut vs = VarStore::new(device);
    let model = UNet::new(&vs.root(), &config);
    let file = stored.copy_into(&mut vs, role)?;
    prepare_weights(&vs, compute);
    Ok(Loaded {
        model,
        file,
        _vs: vs,
    })
}

/// The classifier of `path` (`role`: the nodule or the malignancy model)
/// on `device`, its weights in `compute`'s layout.
pub fn load_classifier(
    path: &Path,
    role: Role,
    device: Device,
    compute: ComputeConfig,
) -> Result<Loaded<LunaModel>> {
    let stored = Stored::read(path, role)?;
    let config = match &stored {
        Stored::Checkpoint(_, SavedArchitecture::Luna(c)) => *c,
        Stored::TorchSave(_, i) if i.model == BookModel::Luna => ModelConfig::default(),
        _ => return Err(stored.wrong_kind(role)),
    };
    config
        .validate(INPUT_SHAPE)
        .with_context(|| format!("{} {}", role.flag(), stored.file().display()))?;
    let mut vs = VarStore::new(device);
    // Every weight is overwritten by the stored ones; the init scheme is moot.
    let model = LunaModel::with_config(&vs.root(), &config, BiasInit::Uniform);
    let file = stored.copy_into(&mut vs, role)?;
    prepare_weights(&vs, compute);
    Ok(Loaded {
        model,
        file,
        _vs: vs,
    })
}
