//! What every architecture's loader shares: finding the weight file of a model directory.

use crate::error::{input_err, Result};
use std::path::{Path, PathBuf};

/// `dir/model.safetensors`, or an error that says what the directory holds instead.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(input_err(
            dir.display().to_string(),
            "no such model directory",
        ));
    }
    let file = dir.join("model.safetensors");
    if file.is_file() {
        return Ok(file);
    }
    let hint = if dir.join("pytorch_model.bin").exists() {
        " (it has pytorch_model.bin: ptm reads safetensors only; convert with transformers' \
         save_pretrained(..., safe_serialization=True))"
    } else if dir.join("model.safetensors.index.json").exists() {
        " (sharded checkpoints are not read yet)"
    } else {
        ""
    };
    Err(input_err(
        file.display().to_string(),
        format!("missing{hint}"),
    ))
}
