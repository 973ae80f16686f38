//! The fused optimizer steps: AdamW (`kernels/adamw.cu`) and SGD (`kernels/sgd.cu`).

use super::{expect_len, launched, FloatType};
use crate::device::Buffer;
use crate::error::Result;
use cudarc::driver::PushKernelArg;

pub use ptm_cpu::optim::{AdamW, Sgd};

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

/// One SGD step on parameters `p` with gradients `g` and the f32 momentum buffer `buf` (`first`:
/// the buffer is still empty, so it is set to the first gradient, as PyTorch does). With momentum
/// 0 the buffer is not read and may be empty.
pub fn sgd_step<T: FloatType>(
    p: &mut Buffer<T>,
    g: &Buffer<T>,
    buf: &mut Buffer<f32>,
    h: &Sgd,
    first: bool,
) -> Result<()> {
    let name = format!("sgd_{}", T::NAME);
    expect_len(&name, "g", g.len(), p.len())?;
    if h.momentum != 0.0 {
        expect_len(&name, "momentum buffer", buf.len(), p.len())?;
    }
    if p.is_empty() {
        return Ok(());
    }
    let (lr, momentum, wd) = (h.lr as f32, h.momentum as f32, h.weight_decay as f32);
    let dev = p.device().clone();
    let f = dev.function("sgd.cu", &name)?;
    let (n, pp, gp, bp, fi) = (p.len() as i64, p.ptr(), g.ptr(), buf.ptr(), first as i32);
    let mut l = dev.launcher(&f);
    l.arg(&n).arg(&pp).arg(&gp).arg(&bp);
    l.arg(&lr).arg(&momentum).arg(&wd).arg(&fi);
    // SAFETY: arguments match `sgd_T(i64, T*, const T*, float*, float, float, float, int)`; p and g
    // hold n elements, and buf too whenever momentum is nonzero (the only case the kernel reads it).
    launched(unsafe { l.launch(dev.grid_1d(p.len(), 256)) }, &name)
}
