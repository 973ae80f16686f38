//! # ptm
//!
//! Pretrained transformers and transfer learning in Rust, with no Python and no libtorch.
//! This facade re-exports the workspace's crates so that one dependency brings all of them:
//!
//! - [`ptm_tensor`]: tensors with reverse-mode autograd (also usable alone);
//! - [`ptm_cpu`]: the CPU kernels on plain slices that `ptm_tensor` dispatches to.
//!
//! ```
//! use ptm::ptm_tensor::{DType, Device, Tensor};
//! let x = Tensor::ones([2, 2], DType::F32, &Device::Cpu)?;
//! assert_eq!(x.sum_all()?.to_scalar::<f32>()?, 4.0);
//! # Ok::<(), ptm::ptm_tensor::Error>(())
//! ```

#![warn(missing_docs)]

pub use ptm_cpu;
pub use ptm_tensor;
