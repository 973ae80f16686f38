//! GPU benchmark table (`cargo bench -p ptm-cuda --bench gpu`, also run by `cargo xtask
//! gpu-check`'s bundle): matmul TFLOP/s against cuBLAS in the same process, flash attention
//! against the unfused composition (matmul + mask + softmax + matmul), layer norm and softmax GB/s
//! against the device's copy bandwidth. Prints why and exits 0 when no GPU is present (1 with
//! `PTM_REQUIRE_GPU=1`).
//!
//! Each figure is the median of 5 timed samples, each sample enough back-to-back launches to
//! take about 50 ms, timed on the host around a device synchronisation. `--quick` shrinks the
//! sizes (a smoke run).

use half::{bf16, f16};
use ptm_cuda::cublas::Cublas;
use ptm_cuda::memory::Layout;
use ptm_cuda::ops::attention::{attention_bwd, attention_fwd, AttentionShape};
use ptm_cuda::ops::elementwise::{self as ew, Binary};
use ptm_cuda::ops::matmul::{gemm, Gemm, GemmPath, Operand};
use ptm_cuda::ops::{rows, FloatType};
use ptm_cuda::{Buffer, Device};
use std::time::Instant;

/// Seconds per call of `f`: median of 5 samples.
fn time(dev: &Device, mut f: impl FnMut()) -> f64 {
    f();
    dev.synchronize().expect("sync");
    let t = Instant::now();
    f();
    dev.synchronize().expect("sync");
    let once = t.elapsed().as_secs_f64().max(1e-6);
    let iters = ((0.05 / once).ceil() as usize).clamp(1, 1000);
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            dev.synchronize().expect("sync");
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[2]
}

fn random<T: FloatType>(dev: &Device, n: usize, seed: u64, from: impl Fn(f32) -> T) -> Buffer<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let host: Vec<T> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            from((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        })
        .collect();
    dev.upload(&host).expect("upload")
}

struct Table(Vec<[String; 5]>);

impl Table {
    fn row(&mut self, what: String, ours: String, base: String, ratio: f64, unit: &str) {
        println!("{what:<44} {ours:>12} {base:>12} {ratio:>7.2}x  {unit}");
        self.0
            .push([what, ours, base, format!("{ratio:.2}"), unit.to_string()]);
    }
}

fn bench_matmul<T: FloatType>(
    dev: &Device,
    blas: Option<&Cublas>,
    t: &mut Table,
    shapes: &[(usize, usize, usize, bool)],
    from: impl Fn(f32) -> T + Copy,
) {
    for &(m, k, n, b_nk) in shapes {
        let a = random::<T>(dev, m * k, 1, from);
        let b = random::<T>(dev, k * n, 2, from);
        let mut c = dev.alloc::<T>(m * n).expect("alloc");
        let bop = if b_nk {
            Operand::row_major(&b, n, k).t()
        } else {
            Operand::row_major(&b, k, n)
        };
        let g = Gemm {
            batch: 1,
            m,
            n,
            k,
            alpha: 1.0,
            beta: 0.0,
        };
        let mut path = GemmPath::Simt;
        let ours = time(dev, || {
            path = gemm(
                &g,
                Operand::row_major(&a, m, k),
                bop,
                &mut c,
                0,
                n,
                m * n,
                None,
                false,
            )
            .expect("gemm");
        });
        let flops = 2.0 * (m * n * k) as f64;
        let theirs = blas.map(|bl| {
            time(dev, || {
                bl.gemm(m, n, k, &a, &b, b_nk, &mut c).expect("cublas")
            })
        });
        let what = format!(
            "matmul {} {m}x{k}x{n}{} ({path:?})",
            T::NAME,
            if b_nk { " Bᵀ" } else { "" }
        );
        match theirs {
            Some(th) => t.row(
                what,
                format!("{:.1}", flops / ours / 1e12),
                format!("{:.1}", flops / th / 1e12),
                th / ours,
                "TFLOP/s vs cuBLAS",
            ),
            None => t.row(
                what,
                format!("{:.1}", flops / ours / 1e12),
                "-".into(),
                f64::NAN,
                "TFLOP/s (no cuBLAS)",
            ),
        }
    }
}

/// Attention as a composition of ptm-cuda kernels: S = scale·Q·Kᵀ, S += causal mask, P =
/// softmax(S), O = P·V; and its backward. Buffers are kept across calls.
struct Composed {
    s: Buffer<bf16>,
    p: Buffer<bf16>,
    dp: Buffer<bf16>,
    ds: Buffer<bf16>,
    mask: Buffer<bf16>,
}

