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
}

impl Embedding {
    /// Builds the table `weight` `[num, dim]` at `vb`'s scope.
    pub fn new(vb: &VarBuilder, num: usize, dim: usize, init: Init) -> Result<Embedding> {
        Ok(Embedding {
            weight: vb.get(&[num, dim], "weight", init)?,
        })
    }

    /// The table (shared with a tied output layer).
    pub fn weight(&self) -> &Param {
        &self.weight
    }
}

impl Module for Embedding {
    /// `ids` of any shape (u32 or i64) → `[..ids, dim]`; an id beyond the table is an error.
    fn forward(&self, ids: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(self.weight.tensor().embedding(ids)?)
    }
}
