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
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
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

async fn tokenize(State(st): St, body: Body_) -> Response {
    respond(
        async {
            let m = object(body, &st.limits)?;
            let f = Fields(&m);
            let model = st.model.clone();
            let chat = m.get("messages").is_some_and(|v| !v.is_null());
            let add_special = f.bool("add_special_tokens")?.unwrap_or(!chat);
            let strs = f.bool("return_token_strs")?.unwrap_or(false);
            let text = if chat {
                let req = ChatRequest::parse(&m)?;
                render_chat(&model, &req.messages, req.add_generation_prompt)?
            } else {
                f.str("prompt")?
                    .ok_or_else(|| {
                        ApiError::field("prompt", "`prompt` (a string) or `messages` is required")
                    })?
                    .to_string()
            };
            let tokens = blocking(move || {
                let tok = &model.tokenizer;
                let ids = if add_special {
                    tok.encode_prompt(&text)
                } else {
                    tok.encode(&text)
                }
                .map_err(tokenizer_error)?;
                let strs = strs.then(|| {
                    ids.iter()
                        .map(|&i| tok.hf().id_to_token(i).unwrap_or_default())
                        .collect::<Vec<_>>()
                });
                Ok((ids, strs))
            })
            .await?;
            Ok(json_response(json!({
                "count": tokens.0.len(),
                "max_model_len": st.model.max_model_len(),
                "tokens": tokens.0,
                "token_strs": tokens.1,
            })))
        }
        .await,
    )
}

async fn detokenize(State(st): St, body: Body_) -> Response {
    respond(
        async {
            let m = object(body, &st.limits)?;
            let ids = match m.get("tokens") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_u64()
                            .filter(|&x| x <= u32::MAX as u64)
                            .map(|x| x as u32)
                    })
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(|| {
                        ApiError::field("tokens", "`tokens` must be a list of token ids")
                    })?,
                None | Some(Value::Null) => {
                    return Err(ApiError::field("tokens", "`tokens` is required"))
                }
                Some(_) => {
                    return Err(ApiError::field(
                        "tokens",
                        "`tokens` must be a list of token ids",
                    ))
                }
            };
            check_ids(&st.model, &ids, "tokens")?;
            let model = st.model.clone();
            let text =
                blocking(move || model.tokenizer.decode(&ids, true).map_err(tokenizer_error))
                    .await?;
            Ok(json_response(json!({"prompt": text})))
        }
        .await,
    )
}

/// Runs CPU work (tokenizing a large body) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?
}

/// A prompt ready to run: its ids and, for echo, its text.
struct Prompt {
    ids: Vec<u32>,
    text: String,
}

/// Tokenizes and checks the prompts against the model and the limits.
fn prepare_prompts(
    m: &Model,
    limits: &Limits,
    inputs: Vec<PromptInput>,
    echo: bool,
) -> Result<Vec<Prompt>, ApiError> {
    if inputs.len() > limits.max_prompts {
        return Err(ApiError::too_large(
            Some("prompt"),
            format!(
                "{} prompts; at most {} per request",
                inputs.len(),
                limits.max_prompts
            ),
        ));
    }
    let max_len = m.max_model_len();
    let mut total = 0usize;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, p) in inputs.into_iter().enumerate() {
        let (ids, text) = match p {
            PromptInput::Text(s) => (m.tokenizer.encode_prompt(&s).map_err(tokenizer_error)?, s),
            PromptInput::Ids(ids) => {
                check_ids(m, &ids, "prompt")?;
                let text = if echo {
                    m.tokenizer.decode(&ids, true).map_err(tokenizer_error)?
                } else {
                    String::new()
                };
                (ids, text)
            }
        };
        if ids.is_empty() {
            return Err(ApiError::field(
                "prompt",
                format!("prompt {i} has no tokens"),
            ));
        }
        if ids.len() > max_len {
            return Err(ApiError::too_large(
                Some("prompt"),
                format!(
                    "prompt {i} has {} tokens; the model's maximum context length is {max_len} tokens",
                    ids.len()
                ),
            ));
        }
        total += ids.len();
        if total > limits.max_request_tokens {
            return Err(ApiError::too_large(
                Some("prompt"),
                format!(
                    "the prompts are over the limit of {} tokens per request",
                    limits.max_request_tokens
                ),
            ));
        }
        out.push(Prompt { ids, text });
    }
    Ok(out)
}

