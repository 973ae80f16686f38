//! `PeftHooks`: the `ptm_nn::Hooks` implementation that places a [`PeftLinear`] around every
//! linear layer and a [`PeftSlot`] after every sub-layer while the model is built, and remembers
//! them, so adapters can be added, switched and removed later without rebuilding the model.

use crate::layers::{active_name, Active, PeftLinear, PeftSlot};
use crate::prefix::Prefix;
use crate::targets::ModuleName;
use ptm_nn::{Hooks, Linear, Module, ParamStore, SharedRng, SubLayer, VarBuilder};
use ptm_tensor::Tensor;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A linear layer as registered: its names and the wrapper.
pub(crate) struct LinearEntry {
    pub name: ModuleName,
    pub layer: Arc<PeftLinear>,
}

/// A sub-layer slot as registered: the block's path, which sub-layer, the model width.
pub(crate) struct SlotEntry {
    pub block: String,
    pub which: SubLayer,
    pub hidden: usize,
    pub slot: Arc<PeftSlot>,
}

#[derive(Default)]
pub(crate) struct Registry {
    pub linears: Vec<LinearEntry>,
    pub slots: Vec<SlotEntry>,
    pub prefixes: BTreeMap<String, Arc<Prefix>>,
    pub store: Option<ParamStore>,
    pub dropout_rng: Option<SharedRng>,
}

/// Hooks that make a model adaptable. Build the model with them (through
/// `Checkpoint::from_pretrained(dir, dtype, Some(hooks))`), then hand both to
/// [`crate::PeftModel::new`]. With no adapter active the model computes exactly the base model.
pub struct PeftHooks {
    pub(crate) active: Active,
    alias: fn(&str) -> Option<String>,
    registry: Mutex<Registry>,
}

impl PeftHooks {
    /// Hooks for a model whose modules may have a second name (`alias`, from
    /// `Architecture::module_alias`).
    pub fn new(alias: fn(&str) -> Option<String>) -> Arc<PeftHooks> {
        Arc::new(PeftHooks {
            active: Arc::default(),
            alias,
            registry: Mutex::default(),
        })
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The adapter in use.
    pub fn active(&self) -> Option<String> {
        active_name(&self.active)
    }

    pub(crate) fn set_active(&self, name: Option<String>) {
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = name;
    }

    fn active_prefix(&self) -> Option<Arc<Prefix>> {
        let name = self.active()?;
        self.registry().prefixes.get(&name).cloned()
    }

    fn remember(&self, vb: &VarBuilder) {
        let mut r = self.registry();
        if r.store.is_none() {
            r.store = Some(vb.store());
            r.dropout_rng = Some(vb.dropout_rng());
        }
    }
}

impl Hooks for PeftHooks {
    fn wrap_linear(
        &self,
        path: &str,
        linear: Linear,
        vb: &VarBuilder,
    ) -> ptm_nn::Result<Box<dyn Module>> {
        self.remember(vb);
        let layer = Arc::new(PeftLinear::new(linear, self.active.clone()));
        self.registry().linears.push(LinearEntry {
            name: ModuleName {
                path: path.to_string(),
                alias: (self.alias)(path),
            },
            layer: layer.clone(),
        });
        Ok(Box::new(layer))
    }

    fn after_sublayer(
        &self,
        path: &str,
        which: SubLayer,
        hidden: usize,
        vb: &VarBuilder,
    ) -> ptm_nn::Result<Option<Box<dyn Module>>> {
        self.remember(vb);
        let slot = Arc::new(PeftSlot {
            adapters: Default::default(),
            active: self.active.clone(),
        });
        self.registry().slots.push(SlotEntry {
            block: path.to_string(),
            which,
            hidden,
            slot: slot.clone(),
        });
        Ok(Some(Box::new(slot)))
    }

    fn prefix_kv(&self, layer: usize, _train: bool) -> ptm_nn::Result<Option<(Tensor, Tensor)>> {
        match self.active_prefix() {
            Some(p) if layer < p.layers => Ok(Some(p.layer_kv(layer)?)),
            _ => Ok(None),
        }
    }

    fn num_prefix_tokens(&self) -> usize {
        self.active_prefix().map_or(0, |p| p.tokens)
    }
}
