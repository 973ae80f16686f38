//! Activations by the names Hugging Face configs use.

use crate::error::{invalid, Result};
use crate::module::Module;
use ptm_tensor::Tensor;

/// A pointwise activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// Exact GELU through erf (`gelu`).
    Gelu,
    /// `max(x, 0)`.
    Relu,
    /// `x·sigmoid(x)` (`silu`, `swish`).
    Silu,
    /// `tanh`.
    Tanh,
}

impl Activation {
    /// Parses a config's `hidden_act` / `activation_function`; `what` names the key in errors.
    pub fn from_hf(name: &str, what: &str) -> Result<Activation> {
        Ok(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            other => {
                return Err(invalid(
                    what,
                    format!(
                        "unknown activation '{other}' (known: gelu, gelu_new, gelu_pytorch_tanh, \
                         gelu_fast, relu, silu, swish, tanh)"
                    ),
                ))
            }
        })
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(match self {
            Activation::GeluTanh => x.gelu()?,
            Activation::Gelu => x.gelu_erf()?,
            Activation::Relu => x.relu()?,
            Activation::Silu => x.silu()?,
            Activation::Tanh => x.tanh()?,
        })
    }
}
