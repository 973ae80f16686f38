//! Which op kinds `backward` has differentiated on this thread.
//!
//! The gradient-check suite runs every finite-difference check on one thread, then compares this
//! record with [`OpKind::ALL`]: an op added without a gradient check fails that test.

use crate::OpKind;
use std::cell::Cell;

thread_local! {
    static SEEN: Cell<u128> = const { Cell::new(0) };
}

const _: () = assert!(
    OpKind::ALL.len() <= 128,
    "the coverage bitset holds 128 kinds"
);

pub(crate) fn record(kind: OpKind) {
    SEEN.with(|s| s.set(s.get() | 1u128 << kind as u32));
}

/// The op kinds backward has run through on this thread since the last [`reset`].
pub fn seen() -> Vec<OpKind> {
    let bits = SEEN.with(|s| s.get());
    OpKind::ALL
        .iter()
        .copied()
        .filter(|k| bits & (1u128 << *k as u32) != 0)
        .collect()
}

/// Forgets what this thread has seen.
pub fn reset() {
    SEEN.with(|s| s.set(0));
}
