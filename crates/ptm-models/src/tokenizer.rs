//! Tokenizers through the `tokenizers` crate, built from whatever a model directory holds:
//! `tokenizer.json`, GPT-2's `vocab.json` + `merges.txt`, or BERT's `vocab.txt`.

use crate::error::{input_err, Result};
use ptm_tensor::{Device, Tensor};
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;

/// A text ↔ token-id mapping, as transformers' fast tokenizers compute it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: String,
}

/// Token ids of a batch, padded to the longest sequence (right side).
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, T]` i64 ids, padding filled with the pad id.
    pub input_ids: Tensor,
    /// `[B, T]` i64: 1 for tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
}

fn tok_err(source: &str, e: impl std::fmt::Display) -> crate::Error {
    input_err(source.to_string(), e.to_string())
}

impl Tokenizer {
    /// From a model directory: `tokenizer.json` if present, else `vocab.json` + `merges.txt`
    /// (GPT-2 byte-level BPE), else `vocab.txt` (BERT WordPiece, lower-cased unless the directory's
    /// `tokenizer_config.json` says `do_lower_case: false`).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Tokenizer> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Tokenizer::from_json(&json);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.is_file() && merges.is_file() {
            return Tokenizer::gpt2(&vocab, &merges);
        }
        let wordpiece = dir.join("vocab.txt");
        if wordpiece.is_file() {
            let lower =
                crate::config::read_config::<serde_json::Value>(&dir.join("tokenizer_config.json"))
                    .ok()
                    .and_then(|c| c.get("do_lower_case").and_then(|v| v.as_bool()))
                    .unwrap_or(true);
            return Tokenizer::bert(&wordpiece, lower);
        }
        Err(input_err(
            dir.display().to_string(),
            "no tokenizer: expected tokenizer.json, vocab.json + merges.txt, or vocab.txt",
        ))
    }

    /// From a `tokenizer.json`.
    pub fn from_json(path: &Path) -> Result<Tokenizer> {
        let source = path.display().to_string();
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(&source, e))?;
        // A saved tokenizer.json may pad and truncate to a fixed length (all-MiniLM-L6-v2's does,
        // to 128); transformers applies neither unless asked, and `encode_batch` pads itself.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| tok_err(&source, e))?;
        Ok(Tokenizer { inner, source })
    }

    /// GPT-2's byte-level BPE from `vocab.json` (GPT-2's `encoder.json`) and `merges.txt`
    /// (`vocab.bpe`), configured as transformers' `GPT2TokenizerFast`.
    pub fn gpt2(vocab: &Path, merges: &Path) -> Result<Tokenizer> {
        let source = vocab.display().to_string();
        let (v, m) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&v, &m)
            .build()
            .map_err(|e| tok_err(&source, e))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner
            .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
            .with_decoder(Some(ByteLevel::default()))
            .with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
        // GPT2TokenizerFast registers end-of-text as a special token: never split, and dropped
        // by `decode(.., skip_special = true)`.
        if inner.token_to_id("<|endoftext|>").is_some() {
            inner.add_special_tokens(&[tokenizers::AddedToken::from("<|endoftext|>", true)]);
        }
        Ok(Tokenizer { inner, source })
    }

    /// BERT's WordPiece from `vocab.txt`, configured as transformers' `BertTokenizerFast`.
    pub fn bert(vocab: &Path, lowercase: bool) -> Result<Tokenizer> {
        let source = vocab.display().to_string();
        let wp = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| tok_err(&source, e))?;
        let id = |t: &str| {
            tokenizers::Model::token_to_id(&wp, t)
                .ok_or_else(|| input_err(source.clone(), format!("vocabulary has no {t}")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut inner = tokenizers::Tokenizer::new(wp);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )));
        // As BertTokenizerFast: the bracketed tokens are special (never split, skipped on decode).
        let specials: Vec<tokenizers::AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter(|t| inner.token_to_id(t).is_some())
            .map(|t| tokenizers::AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(&specials);
        Ok(Tokenizer { inner, source })
    }

    /// Ids of `text`; `special` adds the model's special tokens (BERT's [CLS] … [SEP]).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, special)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Ids of many texts, on all cores.
    pub fn encode_many(&self, texts: &[String], special: bool) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let encs = self
            .inner
            .encode_batch(inputs, special)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(encs.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// A padded batch with its attention mask; `pad_id` fills the padding.
    pub fn encode_batch(&self, texts: &[String], special: bool, pad_id: u32) -> Result<Batch> {
        let ids = self.encode_many(texts, special)?;
        let t = ids.iter().map(|v| v.len()).max().unwrap_or(0).max(1);
        let (mut flat, mut mask) = (vec![], vec![]);
        for row in &ids {
            flat.extend(row.iter().map(|&x| x as i64));
            flat.extend(std::iter::repeat_n(pad_id as i64, t - row.len()));
            mask.extend(std::iter::repeat_n(1i64, row.len()));
            mask.extend(std::iter::repeat_n(0i64, t - row.len()));
        }
        let b = ids.len();
        Ok(Batch {
            input_ids: Tensor::from_vec(flat, [b, t], &Device::Cpu)?,
            attention_mask: Tensor::from_vec(mask, [b, t], &Device::Cpu)?,
            lengths: ids.iter().map(|v| v.len()).collect(),
        })
    }

    /// Text of `ids`; `skip_special` drops special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| tok_err(&self.source, e))
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Writes `tokenizer.json` into `dir` (transformers reads it as a fast tokenizer).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let path = dir.as_ref().join("tokenizer.json");
        self.inner
            .save(&path, false)
            .map_err(|e| tok_err(&path.display().to_string(), e))
    }
}
