//! What tch 0.24 does not expose from libtorch but mixed-precision CPU/GPU
//! training needs: autocast ([`autocast`]), the channels-last-3d memory format
//! ([`memory_format`]), bf16 hardware queries ([`capability`]), CUDA
//! events ([`event`]), the current CUDA device ([`cuda`]), pinned host
//! buffers ([`host`]), the fused gradient unscale of loss scaling ([`amp`])
//! torch.optim's fused Adam and SGD steps ([`fused_optim`]),
//! oneDNN's convolution with its activation fused ([`fused_conv`]) and loops
//! on libtorch's own thread team ([`parallel`]).
//!
//! Everything goes through a small C++ shim compiled against the same libtorch
//! tch links, so tensors cross the boundary as the `at::Tensor*` tch already
//! owns, and every libtorch exception comes back as an [`Error`].

pub mod amp;
pub mod autocast;
pub mod capability;
pub mod cuda;
mod error;
pub mod event;
mod ffi;
pub mod fused_conv;
pub mod fused_optim;
pub mod host;
pub mod memory_format;
pub mod parallel;

pub use amp::non_finite_check_and_unscale_;
pub use autocast::{AutocastGuard, DeviceType};
pub use capability::{cpu_feature, cpu_has_native_bf16, cuda_supports_bf16};
pub use cuda::{cuda_current_device, set_cuda_device};
pub use error::Error;
pub use event::CudaEvent;
pub use fused_conv::{
    conv_pointwise, conv_pointwise_available, leaky_frame_shift_, max_pool3d_2x, ConvGeometry,
    PostOp,
};
pub use fused_optim::{fused_adam_, fused_sgd_, AdamStep, AdamTensors, SgdStep};
pub use host::{pin_memory, storage_is_unshared};
pub use memory_format::{
    contiguous_channels_last, contiguous_channels_last_3d, is_channels_last, is_channels_last_3d,
    restride, var_store_to_channels_last, var_store_to_channels_last_3d, MemoryFormat,
};
pub use parallel::parallel_for;
