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

/// A short stable hex digest of `text` (FNV-1a 64), naming cached artifacts by their settings.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
