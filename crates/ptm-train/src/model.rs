//! What the Trainer needs from a model.

use crate::data::{ClassifyBatch, ImageBatch, LmBatch, MlmBatch, TagBatch};
use crate::error::{ckpt, Result};
use ptm_models::bert::{
    BertForMaskedLm, BertForSequenceClassification, BertForTokenClassification, BertInputs,
};
use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Inputs, Gpt2LmHeadModel};
use ptm_models::vit::VitForImageClassification;
use ptm_models::{Architecture, Checkpoint};
use ptm_nn::{ParamStore, SharedRng};
use ptm_peft::PeftModel;
use ptm_tensor::Tensor;
use std::path::Path;

/// A model the [`crate::Trainer`] can train on batches of type `B` (language-model batches by
/// default; classification batches for the classifiers).
pub trait TrainModel<B = LmBatch> {
    /// The mean loss of the batch (dropout on when `train`).
    fn loss(&self, batch: &B, train: bool) -> Result<Tensor>;
    /// The parameters, by Hugging Face name.
    fn params(&self) -> &ParamStore;
    /// The dropout stream (its state is checkpointed).
    fn dropout_rng(&self) -> &SharedRng;
    /// Writes the model in Hugging Face layout (`config.json` + `model.safetensors`; an adapter
    /// writes PEFT's files).
    fn save_pretrained(&self, dir: &Path) -> Result<()>;
    /// Puts back the parameters a checkpoint directory written by [`Self::save_pretrained`]
    /// holds, exactly.
    fn restore(&self, dir: &Path) -> Result<()> {
        restore_params(
            &self.params().all(),
            &dir.join("model.safetensors"),
            "model.safetensors",
        )
    }
}

/// Sets each of `params` from the tensor of the same name in `file`.
fn restore_params(params: &[(String, ptm_nn::Param)], file: &Path, label: &str) -> Result<()> {
    let dir = file.parent().unwrap_or(file);
    let weights = ptm_tensor::safetensors::load(file)?;
    for (name, p) in params {
        let t = weights
            .get(name)
            .ok_or_else(|| ckpt(dir.display(), format!("{label} lacks '{name}'")))?;
        let cur = p.tensor();
        if t.dims() != cur.dims() {
            return Err(ckpt(
                dir.display(),
                format!(
                    "'{name}' is {:?} in the checkpoint, {:?} in the model",
                    t.dims(),
                    cur.dims()
                ),
            ));
        }
        let t = if t.dtype() == cur.dtype() {
            t.clone()
        } else {
            t.to_dtype(cur.dtype())?
        };
        p.set(t)?;
    }
    Ok(())
}

/// The parts every fully trained `Checkpoint<M>`'s `TrainModel` shares: its store and dropout
/// stream, checkpoints in Hugging Face layout.
macro_rules! checkpoint_bookkeeping {
    () => {
        fn params(&self) -> &ParamStore {
            &self.params
        }

        fn dropout_rng(&self) -> &SharedRng {
            &self.dropout_rng
        }

        fn save_pretrained(&self, dir: &Path) -> Result<()> {
            // The inherent method: HF layout (config.json + model.safetensors).
            Ok(Checkpoint::save_pretrained(self, dir)?)
        }
    };
}

impl TrainModel for Gpt2Checkpoint<Gpt2LmHeadModel> {
    fn loss(&self, batch: &LmBatch, train: bool) -> Result<Tensor> {
        let inputs = Gpt2Inputs {
            train,
            ..Default::default()
        };
        Ok(self.model.loss(&batch.input_ids, &batch.labels, inputs)?)
    }

    checkpoint_bookkeeping!();
}

/// The file of a PEFT checkpoint that holds every trainable parameter under its name in the
/// model (the adapter file holds PEFT's names, and a projected prefix only its computed table).
pub const TRAINABLE_FILE: &str = "trainable.safetensors";

/// An adapter model's checkpoint: the active adapter in PEFT's format plus [`TRAINABLE_FILE`].
fn save_adapter_checkpoint<M: Architecture>(model: &PeftModel<M>, dir: &Path) -> Result<()> {
    let name = model
        .active_adapter()
        .ok_or_else(|| ckpt(dir.display(), "no active adapter to save"))?;
    model.save_adapter(dir, &name)?;
    let trainable = model.base().params.trainable();
    let tensors: Vec<(String, Tensor)> = trainable
        .iter()
        .map(|(n, p)| (n.clone(), p.tensor()))
        .collect();
    ptm_tensor::safetensors::save(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        dir.join(TRAINABLE_FILE),
    )?;
    Ok(())
}

