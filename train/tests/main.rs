//! The training library's integration tests (real libtorch, real caches),
//! gathered into one binary so libtorch is linked once.

mod common;
mod pytorch_support;

mod analyze_parity;
mod checkpoint_roundtrip;
mod finetune;
mod fused_inference;
mod import_state;
mod loader_stream;
mod model_variants;
mod optimizers;
mod precision;
mod pytorch_dataset;
mod pytorch_ddp;
mod pytorch_parity;
mod seg_loss_parity;
mod seg_train;
mod task_seam;
mod tch_smoke;
mod tensorboard_readback;
mod unet_layout;
mod unet_parity;
