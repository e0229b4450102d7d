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
//! `status` ok, skipped or error), appended as images finish (`summary.K-of-N.jsonl` for
//! `--shard K/N`, joined by `sglrp merge`). `stack` writes `OUT/relevance.npy` (images, heads, 3,
//! H, W), filled in input order as images finish, and `OUT/relevance.index.json` at the end.
//! Every file is written through a temporary file and a rename. `OUT/fingerprints.jsonl` holds,
//! per image folder, the fingerprint of the settings that made its outputs (model file, preset,
//! methods, targets, formats, picture and array options, Grad-CAM layer, `--layer`): a rerun
//! skips an image only when its outputs exist and were made the same way. With `--layer` the
//! arrays hold the layer's `(C, H, W)` or `(F,)` maps, and the pictures the layer's heatmap
//! enlarged to the input's side (none for a dense layer's map). The work runs on
//! [`sglrp::pipeline`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use image::RgbImage;
use sglrp::backend::Backend;
use sglrp::backend::open::{Caps, OnBackend};
use sglrp::cluster::merge::EXPLAIN_SUMMARY;
use sglrp::cluster::shard_file;
use sglrp::explain::{Explanation, ImageResult, Network, Outputs, Preset, Request, ranking};
use sglrp::heatmap::Display;
use sglrp::io::array::{
    ArrayOptions, Head, MapSpace, Stack, StackHead, StackImage, StackIndex, channel_name,
    write_image_npz,
};
use sglrp::io::images::{read_rgb, write_png};
use sglrp::io::npy::write_npy;
use sglrp::io::write_atomic;
use sglrp::model::{Model, Preprocess, layer_index, map_shape};
use sglrp::pipeline::network::{Explainer, ItemResult, NetworkInput};
use sglrp::pipeline::{self, Compute, Flow, Options};
use sglrp::render::{self, GridRow, RenderOptions};

