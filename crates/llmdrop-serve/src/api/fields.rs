//! Typed access to a request's fields, the options refused by name, and the generation
//! options both request types share.

use serde_json::{Map, Value};

use super::{GenRequest, MAX_STOP, MAX_STOP_BYTES};
use crate::engine::Sampling;
use crate::error::ApiError;

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
    pub(super) fn gen(
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
