//! VGG16 at 224×224 on the CPU, random weights: the forward pass alone, then LRP and SGLRP for
//! the top-1 class, in images/s, and the ratio explanation ÷ forward (theory: about 3, since the
//! backward pass is a denominator conv and a transposed conv per layer).
//!
//! `cargo bench --bench cpu -- [--batch N] [--threads N] [--repeats N]`
//! Compare with `benches/zennit_cpu.py` run with the same batch size and thread count.

use std::time::Instant;

use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{ConvParams, DenseParams, Layer, LayerSpec, Model, Preprocess, vgg16};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// Deterministic pseudo-random values in [−bound, bound).
fn values(seed: u64, len: usize, bound: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        })
        .collect()
}

fn random_vgg16(side: usize) -> Model {
    let specs = vgg16(1000);
    let dims = sglrp::model::infer_dims(&specs, side).unwrap();
    let layers = specs
        .iter()
        .zip(&dims)
        .enumerate()
        .map(|(i, (spec, (input, output)))| match *spec {
            LayerSpec::Conv(cout) => Layer::Conv(ConvParams {
                cin: input.c,
                cout,
                weight: values(
                    i as u64,
                    cout * input.c * 9,
                    (6.0 / (9 * input.c) as f32).sqrt(),
                ),
                bias: values(1000 + i as u64, cout, 0.1),
            }),
            LayerSpec::Dense(n) => Layer::Dense(DenseParams {
                inputs: input.len(),
                outputs: n,
                weight: values(i as u64, n * input.len(), (6.0 / input.len() as f32).sqrt()),
                bias: values(1000 + i as u64, output.c, 0.1),
            }),
            LayerSpec::Pool => Layer::Pool,
            LayerSpec::Flatten => Layer::Flatten,
            LayerSpec::Affine => unreachable!(),
        })
        .collect();
    Model {
        name: "VGG16, random weights".into(),
        layers,
        input_side: side,
        preprocess: Preprocess::torchvision(),
        classes: Model::default_classes(1000),
    }
}

fn main() {
    let batch = arg("--batch", 4);
    let threads = arg("--threads", 0);
    let repeats = arg("--repeats", 3);
    let backend = CpuBackend::new((threads > 0).then_some(threads)).unwrap();
    let threads = backend.threads();
    let net = Network::new(backend, &random_vgg16(224)).unwrap();
    let input = values(7, batch * 224 * 224 * 3, 2.0);

    let time = |label: &str, run: &dyn Fn()| -> f64 {
        run(); // warm-up
        let start = Instant::now();
        for _ in 0..repeats {
            run();
        }
        let rate = (batch * repeats) as f64 / start.elapsed().as_secs_f64();
        println!("{label:<10} {rate:8.3} images/s");
        rate
    };
    println!("sglrp CPU, VGG16 224×224, batch {batch}, {threads} threads, {repeats} repeats");
    let forward = time("forward", &|| {
        net.classify(&input).unwrap();
    });
    for method in [Method::Lrp, Method::Sglrp] {
        let request = [Request::new(method.clone(), Target::Rank(1))];
        let rate = time(method.name(), &|| {
            net.explain_each(&input, &request, Preset::Paper).unwrap();
        });
        println!("{:<10} explanation ÷ forward = {:.2}", "", forward / rate);
    }
}
