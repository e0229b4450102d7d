//! End-to-end tests of bad input: each gets one error line naming the file, the right exit code,
//! the rest of the batch still processed, and no partial or temporary file left.
//!
//! Exit codes: 0 all good, 1 some inputs failed (the others processed), 2 nothing done (usage,
//! model, device or output-folder errors).

mod cli;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cli::*;

/// `explain` with the small model into `out`, on `inputs`, plus `extra` options.
fn explain(inputs: &[&Path], out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec!["explain".into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    args.extend(["--model".into(), small_model().into_os_string()]);
    args.extend(["--out".into(), out.as_os_str().to_owned()]);
    args.extend(extra.iter().map(Into::into));
    sglrp(&args, None)
}

/// A folder with one good image; returns (temp dir, good image path).
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    picture(40, 40, 1).save(&good).unwrap();
    (dir, good)
}

/// The good image was processed completely.
fn assert_good_done(out: &Path) {
    for f in ["grid.png", "result.json", "lrp_top1.png", "sglrp_top1.npy"] {
        assert!(out.join("good").join(f).is_file(), "good/{f} missing");
    }
    let lines = summary(out);
    assert!(lines.iter().any(|l| l["status"] == "ok"));
    assert_no_temporary_files(out);
}

/// Runs `bad` beside the good image and checks the outcome of a failed input.
fn check_bad_input(bad: &Path, expected: &str) -> Run {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let run = explain(&[bad, &good], &out, &[]);
    run.assert_one_error_naming(&bad.display().to_string());
    assert!(
        run.stderr.to_lowercase().contains(expected),
        "expected `{expected}`:\n{}",
        run.stderr
    );
    assert_eq!(
        run.errors().len(),
        1,
        "one line per bad input:\n{}",
        run.stderr
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_good_done(&out);
    run
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    check_bad_input(&dir.path().join("nope.png"), "no such file");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("empty.png");
    std::fs::write(&bad, b"").unwrap();
    check_bad_input(&bad, "empty file");
}

fn noise() -> Vec<u8> {
    (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect()
}

#[test]
fn corrupt_file() {
    // Named like a JPEG: decoded as one, and found corrupt.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("noise.jpg");
    std::fs::write(&bad, noise()).unwrap();
    check_bad_input(&bad, "corrupt");
}

#[test]
fn file_that_is_no_image() {
    // Neither the content nor the name says what it is.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("noise.dat");
    std::fs::write(&bad, noise()).unwrap();
    check_bad_input(&bad, "not a recognised image");
}

#[test]
fn truncated_png() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.png");
    picture(64, 64, 3).save(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let bad = dir.path().join("cut.png");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    check_bad_input(&bad, "truncated");
}

#[test]
fn png_with_a_broken_header() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.png");
    picture(64, 64, 3).save(&full).unwrap();
    let mut bytes = std::fs::read(&full).unwrap();
    bytes[20] ^= 0xff; // inside IHDR: the CRC no longer matches
    let bad = dir.path().join("header.png");
    std::fs::write(&bad, &bytes).unwrap();
    check_bad_input(&bad, "corrupt");
}

#[test]
fn unreadable_file() {
    // A link to nowhere cannot be read, even by root.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("link.png");
    std::os::unix::fs::symlink(dir.path().join("gone.png"), &bad).unwrap();
    check_bad_input(&bad, "no such file");

    // A file without read permission (root reads it anyway, so only checked for other users).
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked.png");
    picture(20, 20, 5).save(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&locked).is_err() {
        check_bad_input(&locked, "permission denied");
    }
}

#[test]
fn huge_image_is_refused_from_its_header() {
    // A PNG that announces 20000×20000 pixels and holds almost no pixel data: the limit is
    // checked from the header, before decoding, so no 1.2 GB buffer is ever allocated.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("huge.png");
    let mut ihdr = Vec::new();
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    std::fs::write(&bad, &png).unwrap();
    let run = check_bad_input(&bad, "megapixels");
    assert!(run.stderr.contains("20000×20000"), "{}", run.stderr);

    // The limit can be lowered.
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let run = explain(&[&good], &out, &["--max-megapixels", "0.001"]);
    assert_eq!(run.code, 1);
    run.assert_one_error_naming("good.png");
    assert_no_temporary_files(&out);
}

/// A PNG chunk: length, type, data, CRC of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn folder_without_images() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("nothing_here");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"not an image").unwrap();
    check_bad_input(&empty, "no images");
}

