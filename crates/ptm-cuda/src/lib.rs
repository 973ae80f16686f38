//! Hand-written CUDA kernels for ptm, compiled at first use with NVRTC.
//!
//! The sources live in the workspace's `kernels/` directory and are embedded with `include_str!`;
//! no nvcc runs at build time, and the crate builds where no CUDA is installed (cudarc loads the
//! driver and NVRTC dynamically). Before anything calls into cudarc, [`toolkit`] checks that the
//! library is there, so a machine without CUDA gets an [`Error::Unavailable`], never a panic.
//!
//! Like `ptm-cpu`, this crate knows nothing of tensors or autograd: it takes device buffers plus
//! sizes and strides, and computes.
//!
//! ```
//! // Compiling a kernel needs NVRTC only, no GPU; without NVRTC the error says what was searched.
//! match ptm_cuda::compile::compile_uncached(ptm_cuda::sources::source("elementwise.cu").unwrap(), "compute_80") {
//!     Ok(out) => assert!(out.ptx.contains(".entry unary_f32")),
//!     Err(e) => println!("skipped: {e}"),
//! }
//! ```

#![warn(missing_docs)]

pub mod compile;
pub mod cublas;
pub mod device;
pub mod error;
pub mod memory;
pub mod ops;
pub mod sources;
pub mod toolkit;

pub use device::{Buffer, Device};
pub use error::{Error, Result};
pub use memory::{DType, Layout};
