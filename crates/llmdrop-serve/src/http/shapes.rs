//! OpenAI's response shapes: choices collected from the worker's events, log-probabilities,
//! server-sent events.

use super::*;

/// One choice as the events build it.
#[derive(Default)]
pub(super) struct Choice {
    pub(super) echo: Vec<TokenInfo>,
    pub(super) tokens: Vec<TokenInfo>,
    pub(super) text: String,
    pub(super) finish: Option<Finish>,
    pub(super) prompt_tokens: usize,
    pub(super) completion_tokens: usize,
}

/// Collects the events of `n` choices (an error event fails the request).
pub(super) async fn collect(
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

pub(super) fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A token's name in log-probabilities: its text, or `token_id:N` when asked.
pub(super) fn name(id: u32, text: &str, as_ids: bool) -> String {
    if as_ids {
        format!("token_id:{id}")
    } else {
        text.to_string()
    }
}

/// OpenAI's completion `logprobs` object for `tokens`, offsets counted from `offset`
/// (characters of the tokens' texts before them).
pub(super) fn completion_logprobs(tokens: &[TokenInfo], offset: &mut usize, as_ids: bool) -> Value {
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
pub(super) fn chat_logprobs(tokens: &[TokenInfo], as_ids: bool) -> Value {
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

/// A server-sent-event response: `render` turns each event into `data:` frames and says
/// when the stream is complete; `data: [DONE]` ends it (also after a failure, whose error
/// object is the last frame). When the client goes away, the receiver is dropped and the
/// worker stops the job.
pub(super) fn sse(
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
