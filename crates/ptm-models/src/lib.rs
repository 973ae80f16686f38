//! # ptm-models
//!
//! Transformer architectures that load Hugging Face checkpoints and give transformers' numbers.
//!
//! - [`gpt2`]: `GPT2Model`, `GPT2LMHeadModel` with a KV cache, and generation
//!   ([`generation`]: greedy, temperature, top-k, top-p, seeded sampling).
//! - [`bert`]: `BertModel` (+ pooler), `BertForMaskedLM`, `BertForSequenceClassification`,
//!   `BertForTokenClassification`.
//! - [`tokenizer`]: tokenizers from `tokenizer.json`, GPT-2 or BERT vocabulary files.
//! - [`config`]: `config.json` reading (transformers' defaults, unknown keys kept) and writing.
//!
//! ```
//! use ptm_models::gpt2::{Gpt2Checkpoint, Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
//! use ptm_tensor::{DType, Device, Tensor};
//! # fn main() -> ptm_models::Result<()> {
//! let cfg = Gpt2Config { vocab_size: 50, n_positions: 16, n_embd: 8, n_layer: 1, n_head: 2, ..Default::default() };
//! let gpt = Gpt2Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 0, None)?;
//! let ids = Tensor::from_vec(vec![1u32, 2, 3], [1, 3], &Device::Cpu)?;
//! let (logits, _) = gpt.model.forward(&ids, Gpt2Inputs::default())?;
//! assert_eq!(logits.dims(), &[1, 3, 50]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod bert;
pub mod config;
mod error;
pub mod generation;
pub mod gpt2;
pub mod pretrained;
pub mod tokenizer;
pub mod vit;

pub use error::{Error, Result};
pub use pretrained::{weights_file, Architecture, Checkpoint};
