//! End-to-end tests of `sglrp explain`: every output format on images of every supported kind,
//! the `.npy` against the library's own result, reruns, output naming, targets, and the bundled
//! demo model on the bundled samples.

mod cli;

use std::path::Path;

use cli::*;
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{Channels, Model};

/// A `(3, H, W)` map in the model's channel order, in RGB order as explain writes arrays.
fn as_rgb(model: &Model, relevance: &[f32]) -> Vec<f32> {
    if model.preprocess.channels == Channels::Rgb {
        return relevance.to_vec();
    }
    let plane = relevance.len() / 3;
    relevance.chunks(plane).rev().flatten().copied().collect()
}

/// The library's explanations for one image file, batch of one.
fn library_result(
    model: &Model,
    image: &Path,
    requests: &[Request],
    preset: Preset,
) -> sglrp::explain::ImageResult {
    let img = image::open(image).unwrap().to_rgb8();
    let input = model.preprocess.prepare(&img, model.input_side);
    let net = Network::new(CpuBackend::new(None).unwrap(), model).unwrap();
    net.explain_each(&input, requests, preset)
        .unwrap()
        .remove(0)
}

#[test]
fn every_format_for_every_image_kind_and_npy_equals_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let out = dir.path().join("out");
    let model_path = small_model();
    let run = sglrp(
        &[
            "explain".as_ref(),
            dir.path().join("in").as_os_str(),
            "--model".as_ref(),
            model_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "png,overlay,grid,npy,json".as_ref(),
            "--target".as_ref(),
            "top1,top2".as_ref(),
            "--batch-size".as_ref(),
            "1".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.errors().is_empty(), "{}", run.stderr);

    let model = Model::load(&model_path).unwrap();
    let side = model.input_side as u32;
    let lines = summary(&out);
    assert_eq!(lines.len(), images.len());
    for image in &images {
        let stem = image.file_stem().unwrap().to_str().unwrap();
        let folder = out.join("in").join(stem);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("result.json")).unwrap()).unwrap();
        assert_eq!(record["status"], "ok");
        assert!(
            lines.contains(&record),
            "summary.jsonl holds result.json of {stem}"
        );
        assert_eq!(record["explanations"].as_array().unwrap().len(), 8);
        assert_eq!(record["predictions"].as_array().unwrap().len(), 5);

        let grid = read_png(&folder.join("grid.png"));
        assert!(
            grid.width() > 4 * 160 && grid.height() > 2 * 160,
            "grid {stem}"
        );
        let requests: Vec<Request> = [Target::Rank(1), Target::Rank(2)]
            .iter()
            .flat_map(|&t| Method::FIGURE.map(|m| Request::new(m, t)))
            .collect();
        let expected = library_result(&model, image, &requests, Preset::Paper);
        let mut k = 0;
        for target in ["top1", "top2"] {
            for method in Method::FIGURE.map(|m| m.name()) {
                let heat = read_png(&folder.join(format!("{method}_{target}.png")));
                assert_eq!(heat.dimensions(), (side, side));
                let overlay = read_png(&folder.join(format!("{method}_{target}_overlay.png")));
                assert_eq!(overlay.dimensions(), (side, side));
                let (shape, values) = read_npy(&folder.join(format!("{method}_{target}.npy")));
                assert_eq!(shape, [3, side as u64, side as u64]);
                assert_eq!(
                    values,
                    as_rgb(&model, &expected.explanations[k].relevance),
                    "{stem} {method} {target}: npy differs from the library's result"
                );
                let e = &record["explanations"][k];
                assert_eq!(e["method"], method);
                assert_eq!(e["target"], target);
                assert_eq!(e["class"], expected.explanations[k].target);
                let sum: f64 = values.iter().map(|&v| v as f64).sum();
                assert!(
                    (e["relevance_sum"].as_f64().unwrap() - sum).abs() <= 1e-6 * sum.abs().max(1.0)
                );
                for (_, file) in e["files"].as_object().unwrap() {
                    assert!(folder.join(file.as_str().unwrap()).is_file(), "{file}");
                }
                k += 1;
            }
        }
    }
    assert_no_temporary_files(&out);
}

