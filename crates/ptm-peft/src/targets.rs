//! Which modules an adapter applies to: PEFT's matching rules, plus an error (where PEFT stays
//! silent) for every entry that matches nothing.
//!
//! A module is named by its path from the model root, as transformers names it in memory
//! (`transformer.h.0.attn.c_attn`). A module may have a second spelling (ViT's layers are
//! `vit.encoder.layer.0.attention.attention.query` in checkpoints and `vit.layers.0.attention.q_proj`
//! in transformers 5); an entry matches when it matches either.

use crate::config::Targets;
use crate::error::{config_err, Error, Result};
use regex::Regex;

/// A module's path and its other spelling, if any.
#[derive(Clone, Debug)]
pub struct ModuleName {
    /// The path ptm builds the module at (the checkpoint's naming).
    pub path: String,
    /// The same module under transformers' in-memory naming, where it differs.
    pub alias: Option<String>,
}

impl ModuleName {
    fn spellings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.alias.as_deref())
    }
}

/// Whether `name` is matched by the list entry `entry`: equal, or ending in `.entry`.
fn matches_entry(name: &str, entry: &str) -> bool {
    name == entry
        || (name.len() > entry.len()
            && name.ends_with(entry)
            && name.as_bytes()[name.len() - entry.len() - 1] == b'.')
}

/// The layer index of a path (`….h.3.…`, `….layer.3.…`, `….layers.3.…`), as PEFT's default
/// `layers_pattern` finds it.
pub fn layer_index(path: &str) -> Option<usize> {
    let parts: Vec<&str> = path.split('.').collect();
    parts.windows(2).find_map(|w| {
        matches!(w[0], "h" | "layer" | "layers" | "block" | "blocks")
            .then(|| w[1].parse().ok())
            .flatten()
    })
}

/// Compiled targets.
pub(crate) enum Matcher {
    Names(Vec<String>),
    Regex(Regex),
    All,
}

impl Matcher {
    pub(crate) fn new(targets: &Targets, key: &str) -> Result<Matcher> {
        Ok(match targets {
            Targets::Names(n) => Matcher::Names(n.clone()),
            Targets::Regex(r) => Matcher::Regex(
                Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| config_err("<config>", format!("{key} = {r:?}: {e}")))?,
            ),
            Targets::AllLinear => Matcher::All,
        })
    }

    /// Whether the module is matched, and by which spelling (`false`: the path, `true`: the
    /// alias).
    pub(crate) fn matches(&self, module: &ModuleName) -> Option<bool> {
        let hit = |name: &str| match self {
            Matcher::Names(list) => list.iter().any(|e| matches_entry(name, e)),
            Matcher::Regex(re) => re.is_match(name),
            Matcher::All => true,
        };
        if hit(&module.path) {
            Some(false)
        } else if module.alias.as_deref().is_some_and(hit) {
            Some(true)
        } else {
            None
        }
    }

    /// An error for the first list entry (or the regex) that matches none of `modules`.
    pub(crate) fn check_all_used(&self, key: &str, modules: &[ModuleName]) -> Result<()> {
        let unmatched: Option<String> = match self {
            Matcher::Names(list) => list
                .iter()
                .find(|e| {
                    !modules
                        .iter()
                        .any(|m| m.spellings().any(|s| matches_entry(s, e)))
                })
                .cloned(),
            Matcher::Regex(re) => (!modules
                .iter()
                .any(|m| m.spellings().any(|s| re.is_match(s))))
            .then(|| re.as_str().to_string()),
            Matcher::All => None,
        };
        match unmatched {
            None => Ok(()),
            Some(target) => Err(no_match(key, &target, modules)),
        }
    }
}

