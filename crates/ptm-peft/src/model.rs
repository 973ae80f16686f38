//! `PeftModel`: a base model with named adapters, in PEFT's file format.
//!
//! The base model's parameters are frozen; each adapter's parameters join the model's
//! `ParamStore` under PEFT's in-memory names (`transformer.h.0.attn.c_attn.lora_A.default.weight`),
//! and only the active adapter's are trainable, so `ptm-train` trains an adapter exactly as it
//! trains a full model. Files use PEFT's names: `adapter_model.safetensors` holds
//! `base_model.model.<module>.lora_A.weight`, … and `adapter_config.json` PEFT's keys.

use crate::config::{LoraBias, PeftConfig, PeftKind, Placement};
use crate::error::{adapter_err, config_err, io_err, Error, Result};
use crate::hooks::PeftHooks;
use crate::layers::{Bottleneck, Ia3, LinearAdapter, Lora};
use crate::prefix::{Prefix, PrefixSource};
use crate::targets::{default_targets, layer_index, no_match, Matcher, ModuleName};
use ptm_models::{Architecture, Checkpoint};
use ptm_nn::{Activation, Dropout, Init, Linear, Param, SubLayer, WeightLayout};
use ptm_tensor::{DType, Rng, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// The prefix of every module name in PEFT's adapter files.
pub const FILE_PREFIX: &str = "base_model.model.";
/// PEFT's adapter weight file.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's adapter config file.
pub const CONFIG_FILE: &str = "adapter_config.json";

/// `(parameter name in the model, tensor name in the adapter file)` pairs.
type SavedNames = Vec<(String, String)>;

/// One adapter of a model.
struct Adapter {
    config: PeftConfig,
    /// `(store name, file name)` of every tensor saved with the adapter.
    tensors: Vec<(String, String)>,
    prefix: Option<Arc<Prefix>>,
}

/// Trainable and total parameter counts, printed as PEFT prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamCounts {
    /// Elements of trainable parameters.
    pub trainable: usize,
    /// Elements of all parameters (base and every adapter).
    pub all: usize,
}

impl ParamCounts {
    /// `100 · trainable / all`.
    pub fn percent(&self) -> f64 {
        100.0 * self.trainable as f64 / self.all.max(1) as f64
    }
}

impl std::fmt::Display for ParamCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(self.trainable),
            thousands(self.all),
            self.percent()
        )
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where an adapter's tensors come from: a PEFT weight file, or seeded initialisers.
struct Weights {
    file: Option<(String, BTreeMap<String, Tensor>)>,
    used: BTreeSet<String>,
    rng: Rng,
    dtype: DType,
}

impl Weights {
    /// The tensor saved under the first of `names` the file holds (its shape checked), or, with
    /// no file, `draw`'s. Returns the value and the file name used.
    fn get(
        &mut self,
        names: &[String],
        shape: &[usize],
        draw: impl FnOnce(&mut Rng) -> Result<Tensor>,
    ) -> Result<(Tensor, String)> {
        let Some((label, tensors)) = &self.file else {
            return Ok((draw(&mut self.rng)?, names[0].clone()));
        };
        let Some((found, t)) = names
            .iter()
            .find_map(|n| tensors.get(n).map(|t| (n.clone(), t)))
        else {
            let also = if names.len() > 1 {
                format!(" (also tried {})", names[1..].join(", "))
            } else {
                String::new()
            };
            return Err(Error::Weights {
                file: label.clone(),
                msg: format!("adapter tensor {} is missing{also}", names[0]),
            });
        };
        if t.dims() != shape {
            return Err(Error::Weights {
                file: label.clone(),
                msg: format!(
                    "{found} has shape {:?}, the model needs {shape:?} (is the adapter for \
                     another model size or rank?)",
                    t.dims()
                ),
            });
        }
        self.used.insert(found.clone());
        let t = if t.dtype() == self.dtype {
            t.clone()
        } else {
            t.to_dtype(self.dtype)?
        };
        Ok((t, found))
    }

