//! # ptm-tensor
//!
//! Tensors with reverse-mode automatic differentiation, the core every other ptm crate stands on,
//! and a crate other projects can import alone (no CUDA toolkit, no Python, no network).
//!
//! - [`Tensor`]: an `Arc` handle over storage + [`Layout`] (shape, strides, offset) + [`DType`].
//!   Views (reshape, transpose, permute, narrow, broadcast, squeeze/unsqueeze) share storage.
//! - DTypes f32, f64, f16, bf16, u32, i64; float ops compute in f32 (f64 for f64 tensors) through
//!   the `ptm-cpu` kernels.
//! - Autograd: [`Tensor::as_var`] marks a variable, [`Tensor::backward`] returns a [`GradStore`],
//!   [`no_grad`] turns recording off, [`Tensor::detach`] cuts the graph.
//! - Errors are values ([`Error`]) naming the op and the shapes; no panic on user input.
//!
//! ```
//! use ptm_tensor::{DType, Device, Rng, Tensor};
//! # fn main() -> ptm_tensor::Result<()> {
//! let mut rng = Rng::new(0);
//! let x = Tensor::randn(0.0, 1.0, [4, 3], DType::F32, &mut rng, &Device::Cpu)?;
//! let w = Tensor::randn(0.0, 0.1, [3, 2], DType::F32, &mut rng, &Device::Cpu)?.as_var();
//! let targets = Tensor::from_vec(vec![0u32, 1, 1, 0], [4], &Device::Cpu)?;
//! let loss = x.matmul(&w)?.cross_entropy(&targets, -100)?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&w).unwrap().dims(), &[3, 2]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod backprop;
pub mod coverage;
#[cfg(feature = "cuda")]
mod cuda;
mod device;
mod dtype;
mod error;
mod layout;
mod op;
mod ops;
mod rng;
pub mod safetensors;
mod shape;
mod storage;
mod tensor;

pub use backprop::{is_grad_enabled, no_grad, GradStore, NoGradGuard};
pub use device::Device;
pub use dtype::{DType, WithDType};
pub use error::{Error, Result};
pub use layout::Layout;
pub use op::{BinaryOp, OpKind, ReduceOp, UnaryOp};
pub use ops::nn::{scaled_dot_product_attention, AttentionOptions};
pub use ops::reduce::Dims;
pub use rng::Rng;
pub use shape::{broadcast_shape, Dim, Shape};
pub use storage::CpuStorage;
pub use tensor::{Tensor, TensorId};