/// The no-match error: the distinct module names below the layer index, in model order.
pub(crate) fn no_match(key: &str, target: &str, modules: &[ModuleName]) -> Error {
    let mut names: Vec<String> = vec![];
    for m in modules {
        for s in m.spellings() {
            let short = short_name(s);
            if !names.contains(&short) {
                names.push(short);
            }
        }
    }
    Error::NoMatch {
        key: key.to_string(),
        target: target.to_string(),
        kind: "linear layer".into(),
        candidates: names.join(", "),
        example: modules.first().map_or("-".into(), |m| m.path.clone()),
    }
}

/// `transformer.h.0.attn.c_attn` → `attn.c_attn`; a path without a layer index stays whole.
fn short_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    match parts.iter().rposition(|p| p.parse::<usize>().is_ok()) {
        Some(i) if i + 1 < parts.len() => parts[i + 1..].join("."),
        _ => path.to_string(),
    }
}

/// PEFT's default targets per model type, for when `target_modules` is not given.
pub fn default_targets(kind: &str, model_type: &str) -> Option<(Targets, Option<Targets>)> {
    let t = Targets::names;
    match (kind, model_type) {
        ("LORA", "gpt2") => Some((t(&["c_attn"]), None)),
        ("LORA", "bert") => Some((t(&["query", "value"]), None)),
        ("IA3", "gpt2") => Some((t(&["c_attn", "mlp.c_proj"]), Some(t(&["mlp.c_proj"])))),
        ("IA3", "bert") => Some((
            t(&["key", "value", "output.dense"]),
            Some(t(&["output.dense"])),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str) -> ModuleName {
        ModuleName {
            path: path.into(),
            alias: None,
        }
    }

    #[test]
    fn suffix_matching_is_by_whole_components() {
        let t = Matcher::new(&Targets::names(&["c_proj"]), "target_modules").unwrap();
        assert_eq!(t.matches(&m("transformer.h.0.attn.c_proj")), Some(false));
        assert_eq!(t.matches(&m("transformer.h.0.attn.xc_proj")), None);
        assert_eq!(t.matches(&m("c_proj")), Some(false));
        let t = Matcher::new(&Targets::names(&["mlp.c_proj"]), "target_modules").unwrap();
        assert_eq!(t.matches(&m("transformer.h.0.attn.c_proj")), None);
        assert_eq!(t.matches(&m("transformer.h.0.mlp.c_proj")), Some(false));
    }

    #[test]
    fn regex_matches_the_whole_path() {
        let t = Matcher::new(&Targets::Regex(r".*\.0\.attn\.c_attn".into()), "t").unwrap();
        assert!(t.matches(&m("transformer.h.0.attn.c_attn")).is_some());
        assert!(t.matches(&m("transformer.h.10.attn.c_attn")).is_none());
        let t = Matcher::new(&Targets::Regex("attn".into()), "t").unwrap();
        assert!(t.matches(&m("transformer.h.0.attn")).is_none());
    }

    #[test]
    fn aliases_match_and_say_so() {
        let module = ModuleName {
            path: "vit.encoder.layer.0.attention.attention.query".into(),
            alias: Some("vit.layers.0.attention.q_proj".into()),
        };
        let t = Matcher::new(&Targets::names(&["q_proj"]), "t").unwrap();
        assert_eq!(t.matches(&module), Some(true));
        let t = Matcher::new(&Targets::names(&["query"]), "t").unwrap();
        assert_eq!(t.matches(&module), Some(false));
    }

    #[test]
    fn unmatched_entry_lists_the_names() {
        let modules = [
            m("transformer.h.0.attn.c_attn"),
            m("transformer.h.1.attn.c_attn"),
        ];
        let t = Matcher::new(&Targets::names(&["c_attn", "query"]), "target_modules").unwrap();
        let e = t
            .check_all_used("target_modules", &modules)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"query\""), "{e}");
        assert!(e.contains("attn.c_attn"), "{e}");
    }

    #[test]
    fn layer_indices() {
        assert_eq!(layer_index("transformer.h.11.attn.c_attn"), Some(11));
        assert_eq!(layer_index("bert.encoder.layer.3.output.dense"), Some(3));
        assert_eq!(layer_index("classifier"), None);
    }
}
