#!/usr/bin/env python3
"""GPU baseline for `sglrp bench --device cuda`: Zennit 0.5.1 on PyTorch, VGG16 (1000 classes), the same
weights as sglrp's run when --weights names the file it saved (sglrp's own format, flatten order hwc),
else torchvision's random initialisation (the timing does not depend on the values).

Times, after a warm-up, for N repeats of each batch size, with torch.cuda.synchronize() around each:
  forward  plain forward under torch.no_grad()
  lrp      zennit preset (docs/method.md §Presets): ZBox on the first conv, ZPlus on every other conv and linear layer, Pass on
           ReLU; attr_output = one-hot(top-1) * z_t
  clrp     same composite, CLRP head
  sglrp    same composite, SGLRP head
Target = top-1 class.

--precision picks the peer of each sglrp precision (docs/gpu.md §Tensor cores):
  f32   TF32 off for cuDNN convolutions and matmuls (the f32 peer)
  tf32  TF32 on for both
  bf16  bf16 autocast, model and input in channels_last (TF32 off outside autocast)

    python3 benches/zennit_gpu.py --batch-sizes 1,8,32 [--precision f32|tf32|bf16]
        [--weights vgg16.safetensors] [--json out.json]
"""
import contextlib
import argparse
import json
import time
from importlib.metadata import version

import torch
import torchvision
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import Pass, ZBox, ZPlus
from zennit.types import Activation, Convolution

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def composite(device):
    low = torch.tensor([(0.0 - m) / s for m, s in zip(MEAN, STD)], device=device).reshape(1, 3, 1, 1)
    high = torch.tensor([(1.0 - m) / s for m, s in zip(MEAN, STD)], device=device).reshape(1, 3, 1, 1)
    return SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Convolution, ZPlus()), (torch.nn.Linear, ZPlus())],
        first_map=[(Convolution, ZBox(low, high))],
    )


def heads(z, method):
    z = z.detach()
    b = torch.arange(z.shape[0], device=z.device)
    t = z.argmax(1)
    if method == 'lrp':
        r = torch.zeros_like(z)
        r[b, t] = z[b, t]
    elif method == 'clrp':
        r = (-z[b, t] / (z.shape[1] - 1))[:, None].expand_as(z).clone()
        r[b, t] = z[b, t]
    else:
        y = torch.softmax(z, 1)
        yt = y[b, t]
        r = -yt[:, None] * y
        r[b, t] = yt * (1 - yt)
    return r


def load_sglrp_weights(model, path):
    """sglrp's own format: layers.i.weight/bias in layer order; the first dense layer's columns in
    (H, W, C) order, which torchvision flattens as (C, H, W)."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    indices = sorted({int(k.split('.')[1]) for k in tensors})
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    targets = convs + linears
    assert len(indices) == len(targets), f'{len(indices)} weighted layers in {path}, VGG16 has {len(targets)}'
    with torch.no_grad():
        for i, module in zip(indices, targets):
            w = tensors[f'layers.{i}.weight']
            if module is linears[0]:
                c = convs[-1].out_channels
                side = int(round((w.shape[1] // c) ** 0.5))
                w = w.reshape(w.shape[0], side, side, c).permute(0, 3, 1, 2).reshape(w.shape[0], -1)
            module.weight.copy_(w)
            module.bias.copy_(tensors[f'layers.{i}.bias'])


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch-sizes', default='1,8,32')
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--weights', help="sglrp's safetensors file of the same VGG16")
    ap.add_argument('--precision', choices=('f32', 'tf32', 'bf16'), default='f32')
    ap.add_argument('--json', metavar='FILE')
    args = ap.parse_args()

    device = torch.device('cuda')
    tf32 = args.precision == 'tf32'
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    bf16 = args.precision == 'bf16'
    memory_format = torch.channels_last if bf16 else torch.contiguous_format

    def precision():
        return torch.autocast('cuda', dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None, num_classes=1000).eval()
    if args.weights:
        load_sglrp_weights(model, args.weights)
    model = model.to(device, memory_format=memory_format)
    for p in model.parameters():
        p.requires_grad_(False)
    rows = []

    def record(name, batch, seconds):
        rows.append({'pass': name, 'batch': batch, 'precision': args.precision, 'ms_per_batch': seconds * 1e3,
                     'images_per_s': batch / seconds})
        print(f'zennit {args.precision:4s} {name:8s} batch {batch:3d} {batch / seconds:9.1f} images/s {seconds * 1e3:9.2f} ms/batch',
              flush=True)

    for batch in [int(b) for b in args.batch_sizes.split(',')]:
        x = (torch.rand(batch, 3, args.size, args.size, device=device)
             - torch.tensor(MEAN, device=device).reshape(1, 3, 1, 1)) \
            / torch.tensor(STD, device=device).reshape(1, 3, 1, 1)
        x = x.contiguous(memory_format=memory_format)

        def forward():
            with torch.no_grad(), precision():
                return model(x)
        record('forward', batch, timed(forward, args.warmup, args.repeats))
        with Gradient(model=model, composite=composite(device)) as attributor:
            for method in ('lrp', 'clrp', 'sglrp'):
                def explain(method=method):
                    with precision():
                        _, rel = attributor(x.clone(), lambda z: heads(z.float(), method).to(z.dtype))
                    return rel
                record(method, batch, timed(explain, args.warmup, args.repeats))
    out = {'config': {'torch': torch.__version__, 'zennit': version('zennit'),
                      'gpu': torch.cuda.get_device_name(0), 'size': args.size, 'repeats': args.repeats,
                      'weights': args.weights or 'torchvision random init', 'precision': args.precision,
                      'tf32': tf32, 'bf16_autocast': bf16},
           'rows': rows}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