#[test]
fn batches_give_the_same_relevance_as_single_images() {
    let dir = tempfile::tempdir().unwrap();
    write_test_images(&dir.path().join("in"));
    let model = small_model();
    let run_with = |batch: &str, out: &str| {
        let out = dir.path().join(out);
        let run = sglrp(
            &[
                "explain".as_ref(),
                dir.path().join("in").as_os_str(),
                "--model".as_ref(),
                model.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
                "--format".as_ref(),
                "npy".as_ref(),
                "--batch-size".as_ref(),
                batch.as_ref(),
            ],
            None,
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        out
    };
    let one = run_with("1", "one");
    let five = run_with("5", "five");
    let files = files_under(&one);
    assert_eq!(
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "npy"))
            .count(),
        9 * 4
    );
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "npy"))
    {
        let (_, a) = read_npy(&one.join(f));
        let (_, b) = read_npy(&five.join(f));
        let num: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum();
        let den: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
        assert!((num / den.max(1e-30)).sqrt() <= 1e-5, "{}", f.display());
    }
}

#[test]
fn rerun_skips_finished_images_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let out = dir.path().join("out");
    let model = small_model();
    let args = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = vec![
            "explain".into(),
            images[0].clone().into(),
            images[1].clone().into(),
            "--model".into(),
            model.clone().into(),
            "--out".into(),
            out.clone().into(),
        ];
        a.extend(extra.iter().map(Into::into));
        a
    };
    let first = sglrp(&args(&[]), None);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("2 explained"), "{}", first.stderr);
    let grid = out.join("rgb/grid.png");
    let before = std::fs::metadata(&grid).unwrap().modified().unwrap();

    let second = sglrp(&args(&[]), None);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("0 explained, 2 skipped"),
        "{}",
        second.stderr
    );
    assert_eq!(
        std::fs::metadata(&grid).unwrap().modified().unwrap(),
        before
    );
    let lines = summary(&out);
    assert!(lines.iter().all(|l| l["status"] == "skipped"));
    assert!(
        lines.iter().all(|l| l["predictions"].is_array()),
        "skipped lines keep their record"
    );

    // A missing output makes the image due again; --overwrite redoes everything.
    std::fs::remove_file(out.join("photo/sglrp_top1.npy")).unwrap();
    let third = sglrp(&args(&[]), None);
    assert!(
        third.stderr.contains("1 explained, 1 skipped"),
        "{}",
        third.stderr
    );
    assert!(out.join("photo/sglrp_top1.npy").is_file());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let fourth = sglrp(&args(&["--overwrite", "--quiet"]), None);
    assert_eq!(fourth.code, 0);
    assert!(
        fourth.stderr.is_empty(),
        "--quiet prints nothing: {}",
        fourth.stderr
    );
    assert!(std::fs::metadata(&grid).unwrap().modified().unwrap() > before);
    assert_no_temporary_files(&out);
}

