//! Resumable layer-streamed scoring: a run stopped after any layer (asked to stop, or
//! killed part way through a layer: a cut layer file, unit files longer than saved) and
//! resumed gives the table of a run that never stopped, bit for bit, which is the held
//! model's; a checkpoint of other blocks is never used; a damaged one is cleared with a
//! warning event, never trusted.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use llmdrop::dest::{Inputs, Removed, SpillDir};
use llmdrop::model::{LayerStream, Outputs};
use llmdrop::progress::{NoProgress, Progress};
use llmdrop::score::{
    score, score_streamed, score_streamed_resumable, Checkpoint, CheckpointKey, ScoreOptions,
    ScoreTable, Start,
};
use llmdrop::{DropPlan, Error, ModelSource, Precision};
use llmdrop_testkit::{self as testkit, score_bits};

/// Layers of the model these tests score.
const LAYERS: usize = 7;

fn deep_model(dir: &Path) -> PathBuf {
    let p = dir.join("deep");
    testkit::write_deep_copy(&testkit::tiny_dir("llama"), &p, LAYERS).unwrap();
    p
}

fn blocks(vocab: usize, n: usize, len: usize) -> Vec<Vec<u32>> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % vocab as u64) as u32
                })
                .collect()
        })
        .collect()
}

/// Stops the run at its `stop_at`-th question (one after each saved layer but the last,
/// then one before each block is read back), and keeps where the run started.
#[derive(Default)]
struct Stopper {
    stop_at: Option<usize>,
    asked: Cell<usize>,
    resumed_at: Option<usize>,
    ignored: Option<String>,
}

impl Progress for Stopper {
    fn cancelled(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.stop_at == Some(self.asked.get())
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    src: ModelSource,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let src = ModelSource::open(&deep_model(&dir)).unwrap();
        Self {
            _tmp: tmp,
            dir,
            src,
        }
    }

    fn stream(&self, p: &str) -> LayerStream<'_> {
        let precision = Precision::parse(p).unwrap();
        LayerStream::open(&self.src, &DropPlan::empty(), precision, &Device::Cpu).unwrap()
    }

    fn open(&self, stream: &LayerStream<'_>, b: &[Vec<u32>], o: &ScoreOptions) -> Checkpoint {
        self.open_removing(stream, b, o).0
    }

    fn open_removing(
        &self,
        stream: &LayerStream<'_>,
        b: &[Vec<u32>],
        o: &ScoreOptions,
    ) -> (Checkpoint, Vec<Removed>) {
        let key = CheckpointKey::new("sha-of-the-model", stream, b, o);
        let out = self.dir.join("scores.json");
        Checkpoint::open(&self.dir, key, &out, false, 0, &Inputs::new()).unwrap()
    }

    /// One run: stopped at its `stop_at`-th question, or to the end.
    fn run(
        &self,
        stream: &LayerStream<'_>,
        b: &[Vec<u32>],
        o: &ScoreOptions,
        stop_at: Option<usize>,
    ) -> (Result<ScoreTable, Error>, Stopper, PathBuf) {
        let mut ckpt = self.open(stream, b, o);
        let mut obs = Stopper {
            stop_at,
            ..Stopper::default()
        };
        match ckpt.prepare(stream, b, o).unwrap() {
            Start::At { layer } => obs.resumed_at = Some(layer),
            Start::Cleared { reason } => obs.ignored = Some(reason),
            Start::Fresh => {}
        }
        let r = score_streamed_resumable(stream, b, o, &mut ckpt, &mut obs);
        let path = ckpt.path().to_path_buf();
        if r.is_ok() {
            ckpt.finish().unwrap();
        }
        (r, obs, path)
    }
}

fn bits(t: &ScoreTable) -> (u64, Vec<u64>) {
    (t.tokens, score_bits(t))
}

fn options() -> Vec<ScoreOptions> {
    [(true, true), (false, true), (true, false)]
        .map(|(residual, consecutive)| ScoreOptions {
            residual,
            consecutive,
        })
        .to_vec()
}

