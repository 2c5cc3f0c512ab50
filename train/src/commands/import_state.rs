//! `train import-state BOOK.state --out DIR`: the book's `.state`
//! checkpoints (or any `torch.save` of a LunaModel or UNetWrapper state
//! dict) as our `model.safetensors`, with the architecture metadata
//! training writes, so `eval`/`predict` load a book classifier like one of
//! our runs.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::cli::ImportStateArgs;
use crate::model::import::{self, BookModel};
use crate::model::torch_state;
use crate::model::{ModelConfig, UNetConfig};
use crate::run::checkpoint::{self, Architecture, MODEL_FILE, TRAINER_FILE};

/// What `train import-state` wrote.
#[derive(Debug)]
pub struct ImportOutcome {
    pub model: BookModel,
    pub model_file: PathBuf,
}

pub fn run(args: &ImportStateArgs) -> Result<ImportOutcome> {
    refuse_to_overwrite(args)?;
    let state = torch_state::read(&args.file)?;
    let imported = import::import(&state)?;
    let architecture = match imported.model {
        BookModel::Luna => Architecture::luna(&ModelConfig::default())?,
        BookModel::UNet => Architecture::unet(&UNetConfig::default())?,
    };
    let model_file = checkpoint::write_model(
        &args.out,
        &imported.vs,
        imported.bn_steps,
        &architecture,
        // The book's file does not say whether it classifies nodules or malignancy.
        None,
        None,
    )?;
    let from = if state.nested {
        format!("its {:?} entry", torch_state::MODEL_STATE_KEY)
    } else {
        "a bare state dict".to_owned()
    };
    println!(
        "import-state: {}: {} file, {from}: {} with every one of its {} tensors matched ({} values)",
        args.file.display(),
        state.format,
        imported.model,
        state.tensors.len(),
        imported.elements
    );
    let scalars: Vec<String> = state
        .scalars
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if !scalars.is_empty() {
        println!("import-state: checkpoint: {}", scalars.join(", "));
    }
    println!("import-state: wrote {}", model_file.display());
    if imported.model == BookModel::Luna {
        println!(
            "import-state: score it with `train eval --cache CACHE --checkpoint {}`",
            args.out.display()
        );
    }
    Ok(ImportOutcome {
        model: imported.model,
        model_file,
    })
}

/// A run's folder is no place for imported weights (its trainer state
/// would resume with another model's), and an earlier import is only
/// replaced when asked.
fn refuse_to_overwrite(args: &ImportStateArgs) -> Result<()> {
    let trainer = args.out.join(TRAINER_FILE);
    if trainer.exists() {
        bail!(
            "{} exists: {} is a training run's folder; import into another --out",
            trainer.display(),
            args.out.display()
        );
    }
    let model = args.out.join(MODEL_FILE);
    if model.exists() && !args.force {
        bail!(
            "{} exists: give another --out, or --force to replace it",
            model.display()
        );
    }
    Ok(())
}
