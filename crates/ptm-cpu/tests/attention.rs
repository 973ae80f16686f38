//! The fused attention kernel against a plain f64 reference written here (scores, masked softmax,
//! weighted values, and the textbook gradients), on odd shapes with causal and padding masks,
//! prefix keys, a KV-cache-like layout (fewer queries than keys) and a batch entry whose keys are
//! all padded; its f64 gradients also against central finite differences.
//! Tolerances: f64 1e-10, f32 2e-5, both relative to (1 + |reference|).

use ptm_cpu::attention::{attention_bwd, attention_fwd, AttentionMask, AttentionShape};
use ptm_cpu::Float;

mod common;
use common::data;

/// One case: shape, causal, padding (per batch, over the non-prefix keys).
struct Case {
    sh: AttentionShape,
    causal: bool,
    pad: Option<Vec<f32>>,
}

impl Case {
    fn mask(&self) -> AttentionMask<'_> {
        AttentionMask {
            causal: self.causal,
            key_padding: self.pad.as_deref(),
        }
    }

    fn hidden(&self, e: usize, i: usize, j: usize) -> bool {
        let sh = &self.sh;
        let main = sh.tk - sh.prefix;
        if j < sh.prefix {
            return false;
        }
        let jm = j - sh.prefix;
        (self.causal && jm > i + (main - sh.tq.min(main)))
            || self
                .pad
                .as_ref()
                .is_some_and(|p| p[e / sh.heads * main + jm] == 0.0)
    }
}

/// Reference forward and backward in f64: (o, dq, dk, dv).
#[allow(clippy::type_complexity)]
fn reference(
    c: &Case,
    scale: f64,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let AttentionShape { bh, tq, tk, d, .. } = c.sh;
    let (mut o, mut dq) = (vec![0.0; bh * tq * d], vec![0.0; bh * tq * d]);
    let (mut dk, mut dv) = (vec![0.0; bh * tk * d], vec![0.0; bh * tk * d]);
    for e in 0..bh {
        for i in 0..tq {
            let qi = &q[(e * tq + i) * d..][..d];
            let s: Vec<f64> = (0..tk)
                .map(|j| {
                    if c.hidden(e, i, j) {
                        f32::MIN as f64
                    } else {
                        let kj = &k[(e * tk + j) * d..][..d];
                        qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() * scale
                    }
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            let p: Vec<f64> = s.iter().map(|x| (x - mx).exp() / z).collect();
            let doi = &dout[(e * tq + i) * d..][..d];
            for j in 0..tk {
                for c2 in 0..d {
                    o[(e * tq + i) * d + c2] += p[j] * v[(e * tk + j) * d + c2];
                    dv[(e * tk + j) * d + c2] += p[j] * doi[c2];
                }
            }
            let dp: Vec<f64> = (0..tk)
                .map(|j| {
                    doi.iter()
                        .zip(&v[(e * tk + j) * d..][..d])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            let pdp: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
            for j in 0..tk {
                if c.hidden(e, i, j) {
                    continue;
                }
                let ds = p[j] * (dp[j] - pdp) * scale;
                for c2 in 0..d {
                    dq[(e * tq + i) * d + c2] += ds * k[(e * tk + j) * d + c2];
                    dk[(e * tk + j) * d + c2] += ds * qi[c2];
                }
            }
        }
    }
    (o, dq, dk, dv)
}

fn cases() -> Vec<Case> {
    let mut out = vec![];
    for &(tq, extra, prefix, d) in &[
        (1, 0, 0, 8),
        (5, 0, 3, 1),
        (17, 4, 0, 24),
        (70, 0, 3, 16),
        (130, 7, 2, 8),
        // GPT-2's head size: the products read V, K and Q in place as one 64-wide panel.
        (100, 5, 0, 64),
    ] {
        for causal in [false, true] {
            for padded in [false, true] {
                let (batch, heads) = (2, 3);
                let tk = tq + extra + prefix;
                let main = tk - prefix;
                // Batch 0 loses its first third of keys (left padding: under the causal mask its
                // first queries see no key at all) and every third key after; batch 1 loses all
                // its keys (uniform weights).
                let pad = padded.then(|| {
                    (0..batch * main)
                        .map(|x| {
                            let kept = x < main && x >= main / 3 && x % 3 != 1;
                            if kept {
                                1.0
                            } else {
                                0.0
                            }
                        })
                        .collect()
                });
                out.push(Case {
                    sh: AttentionShape {
                        bh: batch * heads,
                        heads,
                        tq,
                        tk,
                        prefix,
                        d,
                    },
                    causal,
                    pad,
                });
            }
        }
    }
    out
}

/// The kernel forward then backward on one case: (o, dq, dk, dv). Outputs start as NaN (dk, dv
/// at zero, which the backward adds into), so anything left unwritten shows.
#[allow(clippy::type_complexity)]
fn fused<T: Float>(
    c: &Case,
    scale: T,
    q: &[T],
    k: &[T],
    v: &[T],
    dout: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>, Vec<T>) {
    let sh = c.sh;
    let nan = T::from_f64(f64::NAN);
    let (mut o, mut st) = (vec![nan; q.len()], vec![nan; sh.bh * sh.tq * 2]);
    attention_fwd(&sh, &c.mask(), scale, q, k, v, &mut o, &mut st);
    let (mut dq, mut dk, mut dv) = (
        vec![nan; q.len()],
        vec![T::ZERO; k.len()],
        vec![T::ZERO; v.len()],
    );
    attention_bwd(
        &sh,
        &c.mask(),
        scale,
        q,
        k,
        v,
        &o,
        &st,
        dout,
        &mut dq,
        &mut dk,
        &mut dv,
    );
    (o, dq, dk, dv)
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what} at {i}: {g} vs {w}"
        );
    }
}

#[test]
fn fused_attention_matches_the_reference_in_f64_and_f32() {
    for (n, c) in cases().iter().enumerate() {
        let sh = c.sh;
        let what = format!(
            "case {n}: tq {} tk {} prefix {} d {} causal {} padded {}",
            sh.tq,
            sh.tk,
            sh.prefix,
            sh.d,
            c.causal,
            c.pad.is_some()
        );
        let scale = 1.0 / (sh.d as f64).sqrt();
        let nq = sh.bh * sh.tq * sh.d;
        let nk = sh.bh * sh.tk * sh.d;
        let (q, k, v, dout) = (
            data(nq, 1 + n as u64),
            data(nk, 2),
            data(nk, 3),
            data(nq, 4),
        );
        let (ro, rdq, rdk, rdv) = reference(c, scale, &q, &k, &v, &dout);

        let (o, dq, dk, dv) = fused(c, scale, &q, &k, &v, &dout);
        close(&o, &ro, 1e-10, &format!("f64 o, {what}"));
        close(&dq, &rdq, 1e-10, &format!("f64 dq, {what}"));
        close(&dk, &rdk, 1e-10, &format!("f64 dk, {what}"));
        close(&dv, &rdv, 1e-10, &format!("f64 dv, {what}"));

        let f = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let back = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (o32, dq32, dk32, dv32) = fused(c, scale as f32, &f(&q), &f(&k), &f(&v), &f(&dout));
        close(&back(&o32), &ro, 2e-5, &format!("f32 o, {what}"));
        close(&back(&dq32), &rdq, 2e-5, &format!("f32 dq, {what}"));
        close(&back(&dk32), &rdk, 2e-5, &format!("f32 dk, {what}"));
        close(&back(&dv32), &rdv, 2e-5, &format!("f32 dv, {what}"));
    }
}

/// Central differences of `Σ o ∘ dout` in f64 against the kernel's gradients, on every element
/// of a small causal, padded, prefixed case: |error| ≤ 1e-7·(1 + |gradient|).
#[test]
fn fused_attention_gradients_match_finite_differences() {
    let c = Case {
        sh: AttentionShape {
            bh: 2,
            heads: 1,
            tq: 5,
            tk: 8,
            prefix: 2,
            d: 3,
        },
        causal: true,
        pad: Some(vec![
            1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0,
        ]),
    };
    let sh = c.sh;
    let scale = 0.7;
    let (nq, nk) = (sh.bh * sh.tq * sh.d, sh.bh * sh.tk * sh.d);
    let (q, k, v, dout) = (data(nq, 11), data(nk, 12), data(nk, 13), data(nq, 14));
    let loss = |q: &[f64], k: &[f64], v: &[f64]| {
        let (mut o, mut st) = (vec![0.0; nq], vec![0.0; sh.bh * sh.tq * 2]);
        attention_fwd(&sh, &c.mask(), scale, q, k, v, &mut o, &mut st);
        o.iter().zip(&dout).map(|(a, b)| a * b).sum::<f64>()
    };
    let (_, dq, dk, dv) = fused(&c, scale, &q, &k, &v, &dout);
    let h = 1e-6;
    for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
        for i in 0..grad.len() {
            let bump = |delta: f64| {
                let (mut q2, mut k2, mut v2) = (q.clone(), k.clone(), v.clone());
                [&mut q2, &mut k2, &mut v2][which][i] += delta;
                loss(&q2, &k2, &v2)
            };
            let fd = (bump(h) - bump(-h)) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() <= 1e-7 * (1.0 + grad[i].abs()),
                "input {which} element {i}: finite difference {fd} vs {}",
                grad[i]
            );
        }
    }
}

