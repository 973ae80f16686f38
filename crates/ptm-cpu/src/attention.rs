//! Fused scaled-dot-product attention, forward and backward, tiled over queries.
//!
//! `softmax(q·kᵀ·scale + mask)·v` for every (batch·head): queries are taken in blocks of
//! [`QUERY_BLOCK`] rows, and a block's scores against the keys it can see (`QUERY_BLOCK × keys`,
//! in cache) become its weights and then its output, so the `T × T` score matrix is never
//! stored — memory per thread is `O(QUERY_BLOCK · T + D · T)`. Under a causal mask a block stops
//! at the last key its last query may see, which skips about half the products. The forward keeps
//! each query's row maximum and `1/Σ exp` (two values per query, not `T`); the backward
//! recomputes the block's weights from them (as FlashAttention does) and accumulates the key and
//! value gradients of all blocks of one head. Both run in parallel across heads, each head
//! transposing its keys (and values, for the backward) once so that every block's products read
//! their operands in place instead of packing them.
//!
//! Masking matches ptm-tensor's composition (and PyTorch's eager attention): a masked score is set
//! to f32's most negative finite value, so a query whose keys are all masked gets uniform weights
//! rather than NaN. Prefix keys (prefix-tuning) come first and are seen by every query.

use crate::element::Float;
use crate::matmul::{matmul, MatRef};
use rayon::prelude::*;