use super::device::{self, Devices};
use super::inputs::{self, Input, key_id};
use super::outdir::{self, Summary};
use super::progress::Progress;
use super::record::{ExplanationRecord, ImageRecord, fingerprint, model_hash, predictions};
use super::targets::{self, TargetSpec};
use super::{
    EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, ExplainArgs, Format, MethodArg, load_model,
    probability_digits, report, unique, usage,
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
    max_pixels: u64,
    side: usize,
    classes: Vec<String>,
    preprocess: Preprocess,
    /// `--layer`: where the LRP maps are taken; `None`: at the image.
    layer: Option<LayerMap>,
    /// The fingerprint of the settings (see the module's documentation).
    fingerprint: String,
    /// What made each image folder's outputs.
    fingerprints: outdir::Fingerprints,
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

/// An image decoded, resized to the network's view and pre-processed, with its size on file
/// and, for pictures in the image's pixels, the image itself.
pub struct Decoded {
    view: RgbImage,
    size: (u32, u32),
    image: Option<RgbImage>,
    input: Vec<f32>,
}

impl NetworkInput for Decoded {
    fn network_input(&self) -> &[f32] {
        &self.input
    }
}

/// How one image ended; a done image carries its row of the run's stack (empty without
/// `stack`).
pub enum Outcome {
    Done(ImageRecord, Vec<f32>),
    Skipped(ImageRecord),
    Failed(ImageRecord),
}

/// What a rerun finds in an image's folder.
enum Found {
    /// Nothing complete: compute.
    Nothing,
    /// Every output, made with these settings: skip.
    Same,
    /// Outputs made with other settings (or by an older version).
    Changed,
}

pub fn run(args: ExplainArgs) -> u8 {
    try_run(args).unwrap_or_else(|code| code)
}

fn try_run(args: ExplainArgs) -> Result<u8, u8> {
    let (model_path, model) =
        load_model(args.model.model.as_deref(), args.model.classes.as_deref())?;
    let targets = usage(targets::parse_all(&args.target, &model.classes))?;
    let layer = usage(LayerMap::of(&args, &model))?;
    if let Some(layer) = layer.as_ref().filter(|l| !l.pictured()) {
        let pictures = [Format::Png, Format::Overlay, Format::Grid];
        if args.format.iter().any(|f| pictures.contains(f)) {
            eprintln!(
                "note: --layer {}: a dense layer's map has no picture; png, overlay and grid \
                 are not written",
                layer.name
            );
        }
    }
    let devices = usage(Devices::open(
        &args.model.device,
        args.model.threads,
        args.model.precision,
    ))?;
    if args.format.contains(&Format::Stack) && args.map_space == MapSpace::Image {
        report(
            "--format stack needs --map-space input: maps in the images' own pixels differ in \
             size and cannot be stacked (use npy or npz for them)",
        );
        return Err(EXIT_USAGE);
    }
    let shard = args.input.shard;
    let _claimed = usage(outdir::claim(&args.out, &outdir::lock_name(shard)))?;
    let hash = usage(model_hash(&model_path))?;
    let fingerprints = usage(outdir::Fingerprints::open(&args.out))?;
    let job = Job::new(
        &args,
        model_path,
        &model,
        targets,
        layer,
        &hash,
        fingerprints,
    );
    let mut expanded = inputs::expand(&args.input.inputs, Some(&job.out));
    if expanded.inputs.is_empty() {
        for e in &expanded.errors {
            report(e);
        }
        report("no images to explain");
        return Err(EXIT_USAGE);
    }
    // A shard may be left with no inputs: it still writes its (empty) summary for `sglrp merge`.
    expanded.inputs = shard.filter(expanded.inputs, |i| key_id(&i.key));
    let batch_size = devices.batch_size(args.input.batch_size.map(|n| n as usize));
    usage(super::check_batch_memory(
        &model,
        batch_size,
        job.requests().len(),
        &devices.caps,
    ))?;
    let progress = Progress::new(expanded.inputs.len(), args.input.quiet);
    for e in &expanded.errors {
        progress.error(e);
    }
    let (stem, extension) = EXPLAIN_SUMMARY;
    let stack_path = job.out.join("relevance.npy");
    let stack = if job.wants(Format::Stack) {
        let mut shape = vec![job.requests().len() as u64];
        shape.extend(job.map_shape().iter().map(|&d| d as u64));
        match Stack::create(&stack_path, expanded.inputs.len(), &shape) {
            Ok(stack) => Some(stack),
            Err(e) => {
                report(e);
                return Err(EXIT_USAGE);
            }
        }
    } else {
        None
    };
    // One entry per stack row, in input order, as the engine hands the images back.
    let mut stack_images = Vec::new();
    let mut summary = usage(Summary::create(
        job.out.join(shard_file(stem, extension, shard)),
    ))?;
    let mut counts = Counts {
        failed: expanded.errors.len(),
        ..Counts::default()
    };
    let mut record = |outcome: Outcome, progress: &Progress| {
        let r = match &outcome {
            Outcome::Done(r, _) => {
                counts.done += 1;
                r
            }
            Outcome::Skipped(r) => {
                counts.skipped += 1;
                r
            }
            Outcome::Failed(r) => {
                counts.failed += 1;
                progress.error(r.error.as_deref().unwrap_or("failed"));
                r
            }
        };
        progress.working_on(&r.input);
        progress.advance(1);
        if let Err(e) = summary.append(&serde_json::to_string(r).unwrap_or_default()) {
            progress.error(e);
            counts.failed += 1;
        }
    };
    let mut pending = Vec::new();
    for input in expanded.inputs {
        // A stack holds the whole run: every image is computed.
        if stack.is_some() {
            pending.push(input);
            continue;
        }
        let plan = job.plan(&input);
        match (
            job.found(&input, &plan),
            args.overwrite,
            args.refuse_changed,
        ) {
            (Found::Same, false, _) => record(
                Outcome::Skipped(job.skipped_record(&input, &plan)),
                &progress,
            ),
            (Found::Changed, false, true) => record(
                job.failed_record(
                    &input,
                    format!(
                        "{} holds outputs made with other settings; not recomputed \
                         (--refuse-changed; --overwrite recomputes)",
                        plan.dir.display()
                    ),
                ),
                &progress,
            ),
            _ => pending.push(input),
        }
    }
    let builder = BuildExplainer::<Decoded> {
        model: &model,
        requests: job.requests(),
        preset: job.preset,
        gradcam_layer: args.gradcam_layer.as_deref(),
        layer: args.layer.as_deref(),
        model_path: &job.model_path,
        outputs: job.outputs(),
        kind: PhantomData,
    };
    let options = Options::new(batch_size, device::host_threads(), devices.len());
    let result = pipeline::run(
        &job,
        &pending,
        devices.len(),
        |w| devices.run(w, builder.clone())?,
        &options,
        |row, mut outcome| {
            if let Some(stack) = &stack {
                if let Outcome::Done(_, values) = &outcome
                    && let Err(e) = stack.write_row(row, values)
                {
                    outcome = job.failed_record(&pending[row], e.to_string());
                }
                stack_images.push(Job::stack_image(row, &outcome));
            }
            record(outcome, &progress);
            Flow::Continue
        },
    );
    progress.finish();
    usage(result)?;
    if let Some(stack) = stack {
        let index = job.stack_index(stack.shape().to_vec(), stack_images);
        let written = stack
            .finish()
            .and_then(|_| index.write(&job.out.join("relevance.index.json")));
        if let Err(e) = written {
            report(e);
            counts.failed += 1;
        }
    }
    let Counts {
        done,
        skipped,
        failed,
    } = counts;
    if !args.input.quiet {
        let total = done + skipped + failed - expanded.errors.len();
        let skipped = if skipped > 0 {
            format!("{skipped} skipped (outputs exist; --overwrite recomputes)")
        } else {
            "0 skipped".to_string()
        };
        eprintln!(
            "{total} image{} → {}: {done} explained, {skipped}, {failed} failed",
            if total == 1 { "" } else { "s" },
            job.out.display(),
        );
    }
    if failed > 0 {
        Ok(EXIT_INPUTS_FAILED)
    } else {
        Ok(EXIT_OK)
    }
}

#[derive(Default)]
struct Counts {
    done: usize,
    skipped: usize,
    failed: usize,
}

/// The explainer of the run, built on whichever device a worker has.
struct BuildExplainer<'a, P> {
    model: &'a Model,
    model_path: &'a Path,
    requests: Vec<Request>,
    preset: Preset,
    gradcam_layer: Option<&'a str>,
    /// `--layer`.
    layer: Option<&'a str>,
    outputs: Outputs,
    kind: PhantomData<fn() -> P>,
}

