//! The keys and values one attention layer has already computed, for generation.
//!
//! Without a cache, producing token `n + 1` re-runs the model over all `n` previous tokens.
//! With one, each layer keeps the (already rotated) keys and the values of past positions, and a
//! step only computes the newest position's query, key and value.
//!
//! The cache keeps room to grow: its buffers hold more positions than are filled, a step writes
//! its keys and values into the next free positions, and attention reads the filled ones
//! through a view. Concatenating instead would copy every past key and value at every step.
//! When the room runs out, the buffers are replaced by ones twice as long.

use burn::tensor::{DType, Device, Tensor};

/// Positions a cache has room for at first, at least.
const FIRST_CAPACITY: usize = 64;

/// Keys and values of the positions seen so far by one attention layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Shape `[batch, n_heads, capacity, d_head]`, of which the first `len` positions are
    /// filled; `None` before the first step.
    keys: Option<Tensor<4>>,
    /// As `keys`.
    values: Option<Tensor<4>>,
    /// Positions filled.
    len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions held (`past`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends this step's keys and values; returns those of every position so far.
    ///
    /// # Shapes
    /// - keys, values: `[batch, n_heads, seq, d_head]`
    /// - returns two `[batch, n_heads, past + seq, d_head]`
    pub fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (past, seq) = (self.len, keys.dims()[2]);
        let (room_k, room_v) = self.take_room(keys.dims(), keys.dtype(), &keys.device());
        // The buffers are this cache's alone here (the views of the last step are gone), so
        // the writes below change them in place on the CPU instead of copying them.
        let at = |room: Tensor<4>, new: Tensor<4>| {
            let [batch, heads, _, d_head] = new.dims();
            room.slice_assign([0..batch, 0..heads, past..past + seq, 0..d_head], new)
        };
        let (room_k, room_v) = (at(room_k, keys), at(room_v, values));
        self.put_back(room_k.clone(), room_v.clone(), seq);
        (room_k.narrow(2, 0, past + seq), room_v.narrow(2, 0, past + seq))
    }

    /// Takes the key and value buffers out of the cache, with room for `seq` more positions
    /// after the `len()` filled ones (allocated, or replaced by longer ones holding the same
    /// positions, as needed), for an operation that writes the new positions itself (the fused
    /// CPU kernel); [`put_back`](Self::put_back) returns them.
    ///
    /// # Shapes
    /// - new: `[batch, n_heads, seq, d_head]`, the shape of the positions to come
    /// - returns two `[batch, n_heads, capacity, d_head]`, capacity ≥ `len() + seq`
    pub fn take_room(&mut self, new: [usize; 4], dtype: DType, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let past = self.len;
        (
            room(self.keys.take(), past, new, dtype, device),
            room(self.values.take(), past, new, dtype, device),
        )
    }

    /// Puts back the buffers [`take_room`](Self::take_room) lent, now holding `seq` more
    /// positions.
    pub fn put_back(&mut self, keys: Tensor<4>, values: Tensor<4>, seq: usize) {
        self.keys = Some(keys);
        self.values = Some(values);
        self.len += seq;
    }
}

/// `buffer` if it has room for `seq` positions after `past`, else a longer one (twice as long,
/// at least [`FIRST_CAPACITY`]) holding its first `past` positions.
///
/// # Shapes
/// - buffer: `[batch, n_heads, capacity, d_head]`
/// - new: `[batch, n_heads, seq, d_head]`
fn room(buffer: Option<Tensor<4>>, past: usize, new: [usize; 4], dtype: DType, device: &Device) -> Tensor<4> {
    let [batch, heads, seq, d_head] = new;
    let len = past + seq;
    match buffer {
        Some(room) if room.dims()[2] >= len => room,
        old => {
            let capacity = len.max(2 * past).max(FIRST_CAPACITY);
            let room = Tensor::zeros([batch, heads, capacity, d_head], (device, dtype));
            match old {
                Some(old) if past > 0 => {
                    room.slice_assign([0..batch, 0..heads, 0..past, 0..d_head], old.narrow(2, 0, past))
                }
                _ => room,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, values};
    use burn::tensor::{Distribution, FloatDType};

    fn random(seq: usize) -> Tensor<4> {
        Tensor::random([2, 3, seq, 4], Distribution::Normal(0.0, 1.0), &device())
    }

    #[test]
    fn holds_what_concatenation_would_through_every_growth() {
        let mut cache = KvCache::new();
        let (mut all_k, mut all_v) = (Vec::new(), Vec::new());
        // 1 + 3 + 70 + 1·60 + 130 positions: past the first room (64) and two doublings.
        let steps = [1, 3, 70].into_iter().chain([1; 60]).chain([130]);
        for seq in steps {
            let (k, v) = (random(seq), random(seq));
            all_k.push(k.clone());
            all_v.push(v.clone());
            let (keys, vals) = cache.append(k, v);
            let len = cache.len();
            assert_eq!(keys.dims(), [2, 3, len, 4]);
            assert_eq!(values(&keys), values(&Tensor::cat(all_k.clone(), 2)));
            assert_eq!(values(&vals), values(&Tensor::cat(all_v.clone(), 2)));
        }
        assert_eq!(cache.len(), 264);
    }

    #[test]
    fn half_precision_keys_stay_half_precision_through_a_growth() {
        let mut cache = KvCache::new();
        let half = |t: Tensor<4>| t.cast(FloatDType::F16);
        let (k0, k1) = (half(random(60)), half(random(10))); // 70 positions: past the first room
        cache.append(k0.clone(), k0.clone());
        let (keys, _) = cache.append(k1.clone(), k1.clone());
        assert_eq!(keys.dtype(), DType::F16);
        let as_f32 = |t: Tensor<4>| values(&t.cast(FloatDType::F32));
        assert_eq!(as_f32(keys), as_f32(Tensor::cat(vec![k0, k1], 2)));
    }

    #[test]
    fn clones_of_a_cache_grow_apart() {
        // A clone shares the buffers: each must write its next position into its own copy.
        let mut a = KvCache::new();
        let (k0, v0) = (random(2), random(2));
        a.append(k0.clone(), v0.clone());
        let mut b = a.clone();
        let (ka, kb) = (random(1), random(1));
        let (keys_a, _) = a.append(ka.clone(), random(1));
        let (keys_b, _) = b.append(kb.clone(), random(1));
        assert_eq!(values(&keys_a), values(&Tensor::cat(vec![k0.clone(), ka], 2)));
        assert_eq!(values(&keys_b), values(&Tensor::cat(vec![k0, kb], 2)));
    }
}
