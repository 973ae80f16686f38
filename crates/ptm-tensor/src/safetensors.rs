//! Reading and writing tensors in the safetensors format (the Hugging Face weight files).

use crate::dtype::WithDType;
use crate::error::{Error, Result};
use crate::storage::{with_vec, CpuStorage};
use crate::{DType, Tensor};
use safetensors::tensor::{Dtype as StDtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

fn st_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Safetensors {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn to_st(dtype: DType) -> StDtype {
    match dtype {
        DType::F32 => StDtype::F32,
        DType::F64 => StDtype::F64,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::U32 => StDtype::U32,
        DType::I64 => StDtype::I64,
    }
}

/// Little-endian bytes of a tensor, as safetensors stores them.
struct Bytes {
    dtype: StDtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for Bytes {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

trait LeBytes: Sized {
    const N: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}
macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const N: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le_bytes!(f32, f64, half::f16, half::bf16, u32, i64);

fn encode(t: &Tensor) -> Result<Bytes> {
    let data = with_vec!(&*t.host_storage_view()?, v => {
        let mut out = Vec::with_capacity(v.len() * t.dtype().size_in_bytes());
        v.iter().for_each(|x| x.put(&mut out));
        out
    });
    Ok(Bytes {
        dtype: to_st(t.dtype()),
        shape: t.dims().to_vec(),
        data,
    })
}

/// Bytes decoded between two calls of the release callback (a multiple of every element size).
const CHUNK: usize = 8 << 20;

/// Decodes `b` in chunks, calling `release(offset, len)` after each so a mapped source can drop
/// the pages it no longer needs.
fn decode<T: WithDType + LeBytes>(b: &[u8], release: &mut dyn FnMut(usize, usize)) -> Vec<T> {
    let mut out = Vec::with_capacity(b.len() / T::N);
    for (i, chunk) in b.chunks(CHUNK).enumerate() {
        out.extend(chunk.chunks_exact(T::N).map(T::get));
        release(i * CHUNK, chunk.len());
    }
    out
}

/// Writes named tensors to `path`. The file appears whole or not at all: it is written beside the
/// target and renamed into place.
pub fn save<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let data: Vec<(String, Bytes)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n.to_string(), encode(t)?)))
        .collect::<Result<_>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _)) = data.iter().find(|(n, _)| !seen.insert(n.clone())) {
        return Err(st_err(path, format!("tensor name '{dup}' given twice")));
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    safetensors::tensor::serialize_to_file(data, None, &tmp)
        .map_err(|e| st_err(path, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads every tensor of a safetensors file, by name.
pub fn load(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_from_bytes(&bytes, path)
}

/// Parses a safetensors buffer; `path` only names the source in errors.
pub fn load_from_bytes(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_err(path, e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let t = decode_tensor(
            view.dtype(),
            view.shape(),
            view.data(),
            &name,
            path,
            &mut |_, _| {},
        )?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Copies one tensor's little-endian bytes into owned storage.
fn decode_tensor(
    dtype: StDtype,
    shape: &[usize],
    b: &[u8],
    name: &str,
    path: &Path,
    release: &mut dyn FnMut(usize, usize),
) -> Result<Tensor> {
    let storage = match dtype {
        StDtype::F32 => CpuStorage::F32(decode(b, release)),
        StDtype::F64 => CpuStorage::F64(decode(b, release)),
        StDtype::F16 => CpuStorage::F16(decode(b, release)),
        StDtype::BF16 => CpuStorage::BF16(decode(b, release)),
        StDtype::U32 => CpuStorage::U32(decode(b, release)),
        StDtype::I64 => CpuStorage::I64(decode(b, release)),
        other => {
            return Err(st_err(
                path,
                format!("tensor '{name}' has dtype {other:?}, which ptm does not hold"),
            ))
        }
    };
    Tensor::from_vec_storage(storage, shape.to_vec())
        .map_err(|e| st_err(path, format!("tensor '{name}': {e}")))
}

/// The shape and dtype of one tensor in a file, read from the header alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMeta {
    /// Dims as stored.
    pub shape: Vec<usize>,
    /// The dtype on disk, or `None` for a dtype ptm does not hold (e.g. int8).
    pub dtype: Option<DType>,
}

/// A safetensors file mapped into memory: the header is parsed and checked once, and tensors are
/// copied out one at a time on request.
///
/// Each tensor's pages are released from the process after it is copied out, so loading a whole
/// model peaks near the size of the weights rather than twice it.
pub struct MappedFile {
    path: std::path::PathBuf,
    mmap: memmap2::Mmap,
    data_start: usize,
    meta: safetensors::tensor::Metadata,
}

impl MappedFile {
    /// Maps `path` and validates its header (names, dtypes, shapes, offsets within the file).
    pub fn open(path: impl AsRef<Path>) -> Result<MappedFile> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io_err)?;
        // SAFETY: the map is read-only and private. Another process truncating or rewriting the file
        // while it is mapped is outside what Rust can guard (the caveat of every mmap reader); ptm
        // itself never writes a file it has mapped (saves go to a temporary file and rename).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        // Full validation (offsets inside the buffer, no overlaps) reads only the header.
        SafeTensors::deserialize(&mmap).map_err(|e| st_err(&path, e.to_string()))?;
        let (header_len, meta) =
            SafeTensors::read_metadata(&mmap).map_err(|e| st_err(&path, e.to_string()))?;
        Ok(MappedFile {
            path,
            mmap,
            data_start: 8 + header_len,
            meta,
        })
    }

    /// The file this maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor name in the file, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.meta.tensors().into_keys().collect();
        names.sort();
        names
    }

    /// Shape and dtype of `name`, or `None` if the file has no such tensor.
    pub fn meta(&self, name: &str) -> Option<TensorMeta> {
        self.meta.info(name).map(|info| TensorMeta {
            shape: info.shape.clone(),
            dtype: from_st(info.dtype),
        })
    }

    /// Copies tensor `name` out of the map (in its stored dtype), dropping its pages from memory
    /// chunk by chunk as they are copied, so the load holds at most one chunk of the file.
    pub fn load(&self, name: &str) -> Result<Tensor> {
        let info = self
            .meta
            .info(name)
            .ok_or_else(|| st_err(&self.path, format!("no tensor named '{name}'")))?;
        let (start, end) = info.data_offsets;
        let (start, end) = (self.data_start + start, self.data_start + end);
        let mmap = &self.mmap;
        let mut release = |offset: usize, len: usize| {
            #[cfg(unix)]
            if len > 0 {
                // SAFETY: MADV_DONTNEED on a private read-only file mapping only drops the pages
                // from this process; the next access re-reads the same bytes from the file. The
                // chunk was copied out before this call and no reference into it is held.
                let _ = unsafe {
                    mmap.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start + offset,
                        len,
                    )
                };
            }
            #[cfg(not(unix))]
            let _ = (offset, len);
        };
        decode_tensor(
            info.dtype,
            &info.shape,
            &mmap[start..end],
            name,
            &self.path,
            &mut release,
        )
    }
}

fn from_st(dtype: StDtype) -> Option<DType> {
    Some(match dtype {
        StDtype::F32 => DType::F32,
        StDtype::F64 => DType::F64,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::U32 => DType::U32,
        StDtype::I64 => DType::I64,
        _ => return None,
    })
}

impl Tensor {
    fn from_vec_storage(storage: CpuStorage, shape: Vec<usize>) -> Result<Tensor> {
        let shape: crate::Shape = shape.into();
        if storage.len() != shape.elem_count() {
            return Err(Error::BadShape {
                op: "safetensors",
                shape,
                msg: format!("{} elements stored", storage.len()),
            });
        }
        Ok(Tensor::from_storage(storage, shape, None))
    }
}
