//! Tokenizers: HF `tokenizer.json`, or one built from GGUF metadata as llama.cpp reads it
//! (gpt2-style BPE through an HF tokenizer; SentencePiece-style vocabularies by [`SpmTokenizer`]).

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::json;

use super::file_kind;
use super::gguf::{meta_bool, meta_str, meta_u64};
use super::spm;
pub use super::spm::SpmTokenizer;
use crate::error::{Error, Result};

/// A model's tokenizer plus the BOS/EOS conventions it comes with.
pub struct Tokenizer {
    inner: Backend,
    path: PathBuf,
    /// BOS id, and whether the model expects it in front of a prompt.
    pub bos: Option<u32>,
    pub add_bos: bool,
    pub eos: Vec<u32>,
}

/// What does the tokenizing.
enum Backend {
    /// An HF tokenizer: `tokenizer.json`, or built from a gpt2-style GGUF vocabulary.
    Hf(Box<tokenizers::Tokenizer>),
    /// A GGUF SentencePiece-style vocabulary (`tokenizer.ggml.model = llama`).
    Spm(Box<SpmTokenizer>),
}

/// Largest `tokenizer.json` / `tokenizer_config.json` read (real ones reach tens of MB).
const MAX_TOKENIZER_BYTES: u64 = 512 << 20;

/// GPT-2-style pre-tokenizer regexes by GGUF `tokenizer.ggml.pre` name (llama.cpp's table).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn byte_level(use_regex: bool) -> serde_json::Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(regex: &str) -> serde_json::Value {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

/// The HF pre-tokenizer equivalent to llama.cpp's for `pre`.
fn pre_tokenizer(pre: &str) -> Option<serde_json::Value> {
    Some(match pre {
        // every digit alone, then the GPT-2 regex
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "gpt2" | "default" => byte_level(true),
        "llama3" | "llama-bpe" => json!({"type": "Sequence", "pretokenizers": [
            split(LLAMA3_REGEX), byte_level(false)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(QWEN2_REGEX), byte_level(false)]}),
        _ => return None,
    })
}

