//! Kernel sources to PTX with NVRTC, with an on-disk PTX cache.
//!
//! Every source in `kernels/` is compiled with the shared prelude (`kernels/common.cuh`) in front
//! and a `#line` directive after it, so NVRTC's messages name the right file and line.

use crate::error::{Error, Result};
use crate::sources::{KernelSource, PRELUDE};
use crate::toolkit;
use std::ffi::CString;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// The output of one NVRTC compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The PTX text.
    pub ptx: String,
    /// NVRTC's log: empty when the source compiled without a warning.
    pub log: String,
}

/// The full program text NVRTC sees for `source`.
pub fn program_text(source: &KernelSource) -> String {
    format!("{PRELUDE}\n#line 1 \"{}\"\n{}", source.file, source.code)
}

/// NVRTC's options for a virtual architecture such as `compute_90`.
pub fn options(arch: &str, toolkit: &toolkit::Toolkit) -> Vec<String> {
    let mut opts = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        // Precise division and square roots, no flush of denormals: the CPU path's semantics.
        "--ftz=false".to_string(),
        "--prec-div=true".to_string(),
        "--prec-sqrt=true".to_string(),
        "--fmad=true".to_string(),
        "--generate-line-info".to_string(),
        "--extra-device-vectorization".to_string(),
    ];
    for dir in &toolkit.include_dirs {
        opts.push(format!("--include-path={}", dir.display()));
    }
    opts
}

/// NVRTC's version, e.g. (13, 0).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    toolkit::nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked above); the pointers are to live locals.
    let rc = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if rc != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::Unavailable(format!("nvrtcVersion failed: {rc:?}")));
    }
    Ok((major, minor))
}

