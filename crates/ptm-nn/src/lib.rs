//! # ptm-nn
//!
//! Layers, parameters and optimizers on top of `ptm-tensor`.
//!
//! - [`VarBuilder`]: path-scoped parameter creation (`vb.pp("encoder").pp("layer.3")`), from a
//!   memory-mapped safetensors file (shapes checked, missing and unexpected tensors reported by
//!   name, optional prefixes and legacy names accepted) or from seeded initialisers.
//! - [`Param`] / [`ParamStore`]: parameters as replaceable slots, frozen or trainable, saved under
//!   their full names.
//! - Layers implementing [`Module`]: [`Linear`] (both `[out, in]` and GPT-2's `[in, out]`),
//!   [`Embedding`], [`LayerNorm`], [`Dropout`], [`Activation`]; multi-head attention and its
//!   parts in [`attention`].
//! - [`Hooks`]: how PEFT changes a model while it is built, without the model knowing.
//! - [`optim`]: SGD and AdamW (PyTorch's decoupled weight decay) with savable state.
//!
//! ```
//! use ptm_nn::{Init, Linear, Module, VarBuilder, WeightLayout};
//! use ptm_tensor::{DType, Device, Tensor};
//! # fn main() -> ptm_nn::Result<()> {
//! let vb = VarBuilder::from_init(DType::F32, 0);
//! let layer = Linear::new(&vb.pp("proj"), 3, 2, true, WeightLayout::OutIn, Init::KaimingUniform { fan_in: 3 })?;
//! let y = layer.forward(&Tensor::ones([4, 3], DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(y.dims(), &[4, 2]);
//! assert!(vb.store().get("proj.weight").is_some());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod activation;
pub mod attention;
mod dropout;
mod embedding;
mod error;
mod hooks;
mod init;
mod layer_norm;
mod linear;
mod module;
pub mod optim;
mod param;
mod var_builder;

pub use activation::Activation;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use error::{Error, Result};
pub use hooks::{after_sublayer, linear, Hooks, SubLayer};
pub use init::Init;
pub use layer_norm::LayerNorm;
pub use linear::{apply_weight, Linear, WeightLayout};
pub use module::Module;
pub use param::{Param, ParamStore};
pub use var_builder::{LoadOptions, LoadReport, Loaded, SharedRng, VarBuilder};