impl Tokenizer {
    /// Reads `tokenizer.json` (and BOS conventions from `tokenizer_config.json` if present).
    pub fn from_hf_dir(dir: &Path, bos: Option<u32>, eos: Vec<u32>) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let text = file_kind::read_text(&path, MAX_TOKENIZER_BYTES)?;
        let inner: tokenizers::Tokenizer = text.parse().map_err(|e| Error::Tokenizer {
            path: path.clone(),
            reason: format!("{e}"),
        })?;
        // optional: unreadable (or not a regular file) means no BOS convention
        let add_bos = file_kind::read_text(&dir.join("tokenizer_config.json"), MAX_TOKENIZER_BYTES)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("add_bos_token").and_then(|b| b.as_bool()))
            .unwrap_or(false);
        Ok(Self {
            inner: Backend::Hf(Box::new(inner)),
            path,
            bos,
            add_bos,
            eos,
        })
    }

    /// Builds the tokenizer a GGUF file describes: gpt2-style BPE, or a SentencePiece-style
    /// vocabulary (`llama`: Llama 2, Gemma…) giving llama.cpp's ids.
    pub fn from_gguf(c: &Content, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Tokenizer {
            path: path.into(),
            reason,
        };
        let model = meta_str(c, "tokenizer.ggml.model").unwrap_or_default();
        if model == "llama" {
            // llama.cpp's defaults for a SentencePiece vocabulary: BOS 1 added, EOS 2
            let spm = spm::from_gguf(c).map_err(bad)?;
            let id = |key: &str, default: u32| {
                meta_u64(c, key).map_or(Some(default), |x| u32::try_from(x).ok())
            };
            return Ok(Self {
                inner: Backend::Spm(Box::new(spm)),
                path: path.into(),
                bos: id("tokenizer.ggml.bos_token_id", 1),
                add_bos: meta_bool(c, "tokenizer.ggml.add_bos_token").unwrap_or(true),
                eos: id("tokenizer.ggml.eos_token_id", 2).into_iter().collect(),
            });
        }
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer model `{model}` is not supported (only gpt2-style BPE and \
                 SentencePiece-style `llama`)"
            )));
        }
        let pre = meta_str(c, "tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        let pre_tok = pre_tokenizer(&pre)
            .ok_or_else(|| bad(format!("pre-tokenizer `{pre}` is not supported")))?;
        let tokens = match c.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(bad("tokenizer.ggml.tokens holds a non-string".into())),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad("no tokenizer.ggml.tokens".into())),
        };
        let types: Vec<i64> = match c.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(x) => *x as i64,
                    Value::U32(x) => *x as i64,
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let merges: Vec<String> = match c.metadata.get("tokenizer.ggml.merges") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![], // a byte-level vocabulary needs no merges
        };
        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        // Control (3) and user-defined (4) tokens are matched whole, as llama.cpp does when it
        // parses special tokens.
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
            .map(|(i, t)| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": types[i] == 3})
            })
            .collect();
        let tj = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tok,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        let inner: tokenizers::Tokenizer = serde_json::from_value(tj)
            .map_err(|e| bad(format!("cannot build the tokenizer: {e}")))?;
        let bos = meta_u64(c, "tokenizer.ggml.bos_token_id").map(|x| x as u32);
        let eos = meta_u64(c, "tokenizer.ggml.eos_token_id")
            .map(|x| vec![x as u32])
            .unwrap_or_default();
        Ok(Self {
            inner: Backend::Hf(Box::new(inner)),
            path: path.into(),
            bos,
            add_bos: meta_bool(c, "tokenizer.ggml.add_bos_token").unwrap_or(false),
            eos,
        })
    }

    fn error(&self, reason: String) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            reason,
        }
    }

    /// Token ids of `text` with no special tokens added. Special tokens written in the text
    /// (`<|im_start|>`, `<start_of_turn>`) are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.inner {
            Backend::Hf(t) => {
                let enc = t
                    .encode(text, false)
                    .map_err(|e| self.error(e.to_string()))?;
                Ok(enc.get_ids().to_vec())
            }
            Backend::Spm(t) => t.encode(text, true).map_err(|e| self.error(e)),
        }
    }

    /// Token ids of a prompt: BOS first when the model's tokenizer config asks for it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// The BOS that starts every sequence the model sees (calibration blocks, perplexity
    /// windows) when its tokenizer adds one; None when it adds none (SmolLM2).
    pub fn sequence_bos(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    /// Text of `ids`; special tokens are kept when `keep_special`.
    pub fn decode(&self, ids: &[u32], keep_special: bool) -> Result<String> {
        match &self.inner {
            Backend::Hf(t) => t
                .decode(ids, !keep_special)
                .map_err(|e| self.error(e.to_string())),
            Backend::Spm(t) => {
                let bos = if self.add_bos { self.bos } else { None };
                t.decode(ids, keep_special, bos).map_err(|e| self.error(e))
            }
        }
    }

    /// The underlying HF tokenizer (to save it as `tokenizer.json`); None for a GGUF
    /// SentencePiece vocabulary (its `tokenizer.json` is made by
    /// `SpmTokenizer::hf_tokenizer_json`, written by `export::write_tokenizer_files`).
    pub fn hf(&self) -> Option<&tokenizers::Tokenizer> {
        match &self.inner {
            Backend::Hf(t) => Some(t),
            Backend::Spm(_) => None,
        }
    }

    /// The SentencePiece-style tokenizer of a GGUF `llama` vocabulary.
    pub fn spm(&self) -> Option<&SpmTokenizer> {
        match &self.inner {
            Backend::Hf(_) => None,
            Backend::Spm(t) => Some(t),
        }
    }

    /// The vocabulary entry of `id` as stored (`▁` for spaces in SentencePiece pieces).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match &self.inner {
            Backend::Hf(t) => t.id_to_token(id),
            Backend::Spm(t) => t.piece(id).map(str::to_string),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Backend::Hf(t) => t.get_vocab_size(true),
            Backend::Spm(t) => t.vocab_size(),
        }
    }
}
