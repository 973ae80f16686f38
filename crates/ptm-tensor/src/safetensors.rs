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

fn encode(t: &Tensor) -> Bytes {
    let data = with_vec!(&t.contiguous_storage(), v => {
        let mut out = Vec::with_capacity(v.len() * t.dtype().size_in_bytes());
        v.iter().for_each(|x| x.put(&mut out));
        out
    });
    Bytes {
        dtype: to_st(t.dtype()),
        shape: t.dims().to_vec(),
        data,
    }
}

fn decode<T: WithDType + LeBytes>(b: &[u8]) -> Vec<T> {
    b.chunks_exact(T::N).map(T::get).collect()
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
        .map(|(n, t)| (n.to_string(), encode(t)))
        .collect();
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
        let (shape, b) = (view.shape().to_vec(), view.data());
        let storage = match view.dtype() {
            StDtype::F32 => CpuStorage::F32(decode(b)),
            StDtype::F64 => CpuStorage::F64(decode(b)),
            StDtype::F16 => CpuStorage::F16(decode(b)),
            StDtype::BF16 => CpuStorage::BF16(decode(b)),
            StDtype::U32 => CpuStorage::U32(decode(b)),
            StDtype::I64 => CpuStorage::I64(decode(b)),
            other => {
                return Err(st_err(
                    path,
                    format!("tensor '{name}' has dtype {other:?}, which ptm does not hold"),
                ))
            }
        };
        let t = Tensor::from_vec_storage(storage, shape)
            .map_err(|e| st_err(path, format!("tensor '{name}': {e}")))?;
        out.insert(name, t);
    }
    Ok(out)
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
