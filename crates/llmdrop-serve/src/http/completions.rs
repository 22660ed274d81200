//! `/v1/completions` and `/v1/chat/completions`: check, tokenize, queue, answer.

use super::shapes::*;
use super::*;

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

pub(super) async fn completions(State(st): St, body: Body_) -> Response {
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

pub(super) async fn chat(State(st): St, body: Body_) -> Response {
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
