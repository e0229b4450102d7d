//! The VGG family as researchers have it, loaded as it is, against PyTorch and onnxruntime
//! (`tests/fixtures/make_vgg_family_fixtures.py`): torchvision's vgg11/13/16/19 with and without
//! batch-norm (folded into the convs when loaded), timm's VGGs, a `module.`-prefixed state dict,
//! and two ONNX exports imported by `weights/import_onnx.py`. Logits within 1e-5 relative
//! (docs/numerics.md §Bounds), probabilities within 1e-5 absolute.

mod cli;
mod common;

use std::path::PathBuf;

use common::{Fixture, fixtures, max_abs, rel_l2, write_safetensors};
use safetensors::SafeTensors;
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Network, softmax};
use sglrp::model::{Layout, Model};

const LOGITS_BOUND: f64 = 1e-5;
const PROBABILITY_BOUND: f64 = 1e-5;

fn family(name: &str) -> PathBuf {
    fixtures()
        .join("vgg_family")
        .join(format!("{name}.safetensors"))
}

/// The model's logits for the fixture's pixels, per image.
fn logits(model: &Model, fixture: &Fixture) -> Vec<Vec<f32>> {
    let net = Network::new(CpuBackend::new(None).unwrap(), model).unwrap();
    let input = model.preprocess.normalize(&fixture.get("pixels").1);
    net.classify(&input).unwrap()
}

/// Compares the model's logits with PyTorch's (float32 and float64) for `name`; returns the
/// worst relative error.
fn check_logits(model: &Model, fixture: &Fixture, name: &str) -> f64 {
    let mut worst = 0.0f64;
    for (i, z) in logits(model, fixture).iter().enumerate() {
        for reference in ["logits", "logits_f64"] {
            let (shape, want) = fixture.get(&format!("{name}.{reference}"));
            let want = &want[i * shape[1]..][..shape[1]];
            let err = rel_l2(z, want);
            worst = worst.max(err);
            assert!(
                err <= LOGITS_BOUND,
                "{name}, image {i}: logits vs PyTorch's {reference}: rel L2 {err:.2e}"
            );
        }
    }
    worst
}

#[test]
fn torchvision_and_timm_vggs_match_pytorch() {
    let fixture = Fixture::load("vgg_family.expected.safetensors");
    // name, layout, architecture, batch-norms folded, classes
    let cases = [
        ("tv_vgg11", Layout::Torchvision, "vgg11", 0, 10),
        ("tv_vgg13_bn", Layout::Torchvision, "vgg13_bn", 10, 10),
        ("tv_vgg16_bn", Layout::Torchvision, "vgg16_bn", 13, 1000),
        ("tv_vgg19", Layout::Torchvision, "vgg19", 0, 10),
        ("tv_vgg19_bn", Layout::Torchvision, "vgg19_bn", 16, 10),
        ("timm_vgg11_bn", Layout::Timm, "vgg11_bn", 8, 10),
        ("timm_vgg16", Layout::Timm, "vgg16", 0, 10),
    ];
    for (name, layout, architecture, folded, classes) in cases {
        let (model, report) = Model::load_reported(family(name)).unwrap();
        assert_eq!(report.layout, layout, "{name}");
        assert_eq!(report.architecture, architecture, "{name}");
        assert!(model.name.ends_with(architecture), "{name}: {}", model.name);
        assert_eq!(model.input_side, 64, "{name}");
        assert_eq!(model.num_classes(), classes, "{name}");
        let folded_note = report.notes.iter().find(|n| n.contains("batch-norm"));
        match folded {
            0 => assert!(folded_note.is_none(), "{name}: {:?}", report.notes),
            n => assert!(
                folded_note.is_some_and(|note| note.contains(&format!("folded {n} batch-norms"))
                    && note.contains("1e-5")),
                "{name}: {:?}",
                report.notes
            ),
        }
        let worst = check_logits(&model, &fixture, name);
        eprintln!(
            "{name}: worst logits rel L2 {worst:.2e}; notes {:?}",
            report.notes
        );
    }
}

