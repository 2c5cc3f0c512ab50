//! The classifier: [`luna`] builds LunaModel and its chapter 8 variants;
//! [`forward`] is the one batch function every command runs it through.

pub mod bn_fold;
pub mod compute;
pub mod forward;
pub mod fused;
pub mod import;
pub mod luna;
pub mod seg_loss;
pub mod torch_state;
pub mod unet;

pub use forward::{
    classify_with, forward_batch, forward_batch_with, prepare_weights, segment_with, BatchOutput,
    Target,
};
pub use luna::{
    parameter_count, BiasInit, InputNorm, LunaModel, ModelConfig, ModelConfigError, FLAT_FEATURES,
    INPUT_SHAPE, NUM_CLASSES,
};
pub use unet::{UNet, UNetConfig};
