//! The served model: the (pruned) decoder, its tokenizer and its chat template.

use std::path::{Path, PathBuf};

use llmdrop::pipeline::ModelOptions;
use llmdrop::{Decoder, DropPlan, Tokenizer};

use crate::error::ServeError;
use crate::template::ChatTemplate;

/// Largest `tokenizer_config.json` / `chat_template.jinja` read.
const MAX_TEMPLATE_FILE_BYTES: u64 = 64 << 20;

/// A model loaded for serving.
pub struct Model {
    pub(crate) decoder: Decoder,
    pub(crate) tokenizer: Tokenizer,
    /// The name `/v1/models` lists (requests may name any model: there is only one).
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) template: Option<ChatTemplate>,
    /// Where the template came from (`tokenizer.chat_template` of the GGUF, a file).
    pub(crate) template_source: Option<String>,
    /// `bos_token` / `eos_token` as text ("" when the model has none).
    pub(crate) bos_token: String,
    pub(crate) eos_token: String,
}

impl Model {
    /// Loads the model `opts` names with `plan` applied (on top of what its files already
    /// drop), its tokenizer and its chat template: a GGUF's `tokenizer.chat_template`, or an
    /// HF directory's `chat_template.jinja` / `tokenizer_config.json` `chat_template`.
    pub fn load(opts: &ModelOptions, plan: &DropPlan) -> Result<Self, ServeError> {
        let (src, decoder, tokenizer) = opts.load(plan)?;
        let path = src.path().to_path_buf();
        let (text, source) = match read_template(&path) {
            Some((t, s)) => (Some(t), Some(s)),
            None => (None, None),
        };
        let specials = special_tokens(&path, &tokenizer);
        let (bos_token, eos_token) = specials.clone();
        let template =
            match text {
                Some(t) => Some(ChatTemplate::new(&t, specials).map_err(|reason| {
                    ServeError::Template {
                        path: path.display().to_string(),
                        reason,
                    }
                })?),
                None => None,
            };
        Ok(Self {
            decoder,
            tokenizer,
            name: model_name(&path),
            path,
            template,
            template_source: source,
            bos_token,
            eos_token,
        })
    }

    /// Sets the name `/v1/models` lists.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The name `/v1/models` lists: the file or directory name, unless set.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The decoder being served.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The tokenizer being served.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether the model has a chat template (else `/v1/chat/completions` answers 400).
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Positions the model can attend over: the longest prompt plus completion.
    pub fn max_model_len(&self) -> usize {
        self.decoder.config().max_position_embeddings
    }

    /// Token ids the decoder accepts: `0..vocab_size`.
    pub fn vocab_size(&self) -> usize {
        self.decoder.config().vocab_size
    }

    /// The model's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The file stem of a GGUF, the directory name of an HF folder.
fn model_name(path: &Path) -> String {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_TEMPLATE_FILE_BYTES {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn tokenizer_config(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&read_small(&dir.join("tokenizer_config.json"))?).ok()
}

/// The chat template and where it came from.
fn read_template(path: &Path) -> Option<(String, String)> {
    if path.is_dir() {
        let jinja = path.join("chat_template.jinja");
        if let Some(t) = read_small(&jinja) {
            return Some((t, jinja.display().to_string()));
        }
        let cfg = tokenizer_config(path)?;
        let t = match cfg.get("chat_template")? {
            serde_json::Value::String(s) => s.clone(),
            // a list of named templates: the one named "default"
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str())?
                .to_string(),
            _ => return None,
        };
        Some((t, path.join("tokenizer_config.json").display().to_string()))
    } else {
        let mut f = std::fs::File::open(path).ok()?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut f).ok()?;
        match content.metadata.get("tokenizer.chat_template")? {
            candle_core::quantized::gguf_file::Value::String(s) => Some((
                s.clone(),
                format!("{} (tokenizer.chat_template)", path.display()),
            )),
            _ => None,
        }
    }
}

/// `bos_token` and `eos_token` as the template sees them: from tokenizer_config.json, else
/// the tokens of the model's BOS / first EOS id.
fn special_tokens(path: &Path, tok: &Tokenizer) -> (String, String) {
    let from_cfg = |key: &str| -> Option<String> {
        let cfg = tokenizer_config(path.is_dir().then_some(path)?)?;
        match cfg.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            v => v.get("content")?.as_str().map(Into::into),
        }
    };
    // the token's text: tokenizing it gives the token back (a special token's content, or
    // the bytes of an ordinary one)
    let token = |id: Option<u32>| {
        id.and_then(|i| tok.decode(&[i], true).ok())
            .unwrap_or_default()
    };
    (
        from_cfg("bos_token").unwrap_or_else(|| token(tok.bos)),
        from_cfg("eos_token").unwrap_or_else(|| token(tok.eos.first().copied())),
    )
}
