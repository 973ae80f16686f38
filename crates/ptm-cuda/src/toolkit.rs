//! Finding the CUDA pieces ptm-cuda needs at run time: NVRTC (`libnvrtc.so`), the headers the
//! kernels include (`cuda_bf16.h`, `cuda_fp16.h`, `mma.h`), ptxas for register reports, and the
//! driver (`libcuda.so`).
//!
//! cudarc loads its libraries by name and panics when none of its candidate names loads, so nothing
//! here calls into cudarc before [`nvrtc`] or [`driver`] has confirmed the library is there.
//!
//! A toolkit is a directory with `lib/` (or `lib64/`) and `include/`. The first of these that holds
//! NVRTC is used:
//! 1. `$PTM_CUDA_HOME` (an error if set and unusable, so a typo is not silently ignored);
//! 2. the wheels `cargo xtask fetch cuda-nvrtc` unpacks into the ptm cache
//!    (`$PTM_CACHE/cuda-nvrtc`, else `$XDG_CACHE_HOME/ptm/...`, else `~/.cache/ptm/...`);
//! 3. `$CUDA_HOME`, `$CUDA_PATH`, `/usr/local/cuda`, then `/usr/local/cuda-*` (newest name first).
//!
//! With none of them, the system's library search path is tried for NVRTC, without include
//! directories.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The pieces of a CUDA installation that were found.
#[derive(Clone, Debug, Default)]
pub struct Toolkit {
    /// Where it was found, for messages (`$PTM_CUDA_HOME`, `ptm cache`, a path...).
    pub origin: String,
    /// The NVRTC shared library, when found by path.
    pub nvrtc_lib: Option<PathBuf>,
    /// Include directories passed to NVRTC.
    pub include_dirs: Vec<PathBuf>,
    /// `ptxas`, when the toolkit (or the fetched `cuda-ptxas` wheel) has it.
    pub ptxas: Option<PathBuf>,
}

/// The ptm data cache, as `cargo xtask fetch` lays it out (same rule as ptm-train's `cache_dir`).
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PTM_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("ptm");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("ptm")
}

const NVRTC_NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so", "libnvrtc.so.12"];

fn find_nvrtc(root: &Path) -> Option<PathBuf> {
    ["lib", "lib64", "lib/x64", "targets/x86_64-linux/lib"]
        .iter()
        .flat_map(|d| NVRTC_NAMES.iter().map(move |n| root.join(d).join(n)))
        .find(|p| p.is_file())
}

fn find_includes(root: &Path) -> Vec<PathBuf> {
    ["include", "targets/x86_64-linux/include"]
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.join("cuda_fp16.h").is_file())
        .collect()
}

fn find_ptxas(root: &Path) -> Option<PathBuf> {
    let own = root.join("bin").join("ptxas");
    if own.is_file() {
        return Some(own);
    }
    let fetched = cache_dir().join("cuda-ptxas").join("bin").join("ptxas");
    fetched.is_file().then_some(fetched)
}

fn toolkit_at(root: &Path, origin: String) -> Option<Toolkit> {
    let nvrtc_lib = find_nvrtc(root)?;
    Some(Toolkit {
        origin,
        nvrtc_lib: Some(nvrtc_lib),
        include_dirs: find_includes(root),
        ptxas: find_ptxas(root),
    })
}

fn candidate_roots() -> Vec<(PathBuf, String)> {
    let mut roots = vec![(
        cache_dir().join("cuda-nvrtc"),
        "ptm cache (cargo xtask fetch cuda-nvrtc)".to_string(),
    )];
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = std::env::var_os(var) {
            roots.push((PathBuf::from(p), format!("${var}")));
        }
    }
    roots.push((PathBuf::from("/usr/local/cuda"), "/usr/local/cuda".into()));
    if let Ok(dir) = std::fs::read_dir("/usr/local") {
        let mut versioned: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("cuda-"))
            })
            .collect();
        versioned.sort();
        for p in versioned.into_iter().rev() {
            let origin = p.display().to_string();
            roots.push((p, origin));
        }
    }
    roots
}

/// Locates the toolkit by the rules in the module documentation.
pub fn locate() -> Result<Toolkit> {
    if let Some(home) = std::env::var_os("PTM_CUDA_HOME") {
        let home = PathBuf::from(home);
        return toolkit_at(&home, "$PTM_CUDA_HOME".into()).ok_or_else(|| {
            Error::Unavailable(format!(
                "PTM_CUDA_HOME={} has no libnvrtc.so* under lib/ or lib64/",
                home.display()
            ))
        });
    }
    for (root, origin) in candidate_roots() {
        if let Some(t) = toolkit_at(&root, origin) {
            return Ok(t);
        }
    }
    Ok(Toolkit {
        origin: "system library path".into(),
        nvrtc_lib: None,
        include_dirs: Vec::new(),
        ptxas: find_ptxas(Path::new("/nonexistent")),
    })
}

/// `libnvrtc-builtins.so.*` in the directory of `nvrtc` (not the `.alt` variant).
fn builtins_beside(nvrtc: &Path) -> Vec<PathBuf> {
    let Some(dir) = nvrtc.parent() else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so"))
        })
        .collect();
    found.sort();
    found.truncate(1);
    found
}

/// Keeps the libraries loaded by path alive for the whole process.
static PRELOADED: OnceLock<std::result::Result<Toolkit, String>> = OnceLock::new();

/// The toolkit with NVRTC loaded, ready for cudarc's `nvrtc` module; an error saying what was
/// searched when NVRTC is not there.
///
/// NVRTC is opened by its full path first. Its SONAME (`libnvrtc.so.13`) is one of the names cudarc
/// then asks the loader for, and the loader answers with the library already loaded, so no
/// `LD_LIBRARY_PATH` is needed.
pub fn nvrtc() -> Result<Toolkit> {
    PRELOADED
        .get_or_init(|| {
            let toolkit = locate().map_err(|e| e.to_string())?;
            if let Some(lib) = &toolkit.nvrtc_lib {
                // NVRTC opens its builtins library by name at the first compile: load it from the
                // same directory first, for the same reason.
                let mut libs = builtins_beside(lib);
                libs.push(lib.clone());
                for lib in libs {
                    // SAFETY: loading NVRTC runs its initialisers, which have no preconditions;
                    // the handle is leaked so the library stays mapped for the process's lifetime.
                    let handle = unsafe { libloading::Library::new(&lib) }
                        .map_err(|e| format!("could not load {}: {e}", lib.display()))?;
                    std::mem::forget(handle);
                }
            }
            // SAFETY: only probes whether one of cudarc's candidate names loads.
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                Ok(toolkit)
            } else {
                Err(format!(
                    "NVRTC not found: set PTM_CUDA_HOME to a CUDA toolkit, run `cargo xtask fetch \
                     cuda-nvrtc`, or install CUDA under /usr/local/cuda (searched {})",
                    candidate_roots()
                        .iter()
                        .map(|(p, _)| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        })
        .clone()
        .map_err(Error::Unavailable)
}

/// Ok when the CUDA driver library loads; an error naming it otherwise. Says nothing about
/// whether a GPU is present (that is `cuInit`'s answer, see [`crate::Device::new`]).
pub fn driver() -> Result<()> {
    // SAFETY: only probes whether one of cudarc's candidate names for libcuda loads.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::Unavailable(
            "the CUDA driver (libcuda.so) is not installed on this machine".into(),
        ))
    }
}
