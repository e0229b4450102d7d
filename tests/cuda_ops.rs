//! The CUDA backend on a GPU: every op against its CPU twin on odd shapes, VGG16 end to end for
//! every method and preset (docs/numerics.md §Bounds: relative L2 ≤ 1e-4), and — without a GPU — that the binary
//! carries its kernels and that a missing driver is an error, not a panic.
//!
//! The GPU tests are ignored here: run them with `cargo test --test cuda_ops -- --ignored` on a
//! machine with a CUDA device (benches/device_check.sh does).

mod common;
mod twins;

use sglrp::backend::cuda::{CudaBackend, config, driver_present, kernels, usable_devices};
use sglrp::bench::random_vgg16;
use sglrp::model::Model;

const SEED: u64 = 0xc0da_0005;

/// The kernel entry points the launchers call.
const ENTRIES: [&str; 20] = [
    "conv3x3_forward",
    "conv3x3_forward_v1",
    "conv_quotient",
    "conv_quotient_v1",
    "conv_transpose",
    "conv_transpose_v1",
    "conv_transpose_narrow",
    "dense_forward_partial",
    "dense_forward_reduce",
    "dense_quotient_partial",
    "dense_quotient_reduce",
    "dense_transpose_partial",
    "dense_transpose_reduce",
    "maxpool_forward",
    "maxpool_route",
    "prepare_conv",
    "positive",
    "relu_backward",
    "zbox_input",
    "zbox_sum",
];

#[test]
fn every_kernel_file_is_embedded_or_the_reason_is_given() {
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "cu").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    match kernels::MISSING {
        None => {
            for stem in &files {
                let ptx =
                    kernels::ptx(stem).unwrap_or_else(|| panic!("kernels/{stem}.cu not embedded"));
                assert!(
                    ptx.contains(".target sm_80"),
                    "{stem}: built for {}",
                    config::PTX_ARCH
                );
            }
            let entries: Vec<&str> = kernels::PTX
                .iter()
                .flat_map(|(_, p)| kernels::entries(p))
                .collect();
            for e in ENTRIES {
                assert!(
                    entries.contains(&e),
                    "kernel {e} missing from the PTX ({entries:?})"
                );
            }
            assert!(
                kernels::BUILT_WITH.starts_with("NVRTC"),
                "{}",
                kernels::BUILT_WITH
            );
        }
        Some(reason) => {
            assert!(kernels::PTX.is_empty());
            let message = sglrp::backend::cuda::kernels_missing().unwrap();
            assert!(message.contains("without CUDA kernels") && message.contains(reason));
            eprintln!("note: this build has no kernels: {reason}");
        }
    }
}

#[test]
fn without_a_driver_the_backend_is_an_error_not_a_panic() {
    if driver_present() {
        eprintln!("a CUDA driver is present here; the missing-driver path is not exercised");
        return;
    }
    let err = CudaBackend::new(0).err().expect("no driver, no backend");
    let message = err.to_string();
    assert!(message.contains("no CUDA driver found"), "{message}");
    assert!(usable_devices().is_err(), "auto takes the CPU");
}

fn gpu() -> CudaBackend {
    CudaBackend::new(0).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs a CUDA device"]
fn conv_forward_matches_the_cpu() {
    twins::conv_forward(&gpu(), SEED);
    let mut b = gpu();
    b.set_direct(true);
    twins::conv_forward(&b, SEED);
}

#[test]
#[ignore = "needs a CUDA device"]
fn conv_quotient_matches_the_cpu() {
    twins::conv_quotient(&gpu(), SEED + 1);
    let mut b = gpu();
    b.set_direct(true);
    twins::conv_quotient(&b, SEED + 1);
}

#[test]
#[ignore = "needs a CUDA device"]
fn conv_transpose_matches_the_cpu() {
    twins::conv_transpose(&gpu(), SEED + 2);
    let mut b = gpu();
    b.set_direct(true);
    twins::conv_transpose(&b, SEED + 2);
}

#[test]
#[ignore = "needs a CUDA device"]
fn heads_match_the_cpu() {
    twins::heads(&gpu(), SEED + 16);
}

#[test]
#[ignore = "needs a CUDA device"]
fn heatmap_matches_the_cpu() {
    twins::heatmap(&gpu(), SEED + 17);
}

#[test]
#[ignore = "needs a CUDA device"]
fn narrow_conv_transpose_matches_the_cpu() {
    twins::conv_transpose_narrow(&gpu(), SEED + 18);
}

#[test]
#[ignore = "needs a CUDA device"]
fn maxpool_matches_the_cpu() {
    let b = gpu();
    twins::maxpool(&b, SEED + 3);
}

#[test]
#[ignore = "needs a CUDA device"]
fn dense_ops_match_the_cpu() {
    twins::dense(&gpu(), SEED + 4);
}

#[test]
#[ignore = "needs a CUDA device"]
fn relu_backward_matches_the_cpu() {
    twins::relu_backward(&gpu(), SEED + 5);
}

#[test]
#[ignore = "needs a CUDA device"]
fn zbox_ends_match_the_cpu() {
    twins::zbox(&gpu(), SEED + 9);
}

#[test]
#[ignore = "needs a CUDA device"]
fn shape_errors_are_errors() {
    twins::shape_errors(&gpu());
}

#[test]
#[ignore = "needs a CUDA device"]
fn small_networks_match_the_cpu_end_to_end() {
    for (file, seed) in [("small_vgg", SEED + 6), ("odd_vgg", SEED + 7)] {
        let model =
            Model::load(common::fixtures().join(format!("{file}.model.safetensors"))).unwrap();
        twins::network(gpu(), &model, 3, seed, true);
        twins::gradients(gpu(), &model, 3, seed);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn vgg16_matches_the_cpu_end_to_end() {
    let model = random_vgg16(224).unwrap();
    twins::network(gpu(), &model, 2, SEED + 8, false);
    twins::gradients(gpu(), &model, 2, SEED + 8);
}

#[test]
fn verify_and_bench_run_on_the_cpu() {
    use sglrp::backend::cpu::CpuBackend;
    use sglrp::bench::{BenchOptions, bench, random_images};
    use sglrp::explain::{Method, Network};
    use sglrp::verify::{VerifyOptions, verify};
    let model = Model::load(common::fixtures().join("small_vgg.model.safetensors")).unwrap();
    let input = random_images(&model, 2, 3);
    let cpu = || CpuBackend::new(Some(2)).unwrap();
    let report = verify(&model, cpu(), cpu(), &input, &VerifyOptions::default()).unwrap();
    assert!(report.passed(), "{}", report.to_markdown());
    // conv1_1 forward; then per conv after the first: forward, quotient, redistribution, …
    assert!(report.layers.iter().any(|c| c.what == "conv1_2 quotient"));
    assert_eq!(
        report.methods.len(),
        1 + 3 * 3,
        "logits + 3 presets × 3 methods"
    );
    assert!(report.methods.iter().all(|c| c.rel_l2 == 0.0));

    let net = Network::new(cpu(), &model).unwrap();
    let options = BenchOptions {
        batch_sizes: vec![1, 2],
        methods: vec![Method::Sglrp],
        repeats: 1,
        ..BenchOptions::default()
    };
    let images = |n: usize| random_images(&model, n, 5);
    let report = bench(&net, &images, &options, None, None).unwrap();
    assert_eq!(report.rows.len(), 4);
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.images_per_s > 0.0 && r.fraction_of_peak.is_none())
    );
    assert!(report.to_markdown().contains("| sglrp | 2 |"));
}
