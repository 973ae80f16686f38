//! Scaled-dot-product attention, forward and backward: flash attention on tensor cores
//! (`kernels/attention_mma.cu`) for f16/bf16 with head dims 32, 64, 128, and the CUDA-core kernels
//! (`kernels/attention_simt.cu`) for everything else (f32, f64, other head dims up to 256).
//!
//! Shapes and masks are ptm-cpu's ([`AttentionShape`]): `q` is `[bh, tq, d]`, `k`, `v`
//! `[bh, tk, d]` with `prefix` keys first; causal masks allow for a KV cache (the queries are the
//! last `tq` positions); `key_padding` is `[batch, tk − prefix]`, 0 for a padded key. A query
//! that sees no key gets uniform weights over all keys, as ptm-tensor's composition gives.

use super::{expect_len, launched, FloatType};
use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
pub use ptm_cpu::attention::AttentionShape;

/// The kernels' view of the shape (`ptm::AttShape` / `ptm::FaShape`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct KShape {
    bh: i32,
    heads: i32,
    tq: i32,
    tk: i32,
    prefix: i32,
    d: i32,
    causal: i32,
    pad: i32,
}

// SAFETY: plain-old-data with the C layout of the kernels' shape structs (eight ints).
unsafe impl DeviceRepr for KShape {}

/// Which kernels ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionPath {
    /// Flash attention on tensor cores.
    TensorCore,
    /// The CUDA-core kernels.
    Simt,
}

fn is_half<T: FloatType>() -> bool {
    T::NAME == "f16" || T::NAME == "bf16"
}

fn path<T: FloatType>(d: usize, force_simt: bool) -> AttentionPath {
    if is_half::<T>() && !force_simt && matches!(d, 32 | 64 | 128) {
        AttentionPath::TensorCore
    } else {
        AttentionPath::Simt
    }
}

fn kshape(name: &str, sh: &AttentionShape, causal: bool) -> Result<KShape> {
    let fits = |v: usize| i32::try_from(v).is_ok();
    if ![sh.bh, sh.heads, sh.tq, sh.tk, sh.prefix, sh.d]
        .into_iter()
        .all(fits)
    {
        return Err(Error::Invalid(format!(
            "{name}: {sh:?} is over the kernels' i32 range"
        )));
    }
    if (sh.heads == 0 && sh.bh > 0) || !sh.bh.is_multiple_of(sh.heads.max(1)) || sh.prefix > sh.tk {
        return Err(Error::Invalid(format!("{name}: inconsistent shape {sh:?}")));
    }
    if sh.bh > 65_535 {
        return Err(Error::Invalid(format!(
            "{name}: {} batch·heads is over 65 535",
            sh.bh
        )));
    }
    if sh.d > 256 {
        return Err(Error::Invalid(format!(
            "{name}: head dim {} is over 256",
            sh.d
        )));
    }
    Ok(KShape {
        bh: sh.bh as i32,
        heads: sh.heads as i32,
        tq: sh.tq as i32,
        tk: sh.tk as i32,
        prefix: sh.prefix as i32,
        d: sh.d as i32,
        causal: causal as i32,
        pad: 0,
    })
}

fn check_sizes<T: FloatType>(
    name: &str,
    sh: &AttentionShape,
    q: &Buffer<T>,
    k: &Buffer<T>,
    v: &Buffer<T>,
    key_padding: Option<&Buffer<f32>>,
) -> Result<()> {
    expect_len(name, "q", q.len(), sh.bh * sh.tq * sh.d)?;
    expect_len(name, "k", k.len(), sh.bh * sh.tk * sh.d)?;
    expect_len(name, "v", v.len(), sh.bh * sh.tk * sh.d)?;
    if let Some(p) = key_padding {
        expect_len(
            name,
            "key_padding",
            p.len(),
            sh.bh / sh.heads.max(1) * (sh.tk - sh.prefix),
        )?;
    }
    Ok(())
}

fn fill_zero<T: FloatType>(b: &mut Buffer<T>) -> Result<()> {
    super::elementwise::fill(b, 0.0)
}

fn set_smem(f: &cudarc::driver::CudaFunction, bytes: u32, name: &str) -> Result<()> {
    f.set_attribute(
        cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        bytes as i32,
    )
    .map_err(crate::error::driver(format!(
        "allowing {name} {bytes} bytes of shared memory"
    )))
}