    /// An error naming the file's tensors that no module took.
    fn check_all_used(&self) -> Result<()> {
        let Some((label, tensors)) = &self.file else {
            return Ok(());
        };
        let unused: Vec<&String> = tensors.keys().filter(|k| !self.used.contains(*k)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        Err(Error::Weights {
            file: label.clone(),
            msg: format!(
                "{} tensor(s) match no module of this model with this config: {}",
                unused.len(),
                unused
                    .iter()
                    .take(8)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// File names of a module's tensor: the preferred spelling first, then the module's other name.
fn file_names(module: &ModuleName, via_alias: bool, suffix: &str) -> Vec<String> {
    let (first, second) = match (&module.alias, via_alias) {
        (Some(a), true) => (a.as_str(), Some(module.path.as_str())),
        (Some(a), false) => (module.path.as_str(), Some(a.as_str())),
        (None, _) => (module.path.as_str(), None),
    };
    std::iter::once(first)
        .chain(second)
        .map(|p| format!("{FILE_PREFIX}{p}.{suffix}"))
        .collect()
}

/// A base model with named adapters (LoRA, IA³, prefix-tuning, bottleneck), of which at most one
/// is active.
pub struct PeftModel<M: Architecture> {
    base: Checkpoint<M>,
    hooks: Arc<PeftHooks>,
    adapters: BTreeMap<String, Adapter>,
    base_names: BTreeSet<String>,
}

impl<M: Architecture> PeftModel<M> {
    /// Hooks to build `M` with, so that it can carry adapters.
    pub fn hooks() -> Arc<PeftHooks> {
        PeftHooks::new(M::module_alias)
    }

    /// Loads the base model from a Hugging Face directory, ready for adapters; its parameters
    /// are frozen.
    pub fn from_pretrained(dir: impl AsRef<Path>, dtype: DType) -> Result<PeftModel<M>> {
        let hooks = Self::hooks();
        let base = Checkpoint::<M>::from_pretrained(dir, dtype, Some(hooks.clone()))?;
        PeftModel::new(base, hooks)
    }

    /// Wraps a model built with `hooks` (from [`PeftModel::hooks`]); freezes its parameters.
    pub fn new(base: Checkpoint<M>, hooks: Arc<PeftHooks>) -> Result<PeftModel<M>> {
        if hooks.registry().store.is_none() {
            return Err(adapter_err(
                "-",
                "the base model was built without these hooks (pass them to from_pretrained)",
            ));
        }
        let base_names = base.params.all().into_iter().map(|(n, _)| n).collect();
        for (_, p) in base.params.all() {
            p.set_trainable(false);
        }
        Ok(PeftModel {
            base,
            hooks,
            adapters: BTreeMap::new(),
            base_names,
        })
    }

    /// The model (its forward runs the active adapter).
    pub fn model(&self) -> &M {
        &self.base.model
    }

    /// The base checkpoint: model, parameters (base and adapters), configuration.
    pub fn base(&self) -> &Checkpoint<M> {
        &self.base
    }

    /// The adapters' names.
    pub fn adapter_names(&self) -> Vec<String> {
        self.adapters.keys().cloned().collect()
    }

    /// The configuration of adapter `name`.
    pub fn config(&self, name: &str) -> Option<&PeftConfig> {
        self.adapters.get(name).map(|a| &a.config)
    }

    /// `(parameter name in the model, tensor name in the adapter file)` of every tensor adapter
    /// `name` saves; the prefix's own parameters (saved as the computed `prompt_embeddings`)
    /// have an empty file name.
    pub fn saved_tensors(&self, name: &str) -> Result<Vec<(String, String)>> {
        self.adapters
            .get(name)
            .map(|a| a.tensors.clone())
            .ok_or_else(|| adapter_err(name, "no such adapter"))
    }

    /// The active adapter.
    pub fn active_adapter(&self) -> Option<String> {
        self.hooks.active()
    }

    /// Adds adapter `name` drawn as PEFT initialises it (seeded) and makes it active.
    pub fn add_adapter(&mut self, name: &str, config: PeftConfig, seed: u64) -> Result<()> {
        let weights = Weights {
            file: None,
            used: BTreeSet::new(),
            rng: Rng::new(seed),
            dtype: self.dtype(),
        };
        self.inject(name, config, weights)?;
        self.set_adapter(Some(name))
    }

    /// Loads the adapter saved in `dir` (PEFT's `adapter_config.json` +
    /// `adapter_model.safetensors`) as `name` and makes it active. A LoRA adapter trained with
    /// `bias = "all"` or `"lora_only"` carries biases of the base model: loading it sets them in
    /// the base, for every adapter, as PEFT does.
    pub fn load_adapter(&mut self, dir: impl AsRef<Path>, name: &str) -> Result<()> {
        let dir = dir.as_ref();
        let config = PeftConfig::read(&dir.join(CONFIG_FILE))?;
        let file = dir.join(WEIGHTS_FILE);
        if !file.is_file() {
            let hint = if dir.join("adapter_model.bin").exists() {
                " (it has adapter_model.bin: ptm reads safetensors only; save with \
                 safe_serialization=True)"
            } else {
                ""
            };
            return Err(Error::Weights {
                file: file.display().to_string(),
                msg: format!("missing{hint}"),
            });
        }
        let tensors = ptm_tensor::safetensors::load(&file)?;
        let weights = Weights {
            file: Some((file.display().to_string(), tensors)),
            used: BTreeSet::new(),
            rng: Rng::new(0),
            dtype: self.dtype(),
        };
        self.inject(name, config, weights)?;
        self.set_adapter(Some(name))
    }

    /// Makes adapter `name` active (its parameters trainable, every other adapter's frozen), or
    /// with `None` runs the base model alone.
    pub fn set_adapter(&mut self, name: Option<&str>) -> Result<()> {
        if let Some(n) = name {
            if !self.adapters.contains_key(n) {
                return Err(adapter_err(
                    n,
                    format!("no such adapter (have: {:?})", self.adapter_names()),
                ));
            }
        }
        // Unmerge whatever another adapter folded into the base weights first.
        for other in self.adapter_names() {
            if Some(other.as_str()) != name {
                self.for_linears(|l| l.unmerge(&other))?;
            }
        }
        let trainable: BTreeSet<String> = name
            .and_then(|n| self.adapters.get(n))
            .map(|a| a.tensors.iter().map(|(s, _)| s.clone()).collect())
            .unwrap_or_default();
        for (n, p) in self.base.params.all() {
            let want = trainable.contains(&n);
            if p.is_trainable() != want {
                p.set_trainable(want);
            }
        }
        self.hooks.set_active(name.map(str::to_string));
        Ok(())
    }

    /// Removes adapter `name` and its parameters.
    pub fn delete_adapter(&mut self, name: &str) -> Result<()> {
        let adapter = self
            .adapters
            .remove(name)
            .ok_or_else(|| adapter_err(name, "no such adapter"))?;
        self.for_linears(|l| l.unmerge(name))?;
        self.discard_parts(name);
        let names: BTreeSet<String> = adapter
            .tensors
            .iter()
            .map(|(s, _)| s.clone())
            .filter(|s| !self.base_names.contains(s))
            .collect();
        self.base.params.retain(|n| !names.contains(n));
        if self.active_adapter().as_deref() == Some(name) {
            self.set_adapter(None)?;
        }
        Ok(())
    }

    /// Trainable and total parameters (the active adapter's are the trainable ones).
    pub fn param_counts(&self) -> ParamCounts {
        let (trainable, all) = self.base.params.counts();
        ParamCounts { trainable, all }
    }

    /// Writes adapter `name` in PEFT's format into `dir`: `adapter_config.json` and
    /// `adapter_model.safetensors`, each atomically.
    pub fn save_adapter(&self, dir: impl AsRef<Path>, name: &str) -> Result<()> {
        let dir = dir.as_ref();
        let adapter = self
            .adapters
            .get(name)
            .ok_or_else(|| adapter_err(name, "no such adapter"))?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut out: Vec<(String, Tensor)> = vec![];
        // Entries without a file name (the prefix's own parameters) are saved as its table below.
        for (store, file) in adapter.tensors.iter().filter(|(_, f)| !f.is_empty()) {
            let p = self.base.params.get(store).ok_or_else(|| {
                adapter_err(name, format!("parameter {store} is no longer in the model"))
            })?;
            out.push((file.clone(), p.tensor().detach()));
        }
        if let Some(prefix) = &adapter.prefix {
            let table = {
                let _g = ptm_tensor::no_grad();
                prefix.table()?.detach()
            };
            out.push(("prompt_embeddings".into(), table));
        }
        ptm_tensor::safetensors::save(
            out.iter().map(|(n, t)| (n.as_str(), t)),
            dir.join(WEIGHTS_FILE),
        )?;
        adapter.config.save(dir)?;
        Ok(())
    }

    /// Folds the active adapter into the base weights (LoRA and IA³): the model then computes
    /// the same outputs with no extra work per layer.
    pub fn merge_adapter(&self) -> Result<()> {
        let name = self.require_mergeable()?;
        self.for_linears(|l| l.merge(&name))
    }

    /// Takes the active adapter back out of the base weights.
    pub fn unmerge_adapter(&self) -> Result<()> {
        match self.active_adapter() {
            Some(name) => self.for_linears(|l| l.unmerge(&name)),
            None => Ok(()),
        }
    }

    /// Merges the active adapter into the base weights, writes its `modules_to_save` copies over
    /// the originals, drops every adapter and returns the plain model (trainable again), which
    /// `save_pretrained` writes as an ordinary checkpoint.
    pub fn merge_and_unload(self) -> Result<Checkpoint<M>> {
        let name = self.require_mergeable()?;
        self.for_linears(|l| l.merge(&name))?;
        for e in &self.hooks.registry().linears {
            if let Some(LinearAdapter::Copy(copy)) = e.layer.adapters().get(&name) {
                e.layer.base.weight().set(copy.weight().tensor())?;
                if let (Some(b), Some(cb)) = (e.layer.base.bias(), copy.bias()) {
                    b.set(cb.tensor())?;
                }
            }
        }
        let base_names = self.base_names.clone();
        for n in self.adapter_names() {
            self.for_linears(|l| {
                l.merged
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|m| *m != n);
                l.remove(&n);
                Ok(())
            })?;
        }
        self.hooks.set_active(None);
        self.base.params.retain(|n| base_names.contains(n));
        for (_, p) in self.base.params.all() {
            p.set_trainable(true);
        }
        Ok(self.base)
    }

    fn require_mergeable(&self) -> Result<String> {
        let name = self
            .active_adapter()
            .ok_or_else(|| adapter_err("-", "no adapter is active"))?;
        match &self.adapters[&name].config.kind {
            PeftKind::Lora(_) | PeftKind::Ia3(_) => Ok(name),
            other => Err(adapter_err(
                &name,
                format!(
                    "{} adapters add computation that cannot be folded into the weights",
                    other.peft_type()
                ),
            )),
        }
    }

    fn for_linears(&self, f: impl Fn(&crate::layers::PeftLinear) -> Result<()>) -> Result<()> {
        for e in &self.hooks.registry().linears {
            f(&e.layer)?;
        }
        Ok(())
    }

    fn dtype(&self) -> DType {
        self.base
            .params
            .all()
            .first()
            .map_or(DType::F32, |(_, p)| p.tensor().dtype())
    }

    /// Registers a new parameter of adapter `name` in the model's store (frozen until the
    /// adapter is set active).
    fn new_param(&self, store_name: &str, value: Tensor) -> Result<Param> {
        if self.base.params.get(store_name).is_some() {
            return Err(adapter_err(
                store_name,
                "a parameter of that name already exists",
            ));
        }
        Ok(self
            .base
            .params
            .insert(store_name, Param::new(value, false))?)
    }

    fn inject(&mut self, name: &str, mut config: PeftConfig, mut w: Weights) -> Result<()> {
        if self.adapters.contains_key(name) {
            return Err(adapter_err(
                name,
                "an adapter of that name is loaded already",
            ));
        }
        if name.is_empty() || name.contains('.') {
            return Err(adapter_err(
                name,
                "adapter names are non-empty and have no '.'",
            ));
        }
        let label = w
            .file
            .as_ref()
            .map_or("<config>".to_string(), |(l, _)| l.clone());
        config.validate(&label)?;
        // A load that fails half-way must leave the model as it was: the parameters it added
        // and the base biases it may have set are put back.
        let before: BTreeSet<String> = self.base.params.all().into_iter().map(|(n, _)| n).collect();
        let biases: Vec<(Param, Tensor)> = self
            .base
            .params
            .all()
            .into_iter()
            .filter(|(n, _)| n.ends_with(".bias"))
            .map(|(_, p)| {
                let t = p.tensor();
                (p, t)
            })
            .collect();
        let injected = self.inject_parts(name, &mut config, &mut w, &label);
        let (tensors, prefix) = match injected.and_then(|r| w.check_all_used().map(|_| r)) {
            Ok(r) => r,
            Err(e) => {
                self.discard_parts(name);
                self.base.params.retain(|n| before.contains(n));
                for (p, t) in biases {
                    p.set(t)?;
                }
                return Err(e);
            }
        };
        self.adapters.insert(
            name.to_string(),
            Adapter {
                config,
                tensors,
                prefix,
            },
        );
        Ok(())
    }

    /// Places adapter `name`'s parts in the model; returns its saved tensors and prefix.
    fn inject_parts(
        &self,
        name: &str,
        config: &mut PeftConfig,
        w: &mut Weights,
        label: &str,
    ) -> Result<(SavedNames, Option<Arc<Prefix>>)> {
        let mut tensors = self.inject_saved_modules(name, config, w)?;
        let mut prefix = None;
        let kind = config.kind.clone();
        match &kind {
            PeftKind::Lora(c) => tensors.extend(self.inject_lora(name, c, config, w)?),
            PeftKind::Ia3(c) => tensors.extend(self.inject_ia3(name, c, config, w)?),
            PeftKind::Bottleneck(c) => tensors.extend(self.inject_bottleneck(name, c, w)?),
            PeftKind::PrefixTuning(c) => {
                let (p, t, filled) = self.inject_prefix(name, c, w, label)?;
                config.kind = PeftKind::PrefixTuning(filled);
                tensors.extend(t);
                prefix = Some(p);
            }
        }
        Ok((tensors, prefix))
    }

    /// Takes adapter `name` out of every wrapper, slot and the prefix table.
    fn discard_parts(&self, name: &str) {
        let reg = self.hooks.registry();
        for e in &reg.linears {
            e.layer.remove(name);
        }
        for s in &reg.slots {
            s.slot
                .adapters
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
        drop(reg);
        self.hooks.registry().prefixes.remove(name);
    }

    /// The trainable copies of `modules_to_save` (PEFT's `ModulesToSaveWrapper`).
    fn inject_saved_modules(
        &self,
        name: &str,
        config: &PeftConfig,
        w: &mut Weights,
    ) -> Result<Vec<(String, String)>> {
        let saves = config.effective_modules_to_save();
        if saves.is_empty() {
            return Ok(vec![]);
        }
        // PEFT writes the classifier names it adds for classification tasks into the file's
        // list; only names the user chose must match something.
        let auto = matches!(config.task_type.as_deref(), Some("SEQ_CLS" | "TOKEN_CLS"));
        let user: Vec<String> = config
            .kind
            .modules_to_save()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !(auto && (n == "classifier" || n == "score")))
            .collect();
        let modules = self.module_names();
        let matcher = Matcher::Names(saves.clone());
        Matcher::Names(user).check_all_used("modules_to_save", &modules)?;
        let mut tensors = vec![];
        for e in &self.hooks.registry().linears {
            let Some(via_alias) = matcher.matches(&e.name) else {
                continue;
            };
            let base = &e.layer.base;
            let mut param = |suffix: &str, src: &Param| -> Result<Param> {
                let names = file_names(&e.name, via_alias, suffix);
                let shape = src.tensor().dims().to_vec();
                let (t, file) = w.get(&names, &shape, |_| Ok(src.tensor().detach()))?;
                let store = format!("{}.modules_to_save.{name}.{suffix}", e.name.path);
                tensors.push((store.clone(), file));
                self.new_param(&store, t)
            };
            let weight = param("weight", base.weight())?;
            let bias = match base.bias() {
                Some(b) => Some(param("bias", b)?),
                None => None,
            };
            let copy = Linear::from_params(weight, bias, base.layout())?;
            e.layer.insert(name, LinearAdapter::Copy(copy));
        }
        Ok(tensors)
    }

    fn module_names(&self) -> Vec<ModuleName> {
        self.hooks
            .registry()
            .linears
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    /// The targets of a LoRA/IA³ config, PEFT's defaults for the model type when unset.
    fn targets(
        &self,
        kind: &str,
        given: &Option<crate::Targets>,
    ) -> Result<(crate::Targets, Option<crate::Targets>)> {
        match given {
            Some(t) => Ok((t.clone(), None)),
            None => default_targets(kind, M::MODEL_TYPE).ok_or_else(|| {
                config_err(
                    "<config>",
                    format!(
                        "target_modules is required: PEFT has no default {kind} targets for \
                         model_type {:?}",
                        M::MODEL_TYPE
                    ),
                )
            }),
        }
    }

    /// The linear layers a LoRA/IA³ adapter applies to, with the spelling that matched; errors
    /// for target entries that match nothing.
    fn matched_linears(
        &self,
        targets: &crate::Targets,
        exclude: &Option<crate::Targets>,
        layers: &Option<Vec<usize>>,
        config: &PeftConfig,
    ) -> Result<Vec<(usize, bool)>> {
        let modules = self.module_names();
        let matcher = Matcher::new(targets, "target_modules")?;
        matcher.check_all_used("target_modules", &modules)?;
        let exclude = exclude
            .as_ref()
            .map(|t| Matcher::new(t, "exclude_modules"))
            .transpose()?;
        let saves = Matcher::Names(config.effective_modules_to_save());
        let mut out = vec![];
        for (i, m) in modules.iter().enumerate() {
            let Some(via_alias) = matcher.matches(m) else {
                continue;
            };
            if saves.matches(m).is_some()
                || exclude.as_ref().is_some_and(|x| x.matches(m).is_some())
            {
                continue;
            }
            if let Some(layers) = layers {
                if !layer_index(&m.path).is_some_and(|l| layers.contains(&l)) {
                    continue;
                }
            }
            out.push((i, via_alias));
        }
        if out.is_empty() {
            return Err(no_match(
                "target_modules",
                &format!("{targets:?} (after exclude_modules / layers_to_transform)"),
                &modules,
            ));
        }
        Ok(out)
    }

    fn inject_lora(
        &self,
        name: &str,
        c: &crate::LoraConfig,
        config: &PeftConfig,
        w: &mut Weights,
    ) -> Result<Vec<(String, String)>> {
        let (targets, _) = self.targets("LORA", &c.target_modules)?;
        let hits =
            self.matched_linears(&targets, &c.exclude_modules, &c.layers_to_transform, config)?;
        let reg = self.hooks.registry();
        let rng = reg
            .dropout_rng
            .clone()
            .expect("set when the model was built");
        let mut tensors = vec![];
        let mut wrapped_biases = BTreeSet::new();
        for (i, via_alias) in hits {
            let e = &reg.linears[i];
            let (n_in, n_out) = (e.layer.base.in_dim(), e.layer.base.out_dim());
            let dtype = w.dtype;
            let mut param = |part: &str, shape: [usize; 2], fan_in: usize| -> Result<Param> {
                let names = file_names(&e.name, via_alias, &format!("{part}.weight"));
                let zero = part == "lora_B" && c.init_lora_weights;
                let (t, file) = w.get(&names, &shape, |rng| {
                    let init = if zero {
                        Init::Zeros
                    } else {
                        Init::KaimingUniform { fan_in }
                    };
                    Ok(init.make(&shape, dtype, rng)?)
                })?;
                let store = format!("{}.{part}.{name}.weight", e.name.path);
                tensors.push((store.clone(), file));
                self.new_param(&store, t)
            };
            let a = param("lora_A", [c.r, n_in], n_in)?;
            let b = param("lora_B", [n_out, c.r], c.r)?;
            let lora = Lora {
                a,
                b,
                scaling: c.scaling(),
                dropout: Dropout::new(c.lora_dropout, rng.clone())?,
            };
            e.layer.insert(name, LinearAdapter::Lora(lora));
            wrapped_biases.insert((i, via_alias));
        }
        // Trained biases are the base model's own parameters, saved with the adapter (a wrapped
        // layer's bias under PEFT's `base_layer.bias`).
        match c.bias {
            LoraBias::None => {}
            LoraBias::LoraOnly | LoraBias::All => {
                let mut done = BTreeSet::new();
                for &(i, via_alias) in &wrapped_biases {
                    let e = &reg.linears[i];
                    if let Some(b) = e.layer.base.bias() {
                        let store = format!("{}.bias", e.name.path);
                        let names = file_names(&e.name, via_alias, "base_layer.bias");
                        self.load_base_bias(b, &store, &names, w, &mut tensors)?;
                        done.insert(store);
                    }
                }
                if c.bias == LoraBias::All {
                    for (n, p) in self.base.params.all() {
                        if n.ends_with(".bias")
                            && self.base_names.contains(&n)
                            && !done.contains(&n)
                        {
                            let names = vec![format!("{FILE_PREFIX}{n}")];
                            self.load_base_bias(&p, &n, &names, w, &mut tensors)?;
                        }
                    }
                }
            }
        }
        Ok(tensors)
    }

    /// A base bias trained with the adapter: its value from the adapter file when loading.
    fn load_base_bias(
        &self,
        bias: &Param,
        store: &str,
        names: &[String],
        w: &mut Weights,
        tensors: &mut Vec<(String, String)>,
    ) -> Result<()> {
        let shape = bias.tensor().dims().to_vec();
        let (t, file) = w.get(names, &shape, |_| Ok(bias.tensor().detach()))?;
        bias.set(t)?;
        tensors.push((store.to_string(), file));
        Ok(())
    }

    fn inject_ia3(
        &self,
        name: &str,
        c: &crate::Ia3Config,
        config: &PeftConfig,
        w: &mut Weights,
    ) -> Result<Vec<(String, String)>> {
        let (targets, default_ff) = self.targets("IA3", &c.target_modules)?;
        let ff = c.feedforward_modules.clone().or(default_ff);
        let hits = self.matched_linears(&targets, &c.exclude_modules, &None, config)?;
        let ff = ff
            .as_ref()
            .map(|t| Matcher::new(t, "feedforward_modules"))
            .transpose()?;
        let reg = self.hooks.registry();
        if let Some(ff) = &ff {
            let targeted: Vec<ModuleName> = hits
                .iter()
                .map(|(i, _)| reg.linears[*i].name.clone())
                .collect();
            ff.check_all_used(
                "feedforward_modules (which must be among the targets)",
                &targeted,
            )?;
        }
        let mut tensors = vec![];
        for (i, via_alias) in hits {
            let e = &reg.linears[i];
            let feedforward = ff.as_ref().is_some_and(|m| m.matches(&e.name).is_some());
            let shape = if feedforward {
                [1, e.layer.base.in_dim()]
            } else {
                [e.layer.base.out_dim(), 1]
            };
            let names = file_names(&e.name, via_alias, "ia3_l");
            let dtype = w.dtype;
            let (t, file) = w.get(&names, &shape, |rng| {
                Ok(Init::Ones.make(&shape, dtype, rng)?)
            })?;
            let store = format!("{}.ia3_l.{name}", e.name.path);
            tensors.push((store.clone(), file));
            let l = self.new_param(&store, t)?;
            e.layer
                .insert(name, LinearAdapter::Ia3(Ia3 { l, feedforward }));
        }
        Ok(tensors)
    }

    fn inject_bottleneck(
        &self,
        name: &str,
        c: &crate::BottleneckConfig,
        w: &mut Weights,
    ) -> Result<Vec<(String, String)>> {
        let act = Activation::from_hf(&c.non_linearity, "non_linearity")?;
        let reg = self.hooks.registry();
        let mut tensors = vec![];
        for s in &reg.slots {
            let place = match (c.placement, s.which) {
                (Placement::Houlsby, SubLayer::Attention) => "attention_adapter",
                (_, SubLayer::FeedForward) => "output_adapter",
                (Placement::Pfeiffer, SubLayer::Attention) => continue,
            };
            let (h, r) = (s.hidden, (s.hidden / c.reduction_factor).max(1));
            let dtype = w.dtype;
            let mut param = |part: &str, shape: Vec<usize>, init: Init| -> Result<Param> {
                let module = format!("{}.{place}.{part}", s.block);
                let names = vec![format!("{FILE_PREFIX}{module}")];
                let (t, file) = w.get(&names, &shape, |rng| Ok(init.make(&shape, dtype, rng)?))?;
                let store = format!("{}.{place}.{name}.{part}", s.block);
                tensors.push((store.clone(), file));
                self.new_param(&store, t)
            };
            // Near identity: a small down projection and a zero up projection, so the adapted
            // model starts as the base model and the up projection gets gradients at once.
            let small = Init::Normal {
                mean: 0.0,
                std: 1e-2,
            };
            let down = Linear::from_params(
                param("down.weight", vec![r, h], small)?,
                Some(param("down.bias", vec![r], Init::Zeros)?),
                WeightLayout::OutIn,
            )?;
            let up = Linear::from_params(
                param("up.weight", vec![h, r], Init::Zeros)?,
                Some(param("up.bias", vec![h], Init::Zeros)?),
                WeightLayout::OutIn,
            )?;
            s.slot.insert(name, Bottleneck { down, up, act });
        }
        Ok(tensors)
    }

    fn inject_prefix(
        &self,
        name: &str,
        c: &crate::PrefixTuningConfig,
        w: &mut Weights,
        label: &str,
    ) -> Result<(Arc<Prefix>, SavedNames, crate::PrefixTuningConfig)> {
        let (layers, heads, width) = M::attention_shape(&self.base.config);
        for (key, given, have) in [
            ("num_layers", c.num_layers, layers),
            ("num_attention_heads", c.num_attention_heads, heads),
            ("token_dim", c.token_dim, width),
        ] {
            if given.is_some_and(|g| g != have) {
                return Err(config_err(
                    label,
                    format!(
                        "{key} = {} but the model has {have}: the adapter is for another model",
                        given.unwrap_or(0)
                    ),
                ));
            }
        }
        let mut filled = c.clone();
        filled.num_layers = Some(layers);
        filled.num_attention_heads = Some(heads);
        filled.token_dim = Some(width);
        let n = c.num_virtual_tokens;
        let full = layers * 2 * width;
        let dtype = w.dtype;
        let mut tensors = vec![];
        let loading = w.file.is_some();
        let store = |part: &str| format!("prompt_encoder.{name}.{part}");
        // A saved adapter holds the computed table (PEFT saves it so, projection or not).
        let source = if loading || !c.prefix_projection {
            let names = vec!["prompt_embeddings".to_string()];
            let normal = Init::Normal {
                mean: 0.0,
                std: 1.0,
            };
            let (t, _) = w.get(&names, &[n, full], |rng| {
                Ok(normal.make(&[n, full], dtype, rng)?)
            })?;
            PrefixSource::Table(self.new_param(&store("embedding.weight"), t)?)
        } else {
            let hidden = c.encoder_hidden_size.unwrap_or(width);
            let mut rng = std::mem::replace(&mut w.rng, Rng::new(0));
            let mut draw = |shape: &[usize], init: Init| init.make(shape, dtype, &mut rng);
            let normal = Init::Normal {
                mean: 0.0,
                std: 1.0,
            };
            let bound = |fan_in: usize| (1.0 / fan_in as f64).sqrt();
            let embedding =
                self.new_param(&store("embedding.weight"), draw(&[n, width], normal)?)?;
            let fc1 = Linear::from_params(
                self.new_param(
                    &store("transform.0.weight"),
                    draw(&[hidden, width], Init::KaimingUniform { fan_in: width })?,
                )?,
                Some(self.new_param(
                    &store("transform.0.bias"),
                    draw(
                        &[hidden],
                        Init::Uniform {
                            lo: -bound(width),
                            hi: bound(width),
                        },
                    )?,
                )?),
                WeightLayout::OutIn,
            )?;
            let fc2 = Linear::from_params(
                self.new_param(
                    &store("transform.2.weight"),
                    draw(&[full, hidden], Init::KaimingUniform { fan_in: hidden })?,
                )?,
                Some(self.new_param(
                    &store("transform.2.bias"),
                    draw(
                        &[full],
                        Init::Uniform {
                            lo: -bound(hidden),
                            hi: bound(hidden),
                        },
                    )?,
                )?),
                WeightLayout::OutIn,
            )?;
            w.rng = rng;
            PrefixSource::Projected {
                embedding,
                fc1,
                fc2,
            }
        };
        // The prefix's parameters train with the adapter but are saved as the computed table.
        let mut trained: Vec<(String, String)> = self
            .base
            .params
            .all()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&store("")))
            .map(|(n, _)| (n, String::new()))
            .collect();
        tensors.append(&mut trained);
        let prefix = Arc::new(Prefix::new(source, n, layers, heads, width));
        self.hooks
            .registry()
            .prefixes
            .insert(name.to_string(), prefix.clone());
        Ok((prefix, tensors, filled))
    }
}
