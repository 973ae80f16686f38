//! Row kernels over contiguous `[rows, n]` arrays: softmax and log-softmax (`kernels/softmax.cu`),
//! layer norm (`kernels/layer_norm.cu`), fused cross-entropy (`kernels/cross_entropy.cu`) and
//! reductions over the last dimension (`kernels/reduce.cu`).

use super::{expect_len, launched, FloatType, Numeric};
use crate::device::Buffer;
use crate::error::{Error, Result};
use cudarc::driver::PushKernelArg;

/// `y = softmax(x)` (or `log_softmax` with `log_space`) over each row of `n`.
pub fn softmax_fwd<T: FloatType>(
    x: &Buffer<T>,
    y: &mut Buffer<T>,
    n: usize,
    log_space: bool,
) -> Result<()> {
    let name = format!("softmax_fwd_{}", T::NAME);
    let rows = rows_of(&name, x.len(), n)?;
    expect_len(&name, "y", y.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function("softmax.cu", &name)?;
    let (r, nn, xp, yp, ls) = (rows as i64, n as i64, x.ptr(), y.ptr(), log_space as i32);
    let mut l = dev.launcher(&f);
    l.arg(&r).arg(&nn).arg(&xp).arg(&yp).arg(&ls);
    // SAFETY: arguments match `softmax_fwd_T(i64, i64, const T*, T*, int)`; both hold rows·n.
    launched(unsafe { l.launch(dev.grid_rows(rows, n)) }, &name)
}

/// Backward of [`softmax_fwd`] from its output `y`: `dx (+)= y(dy − Σ dy·y)`, or for log-softmax
/// `dx (+)= dy − exp(y) Σ dy`.
pub fn softmax_bwd<T: FloatType>(
    y: &Buffer<T>,
    dy: &Buffer<T>,
    dx: &mut Buffer<T>,
    n: usize,
    log_space: bool,
    accumulate: bool,
) -> Result<()> {
    let name = format!("softmax_bwd_{}", T::NAME);
    let rows = rows_of(&name, y.len(), n)?;
    expect_len(&name, "dy", dy.len(), y.len())?;
    expect_len(&name, "dx", dx.len(), y.len())?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = dx.device().clone();
    let f = dev.function("softmax.cu", &name)?;
    let (r, nn, ls, acc) = (rows as i64, n as i64, log_space as i32, accumulate as i32);
    let (yp, dyp, dxp) = (y.ptr(), dy.ptr(), dx.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&r)
        .arg(&nn)
        .arg(&yp)
        .arg(&dyp)
        .arg(&dxp)
        .arg(&ls)
        .arg(&acc);
    // SAFETY: arguments match `softmax_bwd_T(i64, i64, const T*, const T*, T*, int, int)`.
    launched(unsafe { l.launch(dev.grid_rows(rows, n)) }, &name)
}

fn rows_of(name: &str, len: usize, n: usize) -> Result<usize> {
    if n == 0 {
        return if len == 0 {
            Ok(0)
        } else {
            Err(Error::Invalid(format!(
                "{name}: rows of length 0 in {len} elements"
            )))
        };
    }
    if !len.is_multiple_of(n) {
        return Err(Error::Invalid(format!(
            "{name}: {len} elements are not whole rows of {n}"
        )));
    }
    Ok(len / n)
}

/// Layer norm's saved statistics: each row's mean and `1/sqrt(var + eps)`.
pub struct LayerNormStats<T: FloatType> {
    /// Row means.
    pub mean: Buffer<T::Acc>,
    /// Row reciprocal standard deviations.
    pub rstd: Buffer<T::Acc>,
}

/// `y = (x − mean)·rstd·w + b` per row of `n`; `w`/`b` (length `n`) optional. Returns the
/// statistics the backward needs.
pub fn layer_norm_fwd<T: FloatType>(
    x: &Buffer<T>,
    w: Option<&Buffer<T>>,
    b: Option<&Buffer<T>>,
    eps: f64,
    n: usize,
    y: &mut Buffer<T>,
) -> Result<LayerNormStats<T>> {
    let name = format!("layer_norm_fwd_{}", T::NAME);
    let rows = rows_of(&name, x.len(), n)?;
    expect_len(&name, "y", y.len(), x.len())?;
    if let Some(w) = w {
        expect_len(&name, "weight", w.len(), n)?;
    }
    if let Some(b) = b {
        expect_len(&name, "bias", b.len(), n)?;
    }
    let dev = y.device().clone();
    let stats = LayerNormStats {
        mean: dev.alloc(rows)?,
        rstd: dev.alloc(rows)?,
    };
    if x.is_empty() {
        return Ok(stats);
    }
    let f = dev.function("layer_norm.cu", &name)?;
    let (r, nn, xp, yp) = (rows as i64, n as i64, x.ptr(), y.ptr());
    let (wp, bp) = (w.map_or(0, Buffer::ptr), b.map_or(0, Buffer::ptr));
    let (mp, sp) = (stats.mean.ptr(), stats.rstd.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&r)
        .arg(&nn)
        .arg(&xp)
        .arg(&wp)
        .arg(&bp)
        .arg(&eps)
        .arg(&yp)
        .arg(&mp)
        .arg(&sp);
    // SAFETY: arguments match `layer_norm_fwd_T(i64, i64, const T*, const T*, const T*, double,
    // T*, A*, A*)`; x, y hold rows·n, w and b n (or are null), mean and rstd rows.
    launched(unsafe { l.launch(dev.grid_rows(rows, n)) }, &name)?;
    Ok(stats)
}

/// Backward of [`layer_norm_fwd`]: `dx (+)= …`, and `dw`, `db` (length `n`, when given) (+)= their
/// sums over rows.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_bwd<T: FloatType>(
    x: &Buffer<T>,
    w: Option<&Buffer<T>>,
    stats: &LayerNormStats<T>,
    dy: &Buffer<T>,
    n: usize,
    dx: &mut Buffer<T>,
    dw: Option<&mut Buffer<T>>,
    db: Option<&mut Buffer<T>>,
    accumulate: bool,
) -> Result<()> {
    let name = format!("layer_norm_bwd_{}", T::NAME);
    let rows = rows_of(&name, x.len(), n)?;
    expect_len(&name, "dy", dy.len(), x.len())?;
    expect_len(&name, "dx", dx.len(), x.len())?;
    expect_len(&name, "mean", stats.mean.len(), rows)?;
    expect_len(&name, "rstd", stats.rstd.len(), rows)?;
    for (what, len) in [
        ("weight", w.map(Buffer::len)),
        ("dw", dw.as_ref().map(|b| b.len())),
        ("db", db.as_ref().map(|b| b.len())),
    ] {
        if let Some(len) = len {
            expect_len(&name, what, len, n)?;
        }
    }
    let dev = dx.device().clone();
    // Partial sums for dw, db: one row per block, summed in order afterwards.
    let cfg = dev.grid_rows(rows, n);
    let parts = (dev.sm_count() as usize * 2).min(rows).max(1);
    let cfg = cudarc::driver::LaunchConfig {
        grid_dim: (parts as u32, 1, 1),
        ..cfg
    };
    let dw_part = match dw {
        Some(_) => Some(dev.alloc::<T::Acc>(parts * n)?),
        None => None,
    };
    let db_part = match db {
        Some(_) => Some(dev.alloc::<T::Acc>(parts * n)?),
        None => None,
    };
    if rows > 0 && n > 0 {
        let f = dev.function("layer_norm.cu", &name)?;
        let (r, nn, acc) = (rows as i64, n as i64, accumulate as i32);
        let (xp, wp) = (x.ptr(), w.map_or(0, Buffer::ptr));
        let (mp, sp, dyp, dxp) = (stats.mean.ptr(), stats.rstd.ptr(), dy.ptr(), dx.ptr());
        let (dwp, dbp) = (
            dw_part.as_ref().map_or(0, Buffer::ptr),
            db_part.as_ref().map_or(0, Buffer::ptr),
        );
        let mut l = dev.launcher(&f);
        l.arg(&r)
            .arg(&nn)
            .arg(&xp)
            .arg(&wp)
            .arg(&mp)
            .arg(&sp)
            .arg(&dyp)
            .arg(&dxp)
            .arg(&acc)
            .arg(&dwp)
            .arg(&dbp);
        // SAFETY: arguments match `layer_norm_bwd_T(i64, i64, const T*, const T*, const A*,
        // const A*, const T*, T*, int, A*, A*)`; sizes checked above; the partial buffers hold
        // one row of n per block of the grid.
        launched(unsafe { l.launch(cfg) }, &name)?;
    }
    let reduce = format!("layer_norm_bwd_reduce_{}", T::NAME);
    for (part, out) in [(dw_part, dw), (db_part, db)] {
        let (Some(part), Some(out)) = (part, out) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (pp, op, nn, acc) = (part.ptr(), out.ptr(), n as i64, accumulate as i32);
        // With no rows the partials were never written: sum zero of them.
        let parts_written = if rows > 0 { parts as i64 } else { 0 };
        let f = dev.function("layer_norm.cu", &reduce)?;
        let mut l = dev.launcher(&f);
        l.arg(&parts_written).arg(&nn).arg(&pp).arg(&op).arg(&acc);
        // SAFETY: arguments match `layer_norm_bwd_reduce_T(i64, i64, const A*, T*, int)`; the
        // partial buffer holds parts·n, the output n.
        launched(unsafe { l.launch(dev.grid_1d(n, 256)) }, &reduce)?;
    }
    Ok(())
}

