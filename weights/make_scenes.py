#!/usr/bin/env python3
"""Generate multi-object "Fashion-MNIST scenes": 224x224 RGB images with 2-3 clothing items.

Each scene holds 2 or 3 Fashion-MNIST items of *distinct* classes (drawn uniformly, without
replacement; the items uniformly from the split), scaled to clearly different sizes (one main
item on a square canvas of 96-128 px side, the others 48-80 px; aspect jittered by +-10 %;
mirrored with probability 1/2), tinted with a random colour and placed on a varied background
(flat colour, linear gradient, low-contrast smooth noise, or low-contrast stripes/checkerboard).
The scenes are the training and evaluation data of the demo model (weights/train_demo.py) and
the sample inputs in weights/samples/.

Rendering of one item (Fashion-MNIST items are white-on-black 28x28, grey level g in [0, 1]):
  * the 28x28 image is (optionally mirrored and) resized bilinearly to its canvas size;
  * alpha = clip((g - 0.04) / 0.16, 0, 1): pixels with g <= 0.04 are the item's background and
    leave the scene untouched; the others cover it, fully from g >= 0.2 on;
  * colour = tint * (0.35 + 0.65 g): the grey level modulates a random tint, which keeps the
    item's texture; the tint is drawn far enough from the background's mean colour;
  * the item's box is the tight bounding box of its pixels with alpha > 0, i.e. exactly the
    pixels the item changes (before any occlusion by another item).
Items are drawn from the largest box to the smallest, so the smaller ones lie on top. Two boxes
may overlap by at most IoU 0.2 and by at most 25 % of the smaller box's area. The largest box
is at least 2 times the area of the second largest, so the primary item is unambiguous
(a draw that breaks a rule is discarded and drawn again from the scene's stream).

Manifest: DIR/manifest.jsonl, one JSON object per line and per scene:
  {"image": "00000.png", "label": 3,
   "boxes": [{"label": 3, "x0": 10, "y0": 20, "x1": 120, "y1": 131}, ...]}
  * image: path relative to the manifest;
  * label: the primary label = the class of the item with the largest BOX area (x1-x0)*(y1-y0);
  * boxes: every item, sorted by box area, largest first (so boxes[0].label == label);
    pixel coordinates, x along the width, y along the height, x0/y0 inclusive and x1/y1
    EXCLUSIVE (the box covers columns x0..x1-1 and rows y0..y1-1).
Class indices are Fashion-MNIST's: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot. DIR/classes.json lists the names.

Train scenes use the Fashion-MNIST train split, test scenes the test split. The output is a
pure function of (--split, --seed, scene index): scene i is drawn from its own random stream
seeded by (seed, split, i), so a larger --count only appends scenes.

Usage:
  python weights/make_scenes.py --split train --count 6000 --seed 1 --out /work/cache/scenes/train
  python weights/make_scenes.py --split test  --count 1000 --seed 1 --out /work/cache/scenes/test
Options: --fashion-mnist DIR (default /usr/share/datasets/fashion-mnist, the gzip IDX files),
--size (default 224). Needs numpy and pillow.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULT_FMNIST = "/usr/share/datasets/fashion-mnist"

MAIN_SIDE = (96, 128)             # canvas side of the main item, before aspect jitter
OTHER_SIDE = (48, 80)             # canvas side of the other items
MAX_IOU = 0.2                     # pairwise box IoU limit
MAX_COVER = 0.25                  # max fraction of the smaller box covered by another box
AREA_MARGIN = 2.0                 # largest box area >= AREA_MARGIN * second largest
ALPHA_LO, ALPHA_RANGE = 0.04, 0.16
MIN_TINT_DIST = 110.0             # min RGB distance between tint and background mean


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
    assert images.shape[0] == labels.shape[0] and images.shape[1:] == (28, 28)
    return images, labels


# ---------------------------------------------------------------- backgrounds

def _upsample(grid, size):
    """Smoothly upsample a small (h, w) float grid to (size, size) (bicubic)."""
    im = Image.fromarray(grid.astype(np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.BICUBIC), dtype=np.float64)


def make_background(rng, size):
    kind = int(rng.integers(4))
    base = rng.uniform(0, 255, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == 0:                                   # flat colour
        bg = np.broadcast_to(base, (size, size, 3)).copy()
    elif kind == 1:                                 # linear gradient between two colours
        other = rng.uniform(0, 255, size=3)
        theta = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        bg = base + t[..., None] * (other - base)
    elif kind == 2:                                 # low-contrast smooth noise + grain
        cells = int(rng.integers(3, 15))
        amp = rng.uniform(6, 18)
        bg = np.empty((size, size, 3))
        for c in range(3):
            bg[..., c] = base[c] + amp * _upsample(rng.standard_normal((cells, cells)), size)
        bg += rng.normal(0, rng.uniform(1, 5), size=bg.shape)
    else:                                           # low-contrast stripes or checkerboard
        amp = rng.uniform(8, 22)
        period = rng.uniform(6, 28)
        if rng.random() < 0.5:
            theta = rng.uniform(0, np.pi)
            pattern = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
        else:
            pattern = 2.0 * ((np.floor(xx / period) + np.floor(yy / period)) % 2) - 1.0
        bg = base + amp * pattern[..., None] * rng.uniform(0.5, 1.0, size=3)
    return np.clip(bg, 0, 255)


# ---------------------------------------------------------------- items

def render_item(rng, grey28, side_range):
    """Resize one 28x28 item; return (grey, alpha) cropped to the tight box of alpha > 0."""
    g = grey28.astype(np.float32) / 255.0
    if rng.random() < 0.5:
        g = g[:, ::-1]
    side = rng.uniform(*side_range)
    aspect = rng.uniform(0.9, 1.1)
    w = int(round(side * np.sqrt(aspect)))
    h = int(round(side / np.sqrt(aspect)))
    im = Image.fromarray(np.ascontiguousarray(g), mode="F").resize((w, h), Image.BILINEAR)
    g = np.clip(np.asarray(im, dtype=np.float64), 0.0, 1.0)
    alpha = np.clip((g - ALPHA_LO) / ALPHA_RANGE, 0.0, 1.0)
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    if rows.size == 0:
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return g[r0:r1, c0:c1], alpha[r0:r1, c0:c1]


def box_ok(box, others):
    x0, y0, x1, y1 = box
    a = (x1 - x0) * (y1 - y0)
    for (u0, v0, u1, v1) in others:
        iw = max(0, min(x1, u1) - max(x0, u0))
        ih = max(0, min(y1, v1) - max(y0, v0))
        inter = iw * ih
        if inter == 0:
            continue
        b = (u1 - u0) * (v1 - v0)
        if inter / (a + b - inter) > MAX_IOU or inter / min(a, b) > MAX_COVER:
            return False
    return True


def pick_tint(rng, ref):
    for _ in range(100):
        tint = rng.uniform(0, 255, size=3)
        if np.linalg.norm(tint - ref) >= MIN_TINT_DIST:
            return tint
    return np.where(ref > 127.5, 0.0, 255.0)      # fall back to the opposite corner


def make_scene(rng, images, by_class, size):
    bg = make_background(rng, size)
    while True:
        k = 2 if rng.random() < 0.5 else 3
        classes = rng.choice(10, size=k, replace=False)
        items = []
        for n, c in enumerate(classes):
            idx = int(by_class[c][rng.integers(len(by_class[c]))])
            r = render_item(rng, images[idx], MAIN_SIDE if n == 0 else OTHER_SIDE)
            if r is None:
                break
            items.append((int(c), r[0], r[1]))
        if len(items) != k:
            continue
        if any(a.shape[0] > size or a.shape[1] > size for _, _, a in items):
            continue
        items.sort(key=lambda it: it[2].shape[0] * it[2].shape[1], reverse=True)
        areas = [it[2].shape[0] * it[2].shape[1] for it in items]
        if areas[0] < AREA_MARGIN * areas[1]:
            continue
        boxes = []
        for _, _, alpha in items:
            h, w = alpha.shape
            for _ in range(100):
                x0 = int(rng.integers(0, size - w + 1))
                y0 = int(rng.integers(0, size - h + 1))
                box = (x0, y0, x0 + w, y0 + h)
                if box_ok(box, boxes):
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == k:
            break
    img = bg
    out_boxes = []
    for (c, g, alpha), (x0, y0, x1, y1) in zip(items, boxes):   # largest first = at the back
        region = img[y0:y1, x0:x1]
        tint = pick_tint(rng, region.reshape(-1, 3).mean(axis=0))
        colour = tint[None, None, :] * (0.35 + 0.65 * g)[..., None]
        a = alpha[..., None]
        img[y0:y1, x0:x1] = (1.0 - a) * region + a * colour
        out_boxes.append({"label": c, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    pixels = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return pixels, out_boxes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=["train", "test"], required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--fashion-mnist", default=DEFAULT_FMNIST)
    args = p.parse_args(argv)

    images, labels = load_split(args.fashion_mnist, args.split)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    split_id = 0 if args.split == "train" else 1
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "classes.json"), "w") as f:
        json.dump(CLASSES, f)
        f.write("\n")
    lines = []
    for i in range(args.count):
        rng = np.random.default_rng([args.seed, split_id, i])
        pixels, boxes = make_scene(rng, images, by_class, args.size)
        name = f"{i:05d}.png"
        Image.fromarray(pixels, mode="RGB").save(os.path.join(args.out, name), optimize=False)
        lines.append(json.dumps({"image": name, "label": boxes[0]["label"], "boxes": boxes}))
        if (i + 1) % 500 == 0:
            print(f"{i + 1}/{args.count} scenes", file=sys.stderr)
    with open(os.path.join(args.out, "manifest.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.count} {args.split} scenes to {args.out}")


if __name__ == "__main__":
    main()
