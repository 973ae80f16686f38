//! What the Trainer needs from a model.

use crate::data::LmBatch;
use crate::error::Result;
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_nn::{ParamStore, SharedRng};
use ptm_tensor::Tensor;
use std::path::Path;

/// A model the [`crate::Trainer`] can train on language-model batches.
pub trait TrainModel {
    /// The mean loss of the batch (dropout on when `train`).
    fn loss(&self, batch: &LmBatch, train: bool) -> Result<Tensor>;
    /// The parameters, by Hugging Face name.
    fn params(&self) -> &ParamStore;
    /// The dropout stream (its state is checkpointed).
    fn dropout_rng(&self) -> &SharedRng;
    /// Writes the model in Hugging Face layout (`config.json` + `model.safetensors`).
    fn save_pretrained(&self, dir: &Path) -> Result<()>;
}

impl TrainModel for Gpt2Checkpoint<Gpt2LmHeadModel> {
    fn loss(&self, batch: &LmBatch, train: bool) -> Result<Tensor> {
        let inputs = Gpt2Inputs {
            train,
            ..Default::default()
        };
        Ok(self.model.loss(&batch.input_ids, &batch.labels, inputs)?)
    }

    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn dropout_rng(&self) -> &SharedRng {
        &self.dropout_rng
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        Ok(Gpt2Checkpoint::<Gpt2LmHeadModel>::save_pretrained(
            self, dir,
        )?)
    }
}
