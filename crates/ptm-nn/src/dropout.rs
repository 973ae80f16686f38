//! Dropout, drawing its masks from the model's shared stream.

use crate::error::{invalid, Result};
use crate::module::Module;
use crate::var_builder::SharedRng;
use ptm_tensor::Tensor;

/// Inverted dropout with probability `p` while training; the identity otherwise.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    rng: SharedRng,
}

impl Dropout {
    /// A dropout layer drawing from `rng` (the model's stream, see `VarBuilder::dropout_rng`).
    pub fn new(p: f64, rng: SharedRng) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(invalid(
                "Dropout",
                format!("probability {p} is outside [0, 1)"),
            ));
        }
        Ok(Dropout { p, rng })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// A fresh seed from the stream, for kernels that draw their own masks (attention).
    pub fn next_seed(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64()
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        Ok(x.dropout(self.p, &mut rng)?)
    }
}
