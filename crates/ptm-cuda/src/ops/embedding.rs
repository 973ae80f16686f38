//! Embedding lookup and its backward (`kernels/embedding.cu`).

use super::{expect_len, launched, FloatType, Numeric};
use crate::device::Buffer;
use crate::error::{Error, Result};
use cudarc::driver::PushKernelArg;

fn check_ids(name: &str, ids: &[i64], vocab: usize) -> Result<()> {
    match ids.iter().find(|&&i| i < 0 || i as usize >= vocab) {
        Some(i) => Err(Error::Invalid(format!(
            "{name}: id {i} is outside the table's {vocab} rows"
        ))),
        None => Ok(()),
    }
}

/// `y[r, :] = table[ids[r], :]` for a table of rows of `d`. `ids_host` is the host copy of `ids`,
/// checked against the table here. With `d = 1` it gathers single elements by flat offset.
pub fn embedding_fwd<T: Numeric>(
    ids: &Buffer<i64>,
    ids_host: &[i64],
    table: &Buffer<T>,
    d: usize,
    y: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("embedding_fwd_{}", T::NAME);
    let vocab = table.len().checked_div(d).unwrap_or(0);
    expect_len(&name, "table", table.len(), vocab * d)?;
    expect_len(&name, "host ids", ids_host.len(), ids.len())?;
    expect_len(&name, "y", y.len(), ids.len() * d)?;
    check_ids(&name, ids_host, vocab)?;
    if y.is_empty() {
        return Ok(());
    }
    let dev = y.device().clone();
    let f = dev.function("embedding.cu", &name)?;
    let (r, dd, ip, tp, yp) = (ids.len() as i64, d as i64, ids.ptr(), table.ptr(), y.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&r).arg(&dd).arg(&ip).arg(&tp).arg(&yp);
    // SAFETY: arguments match `embedding_fwd_T(i64, i64, const i64*, const T*, T*)`; every id is
    // within the table (checked on the host copy), y holds rows·d.
    launched(unsafe { l.launch(dev.grid_1d(y.len(), 256)) }, &name)
}

/// `dtable[ids[r], :] += dy[r, :]`, into an accumulation buffer of the table's size (f32, f64 for
/// f64): the caller zeroes it, or keeps adding.
pub fn embedding_bwd<T: FloatType>(
    ids: &Buffer<i64>,
    ids_host: &[i64],
    dy: &Buffer<T>,
    d: usize,
    dtable: &mut Buffer<T::Acc>,
) -> Result<()> {
    let name = format!("embedding_bwd_{}", T::NAME);
    let vocab = dtable.len().checked_div(d).unwrap_or(0);
    expect_len(&name, "dtable", dtable.len(), vocab * d)?;
    expect_len(&name, "host ids", ids_host.len(), ids.len())?;
    expect_len(&name, "dy", dy.len(), ids.len() * d)?;
    check_ids(&name, ids_host, vocab)?;
    if dy.is_empty() {
        return Ok(());
    }
    let dev = dy.device().clone();
    let f = dev.function("embedding.cu", &name)?;
    let (r, dd, ip, gp, tp) = (
        ids.len() as i64,
        d as i64,
        ids.ptr(),
        dy.ptr(),
        dtable.ptr(),
    );
    let mut l = dev.launcher(&f);
    l.arg(&r).arg(&dd).arg(&ip).arg(&gp).arg(&tp);
    // SAFETY: arguments match `embedding_bwd_T(i64, i64, const i64*, const T*, A*)`; every id is
    // within the table, dy holds rows·d.
    launched(unsafe { l.launch(dev.grid_1d(dy.len(), 256)) }, &name)
}
