//! `cargo xtask bench kernels [--quick] [--json FILE] [--torch FILE]`: ptm's CPU kernels against
//! their baselines in one process, one table of rates and ratios.
//!
//! Every candidate of one row (same op, shape and thread count) is timed in interleaved rounds —
//! a sample of each, then the next round — so that a slow spell of this shared machine hits them
//! all alike; the figure is the median sample. Threads: each row runs inside a rayon pool of that
//! size (the gemm crate is told the same count; matrixmultiply is built single-threaded and runs
//! only in the one-thread rows; the textbook softmax and layer norm split rows over the pool, the
//! textbook cross-entropy runs on one thread).
//!
//! The `fma_peak` row is the machine's measured f32 FMA rate (16 independent chains of vector FMAs
//! per thread, nothing else in the loop), the ceiling the matmul rows are held to; each f32
//! matmul row also times the same number of FLOPs of those chains as a candidate, so its ratio is
//! ptm's fraction of the peak measured in the same moments.
//!
//! `benches/kernels_torch.py` times the same rows in PyTorch and writes records of the same form;
//! `--torch FILE` adds them to the table (run both in one sitting: the machine drifts).

use ptm_cpu::attention::{attention_bwd, attention_fwd, AttentionMask, AttentionShape};
use ptm_cpu::baseline::{fma_peak_f32, gemm_crate_f32, matrixmultiply_f32};
use ptm_cpu::cross_entropy::cross_entropy_fwd_bwd;
use ptm_cpu::layer_norm::layer_norm_fwd;
use ptm_cpu::matmul::{matmul, MatRef};
use ptm_cpu::softmax::{softmax_bwd, softmax_fwd};
use ptm_tensor::{DType, Device, Rng, Tensor};
use std::hint::black_box;
use std::time::Instant;

/// One measured row entry, as the JSON records it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// `matmul`, `softmax`, `layer_norm`, `cross_entropy`, `attention_fwd`, `attention_fwd_bwd`.
    pub op: String,
    /// `ptm`, `gemm`, `matrixmultiply`, `naive`, `textbook`, `torch`, ...
    #[serde(rename = "impl")]
    pub imp: String,
    /// The op's dimensions (matmul: M, K, N).
    pub shape: Vec<usize>,
    /// Threads it ran on.
    pub threads: usize,
    /// Median seconds per call.
    pub median_s: f64,
    /// Work per second in `unit`.
    pub rate: f64,
    /// `GFLOP/s` or `GB/s`.
    pub unit: String,
}

/// A candidate: its name and one call.
type Candidate<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Median seconds per call of each candidate: calls per sample chosen so that a sample lasts at
/// least `min_sample_s`, `rounds` interleaved rounds.
fn time_interleaved(cands: &mut [Candidate], rounds: usize, min_sample_s: f64) -> Vec<f64> {
    let mut per_sample = vec![];
    for (_, f) in cands.iter_mut() {
        let t = Instant::now();
        f(); // warm-up, and a first estimate
        let once = t.elapsed().as_secs_f64().max(1e-7);
        per_sample.push(((min_sample_s / once).ceil() as usize).clamp(1, 10_000));
    }
    let mut samples = vec![vec![]; cands.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in cands.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..per_sample[i] {
                f();
            }
            samples[i].push(t.elapsed().as_secs_f64() / per_sample[i] as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

fn randn(n: usize, seed: u64) -> Vec<f32> {
    Tensor::randn(0.0, 1.0, [n], DType::F32, &mut Rng::new(seed), &Device::Cpu)
        .and_then(|t| t.to_vec::<f32>())
        .unwrap_or_else(|_| vec![0.5; n])
}

/// The i-p-j loop without blocking.
fn naive_matmul(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    c.fill(0.0);
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for (cv, &bv) in c[i * n..(i + 1) * n].iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cv += x * bv;
            }
        }
    }
}

