//! Layer normalisation over the last dim.

use crate::error::Result;
use crate::init::Init;
use crate::module::Module;
use crate::param::Param;
use crate::var_builder::VarBuilder;
use ptm_tensor::Tensor;

/// `(x − mean) / sqrt(var + eps) · weight + bias` over the last dim.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Param,
    bias: Param,
    eps: f64,
}

impl LayerNorm {
    /// Builds `weight` (ones) and `bias` (zeros) of size `dim` at `vb`'s scope.
    pub fn new(vb: &VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get(&[dim], "weight", Init::Ones)?,
            bias: vb.get(&[dim], "bias", Init::Zeros)?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let (w, b) = (self.weight.tensor(), self.bias.tensor());
        Ok(x.layer_norm(Some(&w), Some(&b), self.eps)?)
    }
}
