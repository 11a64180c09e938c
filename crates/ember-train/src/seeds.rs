//! Every random stream of a run after initialisation, each derived from `train.seed`: the
//! batches an evaluation draws (the same ones at every evaluation) and the dropout masks of
//! each micro-batch (a pure function of the step, so a resumed run draws the same masks).

/// Mixed into `train.seed` for the training-split batches of every loss estimate.
pub const EVAL_TRAIN_SALT: u64 = 0x7472_6169_6e00; // "train\0"
/// Mixed into `train.seed` for the validation-split batches of every loss estimate.
pub const EVAL_VAL_SALT: u64 = 0x7661_6c00; // "val\0"

/// Odd 64-bit constants that spread the step and the micro-batch over all bits before mixing.
const STEP_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
const MICRO_MIX: u64 = 0xD1B5_4A32_D192_ED03;

/// The dropout seed of micro-batch `micro` of step `step` (0-based, the step being taken).
/// With data parallelism, replica `r` is micro-batch `r`.
pub fn dropout_seed(seed: u64, step: u64, micro: u64) -> u64 {
    splitmix64_finish(seed ^ step.wrapping_mul(STEP_MIX) ^ micro.wrapping_mul(MICRO_MIX))
}

/// The seeds of `n` micro-batches of `step`.
pub fn dropout_seeds(seed: u64, step: u64, n: usize) -> Vec<u64> {
    (0..n as u64).map(|micro| dropout_seed(seed, step, micro)).collect()
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn splitmix64_finish(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_a_pure_function_of_seed_step_and_micro_batch() {
        assert_eq!(dropout_seed(7, 3, 1), dropout_seed(7, 3, 1));
        let all: std::collections::BTreeSet<u64> = (0..4)
            .flat_map(|step| (0..4).map(move |micro| dropout_seed(7, step, micro)))
            .chain((0..4).map(|micro| dropout_seed(8, 0, micro)))
            .collect();
        assert_eq!(all.len(), 20, "every (seed, step, micro) draws its own masks");
        assert_eq!(
            dropout_seeds(7, 3, 2),
            vec![dropout_seed(7, 3, 0), dropout_seed(7, 3, 1)]
        );
    }

    #[test]
    fn the_mixing_matches_its_known_values() {
        // SplitMix64's published first output for state 0 + γ is 0xE220A8397B1DCDAF.
        assert_eq!(splitmix64_finish(STEP_MIX), 0xE220_A839_7B1D_CDAF);
    }
}
