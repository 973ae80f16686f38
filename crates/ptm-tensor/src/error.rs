//! Errors as values: each names the op and the shapes, dtypes or values that were wrong.

use crate::{DType, Shape};

/// Everything a tensor operation can report instead of panicking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree did not.
    #[error("{op}: shape mismatch: {lhs} vs {rhs}{}", note_suffix(.note))]
    ShapeMismatch {
        /// The op that checked.
        op: &'static str,
        /// The first shape.
        lhs: Shape,
        /// The second shape.
        rhs: Shape,
        /// What had to agree.
        note: String,
    },
    /// A shape was wrong on its own terms (rank, element count, size of a dim).
    #[error("{op}: invalid shape {shape}: {msg}")]
    BadShape {
        /// The op that checked.
        op: &'static str,
        /// The offending shape.
        shape: Shape,
        /// Why it is invalid.
        msg: String,
    },
    /// A dimension index out of range for the tensor's rank.
    #[error("{op}: dim {dim} out of range for a tensor of shape {shape}")]
    DimOutOfRange {
        /// The op that checked.
        op: &'static str,
        /// The requested dim, as given.
        dim: i64,
        /// The tensor's shape.
        shape: Shape,
    },
    /// Operands of different dtypes where one was needed.
    #[error("{op}: dtype mismatch: {lhs:?} vs {rhs:?}")]
    DTypeMismatch {
        /// The op that checked.
        op: &'static str,
        /// The first dtype.
        lhs: DType,
        /// The second dtype.
        rhs: DType,
    },
    /// An op that does not support this dtype (e.g. `exp` on integer ids).
    #[error("{op}: unsupported dtype {dtype:?}{}", note_suffix(.note))]
    UnsupportedDType {
        /// The op.
        op: &'static str,
        /// The dtype given.
        dtype: DType,
        /// What the op supports.
        note: String,
    },
    /// An op with no path yet for the device its operands live on.
    #[error("{op}: not available on {device} yet (move the tensor to the CPU with `to_device`)")]
    UnsupportedOnDevice {
        /// The op.
        op: &'static str,
        /// The device, e.g. `cuda:0`.
        device: String,
    },
    /// A device that cannot be used (no driver, no GPU, out of memory...).
    #[error("{device}: {msg}")]
    Device {
        /// The device, e.g. `cuda:0`.
        device: String,
        /// What went wrong.
        msg: String,
    },
    /// Operands on different devices.
    #[error("{op}: device mismatch: {lhs} vs {rhs}")]
    DeviceMismatch {
        /// The op that checked.
        op: &'static str,
        /// The first device.
        lhs: String,
        /// The second device.
        rhs: String,
    },
    /// An index value outside the range it indexes.
    #[error("{op}: index {index} out of range for size {size}{}", note_suffix(.note))]
    IndexOutOfRange {
        /// The op that checked.
        op: &'static str,
        /// The offending index value.
        index: i64,
        /// The size it indexes into.
        size: usize,
        /// Where the index came from.
        note: String,
    },
    /// An argument with a value the op cannot use (a negative probability, a zero stride...).
    #[error("{op}: invalid argument: {msg}")]
    InvalidArgument {
        /// The op.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Gradient bookkeeping misuse, e.g. `backward` on a tensor that needs no gradient.
    #[error("backward: {0}")]
    Backward(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A safetensors file that could not be parsed or written, or a tensor in it we cannot use.
    #[error("{path}: safetensors: {msg}")]
    Safetensors {
        /// The file.
        path: String,
        /// What went wrong, naming the tensor where there is one.
        msg: String,
    },
}

fn note_suffix(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(" ({note})")
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for an [`Error::InvalidArgument`].
pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        msg: msg.into(),
    }
}
