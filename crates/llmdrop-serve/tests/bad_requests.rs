//! Every kind of bad request gets an OpenAI error object with the right status, and the
//! server keeps serving: 400 for malformed or invalid requests and unsupported options,
//! 413 over the limits, 404 / 405 for routes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{tiny_llama, tiny_llama_with_template, TestServer};
use serde_json::{json, Value};

/// Posts `body` to `path`; checks the status and that the message mentions `needle`.
fn refused(s: &TestServer, path: &str, body: &Value, status: u16, needle: &str) {
    let msg = s.post(path, body).error(status);
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "{body}: {msg:?} does not mention {needle:?}"
    );
}

#[test]
fn malformed_bodies_are_400() {
    let s = TestServer::start(&tiny_llama());
    for raw in [
        &b"{\"prompt\": "[..],
        b"",
        b"[1, 2]",
        b"\"text\"",
        b"\xff\xfe",
        b"null",
    ] {
        for path in [
            "/v1/completions",
            "/v1/chat/completions",
            "/tokenize",
            "/detokenize",
        ] {
            let r = s.post_raw(path, raw);
            let msg = r.error(400);
            assert!(msg.contains("JSON"), "{path} {raw:?}: {msg}");
        }
    }
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn wrong_types_and_values_are_400_naming_the_field() {
    let s = TestServer::start(&tiny_llama());
    let p = "/v1/completions";
    let cases = [
        (json!({}), "prompt"),
        (json!({"prompt": 5}), "prompt"),
        (json!({"prompt": [1, "a"]}), "prompt"),
        (json!({"prompt": [[1], 2]}), "prompt"),
        (json!({"prompt": []}), "prompt"),
        (json!({"prompt": {"text": "a"}}), "prompt"),
        (json!({"prompt": "a", "max_tokens": "5"}), "max_tokens"),
        (json!({"prompt": "a", "max_tokens": -1}), "max_tokens"),
        (json!({"prompt": "a", "max_tokens": 1.5}), "max_tokens"),
        (json!({"prompt": "a", "temperature": -1}), "temperature"),
        (json!({"prompt": "a", "temperature": "hot"}), "temperature"),
        (json!({"prompt": "a", "top_p": 0}), "top_p"),
        (json!({"prompt": "a", "top_p": 1.5}), "top_p"),
        (json!({"prompt": "a", "top_k": -2}), "top_k"),
        (json!({"prompt": "a", "logprobs": 21}), "logprobs"),
        (json!({"prompt": "a", "logprobs": true}), "logprobs"),
        (json!({"prompt": "a", "echo": "yes"}), "echo"),
        (json!({"prompt": "a", "stream": 1}), "stream"),
        (json!({"prompt": "a", "stop": 5}), "stop"),
        (json!({"prompt": "a", "stop": ["a", 1]}), "stop"),
        (json!({"prompt": "a", "seed": "x"}), "seed"),
        (
            json!({"prompt": "a", "stream_options": 3}),
            "stream_options",
        ),
        (
            json!({"prompt": "a", "stop_token_ids": [999]}),
            "stop_token_ids",
        ),
    ];
    for (body, field) in cases {
        let r = s.post(p, &body);
        r.error(400);
        assert_eq!(r.json()["error"]["param"], field, "{body}");
    }
    // a prompt with no tokens
    refused(&s, p, &json!({"prompt": ""}), 400, "no tokens");
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn unsupported_options_are_400_saying_so() {
    let s = TestServer::start(&tiny_llama());
    let p = "/v1/completions";
    for (k, v) in [
        ("n", json!(2)),
        ("best_of", json!(2)),
        ("logit_bias", json!({"5": 1})),
        ("suffix", json!("end")),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(1)),
        ("repetition_penalty", json!(1.2)),
        ("use_beam_search", json!(true)),
        ("prompt_logprobs", json!(1)),
        ("guided_json", json!({})),
    ] {
        let mut body = json!({"prompt": "a"});
        body[k] = v;
        let r = s.post(p, &body);
        let msg = r.error(400);
        assert!(msg.contains("not supported"), "{k}: {msg}");
        assert_eq!(r.json()["error"]["param"], k);
        assert_eq!(r.json()["error"]["code"], "unsupported_parameter");
    }
    // their neutral values are accepted, and unknown fields are ignored
    let ok = json!({"prompt": "a", "max_tokens": 1, "n": 1, "best_of": 1, "logit_bias": {}, "suffix": null,
                    "presence_penalty": 0, "frequency_penalty": 0, "user": "me", "some_new_field": [1, {"x": 2}]});
    s.post(p, &ok).ok();
    let chat = "/v1/chat/completions";
    let m = json!([{"role": "user", "content": "x"}]);
    refused(
        &s,
        chat,
        &json!({"messages": m, "n": 3}),
        400,
        "not supported",
    );
    refused(
        &s,
        chat,
        &json!({"messages": m, "tools": [{"type": "function"}]}),
        400,
        "not supported",
    );
    refused(
        &s,
        chat,
        &json!({"messages": m, "response_format": {"type": "json_object"}}),
        400,
        "not supported",
    );
}

#[test]
fn token_ids_outside_the_vocabulary_are_400() {
    let s = TestServer::start(&tiny_llama());
    for prompt in [
        json!([1, 256]),
        json!([[3], [300]]),
        json!([4294967296u64]),
        json!([-1]),
        json!([2.5]),
    ] {
        let r = s.post(
            "/v1/completions",
            &json!({"prompt": prompt, "max_tokens": 1}),
        );
        let msg = r.error(400);
        assert!(
            msg.contains("token id") || msg.contains("prompt"),
            "{prompt}: {msg}"
        );
    }
    refused(
        &s,
        "/v1/completions",
        &json!({"prompt": [1, 256]}),
        400,
        "outside the vocabulary (size 256)",
    );
    refused(
        &s,
        "/detokenize",
        &json!({"tokens": [999]}),
        400,
        "outside the vocabulary",
    );
    refused(&s, "/detokenize", &json!({"tokens": "abc"}), 400, "tokens");
    refused(&s, "/detokenize", &json!({}), 400, "required");
    refused(&s, "/tokenize", &json!({}), 400, "required");
    refused(&s, "/tokenize", &json!({"prompt": 5}), 400, "string");
    assert_eq!(s.get("/health").status, 200);
}

#[test]
fn bodies_and_prompts_over_the_limits_are_413() {
    let s = TestServer::start(&tiny_llama());
    let p = "/v1/completions";
    // the test server's body limit is 64 KiB
    let big = json!({"prompt": "a".repeat(70_000)});
    s.post(p, &big).error(413);
    s.post("/tokenize", &big).error(413);
    // one prompt over the model's 256 positions
    let long: Vec<u32> = (0..300).map(|i| i % 200).collect();
    refused(
        &s,
        p,
        &json!({"prompt": long}),
        413,
        "maximum context length is 256",
    );
    // more prompts than the limit (16)
    let many: Vec<Vec<u32>> = (0..17).map(|_| vec![5, 6]).collect();
    refused(&s, p, &json!({"prompt": many}), 413, "at most 16");
    // more tokens in all than the limit (2048)
    let heavy: Vec<Vec<u32>> = (0..16)
        .map(|_| (0..200).map(|i| i % 200).collect())
        .collect();
    refused(&s, p, &json!({"prompt": heavy}), 413, "2048 tokens");
    assert_eq!(s.get("/health").status, 200);
    s.post(p, &json!({"prompt": [5, 6], "max_tokens": 2})).ok();
}

#[test]
fn chat_errors_are_400() {
    let s = TestServer::start(&tiny_llama());
    let chat = "/v1/chat/completions";
    let m = json!([{"role": "user", "content": "Hi"}]);
    // the fixture has no chat template
    refused(&s, chat, &json!({"messages": m}), 400, "no chat template");
    refused(
        &s,
        "/tokenize",
        &json!({"messages": m}),
        400,
        "no chat template",
    );

    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&tiny_llama_with_template(dir.path()));
    for (body, needle) in [
        (json!({}), "required"),
        (json!({"messages": []}), "empty"),
        (json!({"messages": "hi"}), "list"),
        (json!({"messages": [{"content": "x"}]}), "role"),
        (json!({"messages": ["x"]}), "object"),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            "not supported",
        ),
        (
            json!({"messages": m, "logprobs": true, "top_logprobs": 50}),
            "top_logprobs",
        ),
        (json!({"messages": m, "top_logprobs": 2}), "logprobs"),
        (json!({"messages": m, "max_tokens": -3}), "max_tokens"),
    ] {
        refused(&s, chat, &body, 400, needle);
    }
    s.post(chat, &json!({"messages": m, "max_tokens": 2})).ok();
}

#[test]
fn unknown_routes_and_methods_are_json_errors() {
    let s = TestServer::start(&tiny_llama());
    let msg = s.get("/v1/engines").error(404);
    assert!(msg.contains("/v1/engines"));
    s.get("/v1/completions").error(405);
    s.post("/health", &json!({})).error(405);
}

#[test]
fn garbage_and_abandoned_connections_do_not_stop_the_server() {
    let s = TestServer::start(&tiny_llama());
    // not HTTP at all
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    // a body promised and never sent
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
        .unwrap();
    drop(c);
    // a client that leaves in the middle of a long stream
    let mut c = TcpStream::connect(s.addr).unwrap();
    let body = json!({"prompt": [5, 6, 7], "max_tokens": 240, "stream": true, "ignore_eos": true})
        .to_string();
    write!(
        c,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let _ = c.read(&mut first).unwrap();
    drop(c);
    assert_eq!(s.get("/health").status, 200);
    s.post(
        "/v1/completions",
        &json!({"prompt": [5, 6], "max_tokens": 3}),
    )
    .ok();
}
