//! The SentencePiece-style tokenizer a GGUF with `tokenizer.ggml.model = "llama"` describes
//! (Llama 1/2, Gemma, …): a vocabulary of pieces with scores and token types, no merges.
//! It gives llama.cpp's ids (`llm_tokenizer_spm` in its src/llama-vocab.cpp):
//!
//! 1. Special tokens are cut out of the text first, longest first, each at every leftmost
//!    non-overlapping occurrence: user-defined tokens always, control and unknown tokens only
//!    when parsing specials.
//! 2. Every other fragment gets a leading space if the vocabulary asks for one
//!    (`add_space_prefix`, and only at the start or after a special token), its spaces become
//!    U+2581 (`▁`), and its UTF-8 characters are the initial symbols.
//! 3. Repeatedly, of all adjacent symbol pairs whose concatenation is a piece of the
//!    vocabulary, the one whose piece has the highest score is merged (ties: the leftmost).
//! 4. A final symbol that is not a piece (a character outside the vocabulary) becomes its
//!    UTF-8 bytes as byte tokens `<0xXX>`, or the unknown token where a byte has none.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use candle_core::quantized::gguf_file::{Content, Value};

use super::gguf::{meta_bool, meta_u64};

/// What a vocabulary entry is, from GGUF `tokenizer.ggml.token_type` (llama.cpp's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// 1: ordinary text piece; `▁` stands for a space.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: BOS, EOS, turn markers…: matched in text only when parsing specials, dropped when
    /// decoding unless asked to keep them.
    Control,
    /// 4: matched in text before everything else, decoded verbatim.
    UserDefined,
    /// 5: never produced, decoded as nothing.
    Unused,
    /// 6: `<0xXX>`, one byte.
    Byte,
    /// 0 or anything else: decoded as nothing.
    Undefined,
}

