//! The vocabulary a GGUF file's `tokenizer.ggml.*` metadata describes.

use candle_core::quantized::gguf_file::{Content, Value};

use super::*;
use crate::io::gguf::{meta_bool, meta_u64};

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
