//! Fused scaled-dot-product attention, forward and backward, tiled over queries.
//!
//! `softmax(q·kᵀ·scale + mask)·v` for every (batch·head): queries are taken in blocks of
//! [`QUERY_BLOCK`] rows, and a block's scores against the keys it can see (`QUERY_BLOCK × keys`,
//! in cache) become its weights and then its output, so the `T × T` score matrix is never
//! stored — memory per thread is `O(QUERY_BLOCK · T)`. Under a causal mask a block stops at the
//! last key its last query may see, which skips about half the products. The forward keeps each
//! query's row maximum and `1/Σ exp` (two values per query, not `T`); the backward recomputes the
//! block's weights from them (as FlashAttention does) and accumulates the key and value
//! gradients of all blocks of one head, so it runs in parallel across heads.
//!
//! Masking matches ptm-tensor's composition (and PyTorch's eager attention): a masked score is set
//! to f32's most negative finite value, so a query whose keys are all masked gets uniform weights
//! rather than NaN. Prefix keys (prefix-tuning) come first and are seen by every query.

use crate::element::Float;
use crate::matmul::{matmul, MatRef};
use rayon::prelude::*;

/// Query rows per block.
pub const QUERY_BLOCK: usize = 64;

/// The sizes of one attention call. `q` is `[batch·heads, tq, d]`; `k` and `v` are
/// `[batch·heads, tk, d]` with the `prefix` extra keys first (`tk` counts them).
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Batch × heads.
    pub bh: usize,
    /// Heads (to find an entry's batch for the padding mask).
    pub heads: usize,
    /// Queries.
    pub tq: usize,
    /// Keys, prefix included.
    pub tk: usize,
    /// Prefix keys at the front of `k`/`v`, visible to every query.
    pub prefix: usize,
    /// Head dimension.
    pub d: usize,
}

/// Which (query, key) pairs are allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionMask<'a> {
    /// Query `i` sees key `j` (after the prefix) only when `j ≤ i + (keys − tq)`: the queries are
    /// the last `tq` of the positions (a KV cache holds the earlier ones).
    pub causal: bool,
    /// `[batch, tk − prefix]`, 0 for a padded key.
    pub key_padding: Option<&'a [f32]>,
}

impl AttentionShape {
    fn main_keys(&self) -> usize {
        self.tk - self.prefix
    }

    /// Keys a block of queries `i0..i1` needs: all, or up to its last query's causal limit.
    fn visible(&self, mask: &AttentionMask, i1: usize) -> usize {
        if mask.causal {
            let last = i1 - 1 + self.main_keys() - self.tq.min(self.main_keys());
            (self.prefix + last + 1).min(self.tk)
        } else {
            self.tk
        }
    }

    fn check(&self, q: usize, k: usize, v: usize, mask: &AttentionMask) {
        let AttentionShape {
            bh,
            heads,
            tq,
            tk,
            prefix,
            d,
        } = *self;
        assert!(
            (heads > 0 || bh == 0) && bh % heads.max(1) == 0 && prefix <= tk,
            "attention: bad shape {self:?}"
        );
        assert!(
            q == bh * tq * d && k == bh * tk * d && v == k,
            "attention: q, k, v lengths do not match {self:?}"
        );
        if let Some(p) = mask.key_padding {
            assert_eq!(
                p.len(),
                bh / heads * (tk - prefix),
                "attention: padding mask length"
            );
        }
    }
}

/// Scores of queries `i0..i0+rows` of entry `e` against its first `w` keys, scaled and masked,
/// into `s` (`rows × w`).
#[allow(clippy::too_many_arguments)]
fn scores<T: Float>(
    sh: &AttentionShape,
    mask: &AttentionMask,
    scale: T,
    q: &[T],
    k: &[T],
    e: usize,
    i0: usize,
    rows: usize,
    w: usize,
    s: &mut [T],
) {
    let d = sh.d;
    let qa = MatRef {
        data: q,
        offset: (e * sh.tq + i0) * d,
        row_stride: d,
        col_stride: 1,
    };
    // Kᵀ read in place: element (p, j) is k[j·d + p].
    let kt = MatRef {
        data: k,
        offset: e * sh.tk * d,
        row_stride: 1,
        col_stride: d,
    };
    matmul(rows, w, d, qa, kt, s, T::ZERO);
    let masked = T::from_f64(f32::MIN as f64);
    for (r, row) in s.chunks_mut(w).enumerate() {
        T::map_slice(row, |x| x * scale);
        hide(sh, mask, e, i0 + r, row, masked);
    }
}

