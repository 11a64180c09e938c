//! Learning rate: linear warm-up, then cosine decay to a floor.
//!
//! ```text
//! lr(s) = lr · (s + 1) / warmup                                  s < warmup
//!       = min_lr + ½ (lr − min_lr) (1 + cos(π · progress))      warmup ≤ s < decay_steps
//!       = min_lr                                                 s ≥ decay_steps
//! progress = (s − warmup) / (decay_steps − warmup)
//! ```
//!
//! `s` counts optimiser steps from 0. The schedule is a pure function of the step, so a resumed
//! run continues it exactly.

/// Warm-up plus cosine decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Floor reached at `decay_steps`.
    pub min_lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Step at which the decay reaches `min_lr` (normally `max_steps`).
    pub decay_steps: u64,
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.decay_steps || self.decay_steps <= self.warmup_steps {
            return self.min_lr;
        }
        let progress = (step - self.warmup_steps) as f64 / (self.decay_steps - self.warmup_steps) as f64;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: LrSchedule = LrSchedule {
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 10,
        decay_steps: 110,
    };

    #[test]
    fn warms_up_linearly() {
        assert!((S.at(0) - 1e-4).abs() < 1e-12);
        assert!((S.at(4) - 5e-4).abs() < 1e-12);
        assert!((S.at(9) - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn decays_along_a_half_cosine_to_the_floor() {
        assert!((S.at(10) - 1e-3).abs() < 1e-12); // progress 0
        assert!((S.at(60) - 5.5e-4).abs() < 1e-12); // progress ½: midway
        assert!((S.at(110) - 1e-4).abs() < 1e-12);
        assert!((S.at(5000) - 1e-4).abs() < 1e-12);
        for s in 10..110 {
            assert!(S.at(s + 1) <= S.at(s));
        }
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = LrSchedule { warmup_steps: 0, ..S };
        assert_eq!(s.at(0), 1e-3);
    }
}
