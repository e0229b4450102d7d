//! End-to-end tests of `sglrp classify`: text and JSON output, probabilities equal to the
//! library's, the same input handling as `explain`.

mod cli;

use cli::*;
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Network, ranking, softmax};
use sglrp::model::Model;

#[test]
fn json_lines_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let model_path = demo_model();
    let run = sglrp(
        &[
            "classify".as_ref(),
            dir.path().join("in").as_os_str(),
            "--model".as_ref(),
            model_path.as_os_str(),
            "--json".as_ref(),
            "--topk".as_ref(),
            "3".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), images.len());

    let model = Model::load(&model_path).unwrap();
    let net = Network::new(CpuBackend::new(None).unwrap(), &model).unwrap();
    for line in &lines {
        let path = std::path::PathBuf::from(line["input"].as_str().unwrap());
        let img = image::open(&path).unwrap().to_rgb8();
        let logits = net
            .classify(&model.preprocess.prepare(&img, model.input_side))
            .unwrap()
            .remove(0);
        let p = softmax(&logits);
        let order = ranking(&logits);
        let predictions = line["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 3);
        for (r, pred) in predictions.iter().enumerate() {
            let class = order[r];
            assert_eq!(pred["rank"], r + 1);
            assert_eq!(pred["class"], class);
            assert_eq!(pred["name"], model.classes[class]);
            let got = pred["probability"].as_f64().unwrap();
            assert!(
                (got - p[class] as f64).abs() <= 1e-5,
                "{}: {got} vs {}",
                path.display(),
                p[class]
            );
        }
    }
}

#[test]
fn text_output_and_failed_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    picture(50, 40, 4).save(&good).unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let model = small_model();
    let run = sglrp(
        &[
            "classify".as_ref(),
            bad.as_os_str(),
            good.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_one_error_naming("bad.png");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(fields[0], good.display().to_string());
    assert_eq!(fields.len(), 1 + 5, "default --topk 5: {}", lines[0]);
    let probabilities: Vec<f64> = fields[1..]
        .iter()
        .map(|f| f.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        probabilities.windows(2).all(|w| w[0] >= w[1]),
        "{probabilities:?}"
    );
}

#[test]
fn a_class_file_names_the_classes_and_a_wrong_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_test_images(&dir.path().join("in"));
    let model_path = demo_model();
    let classes = Model::load(&model_path).unwrap().classes.len();
    let names: Vec<String> = (0..classes).map(|i| format!("kind-{i}")).collect();
    let good = dir.path().join("names.txt");
    std::fs::write(&good, names.join("\n")).unwrap();
    let short = dir.path().join("short.json");
    std::fs::write(&short, serde_json::to_string(&names[1..]).unwrap()).unwrap();

    let run_with = |file: &std::path::Path| {
        sglrp(
            &[
                "classify".as_ref(),
                dir.path().join("in").as_os_str(),
                "--model".as_ref(),
                model_path.as_os_str(),
                "--classes".as_ref(),
                file.as_os_str(),
            ],
            None,
        )
    };
    let run = run_with(&good);
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in run.stdout.lines() {
        let first = line.split('\t').nth(1).unwrap();
        assert!(first.starts_with("kind-"), "{line}");
    }

    let run = run_with(&short);
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("short.json"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
