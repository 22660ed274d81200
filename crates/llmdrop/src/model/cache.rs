//! KV cache with one slot per KEPT attention layer: dropped layers cost no memory.
//!
//! Each slot preallocates `[batch, kv_heads, capacity, head_dim]` buffers and writes new
//! positions in place, growing by doubling; attention reads a view of the filled part, so
//! a decode step copies only the new position's keys and values.

use candle_core::Tensor;

use crate::error::Result;

/// Capacity of a slot's first allocation, in positions.
const INITIAL_CAPACITY: usize = 256;

#[derive(Debug)]
struct Slot {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl Slot {
    fn capacity(&self) -> usize {
        self.k.dim(2).unwrap_or(0)
    }
}

/// Keys and values of past positions per kept attention layer.
#[derive(Debug)]
pub struct KvCache {
    /// layer index -> slot index (None: attention dropped, no slot).
    slot_of: Vec<Option<usize>>,
    slots: Vec<Option<Slot>>,
}

impl Clone for KvCache {
    /// A deep copy: slots are written in place, so copies must not share buffers.
    fn clone(&self) -> Self {
        let slots = self
            .slots
            .iter()
            .map(|s| {
                s.as_ref().map(|s| Slot {
                    k: s.k.copy().expect("copying a CPU tensor"),
                    v: s.v.copy().expect("copying a CPU tensor"),
                    len: s.len,
                })
            })
            .collect();
        Self {
            slot_of: self.slot_of.clone(),
            slots,
        }
    }
}

fn grow(buf: &Tensor, len: usize, capacity: usize) -> Result<Tensor> {
    let mut shape = buf.dims().to_vec();
    shape[2] = capacity;
    let next = Tensor::zeros(shape, buf.dtype(), buf.device())?;
    if len > 0 {
        next.slice_set(&buf.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
    }
    Ok(next)
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
            slots: (0..n).map(|_| None).collect(),
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

    /// Layers of the model the cache is for (kept attention or not).
    pub fn layers(&self) -> usize {
        self.slot_of.len()
    }

    /// Sequences the cache holds side by side (1 while empty).
    pub fn batch(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .next()
            .map_or(1, |s| s.k.dim(0).unwrap_or(1))
    }

    /// Positions cached so far.
    pub fn seq_len(&self) -> usize {
        self.slots.iter().flatten().next().map_or(0, |s| s.len)
    }

    /// Bytes of the cached keys and values (the filled positions).
    pub fn bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|s| {
                let (b, h, _, d) = s.k.dims4().unwrap_or((0, 0, 0, 0));
                2 * b * h * s.len * d * s.k.dtype().size_in_bytes()
            })
            .sum()
    }

    /// Bytes allocated, including room for positions not yet filled.
    pub fn allocated_bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|s| 2 * s.k.elem_count() * s.k.dtype().size_in_bytes())
            .sum()
    }

    /// Appends this step's `k`, `v` (`[b, kv_heads, t, d]`) to layer `layer`'s slot;
    /// returns views of all cached keys and values.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor,
        v: Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let idx = self.slot_of[layer].expect("only kept attention layers use the cache");
        let t = k.dim(2)?;
        let slot = match self.slots[idx].take() {
            Some(s) => s,
            None => {
                let mut shape = k.dims().to_vec();
                shape[2] = INITIAL_CAPACITY.max(t);
                Slot {
                    k: Tensor::zeros(shape.clone(), k.dtype(), k.device())?,
                    v: Tensor::zeros(shape, v.dtype(), v.device())?,
                    len: 0,
                }
            }
        };
        let mut slot = if slot.len + t > slot.capacity() {
            let cap = (2 * slot.capacity()).max(slot.len + t);
            Slot {
                k: grow(&slot.k, slot.len, cap)?,
                v: grow(&slot.v, slot.len, cap)?,
                len: slot.len,
            }
        } else {
            slot
        };
        slot.k.slice_set(&k.contiguous()?, 2, slot.len)?;
        slot.v.slice_set(&v.contiguous()?, 2, slot.len)?;
        slot.len += t;
        let out = (
            slot.k.narrow(2, 0, slot.len)?,
            slot.v.narrow(2, 0, slot.len)?,
        );
        self.slots[idx] = Some(slot);
        Ok(out)
    }

    /// The same cache repeated `n` times along the batch (for several continuations of
    /// one cached prompt). The cache must hold a batch of one.
    pub fn repeat_batch(&self, n: usize) -> Result<KvCache> {
        let slots = self
            .slots
            .iter()
            .map(|s| match s {
                Some(s) => Ok(Some(Slot {
                    k: s.k.repeat((n, 1, 1, 1))?,
                    v: s.v.repeat((n, 1, 1, 1))?,
                    len: s.len,
                })),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slot_of: self.slot_of.clone(),
            slots,
        })
    }

    /// Forgets every cached position (keeps nothing allocated).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}
