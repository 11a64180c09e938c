//! What one attention layer remembers between generation steps: past keys and values for
//! softmax attention ([`KvCache`], bounded by the window for a sliding window), running sums for
//! linear attention ([`LinearState`]).

use super::{AttentionKind, AttentionMask, CausalSelfAttention, KvCache, LinearState};

/// What one attention layer remembers between generation steps.
#[derive(Debug, Clone, Default)]
pub struct AttentionCache {
    /// Past keys and values (softmax attention).
    pub kv: KvCache,
    /// Running sums (linear attention).
    pub state: LinearState,
}

impl AttentionCache {
    /// Positions seen.
    pub fn len(&self) -> usize {
        self.kv.len().max(self.state.len())
    }

    /// Whether no position is seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CausalSelfAttention {
    /// An empty cache for this layer (bounded by the window for a sliding window).
    pub fn new_cache(&self) -> AttentionCache {
        let kv = match self.kind {
            AttentionKind::Softmax(AttentionMask::SlidingWindow { window }) => KvCache::bounded(window - 1),
            _ => KvCache::new(),
        };
        AttentionCache {
            kv,
            state: LinearState::default(),
        }
    }
}
