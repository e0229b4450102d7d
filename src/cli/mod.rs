//! The `sglrp` command line: argument definitions, the shared set-up (model, device, inputs)
//! and the exit codes. Each subcommand lives in its own module.

mod bench;
mod classify;
mod device;
mod eval;
mod explain;
mod info;
mod inputs;
mod merge;
mod outdir;
mod progress;
mod record;
mod targets;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sglrp::backend::Precision;
use sglrp::cluster::Shard;
use sglrp::explain::Preset;
use sglrp::heatmap::HeatmapKind;
use sglrp::io::array::{ArrayChannels, MapSpace};
use sglrp::io::classes::read_class_file;
use sglrp::io::write_atomic;
use sglrp::model::Model;
use sglrp::render::{ColorBar, ColorMap};

pub use device::Device;

/// Every input was processed (or skipped because its outputs exist).
pub const EXIT_OK: u8 = 0;
/// Some inputs failed; the others were processed.
pub const EXIT_INPUTS_FAILED: u8 = 1;
/// Nothing was processed: bad arguments, a model that does not load, an unusable device or an
/// output folder that cannot be written. clap's own usage errors exit with 2 as well.
pub const EXIT_USAGE: u8 = 2;

/// The demo model bundled with the repository.
pub const DEMO_MODEL: &str = "weights/demo_vgg16_fashion.safetensors";

/// The sample images bundled with the repository.
pub const SAMPLES: &str = "weights/samples";

const AFTER_HELP: &str = "\
Exit codes: 0 all inputs processed (or skipped because their outputs exist), 1 some inputs \
failed and the others were processed, 2 nothing was done (bad arguments, a model that does not \
load, an unavailable device, an output folder that cannot be written).";

#[derive(Parser, Debug)]
#[command(
    name = "sglrp",
    version,
    about = "LRP, CLRP and SGLRP relevance maps for VGG-style image classifiers",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Relevance maps for images: a heatmap per method and target, a comparison grid per image,
    /// raw relevance and a summary.jsonl line per image.
    Explain(ExplainArgs),
    /// The model's top classes for images.
    Classify(ClassifyArgs),
    /// The model: layers, shapes, parameters, FLOPs, pre-processing, classes; and the devices.
    Info(InfoArgs),
    /// The paper's evaluation on a dataset with boxes: maximal patch masking and the energy
    /// pointing game per method, as CSV, JSON and charts.
    Eval(EvalArgs),
    /// A GPU against the CPU reference (docs/numerics.md §Bounds): each layer's ops and whole explanations.
    ///
    /// Exit 1 when a comparison exceeds the bound (each failure is listed on stderr) or an
    /// input could not be read; 2 when there is no GPU to compare.
    Verify(VerifyArgs),
    /// Joins the records of a run split with --shard K/N (a Slurm array, README "Clusters
    /// (Slurm)") into the summary, tables and charts one process would have written.
    Merge(MergeArgs),
    /// Speed of the forward pass and each method: images/s and TFLOP/s per batch size.
    ///
    /// On a GPU also the share of the card's f32 peak and per-layer times (device events).
    Bench(BenchArgs),
}

/// Options shared by every subcommand that runs a model.
#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// Weights file (safetensors: torchvision or timm VGG16, or sglrp's own format). Default:
    /// the bundled demo model, weights/demo_vgg16_fashion.safetensors.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Where to run: auto (cuda:0 when usable, else the CPU), cpu, cuda / cuda:N, a list
    /// cuda:0,1,3 or cuda:all (one worker per GPU).
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: Device,

    /// Kernel arithmetic on a GPU: f32 (f32-accurate), tf32 or bf16 (tensor cores, looser
    /// bounds, docs/numerics.md). The CPU computes in f32 whatever is asked.
    #[arg(long, default_value = "f32", value_name = "PRECISION")]
    precision: Precision,

    /// Class names, one a line or a JSON list, replacing the model's own (a 1000-class
    /// torchvision or timm model gets the bundled ImageNet names without it).
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,

    /// CPU worker threads (default: one per core; at most 4 per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// The images to process.
#[derive(Args, Debug, Clone)]
struct InputArgs {
    /// Image files, folders (searched recursively for .jpg .jpeg .png .webp .bmp .tif .tiff) and
    /// glob patterns such as 'photos/*.jpg'.
    #[arg(required = true, value_name = "INPUTS")]
    inputs: Vec<String>,

