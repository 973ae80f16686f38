//! `adapter_config.json`: the adapter kinds' settings, read and written with PEFT's keys and
//! defaults so that files move between ptm and Python `peft` both ways.
//!
//! Reading keeps every key of the file (a key ptm does not model is written back unchanged) and
//! refuses, naming the key, settings ptm does not implement (`use_dora: true`, rank patterns, …)
//! rather than silently computing something else.

use crate::error::{config_err, io_err, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The PEFT format version whose keys ptm writes (`peft_version` of a new config).
pub const PEFT_FORMAT_VERSION: &str = "0.21.2";

/// Which modules an adapter targets, as PEFT matches them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// A module matches when its full path equals a name or ends with `.` + name.
    Names(Vec<String>),
    /// A module matches when the regular expression matches its whole path.
    Regex(String),
    /// Every linear layer except the output layer (PEFT's `"all-linear"`).
    AllLinear,
}

impl Targets {
    /// Names from a list of string slices.
    pub fn names(names: &[&str]) -> Targets {
        Targets::Names(names.iter().map(|s| s.to_string()).collect())
    }

    fn to_json(&self) -> Value {
        match self {
            // PEFT stores the list as a set, so its order carries no meaning.
            Targets::Names(n) => json!(n),
            Targets::Regex(r) => json!(r),
            Targets::AllLinear => json!("all-linear"),
        }
    }
}

/// Which biases a LoRA adapter trains (PEFT's `bias`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraBias {
    /// None: biases stay frozen.
    None,
    /// Every bias of the model is trained and saved with the adapter.
    All,
    /// The biases of the layers LoRA wraps.
    LoraOnly,
}

impl LoraBias {
    fn as_str(self) -> &'static str {
        match self {
            LoraBias::None => "none",
            LoraBias::All => "all",
            LoraBias::LoraOnly => "lora_only",
        }
    }
}

/// LoRA: `y = W·x + (α/r)·B·A·dropout(x)` on each targeted linear layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank of `A` (`[r, in]`) and `B` (`[out, r]`).
    pub r: usize,
    /// The scale numerator α.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input while training.
    pub lora_dropout: f64,
    /// The layers to adapt; `None` takes PEFT's defaults for the model type.
    pub target_modules: Option<Targets>,
    /// Layers never adapted, matched as `target_modules` is.
    pub exclude_modules: Option<Targets>,
    /// Whether the base weight is stored `[in, out]` (GPT-2's Conv1D). ptm reads the layout from
    /// the layer itself; the key is kept for PEFT.
    pub fan_in_fan_out: bool,
    /// Which biases train with the adapter.
    pub bias: LoraBias,
    /// Rank-stabilised scaling `α/√r` instead of `α/r`.
    pub use_rslora: bool,
    /// Layers trained and saved whole (a new classifier head).
    pub modules_to_save: Option<Vec<String>>,
    /// Initialise `B` to zero (the adapter starts as the identity); `false` draws it too.
    pub init_lora_weights: bool,
    /// Only these layer indices are adapted.
    pub layers_to_transform: Option<Vec<usize>>,
}

impl Default for LoraConfig {
    fn default() -> LoraConfig {
        LoraConfig {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: None,
            exclude_modules: None,
            fan_in_fan_out: false,
            bias: LoraBias::None,
            use_rslora: false,
            modules_to_save: None,
            init_lora_weights: true,
            layers_to_transform: None,
        }
    }
}

impl LoraConfig {
    /// The factor on `B·A`: `α/r`, or `α/√r` with rank-stabilised LoRA.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
}

/// IA³: learned vectors that rescale the outputs of targeted layers, or the inputs of the
/// feed-forward ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ia3Config {
    /// The layers to rescale; `None` takes PEFT's defaults for the model type.
    pub target_modules: Option<Targets>,
    /// The targets whose input (not output) is rescaled; must be among the targets.
    pub feedforward_modules: Option<Targets>,
    /// Layers never adapted.
    pub exclude_modules: Option<Targets>,
    /// Kept for PEFT (ptm reads the weight layout from the layer).
    pub fan_in_fan_out: bool,
    /// Layers trained and saved whole.
    pub modules_to_save: Option<Vec<String>>,
    /// Start the vectors at one (identity); `false` is not supported by PEFT either for
    /// training from scratch, but is accepted when loading.
    pub init_ia3_weights: bool,
}

