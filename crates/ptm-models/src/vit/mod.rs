//! ViT (Dosovitskiy et al., 2021) as transformers implements it.

mod config;
mod model;
mod preprocess;
mod pretrained;

pub use config::VitConfig;
pub use model::{VitForImageClassification, VitModel};
pub use preprocess::{resize_bilinear, ImageProcessorConfig, ImageSize};
pub use pretrained::{load_options, VitCheckpoint};