fn log_text(raw: Vec<std::ffi::c_char>) -> String {
    let bytes: Vec<u8> = raw
        .into_iter()
        .map(|c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Compiles `source` for `arch` (a virtual architecture, `compute_80`...) without the disk cache.
/// An error carries NVRTC's log; warnings come back in [`Compiled::log`].
pub fn compile_uncached(source: &KernelSource, arch: &str) -> Result<Compiled> {
    let toolkit = toolkit::nvrtc()?;
    let text = CString::new(program_text(source))
        .map_err(|_| Error::Invalid(format!("{} contains a NUL byte", source.file)))?;
    let name = CString::new(source.file).expect("kernel file names have no NUL");
    let prog = cudarc::nvrtc::result::create_program(text.as_c_str(), Some(name.as_c_str()))
        .map_err(|e| Error::Unavailable(format!("nvrtcCreateProgram({}): {e:?}", source.file)))?;
    let opts = options(arch, &toolkit);
    // SAFETY: `prog` was just created and is destroyed once, below; `text` and `name` outlive it.
    let compiled = unsafe { cudarc::nvrtc::result::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { cudarc::nvrtc::result::get_program_log(prog) }
        .map(log_text)
        .unwrap_or_default();
    let ptx = match compiled {
        Ok(()) => {
            // SAFETY: as above; the program compiled.
            unsafe { cudarc::nvrtc::result::get_ptx(prog) }
                .map(log_text)
                .map_err(|e| Error::Unavailable(format!("nvrtcGetPTX({}): {e:?}", source.file)))
        }
        Err(_) => Err(Error::Compile {
            source_name: source.file.to_string(),
            arch: arch.to_string(),
            log: log.clone(),
        }),
    };
    // SAFETY: `prog` is live and not used after this.
    let _ = unsafe { cudarc::nvrtc::result::destroy_program(prog) };
    Ok(Compiled { ptx: ptx?, log })
}

fn cache_path(source: &KernelSource, arch: &str) -> Result<PathBuf> {
    let version = nvrtc_version()?;
    let toolkit = toolkit::nvrtc()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (program_text(source), options(arch, &toolkit), version).hash(&mut h);
    let stem = source.file.trim_end_matches(".cu");
    Ok(toolkit::cache_dir()
        .join("cuda-ptx")
        .join(format!("{stem}-{arch}-{:016x}.ptx", h.finish())))
}

/// Compiles `source` for `arch`, reading and writing the PTX cache under the ptm cache
/// (`cuda-ptx/`). The cache key covers the program text, the options and NVRTC's version; files
/// are written to a temporary name and renamed, so a concurrent reader never sees half a file.
/// A cache that cannot be written is not an error: the PTX is still returned.
pub fn compile(source: &KernelSource, arch: &str) -> Result<String> {
    let path = cache_path(source, arch)?;
    if let Ok(ptx) = std::fs::read_to_string(&path) {
        if ptx.contains(".entry") {
            return Ok(ptx);
        }
    }
    let compiled = compile_uncached(source, arch)?;
    if let Some(dir) = path.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled.ptx).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
    Ok(compiled.ptx)
}

/// Runs `ptxas -v` on `ptx` for a real architecture (`sm_80`...) and returns its report, one
/// [`RegisterReport`] per kernel. `None` when no ptxas was found.
pub fn ptxas_report(ptx: &str, sm: &str) -> Result<Option<Vec<RegisterReport>>> {
    let toolkit = toolkit::locate()?;
    let Some(ptxas) = toolkit.ptxas else {
        return Ok(None);
    };
    let dir = std::env::temp_dir().join(format!("ptm-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
    let input = dir.join("k.ptx");
    std::fs::write(&input, ptx).map_err(|e| Error::Invalid(format!("{}: {e}", input.display())))?;
    let out = std::process::Command::new(&ptxas)
        .arg(format!("-arch={sm}"))
        .arg("-v")
        .arg(&input)
        .arg("-o")
        .arg(dir.join("k.cubin"))
        .output()
        .map_err(|e| Error::Unavailable(format!("could not run {}: {e}", ptxas.display())))?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(Error::Compile {
            source_name: "ptxas".into(),
            arch: sm.into(),
            log: text,
        });
    }
    Ok(Some(parse_ptxas(&text)))
}

/// One kernel's line of a `ptxas -v` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterReport {
    /// The kernel's name.
    pub kernel: String,
    /// Registers per thread.
    pub registers: u32,
    /// Bytes of spill stores.
    pub spill_stores: u32,
    /// Bytes of spill loads.
    pub spill_loads: u32,
    /// Static shared memory in bytes.
    pub shared: u32,
}

fn number_before(text: &str, unit: &str) -> u32 {
    text.split(',')
        .find_map(|part| {
            let part = part.trim();
            part.strip_suffix(unit)
                .and_then(|n| n.split_whitespace().last())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads `ptxas -v` output: a "Compiling entry function 'k'" line, then lines with
/// "N bytes spill stores, M bytes spill loads" and "Used R registers, ... S bytes smem".
pub fn parse_ptxas(text: &str) -> Vec<RegisterReport> {
    let mut out: Vec<RegisterReport> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let kernel = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(RegisterReport {
                kernel,
                registers: 0,
                spill_stores: 0,
                spill_loads: 0,
                shared: 0,
            });
        } else if let Some(last) = out.last_mut() {
            let body = line.split("info    :").last().unwrap_or(line);
            if body.contains("spill stores") {
                last.spill_stores = number_before(body, "bytes spill stores");
                last.spill_loads = number_before(body, "bytes spill loads");
            }
            if body.contains("Used") && body.contains("registers") {
                last.registers = body
                    .split("Used")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                last.shared = number_before(body, "bytes smem");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ptxas_report() {
        let text = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'softmax_f32' for 'sm_80'\n\
            ptxas info    : Function properties for softmax_f32\n\
                0 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 32 registers, used 1 barriers, 1024 bytes smem, 380 bytes cmem[0]\n\
            ptxas info    : Compiling entry function 'k2' for 'sm_80'\n\
            ptxas info    : Function properties for k2\n\
                0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Used 255 registers, used 0 barriers, 356 bytes cmem[0]\n";
        let r = parse_ptxas(text);
        assert_eq!(
            r,
            vec![
                RegisterReport {
                    kernel: "softmax_f32".into(),
                    registers: 32,
                    spill_stores: 8,
                    spill_loads: 12,
                    shared: 1024
                },
                RegisterReport {
                    kernel: "k2".into(),
                    registers: 255,
                    spill_stores: 0,
                    spill_loads: 0,
                    shared: 0
                },
            ]
        );
    }

    #[test]
    fn program_text_names_the_file_for_nvrtc_messages() {
        let src = KernelSource {
            file: "x.cu",
            code: "int y;",
        };
        let text = program_text(&src);
        assert!(text.ends_with("#line 1 \"x.cu\"\nint y;"));
    }
}