impl TokenKind {
    /// llama.cpp's `llama_token_type` number.
    pub fn from_gguf(t: i64) -> Self {
        match t {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// Pieces llama.cpp makes control tokens by their text whatever their stored type (its list of
/// end-of-generation markers).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The space marker of SentencePiece vocabularies.
const SPACE: char = '\u{2581}';

/// A SentencePiece-style tokenizer: pieces, scores and kinds, looked up by a hash table.
pub struct SpmTokenizer {
    pieces: Pieces,
    scores: Vec<f32>,
    kinds: Vec<TokenKind>,
    /// The token of each byte: `<0xXX>`, else the one-byte piece, else none.
    bytes: [Option<u32>; 256],
    unk: Option<u32>,
    /// Control, user-defined and unknown tokens, longest text first (ties: lower id first).
    specials: Vec<u32>,
    add_space_prefix: bool,
}

impl SpmTokenizer {
    /// A tokenizer over `pieces` (id = position) with their `scores` and `kinds` (both as
    /// many). `unk` is the unknown token used when a byte has no byte token. Fails on
    /// mismatched lengths, a duplicated piece, or more than `u32::MAX - 1` pieces.
    pub fn new<'a>(
        pieces: impl IntoIterator<Item = &'a str>,
        scores: Vec<f32>,
        kinds: Vec<TokenKind>,
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> std::result::Result<Self, String> {
        let pieces = Pieces::build(pieces)?;
        let n = pieces.len();
        if scores.len() != n || kinds.len() != n {
            return Err(format!(
                "{n} tokens but {} scores and {} token types",
                scores.len(),
                kinds.len()
            ));
        }
        let mut kinds = kinds;
        for (i, kind) in kinds.iter_mut().enumerate() {
            if EOG_TEXTS.contains(&pieces.get(i)) {
                *kind = TokenKind::Control;
            }
        }
        let mut bytes = [None; 256];
        for (b, slot) in bytes.iter_mut().enumerate() {
            *slot = pieces.id(&format!("<0x{b:02X}>")).or_else(|| {
                // the byte as a one-byte piece (ASCII only: others are not valid UTF-8)
                u8::try_from(b)
                    .ok()
                    .filter(u8::is_ascii)
                    .and_then(|c| pieces.id(&(c as char).to_string()))
            });
        }
        let unk = unk.filter(|&u| (u as usize) < n);
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    kinds[i as usize],
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                )
            })
            .collect();
        specials.sort_by(|&a, &b| {
            let len = |i: u32| pieces.get(i as usize).len();
            len(b).cmp(&len(a)).then(a.cmp(&b))
        });
        Ok(Self {
            pieces,
            scores,
            kinds,
            bytes,
            unk,
            specials,
            add_space_prefix,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece of `id` as stored (`▁` for spaces, `<0xXX>` for bytes).
    pub fn piece(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.pieces.len()).then(|| self.pieces.get(id as usize))
    }

    /// The id of a stored piece.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.pieces.id(piece)
    }

    /// The kind of `id`.
    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// Token ids of `text`, no BOS/EOS added. Control and unknown tokens written in the text
    /// are recognised when `parse_special` (llama.cpp's `parse_special`), else they are text;
    /// user-defined tokens are recognised either way. Errors name a byte with neither a byte
    /// token nor an unknown token to stand for it.
    pub fn encode(&self, text: &str, parse_special: bool) -> std::result::Result<Vec<u32>, String> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut session = Session::default();
        let mut prev_special = true; // a prefix space goes in front of the first fragment
        for frag in self.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    session.text.clear();
                    if self.add_space_prefix && prev_special {
                        session.text.push(SPACE);
                    }
                    session
                        .text
                        .extend(text[a..b].chars().map(|c| if c == ' ' { SPACE } else { c }));
                    self.tokenize_fragment(&mut session, &mut out)?;
                    prev_special = false;
                }
            }
        }
        Ok(out)
    }

    /// Text of `ids`. Control and unknown tokens are written (as their piece) only when
    /// `keep_special`; when not, a leading BOS `bos` is skipped. The leading space the
    /// tokenizer adds (`add_space_prefix`) is removed unless the ids start with that BOS.
    /// Bytes that do not form UTF-8 become U+FFFD.
    pub fn decode(
        &self,
        ids: &[u32],
        keep_special: bool,
        bos: Option<u32>,
    ) -> std::result::Result<String, String> {
        let mut ids = ids;
        let mut strip_space = self.add_space_prefix;
        if !keep_special && bos.is_some() && ids.first().copied() == bos {
            strip_space = false;
            ids = &ids[1..];
        }
        let mut out: Vec<u8> = Vec::new();
        for &id in ids {
            let kind = self.kind(id).ok_or_else(|| {
                format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.vocab_size()
                )
            })?;
            let piece = self.pieces.get(id as usize);
            let start = out.len();
            match kind {
                TokenKind::Control | TokenKind::Unknown => {
                    if keep_special {
                        out.extend_from_slice(piece.as_bytes());
                    }
                }
                TokenKind::UserDefined => out.extend_from_slice(piece.as_bytes()),
                TokenKind::Normal => {
                    for c in piece.chars() {
                        let c = if c == SPACE { ' ' } else { c };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
                TokenKind::Byte => out.extend(byte_of_piece(piece)),
                TokenKind::Unused | TokenKind::Undefined => {}
            }
            if strip_space {
                // llama.cpp strips one space from the first token only, even an empty one
                if out.len() > start && out[start] == b' ' {
                    out.remove(start);
                }
                strip_space = false;
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Splits `text` at the special tokens, as llama.cpp's `tokenizer_st_partition`: for each
    /// special token (longest first), every text fragment is cut at each leftmost
    /// non-overlapping occurrence.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
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
    fn tokenize_fragment(
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
pub(crate) fn from_gguf(c: &Content) -> std::result::Result<SpmTokenizer, String> {
    let array = |key: &str| match c.metadata.get(key) {
        Some(Value::Array(a)) => Some(a),
        _ => None,
    };
    let pieces = array("tokenizer.ggml.tokens")
        .ok_or("no tokenizer.ggml.tokens")?
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            _ => Err("tokenizer.ggml.tokens holds a non-string".to_string()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let n = pieces.len();
    let scores = match array("tokenizer.ggml.scores") {
        None => vec![0.0; n],
        Some(a) => a
            .iter()
            .take(n)
            .map(|v| match v {
                Value::F32(x) => Ok(*x),
                Value::I32(x) => Ok(*x as f32),
                _ => Err("tokenizer.ggml.scores holds neither f32 nor i32".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
    };
    let kinds = match array("tokenizer.ggml.token_type") {
        None => vec![TokenKind::Normal; n],
        Some(a) => a
            .iter()
            .take(n)
            .map(|v| match v {
                Value::I32(x) => Ok(TokenKind::from_gguf(*x as i64)),
                Value::U32(x) => Ok(TokenKind::from_gguf(*x as i64)),
                _ => Err("tokenizer.ggml.token_type holds a non-integer".to_string()),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?,
    };
    let unk = meta_u64(c, "tokenizer.ggml.unknown_token_id").unwrap_or(0);
    let unk = u32::try_from(unk).ok();
    let add_space_prefix = meta_bool(c, "tokenizer.ggml.add_space_prefix").unwrap_or(true);
    SpmTokenizer::new(pieces, scores, kinds, unk, add_space_prefix)
}

/// All pieces in one string, and an open-addressing hash table from piece to id: a 262k
/// vocabulary is two allocations, built in milliseconds.
struct Pieces {
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

    fn build<'a>(pieces: impl IntoIterator<Item = &'a str>) -> std::result::Result<Self, String> {
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

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Piece `id` (< len).
    fn get(&self, id: usize) -> &str {
        &self.text[self.offsets[id]..self.offsets[id + 1]]
    }

    fn id(&self, piece: &str) -> Option<u32> {
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
fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Clone, Copy, Debug)]
enum Fragment {
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
struct Session {
    text: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made vocabulary: (piece, score, kind).
    fn tiny(add_space_prefix: bool, with_bytes: bool) -> SpmTokenizer {
        let mut v: Vec<(String, f32, TokenKind)> = vec![
            ("<unk>".into(), 0.0, TokenKind::Unknown),
            ("<s>".into(), 0.0, TokenKind::Control),
            ("</s>".into(), 0.0, TokenKind::Control),
            ("<ud>".into(), 0.0, TokenKind::UserDefined),
        ];
        for (p, s) in [
            ("▁", -1.0),
            ("a", -2.0),
            ("b", -2.0),
            ("c", -2.0),
            ("ab", -5.0),
            ("bc", -3.0), // bc beats ab in "abc"
            ("▁a", -4.0),
            ("▁ab", -6.0),
            ("aa", -7.0), // equal scores: the leftmost pair merges first
            ("é", -2.0),
            ("<s", -9.0), // pieces can spell a control token's text
            ("<", -3.0),
            ("s", -3.0),
            (">", -3.0),
        ] {
            v.push((p.into(), s, TokenKind::Normal));
        }
        if with_bytes {
            for b in 0..=255u8 {
                v.push((format!("<0x{b:02X}>"), 0.0, TokenKind::Byte));
            }
        }
        let (p, rest): (Vec<_>, Vec<_>) = v.into_iter().map(|(p, s, k)| (p, (s, k))).unzip();
        let (s, k) = rest.into_iter().unzip();
        SpmTokenizer::new(
            p.iter().map(String::as_str),
            s,
            k,
            Some(0),
            add_space_prefix,
        )
        .unwrap()
    }

    fn pieces(t: &SpmTokenizer, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| t.piece(i).unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_highest_score_merges_first() {
        let t = tiny(false, true);
        // "abc": bc (-3) beats ab (-5), then a + bc is no piece
        assert_eq!(pieces(&t, &t.encode("abc", false).unwrap()), ["a", "bc"]);
        // "ab": the only pair
        assert_eq!(pieces(&t, &t.encode("ab", false).unwrap()), ["ab"]);
        // " ab": ▁a (-4) beats ab (-5), then ▁a + b = ▁ab
        assert_eq!(pieces(&t, &t.encode(" ab", false).unwrap()), ["▁ab"]);
    }

    #[test]
    fn equal_scores_merge_the_leftmost_pair() {
        let t = tiny(false, true);
        assert_eq!(pieces(&t, &t.encode("aaa", false).unwrap()), ["aa", "a"]);
        assert_eq!(
            pieces(&t, &t.encode("aaaaa", false).unwrap()),
            ["aa", "aa", "a"]
        );
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes_or_unk() {
        let t = tiny(false, true);
        // 'ü' = C3 BC, not a piece; 'é' is one
        let ids = t.encode("üé", false).unwrap();
        assert_eq!(pieces(&t, &ids), ["<0xC3>", "<0xBC>", "é"]);
        assert_eq!(t.decode(&ids, false, None).unwrap(), "üé");
        let t = tiny(false, false);
        assert_eq!(
            pieces(&t, &t.encode("üa", false).unwrap()),
            ["<unk>", "<unk>", "a"]
        );
    }

    #[test]
    fn space_prefix_only_when_asked() {
        let t = tiny(true, true);
        assert_eq!(pieces(&t, &t.encode("ab", false).unwrap()), ["▁ab"]);
        // after a special token the next fragment gets the prefix again
        assert_eq!(
            pieces(&t, &t.encode("ab<s>ab", true).unwrap()),
            ["▁ab", "<s>", "▁ab"]
        );
        let ids = t.encode("ab", false).unwrap();
        assert_eq!(t.decode(&ids, false, None).unwrap(), "ab");
        assert!(t.encode("", false).unwrap().is_empty());
    }

    #[test]
    fn specials_split_only_when_parsing_them_user_defined_always() {
        let t = tiny(false, true);
        // a control token written in text is text when not parsing specials ('/' is no piece)
        assert_eq!(
            pieces(&t, &t.encode("a</s>b", false).unwrap()),
            ["a", "<", "<0x2F>", "s", ">", "b"]
        );
        assert_eq!(
            pieces(&t, &t.encode("a</s>b", true).unwrap()),
            ["a", "</s>", "b"]
        );
        // ... but merges may still spell it, as in llama.cpp: "<s" (-9) + ">" = "<s>"
        assert_eq!(
            pieces(&t, &t.encode("a<s>b", false).unwrap()),
            ["a", "<s>", "b"]
        );
        // "</s>" is longer than "<s>": matched first
        assert_eq!(
            pieces(&t, &t.encode("</s><s>", true).unwrap()),
            ["</s>", "<s>"]
        );
        // user-defined: always one token
        assert_eq!(
            pieces(&t, &t.encode("a<ud>a<ud>", false).unwrap()),
            ["a", "<ud>", "a", "<ud>"]
        );
    }

    #[test]
    fn decode_round_trips_and_drops_control_tokens() {
        let t = tiny(false, true);
        let text = "ab cab 日本 <ud> a";
        let ids = t.encode(text, false).unwrap();
        assert_eq!(t.decode(&ids, false, None).unwrap(), text);
        let ids = t.encode("<s>a b</s>", true).unwrap();
        assert_eq!(t.decode(&ids, false, Some(1)).unwrap(), "a b");
        assert_eq!(t.decode(&ids, true, Some(1)).unwrap(), "<s>a b</s>");
        assert!(t.decode(&[9999], false, None).is_err());
    }

    #[test]
    fn a_long_text_finds_specials_through_the_window_filter() {
        let t = tiny(false, true);
        let long = format!("{}</s>{}", "ab ".repeat(2000), "c".repeat(10));
        let ids = t.encode(&long, true).unwrap();
        assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
        assert_eq!(t.decode(&ids, true, None).unwrap(), long);
    }

    #[test]
    fn bad_vocabularies_are_refused() {
        let k = vec![TokenKind::Normal; 2];
        let dup = SpmTokenizer::new(["a", "a"], vec![0.0; 2], k.clone(), None, false);
        assert!(dup.err().unwrap().contains("repeats"));
        assert!(SpmTokenizer::new(["a", "b"], vec![0.0; 1], k.clone(), None, false).is_err());
        // empty pieces stay distinct and never match, as in llama.cpp
        let t = SpmTokenizer::new(["", ""], vec![0.0; 2], k, None, false).unwrap();
        assert_eq!(t.piece(1), Some("[EMPTY_1]"));
        assert_eq!(t.token_id(""), None);
    }

    #[test]
    fn the_piece_table_finds_every_piece_of_a_large_vocabulary() {
        let pieces: Vec<String> = (0..50_000).map(|i| format!("p{i}")).collect();
        let n = pieces.len();
        let t = SpmTokenizer::new(
            pieces.iter().map(String::as_str),
            vec![0.0; n],
            vec![TokenKind::Normal; n],
            None,
            false,
        )
        .unwrap();
        for (i, p) in pieces.iter().enumerate() {
            assert_eq!(t.token_id(p), Some(i as u32));
        }
        assert_eq!(t.token_id("p50000"), None);
        assert_eq!(t.piece(50_000), None);
    }
}