    /// Refuse images larger than this many megapixels (checked before decoding).
    #[arg(long, default_value_t = 100.0, value_name = "MP")]
    max_megapixels: f64,

    /// Images per forward/backward pass (default: 16 on a GPU; 1 on the CPU, where larger
    /// batches are not faster and the progress bar moves image by image).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch_size: Option<u32>,

    /// No progress bar and no closing summary; errors are still printed.
    #[arg(long, short)]
    quiet: bool,
    /// Process part K of N of the inputs (1 ≤ K ≤ N): a deterministic, balanced part, the same
    /// whatever order the inputs are given in. The N parts may share --out; `sglrp merge OUT`
    /// joins them (README "Clusters (Slurm)").
    #[arg(long, default_value = "1/1", value_name = "K/N")]
    shard: Shard,
}

#[derive(Args, Debug)]
struct ExplainArgs {
    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    model: ModelArgs,

    /// Methods, in the order of the grid's columns: lrp, clrp, sglrp and the baselines
    /// gradient, guided_backprop, gradcam, guided_gradcam, random (comma-separated or repeated).
    /// The default is the paper's figures: Guided Grad-CAM, LRP, CLRP, SGLRP.
    #[arg(
        long,
        short,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "guided_gradcam,lrp,clrp,sglrp",
        value_name = "METHOD"
    )]
    method: Vec<MethodArg>,

    /// Target classes, one grid row each: top1, top2, … (the model's ranking for the image), a
    /// class index, or a class name. Repeat the option or separate with commas.
    #[arg(long, short, default_value = "top1", value_name = "TARGET")]
    target: Vec<String>,

    /// Rule set: paper (the paper's z⁺ without bias), zennit (Zennit 0.5.1, positive bias) or
    /// innvestigate (the paper's iNNvestigate code, two passes).
    #[arg(long, default_value = "paper", value_name = "PRESET")]
    preset: Preset,

    /// Output folder.
    #[arg(long, short, default_value = "sglrp-out", value_name = "DIR")]
    out: PathBuf,

    /// Outputs per image: png (heatmap per method and target), overlay (heatmap over the
    /// image), grid (comparison grid), npy (raw relevance, (3, H, W) f32), npz (every map of the
    /// image with its method, target, class and probability), json (result.json); and for the
    /// run, stack (every map in OUT/relevance.npy, (images, heads, 3, H, W), indexed by
    /// OUT/relevance.index.json; images are then never skipped).
    #[arg(
        long,
        short,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "png,grid,npy,json",
        value_name = "FORMAT"
    )]
    format: Vec<Format>,

    /// Heatmap drawn: positive (Σ_c max(R_c, 0), the paper's), signed (Σ_c R_c, 0 at the
    /// colour map's centre) or absolute (Σ_c |R_c|).
    #[arg(long, default_value = "positive", value_name = "KIND")]
    heatmap: HeatmapKind,

    /// Scale each heatmap so that its strongest pixels holding PERCENT % of the relevance
    /// saturate (Captum's outlier_perc); 0 scales by the largest |value|.
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT", value_parser = parse_percent)]
    clip: f32,

    /// Colour map: seismic, bwr, gray, binary, hot (matplotlib's), coldnhot, zennit_seismic
    /// (Zennit's).
    #[arg(long, default_value = "seismic", value_name = "CMAP")]
    cmap: ColorMap,

    /// Grad-CAM's layer (default: the last conv, e.g. conv5_3).
    #[arg(long, value_name = "LAYER")]
    gradcam_layer: Option<String>,

    /// Relevance at the input of this layer instead of at the image (conv4_1, pool3, fc1, …:
    /// the names `sglrp info` lists), like Zennit's and Captum's layer relevance; LRP methods
    /// only. The arrays hold the layer's map, (C, H, W), or (F,) at a dense layer; png, overlay
    /// and grid draw its heatmap on the layer's grid, enlarged to the input's size (none at a
    /// dense layer).
    #[arg(long, value_name = "LAYER")]
    layer: Option<String>,

    /// Channel order of the arrays (npy, npz, stack): rgb, or model (the model's own order).
    #[arg(long, default_value = "rgb", value_name = "ORDER")]
    array_channels: ArrayChannels,

    /// Pixels of png, overlay and the arrays: input (the network's view) or image (the original
    /// image's pixels, resize and crop undone, for overlays on the original). The grid always
    /// shows the network's view.
    #[arg(long, default_value = "input", value_name = "SPACE")]
    map_space: MapSpace,

    /// The grid's colour bar: grid (one under the grid), row (one per row) or none.
    #[arg(long, default_value = "grid", value_name = "WHERE")]
    colorbar: ColorBar,

    /// Recompute images whose outputs all exist (by default they are skipped when they were
    /// made with the same settings, and recomputed otherwise).
    #[arg(long)]
    overwrite: bool,

    /// Fail an image whose outputs were made with other settings instead of recomputing them.
    #[arg(long, conflicts_with = "overwrite")]
    refuse_changed: bool,
}

