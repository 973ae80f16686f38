//! Errors of model loading, configuration and generation.

/// What building, loading, running or saving a model can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer or weight-loading error (names the file and tensor).
    #[error(transparent)]
    Nn(#[from] ptm_nn::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] ptm_tensor::Error),
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `config.json` that is not valid or not consistent.
    #[error("{path}: {msg}")]
    Config {
        /// The config file.
        path: String,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// An input outside what the model accepts (names the input and the value).
    #[error("{what}: {msg}")]
    Input {
        /// The input or option.
        what: String,
        /// Why it is rejected.
        msg: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn input_err(what: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Input {
        what: what.into(),
        msg: msg.into(),
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
