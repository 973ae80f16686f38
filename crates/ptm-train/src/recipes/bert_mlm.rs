//! `bert-mlm`: masked-language-model training (BERT's own objective) of the real
//! all-MiniLM-L6-v2 on a new corpus, the Debian fortunes, against the same architecture trained
//! from scratch with the same steps and settings.
//!
//! Texts are tokenized with the model's WordPiece tokenizer, joined with `[SEP]` and cut into
//! blocks of `block_size − 2` pieces, each wrapped as `[CLS] block [SEP]` (transformers'
//! `group_texts`); 15 % of the pieces are scored, with the 80/10/10 rule
//! ([`crate::data::MlmData`]). A seeded 10 % of the blocks is held out (at most 256 of them
//! evaluated); its masks are fixed, so every figure scores the same tokens.
//!
//! all-MiniLM-L6-v2 is distributed as a sentence encoder without its masked-LM head, so
//! `cls.predictions` (dense, layer norm, decoder bias; the decoder is tied to the pretrained word
//! embedding) starts fresh: the "before" figures are those of that fresh head on the pretrained
//! encoder. The margin that matters is after vs scratch: the same steps, from the pretrained
//! weights or from random ones.

use super::bert_features::write_json;
use super::gpt2::eval_cap;
use super::BertOptions;
use crate::args::{SchedulerType, Strategy, TrainingArguments};
use crate::data::{read_texts, LmData, MlmData, MlmSpecial, TrainData};
use crate::error::{data, Error, Result};
use crate::fetch;
use crate::plot::{loss_png, series_of, Series};
use crate::trainer::Trainer;
use ptm_models::bert::{BertForMaskedLm, BertInputs};
use ptm_models::tokenizer::Tokenizer;
use ptm_models::Checkpoint;
use ptm_tensor::DType;
use std::path::Path;
use std::time::Instant;

/// The share of pieces scored (BERT's 15 %).
pub const MLM_PROBABILITY: f64 = 0.15;

/// Default settings: 200 steps of 16 blocks of 32 tokens (about 70 scored tokens per block
/// batch), AdamW lr 5e-4, linear decay after 10 % warm-up; the from-scratch run uses the same.
/// (The fresh head needs the high rate: at 1e-4 both runs stay on the unigram plateau, about 5 %
/// accuracy, for the first hundred steps; transformers behaves the same.)
pub fn default_args(smoke: bool, output_dir: &Path) -> TrainingArguments {
    TrainingArguments {
        output_dir: output_dir.to_path_buf(),
        max_steps: if smoke { 3 } else { 200 },
        per_device_train_batch_size: if smoke { 4 } else { 16 },
        per_device_eval_batch_size: 64,
        learning_rate: 5e-4,
        weight_decay: 0.01,
        lr_scheduler_type: SchedulerType::Linear,
        warmup_ratio: 0.1,
        logging_steps: if smoke { 1 } else { 10 },
        eval_strategy: Strategy::Steps,
        eval_steps: if smoke { 2 } else { 50 },
        save_strategy: Strategy::Steps,
        save_steps: if smoke { 2 } else { 100 },
        save_total_limit: 1,
        block_size: 32,
        eval_fraction: 0.1,
        seed: 42,
        ..Default::default()
    }
}

/// Masked-token figures of one model on the held-out blocks.
#[derive(Clone, Copy, Debug)]
pub struct MlmScore {
    /// Share of scored tokens whose top prediction is the original.
    pub accuracy: f64,
    /// exp of the mean cross-entropy over scored tokens.
    pub perplexity: f64,
}

