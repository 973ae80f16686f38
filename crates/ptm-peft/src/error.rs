//! Errors of adapter configuration, injection, loading and saving.

/// What creating, loading, switching or saving an adapter can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer or weight-loading error.
    #[error(transparent)]
    Nn(#[from] ptm_nn::Error),
    /// A model error (loading the base model).
    #[error(transparent)]
    Models(#[from] ptm_models::Error),
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
    /// An `adapter_config.json` (or a config built in code) that is invalid or asks for something
    /// ptm does not do; names the file and key.
    #[error("{path}: {msg}")]
    Config {
        /// The config file, or `<config>` for one built in code.
        path: String,
        /// What is wrong, naming the key.
        msg: String,
    },
    /// A `target_modules` (or `modules_to_save`, `feedforward_modules`) entry that matches no
    /// layer of the model; lists the names it could have matched.
    #[error("{key} entry {target:?} matches no {kind} of the model; the model's {kind} names are: {candidates} (e.g. {example})")]
    NoMatch {
        /// The config key.
        key: String,
        /// The entry that matched nothing.
        target: String,
        /// What kind of module was searched ("linear layer").
        kind: String,
        /// The distinct names (without layer indices) it could have matched.
        candidates: String,
        /// One full module path.
        example: String,
    },
    /// An adapter weight file that does not fit the adapter or the model.
    #[error("{file}: {msg}")]
    Weights {
        /// The weight file.
        file: String,
        /// What is wrong, naming the tensor.
        msg: String,
    },
    /// An adapter name that is unknown, or already taken.
    #[error("adapter {name:?}: {msg}")]
    Adapter {
        /// The adapter name.
        name: String,
        /// What is wrong.
        msg: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn config_err(path: &str, msg: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_string(),
        msg: msg.into(),
    }
}

pub(crate) fn adapter_err(name: &str, msg: impl Into<String>) -> Error {
    Error::Adapter {
        name: name.to_string(),
        msg: msg.into(),
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}
