//! `/tokenize` and `/detokenize` in vLLM's shapes.

use super::*;

pub(super) async fn tokenize(State(st): St, body: Body_) -> Response {
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
                // each token's own text (vLLM gives the vocabulary's piece, e.g. `Ġthe`)
                let strs = strs.then(|| {
                    ids.iter()
                        .map(|&i| tok.decode(&[i], true).unwrap_or_default())
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

pub(super) async fn detokenize(State(st): St, body: Body_) -> Response {
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
