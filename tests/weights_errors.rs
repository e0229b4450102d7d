//! Every way a weights file can be wrong yields an error naming the file, the tensor and what was
//! expected; none panics. f16 and bf16 files load, upcast.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::fixtures;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sglrp::model::{Dtype as SaveDtype, Model};

/// The small fixture model's tensors (raw bytes) and metadata, to be edited and written back.
struct Raw {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl Raw {
    fn small_vgg() -> Raw {
        let bytes = std::fs::read(fixtures().join("small_vgg.model.safetensors")).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Raw {
            tensors,
            metadata: header.metadata().clone().unwrap(),
        }
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }

    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        let views: Vec<(String, TensorView)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, Some(self.metadata.clone()), &path).unwrap();
        path
    }
}

/// Loads `path`, expecting an error whose message contains the path and every `needle`.
fn expect_error(path: &Path, needles: &[&str]) {
    let err = Model::load(path)
        .expect_err("the file must be rejected")
        .to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "mentions `{needle}`: {err}");
    }
}

#[test]
fn missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::small_vgg();
    raw.tensors.retain(|t| t.0 != "layers.3.weight");
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &["layers.3.weight", "missing", "[16, 8, 3, 3]"],
    );
}

#[test]
fn misshapen_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::small_vgg();
    let t = raw.tensor("layers.0.weight");
    t.2 = vec![8, 3, 9, 1];
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &[
            "layers.0.weight",
            "expected shape [8, 3, 3, 3]",
            "[8, 3, 9, 1]",
        ],
    );
}

#[test]
fn unsupported_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::small_vgg();
    raw.tensor("layers.0.bias").1 = Dtype::I32;
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &["layers.0.bias", "unsupported dtype", "F32, F16 or BF16"],
    );
}

#[test]
fn not_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let mut raw = Raw::small_vgg();
        raw.tensor("layers.11.weight").3[40..44].copy_from_slice(&bad.to_le_bytes());
        expect_error(
            &raw.write(dir.path(), "m.safetensors"),
            &["layers.11.weight", "not finite", "index 10"],
        );
    }
}

#[test]
fn truncated_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&truncated, &["not a valid safetensors file"]);
    let text = dir.path().join("notes.safetensors");
    std::fs::write(&text, "these are not weights").unwrap();
    expect_error(&text, &["not a valid safetensors file"]);
    let empty = dir.path().join("empty.safetensors");
    std::fs::write(&empty, "").unwrap();
    expect_error(&empty, &["not a valid safetensors file"]);
    expect_error(&dir.path().join("absent.safetensors"), &["No such file"]);
}

#[test]
fn metadata_that_contradicts_the_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "sglrp.layers",
            "conv16 conv8 pool conv16 conv16 pool conv32 pool conv32 pool flatten dense32 dense10",
            &["layers.0.weight", "expected shape [16, 3, 3, 3]"],
        ),
        (
            "sglrp.input_size",
            "64",
            &["layers.11.weight", "expected shape [32, 512]"],
        ),
        (
            "sglrp.classes",
            r#"["a", "b"]"#,
            &["sglrp.classes", "2 names", "10 outputs"],
        ),
        ("sglrp.flatten", "whc", &["sglrp.flatten", "chw"]),
        (
            "sglrp.layers",
            "conv8 conv8 pool tanh",
            &["sglrp.layers", "unknown layer `tanh`"],
        ),
        (
            "sglrp.preprocess",
            "imagenet",
            &["sglrp.preprocess", "torchvision"],
        ),
    ];
    for (key, value, needles) in cases {
        let mut raw = Raw::small_vgg();
        raw.metadata.insert(key.into(), value.into());
        expect_error(&raw.write(dir.path(), "m.safetensors"), needles);
    }
    let mut raw = Raw::small_vgg();
    raw.metadata.remove("sglrp.layers");
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &["metadata `sglrp.layers` is missing"],
    );
}

#[test]
fn unknown_layouts_and_batchnorm_vggs() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::small_vgg();
    raw.metadata.clear();
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &["not a VGG weights file", "features.N.weight"],
    );

    // torchvision keys with a batch-norm right after a conv (vgg*_bn).
    let mut raw = Raw::small_vgg();
    raw.metadata.clear();
    for t in raw.tensors.iter_mut() {
        t.0 =
            t.0.replace("layers.0.", "features.0.")
                .replace("layers.11.", "classifier.0.");
    }
    raw.tensors.push((
        "features.1.running_mean".into(),
        Dtype::F32,
        vec![8],
        vec![0; 32],
    ));
    expect_error(&raw.write(dir.path(), "bn.safetensors"), &["batch-norm"]);
}

#[test]
fn half_precision_files_load_upcast() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    for (dtype, round) in [
        (
            SaveDtype::F16,
            (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        (SaveDtype::Bf16, |v: f32| half::bf16::from_f32(v).to_f32()),
    ] {
        let path = dir.path().join("half.safetensors");
        model.save(&path, dtype).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded.classes, model.classes);
        assert_eq!(loaded.specs(), model.specs());
        for (a, b) in loaded.layers.iter().zip(&model.layers) {
            if let (sglrp::model::Layer::Conv(a), sglrp::model::Layer::Conv(b)) = (a, b) {
                let rounded: Vec<f32> = b.weight.iter().map(|&v| round(v)).collect();
                assert_eq!(a.weight, rounded, "{dtype:?}");
            }
        }
    }
}

#[test]
fn saving_and_loading_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let path = dir.path().join("copy.safetensors");
    model.save(&path, SaveDtype::F32).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.layers, model.layers);
    assert_eq!(loaded.preprocess, model.preprocess);
    assert_eq!(loaded.input_side, model.input_side);
}
