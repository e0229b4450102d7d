//! `sglrp eval`: the paper's quantitative evaluation (docs/evaluation.md) on a dataset with boxes. In `OUT/`:
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the settings; a rerun with other settings into the same folder is refused |
//! | `per_image.jsonl` | one line per evaluated image, appended as the run goes: an interrupted run resumes after the last line |
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

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use sglrp::backend::Backend;
use sglrp::cluster::merge::{EVAL_RECORDS, write_eval_done};
use sglrp::cluster::{Shard, shard_file};
use sglrp::dataset::{self, Sample};
use sglrp::eval::report::write_results;
use sglrp::eval::{EvalConfig, EvalImage, ImageScores, evaluate};
use sglrp::explain::Network;
use sglrp::io::images::read_rgb;
use sglrp::io::write_atomic;
use sglrp::model::Model;

use super::progress::Progress;
use super::{EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, EvalArgs, device, load_model, report};

/// The settings a results folder was made with.
#[derive(Clone, Debug, Serialize)]
struct Settings {
    model: String,
    dataset: String,
    methods: Vec<String>,
    preset: String,
    gradcam_layer: String,
    patch_sizes: Vec<usize>,
    energies: Vec<f64>,
    seed: u64,
}

pub fn run(args: EvalArgs) -> u8 {
    let (model_path, model) = match load_model(args.model.model.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (mut dataset, source) = match load_dataset(&args) {
        Ok(d) => d,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    dataset.check_classes(model.num_classes());
    for warning in &dataset.warnings {
        eprintln!("warning: {warning}");
    }
    let backend = match device::select(args.model.device, args.model.threads) {
        Ok(b) => b,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    let methods: Vec<_> = args.method.iter().map(|m| m.method()).collect();
    let cfg = EvalConfig {
        methods,
        preset: args.preset,
        seed: args.seed,
        ..EvalConfig::default()
    };
    let batch_size = args
        .batch_size
        .map_or_else(|| backend.default_batch_size(), usize::from);
    backend.run(Eval {
        args: &args,
        model: &model,
        model_path,
        dataset,
        source,
        cfg,
        batch_size,
    })
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

struct Eval<'a> {
    args: &'a EvalArgs,
    model: &'a Model,
    model_path: PathBuf,
    dataset: dataset::Dataset,
    source: String,
    cfg: EvalConfig,
    /// Images per pass: `--batch-size`, else the device's default.
    batch_size: usize,
}

/// One sample, loaded and checked, ready for the network.
struct Ready {
    key: String,
    input: Vec<f32>,
    inside: Vec<bool>,
    label: usize,
}

impl device::OnBackend for Eval<'_> {
    type Output = u8;

    fn run<B: Backend>(self, backend: B) -> u8 {
        let args = self.args;
        let mut network = match Network::new(backend, self.model) {
            Ok(n) => n,
            Err(e) => {
                report(format!("{}: {e}", self.model_path.display()));
                return EXIT_USAGE;
            }
        };
        if let Some(layer) = &args.gradcam_layer
            && let Err(e) = network.set_gradcam_layer(layer)
        {
            report(e);
            return EXIT_USAGE;
        }
        let settings = Settings {
            model: self.model_path.display().to_string(),
            dataset: self.source.clone(),
            methods: self
                .cfg
                .methods
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
            preset: self.cfg.preset.to_string(),
            gradcam_layer: network.info().layer_names[network.gradcam_layer()].clone(),
            patch_sizes: self.cfg.patch_sizes.clone(),
            energies: self.cfg.energies.clone(),
            seed: self.cfg.seed,
        };
        let out = &args.out;
        let shard = args.shard;
        let lines_path = out.join(shard_file(EVAL_RECORDS.0, EVAL_RECORDS.1, shard));
        let mut done = match resume(out, &settings, &lines_path) {
            Ok(d) => d,
            Err(e) => {
                report(e);
                return EXIT_USAGE;
            }
        };
        // Lines that name no sample are the first shard's to report.
        let mut skipped: Vec<String> = if shard.index() == 1 {
            self.dataset.skipped.clone()
        } else {
            Vec::new()
        };
        let samples: Vec<&Sample> = self
            .dataset
            .samples
            .iter()
            .take(args.limit.unwrap_or(usize::MAX))
            .collect();
        let samples = shard.filter(samples, |s| s.content_key());
        let finished: HashSet<String> = done.iter().map(|s| s.image.clone()).collect();
        let todo: Vec<&Sample> = samples
            .iter()
            .copied()
            .filter(|s| !finished.contains(&key(s)))
            .collect();
        let progress = Progress::new(todo.len(), args.quiet);
        for reason in &skipped {
            progress.error(reason);
        }
        let max_pixels = (args.max_megapixels * 1e6).max(1.0) as u64;
        for batch in todo.chunks(self.batch_size) {
            progress.working_on(&batch[0].image.display().to_string());
            let prepared: Vec<Result<Ready, String>> = batch
                .par_iter()
                .map(|s| prepare(s, self.model, max_pixels))
                .collect();
            let mut ready = Vec::new();
            for p in prepared {
                match p {
                    Ok(r) => ready.push(r),
                    Err(reason) => {
                        progress.error(&reason);
                        skipped.push(reason);
                    }
                }
            }
            if !ready.is_empty() {
                let images: Vec<EvalImage> = ready
                    .iter()
                    .map(|r| EvalImage {
                        key: &r.key,
                        input: &r.input,
                        label: r.label,
                        inside: &r.inside,
                    })
                    .collect();
                match evaluate(&network, &images, &self.cfg) {
                    Ok(scores) => {
                        if let Err(e) = append_lines(&lines_path, &scores) {
                            report(e);
                            return EXIT_USAGE;
                        }
                        done.extend(scores);
                    }
                    Err(e) => {
                        for r in &ready {
                            let reason = format!("{}: {e}", r.key);
                            progress.error(&reason);
                            skipped.push(reason);
                        }
                    }
                }
            }
            progress.advance(batch.len());
        }
        progress.finish();
        if let Err(e) = finish(out, shard, done, &skipped, &self.cfg, args.quiet) {
            report(e);
            return EXIT_USAGE;
        }
        if skipped.is_empty() {
            EXIT_OK
        } else {
            EXIT_INPUTS_FAILED
        }
    }
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

/// Reads the results of an earlier run into `out` (its `lines` of scores), after checking it used
/// the same settings; a line cut short by an interruption is dropped. Creates `out` and
/// `config.json` otherwise.
fn resume(out: &Path, settings: &Settings, lines: &Path) -> Result<Vec<ImageScores>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("output folder {}: {e}", out.display());
    std::fs::create_dir_all(out).map_err(|e| fail(&e))?;
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
    let text = std::fs::read_to_string(lines).unwrap_or_default();
    let done: Vec<ImageScores> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Rewrite without any partial line, so that appends start on a fresh line.
    let clean: String = done
        .iter()
        .map(|s| serde_json::to_string(s).expect("scores serialise") + "\n")
        .collect();
    write_atomic(lines, clean.as_bytes()).map_err(|e| fail(&e))?;
    Ok(done)
}

fn append_lines(path: &Path, scores: &[ImageScores]) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text: String = scores
        .iter()
        .map(|s| serde_json::to_string(s).expect("scores serialise") + "\n")
        .collect();
    file.write_all(text.as_bytes())
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
    if !quiet {
        print!("{table}");
    }
    Ok(())
}
