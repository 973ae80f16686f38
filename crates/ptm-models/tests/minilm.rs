//! The real all-MiniLM-L6-v2 (`cargo xtask fetch minilm`) embeds sentences as the reference stack
//! does: cosine ≥ 0.9999 with embeddings computed once by transformers (mean pooling + L2
//! normalisation, tests/fixtures/make_fixtures.py), and the same token ids. CI fetches the model
//! and sets PTM_REQUIRE_FETCHED=1, so there the test cannot skip.

mod common;

use ptm_models::bert::{embed_sentences, BertCheckpoint, BertModel};
use ptm_models::tokenizer::Tokenizer;
use ptm_tensor::DType;

#[test]
fn minilm_sentence_embeddings_match_the_reference() {
    let Some(dir) = common::fetched("minilm") else {
        return;
    };
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("minilm").join("embeddings.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = want["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let ids = tok
        .encode_batch(&texts, true, 0)
        .unwrap()
        .input_ids
        .to_vec2::<i64>()
        .unwrap();
    let want_ids: Vec<Vec<i64>> = serde_json::from_value(want["input_ids"].clone()).unwrap();
    assert_eq!(ids, want_ids, "token ids differ from transformers'");
    let model = BertCheckpoint::<BertModel>::from_pretrained(&dir, DType::F32, None).unwrap();
    assert!(model.report.unexpected.is_empty(), "{:?}", model.report);
    let got = embed_sentences(&model.model, &tok, &texts)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let want_emb: Vec<Vec<f64>> = serde_json::from_value(want["embeddings"].clone()).unwrap();
    for (i, (g, w)) in got.iter().zip(&want_emb).enumerate() {
        let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * b).sum();
        let (ng, nw) = (
            g.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt(),
            w.iter().map(|b| b * b).sum::<f64>().sqrt(),
        );
        let cos = dot / (ng * nw);
        eprintln!("{:?}: cosine {cos:.8}", texts[i]);
        assert!(cos >= 0.9999, "{:?}: cosine {cos}", texts[i]);
    }
    // Similar sentences are closer than unrelated ones (the model is really pretrained).
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&got[0], &got[1]) > cos(&got[0], &got[3]) + 0.3);
}

/// BERT's WordPiece built from `vocab.txt` alone (lower-cased, as `tokenizer_config.json` says)
/// gives the same ids as the model's own `tokenizer.json`.
#[test]
fn wordpiece_from_vocab_txt_matches_tokenizer_json() {
    let Some(dir) = common::fetched("minilm") else {
        return;
    };
    let from_json = Tokenizer::from_json(&dir.join("tokenizer.json")).unwrap();
    let from_vocab = Tokenizer::bert(&dir.join("vocab.txt"), true).unwrap();
    for text in [
        "Hello, World! Transfer-learning isn't magic.",
        "Naïve café owners can't pre-train 12,345 models.",
        "unbelievably tokenization-heavy words: antidisestablishmentarianism",
    ] {
        let a = from_json.encode(text, true).unwrap();
        let b = from_vocab.encode(text, true).unwrap();
        assert_eq!(a, b, "{text:?}");
        assert_eq!(
            from_vocab.decode(&b, true).unwrap(),
            from_json.decode(&a, true).unwrap()
        );
    }
}
