//! Helpers for the end-to-end tests of the `sglrp` binary (`tests/cli_*.rs`): running it,
//! models, test images of every supported kind, and checks on output folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The small fixture model: input 32, torchvision pre-processing, 10 ImageNet class names.
pub fn small_model() -> PathBuf {
    root().join("tests/fixtures/small_vgg.model.safetensors")
}

/// The bundled demo model: VGG16 at 224×224, caffe pre-processing, 10 Fashion-MNIST classes.
pub fn demo_model() -> PathBuf {
    root().join("weights/demo_vgg16_fashion.safetensors")
}

/// The bundled sample images.
pub fn samples() -> PathBuf {
    root().join("weights/samples")
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `error:` lines of stderr.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }

    /// Asserts that the run did not panic and that every error is one line naming `what`.
    pub fn assert_one_error_naming(&self, what: &str) {
        self.assert_no_panic();
        let errors = self.errors();
        assert!(
            errors.iter().any(|l| l.contains(what)),
            "no error line names {what}:\n{}",
            self.stderr
        );
    }

    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the binary panicked:\n{}",
            self.stderr
        );
    }
}

/// Runs `sglrp ARGS` in `cwd` (the crate root if `None`).
pub fn sglrp<S: AsRef<std::ffi::OsStr>>(args: &[S], cwd: Option<&Path>) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sglrp"))
        .args(args)
        .current_dir(cwd.unwrap_or(&root()))
        .output()
        .expect("the sglrp binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A smooth, seeded RGB picture.
pub fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = |k: u32| ((x * (3 + k + seed) + y * (5 + 2 * k) + seed * 37) % 256) as u8;
        Rgb([v(0), v(1), v(2)])
    })
}

/// Writes one image of each supported kind into `dir`; returns their paths. Sizes differ from
/// the model's input so that resizing and cropping run.
pub fn write_test_images(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let rgb = picture(48, 40, 1);
    let mut paths = Vec::new();
    let mut save = |name: &str, img: DynamicImage, format: ImageFormat| {
        let path = dir.join(name);
        img.save_with_format(&path, format).unwrap();
        paths.push(path);
    };
    save(
        "rgb.png",
        DynamicImage::ImageRgb8(rgb.clone()),
        ImageFormat::Png,
    );
    save(
        "photo.jpg",
        DynamicImage::ImageRgb8(picture(64, 50, 2)),
        ImageFormat::Jpeg,
    );
    let grey = ImageBuffer::from_fn(36, 52, |x, y| Luma([((x * 7 + y * 3) % 256) as u8]));
    save("grey.png", DynamicImage::ImageLuma8(grey), ImageFormat::Png);
    let grey_alpha = ImageBuffer::from_fn(40, 40, |x, y| LumaA([(x * 6) as u8, (y * 6) as u8]));
    save(
        "grey_alpha.png",
        DynamicImage::ImageLumaA8(grey_alpha),
        ImageFormat::Png,
    );
    let rgba = ImageBuffer::from_fn(44, 33, |x, y| Rgba([(x * 5) as u8, (y * 7) as u8, 90, 128]));
    save(
        "alpha.png",
        DynamicImage::ImageRgba8(rgba),
        ImageFormat::Png,
    );
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(40, 48, |x, y| {
        Rgb([(x * 1300) as u16, (y * 1100) as u16, 40000])
    });
    save(
        "deep16.png",
        DynamicImage::ImageRgb16(deep),
        ImageFormat::Png,
    );
    save(
        "bitmap.bmp",
        DynamicImage::ImageRgb8(picture(33, 35, 3)),
        ImageFormat::Bmp,
    );
    save(
        "scan.tiff",
        DynamicImage::ImageRgb8(picture(50, 38, 4)),
        ImageFormat::Tiff,
    );
    save(
        "web.webp",
        DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(picture(41, 43, 5)).to_rgba8()),
        ImageFormat::WebP,
    );
    paths
}

/// Every file under `dir`, recursively, relative to it.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_owned())
        .collect()
}

/// Asserts that no temporary or partial file is left under `dir`.
pub fn assert_no_temporary_files(dir: &Path) {
    for f in files_under(dir) {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.ends_with(".tmp") && !name.starts_with('.'),
            "temporary file left: {}",
            f.display()
        );
    }
}

/// Reads an f32 `.npy` file.
pub fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    sglrp::io::npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes a PNG file.
pub fn read_png(path: &Path) -> RgbImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// The lines of `summary.jsonl`, parsed.
pub fn summary(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("summary.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
