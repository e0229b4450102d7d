//! End-to-end tests of what the engine brings to the commands: outputs that belong to their
//! settings, the output-folder lock and the clean-up of killed runs, safe output names, stdout
//! that is closed or full, bounded `--threads`, eval's resume by content, small flags, and
//! `bench --end-to-end`.

mod cli;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cli::{picture, samples, sglrp, small_model, summary};
use serde_json::Value;

fn explain(inputs: &[&Path], out: &Path, extra: &[&str]) -> cli::Run {
    let mut args: Vec<OsString> = vec!["explain".into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    args.extend([
        "--model".into(),
        small_model().into(),
        "--out".into(),
        out.as_os_str().to_owned(),
        "--device".into(),
        "cpu".into(),
    ]);
    args.extend(extra.iter().map(Into::into));
    sglrp(&args, None)
}

fn two_pictures(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..2)
        .map(|i| {
            let path = dir.join(format!("p{i}.png"));
            picture(40 + i * 3, 37, i + 7).save(&path).unwrap();
            path
        })
        .collect()
}

fn statuses(out: &Path) -> Vec<String> {
    summary(out)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn outputs_made_with_other_settings_are_recomputed_or_refused_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let pics = two_pictures(&dir.path().join("in"));
    let inputs: Vec<&Path> = pics.iter().map(PathBuf::as_path).collect();
    let out = dir.path().join("out");
    let first = explain(&inputs, &out, &["-m", "lrp,sglrp"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stderr.contains("outputs exist"), "{}", first.stderr);
    assert_eq!(statuses(&out), ["ok", "ok"]);

    let same = explain(&inputs, &out, &["-m", "lrp,sglrp"]);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert!(
        same.stderr.contains("2 skipped (outputs exist"),
        "{}",
        same.stderr
    );
    assert_eq!(statuses(&out), ["skipped", "skipped"]);

    // Another preset makes other maps: recomputed, and the record says the new preset.
    let other = explain(&inputs, &out, &["-m", "lrp,sglrp", "--preset", "zennit"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(statuses(&out), ["ok", "ok"]);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("p0/result.json")).unwrap())
            .unwrap();
    assert_eq!(record["preset"], "zennit");
    let zennit_settings = record["settings"].as_str().unwrap().to_string();

    // With --refuse-changed, a change of settings fails the images instead.
    let refused = explain(&inputs, &out, &["-m", "lrp,sglrp", "--refuse-changed"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.errors().len(), 2, "{}", refused.stderr);
    assert!(
        refused.errors()[0].contains("other settings"),
        "{}",
        refused.stderr
    );
    assert_eq!(statuses(&out), ["error", "error"]);
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("p0/result.json")).unwrap())
            .unwrap();
    assert_eq!(
        kept["settings"],
        zennit_settings.as_str(),
        "nothing was rewritten"
    );
}

