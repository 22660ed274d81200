//! Requests as clients send them, checked into what the engine runs.
//!
//! Every field is read by hand from the JSON object, so that a wrong type names the field
//! (`` `max_tokens` must be an integer >= 0 ``), unknown fields are ignored, and options this
//! server does not implement are refused by name instead of being silently dropped.

use serde_json::{Map, Value};

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

/// Typed access to the fields of a request object; `null` counts as absent.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::field(k, format!("`{k}` must be a boolean"))),
        }
    }

    pub fn u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::field(k, format!("`{k}` must be an integer >= 0"))),
        }
    }

    pub fn i64(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_u64().map(|x| x as i64))
                .map(Some)
                .ok_or_else(|| ApiError::field(k, format!("`{k}` must be an integer"))),
        }
    }

    pub fn f64(&self, k: &str) -> Result<Option<f64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::field(k, format!("`{k}` must be a number"))),
        }
    }

    pub fn str(&self, k: &str) -> Result<Option<&str>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::field(k, format!("`{k}` must be a string"))),
        }
    }

    /// `k` must be absent, null, or `default`-like (`is_default`): else 400 unsupported.
    fn only_default(
        &self,
        k: &str,
        is_default: impl Fn(&Value) -> bool,
        what: &str,
    ) -> Result<(), ApiError> {
        match self.get(k) {
            Some(v) if !is_default(v) => Err(ApiError::unsupported(
                k,
                format!("`{k}` is not supported by this server ({what})"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses the options no request type here implements.
    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        let one = |v: &Value| v.as_f64() == Some(1.0);
        let zero = |v: &Value| v.as_f64() == Some(0.0);
        let empty = |v: &Value| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            _ => false,
        };
        self.only_default("n", one, "one choice per prompt: n must be 1")?;
        self.only_default("best_of", one, "best_of must be 1")?;
        self.only_default("logit_bias", empty, "logit_bias must be empty")?;
        self.only_default("presence_penalty", zero, "it must be 0")?;
        self.only_default("frequency_penalty", zero, "it must be 0")?;
        self.only_default("repetition_penalty", one, "it must be 1")?;
        self.only_default("min_tokens", zero, "it must be 0")?;
        self.only_default("min_p", zero, "it must be 0")?;
        self.only_default("use_beam_search", empty, "no beam search")?;
        self.only_default("prompt_logprobs", |_| false, "use echo with logprobs")?;
        self.only_default("guided_json", |_| false, "no guided decoding")?;
        self.only_default("guided_regex", |_| false, "no guided decoding")?;
        self.only_default("guided_choice", |_| false, "no guided decoding")?;
        self.only_default("guided_grammar", |_| false, "no guided decoding")?;
        self.only_default("tools", empty, "no tool calls")?;
        self.only_default("functions", empty, "no function calls")?;
        self.only_default(
            "response_format",
            |v| v.get("type").and_then(|t| t.as_str()) == Some("text"),
            "only {\"type\": \"text\"}",
        )?;
        Ok(())
    }

    /// The generation options both request types share. `max_tokens_keys`: the fields that
    /// may give the limit, first found wins.
    fn gen(
        &self,
        max_tokens_keys: &[&str],
        default_max: Option<u64>,
    ) -> Result<GenRequest, ApiError> {
        self.refuse_unsupported()?;
        let mut max_tokens = default_max;
        for k in max_tokens_keys {
            if let Some(m) = self.u64(k)? {
                max_tokens = Some(m);
                break;
            }
        }
        let temperature = self.f64("temperature")?.unwrap_or(1.0);
        if temperature < 0.0 {
            return Err(ApiError::field("temperature", "`temperature` must be >= 0"));
        }
        let top_p = self.f64("top_p")?.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::field("top_p", "`top_p` must be in (0, 1]"));
        }
        let top_k = match self.i64("top_k")? {
            None | Some(-1) | Some(0) => 0,
            Some(k) if k > 0 => k as usize,
            Some(_) => return Err(ApiError::field("top_k", "`top_k` must be -1, 0 or > 0")),
        };
        let seed = match self.i64("seed")? {
            Some(s) => s as u64,
            None => rand::random(),
        };
        let stop = match self.get("stop") {
            None => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::field("stop", "`stop` must be a string or a list of strings")
                })?,
            Some(_) => {
                return Err(ApiError::field(
                    "stop",
                    "`stop` must be a string or a list of strings",
                ))
            }
        };
        if stop.len() > MAX_STOP || stop.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::field(
                "stop",
                format!("at most {MAX_STOP} stop strings of at most {MAX_STOP_BYTES} bytes"),
            ));
        }
        // an empty stop string would stop before the first token: ignore it, as vLLM does
        let stop = stop.into_iter().filter(|s| !s.is_empty()).collect();
        let stop_token_ids = match self.get("stop_token_ids") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_u64())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::field(
                        "stop_token_ids",
                        "`stop_token_ids` must be a list of token ids",
                    )
                })?,
            Some(_) => {
                return Err(ApiError::field(
                    "stop_token_ids",
                    "`stop_token_ids` must be a list of token ids",
                ))
            }
        };
        let include_usage = match self.get("stream_options") {
            None => false,
            Some(Value::Object(o)) => Fields(o).bool("include_usage")?.unwrap_or(false),
            Some(_) => {
                return Err(ApiError::field(
                    "stream_options",
                    "`stream_options` must be an object",
                ))
            }
        };
        Ok(GenRequest {
            max_tokens,
            sampling: Sampling {
                temperature,
                top_p,
                top_k,
                seed,
            },
            stop,
            stop_token_ids,
            ignore_eos: self.bool("ignore_eos")?.unwrap_or(false),
            skip_special_tokens: self.bool("skip_special_tokens")?.unwrap_or(true),
            stream: self.bool("stream")?.unwrap_or(false),
            include_usage,
            tokens_as_ids: self.bool("return_tokens_as_token_ids")?.unwrap_or(false),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(v: Value) -> Result<CompletionRequest, ApiError> {
        CompletionRequest::parse(v.as_object().unwrap())
    }

    #[test]
    fn prompt_shapes() {
        let p = |v: Value| completion(json!({"prompt": v})).map(|r| r.prompts);
        assert_eq!(p(json!("a")).unwrap(), vec![PromptInput::Text("a".into())]);
        assert_eq!(
            p(json!([1, 2])).unwrap(),
            vec![PromptInput::Ids(vec![1, 2])]
        );
        assert_eq!(
            p(json!([[1], [2, 3]])).unwrap(),
            vec![PromptInput::Ids(vec![1]), PromptInput::Ids(vec![2, 3])]
        );
        assert_eq!(p(json!(["a", "b"])).unwrap().len(), 2);
        for bad in [
            json!(5),
            json!([]),
            json!([1, "a"]),
            json!([[1], 2]),
            json!([-1]),
            json!([1.5]),
            json!({}),
        ] {
            let e = p(bad.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(e.param.as_deref(), Some("prompt"));
        }
    }

    #[test]
    fn defaults_and_unsupported() {
        let r = completion(
            json!({"prompt": "x", "n": 1, "best_of": 1, "logit_bias": {}, "whatever": [1]}),
        )
        .unwrap();
        assert_eq!(r.gen.max_tokens, Some(16));
        assert_eq!(r.gen.sampling.temperature, 1.0);
        assert!(!r.echo && r.logprobs.is_none());
        for (k, v) in [
            ("n", json!(2)),
            ("best_of", json!(3)),
            ("logit_bias", json!({"1": 5})),
            ("suffix", json!("s")),
            ("presence_penalty", json!(0.5)),
        ] {
            let mut m = json!({"prompt": "x"});
            m[k] = v;
            let e = completion(m).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(k));
            assert_eq!(e.code, Some("unsupported_parameter"));
        }
        for (k, v) in [
            ("max_tokens", json!(-1)),
            ("max_tokens", json!("5")),
            ("temperature", json!(-0.5)),
            ("top_p", json!(0)),
            ("logprobs", json!(21)),
            ("echo", json!(1)),
            ("stop", json!(3)),
            ("seed", json!("x")),
        ] {
            let mut m = json!({"prompt": "x"});
            m[k] = v;
            assert_eq!(completion(m).unwrap_err().param.as_deref(), Some(k));
        }
    }

    #[test]
    fn chat_messages() {
        let r = ChatRequest::parse(
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "logprobs": true, "top_logprobs": 2})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.messages[0]["content"], "ab");
        assert_eq!(r.logprobs, Some(2));
        assert_eq!(r.gen.max_tokens, None);
        for bad in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"content": "x"}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        ] {
            assert_eq!(
                ChatRequest::parse(bad.as_object().unwrap())
                    .unwrap_err()
                    .status,
                400
            );
        }
    }
}
