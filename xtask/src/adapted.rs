//! A model directory loaded alone or with a PEFT adapter (`--adapter DIR`): `generate` and
//! `forward` run either the same way.

use ptm_models::{Architecture, Checkpoint};
use ptm_peft::PeftModel;
use ptm_tensor::DType;
use std::path::Path;

/// A base model, possibly with an active adapter.
pub enum Adapted<M: Architecture> {
    /// The model alone.
    Plain(Checkpoint<M>),
    /// The model with the adapter loaded and active.
    Peft(PeftModel<M>),
}

impl<M: Architecture> Adapted<M> {
    /// Loads `dir`, and the adapter in `adapter` on top when given.
    pub fn load(dir: &Path, adapter: Option<&Path>) -> Result<Adapted<M>, String> {
        match adapter {
            None => Checkpoint::<M>::from_pretrained(dir, DType::F32, None)
                .map(Adapted::Plain)
                .map_err(|e| e.to_string()),
            Some(a) => {
                let mut m =
                    PeftModel::<M>::from_pretrained(dir, DType::F32).map_err(|e| e.to_string())?;
                m.load_adapter(a, "default").map_err(|e| e.to_string())?;
                eprintln!("adapter {}: {}", a.display(), m.param_counts());
                Ok(Adapted::Peft(m))
            }
        }
    }

    /// The checkpoint (its forward runs the adapter when there is one).
    pub fn checkpoint(&self) -> &Checkpoint<M> {
        match self {
            Adapted::Plain(c) => c,
            Adapted::Peft(p) => p.base(),
        }
    }
}
