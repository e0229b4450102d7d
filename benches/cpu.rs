//! VGG16 at 224×224 on the CPU, random weights: the forward pass alone, then LRP and SGLRP for
//! the top-1 class, in images/s, and the ratio explanation ÷ forward (theory: about 3, since the
//! backward pass is a denominator conv and a transposed conv per layer).
//!
//! `cargo bench --bench cpu -- [--batch N] [--threads N] [--repeats N]`
//! Compare with `benches/zennit_cpu.py` run with the same batch size and thread count.

use std::time::Instant;

use sglrp::backend::cpu::CpuBackend;
use sglrp::bench::{random_images, random_vgg16};
use sglrp::explain::{Method, Network, Preset, Request, Target};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let batch = arg("--batch", 4);
    let threads = arg("--threads", 0);
    let repeats = arg("--repeats", 3);
    let backend = CpuBackend::new((threads > 0).then_some(threads)).unwrap();
    let threads = backend.threads();
    let model = random_vgg16(224).unwrap();
    let net = Network::new(backend, &model).unwrap();
    let input = random_images(&model, batch, 7);

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