/// The cross-entropy forward's results: per-row losses (0 for ignored rows) and log-sum-exps.
pub struct CrossEntropy<T: FloatType> {
    /// `lse(row) − row[target]` per row.
    pub loss: Buffer<T::Acc>,
    /// `ln Σ exp(row)` per row, for the backward.
    pub lse: Buffer<T::Acc>,
}

fn check_targets(name: &str, targets: &[i64], c: usize, ignore_index: i64) -> Result<()> {
    match targets
        .iter()
        .find(|&&t| t != ignore_index && (t < 0 || t as usize >= c))
    {
        Some(t) => Err(Error::Invalid(format!(
            "{name}: target {t} is outside 0..{c} (and is not ignore_index {ignore_index})"
        ))),
        None => Ok(()),
    }
}

/// Cross-entropy of each row of `c` logits against `targets` (host copy checked here, device copy
/// read by the kernel).
pub fn cross_entropy_fwd<T: FloatType>(
    logits: &Buffer<T>,
    targets: &Buffer<i64>,
    targets_host: &[i64],
    c: usize,
    ignore_index: i64,
) -> Result<CrossEntropy<T>> {
    let name = format!("cross_entropy_fwd_{}", T::NAME);
    let rows = rows_of(&name, logits.len(), c)?;
    expect_len(&name, "targets", targets.len(), rows)?;
    expect_len(&name, "host targets", targets_host.len(), rows)?;
    check_targets(&name, targets_host, c, ignore_index)?;
    let dev = logits.device().clone();
    let out = CrossEntropy {
        loss: dev.alloc(rows)?,
        lse: dev.alloc(rows)?,
    };
    if rows == 0 {
        return Ok(out);
    }
    let f = dev.function("cross_entropy.cu", &name)?;
    let (r, cc, xp, tp) = (rows as i64, c as i64, logits.ptr(), targets.ptr());
    let (lp, sp) = (out.loss.ptr(), out.lse.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&r)
        .arg(&cc)
        .arg(&xp)
        .arg(&tp)
        .arg(&ignore_index)
        .arg(&lp)
        .arg(&sp);
    // SAFETY: arguments match `cross_entropy_fwd_T(i64, i64, const T*, const i64*, i64, A*, A*)`;
    // every target is ignore_index or within 0..c (checked on the host copy).
    launched(unsafe { l.launch(dev.grid_rows(rows, c)) }, &name)?;
    Ok(out)
}