#[test]
fn a_thousand_class_model_gets_the_imagenet_names() {
    let (model, report) = Model::load_reported(family("tv_vgg16_bn")).unwrap();
    assert_eq!(model.classes[0], "tench");
    assert_eq!(model.classes[999], "toilet tissue");
    assert!(
        report.notes.iter().any(|n| n.contains("ImageNet")),
        "{:?}",
        report.notes
    );
    let ten = Model::load(family("tv_vgg13_bn")).unwrap();
    assert_eq!(ten.classes[3], "class 3");
}

/// The raw tensors of a fixture, as (name, shape, f32 values); integer tensors are dropped.
fn raw(name: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(family(name)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(n, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (n, v.shape().to_vec(), values)
        })
        .collect()
}

#[test]
fn wrapper_prefixes_are_stripped_with_a_note() {
    let (plain, _) = Model::load_reported(family("tv_vgg13_bn")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // nn.DataParallel around the features only (torchvision's own ImageNet training did this),
    // and torch.compile's wrapper.
    for (wrap, says) in [
        (
            (|n: &str| n.replacen("features.", "features.module.", 1)) as fn(&str) -> String,
            "nn.DataParallel",
        ),
        (|n: &str| format!("_orig_mod.{n}"), "torch.compile"),
    ] {
        let renamed: Vec<_> = raw("tv_vgg13_bn")
            .into_iter()
            .map(|(n, s, v)| (wrap(&n), s, v))
            .collect();
        let path = dir.path().join("wrapped.safetensors");
        write_safetensors(&path, &renamed, None);
        let (model, report) = Model::load_reported(&path).unwrap();
        assert_eq!(model.layers, plain.layers, "{says}");
        assert!(
            report.notes.iter().any(|n| n.contains(says)),
            "{:?}",
            report.notes
        );
    }
    // The DataParallel fixture itself says so.
    let (_, report) = Model::load_reported(family("tv_vgg11")).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("`module.`")),
        "{:?}",
        report.notes
    );
}

#[test]
fn an_identity_batch_norm_leaves_the_conv_bit_for_bit() {
    // γ = 1, β = 0, μ = 0, σ² = 1 − ε: s = 1 exactly, so folding must not change a bit.
    let mut tensors = raw("tv_vgg19");
    let plain = Model::load(family("tv_vgg19")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Re-index features with a batch-norm after the first conv: 0 conv, 1 bn, 2 ReLU, 3 conv …
    for t in tensors.iter_mut() {
        if let Some(rest) = t.0.strip_prefix("features.") {
            let (index, param) = rest.split_once('.').unwrap();
            let index: usize = index.parse().unwrap();
            t.0 = format!("features.{}.{param}", index + usize::from(index > 0));
        }
    }
    let cout = tensors
        .iter()
        .find(|t| t.0 == "features.0.weight")
        .unwrap()
        .1[0];
    let eps = 1e-5f32;
    for (param, value) in [
        ("weight", 1.0),
        ("bias", 0.0),
        ("running_mean", 0.0),
        ("running_var", 1.0 - eps),
    ] {
        tensors.push((format!("features.1.{param}"), vec![cout], vec![value; cout]));
    }
    let path = dir.path().join("bn.safetensors");
    write_safetensors(&path, &tensors, None);
    let (model, report) = Model::load_reported(&path).unwrap();
    assert_eq!(report.architecture, "vgg19_bn");
    assert_eq!(model.layers, plain.layers);
}

#[test]
fn onnx_exports_match_onnxruntime() {
    let fixture = Fixture::load("vgg_family.expected.safetensors");
    for (name, layers) in [
        (
            "onnx_vgg11_bn",
            "conv2 pool conv4 pool conv8 conv8 pool conv16 conv16 pool conv16 conv16 pool flatten \
             dense16 affine dense16 dense10",
        ),
        (
            "onnx_vgg13_nhwc",
            "conv2 conv2 pool conv4 conv4 pool conv8 conv8 pool conv16 conv16 pool conv16 conv16 \
             pool flatten dense16 dense16 dense10",
        ),
    ] {
        let path = family(&format!("{name}.imported"));
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = header.metadata().as_ref().unwrap();
        let written = metadata["sglrp.layers"]
            .split_whitespace()
            .collect::<Vec<_>>();
        assert_eq!(written, layers.split_whitespace().collect::<Vec<_>>());
        let flatten = if name.ends_with("nhwc") { "hwc" } else { "chw" };
        assert_eq!(metadata["sglrp.flatten"], flatten);
        let (model, report) = Model::load_reported(&path).unwrap();
        assert_eq!(report.layout, Layout::Own);
        let (shape, expected) = fixture.get(&format!("{name}.probabilities"));
        let mut worst = 0.0f64;
        for (i, z) in logits(&model, &fixture).iter().enumerate() {
            let p = softmax(z);
            let err = max_abs(&p, &expected[i * shape[1]..][..shape[1]]);
            worst = worst.max(err);
            assert!(
                err <= PROBABILITY_BOUND,
                "{name}, image {i}: probabilities vs onnxruntime: max abs {err:.2e}"
            );
        }
        let logits_err = check_logits(&model, &fixture, name);
        eprintln!(
            "{name}: worst max abs probability difference {worst:.2e}, logits rel L2 {logits_err:.2e}"
        );
    }
}

#[test]
fn set_classes_checks_the_count_and_names_the_file() {
    let mut model = Model::load(family("tv_vgg13_bn")).unwrap();
    let file = std::path::Path::new("labels.txt");
    let names: Vec<String> = (0..10).map(|i| format!("kind {i}")).collect();
    let err = model
        .set_classes(names[..9].to_vec(), file)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels.txt") && err.contains("9 class names") && err.contains("10 outputs"),
        "{err}"
    );
    let mut blank = names.clone();
    blank[4] = " ".into();
    let err = model.set_classes(blank, file).unwrap_err().to_string();
    assert!(
        err.contains("labels.txt") && err.contains("class name 4"),
        "{err}"
    );
    model.set_classes(names.clone(), file).unwrap();
    assert_eq!(model.classes, names);
    model.validate().unwrap();
}

