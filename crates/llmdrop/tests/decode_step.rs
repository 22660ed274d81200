//! `Decoder::decode_step`: several sequences of different lengths advanced together, each
//! row bit for bit what `forward` gives that sequence alone on its own cache, in every
//! precision (packed f32, bf16, quantized, and dense f16, which runs row by row), whatever
//! the other rows and their order; and the refusals.

use candle_core::{DType, Device, Tensor};
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::{Decoder, DropPlan, KvCache, Logits, ModelSource, NoProbe};
use llmdrop_testkit as testkit;

fn bits(t: &Tensor) -> Vec<u32> {
    let t = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    t.to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn alone(dec: &Decoder, ids: &[u32], cache: &mut KvCache) -> Vec<u32> {
    let t = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let y = dec
        .forward(&t, Some(cache), &mut NoProbe, Logits::Last)
        .unwrap();
    bits(&y.unwrap())
}

/// 13 prompts of 1 to 14 tokens (the sliding window of the tiny Gemma is crossed), then
/// steps over changing subsets of them (up to all 13: more rows than one kernel tile), in
/// changing order.
fn check(arch: &str, p: Precision) {
    let src = ModelSource::open(&testkit::tiny_dir(arch)).unwrap();
    let dec = src
        .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
        .unwrap();
    check_decoder(&dec, &format!("{arch} {p:?}"));
}

fn check_decoder(dec: &Decoder, what: &str) {
    let vocab = dec.config().vocab_size as u32;
    let lens = [3usize, 9, 1, 14, 2, 5, 7, 4, 11, 6, 8, 10, 12];
    let mut solo: Vec<KvCache> = Vec::new();
    for (j, &len) in lens.iter().enumerate() {
        let prompt: Vec<u32> = (0..len)
            .map(|i| (1 + 13 * i as u32 + 7 * j as u32) % vocab)
            .collect();
        let mut c = dec.new_cache();
        alone(dec, &prompt, &mut c);
        solo.push(c);
    }
    let mut batched: Vec<KvCache> = solo.clone();
    let all: Vec<usize> = (0..lens.len()).collect();
    let rev: Vec<usize> = all.iter().rev().copied().collect();
    let steps: [&[usize]; 8] = [
        &all,
        &[2, 0],
        &[3],
        &[1, 3, 0, 2, 12, 7],
        &rev,
        &[0, 2, 1, 9, 10, 11, 4, 5, 6],
        &[3, 1],
        &all,
    ];
    for (s, active) in steps.iter().enumerate() {
        let ids: Vec<u32> = active
            .iter()
            .map(|&j| (5 + 31 * s as u32 + 11 * j as u32) % vocab)
            .collect();
        let mut refs: Vec<&mut KvCache> = Vec::new();
        // the caches of `active`, in its order
        let mut pool: Vec<Option<&mut KvCache>> = batched.iter_mut().map(Some).collect();
        for &j in active.iter() {
            refs.push(pool[j].take().unwrap());
        }
        let got = dec.decode_step(&ids, &mut refs).unwrap();
        assert_eq!(got.dims(), &[active.len(), vocab as usize]);
        for (r, (&j, &id)) in active.iter().zip(&ids).enumerate() {
            let want = alone(dec, &[id], &mut solo[j]);
            let row = bits(&got.narrow(0, r, 1).unwrap());
            assert!(
                row == want,
                "{what}: step {s}, sequence {j} differs from alone"
            );
        }
    }
    for (a, b) in solo.iter().zip(&batched) {
        assert_eq!(a.seq_len(), b.seq_len());
    }
}

#[test]
fn each_row_is_the_sequence_alone() {
    for arch in ["llama", "qwen3", "gemma3"] {
        check(arch, DType::F32.into());
        check(arch, Precision::Quant(QuantMode::Q8_0));
        check(arch, Precision::Quant(QuantMode::Q4_1));
        check(arch, Precision::Quant(QuantMode::Bf16Mixed));
    }
    // bf16 attention runs on the dense backend, where the window is a mask
    for arch in ["llama", "gemma3"] {
        check(arch, DType::BF16.into());
        check(arch, DType::F16.into());
    }
}

/// The default model as its GGUF stores it (Q4_1 layers) and in f32: products large
/// enough to be split across threads.
#[test]
fn each_row_is_the_sequence_alone_on_the_default_model() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let native = Precision::Quant(QuantMode::Native);
    for p in [native, DType::F32.into()] {
        let dec = src
            .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
            .unwrap();
        check_decoder(&dec, &format!("default model, {p:?}"));
    }
}

#[test]
fn refuses_mismatched_caches() {
    let (_src, dec) = testkit::load(&testkit::tiny_dir("llama"), &DropPlan::empty()).unwrap();
    let mut a = dec.new_cache();
    assert!(dec.decode_step(&[1, 2], &mut [&mut a]).is_err());
    assert!(dec.decode_step(&[], &mut []).is_err());
    // a cache made for the model with an attention layer dropped
    let pruned = dec.pruned(&DropPlan::new([1], [])).unwrap();
    let mut other = pruned.new_cache();
    assert!(dec.decode_step(&[1], &mut [&mut other]).is_err());
    // a cache of two sequences
    let mut two = dec.new_cache();
    let ids = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu).unwrap();
    dec.forward(&ids, Some(&mut two), &mut NoProbe, Logits::Last)
        .unwrap();
    assert!(dec.decode_step(&[1], &mut [&mut two]).is_err());
    // a token outside the vocabulary
    let vocab = dec.config().vocab_size as u32;
    assert!(dec.decode_step(&[vocab], &mut [&mut a]).is_err());
    assert_eq!(a.seq_len(), 0);
}
