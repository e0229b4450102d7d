//! `sglrp explain`: the batch loop. Per image, in `OUT/<key>/` (see [`super::inputs`] for keys):
//!
//! | file | format | what |
//! |---|---|---|
//! | `<method>_<target>.png` | `png` | heatmap (docs/method.md §Heatmaps), one pixel per network input pixel |
//! | `<method>_<target>_overlay.png` | `overlay` | the heatmap over a grey copy of the network's view of the image |
//! | `<method>_<target>.npy` | `npy` | signed input relevance, `(3, H, W)` f32, RGB (`--array-channels`) |
//! | `maps.npz` | `npz` | every map of the image, `(heads, 3, H, W)`, with method, target, class, probability |
//! | `grid.png` | `grid` | input \| one column per method, one row per target, captioned |
//! | `result.json` | `json` | predictions, targets, relevance sums, output paths |
//!
//! `<target>` is `top1`, `top2`, … or `class<index>`. Paths in `result.json` are relative to its
//! folder. `OUT/summary.jsonl` gets one line per image of the run (the `result.json` record, with
//! `status` ok, skipped or error), rewritten atomically at the end of the run
//! (`summary.K-of-N.jsonl` for `--shard K/N`, joined by `sglrp merge`). `stack` writes
//! `OUT/relevance.npy` (images, heads, 3, H, W) and `OUT/relevance.index.json`. Every file is
//! written through a temporary file and a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use sglrp::backend::Backend;
use sglrp::cluster::merge::EXPLAIN_SUMMARY;
use sglrp::cluster::{Shard, shard_file};
use sglrp::explain::{ImageResult, Network, Preset, Request, ranking};
use sglrp::io::array::{
    ArrayOptions, Head, MapSpace, Stack, StackHead, StackImage, StackIndex, channel_name,
    write_image_npz,
};
use sglrp::io::images::{read_rgb, write_png};
use sglrp::io::npy::write_npy;
use sglrp::io::write_atomic;
use sglrp::model::Model;
use sglrp::render::{self, GridRow, RenderOptions};

use super::inputs::{self, Input, key_id};
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
    render: RenderOptions,
    arrays: ArrayOptions,
    /// With `stack`: the run's array, one row per input.
    stack: Option<Stack>,
    overwrite: bool,
    batch_size: usize,
    max_pixels: u64,
    side: usize,
    classes: Vec<String>,
    preprocess: sglrp::model::Preprocess,
}

/// The files planned for one image.
struct Plan {
    dir: PathBuf,
    /// Per explanation (target-major, then method): its files by format.
    files: Vec<BTreeMap<&'static str, PathBuf>>,
    npz: Option<PathBuf>,
    grid: Option<PathBuf>,
    json: Option<PathBuf>,
}

/// An image decoded and resized to the network's view, with its size on file and, for pictures
/// in the image's pixels, the image itself.
type Decoded = (RgbImage, (u32, u32), Option<RgbImage>);

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
    let backend = match device::select(args.model.device, args.model.threads) {
        Ok(b) => b,
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    if args.format.contains(&Format::Stack) && args.map_space == MapSpace::Image {
        report(
            "--format stack needs --map-space input: maps in the images' own pixels differ in \
             size and cannot be stacked (use npy or npz for them)",
        );
        return EXIT_USAGE;
    }
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
        shard: args.input.shard,
        quiet: args.input.quiet,
    })
}

/// The run, once the model, targets, device and output folder are known.
struct Explain<'a> {
    job: Job,
    model: &'a Model,
    inputs: &'a [String],
    shard: Shard,
    quiet: bool,
}

