//! The ops, one file per family. Each op checks its arguments, computes through `ptm-cpu`, and
//! records itself for backward; the backward rules live in `backprop.rs`.

pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod cast;
pub(crate) mod conv;
pub(crate) mod index;
pub(crate) mod linear_ce;
pub(crate) mod matmul;
pub(crate) mod nn;
pub(crate) mod optim;
pub(crate) mod reduce;
pub(crate) mod unary;
pub(crate) mod view;

/// Runs `$body` with the type alias `$t` set to the Rust type of `$dtype`, for all six dtypes.
macro_rules! dispatch_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            $crate::DType::F16 => {
                type $t = half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            $crate::DType::U32 => {
                type $t = u32;
                $body
            }
            $crate::DType::I64 => {
                type $t = i64;
                $body
            }
        }
    };
}
pub(crate) use dispatch_dtype;
