//! Log-probabilities through a real server on an ephemeral loopback port, with the tiny
//! llama fixture: echoed prompts checked against PyTorch's committed logits, lm-eval's
//! log-likelihood request, shared-prefix batches, a pruned model.

mod common;

use common::{log_softmax_at, reference, tiny_llama, TestServer};
use llmdrop::pipeline::ModelOptions;
use llmdrop::DropPlan;
use serde_json::{json, Value};

const TOL: f64 = 1e-4;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks the echoed log-probabilities of `choice` (prompt `ids`) against PyTorch's logits
/// `rows` (one per position of `ids`), and the top entries against the reference's best.
fn check_echo(choice: &Value, ids: &[u32], rows: &[Vec<f32>]) {
    let lp = &choice["logprobs"];
    let tl = lp["token_logprobs"].as_array().unwrap();
    let top = lp["top_logprobs"].as_array().unwrap();
    assert!(tl.len() >= ids.len());
    assert!(
        tl[0].is_null() && top[0].is_null(),
        "first echoed token: {lp}"
    );
    for j in 1..ids.len() {
        let want = log_softmax_at(&rows[j - 1], ids[j] as usize);
        assert!(
            (f(&tl[j]) - want).abs() < TOL,
            "position {j}: {} vs {want}",
            tl[j]
        );
        let best = (0..rows[j - 1].len())
            .map(|k| log_softmax_at(&rows[j - 1], k))
            .fold(f64::NEG_INFINITY, f64::max);
        let got = top[j]
            .as_object()
            .unwrap()
            .values()
            .map(f)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            (got - best).abs() < TOL,
            "position {j}: top {got} vs {best}"
        );
    }
    let offsets = lp["text_offset"].as_array().unwrap();
    assert_eq!(offsets.len(), tl.len());
    assert!(offsets.windows(2).all(|w| f(&w[0]) <= f(&w[1])));
}

#[test]
fn echo_logprobs_match_the_pytorch_reference() {
    let (ids, logits) = reference();
    let s = TestServer::start(&tiny_llama());
    let r = s
        .post(
            "/v1/completions",
            &json!({"prompt": ids, "max_tokens": 0, "echo": true, "logprobs": 3}),
        )
        .ok();
    assert_eq!(r["object"], "text_completion");
    let choices = r["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["finish_reason"], "length");
        assert_eq!(
            c["logprobs"]["tokens"].as_array().unwrap().len(),
            ids[i].len()
        );
        check_echo(c, &ids[i], &logits[i]);
    }
    // keyed by text, entries collide (bytes of incomplete characters all read U+FFFD);
    // by id: the top 3, plus the echoed token when it is not among them
    let r = s
        .post("/v1/completions", &json!({"prompt": ids, "max_tokens": 0, "echo": true, "logprobs": 3, "return_tokens_as_token_ids": true}))
        .ok();
    for (i, c) in r["choices"].as_array().unwrap().iter().enumerate() {
        check_echo(c, &ids[i], &logits[i]);
        let lp = &c["logprobs"];
        assert_eq!(lp["tokens"][3], format!("token_id:{}", ids[i][3]));
        for j in 1..ids[i].len() {
            let top = lp["top_logprobs"][j].as_object().unwrap();
            let n = top.len();
            let has_own = top.contains_key(&format!("token_id:{}", ids[i][j]));
            assert!(has_own && (3..=4).contains(&n), "{n}");
        }
    }
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": 48, "completion_tokens": 0, "total_tokens": 48})
    );
}

/// lm-eval's `local-completions` log-likelihood request: echo, one new token, logprobs 1.
#[test]
fn lm_eval_loglikelihood_request_scores_and_picks_the_greedy_token() {
    let (ids, logits) = reference();
    let s = TestServer::start(&tiny_llama());
    let body = json!({"model": "x", "prompt": ids, "temperature": 0, "max_tokens": 1,
                      "logprobs": 1, "seed": 1234, "echo": true});
    let r = s.post("/v1/completions", &body).ok();
    for (i, c) in r["choices"].as_array().unwrap().iter().enumerate() {
        check_echo(c, &ids[i], &logits[i]);
        let lp = &c["logprobs"];
        let tl = lp["token_logprobs"].as_array().unwrap();
        assert_eq!(tl.len(), ids[i].len() + 1);
        // the new token is the reference's argmax after the whole prompt
        let last = &logits[i][ids[i].len() - 1];
        let best = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap();
        assert!((f(&tl[ids[i].len()]) - log_softmax_at(last, best)).abs() < TOL);
        // lm-eval's greedy test: a token is greedy when its log-prob equals the top one's
        let top = lp["top_logprobs"].as_array().unwrap();
        let greedy = tl.iter().zip(top).skip(1).filter(|(t, top)| {
            let m = top
                .as_object()
                .unwrap()
                .values()
                .map(f)
                .fold(f64::NEG_INFINITY, f64::max);
            f(t) == m
        });
        assert!(greedy.count() >= 1);
        assert_eq!(c["finish_reason"], "length");
    }
    assert_eq!(r["usage"]["completion_tokens"], 2);
}