fn warps_grid(rows: usize, bh: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(4).max(1) as u32, bh as u32, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Forward: writes `o` (`[bh, tq, d]`) and returns each query's score maximum and `1/Σ exp`
/// (`[bh, tq, 2]`, f32; f64 for f64), which [`attention_bwd`] needs.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd<T: FloatType>(
    sh: &AttentionShape,
    causal: bool,
    key_padding: Option<&Buffer<f32>>,
    scale: f64,
    q: &Buffer<T>,
    k: &Buffer<T>,
    v: &Buffer<T>,
    o: &mut Buffer<T>,
    force_simt: bool,
) -> Result<(Buffer<T::Acc>, AttentionPath)> {
    let name = format!("attention_fwd_{}", T::NAME);
    let ks = kshape(&name, sh, causal)?;
    check_sizes(&name, sh, q, k, v, key_padding)?;
    expect_len(&name, "o", o.len(), q.len())?;
    let dev: Device = o.device().clone();
    let mut stats = dev.alloc::<T::Acc>(sh.bh * sh.tq * 2)?;
    let which = path::<T>(sh.d, force_simt);
    if sh.bh == 0 || sh.tq == 0 || sh.d == 0 || sh.tk == 0 {
        // No keys: every output is an empty sum (as ptm-cpu).
        fill_zero(o)?;
        fill_zero(&mut stats)?;
        return Ok((stats, which));
    }
    let kp = key_padding.map_or(0, Buffer::ptr);
    let (qp, kptr, vp, op, sp) = (q.ptr(), k.ptr(), v.ptr(), o.ptr(), stats.ptr());
    match which {
        AttentionPath::TensorCore => {
            let kname = format!("attention_fwd_mma_d{}_{}", sh.d, T::NAME);
            let f = dev.function("attention_mma.cu", &kname)?;
            let smem = (320 * (sh.d + 8) * 2) as u32;
            set_smem(&f, smem, &kname)?;
            let scale = scale as f32;
            let cfg = LaunchConfig {
                grid_dim: (sh.tq.div_ceil(64) as u32, sh.bh as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: smem,
            };
            let mut l = dev.launcher(&f);
            l.arg(&ks)
                .arg(&kp)
                .arg(&scale)
                .arg(&qp)
                .arg(&kptr)
                .arg(&vp)
                .arg(&op)
                .arg(&sp);
            // SAFETY: arguments match `attention_fwd_mma_dD_T(FaShape, const float*, float,
            // const T*, const T*, const T*, T*, float*)`; buffer lengths checked above, d is the
            // kernel's D, and its dynamic shared memory (64 + 4·64 rows of d + 8) is allowed.
            launched(unsafe { l.launch(cfg) }, &kname)?;
        }
        AttentionPath::Simt => {
            let kname = format!("attention_fwd_simt_{}", T::NAME);
            let f = dev.function("attention_simt.cu", &kname)?;
            let mut l = dev.launcher(&f);
            l.arg(&ks)
                .arg(&kp)
                .arg(&scale)
                .arg(&qp)
                .arg(&kptr)
                .arg(&vp)
                .arg(&op)
                .arg(&sp);
            // SAFETY: arguments match `attention_fwd_simt_T(AttShape, const float*, double,
            // const T*, const T*, const T*, T*, A*)`; lengths checked above, d ≤ 256.
            launched(unsafe { l.launch(warps_grid(sh.tq, sh.bh)) }, &kname)?;
        }
    }
    Ok((stats, which))
}

/// Backward from the forward's output `o` and `stats`: writes `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd<T: FloatType>(
    sh: &AttentionShape,
    causal: bool,
    key_padding: Option<&Buffer<f32>>,
    scale: f64,
    q: &Buffer<T>,
    k: &Buffer<T>,
    v: &Buffer<T>,
    o: &Buffer<T>,
    stats: &Buffer<T::Acc>,
    dout: &Buffer<T>,
    dq: &mut Buffer<T>,
    dk: &mut Buffer<T>,
    dv: &mut Buffer<T>,
    force_simt: bool,
) -> Result<AttentionPath> {
    let name = format!("attention_bwd_{}", T::NAME);
    let ks = kshape(&name, sh, causal)?;
    check_sizes(&name, sh, q, k, v, key_padding)?;
    for (what, len) in [("o", o.len()), ("dout", dout.len()), ("dq", dq.len())] {
        expect_len(&name, what, len, q.len())?;
    }
    expect_len(&name, "dk", dk.len(), k.len())?;
    expect_len(&name, "dv", dv.len(), v.len())?;
    expect_len(&name, "stats", stats.len(), sh.bh * sh.tq * 2)?;
    let which = path::<T>(sh.d, force_simt);
    if sh.bh == 0 || sh.d == 0 || sh.tq == 0 || sh.tk == 0 {
        fill_zero(dq)?;
        fill_zero(dk)?;
        fill_zero(dv)?;
        return Ok(which);
    }
    let dev: Device = dq.device().clone();
    let rows = sh.bh * sh.tq;
    let delta = dev.alloc::<T::Acc>(rows)?;
    {
        let kname = format!("attention_delta_{}", T::NAME);
        let f = dev.function("attention_simt.cu", &kname)?;
        let (r, d, op, gp, dp) = (rows as i32, sh.d as i32, o.ptr(), dout.ptr(), delta.ptr());
        let mut l = dev.launcher(&f);
        l.arg(&r).arg(&d).arg(&op).arg(&gp).arg(&dp);
        // SAFETY: arguments match `attention_delta_T(int, int, const T*, const T*, A*)`; o and
        // dout hold rows·d, delta rows.
        launched(unsafe { l.launch(warps_grid(rows, 1)) }, &kname)?;
    }
    let kp = key_padding.map_or(0, Buffer::ptr);
    let (qp, kptr, vp, sp, dlp, gp) = (
        q.ptr(),
        k.ptr(),
        v.ptr(),
        stats.ptr(),
        delta.ptr(),
        dout.ptr(),
    );
    match which {
        AttentionPath::TensorCore => {
            let bq = if sh.d == 128 { 32 } else { 64 };
            let kname = format!("attention_bwd_mma_d{}_{}", sh.d, T::NAME);
            let f = dev.function("attention_mma.cu", &kname)?;
            let smem = ((128 + 2 * bq) * (sh.d + 8) * 2 + 64 * (bq + 8) * 2 + 3 * bq * 4) as u32;
            set_smem(&f, smem, &kname)?;
            let dq_acc = dev.zeros::<f32>(q.len())?;
            let (scale32, qa, dkp, dvp) = (scale as f32, dq_acc.ptr(), dk.ptr(), dv.ptr());
            let cfg = LaunchConfig {
                grid_dim: (sh.tk.div_ceil(64) as u32, sh.bh as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: smem,
            };
            let mut l = dev.launcher(&f);
            l.arg(&ks)
                .arg(&kp)
                .arg(&scale32)
                .arg(&qp)
                .arg(&kptr)
                .arg(&vp);
            l.arg(&sp).arg(&dlp).arg(&gp).arg(&qa).arg(&dkp).arg(&dvp);
            // SAFETY: arguments match `attention_bwd_mma_dD_T(FaShape, const float*, float,
            // const T*, const T*, const T*, const float*, const float*, const T*, float*, T*, T*)`;
            // stats and delta are f32 for half types; lengths checked above; shared memory allowed.
            launched(unsafe { l.launch(cfg) }, &kname)?;
            super::elementwise::cast(&dq_acc, dq)?;
            let kname = format!("attention_dv_masked_rows_{}", T::NAME);
            let f = dev.function("attention_mma.cu", &kname)?;
            let (tq, tk, d) = (sh.tq as i32, sh.tk as i32, sh.d as i32);
            let cfg = LaunchConfig {
                grid_dim: (1, sh.bh as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = dev.launcher(&f);
            l.arg(&tq).arg(&tk).arg(&d).arg(&sp).arg(&gp).arg(&dvp);
            // SAFETY: arguments match `attention_dv_masked_rows_T(int, int, int, const float*,
            // const T*, T*)`; lengths checked above.
            launched(unsafe { l.launch(cfg) }, &kname)?;
        }
        AttentionPath::Simt => {
            let (dqp, dkp, dvp) = (dq.ptr(), dk.ptr(), dv.ptr());
            let kname = format!("attention_bwd_dq_simt_{}", T::NAME);
            let f = dev.function("attention_simt.cu", &kname)?;
            let mut l = dev.launcher(&f);
            l.arg(&ks)
                .arg(&kp)
                .arg(&scale)
                .arg(&qp)
                .arg(&kptr)
                .arg(&vp)
                .arg(&sp)
                .arg(&dlp)
                .arg(&gp)
                .arg(&dqp);
            // SAFETY: arguments match `attention_bwd_dq_simt_T(AttShape, const float*, double,
            // const T*, const T*, const T*, const A*, const A*, const T*, T*)`; lengths checked.
            launched(unsafe { l.launch(warps_grid(sh.tq, sh.bh)) }, &kname)?;
            let kname = format!("attention_bwd_dkv_simt_{}", T::NAME);
            let f = dev.function("attention_simt.cu", &kname)?;
            let mut l = dev.launcher(&f);
            l.arg(&ks)
                .arg(&kp)
                .arg(&scale)
                .arg(&qp)
                .arg(&kptr)
                .arg(&vp)
                .arg(&sp)
                .arg(&dlp)
                .arg(&gp);
            l.arg(&dkp).arg(&dvp);
            // SAFETY: arguments match `attention_bwd_dkv_simt_T(AttShape, const float*, double,
            // const T*, const T*, const T*, const A*, const A*, const T*, T*, T*)`; lengths checked.
            launched(unsafe { l.launch(warps_grid(sh.tk, sh.bh)) }, &kname)?;
        }
    }
    Ok(which)
}
