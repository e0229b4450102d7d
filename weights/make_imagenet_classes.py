#!/usr/bin/env python3
"""Write weights/imagenet_classes.txt: the names of the 1000 ImageNet-1k classes, one a line, in
the order of the classifier outputs of torchvision's and timm's ImageNet models.

The names are torchvision's (`torchvision.models._meta._IMAGENET_CATEGORIES`, the list behind
`weights.meta["categories"]` of every torchvision ImageNet model; torchvision is BSD-3-Clause).
They are short WordNet lemmas, one per synset, which torchvision made unique where two synsets
share a lemma ("crane bird" (134) and "crane" (517), "maillot" (638) and "maillot tank suit"
(639)).

torchvision's licence is copied next to the list as imagenet_classes.LICENSE.

Run (torchvision 0.20.1; the script checks the count, uniqueness and the first and last names):
    .venv/bin/python weights/make_imagenet_classes.py
"""
import os

from torchvision.models._meta import _IMAGENET_CATEGORIES as NAMES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.txt")

assert len(NAMES) == 1000 and len(set(NAMES)) == 1000
assert NAMES[0] == "tench" and NAMES[999] == "toilet tissue"
assert all(name == name.strip() and name and "\n" not in name for name in NAMES)
with open(OUT + ".tmp", "w", encoding="utf-8", newline="\n") as f:
    f.write("".join(name + "\n" for name in NAMES))
os.replace(OUT + ".tmp", OUT)
print(f"wrote {OUT}: {len(NAMES)} names")