/// `f` over blocks of 16 rows of `x` (rows of `x_row` values) and of `y` (rows of `y_row`) in
/// parallel: the textbook kernels use the threads too, as PyTorch's would.
fn par_rows(
    x: &[f32],
    x_row: usize,
    y: &mut [f32],
    y_row: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    use rayon::prelude::*;
    y.par_chunks_mut(16 * y_row)
        .zip(x.par_chunks(16 * x_row))
        .for_each(|(yb, xb)| f(xb, yb));
}

/// Max, exp-and-sum, scale: three passes on std's `exp`.
fn softmax_textbook(x: &[f32], y: &mut [f32], d: usize) {
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mx = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (yv, &xv) in yr.iter_mut().zip(xr) {
            *yv = (xv - mx).exp();
            sum += *yv;
        }
        yr.iter_mut().for_each(|v| *v /= sum);
    }
}

/// `dx = y ∘ (dy − Σ dy∘y)` per row, the dot as one running sum; rows of `pairs` hold `y` and
/// `dy` interleaved (`2·d` values).
fn softmax_bwd_textbook(pairs: &[f32], dx: &mut [f32], d: usize) {
    for (pr, dr) in pairs.chunks(2 * d).zip(dx.chunks_mut(d)) {
        let dot: f32 = pr.chunks(2).map(|p| p[0] * p[1]).sum();
        for (g, p) in dr.iter_mut().zip(pr.chunks(2)) {
            *g = p[0] * (p[1] - dot);
        }
    }
}

/// Mean, variance, normalise and scale: three passes.
fn layer_norm_textbook(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], d: usize) {
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        for (j, (yv, &xv)) in yr.iter_mut().zip(xr).enumerate() {
            *yv = (xv - mean) * rstd * w[j] + b[j];
        }
    }
}

/// Cross-entropy forward and backward unfused: log-softmax written out, the loss gathered, then
/// the gradient from the stored log-probabilities.
fn cross_entropy_textbook(
    logits: &[f32],
    targets: &[i64],
    c: usize,
    lp: &mut [f32],
    dl: &mut [f32],
) -> f32 {
    let mut loss = 0.0;
    for (r, (xr, lr)) in logits.chunks(c).zip(lp.chunks_mut(c)).enumerate() {
        let mx = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = mx + xr.iter().map(|&v| (v - mx).exp()).sum::<f32>().ln();
        for (l, &x) in lr.iter_mut().zip(xr) {
            *l = x - lse;
        }
        loss -= lr[targets[r] as usize];
    }
    let scale = 1.0 / targets.len() as f32;
    for (r, (lr, dr)) in lp.chunks(c).zip(dl.chunks_mut(c)).enumerate() {
        for (j, (d, &l)) in dr.iter_mut().zip(lr).enumerate() {
            *d = (l.exp() - if j == targets[r] as usize { 1.0 } else { 0.0 }) * scale;
        }
    }
    loss * scale
}

/// Times the candidates of one row and appends a record for each.
#[allow(clippy::too_many_arguments)]
fn measure(
    row: &Row,
    threads: usize,
    cands: &mut [Candidate],
    rounds: usize,
    min_sample: f64,
    only: &[String],
    out: &mut Vec<Record>,
) {
    if !only.is_empty() && !only.iter().any(|o| o == row.op) {
        return;
    }
    let secs = time_interleaved(cands, rounds, min_sample);
    for ((imp, _), s) in cands.iter().zip(secs) {
        out.push(Record {
            op: row.op.into(),
            imp: (*imp).into(),
            shape: row.shape.clone(),
            threads,
            median_s: s,
            rate: row.work / s / 1e9,
            unit: row.unit.into(),
        });
    }
}

struct Row {
    op: &'static str,
    shape: Vec<usize>,
    unit: &'static str,
    /// Work per call in the unit's numerator (FLOP or bytes).
    work: f64,
}

