//! Routes, request handling and response shapes (OpenAI's for `/v1`, vLLM's for the
//! tokenizer routes). Handlers check and tokenize; the model worker runs the job; answers
//! come back as [`Event`]s, collected into one JSON body or framed as server-sent events.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::api::{self, ChatRequest, CompletionRequest, Fields, GenRequest, PromptInput};
use crate::engine::{Event, Finish, Job, Params, TokenInfo};
use crate::error::ApiError;
use crate::model::Model;
use crate::Limits;

mod completions;
mod shapes;
mod tokenizer;

pub(crate) struct AppState {
    pub model: Arc<Model>,
    pub queue: mpsc::Sender<Job>,
    pub limits: Limits,
    pub started: u64,
    pub next_id: AtomicU64,
}

type St = State<Arc<AppState>>;
type Body_ = Result<Bytes, BytesRejection>;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(completions::chat))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenizer::tokenize))
        .route("/detokenize", post(tokenizer::detokenize))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/health", get(health))
        .fallback(|uri: Uri| async move { ApiError::not_found(format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_response(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The body as a JSON object: 413 over the limit, 400 when unreadable or not an object.
fn object(body: Body_, limits: &Limits) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(
                None,
                format!(
                    "the body is over the limit of {} bytes",
                    limits.max_body_bytes
                ),
            )
        } else {
            ApiError::bad(format!("cannot read the body: {}", r.body_text()))
        }
    })?;
    api::parse_object(&bytes)
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn models(State(st): St) -> Response {
    let m = &st.model;
    json_response(json!({
        "object": "list",
        "data": [{
            "id": m.name,
            "object": "model",
            "created": st.started,
            "owned_by": "llmdrop",
            "root": m.path.display().to_string(),
            "parent": null,
            "max_model_len": m.max_model_len(),
            "llmdrop": {
                "drop_attn": m.decoder.plan().attn,
                "drop_mlp": m.decoder.plan().mlp,
                "dtype": m.decoder.precision().name(),
                "chat_template": m.template_source,
            },
        }],
    }))
}

fn non_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.into())
    }
}

async fn tokenizer_info(State(st): St) -> Response {
    let m = &st.model;
    let tok = &m.tokenizer;
    let template = m.template.as_ref();
    json_response(json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": non_empty(&m.bos_token),
        "eos_token": non_empty(&m.eos_token),
        "pad_token": null,
        "unk_token": null,
        "bos_token_id": tok.bos,
        "eos_token_id": tok.eos.first(),
        "add_bos_token": tok.add_bos,
        "chat_template": template.map(|t| t.source()),
        "model_max_length": m.max_model_len(),
        "vocab_size": m.vocab_size(),
    }))
}

/// Checks `ids` against the model's vocabulary.
fn check_ids(m: &Model, ids: &[u32], param: &str) -> Result<(), ApiError> {
    let v = m.vocab_size();
    match ids.iter().find(|&&i| i as usize >= v) {
        Some(bad) => Err(ApiError::field(
            param,
            format!("token id {bad} is outside the vocabulary (size {v})"),
        )),
        None => Ok(()),
    }
}

/// The rendered chat prompt.
fn render_chat(
    m: &Model,
    messages: &Value,
    add_generation_prompt: bool,
) -> Result<String, ApiError> {
    let t = m.template.as_ref().ok_or_else(|| {
        ApiError::bad(format!(
            "the model {} has no chat template (no tokenizer.chat_template in the GGUF, no chat_template in tokenizer_config.json or chat_template.jinja): use /v1/completions",
            m.name
        ))
    })?;
    t.render(messages, add_generation_prompt).map_err(|e| {
        ApiError::field(
            "messages",
            format!("the chat template refused the messages: {e}"),
        )
    })
}

fn tokenizer_error(e: llmdrop::Error) -> ApiError {
    ApiError::bad(format!("cannot tokenize: {e}"))
}

/// Runs CPU work (tokenizing a large body) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?
}

fn new_id(st: &AppState, prefix: &str) -> String {
    format!(
        "{prefix}-{:x}{:06x}",
        now(),
        st.next_id.fetch_add(1, Ordering::Relaxed)
    )
}
