//! Every other route of a real server on an ephemeral loopback port, with the tiny llama
//! fixture: generation checked against the library's own, sampling, stop strings, SSE
//! framing, chat with a template, models / health / tokenizer routes, concurrent clients,
//! shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{reference, tiny_llama, tiny_llama_with_template, TestServer};
use llmdrop::generate::{generate, GenerateOptions};
use llmdrop::pipeline::ModelOptions;
use llmdrop::DropPlan;
use serde_json::{json, Value};

fn offline_greedy(prompt: &[u32], n: usize) -> (Vec<u32>, String) {
    let (_src, dec, tok) = ModelOptions::new(tiny_llama())
        .load(&DropPlan::empty())
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: n,
        temperature: 0.0,
        seed: 0,
        stop: vec![],
    };
    let g = generate(&dec, prompt, &opts, &mut |_| Ok(())).unwrap();
    let text = tok.decode(&g.tokens, false).unwrap();
    (g.tokens, text)
}

#[test]
fn greedy_generation_matches_the_library() {
    let (ids, _) = reference();
    let prompt = &ids[0][..8];
    let (tokens, text) = offline_greedy(prompt, 12);
    let s = TestServer::start(&tiny_llama());
    let r = s
        .post("/v1/completions", &json!({"prompt": prompt, "max_tokens": 12, "temperature": 0, "ignore_eos": true, "logprobs": 0}))
        .ok();
    let c = &r["choices"][0];
    assert_eq!(c["text"], text);
    assert_eq!(c["finish_reason"], "length");
    assert_eq!(c["logprobs"]["tokens"].as_array().unwrap().len(), 12);
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 12, "total_tokens": 20})
    );
    // the tokens' own texts, one by one
    let (_s, _d, tok) = ModelOptions::new(tiny_llama())
        .load(&DropPlan::empty())
        .unwrap();
    let want: Vec<String> = tokens
        .iter()
        .map(|&t| tok.decode(&[t], true).unwrap())
        .collect();
    assert_eq!(c["logprobs"]["tokens"], json!(want));

    // a text prompt is tokenized as the library does (BOS as the config says)
    let p = tok.encode_prompt("Hello").unwrap();
    let (_, text) = offline_greedy(&p, 5);
    let r = s
        .post("/v1/completions", &json!({"prompt": "Hello", "max_tokens": 5, "temperature": 0, "ignore_eos": true, "echo": true}))
        .ok();
    assert_eq!(r["choices"][0]["text"], format!("Hello{text}"));
    assert!(r["choices"][0]["logprobs"].is_null());
}

#[test]
fn sampling_is_seeded_and_top_k_1_is_greedy() {
    let (ids, _) = reference();
    let prompt = &ids[1][..6];
    let s = TestServer::start(&tiny_llama());
    let ask = |extra: Value| {
        let mut b = json!({"prompt": prompt, "max_tokens": 10, "ignore_eos": true});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s.post("/v1/completions", &b).ok()["choices"][0]["text"].clone()
    };
    let a = ask(json!({"temperature": 0.9, "seed": 5}));
    assert_eq!(a, ask(json!({"temperature": 0.9, "seed": 5})));
    let greedy = ask(json!({"temperature": 0}));
    assert_eq!(
        ask(json!({"temperature": 1.0, "top_k": 1, "seed": 3})),
        greedy
    );
    assert_eq!(
        ask(json!({"temperature": 1.0, "top_p": 1e-9, "seed": 3})),
        greedy
    );
}