/// Runs the rows for `threads`, appending their records.
fn run_rows(threads: usize, quick: bool, only: &[String], out: &mut Vec<Record>) {
    let rounds = if quick { 3 } else { 7 };
    let min_sample = if quick { 0.02 } else { 0.05 };
    // The machine's FMA ceiling, on every thread of the pool at once: the bar matmul is held to
    // (the issue asks 90 % of it), measured in the same process as the products.
    const PEAK_ROUNDS: usize = 1 << 20;
    if let Some(flops) = fma_peak_f32(PEAK_ROUNDS) {
        let row = Row {
            op: "fma_peak",
            shape: vec![16],
            unit: "GFLOP/s",
            work: flops * threads as f64,
        };
        let mut cands: Vec<Candidate> = vec![(
            "peak",
            Box::new(|| {
                rayon::broadcast(|_| black_box(fma_peak_f32(PEAK_ROUNDS)));
            }),
        )];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
    // matmul: square sizes, then GPT-2 small's products at 512 tokens (M, K, N); the last, with
    // the vocabulary as k, is the backward of the vocabulary projection (dhidden = dlogits · W).
    let mut shapes: Vec<(usize, usize, usize)> = [64, 128, 256, 512, 1024, 2048]
        .iter()
        .map(|&s| (s, s, s))
        .collect();
    shapes.extend([
        (512, 768, 2304),
        (512, 768, 3072),
        (512, 3072, 768),
        (512, 768, 50257),
        (512, 50257, 768),
    ]);
    if quick {
        shapes.retain(|&(m, k, n)| m * k * n <= 512 * 768 * 3072);
    }
    for (m, k, n) in shapes {
        let (a, b) = (randn(m * k, 1), randn(k * n, 2));
        let row = Row {
            op: "matmul",
            shape: vec![m, k, n],
            unit: "GFLOP/s",
            work: 2.0 * (m * n * k) as f64,
        };
        // The candidates share one output buffer; they never run at once.
        let cell = std::cell::RefCell::new(vec![0.0f32; m * n]);
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    matmul(
                        m,
                        n,
                        k,
                        MatRef::row_major(&a, k),
                        MatRef::row_major(&b, n),
                        &mut c,
                        0.0,
                    );
                    black_box(&c);
                }),
            ),
            (
                "gemm",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    gemm_crate_f32(m, n, k, &a, &b, &mut c, threads);
                    black_box(&c);
                }),
            ),
        ];
        // The FMA ceiling as a candidate of the row: the same number of FLOPs in independent FMA
        // chains on every thread, interleaved with the products, so its ratio is ptm's fraction
        // of the machine's peak measured in the same moments.
        if let Some(per_round) = fma_peak_f32(1) {
            let rounds = (row.work / (per_round * threads as f64)).ceil() as usize;
            cands.push((
                "fma_peak",
                Box::new(move || {
                    rayon::broadcast(|_| black_box(fma_peak_f32(rounds)));
                }),
            ));
        }
        if threads == 1 {
            cands.push((
                "matrixmultiply",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    matrixmultiply_f32(m, n, k, &a, &b, &mut c);
                    black_box(&c);
                }),
            ));
        }
        if m * n * k <= 256 * 256 * 256 && threads == 1 {
            cands.push((
                "naive",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    naive_matmul(m, n, k, &a, &b, &mut c);
                    black_box(&c);
                }),
            ));
        }
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }

    // bf16 operands, f32 accumulation: the vdpbf16ps kernel against ptm's own f32 path on the
    // same values (the bar: 1.6x the f32 rate).
    let mut bf_shapes: Vec<(usize, usize, usize)> = vec![(512, 512, 512), (1024, 1024, 1024)];
    if !quick {
        bf_shapes.extend([
            (2048, 2048, 2048),
            (512, 768, 2304),
            (512, 768, 3072),
            (512, 3072, 768),
        ]);
    }
    for (m, k, n) in bf_shapes {
        let (a, b) = (randn(m * k, 1), randn(k * n, 2));
        let (ah, bh): (Vec<half::bf16>, Vec<half::bf16>) = (
            a.iter().map(|&x| half::bf16::from_f32(x)).collect(),
            b.iter().map(|&x| half::bf16::from_f32(x)).collect(),
        );
        let row = Row {
            op: "matmul_bf16",
            shape: vec![m, k, n],
            unit: "GFLOP/s",
            work: 2.0 * (m * n * k) as f64,
        };
        let cell = std::cell::RefCell::new(vec![0.0f32; m * n]);
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    ptm_cpu::matmul::matmul_bf16(
                        m,
                        n,
                        k,
                        MatRef::row_major(&ah, k),
                        MatRef::row_major(&bh, n),
                        &mut c,
                        0.0,
                    );
                    black_box(&c);
                }),
            ),
            (
                "f32-ptm",
                Box::new(|| {
                    let mut c = cell.borrow_mut();
                    matmul(
                        m,
                        n,
                        k,
                        MatRef::row_major(&a, k),
                        MatRef::row_major(&b, n),
                        &mut c,
                        0.0,
                    );
                    black_box(&c);
                }),
            ),
        ];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }

    // Row kernels on inputs larger than L2: bytes read + written per call.
    for (rows, d) in [(8192usize, 1024usize), (64, 50257)] {
        let x = randn(rows * d, 3);
        let cell = std::cell::RefCell::new(vec![0.0f32; rows * d]);
        let row = Row {
            op: "softmax",
            shape: vec![rows, d],
            unit: "GB/s",
            work: 8.0 * (rows * d) as f64,
        };
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| softmax_fwd(&x, &mut cell.borrow_mut(), d)),
            ),
            (
                "textbook",
                Box::new(|| {
                    par_rows(&x, d, &mut cell.borrow_mut(), d, |xb, yb| {
                        softmax_textbook(xb, yb, d)
                    })
                }),
            ),
        ];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
    {
        // Softmax backward from the forward's output: y and dy read, dx written.
        let (rows, d) = (8192usize, 1024usize);
        let mut y = randn(rows * d, 9);
        softmax_fwd(&y.clone(), &mut y, d);
        let dy = randn(rows * d, 10);
        let cell = std::cell::RefCell::new(vec![0.0f32; rows * d]);
        let row = Row {
            op: "softmax_bwd",
            shape: vec![rows, d],
            unit: "GB/s",
            work: 12.0 * (rows * d) as f64,
        };
        let yy: Vec<f32> = y.iter().zip(&dy).flat_map(|(&a, &b)| [a, b]).collect();
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| softmax_bwd(&y, &dy, &mut cell.borrow_mut(), d)),
            ),
            (
                "textbook",
                // y and dy interleaved so that one parallel row split covers both.
                Box::new(|| {
                    par_rows(&yy, 2 * d, &mut cell.borrow_mut(), d, |pairs, dxb| {
                        softmax_bwd_textbook(pairs, dxb, d)
                    })
                }),
            ),
        ];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
    {
        let (rows, d) = (8192usize, 768usize);
        let (x, w, b) = (randn(rows * d, 4), randn(d, 5), randn(d, 6));
        let cell = std::cell::RefCell::new(vec![0.0f32; rows * d]);
        let row = Row {
            op: "layer_norm",
            shape: vec![rows, d],
            unit: "GB/s",
            work: 8.0 * (rows * d) as f64,
        };
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| {
                    layer_norm_fwd(&x, Some(&w), Some(&b), 1e-5, d, &mut cell.borrow_mut())
                }),
            ),
            (
                "textbook",
                Box::new(|| {
                    par_rows(&x, d, &mut cell.borrow_mut(), d, |xb, yb| {
                        layer_norm_textbook(xb, &w, &b, yb, d)
                    })
                }),
            ),
        ];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
    {
        // Loss and gradient of 256 positions over GPT-2's vocabulary: logits read, gradient
        // written.
        let (rows, c) = (256usize, 50257usize);
        let logits = randn(rows * c, 7);
        let targets: Vec<i64> = (0..rows).map(|r| ((r * 7919) % c) as i64).collect();
        let dl = std::cell::RefCell::new(vec![0.0f32; rows * c]);
        let lp = std::cell::RefCell::new(vec![0.0f32; rows * c]);
        let row = Row {
            op: "cross_entropy",
            shape: vec![rows, c],
            unit: "GB/s",
            work: 8.0 * (rows * c) as f64,
        };
        let scale = 1.0 / rows as f32;
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm",
                Box::new(|| {
                    black_box(cross_entropy_fwd_bwd(
                        &logits,
                        &targets,
                        c,
                        -100,
                        scale,
                        &mut dl.borrow_mut(),
                    ));
                }),
            ),
            (
                "textbook",
                Box::new(|| {
                    black_box(cross_entropy_textbook(
                        &logits,
                        &targets,
                        c,
                        &mut lp.borrow_mut(),
                        &mut dl.borrow_mut(),
                    ));
                }),
            ),
        ];
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
    attention_rows(threads, quick, rounds, min_sample, only, out);
}

