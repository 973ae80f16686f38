//! The GPT-2 tokenizer built from the original BPE files gives transformers' ids.
//!
//! Needs `cargo xtask fetch gpt2-tokenizer` (CI runs it first and sets `PTM_REQUIRE_FETCHED=1`, so
//! there the test fails instead of skipping). The reference ids in
//! tests/fixtures/tokenizers/gpt2.json were computed by transformers' GPT2TokenizerFast from the
//! same files (tests/fixtures/make_fixtures.py).

mod common;

use ptm_models::tokenizer::Tokenizer;

#[test]
fn gpt2_bpe_matches_transformers() {
    let Some(dir) = common::fetched("gpt2-tokenizer") else {
        return;
    };
    let tok = Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 50257);
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("tokenizers").join("gpt2.json")).unwrap(),
    )
    .unwrap();
    let texts = want["texts"].as_array().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let text = text.as_str().unwrap();
        let ids = tok.encode(text, true).unwrap();
        let expect: Vec<u32> = want["ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, expect, "ids of {text:?}");
        let decoded = tok.decode(&ids, true).unwrap();
        assert_eq!(
            decoded,
            want["decoded_skip_special"][i].as_str().unwrap(),
            "decoding of {text:?}"
        );
    }
    let batch = tok
        .encode_batch(&["a b c".to_string(), "a".to_string()], false, 50256)
        .unwrap();
    assert_eq!(batch.input_ids.dims(), &[2, 3]);
    assert_eq!(
        batch.attention_mask.to_vec::<i64>().unwrap(),
        vec![1, 1, 1, 1, 0, 0]
    );
    assert_eq!(
        batch.input_ids.to_vec::<i64>().unwrap()[4..],
        [50256, 50256]
    );
}
