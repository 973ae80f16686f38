//! The fused AdamW step (`kernels/adamw.cu`).

use super::{expect_len, launched, FloatType};
use crate::device::Buffer;
use crate::error::Result;
use cudarc::driver::PushKernelArg;

pub use ptm_cpu::optim::AdamW;

/// One AdamW step at `step` (1-based) on parameters `p` with gradients `g` and f32 moments `m`,
/// `v`. The scalar factors are [`AdamW::factors`], as ptm-cpu's `adamw_step` uses them.
pub fn adamw_step<T: FloatType>(
    p: &mut Buffer<T>,
    g: &Buffer<T>,
    m: &mut Buffer<f32>,
    v: &mut Buffer<f32>,
    h: &AdamW,
    step: u64,
) -> Result<()> {
    let name = format!("adamw_{}", T::NAME);
    expect_len(&name, "g", g.len(), p.len())?;
    expect_len(&name, "m", m.len(), p.len())?;
    expect_len(&name, "v", v.len(), p.len())?;
    if p.is_empty() {
        return Ok(());
    }
    let ptm_cpu::optim::AdamWFactors {
        decay,
        step_size,
        w1,
        b2,
        w2,
        bc2_sqrt,
        eps,
    } = h.factors(step);
    let dev = p.device().clone();
    let f = dev.function("adamw.cu", &name)?;
    let (n, pp, gp, mp, vp) = (p.len() as i64, p.ptr(), g.ptr(), m.ptr(), v.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&n).arg(&pp).arg(&gp).arg(&mp).arg(&vp);
    l.arg(&decay)
        .arg(&step_size)
        .arg(&w1)
        .arg(&b2)
        .arg(&w2)
        .arg(&bc2_sqrt)
        .arg(&eps);
    // SAFETY: arguments match `adamw_T(i64, T*, const T*, float*, float*, float ×7)`; all four
    // buffers hold n elements.
    launched(unsafe { l.launch(dev.grid_1d(p.len(), 256)) }, &name)
}
