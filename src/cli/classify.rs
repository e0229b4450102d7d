//! `sglrp classify`: the top-k classes per image, as text or JSON lines on stdout, in input
//! order, on [`sglrp::pipeline`]. A closed stdout (`| head -1`) stops the run quietly.

use std::marker::PhantomData;

use sglrp::backend::Backend;
use sglrp::backend::open::{Caps, OnBackend};
use sglrp::explain::Network;
use sglrp::io::images::read_rgb;
use sglrp::model::Model;
use sglrp::pipeline::network::{Classifier, ItemResult, NetworkInput};
use sglrp::pipeline::{self, Compute, Flow, Options};

use super::device::{self, Devices};
use super::inputs::{self, Input, key_id};
use super::progress::Progress;
use super::record::predictions;
use super::{
    ClassifyArgs, EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, load_model, probability_digits, report,
    usage,
};

pub fn run(args: ClassifyArgs) -> u8 {
    try_run(args).unwrap_or_else(|code| code)
}

fn try_run(args: ClassifyArgs) -> Result<u8, u8> {
    let (_, model) = load_model(args.model.model.as_deref(), args.model.classes.as_deref())?;
    let devices = usage(Devices::open(
        &args.model.device,
        args.model.threads,
        args.model.precision,
    ))?;
    let mut expanded = inputs::expand(&args.input.inputs, None);
    if expanded.inputs.is_empty() {
        for e in &expanded.errors {
            report(e);
        }
        report("no images to classify");
        return Err(EXIT_USAGE);
    }
    expanded.inputs = args.input.shard.filter(expanded.inputs, |i| key_id(&i.key));
    let batch_size = devices.batch_size(args.input.batch_size.map(|n| n as usize));
    usage(super::check_batch_memory(
        &model,
        batch_size,
        0,
        &devices.caps,
    ))?;
    let progress = Progress::new(expanded.inputs.len(), args.input.quiet);
    let mut failed = expanded.errors.len();
    for e in &expanded.errors {
        progress.error(e);
    }
    let job = Classify {
        args: &args,
        model: &model,
        max_pixels: (args.input.max_megapixels * 1e6).max(1.0) as u64,
    };
    let mut stdout_closed = false;
    let result = pipeline::run(
        &job,
        &expanded.inputs,
        devices.len(),
        |w| {
            devices.run(
                w,
                BuildClassifier::<Vec<f32>> {
                    model: &model,
                    kind: PhantomData,
                },
            )?
        },
        &Options::new(batch_size, device::host_threads(), devices.len()),
        |index, outcome| {
            progress.working_on(&expanded.inputs[index].path.display().to_string());
            progress.advance(1);
            match outcome {
                Ok(line) => match progress.println(&line) {
                    Ok(()) => Flow::Continue,
                    Err(why) => {
                        if let Some(why) = why {
                            progress.error(why);
                        }
                        stdout_closed = true;
                        Flow::Stop
                    }
                },
                Err(e) => {
                    failed += 1;
                    progress.error(e);
                    Flow::Continue
                }
            }
        },
    );
    progress.finish();
    usage(result)?;
    if failed > 0 || stdout_closed {
        Ok(EXIT_INPUTS_FAILED)
    } else {
        Ok(EXIT_OK)
    }
}

struct Classify<'a> {
    args: &'a ClassifyArgs,
    model: &'a Model,
    max_pixels: u64,
}

impl pipeline::Job for Classify<'_> {
    type Input = Input;
    type Prepared = Vec<f32>;
    type Computed = ItemResult<Vec<f32>>;
    /// The line to print, or the error.
    type Done = Result<String, String>;

    fn prepare(&self, input: &Input) -> Result<Vec<f32>, String> {
        read_rgb(&input.path, self.max_pixels)
            .map(|img| self.model.preprocess.prepare(&img, self.model.input_side))
            .map_err(|e| e.to_string())
    }

    fn finish(&self, input: &Input, _: Vec<f32>, logits: ItemResult<Vec<f32>>) -> Self::Done {
        logits
            .map(|l| {
                format_line(
                    input,
                    &l,
                    &self.model.classes,
                    self.args.topk,
                    self.args.json,
                )
            })
            .map_err(|e| format!("{}: {e}", input.path.display()))
    }

    fn failed(&self, input: &Input, error: String) -> Self::Done {
        let path = input.path.display().to_string();
        Err(if error.starts_with(&path) {
            error
        } else {
            format!("{path}: {error}")
        })
    }
}

/// The classifier, built on whichever device a worker has.
struct BuildClassifier<'a, P> {
    model: &'a Model,
    kind: PhantomData<fn() -> P>,
}

impl<'a, P: NetworkInput + 'a> OnBackend for BuildClassifier<'a, P> {
    type Output = Result<Box<dyn Compute<P, ItemResult<Vec<f32>>> + 'a>, String>;

    fn run<B: Backend + 'static>(self, backend: B, _: &Caps) -> Self::Output {
        let network = Network::new(backend, self.model).map_err(|e| e.to_string())?;
        Ok(Box::new(Classifier { network }))
    }
}

/// `path<TAB>Bag 0.831<TAB>Dress 0.102 …` or a JSON object.
fn format_line(input: &Input, logits: &[f32], classes: &[String], k: u32, json: bool) -> String {
    let top = predictions(logits, classes, k as usize);
    if json {
        serde_json::json!({ "input": input.path.display().to_string(), "predictions": top })
            .to_string()
    } else {
        let digits = probability_digits(classes.len());
        let classes: Vec<String> = top
            .iter()
            .map(|p| format!("{} {:.*}", p.name, digits, p.probability))
            .collect();
        format!("{}\t{}", input.path.display(), classes.join("\t"))
    }
}