fn params(
    m: &Model,
    g: &GenRequest,
    max_tokens: usize,
    echo: bool,
    logprobs: Option<usize>,
) -> Result<Params, ApiError> {
    let mut stop_ids: Vec<u32> = if g.ignore_eos {
        vec![]
    } else {
        m.tokenizer.eos.clone()
    };
    for &id in &g.stop_token_ids {
        if id as usize >= m.vocab_size() {
            return Err(ApiError::field(
                "stop_token_ids",
                format!(
                    "token id {id} is outside the vocabulary (size {})",
                    m.vocab_size()
                ),
            ));
        }
        stop_ids.push(id as u32);
    }
    Ok(Params {
        max_tokens,
        echo,
        logprobs,
        sampling: g.sampling,
        stop: g.stop.clone(),
        stop_ids,
        skip_special: g.skip_special_tokens,
    })
}

/// Queues a job; 503 when the queue is full or the server is stopping.
fn submit(
    st: &AppState,
    prompts: Vec<Vec<u32>>,
    params: Params,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job {
        prompts,
        params,
        events: tx,
    };
    st.queue.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => ApiError::busy(format!(
            "the server is busy ({} requests queued); retry later",
            st.limits.queue
        )),
        mpsc::error::TrySendError::Closed(_) => ApiError::busy("the server is shutting down"),
    })?;
    Ok(rx)
}

