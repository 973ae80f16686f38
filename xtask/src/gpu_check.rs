//! `cargo xtask gpu-check`: a self-contained bundle that checks the GPU path on a machine with no
//! Rust toolchain and no network: release test and bench binaries (stripped), the kernel sources,
//! and `run.sh`, which runs every GPU test and then prints the benchmark table.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundle may not grow past this (it travels to the GPU machine).
const MAX_BYTES: u64 = 60 << 20;

const RUN_SH: &str = r#"#!/usr/bin/env bash
# ptm GPU check, built by `cargo xtask gpu-check`. Runs ptm-cuda's unit tests; the NVRTC compile
# test (with this machine's own NVRTC and ptxas: CUDA 13.0's, which its driver accepts); every GPU
# kernel against CPU references; ptm-tensor's CUDA backend and a GPT-2 training step against their
# CPU paths; then the benchmark table and a GPT-2 124M training step on the GPU. Needs a CUDA
# driver and toolkit; no Rust, no network. BENCH_ARGS=--quick shrinks the benchmark.
set -uo pipefail
cd "$(dirname "$0")"
export PTM_REQUIRE_GPU=1 PTM_REQUIRE_NVRTC=1
export PTM_CACHE="${PTM_CACHE:-$PWD/cache}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
status=0
for t in unit nvrtc_compile gpu_kernels tensor_cuda gpt2_gpu; do
  echo "== $t"
  start=$(date +%s)
  ./bin/$t --test-threads=1 || status=1
  echo "($t: $(( $(date +%s) - start )) s)"
done
echo "== benchmark"
./bin/gpu_bench ${BENCH_ARGS:-} || status=1
echo "== GPT-2 124M training step (B=4, T=64 and 128, AdamW) on the GPU"
./bin/xtask bench train-step --device cuda ${STEP_ARGS:-} || status=1
echo "== exit $status"
exit $status
"#;

fn cargo_build(target_dir: &Path, args: &[&str]) -> Result<Vec<(String, String, PathBuf)>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the bundle's binaries failed ({})",
            out.status
        ));
    }
    let mut found = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let name = v["target"]["name"].as_str().unwrap_or_default().to_string();
        let kind = v["target"]["kind"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        found.push((name, kind, PathBuf::from(exe)));
    }
    Ok(found)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// Builds the bundle into `out` (replacing it).
pub fn run(out: &Path) -> Result<(), String> {
    let target_dir = PathBuf::from("target/gpu-check-build");
    let mut artifacts = cargo_build(
        &target_dir,
        &["-p", "ptm-cuda", "--lib", "--tests", "--benches"],
    )?;
    artifacts.extend(cargo_build(
        &target_dir,
        &["-p", "ptm-tensor", "--features", "cuda", "--test", "cuda"],
    )?);
    artifacts.extend(cargo_build(
        &target_dir,
        &["-p", "ptm-models", "--features", "cuda", "--test", "gpu"],
    )?);
    // xtask itself, for the GPT-2 124M training step on the GPU.
    artifacts.extend(cargo_build(
        &target_dir,
        &["-p", "xtask", "--features", "cuda", "--bin", "xtask"],
    )?);
    let _ = std::fs::remove_dir_all(out);
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    // Unit tests of the lib, the two integration tests, the benchmark.
    let wanted = [
        ("ptm_cuda", "lib", "unit"),
        ("nvrtc_compile", "test", "nvrtc_compile"),
        ("gpu_kernels", "test", "gpu_kernels"),
        ("cuda", "test", "tensor_cuda"),
        ("gpu", "test", "gpt2_gpu"),
        ("gpu", "bench", "gpu_bench"),
        ("xtask", "bin", "xtask"),
    ];
    for (name, kind, as_name) in wanted {
        let (_, _, exe) = artifacts
            .iter()
            .find(|(n, k, _)| n == name && k == kind)
            .ok_or_else(|| format!("the build produced no {kind} binary `{name}`"))?;
        let dst = bin.join(as_name);
        std::fs::copy(exe, &dst)
            .map_err(|e| format!("{} -> {}: {e}", exe.display(), dst.display()))?;
    }
    let kernels = out.join("kernels");
    std::fs::create_dir_all(&kernels).map_err(|e| e.to_string())?;
    for e in std::fs::read_dir("kernels").map_err(|e| format!("kernels/: {e}"))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if let Some(name) = p.file_name() {
            std::fs::copy(&p, kernels.join(name)).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    let script = out.join("run.sh");
    std::fs::write(&script, RUN_SH).map_err(|e| format!("{}: {e}", script.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let bytes = dir_bytes(out);
    println!(
        "gpu-check bundle: {} ({:.1} MiB): bin/{{unit,nvrtc_compile,gpu_kernels,tensor_cuda,gpt2_gpu,gpu_bench,xtask}}, kernels/, run.sh",
        out.display(),
        bytes as f64 / (1 << 20) as f64
    );
    if bytes > MAX_BYTES {
        return Err(format!(
            "the bundle is {bytes} bytes, over the {MAX_BYTES}-byte limit"
        ));
    }
    println!("on the GPU machine: bash {}/run.sh", out.display());
    Ok(())
}