/// Sets the entries of query `i`'s row (scores or their gradients, over the first `row.len()`
/// keys of entry `e`) that the mask removes to `value`.
fn hide<T: Copy>(
    sh: &AttentionShape,
    mask: &AttentionMask,
    e: usize,
    i: usize,
    row: &mut [T],
    value: T,
) {
    let w = row.len();
    if mask.causal {
        let shift = sh.main_keys() - sh.tq.min(sh.main_keys());
        let cut = (sh.prefix + i + shift + 1).min(w);
        row[cut..].fill(value);
    }
    if let Some(p) = mask.key_padding {
        let p = &p[e / sh.heads * sh.main_keys()..][..sh.main_keys()];
        for (x, &keep) in row[sh.prefix.min(w)..].iter_mut().zip(p) {
            if keep == 0.0 {
                *x = value;
            }
        }
    }
}

/// Forward: `o` (`[bh, tq, d]`) and per query its row maximum and `1/Σ exp` in `stats`
/// (`[bh, tq, 2]`), which [`attention_bwd`] needs.
///
/// # Panics
/// If the buffers do not match `sh`.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd<T: Float>(
    sh: &AttentionShape,
    mask: &AttentionMask,
    scale: T,
    q: &[T],
    k: &[T],
    v: &[T],
    o: &mut [T],
    stats: &mut [T],
) {
    sh.check(q.len(), k.len(), v.len(), mask);
    assert!(
        o.len() == q.len() && stats.len() == sh.bh * sh.tq * 2,
        "attention_fwd: output lengths"
    );
    let (d, tq) = (sh.d, sh.tq);
    if tq == 0 || d == 0 || sh.tk == 0 {
        // No keys: every output is an empty sum.
        o.fill(T::ZERO);
        stats.fill(T::ZERO);
        return;
    }
    let blocks = tq.div_ceil(QUERY_BLOCK);
    // Work items: (entry, query block), each writing its own rows of `o` and `stats`.
    let mut items: Vec<(usize, usize, &mut [T], &mut [T])> = vec![];
    for (e, (oe, se)) in o
        .chunks_mut(tq * d)
        .zip(stats.chunks_mut(tq * 2))
        .enumerate()
    {
        for (b, (ob, sb)) in oe
            .chunks_mut(QUERY_BLOCK * d)
            .zip(se.chunks_mut(QUERY_BLOCK * 2))
            .enumerate()
        {
            items.push((e, b, ob, sb));
        }
    }
    debug_assert_eq!(items.len(), sh.bh * blocks);
    let run = |(e, b, ob, sb): (usize, usize, &mut [T], &mut [T])| {
        let i0 = b * QUERY_BLOCK;
        let rows = QUERY_BLOCK.min(tq - i0);
        let w = sh.visible(mask, i0 + rows);
        let mut s = vec![T::ZERO; rows * w];
        scores(sh, mask, scale, q, k, e, i0, rows, w, &mut s);
        for (row, st) in s.chunks_mut(w).zip(sb.chunks_mut(2)) {
            let (mx, inv) = T::softmax_row_in_place(row);
            st[0] = mx;
            st[1] = inv;
        }
        let va = MatRef {
            data: v,
            offset: e * sh.tk * d,
            row_stride: d,
            col_stride: 1,
        };
        matmul(rows, d, w, MatRef::row_major(&s, w), va, ob, T::ZERO);
    };
    if sh.bh * tq * sh.tk * d >= 1 << 16 {
        items.into_par_iter().for_each(run);
    } else {
        items.into_iter().for_each(run);
    }
}

/// One head's gradient buffers in the backward's parallel loop: (entry, ((dq, dk), dv)).
type HeadGrads<'a, T> = (usize, ((&'a mut [T], &'a mut [T]), &'a mut [T]));

