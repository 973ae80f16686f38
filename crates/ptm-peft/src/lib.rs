//! # ptm-peft
//!
//! Parameter-efficient fine-tuning for ptm's models, exact against Hugging Face PEFT and in its
//! file format both ways.
//!
//! - **LoRA** (`r`, `lora_alpha`, `lora_dropout`, `target_modules` as names, suffixes, a regex or
//!   `"all-linear"`, `exclude_modules`, `layers_to_transform`, `bias`, `use_rslora`,
//!   `modules_to_save`), with `merge`/`unmerge` and `merge_and_unload`.
//! - **IA³** (output scaling, input scaling for feed-forward layers).
//! - **Prefix-tuning** (per-layer prefix keys/values, optional reparameterisation).
//! - **Bottleneck adapters** in the Houlsby and Pfeiffer placements (a ptm extension).
//! - Several adapters on one base model, switched by name; the trainable-parameter line in
//!   PEFT's words; a target that matches nothing is an error listing the module names.
//!
//! Models know nothing of this: they build every linear layer and sub-layer through the
//! `ptm_nn::Hooks` that [`PeftHooks`] implements.
//!
//! ```
//! use ptm_models::gpt2::{Gpt2Config, Gpt2Inputs, Gpt2LmHeadModel};
//! use ptm_models::Checkpoint;
//! use ptm_peft::{LoraConfig, PeftConfig, PeftKind, PeftModel, Targets};
//! use ptm_tensor::{DType, Device, Tensor};
//! # fn main() -> ptm_peft::Result<()> {
//! let cfg = Gpt2Config { vocab_size: 50, n_positions: 16, n_embd: 8, n_layer: 2, n_head: 2, ..Default::default() };
//! let hooks = PeftModel::<Gpt2LmHeadModel>::hooks();
//! let base = Checkpoint::<Gpt2LmHeadModel>::from_config(cfg, DType::F32, 0, Some(hooks.clone()))?;
//! let mut model = PeftModel::new(base, hooks)?;
//! let lora = LoraConfig { r: 2, lora_alpha: 4.0, target_modules: Some(Targets::names(&["c_attn"])), ..Default::default() };
//! model.add_adapter("default", PeftConfig::new(PeftKind::Lora(lora), Some("CAUSAL_LM")), 0)?;
//! println!("{}", model.param_counts()); // trainable params: 192 || all params: ...
//! let ids = Tensor::from_vec(vec![1u32, 2, 3], [1, 3], &Device::Cpu)?;
//! let (logits, _) = model.model().forward(&ids, Gpt2Inputs::default())?;
//! assert_eq!(logits.dims(), &[1, 3, 50]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod config;
mod error;
mod hooks;
mod layers;
mod model;
mod prefix;
pub mod targets;

pub use config::{
    BottleneckConfig, Ia3Config, LoraBias, LoraConfig, PeftConfig, PeftKind, Placement,
    PrefixTuningConfig, Targets,
};
pub use error::{Error, Result};
pub use hooks::PeftHooks;
pub use layers::{PeftLinear, PeftSlot};
pub use model::{ParamCounts, PeftModel, CONFIG_FILE, FILE_PREFIX, WEIGHTS_FILE};
