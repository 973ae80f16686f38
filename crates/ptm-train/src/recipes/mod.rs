//! Training recipes run by `cargo xtask train <recipe>`.

pub mod bert_features;
pub mod bert_finetune;
pub mod bert_mlm;
pub mod bert_tagger;
pub mod gpt2;
pub mod gpt2_peft;
pub mod vit;

/// What the user chose on the command line for a sentence or token classification recipe
/// (`bert-features`, `bert-finetune`, `bert-lora`, `bert-adapter`, `bert-tagger`).
#[derive(Clone, Debug, Default)]
pub struct BertOptions {
    /// Where the run writes (default `output/<recipe>`).
    pub output_dir: Option<std::path::PathBuf>,
    /// A Hugging Face BERT directory (default: the fetched all-MiniLM-L6-v2).
    pub model: Option<std::path::PathBuf>,
    /// The labelled data (default: the recipe's fetched corpus).
    pub data: Option<std::path::PathBuf>,
    /// A TOML/JSON file of settings (TrainingArguments' names).
    pub config: Option<std::path::PathBuf>,
    /// `key=value` settings, applied after the file.
    pub sets: Vec<String>,
    /// A few examples and steps: tests the wiring (CI).
    pub smoke: bool,
}

impl BertOptions {
    /// The run's settings: `defaults(smoke, output_dir)` with `output_dir` from `--output-dir`,
    /// else `output/<recipe>`; then the settings file, then the `--set`s. Creates the output
    /// directory.
    pub fn resolve_args(
        &self,
        recipe: &str,
        defaults: impl Fn(bool, &std::path::Path) -> crate::args::TrainingArguments,
    ) -> crate::Result<crate::args::TrainingArguments> {
        let out = self
            .output_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from(format!("output/{recipe}")));
        let args = crate::args::TrainingArguments::resolve(
            &defaults(self.smoke, &out),
            self.config.as_deref(),
            &self.sets,
        )?;
        std::fs::create_dir_all(&args.output_dir)
            .map_err(|e| crate::error::data(args.output_dir.display(), e.to_string()))?;
        Ok(args)
    }

    /// The encoder: `--model`, else the fetched all-MiniLM-L6-v2.
    pub fn model_dir(&self) -> crate::Result<std::path::PathBuf> {
        match &self.model {
            Some(m) => Ok(m.clone()),
            None => crate::fetch::fetch("minilm"),
        }
    }
}

/// A short stable hex digest of `text` (FNV-1a 64), naming cached artifacts by their settings.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