impl<P> Clone for BuildExplainer<'_, P> {
    fn clone(&self) -> Self {
        BuildExplainer {
            requests: self.requests.clone(),
            ..*self
        }
    }
}

impl<'a, P: NetworkInput + 'a> OnBackend for BuildExplainer<'a, P> {
    type Output = Result<Box<dyn Compute<P, ItemResult<ImageResult>> + 'a>, String>;

    fn run<B: Backend + 'static>(self, backend: B, _: &Caps) -> Self::Output {
        let mut network = Network::new(backend, self.model)
            .map_err(|e| format!("{}: {e}", self.model_path.display()))?;
        if let Some(layer) = self.gradcam_layer {
            network
                .set_gradcam_layer(layer)
                .map_err(|e| format!("--gradcam-layer: {e}"))?;
        }
        network
            .set_relevance_layer(self.layer)
            .map_err(|e| format!("--layer: {e}"))?;
        network.set_outputs(self.outputs);
        Ok(Box::new(Explainer::new(
            network,
            self.requests,
            self.preset,
        )))
    }
}

impl pipeline::Job for Job {
    type Input = Input;
    type Prepared = Decoded;
    type Computed = ItemResult<ImageResult>;
    type Done = Outcome;

    fn prepare(&self, input: &Input) -> Result<Decoded, String> {
        let image = read_rgb(&input.path, self.max_pixels).map_err(|e| e.to_string())?;
        let size = image.dimensions();
        let view = self.preprocess.resize(&image, self.side);
        let rgb: Vec<f32> = view.as_raw().iter().map(|&v| f32::from(v)).collect();
        let input = self.preprocess.normalize(&rgb);
        let keep_image = self.arrays.space == MapSpace::Image
            && (self.wants(Format::Png) || self.wants(Format::Overlay));
        Ok(Decoded {
            view,
            size,
            image: keep_image.then_some(image),
            input,
        })
    }

    fn finish(&self, input: &Input, decoded: Decoded, result: ItemResult<ImageResult>) -> Outcome {
        match result.and_then(|r| self.write_outputs(input, &decoded, &r)) {
            Ok((record, stack_row)) => Outcome::Done(record, stack_row),
            Err(e) => self.failed_record(input, e),
        }
    }

    fn failed(&self, input: &Input, error: String) -> Outcome {
        self.failed_record(input, error)
    }
}

