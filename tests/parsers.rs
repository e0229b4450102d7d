//! The parsers of outside data against the classes of bad input a hostile user (or a broken
//! download) brings: images whose shape or truncation used to cost gigabytes or give invented
//! pixels, manifests, VOC box files, synset and class-name files. Each class of input has its
//! test; every message they give is one short line.

mod alloc;
mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba};
use sglrp::dataset::{self, read_manifest, read_synsets, read_voc};
use sglrp::io::classes::read_class_file;
use sglrp::io::images::read_image;
use sglrp::model::Preprocess;

use alloc::peak_of;
use common::splitmix64;

const MB: usize = 1 << 20;

/// A message fit for one line: no line breaks, and short whatever the input.
fn assert_one_short_line(message: &str) {
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "not one line: {message:?}"
    );
    assert!(
        message.len() < 600,
        "{} bytes: {}…",
        message.len(),
        &message[..200]
    );
}

fn random_rgb(w: u32, h: u32, seed: u64) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = splitmix64(seed ^ ((y as u64) << 32 | x as u64));
        Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Images

#[test]
fn very_wide_and_very_tall_images_are_preprocessed_in_memory_bounded_by_the_output() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(100_000u32, 1u32), (1, 100_000)] {
        // Dark, then bright along the long side: a few hundred bytes of PNG.
        let img = RgbImage::from_fn(w, h, |x, y| {
            let t = if x + y < (w + h) / 2 { 0 } else { 255 };
            Rgb([t, t, t])
        });
        let path = write(
            dir.path(),
            "long.png",
            encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png),
        );
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert!(bytes < 200_000, "{bytes} bytes");
        let decoded = read_image(&path, 1_000_000).unwrap();
        assert!(decoded.warnings.is_empty());
        for pre in [Preprocess::torchvision(), Preprocess::caffe()] {
            let side = 224;
            let (input, peak) = peak_of(|| pre.prepare(&decoded.image, side));
            assert_eq!(input.len(), side * side * 3);
            // The output (as u8 and twice as f32) and the filter windows; the whole resize
            // under the crop convention would be 25600000×256 pixels.
            assert!(
                peak < 2 * MB,
                "{w}×{h} ({:?}): {peak} bytes at the peak",
                pre.resize
            );
            // The step survives (the crop keeps its middle): brightness grows along the long
            // side.
            let resized = pre.resize(&decoded.image, side);
            let along = |k: u32| {
                let p = if w > h {
                    resized.get_pixel(k, 100)
                } else {
                    resized.get_pixel(100, k)
                };
                p.0[0]
            };
            assert!(
                (1..side as u32).all(|k| along(k) >= along(k - 1)),
                "{w}×{h}"
            );
            assert!(along(0) < 64 && along(223) > 191, "{w}×{h}");
        }
    }
}

