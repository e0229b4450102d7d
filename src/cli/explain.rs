//! `sglrp explain`: the batch loop. Per image, in `OUT/<key>/` (see [`super::inputs`] for keys):
//!
//! | file | format | what |
//! |---|---|---|
//! | `<method>_<target>.png` | `png` | heatmap (docs/method.md §Heatmaps), one pixel per network input pixel |
//! | `<method>_<target>_overlay.png` | `overlay` | the heatmap over a grey copy of the network's view of the image |
//! | `<method>_<target>.npy` | `npy` | signed input relevance, `(3, H, W)` f32, channels in the model's order |
//! | `grid.png` | `grid` | input \| one column per method, one row per target, captioned |
//! | `result.json` | `json` | predictions, targets, relevance sums, output paths |
//!
//! `<target>` is `top1`, `top2`, … or `class<index>`. `OUT/summary.jsonl` gets one line per image
//! of the run (the `result.json` record, with `status` ok, skipped or error), rewritten atomically
//! at the end of the run. Every file is written through a temporary file and a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use sglrp::backend::Backend;
use sglrp::explain::{ImageResult, Network, Preset, Request, ranking};
use sglrp::io::images::{read_rgb, write_png};
use sglrp::io::npy::write_npy;
use sglrp::io::write_atomic;
use sglrp::model::{Channels, Model};
use sglrp::render::{self, ColorMap, GridRow};

use super::inputs::{self, Input};
use super::progress::Progress;
use super::record::{ExplanationRecord, ImageRecord, predictions};
use super::targets::{self, TargetSpec};
use super::{
    EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, ExplainArgs, Format, MethodArg, device, io_reason,
    load_model, report, unique,
};

/// Everything the batch loop needs, fixed for the run.
struct Job {
    out: PathBuf,
    model_path: PathBuf,
    methods: Vec<MethodArg>,
    targets: Vec<TargetSpec>,
    formats: Vec<Format>,
    preset: Preset,
    cmap: ColorMap,
    overwrite: bool,
    batch_size: usize,
    max_pixels: u64,
    side: usize,
    classes: Vec<String>,
    channels: Channels,
}

/// The files planned for one image.
struct Plan {
    dir: PathBuf,
    /// Per explanation (target-major, then method): its files by format.
    files: Vec<BTreeMap<&'static str, PathBuf>>,
    grid: Option<PathBuf>,
    json: Option<PathBuf>,
}

/// An image decoded and resized to the network's view, with its size on file.
type Decoded = (RgbImage, (u32, u32));

/// How one image ended.
enum Outcome {
    Done(ImageRecord),
    Skipped(ImageRecord),
    Failed(ImageRecord),
}