/// `dlogits (+)= dloss[0]·factor·(softmax(row) − onehot(target))`, zero for ignored rows.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_bwd<T: FloatType>(
    logits: &Buffer<T>,
    targets: &Buffer<i64>,
    c: usize,
    ignore_index: i64,
    fwd: &CrossEntropy<T>,
    dloss: &Buffer<T>,
    factor: f64,
    dlogits: &mut Buffer<T>,
    accumulate: bool,
) -> Result<()> {
    let name = format!("cross_entropy_bwd_{}", T::NAME);
    let rows = rows_of(&name, logits.len(), c)?;
    expect_len(&name, "targets", targets.len(), rows)?;
    expect_len(&name, "lse", fwd.lse.len(), rows)?;
    expect_len(&name, "dloss", dloss.len(), 1)?;
    expect_len(&name, "dlogits", dlogits.len(), logits.len())?;
    if rows == 0 {
        return Ok(());
    }
    let dev = dlogits.device().clone();
    let f = dev.function("cross_entropy.cu", &name)?;
    let (r, cc, xp, tp, sp) = (
        rows as i64,
        c as i64,
        logits.ptr(),
        targets.ptr(),
        fwd.lse.ptr(),
    );
    let (dlp, gp, acc) = (dloss.ptr(), dlogits.ptr(), accumulate as i32);
    let mut l = dev.launcher(&f);
    l.arg(&r)
        .arg(&cc)
        .arg(&xp)
        .arg(&tp)
        .arg(&ignore_index)
        .arg(&sp)
        .arg(&dlp)
        .arg(&factor)
        .arg(&gp)
        .arg(&acc);
    // SAFETY: arguments match `cross_entropy_bwd_T(i64, i64, const T*, const i64*, i64, const A*,
    // const T*, double, T*, int)`; the targets were checked by the forward that made `fwd`.
    launched(unsafe { l.launch(dev.grid_rows(rows, c)) }, &name)
}

