//! Errors of training: settings, data, checkpoints.

/// What configuring or running a training job can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model error.
    #[error(transparent)]
    Model(#[from] ptm_models::Error),
    /// An adapter error.
    #[error(transparent)]
    Peft(#[from] ptm_peft::Error),
    /// A layer, loading or optimizer error.
    #[error(transparent)]
    Nn(#[from] ptm_nn::Error),
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] ptm_tensor::Error),
    /// A setting that is unknown or out of range (names the key and the value).
    #[error("setting {key}: {msg}")]
    Setting {
        /// The key (`learning_rate`, …).
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// Data that could not be read or used (names the path).
    #[error("data {path}: {msg}")]
    Data {
        /// The file or directory.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint that could not be written or read (names the directory).
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint directory.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A download or cache problem (names the dataset and what failed).
    #[error("fetch {name}: {msg}")]
    Fetch {
        /// The dataset.
        name: String,
        /// What failed.
        msg: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn setting(key: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Setting {
        key: key.into(),
        msg: msg.into(),
    }
}

pub(crate) fn data(path: impl std::fmt::Display, msg: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_string(),
        msg: msg.into(),
    }
}

pub(crate) fn ckpt(path: impl std::fmt::Display, msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_string(),
        msg: msg.to_string(),
    }
}
