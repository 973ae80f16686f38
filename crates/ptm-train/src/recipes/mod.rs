//! Training recipes run by `cargo xtask train <recipe>`.

pub mod bert_features;
pub mod bert_finetune;
pub mod gpt2;
pub mod gpt2_peft;

/// A short stable hex digest of `text` (FNV-1a 64), naming cached artifacts by their settings.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