/// The held model's table, and the streamed one without and with a spill folder: the
/// references a resumed run must equal.
fn references(s: &Setup, p: &str, b: &[Vec<u32>], o: &ScoreOptions) -> (u64, Vec<u64>) {
    let held = s
        .src
        .load_decoder_for(
            &DropPlan::empty(),
            Precision::parse(p).unwrap(),
            &Device::Cpu,
            Outputs::HiddenStates,
        )
        .unwrap();
    let want = bits(&score(&held, b, o, &mut NoProgress).unwrap());
    let stream = s.stream(p);
    let plain = score_streamed(&stream, b, o, None, &mut NoProgress).unwrap();
    assert_eq!(bits(&plain), want);
    let spill = Arc::new(SpillDir::new(&s.dir.join("spill"), 0).unwrap());
    let spilled = score_streamed(&stream, b, o, Some(&spill), &mut NoProgress).unwrap();
    assert_eq!(bits(&spilled), want);
    want
}

#[test]
fn a_run_stopped_after_any_layer_resumes_to_the_bits_of_one_that_never_stopped() {
    let s = Setup::new();
    let b = blocks(s.src.config().vocab_size, 3, 20);
    for p in ["f32", "bf16"] {
        for o in options() {
            let want = references(&s, p, &b, &o);
            let stream = s.stream(p);
            let (r, obs, dir) = s.run(&stream, &b, &o, None);
            assert_eq!(bits(&r.unwrap()), want, "{p} {o:?} uninterrupted");
            assert_eq!(obs.resumed_at, None);
            assert!(!dir.exists(), "finished: the checkpoint goes");
            // stopped after layer 1 (asked once a layer is saved), then 4 more, then (every
            // layer done, asked before each block is read back) before the second block,
            // then to the end
            let mut done = 0;
            for (stop_at, layers_done) in [(1, 1), (4, 5), (3, LAYERS)] {
                let (r, obs, dir) = s.run(&stream, &b, &o, Some(stop_at));
                match r.unwrap_err() {
                    Error::Cancelled {
                        done: d,
                        total,
                        checkpoint,
                    } => {
                        assert_eq!((d, total), (layers_done, LAYERS), "{p} {o:?}");
                        assert_eq!(checkpoint.as_deref(), Some(dir.as_path()));
                    }
                    e => panic!("{e}"),
                }
                assert_eq!(obs.resumed_at, (done > 0).then_some(done));
                assert!(dir.join(format!("layer-{layers_done}.ckpt")).exists());
                done = layers_done;
            }
            let (r, obs, dir) = s.run(&stream, &b, &o, None);
            assert_eq!(obs.resumed_at, Some(LAYERS));
            assert_eq!(bits(&r.unwrap()), want, "{p} {o:?} resumed");
            assert!(!dir.exists());
        }
    }
}

/// What a kill part way through layer 3 leaves: the checkpoint of 2 layers, unit files
/// with part of layer 2's units appended, a layer file half written beside.
#[test]
fn a_run_killed_within_a_layer_resumes_from_the_last_saved_one() {
    let s = Setup::new();
    let b = blocks(s.src.config().vocab_size, 3, 20);
    let o = ScoreOptions::default();
    let want = references(&s, "f32", &b, &o);
    let stream = s.stream("f32");
    let (r, _, dir) = s.run(&stream, &b, &o, Some(2));
    assert!(matches!(r, Err(Error::Cancelled { done: 2, .. })));
    for k in 0..b.len() {
        let unit = dir.join(format!("block-{k}.f32"));
        let mut bytes = std::fs::read(&unit).unwrap();
        assert_eq!(bytes.len(), 2 * 20 * 64 * 4, "inputs of layers 0 and 1");
        bytes.extend(std::iter::repeat_n(0x7f, 1000));
        std::fs::write(&unit, bytes).unwrap();
    }
    let whole = std::fs::read(dir.join("layer-2.ckpt")).unwrap();
    std::fs::write(dir.join("layer-3.ckpt.tmp"), &whole[..whole.len() / 2]).unwrap();
    let (r, obs, _) = s.run(&stream, &b, &o, None);
    assert_eq!((obs.resumed_at, obs.ignored), (Some(2), None));
    assert_eq!(bits(&r.unwrap()), want);
}

