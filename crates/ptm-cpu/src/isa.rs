//! Which instruction-set path the kernels take, chosen at run time.
//!
//! The best path the CPU supports is detected with `is_x86_feature_detected!`, so a plain
//! `cargo build` runs fast on any x86-64 machine without `-C target-cpu=native`. The environment
//! variable `PTM_CPU_ISA=scalar|avx2|avx512` forces a path (lower than the best only: a path the
//! CPU lacks would crash), so every path can be tested and timed on one machine.

use std::sync::OnceLock;

/// A kernel path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust (autovectorised by the compiler for the baseline target).
    Scalar,
    /// AVX2 + FMA, 256-bit.
    Avx2,
    /// AVX-512F, 512-bit.
    Avx512,
}

impl Isa {
    /// The name `PTM_CPU_ISA` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }

    /// The fastest path this CPU can run.
    pub fn best() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Scalar)
    }

    /// The path kernels use: `PTM_CPU_ISA` if set (and runnable here), else [`Isa::best`].
    /// Read once per process.
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| resolve(std::env::var("PTM_CPU_ISA").ok().as_deref()))
    }
}

/// The path a `PTM_CPU_ISA` value asks for; a bad or unrunnable value warns once and is ignored.
fn resolve(requested: Option<&str>) -> Isa {
    let best = Isa::best();
    let Some(name) = requested else { return best };
    match [Isa::Scalar, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .find(|i| i.name() == name.trim().to_lowercase())
    {
        Some(isa) if isa.is_available() => isa,
        Some(isa) => {
            eprintln!(
                "ptm-cpu: PTM_CPU_ISA={} is not supported by this CPU; using {}",
                isa.name(),
                best.name()
            );
            best
        }
        None => {
            eprintln!(
                "ptm-cpu: PTM_CPU_ISA={name:?} is not one of scalar, avx2, avx512; using {}",
                best.name()
            );
            best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_resolve_to_runnable_paths() {
        assert_eq!(resolve(None), Isa::best());
        assert_eq!(resolve(Some("scalar")), Isa::Scalar);
        assert_eq!(
            resolve(Some(" AVX2 ")),
            if Isa::Avx2.is_available() {
                Isa::Avx2
            } else {
                Isa::best()
            }
        );
        assert_eq!(resolve(Some("sse9")), Isa::best());
        assert!(Isa::available().contains(&Isa::selected()));
    }
}
