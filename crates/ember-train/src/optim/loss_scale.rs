//! Dynamic loss scaling for f16 training (PyTorch's `GradScaler` rule).
//!
//! f16 cannot represent gradients below about 6e-8, and many are smaller. Multiplying the
//! loss by a large `scale` before the backward pass lifts them into range; the gradients are
//! divided by it again before clipping and the update. If any gradient overflowed (a
//! non-finite norm), the step is skipped and the scale halved; after `GROWTH_INTERVAL`
//! consecutive good steps it is doubled.

use serde::{Deserialize, Serialize};

/// Consecutive good steps before the scale doubles.
pub const GROWTH_INTERVAL: u64 = 2000;
/// The first scale, 2¹⁶.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Below this the scale cannot help: a non-finite step is then a real divergence.
pub const MIN_SCALE: f64 = 1.0 / 65536.0;

/// The current scale and the good steps since it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// Multiplier applied to the loss.
    pub scale: f64,
    /// Consecutive steps without overflow.
    pub good_steps: u64,
}

impl Default for LossScale {
    fn default() -> Self {
        Self {
            scale: INITIAL_SCALE,
            good_steps: 0,
        }
    }
}

impl LossScale {
    /// Records a step: halves the scale after an overflow, doubles it after
    /// `GROWTH_INTERVAL` good steps.
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale /= 2.0;
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_doubles_after_a_run_of_good_steps() {
        let mut s = LossScale::default();
        s.update(true);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!(s.scale, 32768.0);
        s.update(false);
        assert_eq!((s.scale, s.good_steps), (65536.0, 0));
    }
}