/// An image's key as `fingerprints.jsonl` names it, with `/` separators.
fn key_name(input: &Input) -> String {
    input
        .key
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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
        layer: Option<LayerMap>,
        model_hash: &str,
        fingerprints: outdir::Fingerprints,
    ) -> Job {
        let methods = unique(&args.method);
        let pictured = layer.as_ref().is_none_or(LayerMap::pictured);
        let formats: Vec<Format> = unique(&args.format)
            .into_iter()
            .filter(|f| pictured || ![Format::Png, Format::Overlay, Format::Grid].contains(f))
            .collect();
        let settings = serde_json::json!({
            "model": model_hash,
            "preset": args.preset.name(),
            "methods": methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "targets": targets.iter().map(|t| t.label.clone()).collect::<Vec<_>>(),
            "formats": formats.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>(),
            "heatmap": args.heatmap.to_string(),
            "clip": args.clip,
            "cmap": args.cmap.to_string(),
            "colorbar": format!("{:?}", args.colorbar).to_lowercase(),
            "array_channels": format!("{:?}", args.array_channels).to_lowercase(),
            "map_space": args.map_space.name(),
            "gradcam_layer": args.gradcam_layer,
            "layer": args.layer,
        });
        Job {
            out: args.out.clone(),
            model_path,
            methods,
            targets,
            formats,
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
            max_pixels: (args.input.max_megapixels * 1e6).max(1.0) as u64,
            side: model.input_side,
            classes: model.classes.clone(),
            preprocess: model.preprocess.clone(),
            layer,
            fingerprint: fingerprint(&settings),
            fingerprints,
        }
    }

    /// What a rerun finds in the image's folder.
    fn found(&self, input: &Input, plan: &Plan) -> Found {
        let stored = self.fingerprints.get(&key_name(input));
        match (plan.complete(), stored) {
            (true, Some(s)) if s == self.fingerprint => Found::Same,
            (true, _) => Found::Changed,
            (false, _) => Found::Nothing,
        }
    }

    fn wants(&self, format: Format) -> bool {
        self.formats.contains(&format)
    }

    /// What the network brings back: the maps (the summary's relevance sums need them) and,
    /// for pictures on the network's view, their heatmaps, reduced on the device.
    fn outputs(&self) -> Outputs {
        let pictures = [Format::Png, Format::Overlay, Format::Grid]
            .iter()
            .any(|&f| self.wants(f));
        Outputs {
            relevance: true,
            heatmap: pictures.then_some(self.render.kind),
        }
    }

    /// The shape of every map of the run: the layer's, or `(3, S, S)` at the image.
    fn map_shape(&self) -> Vec<usize> {
        match &self.layer {
            Some(layer) => layer.shape.clone(),
            None => vec![3, self.side, self.side],
        }
    }

    /// The heatmap of a map on the network's `S × S` view: a layer's `(C, H, W)` map enlarged
    /// to it (nearest neighbour); `None` for a dense layer's `(F,)` map, which has no picture.
    fn display(&self, e: &Explanation) -> Option<Display> {
        match e.shape[..] {
            [c, h, w] => {
                let display = match &e.heatmap {
                    Some(map) => self.render.display_heatmap(map),
                    None => self.render.display(&e.relevance, c),
                };
                Some(if (h, w) == (self.side, self.side) {
                    display
                } else {
                    display.upsampled(h, w, self.side)
                })
            }
            _ => None,
        }
    }

    /// A map as the arrays hold it, with its shape: at a layer, as it is; at the image, in the
    /// channel order and pixels asked for.
    fn array(
        &self,
        e: &Explanation,
        image_size: (u32, u32),
    ) -> Result<(Vec<u64>, Vec<f32>), String> {
        if self.layer.is_some() {
            let shape = e.shape.iter().map(|&d| d as u64).collect();
            return Ok((shape, e.relevance.clone()));
        }
        self.arrays
            .map(
                &e.relevance,
                e.channels,
                self.side,
                &self.preprocess,
                image_size,
            )
            .map_err(|e| e.to_string())
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

    /// Writes every planned file of one image and returns its record and its row of the
    /// run's stack (empty without `stack`).
    fn write_outputs(
        &self,
        input: &Input,
        decoded: &Decoded,
        result: &ImageResult,
    ) -> Result<(ImageRecord, Vec<f32>), String> {
        let Decoded {
            view, size, image, ..
        } = decoded;
        let (size, image) = (*size, image.as_ref());
        let pre = &self.preprocess;
        let plan = self.plan(input);
        std::fs::create_dir_all(&plan.dir).map_err(|e| format!("{}: {e}", plan.dir.display()))?;
        // Until every file is rewritten, the folder holds no one settings' outputs.
        let key = key_name(input);
        self.fingerprints.set(&key, "")?;
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
            let display = self.display(e);
            let array = if wants_arrays || image.is_some() {
                Some(self.array(e, size)?)
            } else {
                None
            };
            if let Some(display) = &display {
                panels.push(self.render.panel(display, side, side));
            }
            // Pictures in the image's pixels come from the map resampled to them.
            let picture = match (image, &array) {
                (Some(image), Some((_, values))) => {
                    Some((self.render.display(values, e.channels), image))
                }
                _ => display.map(|d| (d, view)),
            };
            if let Some((picture_display, backdrop)) = &picture {
                let (w, h) = backdrop.dimensions();
                if let Some(path) = files.get("png") {
                    let heat = self.render.heatmap_image(picture_display, w, h);
                    write_png(path, &heat).map_err(|e| e.to_string())?;
                }
                if let Some(path) = files.get("overlay") {
                    let over = render::overlay(backdrop, picture_display, self.render.cmap);
                    write_png(path, &over).map_err(|e| e.to_string())?;
                }
            }
            if let (Some(path), Some((shape, values))) = (files.get("npy"), &array) {
                write_npy(path, shape, values).map_err(|e| e.to_string())?;
            }
            if let Some(array) = array {
                arrays.push(array);
            }
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
        let stack_row: Vec<f32> = if self.wants(Format::Stack) {
            arrays.iter().flat_map(|(_, v)| v.iter().copied()).collect()
        } else {
            Vec::new()
        };
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
            let at = match &self.layer {
                Some(layer) => format!("  ·  relevance at {}", layer.name),
                None => String::new(),
            };
            let title = format!(
                "{}  ·  {} preset  ·  {} heatmap{at}",
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
            layer: self.layer.as_ref().map(|l| l.name.clone()),
            map_shape: self.layer.as_ref().map(|l| l.shape.clone()),
            npz: plan.npz.as_ref().map(|p| relative(&plan.dir, p)),
            preset: Some(self.preset.name().into()),
            predictions: predictions(&result.logits, &self.classes, 5),
            explanations: explanation_records,
            grid: plan.grid.as_ref().map(|p| relative(&plan.dir, p)),
            settings: Some(self.fingerprint.clone()),
        };
        if let Some(path) = &plan.json {
            let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())? + "\n";
            write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())?;
        }
        self.fingerprints.set(&key, &self.fingerprint)?;
        Ok((record, stack_row))
    }

    /// The stack index's entry of the image in row `row`.
    fn stack_image(row: usize, outcome: &Outcome) -> StackImage {
        let (record, ok) = match outcome {
            Outcome::Done(r, _) | Outcome::Skipped(r) => (r, true),
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
    }

    /// The index of the run's stack: one image per row, in the order of the inputs.
    fn stack_index(&self, shape: Vec<u64>, images: Vec<StackImage>) -> StackIndex {
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

    /// `target top1: Bag, p = 0.831` or `target class 5: Sandal, p = 0.021 (rank 3)`.
    fn caption(&self, spec: &TargetSpec, class: usize, probability: f32, rank: usize) -> String {
        let name = &self.classes[class];
        let digits = probability_digits(self.classes.len());
        match spec.target {
            sglrp::explain::Target::Rank(_) => {
                format!("target {}: {name}, p = {probability:.digits$}", spec.label)
            }
            sglrp::explain::Target::Class(c) => {
                format!("target class {c}: {name}, p = {probability:.digits$} (rank {rank})")
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

/// `--layer`: the layer at whose input the LRP maps are taken, and their shape.
struct LayerMap {
    name: String,
    /// `[C, H, W]`, or `[F]` at a dense layer.
    shape: Vec<usize>,
}

impl LayerMap {
    /// `--layer` checked against the model and the other options.
    fn of(args: &ExplainArgs, model: &Model) -> Result<Option<LayerMap>, String> {
        let Some(name) = &args.layer else {
            return Ok(None);
        };
        let i = layer_index(&model.layer_names(), name).map_err(|e| format!("--layer: {e}"))?;
        let lrp = [MethodArg::Lrp, MethodArg::Clrp, MethodArg::Sglrp];
        if let Some(m) = args.method.iter().find(|m| !lrp.contains(m)) {
            return Err(format!(
                "--layer {name}: relevance at a layer is for the LRP methods, not {} (use \
                 --method lrp,clrp,sglrp)",
                m.name()
            ));
        }
        if args.map_space == MapSpace::Image {
            return Err(format!(
                "--layer {name}: a layer's maps are on the layer's grid; --map-space image is for \
                 maps at the image"
            ));
        }
        Ok(Some(LayerMap {
            name: name.clone(),
            shape: map_shape(model.specs()[i], model.dims()[i].0),
        }))
    }

    /// Whether its maps can be drawn: `(C, H, W)`, not a dense layer's `(F,)`.
    fn pictured(&self) -> bool {
        self.shape.len() == 3
    }
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
