//! Parameters: named, shared, replaceable tensors, and the store that lists a model's parameters.
//!
//! Tensors are immutable values, so a parameter is a slot holding the current one. Layers read the
//! slot at each forward; an optimizer computes the next value and puts it back. A trainable
//! parameter holds a variable (`as_var`), a frozen one a plain tensor, so gradients flow only where
//! training is wanted.

use crate::error::{invalid, Error, Result};
use ptm_tensor::Tensor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

struct ParamInner {
    value: RwLock<Tensor>,
    trainable: AtomicBool,
}

/// A shared slot holding one parameter tensor. Clones share the slot (weight tying is a clone).
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.tensor();
        write!(
            f,
            "Param[{:?}, {:?}, trainable: {}]",
            t.dims(),
            t.dtype(),
            self.is_trainable()
        )
    }
}

impl Param {
    /// A parameter holding `value`; trainable parameters record gradients.
    pub fn new(value: Tensor, trainable: bool) -> Param {
        let value = if trainable {
            value.detach().as_var()
        } else {
            value.detach()
        };
        Param(Arc::new(ParamInner {
            value: RwLock::new(value),
            trainable: AtomicBool::new(trainable),
        }))
    }

    /// The current value (a cheap handle).
    pub fn tensor(&self) -> Tensor {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether gradients are recorded for this parameter.
    pub fn is_trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes or unfreezes the parameter.
    pub fn set_trainable(&self, trainable: bool) {
        self.0.trainable.store(trainable, Ordering::Relaxed);
        let t = self.tensor();
        self.put(t);
    }

    /// Replaces the value; shape and dtype must stay the same.
    pub fn set(&self, value: Tensor) -> Result<()> {
        let old = self.tensor();
        if old.dims() != value.dims() || old.dtype() != value.dtype() {
            return Err(invalid(
                "Param::set",
                format!(
                    "new value {:?} {:?} differs from the parameter's {:?} {:?}",
                    value.dims(),
                    value.dtype(),
                    old.dims(),
                    old.dtype()
                ),
            ));
        }
        self.put(value);
        Ok(())
    }

    /// Changes the values of an f32 parameter on the CPU through `update`. The buffer is changed
    /// in place when only this slot reaches it (drop the loss, and with it the autograd graph,
    /// before stepping), else a copy is changed and put in the slot; either way every earlier
    /// handle keeps the values it saw.
    pub fn update_f32(&self, update: impl FnOnce(&mut [f32])) -> Result<()> {
        let mut slot = self.0.value.write().unwrap_or_else(|e| e.into_inner());
        let (dims, device, dtype) = (slot.dims().to_vec(), slot.device(), slot.dtype());
        if !matches!(device, ptm_tensor::Device::Cpu) || dtype != ptm_tensor::DType::F32 {
            return Err(invalid(
                "Param::update_f32",
                format!("the parameter is {dtype:?} on {device}; this updates f32 on the CPU"),
            ));
        }
        let empty = Tensor::from_vec(Vec::<f32>::new(), [0], &device)?;
        let current = std::mem::replace(&mut *slot, empty);
        let mut values = match current.try_unwrap_vec::<f32>() {
            Ok(v) => v,
            Err(shared) => match shared.to_vec::<f32>() {
                Ok(v) => v,
                Err(e) => {
                    *slot = shared;
                    return Err(e.into());
                }
            },
        };
        update(&mut values);
        // A CPU tensor of the right length: `from_vec` cannot fail here.
        let t = Tensor::from_vec(values, dims.as_slice(), &device)?;
        *slot = if self.is_trainable() { t.as_var() } else { t };
        Ok(())
    }

    fn put(&self, value: Tensor) {
        let value = if self.is_trainable() {
            value.detach().as_var()
        } else {
            value.detach()
        };
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Whether two handles share one slot (tied weights).
    pub fn same_as(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The parameters of a model by full path (`transformer.h.0.attn.c_attn.weight`), in the order the
/// model created them. Clones share the list.
#[derive(Clone, Default)]
pub struct ParamStore(Arc<Mutex<Vec<(String, Param)>>>);

impl ParamStore {
    /// An empty store.
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<(String, Param)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `param` under `name`. A name registered before returns the earlier parameter if the
    /// shapes agree (so a layer built twice shares weights), and an error if they do not.
    pub fn insert(&self, name: &str, param: Param) -> Result<Param> {
        let mut list = self.list();
        if let Some((_, p)) = list.iter().find(|(n, _)| n == name) {
            let (first, second) = (p.tensor().dims().to_vec(), param.tensor().dims().to_vec());
            if first != second {
                return Err(Error::DuplicateParam {
                    name: name.to_string(),
                    first,
                    second,
                });
            }
            return Ok(p.clone());
        }
        list.push((name.to_string(), param.clone()));
        Ok(param)
    }

    /// The parameter at `name`.
    pub fn get(&self, name: &str) -> Option<Param> {
        self.list()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
    }

    /// All parameters, in creation order.
    pub fn all(&self) -> Vec<(String, Param)> {
        self.list().clone()
    }

    /// The trainable parameters, in creation order.
    pub fn trainable(&self) -> Vec<(String, Param)> {
        self.all()
            .into_iter()
            .filter(|(_, p)| p.is_trainable())
            .collect()
    }

    /// Number of scalar elements: `(trainable, all)`.
    pub fn counts(&self) -> (usize, usize) {
        self.all().iter().fold((0, 0), |(t, a), (_, p)| {
            let n = p.tensor().elem_count();
            (t + if p.is_trainable() { n } else { 0 }, a + n)
        })
    }

    /// Keeps only the parameters whose name `keep` accepts (dropping an unloaded adapter's).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.list().retain(|(n, _)| keep(n));
    }

    /// Freezes every parameter whose name `pred` accepts.
    pub fn freeze_where(&self, pred: impl Fn(&str) -> bool) {
        for (n, p) in self.all() {
            if pred(&n) {
                p.set_trainable(false);
            }
        }
    }

    /// Moves every parameter to `device` (trainable ones stay trainable; tied parameters share
    /// one slot, so they move once).
    pub fn to_device(&self, device: &ptm_tensor::Device) -> Result<()> {
        for (_, p) in self.all() {
            let t = p.tensor();
            if t.device() != *device {
                p.set(t.to_device(device)?)?;
            }
        }
        Ok(())
    }

    /// Writes every parameter to a safetensors file (atomically), under its full name.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let all = self.all();
        let tensors: Vec<(String, Tensor)> =
            all.iter().map(|(n, p)| (n.clone(), p.tensor())).collect();
        ptm_tensor::safetensors::save(tensors.iter().map(|(n, t)| (n.as_str(), t)), path)?;
        Ok(())
    }
}