/// Prompts that share a prefix are scored on one KV cache in one batch: every prompt still
/// gets the logits a lone forward pass gives (causal: a prefix's logits are the first rows).
#[test]
fn shared_prefix_batches_match_the_reference() {
    let (ids, logits) = reference();
    let s = TestServer::start(&tiny_llama());
    let cuts = [(0, 10), (0, 24), (0, 17), (1, 5), (0, 12), (1, 24), (0, 2)];
    let prompts: Vec<Vec<u32>> = cuts.iter().map(|&(i, n)| ids[i][..n].to_vec()).collect();
    let r = s
        .post("/v1/completions", &json!({"prompt": prompts, "max_tokens": 1, "echo": true, "logprobs": 2, "temperature": 0}))
        .ok();
    for (k, c) in r["choices"].as_array().unwrap().iter().enumerate() {
        let (i, n) = cuts[k];
        check_echo(c, &prompts[k], &logits[i]);
        let last = &logits[i][n - 1];
        let best = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap();
        let tl = c["logprobs"]["token_logprobs"].as_array().unwrap();
        assert!(
            (f(&tl[n]) - log_softmax_at(last, best)).abs() < TOL,
            "prompt {k}"
        );
    }
    // the same prompts one by one give the same numbers
    for (k, p) in prompts.iter().enumerate() {
        let one = s
            .post("/v1/completions", &json!({"prompt": p, "max_tokens": 1, "echo": true, "logprobs": 2, "temperature": 0}))
            .ok();
        let a = one["choices"][0]["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .clone();
        let b = r["choices"][k]["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap();
        for (x, y) in a.iter().zip(b).skip(1) {
            assert!((f(x) - f(y)).abs() < 1e-5, "prompt {k}: {x} vs {y}");
        }
        assert_eq!(one["choices"][0]["text"], r["choices"][k]["text"]);
    }
}

#[test]
fn pruned_model_serves_its_own_logits() {
    let (ids, _) = reference();
    let plan = DropPlan::new([1usize], [2usize]);
    let s = TestServer::start_with(&tiny_llama(), &plan, common::test_limits());
    let (_src, dec, _tok) = ModelOptions::new(tiny_llama()).load(&plan).unwrap();
    let t = candle_core::Tensor::new(ids[0].as_slice(), dec.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let rows = dec
        .forward(&t, None, &mut llmdrop::NoProbe, llmdrop::Logits::All)
        .unwrap()
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let r = s
        .post(
            "/v1/completions",
            &json!({"prompt": ids[0], "max_tokens": 0, "echo": true, "logprobs": 1}),
        )
        .ok();
    check_echo(&r["choices"][0], &ids[0], &rows);
    let m = s.get("/v1/models").ok();
    assert_eq!(m["data"][0]["llmdrop"]["drop_attn"], json!([1]));
    assert_eq!(m["data"][0]["llmdrop"]["drop_mlp"], json!([2]));
}

/// Several clients' scoring requests waiting together (queued behind a long generation)
/// are scored together, groups with the same prefix across requests sharing its pass:
/// each answer matches PyTorch's logits and is exactly what the request gets alone.
#[test]
fn queued_requests_scored_together_match_the_reference_and_alone() {
    let (ids, logits) = reference();
    let s = TestServer::start(&tiny_llama());
    let send = |body: &Value| common::send_post(s.addr, "/v1/completions", body);
    // keeps the worker busy while the scoring requests queue up behind it
    let long = send(
        &json!({"prompt": vec![vec![1, 2, 3]; 16], "max_tokens": 100, "temperature": 0, "ignore_eos": true}),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    // requests 0 and 1 each group two prompts on the prefix ids[0][..9]: run together
    let cuts: [&[(usize, usize)]; 4] = [
        &[(0, 10), (0, 12), (1, 5)],
        &[(0, 10), (0, 14)],
        &[(0, 17), (1, 24)],
        &[(0, 2)],
    ];
    let bodies: Vec<Value> = cuts
        .iter()
        .map(|c| {
            let p: Vec<Vec<u32>> = c.iter().map(|&(i, n)| ids[i][..n].to_vec()).collect();
            json!({"prompt": p, "max_tokens": 1, "echo": true, "logprobs": 2, "temperature": 0})
        })
        .collect();
    let conns: Vec<_> = bodies.iter().map(send).collect();
    let together: Vec<Value> = conns
        .into_iter()
        .map(|mut c| common::read_response(&mut c).ok())
        .collect();
    let mut long = long;
    assert_eq!(common::read_response(&mut long).status, 200);
    for (k, (r, body)) in together.iter().zip(&bodies).enumerate() {
        let alone = s.post("/v1/completions", body).ok();
        for (j, &(i, n)) in cuts[k].iter().enumerate() {
            let (a, b) = (&r["choices"][j], &alone["choices"][j]);
            assert_eq!(a["index"], j);
            check_echo(a, &ids[i][..n], &logits[i]);
            // the same bits: each prompt keeps the prefix split it has alone
            assert_eq!(a, b, "request {k} prompt {j}");
        }
    }
}