/// Backward: from the forward's `o` and `stats` and the output gradient `dout`, writes `dq` and
/// adds into `dk`, `dv` (zero them first for plain gradients).
///
/// # Panics
/// If the buffers do not match `sh`.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd<T: Float>(
    sh: &AttentionShape,
    mask: &AttentionMask,
    scale: T,
    q: &[T],
    k: &[T],
    v: &[T],
    o: &[T],
    stats: &[T],
    dout: &[T],
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    sh.check(q.len(), k.len(), v.len(), mask);
    assert!(
        o.len() == q.len()
            && dout.len() == q.len()
            && dq.len() == q.len()
            && dk.len() == k.len()
            && dv.len() == v.len()
            && stats.len() == sh.bh * sh.tq * 2,
        "attention_bwd: buffer lengths"
    );
    let (d, tq, tk) = (sh.d, sh.tq, sh.tk);
    if tq == 0 || d == 0 || tk == 0 {
        dq.fill(T::ZERO);
        return;
    }
    // One head per task: its key and value gradients gather every query block's terms.
    let run = |(e, ((dqe, dke), dve)): HeadGrads<T>| {
        let mut p = vec![T::ZERO; QUERY_BLOCK * tk];
        let mut dp = vec![T::ZERO; QUERY_BLOCK * tk];
        for (b, dqb) in dqe.chunks_mut(QUERY_BLOCK * d).enumerate() {
            let i0 = b * QUERY_BLOCK;
            let rows = QUERY_BLOCK.min(tq - i0);
            let w = sh.visible(mask, i0 + rows);
            let (p, dp) = (&mut p[..rows * w], &mut dp[..rows * w]);
            // The block's weights again, from the saved maximum and 1/Σ.
            scores(sh, mask, scale, q, k, e, i0, rows, w, p);
            for (r, row) in p.chunks_mut(w).enumerate() {
                let st = &stats[(e * tq + i0 + r) * 2..][..2];
                let (mx, inv) = (st[0], st[1]);
                T::map_slice(row, |x| (x - mx).exp() * inv);
            }
            let qe = (e * tq + i0) * d;
            let dob = MatRef::row_major(&dout[qe..qe + rows * d], d);
            // dV[..w] += Pᵀ·dO
            let pt = MatRef {
                data: &*p,
                offset: 0,
                row_stride: 1,
                col_stride: w,
            };
            matmul(w, d, rows, pt, dob, &mut dve[..w * d], T::ONE);
            // dP = dO·V[..w]ᵀ
            let vt = MatRef {
                data: v,
                offset: e * tk * d,
                row_stride: 1,
                col_stride: d,
            };
            matmul(rows, w, d, dob, vt, dp, T::ZERO);
            // dS = P ∘ (dP − rowsum(dO ∘ O)), times the scale (the scores' own factor).
            for (r, (prow, dprow)) in p.chunks_mut(w).zip(dp.chunks(w)).enumerate() {
                let at = qe + r * d;
                let di = dout[at..at + d]
                    .iter()
                    .zip(&o[at..at + d])
                    .fold(T::ZERO, |s, (&a, &b)| s + a * b);
                for (x, &g) in prow.iter_mut().zip(dprow) {
                    *x = *x * (g - di) * scale;
                }
            }
            // A masked score is a constant: no gradient reaches q or k through it (this matters
            // for a query whose keys are all masked, whose uniform weights are not zero).
            for (r, row) in p.chunks_mut(w).enumerate() {
                hide(sh, mask, e, i0 + r, row, T::ZERO);
            }
            let ds = MatRef::row_major(&*p, w);
            // dQ = dS·K[..w]
            let ka = MatRef {
                data: k,
                offset: e * tk * d,
                row_stride: d,
                col_stride: 1,
            };
            matmul(rows, d, w, ds, ka, dqb, T::ZERO);
            // dK[..w] += dSᵀ·Q
            let dst = MatRef {
                data: &*p,
                offset: 0,
                row_stride: 1,
                col_stride: w,
            };
            let qb = MatRef::row_major(&q[qe..qe + rows * d], d);
            matmul(w, d, rows, dst, qb, &mut dke[..w * d], T::ONE);
        }
    };
    if sh.bh > 1 && sh.bh * tq * tk * d >= 1 << 16 {
        dq.par_chunks_mut(tq * d)
            .zip(dk.par_chunks_mut(tk * d))
            .zip(dv.par_chunks_mut(tk * d))
            .enumerate()
            .for_each(run);
    } else {
        dq.chunks_mut(tq * d)
            .zip(dk.chunks_mut(tk * d))
            .zip(dv.chunks_mut(tk * d))
            .enumerate()
            .for_each(run);
    }
}
