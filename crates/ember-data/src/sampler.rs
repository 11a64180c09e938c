//! Random training windows from a seeded generator whose state can be saved and restored.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::tokens::Tokens;

/// A batch of `batch` windows of `block` tokens, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub block: usize,
    /// Input ids, `[batch, block]`.
    pub inputs: Vec<u32>,
    /// Target ids, `[batch, block]`: the inputs shifted left by one position.
    pub targets: Vec<u32>,
}

impl Batch {
    /// A batch from consecutive windows of `block + 1` token ids each: every window gives one
    /// sequence, its first `block` ids the inputs and its last `block` the targets.
    pub fn from_windows(windows: &[u32], block: usize) -> Self {
        assert!(
            windows.len() % (block + 1) == 0,
            "windows of block + 1 = {} ids expected",
            block + 1
        );
        let batch = windows.len() / (block + 1);
        let mut inputs = Vec::with_capacity(batch * block);
        let mut targets = Vec::with_capacity(batch * block);
        for window in windows.chunks(block + 1) {
            inputs.extend_from_slice(&window[..block]);
            targets.extend_from_slice(&window[1..]);
        }
        Batch {
            batch,
            block,
            inputs,
            targets,
        }
    }
}

/// The sampler's complete state: restoring it continues the exact same sequence of windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The generator (its seed, stream and word position).
    pub rng: ChaCha8Rng,
    /// Batches drawn so far.
    pub batches_drawn: u64,
}

/// Draws windows of `block + 1` consecutive tokens at uniformly random offsets.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    batch: usize,
    block: usize,
    state: SamplerState,
}

impl BatchSampler {
    /// A sampler seeded with `seed`.
    pub fn new(batch: usize, block: usize, seed: u64) -> Self {
        Self {
            batch,
            block,
            state: SamplerState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                batches_drawn: 0,
            },
        }
    }

    /// Checks that `tokens` holds at least one window; `split` names it in the error.
    pub fn check_fits(&self, tokens: &Tokens, split: &'static str) -> Result<(), DataError> {
        if tokens.len() < self.block + 1 {
            return Err(DataError::CorpusTooShort {
                split,
                tokens: tokens.len(),
                needed: self.block + 1,
            });
        }
        Ok(())
    }

    /// The next batch. Call [`check_fits`](Self::check_fits) once first.
    pub fn next_batch(&mut self, tokens: &Tokens) -> Batch {
        let (batch, block) = (self.batch, self.block);
        let last_start = tokens.len() - block - 1;
        let mut windows = Vec::with_capacity(batch * (block + 1));
        for _ in 0..batch {
            let start = self.state.rng.random_range(0..=last_start);
            tokens.extend_window(start, block + 1, &mut windows);
        }
        self.state.batches_drawn += 1;
        Batch::from_windows(&windows, block)
    }

    /// A copy of the state, for a checkpoint.
    pub fn state(&self) -> SamplerState {
        self.state.clone()
    }

    /// Continues from a saved state.
    pub fn restore(&mut self, state: SamplerState) {
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u32) -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        crate::TokenFile::write(&path, &(0..n).collect::<Vec<_>>(), 1000).unwrap();
        let f = crate::TokenFile::open(&path).unwrap();
        (dir, f.into())
    }

    #[test]
    fn targets_are_inputs_shifted_by_one() {
        let (_dir, tokens) = file(100);
        let b = BatchSampler::new(4, 8, 1).next_batch(&tokens);
        assert_eq!((b.inputs.len(), b.targets.len()), (32, 32));
        for row in 0..4 {
            let (i, t) = (&b.inputs[row * 8..row * 8 + 8], &b.targets[row * 8..row * 8 + 8]);
            for k in 0..8 {
                assert_eq!(t[k], i[k] + 1); // consecutive ids in this file
            }
        }
    }

    #[test]
    fn windows_cover_the_whole_range_including_both_ends() {
        let (_dir, tokens) = file(10);
        let mut s = BatchSampler::new(1, 4, 3);
        let starts: std::collections::BTreeSet<u32> = (0..500).map(|_| s.next_batch(&tokens).inputs[0]).collect();
        assert_eq!(starts.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn restoring_the_state_continues_the_same_sequence() {
        let (_dir, tokens) = file(1000);
        let mut a = BatchSampler::new(3, 5, 9);
        for _ in 0..7 {
            a.next_batch(&tokens);
        }
        let saved = serde_json::to_string(&a.state()).unwrap();
        let expected: Vec<Batch> = (0..5).map(|_| a.next_batch(&tokens)).collect();
        let mut b = BatchSampler::new(3, 5, 12345);
        b.restore(serde_json::from_str(&saved).unwrap());
        let got: Vec<Batch> = (0..5).map(|_| b.next_batch(&tokens)).collect();
        assert_eq!(got, expected);
        assert_eq!(b.state().batches_drawn, 12);
    }

    #[test]
    fn a_split_shorter_than_a_window_is_an_error() {
        let (_dir, tokens) = file(8);
        let msg = BatchSampler::new(1, 8, 0)
            .check_fits(&tokens, "val")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("the val split has 8 tokens, but one window of block_size + 1 = 9"),
            "{msg}"
        );
        assert!(BatchSampler::new(1, 7, 0).check_fits(&tokens, "val").is_ok());
    }
}
