//! f32 matmul: a textbook loop vs the `gemm` crate (AVX-512 kernels on) vs ptm's paths (each ISA
//! this CPU has, and through `Tensor::matmul`), at square
//! sizes and GPT-2-shaped products. Throughput is reported in elements = FLOPs (2·m·n·k), so
//! criterion's "Gelem/s" reads as GFLOP/s. All run in one process, interleaved by criterion.
//!
//! `cargo bench --bench matmul` (or `cargo xtask bench`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ptm::ptm_cpu::baseline::gemm_crate_f32;
use ptm::ptm_cpu::matmul::{matmul_isa, MatRef};
use ptm::ptm_cpu::Isa;
use ptm::ptm_tensor::{DType, Device, Rng, Tensor};
use std::hint::black_box;

/// The i-j-p loop a newcomer writes first.
fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = acc;
        }
    }
}

fn bench_matmul(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    // (m, n, k): square sizes, then GPT-2 small's attention projection and MLP shapes at 128 tokens.
    let shapes = [
        (64, 64, 64),
        (256, 256, 256),
        (512, 512, 512),
        (128, 2304, 768),
        (128, 3072, 768),
        (128, 768, 3072),
    ];
    let mut rng = Rng::new(0);
    for (m, n, k) in shapes {
        let ta = Tensor::randn(0.0, 1.0, [m, k], DType::F32, &mut rng, &Device::Cpu).unwrap();
        let tb = Tensor::randn(0.0, 1.0, [k, n], DType::F32, &mut rng, &Device::Cpu).unwrap();
        let (a, b) = (ta.to_vec::<f32>().unwrap(), tb.to_vec::<f32>().unwrap());
        let mut out = vec![0.0f32; m * n];
        let mut group = c.benchmark_group(format!("matmul_f32/{m}x{n}x{k}"));
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.sample_size(10);
        if m * n * k <= 256 * 256 * 256 {
            group.bench_function(BenchmarkId::from_parameter("naive loop"), |bn| {
                bn.iter(|| naive(m, n, k, &a, &b, black_box(&mut out)))
            });
        }
        group.bench_function(
            BenchmarkId::from_parameter(format!("gemm crate ({threads} threads)")),
            |bn| bn.iter(|| gemm_crate_f32(m, n, k, &a, &b, black_box(&mut out), threads)),
        );
        for isa in Isa::available() {
            group.bench_function(
                BenchmarkId::from_parameter(format!("ptm-cpu {}", isa.name())),
                |bn| {
                    bn.iter(|| {
                        matmul_isa(
                            isa,
                            m,
                            n,
                            k,
                            MatRef::row_major(&a, k),
                            MatRef::row_major(&b, n),
                            black_box(&mut out),
                            0.0,
                        )
                    })
                },
            );
        }
        group.bench_function(BenchmarkId::from_parameter("ptm-tensor matmul"), |bn| {
            bn.iter(|| black_box(ta.matmul(&tb).unwrap()))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