/// Causal attention at the kernel issue's shape: ptm-cpu's fused kernel on slices, the same
/// through ptm-tensor's `scaled_dot_product_attention` (graph and copies included), and the
/// composition it replaced (two matmuls around a masked softmax: the O(T²) score matrix written
/// out), forward alone and with the backward. FLOPs counted as for full (non-causal) attention: 4·B·H·T²·D forward, three times
/// that with the backward.
fn attention_rows(
    threads: usize,
    quick: bool,
    rounds: usize,
    min_sample: f64,
    only: &[String],
    out: &mut Vec<Record>,
) {
    use ptm_tensor::{no_grad, scaled_dot_product_attention, AttentionOptions};
    let (b, h, t, d) = if quick {
        (2, 12, 256, 64)
    } else {
        (4, 12, 512, 64)
    };
    let mut rng = Rng::new(8);
    let mk = |rng: &mut Rng| {
        Tensor::randn(0.0, 1.0, [b, h, t, d], DType::F32, rng, &Device::Cpu).map(|x| x.as_var())
    };
    let (Ok(q), Ok(k), Ok(v)) = (mk(&mut rng), mk(&mut rng), mk(&mut rng)) else {
        return;
    };
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let fwd = 4.0 * (b * h * t * t * d) as f64;
    // The composition ptm-tensor used before the fused kernel (and still uses under dropout):
    // scores written out, masked, softmax, weighted values.
    let hidden: Vec<u32> = (0..t * t).map(|x| u32::from(x % t > x / t)).collect();
    let Ok(hidden) = Tensor::from_vec(hidden, [1, 1, t, t], &Device::Cpu) else {
        return;
    };
    let composed = |q: &Tensor, k: &Tensor, v: &Tensor| {
        q.matmul(&k.transpose(2, 3)?)?
            .mul_scalar(1.0 / (d as f64).sqrt())?
            .masked_fill(&hidden, f32::MIN as f64)?
            .softmax(-1)?
            .matmul(v)
    };
    // The fused kernel on the same values as plain f32 slices.
    let (Ok(qs), Ok(ks), Ok(vs)) = (
        q.flatten_all().and_then(|x| x.to_vec::<f32>()),
        k.flatten_all().and_then(|x| x.to_vec::<f32>()),
        v.flatten_all().and_then(|x| x.to_vec::<f32>()),
    ) else {
        return;
    };
    let sh = AttentionShape {
        bh: b * h,
        heads: h,
        tq: t,
        tk: t,
        prefix: 0,
        d,
    };
    let mask = AttentionMask {
        causal: true,
        key_padding: None,
    };
    let scale = 1.0 / (d as f32).sqrt();
    let n = b * h * t * d;
    let bufs = std::cell::RefCell::new((
        vec![0.0f32; n],
        vec![0.0f32; b * h * t * 2],
        vec![1.0f32; n],
        vec![0.0f32; n],
        vec![0.0f32; n],
        vec![0.0f32; n],
    ));
    for (op, work, backward) in [
        ("attention_fwd", fwd, false),
        ("attention_fwd_bwd", 3.0 * fwd, true),
    ] {
        let mut cands: Vec<Candidate> = vec![
            (
                "ptm-fused",
                Box::new(|| {
                    let mut guard = bufs.borrow_mut();
                    let (o, st, dout, dq, dk, dv) = &mut *guard;
                    attention_fwd(&sh, &mask, scale, &qs, &ks, &vs, o, st);
                    if backward {
                        dk.fill(0.0);
                        dv.fill(0.0);
                        attention_bwd(&sh, &mask, scale, &qs, &ks, &vs, o, st, dout, dq, dk, dv);
                    }
                    black_box(&*guard);
                }),
            ),
            (
                "ptm-tensor",
                Box::new(|| {
                    if backward {
                        let y = scaled_dot_product_attention(&q, &k, &v, opts)
                            .and_then(|y| y.sum_all());
                        if let Ok(y) = y {
                            black_box(y.backward().ok());
                        }
                    } else {
                        let _g = no_grad();
                        black_box(scaled_dot_product_attention(&q, &k, &v, opts).ok());
                    }
                }),
            ),
            (
                "ptm-unfused",
                Box::new(|| {
                    if backward {
                        if let Ok(y) = composed(&q, &k, &v).and_then(|y| y.sum_all()) {
                            black_box(y.backward().ok());
                        }
                    } else {
                        let _g = no_grad();
                        black_box(composed(&q, &k, &v).ok());
                    }
                }),
            ),
        ];
        let row = Row {
            op,
            shape: vec![b, h, t, d],
            unit: "GFLOP/s",
            work,
        };
        measure(&row, threads, &mut cands, rounds, min_sample, only, out);
    }
}