#[test]
fn stop_strings_end_the_text_before_them() {
    let (ids, _) = reference();
    let prompt = &ids[0][..8];
    let s = TestServer::start(&tiny_llama());
    let base = json!({"prompt": prompt, "max_tokens": 16, "temperature": 0, "ignore_eos": true});
    let full = s.post("/v1/completions", &base).ok()["choices"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    // a stop string from the middle of the greedy text
    let (at, ch) = full
        .char_indices()
        .skip(1)
        .find(|&(i, c)| c != '\u{FFFD}' && !full[..i].contains(c))
        .expect("a character to stop at");
    let mut b = base.clone();
    b["stop"] = json!([ch.to_string(), "never-generated"]);
    let r = s.post("/v1/completions", &b).ok();
    assert_eq!(r["choices"][0]["text"], full[..at]);
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    // streamed: the same text, the stop string held back and never sent
    b["stream"] = json!(true);
    let frames = s.post("/v1/completions", &b).sse();
    let text: String = frames
        .iter()
        .map(|f| f["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, full[..at]);
    assert_eq!(
        frames.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn streaming_completions_frame_the_same_answer() {
    let (ids, _) = reference();
    let s = TestServer::start(&tiny_llama());
    let body = json!({"prompt": [&ids[0][..8], &ids[1][..4]], "max_tokens": 10, "temperature": 0,
                      "ignore_eos": true, "logprobs": 1, "echo": true});
    let whole = s.post("/v1/completions", &body).ok();
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    sb["stream_options"] = json!({"include_usage": true});
    let frames = s.post("/v1/completions", &sb).sse();
    for i in 0..2 {
        let mine: Vec<&Value> = frames
            .iter()
            .filter(|f| f["choices"].as_array().is_some_and(|c| !c.is_empty()))
            .filter(|f| f["choices"][0]["index"] == i)
            .collect();
        let text: String = mine
            .iter()
            .map(|f| f["choices"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, whole["choices"][i]["text"].as_str().unwrap());
        let lps: Vec<Value> = mine
            .iter()
            .filter_map(|f| f["choices"][0]["logprobs"]["token_logprobs"].as_array())
            .flatten()
            .cloned()
            .collect();
        assert_eq!(
            json!(lps),
            whole["choices"][i]["logprobs"]["token_logprobs"]
        );
        assert_eq!(
            mine.last().unwrap()["choices"][0]["finish_reason"],
            "length"
        );
        assert!(mine.iter().all(|f| f["object"] == "text_completion"));
    }
    let last = frames.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], whole["usage"]);
}

#[test]
fn chat_uses_the_template_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_with_template(dir.path());
    let s = TestServer::start(&model);
    let messages = json!([{"role": "user", "content": "Hi"}]);
    let r = s
        .post(
            "/v1/chat/completions",
            &json!({"messages": messages, "max_tokens": 6, "temperature": 0}),
        )
        .ok();
    assert_eq!(r["object"], "chat.completion");
    let c = &r["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    // the same as completing the rendered template's tokens
    let t = s.post("/tokenize", &json!({"messages": messages})).ok();
    let rendered = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    let direct = s
        .post(
            "/tokenize",
            &json!({"prompt": rendered, "add_special_tokens": false}),
        )
        .ok();
    assert_eq!(t["tokens"], direct["tokens"]);
    let done = s
        .post(
            "/v1/completions",
            &json!({"prompt": t["tokens"], "max_tokens": 6, "temperature": 0}),
        )
        .ok();
    assert_eq!(c["message"]["content"], done["choices"][0]["text"]);
    assert_eq!(c["finish_reason"], done["choices"][0]["finish_reason"]);
    assert_eq!(r["usage"], done["usage"]);

    // logprobs in chat's shape
    let r = s
        .post("/v1/chat/completions", &json!({"messages": messages, "max_tokens": 3, "temperature": 0, "logprobs": true, "top_logprobs": 2}))
        .ok();
    let content = r["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!content.is_empty());
    for e in content {
        assert!(e["logprob"].is_f64() && e["bytes"].is_array());
        assert_eq!(e["top_logprobs"].as_array().unwrap().len(), 2);
    }

    // streamed: the role first, then the same content, then the finish reason
    let frames = s
        .post(
            "/v1/chat/completions",
            &json!({"messages": messages, "max_tokens": 6, "temperature": 0, "stream": true}),
        )
        .sse();
    assert_eq!(frames[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(frames
        .iter()
        .all(|f| f["object"] == "chat.completion.chunk"));
    let text: String = frames
        .iter()
        .filter_map(|f| f["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, c["message"]["content"].as_str().unwrap());
    assert_eq!(
        frames.last().unwrap()["choices"][0]["finish_reason"],
        c["finish_reason"]
    );
}

#[test]
fn models_health_and_tokenizer_routes() {
    let s = TestServer::start(&tiny_llama());
    let h = s.get("/health");
    assert_eq!(h.status, 200);
    let m = s.get("/v1/models").ok();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "llama");
    assert_eq!(m["data"][0]["max_model_len"], 256);

    let info = s.get("/tokenizer_info").ok();
    // lm-eval's remote tokenizer needs these keys
    for k in ["eos_token", "bos_token", "pad_token", "chat_template"] {
        assert!(info.get(k).is_some(), "{k}: {info}");
    }
    assert!(info["chat_template"].is_null());
    // lm-eval reads the EOS id as tokenize(eos_token)[0]
    let eos = s
        .post(
            "/tokenize",
            &json!({"prompt": info["eos_token"], "add_special_tokens": false}),
        )
        .ok();
    assert_eq!(eos["tokens"][0], 2);

    let (_s, _d, tok) = ModelOptions::new(tiny_llama())
        .load(&DropPlan::empty())
        .unwrap();
    let t = s
        .post("/tokenize", &json!({"prompt": "Hello world", "add_special_tokens": false, "return_token_strs": true}))
        .ok();
    let want = tok.encode("Hello world").unwrap();
    assert_eq!(t["tokens"], json!(want));
    assert_eq!(t["count"], want.len());
    assert_eq!(t["max_model_len"], 256);
    assert_eq!(t["token_strs"].as_array().unwrap().len(), want.len());
    let d = s.post("/detokenize", &json!({"tokens": want})).ok();
    assert_eq!(d["prompt"], "Hello world");
    // the model's BOS convention with add_special_tokens (default true)
    let t = s.post("/tokenize", &json!({"prompt": "Hi"})).ok();
    assert_eq!(t["tokens"], json!(tok.encode_prompt("Hi").unwrap()));
}

#[test]
fn concurrent_clients_get_the_sequential_answers() {
    let (ids, _) = reference();
    let s = TestServer::start(&tiny_llama());
    let requests: Vec<Value> = vec![
        json!({"prompt": [&ids[0][..12], &ids[0][..20], &ids[1][..9]], "max_tokens": 1, "echo": true, "logprobs": 1, "temperature": 0}),
        json!({"prompt": &ids[1][..5], "max_tokens": 8, "temperature": 0, "ignore_eos": true}),
        json!({"prompt": &ids[0][..7], "max_tokens": 6, "temperature": 0.7, "seed": 11, "ignore_eos": true, "logprobs": 2}),
        json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0, "ignore_eos": true, "stream": true}),
    ];
    let want: Vec<String> = requests
        .iter()
        .map(|b| strip_ids(&s.post("/v1/completions", b)))
        .collect();
    let addr = s.addr;
    std::thread::scope(|scope| {
        for c in 0..8 {
            let (requests, want) = (&requests, &want);
            scope.spawn(move || {
                for k in 0..6 {
                    let i = (c + k) % requests.len();
                    let body = requests[i].to_string();
                    let got = strip_ids(&common::request(
                        addr,
                        "POST",
                        "/v1/completions",
                        body.as_bytes(),
                    ));
                    assert_eq!(got, want[i], "client {c} request {i}");
                }
            });
        }
    });
    assert_eq!(s.get("/health").status, 200);
}

/// The response without its ids and times (which differ between requests).
fn strip_ids(r: &common::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
            o.remove("created");
        }
        v
    };
    if r.header("content-type") == Some("text/event-stream") {
        r.sse()
            .into_iter()
            .map(strip)
            .map(|v| v.to_string())
            .collect()
    } else {
        strip(r.json()).to_string()
    }
}

#[test]
fn shutdown_finishes_open_requests_then_stops() {
    let (ids, _) = reference();
    let mut s = TestServer::start(&tiny_llama());
    let body = json!({"prompt": &ids[0][..8], "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true}).to_string();
    let mut conn = TcpStream::connect(s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        conn,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // the stream has started
    let mut raw = vec![0u8; 256];
    let n = conn.read(&mut raw).unwrap();
    raw.truncate(n);
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    let addr = s.addr;
    let stopper = std::thread::spawn(move || s.stop());
    conn.read_to_end(&mut raw).unwrap();
    let r = common::parse_response(&raw);
    let frames = r.sse();
    let tokens = frames
        .iter()
        .filter(|f| f["choices"][0]["finish_reason"].is_null())
        .count();
    assert!(tokens <= 200);
    assert_eq!(
        frames.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    stopper.join().unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}
