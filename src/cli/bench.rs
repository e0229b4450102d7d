//! `sglrp bench`: [`sglrp::bench`] on the chosen device, with a weights file or a random-weight
//! VGG16, on seeded random images. Prints the report and writes it as JSON with `--json`.

use sglrp::backend::Backend;
use sglrp::bench::{BenchOptions, BenchReport, LayerTimer, bench, random_images, random_vgg16};
use sglrp::explain::Network;
use sglrp::model::Model;

use super::device::{self, Chosen};
use super::{
    BenchArgs, EXIT_OK, EXIT_USAGE, check_writable, load_model, report, unique, write_json,
};

/// Seed of the random images (the same as benches/cuda.rs).
const SEED: u64 = 7;

pub fn run(args: BenchArgs) -> u8 {
    let model = match &args.model {
        Some(path) => match load_model(Some(path)) {
            Ok((_, model)) => model,
            Err(code) => return code,
        },
        None => match random_vgg16(args.side.into()) {
            Ok(model) => model,
            Err(e) => {
                report(format!("--side {}: {e}", args.side));
                return EXIT_USAGE;
            }
        },
    };
    if let Some(Err(e)) = args.json.as_deref().map(check_writable) {
        report(e);
        return EXIT_USAGE;
    }
    let backend = match device::select(args.device, args.threads, args.precision) {
        Ok(b) => b,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    let options = BenchOptions {
        batch_sizes: unique(&args.batch_size)
            .into_iter()
            .map(|n| n as usize)
            .collect(),
        methods: unique(&args.method).iter().map(|m| m.method()).collect(),
        preset: args.preset,
        repeats: args.repeats as usize,
        ..BenchOptions::default()
    };
    let result = match backend {
        Chosen::Cpu(cpu) => measure(cpu, &model, &options, |_| None, None),
        // Only the GPU can time each layer (device events) and name a card with a known peak.
        Chosen::Cuda(gpu) => {
            let card = gpu.device().card();
            measure(gpu, &model, &options, |gpu| Some(gpu), Some(card))
        }
    };
    let bench_report = match result {
        Ok(r) => r,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    print!("{}", bench_report.to_markdown());
    if let Some(Err(e)) = args
        .json
        .as_deref()
        .map(|path| write_json(path, &bench_report))
    {
        report(e);
        return EXIT_USAGE;
    }
    EXIT_OK
}

/// [`bench`] of `model` on `backend`; `timer` gives the backend's layer timer, if it has one.
fn measure<B: Backend>(
    backend: B,
    model: &Model,
    options: &BenchOptions,
    timer: fn(&B) -> Option<&dyn LayerTimer>,
    card: Option<String>,
) -> Result<BenchReport, String> {
    let net = Network::new(backend, model).map_err(|e| e.to_string())?;
    let images = |n: usize| random_images(model, n, SEED);
    bench(&net, &images, options, timer(net.backend()), card).map_err(|e| e.to_string())
}