/// The command line: `[--quick] [--threads 1,2] [--only OP,OP] [--json FILE] [--torch FILE]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut only: Vec<String> = vec![];
    let mut threads = vec![1, 2];
    let (mut json, mut torch) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("bench kernels: {name} needs a value"))
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = Some(value("--json")?),
            "--torch" => torch = Some(value("--torch")?),
            "--only" => only = value("--only")?.split(',').map(|o| o.trim().to_string()).collect(),
            "--threads" => {
                threads = value("--threads")?
                    .split(',')
                    .map(|t| t.trim().parse::<usize>().map_err(|e| format!("bench kernels: --threads {t}: {e}")))
                    .collect::<Result<_, _>>()?;
                if threads.contains(&0) {
                    return Err("bench kernels: --threads 0".into());
                }
            }
            other => {
                return Err(format!(
                    "bench kernels: unknown option {other} (expected --quick, --threads N,M, --only OP,OP, --json FILE, --torch FILE)"
                ))
            }
        }
    }
    let mut records = vec![];
    for &n in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| format!("bench kernels: a pool of {n} threads: {e}"))?;
        eprintln!("bench kernels: {n} thread(s) ...");
        pool.install(|| run_rows(n, quick, &only, &mut records));
    }
    if let Some(path) = &torch {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let theirs: Vec<Record> = serde_json::from_str(&text)
            .map_err(|e| format!("{path}: not a list of records: {e}"))?;
        records.extend(theirs);
    }
    print!("{}", table(&records));
    if let Some(path) = &json {
        let text = serde_json::to_string_pretty(&records).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{path}: {e}"))?;
        eprintln!("bench kernels: {} records in {path}", records.len());
    }
    Ok(())
}

