//! Arrays from `sglrp explain`: `.npz` per image and the run's stack loaded by NumPy and compared
//! with the `.npy` files and the library's own relevance; RGB order by default; maps in the
//! image's pixels; paths relative to the file that names them.

mod cli;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli::*;
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::{Method, Network, Preset, Request, Target};
use sglrp::model::{Channels, Dtype, Model, Preprocess};

/// The small test model with caffe's pre-processing: BGR, like the demo model, but fast.
fn small_bgr_model(dir: &Path) -> PathBuf {
    let mut model = Model::load(small_model()).unwrap();
    model.preprocess = Preprocess::caffe();
    let path = dir.join("small_bgr.safetensors");
    model.save(&path, Dtype::F32).unwrap();
    path
}

/// A Python with NumPy: `SGLRP_PYTHON`, the repository's `.venv`, or the one beside the CUDA
/// wheels.
fn python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("SGLRP_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(root().join(".venv/bin/python"));
    if let Some(wheels) = std::env::var_os("SGLRP_CUDA_WHEELS") {
        candidates.push(Path::new(&wheels).join("bin/python"));
    }
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The library's relevance of `image` for `requests`, RGB order.
fn library_maps(model: &Model, image: &Path, requests: &[Request]) -> Vec<Vec<f32>> {
    let img = image::open(image).unwrap().to_rgb8();
    let input = model.preprocess.prepare(&img, model.input_side);
    let net = Network::new(CpuBackend::new(None).unwrap(), model).unwrap();
    let result = net
        .explain_each(&input, requests, Preset::Paper)
        .unwrap()
        .remove(0);
    result
        .explanations
        .iter()
        .map(|e| {
            let plane = e.relevance.len() / 3;
            match model.preprocess.channels {
                Channels::Rgb => e.relevance.clone(),
                Channels::Bgr => e.relevance.chunks(plane).rev().flatten().copied().collect(),
            }
        })
        .collect()
}

const CHECK: &str = r#"
import json, sys, numpy as np
out, folders = sys.argv[1], sys.argv[2:]
index = json.load(open(f"{out}/relevance.index.json"))
stack = np.load(f"{out}/{index['array']}", mmap_mode="r")
assert isinstance(stack, np.memmap), type(stack)
assert list(stack.shape) == index["shape"], (stack.shape, index["shape"])
assert stack.dtype == np.float32
report = {"stack_shape": list(stack.shape), "channels": index["channels"], "images": []}
for row, folder in enumerate(folders):
    record = json.load(open(f"{folder}/result.json"))
    z = np.load(f"{folder}/{record['npz']}")
    rel = z["relevance"]
    assert rel.dtype == np.float32 and list(rel.shape) == list(z["shape"]), (rel.shape, z["shape"])
    npys = [np.load(f"{folder}/{e['files']['npy']}") for e in record["explanations"]]
    assert all(np.array_equal(a, b) for a, b in zip(rel, npys)), "npz differs from npy"
    entry = index["images"][row]
    assert entry["status"] == "ok" and entry["input"] == record["input"], entry
    assert np.array_equal(stack[row], rel), "stack differs from npz"
    report["images"].append({
        "method": z["method"].tolist(), "target": z["target"].tolist(),
        "class": z["class"].tolist(), "name": z["name"].tolist(),
        "probability": z["probability"].astype(float).tolist(),
        "channels": str(z["channels"]), "map_space": str(z["map_space"]),
        "image_size": z["image_size"].tolist(), "shape": list(rel.shape),
        "sum": float(rel.astype(np.float64).sum()),
        "heads": [[h["method"], h["target"]] for h in index["heads"]],
    })
print(json.dumps(report))
"#;

#[test]
fn npz_and_stack_load_in_numpy_and_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_test_images(&dir.path().join("in"));
    let images = &images[..images.len().min(3)];
    let out = dir.path().join("out");
    let model_path = small_bgr_model(dir.path());
    let mut args: Vec<&std::ffi::OsStr> = vec!["explain".as_ref()];
    args.extend(images.iter().map(|p| p.as_os_str()));
    args.extend([
        "--model".as_ref(),
        model_path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "npy,npz,json,stack".as_ref(),
        "--method".as_ref(),
        "lrp,sglrp".as_ref(),
        "--target".as_ref(),
        "top1,top2".as_ref(),
        "-q".as_ref(),
    ]);
    let run = sglrp(&args, None);
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_temporary_files(&out);

    let model = Model::load(&model_path).unwrap();
    assert_eq!(model.preprocess.channels, Channels::Bgr);
    let side = model.input_side as u64;
    let lines = summary(&out);
    let folders: Vec<PathBuf> = lines
        .iter()
        .map(|l| out.join(l["output_dir"].as_str().unwrap()))
        .collect();
    let requests: Vec<Request> = [Target::Rank(1), Target::Rank(2)]
        .iter()
        .flat_map(|&t| [Method::Lrp, Method::Sglrp].map(|m| Request::new(m, t)))
        .collect();
    for (line, folder) in lines.iter().zip(&folders) {
        // Paths in result.json are relative to its folder.
        assert_eq!(line["npz"], "maps.npz");
        assert_eq!(line["channels"], "rgb");
        let expected = library_maps(
            &model,
            Path::new(line["input"].as_str().unwrap()),
            &requests,
        );
        for (e, map) in line["explanations"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&expected)
        {
            let file = e["files"]["npy"].as_str().unwrap();
            assert!(!file.contains('/'), "{file} is relative to result.json");
            let (shape, values) = read_npy(&folder.join(file));
            assert_eq!(shape, [3, side, side]);
            assert_eq!(&values, map, "{file}: RGB relevance of the library");
        }
    }

    let Some(python) = python() else {
        eprintln!("skipped the NumPy round trip: no python with numpy (set SGLRP_PYTHON)");
        return;
    };
    let check = Command::new(python)
        .arg("-c")
        .arg(CHECK)
        .arg(&out)
        .args(&folders)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        report["stack_shape"],
        serde_json::json!([3, 4, 3, side, side])
    );
    assert_eq!(report["channels"], "rgb");
    for ((image, line), seen) in images
        .iter()
        .zip(&lines)
        .zip(report["images"].as_array().unwrap())
    {
        assert_eq!(
            seen["method"],
            serde_json::json!(["lrp", "sglrp", "lrp", "sglrp"])
        );
        assert_eq!(
            seen["target"],
            serde_json::json!(["top1", "top1", "top2", "top2"])
        );
        assert_eq!(
            seen["heads"],
            serde_json::json!([
                ["lrp", "top1"],
                ["sglrp", "top1"],
                ["lrp", "top2"],
                ["sglrp", "top2"]
            ])
        );
        assert_eq!(seen["channels"], "rgb");
        assert_eq!(seen["map_space"], "input");
        assert_eq!(seen["shape"], serde_json::json!([4, 3, side, side]));
        let (w, h) = image::image_dimensions(image).unwrap();
        assert_eq!(seen["image_size"], serde_json::json!([w, h]));
        for (k, e) in line["explanations"].as_array().unwrap().iter().enumerate() {
            assert_eq!(seen["class"][k], e["class"]);
            assert_eq!(seen["name"][k], e["name"]);
            let p = seen["probability"][k].as_f64().unwrap();
            assert!((p - e["probability"].as_f64().unwrap()).abs() < 1e-7);
        }
        let sum: f64 = line["explanations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["relevance_sum"].as_f64().unwrap())
            .sum();
        let seen_sum = seen["sum"].as_f64().unwrap();
        assert!(
            (seen_sum - sum).abs() <= 1e-5 * sum.abs().max(1.0),
            "{seen_sum} vs {sum}"
        );
    }
}

