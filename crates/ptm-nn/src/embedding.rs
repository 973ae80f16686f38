//! Lookup tables: token, position and segment embeddings.

use crate::error::Result;
use crate::init::Init;
use crate::module::Module;
use crate::param::Param;
use crate::var_builder::VarBuilder;
use ptm_tensor::Tensor;

/// Row `i` of a `[num, dim]` table for each id `i`.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Param,
    padding_idx: Option<u32>,
}

impl Embedding {
    /// Builds the table `weight` `[num, dim]` at `vb`'s scope.
    pub fn new(vb: &VarBuilder, num: usize, dim: usize, init: Init) -> Result<Embedding> {
        Ok(Embedding {
            weight: vb.get(&[num, dim], "weight", init)?,
            padding_idx: None,
        })
    }

    /// As PyTorch's `padding_idx`: the row of this id receives no gradient (BERT's `[PAD]`).
    pub fn with_padding_idx(mut self, padding_idx: Option<u32>) -> Embedding {
        self.padding_idx = padding_idx;
        self
    }

    /// Zeroes the padding row, as PyTorch's initialisation of an embedding with `padding_idx`
    /// does; for freshly initialised tables only (a loaded table keeps its values).
    pub fn zero_padding_row(&self) -> Result<()> {
        let Some(pad) = self.padding_idx else {
            return Ok(());
        };
        let w = self.weight.tensor();
        let (rows, dim) = w.shape().dims2("Embedding")?;
        if pad as usize >= rows {
            return Err(crate::error::invalid(
                "Embedding",
                format!("padding_idx {pad} is outside the {rows} rows"),
            ));
        }
        let mut v = w.to_dtype(ptm_tensor::DType::F64)?.to_vec::<f64>()?;
        v[pad as usize * dim..(pad as usize + 1) * dim].fill(0.0);
        let t = Tensor::from_vec(v, w.dims(), &ptm_tensor::Device::Cpu)?.to_dtype(w.dtype())?;
        self.weight.set(t)
    }

    /// The table (shared with a tied output layer).
    pub fn weight(&self) -> &Param {
        &self.weight
    }
}

impl Module for Embedding {
    /// `ids` of any shape (u32 or i64) → `[..ids, dim]`; an id beyond the table is an error.
    fn forward(&self, ids: &Tensor, _train: bool) -> Result<Tensor> {
        let w = self.weight.tensor();
        let out = w.embedding(ids)?;
        let Some(pad) = self.padding_idx.filter(|_| w.tracks_grad()) else {
            return Ok(out);
        };
        // Same values (x·1 + x·0 = x exactly); the padding positions take the detached lookup, so
        // the padding row gets no gradient.
        let keep = ids
            .ne_scalar(pad as f64)?
            .to_dtype(w.dtype())?
            .unsqueeze(-1)?;
        let frozen = w.detach().embedding(ids)?;
        let drop = keep.affine(-1.0, 1.0)?;
        Ok(out.mul(&keep)?.add(&frozen.mul(&drop)?)?)
    }
}