/// Prefix-tuning: trained keys and values placed before every attention layer's own.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefixTuningConfig {
    /// Prefix positions.
    pub num_virtual_tokens: usize,
    /// Reparameterise the prefix through `Linear → tanh → Linear` while training.
    pub prefix_projection: bool,
    /// The hidden width of that reparameterisation (`None`: the model width).
    pub encoder_hidden_size: Option<usize>,
    /// Model width, layers and heads; filled in from the model when the adapter is added.
    pub token_dim: Option<usize>,
    /// Number of attention layers.
    pub num_layers: Option<usize>,
    /// Attention heads per layer.
    pub num_attention_heads: Option<usize>,
}

impl Default for PrefixTuningConfig {
    fn default() -> PrefixTuningConfig {
        PrefixTuningConfig {
            num_virtual_tokens: 20,
            prefix_projection: false,
            encoder_hidden_size: None,
            token_dim: None,
            num_layers: None,
            num_attention_heads: None,
        }
    }
}

/// Where bottleneck adapters go in each transformer block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// After the attention and after the feed-forward sub-layer (Houlsby et al. 2019).
    Houlsby,
    /// After the feed-forward sub-layer only (Pfeiffer et al. 2021).
    Pfeiffer,
}

/// Bottleneck adapters: `h + up(act(down(h)))` on a sub-layer's output, before its residual add.
/// PEFT has no such type; ptm writes it as `peft_type: "BOTTLENECK"`.
#[derive(Clone, Debug, PartialEq)]
pub struct BottleneckConfig {
    /// Where the adapters go.
    pub placement: Placement,
    /// Model width ÷ bottleneck width.
    pub reduction_factor: usize,
    /// The activation between the projections (transformers' names: `relu`, `gelu`, …).
    pub non_linearity: String,
    /// Layers trained and saved whole.
    pub modules_to_save: Option<Vec<String>>,
}

impl Default for BottleneckConfig {
    fn default() -> BottleneckConfig {
        BottleneckConfig {
            placement: Placement::Houlsby,
            reduction_factor: 16,
            non_linearity: "relu".into(),
            modules_to_save: None,
        }
    }
}

/// One adapter kind with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum PeftKind {
    /// LoRA.
    Lora(LoraConfig),
    /// IA³.
    Ia3(Ia3Config),
    /// Prefix-tuning.
    PrefixTuning(PrefixTuningConfig),
    /// Bottleneck adapters.
    Bottleneck(BottleneckConfig),
}

impl PeftKind {
    /// PEFT's `peft_type` string.
    pub fn peft_type(&self) -> &'static str {
        match self {
            PeftKind::Lora(_) => "LORA",
            PeftKind::Ia3(_) => "IA3",
            PeftKind::PrefixTuning(_) => "PREFIX_TUNING",
            PeftKind::Bottleneck(_) => "BOTTLENECK",
        }
    }

    /// The user's `modules_to_save`.
    pub fn modules_to_save(&self) -> Option<&Vec<String>> {
        match self {
            PeftKind::Lora(c) => c.modules_to_save.as_ref(),
            PeftKind::Ia3(c) => c.modules_to_save.as_ref(),
            PeftKind::Bottleneck(c) => c.modules_to_save.as_ref(),
            PeftKind::PrefixTuning(_) => None,
        }
    }
}

/// An adapter's whole configuration: its kind, the task and the keys ptm only carries.
#[derive(Clone, Debug, PartialEq)]
pub struct PeftConfig {
    /// The adapter kind and its settings.
    pub kind: PeftKind,
    /// PEFT's `task_type` (`CAUSAL_LM`, `SEQ_CLS`, `TOKEN_CLS`, …); classification tasks save the
    /// `classifier` head with the adapter, as PEFT does.
    pub task_type: Option<String>,
    /// Where the base model came from (informational).
    pub base_model_name_or_path: Option<String>,
    /// Keys of the file ptm does not interpret, written back unchanged.
    pub extra: Map<String, Value>,
}