#[test]
fn maps_in_image_space_have_the_image_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wide.png");
    picture(90, 40, 7).save(&input).unwrap();
    let out = dir.path().join("out");
    let model_path = small_model();
    let model = Model::load(&model_path).unwrap();
    let run = sglrp(
        &[
            "explain".as_ref(),
            input.as_os_str(),
            "--model".as_ref(),
            model_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "png,overlay,grid,npy,npz,json".as_ref(),
            "--method".as_ref(),
            "lrp".as_ref(),
            "--map-space".as_ref(),
            "image".as_ref(),
            "--array-channels".as_ref(),
            "model".as_ref(),
        ],
        None,
    );
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let record = &summary(&out)[0];
    assert_eq!(record["map_space"], "image");
    let folder = out.join(record["output_dir"].as_str().unwrap());
    let e = &record["explanations"][0];
    let (shape, values) = read_npy(&folder.join(e["files"]["npy"].as_str().unwrap()));
    assert_eq!(shape, [3, 40, 90]);
    // The library's map taken back to the image's pixels, in the model's order.
    let img = image::open(&input).unwrap().to_rgb8();
    let x = model.preprocess.prepare(&img, model.input_side);
    let net = Network::new(CpuBackend::new(None).unwrap(), &model).unwrap();
    let result = net
        .explain_each(
            &x,
            &[Request::new(Method::Lrp, Target::Rank(1))],
            Preset::Paper,
        )
        .unwrap()
        .remove(0);
    let side = model.input_side;
    let r = &result.explanations[0].relevance;
    let hwc: Vec<f32> = (0..side * side)
        .flat_map(|p| (0..3).map(move |c| r[c * side * side + p]))
        .collect();
    let back = model
        .preprocess
        .to_image_space(&hwc, 3, side, (90, 40))
        .unwrap();
    let plane = 90 * 40;
    for c in 0..3 {
        for p in (0..plane).step_by(37) {
            assert_eq!(
                values[c * plane + p],
                back[p * 3 + c],
                "channel {c} pixel {p}"
            );
        }
    }
    for key in ["png", "overlay"] {
        let png = read_png(&folder.join(e["files"][key].as_str().unwrap()));
        assert_eq!(png.dimensions(), (90, 40), "{key}");
    }
    let grid = read_png(&folder.join(record["grid"].as_str().unwrap()));
    assert!(grid.width() > 2 * 160, "the grid shows the network's view");

    let refused = sglrp(
        &[
            "explain".as_ref(),
            input.as_os_str(),
            "--model".as_ref(),
            model_path.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--format".as_ref(),
            "stack".as_ref(),
            "--map-space".as_ref(),
            "image".as_ref(),
        ],
        None,
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    refused.assert_one_error_naming("--map-space input");
}
