//! CPU kernels for ptm, on plain slices.
//!
//! Nothing here knows about tensors or autograd: each kernel takes slices plus the sizes and strides
//! it needs, and computes. That keeps every kernel benchmarkable and testable on its own, the way
//! llm.c keeps each layer a pair of plain forward/backward functions. `ptm-tensor` dispatches to
//! these functions.
//!
//! Every kernel is generic over [`Float`] (f32 and f64): the f64 instantiation is what the gradient
//! checks in `ptm-tensor` run through, so the code that is checked is the code that trains. Each
//! fast kernel keeps a plain scalar reference beside it (`*_ref` / [`matmul::matmul_naive`]) that the
//! tests compare it with on odd shapes.
//!
//! ```
//! use ptm_cpu::{matmul::{matmul, MatRef}, softmax::softmax_fwd};
//! let a = [1.0f32, 2.0, 3.0, 4.0]; // 2x2, row-major
//! let b = [5.0f32, 6.0, 7.0, 8.0];
//! let mut c = [0.0f32; 4];
//! matmul(2, 2, 2, MatRef::row_major(&a, 2), MatRef::row_major(&b, 2), &mut c, 0.0);
//! assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
//! let mut p = [0.0f32; 2];
//! softmax_fwd(&[0.0f32, 0.0], &mut p, 2);
//! assert_eq!(p, [0.5, 0.5]);
//! ```

#![warn(missing_docs)]

pub mod attention;
#[cfg(feature = "bench-baselines")]
pub mod baseline;
pub mod conv;
pub mod cross_entropy;
pub mod element;
pub mod gelu;
pub mod isa;
pub mod layer_norm;
pub mod matmul;
pub mod memory;
pub mod optim;
pub mod parallel;
pub mod rows;
pub mod softmax;
pub mod strided;
pub mod vmath;

pub use element::{Element, Float};
pub use isa::Isa;
