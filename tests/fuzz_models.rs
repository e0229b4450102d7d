//! Fuzzing the model loader (`tests/fuzz/`): mutated safetensors files, and mutated headers of the
//! three weight layouts (torchvision, timm, own), must give a model or an error — never a panic.
//! A model that loads is also described (dims, names, costs) and, when small, run forward once.
//!
//! The layout targets take the JSON header alone and rebuild a consistent file around it (offsets
//! recomputed, tensor data filled with small positive values), so that mutations of names,
//! shapes, dtypes and metadata reach the layouts' logic instead of the header's offset checks.
//! `SGLRP_FUZZ_SECONDS=600 cargo test --release --test fuzz_models` runs each target for ten
//! minutes.

mod common;
mod fuzz;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;

use common::{fixtures, write_safetensors};
use serde_json::{Map, Value};
use sglrp::backend::cpu::CpuBackend;
use sglrp::explain::Network;
use sglrp::model::{Model, layer_costs};

/// Files the layout targets build are at most this large; larger shapes are skipped.
const MAX_FILE_BYTES: u64 = 8 << 20;
/// Models up to this many forward FLOPs are also run.
const MAX_FORWARD_FLOPS: u64 = 20_000_000;

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Seeded small values, positive (so that running variances are valid).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| 0.05 + ((i * 7919 + seed * 104_729) % 97) as f32 / 200.0)
        .collect()
}

/// torchvision or timm names for a tiny VGG: `cfg` as torchvision's (`0` = pool, last), with or
/// without batch-norms, a `prefix` in front of every name. The last map is 1×1.
fn torch_state(cfg: &[usize], bn: bool, timm: bool, prefix: &str) -> Tensors {
    let mut tensors = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| {
        let len = shape.iter().product();
        let seed = tensors.len();
        tensors.push((format!("{prefix}{name}"), shape, values(len, seed)));
    };
    let (mut index, mut cin) = (0, 3);
    for &width in cfg {
        if width == 0 {
            index += 1;
            continue;
        }
        push(format!("features.{index}.weight"), vec![width, cin, 3, 3]);
        push(format!("features.{index}.bias"), vec![width]);
        if bn {
            for param in ["weight", "bias", "running_mean", "running_var"] {
                push(format!("features.{}.{param}", index + 1), vec![width]);
            }
            index += 1;
        }
        index += 2;
        cin = width;
    }
    let spatial = 1;
    let hidden = 4;
    if timm {
        push(
            "pre_logits.fc1.weight".into(),
            vec![hidden, cin, spatial, spatial],
        );
        push("pre_logits.fc1.bias".into(), vec![hidden]);
        push("pre_logits.fc2.weight".into(), vec![hidden, hidden, 1, 1]);
        push("pre_logits.fc2.bias".into(), vec![hidden]);
        push("head.fc.weight".into(), vec![3, hidden]);
        push("head.fc.bias".into(), vec![3]);
    } else {
        let inputs = cin * spatial * spatial;
        for (k, (i, o)) in [(inputs, hidden), (hidden, hidden), (hidden, 3)]
            .into_iter()
            .enumerate()
        {
            push(format!("classifier.{}.weight", 3 * k), vec![o, i]);
            push(format!("classifier.{}.bias", 3 * k), vec![o]);
        }
    }
    tensors
}

