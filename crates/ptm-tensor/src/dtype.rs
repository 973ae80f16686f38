//! Element types and the Rust types that carry them.

use crate::storage::CpuStorage;
use half::{bf16, f16};

/// The element type of a tensor. Compute happens in f32 or f64; f16 and bf16 are storage types
/// that ops widen to f32 and narrow back. u32 and i64 hold ids, indices and masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float (CPU; used for gradient checks).
    F64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
}

impl DType {
    /// Whether the dtype is a floating-point type (the ones autograd differentiates).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::U32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// The name safetensors and this crate's messages use ("F32", "BF16", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::U32 => "U32",
            DType::I64 => "I64",
        }
    }
}

/// A Rust type that is the element of some [`DType`].
pub trait WithDType: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The dtype this type stores.
    const DTYPE: DType;
    /// Wraps a vector as storage.
    fn to_storage(v: Vec<Self>) -> CpuStorage;
    /// Converts from f64, rounding or truncating as a cast does.
    fn of_f64(x: f64) -> Self;
    /// Converts to f64.
    fn as_f64(self) -> f64;
    /// Borrows the storage's vector when it holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// Takes the storage's vector when it holds this type, else gives the storage back.
    fn unwrap_storage(s: CpuStorage) -> std::result::Result<Vec<Self>, CpuStorage>;
}

macro_rules! with_dtype {
    ($t:ty, $variant:ident, $from:expr, $to:expr) => {
        impl WithDType for $t {
            const DTYPE: DType = DType::$variant;
            fn to_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
            fn of_f64(x: f64) -> Self {
                $from(x)
            }
            fn as_f64(self) -> f64 {
                $to(self)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn unwrap_storage(s: CpuStorage) -> std::result::Result<Vec<Self>, CpuStorage> {
                match s {
                    CpuStorage::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}
with_dtype!(f32, F32, |x| x as f32, |x: f32| x as f64);
with_dtype!(f64, F64, |x| x, |x| x);
with_dtype!(f16, F16, f16::from_f64, f16::to_f64);
with_dtype!(bf16, BF16, bf16::from_f64, bf16::to_f64);
with_dtype!(u32, U32, |x| x as u32, |x: u32| x as f64);
with_dtype!(i64, I64, |x| x as i64, |x: i64| x as f64);
