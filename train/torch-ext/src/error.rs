use tch::Kind;

/// Failures of the shim; libtorch's own exceptions arrive as [`Error::Torch`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libtorch threw; the message is its text without the C++ backtrace.
    #[error("libtorch: {0}")]
    Torch(String),
    /// Channels-last-3d only exists for NCDHW tensors.
    #[error("channels-last 3d needs a 5-D tensor, got {0}-D")]
    NotFiveD(usize),
    /// Channels-last (2-D) only exists for NCHW tensors.
    #[error("channels-last needs a 4-D tensor, got {0}-D")]
    NotFourD(usize),
    /// Autocast only lowers to a 16-bit float type.
    #[error("autocast dtype must be BFloat16 or Half, got {0:?}")]
    AutocastDtype(Kind),
    /// libtorch reported a scalar type tch has no [`Kind`] for.
    #[error("libtorch scalar type {0} has no tch Kind")]
    UnknownScalarType(i32),
    /// Lists handed to a fused optimizer step differ in length.
    #[error("{0}: its tensor lists differ in length")]
    UnequalLists(&'static str),
    /// libtorch reported a memory format this crate does not know.
    #[error("libtorch memory format {0} is unknown")]
    UnknownMemoryFormat(i32),
}
