//! The seeded mutation fuzzer (`tests/fuzz/`) on every parser of outside data that reads files
//! other than weights: images (PNG, JPEG, BMP, TIFF, WebP, from tiny valid seeds), manifests, VOC
//! box files, synset files and class-name files. Each target asserts no panic, messages of one
//! short line, and for images memory bounded by the pixel limit (decoding) and by the output
//! (pre-processing). A long run: README, "Fuzzing".

mod alloc;
mod fuzz;

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba};
use sglrp::dataset::{read_manifest, read_synsets, read_voc};
use sglrp::io::classes::read_class_file;
use sglrp::io::images::read_image;
use sglrp::model::Preprocess;

use alloc::peak_of;
use fuzz::fuzz;

/// The pixel limit images are read with: small, so that a header that claims more is refused
/// and the memory bound below is tight.
const MAX_PIXELS: u64 = 1 << 16;

/// What reading an image may hold at once: the decoders' limit (the library's, for
/// `MAX_PIXELS`), the file and the RGB copy.
const DECODE_BOUND: usize = (MAX_PIXELS as usize * 8 + (64 << 20)) + (2 << 20);

/// The side images are pre-processed to.
const SIDE: usize = 17;

fn assert_one_short_line(target: &str, message: &str) {
    assert!(
        !message.contains('\n') && message.len() < 1000,
        "{target}: message of {} bytes: {:?}",
        message.len(),
        message.chars().take(300).collect::<String>()
    );
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn image_seeds() -> Vec<Vec<u8>> {
    let rgb = RgbImage::from_fn(13, 9, |x, y| Rgb([(x * 19) as u8, (y * 27) as u8, 200]));
    let grey = DynamicImage::ImageLuma8(ImageBuffer::from_fn(7, 11, |x, y| Luma([(x * y) as u8])));
    let deep = DynamicImage::ImageRgba16(ImageBuffer::from_fn(5, 6, |x, y| {
        Rgba([x as u16 * 9000, y as u16 * 7000, 1, 40000])
    }));
    let mut seeds = vec![
        encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        encode(grey.clone(), ImageFormat::Png),
        encode(deep, ImageFormat::Png),
        encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Jpeg),
        encode(grey, ImageFormat::Jpeg),
        encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp),
        encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Tiff),
        encode(DynamicImage::ImageRgb8(rgb), ImageFormat::WebP),
    ];
    // A 1×1 lossy WebP (VP8), which the encoder above does not write.
    seeds.push(
        b"RIFF\x22\x00\x00\x00WEBPVP8 \x16\x00\x00\x00\x30\x01\x00\x9d\x01\x2a\x01\x00\x01\x00\
          \x0e\xc0\xfe\x25\xa4\x00\x03\x70\x00\x00\x00\x00"
            .to_vec(),
    );
    seeds
}

#[test]
fn image_seeds_are_valid_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed");
    for (i, seed) in image_seeds().iter().enumerate() {
        std::fs::write(&path, seed).unwrap();
        let got = read_image(&path, MAX_PIXELS);
        assert!(got.is_ok(), "seed {i}: {:?}", got.err());
    }
}

#[test]
fn fuzz_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    let conventions = [Preprocess::torchvision(), Preprocess::caffe()];
    let tried = fuzz("images", 0x1a6e5, &image_seeds(), |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let (read, peak) = peak_of(|| read_image(&path, MAX_PIXELS));
        assert!(peak <= DECODE_BOUND, "decoding held {peak} bytes");
        let decoded = match read {
            Ok(decoded) => decoded,
            Err(e) => return assert_one_short_line("images", &e.to_string()),
        };
        for warning in &decoded.warnings {
            assert_one_short_line("images", warning);
        }
        let (w, h) = decoded.image.dimensions();
        assert!(w as u64 * h as u64 <= MAX_PIXELS);
        for pre in &conventions {
            let (input, peak) = peak_of(|| pre.prepare(&decoded.image, SIDE));
            assert_eq!(input.len(), SIDE * SIDE * 3);
            assert!(input.iter().all(|v| v.is_finite()));
            // The output as u8 and twice as f32 (27 bytes a pixel), and the filter windows: at
            // most a long side's worth of taps.
            let bound = SIDE * SIDE * 32 + 64 * (w.max(h) as usize) + (64 << 10);
            assert!(peak <= bound, "{w}×{h}: pre-processing held {peak} bytes");
            let map = vec![1.0; SIDE * SIDE];
            let back = pre.to_image_space(&map, 1, SIDE, (w, h)).unwrap();
            assert!(back.iter().all(|v| *v == 0.0 || (v - 1.0).abs() < 1e-6));
        }
    });
    println!("images: {tried} inputs");
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    [
        &br#"{"image": "a.png", "label": 1, "boxes": [{"label": 1, "x0": 0, "y0": 0, "x1": 4, "y1": 4}]}"#[..],
        b"\xEF\xBB\xBF{\"image\": \"a.png\", \"label\": 0, \"boxes\": []}\r\n{\"image\": \"a.png\", \"label\": 0, \"boxes\": []}\r\n",
        br#"{"image": "a.png", "label": 3, "label_name": "cat", "boxes": [{"label": 3, "x0": 1, "y0": 2, "x1": 3, "y1": 4, "difficult": 1}, {"label": 9, "x0": 0, "y0": 0, "x1": 1, "y1": 1}]}
{"image": "missing.png", "label": 1, "boxes": []}

{"image": "a.png", "label": 1"#,
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

#[test]
fn fuzz_manifests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), b"png").unwrap();
    let path = dir.path().join("manifest.jsonl");
    let tried = fuzz("manifests", 0x3a1f, &manifest_seeds(), |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let mut data = read_manifest(&path).unwrap();
        data.check_classes(5);
        for line in data.skipped.iter().chain(&data.warnings) {
            assert_one_short_line("manifests", line);
        }
        for sample in &data.samples {
            assert!(sample.label < 5 && sample.boxes.iter().all(|b| b.label < 5));
            assert_eq!(sample.content_key().len(), 16);
        }
    });
    println!("manifests: {tried} inputs");
}