/// Query rows per block: a multiple of the micro-kernels' 6 rows (64 left a 4-row edge tile in
/// every product), small enough that the causal mask's waste on the diagonal blocks stays low.
pub const QUERY_BLOCK: usize = 48;

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

    /// Keys the block of queries `i0..i1` of entry `e` needs: all, or up to its last query's
    /// causal limit. All of them, too, when a query of the block can see no key at all (every key
    /// up to its limit padded, as under left padding): its weights are then uniform over every
    /// key, as in the composition, where the keys past the limit hold the same masked score.
    fn visible(&self, mask: &AttentionMask, e: usize, (i0, i1): (usize, usize)) -> usize {
        if !mask.causal {
            return self.tk;
        }
        let main = self.main_keys();
        let limit = |i: usize| i + main - self.tq.min(main);
        if let (Some(pad), 0) = (mask.key_padding, self.prefix) {
            let keys = &pad[e / self.heads * main..][..main];
            let first_seen = keys.iter().position(|&x| x != 0.0).unwrap_or(main);
            if limit(i0) < first_seen {
                return self.tk;
            }
        }
        (self.prefix + limit(i1 - 1) + 1).min(self.tk)
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

/// Scores of queries `i0..i0+rows` of entry `e` against its first `w` keys, masked, into `s`
/// (`rows × w`); `qs` holds the entry's queries already multiplied by the scale, `kt` its keys
/// transposed (see [`Transposed`]).
#[allow(clippy::too_many_arguments)]
fn scores<T: Float>(
    sh: &AttentionShape,
    mask: &AttentionMask,
    qs: &[T],
    kt: &Transposed<T>,
    e: usize,
    i0: usize,
    rows: usize,
    w: usize,
    s: &mut [T],
) {
    let d = sh.d;
    let qa = MatRef::row_major(&qs[i0 * d..(i0 + rows) * d], d);
    matmul(rows, w, d, qa, kt.view(), s, T::ZERO);
    let masked = T::from_f64(f32::MIN as f64);
    for (r, row) in s.chunks_mut(w).enumerate() {
        hide(sh, mask, e, i0 + r, row, masked);
    }
}

/// Entry `e`'s queries times the scale: scaling the `tq × d` queries once per head costs less
/// than scaling every block's `rows × keys` scores.
fn scaled_queries<T: Float>(q: &[T], sh: &AttentionShape, e: usize, scale: T) -> Vec<T> {
    let n = sh.tq * sh.d;
    q[e * n..(e + 1) * n].iter().map(|&x| x * scale).collect()
}

/// One head's keys (or values) transposed, `d × tk` at a padded row stride:
/// the B operand of `q·kᵀ` (and of `dO·vᵀ`) as a plain row-major matrix, which the matmul reads
/// in place for every query block of the head, where `kᵀ` as a strided view of `k` would be
/// packed again for each block (a third of the attention's time went to packing).
struct Transposed<T> {
    data: Vec<T>,
    stride: usize,
}

impl<T: Float> Transposed<T> {
    fn new(x: &[T], tk: usize, d: usize) -> Self {
        // Whole panels of 64 keys per row (the matmul reads a panel's full width), and 16 more
        // so that rows do not lie a power of two apart: at 512 keys, rows 2 KiB apart fall into
        // a few cache sets, and both this transpose and the products reading the rows missed L1.
        let stride = tk.div_ceil(64) * 64 + 16;
        let mut data = vec![T::ZERO; d * stride];
        crate::strided::transpose(x, (tk, d, d), &mut data, stride);
        Transposed { data, stride }
    }

    fn view(&self) -> MatRef<'_, T> {
        MatRef::row_major(&self.data, self.stride)
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
    // One head per task: its keys transposed once, then its query blocks in turn.
    let run = |(e, (oe, se)): (usize, (&mut [T], &mut [T]))| {
        let kt = Transposed::new(&k[e * sh.tk * d..][..sh.tk * d], sh.tk, d);
        let qs = scaled_queries(q, sh, e, scale);
        let mut s = vec![T::ZERO; QUERY_BLOCK.min(tq) * sh.tk];
        let va = MatRef {
            data: v,
            offset: e * sh.tk * d,
            row_stride: d,
            col_stride: 1,
        };
        for (b, (ob, sb)) in oe
            .chunks_mut(QUERY_BLOCK * d)
            .zip(se.chunks_mut(QUERY_BLOCK * 2))
            .enumerate()
        {
            let i0 = b * QUERY_BLOCK;
            let rows = QUERY_BLOCK.min(tq - i0);
            let w = sh.visible(mask, e, (i0, i0 + rows));
            let s = &mut s[..rows * w];
            scores(sh, mask, &qs, &kt, e, i0, rows, w, s);
            for (row, st) in s.chunks_mut(w).zip(sb.chunks_mut(2)) {
                let (mx, inv) = T::softmax_row_in_place(row);
                st[0] = mx;
                st[1] = inv;
            }
            matmul(rows, d, w, MatRef::row_major(s, w), va, ob, T::ZERO);
        }
    };
    if sh.bh > 1 && sh.bh * tq * sh.tk * d >= 1 << 16 {
        o.par_chunks_mut(tq * d)
            .zip(stats.par_chunks_mut(tq * 2))
            .enumerate()
            .for_each(run);
    } else {
        o.chunks_mut(tq * d)
            .zip(stats.chunks_mut(tq * 2))
            .enumerate()
            .for_each(run);
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
        let kt = Transposed::new(&k[e * tk * d..][..tk * d], tk, d);
        let vt = Transposed::new(&v[e * tk * d..][..tk * d], tk, d);
        let qs = scaled_queries(q, sh, e, scale);
        let mut p = vec![T::ZERO; QUERY_BLOCK * tk];
        let mut dp = vec![T::ZERO; QUERY_BLOCK * tk];
        for (b, dqb) in dqe.chunks_mut(QUERY_BLOCK * d).enumerate() {
            let i0 = b * QUERY_BLOCK;
            let rows = QUERY_BLOCK.min(tq - i0);
            let w = sh.visible(mask, e, (i0, i0 + rows));
            let (p, dp) = (&mut p[..rows * w], &mut dp[..rows * w]);
            // The block's weights again, from the saved maximum and 1/Σ.
            scores(sh, mask, &qs, &kt, e, i0, rows, w, p);
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
            matmul(rows, w, d, dob, vt.view(), dp, T::ZERO);
            // dS = P ∘ (dP − rowsum(dO ∘ O)), the gradient of the scaled scores; the scale's own
            // factor goes to dQ below and to dK through the scaled queries.
            for (r, (prow, dprow)) in p.chunks_mut(w).zip(dp.chunks(w)).enumerate() {
                let at = qe + r * d;
                let di = dout[at..at + d]
                    .iter()
                    .zip(&o[at..at + d])
                    .fold(T::ZERO, |s, (&a, &b)| s + a * b);
                for (x, &g) in prow.iter_mut().zip(dprow) {
                    *x *= g - di;
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
            T::map_slice(dqb, |x| x * scale);
            // dK[..w] += dSᵀ·(Q·scale)
            let dst = MatRef {
                data: &*p,
                offset: 0,
                row_stride: 1,
                col_stride: w,
            };
            let qb = MatRef::row_major(&qs[i0 * d..(i0 + rows) * d], d);
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
