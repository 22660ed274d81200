//! The tokenizer files of HF-directory exports: `tokenizer.json` (the source's, or one
//! converted from a GGUF SentencePiece vocabulary) and `tokenizer_config.json`.

use std::path::Path;

use serde_json::json;

use super::tensors::write_json;
use crate::error::{Error, Result};
use crate::io::gguf::{meta_bool, meta_str, meta_u64};
use crate::io::source::{Format, ModelSource};
use crate::io::spm::{SpecialEnds, TokenKind};
use crate::io::tokenizer::{SpmTokenizer, Tokenizer};

/// Text the converted `tokenizer.json` is checked on as it is written: spaces, digits, code,
/// newlines and tabs, accents, CJK, an emoji, markup.
const CHECK_TEXT: &str = "Hello world!  It's 2024-06-01, 3.14159 × 10⁵ — naïve café.\n\n\
    def f(x):\n\treturn x ** 2  # ok\n東京 🤖 <b>bold</b>   end ";

/// Writes `tokenizer.json` and `tokenizer_config.json` for `tok` into `dir`: an HF source's
/// files as they are; for a GGUF SentencePiece vocabulary (`tokenizer.ggml.model = llama`),
/// a `tokenizer.json` converted from it (checked to give `tok`'s ids on a sample text) and a
/// config with its BOS / EOS / unknown / padding tokens, `add_bos_token`, `add_eos_token` and
/// chat template.
pub fn write_tokenizer_files(src: &ModelSource, tok: &Tokenizer, dir: &Path) -> Result<()> {
    let tj = dir.join("tokenizer.json");
    let cannot_write = |e: &dyn std::fmt::Display| Error::Tokenizer {
        path: tj.clone(),
        reason: format!("cannot write: {e}"),
    };
    let gguf = src.gguf().map(|g| g.content());
    let add_eos = gguf
        .and_then(|c| meta_bool(c, "tokenizer.ggml.add_eos_token"))
        .unwrap_or(false);
    match (tok.hf(), tok.spm()) {
        (Some(hf), _) => hf.save(&tj, false).map_err(|e| cannot_write(&e))?,
        (None, Some(spm)) => {
            let ends = SpecialEnds {
                bos: tok.bos,
                add_bos: tok.add_bos,
                eos: tok.eos.first().copied(),
                add_eos,
            };
            let text = serde_json::to_string(&spm.hf_tokenizer_json(ends))
                .map_err(|e| cannot_write(&e))?;
            std::fs::write(&tj, text).map_err(|e| Error::io(&tj, e))?;
            check_converted(spm, &tj)?;
        }
        (None, None) => unreachable!("a tokenizer is HF or SentencePiece"),
    }
    let src_tc = src.path().join("tokenizer_config.json");
    if src.format() == Format::HfDir && src_tc.exists() {
        std::fs::copy(&src_tc, dir.join("tokenizer_config.json"))
            .map_err(|e| Error::io(&src_tc, e))?;
        return Ok(());
    }
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
    let mut tc = json!({
        "add_bos_token": tok.add_bos,
        "add_eos_token": add_eos,
        "bos_token": name(tok.bos),
        "eos_token": name(tok.eos.first().copied()),
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    if let Some(c) = gguf {
        let id = |key: &str| meta_u64(c, key).and_then(|x| u32::try_from(x).ok());
        for (field, key) in [
            ("unk_token", "tokenizer.ggml.unknown_token_id"),
            ("pad_token", "tokenizer.ggml.padding_token_id"),
        ] {
            if let Some(t) = name(id(key)) {
                tc[field] = t.into();
            }
        }
        if let Some(t) = meta_str(c, "tokenizer.chat_template") {
            tc["chat_template"] = t.into();
        }
    }
    write_json(&dir.join("tokenizer_config.json"), &tc)
}

/// Reads the converted `tokenizer.json` at `path` back with the `tokenizers` crate and
/// checks that it gives `spm`'s ids on [`CHECK_TEXT`] and on the text of every special token
/// it holds, specials parsed and not.
fn check_converted(spm: &SpmTokenizer, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::Tokenizer {
        path: path.into(),
        reason,
    };
    let mut hf = tokenizers::Tokenizer::from_file(path)
        .map_err(|e| bad(format!("the converted tokenizer does not load: {e}")))?;
    let mut text = CHECK_TEXT.to_string();
    for id in 0..spm.vocab_size() as u32 {
        if spm.kind(id).is_some_and(|k| k != TokenKind::Normal) && text.len() < 4096 {
            text.push_str(spm.piece(id).unwrap_or_default());
            text.push_str(" x");
        }
    }
    for parse_special in [true, false] {
        hf.set_encode_special_tokens(!parse_special);
        let want = spm.encode(&text, parse_special).map_err(&bad)?;
        let got = hf
            .encode(text.as_str(), false)
            .map_err(|e| bad(e.to_string()))?;
        if got.get_ids() != want.as_slice() {
            let at = want
                .iter()
                .zip(got.get_ids())
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            return Err(bad(format!(
                "the tokenizer.json converted from the SentencePiece vocabulary gives other \
                 ids than llmdrop's tokenizer (first difference at token {at}; specials \
                 parsed: {parse_special})"
            )));
        }
    }
    Ok(())
}