#[test]
fn a_second_run_stops_at_the_lock_and_a_killed_runs_leftovers_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let pics = two_pictures(&dir.path().join("in"));
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("p0")).unwrap();
    let lock = out.join(".sglrp.lock");
    // A live process holds the folder: this test's own.
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let busy = explain(&[&pics[0]], &out, &[]);
    assert_eq!(busy.code, 2, "{}", busy.stderr);
    busy.assert_one_error_naming(".sglrp.lock");
    assert!(busy.stderr.contains(&format!("pid {}", std::process::id())));
    assert!(!out.join("summary.jsonl").exists(), "nothing was written");

    // A killed run's lock and temporary file (no process has pid 4294967294).
    std::fs::write(&lock, "4294967294\n").unwrap();
    let stale = out.join("p0/.grid.png.4294967294.tmp");
    std::fs::write(&stale, b"half a png").unwrap();
    let run = explain(&[&pics[0]], &out, &["--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(!lock.exists(), "the lock outlived its run");
    cli::assert_no_temporary_files(&out);
}

#[test]
fn an_input_named_with_dots_stays_inside_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in/...png");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    picture(40, 40, 3)
        .save_with_format(&input, image::ImageFormat::Png)
        .unwrap();
    let out = dir.path().join("work/out");
    let run = explain(&[&input], &out, &["--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(out.join("_../grid.png").is_file());
    let beside: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["out"], "files landed beside the output folder");
}

#[test]
fn small_flags_methods_in_any_case_gradcam_layer_and_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let pics = two_pictures(&dir.path().join("in"));
    let out = dir.path().join("out");
    let run = explain(
        &[&pics[0]],
        &out,
        &["-m", "SGLRP,GradCam", "--gradcam-layer", "conv1_1", "-q"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(out.join("p0/sglrp_top1.png").is_file() && out.join("p0/gradcam_top1.png").is_file());

    let bad = explain(
        &[&pics[0]],
        &out,
        &["-m", "gradcam", "--gradcam-layer", "fc9"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    bad.assert_one_error_naming("--gradcam-layer");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let nothing = explain(&[&empty], &dir.path().join("out2"), &[]);
    assert_eq!(
        nothing.code, 2,
        "a run that did nothing exits 2: {}",
        nothing.stderr
    );
    nothing.assert_one_error_naming("no images");

    let threads = explain(&[&pics[0]], &out, &["--threads", "65535"]);
    assert_eq!(threads.code, 2, "{}", threads.stderr);
    threads.assert_one_error_naming("--threads 65535");
}

#[test]
fn a_closed_or_full_stdout_is_no_panic() {
    let bin = env!("CARGO_BIN_EXE_sglrp");
    let dir = tempfile::tempdir().unwrap();
    let pics = two_pictures(dir.path());
    let model = small_model();
    let shell = |script: String| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (_, stdout, stderr) = shell(format!(
        "'{bin}' info --model '{}' | head -1",
        model.display()
    ));
    assert!(stdout.starts_with("model"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is quiet: {stderr}");

    let (code, _, stderr) = shell(format!(
        "'{bin}' classify '{}' '{}' --model '{}' --device cpu --quiet > /dev/full",
        pics[0].display(),
        pics[1].display(),
        model.display()
    ));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("standard output"), "{stderr}");
}

/// A copy of the first `n` bundled scenes with their manifest in `dir`.
fn scenes(dir: &Path, n: usize) -> (PathBuf, Vec<Value>) {
    let manifest = std::fs::read_to_string(samples().join("manifest.jsonl")).unwrap();
    let lines: Vec<Value> = manifest
        .lines()
        .take(n)
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let image = v["image"].as_str().unwrap().to_string();
            std::fs::copy(samples().join(&image), dir.join(&image)).unwrap();
            v["image"] = Value::String(image);
            v
        })
        .collect();
    let path = dir.join("manifest.jsonl");
    write_manifest(&path, &lines);
    (path, lines)
}

fn write_manifest(path: &Path, lines: &[Value]) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

fn eval(manifest: &Path, out: &Path, extra: &[&str]) -> cli::Run {
    let mut args: Vec<OsString> = vec![
        "eval".into(),
        "--manifest".into(),
        manifest.into(),
        "--model".into(),
        small_model().into(),
        "--out".into(),
        out.into(),
        "--device".into(),
        "cpu".into(),
        "--quiet".into(),
        "-m".into(),
        "lrp,random".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    sglrp(&args, None)
}

fn per_image(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("per_image.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn eval_resumes_by_the_limit_and_the_content_of_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, mut lines) = scenes(dir.path(), 3);
    let out = dir.path().join("out");
    let first = eval(&manifest, &out, &["--limit", "2"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let summary_of = |out: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(summary_of(&out)["images"], 2);
    assert_eq!(per_image(&out).len(), 2);

    // A smaller limit reports only what it covers.
    let smaller = eval(&manifest, &out, &["--limit", "1"]);
    assert_eq!(smaller.code, 0, "{}", smaller.stderr);
    assert_eq!(summary_of(&out)["images"], 1);

    let all = eval(&manifest, &out, &[]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(summary_of(&out)["images"], 3);
    let before = per_image(&out);
    assert_eq!(before.len(), 3);

    // A changed line is evaluated again under its new content; the others are kept.
    let boxes = lines[1]["boxes"].as_array_mut().unwrap();
    boxes[0]["x1"] = Value::from(boxes[0]["x1"].as_u64().unwrap() - 1);
    write_manifest(&manifest, &lines);
    let changed = eval(&manifest, &out, &[]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    let after = per_image(&out);
    assert_eq!(after.len(), 3);
    let contents = |v: &[Value]| -> Vec<String> {
        let mut c: Vec<String> = v
            .iter()
            .map(|l| l["content"].as_str().unwrap().into())
            .collect();
        c.sort();
        c
    };
    let (old, new) = (contents(&before), contents(&after));
    assert_eq!(
        old.iter().filter(|c| new.contains(c)).count(),
        2,
        "{old:?} {new:?}"
    );
    assert_eq!(summary_of(&out)["images"], 3);
}

#[test]
fn bench_end_to_end_prints_images_per_second_beside_the_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("jpegs");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..3 {
        picture(48, 40, i)
            .save_with_format(folder.join(format!("{i}.jpg")), image::ImageFormat::Jpeg)
            .unwrap();
    }
    let model = small_model();
    let run = sglrp(
        &[
            "bench".as_ref(),
            "--end-to-end".as_ref(),
            folder.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
            "--batch-size".as_ref(),
            "1".as_ref(),
            "--repeats".as_ref(),
            "1".as_ref(),
            "-m".as_ref(),
            "lrp".as_ref(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("bench: cpu ("), "{}", run.stdout);
    assert!(!run.stdout.contains("cpu (-)"), "{}", run.stdout);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("end to end: 3 images"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        line.contains("kernel only (batch 1)") && line.contains("% of it"),
        "{line}"
    );
}
