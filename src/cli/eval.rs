//! `sglrp eval`: the paper's quantitative evaluation (docs/evaluation.md) on a dataset with boxes. In `OUT/`:
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the settings; a rerun with other settings into the same folder is refused |
//! | `per_image.jsonl` | one line per evaluated image, appended as the run goes, with the content key of its manifest line: a rerun resumes with the lines whose sample is still in the dataset (and within `--limit`) unchanged |
//! | `per_image.csv` | the same, one row per image × method |
//! | `summary.json`, `summary.csv` | means over images per method, with standard errors and 95 % intervals, and the paired differences SGLRP − each other method (docs/evaluation.md §Statistics) |
//! | `masking_label.{png,svg}`, `masking_second.{png,svg}` | mean Δŷ_t against patch size (the paper's Fig. 11) |
//! | `pointing.{png,svg}` | pointing accuracy against energy (the paper's Fig. 13) |
//!
//! With `--shard K/N` the run is part K of N (README "Clusters (Slurm)"): its scores go to
//! `per_image.K-of-N.jsonl`, `eval_shard.K-of-N.json` notes that it has finished, and `sglrp merge`
//! writes the summary, tables and charts from all the shards.
//!
//! Samples that cannot be used — a manifest line that does not parse, a missing or undecodable
//! image, a box outside its image, a label the model does not know — are reported with their
//! file and line, skipped, and counted in `summary.json`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sglrp::backend::Backend;
use sglrp::backend::open::{Caps, OnBackend};
use sglrp::cluster::merge::{EVAL_RECORDS, write_eval_done};
use sglrp::cluster::{Shard, shard_file};
use sglrp::dataset::{self, Sample};
use sglrp::eval::report::write_results;
use sglrp::eval::{EvalConfig, EvalImage, ImageScores, evaluate};
use sglrp::explain::Network;
use sglrp::io::images::read_rgb;
use sglrp::io::write_atomic;
use sglrp::model::Model;
use sglrp::pipeline::{self, Compute, Flow, Options};

use super::device::{self, Devices};
use super::outdir;
use super::progress::Progress;
use super::record::model_hash;
use super::{EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, EvalArgs, load_model, report, usage};

/// The settings a results folder was made with.
#[derive(Clone, Debug, Serialize)]
struct Settings {
    model: String,
    /// A hash of the model file's bytes.
    model_hash: String,
    dataset: String,
    methods: Vec<String>,
    preset: String,
    gradcam_layer: String,
    patch_sizes: Vec<usize>,
    energies: Vec<f64>,
    seed: u64,
}

pub fn run(args: EvalArgs) -> u8 {
    try_run(args).unwrap_or_else(|code| code)
}

fn try_run(args: EvalArgs) -> Result<u8, u8> {
    let (model_path, model) =
        load_model(args.model.model.as_deref(), args.model.classes.as_deref())?;
    let (mut dataset, source) = usage(load_dataset(&args))?;
    dataset.check_classes(model.num_classes());
    for warning in &dataset.warnings {
        eprintln!("warning: {warning}");
    }
    let devices = usage(Devices::open(
        &args.model.device,
        args.model.threads,
        args.model.precision,
    ))?;
    let hash = usage(model_hash(&model_path))?;
    let methods: Vec<_> = args.method.iter().map(|m| m.method()).collect();
    let cfg = EvalConfig {
        methods,
        preset: args.preset,
        seed: args.seed,
        ..EvalConfig::default()
    };
    let gradcam_layer = usage(gradcam_layer_name(&model, args.gradcam_layer.as_deref()))?;
    let settings = Settings {
        model: model_path.display().to_string(),
        model_hash: hash,
        dataset: source,
        methods: cfg.methods.iter().map(|m| m.name().to_string()).collect(),
        preset: cfg.preset.to_string(),
        gradcam_layer: gradcam_layer.clone(),
        patch_sizes: cfg.patch_sizes.clone(),
        energies: cfg.energies.clone(),
        seed: cfg.seed,
    };
    let out = &args.out;
    let shard = args.shard;
    let _claimed = usage(outdir::claim(out, &outdir::lock_name(shard)))?;
    let samples: Vec<&Sample> = dataset
        .samples
        .iter()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let samples = shard.filter(samples, |s| s.content_key());
    let lines_path = out.join(shard_file(EVAL_RECORDS.0, EVAL_RECORDS.1, shard));
    let mut done = usage(resume(out, &settings, &samples, &lines_path))?;
    // Lines that name no sample are the first shard's to report.
    let mut skipped: Vec<String> = if shard.index() == 1 {
        dataset.skipped.clone()
    } else {
        Vec::new()
    };
    let todo: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| !done.contains_key(&s.content_key()))
        .collect();
    let batch_size = devices.batch_size(args.batch_size.map(usize::from));
    let heads = 2 * cfg.methods.len();
    usage(super::check_batch_memory(
        &model,
        batch_size,
        heads,
        &devices.caps,
    ))?;
    let progress = Progress::new(todo.len(), args.quiet);
    for reason in &skipped {
        progress.error(reason);
    }
    let job = EvalJob {
        model: &model,
        max_pixels: (args.max_megapixels * 1e6).max(1.0) as u64,
    };
    let mut write_error = None;
    let builder = BuildEvaluator {
        model: &model,
        cfg: &cfg,
        gradcam_layer: &gradcam_layer,
    };
    let result = pipeline::run(
        &job,
        &todo,
        devices.len(),
        |w| devices.run(w, builder)?,
        &Options::new(batch_size, device::host_threads(), devices.len()),
        |index, outcome| {
            progress.working_on(&todo[index].image.display().to_string());
            progress.advance(1);
            match outcome {
                Ok(scores) => {
                    let content = todo[index].content_key();
                    if let Err(e) = append_line(&lines_path, &content, &scores) {
                        write_error = Some(e);
                        return Flow::Stop;
                    }
                    done.insert(content, scores);
                }
                Err(reason) => {
                    progress.error(&reason);
                    skipped.push(reason);
                }
            }
            Flow::Continue
        },
    );
    progress.finish();
    if let Some(e) = result.err().or(write_error) {
        report(e);
        return Err(EXIT_USAGE);
    }
    // In the dataset's order, whichever run computed them.
    let done: Vec<ImageScores> = samples
        .iter()
        .filter_map(|s| done.remove(&s.content_key()))
        .collect();
    usage(finish(out, shard, done, &skipped, &cfg, args.quiet))?;
    if skipped.is_empty() {
        Ok(EXIT_OK)
    } else {
        Ok(EXIT_INPUTS_FAILED)
    }
}