impl PeftConfig {
    /// A configuration of `kind` for `task_type`.
    pub fn new(kind: PeftKind, task_type: Option<&str>) -> PeftConfig {
        PeftConfig {
            kind,
            task_type: task_type.map(str::to_string),
            base_model_name_or_path: None,
            extra: Map::new(),
        }
    }

    /// `modules_to_save`, with the classifier PEFT adds for classification tasks.
    pub fn effective_modules_to_save(&self) -> Vec<String> {
        let mut out = self.kind.modules_to_save().cloned().unwrap_or_default();
        if matches!(self.task_type.as_deref(), Some("SEQ_CLS" | "TOKEN_CLS")) {
            for name in ["classifier", "score"] {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
            }
        }
        out
    }

    /// Checks the settings' ranges; `path` names the file in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        match &self.kind {
            PeftKind::Lora(c) => {
                if c.r == 0 {
                    return Err(config_err(path, "r must be positive"));
                }
                if !(0.0..1.0).contains(&c.lora_dropout) {
                    return Err(config_err(
                        path,
                        format!("lora_dropout = {} is outside [0, 1)", c.lora_dropout),
                    ));
                }
            }
            PeftKind::PrefixTuning(c) => {
                if c.num_virtual_tokens == 0 {
                    return Err(config_err(path, "num_virtual_tokens must be positive"));
                }
                if c.encoder_hidden_size == Some(0) {
                    return Err(config_err(path, "encoder_hidden_size must be positive"));
                }
            }
            PeftKind::Bottleneck(c) => {
                if c.reduction_factor == 0 {
                    return Err(config_err(path, "reduction_factor must be positive"));
                }
                ptm_nn::Activation::from_hf(&c.non_linearity, "non_linearity")
                    .map_err(|e| config_err(path, e.to_string()))?;
            }
            PeftKind::Ia3(_) => {}
        }
        Ok(())
    }

    /// Reads `adapter_config.json` at `path`.
    pub fn read(path: &Path) -> Result<PeftConfig> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| config_err(&label, e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(config_err(&label, "expected a JSON object"));
        };
        PeftConfig::from_map(map, &label)
    }

    /// Parses the keys of an `adapter_config.json`; `label` names the file in errors.
    pub fn from_map(map: Map<String, Value>, label: &str) -> Result<PeftConfig> {
        let f = Fields { map: &map, label };
        let peft_type = f.string("peft_type")?.ok_or_else(|| {
            config_err(
                label,
                "peft_type is missing (LORA, IA3, PREFIX_TUNING or BOTTLENECK)",
            )
        })?;
        let kind = match peft_type.as_str() {
            "LORA" => {
                f.refuse_unless_default(&LORA_UNSUPPORTED)?;
                let d = LoraConfig::default();
                let bias = match f.string("bias")?.as_deref() {
                    None | Some("none") => LoraBias::None,
                    Some("all") => LoraBias::All,
                    Some("lora_only") => LoraBias::LoraOnly,
                    Some(other) => {
                        return Err(config_err(
                            label,
                            format!(
                                "bias = {other:?}: expected \"none\", \"all\" or \"lora_only\""
                            ),
                        ))
                    }
                };
                let init = match map.get("init_lora_weights") {
                    None | Some(Value::Null) => true,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(config_err(
                            label,
                            format!(
                                "init_lora_weights = {other}: ptm draws LoRA weights as PEFT's \
                                 default (true) or with B drawn too (false) only"
                            ),
                        ))
                    }
                };
                PeftKind::Lora(LoraConfig {
                    r: f.usize("r")?.unwrap_or(d.r),
                    lora_alpha: f.f64("lora_alpha")?.unwrap_or(d.lora_alpha),
                    lora_dropout: f.f64("lora_dropout")?.unwrap_or(d.lora_dropout),
                    target_modules: f.targets("target_modules")?,
                    exclude_modules: f.targets("exclude_modules")?,
                    fan_in_fan_out: f.bool("fan_in_fan_out")?.unwrap_or(false),
                    bias,
                    use_rslora: f.bool("use_rslora")?.unwrap_or(false),
                    modules_to_save: f.list("modules_to_save")?,
                    init_lora_weights: init,
                    layers_to_transform: f.layers("layers_to_transform")?,
                })
            }
            "IA3" => PeftKind::Ia3(Ia3Config {
                target_modules: f.targets("target_modules")?,
                feedforward_modules: f.targets("feedforward_modules")?,
                exclude_modules: f.targets("exclude_modules")?,
                fan_in_fan_out: f.bool("fan_in_fan_out")?.unwrap_or(false),
                modules_to_save: f.list("modules_to_save")?,
                init_ia3_weights: f.bool("init_ia3_weights")?.unwrap_or(true),
            }),
            "PREFIX_TUNING" => {
                if let Some(n) = f.usize("num_transformer_submodules")? {
                    if n != 1 {
                        return Err(config_err(
                            label,
                            format!(
                                "num_transformer_submodules = {n}: ptm's models are decoder-only \
                                 or encoder-only (1)"
                            ),
                        ));
                    }
                }
                PeftKind::PrefixTuning(PrefixTuningConfig {
                    num_virtual_tokens: f
                        .usize("num_virtual_tokens")?
                        .ok_or_else(|| config_err(label, "num_virtual_tokens is missing"))?,
                    prefix_projection: f.bool("prefix_projection")?.unwrap_or(false),
                    encoder_hidden_size: f.usize("encoder_hidden_size")?,
                    token_dim: f.usize("token_dim")?,
                    num_layers: f.usize("num_layers")?,
                    num_attention_heads: f.usize("num_attention_heads")?,
                })
            }
            "BOTTLENECK" => {
                let d = BottleneckConfig::default();
                let placement = match f.string("config")?.as_deref() {
                    None | Some("houlsby") => Placement::Houlsby,
                    Some("pfeiffer") => Placement::Pfeiffer,
                    Some(other) => {
                        return Err(config_err(
                            label,
                            format!("config = {other:?}: expected \"houlsby\" or \"pfeiffer\""),
                        ))
                    }
                };
                PeftKind::Bottleneck(BottleneckConfig {
                    placement,
                    reduction_factor: f.usize("reduction_factor")?.unwrap_or(d.reduction_factor),
                    non_linearity: f.string("non_linearity")?.unwrap_or(d.non_linearity),
                    modules_to_save: f.list("modules_to_save")?,
                })
            }
            other => {
                return Err(config_err(
                    label,
                    format!(
                        "peft_type {other:?} is not implemented by ptm (LORA, IA3, PREFIX_TUNING, \
                         BOTTLENECK are)"
                    ),
                ))
            }
        };
        let known = KNOWN_KEYS;
        let extra = map
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let cfg = PeftConfig {
            kind,
            task_type: f.string("task_type")?,
            base_model_name_or_path: f.string("base_model_name_or_path")?,
            extra,
        };
        cfg.validate(label)?;
        Ok(cfg)
    }

    /// The JSON PEFT writes for this configuration: every key of PEFT's config class (defaults
    /// where ptm has no value), the keys carried from a read file, and this config's values.
    pub fn to_json(&self) -> Value {
        let mut out = match &self.kind {
            PeftKind::Lora(_) => lora_defaults(),
            PeftKind::Ia3(_) => ia3_defaults(),
            PeftKind::PrefixTuning(_) => prefix_defaults(),
            PeftKind::Bottleneck(_) => bottleneck_defaults(),
        };
        for (k, v) in &self.extra {
            out.insert(k.clone(), v.clone());
        }
        let opt = |v: &Option<Vec<String>>| v.as_ref().map_or(Value::Null, |l| json!(l));
        let targets = |t: &Option<Targets>| t.as_ref().map_or(Value::Null, Targets::to_json);
        let mut set = |k: &str, v: Value| {
            out.insert(k.to_string(), v);
        };
        set("peft_type", json!(self.kind.peft_type()));
        set("task_type", json!(self.task_type));
        set(
            "base_model_name_or_path",
            json!(self.base_model_name_or_path),
        );
        // PEFT saves every adapter in inference mode.
        set("inference_mode", json!(true));
        match &self.kind {
            PeftKind::Lora(c) => {
                set("r", json!(c.r));
                set("lora_alpha", number(c.lora_alpha));
                set("lora_dropout", json!(c.lora_dropout));
                set("target_modules", targets(&c.target_modules));
                set("exclude_modules", targets(&c.exclude_modules));
                set("fan_in_fan_out", json!(c.fan_in_fan_out));
                set("bias", json!(c.bias.as_str()));
                set("use_rslora", json!(c.use_rslora));
                set("modules_to_save", opt(&c.modules_to_save));
                set("init_lora_weights", json!(c.init_lora_weights));
                set("layers_to_transform", json!(c.layers_to_transform));
            }
            PeftKind::Ia3(c) => {
                set("target_modules", targets(&c.target_modules));
                set("feedforward_modules", targets(&c.feedforward_modules));
                set("exclude_modules", targets(&c.exclude_modules));
                set("fan_in_fan_out", json!(c.fan_in_fan_out));
                set("modules_to_save", opt(&c.modules_to_save));
                set("init_ia3_weights", json!(c.init_ia3_weights));
            }
            PeftKind::PrefixTuning(c) => {
                set("num_virtual_tokens", json!(c.num_virtual_tokens));
                set("prefix_projection", json!(c.prefix_projection));
                set("encoder_hidden_size", json!(c.encoder_hidden_size));
                set("token_dim", json!(c.token_dim));
                set("num_layers", json!(c.num_layers));
                set("num_attention_heads", json!(c.num_attention_heads));
                set("num_transformer_submodules", json!(1));
            }
            PeftKind::Bottleneck(c) => {
                let placement = match c.placement {
                    Placement::Houlsby => "houlsby",
                    Placement::Pfeiffer => "pfeiffer",
                };
                set("config", json!(placement));
                set("reduction_factor", json!(c.reduction_factor));
                set("non_linearity", json!(c.non_linearity));
                set("modules_to_save", opt(&c.modules_to_save));
            }
        }
        Value::Object(out)
    }

    /// Writes `adapter_config.json` into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("adapter_config.json");
        ptm_models::config::write_json(&self.to_json(), &path)?;
        Ok(())
    }
}

