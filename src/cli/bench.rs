//! `sglrp bench`: [`sglrp::bench`] on the chosen device, with a weights file or a random-weight
//! VGG16, on seeded random images. Prints the report and writes it as JSON with `--json`. With
//! `--end-to-end DIR`, also times `explain` over the images of DIR (decoding, the device and
//! writing every default output) and prints its images/s beside the kernel-only figure.

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use sglrp::backend::Backend;
use sglrp::backend::open::{Caps, OnBackend};
use sglrp::bench::{BenchOptions, BenchReport, bench, random_images, random_vgg16};
use sglrp::explain::Network;
use sglrp::model::Model;

use super::device::Devices;
use super::{
    BenchArgs, Cli, Command, EXIT_OK, EXIT_USAGE, check_writable, explain, inputs, load_model,
    print_or_exit, report, unique, write_json,
};

/// Seed of the random images (the same as benches/cuda.rs).
const SEED: u64 = 7;

pub fn run(args: BenchArgs) -> u8 {
    // End to end times real images through the model they are explained with.
    let model = match (&args.model, &args.end_to_end) {
        (Some(_), _) | (None, Some(_)) => match load_model(args.model.as_deref(), None) {
            Ok((_, model)) => model,
            Err(code) => return code,
        },
        (None, None) => match random_vgg16(args.side.into()) {
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
    let devices = match Devices::open(&args.device, args.threads, args.precision) {
        Ok(d) => d,
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
    let measured = devices.run(
        0,
        Measure {
            model: &model,
            options: &options,
        },
    );
    let bench_report = match measured.and_then(|r| r) {
        Ok(r) => r,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    if let Err(code) = print_or_exit(&bench_report.to_markdown()) {
        return code;
    }
    if let Some(Err(e)) = args
        .json
        .as_deref()
        .map(|path| write_json(path, &bench_report))
    {
        report(e);
        return EXIT_USAGE;
    }
    match &args.end_to_end {
        Some(dir) => end_to_end(dir, &args, &devices.caps, &bench_report),
        None => EXIT_OK,
    }
}

/// [`bench`] of the model on whichever device it runs; the device's timer times the layers.
struct Measure<'a> {
    model: &'a Model,
    options: &'a BenchOptions,
}

impl OnBackend for Measure<'_> {
    type Output = Result<BenchReport, String>;

    fn run<B: Backend + 'static>(self, backend: B, caps: &Caps) -> Self::Output {
        let net = Network::new(backend, self.model).map_err(|e| e.to_string())?;
        let images = |n: usize| random_images(self.model, n, SEED);
        let timer = net.backend().layer_timer();
        let mut report = bench(&net, &images, self.options, timer, caps.card.clone())
            .map_err(|e| e.to_string())?;
        report.hardware = caps.hardware.clone();
        Ok(report)
    }
}

/// Times `explain` over the images of `dir` into a temporary folder (removed afterwards) and
/// prints images/s beside the kernel-only figure of the same methods at the same batch size.
fn end_to_end(dir: &Path, args: &BenchArgs, caps: &Caps, kernel: &BenchReport) -> u8 {
    let dir_arg = dir.display().to_string();
    let images = inputs::expand(std::slice::from_ref(&dir_arg), None)
        .inputs
        .len();
    if images == 0 {
        report(format!("--end-to-end {dir_arg}: no images in it"));
        return EXIT_USAGE;
    }
    let out = std::env::temp_dir().join(format!("sglrp-bench-{}", std::process::id()));
    let batch = caps.preferred_batch;
    let methods: Vec<&str> = unique(&args.method).iter().map(|m| m.name()).collect();
    let mut argv = vec![
        "sglrp".to_string(),
        "explain".into(),
        dir_arg.clone(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
        "--device".into(),
        args.device.to_string(),
        "--method".into(),
        methods.join(","),
        "--preset".into(),
        args.preset.name().into(),
        "--batch-size".into(),
        batch.to_string(),
    ];
    if let Some(model) = &args.model {
        argv.extend(["--model".into(), model.display().to_string()]);
    }
    if let Some(threads) = args.threads {
        argv.extend(["--threads".into(), threads.to_string()]);
    }
    let Ok(Cli {
        command: Command::Explain(explain_args),
    }) = Cli::try_parse_from(&argv)
    else {
        report(format!(
            "--end-to-end: cannot form the explain command {argv:?}"
        ));
        return EXIT_USAGE;
    };
    let start = Instant::now();
    let code = explain::run(explain_args);
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    if code != EXIT_OK {
        report(format!(
            "--end-to-end {dir_arg}: explain failed (exit {code})"
        ));
        return code;
    }
    let end_to_end = images as f64 / seconds;
    let line = match kernel_images_per_s(kernel, &methods, batch) {
        Some((kernel_rate, at)) => format!(
            "\nend to end: {images} images of {dir_arg} through explain ({}, batch {batch}) on {}: \
             {end_to_end:.2} images/s; kernel only (batch {at}): {kernel_rate:.2} images/s; \
             end to end is {:.0} % of it\n",
            methods.join(", "),
            caps.name,
            100.0 * end_to_end / kernel_rate
        ),
        None => format!(
            "\nend to end: {images} images of {dir_arg} through explain on {}: {end_to_end:.2} images/s\n",
            caps.name
        ),
    };
    match print_or_exit(&line) {
        Ok(()) => EXIT_OK,
        Err(code) => code,
    }
}

/// Images/s of all `methods` on one image, from the benchmark's rows at the batch size closest to
/// `batch`: every method's time, less the forward pass that each row holds and `explain` runs
/// once for all of them.
fn kernel_images_per_s(
    report: &BenchReport,
    methods: &[&str],
    batch: usize,
) -> Option<(f64, usize)> {
    let at = report
        .rows
        .iter()
        .map(|r| r.batch)
        .min_by_key(|b| b.abs_diff(batch))?;
    let per_image = |pass: &str| {
        report
            .rows
            .iter()
            .find(|r| r.batch == at && r.pass == pass)
            .map(|r| 1.0 / r.images_per_s)
    };
    let forward = per_image("forward")?;
    let methods_time: f64 = methods.iter().map(|m| per_image(m)).sum::<Option<f64>>()?;
    let seconds = methods_time - forward * (methods.len().saturating_sub(1)) as f64;
    (seconds > 0.0).then(|| (1.0 / seconds, at))
}
