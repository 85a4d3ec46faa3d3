"""Turn a zoo checkpoint into shipped weights: a safetensors file and its entry in weights.json.

    python plugins/zoo-weights/make_weights.py CKPT --tag fashion_mnist --leaderboard-top1 89.9 \\
        --recipe "zoo bench --suite fashion_mnist (seed 0)"

The net's weights are saved as safetensors; the entry records their sha256, the builder arguments, the
normalization and class names the checkpoint's data used, and the top-1 accuracy measured here on the
data's test set (so the number in `zoo info` is this file's, not a log's).
"""

import argparse
import json
from pathlib import Path

import lightning as L
from safetensors.torch import save_file

import zoo
from zoo.checkpoint import CheckpointRecord
from zoo.data import DATASETS
from zoo.registry import MODELS, builder_arguments
from zoo.weights import sha256_of

HERE = Path(__file__).resolve().parent / "zoo_weights"
LICENCES = {"fashion_mnist": "MIT (Fashion-MNIST, Zalando SE)", "mnist": "CC BY-SA 3.0 (MNIST)",
            "digits": "CC BY 4.0 (UCI optical recognition of handwritten digits)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="a zoo checkpoint (best.ckpt of a run)")
    parser.add_argument("--tag", required=True, help="what the weights are called: zoo:TAG (e.g. fashion_mnist)")
    parser.add_argument("--leaderboard-top1", type=float, help="the recipe's mean test top-1 over seeds, in %%")
    parser.add_argument("--recipe", required=True, help="the config or suite that trained them")
    args = parser.parse_args()
    record = CheckpointRecord.read(args.ckpt)
    data = record.data
    model = zoo.ImageClassifier.load_from_checkpoint(record, map_location="cpu").eval()
    datamodule = DATASETS.get(data.name)(**{**data.arguments, "normalize": record.normalization()})
    (result,) = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).test(
        model, datamodule, verbose=False)
    name = record.model
    path = HERE / "files" / f"{name}-{args.tag}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, path)
    net_arguments = builder_arguments(MODELS.get(name).builder)  # num_classes, in_chans, image_size, the net's own
    arguments = {k: v for k, v in record.hyper_parameters.items() if k in net_arguments}
    entry = {
        "model": name, "tag": args.tag, "file": path.name, "sha256": sha256_of(path), "arguments": arguments,
        "meta": {
            "dataset": data.name, "top1": round(100 * result["test_acc"], 2),
            "leaderboard_top1": args.leaderboard_top1, "recipe": args.recipe,
            "params": sum(p.numel() for p in model.net.parameters()),
            "input_size": [record.in_chans, record.image_size, record.image_size],
            "mean": data.mean, "std": data.std, "class_names": data.class_names,
            "licence": LICENCES.get(data.name, "see the dataset's own licence"),
        },
    }
    manifest = HERE / "weights.json"
    entries = [e for e in json.loads(manifest.read_text()) if (e["model"], e["tag"]) != (name, args.tag)]
    manifest.write_text(json.dumps(sorted([*entries, entry], key=lambda e: (e["model"], e["tag"])), indent=1) + "\n")
    print(f"{name} zoo:{args.tag}: top-1 {entry['meta']['top1']:.2f} % on {data.name}'s test set, "
          f"sha256 {entry['sha256']} -> {path}")


if __name__ == "__main__":
    main()