/// The figures of a run (`metrics.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BertMlmMetrics {
    /// Masked-token accuracy of the pretrained encoder with its fresh head, before training.
    pub masked_accuracy_before: f64,
    /// After masked-LM training.
    pub masked_accuracy_after: f64,
    /// The same architecture trained from scratch with the same steps and settings.
    pub masked_accuracy_scratch: f64,
    /// Perplexity over the scored tokens, before.
    pub perplexity_before: f64,
    /// After.
    pub perplexity_after: f64,
    /// From scratch.
    pub perplexity_scratch: f64,
    /// Held-out scored tokens.
    pub eval_tokens: usize,
    /// Held-out blocks.
    pub eval_blocks: usize,
    /// Training blocks.
    pub train_blocks: usize,
    /// Optimizer steps of each training run.
    pub steps: usize,
    /// Seconds in the training loop (the pretrained model).
    pub train_s: f64,
    /// Seconds of the whole recipe.
    pub total_s: f64,
    /// The encoder.
    pub model: String,
    /// The corpus.
    pub data: String,
}

/// Accuracy and perplexity of `ck` on the scored tokens of `eval`.
fn score(ck: &Checkpoint<BertForMaskedLm>, eval: &MlmData, bs: usize) -> Result<(MlmScore, usize)> {
    let _g = ptm_tensor::no_grad();
    let idx: Vec<usize> = (0..eval.len()).collect();
    let (mut nll, mut hits, mut n) = (0.0f64, 0usize, 0usize);
    for chunk in idx.chunks(bs.max(1)) {
        let b = eval.batch(chunk)?;
        let inputs = BertInputs {
            attention_mask: None,
            token_type_ids: None,
            train: false,
        };
        let logits = ck.model.forward_at(&b.input_ids, inputs, &b.positions)?;
        let m = b.targets.elem_count();
        let loss = logits.cross_entropy(&b.targets, -100)?.to_scalar::<f32>()? as f64;
        let pred = logits.argmax(1)?.to_dtype(DType::I64)?.to_vec::<i64>()?;
        let gold = b.targets.to_vec::<i64>()?;
        nll += loss * m as f64;
        hits += pred.iter().zip(&gold).filter(|(p, g)| p == g).count();
        n += m;
    }
    let n_f = n.max(1) as f64;
    Ok((
        MlmScore {
            accuracy: hits as f64 / n_f,
            perplexity: (nll / n_f).exp(),
        },
        n,
    ))
}

/// The ids masking needs, from the tokenizer; an error names what is missing.
fn special_ids(tok: &Tokenizer, vocab_size: usize, dir: &Path) -> Result<MlmSpecial> {
    let id = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| {
            data(
                dir.display(),
                format!("the tokenizer has no {t} token (masked-LM training needs [CLS], [SEP], [MASK])"),
            )
        })
    };
    Ok(MlmSpecial {
        cls: id("[CLS]")?,
        sep: id("[SEP]")?,
        mask: id("[MASK]")?,
        vocab_size: vocab_size as u32,
    })
}

