//! The GPU half of `benches/device_check.sh`, built here (the device has no Rust toolchain) and
//! run there. VGG16 with the random weights of benches/cpu.rs, then one of:
//!
//! ```text
//! cuda verify [--batch 8] [--side 224] [--json F] [--md F]  CPU reference vs CUDA, docs/numerics.md §Bounds; exit 1 past it
//! cuda bench [--batch-sizes 1,8,32] [--side 224] [--repeats 5] [--json F] [--md F]
//! cuda explain-once [--batch 1] [--side 224]                one SGLRP explanation (for ncu)
//! cuda save-model PATH [--side 224]                         the weights, for benches/zennit_gpu.py
//! ```
//!
//! Library code does the work (`sglrp::verify`, `sglrp::bench`); `sglrp verify`/`sglrp bench`
//! are the same for users.

use std::process::ExitCode;

use sglrp::backend::cpu::CpuBackend;
use sglrp::backend::cuda::CudaBackend;
use sglrp::bench::{BenchOptions, bench, random_images, random_vgg16};
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::Dtype;
use sglrp::verify::{VerifyOptions, verify};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write(path: Option<String>, text: &str) {
    if let Some(path) = path {
        std::fs::write(&path, text).unwrap_or_else(|e| eprintln!("{path}: {e}"));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; without a command there is nothing to do here.
    let Some(command) = args.first().filter(|a| !a.starts_with("--")).cloned() else {
        println!("benches/cuda.rs: run by benches/device_check.sh on a GPU (see its header)");
        return ExitCode::SUCCESS;
    };
    let side = num(&args, "--side", 224);
    let model = random_vgg16(side).expect("VGG16 fits this side");
    let run = || -> sglrp::Result<bool> {
        match command.as_str() {
            "verify" => {
                let batch = num(&args, "--batch", 8);
                let input = random_images(&model, batch, 7);
                let options = VerifyOptions {
                    targets: vec![Target::Rank(1)],
                    ..VerifyOptions::default()
                };
                let report = verify(
                    &model,
                    CudaBackend::new(0)?,
                    CpuBackend::new(None)?,
                    &input,
                    &options,
                )?;
                let md = report.to_markdown();
                println!("{md}");
                write(arg(&args, "--md"), &md);
                write(
                    arg(&args, "--json"),
                    &serde_json::to_string_pretty(&report).unwrap(),
                );
                Ok(report.passed())
            }
            "bench" => {
                let sizes: Vec<usize> = arg(&args, "--batch-sizes")
                    .unwrap_or_else(|| "1,8,32".into())
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
                let options = BenchOptions {
                    batch_sizes: sizes,
                    repeats: num(&args, "--repeats", 5),
                    ..BenchOptions::default()
                };
                let backend = CudaBackend::new(0)?;
                let card = backend.device().card();
                let net = Network::new(backend, &model)?;
                let images = |n: usize| random_images(&model, n, 7);
                let report = bench(&net, &images, &options, Some(net.backend()), Some(card))?;
                let md = report.to_markdown();
                println!("{md}");
                write(arg(&args, "--md"), &md);
                write(
                    arg(&args, "--json"),
                    &serde_json::to_string_pretty(&report).unwrap(),
                );
                Ok(true)
            }
            "explain-once" => {
                let net = Network::new(CudaBackend::new(0)?, &model)?;
                let input = random_images(&model, num(&args, "--batch", 1), 7);
                let request = [Request::new(Method::Sglrp, Target::Rank(1))];
                net.explain_each(&input, &request, Preset::Paper)?;
                println!(
                    "one SGLRP explanation on {} (NVTX: {})",
                    net.backend().device().card(),
                    net.backend().device().nvtx_origin().unwrap_or("not loaded")
                );
                Ok(true)
            }
            "save-model" => {
                let path = args
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| "vgg16.safetensors".into());
                model.save(&path, Dtype::F32)?;
                println!("wrote {path}");
                Ok(true)
            }
            other => {
                eprintln!("unknown command {other} (verify, bench, explain-once, save-model)");
                Ok(false)
            }
        }
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
