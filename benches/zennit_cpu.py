#!/usr/bin/env python3
"""CPU baseline: Zennit 0.5.1 on PyTorch, torchvision VGG16 (random weights, 1000 classes), 224x224 input.

Times, after a warm-up, for N repeats of one batch:
  forward  plain forward under torch.no_grad()
  lrp      zennit preset (docs/method.md §Presets): ZBox on the first conv, ZPlus on every other conv and linear layer, Pass on
           ReLU; attr_output = one-hot(top-1) * z_t
  sglrp    same composite; attr_output = SGLRP head: y_t(1 - y_t) on the target, -y_t y_n elsewhere (y = softmax z)
Target = top-1 class. Prints images/s for each and the ratio explanation time / forward time.

    /work/venv/bin/python benches/zennit_cpu.py --batch 4 --threads 2 --repeats 2 [--json out.json]

Run it from the repository root (or anywhere but the zennit package directory).
"""
import argparse
import json
import platform
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


def composite():
    # z^B bounds: the pre-processed black and white pixel, per channel (torchvision pre-processing)
    low = torch.tensor([(0.0 - m) / s for m, s in zip(MEAN, STD)]).reshape(1, 3, 1, 1)
    high = torch.tensor([(1.0 - m) / s for m, s in zip(MEAN, STD)]).reshape(1, 3, 1, 1)
    return SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (Convolution, ZPlus()), (torch.nn.Linear, ZPlus())],
        first_map=[(Convolution, ZBox(low, high))],
    )


def lrp_head(z):
    z = z.detach()
    t = z.argmax(1)
    r = torch.zeros_like(z)
    r[torch.arange(z.shape[0]), t] = z[torch.arange(z.shape[0]), t]
    return r


def sglrp_head(z):
    z = z.detach()
    b = torch.arange(z.shape[0])
    t = z.argmax(1)
    y = torch.softmax(z, 1)
    yt = y[b, t]
    r = -yt[:, None] * y
    r[b, t] = yt * (1 - yt)
    return r


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description='Zennit 0.5.1 CPU throughput for VGG16 (LRP, SGLRP vs forward)')
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--size', type=int, default=224, help='input side (224: the avgpool is the identity)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torchvision.models.vgg16(weights=None, num_classes=1000).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    # pre-processed random "images" inside the [low, high] box
    x = (torch.rand(args.batch, 3, args.size, args.size) - torch.tensor(MEAN).reshape(1, 3, 1, 1)) \
        / torch.tensor(STD).reshape(1, 3, 1, 1)

    def forward():
        with torch.no_grad():
            return model(x)

    results = {}
    results['forward'] = bench(forward, args.warmup, args.repeats)
    with Gradient(model=model, composite=composite()) as attributor:
        for name, head in (('lrp', lrp_head), ('sglrp', sglrp_head)):
            def explain(head=head):
                _, rel = attributor(x.clone(), head)
                return rel
            results[name] = bench(explain, args.warmup, args.repeats)

    info = {
        'torch': torch.__version__,
        'zennit': version('zennit'),
        'cpu': cpu_name(),
        'threads': torch.get_num_threads(),
        'batch': args.batch,
        'size': args.size,
        'repeats': args.repeats,
        'warmup': args.warmup,
    }
    print(f"zennit {info['zennit']}, torch {info['torch']}, {info['cpu']}, threads {info['threads']}, "
          f"VGG16 {args.size}x{args.size}, batch {args.batch}, {args.repeats} repeats after {args.warmup} warm-up")
    fwd = sum(results['forward']) / len(results['forward'])
    out = {'config': info, 'results': {}}
    for name, times in results.items():
        mean = sum(times) / len(times)
        ips = args.batch / mean
        ratio = mean / fwd
        out['results'][name] = {'seconds_per_batch': times, 'mean_seconds_per_batch': mean,
                                'images_per_s': ips, 'time_vs_forward': ratio}
        extra = '' if name == 'forward' else f'  ({ratio:.2f}x the forward time)'
        print(f'  {name:8s} {ips:8.3f} images/s  {mean * 1e3:9.1f} ms/batch (min {min(times) * 1e3:.1f}){extra}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
