//! Autoregressive generation with GPT-2's KV cache.

use super::model::{Gpt2Inputs, Gpt2LmHeadModel, KvCache};
use crate::error::{input_err, Result};
use crate::generation::{pick_token, GenerationConfig};
use ptm_tensor::{no_grad, DType, Device, Rng, Tensor};

impl Gpt2LmHeadModel {
    /// Continues `prompt` (token ids) and returns prompt + new tokens. The prompt runs once; each
    /// new token then runs alone against the cache. `on_token` sees each new token as it comes.
    /// Stops after `max_new_tokens`, after the end-of-text token, or when the context is full.
    pub fn generate(
        &self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>> {
        cfg.validate()?;
        let vocab = self.config().vocab_size;
        if prompt.is_empty() {
            return Err(input_err("prompt", "is empty"));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(input_err(
                "prompt",
                format!("token id {bad} is outside the vocabulary of {vocab}"),
            ));
        }
        let _guard = no_grad();
        let mut rng = Rng::new(cfg.seed);
        let mut cache = KvCache::new();
        let mut out = prompt.to_vec();
        let mut feed = prompt.to_vec();
        let limit = self.config().n_positions;
        for _ in 0..cfg.max_new_tokens {
            if cache.len() + feed.len() > limit {
                break;
            }
            let ids = Tensor::from_vec(feed.clone(), [1, feed.len()], &Device::Cpu)?;
            let inputs = Gpt2Inputs {
                cache: Some(&mut cache),
                ..Default::default()
            };
            let (logits, _) = self.forward(&ids, inputs)?;
            let last = logits.narrow(1, feed.len() - 1, 1)?.flatten_all()?;
            let next = pick_token(&last.to_dtype(DType::F32)?.to_vec::<f32>()?, cfg, &mut rng);
            out.push(next);
            on_token(next);
            if Some(next) == cfg.eos_token_id {
                break;
            }
            feed = vec![next];
        }
        Ok(out)
    }
}