#[test]
fn inputs_with_the_same_name_get_their_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    picture(40, 40, 1).save(a.join("x.png")).unwrap();
    picture(40, 40, 2).save(b.join("x.png")).unwrap();
    picture(40, 40, 3).save(a.join("x.jpg")).unwrap();
    let model = small_model();
    let out = dir.path().join("out");
    let run = sglrp(
        &[
            "explain".as_ref(),
            a.join("x.png").as_os_str(),
            b.join("x.png").as_os_str(),
            a.join("x.jpg").as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "npy".as_ref(),
            "--method".as_ref(),
            "sglrp".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dirs: Vec<String> = summary(&out)
        .iter()
        .map(|l| l["output_dir"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dirs.len(), 3);
    assert!(
        dirs.iter().all(|d| d.starts_with("x-") && d.len() == 10),
        "{dirs:?}"
    );
    assert_ne!(dirs[0], dirs[1]);
    assert_ne!(dirs[1], dirs[2]);
    let (_, r0) = read_npy(&out.join(&dirs[0]).join("sglrp_top1.npy"));
    let (_, r1) = read_npy(&out.join(&dirs[1]).join("sglrp_top1.npy"));
    assert_ne!(r0, r1, "two different images, two different maps");

    // Folders keep their own name and the path inside them.
    let out2 = dir.path().join("out2");
    let run = sglrp(
        &[
            "explain".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out2.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for d in ["a/x-", "b/x"] {
        assert!(
            summary(&out2)
                .iter()
                .any(|l| l["output_dir"].as_str().unwrap().starts_with(d)),
            "{d}"
        );
    }
}

#[test]
fn targets_by_rank_index_and_name_and_method_subsets() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("fish.png");
    picture(64, 48, 7).save(&image).unwrap();
    let out = dir.path().join("out");
    let model = small_model();
    let run = sglrp(
        &[
            "explain".as_ref(),
            image.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--target".as_ref(),
            "top3".as_ref(),
            "--target".as_ref(),
            "4".as_ref(),
            "-t".as_ref(),
            "Great White Shark".as_ref(),
            "--method".as_ref(),
            "sglrp,clrp".as_ref(),
            "--format".as_ref(),
            "png,json,grid".as_ref(),
            "--preset".as_ref(),
            "zennit".as_ref(),
            "--cmap".as_ref(),
            "coldnhot".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = files_under(&out.join("fish"))
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "clrp_class2.png",
            "clrp_class4.png",
            "clrp_top3.png",
            "grid.png",
            "result.json",
            "sglrp_class2.png",
            "sglrp_class4.png",
            "sglrp_top3.png",
        ]
    );
    let record = &summary(&out)[0];
    let e = record["explanations"].as_array().unwrap();
    assert_eq!(e.len(), 6);
    assert_eq!(e[0]["method"], "sglrp");
    assert_eq!(e[1]["method"], "clrp");
    assert_eq!(e[0]["rank"], 3);
    assert_eq!(e[2]["class"], 4);
    assert_eq!(e[4]["name"], "great white shark");
    assert_eq!(record["preset"], "zennit");
    // Grid: input + 2 method columns, 3 rows of 160-pixel cells.
    let grid = read_png(&out.join("fish/grid.png"));
    assert_eq!(grid.width(), 2 * 10 + 3 * 160 + 2 * 6);
    assert!(grid.height() > 3 * 160);
}

/// The main job of the README: the demo model on the bundled samples, `explain` and `classify`.
#[test]
fn demo_model_explains_the_bundled_samples() {
    let model_path = demo_model();
    let samples = samples();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // The README's command, with an explicit output folder; run from the crate root so that the
    // default model is found.
    let run = sglrp(
        &[
            "explain".as_ref(),
            samples.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--target".as_ref(),
            "top1,top2".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest: Vec<serde_json::Value> = std::fs::read_to_string(samples.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = summary(&out);
    assert_eq!(lines.len(), manifest.len());
    let mut correct = 0;
    for (line, truth) in lines.iter().zip(&manifest) {
        assert_eq!(line["status"], "ok");
        assert!(
            line["input"]
                .as_str()
                .unwrap()
                .ends_with(truth["image"].as_str().unwrap())
        );
        assert!(
            line["model"]
                .as_str()
                .unwrap()
                .ends_with("demo_vgg16_fashion.safetensors")
        );
        if line["predictions"][0]["class"] == truth["label"] {
            correct += 1;
        }
        let folder = out.join(line["output_dir"].as_str().unwrap());
        let grid = read_png(&folder.join("grid.png"));
        // input | Guided Grad-CAM | LRP | CLRP | SGLRP, 224-pixel cells.
        assert_eq!(grid.width(), 2 * 10 + 5 * 224 + 4 * 6);
        for e in line["explanations"].as_array().unwrap() {
            let (shape, values) = read_npy(&folder.join(e["files"]["npy"].as_str().unwrap()));
            assert_eq!(shape, [3, 224, 224]);
            assert!(values.iter().all(|v| v.is_finite()));
            // The head: LRP puts z_t on the logits, CLRP and SGLRP heads sum to 0 (docs/method.md §Heads),
            // the gradient baselines start from the one-hot ∂z_t/∂z.
            let head = e["head_sum"].as_f64().unwrap();
            match e["method"].as_str().unwrap() {
                "lrp" => {
                    let rank = e["rank"].as_u64().unwrap() as usize;
                    let logit = line["predictions"][rank - 1]["logit"].as_f64().unwrap();
                    assert!((head - logit).abs() <= 1e-5 * logit.abs().max(1.0));
                }
                "guided_gradcam" => assert_eq!(head, 1.0),
                method => assert!(head.abs() <= 1e-4, "{method}: head sums to {head}"),
            }
        }
    }
    assert!(
        correct * 2 >= manifest.len(),
        "the demo model gets only {correct}/{} samples right: pre-processing or weights are off",
        manifest.len()
    );
    // The model was trained on these classes.
    let model = Model::load(&model_path).unwrap();
    assert_eq!(model.classes[8], "Bag");

    // `classify` agrees with the predictions of `explain`.
    let run = sglrp(&["classify", "weights/samples", "--topk", "2"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(rows.len(), lines.len(), "{}", run.stdout);
    for (row, line) in rows.iter().zip(&lines) {
        let top1 = line["predictions"][0]["name"].as_str().unwrap();
        assert!(row.split('\t').nth(1).unwrap().starts_with(top1), "{row}");
    }
}

#[test]
fn output_folder_inside_an_input_folder_is_not_read_as_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("photos");
    std::fs::create_dir_all(&input).unwrap();
    picture(40, 40, 9).save(input.join("a.png")).unwrap();
    let out = input.join("maps");
    let model = small_model();
    for expected in ["1 explained, 0 skipped", "0 explained, 1 skipped"] {
        let run = sglrp(
            &[
                "explain".as_ref(),
                input.as_os_str(),
                "--model".as_ref(),
                model.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            None,
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        assert_eq!(summary(&out).len(), 1);
    }
}

/// A bundled sample through the CLI and through the library give the same relevance, bit for
/// bit, with the demo model.
#[test]
fn a_sample_matches_the_library_with_the_demo_model() {
    let model_path = demo_model();
    let image = samples().join("00003.png");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = sglrp(
        &[
            "explain".as_ref(),
            image.as_os_str(),
            "--model".as_ref(),
            model_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "npy,json".as_ref(),
            "--preset".as_ref(),
            "innvestigate".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let model = Model::load(&model_path).unwrap();
    let requests: Vec<Request> = Method::FIGURE
        .map(|m| Request::new(m, Target::Rank(1)))
        .to_vec();
    let expected = library_result(&model, &image, &requests, Preset::Innvestigate);
    let record = &summary(&out)[0];
    let folder = out.join(record["output_dir"].as_str().unwrap());
    for (k, e) in record["explanations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let (_, values) = read_npy(&folder.join(e["files"]["npy"].as_str().unwrap()));
        assert_eq!(
            values,
            as_rgb(&model, &expected.explanations[k].relevance),
            "{}",
            e["method"]
        );
    }
    let p = record["predictions"][0]["probability"].as_f64().unwrap();
    assert!((p - expected.probabilities[expected.explanations[0].target] as f64).abs() < 1e-7);
}

/// The library's explanations of one image with the relevance taken at the input of `layer`.
fn library_layer_result(
    model: &Model,
    image: &Path,
    requests: &[Request],
    layer: &str,
) -> sglrp::explain::ImageResult {
    let img = image::open(image).unwrap().to_rgb8();
    let input = model.preprocess.prepare(&img, model.input_side);
    let mut net = Network::new(CpuBackend::new(None).unwrap(), model).unwrap();
    net.set_relevance_layer(Some(layer)).unwrap();
    net.explain_each(&input, requests, Preset::Paper)
        .unwrap()
        .remove(0)
}

#[test]
fn layer_relevance_is_written_with_the_layers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let model_path = small_model();
    let model = Model::load(&model_path).unwrap();
    let requests: Vec<Request> = [Method::Lrp, Method::Sglrp]
        .map(|m| Request::new(m, Target::Rank(1)))
        .into();
    // conv2_1's input is pool1's output, 16×16×8; fc1's input is flatten's, 128 features.
    for (layer, shape, pictures) in [
        ("conv2_1", vec![8, 16, 16], true),
        ("fc1", vec![128], false),
    ] {
        let out = dir.path().join(layer);
        let run = sglrp(
            &[
                "explain".as_ref(),
                images[0].as_os_str(),
                "--model".as_ref(),
                model_path.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
                "--method".as_ref(),
                "lrp,sglrp".as_ref(),
                "--format".as_ref(),
                "png,overlay,grid,npy,npz,json".as_ref(),
                "--layer".as_ref(),
                layer.as_ref(),
            ],
            None,
        );
        run.assert_no_panic();
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stderr.contains("no picture"),
            !pictures,
            "{layer}: {}",
            run.stderr
        );
        let stem = images[0].file_stem().unwrap().to_str().unwrap();
        let folder = out.join(stem);
        let expected = library_layer_result(&model, &images[0], &requests, layer);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("result.json")).unwrap()).unwrap();
        assert_eq!(record["layer"], layer);
        assert_eq!(record["map_shape"], serde_json::json!(shape));
        for (k, method) in ["lrp", "sglrp"].into_iter().enumerate() {
            let (npy_shape, values) = read_npy(&folder.join(format!("{method}_top1.npy")));
            assert_eq!(
                npy_shape,
                shape.iter().map(|&d| d as u64).collect::<Vec<_>>()
            );
            assert_eq!(expected.explanations[k].shape, shape);
            assert_eq!(
                values, expected.explanations[k].relevance,
                "{layer} {method}: npy differs from the library's result"
            );
            for picture in ["", "_overlay"] {
                let path = folder.join(format!("{method}_top1{picture}.png"));
                assert_eq!(path.is_file(), pictures, "{}", path.display());
                if pictures {
                    let side = model.input_side as u32;
                    assert_eq!(read_png(&path).dimensions(), (side, side));
                }
            }
        }
        assert_eq!(folder.join("grid.png").is_file(), pictures);
        assert!(folder.join("maps.npz").is_file());
        // The layer is part of the settings: a run at another layer recomputes.
        let fingerprints = std::fs::read_to_string(out.join("fingerprints.jsonl")).unwrap();
        let again = sglrp(
            &[
                "explain".as_ref(),
                images[0].as_os_str(),
                "--model".as_ref(),
                model_path.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
                "--method".as_ref(),
                "lrp,sglrp".as_ref(),
                "--format".as_ref(),
                "npy,json".as_ref(),
                "--layer".as_ref(),
                "conv1_2".as_ref(),
            ],
            None,
        );
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(again.stderr.contains("1 explained"), "{}", again.stderr);
        let after = std::fs::read_to_string(out.join("fingerprints.jsonl")).unwrap();
        assert_ne!(after.lines().last(), fingerprints.lines().last());
        let (npy_shape, _) = read_npy(&folder.join("lrp_top1.npy"));
        assert_eq!(
            npy_shape,
            [8, 32, 32],
            "conv1_2's input is conv1_1's output"
        );
    }
}

#[test]
fn an_unknown_layer_or_a_baseline_with_a_layer_is_one_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let model_path = small_model();
    let run = |extra: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = vec![
            "explain".into(),
            images[0].clone().into(),
            "--model".into(),
            model_path.clone().into(),
            "--out".into(),
            dir.path().join("out").into(),
        ];
        a.extend(extra.iter().map(Into::into));
        sglrp(&a, None)
    };
    let unknown = run(&["--layer", "conv9_9", "-m", "lrp"]);
    unknown.assert_no_panic();
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    unknown.assert_one_error_naming("conv9_9");
    let line = unknown.errors()[0];
    assert!(
        line.contains("conv1_1") && line.contains("pool4") && line.contains("fc2"),
        "the error lists the valid layers: {line}"
    );
    let baseline = run(&["--layer", "pool2"]);
    assert_eq!(baseline.code, 2, "{}", baseline.stderr);
    baseline.assert_one_error_naming("guided_gradcam");
    assert!(!dir.path().join("out").exists(), "nothing is written");
}