impl device::OnBackend for Explain<'_> {
    type Output = u8;

    fn run<B: Backend>(self, backend: B) -> u8 {
        let mut job = self.job;
        let network = match Network::new(backend, self.model) {
            Ok(n) => n,
            Err(e) => {
                report(format!("{}: {e}", job.model_path.display()));
                return EXIT_USAGE;
            }
        };
        let mut expanded = inputs::expand(self.inputs, Some(&job.out));
        expanded.inputs = self.shard.filter(expanded.inputs, |i| key_id(&i.key));
        let progress = Progress::new(expanded.inputs.len(), self.quiet);
        for e in &expanded.errors {
            progress.error(e);
        }
        let stack_path = job.out.join("relevance.npy");
        if job.wants(Format::Stack) {
            let heads = job.requests().len() as u64;
            let side = job.side as u64;
            match Stack::create(&stack_path, expanded.inputs.len(), &[heads, 3, side, side]) {
                Ok(stack) => job.stack = Some(stack),
                Err(e) => {
                    report(e);
                    return EXIT_USAGE;
                }
            }
        }
        let outcomes = job.run_all(&network, &expanded.inputs, &progress);
        progress.finish();

        let mut failed = expanded.errors.len();
        if let Some(stack) = job.stack.take() {
            let index = job.stack_index(stack.shape().to_vec(), &outcomes);
            let written = stack
                .finish()
                .and_then(|_| index.write(&job.out.join("relevance.index.json")));
            if let Err(e) = written {
                report(e);
                failed += 1;
            }
        }
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
            let (stem, extension) = EXPLAIN_SUMMARY;
            let summary = job.out.join(shard_file(stem, extension, self.shard));
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
            render: RenderOptions {
                kind: args.heatmap,
                clip_percent: args.clip,
                cmap: args.cmap,
                colorbar: args.colorbar,
            },
            arrays: ArrayOptions {
                channels: args.array_channels,
                space: args.map_space,
            },
            stack: None,
            overwrite: args.overwrite,
            batch_size,
            max_pixels: (args.input.max_megapixels * 1e6).max(1.0) as u64,
            side: model.input_side,
            classes: model.classes.clone(),
            preprocess: model.preprocess.clone(),
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
            npz: self.wants(Format::Npz).then(|| dir.join("maps.npz")),
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
            // A stack holds the whole run: every image is computed.
            if !self.overwrite && self.stack.is_none() && plan.complete() {
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
            let results = self.process_batch(network, inputs, batch);
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
    fn process_batch<B: Backend>(
        &self,
        network: &Network<B>,
        inputs: &[Input],
        rows: &[usize],
    ) -> Vec<Outcome> {
        let pre = &network.info().preprocess;
        let batch: Vec<&Input> = rows.iter().map(|&i| &inputs[i]).collect();
        let keep_image = self.arrays.space == MapSpace::Image
            && (self.wants(Format::Png) || self.wants(Format::Overlay));
        let decoded: Vec<Result<Decoded, String>> = batch
            .par_iter()
            .map(|input| {
                read_rgb(&input.path, self.max_pixels)
                    .map(|img| {
                        let size = img.dimensions();
                        let view = pre.resize(&img, self.side);
                        (view, size, keep_image.then_some(img))
                    })
                    .map_err(|e| e.to_string())
            })
            .collect();
        let ok: Vec<usize> = (0..batch.len()).filter(|&i| decoded[i].is_ok()).collect();
        let views: Vec<&RgbImage> = ok
            .iter()
            .filter_map(|&i| decoded[i].as_ref().ok().map(|(v, _, _)| v))
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
                let (view, size, image) =
                    decoded[i].as_ref().expect("only decoded images are here");
                let pictures = Pictures {
                    view,
                    size: *size,
                    image: image.as_ref(),
                };
                let outcome = match result {
                    Ok(result) => match self.write_outputs(batch[i], rows[i], &pictures, &result) {
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
        row: usize,
        pictures: &Pictures,
        result: &ImageResult,
    ) -> Result<ImageRecord, String> {
        let Pictures { view, size, image } = *pictures;
        let pre = &self.preprocess;
        let plan = self.plan(input);
        std::fs::create_dir_all(&plan.dir).map_err(|e| format!("{}: {e}", plan.dir.display()))?;
        let side = self.side as u32;
        let order = ranking(&result.logits);
        let rank_of = |class: usize| order.iter().position(|&c| c == class).map_or(0, |r| r + 1);
        let mut explanations = Vec::new();
        let mut panels = Vec::new();
        let mut arrays = Vec::new();
        let wants_arrays = [Format::Npy, Format::Npz, Format::Stack]
            .iter()
            .any(|&f| self.wants(f));
        for (e, files) in result.explanations.iter().zip(&plan.files) {
            let display = self.render.display(&e.relevance, e.channels);
            let panel = self.render.panel(&display, side, side);
            let array = if wants_arrays || image.is_some() {
                Some(
                    self.arrays
                        .map(&e.relevance, e.channels, self.side, pre, size)
                        .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            // Pictures in the image's pixels come from the map resampled to them.
            let (picture_display, backdrop) = match (image, &array) {
                (Some(image), Some((_, values))) => {
                    (self.render.display(values, e.channels), image)
                }
                _ => (display, view),
            };
            let (w, h) = backdrop.dimensions();
            if let Some(path) = files.get("png") {
                let heat = self.render.heatmap_image(&picture_display, w, h);
                write_png(path, &heat).map_err(|e| e.to_string())?;
            }
            if let Some(path) = files.get("overlay") {
                let over = render::overlay(backdrop, &picture_display, self.render.cmap);
                write_png(path, &over).map_err(|e| e.to_string())?;
            }
            if let (Some(path), Some((shape, values))) = (files.get("npy"), &array) {
                write_npy(path, shape, values).map_err(|e| e.to_string())?;
            }
            if let Some(array) = array {
                arrays.push(array);
            }
            panels.push(panel);
            let sum = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
            explanations.push((e, files, sum(&e.relevance), sum(&e.head)));
        }
        let n_methods = self.methods.len();
        let channels = self.arrays.channel_order(pre.channels);
        if let Some(path) = &plan.npz {
            let heads: Vec<Head> = result
                .explanations
                .iter()
                .enumerate()
                .map(|(j, e)| Head {
                    method: self.methods[j % n_methods].name().into(),
                    target: self.targets[j / n_methods].label.clone(),
                    class: e.target,
                    name: self.classes[e.target].clone(),
                    probability: result.probabilities[e.target],
                })
                .collect();
            let maps: Vec<Vec<f32>> = arrays.iter().map(|(_, v)| v.clone()).collect();
            let shape = arrays.first().map(|(s, _)| s.clone()).unwrap_or_default();
            write_image_npz(
                path,
                &heads,
                &maps,
                &shape,
                channels,
                self.arrays.space,
                size,
            )
            .map_err(|e| e.to_string())?;
        }
        if let Some(stack) = &self.stack {
            let values: Vec<f32> = arrays.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            stack.write_row(row, &values).map_err(|e| e.to_string())?;
        }
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
                        cells: panels[t * n_methods..][..n_methods].to_vec(),
                    }
                })
                .collect();
            let headers: Vec<String> = self.methods.iter().map(|m| m.title().to_string()).collect();
            let title = format!(
                "{}  ·  {} preset  ·  {} heatmap",
                input.path.display(),
                self.preset,
                self.render.kind
            );
            let grid = render::comparison_grid(Some(&title), view, &headers, &rows, &self.render);
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
                        .map(|(k, p)| (k.to_string(), relative(&plan.dir, p)))
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
            channels: Some(channel_name(channels).into()),
            map_space: Some(self.arrays.space.name().into()),
            npz: plan.npz.as_ref().map(|p| relative(&plan.dir, p)),
            preset: Some(self.preset.name().into()),
            predictions: predictions(&result.logits, &self.classes, 5),
            explanations: explanation_records,
            grid: plan.grid.as_ref().map(|p| relative(&plan.dir, p)),
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

    /// The index of the run's stack: one image per row, in the order of the inputs.
    fn stack_index(&self, shape: Vec<u64>, outcomes: &[Outcome]) -> StackIndex {
        let heads = self
            .targets
            .iter()
            .flat_map(|t| {
                self.methods.iter().map(|m| StackHead {
                    method: m.name().into(),
                    target: t.label.clone(),
                })
            })
            .collect();
        let images = outcomes
            .iter()
            .enumerate()
            .map(|(row, outcome)| {
                let (record, ok) = match outcome {
                    Outcome::Done(r) | Outcome::Skipped(r) => (r, true),
                    Outcome::Failed(r) => (r, false),
                };
                StackImage {
                    row,
                    input: record.input.clone(),
                    status: if ok { "ok" } else { "error" }.into(),
                    error: record.error.clone(),
                    classes: record.explanations.iter().map(|e| e.class).collect(),
                    probabilities: record.explanations.iter().map(|e| e.probability).collect(),
                }
            })
            .collect();
        StackIndex {
            array: "relevance.npy".into(),
            shape,
            dtype: "float32",
            channels: channel_name(self.arrays.channel_order(self.preprocess.channels)),
            map_space: self.arrays.space.name(),
            heads,
            images,
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

/// The pictures of one image: the network's view, the image's size and, for pictures in the
/// image's pixels, the image.
#[derive(Clone, Copy)]
struct Pictures<'a> {
    view: &'a RgbImage,
    size: (u32, u32),
    image: Option<&'a RgbImage>,
}

impl Plan {
    /// Whether every planned file exists.
    fn complete(&self) -> bool {
        self.files
            .iter()
            .flat_map(BTreeMap::values)
            .chain(&self.npz)
            .chain(&self.grid)
            .chain(&self.json)
            .all(|p| p.is_file())
    }
}
