//! The piece table: piece -> id lookups for vocabularies of hundreds of thousands.

/// All pieces in one string, and an open-addressing hash table from piece to id: a 262k
/// vocabulary is two allocations, built in milliseconds.
pub(super) struct Pieces {
    text: String,
    /// Piece i is `text[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    /// (id, low 32 bits of the piece's hash) by the hash's high bits, linear probing;
    /// `EMPTY` ids mark free slots. At most half full.
    slots: Vec<(u32, u32)>,
    /// 64 − log2(slots.len()).
    shift: u32,
}

impl Pieces {
    const EMPTY: u32 = u32::MAX;

    pub(super) fn build<'a>(
        pieces: impl IntoIterator<Item = &'a str>,
    ) -> std::result::Result<Self, String> {
        let mut text = String::new();
        let mut offsets = vec![0];
        for (i, p) in pieces.into_iter().enumerate() {
            if p.is_empty() {
                // as llama.cpp: an empty piece never matches, but stays unique
                text.push_str(&format!("[EMPTY_{i}]"));
            } else {
                text.push_str(p);
            }
            offsets.push(text.len());
        }
        let n = offsets.len() - 1;
        if n >= Self::EMPTY as usize {
            return Err(format!("{n} tokens do not fit u32 ids"));
        }
        let size = (2 * n).next_power_of_two().max(16);
        let mut me = Self {
            text,
            offsets,
            slots: vec![(Self::EMPTY, 0); size],
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for id in 0..n {
            let p = me.get(id);
            let h = hash(p.as_bytes());
            let mut k = (h >> me.shift) as usize;
            loop {
                match me.slots[k] {
                    (Self::EMPTY, _) => break,
                    (other, f) if f == h as u32 && me.get(other as usize) == p => {
                        return Err(format!("token {id} repeats token {other}: {p:?}"));
                    }
                    _ => k = (k + 1) & mask,
                }
            }
            me.slots[k] = (id as u32, h as u32);
        }
        Ok(me)
    }

    pub(super) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Piece `id` (< len).
    pub(super) fn get(&self, id: usize) -> &str {
        &self.text[self.offsets[id]..self.offsets[id + 1]]
    }

    pub(super) fn id(&self, piece: &str) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let h = hash(piece.as_bytes());
        let mut k = (h >> self.shift) as usize;
        loop {
            match self.slots[k] {
                (Self::EMPTY, _) => return None,
                (id, f) if f == h as u32 && self.get(id as usize) == piece => return Some(id),
                _ => k = (k + 1) & mask,
            }
        }
    }
}

/// FNV-1a, then a multiplicative mix so that the high bits (the table index) depend on
/// every byte.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `<0xXX>` → the byte.
pub(super) fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