/// A tiny model in the own format, with an affine layer and class names.
fn own_state() -> (Tensors, HashMap<String, String>) {
    let layers = "conv2 affine conv3 pool flatten dense4 affine dense3";
    let shapes: [(&str, Vec<usize>); 10] = [
        ("layers.0.weight", vec![2, 3, 3, 3]),
        ("layers.0.bias", vec![2]),
        ("layers.1.scale", vec![2]),
        ("layers.1.shift", vec![2]),
        ("layers.2.weight", vec![3, 2, 3, 3]),
        ("layers.2.bias", vec![3]),
        ("layers.5.weight", vec![4, 12]),
        ("layers.5.bias", vec![4]),
        ("layers.7.weight", vec![3, 4]),
        ("layers.7.bias", vec![3]),
    ];
    let mut tensors: Tensors = shapes
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let len = shape.iter().product();
            (name.to_string(), shape, values(len, k))
        })
        .collect();
    tensors.push(("layers.6.scale".into(), vec![4], values(4, 20)));
    tensors.push(("layers.6.shift".into(), vec![4], values(4, 21)));
    let metadata = HashMap::from([
        ("sglrp.format".to_string(), "1".to_string()),
        ("sglrp.layers".into(), layers.into()),
        ("sglrp.input_size".into(), "4".into()),
        ("sglrp.flatten".into(), "chw".into()),
        ("sglrp.preprocess".into(), "torchvision".into()),
        ("sglrp.classes".into(), r#"["a", "b", "c"]"#.into()),
        ("sglrp.name".into(), "tiny".into()),
    ]);
    (tensors, metadata)
}

/// The bytes of a safetensors file holding `tensors`.
fn file_bytes(tensors: &Tensors, metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.safetensors");
    write_safetensors(&path, tensors, metadata);
    std::fs::read(path).unwrap()
}

/// The JSON header of a safetensors file.
fn header(bytes: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8..8 + n].to_vec()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn torchvision_seeds() -> Vec<Vec<u8>> {
    vec![
        file_bytes(&torch_state(&[2, 0, 3, 0], false, false, ""), None),
        file_bytes(&torch_state(&[2, 0, 3, 3, 0], true, false, "module."), None),
        header(&fixture("vgg_family/tv_vgg13_bn.safetensors")),
        header(&fixture("vgg_family/tv_vgg11.safetensors")),
    ]
}

fn timm_seeds() -> Vec<Vec<u8>> {
    vec![
        file_bytes(&torch_state(&[2, 0, 3, 0], false, true, ""), None),
        file_bytes(&torch_state(&[2, 2, 0, 3, 0], true, true, ""), None),
        header(&fixture("vgg_family/timm_vgg11_bn.safetensors")),
    ]
}

fn own_seeds() -> Vec<Vec<u8>> {
    let (tensors, metadata) = own_state();
    vec![
        file_bytes(&tensors, Some(metadata)),
        header(&fixture("vgg_family/onnx_vgg13_nhwc.imported.safetensors")),
        header(&fixture("odd_vgg.model.safetensors")),
    ]
}

/// A loaded model must be describable, and, when small, runnable.
fn exercise(model: &Model) {
    let dims = model.dims();
    let _ = model.layer_names();
    let costs = layer_costs(&model.specs(), &dims);
    let flops: u64 = costs.iter().map(|c| c.forward).sum();
    if flops <= MAX_FORWARD_FLOPS {
        let net = Network::new(CpuBackend::new(Some(1)).unwrap(), model).unwrap();
        let side = model.input_side;
        let pixels = vec![128.0; side * side * 3];
        let _ = net.classify(&model.preprocess.normalize(&pixels));
    }
}

fn bytes_per_element(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => 4,
    }
}

/// Rebuilds a consistent safetensors file around a (mutated) JSON header: offsets recomputed in
/// the header's order, data filled. `None` if the header is not a JSON object of tensors or its
/// data would be too large.
fn rebuild(header: &[u8]) -> Option<Vec<u8>> {
    let Value::Object(entries) = serde_json::from_slice::<Value>(header).ok()? else {
        return None;
    };
    let mut rebuilt = Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, entry) in entries {
        let Value::Object(mut info) = entry else {
            rebuilt.insert(name, entry);
            continue;
        };
        if name == "__metadata__" {
            rebuilt.insert(name, Value::Object(info));
            continue;
        }
        let dtype = info.get("dtype").and_then(Value::as_str).unwrap_or("F32");
        let size = bytes_per_element(dtype);
        let elements = info
            .get("shape")
            .and_then(Value::as_array)?
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(d.as_u64()?))?;
        let bytes = elements.checked_mul(size)?;
        if data.len() as u64 + bytes > MAX_FILE_BYTES {
            return None;
        }
        let start = data.len();
        let fill: Vec<f32> = values(elements as usize, start);
        match dtype {
            "F32" => data.extend(fill.iter().flat_map(|v| v.to_le_bytes())),
            "F16" => data.extend(
                fill.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
            ),
            "BF16" => data.extend(
                fill.iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()),
            ),
            _ => data.resize(start + bytes as usize, 0),
        }
        info.insert(
            "data_offsets".into(),
            serde_json::json!([start, data.len()]),
        );
        rebuilt.insert(name, Value::Object(info));
    }
    let head = serde_json::to_vec(&Value::Object(rebuilt)).ok()?;
    Some([&(head.len() as u64).to_le_bytes()[..], &head, &data].concat())
}