#[derive(Args, Debug)]
struct ClassifyArgs {
    #[command(flatten)]
    input: InputArgs,

    #[command(flatten)]
    model: ModelArgs,

    /// How many classes to print per image.
    #[arg(long, default_value_t = 5, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..))]
    topk: u32,

    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// A scene manifest: JSON Lines, one `{"image", "label", "boxes": [{label, x0, y0, x1, y1}]}`
    /// per line, image paths relative to the manifest (README, "Datasets").
    #[arg(long, value_name = "FILE", conflicts_with = "voc")]
    manifest: Option<PathBuf>,

    /// A folder of Pascal VOC XML box files (ImageNet's validation boxes); needs --images and
    /// --synsets.
    #[arg(long, value_name = "DIR")]
    voc: Option<PathBuf>,

    /// With --voc: the folder of the images the XML files name.
    #[arg(long, value_name = "DIR", requires = "voc")]
    images: Option<PathBuf>,

    /// With --voc: the synset-to-index map, one synset per line (line number = class index).
    #[arg(long, value_name = "FILE", requires = "voc")]
    synsets: Option<PathBuf>,

    #[command(flatten)]
    model: ModelArgs,

    /// Methods to compare (comma-separated or repeated).
    #[arg(
        long,
        short,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "lrp,clrp,sglrp,guided_gradcam,random",
        value_name = "METHOD"
    )]
    method: Vec<MethodArg>,

    /// Rule set for the LRP methods: paper, zennit or innvestigate.
    #[arg(long, default_value = "paper", value_name = "PRESET")]
    preset: Preset,

    /// Grad-CAM's layer (default: the last conv, e.g. conv5_3).
    #[arg(long, value_name = "LAYER")]
    gradcam_layer: Option<String>,

    /// Output folder; a run into a folder with results of the same settings resumes it.
    #[arg(long, short, default_value = "sglrp-eval", value_name = "DIR")]
    out: PathBuf,

    /// Evaluate only the first N samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// Process part K of N of the inputs (1 ≤ K ≤ N): a deterministic, balanced part, the same
    /// whatever order the inputs are given in. The N parts may share --out; `sglrp merge OUT`
    /// joins them (README "Clusters (Slurm)").
    #[arg(long, default_value = "1/1", value_name = "K/N")]
    shard: Shard,

    /// Seed of the Random method's maps (mixed with each image's path).
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Images per pass (default: 16 on a GPU, 1 on the CPU, as for explain).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    batch_size: Option<u16>,

    /// Refuse images larger than this many megapixels (checked before decoding).
    #[arg(long, default_value_t = 100.0, value_name = "MP")]
    max_megapixels: f64,

    /// No progress bar and no closing table; errors are still printed.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// The output folder the shards shared (--out of eval or explain).
    #[arg(value_name = "OUT")]
    out: PathBuf,

    /// No closing table; errors are still printed.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Images to compare on: files, folders and glob patterns, as for explain. Default: the
    /// bundled samples (weights/samples) topped up with seeded random images to --batch-size.
    #[arg(value_name = "INPUTS")]
    inputs: Vec<String>,

    // --device is the GPU compared (auto: cuda:0 when usable); --threads is the CPU reference's.
    #[command(flatten)]
    model: ModelArgs,

    /// Images per comparison. More inputs are compared batch by batch, keeping the worst of
    /// each comparison.
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch_size: u32,

    /// Rule sets to compare explanations under (comma-separated or repeated; default: all of
    /// paper, zennit, innvestigate).
    #[arg(long, value_delimiter = ',', value_name = "PRESET")]
    preset: Vec<Preset>,

    /// Methods to compare under each preset (comma-separated or repeated).
    #[arg(
        long,
        short,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "lrp,clrp,sglrp",
        value_name = "METHOD"
    )]
    method: Vec<MethodArg>,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Compare whole explanations only, not each layer's ops.
    #[arg(long)]
    no_layers: bool,

    /// Refuse images larger than this many megapixels (checked before decoding).
    #[arg(long, default_value_t = 100.0, value_name = "MP")]
    max_megapixels: f64,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Weights file to time. Default: VGG16 with random weights at --side.
    #[arg(long, value_name = "FILE", conflicts_with = "side")]
    model: Option<PathBuf>,

    /// Input side of the random-weight VGG16 timed without --model.
    #[arg(long, default_value_t = 224, value_name = "N",
          value_parser = clap::value_parser!(u16).range(32..))]
    side: u16,

    /// Where to run: auto (cuda:0 when usable, else the CPU), cpu, or cuda / cuda:N (the first
    /// device of a list).
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: Device,

    /// Also time a folder of images through `explain` (all of its default outputs, written to
    /// a temporary folder) and print images/s end to end beside the kernel-only figure.
    #[arg(long, value_name = "DIR")]
    end_to_end: Option<PathBuf>,

    /// Kernel arithmetic on a GPU: f32 (f32-accurate), tf32 or bf16 (tensor cores, looser
    /// bounds, docs/numerics.md). The CPU computes in f32 whatever is asked.
    #[arg(long, default_value = "f32", value_name = "PRECISION")]
    precision: Precision,

    /// Batch sizes to time (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch_size: Vec<u32>,

    /// Methods to time beside the forward pass (comma-separated or repeated).
    #[arg(
        long,
        short,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "lrp,clrp,sglrp",
        value_name = "METHOD"
    )]
    method: Vec<MethodArg>,

    /// Rule set: paper, zennit or innvestigate.
    #[arg(long, default_value = "paper", value_name = "PRESET")]
    preset: Preset,

    /// Timed runs per measurement, after one warm-up run.
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,

    /// CPU worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Weights file (default: the bundled demo model).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// List every class name (by default long lists are cut after 20).
    #[arg(long)]
    classes: bool,

    /// CPU worker threads to report (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    /// The device whose kernels to list (auto: cuda:0 when usable, else the CPU; of a list, the
    /// first).
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: Device,

    /// The precision to list the kernels at: f32, tf32 or bf16.
    #[arg(long, default_value = "f32", value_name = "PRECISION")]
    precision: Precision,
}

