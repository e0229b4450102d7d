//! End-to-end tests of `sglrp eval`: the outputs' structure on bundled scenes, bad samples
//! reported with their file and line and counted, resuming after an interruption.

mod cli;

use cli::{samples, sglrp, small_model};
use serde_json::Value;

/// A copy of the bundled scenes with a manifest of our own in `dir`.
fn scenes(dir: &std::path::Path, extra_lines: &[&str]) -> std::path::PathBuf {
    let manifest = std::fs::read_to_string(samples().join("manifest.jsonl")).unwrap();
    let lines: Vec<String> = manifest
        .lines()
        .take(3)
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let image = v["image"].as_str().unwrap().to_string();
            std::fs::copy(samples().join(&image), dir.join(&image)).unwrap();
            v["image"] = Value::String(image);
            v.to_string()
        })
        .chain(extra_lines.iter().map(|s| s.to_string()))
        .collect();
    let path = dir.join("manifest.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn eval(manifest: &std::path::Path, out: &std::path::Path) -> cli::Run {
    let model = small_model();
    sglrp(
        &[
            "eval".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--quiet".as_ref(),
        ],
        None,
    )
}

#[test]
fn eval_writes_tables_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = scenes(dir.path(), &[]);
    let out = dir.path().join("out");
    let run = eval(&manifest, &out);
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["images"], 3);
    assert_eq!(summary["skipped"], 0);
    let methods = summary["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lrp", "clrp", "sglrp", "guided_gradcam", "random"]);
    for m in methods {
        assert_eq!(m["masking_label"].as_array().unwrap().len(), 5);
        assert_eq!(m["masking_second"].as_array().unwrap().len(), 5);
        let pointing = m["pointing"].as_array().unwrap();
        assert_eq!(pointing.len(), 20);
        assert!(
            pointing
                .iter()
                .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap()))
        );
    }
    let lines = std::fs::read_to_string(out.join("per_image.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
    // The mean in summary.json is the mean of the per-image lines.
    let per_image: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mean: f64 = per_image
        .iter()
        .map(|v| v["methods"][2]["masking_second"][4].as_f64().unwrap())
        .sum::<f64>()
        / 3.0;
    assert!((methods[2]["masking_second"][4].as_f64().unwrap() - mean).abs() < 1e-12);
    let csv = std::fs::read_to_string(out.join("per_image.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 5);
    // Five methods and SGLRP − each of the four others, each 2 × 5 masking and 20 pointing rows.
    assert_eq!(
        std::fs::read_to_string(out.join("summary.csv"))
            .unwrap()
            .lines()
            .count(),
        1 + (5 + 4) * (2 * 5 + 20)
    );
    // Standard errors and intervals, recomputed here from the per-image lines.
    let column = |method: usize| -> Vec<f64> {
        per_image
            .iter()
            .map(|v| v["methods"][method]["masking_label"][2].as_f64().unwrap())
            .collect()
    };
    let sd_error = |x: &[f64]| {
        let m = x.iter().sum::<f64>() / 3.0;
        (
            m,
            (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 2.0 / 3.0).sqrt(),
        )
    };
    let (m, se) = sd_error(&column(0));
    let lrp = &methods[0];
    assert!((lrp["standard_error"]["masking_label"][2].as_f64().unwrap() - se).abs() < 1e-12);
    // t(0.975, 2 degrees of freedom) = 4.302653 (tables).
    let ci = lrp["ci95"]["masking_label"][2].as_array().unwrap();
    assert!((ci[0].as_f64().unwrap() - (m - 4.302653 * se)).abs() < 1e-6 * (1.0 + se));
    assert!((ci[1].as_f64().unwrap() - (m + 4.302653 * se)).abs() < 1e-6 * (1.0 + se));
    let differences = summary["differences"].as_array().unwrap();
    let minus: Vec<&str> = differences
        .iter()
        .map(|d| d["minus"].as_str().unwrap())
        .collect();
    assert_eq!(minus, ["lrp", "clrp", "guided_gradcam", "random"]);
    let paired: Vec<f64> = column(2)
        .iter()
        .zip(column(0))
        .map(|(a, b)| a - b)
        .collect();
    let (dm, dse) = sd_error(&paired);
    let d = &differences[0];
    assert_eq!(d["method"], "sglrp");
    assert!((d["mean"]["masking_label"][2].as_f64().unwrap() - dm).abs() < 1e-12);
    assert!((d["standard_error"]["masking_label"][2].as_f64().unwrap() - dse).abs() < 1e-12);
    for chart in ["masking_label", "masking_second", "pointing"] {
        let png = image::open(out.join(format!("{chart}.png"))).unwrap();
        assert!(png.width() > 100);
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.contains("SGLRP"), "{chart}.svg has a legend");
    }
}

#[test]
fn bad_samples_are_reported_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(samples().join("00000.png"), dir.path().join("copy.png")).unwrap();
    let manifest = scenes(
        dir.path(),
        &[
            r#"{"image": "copy.png", "label": 3"#,
            r#"{"image": "absent.png", "label": 1, "boxes": []}"#,
            r#"{"image": "copy.png", "label": 2, "boxes": [{"label": 2, "x0": 200, "y0": 10, "x1": 300, "y1": 40}]}"#,
            r#"{"image": "copy.png", "label": 42, "boxes": []}"#,
        ],
    );
    let out = dir.path().join("out");
    let run = eval(&manifest, &out);
    run.assert_no_panic();
    assert_eq!(run.code, 1, "some samples failed: {}", run.stderr);
    for (line, what) in [
        (4, "not a scene line"),
        (5, "absent.png"),
        (6, "outside"),
        (7, "label 42"),
    ] {
        run.assert_one_error_naming(&format!("manifest.jsonl:{line}"));
        run.assert_one_error_naming(what);
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["images"], 3);
    assert_eq!(summary["skipped"], 4);
}

#[test]
fn an_interrupted_run_resumes_and_other_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = scenes(dir.path(), &[]);
    let out = dir.path().join("out");
    assert_eq!(eval(&manifest, &out).code, 0);
    let lines = out.join("per_image.jsonl");
    let full = std::fs::read_to_string(&lines).unwrap();
    // Keep the first line and half of the second, as an interruption would.
    let first_end = full.find('\n').unwrap() + 1;
    let cut = &full[..first_end + (full[first_end..].len() / 2)];
    std::fs::write(&lines, cut).unwrap();
    let run = eval(&manifest, &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let again = std::fs::read_to_string(&lines).unwrap();
    assert_eq!(again.lines().count(), 3);
    assert_eq!(
        again.lines().next(),
        full.lines().next(),
        "the finished image is not redone"
    );
    let mut sorted_full: Vec<&str> = full.lines().collect();
    let mut sorted_again: Vec<&str> = again.lines().collect();
    sorted_full.sort();
    sorted_again.sort();
    assert_eq!(
        sorted_full, sorted_again,
        "the redone images give the same results"
    );

    let run = sglrp(
        &[
            "eval".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--model".as_ref(),
            small_model().as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--preset".as_ref(),
            "zennit".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("other settings");
}
