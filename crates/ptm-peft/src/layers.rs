//! The modules PEFT puts into a model: a linear layer carrying named adapters (LoRA, IA³, a
//! trainable copy), and a slot after a sub-layer carrying bottleneck adapters. Each reads the
//! model's active adapter at every forward, so switching adapters never rebuilds the model.

use crate::error::Result;
use ptm_nn::{apply_weight, Activation, Dropout, Linear, Module, Param, WeightLayout};
use ptm_tensor::Tensor;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The name of the adapter in use, shared by every PEFT module of one model (`None`: the base
/// model alone).
pub(crate) type Active = Arc<RwLock<Option<String>>>;

pub(crate) fn active_name(active: &Active) -> Option<String> {
    active.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// LoRA on one linear layer: `(α/r)·B·A·dropout(x)` added to the layer's output.
pub(crate) struct Lora {
    /// `[r, in]`.
    pub a: Param,
    /// `[out, r]`.
    pub b: Param,
    pub scaling: f64,
    pub dropout: Dropout,
}

impl Lora {
    fn delta(&self, x: &Tensor, train: bool) -> ptm_nn::Result<Tensor> {
        let x = self.dropout.forward(x, train)?;
        // Scale the rank-r intermediate, not the output: one small tensor instead of a second
        // output-sized one kept for the backward.
        let h =
            apply_weight(&x, &self.a.tensor(), WeightLayout::OutIn)?.mul_scalar(self.scaling)?;
        apply_weight(&h, &self.b.tensor(), WeightLayout::OutIn)
    }

    /// `scaling·B·A` in the base weight's layout.
    fn weight_delta(&self, layout: WeightLayout) -> Result<Tensor> {
        let d = self
            .b
            .tensor()
            .matmul(&self.a.tensor())?
            .mul_scalar(self.scaling)?;
        Ok(match layout {
            WeightLayout::OutIn => d,
            WeightLayout::InOut => d.t()?.contiguous()?,
        })
    }
}

/// IA³ on one linear layer: a learned vector scaling the output (`[out, 1]`) or, for
/// feed-forward layers, the input (`[1, in]`).
pub(crate) struct Ia3 {
    pub l: Param,
    pub feedforward: bool,
}

impl Ia3 {
    fn vector(&self) -> ptm_tensor::Result<Tensor> {
        let l = self.l.tensor();
        let n = l.elem_count();
        l.reshape([n])
    }
}

/// One adapter's part in one linear layer.
pub(crate) enum LinearAdapter {
    Lora(Lora),
    Ia3(Ia3),
    /// `modules_to_save`: a trainable copy used instead of the (frozen) original.
    Copy(Linear),
}

/// A linear layer of the base model with the adapters that touch it.
pub struct PeftLinear {
    pub(crate) base: Linear,
    pub(crate) adapters: RwLock<BTreeMap<String, LinearAdapter>>,
    /// Adapters whose change is currently folded into the base weight.
    pub(crate) merged: RwLock<Vec<String>>,
    pub(crate) active: Active,
}

impl PeftLinear {
    pub(crate) fn new(base: Linear, active: Active) -> PeftLinear {
        PeftLinear {
            base,
            adapters: RwLock::new(BTreeMap::new()),
            merged: RwLock::new(vec![]),
            active,
        }
    }

    pub(crate) fn adapters(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, LinearAdapter>> {
        self.adapters.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, name: &str, adapter: LinearAdapter) {
        self.adapters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), adapter);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.adapters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub(crate) fn is_merged(&self, name: &str) -> bool {
        self.merged
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|n| n == name)
    }

    /// Folds adapter `name` into the base weight (LoRA: `W += scaling·B·A`; IA³: rows or
    /// columns of `W` scaled). Copies and already merged adapters are left as they are.
    pub(crate) fn merge(&self, name: &str) -> Result<()> {
        if self.is_merged(name) {
            return Ok(());
        }
        let adapters = self.adapters();
        let Some(adapter) = adapters.get(name) else {
            return Ok(());
        };
        let (w, layout) = (self.base.weight(), self.base.layout());
        match adapter {
            LinearAdapter::Lora(l) => w.set(w.tensor().add(&l.weight_delta(layout)?)?)?,
            LinearAdapter::Ia3(v) => self.scale_weight(v, false)?,
            LinearAdapter::Copy(_) => return Ok(()),
        }
        self.merged
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
        Ok(())
    }

    /// Takes a merged adapter back out of the base weight.
    pub(crate) fn unmerge(&self, name: &str) -> Result<()> {
        if !self.is_merged(name) {
            return Ok(());
        }
        let adapters = self.adapters();
        let (w, layout) = (self.base.weight(), self.base.layout());
        match adapters.get(name) {
            Some(LinearAdapter::Lora(l)) => w.set(w.tensor().sub(&l.weight_delta(layout)?)?)?,
            Some(LinearAdapter::Ia3(v)) => self.scale_weight(v, true)?,
            _ => {}
        }
        self.merged
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != name);
        Ok(())
    }

    /// Multiplies (or divides, to unmerge) the base weight by an IA³ vector along its input or
    /// output axis; an output scaling scales the bias too, as the unmerged layer does.
    fn scale_weight(&self, v: &Ia3, divide: bool) -> Result<()> {
        let l = v.vector()?;
        let l = if divide {
            Tensor::ones_like(&l)?.div(&l)?
        } else {
            l
        };
        let n = l.elem_count();
        // The weight axis the vector runs along: inputs for feed-forward layers, else outputs.
        let along_rows = match (self.base.layout(), v.feedforward) {
            (WeightLayout::OutIn, false) | (WeightLayout::InOut, true) => true,
            (WeightLayout::OutIn, true) | (WeightLayout::InOut, false) => false,
        };
        let shaped = if along_rows {
            l.reshape([n, 1])?
        } else {
            l.reshape([1, n])?
        };
        let w = self.base.weight();
        w.set(w.tensor().mul(&shaped)?)?;
        if !v.feedforward {
            if let Some(b) = self.base.bias() {
                b.set(b.tensor().mul(&l)?)?;
            }
        }
        Ok(())
    }
}