fn load_dataset(args: &EvalArgs) -> Result<(dataset::Dataset, String), String> {
    match (&args.manifest, &args.voc) {
        (Some(manifest), None) => dataset::read_manifest(manifest)
            .map(|d| (d, manifest.display().to_string()))
            .map_err(|e| e.to_string()),
        (None, Some(boxes)) => {
            let (Some(images), Some(synsets)) = (&args.images, &args.synsets) else {
                return Err("--voc needs --images DIR and --synsets FILE".into());
            };
            let map = dataset::read_synsets(synsets).map_err(|e| e.to_string())?;
            dataset::read_voc(boxes, images, &map)
                .map(|d| (d, boxes.display().to_string()))
                .map_err(|e| e.to_string())
        }
        _ => Err("give either --manifest FILE or --voc DIR (with --images and --synsets)".into()),
    }
}

/// Grad-CAM's layer by name: `--gradcam-layer`, checked, or the model's last conv.
fn gradcam_layer_name(model: &Model, asked: Option<&str>) -> Result<String, String> {
    let names = model.layer_names();
    let convs: Vec<&String> = model
        .specs()
        .iter()
        .zip(&names)
        .filter(|(s, _)| matches!(s, sglrp::model::LayerSpec::Conv(_)))
        .map(|(_, n)| n)
        .collect();
    match asked {
        None => Ok(convs.last().map(|n| n.to_string()).unwrap_or_default()),
        Some(layer) if convs.iter().any(|n| *n == layer) => Ok(layer.to_string()),
        Some(layer) => Err(format!(
            "--gradcam-layer {layer}: not a conv layer of the model (its convs: {})",
            convs
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The evaluation's pass, built on whichever device a worker has.
#[derive(Clone, Copy)]
struct BuildEvaluator<'a> {
    model: &'a Model,
    cfg: &'a EvalConfig,
    gradcam_layer: &'a str,
}

impl<'a> OnBackend for BuildEvaluator<'a> {
    type Output = Result<Box<dyn Compute<Ready, ImageScores> + 'a>, String>;

    fn run<B: Backend + 'static>(self, backend: B, _: &Caps) -> Self::Output {
        let mut network = Network::new(backend, self.model).map_err(|e| e.to_string())?;
        network
            .set_gradcam_layer(self.gradcam_layer)
            .map_err(|e| e.to_string())?;
        let cfg = self.cfg;
        Ok(Box::new(move |batch: &[&Ready]| {
            let images: Vec<EvalImage> = batch
                .iter()
                .map(|r| EvalImage {
                    key: &r.key,
                    input: &r.input,
                    label: r.label,
                    inside: &r.inside,
                })
                .collect();
            evaluate(&network, &images, cfg).map_err(|e| e.to_string())
        }))
    }
}

/// Decoding and checking on host threads; the scores are the device's.
struct EvalJob<'a> {
    model: &'a Model,
    max_pixels: u64,
}

impl<'a> pipeline::Job for EvalJob<'a> {
    type Input = &'a Sample;
    type Prepared = Ready;
    type Computed = ImageScores;
    type Done = Result<ImageScores, String>;

    fn prepare(&self, sample: &&'a Sample) -> Result<Ready, String> {
        prepare(sample, self.model, self.max_pixels)
    }
    fn finish(&self, _: &&'a Sample, _: Ready, scores: ImageScores) -> Self::Done {
        Ok(scores)
    }
    fn failed(&self, sample: &&'a Sample, error: String) -> Self::Done {
        Err(if error.starts_with(&sample.source) {
            error
        } else {
            format!("{}: {error}", sample.source)
        })
    }
}

/// One sample, loaded and checked, ready for the network.
struct Ready {
    key: String,
    input: Vec<f32>,
    inside: Vec<bool>,
    label: usize,
}

/// The key naming a sample in the results: its image path.
fn key(sample: &Sample) -> String {
    sample.image.display().to_string()
}

/// Decodes, checks and pre-processes one sample.
fn prepare(sample: &Sample, model: &Model, max_pixels: u64) -> Result<Ready, String> {
    let classes = model.classes.len();
    if sample.label >= classes {
        return Err(format!(
            "{}: label {} is not a class of the model ({classes} classes)",
            sample.source, sample.label
        ));
    }
    let image =
        read_rgb(&sample.image, max_pixels).map_err(|e| format!("{}: {e}", sample.source))?;
    let (w, h) = image.dimensions();
    if let Some(b) = sample.boxes.iter().find(|b| b.x1 > w || b.y1 > h) {
        return Err(format!(
            "{}: box ({}, {})–({}, {}) lies outside the {w}×{h} image",
            sample.source, b.x0, b.y0, b.x1, b.y1
        ));
    }
    let side = model.input_side;
    let mut inside = vec![false; side * side];
    for b in sample.boxes.iter().filter(|b| b.label == sample.label) {
        if let Some([x0, y0, x1, y1]) =
            model
                .preprocess
                .map_rect((w, h), side, [b.x0, b.y0, b.x1, b.y1])
        {
            for y in y0..y1 {
                inside[y * side + x0..y * side + x1].fill(true);
            }
        }
    }
    Ok(Ready {
        key: key(sample),
        input: model.preprocess.prepare(&image, side),
        inside,
        label: sample.label,
    })
}

/// Reads the results of an earlier run into `out`, after checking it used the same settings:
/// the lines whose sample is among `samples` with the same content, by content key (a line cut
/// short by an interruption, or of a sample changed or left out since, is dropped and the file
/// rewritten without it). Creates `out` and `config.json` otherwise.
fn resume(
    out: &Path,
    settings: &Settings,
    samples: &[&Sample],
    lines: &Path,
) -> Result<HashMap<String, ImageScores>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("output folder {}: {e}", out.display());
    let config = out.join("config.json");
    let text = serde_json::to_string_pretty(settings).map_err(|e| fail(&e))?;
    match std::fs::read_to_string(&config) {
        Ok(earlier) if earlier != text => {
            return Err(fail(
                &"holds results made with other settings (config.json); use another --out",
            ));
        }
        Ok(_) => {}
        Err(_) => write_atomic(&config, text.as_bytes()).map_err(|e| fail(&e))?,
    }
    let wanted: std::collections::HashSet<String> =
        samples.iter().map(|s| s.content_key()).collect();
    let text = std::fs::read_to_string(lines).unwrap_or_default();
    let mut done = HashMap::new();
    let mut clean = String::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let content = value
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        let scores = serde_json::from_value::<ImageScores>(value);
        if let (Some(content), Ok(scores)) = (content, scores)
            && wanted.contains(&content)
            && !done.contains_key(&content)
        {
            clean += line;
            clean += "\n";
            done.insert(content, scores);
        }
    }
    write_atomic(lines, clean.as_bytes()).map_err(|e| fail(&e))?;
    Ok(done)
}

/// Appends one image's scores, with the content key of its sample, and syncs the file.
fn append_line(path: &Path, content: &str, scores: &ImageScores) -> Result<(), String> {
    let mut value = serde_json::to_value(scores).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        object.insert("content".into(), content.into());
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(format!("{value}\n").as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The results of a whole run; a shard's note that it has finished, for `sglrp merge`.
fn finish(
    out: &Path,
    shard: Shard,
    done: Vec<ImageScores>,
    skipped: &[String],
    cfg: &EvalConfig,
    quiet: bool,
) -> Result<(), String> {
    if !shard.is_whole() {
        write_eval_done(out, shard, done.len(), skipped)?;
        if !quiet {
            eprintln!(
                "shard {shard}: {} images evaluated, {} skipped; `sglrp merge {}` once every \
                 shard has finished",
                done.len(),
                skipped.len(),
                out.display()
            );
        }
        return Ok(());
    }
    let table = write_results(out, done, skipped.to_vec(), &cfg.patch_sizes, &cfg.energies)
        .map_err(|e| e.to_string())?;
    match super::print_stdout(&table) {
        Err(Some(e)) if !quiet => Err(e),
        _ => Ok(()),
    }
}
