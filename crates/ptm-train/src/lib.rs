//! # ptm-train
//!
//! Training jobs around ptm's models: [`TrainingArguments`] with Hugging Face's names, language-
//! model data ([`data`]), real corpora from the package registries ([`fetch`]), and the
//! [`Trainer`] whose checkpoints resume exactly.

#![warn(missing_docs)]

pub mod args;
pub mod checkpoint;
pub mod data;
mod error;
pub mod fetch;
mod model;
pub mod plot;
pub mod probe;
pub mod recipes;
pub mod schedule;
mod trainer;

pub use args::TrainingArguments;
pub use error::{Error, Result};
pub use model::TrainModel;
pub use trainer::{clip_grad_norm, decays, TrainOutcome, Trainer};