impl Module for PeftLinear {
    fn forward(&self, x: &Tensor, train: bool) -> ptm_nn::Result<Tensor> {
        // Borrow the active name (no allocation per layer per step).
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        let Some(name) = active.as_deref() else {
            return self.base.forward(x, train);
        };
        let adapters = self.adapters();
        let adapter = match adapters.get(name) {
            Some(a) if !self.is_merged(name) => a,
            _ => return self.base.forward(x, train),
        };
        match adapter {
            LinearAdapter::Copy(copy) => copy.forward(x, train),
            LinearAdapter::Lora(l) => {
                let y = self.base.forward(x, train)?;
                Ok(y.add(&l.delta(x, train)?)?)
            }
            LinearAdapter::Ia3(v) => {
                let l = v.vector()?;
                if v.feedforward {
                    self.base.forward(&x.mul(&l)?, train)
                } else {
                    Ok(self.base.forward(x, train)?.mul(&l)?)
                }
            }
        }
    }
}

/// A bottleneck adapter: `h + up(act(down(h)))`.
pub(crate) struct Bottleneck {
    pub down: Linear,
    pub up: Linear,
    pub act: Activation,
}

impl Module for Bottleneck {
    fn forward(&self, h: &Tensor, train: bool) -> ptm_nn::Result<Tensor> {
        let z = self.down.forward(h, train)?;
        let z = self.up.forward(&self.act.forward(&z, train)?, train)?;
        Ok(h.add(&z)?)
    }
}

/// The place after one sub-layer of one block where bottleneck adapters go.
pub struct PeftSlot {
    pub(crate) adapters: RwLock<BTreeMap<String, Bottleneck>>,
    pub(crate) active: Active,
}

impl PeftSlot {
    pub(crate) fn insert(&self, name: &str, adapter: Bottleneck) {
        self.adapters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), adapter);
    }
}

impl Module for PeftSlot {
    fn forward(&self, x: &Tensor, train: bool) -> ptm_nn::Result<Tensor> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        let Some(name) = active.as_deref() else {
            return Ok(x.clone());
        };
        let adapters = self.adapters.read().unwrap_or_else(|e| e.into_inner());
        match adapters.get(name) {
            Some(a) => a.forward(x, train),
            None => Ok(x.clone()),
        }
    }
}
