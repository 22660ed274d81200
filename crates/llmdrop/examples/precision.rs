//! Where float32 rounding enters: every probe site of every layer of a model run in f32
//! against the same run in f64 (`--dtype f64`, the reference precision), on one text.
//!
//!     cargo run --release -p llmdrop --example precision -- MODEL "text" [attn-drops] [mlp-drops]
//!
//! Prints per layer and site the largest |f32 − f64| over the largest |f64| (relative to the
//! site's scale), and the branch's error amplified into the residual.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use llmdrop::{DropPlan, Logits, ModelSource, Probe, Site};

#[derive(Default)]
struct Record(BTreeMap<(usize, String), Vec<f64>>);

impl Probe for Record {
    fn observe(&mut self, layer: usize, site: Site, h: &Tensor) -> llmdrop::Result<()> {
        let v = h.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        self.0.insert((layer, format!("{site:?}")), v);
        Ok(())
    }
    fn wants_branches(&self) -> bool {
        true
    }
}

fn layers(arg: Option<&String>) -> Result<Vec<usize>, std::num::ParseIntError> {
    arg.map_or(Ok(Vec::new()), |s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::parse)
            .collect()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: precision MODEL TEXT [ATTN-LAYERS] [MLP-LAYERS]".into());
    }
    let src = ModelSource::open(std::path::Path::new(&args[1]))?;
    let tok = src.tokenizer()?;
    let ids = tok.encode_prompt(&args[2])?;
    let plan = DropPlan::new(layers(args.get(3))?, layers(args.get(4))?);
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let mut runs = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        let dec = src.load_decoder(&plan, dtype, &Device::Cpu)?;
        let mut rec = Record::default();
        let l = dec
            .forward(&ids, None, &mut rec, Logits::All)?
            .expect("logits");
        let l = l.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        runs.push((rec, l));
    }
    let (a, b) = (&runs[0], &runs[1]);
    for ((layer, site), want) in &b.0 .0 {
        let got = &a.0 .0[&(*layer, site.clone())];
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        println!(
            "{layer:3} {site:10} max|ref| {scale:10.3e}  max|Δ| {err:10.3e}  rel {:10.3e}",
            err / scale
        );
    }
    let err =
        a.1.iter()
            .zip(&b.1)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    println!("logits max|Δ| {err:.3e}");
    Ok(())
}
