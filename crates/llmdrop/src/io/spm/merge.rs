//! The merge loop: special-token partitioning, pair merging by score, byte fallback.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use super::*;

impl SpmTokenizer {
    /// Splits `text` at the special tokens, as llama.cpp's `tokenizer_st_partition`: for each
    /// special token (longest first), every text fragment is cut at each leftmost
    /// non-overlapping occurrence.
    pub(super) fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = vec![];
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0, text.len()));
        // A special token can only occur in a fragment if its first bytes occur in the text:
        // a cheap exact filter over the ~6k control tokens of a large vocabulary.
        let windows = Windows::of(text.as_bytes());
        let mut next = Vec::new();
        for &id in &self.specials {
            let kind = self.kinds[id as usize];
            if !parse_special && kind != TokenKind::UserDefined {
                continue;
            }
            let pat = self.pieces.get(id as usize);
            if !windows.may_contain(pat.as_bytes()) {
                continue;
            }
            next.clear();
            let mut changed = false;
            for &f in &frags {
                let Fragment::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(m) = text[a..b].find(pat) {
                    changed = true;
                    if m > 0 {
                        next.push(Fragment::Text(a, a + m));
                    }
                    next.push(Fragment::Token(id));
                    a += m + pat.len();
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            if changed {
                std::mem::swap(&mut frags, &mut next);
            }
        }
        frags
    }

    /// SPM merging of `session.text` (spaces already escaped), ids appended to `out`.
    pub(super) fn tokenize_fragment(
        &self,
        s: &mut Session,
        out: &mut Vec<u32>,
    ) -> std::result::Result<(), String> {
        let text = s.text.as_str();
        s.symbols.clear();
        s.queue.clear();
        for (i, (start, c)) in text.char_indices().enumerate() {
            s.symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: Some(i + 1),
            });
        }
        let Some(last) = s.symbols.last_mut() else {
            return Ok(());
        };
        last.next = None;
        for i in 1..s.symbols.len() {
            self.push_pair(text, &s.symbols, &mut s.queue, i - 1, i);
        }
        while let Some(p) = s.queue.pop() {
            let (l, r) = (s.symbols[p.left], s.symbols[p.right]);
            // stale: one side has been merged since the pair was queued
            if l.len == 0 || r.len == 0 || l.len + r.len != p.size {
                continue;
            }
            s.symbols[p.left].len += r.len;
            s.symbols[p.left].next = r.next;
            s.symbols[p.right].len = 0;
            if let Some(n) = r.next {
                s.symbols[n].prev = Some(p.left);
            }
            if let Some(prev) = l.prev {
                self.push_pair(text, &s.symbols, &mut s.queue, prev, p.left);
            }
            if let Some(n) = r.next {
                self.push_pair(text, &s.symbols, &mut s.queue, p.left, n);
            }
        }
        let mut i = Some(0);
        while let Some(k) = i {
            let sym = s.symbols[k];
            let piece = &text[sym.start..sym.start + sym.len];
            match self.pieces.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        let id = self.bytes[b as usize].or(self.unk).ok_or_else(|| {
                            format!(
                                "byte 0x{b:02X} has no byte token and there is no unknown token"
                            )
                        })?;
                        out.push(id);
                    }
                }
            }
            i = sym.next;
        }
        Ok(())
    }

    /// Queues the pair (left, right) if their concatenation is a piece.
    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        queue: &mut BinaryHeap<Pair>,
        left: usize,
        right: usize,
    ) {
        let (l, r) = (symbols[left], symbols[right]);
        // adjacent symbols are adjacent in the text: their concatenation is one slice
        let joined = &text[l.start..r.start + r.len];
        if let Some(id) = self.pieces.id(joined) {
            queue.push(Pair {
                score: self.scores[id as usize],
                left,
                right,
                size: joined.len(),
            });
        }
    }
}

/// The SPM tokenizer of a GGUF whose `tokenizer.ggml.model` is `llama`, with llama.cpp's
/// defaults for missing keys (unknown token 0, a prefix space). Scores may be f32 or i32, as
/// llama.cpp accepts; missing scores are 0 and missing token types normal.

#[derive(Clone, Copy, Debug)]
pub(super) enum Fragment {
    /// Byte range of the input text.
    Text(usize, usize),
    Token(u32),
}

/// One symbol of the merge: a byte range of the escaped text (`len` 0 once merged into its
/// left neighbour) in a doubly linked list.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge. The heap pops the highest score first, then the leftmost.
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Pair {
    fn cmp(&self, o: &Self) -> Ordering {
        // as llama.cpp's comparator: `<` on the scores (so -0.0 == 0.0), then leftmost
        self.score
            .partial_cmp(&o.score)
            .unwrap_or(Ordering::Equal)
            .then(o.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Pair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// Buffers reused across the fragments of one text.
#[derive(Default)]
pub(super) struct Session {
    pub(super) text: String,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Pair>,
}

/// The set of 1- to 4-byte windows of a text: whether a pattern's first bytes occur in it.
struct Windows {
    short: HashSet<u32>,
    /// Built only for long texts: a short one is searched directly.
    built: bool,
}

impl Windows {
    const MIN_TEXT: usize = 4096;

    fn of(text: &[u8]) -> Self {
        let built = text.len() >= Self::MIN_TEXT;
        let mut short = HashSet::new();
        if built {
            for w in text.windows(4) {
                short.insert(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
        Self { short, built }
    }

    /// False only when `pat` (4 bytes or longer) certainly does not occur.
    fn may_contain(&self, pat: &[u8]) -> bool {
        if !self.built || pat.len() < 4 {
            return true;
        }
        self.short
            .contains(&u32::from_le_bytes([pat[0], pat[1], pat[2], pat[3]]))
    }
}
