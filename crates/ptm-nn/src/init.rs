//! How a parameter is filled when no weight file provides it.

use crate::error::Result;
use ptm_tensor::{DType, Device, Rng, Tensor};

/// A parameter initialiser, as the reference implementations draw them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros (biases).
    Zeros,
    /// All ones (norm weights).
    Ones,
    /// Every element `value`.
    Const(f64),
    /// Normal(mean, std): BERT/GPT-2/ViT draw weights as N(0, initializer_range).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on `[lo, hi)`.
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// PyTorch's `kaiming_uniform_(a = sqrt(5))` for a weight with `fan_in` inputs (the default of
    /// `nn.Linear` and of LoRA's A matrix): uniform on ±1/sqrt(fan_in).
    KaimingUniform {
        /// Number of inputs of the layer.
        fan_in: usize,
    },
}

impl Init {
    /// A tensor of `shape` drawn from this initialiser.
    pub fn make(&self, shape: &[usize], dtype: DType, rng: &mut Rng) -> Result<Tensor> {
        let dev = &Device::Cpu;
        let t = match *self {
            Init::Zeros => Tensor::zeros(shape, dtype, dev)?,
            Init::Ones => Tensor::ones(shape, dtype, dev)?,
            Init::Const(v) => Tensor::full(v, shape, dtype, dev)?,
            Init::Normal { mean, std } => Tensor::randn(mean, std, shape, dtype, rng, dev)?,
            Init::Uniform { lo, hi } => Tensor::rand(lo, hi, shape, dtype, rng, dev)?,
            Init::KaimingUniform { fan_in } => {
                // gain = sqrt(2 / (1 + a²)) with a = sqrt(5); bound = gain·sqrt(3 / fan_in).
                let bound = (1.0 / fan_in.max(1) as f64).sqrt();
                Tensor::rand(-bound, bound, shape, dtype, rng, dev)?
            }
        };
        Ok(t)
    }
}
