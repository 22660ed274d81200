//! A full queue: the requests it cannot hold are answered 503 at once (with `Retry-After`
//! and an OpenAI error object), the ones it holds complete, and the server serves again
//! once the queue drains.

mod common;

use std::net::TcpStream;

use common::{read_response, send_post, test_limits, tiny_llama, Response, TestServer};
use llmdrop::DropPlan;
use serde_json::json;

#[test]
fn a_full_queue_answers_503_and_the_server_recovers() {
    let mut limits = test_limits();
    limits.queue = 1;
    let s = TestServer::start_with(&tiny_llama(), &DropPlan::empty(), limits);
    // each request: 16 prompts x 120 generated tokens, long next to the time it takes
    // to send the next one
    let long = json!({
        "prompt": vec![vec![1, 2, 3, 4]; 16],
        "max_tokens": 120,
        "temperature": 0,
        "ignore_eos": true,
    });
    let conns: Vec<TcpStream> = (0..8)
        .map(|_| send_post(s.addr, "/v1/completions", &long))
        .collect();
    let answers: Vec<Response> = conns
        .into_iter()
        .map(|mut c| read_response(&mut c))
        .collect();
    let busy: Vec<&Response> = answers.iter().filter(|r| r.status == 503).collect();
    let done: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(busy.len() + done.len(), 8, "{answers:?}");
    // one running and one queued at most while the first runs
    assert!(!busy.is_empty() && !done.is_empty(), "{answers:?}");
    for r in &busy {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.error(503).contains("busy"));
        assert_eq!(r.json()["error"]["type"], "server_busy");
    }
    // the requests that were taken all finish, and finish alike (greedy, same prompts)
    let first = done[0].json();
    for r in &done {
        let v = r.ok();
        assert_eq!(v["choices"].as_array().unwrap().len(), 16);
        assert_eq!(v["usage"]["completion_tokens"], 16 * 120);
        assert_eq!(v["choices"], first["choices"]);
    }
    // drained: a new request is served
    let again = s.post(
        "/v1/completions",
        &json!({"prompt": [1, 2, 3], "max_tokens": 2}),
    );
    assert_eq!(again.ok()["choices"][0]["finish_reason"], "length");
}