#[test]
fn a_checkpoint_of_other_blocks_is_never_used() {
    let s = Setup::new();
    let vocab = s.src.config().vocab_size;
    let o = ScoreOptions::default();
    let stream = s.stream("f32");
    let (short, long) = (blocks(vocab, 3, 20), blocks(vocab, 3, 24));
    let (r, _, old) = s.run(&stream, &short, &o, Some(3));
    assert!(matches!(r, Err(Error::Cancelled { done: 3, .. })));
    // same output, other blocks: the old checkpoint is stale and goes
    let (mut ckpt, removed) = s.open_removing(&stream, &long, &o);
    assert_eq!(removed, vec![Removed::Stale(old.clone())]);
    assert!(!old.exists() && ckpt.path() != old);
    assert_eq!(ckpt.prepare(&stream, &long, &o).unwrap(), Start::Fresh);
    let mut obs = Stopper::default();
    let got = score_streamed_resumable(&stream, &long, &o, &mut ckpt, &mut obs).unwrap();
    assert_eq!(bits(&got), references(&s, "f32", &long, &o));
    // a checkpoint opened for one run is refused by another
    let other = ScoreOptions {
        residual: false,
        ..o
    };
    let e = score_streamed_resumable(&stream, &long, &other, &mut ckpt, &mut obs).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Argument {
                option: "checkpoint",
                ..
            }
        ),
        "{e}"
    );
}

/// Damage of every kind: the run clears the checkpoint, says why, and scores from layer 0.
#[test]
fn a_damaged_checkpoint_is_cleared_with_a_warning_never_trusted() {
    let s = Setup::new();
    let b = blocks(s.src.config().vocab_size, 3, 20);
    let o = ScoreOptions::default();
    let want = references(&s, "f32", &b, &o);
    let stream = s.stream("f32");
    // (what, file, Ok(byte to flip) or Err(length to cut it to))
    let damages: [(&str, &str, Result<usize, u64>); 6] = [
        ("a bit of a hidden state", "layer-3.ckpt", Ok(5000)),
        ("a bit of a probe sum", "layer-3.ckpt", Ok(120)),
        ("the layer file cut", "layer-3.ckpt", Err(3000)),
        ("the layer file empty", "layer-3.ckpt", Err(0)),
        ("a unit file cut short", "block-1.f32", Err(100)),
        ("a bit of a unit file", "block-2.f32", Ok(7)),
    ];
    for (what, file, damage) in damages {
        let (r, _, dir) = s.run(&stream, &b, &o, Some(3));
        assert!(matches!(r, Err(Error::Cancelled { done: 3, .. })), "{what}");
        let p = dir.join(file);
        match damage {
            Ok(at) => {
                let mut bytes = std::fs::read(&p).unwrap();
                bytes[at] ^= 0x01;
                std::fs::write(&p, bytes).unwrap();
            }
            Err(len) => {
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_len(len).unwrap();
            }
        }
        let (r, obs, dir) = s.run(&stream, &b, &o, None);
        assert_eq!(obs.resumed_at, None, "{what}");
        let reason = obs.ignored.unwrap_or_else(|| panic!("{what}: no warning"));
        assert!(reason.contains("layer-3.ckpt"), "{what}: {reason}");
        assert_eq!(bits(&r.unwrap()), want, "{what}");
        assert!(!dir.exists());
    }
    // a key.json that is not llmdrop's: the folder is not taken, nor removed
    let (r, _, dir) = s.run(&stream, &b, &o, Some(1));
    assert!(r.is_err());
    std::fs::write(dir.join("key.json"), "not json").unwrap();
    let key = CheckpointKey::new("sha-of-the-model", &stream, &b, &o);
    let out = s.dir.join("scores.json");
    let e = Checkpoint::open(&s.dir, key, &out, false, 0, &Inputs::new())
        .err()
        .unwrap();
    assert!(matches!(e, Error::Exists { own: false, .. }), "{e}");
    assert!(dir.join("layer-1.ckpt").exists());
}
