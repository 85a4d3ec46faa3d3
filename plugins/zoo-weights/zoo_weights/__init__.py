"""zoo's own pretrained weights, registered with :func:`zoo.pretrained.register_weights` when zoo looks them up.

It imports :mod:`zoo.registry` only (no PyTorch), so that listing zoo's models stays quick.
``weights.json`` lists each file with its sha256, the builder arguments it fits and its metadata; the
files are safetensors (tensors only, nothing to unpickle). ``make_weights.py`` beside this package
writes both from a zoo checkpoint.
"""

import json
from pathlib import Path

from zoo.pretrained import Weights, register_weights

HERE = Path(__file__).resolve().parent

for _item in json.loads((HERE / "weights.json").read_text()):
    register_weights(Weights(model=_item["model"], tag=_item["tag"], sha256=_item["sha256"],
                             file=str(HERE / "files" / _item["file"]), arguments=_item["arguments"],
                             meta=_item["meta"]))
