//! `--shard K/N` and `sglrp merge`: the partition (disjoint, complete, balanced, stable under input
//! order), its parsing, and runs split into shards that merge into exactly what one process writes.

mod cli;

use std::collections::BTreeSet;
use std::path::Path;

use cli::{samples, sglrp, small_model};
use sglrp::cluster::Shard;

/// SplitMix64: seeded, reproducible test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
    }
}

/// Distinct paths such as a folder walk gives: `set/c3/img_00017`.
fn ids(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut set = BTreeSet::new();
    while set.len() < n {
        set.insert(format!(
            "set/c{}/img_{:05}",
            rng.next() % 7,
            rng.next() % 100_000
        ));
    }
    let mut ids: Vec<String> = set.into_iter().collect();
    rng.shuffle(&mut ids);
    ids
}

#[test]
fn parts_are_disjoint_complete_balanced_and_stable_under_order() {
    let mut rng = Rng(12);
    for (n, count) in [
        (0, 3),
        (1, 1),
        (1, 4),
        (2, 5),
        (10, 3),
        (97, 7),
        (1000, 16),
        (5, 5),
    ] {
        let ids = ids(&mut rng, n);
        let mut shuffled = ids.clone();
        rng.shuffle(&mut shuffled);
        let mut seen = vec![0usize; n];
        let mut sizes = Vec::new();
        for k in 1..=count {
            let shard = Shard::new(k, count).unwrap();
            let picked = shard.select(&ids);
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "in input order");
            for &i in &picked {
                seen[i] += 1;
            }
            sizes.push(picked.len());
            let part: BTreeSet<&String> = picked.iter().map(|&i| &ids[i]).collect();
            let again: BTreeSet<&String> = shard
                .select(&shuffled)
                .iter()
                .map(|&i| &shuffled[i])
                .collect();
            assert_eq!(
                part, again,
                "{n} inputs, shard {shard}: the same whatever the order"
            );
            let filtered = shard.filter(shuffled.clone(), |s| s.clone());
            assert_eq!(
                filtered.iter().collect::<BTreeSet<_>>(),
                part,
                "filter keeps the selected items"
            );
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{n} inputs in {count}: each in one part"
        );
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{n} inputs in {count}: sizes {sizes:?}");
    }
}

#[test]
fn neighbouring_inputs_spread_over_the_parts() {
    // One folder in file-name order: no part may take a run of neighbours.
    let ids: Vec<String> = (0..300).map(|i| format!("photos/{i:04}")).collect();
    let first = Shard::new(1, 3).unwrap().select(&ids);
    assert_ne!(first, (0..100).collect::<Vec<_>>());
    assert!(first.iter().any(|&i| i < 100) && first.iter().any(|&i| i >= 200));
}

#[test]
fn shard_arguments_parse_or_say_what_is_expected() {
    let two_of_three: Shard = "2/3".parse().unwrap();
    assert_eq!((two_of_three.index(), two_of_three.count()), (2, 3));
    assert_eq!(two_of_three.to_string(), "2/3");
    assert_eq!(two_of_three.file_tag(), "2-of-3");
    assert_eq!(Shard::from_file_tag("2-of-3"), Some(two_of_three));
    assert!("1/1".parse::<Shard>().unwrap().is_whole());
    for bad in [
        "0/3", "4/3", "3", "a/b", "1/0", "", "-1/3", "1/3/4", "1.5/3",
    ] {
        let e = bad.parse::<Shard>().unwrap_err();
        assert!(e.contains("K/N"), "{bad}: {e}");
    }
    for bad in ["0-of-3", "4-of-3", "x-of-3", "2of3", "+2-of-3"] {
        assert_eq!(Shard::from_file_tag(bad), None, "{bad}");
    }
    let run = sglrp(&["classify", "--shard", "5/4", "x.png"], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--shard") && run.stderr.contains("1..=4"),
        "{}",
        run.stderr
    );
}

