//! Sentence classification through the generic Trainer: padded batches, a BERT classifier that
//! learns, and exact resume with an adapter on it.

use ptm_models::bert::{BertConfig, BertForSequenceClassification};
use ptm_models::tokenizer::Tokenizer;
use ptm_models::Checkpoint;
use ptm_peft::{LoraConfig, PeftConfig, PeftKind, PeftModel, Targets};
use ptm_tensor::DType;
use ptm_train::args::Strategy;
use ptm_train::data::{align, ClassifyData, TagData, Tagged, TrainData};
use ptm_train::{Trainer, TrainingArguments};
use std::path::PathBuf;

const WORDS: [&str; 12] = [
    "good", "great", "fine", "lovely", "bad", "awful", "poor", "dull", "the", "film", "was", "plot",
];

/// A WordPiece tokenizer over `WORDS`; `test` names the directory (tests run in parallel).
fn tokenizer(test: &str) -> Tokenizer {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("classify-vocab-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut vocab = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    vocab.extend(WORDS);
    vocab.push("##s");
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    Tokenizer::bert(&dir.join("vocab.txt"), true).unwrap()
}

/// Sentences whose class is whether a positive word occurs (0..4 positive, 4..8 negative).
fn sentences(n: usize) -> (Vec<String>, Vec<usize>) {
    let (mut texts, mut labels) = (vec![], vec![]);
    for i in 0..n {
        let label = i % 2;
        let word = WORDS[(i * 7 % 4) + 4 * (1 - label)];
        let filler = &WORDS[8..8 + (i % 4)];
        texts.push(format!("{} {word}", filler.join(" ")));
        labels.push(label);
    }
    (texts, labels)
}

fn config() -> BertConfig {
    BertConfig {
        vocab_size: 17,
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 32,
        max_position_embeddings: 16,
        ..Default::default()
    }
}

fn args(dir: &std::path::Path, steps: i64) -> TrainingArguments {
    TrainingArguments {
        output_dir: dir.to_path_buf(),
        max_steps: steps,
        per_device_train_batch_size: 8,
        learning_rate: 5e-3,
        logging_steps: 1,
        eval_strategy: Strategy::No,
        save_strategy: Strategy::Steps,
        save_steps: 3,
        seed: 3,
        ..Default::default()
    }
}

#[test]
fn batches_pad_to_the_longest_and_truncate_keeping_sep() {
    let tok = tokenizer("batches");
    let texts = vec!["good".to_string(), "the film was dull".to_string()];
    let d = ClassifyData::new(&tok, &texts, &[1, 0], 4, 0).unwrap();
    let b = d.batch(&[0, 1]).unwrap();
    // [CLS] good [SEP] [PAD] / [CLS] the film [SEP] (truncated to 4, [SEP] kept).
    assert_eq!(
        b.input_ids.to_vec2::<i64>().unwrap(),
        vec![vec![2, 5, 3, 0], vec![2, 13, 14, 3]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<i64>().unwrap(),
        vec![vec![1, 1, 1, 0], vec![1, 1, 1, 1]]
    );
    assert_eq!(b.labels.to_vec::<i64>().unwrap(), vec![1, 0]);
    assert!(ClassifyData::new(&tok, &texts, &[1], 4, 0).is_err());
}

#[test]
fn a_bert_classifier_learns_and_an_adapter_run_resumes_exactly() {
    let tok = tokenizer("train");
    let (texts, labels) = sentences(64);
    let data = ClassifyData::new(&tok, &texts, &labels, 16, 0).unwrap();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("classify-train");
    let _ = std::fs::remove_dir_all(&root);

    let full =
        Checkpoint::<BertForSequenceClassification>::from_config(config(), DType::F32, 1, None)
            .unwrap();
    let trainer_args = TrainingArguments {
        learning_rate: 2e-2,
        save_strategy: Strategy::No,
        ..args(&root.join("full"), 150)
    };
    let t = Trainer::new(&trainer_args, "full");
    let before = t.evaluate(&full, &data).unwrap();
    t.train(&full, &data, None).unwrap();
    let after = t.evaluate(&full, &data).unwrap();
    assert!(after < 0.5 * before, "loss {before} -> {after}");

    let adapted = || {
        let hooks = PeftModel::<BertForSequenceClassification>::hooks();
        let base = Checkpoint::<BertForSequenceClassification>::from_config(
            config(),
            DType::F32,
            1,
            Some(hooks.clone()),
        )
        .unwrap();
        let mut m = PeftModel::new(base, hooks).unwrap();
        let lora = LoraConfig {
            r: 2,
            lora_dropout: 0.1,
            target_modules: Some(Targets::names(&["query", "value"])),
            ..Default::default()
        };
        m.add_adapter(
            "default",
            PeftConfig::new(PeftKind::Lora(lora), Some("SEQ_CLS")),
            2,
        )
        .unwrap();
        m
    };
    let a = adapted();
    let straight_args = args(&root.join("straight"), 8);
    let straight = Trainer::new(&straight_args, "straight")
        .train(&a, &data, None)
        .unwrap();
    let b = adapted();
    let b_args = args(&root.join("interrupted"), 8);
    let mut t = Trainer::new(&b_args, "first half");
    t.stop_at_step = Some(4);
    assert!(t.train(&b, &data, None).unwrap().interrupted);
    let b2 = adapted();
    let resumed_args = TrainingArguments {
        resume_from_checkpoint: Some("latest".into()),
        ..args(&root.join("interrupted"), 8)
    };
    let resumed = Trainer::new(&resumed_args, "resumed")
        .train(&b2, &data, None)
        .unwrap();
    let losses = |o: &ptm_train::TrainOutcome| -> Vec<f64> {
        o.log_history.iter().filter_map(|e| e.loss).collect()
    };
    assert_eq!(losses(&resumed), losses(&straight));
    for ((n, p), (_, q)) in a
        .base()
        .params
        .all()
        .iter()
        .zip(b2.base().params.all().iter())
    {
        assert_eq!(
            p.tensor().to_vec::<f32>().unwrap(),
            q.tensor().to_vec::<f32>().unwrap(),
            "{n}"
        );
    }
}

/// Tags go on each word's first piece; other pieces and the special tokens get -100; a sentence
/// longer than the limit loses whole words at its end.
#[test]
fn tags_align_to_first_pieces() {
    let tok = tokenizer("align");
    let words: Vec<String> = ["the", "films", "was", "dull"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (ids, labels) = align(&tok, &words, &[7, 8, 9, 10], 32).unwrap();
    // [CLS] the film ##s was dull [SEP]
    assert_eq!(ids, vec![2, 13, 14, 17, 15, 12, 3]);
    assert_eq!(labels, vec![-100, 7, 8, -100, 9, 10, -100]);
    let (ids, labels) = align(&tok, &words, &[7, 8, 9, 10], 5).unwrap();
    assert_eq!(ids, vec![2, 13, 14, 17, 3]);
    assert_eq!(labels, vec![-100, 7, 8, -100, -100]);
    let s = Tagged {
        words: words.clone(),
        tags: vec!["DT".into(), "NNS".into(), "VBD".into(), "JJ".into()],
    };
    let d = TagData::new(&tok, &[&s, &s], |t| t.len() as i64, 32, 0).unwrap();
    let b = d.batch(&[0, 1]).unwrap();
    assert_eq!(b.words, 8);
    assert_eq!(b.labels.dims(), &[2, 7]);
}
