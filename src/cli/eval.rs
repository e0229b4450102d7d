//! `sglrp eval`: the paper's quantitative evaluation (docs/evaluation.md) on a dataset with boxes. In `OUT/`:
//!
//! | file | what |
//! |---|---|
//! | `config.json` | the settings; a rerun with other settings into the same folder is refused |
//! | `per_image.jsonl` | one line per evaluated image, appended as the run goes: an interrupted run resumes after the last line |
//! | `per_image.csv` | the same, one row per image × method |
//! | `summary.json`, `summary.csv` | means over images, per method |
//! | `masking_label.{png,svg}`, `masking_second.{png,svg}` | mean Δŷ_t against patch size (the paper's Fig. 11) |
//! | `pointing.{png,svg}` | pointing accuracy against energy (the paper's Fig. 13) |
//!
//! Samples that cannot be used — a manifest line that does not parse, a missing or undecodable
//! image, a box outside its image, a label the model does not know — are reported with their
//! file and line, skipped, and counted in `summary.json`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use sglrp::backend::Backend;
use sglrp::dataset::{self, Sample};
use sglrp::eval::{EvalConfig, EvalImage, ImageScores, MethodScores, evaluate, means};
use sglrp::explain::Network;
use sglrp::io::images::read_rgb;
use sglrp::io::write_atomic;
use sglrp::model::Model;
use sglrp::render::chart::{Chart, Series, write_chart};

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