/// The layout targets: a header (or a whole file, whose header is taken) rebuilt and loaded.
/// Returns whether a model loaded.
fn load_header(input: &[u8]) -> bool {
    let header = match input.first() {
        Some(b'{') => input,
        _ if input.len() >= 8 => {
            let n = u64::from_le_bytes(input[..8].try_into().unwrap()) as usize;
            match input.get(8..8usize.saturating_add(n)) {
                Some(h) => h,
                None => return false,
            }
        }
        _ => return false,
    };
    let loaded = rebuild(header)
        .and_then(|file| Model::from_safetensors(&file, Path::new("fuzz.safetensors")).ok());
    if let Some((model, _)) = &loaded {
        exercise(model);
    }
    loaded.is_some()
}

/// Fuzzes a layout target, counting the inputs that load.
fn fuzz_layout(name: &str, seed: u64, corpus: &[Vec<u8>]) {
    let loaded = Cell::new(0u64);
    let tried = fuzz::fuzz(name, seed, corpus, |input| {
        loaded.set(loaded.get() + u64::from(load_header(input)));
    });
    eprintln!("{name}: {tried} inputs, {} loaded", loaded.get());
}

#[test]
fn fuzz_safetensors_files() {
    // A file per input: in memory where there is a tmpfs (a disk makes this target 50× slower).
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let path = dir.path().join("fuzz.safetensors");
    let corpus: Vec<Vec<u8>> = [torchvision_seeds(), timm_seeds(), own_seeds()]
        .concat()
        .into_iter()
        .filter(|seed| seed.first() != Some(&b'{'))
        .collect();
    let loaded = Cell::new(0u64);
    let tried = fuzz::fuzz("safetensors-file", 0x5afe, &corpus, |input| {
        std::fs::write(&path, input).unwrap();
        if let Ok(model) = Model::load(&path) {
            exercise(&model);
            loaded.set(loaded.get() + 1);
        }
    });
    eprintln!("safetensors-file: {tried} inputs, {} loaded", loaded.get());
}

#[test]
fn fuzz_torchvision_layout() {
    fuzz_layout("torchvision-layout", 0x7f, &torchvision_seeds());
}

#[test]
fn fuzz_timm_layout() {
    fuzz_layout("timm-layout", 0x713, &timm_seeds());
}

#[test]
fn fuzz_own_layout() {
    fuzz_layout("own-layout", 0x0e, &own_seeds());
}

/// The seeds are valid models of their layouts: the fuzzer starts from files that load.
#[test]
fn seeds_load() {
    for (seeds, layout) in [
        (torchvision_seeds(), sglrp::model::Layout::Torchvision),
        (timm_seeds(), sglrp::model::Layout::Timm),
        (own_seeds(), sglrp::model::Layout::Own),
    ] {
        for seed in seeds {
            let file = if seed.first() == Some(&b'{') {
                rebuild(&seed).unwrap()
            } else {
                seed
            };
            let (model, report) = Model::from_safetensors(&file, "seed.safetensors").unwrap();
            assert_eq!(report.layout, layout);
            exercise(&model);
        }
    }
}