pub fn run(args: ExplainArgs) -> u8 {
    let (model_path, model) = match load_model(args.model.model.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let targets = match targets::parse_all(&args.target, &model.classes) {
        Ok(t) => t,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    let backend = match device::select(args.model.device, args.model.threads, args.model.precision)
    {
        Ok(b) => b,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    if let Err(e) = prepare_output_folder(&args.out) {
        report(format!("output folder {}: {e}", args.out.display()));
        return EXIT_USAGE;
    }
    let batch_size = args
        .input
        .batch_size
        .map_or_else(|| backend.default_batch_size(), |n| n as usize);
    let job = Job::new(&args, model_path, &model, targets, batch_size);
    backend.run(Explain {
        job,
        model: &model,
        inputs: &args.input.inputs,
        quiet: args.input.quiet,
    })
}

/// The run, once the model, targets, device and output folder are known.
struct Explain<'a> {
    job: Job,
    model: &'a Model,
    inputs: &'a [String],
    quiet: bool,
}

impl device::OnBackend for Explain<'_> {
    type Output = u8;

    fn run<B: Backend>(self, backend: B) -> u8 {
        let job = self.job;
        let network = match Network::new(backend, self.model) {
            Ok(n) => n,
            Err(e) => {
                report(format!("{}: {e}", job.model_path.display()));
                return EXIT_USAGE;
            }
        };
        let expanded = inputs::expand(self.inputs, Some(&job.out));
        let progress = Progress::new(expanded.inputs.len(), self.quiet);
        for e in &expanded.errors {
            progress.error(e);
        }
        let outcomes = job.run_all(&network, &expanded.inputs, &progress);
        progress.finish();

        let mut failed = expanded.errors.len();
        let (mut done, mut skipped) = (0, 0);
        let lines: Vec<String> = outcomes
            .iter()
            .map(|o| {
                let record = match o {
                    Outcome::Done(r) => {
                        done += 1;
                        r
                    }
                    Outcome::Skipped(r) => {
                        skipped += 1;
                        r
                    }
                    Outcome::Failed(r) => {
                        failed += 1;
                        r
                    }
                };
                serde_json::to_string(record).unwrap_or_default()
            })
            .collect();
        if !lines.is_empty() {
            let summary = job.out.join("summary.jsonl");
            let text = lines.join("\n") + "\n";
            if let Err(e) = write_atomic(&summary, text.as_bytes()) {
                report(e);
                failed += 1;
            }
        }
        if !self.quiet {
            eprintln!(
                "{} image{} → {}: {done} explained, {skipped} skipped (outputs exist; \
                 --overwrite recomputes), {failed} failed",
                outcomes.len(),
                if outcomes.len() == 1 { "" } else { "s" },
                job.out.display(),
            );
        }
        if failed > 0 {
            EXIT_INPUTS_FAILED
        } else {
            EXIT_OK
        }
    }
}

/// Creates the output folder and checks that a file can be written in it.
fn prepare_output_folder(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let probe = out.join(".sglrp-write-check");
    write_atomic(&probe, b"").map_err(io_reason)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A path relative to the output folder, with `/` separators, for the JSON records.
fn relative(out: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(out).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Job {
    fn new(
        args: &ExplainArgs,
        model_path: PathBuf,
        model: &Model,
        targets: Vec<TargetSpec>,
        batch_size: usize,
    ) -> Job {
        Job {
            out: args.out.clone(),
            model_path,
            methods: unique(&args.method),
            targets,
            formats: unique(&args.format),
            preset: args.preset,
            cmap: args.cmap,
            overwrite: args.overwrite,
            batch_size,
            max_pixels: (args.input.max_megapixels * 1e6).max(1.0) as u64,
            side: model.input_side,
            classes: model.classes.clone(),
            channels: model.preprocess.channels,
        }
    }

    fn wants(&self, format: Format) -> bool {
        self.formats.contains(&format)
    }

    /// The requests for one image: target-major, then method.
    fn requests(&self) -> Vec<Request> {
        self.targets
            .iter()
            .flat_map(|t| {
                self.methods
                    .iter()
                    .map(move |m| Request::new(m.method(), t.target))
            })
            .collect()
    }

    fn plan(&self, input: &Input) -> Plan {
        let dir = self.out.join(&input.key);
        let files = self
            .targets
            .iter()
            .flat_map(|t| self.methods.iter().map(move |m| (t, m)))
            .map(|(t, m)| {
                let stem = format!("{}_{}", m.name(), t.label);
                let mut files = BTreeMap::new();
                if self.wants(Format::Png) {
                    files.insert("png", dir.join(format!("{stem}.png")));
                }
                if self.wants(Format::Overlay) {
                    files.insert("overlay", dir.join(format!("{stem}_overlay.png")));
                }
                if self.wants(Format::Npy) {
                    files.insert("npy", dir.join(format!("{stem}.npy")));
                }
                files
            })
            .collect();
        Plan {
            grid: self.wants(Format::Grid).then(|| dir.join("grid.png")),
            json: self.wants(Format::Json).then(|| dir.join("result.json")),
            files,
            dir,
        }
    }

    /// Processes every input in batches; one outcome per input, in order.
    fn run_all<B: Backend>(
        &self,
        network: &Network<B>,
        inputs: &[Input],
        progress: &Progress,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = (0..inputs.len()).map(|_| None).collect();
        let mut pending = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let plan = self.plan(input);
            if !self.overwrite && plan.complete() {
                outcomes[i] = Some(Outcome::Skipped(self.skipped_record(input, &plan)));
                progress.advance(1);
            } else {
                pending.push(i);
            }
        }
        for batch in pending.chunks(self.batch_size) {
            let names: Vec<String> = batch
                .iter()
                .map(|&i| inputs[i].path.display().to_string())
                .collect();
            progress.working_on(&names.join(", "));
            let results = self.process_batch(network, batch.iter().map(|&i| &inputs[i]).collect());
            for (&i, outcome) in batch.iter().zip(results) {
                if let Outcome::Failed(record) = &outcome {
                    progress.error(record.error.as_deref().unwrap_or("failed"));
                }
                outcomes[i] = Some(outcome);
            }
            progress.advance(batch.len());
        }
        outcomes.into_iter().flatten().collect()
    }

    /// Decodes, explains and writes one batch. A decoding failure fails that image only; a
    /// failure of the batch's pass is retried image by image, so that it names the image.
    fn process_batch<B: Backend>(&self, network: &Network<B>, batch: Vec<&Input>) -> Vec<Outcome> {
        let pre = &network.info().preprocess;
        let decoded: Vec<Result<Decoded, String>> = batch
            .par_iter()
            .map(|input| {
                read_rgb(&input.path, self.max_pixels)
                    .map(|img| {
                        let size = img.dimensions();
                        (pre.resize(&img, self.side), size)
                    })
                    .map_err(|e| e.to_string())
            })
            .collect();
        let ok: Vec<usize> = (0..batch.len()).filter(|&i| decoded[i].is_ok()).collect();
        let views: Vec<&RgbImage> = ok
            .iter()
            .filter_map(|&i| decoded[i].as_ref().ok().map(|(v, _)| v))
            .collect();
        let results = self.explain(network, &views);

        let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
        for (i, d) in decoded.iter().enumerate() {
            if let Err(e) = d {
                outcomes[i] = Some(self.failed_record(batch[i], e.clone()));
            }
        }
        let written: Vec<(usize, Outcome)> = ok
            .par_iter()
            .zip(results)
            .map(|(&i, result)| {
                let (view, size) = decoded[i].as_ref().expect("only decoded images are here");
                let outcome = match result {
                    Ok(result) => match self.write_outputs(batch[i], view, *size, &result) {
                        Ok(record) => Outcome::Done(record),
                        Err(e) => self.failed_record(batch[i], e),
                    },
                    Err(e) => self.failed_record(batch[i], e),
                };
                (i, outcome)
            })
            .collect();
        for (i, outcome) in written {
            outcomes[i] = Some(outcome);
        }
        outcomes.into_iter().flatten().collect()
    }

    /// One pass for the whole batch; if it fails, one pass per image.
    fn explain<B: Backend>(
        &self,
        network: &Network<B>,
        views: &[&RgbImage],
    ) -> Vec<Result<ImageResult, String>> {
        if views.is_empty() {
            return Vec::new();
        }
        let pre = &network.info().preprocess;
        let prepare = |view: &RgbImage| {
            let rgb: Vec<f32> = view.as_raw().iter().map(|&v| f32::from(v)).collect();
            pre.normalize(&rgb)
        };
        let requests = self.requests();
        let input: Vec<f32> = views.iter().flat_map(|v| prepare(v)).collect();
        match network.explain_each(&input, &requests, self.preset) {
            Ok(results) if results.len() == views.len() => results.into_iter().map(Ok).collect(),
            _ if views.len() > 1 => views
                .iter()
                .map(|v| {
                    network
                        .explain_each(&prepare(v), &requests, self.preset)
                        .map_err(|e| e.to_string())
                        .and_then(|mut r| r.pop().ok_or_else(|| "no result".to_string()))
                })
                .collect(),
            Ok(_) => vec![Err("the network returned no result".into())],
            Err(e) => vec![Err(e.to_string())],
        }
    }

    /// Writes every planned file of one image and returns its record.
    fn write_outputs(
        &self,
        input: &Input,
        view: &RgbImage,
        size: (u32, u32),
        result: &ImageResult,
    ) -> Result<ImageRecord, String> {
        let plan = self.plan(input);
        std::fs::create_dir_all(&plan.dir).map_err(|e| format!("{}: {e}", plan.dir.display()))?;
        let side = self.side as u32;
        let order = ranking(&result.logits);
        let rank_of = |class: usize| order.iter().position(|&c| c == class).map_or(0, |r| r + 1);
        let mut explanations = Vec::new();
        let mut heatmaps = Vec::new();
        for (e, files) in result.explanations.iter().zip(&plan.files) {
            let map = render::display_map(&e.relevance, e.channels);
            let heat = render::colorize(&map, side, side, self.cmap);
            if let Some(path) = files.get("png") {
                write_png(path, &heat).map_err(|e| e.to_string())?;
            }
            if let Some(path) = files.get("overlay") {
                write_png(path, &render::overlay(view, &map, self.cmap))
                    .map_err(|e| e.to_string())?;
            }
            if let Some(path) = files.get("npy") {
                write_npy(
                    path,
                    &[e.channels as u64, side as u64, side as u64],
                    &e.relevance,
                )
                .map_err(|e| e.to_string())?;
            }
            heatmaps.push(heat);
            let sum = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
            explanations.push((e, files, sum(&e.relevance), sum(&e.head)));
        }
        let n_methods = self.methods.len();
        if let Some(path) = &plan.grid {
            let rows: Vec<GridRow> = self
                .targets
                .iter()
                .enumerate()
                .map(|(t, spec)| {
                    let class = result.explanations[t * n_methods].target;
                    GridRow {
                        caption: self.caption(
                            spec,
                            class,
                            result.probabilities[class],
                            rank_of(class),
                        ),
                        cells: heatmaps[t * n_methods..][..n_methods].to_vec(),
                    }
                })
                .collect();
            let headers: Vec<String> = self.methods.iter().map(|m| m.title().to_string()).collect();
            let title = format!(
                "{}  ·  {} preset  ·  {}",
                input.path.display(),
                self.preset,
                self.cmap
            );
            let grid = render::comparison_grid(Some(&title), view, &headers, &rows);
            write_png(path, &grid).map_err(|e| e.to_string())?;
        }

        let explanation_records: Vec<ExplanationRecord> = explanations
            .iter()
            .enumerate()
            .map(
                |(j, (e, files, relevance_sum, head_sum))| ExplanationRecord {
                    method: self.methods[j % n_methods].name().into(),
                    target: self.targets[j / n_methods].label.clone(),
                    class: e.target,
                    name: self.classes[e.target].clone(),
                    probability: result.probabilities[e.target],
                    rank: rank_of(e.target),
                    head_sum: *head_sum,
                    relevance_sum: *relevance_sum,
                    positive_sum: e.relevance.iter().map(|&x| f64::from(x.max(0.0))).sum(),
                    max_abs: e.relevance.iter().fold(0.0f32, |m, v| m.max(v.abs())),
                    files: files
                        .iter()
                        .map(|(k, p)| (k.to_string(), relative(&self.out, p)))
                        .collect(),
                },
            )
            .collect();
        let record = ImageRecord {
            input: input.path.display().to_string(),
            status: "ok".into(),
            error: None,
            output_dir: Some(relative(&self.out, &plan.dir)),
            image_size: Some([size.0, size.1]),
            model: Some(self.model_path.display().to_string()),
            model_input: Some([self.side, self.side]),
            channels: Some(
                match self.channels {
                    Channels::Rgb => "rgb",
                    Channels::Bgr => "bgr",
                }
                .into(),
            ),
            preset: Some(self.preset.name().into()),
            predictions: predictions(&result.logits, &self.classes, 5),
            explanations: explanation_records,
            grid: plan.grid.as_ref().map(|p| relative(&self.out, p)),
        };
        if let Some(path) = &plan.json {
            let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())? + "\n";
            write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())?;
        }
        Ok(record)
    }

    /// `target top1: Bag, p = 0.831` or `target class 5: Sandal, p = 0.021 (rank 3)`.
    fn caption(&self, spec: &TargetSpec, class: usize, probability: f32, rank: usize) -> String {
        let name = &self.classes[class];
        match spec.target {
            sglrp::explain::Target::Rank(_) => {
                format!("target {}: {name}, p = {probability:.3}", spec.label)
            }
            sglrp::explain::Target::Class(c) => {
                format!("target class {c}: {name}, p = {probability:.3} (rank {rank})")
            }
        }
    }

    /// The record of an image whose outputs exist: its `result.json` if there is one.
    fn skipped_record(&self, input: &Input, plan: &Plan) -> ImageRecord {
        let stored = plan
            .json
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<ImageRecord>(&bytes).ok());
        let mut record = stored.unwrap_or_else(|| ImageRecord {
            input: input.path.display().to_string(),
            output_dir: Some(relative(&self.out, &plan.dir)),
            ..ImageRecord::default()
        });
        record.status = "skipped".into();
        record
    }

    /// The record of a failed image; the error line starts with the input's path.
    fn failed_record(&self, input: &Input, error: String) -> Outcome {
        let path = input.path.display().to_string();
        let error = if error.starts_with(&path) {
            error
        } else {
            format!("{path}: {error}")
        };
        Outcome::Failed(ImageRecord {
            input: input.path.display().to_string(),
            status: "error".into(),
            error: Some(super::single_line(&error)),
            ..ImageRecord::default()
        })
    }
}

impl Plan {
    /// Whether every planned file exists.
    fn complete(&self) -> bool {
        self.files
            .iter()
            .flat_map(BTreeMap::values)
            .chain(&self.grid)
            .chain(&self.json)
            .all(|p| p.is_file())
    }
}
