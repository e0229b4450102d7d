//! Every way a weights file can be wrong yields an error naming the file, the tensor and what was
//! expected; none panics, hangs or exhausts memory. f16 and bf16 files load, upcast.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::fixtures;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::Network;
use sglrp::model::{DenseParams, Dtype as SaveDtype, Layer, Model};

/// The small fixture model's tensors (raw bytes) and metadata, to be edited and written back.
struct Raw {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl Raw {
    fn small_vgg() -> Raw {
        Raw::read(&fixtures().join("small_vgg.model.safetensors"))
    }

    /// A torchvision (`tv_…`) or timm (`timm_…`) fixture of `tests/fixtures/vgg_family/`.
    fn family(name: &str) -> Raw {
        Raw::read(&fixtures().join(format!("vgg_family/{name}.safetensors")))
    }

    fn read(path: &Path) -> Raw {
        let bytes = std::fs::read(path).unwrap();
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
            metadata: header.metadata().clone().unwrap_or_default(),
        }
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }

    /// Replaces (or adds) `name` with an f32 tensor of `shape` holding `value` everywhere.
    fn set(&mut self, name: &str, shape: &[usize], value: f32) {
        self.tensors.retain(|t| t.0 != name);
        let len: usize = shape.iter().product();
        let bytes = value.to_le_bytes().repeat(len);
        self.tensors
            .push((name.into(), Dtype::F32, shape.to_vec(), bytes));
    }

    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        let views: Vec<(String, TensorView)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let metadata = (!self.metadata.is_empty()).then(|| self.metadata.clone());
        safetensors::serialize_to_file(views, metadata, &path).unwrap();
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
fn unknown_layouts_are_not_vgg() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = Raw::small_vgg();
    raw.metadata.clear();
    expect_error(
        &raw.write(dir.path(), "m.safetensors"),
        &[
            "not a VGG weights file",
            "`layers.0.bias`",
            "features.N.weight",
        ],
    );
    // A ResNet's names, an AlexNet's 11×11 first conv, a DenseNet's named features.
    let mut resnet = Raw::small_vgg();
    resnet.metadata.clear();
    let names = ["conv1.weight", "fc.weight", "layer1.0.conv1.weight"];
    for (i, t) in resnet.tensors.iter_mut().enumerate() {
        t.0 = format!("{}{i}", names[i % 3]);
    }
    expect_error(
        &resnet.write(dir.path(), "resnet.safetensors"),
        &["not a VGG weights file", "conv1.weight"],
    );
    let mut alexnet = Raw::family("tv_vgg19");
    alexnet.set("features.0.weight", &[2, 3, 11, 11], 0.1);
    expect_error(
        &alexnet.write(dir.path(), "alexnet.safetensors"),
        &[
            "features.0.weight",
            "3×3 conv weight [Cout, 3, 3, 3]",
            "[2, 3, 11, 11]",
        ],
    );
    let mut densenet = Raw::family("tv_vgg19");
    densenet.set("features.conv0.weight", &[2, 3, 3, 3], 0.1);
    expect_error(
        &densenet.write(dir.path(), "densenet.safetensors"),
        &["features.conv0.weight", "not a VGG"],
    );
}

#[test]
fn batch_norms_that_cannot_be_folded() {
    let dir = tempfile::tempdir().unwrap();
    // vgg13_bn: conv 0, bn 1, ReLU 2, conv 3, bn 4, ReLU 5, pool 6, …
    let mut negative = Raw::family("tv_vgg13_bn");
    negative.set("features.4.running_var", &[2], -1.0);
    expect_error(
        &negative.write(dir.path(), "negative.safetensors"),
        &["features.4.running_var", "negative"],
    );
    let mut overflow = Raw::family("tv_vgg13_bn");
    overflow.set("features.1.weight", &[2], 3e38);
    overflow.set("features.1.running_var", &[2], 0.0);
    expect_error(
        &overflow.write(dir.path(), "overflow.safetensors"),
        &["features.1.running_var", "not finite"],
    );
    // A batch-norm after the ReLU (index 2 instead of 1) is not torchvision's vgg*_bn.
    let mut late = Raw::family("tv_vgg13_bn");
    for t in late.tensors.iter_mut() {
        t.0 = t.0.replace("features.1.", "features.2.");
    }
    expect_error(
        &late.write(dir.path(), "late.safetensors"),
        &["features.2.running_mean", "does not directly follow a conv"],
    );
    let mut eps = Raw::family("tv_vgg13_bn");
    for bad in ["0", "-1e-5", "NaN", "small"] {
        eps.metadata.insert("sglrp.bn_eps".into(), bad.into());
        expect_error(
            &eps.write(dir.path(), "eps.safetensors"),
            &["sglrp.bn_eps", bad],
        );
    }
    // A valid ε is used: the folded weights follow it.
    let plain = Model::load(fixtures().join("vgg_family/tv_vgg13_bn.safetensors")).unwrap();
    eps.metadata.insert("sglrp.bn_eps".into(), "0.5".into());
    let (model, report) = Model::load_reported(eps.write(dir.path(), "eps.safetensors")).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("ε = 5e-1")),
        "{:?}",
        report.notes
    );
    assert_ne!(model.layers[0], plain.layers[0]);
}

