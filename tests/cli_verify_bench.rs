//! End-to-end tests of `sglrp verify` and `sglrp bench`, and of `--device cuda` where no GPU can
//! be used. Without a usable GPU (the usual case here) verify must refuse with one error line
//! and exit 2; with one, the same commands must run and pass.

mod cli;

use cli::*;
use sglrp::backend::cuda::usable_devices;

/// Whether cuda:`ordinal` has a driver, a device and this build's kernels.
fn gpu_usable(ordinal: usize) -> bool {
    usable_devices().is_ok_and(|n| n > ordinal)
}

/// Asserts exit code 2 with exactly one error line, mentioning `what`, and no panic.
fn assert_refused(run: &Run, what: &str) {
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_one_error_naming(what);
    assert_eq!(run.errors().len(), 1, "one error line:\n{}", run.stderr);
}

#[test]
fn verify_on_cuda_runs_on_a_gpu_and_refuses_clearly_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("verify.json");
    let model = small_model();
    let run = sglrp(
        &[
            "verify".as_ref(),
            "--device".as_ref(),
            "cuda".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--batch-size".as_ref(),
            "3".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
        ],
        None,
    );
    run.assert_no_panic();
    if gpu_usable(0) {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("all comparisons within"),
            "{}",
            run.stdout
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["device"], "cuda:0");
        assert_eq!(report["images"], 3);
        assert!(!report["layers"].as_array().unwrap().is_empty());
    } else {
        assert_refused(&run, "cuda");
        assert!(!json.exists(), "no report without a run");
    }
}

#[test]
fn verify_refuses_the_cpu_which_is_its_reference() {
    let model = small_model();
    let run = sglrp(
        &[
            "verify".as_ref(),
            "--device".as_ref(),
            "cpu".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
        ],
        None,
    );
    assert_refused(&run, "cuda");
    assert!(run.stderr.contains("CPU reference"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // auto falls back to the CPU where no GPU can be used, which verify refuses as well.
    if usable_devices().is_err() {
        let run = sglrp(
            &["verify".as_ref(), "--model".as_ref(), model.as_os_str()],
            None,
        );
        assert_refused(&run, "--device auto");
    }
}

#[test]
fn bench_on_the_cpu_writes_a_row_per_pass_and_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let model = small_model();
    let run = sglrp(
        &[
            "bench".as_ref(),
            "--device".as_ref(),
            "cpu".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            "--batch-size".as_ref(),
            "1,2".as_ref(),
            "--repeats".as_ref(),
            "1".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
        ],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("| pass | batch |"), "{}", run.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["device"], "cpu");
    assert_eq!(report["input_side"], 32);
    assert_eq!(report["preset"], "paper");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    for batch in [1, 2] {
        for pass in ["forward", "lrp", "clrp", "sglrp"] {
            let row = rows
                .iter()
                .find(|r| r["pass"] == pass && r["batch"] == batch)
                .unwrap_or_else(|| panic!("no {pass} row at batch {batch}: {rows:?}"));
            let rate = row["images_per_s"].as_f64().unwrap();
            assert!(rate > 0.0 && rate.is_finite(), "{row}");
        }
    }
    // The CPU has no layer timer and no card.
    assert!(report["layers"].as_array().unwrap().is_empty());
    assert!(report["card"].is_null());
    assert_no_temporary_files(dir.path());
}

#[test]
fn bench_usage_errors_exit_with_2() {
    let model = small_model().to_string_lossy().into_owned();
    for args in [
        vec!["bench", "--model", &model, "--side", "64"],
        vec!["bench", "--batch-size", "0"],
        vec!["bench", "--repeats", "0"],
        vec!["bench", "--device", "tpu"],
    ] {
        let run = sglrp(&args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        run.assert_no_panic();
    }
    let missing = std::path::Path::new("no/such/model.safetensors");
    let run = sglrp(&["bench", "--model", "no/such/model.safetensors"], None);
    assert_refused(&run, &missing.display().to_string());
}

#[test]
fn explain_on_a_missing_gpu_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sample = samples().join("00000.png");
    let model = small_model();
    let run = sglrp(
        &[
            "explain".as_ref(),
            sample.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--device".as_ref(),
            "cuda:3".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--quiet".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    if gpu_usable(3) {
        assert_eq!(run.code, 0, "{}", run.stderr);
    } else {
        assert_refused(&run, "cuda:3");
        assert!(run.stderr.contains("--device cpu"), "{}", run.stderr);
        assert!(!out.exists(), "nothing written");
    }
}