/// The parts every adapter model's `TrainModel` shares: the base model's store and dropout
/// stream, checkpoints through [`save_adapter_checkpoint`], resume from [`TRAINABLE_FILE`].
macro_rules! adapter_checkpointing {
    () => {
        fn params(&self) -> &ParamStore {
            &self.base().params
        }

        fn dropout_rng(&self) -> &SharedRng {
            &self.base().dropout_rng
        }

        fn save_pretrained(&self, dir: &Path) -> Result<()> {
            save_adapter_checkpoint(self, dir)
        }

        fn restore(&self, dir: &Path) -> Result<()> {
            restore_params(
                &self.params().trainable(),
                &dir.join(TRAINABLE_FILE),
                TRAINABLE_FILE,
            )
        }
    };
}

/// GPT-2 with its active adapter: only the adapter trains; checkpoints hold the adapter in PEFT's
/// format plus [`TRAINABLE_FILE`] for an exact resume.
impl TrainModel for PeftModel<Gpt2LmHeadModel> {
    fn loss(&self, batch: &LmBatch, train: bool) -> Result<Tensor> {
        let inputs = Gpt2Inputs {
            train,
            ..Default::default()
        };
        Ok(self.model().loss(&batch.input_ids, &batch.labels, inputs)?)
    }

    adapter_checkpointing!();
}

fn classifier_loss(
    m: &BertForSequenceClassification,
    batch: &ClassifyBatch,
    train: bool,
) -> Result<Tensor> {
    let inputs = BertInputs {
        attention_mask: Some(&batch.attention_mask),
        token_type_ids: None,
        train,
    };
    let (logits, _) = m.forward(&batch.input_ids, inputs)?;
    Ok(BertForSequenceClassification::loss(&logits, &batch.labels)?)
}

/// BERT with a classifier, fully trained.
impl TrainModel<ClassifyBatch> for Checkpoint<BertForSequenceClassification> {
    fn loss(&self, batch: &ClassifyBatch, train: bool) -> Result<Tensor> {
        classifier_loss(&self.model, batch, train)
    }

    checkpoint_bookkeeping!();
}

/// BERT with a classifier and an active adapter (the classifier trained whole, as PEFT's
/// `SEQ_CLS` task does).
impl TrainModel<ClassifyBatch> for PeftModel<BertForSequenceClassification> {
    fn loss(&self, batch: &ClassifyBatch, train: bool) -> Result<Tensor> {
        classifier_loss(self.model(), batch, train)
    }

    adapter_checkpointing!();
}

/// BERT with a classifier on every token (a tagger), fully trained.
impl TrainModel<TagBatch> for Checkpoint<BertForTokenClassification> {
    fn loss(&self, batch: &TagBatch, train: bool) -> Result<Tensor> {
        let inputs = BertInputs {
            attention_mask: Some(&batch.attention_mask),
            token_type_ids: None,
            train,
        };
        let (logits, _) = self.model.forward(&batch.input_ids, inputs)?;
        Ok(BertForTokenClassification::loss(&logits, &batch.labels)?)
    }

    checkpoint_bookkeeping!();
}

/// BERT with its masked-LM head, fully trained; the head runs at the scored positions only.
impl TrainModel<MlmBatch> for Checkpoint<BertForMaskedLm> {
    fn loss(&self, batch: &MlmBatch, train: bool) -> Result<Tensor> {
        let inputs = BertInputs {
            attention_mask: None,
            token_type_ids: None,
            train,
        };
        let logits = self
            .model
            .forward_at(&batch.input_ids, inputs, &batch.positions)?;
        Ok(logits.cross_entropy(&batch.targets, -100)?)
    }

    checkpoint_bookkeeping!();
}

/// ViT with its image classifier, fully trained.
impl TrainModel<ImageBatch> for Checkpoint<VitForImageClassification> {
    fn loss(&self, batch: &ImageBatch, train: bool) -> Result<Tensor> {
        let (logits, _) = self.model.forward(&batch.pixel_values, train)?;
        Ok(VitForImageClassification::loss(&logits, &batch.labels)?)
    }

    checkpoint_bookkeeping!();
}
