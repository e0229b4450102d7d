//! End-to-end tests of `sglrp info`: layers, shapes, parameters, FLOPs, pre-processing, classes,
//! devices.

mod cli;

use cli::*;
use sglrp::model::{Layer, Model};

#[test]
fn describes_the_small_model() {
    let model_path = small_model();
    let run = sglrp(
        &["info".as_ref(), "--model".as_ref(), model_path.as_os_str()],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    let model = Model::load(&model_path).unwrap();
    for (name, (_, dims)) in model.layer_names().iter().zip(model.dims()) {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
        assert!(row.contains(&dims.to_string()), "{row}");
    }
    let params: usize = model
        .layers
        .iter()
        .map(|l| match l {
            Layer::Conv(p) => p.weight.len() + p.bias.len(),
            Layer::Dense(p) => p.weight.len() + p.bias.len(),
            _ => 0,
        })
        .sum();
    let grouped = params
        .to_string()
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        out.lines()
            .any(|l| l.starts_with("parameters") && l.ends_with(&format!(" {grouped}"))),
        "{out}"
    );
    // Forward FLOPs: 2 · (H·W·Cin·Cout·9 per conv + in·out per dense).
    let mut flops = 0u64;
    for (layer, (_, o)) in model.layers.iter().zip(model.dims()) {
        flops += match layer {
            Layer::Conv(p) => 2 * (o.h * o.w * p.cin * p.cout * 9) as u64,
            Layer::Dense(p) => 2 * (p.inputs * p.outputs) as u64,
            _ => 0,
        };
    }
    let forward = format!("{:.2} MFLOP", flops as f64 / 1e6);
    assert!(
        out.lines()
            .any(|l| l.starts_with("FLOPs per image, forward pass") && l.ends_with(&forward)),
        "{forward}:\n{out}"
    );
    assert!(out.contains("FLOPs per explanation"), "{out}");
    assert!(out.contains("torchvision"), "{out}");
    assert!(out.contains("classes   10"), "{out}");
    assert!(out.contains("great white shark"), "{out}");
    assert!(out.contains("cpu ") && out.contains("threads"), "{out}");
    assert!(out.contains("cuda"), "{out}");
}

#[test]
fn default_model_is_the_demo_model() {
    let run = sglrp(&["info"], None);
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("demo_vgg16_fashion"), "{}", run.stdout);
    assert!(run.stdout.contains("conv5_3"), "{}", run.stdout);
    assert!(run.stdout.contains("caffe"), "{}", run.stdout);
    // From another folder the demo model is still found through the crate's path.
    let elsewhere = tempfile::tempdir().unwrap();
    let run2 = sglrp(&["info"], Some(elsewhere.path()));
    assert_eq!(run2.code, run.code, "{}", run2.stderr);
}

#[test]
fn lists_the_kernels_of_the_cpu_at_any_precision() {
    for precision in ["f32", "bf16"] {
        let run = sglrp(&["info", "--device", "cpu", "--precision", precision], None);
        run.assert_no_panic();
        assert_eq!(run.code, 0, "{}", run.stderr);
        let out = &run.stdout;
        assert!(
            out.contains(&format!("kernels on cpu at --precision {precision}")),
            "{out}"
        );
        let row = out
            .lines()
            .find(|l| l.contains("every op"))
            .unwrap_or_else(|| panic!("no kernel row:\n{out}"));
        assert!(
            row.contains("CPU reference") && row.ends_with("(f32)"),
            "{row}"
        );
        // Asked for another precision, the CPU says it computes in f32.
        assert_eq!(
            out.contains("note: the CPU backend computes in f32"),
            precision != "f32"
        );
    }
    let bad = sglrp(&["info", "--precision", "fp8"], None);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