/// Degenerate shapes: no keys at all (outputs and query gradients zero, as an empty weighted sum),
/// no queries, no heads — none may panic.
#[test]
fn empty_shapes_give_empty_sums() {
    let mask = AttentionMask {
        causal: true,
        key_padding: None,
    };
    let sh = AttentionShape {
        bh: 2,
        heads: 1,
        tq: 3,
        tk: 0,
        prefix: 0,
        d: 4,
    };
    let q = data(2 * 3 * 4, 1);
    let (mut o, mut st) = (vec![f64::NAN; q.len()], vec![f64::NAN; 2 * 3 * 2]);
    attention_fwd(&sh, &mask, 0.5, &q, &[], &[], &mut o, &mut st);
    assert!(o.iter().all(|&x| x == 0.0));
    let mut dq = vec![f64::NAN; q.len()];
    attention_bwd(
        &sh,
        &mask,
        0.5,
        &q,
        &[],
        &[],
        &o,
        &st,
        &q,
        &mut dq,
        &mut [],
        &mut [],
    );
    assert!(dq.iter().all(|&x| x == 0.0));
    for (bh, heads, tq) in [(0, 0, 3), (2, 1, 0)] {
        let sh = AttentionShape {
            bh,
            heads,
            tq,
            tk: 5,
            prefix: 0,
            d: 4,
        };
        let k = data(bh * 5 * 4, 2);
        let mut o: Vec<f64> = vec![];
        let mut st: Vec<f64> = vec![];
        attention_fwd(&sh, &mask, 0.5, &[], &k, &k, &mut o, &mut st);
    }
}
