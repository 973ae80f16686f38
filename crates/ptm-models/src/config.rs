//! Reading and writing Hugging Face `config.json` files.

use crate::error::{io_err, Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parses `path` as the config type `C`; errors name the file and the key.
pub fn read_config<C: DeserializeOwned>(path: &Path) -> Result<C> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// The `model_type` and `architectures` of a config, to pick a model class.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ModelKind {
    /// `"gpt2"`, `"bert"`, `"vit"`, …
    #[serde(default)]
    pub model_type: Option<String>,
    /// Class names such as `"GPT2LMHeadModel"`.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
}

/// Writes `value` as pretty JSON to `path`, atomically (temporary file, then rename).
pub fn write_json(value: &serde_json::Value, path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Config {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

pub(crate) fn config_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Config {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// An error naming the first key whose value is 0.
pub(crate) fn require_positive(path: &Path, values: &[(&str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(config_err(path, format!("{key} must be positive"))),
        None => Ok(()),
    }
}

/// An error naming both keys when `(a_key, a)` is not a multiple of `(b_key, b)`.
pub(crate) fn require_multiple(
    path: &Path,
    (a_key, a): (&str, usize),
    (b_key, b): (&str, usize),
) -> Result<()> {
    if a.is_multiple_of(b) {
        Ok(())
    } else {
        Err(config_err(
            path,
            format!("{a_key} {a} is not divisible by {b_key} {b}"),
        ))
    }
}

/// An error naming the first dropout probability outside `[0, 1)`.
pub(crate) fn require_probabilities(path: &Path, values: &[(&str, f64)]) -> Result<()> {
    match values.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
        Some((key, p)) => Err(config_err(path, format!("{key} = {p} is outside [0, 1)"))),
        None => Ok(()),
    }
}
