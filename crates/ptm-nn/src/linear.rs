//! Affine layers in both of Hugging Face's weight layouts.

use crate::error::{invalid, Result};
use crate::init::Init;
use crate::module::Module;
use crate::param::Param;
use crate::var_builder::VarBuilder;
use ptm_tensor::Tensor;

/// How the weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out, in]`, PyTorch's `nn.Linear` (BERT, ViT): `y = x·Wᵀ + b`.
    OutIn,
    /// `[in, out]`, GPT-2's `Conv1D`: `y = x·W + b`.
    InOut,
}

/// `y = x·W + b` over the last dim of `x`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Param,
    bias: Option<Param>,
    layout: WeightLayout,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    /// Builds the layer at `vb`'s scope: parameters `weight` (drawn from `init` when not loaded)
    /// and, if `bias`, `bias` (zeros).
    pub fn new(
        vb: &VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        layout: WeightLayout,
        init: Init,
    ) -> Result<Linear> {
        let shape = match layout {
            WeightLayout::OutIn => [out_dim, in_dim],
            WeightLayout::InOut => [in_dim, out_dim],
        };
        let weight = vb.get(&shape, "weight", init)?;
        let bias = if bias {
            Some(vb.get(&[out_dim], "bias", Init::Zeros)?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            layout,
            in_dim,
            out_dim,
        })
    }

    /// A layer over existing parameters (tied weights, merged adapters).
    pub fn from_params(weight: Param, bias: Option<Param>, layout: WeightLayout) -> Result<Linear> {
        let dims = weight.tensor().dims().to_vec();
        let [a, b] = dims[..] else {
            return Err(invalid(
                "Linear",
                format!("weight must be 2-d, got {dims:?}"),
            ));
        };
        let (in_dim, out_dim) = match layout {
            WeightLayout::OutIn => (b, a),
            WeightLayout::InOut => (a, b),
        };
        if let Some(bias) = &bias {
            if bias.tensor().dims() != [out_dim] {
                return Err(invalid(
                    "Linear",
                    format!(
                        "bias {:?} does not match {out_dim} outputs",
                        bias.tensor().dims()
                    ),
                ));
            }
        }
        Ok(Linear {
            weight,
            bias,
            layout,
            in_dim,
            out_dim,
        })
    }

    /// The weight parameter, in its stored layout.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias parameter, if any.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The stored layout of the weight.
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

/// `x·W` for `W` given `[in, out]` or `[out, in]` (read transposed in place), over the last dim.
pub fn apply_weight(x: &Tensor, w: &Tensor, layout: WeightLayout) -> Result<Tensor> {
    let w = match layout {
        WeightLayout::InOut => w.clone(),
        WeightLayout::OutIn => w.t()?,
    };
    let dims = x.dims().to_vec();
    if dims.len() <= 2 {
        return Ok(x.matmul(&w)?);
    }
    // One large product over all leading dims rather than a batch of small ones.
    let (lead, d) = dims.split_at(dims.len() - 1);
    let rows: usize = lead.iter().product();
    let y = x.reshape([rows, d[0]])?.matmul(&w)?;
    let mut out = lead.to_vec();
    out.push(w.dims()[1]);
    Ok(y.reshape(out)?)
}

impl Module for Linear {
    fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        if x.dims().last() != Some(&self.in_dim) {
            return Err(invalid(
                "Linear",
                format!(
                    "input {:?} does not end in {} features",
                    x.dims(),
                    self.in_dim
                ),
            ));
        }
        let y = apply_weight(x, &self.weight.tensor(), self.layout)?;
        Ok(match &self.bias {
            Some(b) => y.add(&b.tensor())?,
            None => y,
        })
    }
}
