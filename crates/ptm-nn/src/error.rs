//! Errors of layers and weight loading: each names the file, the tensor and the shapes.

/// What loading weights, building a layer or stepping an optimizer can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] ptm_tensor::Error),
    /// Tensors the model needs that the weight file lacks.
    #[error("{file}: missing tensors: {}{}", names.join(", "), tried_suffix(tried))]
    MissingTensors {
        /// The weight file.
        file: String,
        /// Names the model asked for.
        names: Vec<String>,
        /// Other spellings that were tried, if any.
        tried: Vec<String>,
    },
    /// A tensor in the file whose shape is not what the model's configuration implies.
    #[error("{file}: tensor '{name}' has shape {found:?}, the model expects {expected:?}")]
    TensorShape {
        /// The weight file.
        file: String,
        /// The tensor's name in the file.
        name: String,
        /// What the configuration implies.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },
    /// A parameter registered twice under one name with different shapes.
    #[error("parameter '{name}' registered twice: {first:?} and {second:?}")]
    DuplicateParam {
        /// The full parameter path.
        name: String,
        /// The shape registered first.
        first: Vec<usize>,
        /// The shape asked for second.
        second: Vec<usize>,
    },
    /// An argument outside what the layer or optimizer accepts.
    #[error("{what}: {msg}")]
    Invalid {
        /// The layer, option or file concerned.
        what: String,
        /// Why it is invalid.
        msg: String,
    },
}

fn tried_suffix(tried: &[String]) -> String {
    if tried.is_empty() {
        String::new()
    } else {
        format!(" (also tried {})", tried.join(", "))
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        msg: msg.into(),
    }
}