#[test]
fn every_truncation_fails_or_decodes_every_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = random_rgb(37, 29, 1);
    let grey = DynamicImage::ImageLuma8(ImageBuffer::from_fn(23, 31, |x, y| {
        Luma([(x * 11 + y * 7) as u8])
    }));
    let deep = DynamicImage::ImageRgba16(ImageBuffer::from_fn(19, 13, |x, y| {
        Rgba([x as u16 * 3000, y as u16 * 5000, 777, 65535 - x as u16])
    }));
    let cases = [
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        (grey.clone(), ImageFormat::Png),
        (deep, ImageFormat::Png),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg),
        (grey, ImageFormat::Jpeg),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp),
        (DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Tiff),
        (DynamicImage::ImageRgb8(rgb), ImageFormat::WebP),
    ];
    for (image, format) in cases {
        let bytes = encode(&image, format);
        let full_path = write(dir.path(), "full", &bytes);
        let full = read_image(&full_path, 1 << 20).unwrap();
        assert!(full.warnings.is_empty(), "{format:?}: {:?}", full.warnings);
        let (mut refused, mut warned) = (0, 0);
        // Every cut in the headers and the last chunks, every 7th in between.
        let len = bytes.len();
        let cuts = (1..len).filter(|&c| c < 200 || c + 100 > len || c % 7 == 0);
        for cut in cuts {
            let path = write(dir.path(), "cut", &bytes[..cut]);
            match read_image(&path, 1 << 20) {
                Err(e) => {
                    assert_one_short_line(&e.to_string());
                    refused += 1;
                }
                Ok(got) => {
                    assert_eq!(
                        got.image,
                        full.image,
                        "{format:?} cut at {cut} of {} decodes to other pixels",
                        bytes.len()
                    );
                    assert!(
                        !got.warnings.is_empty(),
                        "{format:?} cut at {cut}: no warning"
                    );
                    warned += 1;
                }
            }
        }
        println!("{format:?}: {refused} cuts refused, {warned} decoded with a warning");
        if format == ImageFormat::Jpeg {
            assert_eq!(warned, 0, "a JPEG cut short is refused");
            let path = write(dir.path(), "cut.jpg", &bytes[..bytes.len() * 2 / 3]);
            let e = read_image(&path, 1 << 20).unwrap_err().to_string();
            assert!(e.contains("truncated JPEG") && e.contains("grey"), "{e}");
        }
    }
}

#[test]
fn grey_alpha_and_16_bit_images_read_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(DynamicImage, [u8; 3]); 5] = [
        (
            DynamicImage::ImageLuma8(ImageBuffer::from_pixel(3, 2, Luma([77]))),
            [77, 77, 77],
        ),
        (
            DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(3, 2, LumaA([90, 10]))),
            [90, 90, 90],
        ),
        (
            DynamicImage::ImageRgba8(ImageBuffer::from_pixel(3, 2, Rgba([1, 2, 3, 0]))),
            [1, 2, 3],
        ),
        (
            DynamicImage::ImageRgb16(ImageBuffer::from_pixel(3, 2, Rgb([65535, 0, 257 * 100]))),
            [255, 0, 100],
        ),
        (
            DynamicImage::ImageLuma16(ImageBuffer::from_pixel(3, 2, Luma([257 * 40]))),
            [40, 40, 40],
        ),
    ];
    for (image, want) in cases {
        let path = write(dir.path(), "x.png", encode(&image, ImageFormat::Png));
        let got = read_image(&path, 100).unwrap();
        assert_eq!(got.image.dimensions(), (3, 2));
        assert!(
            got.image.pixels().all(|p| p.0 == want),
            "{:?}",
            image.color()
        );
    }
}

#[test]
fn what_is_not_an_image_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO would block the run, /dev/zero would never end, a sparse 1 GB file would be read
    // whole for a 1-pixel limit.
    let fifo = dir.path().join("fifo.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let sparse = dir.path().join("sparse.png");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut paths = vec![
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (dir.path().to_owned(), "folder"),
        (sparse, "file of 1073.7 MB"),
        (write(dir.path(), "empty.png", b""), "empty file"),
        (
            write(dir.path(), "text.dat", b"hello"),
            "not a recognised image",
        ),
        // Named as a PNG: decoded as one, and found corrupt.
        (write(dir.path(), "text.png", b"hello"), "corrupt"),
    ];
    if made {
        paths.push((fifo, "not a regular file"));
    }
    for (path, want) in paths {
        let e = read_image(&path, 1).unwrap_err().to_string();
        assert!(e.contains(want), "{}: {e}", path.display());
        assert_one_short_line(&e);
    }
}