/// Reductions over the last dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Reduce {
    /// Sum.
    Sum = 0,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
}

/// `y[r] = op over x[r, 0..n)`; an empty row gives 0, or the type's lowest or highest value.
/// Integer sums wrap.
pub fn reduce_rows<T: Numeric>(
    op: Reduce,
    x: &Buffer<T>,
    n: usize,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("reduce_rows_{}", T::NAME);
    let rows = y.len();
    expect_len(&name, "x", x.len(), rows * n)?;
    if rows == 0 {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function("reduce.cu", &name)?;
    let (o, r, nn, xp, yp) = (op as i32, rows as i64, n as i64, x.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&o).arg(&r).arg(&nn).arg(&xp).arg(&yp);
    // SAFETY: arguments match `reduce_rows_T(int, i64, i64, const T*, T*)`; x holds rows·n.
    launched(unsafe { l.launch(dev.grid_rows(rows, n)) }, &name)
}

/// Index of each row's maximum (or minimum), the first on ties; NaN counts as the maximum.
pub fn arg_rows<T: Numeric>(
    want_max: bool,
    x: &Buffer<T>,
    n: usize,
    out: &mut Buffer<i64>,
) -> Result<()> {
    let name = format!("arg_rows_{}", T::NAME);
    let rows = out.len();
    expect_len(&name, "x", x.len(), rows * n)?;
    if rows == 0 {
        return Ok(());
    }
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{name}: arg-reduction over an empty dimension"
        )));
    }
    let dev = out.device().clone();
    let f = dev.function("reduce.cu", &name)?;
    let (m, r, nn, xp, op) = (want_max as i32, rows as i64, n as i64, x.ptr(), out.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&m).arg(&r).arg(&nn).arg(&xp).arg(&op);
    // SAFETY: arguments match `arg_rows_T(int, i64, i64, const T*, i64*)`; x holds rows·n.
    launched(unsafe { l.launch(dev.grid_rows(rows, n)) }, &name)
}