/// An integral float as a JSON integer (PEFT writes `lora_alpha: 16`, not `16.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// Keys ptm interprets (everything else is carried as `extra`).
const KNOWN_KEYS: [&str; 27] = [
    "peft_type",
    "task_type",
    "base_model_name_or_path",
    "inference_mode",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "exclude_modules",
    "fan_in_fan_out",
    "bias",
    "use_rslora",
    "modules_to_save",
    "init_lora_weights",
    "layers_to_transform",
    "feedforward_modules",
    "init_ia3_weights",
    "num_virtual_tokens",
    "prefix_projection",
    "encoder_hidden_size",
    "token_dim",
    "num_layers",
    "num_attention_heads",
    "num_transformer_submodules",
    "config",
    "reduction_factor",
    "non_linearity",
];

/// LoRA settings ptm does not implement, with the value that means "off".
const LORA_UNSUPPORTED: [(&str, &str); 11] = [
    ("use_dora", "false"),
    ("lora_bias", "false"),
    ("use_qalora", "false"),
    ("alpha_pattern", "{}"),
    ("rank_pattern", "{}"),
    ("layer_replication", "null"),
    ("target_parameters", "null"),
    ("trainable_token_indices", "null"),
    ("use_bdlora", "null"),
    ("alora_invocation_tokens", "null"),
    ("arrow_config", "null"),
];