/// Means over images and what was left out, as `summary.json` has them.
#[derive(Serialize)]
struct Summary<'a> {
    images: usize,
    skipped: usize,
    skipped_reasons: &'a [String],
    patch_sizes: &'a [usize],
    energies: &'a [f64],
    methods: Vec<MethodScores>,
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
    let backend = match device::select(args.model.device, args.model.threads, args.model.precision)
    {
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
        let mut done = match resume(out, &settings) {
            Ok(d) => d,
            Err(e) => {
                report(e);
                return EXIT_USAGE;
            }
        };
        let mut skipped: Vec<String> = self.dataset.skipped.clone();
        let samples: Vec<&Sample> = self
            .dataset
            .samples
            .iter()
            .take(args.limit.unwrap_or(usize::MAX))
            .collect();
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
        let lines_path = out.join("per_image.jsonl");
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
        if let Err(e) = write_results(out, &done, &skipped, &self.cfg, args.quiet) {
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

/// Reads the results of an earlier run into `out`, after checking it used the same settings;
/// a line cut short by an interruption is dropped. Creates `out` and `config.json` otherwise.
fn resume(out: &Path, settings: &Settings) -> Result<Vec<ImageScores>, String> {
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
    let lines = out.join("per_image.jsonl");
    let text = std::fs::read_to_string(&lines).unwrap_or_default();
    let done: Vec<ImageScores> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Rewrite without any partial line, so that appends start on a fresh line.
    let clean: String = done
        .iter()
        .map(|s| serde_json::to_string(s).expect("scores serialise") + "\n")
        .collect();
    write_atomic(&lines, clean.as_bytes()).map_err(|e| fail(&e))?;
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

/// The summary, the CSV tables and the charts.
fn write_results(
    out: &Path,
    scores: &[ImageScores],
    skipped: &[String],
    cfg: &EvalConfig,
    quiet: bool,
) -> Result<(), String> {
    let mean = means(scores);
    let summary = Summary {
        images: scores.len(),
        skipped: skipped.len(),
        skipped_reasons: skipped,
        patch_sizes: &cfg.patch_sizes,
        energies: &cfg.energies,
        methods: mean.clone(),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    write_atomic(&out.join("summary.json"), json.as_bytes()).map_err(|e| e.to_string())?;
    write_atomic(&out.join("summary.csv"), summary_csv(&mean, cfg).as_bytes())
        .map_err(|e| e.to_string())?;
    write_atomic(
        &out.join("per_image.csv"),
        per_image_csv(scores, cfg).as_bytes(),
    )
    .map_err(|e| e.to_string())?;

    let curves = |pick: &dyn Fn(&MethodScores) -> &Vec<f64>, xs: &[f64]| -> Vec<Series> {
        mean.iter()
            .map(|m| Series {
                label: title(&m.method),
                points: xs.iter().copied().zip(pick(m).iter().copied()).collect(),
            })
            .collect()
    };
    let sizes: Vec<f64> = cfg.patch_sizes.iter().map(|&p| p as f64).collect();
    let energies: Vec<f64> = cfg.energies.iter().map(|e| e * 100.0).collect();
    let n = scores.len();
    let charts = [
        (
            "masking_label",
            format!("Maximal patch masking, t = ground truth ({n} images)"),
            "patch size p",
            "mean Δŷ_t",
            curves(&|m| &m.masking_label, &sizes),
        ),
        (
            "masking_second",
            format!("Maximal patch masking, t = second most probable ({n} images)"),
            "patch size p",
            "mean Δŷ_t",
            curves(&|m| &m.masking_second, &sizes),
        ),
        (
            "pointing",
            format!("Pointing game with energy ({n} images)"),
            "energy E (%)",
            "mean accuracy",
            curves(&|m| &m.pointing, &energies),
        ),
    ];
    for (stem, chart_title, x_label, y_label, series) in &charts {
        let chart = Chart {
            title: chart_title,
            x_label,
            y_label,
            series,
        };
        write_chart(&out.join(stem), &chart).map_err(|e| e.to_string())?;
    }
    if !quiet {
        print!("{}", table(&mean, cfg, n, skipped.len()));
    }
    Ok(())
}

fn title(name: &str) -> String {
    name.parse::<sglrp::explain::Method>()
        .map(|m| m.title().to_string())
        .unwrap_or_else(|_| name.to_string())
}

fn summary_csv(mean: &[MethodScores], cfg: &EvalConfig) -> String {
    let mut csv = String::from("method,metric,parameter,mean\n");
    for m in mean {
        for (k, p) in cfg.patch_sizes.iter().enumerate() {
            csv += &format!("{},masking_label,{p},{}\n", m.method, m.masking_label[k]);
            csv += &format!("{},masking_second,{p},{}\n", m.method, m.masking_second[k]);
        }
        for (k, e) in cfg.energies.iter().enumerate() {
            csv += &format!("{},pointing,{e:.2},{}\n", m.method, m.pointing[k]);
        }
    }
    csv
}

fn per_image_csv(scores: &[ImageScores], cfg: &EvalConfig) -> String {
    let mut header = vec![
        "image".to_string(),
        "label".into(),
        "predicted".into(),
        "second".into(),
        "method".into(),
    ];
    header.extend(
        cfg.patch_sizes
            .iter()
            .map(|p| format!("masking_label_p{p}")),
    );
    header.extend(
        cfg.patch_sizes
            .iter()
            .map(|p| format!("masking_second_p{p}")),
    );
    header.extend(
        cfg.energies
            .iter()
            .map(|e| format!("pointing_e{:.0}", e * 100.0)),
    );
    let mut csv = header.join(",") + "\n";
    for s in scores {
        for m in &s.methods {
            let values = m
                .masking_label
                .iter()
                .chain(&m.masking_second)
                .chain(&m.pointing);
            let row: Vec<String> = [
                csv_field(&s.image),
                s.label.to_string(),
                s.predicted.to_string(),
                s.second.to_string(),
                m.method.clone(),
            ]
            .into_iter()
            .chain(values.map(|v| v.to_string()))
            .collect();
            csv += &(row.join(",") + "\n");
        }
    }
    csv
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The table printed at the end: mean Δŷ_t per patch size for both targets, and the pointing
/// accuracy at a few energies.
fn table(mean: &[MethodScores], cfg: &EvalConfig, images: usize, skipped: usize) -> String {
    let mut text = format!("{images} images evaluated, {skipped} skipped\n\n");
    let sizes: Vec<String> = cfg
        .patch_sizes
        .iter()
        .map(|p| format!("p={p:<6}"))
        .collect();
    for (label, pick) in [
        (
            "mean Δŷ_t, t = ground truth",
            (|m: &MethodScores| m.masking_label.clone()) as fn(&MethodScores) -> Vec<f64>,
        ),
        (
            "mean Δŷ_t, t = second most probable",
            |m: &MethodScores| m.masking_second.clone(),
        ),
    ] {
        text += &format!("{label}\n{:<18}{}\n", "", sizes.join(" "));
        for m in mean {
            let row: Vec<String> = pick(m).iter().map(|v| format!("{v:+.4}  ")).collect();
            text += &format!("{:<18}{}\n", title(&m.method), row.join(" "));
        }
        text += "\n";
    }
    let shown: BTreeMap<usize, String> = cfg
        .energies
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            [0.05, 0.25, 0.5, 0.75, 1.0]
                .iter()
                .any(|x| (*x - **e).abs() < 1e-9)
        })
        .map(|(k, e)| (k, format!("E={:<5}", format!("{:.0}%", e * 100.0))))
        .collect();
    text += &format!(
        "pointing accuracy\n{:<18}{}\n",
        "",
        shown.values().cloned().collect::<Vec<_>>().join("  ")
    );
    for m in mean {
        let row: Vec<String> = shown
            .keys()
            .map(|&k| format!("{:.4} ", m.pointing[k]))
            .collect();
        text += &format!("{:<18}{}\n", title(&m.method), row.join("  "));
    }
    text
}
