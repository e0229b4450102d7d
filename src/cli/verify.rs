//! `sglrp verify`: a GPU against the CPU reference (docs/numerics.md §Bounds) with [`sglrp::verify`], on the given
//! images or on the bundled samples topped up with seeded random images. Prints the report;
//! exit 1 when a comparison exceeds the bound or an input could not be read.

use std::path::PathBuf;

use sglrp::backend::Backend;
use sglrp::backend::cuda::CudaBackend;
use sglrp::bench::random_images;
use sglrp::explain::Preset;
use sglrp::io::images::read_rgb;
use sglrp::model::Model;
use sglrp::verify::{VerifyOptions, VerifyReport, verify};

use super::inputs;
use super::{
    Device, EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, SAMPLES, VerifyArgs, bundled, check_writable,
    device, load_model, report, unique, write_json,
};

/// Seed of the random images that top up the default batch (the same as benches/cuda.rs).
const SEED: u64 = 7;

/// One call of [`verify`]: image files and how many random images to add.
struct Batch {
    files: Vec<PathBuf>,
    random: usize,
}

pub fn run(args: VerifyArgs) -> u8 {
    let (_, model) = match load_model(args.model.model.as_deref(), args.model.classes.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Some(Err(e)) = args.json.as_deref().map(check_writable) {
        report(e);
        return EXIT_USAGE;
    }
    // Opened up front so that an unusable GPU stops the run before any work.
    let (ordinal, mut first) = match open_gpu(args.model.device.clone()) {
        Ok((ordinal, gpu)) => (ordinal, Some(gpu)),
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    // verify() takes its backends by value: each batch after the first opens the GPU again.
    let open = || {
        first.take().map_or_else(
            || {
                device::cuda_backend(ordinal)
                    .map_err(|why| format!("--device cuda:{ordinal}: {why}"))
            },
            Ok,
        )
    };
    let batch_size = args.batch_size as usize;
    let (batches, unlisted) = if args.inputs.is_empty() {
        (vec![default_batch(batch_size)], 0)
    } else {
        let expanded = inputs::expand(&args.inputs, None);
        for e in &expanded.errors {
            report(e);
        }
        let files: Vec<PathBuf> = expanded.inputs.into_iter().map(|i| i.path).collect();
        let batches = files
            .chunks(batch_size)
            .map(|files| Batch {
                files: files.to_vec(),
                random: 0,
            })
            .collect();
        (batches, expanded.errors.len())
    };
    let options = VerifyOptions {
        presets: if args.preset.is_empty() {
            Preset::ALL.to_vec()
        } else {
            unique(&args.preset)
        },
        methods: unique(&args.method).iter().map(|m| m.method()).collect(),
        layers: !args.no_layers,
        ..VerifyOptions::for_precision(args.model.precision)
    };
    let max_pixels = (args.max_megapixels * 1e6).max(1.0) as u64;
    let (total, unread) = match compare_all(
        &model,
        &batches,
        open,
        args.model.threads,
        &options,
        max_pixels,
    ) {
        Ok((Some(total), unread)) => (total, unread),
        Ok((None, _)) => {
            report("verify: no input image could be read");
            return EXIT_USAGE;
        }
        Err(e) => {
            report(e);
            return EXIT_USAGE;
        }
    };
    print!("{}", total.to_markdown());
    if let Some(Err(e)) = args.json.as_deref().map(|path| write_json(path, &total)) {
        report(e);
        return EXIT_USAGE;
    }
    for c in total.failures() {
        let kappa = if c.cancellation > 1.0 {
            format!(" × κ {:.3}", c.cancellation)
        } else {
            String::new()
        };
        report(format!(
            "{}: relative L2 {:.3e} exceeds the bound {:.0e}{kappa} (max abs {:.3e})",
            c.what, c.rel_l2, c.bound, c.max_abs
        ));
    }
    if unlisted + unread > 0 || !total.passed() {
        EXIT_INPUTS_FAILED
    } else {
        EXIT_OK
    }
}

/// The GPU that `--device` names, with its ordinal, or why there is none to compare.
fn open_gpu(asked: Device) -> Result<(usize, CudaBackend), String> {
    match asked {
        Device::Cuda(list) if list.len() == 1 => device::cuda_backend(list[0])
            .map(|gpu| (list[0], gpu))
            .map_err(|why| format!("--device cuda:{}: {why}", list[0])),
        Device::Cuda(_) | Device::CudaAll => Err(
            "verify compares one GPU against the CPU reference; name it with --device cuda:N"
                .into(),
        ),
        Device::Auto => device::cuda_backend(0).map(|gpu| (0, gpu)).map_err(|why| {
            format!(
                "verify compares a GPU against the CPU reference, and --device auto found no \
                 usable one: {why}"
            )
        }),
        Device::Cpu => Err(
            "verify compares a GPU against the CPU reference: with --device cpu \
                            there is nothing to compare; use --device cuda or cuda:N"
                .into(),
        ),
    }
}

/// The bundled samples (as many as fit) and random images up to `size`.
fn default_batch(size: usize) -> Batch {
    let mut files: Vec<PathBuf> = bundled(SAMPLES)
        .iter()
        .find(|p| p.is_dir())
        .map(|dir| {
            let expanded = inputs::expand(&[dir.to_string_lossy().into_owned()], None);
            expanded.inputs.into_iter().map(|i| i.path).collect()
        })
        .unwrap_or_default();
    files.truncate(size);
    Batch {
        random: size - files.len(),
        files,
    }
}

/// Every batch through [`verify`] against a fresh CPU reference, the reports merged (`None` if
/// no image could be read), and how many images could not be read (each reported).
fn compare_all<B: Backend>(
    model: &Model,
    batches: &[Batch],
    mut open: impl FnMut() -> Result<B, String>,
    threads: Option<u16>,
    options: &VerifyOptions,
    max_pixels: u64,
) -> Result<(Option<VerifyReport>, usize), String> {
    let (mut total, mut unread) = (None::<VerifyReport>, 0);
    for batch in batches {
        let mut input = Vec::new();
        for path in &batch.files {
            match read_rgb(path, max_pixels) {
                Ok(img) => input.extend(model.preprocess.prepare(&img, model.input_side)),
                Err(e) => {
                    report(e);
                    unread += 1;
                }
            }
        }
        input.extend(random_images(model, batch.random, SEED));
        if input.is_empty() {
            continue;
        }
        let cpu = device::cpu_backend(threads)?;
        let next = verify(model, open()?, cpu, &input, options).map_err(|e| e.to_string())?;
        match &mut total {
            Some(t) => t.merge(next),
            None => total = Some(next),
        }
    }
    Ok((total, unread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sglrp::backend::cpu::CpuBackend;
    use sglrp::explain::Method;

    /// The CPU against itself: the batching, the samples, the random top-up and the merge.
    #[test]
    fn batches_are_compared_and_merged() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let model = Model::load(root.join("tests/fixtures/small_vgg.model.safetensors")).unwrap();
        let samples = default_batch(10);
        assert_eq!(samples.files.len() + samples.random, 10);
        let missing = Batch {
            files: vec![root.join("no/such/image.png")],
            random: 1,
        };
        let options = VerifyOptions {
            presets: vec![Preset::Paper],
            methods: vec![Method::Lrp, Method::GradCam],
            ..VerifyOptions::default()
        };
        let (total, unread) = compare_all(
            &model,
            &[samples, missing],
            || CpuBackend::new(Some(1)).map_err(|e| e.to_string()),
            Some(1),
            &options,
            1 << 20,
        )
        .unwrap();
        let total = total.unwrap();
        assert_eq!(unread, 1);
        assert_eq!(total.images, 11);
        assert!(total.passed(), "{}", total.to_markdown());
        assert!(!total.layers.is_empty());
        let whats: Vec<&str> = total.methods.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(whats, ["logits", "paper lrp", "paper gradcam"]);
    }
}