/// A 0-d tensor (or one of another rank) where a weight should be, in every layout.
#[test]
fn tensors_of_the_wrong_rank() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[usize], &str); 7] = [
        ("tv_vgg19", "features.0.weight", &[], "[Cout, 3, 3, 3]"),
        (
            "tv_vgg19",
            "features.2.weight",
            &[2, 2, 9],
            "[Cout, 2, 3, 3]",
        ),
        ("tv_vgg19", "classifier.0.weight", &[], "[outputs, inputs]"),
        (
            "tv_vgg19",
            "classifier.3.weight",
            &[16, 16, 1],
            "[outputs, inputs]",
        ),
        ("tv_vgg13_bn", "features.1.running_var", &[], "[2]"),
        (
            "timm_vgg11_bn",
            "pre_logits.fc1.weight",
            &[],
            "[outputs, 16, s, s]",
        ),
        ("timm_vgg11_bn", "head.fc.weight", &[], "[classes, 16]"),
    ];
    for (fixture, tensor, shape, expected) in cases {
        let mut raw = Raw::family(fixture);
        raw.set(tensor, shape, 0.5);
        expect_error(
            &raw.write(dir.path(), "rank.safetensors"),
            &[tensor, expected, &format!("{shape:?}")],
        );
    }
    let mut own = Raw::small_vgg();
    own.set("layers.0.weight", &[], 0.5);
    expect_error(
        &own.write(dir.path(), "own.safetensors"),
        &["layers.0.weight", "expected shape [8, 3, 3, 3], found []"],
    );
}

#[test]
fn dense_layers_without_inputs() {
    let dir = tempfile::tempdir().unwrap();
    for (fixture, tensor, shape) in [
        ("tv_vgg19", "classifier.0.weight", &[16usize, 0][..]),
        ("tv_vgg19", "classifier.0.weight", &[16, 1]),
        ("timm_vgg16", "pre_logits.fc1.weight", &[16, 16, 0, 0]),
    ] {
        let mut raw = Raw::family(fixture);
        raw.set(tensor, shape, 0.5);
        expect_error(
            &raw.write(dir.path(), "empty.safetensors"),
            &[tensor, "expected"],
        );
    }
    // Built by hand: validation refuses it, and nothing panics on the way.
    let mut model = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let flatten = model
        .layers
        .iter()
        .position(|l| *l == Layer::Flatten)
        .unwrap();
    model.layers.insert(
        flatten + 1,
        Layer::Dense(DenseParams {
            inputs: 0,
            outputs: 4,
            weight: vec![],
            bias: vec![0.0; 4],
        }),
    );
    let err = model.validate().unwrap_err().to_string();
    assert!(err.contains("do not fit its input"), "{err}");
    assert!(Network::new(CpuBackend::new(None).unwrap(), &model).is_err());
}