#[test]
fn glob_without_match() {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let pattern = dir.path().join("*.tiff");
    let run = explain(&[&pattern, &good], &out, &[]);
    run.assert_one_error_naming("no file matches");
    assert_eq!(run.code, 1);
    assert_good_done(&out);

    // A glob that matches runs like the files it matches.
    let out2 = dir.path().join("out2");
    let run = explain(&[&dir.path().join("g*.png")], &out2, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_good_done(&out2);
}

#[test]
fn several_bad_inputs_each_get_a_line() {
    let (dir, good) = setup();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.bmp");
    let out = dir.path().join("out");
    let run = explain(&[&empty, &good, &missing], &out, &["--batch-size", "3"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.errors().len(), 2, "{}", run.stderr);
    run.assert_one_error_naming("empty.png");
    run.assert_one_error_naming("missing.bmp");
    assert_good_done(&out);
    let lines = summary(&out);
    assert_eq!(
        lines.len(),
        2,
        "found images get a line, the missing path does not"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == "error" && l["error"].as_str().unwrap().contains("empty"))
    );
}

#[test]
fn unknown_class_name_suggests_the_closest() {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let run = explain(&[&good], &out, &["--target", "goldfsh"]);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("goldfsh");
    assert!(
        run.stderr.contains("did you mean \"goldfish\""),
        "{}",
        run.stderr
    );
    assert_eq!(run.errors().len(), 1);
    assert!(!out.join("good").exists(), "nothing is computed");
}

#[test]
fn class_index_and_rank_out_of_range() {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let run = explain(&[&good], &out, &["--target", "10"]);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("out of range");
    assert!(run.stderr.contains("0‥9"), "{}", run.stderr);
    let run = explain(&[&good], &out, &["--target", "top11"]);
    assert_eq!(run.code, 2);
    run.assert_one_error_naming("top11");
}

#[test]
fn output_folder_that_cannot_be_written() {
    let (dir, good) = setup();
    // A file where the folder should be: not even root can create a folder there.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    for out in [blocker.clone(), blocker.join("sub")] {
        let run = explain(&[&good], &out, &[]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        run.assert_one_error_naming(&out.display().to_string());
        assert_eq!(run.errors().len(), 1, "{}", run.stderr);
    }
    assert_no_temporary_files(dir.path());
}

#[test]
fn image_output_folder_that_cannot_be_created() {
    // The output folder works, but the image's own sub-folder is blocked by a file: that image
    // fails with a line naming it, the others go on.
    let (dir, good) = setup();
    let other = dir.path().join("other.png");
    picture(40, 40, 2).save(&other).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("other"), b"in the way").unwrap();
    let run = explain(&[&other, &good], &out, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_one_error_naming("other.png");
    assert_good_done(&out);
}

#[test]
fn weights_that_do_not_load() {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a safetensors file").unwrap();
    for model in [garbage, dir.path().join("absent.safetensors")] {
        let run = sglrp(
            &[
                "explain".as_ref(),
                good.as_os_str(),
                "--model".as_ref(),
                model.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ],
            None,
        );
        assert_eq!(run.code, 2, "{}", run.stderr);
        run.assert_one_error_naming(&model.display().to_string());
        assert_eq!(run.errors().len(), 1, "{}", run.stderr);
        for sub in ["info", "classify"] {
            let mut args: Vec<OsString> = vec![sub.into()];
            if sub == "classify" {
                args.push(good.clone().into());
            }
            args.extend(["--model".into(), model.clone().into_os_string()]);
            let run = sglrp(&args, None);
            assert_eq!(run.code, 2, "{sub}: {}", run.stderr);
            run.assert_one_error_naming(&model.display().to_string());
        }
    }
}

#[test]
fn cuda_device_is_refused_clearly_without_a_gpu() {
    let (dir, good) = setup();
    let out = dir.path().join("out");
    let run = explain(&[&good], &out, &["--device", "cuda:0", "--quiet"]);
    if sglrp::backend::cuda::usable_devices().is_ok() {
        assert_eq!(run.code, 0, "a usable GPU runs: {}", run.stderr);
        return;
    }
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_one_error_naming("cuda:0");
    assert!(run.stderr.contains("--device cpu"), "{}", run.stderr);
    let run = explain(&[&good], &out, &["--device", "auto", "--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        vec!["explain"],
        vec!["explain", "x.png", "--method", "gradcan"],
        vec!["explain", "x.png", "--format", "gif"],
        vec!["explain", "x.png", "--cmap", "viridis"],
        vec!["explain", "x.png", "--heatmap", "negative"],
        vec!["explain", "x.png", "--clip", "100"],
        vec!["explain", "x.png", "--clip", "-1"],
        vec!["explain", "x.png", "--colorbar", "left"],
        vec!["explain", "x.png", "--map-space", "crop"],
        vec!["explain", "x.png", "--array-channels", "rbg"],
        vec!["explain", "x.png", "--preset", "fast"],
        vec!["explain", "x.png", "--device", "tpu"],
        vec!["explain", "x.png", "--batch-size", "0"],
        vec!["frobnicate"],
    ] {
        let run = sglrp(&args, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        run.assert_no_panic();
    }
}
