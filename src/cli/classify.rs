//! `sglrp classify`: the top-k classes per image, as text or JSON lines on stdout.

use rayon::prelude::*;
use sglrp::backend::Backend;
use sglrp::explain::Network;
use sglrp::io::images::read_rgb;
use sglrp::model::Model;

use super::inputs::{self, Input};
use super::progress::Progress;
use super::record::predictions;
use super::{ClassifyArgs, EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, device, load_model, report};

pub fn run(args: ClassifyArgs) -> u8 {
    let (_, model) = match load_model(args.model.model.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let backend = match device::select(args.model.device, args.model.threads, args.model.precision)
    {
        Ok(b) => b,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    let batch_size = args
        .input
        .batch_size
        .map_or_else(|| backend.default_batch_size(), |n| n as usize);
    backend.run(Classify {
        args: &args,
        model: &model,
        batch_size,
    })
}

struct Classify<'a> {
    args: &'a ClassifyArgs,
    model: &'a Model,
    batch_size: usize,
}

impl device::OnBackend for Classify<'_> {
    type Output = u8;

    fn run<B: Backend>(self, backend: B) -> u8 {
        let (args, model) = (self.args, self.model);
        let network = match Network::new(backend, model) {
            Ok(n) => n,
            Err(e) => {
                report(e);
                return EXIT_USAGE;
            }
        };
        let expanded = inputs::expand(&args.input.inputs, None);
        let progress = Progress::new(expanded.inputs.len(), args.input.quiet);
        let mut failed = expanded.errors.len();
        for e in &expanded.errors {
            progress.error(e);
        }
        let max_pixels = (args.input.max_megapixels * 1e6).max(1.0) as u64;
        for batch in expanded.inputs.chunks(self.batch_size) {
            progress.working_on(&batch[0].path.display().to_string());
            for (input, result) in batch
                .iter()
                .zip(classify_batch(&network, batch, max_pixels))
            {
                match result {
                    Ok(logits) => {
                        let line =
                            format_line(input, &logits, &model.classes, args.topk, args.json);
                        progress.println(&line);
                    }
                    Err(e) => {
                        failed += 1;
                        progress.error(e);
                    }
                }
            }
            progress.advance(batch.len());
        }
        progress.finish();
        if failed > 0 {
            EXIT_INPUTS_FAILED
        } else {
            EXIT_OK
        }
    }
}

/// The logits of each image of a batch, or the error that stopped it.
fn classify_batch<B: Backend>(
    network: &Network<B>,
    batch: &[Input],
    max_pixels: u64,
) -> Vec<Result<Vec<f32>, String>> {
    let info = network.info();
    let prepared: Vec<Result<Vec<f32>, String>> = batch
        .par_iter()
        .map(|input| {
            read_rgb(&input.path, max_pixels)
                .map(|img| info.preprocess.prepare(&img, info.input_side))
                .map_err(|e| e.to_string())
        })
        .collect();
    let ok: Vec<&Vec<f32>> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
    let joined: Vec<f32> = ok.iter().flat_map(|v| v.iter().copied()).collect();
    let mut logits = if ok.is_empty() {
        Vec::new()
    } else {
        match network.classify(&joined) {
            Ok(l) => l.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e.to_string()); ok.len()],
        }
    }
    .into_iter();
    prepared
        .into_iter()
        .zip(batch)
        .map(|(p, input)| match p {
            Ok(_) => logits
                .next()
                .unwrap_or_else(|| Err("no result".into()))
                .map_err(|e| format!("{}: {e}", input.path.display())),
            Err(e) => Err(e),
        })
        .collect()
}

/// `path<TAB>Bag 0.831<TAB>Dress 0.102 …` or a JSON object.
fn format_line(input: &Input, logits: &[f32], classes: &[String], k: u32, json: bool) -> String {
    let top = predictions(logits, classes, k as usize);
    if json {
        serde_json::json!({ "input": input.path.display().to_string(), "predictions": top })
            .to_string()
    } else {
        let classes: Vec<String> = top
            .iter()
            .map(|p| format!("{} {:.3}", p.name, p.probability))
            .collect();
        format!("{}\t{}", input.path.display(), classes.join("\t"))
    }
}