fn voc_seeds() -> Vec<Vec<u8>> {
    [
        "<annotation><filename>val_1</filename><size><width>500</width><height>375</height></size>\
         <object><name>n02</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>40</xmax><ymax>60</ymax></bndbox></object>\
         <object><name>n01</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>200</xmax><ymax>300</ymax></bndbox></object>\
         </annotation>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<annotation>\n\t<filename>val_1.JPEG</filename>\n\
         \t<object>\n\t\t<name>n01</name>\n\t\t<bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox>\n\
         \t</object>\n</annotation>\n",
        "<annotation><filename>../val_1</filename><object><name>n03</name></object></annotation>",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[test]
fn fuzz_voc_box_files() {
    let dir = tempfile::tempdir().unwrap();
    let (images, boxes) = (dir.path().join("images"), dir.path().join("boxes"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&boxes).unwrap();
    std::fs::write(images.join("val_1.JPEG"), b"jpeg").unwrap();
    let synsets = [("n01".to_string(), 0), ("n02".to_string(), 1)]
        .into_iter()
        .collect();
    let path = boxes.join("val_1.xml");
    let images_root = std::fs::canonicalize(&images).unwrap();
    let tried = fuzz("voc", 0x70c, &voc_seeds(), |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let data = read_voc(&boxes, &images, &synsets).unwrap();
        assert_eq!(data.samples.len() + data.skipped.len(), 1);
        for line in data.skipped.iter().chain(&data.warnings) {
            assert_one_short_line("voc", line);
        }
        for sample in &data.samples {
            let real = std::fs::canonicalize(&sample.image).unwrap();
            assert!(real.starts_with(&images_root), "{}", real.display());
            assert!(sample.boxes.iter().all(|b| b.x0 < b.x1 && b.y0 < b.y1));
        }
    });
    println!("voc: {tried} inputs");
}

#[test]
fn fuzz_synset_files() {
    let seeds = vec![
        b"n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n".to_vec(),
        b"\xEF\xBB\xBFn01\r\nn02\r\n\r\n".to_vec(),
        b"n01\n\nn01\n".to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synsets.txt");
    let tried = fuzz("synsets", 0x5e75, &seeds, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        match read_synsets(&path) {
            Ok(map) => {
                // Indices are the classes 0‥n−1, each once.
                let mut indices: Vec<usize> = map.values().copied().collect();
                indices.sort_unstable();
                assert!(indices.iter().enumerate().all(|(i, &k)| i == k));
            }
            Err(e) => assert_one_short_line("synsets", &e.to_string()),
        }
    });
    println!("synsets: {tried} inputs");
}

#[test]
fn fuzz_class_files() {
    let seeds = vec![
        b"tench\ngoldfish\ngreat white shark\n".to_vec(),
        b"\xEF\xBB\xBFcrane\r\ncrane\r\n\r\n".to_vec(),
        br#"["tench", "goldfish", ["n01484850", "great white shark"]]"#.to_vec(),
        br#"{"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"], "2": "shark"}"#.to_vec(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let tried = fuzz("classes", 0xc1a55, &seeds, |bytes| {
        // Both ways of telling JSON: by the name and by the content.
        for name in ["classes.txt", "classes.json"] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            match read_class_file(Path::new(&path)) {
                Ok(classes) => {
                    assert!(!classes.names.is_empty());
                    assert!(classes.names.iter().all(|n| !n.trim().is_empty()));
                    for w in &classes.warnings {
                        assert_one_short_line("classes", w);
                    }
                    assert!(classes.check_count(classes.names.len()).is_ok());
                }
                Err(e) => assert_one_short_line("classes", &e.to_string()),
            }
        }
    });
    println!("classes: {tried} inputs");
}
