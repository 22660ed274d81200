//! A fast 64-bit checksum for what llmdrop writes and reads back itself (checkpoints):
//! FNV-1a over 32-bit little-endian words. Each step (xor a word, multiply by an odd
//! number) is a bijection of the running value, so changing any one word always changes
//! the result; lengths are stored beside it, so truncation is caught too. Not a hash to
//! trust against a forger: it guards against torn writes and damaged disks.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// A running checksum; [`Sum64::value`] after the last update. Bytes may arrive in pieces
/// of any length: the result depends only on their concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sum64 {
    h: u64,
    tail: [u8; 4],
    held: usize,
}

impl Default for Sum64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sum64 {
    pub fn new() -> Self {
        Self::resume(OFFSET)
    }

    /// Continues a checksum whose [`Sum64::value`] was `value` after a whole number of
    /// 4-byte words.
    pub fn resume(value: u64) -> Self {
        Self {
            h: value,
            tail: [0; 4],
            held: 0,
        }
    }

    #[inline]
    fn word(&mut self, w: [u8; 4]) {
        self.h = (self.h ^ u32::from_le_bytes(w) as u64).wrapping_mul(PRIME);
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.held > 0 {
            let take = (4 - self.held).min(bytes.len());
            self.tail[self.held..self.held + take].copy_from_slice(&bytes[..take]);
            self.held += take;
            bytes = &bytes[take..];
            if self.held < 4 {
                return;
            }
            self.word(self.tail);
            self.held = 0;
        }
        let mut words = bytes.chunks_exact(4);
        for w in &mut words {
            self.word([w[0], w[1], w[2], w[3]]);
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    /// The checksum of everything so far (a last partial word is padded with its length,
    /// so `[0]` and `[0, 0]` differ).
    pub fn value(&self) -> u64 {
        if self.held == 0 {
            return self.h;
        }
        let mut w = [0u8; 4];
        w[..self.held].copy_from_slice(&self.tail[..self.held]);
        let h = (self.h ^ u32::from_le_bytes(w) as u64).wrapping_mul(PRIME);
        (h ^ self.held as u64).wrapping_mul(PRIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(b: &[u8]) -> u64 {
        let mut s = Sum64::new();
        s.update(b);
        s.value()
    }

    #[test]
    fn pieces_do_not_matter_and_any_changed_byte_or_length_does() {
        let data: Vec<u8> = (0..103u32).map(|i| (i * 37 % 251) as u8).collect();
        let whole = of(&data);
        for cut in [0, 1, 3, 4, 5, 50, 102, 103] {
            for cut2 in [cut, (cut + 7).min(103)] {
                let mut s = Sum64::new();
                s.update(&data[..cut]);
                s.update(&data[cut..cut2]);
                s.update(&data[cut2..]);
                assert_eq!(s.value(), whole, "{cut} {cut2}");
            }
        }
        for i in [0, 1, 50, 100, 102] {
            let mut d = data.clone();
            d[i] ^= 0x10;
            assert_ne!(of(&d), whole, "byte {i}");
        }
        assert_ne!(of(&data[..102]), whole);
        assert_ne!(of(&[0]), of(&[0, 0]));
        // continued from a value after whole words
        let mut s = Sum64::resume(of(&data[..100]));
        s.update(&data[100..]);
        assert_eq!(s.value(), whole);
    }
}
