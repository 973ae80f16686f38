//! The CUDA C sources of `kernels/`, embedded in the binary.

/// One kernel file.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// The file name under `kernels/`, e.g. `softmax.cu`.
    pub file: &'static str,
    /// Its text.
    pub code: &'static str,
}

/// `kernels/common.cuh`, put in front of every source.
pub const PRELUDE: &str = include_str!("../../../kernels/common.cuh");

macro_rules! sources {
    ($($file:literal),* $(,)?) => {
        /// Every kernel file, compiled by the NVRTC test for each architecture ptm targets.
        pub const SOURCES: &[KernelSource] = &[
            $(KernelSource { file: $file, code: include_str!(concat!("../../../kernels/", $file)) }),*
        ];
    };
}

sources!(
    "elementwise.cu",
    "softmax.cu",
    "layer_norm.cu",
    "cross_entropy.cu",
    "adamw.cu",
    "sgd.cu",
    "conv.cu",
    "embedding.cu",
    "reduce.cu",
    "matmul_simt.cu",
    "matmul_mma.cu",
    "attention_simt.cu",
    "attention_mma.cu",
);

/// The architectures the compile test checks: Ampere (A100) and Hopper (H100/H200).
pub const TARGET_ARCHS: &[&str] = &["compute_80", "compute_90"];

/// The source called `file`.
pub fn source(file: &str) -> Option<&'static KernelSource> {
    SOURCES.iter().find(|s| s.file == file)
}
