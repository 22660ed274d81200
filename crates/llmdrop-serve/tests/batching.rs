//! Continuous batching of generation: requests sent together (greedy and seeded sampling,
//! streaming and not, several prompts per request, log-probabilities, echo, stop strings)
//! each get exactly the answer they get alone, token for token and log-probability for
//! log-probability, in f32 and with quantized weights; the prompts of one request, which
//! always run together, each equal the same prompt sent alone.

mod common;

use std::collections::BTreeMap;

use common::{read_response, send_post, test_limits, tiny_llama, Response, TestServer};
use llmdrop::pipeline::ModelOptions;
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::DropPlan;
use serde_json::{json, Value};

/// The valid generation requests mixed below.
fn requests() -> Vec<Value> {
    let base = |prompt: Value, extra: Value| {
        let mut b = json!({"prompt": prompt, "max_tokens": 40, "ignore_eos": true});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    vec![
        base(json!([1, 5, 9, 30]), json!({"temperature": 0})),
        base(
            json!([1, 7]),
            json!({"temperature": 0, "stream": true, "logprobs": 2}),
        ),
        base(
            json!([1, 3, 3, 8, 12, 40, 2]),
            json!({"temperature": 0.9, "top_p": 0.9, "seed": 11}),
        ),
        base(
            json!([1, 60, 61]),
            json!({"temperature": 1.2, "seed": 5, "stream": true}),
        ),
        base(
            json!([[1, 2, 3], [1, 9], [1, 4, 4, 4, 4]]),
            json!({"temperature": 0.7, "seed": 3, "logprobs": 1}),
        ),
        base(
            json!([1, 20, 21, 22]),
            json!({"temperature": 0, "echo": true, "logprobs": 1, "max_tokens": 25}),
        ),
        base(
            json!("Hello there"),
            json!({"temperature": 0, "stop": ["e"], "max_tokens": 30}),
        ),
        base(
            json!([[1, 11], [1, 12, 13]]),
            json!({"temperature": 0, "stream": true, "max_tokens": 60}),
        ),
    ]
}

/// An answer without what differs from run to run (ids, times): per choice index, the
/// choice (or, streamed, the list of its chunks' text, log-probabilities and finish).
fn answer(body: &Value, r: &Response) -> BTreeMap<u64, Value> {
    let mut out: BTreeMap<u64, Value> = BTreeMap::new();
    if body["stream"] == true {
        for ev in r.sse() {
            for c in ev["choices"].as_array().unwrap() {
                let i = c["index"].as_u64().unwrap();
                let list = out.entry(i).or_insert_with(|| json!([]));
                list.as_array_mut().unwrap().push(json!([
                    c["text"],
                    c["logprobs"],
                    c["finish_reason"]
                ]));
            }
        }
    } else {
        for c in r.ok()["choices"].as_array().unwrap() {
            out.insert(c["index"].as_u64().unwrap(), c.clone());
        }
    }
    out
}

fn run_concurrently(s: &TestServer, bodies: &[Value]) -> Vec<Response> {
    let conns: Vec<_> = bodies
        .iter()
        .map(|b| send_post(s.addr, "/v1/completions", b))
        .collect();
    conns
        .into_iter()
        .map(|mut c| read_response(&mut c))
        .collect()
}

fn check(s: &TestServer, what: &str) {
    let reqs = requests();
    let alone: Vec<_> = reqs
        .iter()
        .map(|b| answer(b, &s.post("/v1/completions", b)))
        .collect();
    // each request twice, all in flight together (more prompts than one batch holds)
    let bodies: Vec<Value> = reqs.iter().chain(reqs.iter()).cloned().collect();
    for round in 0..2 {
        let got = run_concurrently(s, &bodies);
        for (k, (b, r)) in bodies.iter().zip(&got).enumerate() {
            let want = &alone[k % reqs.len()];
            assert_eq!(
                &answer(b, r),
                want,
                "{what}, round {round}: request {k} ({b}) differs from alone"
            );
        }
    }
    // the prompts of a multi-prompt request ran together; each equals itself alone
    let multi = &reqs[4];
    for (i, p) in multi["prompt"].as_array().unwrap().iter().enumerate() {
        let mut one = multi.clone();
        one["prompt"] = p.clone();
        // prompt i of a request samples with seed + i
        one["seed"] = json!(multi["seed"].as_u64().unwrap() + i as u64);
        let r = s.post("/v1/completions", &one);
        let mut c = r.ok()["choices"][0].clone();
        c["index"] = json!(i);
        assert_eq!(
            alone[4][&(i as u64)],
            c,
            "{what}: prompt {i} of the batch differs from alone"
        );
    }
}

#[test]
fn concurrent_generation_equals_each_request_alone() {
    let limits = test_limits();
    let s = TestServer::start_with(&tiny_llama(), &DropPlan::empty(), limits.clone());
    check(&s, "f32");
    drop(s);
    let mut opts = ModelOptions::new(tiny_llama());
    opts.dtype = Precision::Quant(QuantMode::Q4_1);
    let s = TestServer::start_options(&opts, &DropPlan::empty(), limits);
    check(&s, "q4_1");
}
