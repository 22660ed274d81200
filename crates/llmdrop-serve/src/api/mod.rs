//! Requests as clients send them, checked into what the engine runs.
//!
//! Every field is read by hand from the JSON object, so that a wrong type names the field
//! (`` `max_tokens` must be an integer >= 0 ``), unknown fields are ignored, and options this
//! server does not implement are refused by name instead of being silently dropped.

use serde_json::{Map, Value};

mod fields;
#[cfg(test)]
mod tests;

pub use fields::Fields;

use crate::engine::Sampling;
use crate::error::ApiError;

/// Most `logprobs` / `top_logprobs` entries per position (vLLM's default limit).
pub const MAX_LOGPROBS: u64 = 20;
/// Most stop strings per request.
pub const MAX_STOP: usize = 16;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 1024;

/// One prompt of a completion request.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Text: tokenized with the model's BOS convention.
    Text(String),
    /// Token ids: used exactly as given.
    Ids(Vec<u32>),
}

/// What a completion or chat request asks of the engine, before tokenization.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// None: as many as fit in the model's positions.
    pub max_tokens: Option<u64>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub stop_token_ids: Vec<u64>,
    pub ignore_eos: bool,
    pub skip_special_tokens: bool,
    pub stream: bool,
    pub include_usage: bool,
    /// vLLM's `return_tokens_as_token_ids`: tokens in log-probabilities as `token_id:N`
    /// (texts can collide: bytes of an incomplete character all read as U+FFFD).
    pub tokens_as_ids: bool,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    pub prompts: Vec<PromptInput>,
    pub echo: bool,
    /// Top log-probabilities per position (0: only the chosen token's).
    pub logprobs: Option<usize>,
    pub gen: GenRequest,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// `[{role, content: string, …}]`, content parts joined.
    pub messages: Value,
    pub add_generation_prompt: bool,
    /// `logprobs: true`, with `top_logprobs` alternatives per token.
    pub logprobs: Option<usize>,
    pub gen: GenRequest,
}

/// The body as a JSON object (400 when it is not JSON, or not an object).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad("the body must be a JSON object")),
    }
}

const PROMPT_SHAPES: &str =
    "`prompt` must be a string, a list of strings, a list of token ids or a list of lists of token ids";

/// A token id list (`param` names the field for errors).
fn ids_of(a: &[Value], param: &str) -> Result<Vec<u32>, ApiError> {
    a.iter()
        .map(|v| match v.as_u64() {
            Some(x) if x <= u32::MAX as u64 => Ok(x as u32),
            Some(x) => Err(ApiError::field(
                param,
                format!("token id {x} is outside the vocabulary"),
            )),
            None if v.is_number() => Err(ApiError::field(
                param,
                format!("token id {v} is not an integer >= 0"),
            )),
            None => Err(ApiError::field(param, PROMPT_SHAPES)),
        })
        .collect()
}

fn prompts_of(v: Option<&Value>) -> Result<Vec<PromptInput>, ApiError> {
    let v = v.ok_or_else(|| ApiError::field("prompt", "`prompt` is required"))?;
    match v {
        Value::String(s) => Ok(vec![PromptInput::Text(s.clone())]),
        Value::Array(a) if a.is_empty() => Err(ApiError::field("prompt", "`prompt` is empty")),
        Value::Array(a) => match &a[0] {
            Value::String(_) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => Ok(PromptInput::Text(s.clone())),
                    _ => Err(ApiError::field("prompt", PROMPT_SHAPES)),
                })
                .collect(),
            Value::Number(_) => Ok(vec![PromptInput::Ids(ids_of(a, "prompt")?)]),
            Value::Array(_) => a
                .iter()
                .map(|x| match x {
                    Value::Array(ids) => Ok(PromptInput::Ids(ids_of(ids, "prompt")?)),
                    _ => Err(ApiError::field("prompt", PROMPT_SHAPES)),
                })
                .collect(),
            _ => Err(ApiError::field("prompt", PROMPT_SHAPES)),
        },
        _ => Err(ApiError::field("prompt", PROMPT_SHAPES)),
    }
}

