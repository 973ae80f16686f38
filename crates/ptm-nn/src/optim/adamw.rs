//! AdamW with PyTorch's decoupled weight decay and per-parameter step counts.

use super::{gradient, non_negative, state_step, state_vec, Optimizer};
use crate::error::{invalid, Result};
use crate::param::Param;
use ptm_tensor::{Device, GradStore, Tensor};
use std::collections::BTreeMap;

/// AdamW settings, PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (1e-3).
    pub lr: f64,
    /// First-moment decay (0.9).
    pub beta1: f64,
    /// Second-moment decay (0.999).
    pub beta2: f64,
    /// Denominator term (1e-8).
    pub eps: f64,
    /// Decoupled weight decay (0.01).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    param: Param,
    decay: bool,
    step: u64,
    m: Vec<f32>,
    v: Vec<f32>,
    /// The moments on the parameter's device when it is not the CPU (then `m`, `v` are stale
    /// until `state` copies them back).
    on_device: Option<(Tensor, Tensor)>,
}

/// AdamW over a list of named parameters.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
}

impl AdamW {
    /// An optimizer over `params`; weight decay applies where `decay(name)` is true (Hugging Face's
    /// Trainer exempts biases and norm weights).
    pub fn new(
        params: Vec<(String, Param)>,
        cfg: AdamWConfig,
        decay: impl Fn(&str) -> bool,
    ) -> Result<AdamW> {
        let bad =
            |what: &str, v: f64| Err(invalid("AdamW", format!("{what} = {v} is out of range")));
        if !non_negative(cfg.lr) {
            return bad("lr", cfg.lr);
        }
        if !(0.0..1.0).contains(&cfg.beta1) {
            return bad("beta1", cfg.beta1);
        }
        if !(0.0..1.0).contains(&cfg.beta2) {
            return bad("beta2", cfg.beta2);
        }
        if !non_negative(cfg.eps) {
            return bad("eps", cfg.eps);
        }
        if !non_negative(cfg.weight_decay) {
            return bad("weight_decay", cfg.weight_decay);
        }
        let slots = params
            .into_iter()
            .map(|(name, param)| {
                let n = param.tensor().elem_count();
                Slot {
                    decay: decay(&name),
                    name,
                    param,
                    step: 0,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                    on_device: None,
                }
            })
            .collect();
        Ok(AdamW { cfg, slots })
    }

    /// The settings.
    pub fn config(&self) -> AdamWConfig {
        self.cfg
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for s in &mut self.slots {
            let h = ptm_cpu::optim::AdamW {
                lr: self.cfg.lr,
                beta1: self.cfg.beta1,
                beta2: self.cfg.beta2,
                eps: self.cfg.eps,
                weight_decay: if s.decay { self.cfg.weight_decay } else { 0.0 },
            };
            let t = s.param.tensor();
            if t.device().is_cuda() {
                // On a GPU: one fused kernel, the moments kept on the device.
                let Some(g) = grads.get(&t) else {
                    continue;
                };
                let (m, v) = match s.on_device.take() {
                    Some(mv) => mv,
                    None => (
                        Tensor::from_vec(s.m.clone(), t.dims(), &t.device())?,
                        Tensor::from_vec(s.v.clone(), t.dims(), &t.device())?,
                    ),
                };
                s.step += 1;
                let (p, m, v) = t.adamw_update(g, &m, &v, &h, s.step)?;
                s.param.set(p)?;
                s.on_device = Some((m, v));
                continue;
            }
            drop(t); // so that the update can happen in place
            let Some(g) = gradient(&s.name, &s.param, grads)? else {
                continue;
            };
            let g = g.values::<f32>()?;
            s.step += 1;
            let (m, v, step) = (&mut s.m, &mut s.v, s.step);
            s.param
                .update_f32(|p| ptm_cpu::optim::adamw_step(p, &g, m, v, &h, step))?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn state(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for s in &self.slots {
            let dims = s.param.tensor().dims().to_vec();
            let (m, v) = match &s.on_device {
                Some((m, v)) => (m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?),
                None => (
                    Tensor::from_vec(s.m.clone(), dims.as_slice(), &Device::Cpu)?,
                    Tensor::from_vec(s.v.clone(), dims.as_slice(), &Device::Cpu)?,
                ),
            };
            let step = Tensor::from_vec(vec![s.step as i64], [1], &Device::Cpu)?;
            out.insert(format!("{}.exp_avg", s.name), m);
            out.insert(format!("{}.exp_avg_sq", s.name), v);
            out.insert(format!("{}.step", s.name), step);
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        for s in &mut self.slots {
            let n = s.m.len();
            s.m = state_vec(state, &format!("{}.exp_avg", s.name), n)?;
            s.v = state_vec(state, &format!("{}.exp_avg_sq", s.name), n)?;
            s.step = state_step(state, &format!("{}.step", s.name))?;
            s.on_device = None;
        }
        Ok(())
    }
}
