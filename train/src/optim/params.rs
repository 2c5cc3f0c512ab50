//! What every optimizer here shares: the trainable parameters in a fixed
//! order, and the checkpoint naming of per-parameter state
//! (`<slot>.<parameter>`, e.g. `exp_avg.block1.conv1.weight`).

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum OptimizerStateError {
    #[error("optimizer state {name:?} is for unknown parameter {param:?}")]
    UnknownParameter { name: String, param: String },
    #[error("optimizer state {name:?} has shape {found:?}, its parameter has {expected:?}")]
    ShapeMismatch {
        name: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error(
        "optimizer state {name:?} is not {optimizer} state (which is {}): \
         the checkpoint was written by another optimizer",
        expected.iter().map(|s| format!("{s}.*")).collect::<Vec<_>>().join(", ")
    )]
    ForeignState {
        name: String,
        optimizer: &'static str,
        expected: &'static [&'static str],
    },
    #[error(
        "{optimizer} state of parameter {param:?} is incomplete: {missing}.{param} is missing"
    )]
    Incomplete {
        optimizer: &'static str,
        param: String,
        missing: &'static str,
    },
    #[error("optimizer state {name:?} holds {value}, not a step count")]
    BadStepCount { name: String, value: f64 },
}

/// Trainable parameters by name, name-ordered so every run steps them alike.
pub struct Params {
    named: Vec<(String, Tensor)>,
}

impl Params {
    pub fn trainable(vs: &VarStore) -> Self {
        let named: BTreeMap<String, Tensor> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        Params {
            named: named.into_iter().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.named.len()
    }

    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, Tensor)> {
        self.named.iter()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.named[i].0
    }

    pub fn zero_grad(&self) {
        for (_, p) in &self.named {
            let mut grad = p.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// The gradients that exist, in parameter order (shallow clones).
    pub fn gradients(&self) -> Vec<Tensor> {
        self.named
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect()
    }

    /// Sorts saved `<slot>.<param>` tensors into `slots[param][slot]`,
    /// each checked against its parameter's shape and moved onto its device
    /// and dtype. `slot_names` are the state this optimizer keeps; any other
    /// name is another optimizer's state.
    pub fn sort_state(
        &self,
        saved: Vec<(String, Tensor)>,
        optimizer: &'static str,
        slot_names: &'static [&'static str],
    ) -> Result<Vec<Vec<Option<Tensor>>>, OptimizerStateError> {
        let mut slots: Vec<Vec<Option<Tensor>>> = self
            .named
            .iter()
            .map(|_| slot_names.iter().map(|_| None).collect())
            .collect();
        for (name, tensor) in saved {
            let foreign = || OptimizerStateError::ForeignState {
                name: name.clone(),
                optimizer,
                expected: slot_names,
            };
            let (slot, param) = name.split_once('.').ok_or_else(foreign)?;
            let s = slot_names
                .iter()
                .position(|n| *n == slot)
                .ok_or_else(foreign)?;
            let i = self
                .named
                .iter()
                .position(|(n, _)| n == param)
                .ok_or_else(|| OptimizerStateError::UnknownParameter {
                    name: name.clone(),
                    param: param.to_owned(),
                })?;
            let target = &self.named[i].1;
            // Step counts are scalars; everything else is shaped like its parameter.
            let expected = if slot == STEP_SLOT {
                Vec::new()
            } else {
                target.size()
            };
            if tensor.size() != expected {
                return Err(OptimizerStateError::ShapeMismatch {
                    found: tensor.size(),
                    expected,
                    name,
                });
            }
            slots[i][s] = Some(
                tensor
                    .to_device(target.device())
                    .to_kind(target.kind())
                    .detach(),
            );
        }
        Ok(slots)
    }
}

/// The slot name of a per-parameter step count (torch's `state["step"]`).
pub const STEP_SLOT: &str = "step";

/// `<slot>.<param>`, the checkpoint name of one state tensor.
pub fn state_name(slot: &str, param: &str) -> String {
    format!("{slot}.{param}")
}