#[test]
fn sizes_that_overflow_or_exceed_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // 70 conv blocks, each followed by a pool: an input side of 2^70.
    let mut raw = Raw::family("tv_vgg19");
    raw.tensors.retain(|t| !t.0.starts_with("features."));
    for block in 0..70 {
        let cin = if block == 0 { 3 } else { 1 };
        raw.set(
            &format!("features.{}.weight", 3 * block),
            &[1, cin, 3, 3],
            0.1,
        );
        raw.set(&format!("features.{}.bias", 3 * block), &[1], 0.1);
    }
    raw.set("classifier.0.weight", &[16, 1], 0.1);
    expect_error(
        &raw.write(dir.path(), "pools.safetensors"),
        &["classifier.0.weight", "1·2^70", "over the 2048"],
    );
    // A first dense layer that implies a 3200-pixel input (a 100×100 map after 5 pools).
    let mut wide = Raw::family("tv_vgg19");
    wide.set("classifier.0.weight", &[16, 16 * 100 * 100], 0.0);
    expect_error(
        &wide.write(dir.path(), "wide.safetensors"),
        &["classifier.0.weight", "100·2^5", "over the 2048"],
    );
    let mut timm = Raw::family("timm_vgg16");
    timm.set("pre_logits.fc1.weight", &[16, 16, 100, 100], 0.0);
    expect_error(
        &timm.write(dir.path(), "timm.safetensors"),
        &["pre_logits.fc1.weight", "over the 2048"],
    );
    // The own format's input side: bounded, and near 2^32 or past u64 a clear error.
    for side in [
        "0",
        "2049",
        "4294967296",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        let mut own = Raw::small_vgg();
        own.metadata.insert("sglrp.input_size".into(), side.into());
        expect_error(
            &own.write(dir.path(), "side.safetensors"),
            &["sglrp.input_size", side, "1 to 2048"],
        );
    }
    // Many pools in the own format: the map empties before the side can overflow anything.
    let mut pools = Raw::small_vgg();
    let many = format!("conv8 {}flatten dense32 dense10", "pool ".repeat(64));
    pools.metadata.insert("sglrp.layers".into(), many);
    pools
        .metadata
        .insert("sglrp.input_size".into(), "2048".into());
    expect_error(
        &pools.write(dir.path(), "many.safetensors"),
        &["sglrp.layers", "too small to pool"],
    );
}

#[test]
fn hand_built_models_report_instead_of_panicking() {
    let good = Model::load(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let conv = good.layers[0].clone();
    let mut cases: Vec<Model> = Vec::new();
    for (layers, side) in [
        (vec![Layer::Flatten, Layer::Pool], 32),
        (vec![], 32),
        (good.layers.clone(), 0),
        (good.layers.clone(), 1 << 33),
        (good.layers.clone(), usize::MAX),
        (
            vec![
                conv.clone(),
                Layer::Pool,
                Layer::Pool,
                Layer::Pool,
                Layer::Pool,
                Layer::Pool,
                Layer::Pool,
                Layer::Flatten,
            ],
            32,
        ),
    ] {
        let mut model = good.clone();
        model.layers = layers;
        model.input_side = side;
        cases.push(model);
    }
    let mut wrong_weights = good.clone();
    if let Layer::Conv(p) = &mut wrong_weights.layers[0] {
        p.cout = usize::MAX / 4;
    }
    cases.push(wrong_weights);
    for model in &cases {
        let dims = model.dims();
        assert_eq!(dims.len(), model.layers.len());
        let _ = model.layer_names();
        let costs = sglrp::model::layer_costs(&model.specs(), &dims);
        assert_eq!(costs.len(), dims.len());
        let err = model.validate().expect_err("an invalid model").to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(Network::new(CpuBackend::new(None).unwrap(), model).is_err());
    }
}

/// Runs `load` on a thread and fails if it takes more than a few seconds (a FIFO would block).
fn load_within_seconds(path: &Path) -> String {
    let (send, receive) = std::sync::mpsc::channel();
    let owned = path.to_owned();
    std::thread::spawn(move || {
        let _ = send.send(Model::load(&owned).map(|_| ()).map_err(|e| e.to_string()));
    });
    receive
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("loading {} did not return", path.display()))
        .expect_err("must be refused")
}

#[test]
fn special_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (path, kind) in [
        (fifo.as_path(), "FIFO"),
        (Path::new("/dev/zero"), "device"),
        (dir.path(), "folder"),
    ] {
        let err = load_within_seconds(path);
        assert!(
            err.contains(&path.display().to_string())
                && err.contains(kind)
                && err.contains("not a regular file"),
            "{err}"
        );
    }
}

#[test]
fn the_header_is_checked_against_the_file_size_first() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixtures().join("small_vgg.model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cases: [(Vec<u8>, &[&str]); 5] = [
        // A header length past the end of the file.
        (
            [&(bytes.len() as u64).to_le_bytes()[..], &bytes[8..]].concat(),
            &["header length", "exceeds"],
        ),
        (
            u64::MAX.to_le_bytes().to_vec(),
            &["header length 18446744073709551615"],
        ),
        (vec![1, 2, 3], &["3 bytes, fewer than the 8"]),
        // The header describes more tensor data than the file holds.
        (
            bytes[..bytes.len() - 4].to_vec(),
            &["describes", "bytes of tensor data"],
        ),
        // A header that is not JSON.
        (
            [
                &bytes[..8],
                &vec![b'x'; header_len][..],
                &bytes[8 + header_len..],
            ]
            .concat(),
            &["header"],
        ),
    ];
    for (i, (content, needles)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.safetensors"));
        std::fs::write(&path, content).unwrap();
        expect_error(
            &path,
            &[&["not a valid safetensors file"][..], needles].concat(),
        );
    }
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
