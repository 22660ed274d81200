//! KV cache with one slot per KEPT attention layer: dropped layers cost no memory.

use candle_core::Tensor;

use crate::error::Result;

/// Keys and values of past positions, `[batch, kv_heads, seq, head_dim]` per kept layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// layer index -> slot index (None: attention dropped, no slot).
    slot_of: Vec<Option<usize>>,
    slots: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for a model whose layer `i` keeps attention iff `kept[i]`.
    pub fn new(kept: &[bool]) -> Self {
        let mut n = 0;
        let slot_of = kept
            .iter()
            .map(|&k| {
                k.then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        Self {
            slot_of,
            slots: vec![None; n],
        }
    }

    /// Number of slots: one per kept attention layer.
    pub fn num_slots(&self) -> usize {
        self.slots.len()
    }

    /// Whether layer `layer` has a slot.
    pub fn has_slot(&self, layer: usize) -> bool {
        self.slot_of.get(layer).copied().flatten().is_some()
    }

    /// Positions cached so far.
    pub fn seq_len(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .next()
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    /// Bytes held by cached keys and values.
    pub fn bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }

    /// Appends this step's `k`, `v` to layer `layer`'s slot; returns the full keys and values.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor,
        v: Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let slot = self.slot_of[layer].expect("only kept attention layers use the cache");
        let entry = &mut self.slots[slot];
        let (k, v) = match entry.take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
        };
        *entry = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// The same cache repeated `n` times along the batch (for several continuations of
    /// one cached prompt). The cache must hold a batch of one.
    pub fn repeat_batch(&self, n: usize) -> Result<KvCache> {
        let slots = self
            .slots
            .iter()
            .map(|s| match s {
                Some((k, v)) => Ok(Some((k.repeat((n, 1, 1, 1))?, v.repeat((n, 1, 1, 1))?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slot_of: self.slot_of.clone(),
            slots,
        })
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}
