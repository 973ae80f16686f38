//! `VarBuilder`: where layers get their parameters, by path, from a weight file or an initialiser.
//!
//! Models build themselves top-down: `vb.pp("h").pp(3).pp("attn")` scopes the path, and
//! `vb.get(&[768, 2304], "c_attn.weight", init)` returns the parameter at
//! `h.3.attn.c_attn.weight`. With a weight file the tensor comes from the file (shape checked,
//! cast to the model's dtype); without one it is drawn from `init`. Every parameter lands in a
//! [`ParamStore`] under its full path, which is what optimizers and `save` walk.
//!
//! Loading is strict: [`VarBuilder::load`] runs the model constructor and then reports, by name,
//! every tensor the model needed that the file lacked (an error) and every tensor the file held that
//! the model did not use (returned in the [`LoadReport`]).

use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::init::Init;
use crate::param::{Param, ParamStore};
use ptm_tensor::safetensors::MappedFile;
use ptm_tensor::{DType, Rng, Tensor};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A random stream shared by every dropout layer of one model; its state is part of a training
/// checkpoint.
pub type SharedRng = Arc<Mutex<Rng>>;

/// How names in a weight file may differ from the names the model asks for.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Prefixes a file may have or lack (`"transformer."`, `"bert."`, `"vit."`): a name is looked
    /// up as asked, then with the prefix removed, then with it added.
    pub optional_prefixes: Vec<String>,
    /// Names ending in one of these are buffers, not parameters, and never reported as unexpected
    /// (GPT-2's `attn.bias` causal mask, BERT's `position_ids`).
    pub ignore_suffixes: Vec<String>,
    /// Parameters under these path prefixes may be absent from the file and are then initialised
    /// (a new task head on a pretrained body); the report lists them.
    pub allow_missing: Vec<String>,
}

/// What a load found besides the parameters it used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors in the file that no parameter used (not counting ignored buffers).
    pub unexpected: Vec<String>,
    /// Parameters absent from the file that were initialised (allowed by `allow_missing`).
    pub initialized: Vec<String>,
}

enum Source {
    Init,
    File(MappedFile),
    Map {
        label: String,
        tensors: BTreeMap<String, Tensor>,
    },
}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::Init => "initialiser".into(),
            Source::File(f) => f.path().display().to_string(),
            Source::Map { label, .. } => label.clone(),
        }
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Init => false,
            Source::File(f) => f.meta(name).is_some(),
            Source::Map { tensors, .. } => tensors.contains_key(name),
        }
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match self {
            Source::Init => None,
            Source::File(f) => f.meta(name).map(|m| m.shape),
            Source::Map { tensors, .. } => tensors.get(name).map(|t| t.dims().to_vec()),
        }
    }

    fn load(&self, name: &str) -> Result<Tensor> {
        Ok(match self {
            Source::File(f) => f.load(name)?,
            Source::Map { tensors, .. } => tensors[name].clone(),
            Source::Init => unreachable!("has() is false for the initialiser"),
        })
    }

    fn names(&self) -> Vec<String> {
        match self {
            Source::Init => vec![],
            Source::File(f) => f.names(),
            Source::Map { tensors, .. } => tensors.keys().cloned().collect(),
        }
    }
}

#[derive(Default)]
struct LoadLog {
    used: BTreeSet<String>,
    missing: Vec<(String, Vec<String>)>,
    initialized: Vec<String>,
}

struct Ctx {
    source: Source,
    options: LoadOptions,
    dtype: DType,
    store: ParamStore,
    rng: Mutex<Rng>,
    dropout_rng: SharedRng,
    hooks: Option<Arc<dyn Hooks>>,
    log: Mutex<LoadLog>,
}

/// Path-scoped access to parameters; cheap to clone and to scope.
#[derive(Clone)]
pub struct VarBuilder {
    path: Vec<String>,
    ctx: Arc<Ctx>,
}