impl Composed {
    fn new(dev: &Device, bh: usize, t: usize) -> Composed {
        let big = bh * t * t;
        let mask: Vec<bf16> = (0..t * t)
            .map(|x| {
                if x % t > x / t {
                    bf16::from_f32(f32::MIN)
                } else {
                    bf16::ZERO
                }
            })
            .collect();
        Composed {
            s: dev.alloc(big).expect("alloc"),
            p: dev.alloc(big).expect("alloc"),
            dp: dev.alloc(big).expect("alloc"),
            ds: dev.alloc(big).expect("alloc"),
            mask: dev.upload(&mask).expect("upload"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bmm(
        bh: usize,
        m: usize,
        n: usize,
        k: usize,
        alpha: f64,
        a: Operand<'_, bf16>,
        b: Operand<'_, bf16>,
        c: &mut Buffer<bf16>,
    ) {
        let g = Gemm {
            batch: bh,
            m,
            n,
            k,
            alpha,
            beta: 0.0,
        };
        gemm(&g, a, b, c, 0, n, m * n, None, false).expect("gemm");
    }

    #[allow(clippy::too_many_arguments)]
    fn fwd(
        &mut self,
        bh: usize,
        t: usize,
        d: usize,
        scale: f64,
        q: &Buffer<bf16>,
        k: &Buffer<bf16>,
        v: &Buffer<bf16>,
        o: &mut Buffer<bf16>,
    ) {
        Self::bmm(
            bh,
            t,
            t,
            d,
            scale,
            Operand::row_major(q, t, d),
            Operand::row_major(k, t, d).t(),
            &mut self.p,
        );
        let full = Layout::contiguous(&[bh, t, t]).unwrap();
        let mask = Layout::strided(&[bh, t, t], &[0, t as isize, 1], 0).unwrap();
        ew::binary(Binary::Add, &self.p, &full, &self.mask, &mask, &mut self.s).expect("mask");
        rows::softmax_fwd(&self.s, &mut self.p, t, false).expect("softmax");
        Self::bmm(
            bh,
            t,
            d,
            t,
            1.0,
            Operand::row_major(&self.p, t, t),
            Operand::row_major(v, t, d),
            o,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn bwd(
        &mut self,
        bh: usize,
        t: usize,
        d: usize,
        scale: f64,
        q: &Buffer<bf16>,
        k: &Buffer<bf16>,
        v: &Buffer<bf16>,
        dout: &Buffer<bf16>,
        dq: &mut Buffer<bf16>,
        dk: &mut Buffer<bf16>,
        dv: &mut Buffer<bf16>,
    ) {
        Self::bmm(
            bh,
            t,
            d,
            t,
            1.0,
            Operand::row_major(&self.p, t, t).t(),
            Operand::row_major(dout, t, d),
            dv,
        );
        Self::bmm(
            bh,
            t,
            t,
            d,
            1.0,
            Operand::row_major(dout, t, d),
            Operand::row_major(v, t, d).t(),
            &mut self.dp,
        );
        rows::softmax_bwd(&self.p, &self.dp, &mut self.ds, t, false, false).expect("softmax_bwd");
        Self::bmm(
            bh,
            t,
            d,
            t,
            scale,
            Operand::row_major(&self.ds, t, t),
            Operand::row_major(k, t, d),
            dq,
        );
        Self::bmm(
            bh,
            t,
            d,
            t,
            scale,
            Operand::row_major(&self.ds, t, t).t(),
            Operand::row_major(q, t, d),
            dk,
        );
    }
}

fn bench_attention(dev: &Device, t_: &mut Table, t: usize, bh: usize) {
    let d = 64;
    let sh = AttentionShape {
        bh,
        heads: 12.min(bh),
        tq: t,
        tk: t,
        prefix: 0,
        d,
    };
    let n = bh * t * d;
    let (q, k, v, g) = (
        random(dev, n, 3, bf16::from_f32),
        random(dev, n, 4, bf16::from_f32),
        random(dev, n, 5, bf16::from_f32),
        random(dev, n, 6, bf16::from_f32),
    );
    let (mut o, mut dq, mut dk, mut dv) = (
        dev.alloc::<bf16>(n).unwrap(),
        dev.alloc::<bf16>(n).unwrap(),
        dev.alloc::<bf16>(n).unwrap(),
        dev.alloc::<bf16>(n).unwrap(),
    );
    let scale = 1.0 / (d as f64).sqrt();
    // Nominal causal FLOPs (FlashAttention's count): forward 2 products of half the square, the
    // backward 2.5 times that.
    let fwd_flops = 4.0 * (bh * t * t * d) as f64 * 0.5;
    let bwd_flops = 2.5 * fwd_flops;
    let ours_f = time(dev, || {
        attention_fwd(&sh, true, None, scale, &q, &k, &v, &mut o, false).expect("fa fwd");
    });
    let (stats, _) = attention_fwd(&sh, true, None, scale, &q, &k, &v, &mut o, false).unwrap();
    let ours_b = time(dev, || {
        attention_bwd(
            &sh, true, None, scale, &q, &k, &v, &o, &stats, &g, &mut dq, &mut dk, &mut dv, false,
        )
        .expect("fa bwd");
    });
    let mut comp = Composed::new(dev, bh, t);
    let theirs_f = time(dev, || comp.fwd(bh, t, d, scale, &q, &k, &v, &mut o));
    let theirs_b = time(dev, || {
        comp.bwd(bh, t, d, scale, &q, &k, &v, &g, &mut dq, &mut dk, &mut dv)
    });
    let tf = |flops: f64, s: f64| format!("{:.1}", flops / s / 1e12);
    t_.row(
        format!("flash attention fwd bf16 causal T={t} bh={bh} d=64"),
        tf(fwd_flops, ours_f),
        tf(fwd_flops, theirs_f),
        theirs_f / ours_f,
        "TFLOP/s vs composition",
    );
    t_.row(
        format!("flash attention bwd bf16 causal T={t} bh={bh} d=64"),
        tf(bwd_flops, ours_b),
        tf(bwd_flops, theirs_b),
        theirs_b / ours_b,
        "TFLOP/s vs composition",
    );
}

fn bench_rows<T: FloatType>(
    dev: &Device,
    t: &mut Table,
    rows_: usize,
    n: usize,
    from: impl Fn(f32) -> T + Copy,
) {
    let len = rows_ * n;
    let x = random::<T>(dev, len, 7, from);
    let mut y = dev.alloc::<T>(len).unwrap();
    let w = random::<T>(dev, n, 8, from);
    let b = random::<T>(dev, n, 9, from);
    let bytes = 2.0 * (len * std::mem::size_of::<T>()) as f64;
    let copy = time(dev, || y.copy_from_device(&x).expect("copy"));
    let ln = time(dev, || {
        rows::layer_norm_fwd(&x, Some(&w), Some(&b), 1e-5, n, &mut y).expect("ln");
    });
    let sm = time(dev, || {
        rows::softmax_fwd(&x, &mut y, n, false).expect("softmax")
    });
    let gb = |s: f64| format!("{:.0}", bytes / s / 1e9);
    t.row(
        format!("layer norm fwd {} {rows_}x{n}", T::NAME),
        gb(ln),
        gb(copy),
        copy / ln,
        "GB/s vs device copy",
    );
    t.row(
        format!("softmax fwd {} {rows_}x{n}", T::NAME),
        gb(sm),
        gb(copy),
        copy / sm,
        "GB/s vs device copy",
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dev = match Device::new(0) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    println!(
        "GPU: {} ({} SMs, {})",
        dev.name(),
        dev.sm_count(),
        dev.arch()
    );
    let blas = match Cublas::new(&dev) {
        Ok(b) => Some(b),
        Err(e) => {
            println!("no cuBLAS baseline: {e}");
            None
        }
    };
    println!(
        "{:<44} {:>12} {:>12} {:>8}  unit",
        "kernel", "ptm", "baseline", "ratio"
    );
    let mut t = Table(vec![]);
    let tokens = if quick { 512 } else { 8192 };
    let big = if quick { 1024 } else { 4096 };
    // (M, K, N, B stored N×K): the square, then GPT-2 124M's training products at 8192 tokens
    // (HF Conv1D weights are K×N; the tied LM head reads the embedding table as Bᵀ).
    let shapes = [
        (big, big, big, false),
        (tokens, 768, 2304, false),
        (tokens, 768, 768, false),
        (tokens, 768, 3072, false),
        (tokens, 3072, 768, false),
        (tokens, 768, 50257, true),
    ];
    bench_matmul::<bf16>(&dev, blas.as_ref(), &mut t, &shapes, bf16::from_f32);
    bench_matmul::<f16>(&dev, blas.as_ref(), &mut t, &shapes, f16::from_f32);
    bench_matmul::<f32>(
        &dev,
        blas.as_ref(),
        &mut t,
        &shapes[..if quick { 2 } else { 3 }],
        |x| x,
    );
    if quick {
        bench_attention(&dev, &mut t, 256, 8);
    } else {
        bench_attention(&dev, &mut t, 1024, 96);
        bench_attention(&dev, &mut t, 4096, 24);
    }
    let (r, n) = if quick { (1024, 1024) } else { (16384, 4096) };
    bench_rows::<f32>(&dev, &mut t, r, n, |x| x);
    bench_rows::<bf16>(&dev, &mut t, r, n, bf16::from_f32);
    println!("{} rows", t.0.len());
}
