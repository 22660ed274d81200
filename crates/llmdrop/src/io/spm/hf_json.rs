//! An HF `tokenizer.json` giving the same ids as an [`SpmTokenizer`]:
//!
//! - control, unknown and user-defined tokens become added tokens matched in the raw text
//!   (`normalized: false`), the first two `special` (cut out unless the caller asks to encode
//!   specials as text, as `parse_special = false`), user-defined ones always;
//! - the normalizer writes spaces as `▁` (after a `▁` prefix when the vocabulary adds one);
//! - the model is BPE with byte fallback whose merges are every split `l + r = p` of a piece
//!   `p` into two pieces, ranked by `p`'s score, highest first: the merge SentencePiece's
//!   loop takes first (the pair whose joined piece scores highest) is the one of lowest rank;
//! - the decoder turns `▁` back into spaces and byte tokens into bytes.
//!
//! What the two can still tell apart: two splits of one piece competing for overlapping
//! symbols (SentencePiece takes the leftmost, BPE the lower rank), a character outside the
//! vocabulary that a longer piece contains (BPE turns it into bytes first), and, in a
//! vocabulary without byte tokens, a multi-byte character outside it (one unknown token per
//! byte here, one per character in BPE). Neither occurs
//! in the vocabularies checked (Gemma 3's, on a megabyte of text: tests/gemma_tokenizer_json.rs).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::{SpmTokenizer, TokenKind, SPACE};

/// What the tokenizer adds around a sequence (the post-processor).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecialEnds {
    /// The BOS token, written in front when `add_bos`.
    pub bos: Option<u32>,
    pub add_bos: bool,
    /// The EOS token, written at the end when `add_eos`.
    pub eos: Option<u32>,
    pub add_eos: bool,
}

impl SpmTokenizer {
    /// The `tokenizer.json` of this vocabulary (see the module docs), with `ends` added by its
    /// post-processor.
    pub fn hf_tokenizer_json(&self, ends: SpecialEnds) -> Value {
        let n = self.pieces.len();
        let vocab: Map<String, Value> = (0..n)
            .map(|i| (self.pieces.get(i).to_string(), json!(i)))
            .collect();
        let added: Vec<Value> = (0..n)
            .filter_map(|i| {
                let special = match self.kinds[i] {
                    TokenKind::Control | TokenKind::Unknown => true,
                    TokenKind::UserDefined => false,
                    _ => return None,
                };
                Some(
                    json!({"id": i, "content": self.pieces.get(i), "single_word": false,
                    "lstrip": false, "rstrip": false, "normalized": false, "special": special}),
                )
            })
            .collect();
        let replace = |from: char, to: char| {
            json!({"type": "Replace", "pattern": {"String": from.to_string()},
                   "content": to.to_string()})
        };
        let normalizer = match self.add_space_prefix {
            true => json!({"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": SPACE.to_string()}, replace(' ', SPACE)]}),
            false => replace(' ', SPACE),
        };
        let mut decoders = vec![
            replace(SPACE, ' '),
            json!({"type": "ByteFallback"}),
            json!({"type": "Fuse"}),
        ];
        if self.add_space_prefix {
            decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        }
        let unk = self.unk.map(|u| self.pieces.get(u as usize));
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": null,
            "post_processor": self.post_processor(ends),
            "decoder": {"type": "Sequence", "decoders": decoders},
            "model": {"type": "BPE", "dropout": null, "unk_token": unk,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": true, "ignore_merges": false,
                      "vocab": vocab, "merges": self.merges()},
        })
    }

    /// Every split of every piece into two pieces, `[left, right]`, highest-scoring joined
    /// piece first (ties: lower id, then shorter left part).
    fn merges(&self) -> Vec<[&str; 2]> {
        let mut m: Vec<(f32, u32, usize, &str, &str)> = Vec::new();
        for id in 0..self.pieces.len() {
            let p = self.pieces.get(id);
            for (k, _) in p.char_indices().skip(1) {
                let (l, r) = p.split_at(k);
                if self.pieces.id(l).is_some() && self.pieces.id(r).is_some() {
                    m.push((self.scores[id], id as u32, k, l, r));
                }
            }
        }
        // as the merge loop compares scores (`<`; NaN ranks last)
        let by_score = |a: f32, b: f32| match (a.is_nan(), b.is_nan()) {
            (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
            (x, y) => x.cmp(&y),
        };
        m.sort_by(|a, b| by_score(a.0, b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        m.into_iter().map(|(_, _, _, l, r)| [l, r]).collect()
    }

    /// A template adding BOS / EOS as `ends` asks, or null when it adds nothing.
    fn post_processor(&self, ends: SpecialEnds) -> Value {
        let piece = |id: Option<u32>, on: bool| {
            id.filter(|&i| on && (i as usize) < self.pieces.len())
                .map(|i| (i, self.pieces.get(i as usize)))
        };
        let (bos, eos) = (piece(ends.bos, ends.add_bos), piece(ends.eos, ends.add_eos));
        if bos.is_none() && eos.is_none() {
            return Value::Null;
        }
        let special =
            |t: &str, type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
        let seq = |s: &str, type_id: u32| json!({"Sequence": {"id": s, "type_id": type_id}});
        let one = |s: &str, type_id: u32| {
            let mut v = vec![];
            v.extend(bos.map(|(_, t)| special(t, type_id)));
            v.push(seq(s, type_id));
            v.extend(eos.map(|(_, t)| special(t, type_id)));
            v
        };
        let mut pair = one("A", 0);
        pair.extend(one("B", 1));
        let tokens: Map<String, Value> = bos
            .into_iter()
            .chain(eos)
            .map(|(i, t)| (t.to_string(), json!({"id": t, "ids": [i], "tokens": [t]})))
            .collect();
        json!({"type": "TemplateProcessing", "single": one("A", 0), "pair": pair,
               "special_tokens": tokens})
    }
}
