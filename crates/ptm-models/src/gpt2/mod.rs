//! GPT-2 (Radford et al., 2019) as transformers implements it.

mod config;
mod generate;
mod model;
mod pretrained;

pub use config::Gpt2Config;
pub use model::{Gpt2Inputs, Gpt2LmHeadModel, Gpt2Model, KvCache};
pub use pretrained::{load_options, Gpt2Checkpoint};
