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

use merge::{Fragment, Session};
use pieces::{byte_of_piece, Pieces};

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
}

mod gguf;
mod hf_json;
mod merge;
mod pieces;
#[cfg(test)]
mod tests;

pub(crate) use gguf::from_gguf;
pub use hf_json::SpecialEnds;
