//! The claim SGLRP was made for, on the bundled demo model and sample scenes: explaining the
//! primary item's class, SGLRP keeps more of the positive relevance inside that item's box than
//! LRP, which also lights up the other items. Against CLRP the claim does not hold on these
//! scenes (CLRP is as focused, often more: means 0.89 vs 0.85), so the test asserts only that
//! SGLRP stays close to CLRP.

use sglrp::backend::cpu::CpuBackend;
use sglrp::dataset::read_manifest;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::Model;

/// Share of the positive pixel relevance (summed over channels) that lies inside the box.
fn positive_fraction_inside(relevance: &[f32], side: usize, b: &sglrp::dataset::LabelBox) -> f64 {
    let plane = side * side;
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for i in 0..plane {
        let r: f64 = (0..relevance.len() / plane)
            .map(|c| relevance[c * plane + i] as f64)
            .sum();
        if r > 0.0 {
            total += r;
            let (y, x) = ((i / side) as u32, (i % side) as u32);
            if (b.x0..b.x1).contains(&x) && (b.y0..b.y1).contains(&y) {
                inside += r;
            }
        }
    }
    inside / total.max(f64::MIN_POSITIVE)
}

#[test]
fn sglrp_keeps_more_relevance_on_the_primary_item_than_lrp() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = Model::load(root.join("weights/demo_vgg16_fashion.safetensors")).unwrap();
    let dataset = read_manifest(&root.join("weights/samples/manifest.jsonl")).unwrap();
    assert!(dataset.skipped.is_empty(), "{:?}", dataset.skipped);
    let net = Network::new(CpuBackend::new(None).unwrap(), &model).unwrap();
    let side = model.input_side;

    let mut wins = [0usize; 2];
    let mut means = [0.0f64; 3];
    for sample in &dataset.samples {
        let img = image::open(&sample.image).unwrap().to_rgb8();
        assert_eq!(
            img.dimensions(),
            (side as u32, side as u32),
            "boxes are in input pixels"
        );
        let input = model.preprocess.prepare(&img, side);
        let requests = Method::PAPER.map(|m| Request::new(m, Target::Class(sample.label)));
        let result = net
            .explain_each(&input, &requests, Preset::Paper)
            .unwrap()
            .remove(0);
        let primary = &sample.boxes[0];
        assert_eq!(primary.label, sample.label, "largest box first");
        let [lrp, clrp, sglrp] = [0, 1, 2]
            .map(|k| positive_fraction_inside(&result.explanations[k].relevance, side, primary));
        println!(
            "{}: inside the primary box: LRP {lrp:.3}  CLRP {clrp:.3}  SGLRP {sglrp:.3}",
            sample.source
        );
        wins[0] += usize::from(sglrp > lrp + 0.1);
        wins[1] += usize::from(sglrp > clrp);
        for (m, f) in means.iter_mut().zip([lrp, clrp, sglrp]) {
            *m += f / dataset.samples.len() as f64;
        }
    }
    println!(
        "means: LRP {:.3}  CLRP {:.3}  SGLRP {:.3}",
        means[0], means[1], means[2]
    );
    let n = dataset.samples.len();
    println!("SGLRP above CLRP on {}/{n} scenes", wins[1]);
    assert!(
        wins[0] * 4 >= n * 3,
        "SGLRP beats LRP by 0.1 on only {}/{n} scenes",
        wins[0]
    );
    assert!(
        means[2] >= means[0] + 0.2,
        "SGLRP's mean is not well above LRP's"
    );
    assert!(
        means[2] >= means[1] - 0.1,
        "SGLRP's mean is far below CLRP's"
    );
}