/// All bundled scenes, one line that is no scene and one missing image: every kind of record a
/// merge has to carry.
fn manifest(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(samples().join("manifest.jsonl")).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let image = v["image"].as_str().unwrap().to_string();
        std::fs::copy(samples().join(&image), dir.join(&image)).unwrap();
        v["image"] = serde_json::Value::String(image);
        lines.push(v.to_string());
    }
    lines.insert(3, r#"{"image": "00001.png", "label": "#.into());
    lines.push(r#"{"image": "absent.png", "label": 1, "boxes": []}"#.into());
    let path = dir.join("manifest.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn eval(manifest: &Path, out: &Path, shard: &str) -> cli::Run {
    let run = sglrp(
        &[
            "eval".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--model".as_ref(),
            small_model().as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--shard".as_ref(),
            shard.as_ref(),
            "--quiet".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    run
}

fn merge(out: &Path) -> cli::Run {
    let run = sglrp(&["merge".as_ref(), out.as_os_str()], None);
    run.assert_no_panic();
    run
}

#[test]
fn three_eval_shards_merge_into_the_single_process_results() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path());
    let whole = dir.path().join("whole");
    let run = eval(&manifest, &whole, "1/1");
    assert_eq!(run.code, 1, "two samples cannot be used: {}", run.stderr);

    let split = dir.path().join("split");
    let mut scored = 0;
    for k in 1..=3 {
        let run = eval(&manifest, &split, &format!("{k}/3"));
        assert!(run.code <= 1, "{}", run.stderr);
        assert!(
            !split.join("summary.json").exists(),
            "a shard writes no summary"
        );
        let lines = std::fs::read_to_string(split.join(format!("per_image.{k}-of-3.jsonl")));
        scored += lines.unwrap().lines().count();
    }
    assert_eq!(scored, 8, "every scene scored once");
    let run = merge(&split);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("8 images evaluated, 2 skipped"),
        "{}",
        run.stdout
    );

    for file in [
        "summary.json",
        "summary.csv",
        "per_image.csv",
        "masking_label.svg",
        "masking_second.png",
        "pointing.svg",
    ] {
        let a = std::fs::read(whole.join(file)).unwrap();
        let b = std::fs::read(split.join(file)).unwrap();
        assert!(
            a == b,
            "{file} of the merged shards differs from one process's"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(split.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["images"], 8);
    assert_eq!(summary["skipped"], 2);
    let reasons = summary["skipped_reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("manifest.jsonl:4"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("absent.png"))
    );
}

#[test]
fn merge_refuses_unfinished_or_mixed_shards() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path());
    let out = dir.path().join("out");
    let run = merge(&out);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("no such output folder");
    for k in [1, 3] {
        eval(&manifest, &out, &format!("{k}/3"));
    }
    let run = merge(&out);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("shard 2/3 has not finished");
    assert!(!out.join("summary.json").exists());

    eval(&manifest, &out, "1/2");
    let run = merge(&out);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("split in 2 and in 3 parts");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    merge(&empty).assert_one_error_naming("no shard records");
}

#[test]
fn explain_shards_share_a_folder_and_merge_into_one_summary() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    cli::write_test_images(&images);
    let explain = |out: &Path, shard: &str| {
        let run = sglrp(
            &[
                "explain".as_ref(),
                images.as_os_str(),
                "--model".as_ref(),
                small_model().as_os_str(),
                "--device".as_ref(),
                "cpu".as_ref(),
                "-m".as_ref(),
                "sglrp".as_ref(),
                "--format".as_ref(),
                "json".as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
                "--shard".as_ref(),
                shard.as_ref(),
                "--quiet".as_ref(),
            ],
            None,
        );
        run.assert_no_panic();
        run.code
    };
    let whole = dir.path().join("whole");
    let code = explain(&whole, "1/1");
    let split = dir.path().join("split");
    for k in 1..=3 {
        assert!(explain(&split, &format!("{k}/3")) <= code.max(1));
        assert!(split.join(format!("summary.{k}-of-3.jsonl")).exists());
    }
    assert!(!split.join("summary.jsonl").exists());
    let run = merge(&split);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = |out: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(out.join("summary.jsonl"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let merged = lines(&split);
    assert!(merged.len() > 3);
    assert_eq!(merged, lines(&whole));
    let result_files = |out: &Path| -> BTreeSet<std::path::PathBuf> {
        cli::files_under(out)
            .into_iter()
            .filter(|p| p.ends_with("result.json"))
            .collect()
    };
    assert_eq!(result_files(&split), result_files(&whole));
    cli::assert_no_temporary_files(&split);
}

#[test]
fn merge_to_a_closed_or_full_stdout_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    for k in 1..=2 {
        let line = format!("{{\"input\": \"{k}.png\"}}\n");
        std::fs::write(dir.path().join(format!("summary.{k}-of-2.jsonl")), line).unwrap();
    }
    let merge_into = |stdout: std::process::Stdio| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sglrp"))
            .arg("merge")
            .arg(dir.path())
            .stdout(stdout)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A pipe whose reader is gone before the merge writes: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (code, stderr) = merge_into(writer.into());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is quiet: {stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("summary.jsonl")).unwrap(),
        "{\"input\": \"1.png\"}\n{\"input\": \"2.png\"}\n"
    );

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (code, stderr) = merge_into(full.into());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("standard output"), "{stderr}");
}