#[test]
fn a_tiff_whose_directory_points_past_its_end_is_refused_before_decoding() {
    // Found by the fuzzer: a 561-byte TIFF made its decoder allocate 71 MB while reading its
    // first directory, before any limit applied. Here a StripOffsets value of 2²⁴ LONGs (64 MB)
    // in a 30-byte file, little- and big-endian, and the same in BigTIFF.
    let dir = tempfile::tempdir().unwrap();
    let classic = |le: bool| -> Vec<u8> {
        let mut t = if le { b"II".to_vec() } else { b"MM".to_vec() };
        // (value, bytes): magic, first directory at 8, one entry (StripOffsets, LONG, 2²⁴
        // values at 26), no next directory.
        for (v, n) in [
            (42u32, 2),
            (8, 4),
            (1, 2),
            (273, 2),
            (4, 2),
            (1 << 24, 4),
            (26, 4),
            (0, 4),
        ] {
            let bytes = if le { v.to_le_bytes() } else { v.to_be_bytes() };
            t.extend(if le { &bytes[..n] } else { &bytes[4 - n..] });
        }
        t
    };
    let mut big = b"II".to_vec();
    big.extend(43u16.to_le_bytes());
    big.extend(8u16.to_le_bytes());
    big.extend(0u16.to_le_bytes());
    big.extend(16u64.to_le_bytes());
    big.extend(1u64.to_le_bytes());
    big.extend(273u16.to_le_bytes());
    big.extend(16u16.to_le_bytes());
    big.extend((1u64 << 24).to_le_bytes());
    big.extend(44u64.to_le_bytes());
    big.extend(0u64.to_le_bytes());
    for (name, bytes) in [
        ("le.tif", classic(true)),
        ("be.tif", classic(false)),
        ("big.tif", big),
    ] {
        let path = write(dir.path(), name, bytes);
        let (got, peak) = peak_of(|| read_image(&path, 1 << 16));
        let e = got.unwrap_err().to_string();
        assert!(
            e.contains("corrupt TIFF") && e.contains("tag 273"),
            "{name}: {e}"
        );
        assert!(peak < MB, "{name}: {peak} bytes at the peak");
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// A folder with images `a.png` and `b.png` and a manifest of `lines` (raw bytes).
fn manifest(lines: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.png", b"png");
    write(dir.path(), "b.png", b"png");
    let path = write(dir.path(), "manifest.jsonl", lines.join(&b"\n"[..]));
    (dir, path)
}

const A: &[u8] = br#"{"image": "a.png", "label": 1, "boxes": [{"label": 1, "x0": 0, "y0": 0, "x1": 4, "y1": 4}]}"#;
const B: &[u8] = br#"{"image": "b.png", "label": 2, "boxes": [{"label": 2, "x0": 1, "y0": 1, "x1": 5, "y1": 6}]}"#;

#[test]
fn a_non_utf8_byte_fails_its_line_only() {
    let bad = [
        br#"{"image": "a.png", "label": 1, "boxes": [], "note": "caf"#.as_slice(),
        b"\xe9\"}",
    ]
    .concat();
    let (_dir, path) = manifest(&[A, &bad, B]);
    let data = read_manifest(&path).unwrap();
    assert_eq!(data.samples.len(), 2);
    assert_eq!(data.skipped.len(), 1);
    let reason = &data.skipped[0];
    assert!(
        reason.contains("manifest.jsonl:2") && reason.contains("UTF-8"),
        "{reason}"
    );
    assert_one_short_line(reason);
}

#[test]
fn a_byte_order_mark_and_crlf_keep_every_line() {
    let first = [b"\xEF\xBB\xBF".as_slice(), A, b"\r"].concat();
    let (_dir, path) = manifest(&[&first, B, b""]);
    let data = read_manifest(&path).unwrap();
    assert!(data.skipped.is_empty(), "{:?}", data.skipped);
    assert_eq!(data.samples.len(), 2);
    assert!(data.samples[0].source.ends_with("manifest.jsonl:1"));
}

#[test]
fn unknown_fields_are_kept_aside_with_one_warning() {
    let lines: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            format!(
                r#"{{"image": "a.png", "label": {i}, "label_name": "class {i}", "boxes": [{{"label": {i}, "x0": 0, "y0": 0, "x1": 4, "y1": 4, "difficult": 0}}]}}"#
            )
            .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let (_dir, path) = manifest(&refs);
    let data = read_manifest(&path).unwrap();
    assert_eq!(data.samples.len(), 3, "{:?}", data.skipped);
    assert_eq!(data.samples[2].extra["label_name"], "class 2");
    assert_eq!(data.warnings.len(), 1, "{:?}", data.warnings);
    let w = &data.warnings[0];
    assert!(
        w.contains("label_name") && w.contains("boxes[].difficult"),
        "{w}"
    );
}

#[test]
fn huge_fields_are_never_echoed() {
    let big = "A".repeat(400_000);
    let long_line = format!(
        r#"{{"image": "a.png", "label": 1, "boxes": [], "x": "{}"}}"#,
        "B".repeat(2 * MB)
    );
    let lines = [
        format!(r#"{{"image": "a.png", "label": "{big}", "boxes": []}}"#),
        format!(r#"{{"image": "{big}.png", "label": 1, "boxes": []}}"#),
        format!(r#"{{"image": "a.png", "label": 1, "boxes": [{{"label": "{big}"}}]}}"#),
        format!(r#"{{"image": "a.png", "label": 1, "boxes": [], "{big}": 1}}"#),
        format!(r#"{{"image": "\u001b[2J{big}", "label": 1, "boxes": []}}"#),
        long_line,
    ];
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let (_dir, path) = manifest(&refs);
    let (data, peak) = peak_of(|| read_manifest(&path).unwrap());
    assert_eq!(data.skipped.len(), 5, "{:?}", data.skipped);
    for reason in data.skipped.iter().chain(&data.warnings) {
        assert_one_short_line(reason);
        assert!(!reason.contains('\u{1b}'), "{reason:?}");
    }
    // Line 4 is usable: its odd field is kept aside, and its name shortened in the warning.
    let trailing = &data.skipped[3];
    assert!(trailing.contains("manifest.jsonl:5"), "{trailing}");
    assert!(trailing.contains("\\u{1b}"), "{trailing}");
    assert!(trailing.starts_with(&path.display().to_string()));
    assert!(
        data.skipped
            .iter()
            .any(|r| r.contains(":6: line of") && r.contains("limit")),
        "{:?}",
        data.skipped
    );
    // The over-long line was read past, not held.
    assert!(peak < 8 * MB, "{peak} bytes at the peak");
}

#[test]
fn box_labels_outside_the_models_classes_are_refused() {
    let outside = br#"{"image": "b.png", "label": 2, "boxes": [{"label": 2, "x0": 1, "y0": 1, "x1": 5, "y1": 6}, {"label": 12, "x0": 1, "y0": 1, "x1": 5, "y1": 6}]}"#;
    let (_dir, path) = manifest(&[A, outside]);
    let mut data = read_manifest(&path).unwrap();
    assert_eq!(data.samples.len(), 2);
    data.check_classes(10);
    assert_eq!(data.samples.len(), 1);
    assert_eq!(data.skipped.len(), 1);
    let reason = &data.skipped[0];
    assert!(
        reason.contains("manifest.jsonl:2") && reason.contains("box label 12"),
        "{reason}"
    );
    assert!(reason.contains("10 classes"), "{reason}");
    data.check_classes(1);
    assert!(
        data.samples.is_empty(),
        "label 1 is not a class of a 1-class model"
    );
}

#[test]
fn a_sample_without_a_box_of_its_label_is_flagged() {
    let other = br#"{"image": "b.png", "label": 3, "boxes": [{"label": 2, "x0": 1, "y0": 1, "x1": 5, "y1": 6}]}"#;
    let none = br#"{"image": "b.png", "label": 4, "boxes": []}"#;
    let (_dir, path) = manifest(&[A, other, none]);
    let data = read_manifest(&path).unwrap();
    let flags: Vec<bool> = data.samples.iter().map(|s| s.has_label_box()).collect();
    assert_eq!(flags, [true, false, false]);
    assert_eq!(data.warnings.len(), 1, "{:?}", data.warnings);
    let w = &data.warnings[0];
    assert!(
        w.contains("2 sample(s) have no box of their own label") && w.contains("manifest.jsonl:2"),
        "{w}"
    );
}

#[test]
fn a_repeated_line_is_used_once_and_keys_follow_the_content() {
    // The same content with other spacing and key order, then a line that differs by a label.
    let same = br#"{"boxes":[{"y1":4,"x1":4,"y0":0,"x0":0,"label":1}],"label":1,"image":"a.png"}"#;
    let other = br#"{"image": "a.png", "label": 2, "boxes": [{"label": 2, "x0": 0, "y0": 0, "x1": 4, "y1": 4}]}"#;
    let (_dir, path) = manifest(&[A, B, same, A, other]);
    let data = read_manifest(&path).unwrap();
    assert_eq!(data.samples.len(), 3, "{:?}", data.samples);
    assert!(data.samples[2].source.ends_with(":5"));
    assert_eq!(data.warnings.len(), 1, "{:?}", data.warnings);
    let w = &data.warnings[0];
    assert!(
        w.contains("2 sample(s) repeat") && w.contains(":3 repeats") && w.contains(":1"),
        "{w}"
    );
    let keys: Vec<String> = data.samples.iter().map(|s| s.content_key()).collect();
    assert!(
        keys.iter()
            .all(|k| k.len() == 16 && k.chars().all(|c| c.is_ascii_hexdigit()))
    );
    assert_ne!(keys[0], keys[2], "another label, another key");
    // Keys do not depend on where the line is, or on the run.
    let moved = write(
        path.parent().unwrap(),
        "moved.jsonl",
        [&b"\n"[..], other, b"\n", A].concat(),
    );
    let again = read_manifest(&moved).unwrap();
    assert_eq!(again.samples[1].content_key(), keys[0]);
    assert_eq!(again.samples[0].content_key(), keys[2]);
}

#[test]
fn an_image_that_is_no_regular_file_fails_its_line() {
    let folder = br#"{"image": "sub", "label": 1, "boxes": []}"#;
    let device = br#"{"image": "/dev/zero", "label": 1, "boxes": []}"#;
    let (dir, path) = manifest(&[folder, device, A]);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let data = read_manifest(&path).unwrap();
    assert_eq!(data.samples.len(), 1);
    assert_eq!(data.skipped.len(), 2, "{:?}", data.skipped);
    assert!(
        data.skipped
            .iter()
            .all(|r| r.contains("is not a regular file"))
    );
}

#[test]
fn a_manifest_that_is_no_regular_file_is_refused() {
    for path in [Path::new("/dev/zero"), Path::new("/")] {
        let e = read_manifest(path).unwrap_err().to_string();
        assert!(e.contains("expected a file"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// VOC box files and synsets

fn voc_xml(filename: &str) -> String {
    format!(
        "<annotation><filename>{filename}</filename><object><name>n01</name><bndbox>\
         <xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
}

fn synsets() -> std::collections::HashMap<String, usize> {
    [("n01".to_string(), 0)].into_iter().collect()
}

#[test]
fn voc_filenames_cannot_leave_the_images_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (images, boxes) = (dir.path().join("images"), dir.path().join("boxes"));
    std::fs::create_dir_all(images.join("sub")).unwrap();
    std::fs::create_dir_all(&boxes).unwrap();
    write(dir.path(), "secret.JPEG", b"outside");
    write(&images, "in.JPEG", b"inside");
    write(&images.join("sub"), "deep.JPEG", b"inside");
    std::os::unix::fs::symlink(dir.path().join("secret.JPEG"), images.join("leak.JPEG")).unwrap();
    std::os::unix::fs::symlink(images.join("in.JPEG"), images.join("alias.JPEG")).unwrap();
    let cases = [
        ("ok_plain", "in", true),
        ("ok_sub", "sub/deep", true),
        ("ok_dot", "./in", true),
        ("ok_link_inside", "alias", true),
        ("up", "../secret", false),
        ("up_deep", "sub/../../secret", false),
        (
            "absolute",
            &format!("{}", dir.path().join("secret").display()),
            false,
        ),
        ("link_outside", "leak", false),
        ("empty", "", false),
    ];
    for (file, filename, _) in &cases {
        write(&boxes, &format!("{file}.xml"), voc_xml(filename));
    }
    let data = read_voc(&boxes, &images, &synsets()).unwrap();
    for (file, _, accepted) in cases {
        let loaded = data
            .samples
            .iter()
            .any(|s| s.source.contains(&format!("{file}.xml")));
        assert_eq!(loaded, accepted, "{file}: {:?}", data.skipped);
    }
    for sample in &data.samples {
        let real = std::fs::canonicalize(&sample.image).unwrap();
        assert!(real.starts_with(std::fs::canonicalize(&images).unwrap()));
    }
    for reason in &data.skipped {
        assert_one_short_line(reason);
    }
    assert!(
        data.skipped
            .iter()
            .any(|r| r.contains("link_outside.xml") && r.contains("outside the images folder")),
        "{:?}",
        data.skipped
    );
    assert!(
        data.skipped
            .iter()
            .any(|r| r.contains("up.xml") && r.contains("leaves the images folder")),
        "{:?}",
        data.skipped
    );
}

#[test]
fn voc_xml_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (images, boxes) = (dir.path().join("images"), dir.path().join("boxes"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&boxes).unwrap();
    write(&images, "in.JPEG", b"x");
    let depth = 90_000;
    let deep = format!(
        "<annotation><filename>in</filename>{}{}</annotation>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let wide = format!(
        "<annotation><filename>in</filename>{}</annotation>",
        "<a/>".repeat(dataset::MAX_XML_NODES as usize)
    );
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \
                  \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><annotation><filename>&b;</filename></annotation>";
    let huge = format!(
        "<annotation><filename>in</filename><pad>{}</pad></annotation>",
        "x".repeat(dataset::MAX_XML_BYTES as usize)
    );
    let coords = voc_xml("in").replace("<xmax>5</xmax>", "<xmax>1e300</xmax>");
    let cases = [
        ("deep", deep.as_str(), "no <object>"),
        ("wide", &wide, "nodes limit"),
        ("laughs", laughs, "DTD"),
        ("huge", &huge, "bytes; a box file has at most"),
        (
            "coords",
            &coords,
            "<xmax> 1e300: expected a pixel coordinate",
        ),
        ("binary", "<annotation>\u{0}\u{ff}</annotation>", "not XML"),
    ];
    for (name, text, _) in cases {
        write(&boxes, &format!("{name}.xml"), text);
    }
    write(
        &boxes,
        "latin1.xml",
        b"<annotation><filename>caf\xe9</filename></annotation>",
    );
    let data = read_voc(&boxes, &images, &synsets()).unwrap();
    assert!(data.samples.is_empty());
    assert_eq!(data.skipped.len(), cases.len() + 1, "{:?}", data.skipped);
    for (name, _, want) in cases {
        let reason = data
            .skipped
            .iter()
            .find(|r| r.contains(&format!("/{name}.xml")))
            .unwrap();
        assert!(reason.contains(want), "{name}: {reason}");
        assert_one_short_line(reason);
    }
    assert!(
        data.skipped
            .iter()
            .any(|r| r.contains("latin1.xml") && r.contains("not UTF-8"))
    );
}

#[test]
fn synset_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.txt",
        b"\xEF\xBB\xBFn01 tench\r\nn02 goldfish\r\n\r\n\n",
    );
    let map = read_synsets(&good).unwrap();
    assert_eq!((map["n01"], map["n02"], map.len()), (0, 1, 2));
    for (bytes, want) in [
        (
            &b"n01\nn02\nn01 again\n"[..],
            ":3: synset n01 is already class 0 (line 1)",
        ),
        (b"n01\n\nn02\n", ":2: empty line before the last synset"),
        (b"n01\nn\xff2\n", ":2: not UTF-8"),
        (b"", "no synsets"),
        (b"\n\n", "no synsets"),
    ] {
        let path = write(dir.path(), "bad.txt", bytes);
        let e = read_synsets(&path).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert_one_short_line(&e);
    }
}

// ---------------------------------------------------------------------------------------------
// Class-name files

#[test]
fn class_files_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let want = ["tench", "goldfish", "great white shark"];
    let forms: [(&str, &[u8]); 5] = [
        ("plain.txt", b"tench\ngoldfish\ngreat white shark"),
        ("windows.txt", b"\xEF\xBB\xBFtench\r\ngoldfish\r\n great white shark \r\n\r\n"),
        ("list.json", br#"["tench", "goldfish", "great white shark"]"#),
        (
            "keras.json",
            br#"{"1": ["n01443537", "goldfish"], "0": ["n01440764", "tench"], "2": ["n01484850", "great white shark"]}"#,
        ),
        ("object.txt", b"\n {\"0\": \"tench\", \"1\": \"goldfish\", \"2\": \"great white shark\"}"),
    ];
    for (name, bytes) in forms {
        let classes = read_class_file(&write(dir.path(), name, bytes)).unwrap();
        assert_eq!(classes.names, want, "{name}");
        assert!(
            classes.warnings.is_empty(),
            "{name}: {:?}",
            classes.warnings
        );
        classes.check_count(3).unwrap();
        let e = classes.check_count(1000).unwrap_err().to_string();
        assert!(
            e.contains("3 class names, but the model has 1000 classes"),
            "{e}"
        );
    }
}

#[test]
fn class_file_errors_name_the_line_and_repeats_warn() {
    let dir = tempfile::tempdir().unwrap();
    let repeated = read_class_file(&write(
        dir.path(),
        "crane.txt",
        b"crane\nheron\ncrane\nmaillot\nmaillot\n",
    ))
    .unwrap();
    assert_eq!(repeated.names.len(), 5);
    assert_eq!(repeated.warnings.len(), 1, "{:?}", repeated.warnings);
    let w = &repeated.warnings[0];
    assert!(
        w.contains("\"crane\" is both class 0 (line 1) and class 2 (line 3)")
            && w.contains("\"maillot\" is both class 3 (line 4) and class 4 (line 5)"),
        "{w}"
    );
    let long = format!("a\n{}\n", "x".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "gap.txt",
            b"a\n\nb\n".to_vec(),
            ":2: empty line before the last name",
        ),
        ("latin1.txt", b"a\ncaf\xe9\n".to_vec(), ":2: not UTF-8"),
        ("long.txt", long.into_bytes(), ":2: line of 5000 bytes"),
        (
            "control.txt",
            b"a\nb\x1b[31m\n".to_vec(),
            ":2: class name \"b\\u{1b}[31m\" holds control",
        ),
        ("empty.txt", b"\n\n".to_vec(), "no class names"),
        (
            "broken.json",
            b"[\"a\",\n\"b\"\n".to_vec(),
            "broken.json:3: not a JSON list",
        ),
        ("number.json", b"[\"a\", 5]".to_vec(), "not a JSON list"),
        (
            "blank.json",
            b"[\"a\", \" \"]".to_vec(),
            "element 1: empty class name",
        ),
        (
            "gap.json",
            br#"{"0": "a", "2": "c"}"#.to_vec(),
            "key \"2\": index 2, but 2 entries",
        ),
        (
            "twice.json",
            br#"{"0": "a", "1": "b", "01": "c"}"#.to_vec(),
            "index 1 is also key \"1\"",
        ),
        (
            "key.json",
            br#"{"zero": "a"}"#.to_vec(),
            "key \"zero\": expected a class index",
        ),
        ("scalar.json", b"17".to_vec(), "not a JSON list"),
    ];
    for (name, bytes, want) in cases {
        let e = read_class_file(&write(dir.path(), name, bytes))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{name}: {e}");
        assert_one_short_line(&e);
    }
    let sparse = dir.path().join("big.txt");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(sglrp::io::classes::MAX_BYTES + 1)
        .unwrap();
    let e = read_class_file(&sparse).unwrap_err().to_string();
    assert!(e.contains("a class-name file has at most"), "{e}");
    let e = read_class_file(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
}
