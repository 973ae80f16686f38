//! `cargo xtask report`: the README's results table, regenerated from the latest `metrics.json`
//! of every recipe under `output/`, with the date of each run, the machine and the commit.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where the table goes in the README.
const START: &str = "<!-- report:start -->";
const END: &str = "<!-- report:end -->";

/// Recipes in table order, with how to read their headline figures.
const RECIPES: [&str; 13] = [
    "gpt2-finetune",
    "gpt2-lora",
    "gpt2-prefix",
    "gpt2-ia3",
    "bert-features",
    "bert-finetune",
    "bert-lora",
    "bert-adapter",
    "bert-tagger",
    "bert-mlm",
    "vit-pretrain",
    "vit-finetune",
    "spirals",
];

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or("—".into(), |x| format!("{x:.digits$}"))
}

/// The headline of one recipe's metrics: (result, what it is compared with, cost).
fn headline(recipe: &str, m: &Value) -> Option<(String, String, String)> {
    let secs = |k: &[&str]| fmt(num(m, k), 0) + " s";
    Some(match recipe {
        "gpt2-finetune" => (
            format!(
                "held-out perplexity {}",
                fmt(num(m, &["perplexity_after"]), 0)
            ),
            format!(
                "before {} · from scratch {}",
                fmt(num(m, &["perplexity_before"]), 0),
                fmt(num(m, &["perplexity_scratch"]), 0)
            ),
            secs(&["train_runtime_s"]),
        ),
        "gpt2-lora" | "gpt2-prefix" | "gpt2-ia3" => (
            format!(
                "held-out perplexity {} ({}% trainable, {} KiB saved)",
                fmt(num(m, &["adapter", "perplexity"]), 0),
                fmt(num(m, &["adapter", "trainable_percent"]), 2),
                fmt(num(m, &["adapter", "saved_bytes"]).map(|b| b / 1024.0), 0)
            ),
            format!(
                "before {} · full fine-tuning {}",
                fmt(num(m, &["perplexity_before"]), 0),
                fmt(num(m, &["full_finetune", "perplexity"]), 0)
            ),
            secs(&["total_s"]),
        ),
        "bert-features" => (
            format!(
                "test accuracy {} (mean-pooled), {} ([CLS])",
                fmt(num(m, &["test_accuracy_mean"]), 4),
                fmt(num(m, &["test_accuracy_cls"]), 4)
            ),
            format!("bag of words {}", fmt(num(m, &["test_accuracy_bow"]), 4)),
            secs(&["total_s"]),
        ),
        "bert-finetune" | "bert-lora" | "bert-adapter" => (
            format!(
                "test accuracy {} ({} trainable)",
                fmt(num(m, &["test_accuracy"]), 4),
                fmt(num(m, &["trainable_params"]), 0)
            ),
            format!(
                "untrained head {}",
                fmt(num(m, &["test_accuracy_before"]), 4)
            ),
            secs(&["total_s"]),
        ),
        "bert-tagger" => (
            format!("token accuracy {}", fmt(num(m, &["token_accuracy"]), 4)),
            format!(
                "most-frequent tag {}",
                fmt(num(m, &["baseline_accuracy"]), 4)
            ),
            secs(&["total_s"]),
        ),
        "bert-mlm" => (
            format!(
                "masked-token accuracy {} (perplexity {})",
                fmt(num(m, &["masked_accuracy_after"]), 4),
                fmt(num(m, &["perplexity_after"]), 1)
            ),
            format!(
                "before {} · from scratch {} (perplexity {})",
                fmt(num(m, &["masked_accuracy_before"]), 4),
                fmt(num(m, &["masked_accuracy_scratch"]), 4),
                fmt(num(m, &["perplexity_scratch"]), 1)
            ),
            secs(&["total_s"]),
        ),
        "vit-pretrain" => (
            format!(
                "Fashion-MNIST test accuracy {}",
                fmt(num(m, &["test_accuracy"]), 4)
            ),
            format!("{} test images", fmt(num(m, &["n_test"]), 0)),
            secs(&["train_s"]),
        ),
        "vit-finetune" => {
            let shots = m.get("shots")?.as_array()?;
            let part = |key: &str| {
                shots
                    .iter()
                    .map(|s| {
                        let sd = num(s, &[&format!("{key}_sd")]);
                        format!(
                            "{}/class {}{}",
                            fmt(num(s, &["per_class"]), 0),
                            fmt(num(s, &[key]), 4),
                            sd.map_or(String::new(), |v| format!(" ± {v:.4}"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (
                format!("digit test accuracy, transferred: {}", part("transferred")),
                format!(
                    "linear probe: {} · from scratch: {} · from scratch, no shift: {}",
                    part("linear_probe"),
                    part("scratch"),
                    part("scratch_no_shift")
                ),
                secs(&["total_s"]),
            )
        }
        _ => return None,
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} threads")
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The date a file was last written, as `YYYY-MM-DD` (UTC).
fn date_of(path: &Path) -> String {
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    civil(secs.div_euclid(86_400))
}

/// `YYYY-MM-DD` of the day `days` after 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The table for the runs found under `output`.
pub fn table(output: &Path) -> String {
    let mut rows = vec![
        format!(
            "Runs under `{}/`, collected by `cargo xtask report` at commit {} on {}.",
            output.display(),
            commit(),
            machine()
        ),
        String::new(),
        "| recipe | result | compared with | time | run on |".into(),
        "| --- | --- | --- | --- | --- |".into(),
    ];
    for r in RECIPES {
        let path = output.join(r).join("metrics.json");
        let Some(m) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            continue;
        };
        if let Some((result, compared, time)) = headline(r, &m) {
            rows.push(format!(
                "| `{r}` | {result} | {compared} | {time} | {} |",
                date_of(&path)
            ));
        }
    }
    rows.join("\n")
}

/// Runs the command: prints the table and writes it between the README's markers.
pub fn run(readme: PathBuf, output: PathBuf) -> Result<(), String> {
    let t = table(&output);
    println!("{t}");
    let text =
        std::fs::read_to_string(&readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        return Err(format!(
            "{}: no {START} … {END} markers to write the table between",
            readme.display()
        ));
    };
    let updated = format!("{}{START}\n{t}\n{}", &text[..a], &text[b..]);
    std::fs::write(&readme, updated).map_err(|e| format!("{}: {e}", readme.display()))?;
    eprintln!("wrote the table into {}", readme.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Day numbers from Python's `(date(...) - date(1970, 1, 1)).days`.
    #[test]
    fn days_become_civil_dates() {
        for (days, want) in [
            (0, "1970-01-01"),
            (11016, "2000-02-29"),
            (20785, "2026-11-28"),
            (47541, "2100-03-01"),
        ] {
            assert_eq!(super::civil(days), want);
        }
    }
}
