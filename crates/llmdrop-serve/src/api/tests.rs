//! Unit tests of request parsing.

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
    let r =
        completion(json!({"prompt": "x", "n": 1, "best_of": 1, "logit_bias": {}, "whatever": [1]}))
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