impl VarBuilder {
    fn with_source(
        source: Source,
        options: LoadOptions,
        dtype: DType,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> VarBuilder {
        let mut rng = Rng::new(seed);
        let dropout_seed = rng.next_u64();
        VarBuilder {
            path: vec![],
            ctx: Arc::new(Ctx {
                source,
                options,
                dtype,
                store: ParamStore::new(),
                rng: Mutex::new(rng),
                dropout_rng: Arc::new(Mutex::new(Rng::new(dropout_seed))),
                hooks,
                log: Mutex::new(LoadLog::default()),
            }),
        }
    }

    /// A builder that draws every parameter from its initialiser, seeded.
    pub fn from_init(dtype: DType, seed: u64) -> VarBuilder {
        VarBuilder::from_init_with_hooks(dtype, seed, None)
    }

    /// As [`VarBuilder::from_init`], with hooks that layers consult while the model is built.
    pub fn from_init_with_hooks(
        dtype: DType,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
    ) -> VarBuilder {
        VarBuilder::with_source(Source::Init, LoadOptions::default(), dtype, seed, hooks)
    }

    /// Loads a model from the safetensors file at `path`: maps the file, runs `build` (the model's
    /// constructor) and checks that every parameter it asked for was found (or is allowed to be
    /// initialised). Tensors stored as f16/bf16/f32 are cast to `dtype`. `seed` draws the allowed
    /// initialisations and the dropout stream.
    pub fn load<T, E: From<Error>>(
        path: impl AsRef<Path>,
        dtype: DType,
        options: LoadOptions,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
        build: impl FnOnce(&VarBuilder) -> std::result::Result<T, E>,
    ) -> std::result::Result<Loaded<T>, E> {
        let file = MappedFile::open(path).map_err(Error::from)?;
        VarBuilder::load_source(Source::File(file), dtype, options, seed, hooks, build)
    }

    /// As [`VarBuilder::load`], from tensors already in memory; `label` names them in errors.
    pub fn load_tensors<T, E: From<Error>>(
        tensors: BTreeMap<String, Tensor>,
        label: &str,
        dtype: DType,
        options: LoadOptions,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
        build: impl FnOnce(&VarBuilder) -> std::result::Result<T, E>,
    ) -> std::result::Result<Loaded<T>, E> {
        let source = Source::Map {
            label: label.to_string(),
            tensors,
        };
        VarBuilder::load_source(source, dtype, options, seed, hooks, build)
    }

    fn load_source<T, E: From<Error>>(
        source: Source,
        dtype: DType,
        options: LoadOptions,
        seed: u64,
        hooks: Option<Arc<dyn Hooks>>,
        build: impl FnOnce(&VarBuilder) -> std::result::Result<T, E>,
    ) -> std::result::Result<Loaded<T>, E> {
        let vb = VarBuilder::with_source(source, options, dtype, seed, hooks);
        let model = build(&vb)?;
        let report = vb.finish()?;
        Ok(Loaded {
            model,
            params: vb.store(),
            dropout_rng: vb.dropout_rng(),
            report,
        })
    }

    /// The builder for the sub-path `name` (`vb.pp("h").pp(0)` → `h.0.…`).
    pub fn pp(&self, name: impl ToString) -> VarBuilder {
        let mut path = self.path.clone();
        path.push(name.to_string());
        VarBuilder {
            path,
            ctx: self.ctx.clone(),
        }
    }

    /// The full path of `name` under this builder's scope.
    pub fn path(&self, name: &str) -> String {
        let mut parts = self.path.clone();
        if !name.is_empty() {
            parts.push(name.to_string());
        }
        parts.join(".")
    }

    /// The builder's scope as a path (`""` at the root).
    pub fn prefix(&self) -> String {
        self.path.join(".")
    }

    /// The dtype parameters are created in.
    pub fn dtype(&self) -> DType {
        self.ctx.dtype
    }

    /// The store every parameter built through this builder lands in.
    pub fn store(&self) -> ParamStore {
        self.ctx.store.clone()
    }

    /// The dropout stream of the model being built.
    pub fn dropout_rng(&self) -> SharedRng {
        self.ctx.dropout_rng.clone()
    }

    /// The hooks set for this build, if any.
    pub fn hooks(&self) -> Option<&Arc<dyn Hooks>> {
        self.ctx.hooks.as_ref()
    }

    /// Whether the parameters come from a file (else from initialisers).
    pub fn is_loading(&self) -> bool {
        !matches!(self.ctx.source, Source::Init)
    }

    /// The parameter `name` (under this scope) of the given shape: from the file if loading, else
    /// drawn from `init`. Asking twice for one path returns the same parameter.
    pub fn get(&self, shape: &[usize], name: &str, init: Init) -> Result<Param> {
        let full = self.path(name);
        if let Some(p) = self.ctx.store.get(&full) {
            let have = p.tensor().dims().to_vec();
            if have != shape {
                return Err(Error::DuplicateParam {
                    name: full,
                    first: have,
                    second: shape.to_vec(),
                });
            }
            return Ok(p);
        }
        let value = match &self.ctx.source {
            Source::Init => self.draw(shape, init)?,
            source => {
                let candidates = self.candidates(&full);
                match candidates.iter().find(|c| source.has(c)) {
                    Some(found) => {
                        let got = source.shape(found).unwrap_or_default();
                        if got != shape {
                            return Err(Error::TensorShape {
                                file: source.label(),
                                name: found.clone(),
                                expected: shape.to_vec(),
                                found: got,
                            });
                        }
                        let t = source.load(found)?;
                        self.log().used.insert(found.clone());
                        if t.dtype() == self.ctx.dtype {
                            t
                        } else {
                            t.to_dtype(self.ctx.dtype)?
                        }
                    }
                    None => {
                        let allowed = self
                            .ctx
                            .options
                            .allow_missing
                            .iter()
                            .any(|p| full.starts_with(p.as_str()));
                        let mut log = self.log();
                        if allowed {
                            log.initialized.push(full.clone());
                        } else {
                            let tried = candidates.into_iter().filter(|c| *c != full).collect();
                            log.missing.push((full.clone(), tried));
                        }
                        drop(log);
                        self.draw(shape, init)?
                    }
                }
            }
        };
        self.ctx.store.insert(&full, Param::new(value, true))
    }

    fn draw(&self, shape: &[usize], init: Init) -> Result<Tensor> {
        let mut rng = self.ctx.rng.lock().unwrap_or_else(|e| e.into_inner());
        init.make(shape, self.ctx.dtype, &mut rng)
    }

    fn log(&self) -> std::sync::MutexGuard<'_, LoadLog> {
        self.ctx.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spellings under which a file may hold `name`: as asked; with each optional prefix removed or
    /// added; and the legacy LayerNorm names `gamma`/`beta` for `weight`/`bias`.
    fn candidates(&self, name: &str) -> Vec<String> {
        let mut base = vec![name.to_string()];
        for p in &self.ctx.options.optional_prefixes {
            match name.strip_prefix(p.as_str()) {
                Some(rest) => base.push(rest.to_string()),
                None => base.push(format!("{p}{name}")),
            }
        }
        let mut out = base.clone();
        for b in &base {
            if let Some(stem) = b.strip_suffix(".weight") {
                out.push(format!("{stem}.gamma"));
            } else if let Some(stem) = b.strip_suffix(".bias") {
                out.push(format!("{stem}.beta"));
            }
        }
        out
    }

    /// Checks the load: errors naming every missing tensor; otherwise the report of unused tensors
    /// and initialised parameters.
    fn finish(&self) -> Result<LoadReport> {
        let log = self.log();
        if !log.missing.is_empty() {
            return Err(Error::MissingTensors {
                file: self.ctx.source.label(),
                names: log.missing.iter().map(|(n, _)| n.clone()).collect(),
                tried: log.missing[0].1.clone(),
            });
        }
        let ignore = &self.ctx.options.ignore_suffixes;
        let unexpected = self
            .ctx
            .source
            .names()
            .into_iter()
            .filter(|n| !log.used.contains(n) && !ignore.iter().any(|s| n.ends_with(s.as_str())))
            .collect();
        Ok(LoadReport {
            unexpected,
            initialized: log.initialized.clone(),
        })
    }
}

/// A model built from a weight file, with its parameters and what the load found.
pub struct Loaded<T> {
    /// The model.
    pub model: T,
    /// Its parameters by full path.
    pub params: ParamStore,
    /// Its dropout stream.
    pub dropout_rng: SharedRng,
    /// Unused tensors and initialised parameters.
    pub report: LoadReport,
}