/// A method the CLI can run: the LRP family and the baselines of docs/evaluation.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Lrp,
    Clrp,
    Sglrp,
    Gradient,
    #[value(name = "guided_backprop", alias = "gbp")]
    GuidedBackprop,
    #[value(name = "gradcam")]
    GradCam,
    #[value(name = "guided_gradcam")]
    GuidedGradCam,
    /// A uniform random map (seed 0).
    Random,
}

impl MethodArg {
    pub fn method(self) -> sglrp::explain::Method {
        use sglrp::explain::Method;
        match self {
            MethodArg::Lrp => Method::Lrp,
            MethodArg::Clrp => Method::Clrp,
            MethodArg::Sglrp => Method::Sglrp,
            MethodArg::Gradient => Method::Gradient,
            MethodArg::GuidedBackprop => Method::GuidedBackprop,
            MethodArg::GradCam => Method::GradCam,
            MethodArg::GuidedGradCam => Method::GuidedGradCam,
            MethodArg::Random => Method::Random { seed: 0 },
        }
    }

    /// File-name form: `lrp`, `guided_gradcam`.
    pub fn name(self) -> &'static str {
        self.method().name()
    }

    /// Display form, as the paper writes it: `LRP`, `Guided Grad-CAM`.
    pub fn title(self) -> &'static str {
        self.method().title()
    }
}

/// The kinds of output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Format {
    Png,
    Overlay,
    Grid,
    Npy,
    Npz,
    Json,
    Stack,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Explain(args) => explain::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Info(args) => info::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
    };
    ExitCode::from(code)
}

/// Writes `text` to standard output. A closed pipe (`sglrp info | head -1`) ends the output
/// quietly (`Err(None)`); any other failure (`> /dev/full`) is one line (`Err(Some(line))`).
fn print_stdout(text: &str) -> Result<(), Option<String>> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(None),
        Err(e) => Err(Some(format!("standard output: {e}"))),
    }
}