/// One line per (op, shape, threads): each implementation's rate, then ptm's rate over each
/// other's (above 1: ptm is faster).
fn table(records: &[Record]) -> String {
    let mut keys: Vec<(String, Vec<usize>, usize)> = vec![];
    for r in records {
        let key = (r.op.clone(), r.shape.clone(), r.threads);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut s = String::new();
    s += &format!(
        "{:<18} {:<20} {:>3}  {}\n",
        "op", "shape", "thr", "rates (ptm / other)"
    );
    for (op, shape, threads) in keys {
        let row: Vec<&Record> = records
            .iter()
            .filter(|r| r.op == op && r.shape == shape && r.threads == threads)
            .collect();
        let ours = row
            .iter()
            .find(|r| r.imp.starts_with("ptm"))
            .map(|r| r.rate);
        let cells: Vec<String> = row
            .iter()
            .map(|r| {
                let ratio = match ours {
                    Some(o) if !r.imp.starts_with("ptm") => format!(" ({:.2}x)", o / r.rate),
                    _ => String::new(),
                };
                format!("{} {:.1} {}{}", r.imp, r.rate, r.unit, ratio)
            })
            .collect();
        s += &format!(
            "{:<18} {:<20} {:>3}  {}\n",
            op,
            format!("{shape:?}").replace(' ', ""),
            threads,
            cells.join(" | ")
        );
    }
    s
}