fn defaults(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

// The key sets of PEFT's config classes with their defaults (what `save_pretrained` writes for
// an untouched config), so that a file ptm writes has exactly PEFT's keys.
fn lora_defaults() -> Map<String, Value> {
    let mut m = common_defaults("LORA");
    m.extend(defaults(&[
        ("alora_invocation_tokens", Value::Null),
        ("alpha_pattern", json!({})),
        ("arrow_config", Value::Null),
        ("bias", json!("none")),
        ("corda_config", Value::Null),
        ("ensure_weight_tying", json!(false)),
        ("eva_config", Value::Null),
        ("exclude_modules", Value::Null),
        ("fan_in_fan_out", json!(false)),
        ("init_lora_weights", json!(true)),
        ("kasa_config", Value::Null),
        ("layer_replication", Value::Null),
        ("layers_pattern", Value::Null),
        ("layers_to_transform", Value::Null),
        ("loftq_config", json!({})),
        ("lora_alpha", json!(8)),
        ("lora_bias", json!(false)),
        ("lora_dropout", json!(0.0)),
        ("lora_ga_config", Value::Null),
        ("megatron_config", Value::Null),
        ("megatron_core", json!("megatron.core")),
        ("modules_to_save", Value::Null),
        ("monteclora_config", Value::Null),
        ("qalora_group_size", json!(16)),
        ("r", json!(8)),
        ("rank_pattern", json!({})),
        ("target_modules", Value::Null),
        ("target_parameters", Value::Null),
        ("trainable_token_indices", Value::Null),
        ("use_bdlora", Value::Null),
        ("use_dora", json!(false)),
        ("use_qalora", json!(false)),
        ("use_rslora", json!(false)),
        ("velora_config", Value::Null),
    ]));
    m
}

fn ia3_defaults() -> Map<String, Value> {
    let mut m = common_defaults("IA3");
    m.extend(defaults(&[
        ("exclude_modules", Value::Null),
        ("fan_in_fan_out", json!(false)),
        ("feedforward_modules", Value::Null),
        ("init_ia3_weights", json!(true)),
        ("modules_to_save", Value::Null),
        ("target_modules", Value::Null),
    ]));
    m
}

fn prefix_defaults() -> Map<String, Value> {
    let mut m = common_defaults("PREFIX_TUNING");
    m.extend(defaults(&[
        ("encoder_hidden_size", Value::Null),
        ("init_weights", Value::Null),
        ("modules_to_save", Value::Null),
        ("num_attention_heads", Value::Null),
        ("num_layers", Value::Null),
        ("num_transformer_submodules", Value::Null),
        ("num_virtual_tokens", Value::Null),
        ("prefix_projection", json!(false)),
        ("token_dim", Value::Null),
    ]));
    m
}

fn bottleneck_defaults() -> Map<String, Value> {
    let mut m = common_defaults("BOTTLENECK");
    m.extend(defaults(&[
        ("config", json!("houlsby")),
        ("modules_to_save", Value::Null),
        ("non_linearity", json!("relu")),
        ("reduction_factor", json!(16)),
    ]));
    m
}

fn common_defaults(peft_type: &str) -> Map<String, Value> {
    defaults(&[
        ("auto_mapping", Value::Null),
        ("base_model_name_or_path", Value::Null),
        ("inference_mode", json!(true)),
        ("peft_type", json!(peft_type)),
        ("peft_version", json!(PEFT_FORMAT_VERSION)),
        ("revision", Value::Null),
        ("task_type", Value::Null),
    ])
}

/// Typed access to a config's keys, each error naming the file and key.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    label: &'a str,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, want: &str) -> crate::Error {
        let v = self.map.get(key).cloned().unwrap_or(Value::Null);
        config_err(self.label, format!("{key} = {v}: expected {want}"))
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        self.get(key)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.bad(key, "a string"))
            })
            .transpose()
    }

    fn usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| self.bad(key, "a non-negative integer"))
            })
            .transpose()
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(key, "a number")))
            .transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false")))
            .transpose()
    }

    fn list(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|s| s.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| self.bad(key, "a list of module names"))
            })
            .transpose()
    }

    fn targets(&self, key: &str) -> Result<Option<Targets>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s == "all-linear" => Ok(Some(Targets::AllLinear)),
            Some(Value::String(s)) => {
                regex::Regex::new(s)
                    .map_err(|e| config_err(self.label, format!("{key} = {s:?}: {e}")))?;
                Ok(Some(Targets::Regex(s.clone())))
            }
            Some(_) => Ok(self.list(key)?.map(Targets::Names)),
        }
    }

    fn layers(&self, key: &str) -> Result<Option<Vec<usize>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_u64() => Ok(Some(vec![v.as_u64().unwrap_or(0) as usize])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().map(|n| n as usize))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a layer index or a list of them")),
            Some(_) => Err(self.bad(key, "a layer index or a list of them")),
        }
    }

    fn refuse_unless_default(&self, keys: &[(&str, &str)]) -> Result<()> {
        for (key, off) in keys {
            let Some(v) = self.map.get(*key) else {
                continue;
            };
            let off: Value = serde_json::from_str(off).unwrap_or(Value::Null);
            if *v != off && !v.is_null() {
                return Err(config_err(
                    self.label,
                    format!("{key} = {v} is not implemented by ptm (only {off})"),
                ));
            }
        }
        Ok(())
    }
}
