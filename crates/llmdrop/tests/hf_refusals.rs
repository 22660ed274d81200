//! HF directories llmdrop must refuse, each named after what it once did (a panic, an
//! overflow, an allocation before any check), and special files (FIFOs, devices) refused
//! without blocking. The seeded mutations of the same path: fuzz_hf.rs.

mod fuzz_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use llmdrop_testkit as testkit;
use serde_json::{json, Value};

/// The tiny llama directory with its config edited by `edit` and each tensor by `tensor`.
fn edited(
    edit: impl FnOnce(&mut Value),
    tensor: impl FnMut(&str, &mut Vec<usize>, Vec<f32>) -> Option<Vec<f32>>,
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    testkit::copy_hf_dir_with(&testkit::tiny_dir("llama"), tmp.path(), tensor).unwrap();
    let p = tmp.path().join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&p, c.to_string()).unwrap();
    tmp
}

fn refused(dir: &Path) -> String {
    match fuzz_common::open_and_run(dir) {
        Ok(()) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn head_dim_zero_with_zero_width_tensors_is_refused() {
    // q/k/v are [heads * 0, hidden], o is [hidden, 0]: consistent with the config, and
    // the RoPE tables used to be split into chunks of 0
    let d = edited(
        |c| c["head_dim"] = json!(0),
        |name, shape, data| {
            if name.contains("q_proj") || name.contains("k_proj") || name.contains("v_proj") {
                shape[0] = 0;
                Some(vec![])
            } else if name.contains("o_proj") {
                shape[1] = 0;
                Some(vec![])
            } else {
                Some(data)
            }
        },
    );
    let e = refused(d.path());
    assert!(e.contains("head_dim") && e.contains("positive"), "{e}");
    // with every attention dropped no q/k weight bounds head_dim, and the RoPE tables
    // (positions x head_dim / 2) are sized from it
    let d = edited(
        |c| {
            c["head_dim"] = json!(1 << 16);
            c["drop_attn_list"] = json!([0, 1, 2]);
        },
        |_, _, x| Some(x),
    );
    let e = refused(d.path());
    assert!(e.contains("`head_dim` = 65536 is larger than 1024"), "{e}");
}

#[test]
fn absurd_layer_counts_are_refused_before_allocating() {
    for n in [100_000_000u64, 1 << 31, 1 << 40] {
        let d = edited(|c| c["num_hidden_layers"] = json!(n), |_, _, x| Some(x));
        let e = refused(d.path());
        assert!(
            e.contains("num_hidden_layers") && e.contains("larger than"),
            "{e}"
        );
    }
    let d = edited(|c| c["num_hidden_layers"] = json!(4), |_, _, x| Some(x));
    let e = refused(d.path());
    assert!(
        e.contains("`num_hidden_layers` = 4") && e.contains("`model.layers.3.*`"),
        "{e}"
    );
    // a layer dropped whole by the config needs no tensors
    let d = edited(
        |c| {
            c["num_hidden_layers"] = json!(4);
            c["drop_attn_list"] = json!([3]);
            c["drop_mlp_list"] = json!([3]);
        },
        |_, _, x| Some(x),
    );
    fuzz_common::open_and_run(d.path()).unwrap();
}

#[test]
fn huge_nemotron_ffn_mult_is_refused_not_overflowed() {
    let d = edited(
        |c| {
            c["model_type"] = json!("nemotron-nas");
            let block = json!({"attention": {"no_op": false, "n_heads_in_group": 2},
                               "ffn": {"no_op": false, "ffn_mult": 1e300}});
            c["block_configs"] = json!([block.clone(), block.clone(), block]);
        },
        |_, _, x| Some(x),
    );
    let e = refused(d.path());
    assert!(e.contains("ffn_mult"), "{e}");
}

/// Runs `f` on a thread and fails if it has not returned within 20 s (a FIFO blocks).
fn within_time<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).ok());
    rx.recv_timeout(Duration::from_secs(20))
        .expect("opening a special file blocked")
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo {}", p.display());
}

fn open_err(p: PathBuf) -> String {
    within_time(move || match llmdrop::ModelSource::open(&p) {
        Ok(_) => panic!("{} opened", p.display()),
        Err(e) => e.to_string(),
    })
}

#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("model.gguf");
    mkfifo(&fifo);
    let e = open_err(fifo);
    assert!(e.contains("named pipe"), "{e}");
    let e = open_err("/dev/zero".into());
    assert!(e.contains("character device"), "{e}");

    // inside an HF directory: config.json, the weights, an index pointing at a device
    for f in ["config.json", "model.safetensors"] {
        let d = edited(|_| {}, |_, _, x| Some(x));
        std::fs::remove_file(d.path().join(f)).unwrap();
        mkfifo(&d.path().join(f));
        let e = open_err(d.path().into());
        assert!(e.contains(f) && e.contains("named pipe"), "{e}");
    }
    let d = edited(|_| {}, |_, _, x| Some(x));
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.safetensors")).unwrap();
    let index = json!({"weight_map": {"model.embed_tokens.weight": "zero.safetensors"}});
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let e = open_err(d.path().into());
    assert!(e.contains("character device"), "{e}");
    let index = json!({"weight_map": {"model.embed_tokens.weight": "/dev/zero"}});
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let e = open_err(d.path().into());
    assert!(e.contains("not a file name inside the directory"), "{e}");

    // a FIFO tokenizer.json: the model opens, its tokenizer is refused
    let d = edited(|_| {}, |_, _, x| Some(x));
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    mkfifo(&d.path().join("tokenizer.json"));
    let p = d.path().to_path_buf();
    let e = within_time(move || {
        let src = llmdrop::ModelSource::open(&p).unwrap();
        src.tokenizer().err().map(|e| e.to_string())
    });
    let e = e.expect("the FIFO tokenizer.json was read");
    assert!(
        e.contains("tokenizer.json") && e.contains("named pipe"),
        "{e}"
    );
}
