//! Learning-rate schedules: warm-up, then linear, cosine or constant, as transformers' schedulers.

use crate::args::SchedulerType;

/// The learning rate at optimizer step `step` (0-based) of `total`, with `warmup` warm-up steps
/// rising linearly from 0 (transformers' `get_*_schedule_with_warmup`).
pub fn learning_rate(
    kind: SchedulerType,
    peak: f64,
    step: usize,
    warmup: usize,
    total: usize,
) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let decay_steps = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / decay_steps).min(1.0);
    match kind {
        SchedulerType::Constant => peak,
        SchedulerType::Linear => peak * (1.0 - progress).max(0.0),
        SchedulerType::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}
