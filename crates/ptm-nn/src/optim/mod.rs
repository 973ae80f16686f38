//! Optimizers over a model's trainable parameters, with state that saves and restores exactly.

mod adamw;
mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::error::{invalid, Result};
use crate::param::Param;
use ptm_tensor::{DType, GradStore, Tensor};
use std::collections::BTreeMap;

/// What every optimizer offers a training loop.
pub trait Optimizer {
    /// Updates every parameter that has a gradient in `grads` (others are left alone, as PyTorch
    /// skips parameters whose `.grad` is `None`).
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (schedulers call this before each step).
    fn set_learning_rate(&mut self, lr: f64);
    /// The optimizer's state by name (moments, step counts), for checkpoints.
    fn state(&self) -> Result<BTreeMap<String, Tensor>>;
    /// Restores a state written by [`Optimizer::state`]; names and shapes must match.
    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()>;
}

/// A finite value at least 0 (NaN is not).
fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// The f32 gradient of an f32 parameter (a tensor whose values are read in place, not copied), or
/// `None` without a gradient. The parameter itself is then changed through [`Param::update_f32`],
/// in place when the caller has dropped the graph.
fn gradient(name: &str, p: &Param, grads: &GradStore) -> Result<Option<Tensor>> {
    let t = p.tensor();
    let Some(g) = grads.get(&t) else {
        return Ok(None);
    };
    if t.dtype() != DType::F32 {
        return Err(invalid(
            "optimizer",
            format!(
                "parameter '{name}' is {:?}; the optimizers step f32 parameters",
                t.dtype()
            ),
        ));
    }
    Ok(Some(g.to_dtype(DType::F32)?))
}

/// Reads `name` from a saved state as f32 values of `len` elements.
fn state_vec(state: &BTreeMap<String, Tensor>, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = state
        .get(name)
        .ok_or_else(|| invalid("optimizer state", format!("missing '{name}'")))?;
    if t.elem_count() != len {
        return Err(invalid(
            "optimizer state",
            format!(
                "'{name}' has {} elements, the parameter {len}",
                t.elem_count()
            ),
        ));
    }
    Ok(t.to_dtype(DType::F32)?.to_vec::<f32>()?)
}

fn state_step(state: &BTreeMap<String, Tensor>, name: &str) -> Result<u64> {
    let t = state
        .get(name)
        .ok_or_else(|| invalid("optimizer state", format!("missing '{name}'")))?;
    let v = t.to_dtype(DType::I64)?.to_vec::<i64>()?;
    match v[..] {
        [s] if s >= 0 => Ok(s as u64),
        _ => Err(invalid(
            "optimizer state",
            format!("'{name}' is not a step count: {v:?}"),
        )),
    }
}
