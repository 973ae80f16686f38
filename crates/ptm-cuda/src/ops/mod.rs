//! Launchers: one safe function per kernel family. Each checks that the buffers fit the sizes it
//! is given (an [`Error::Invalid`] naming the kernel and the sizes otherwise), then queues the
//! kernel on the device's stream.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod optim;
pub mod rows;

use crate::error::{driver, Error, Result};
use crate::memory::DType;
use cudarc::driver::{CudaEvent, DriverError};

/// The element types with copy, cast, reduction and lookup kernels: the floats and ptm-tensor's
/// integer types (u32, i64). (u8 is only a condition operand of `where_cond`.)
pub trait Numeric: DType {}
impl Numeric for f32 {}
impl Numeric for f64 {}
impl Numeric for half::f16 {}
impl Numeric for half::bf16 {}
impl Numeric for u32 {}
impl Numeric for i64 {}

/// The floating-point element types kernels are instantiated for.
pub trait FloatType: Numeric {
    /// The accumulation type's kernel-visible twin: f64 for f64, f32 for the rest.
    type Acc: FloatType;
}
impl FloatType for f32 {
    type Acc = f32;
}
impl FloatType for f64 {
    type Acc = f64;
}
impl FloatType for half::f16 {
    type Acc = f32;
}
impl FloatType for half::bf16 {
    type Acc = f32;
}

pub(crate) type Launched = std::result::Result<Option<(CudaEvent, CudaEvent)>, DriverError>;

/// Maps a launch's outcome to ptm-cuda's error, naming the kernel.
pub(crate) fn launched(r: Launched, kernel: &str) -> Result<()> {
    r.map(|_| ()).map_err(driver(format!("launching {kernel}")))
}

/// An error unless `got == want`, naming the kernel and the argument.
pub(crate) fn expect_len(kernel: &str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{kernel}: {what} has {got} elements, expected {want}"
        )))
    }
}