/// Runs the recipe; returns the metrics it wrote to `output_dir/metrics.json`.
pub fn run(opts: &BertOptions) -> Result<BertMlmMetrics> {
    let t_all = Instant::now();
    let args = opts.resolve_args("bert-mlm", default_args)?;
    let out = args.output_dir.clone();
    if args.block_size < 8 {
        return Err(Error::Setting {
            key: "block_size".into(),
            msg: format!(
                "{} is too short for [CLS] … [SEP] blocks (at least 8)",
                args.block_size
            ),
        });
    }
    let data_path = match &opts.data {
        Some(p) => p.clone(),
        None => fetch::fetch("fortunes")?.join("fortunes.jsonl"),
    };
    let model_dir = opts.model_dir()?;
    let ck = Checkpoint::<BertForMaskedLm>::from_pretrained(&model_dir, DType::F32, None)?;
    if args.block_size > ck.config.max_position_embeddings {
        return Err(Error::Setting {
            key: "block_size".into(),
            msg: format!(
                "{} exceeds the model's {} positions",
                args.block_size, ck.config.max_position_embeddings
            ),
        });
    }
    let tok = Tokenizer::from_dir(&model_dir)?;
    let special = special_ids(&tok, ck.config.vocab_size, &model_dir)?;

    let texts = read_texts(&data_path)?;
    let docs = tok.encode_many(&texts, false)?;
    let what = format!("corpus ({})", data_path.display());
    let blocks = LmData::pack(&docs, Some(special.sep), args.block_size - 2, &what)?;
    let (train, mut eval) = blocks.split(args.eval_fraction, args.seed);
    eval.truncate(eval_cap(opts.smoke));
    let (n_train, n_eval) = (train.len(), eval.len());
    let train = MlmData::new(train, special, MLM_PROBABILITY, args.seed)?;
    // Another seed for the held-out masks, so they are not the training batches' masks.
    let eval = MlmData::new(eval, special, MLM_PROBABILITY, args.seed ^ 0x5eed)?;
    eprintln!(
        "bert-mlm: {n_train} training and {n_eval} held-out blocks of {} tokens from {}",
        args.block_size,
        data_path.display()
    );

    let bs = args.per_device_eval_batch_size;
    let (before, eval_tokens) = score(&ck, &eval, bs)?;
    eprintln!(
        "bert-mlm: before: masked accuracy {:.4}, perplexity {:.1} ({eval_tokens} tokens)",
        before.accuracy, before.perplexity
    );
    let trainer = Trainer::new(&args, "bert-mlm");
    let o = trainer.train(&ck, &train, Some(&eval))?;
    if o.interrupted {
        return Err(data(
            out.display(),
            "interrupted; resume with --set resume_from_checkpoint=latest",
        ));
    }
    let (after, _) = score(&ck, &eval, bs)?;
    eprintln!(
        "bert-mlm: after:  masked accuracy {:.4}, perplexity {:.1}",
        after.accuracy, after.perplexity
    );
    ck.save_pretrained(out.join("final"))?;
    tok.save(out.join("final"))?;

    let sargs = TrainingArguments {
        output_dir: out.join("scratch"),
        resume_from_checkpoint: args
            .resume_from_checkpoint
            .as_ref()
            .filter(|_| !crate::checkpoint::list(&out.join("scratch")).is_empty())
            .map(|_| "latest".to_string()),
        ..args.clone()
    };
    let fresh =
        Checkpoint::<BertForMaskedLm>::from_config(ck.config.clone(), DType::F32, args.seed, None)?;
    let so = Trainer::new(&sargs, "scratch").train(&fresh, &train, Some(&eval))?;
    let (scratch, _) = score(&fresh, &eval, bs)?;
    eprintln!(
        "bert-mlm: scratch: masked accuracy {:.4}, perplexity {:.1}",
        scratch.accuracy, scratch.perplexity
    );

    let (tr, ev) = series_of(&o.log_history);
    let (str_, sev) = series_of(&so.log_history);
    loss_png(
        &out.join("loss.png"),
        "bert-mlm: masked-token cross-entropy (fortunes)",
        &[
            Series {
                label: "MiniLM: train",
                points: tr,
            },
            Series {
                label: "MiniLM: held-out",
                points: ev,
            },
            Series {
                label: "from scratch: train",
                points: str_,
            },
            Series {
                label: "from scratch: held-out",
                points: sev,
            },
        ],
    )?;
    let metrics = BertMlmMetrics {
        masked_accuracy_before: before.accuracy,
        masked_accuracy_after: after.accuracy,
        masked_accuracy_scratch: scratch.accuracy,
        perplexity_before: before.perplexity,
        perplexity_after: after.perplexity,
        perplexity_scratch: scratch.perplexity,
        eval_tokens,
        eval_blocks: n_eval,
        train_blocks: n_train,
        steps: o.global_step,
        train_s: o.runtime_s,
        total_s: t_all.elapsed().as_secs_f64(),
        model: model_dir.display().to_string(),
        data: data_path.display().to_string(),
    };
    write_json(&out.join("metrics.json"), &metrics)?;
    Ok(metrics)
}
