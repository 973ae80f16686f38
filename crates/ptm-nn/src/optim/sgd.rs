//! Stochastic gradient descent with optional momentum and L2 weight decay (PyTorch's `SGD`).

use super::{gradient, non_negative, state_step, state_vec, Optimizer};
use crate::error::{invalid, Result};
use crate::param::Param;
use ptm_tensor::{Device, GradStore, Tensor};
use std::collections::BTreeMap;

/// SGD settings.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    param: Param,
    steps: u64,
    buf: Vec<f32>,
    /// The momentum buffer on the parameter's device when it is not the CPU (then `buf` is stale
    /// until `state` copies it back).
    on_device: Option<Tensor>,
}

/// SGD over a list of named parameters.
pub struct Sgd {
    cfg: SgdConfig,
    slots: Vec<Slot>,
}

impl Sgd {
    /// An optimizer over `params`.
    pub fn new(params: Vec<(String, Param)>, cfg: SgdConfig) -> Result<Sgd> {
        for (what, v) in [
            ("lr", cfg.lr),
            ("momentum", cfg.momentum),
            ("weight_decay", cfg.weight_decay),
        ] {
            if !non_negative(v) {
                return Err(invalid("SGD", format!("{what} = {v} is out of range")));
            }
        }
        let slots = params
            .into_iter()
            .map(|(name, param)| {
                let n = if cfg.momentum != 0.0 {
                    param.tensor().elem_count()
                } else {
                    0
                };
                Slot {
                    name,
                    param,
                    steps: 0,
                    buf: vec![0.0; n],
                    on_device: None,
                }
            })
            .collect();
        Ok(Sgd { cfg, slots })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let h = ptm_cpu::optim::Sgd {
            lr: self.cfg.lr,
            momentum: self.cfg.momentum,
            weight_decay: self.cfg.weight_decay,
        };
        for s in &mut self.slots {
            let t = s.param.tensor();
            if t.device().is_cuda() {
                // On a GPU: one fused kernel, the momentum buffer kept on the device.
                let Some(g) = grads.get(&t) else {
                    continue;
                };
                let buf = match (s.on_device.take(), self.cfg.momentum != 0.0) {
                    (Some(b), _) => Some(b),
                    (None, true) => Some(Tensor::from_vec(
                        vec_of_len(&s.buf, t.elem_count()),
                        t.dims(),
                        &t.device(),
                    )?),
                    (None, false) => None,
                };
                let (p, buf) = t.sgd_update(g, buf.as_ref(), &h, s.steps == 0)?;
                s.steps += 1;
                s.param.set(p)?;
                s.on_device = buf;
                continue;
            }
            drop(t); // so that the update can happen in place
            let Some(g) = gradient(&s.name, &s.param, grads)? else {
                continue;
            };
            let g = g.values::<f32>()?;
            if s.buf.len() != g.len() {
                s.buf = vec![0.0; g.len()];
            }
            let (buf, first) = (&mut s.buf, s.steps == 0);
            s.param
                .update_f32(|p| ptm_cpu::optim::sgd_step(p, &g, buf, &h, first))?;
            s.steps += 1;
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
            out.insert(
                format!("{}.step", s.name),
                Tensor::from_vec(vec![s.steps as i64], [1], &Device::Cpu)?,
            );
            if self.cfg.momentum != 0.0 {
                let dims = s.param.tensor().dims().to_vec();
                let buf = match &s.on_device {
                    Some(b) => b.to_device(&Device::Cpu)?,
                    None => Tensor::from_vec(s.buf.clone(), dims.as_slice(), &Device::Cpu)?,
                };
                out.insert(format!("{}.momentum_buffer", s.name), buf);
            }
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &BTreeMap<String, Tensor>) -> Result<()> {
        for s in &mut self.slots {
            s.steps = state_step(state, &format!("{}.step", s.name))?;
            if self.cfg.momentum != 0.0 {
                let n = s.param.tensor().elem_count();
                s.buf = state_vec(state, &format!("{}.momentum_buffer", s.name), n)?;
            }
            s.on_device = None;
        }
        Ok(())
    }
}

/// `v`, or zeros when its length is not `n` (a buffer that was never filled).
fn vec_of_len(v: &[f32], n: usize) -> Vec<f32> {
    if v.len() == n {
        v.to_vec()
    } else {
        vec![0.0; n]
    }
}