/// [`print_stdout`] as an exit code for commands whose output is all on stdout: a closed pipe
/// is no failure, a full disk is.
fn print_or_exit(text: &str) -> Result<(), u8> {
    match print_stdout(text) {
        Ok(()) => Ok(()),
        Err(None) => Err(EXIT_OK),
        Err(Some(line)) => {
            report(line);
            Err(EXIT_INPUTS_FAILED)
        }
    }
}

/// Refuses a batch that cannot fit the device's memory, before anything is allocated.
fn check_batch_memory(
    model: &Model,
    batch: usize,
    heads: usize,
    caps: &sglrp::backend::open::Caps,
) -> Result<(), String> {
    let need = sglrp::pipeline::network::batch_bytes(model, batch, heads);
    match caps.memory_bytes {
        Some(have) if need > have => Err(format!(
            "--batch-size {batch}: a batch needs about {:.1} GB on {} and {:.1} GB is free; \
             use a smaller --batch-size",
            need as f64 / 1e9,
            caps.name,
            have as f64 / 1e9
        )),
        _ => Ok(()),
    }
}

/// Prints one error line. Every error the CLI reports goes through here.
fn report(message: impl std::fmt::Display) {
    eprintln!("error: {}", single_line(&message.to_string()));
}

/// `result`, or its error reported in one line as a usage error ([`EXIT_USAGE`], for `?` in a
/// command that returns its exit code as the error).
fn usage<T>(result: Result<T, impl std::fmt::Display>) -> Result<T, u8> {
    result.map_err(|e| {
        report(e);
        EXIT_USAGE
    })
}

/// Collapses a message onto one line.
fn single_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a bundled file may be: in the current folder, or in the crate's folder.
fn bundled(relative: &str) -> [PathBuf; 2] {
    [
        PathBuf::from(relative),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative),
    ]
}

/// The model path: `--model`, or the demo model in the current folder or in the crate's folder.
fn model_path(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let candidates = bundled(DEMO_MODEL);
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no --model given and the demo model was not found at {} or {}; \
                 pass --model FILE (a safetensors VGG file, see README \"Model files\")",
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

/// Loads the model named by `--model` (or the demo model), reporting failures as one line.
fn load_model(explicit: Option<&Path>, classes: Option<&Path>) -> Result<(PathBuf, Model), u8> {
    let path = model_path(explicit).map_err(|e| {
        report(e);
        EXIT_USAGE
    })?;
    let (mut model, loaded) = Model::load_reported(&path).map_err(|e| {
        report(format!("cannot load the model: {e}"));
        EXIT_USAGE
    })?;
    for note in &loaded.notes {
        eprintln!("note: {}: {}", path.display(), single_line(note));
    }
    if let Some(file) = classes {
        let names = read_class_file(file).and_then(|names| {
            for warning in &names.warnings {
                eprintln!("warning: {}", single_line(warning));
            }
            model.set_classes(names.names, file)
        });
        if let Err(e) = names {
            report(format!("--classes: {e}"));
            return Err(EXIT_USAGE);
        }
    }
    Ok((path, model))
}

/// Decimals that tell the probabilities of `classes` classes apart: 3 for up to 10 classes, one
/// more for each factor of 10 (5 for ImageNet's 1000).
fn probability_digits(classes: usize) -> usize {
    let mut digits = 3;
    let mut n = 10;
    while n < classes {
        digits += 1;
        n = n.saturating_mul(10);
    }
    digits
}

/// A percentage in [0, 100).
fn parse_percent(text: &str) -> Result<f32, String> {
    match text.trim().trim_end_matches('%').parse::<f32>() {
        Ok(p) if (0.0..100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "expected a percentage from 0 to below 100, got `{text}`"
        )),
    }
}

/// Removes repeated values, keeping the first of each.
fn unique<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Checks, before a long run, that a report can be written to `path` (`--json`): a probe file
/// beside it.
fn check_writable(path: &Path) -> Result<(), String> {
    let fail = |reason: String| format!("--json {}: {reason}", path.display());
    if path.is_dir() {
        return Err(fail("is a folder".into()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(".sglrp-write-check");
    write_atomic(&probe, b"").map_err(|e| fail(io_reason(e)))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n";
    write_atomic(path, text.as_bytes())
        .map_err(|e| format!("--json {}: {}", path.display(), io_reason(e)))
}

/// An I/O error's reason without the path, which the caller names.
fn io_reason(e: sglrp::Error) -> String {
    match e {
        sglrp::Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