#[test]
fn sglrp_info_describes_every_fixture() {
    for (name, says) in [
        ("tv_vgg11", "vgg11"),
        ("tv_vgg13_bn", "vgg13_bn"),
        ("tv_vgg16_bn", "tench"),
        ("tv_vgg19", "vgg19"),
        ("tv_vgg19_bn", "vgg19_bn"),
        ("timm_vgg11_bn", "timm vgg11_bn"),
        ("timm_vgg16", "timm vgg16"),
        ("onnx_vgg11_bn.imported", "onnx_vgg11_bn"),
        ("onnx_vgg13_nhwc.imported", "onnx_vgg13_nhwc"),
    ] {
        let path = family(name);
        let run = cli::sglrp(
            &["info".as_ref(), "--model".as_ref(), path.as_os_str()],
            None,
        );
        run.assert_no_panic();
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(run.stdout.contains(says), "{name}:\n{}", run.stdout);
        assert!(
            run.stdout.contains("input     64×64×3"),
            "{name}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn other_vgg_like_stacks_and_extra_tensors() {
    let dir = tempfile::tempdir().unwrap();
    // vgg19 without its last conv (features.34): blocks 2-2-4-4-3, not a standard VGG, still one.
    let mut tensors: Vec<_> = raw("tv_vgg19")
        .into_iter()
        .filter(|t| !t.0.starts_with("features.34."))
        .collect();
    tensors.push(("aux_logits.weight".into(), vec![2], vec![0.5; 2]));
    let path = dir.path().join("custom.safetensors");
    write_safetensors(&path, &tensors, None);
    let (model, report) = Model::load_reported(&path).unwrap();
    assert_eq!(report.architecture, "VGG-like (15 convs, 5 pools)");
    assert_eq!(
        model.specs().len(),
        Model::load(family("tv_vgg19")).unwrap().specs().len() - 1
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("ignored 1 tensor") && n.contains("`aux_logits.weight`")),
        "{:?}",
        report.notes
    );
}