/// One choice as the events build it.
#[derive(Default)]
struct Choice {
    echo: Vec<TokenInfo>,
    tokens: Vec<TokenInfo>,
    text: String,
    finish: Option<Finish>,
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// Collects the events of `n` choices (an error event fails the request).
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Event>,
    n: usize,
) -> Result<Vec<Choice>, ApiError> {
    let mut choices: Vec<Choice> = (0..n).map(|_| Choice::default()).collect();
    let mut done = 0;
    while done < n {
        match rx.recv().await {
            Some(Event::Prompt { index, tokens }) => choices[index].echo = tokens,
            Some(Event::Token { index, text, token }) => {
                choices[index].text.push_str(&text);
                choices[index].tokens.push(token);
            }
            Some(Event::Done {
                index,
                finish,
                prompt_tokens,
                completion_tokens,
            }) => {
                let c = &mut choices[index];
                c.finish = Some(finish);
                c.prompt_tokens = prompt_tokens;
                c.completion_tokens = completion_tokens;
                done += 1;
            }
            Some(Event::Failed(e)) => return Err(e),
            None => return Err(ApiError::internal("the model worker stopped")),
        }
    }
    Ok(choices)
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A token's name in log-probabilities: its text, or `token_id:N` when asked.
fn name(id: u32, text: &str, as_ids: bool) -> String {
    if as_ids {
        format!("token_id:{id}")
    } else {
        text.to_string()
    }
}

/// OpenAI's completion `logprobs` object for `tokens`, offsets counted from `offset`
/// (characters of the tokens' texts before them).
fn completion_logprobs(tokens: &[TokenInfo], offset: &mut usize, as_ids: bool) -> Value {
    let mut text_offset = Vec::with_capacity(tokens.len());
    for t in tokens {
        text_offset.push(*offset);
        *offset += t.text.chars().count();
    }
    let top: Vec<Value> = tokens
        .iter()
        .map(|t| match t.logprob {
            None => Value::Null,
            Some(lp) => {
                let mut m = Map::new();
                for (id, text, l) in &t.top {
                    m.entry(name(*id, text, as_ids)).or_insert(json!(l));
                }
                // the chosen token is always listed (OpenAI's convention)
                m.entry(name(t.id, &t.text, as_ids)).or_insert(json!(lp));
                Value::Object(m)
            }
        })
        .collect();
    json!({
        "tokens": tokens.iter().map(|t| name(t.id, &t.text, as_ids)).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": text_offset,
    })
}

/// OpenAI's chat `logprobs.content` entries for `tokens`.
fn chat_logprobs(tokens: &[TokenInfo], as_ids: bool) -> Value {
    let bytes = |s: &str| s.as_bytes().to_vec();
    Value::Array(
        tokens
            .iter()
            .map(|t| {
                json!({
                    "token": name(t.id, &t.text, as_ids),
                    "logprob": t.logprob,
                    "bytes": bytes(&t.text),
                    "top_logprobs": t.top.iter().map(|(id, text, l)| json!({
                        "token": name(*id, text, as_ids), "logprob": l, "bytes": bytes(text),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn new_id(st: &AppState, prefix: &str) -> String {
    format!(
        "{prefix}-{:x}{:06x}",
        now(),
        st.next_id.fetch_add(1, Ordering::Relaxed)
    )
}

async fn completions(State(st): St, body: Body_) -> Response {
    respond(completions_inner(st, body).await)
}

async fn completions_inner(st: Arc<AppState>, body: Body_) -> Result<Response, ApiError> {
    let m = object(body, &st.limits)?;
    let req = CompletionRequest::parse(&m)?;
    let model = st.model.clone();
    let limits = st.limits.clone();
    let (inputs, echo) = (req.prompts.clone(), req.echo);
    let prompts = blocking(move || prepare_prompts(&model, &limits, inputs, echo)).await?;
    let max_tokens = req.gen.max_tokens.unwrap_or(16).min(usize::MAX as u64) as usize;
    let params = params(&st.model, &req.gen, max_tokens, req.echo, req.logprobs)?;
    let n = prompts.len();
    let (ids, texts): (Vec<_>, Vec<_>) = prompts.into_iter().map(|p| (p.ids, p.text)).unzip();
    let rx = submit(&st, ids, params)?;
    let id = new_id(&st, "cmpl");
    let as_ids = req.gen.tokens_as_ids;
    let created = now();
    let name = st.model.name.clone();
    if req.gen.stream {
        let mut offsets = vec![0usize; n];
        let mut usage_sum = (0, 0);
        let mut done = 0;
        let include_usage = req.gen.include_usage;
        let want_lp = req.logprobs.is_some();
        let chunk = move |choices: Value| json!({"id": id, "object": "text_completion", "created": created, "model": name, "choices": choices});
        return Ok(sse(rx, move |ev| {
            let mut frames = Vec::new();
            match ev {
                Event::Prompt { index, tokens } => {
                    let lp =
                        want_lp.then(|| completion_logprobs(&tokens, &mut offsets[index], as_ids));
                    frames.push(chunk(json!([{"index": index, "text": texts[index], "logprobs": lp, "finish_reason": null}])));
                }
                Event::Token { index, text, token } => {
                    if want_lp || !text.is_empty() {
                        let lp = want_lp.then(|| {
                            completion_logprobs(
                                std::slice::from_ref(&token),
                                &mut offsets[index],
                                as_ids,
                            )
                        });
                        frames.push(chunk(json!([{"index": index, "text": text, "logprobs": lp, "finish_reason": null}])));
                    }
                }
                Event::Done {
                    index,
                    finish,
                    prompt_tokens,
                    completion_tokens,
                } => {
                    usage_sum.0 += prompt_tokens;
                    usage_sum.1 += completion_tokens;
                    done += 1;
                    frames.push(chunk(json!([{"index": index, "text": "", "logprobs": null, "finish_reason": finish.as_str()}])));
                    if done == n {
                        if include_usage {
                            let mut u = chunk(json!([]));
                            u["usage"] = usage(usage_sum.0, usage_sum.1);
                            frames.push(u);
                        }
                        return (frames, true);
                    }
                }
                Event::Failed(e) => return (vec![e.body()], true),
            }
            (frames, false)
        }));
    }
    let choices = collect(rx, n).await?;
    let (mut pt, mut ct) = (0, 0);
    let out: Vec<Value> = choices
        .into_iter()
        .zip(texts)
        .enumerate()
        .map(|(i, (c, prompt_text))| {
            pt += c.prompt_tokens;
            ct += c.completion_tokens;
            let text = if req.echo {
                prompt_text + &c.text
            } else {
                c.text
            };
            let lp = req.logprobs.map(|_| {
                let mut all = c.echo;
                all.extend(c.tokens);
                completion_logprobs(&all, &mut 0, as_ids)
            });
            json!({
                "index": i,
                "text": text,
                "logprobs": lp,
                "finish_reason": c.finish.map(Finish::as_str),
            })
        })
        .collect();
    Ok(json_response(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": st.model.name,
        "choices": out,
        "usage": usage(pt, ct),
    })))
}

async fn chat(State(st): St, body: Body_) -> Response {
    respond(chat_inner(st, body).await)
}

async fn chat_inner(st: Arc<AppState>, body: Body_) -> Result<Response, ApiError> {
    let m = object(body, &st.limits)?;
    let req = ChatRequest::parse(&m)?;
    let text = render_chat(&st.model, &req.messages, req.add_generation_prompt)?;
    let model = st.model.clone();
    let limits = st.limits.clone();
    let prompt = blocking(move || {
        let ids = model.tokenizer.encode(&text).map_err(tokenizer_error)?;
        let mut p = prepare_prompts(&model, &limits, vec![PromptInput::Ids(ids)], false)?;
        Ok(p.remove(0))
    })
    .await?;
    let room = st.model.max_model_len() - prompt.ids.len();
    let max_tokens = req
        .gen
        .max_tokens
        .map_or(room, |x| x.min(usize::MAX as u64) as usize);
    let params = params(&st.model, &req.gen, max_tokens, false, req.logprobs)?;
    let rx = submit(&st, vec![prompt.ids], params)?;
    let id = new_id(&st, "chatcmpl");
    let as_ids = req.gen.tokens_as_ids;
    let created = now();
    let name = st.model.name.clone();
    let want_lp = req.logprobs.is_some();
    if req.gen.stream {
        let include_usage = req.gen.include_usage;
        let chunk = move |delta: Value, lp: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": name,
                   "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}]})
        };
        let mut started = false;
        return Ok(sse(rx, move |ev| {
            let mut frames = Vec::new();
            if !started {
                started = true;
                frames.push(chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    Value::Null,
                ));
            }
            match ev {
                Event::Prompt { .. } => {}
                Event::Token { text, token, .. } => {
                    if want_lp || !text.is_empty() {
                        let lp = if want_lp {
                            json!({"content": chat_logprobs(std::slice::from_ref(&token), as_ids)})
                        } else {
                            Value::Null
                        };
                        frames.push(chunk(json!({"content": text}), lp, Value::Null));
                    }
                }
                Event::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    ..
                } => {
                    frames.push(chunk(json!({}), Value::Null, json!(finish.as_str())));
                    if include_usage {
                        let mut u = chunk(json!({}), Value::Null, Value::Null);
                        u["choices"] = json!([]);
                        u["usage"] = usage(prompt_tokens, completion_tokens);
                        frames.push(u);
                    }
                    return (frames, true);
                }
                Event::Failed(e) => return (vec![e.body()], true),
            }
            (frames, false)
        }));
    }
    let c = collect(rx, 1).await?.remove(0);
    let lp = if want_lp {
        json!({"content": chat_logprobs(&c.tokens, as_ids)})
    } else {
        Value::Null
    };
    Ok(json_response(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": st.model.name,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": c.text},
            "logprobs": lp,
            "finish_reason": c.finish.map(Finish::as_str),
        }],
        "usage": usage(c.prompt_tokens, c.completion_tokens),
    })))
}

/// A server-sent-event response: `render` turns each event into `data:` frames and says
/// when the stream is complete; `data: [DONE]` ends it (also after a failure, whose error
/// object is the last frame). When the client goes away, the receiver is dropped and the
/// worker stops the job.
fn sse(
    rx: mpsc::UnboundedReceiver<Event>,
    render: impl FnMut(Event) -> (Vec<Value>, bool) + Send + 'static,
) -> Response {
    let frame = |v: &Value| format!("data: {v}\n\n");
    let stream = futures_util::stream::unfold(
        (rx, render, false),
        move |(mut rx, mut render, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let (frames, end) = match rx.recv().await {
                    Some(ev) => render(ev),
                    None => (
                        vec![ApiError::internal("the model worker stopped").body()],
                        true,
                    ),
                };
                if frames.is_empty() && !end {
                    continue;
                }
                let mut out: String = frames.iter().map(frame).collect();
                if end {
                    out.push_str("data: [DONE]\n\n");
                }
                return Some((Ok::<_, Infallible>(out), (rx, render, end)));
            }
        },
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
