//! Elementwise and row kernels, f32: libm's scalar `tanhf`/`expf`/`erff` in a plain loop (what the
//! compiler cannot vectorise) vs ptm's vectorisable `vmath`, and softmax rows at GPT-2's attention
//! width (128) and vocabulary width (50257) vs a textbook three-pass softmax on std `exp`.
//! Throughput in bytes read + written.
//!
//! `cargo bench --bench elementwise`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ptm::ptm_cpu::gelu::gelu_erf;
use ptm::ptm_cpu::softmax::softmax_fwd;
use ptm::ptm_cpu::vmath;
use ptm::ptm_tensor::{DType, Device, Rng, Tensor};
use std::hint::black_box;

fn data(n: usize) -> Vec<f32> {
    Tensor::randn(0.0, 3.0, [n], DType::F32, &mut Rng::new(1), &Device::Cpu)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
}

fn bench_maps(c: &mut Criterion) {
    let n = 1 << 20;
    let x = data(n);
    let mut group = c.benchmark_group("map_f32/1M");
    group.throughput(Throughput::Bytes((8 * n) as u64));
    group.sample_size(20);
    let mut v = x.clone();
    group.bench_function(BenchmarkId::from_parameter("tanh libm"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            v.iter_mut().for_each(|e| *e = e.tanh());
            black_box(&v);
        })
    });
    group.bench_function(BenchmarkId::from_parameter("tanh vmath"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            vmath::map_f32(&mut v, vmath::tanh);
            black_box(&v);
        })
    });
    // BERT's GELU: libm's scalar erff (ptm's f32 path before) vs ptm's vectorisable erf.
    let gelu_libm = |x: f32| 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
    group.bench_function(BenchmarkId::from_parameter("gelu-erf libm"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            v.iter_mut().for_each(|e| *e = gelu_libm(*e));
            black_box(&v);
        })
    });
    group.bench_function(BenchmarkId::from_parameter("gelu-erf ptm"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            vmath::map_f32(&mut v, gelu_erf::<f32>);
            black_box(&v);
        })
    });
    group.bench_function(BenchmarkId::from_parameter("exp libm"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            v.iter_mut().for_each(|e| *e = e.exp());
            black_box(&v);
        })
    });
    group.bench_function(BenchmarkId::from_parameter("exp vmath"), |b| {
        b.iter(|| {
            v.copy_from_slice(&x);
            vmath::map_f32(&mut v, vmath::exp);
            black_box(&v);
        })
    });
    group.finish();
}

/// Max, exp-and-sum, scale: three passes on std `exp`.
fn softmax_textbook(x: &[f32], y: &mut [f32], d: usize) {
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mx = xr.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (yv, &xv) in yr.iter_mut().zip(xr) {
            *yv = (xv - mx).exp();
            sum += *yv;
        }
        yr.iter_mut().for_each(|v| *v /= sum);
    }
}

fn bench_softmax(c: &mut Criterion) {
    for (rows, d) in [(4 * 12 * 128, 128), (64, 50257)] {
        let x = data(rows * d);
        let mut y = vec![0.0f32; rows * d];
        let mut group = c.benchmark_group(format!("softmax_f32/{rows}x{d}"));
        group.throughput(Throughput::Bytes((8 * rows * d) as u64));
        group.sample_size(20);
        group.bench_function(BenchmarkId::from_parameter("textbook (std exp)"), |b| {
            b.iter(|| softmax_textbook(&x, black_box(&mut y), d))
        });
        group.bench_function(BenchmarkId::from_parameter("ptm-cpu"), |b| {
            b.iter(|| softmax_fwd(&x, black_box(&mut y), d))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_maps, bench_softmax);
criterion_main!(benches);