impl CompletionRequest {
    /// Checks a completion request (OpenAI's fields, vLLM's `top_k`, `ignore_eos`,
    /// `stop_token_ids`, `skip_special_tokens`); `max_tokens` defaults to 16 as OpenAI's.
    pub fn parse(m: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields(m);
        let prompts = prompts_of(m.get("prompt"))?;
        if let Some(s) = f.str("suffix")? {
            if !s.is_empty() {
                return Err(ApiError::unsupported(
                    "suffix",
                    "`suffix` is not supported by this server",
                ));
            }
        }
        let logprobs = match m.get("logprobs") {
            Some(Value::Bool(_)) => return Err(ApiError::field(
                "logprobs",
                "`logprobs` of a completion is the number of top log-probabilities (an integer)",
            )),
            _ => f.u64("logprobs")?,
        };
        if logprobs.is_some_and(|n| n > MAX_LOGPROBS) {
            return Err(ApiError::field(
                "logprobs",
                format!("`logprobs` must be at most {MAX_LOGPROBS}"),
            ));
        }
        Ok(Self {
            prompts,
            echo: f.bool("echo")?.unwrap_or(false),
            logprobs: logprobs.map(|n| n as usize),
            gen: f.gen(&["max_tokens"], Some(16))?,
        })
    }
}

/// Message content as one string: a string, null, or a list of `{type: "text", text}` parts.
fn content_text(v: Option<&Value>, i: usize) -> Result<String, ApiError> {
    let param = "messages";
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for p in parts {
                match (p.get("type").and_then(|t| t.as_str()), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some(t), _) if t != "text" => {
                        return Err(ApiError::unsupported(
                            param,
                            format!("messages[{i}]: content parts of type `{t}` are not supported (text only)"),
                        ))
                    }
                    _ => {
                        return Err(ApiError::field(
                            param,
                            format!("messages[{i}]: a content part must be {{\"type\": \"text\", \"text\": string}}"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(ApiError::field(
            param,
            format!("messages[{i}].content must be a string or a list of text parts"),
        )),
    }
}

impl ChatRequest {
    /// Checks a chat request; without `max_tokens` / `max_completion_tokens` generation may
    /// run to the end of the model's positions.
    pub fn parse(m: &Map<String, Value>) -> Result<Self, ApiError> {
        let f = Fields(m);
        let list = match m.get("messages") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) => {
                return Err(ApiError::field("messages", "`messages` is empty"))
            }
            None | Some(Value::Null) => {
                return Err(ApiError::field("messages", "`messages` is required"))
            }
            Some(_) => {
                return Err(ApiError::field(
                    "messages",
                    "`messages` must be a list of {role, content} objects",
                ))
            }
        };
        let mut messages = Vec::with_capacity(list.len());
        for (i, msg) in list.iter().enumerate() {
            let Value::Object(obj) = msg else {
                return Err(ApiError::field(
                    "messages",
                    format!("messages[{i}] must be an object with `role` and `content`"),
                ));
            };
            if !obj.get("role").is_some_and(|r| r.is_string()) {
                return Err(ApiError::field(
                    "messages",
                    format!("messages[{i}].role must be a string"),
                ));
            }
            let mut out = obj.clone();
            out.insert(
                "content".into(),
                Value::String(content_text(obj.get("content"), i)?),
            );
            messages.push(Value::Object(out));
        }
        if f.bool("echo")? == Some(true) {
            return Err(ApiError::unsupported(
                "echo",
                "`echo` is not supported for chat (use /v1/completions)",
            ));
        }
        let logprobs = f.bool("logprobs")?.unwrap_or(false);
        let top = f.u64("top_logprobs")?;
        if top.is_some_and(|n| n > MAX_LOGPROBS) {
            return Err(ApiError::field(
                "top_logprobs",
                format!("`top_logprobs` must be at most {MAX_LOGPROBS}"),
            ));
        }
        if top.is_some_and(|n| n > 0) && !logprobs {
            return Err(ApiError::field(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ));
        }
        Ok(Self {
            messages: Value::Array(messages),
            add_generation_prompt: f.bool("add_generation_prompt")?.unwrap_or(true),
            logprobs: logprobs.then_some(top.unwrap_or(0) as usize),
            gen: f.gen(&["max_completion_tokens", "max_tokens"], None)?,
        })
    }
}
