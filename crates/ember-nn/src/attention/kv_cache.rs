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
//!
//! A layer with a sliding window of `w` positions never looks further back than `w − 1`
//! positions, so its cache is *bounded*: when the room runs out it keeps only the newest
//! `w − 1` positions (moved to the front of fresh buffers) instead of growing, and its memory
//! stays proportional to the window however long the text. Until then it may hold a few older
//! keys, which the mask hides; [`first`](KvCache::first) says which position its first row is.

use burn::tensor::{DType, Device, Tensor};

/// Positions a cache has room for at first, at least.
const FIRST_CAPACITY: usize = 64;

/// Keys and values of the positions seen so far by one attention layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Shape `[batch, n_kv_heads, capacity, d_head]`, of which the first `len − first`
    /// positions are filled; `None` before the first step.
    keys: Option<Tensor<4>>,
    /// As `keys`.
    values: Option<Tensor<4>>,
    /// Positions seen.
    len: usize,
    /// The position of the buffers' first row.
    first: usize,
    /// At most this many past positions are needed (a window's `w − 1`); `None`: all.
    keep: Option<usize>,
}

impl KvCache {
    /// An empty cache that keeps every position.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache for a layer that looks back at most `keep` positions (a sliding window
    /// of `w` keeps `w − 1`).
    pub fn bounded(keep: usize) -> Self {
        Self {
            keep: Some(keep),
            ..Self::default()
        }
    }

    /// Number of positions seen (`past`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is seen yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position of the oldest key held (0 unless a bounded cache has dropped old keys).
    pub fn first(&self) -> usize {
        self.first
    }

    /// Positions the buffers have room for (0 before the first step).
    pub fn capacity(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Appends this step's keys and values; returns those of every position held, and the
    /// position of the first of them (a bounded cache may drop old ones on the way).
    ///
    /// # Shapes
    /// - keys, values: `[batch, n_kv_heads, seq, d_head]`
    /// - returns two `[batch, n_kv_heads, past + seq − first, d_head]`
    pub fn append(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>, usize) {
        let seq = keys.dims()[2];
        let (room_k, room_v) = self.take_room(keys.dims(), keys.dtype(), &keys.device());
        let held = self.len - self.first;
        // The buffers are this cache's alone here (the views of the last step are gone), so
        // the writes below change them in place on the CPU instead of copying them.
        let at = |room: Tensor<4>, new: Tensor<4>| {
            let [batch, heads, _, d_head] = new.dims();
            room.slice_assign([0..batch, 0..heads, held..held + seq, 0..d_head], new)
        };
        let (room_k, room_v) = (at(room_k, keys), at(room_v, values));
        self.put_back(room_k.clone(), room_v.clone(), seq);
        (
            room_k.narrow(2, 0, held + seq),
            room_v.narrow(2, 0, held + seq),
            self.first,
        )
    }

    /// Takes the key and value buffers out of the cache, with room for `seq` more positions
    /// after the `len() − first()` held ones (allocated, or replaced by longer ones, or, for a
    /// bounded cache, by ones holding only the newest positions, as needed), for an operation
    /// that writes the new positions itself (the fused CPU kernel); call
    /// [`first`](Self::first) after this to know the buffers' first position, and
    /// [`put_back`](Self::put_back) to return them.
    ///
    /// # Shapes
    /// - new: `[batch, n_kv_heads, seq, d_head]`, the shape of the positions to come
    /// - returns two `[batch, n_kv_heads, capacity, d_head]`, capacity ≥ `len() − first() + seq`
    pub fn take_room(&mut self, new: [usize; 4], dtype: DType, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let seq = new[2];
        let held = self.len - self.first;
        let fits = self.capacity() >= held + seq;
        let (keys, values) = (self.keys.take(), self.values.take());
        if fits && keys.is_some() {
            return (keys.expect("checked"), values.expect("checked"));
        }
        // Out of room: a bounded cache drops what no future query can see, then grows only if
        // the newest positions and this step still do not fit.
        let kept = self.keep.map_or(held, |keep| held.min(keep));
        let dropped = held - kept;
        self.first += dropped;
        let capacity = match self.keep {
            Some(keep) => (2 * keep).max(kept + seq).max(FIRST_CAPACITY),
            None => (kept + seq).max(2 * held).max(FIRST_CAPACITY),
        };
        let move_into = |old: Option<Tensor<4>>| {
            let [batch, heads, _, d_head] = new;
            let room = Tensor::zeros([batch, heads, capacity, d_head], (device, dtype));
            match old {
                Some(old) if kept > 0 => {
                    room.slice_assign([0..batch, 0..heads, 0..kept, 0..d_head], old.narrow(2, dropped, kept))
                }
                _ => room,
            }
        };
        (move_into(keys), move_into(values))
    }

    /// Puts back the buffers [`take_room`](Self::take_room) lent, now holding `seq` more
    /// positions.
    pub fn put_back(&mut self, keys: Tensor<4>, values: Tensor<4>, seq: usize) {
        self.keys = Some(keys);
        self.values = Some(values);
        self.len += seq;
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
            let (keys, vals, first) = cache.append(k, v);
            let len = cache.len();
            assert_eq!((keys.dims(), first), ([2, 3, len, 4], 0));
            assert_eq!(values(&keys), values(&Tensor::cat(all_k.clone(), 2)));
            assert_eq!(values(&vals), values(&Tensor::cat(all_v.clone(), 2)));
        }
        assert_eq!(cache.len(), 264);
        assert_eq!(cache.first(), 0);
    }

    #[test]
    fn a_bounded_cache_keeps_the_newest_positions_within_bounded_memory() {
        let keep = 5;
        let mut cache = KvCache::bounded(keep);
        let mut all_k = Vec::new();
        // a prompt of 10 positions, then 300 single steps
        for seq in [10].into_iter().chain([1; 300]) {
            let k = random(seq);
            all_k.push(k.clone());
            let (keys, _, first) = cache.append(k, random(seq));
            let len = cache.len();
            // Every key from `first` on is held, and at least the `keep` before the step's.
            assert!(len - seq - first >= keep.min(len - seq), "step at {len}: first {first}");
            let expected = Tensor::cat(all_k.clone(), 2).narrow(2, first, len - first);
            assert_eq!(values(&keys), values(&expected));
            assert!(cache.capacity() <= FIRST_CAPACITY, "capacity {}", cache.capacity());
        }
        assert_eq!(cache.len(), 310);
        assert!(cache.first() > 200);
    }

    #[test]
    fn half_precision_keys_stay_half_precision_through_a_growth() {
        let mut cache = KvCache::new();
        let half = |t: Tensor<4>| t.cast(FloatDType::F16);
        let (k0, k1) = (half(random(60)), half(random(10))); // 70 positions: past the first room
        cache.append(k0.clone(), k0.clone());
        let (keys, _, _) = cache.append(k1.clone(), k1.clone());
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
        let (keys_a, _, _) = a.append(ka.clone(), random(1));
        let (keys_b, _, _) = b.append(kb.clone(), random(1));
        assert_eq!(values(&keys_a), values(&Tensor::cat(vec![k0.clone(), ka], 2)));
        assert_eq!(values(&keys_b), values(&Tensor::cat(vec![k0, kb], 2)));
    }
}
