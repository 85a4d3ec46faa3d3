"""Turn a zoo checkpoint into shipped weights: a safetensors file and its entry in weights.json.

    python plugins/zoo-weights/make_weights.py CKPT --tag fashion_mnist --suite fashion_mnist --seed 0
    python plugins/zoo-weights/make_weights.py --refresh     # measure every shipped file again
    python plugins/zoo-weights/make_weights.py --cards       # write docs/weights/MODEL-TAG.md for every weight

CKPT is the best.ckpt of the suite entry's run (``zoo bench --suite SUITE --models MODEL --seeds SEED`` leaves it
under runs/bench/). The net's weights are saved as safetensors; the entry records, as torchvision's ``Weights.meta``
does: their sha256 and file size, the builder arguments, the normalization and class names the checkpoint's data
used, the parameters and GMACs at the input size, top-1 and top-5 on the data's whole test split measured here
from the file (the net alone, and with the test-time augmentation the suite's board tests with), the board's mean
and standard deviation over its seeds (benchmarks/results/SUITE), the data's licence, and the command that
re-trains it. ``--refresh`` measures every entry of weights.json again from its shipped file. ``--cards`` writes a
model card per weight (docs/weights/MODEL-TAG.md and its pictures in docs/images/weights/): the record, the accuracy
of each class, the confusion matrix, the board's training curves and the test images the file gets most wrong.
"""

import argparse
import json
import re
from pathlib import Path
from typing import Any

import lightning as L
from safetensors.torch import save_file

import zoo
from zoo import bench
from zoo.catalog import count_macs
from zoo.checkpoint import CheckpointRecord
from zoo.data import DATASETS
from zoo.log import quiet_lightning
from zoo.registry import MODELS, builder_arguments
from zoo.weights import sha256_of

HERE = Path(__file__).resolve().parent / "zoo_weights"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CARDS, PICTURES = ROOT / "docs" / "weights", ROOT / "docs" / "images" / "weights"
LICENCES = {"fashion_mnist": "MIT (Fashion-MNIST, Zalando SE)", "mnist": "CC BY-SA 3.0 (MNIST)",
            "digits": "CC BY 4.0 (UCI optical recognition of handwritten digits)"}


def recipe_command(suite: str, model: str, seed: int) -> str:
    """The command that re-trains the weights: the suite's entry of `model` with `seed` (checked to exist)."""
    if not bench.load_suite(suite, models=[model], seeds=[seed]):
        raise SystemExit(f"make_weights: the suite {suite} has no entry of {model}")
    return f"zoo bench --suite {suite} --models {model} --seeds {seed}"


def board_tta(suite: str, model: str) -> str:
    """The test-time augmentation the suite's entry of `model` tests with (its last --model.tta, else none)."""
    options = list(bench.load_suite(suite, models=[model], seeds=[0])[0].options)
    given = [options[i + 1] for i, option in enumerate(options[:-1]) if option == "--model.tta"]
    return given[-1] if given else "none"


def board_figures(suite: str, model: str) -> dict[str, Any]:
    """The committed board's mean and sample std of top-1 over the seeds of `model`, and how many seeds."""
    rows = bench.read_rows(RESULTS / suite / bench.RESULTS)
    (entry,) = [e for e in bench.leaderboard(rows) if e["model"] == model]
    return {"leaderboard_top1": round(entry["top1"], 2), "leaderboard_top1_std": round(entry["top1_std"], 2),
            "leaderboard_seeds": entry["seeds"]}


def scored(model: zoo.ImageClassifier, datamodule: L.LightningDataModule, tta: str) -> dict[str, Any]:
    """Top-1 and top-5 (%) on the whole test split: the net alone, and with `tta` as the board tests."""
    figures: dict[str, Any] = {"split": "test", "tta": tta}
    kept = model.tta
    for suffix, chosen in (("", "none"), ("_tta", tta)) if tta != "none" else (("", "none"),):
        model.tta = chosen
        (result,) = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).test(
            model, datamodule, verbose=False)
        figures[f"top1{suffix}"] = round(100 * result["test_acc"], 2)
        figures[f"top5{suffix}"] = round(100 * result["test_acc5"], 2)
    model.tta = kept
    if tta == "none":
        figures["top1_tta"], figures["top5_tta"] = figures["top1"], figures["top5"]
    figures["test_images"] = len(datamodule.test_set)
    return figures


def measured(model: zoo.ImageClassifier, datamodule: L.LightningDataModule, path: Path, suite: str,
             seed: int) -> dict[str, Any]:
    """What the entry's meta says of the file at `path` that holds `model`'s net, measured now."""
    input_size = [model.net.in_chans, model.hparams["image_size"], model.hparams["image_size"]]
    return {
        **scored(model, datamodule, board_tta(suite, model.hparams["model"])),
        **board_figures(suite, model.hparams["model"]),
        "params": sum(p.numel() for p in model.net.parameters()),
        "gmacs": round(count_macs(model.net, tuple(input_size)) / 1e9, 9),  # to the MAC
        "file_size_mb": round(path.stat().st_size / 2**20, 3),
        "input_size": input_size,
        "recipe_command": recipe_command(suite, model.hparams["model"], seed),
    }


def each_shipped(write: Any) -> None:
    """``write(entry, weights, model)`` for every entry of weights.json, `model` built from its shipped file; the
    entries, which `write` may change, are saved afterwards."""
    manifest = HERE / "weights.json"
    entries = json.loads(manifest.read_text())
    for entry in entries:
        weights = zoo.weights.get_weights(entry["model"], entry["tag"])
        write(entry, weights, zoo.create(entry["model"], weights=weights.name, **weights.arguments).eval())
    manifest.write_text(json.dumps(entries, indent=1) + "\n")


def refresh() -> None:
    """Every entry of weights.json measured again from its shipped file (the recipe's seed read from its text)."""
    each_shipped(remeasure)


def remeasure(entry: dict[str, Any], weights: Any, model: zoo.ImageClassifier) -> None:
    meta = entry["meta"]
    suite, seed = re.search(r"--suite (\w+)", meta["recipe"]).group(1), int(re.search(
        r"\(seed (\d+)", meta["recipe"]).group(1))
    datamodule = zoo.data.create(meta["dataset"], weights=weights)
    meta.update(measured(model, datamodule, HERE / "files" / entry["file"], suite, seed))
    print(f"{entry['model']} {weights.name}: top-1 {meta['top1']:.2f} % (with tta {meta['tta']} "
          f"{meta['top1_tta']:.2f} %), top-5 {meta['top5']:.2f} %, {meta['gmacs']} GMACs, "
          f"{meta['file_size_mb']} MB", flush=True)


def predictions(model: zoo.ImageClassifier, datamodule: L.LightningDataModule,
                normalization: tuple[list[float], list[float]]) -> tuple[Any, Any, Any, Any]:
    """The test split's images (on the 0..1 scale again), labels, predicted classes and their probabilities, by the
    net alone (no test-time augmentation), as its top-1 is measured."""
    import torch

    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in normalization)
    x, labels = datamodule.normalized("test")
    with torch.inference_mode():
        probabilities = torch.cat([model(batch).softmax(1) for batch in x.split(500)])
    confidence, predicted = probabilities.max(1)
    return x * std + mean, labels, predicted, confidence


def card(entry: dict[str, Any], weights: Any, model: zoo.ImageClassifier) -> None:
    """docs/weights/MODEL-TAG.md for one weight of weights.json (`model` built from its file), with its three
    pictures; the card's path goes into the entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from zoo.cam import save_grid
    from zoo.figures import save_figure

    meta, stem = entry["meta"], f"{entry['model']}-{entry['tag']}"
    images, labels, predicted, confidence = predictions(model, zoo.data.create(meta["dataset"], weights=weights),
                                                        weights.normalization)
    names, n = meta["class_names"], len(meta["class_names"])
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (labels.numpy(), predicted.numpy()), 1)
    per_class = 100 * confusion.diagonal() / confusion.sum(1)
    if round(100 * confusion.trace() / confusion.sum(), 2) != meta["top1"]:
        raise SystemExit(f"make_weights: {stem} scores {100 * confusion.trace() / confusion.sum():.2f} % here, its "
                         f"record says {meta['top1']} %: refresh the record first (--refresh)")
    PICTURES.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > confusion.max() / 2 else "black")
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{entry['model']} zoo:{entry['tag']}: {int(confusion.sum()):,} test images, {meta['top1']:.2f} %")
    fig.tight_layout()
    save_figure(fig, PICTURES / f"{stem}-confusion.png", dpi=90)

    seed = meta["recipe_command"].split()[-1]
    curves = [r for r in bench.read_rows(RESULTS / meta["recipe_command"].split()[3] / bench.CURVES)
              if r["model"] == entry["model"] and r["val_acc"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for run in sorted({r["seed"] for r in curves}):
        points = [(int(r["epoch"]), float(r["val_acc"])) for r in curves if r["seed"] == run]
        ax.plot(*zip(*points, strict=True), lw=2 if run == seed else 1, alpha=1 if run == seed else 0.45,
                label=f"seed {run}" + (" (this file)" if run == seed else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy %")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, PICTURES / f"{stem}-curve.png", dpi=90)

    wrong = (predicted != labels).nonzero().flatten()
    worst = wrong[confidence[wrong].argsort(descending=True)[:24]]
    captions = [f"{names[int(predicted[i])]} {float(confidence[i]):.2f}\n(is {names[int(labels[i])]})" for i in worst]
    save_grid(images[worst], None, captions, str(PICTURES / f"{stem}-wrong.png"), columns=8)

    mistaken = confusion - np.diag(confusion.diagonal())
    taken = [names[int(row.argmax())] for row in mistaken]  # the class each is most often predicted as, wrongly
    record = [("dataset", f"{meta['dataset']} ({meta['test_images']:,} {meta['split']} images)"),
              ("top-1 / top-5, the file alone", f"{meta['top1']:.2f} % / {meta['top5']:.2f} %"),
              (f"top-1 / top-5 with TTA ({meta['tta']})", f"{meta['top1_tta']:.2f} % / {meta['top5_tta']:.2f} %"),
              ("board (mean ± std)", f"{meta['leaderboard_top1']:.2f} ± {meta['leaderboard_top1_std']:.2f} % over "
                                     f"{meta['leaderboard_seeds']} seeds"),
              ("parameters", f"{meta['params']:,}"), ("MACs", f"{round(meta['gmacs'] * 1e9):,}"),
              ("file", f"{entry['file']}, {meta['file_size_mb']:.2f} MB, sha256 `{entry['sha256']}`"),
              ("input", f"{'x'.join(map(str, meta['input_size']))}, normalized with mean {meta['mean']} and std "
                        f"{meta['std']}"),
              ("builder arguments", ", ".join(f"`{k}={v!r}`" for k, v in entry["arguments"].items())),
              ("licence", meta["licence"])]
    lines = [f"# {entry['model']} · zoo:{entry['tag']}", "",
             f"The model card of zoo's `{entry['model']}` weights trained on {meta['dataset']}, written by "
             "`plugins/zoo-weights/make_weights.py --cards` from the shipped file (every figure measured here, "
             "the curves from the board's runs). [Every weight](../weights.md).", "",
             "```python", "import zoo", "",
             f'model = zoo.create("{entry["model"]}", weights="zoo:{entry["tag"]}")', "```", "",
             "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in record), "",
             "Re-train it (the board's entry and seed; then `make_weights.py CKPT --tag "
             f"{entry['tag']} --suite {meta['recipe_command'].split()[3]} --seed {seed}` writes the file):", "",
             "```bash", meta["recipe_command"], "```", "",
             "## Each class", "", "| class | top-1 % | most often taken for |", "|---|---|---|",
             *(f"| {name} | {acc:.1f} | {other} |" for name, acc, other in zip(names, per_class, taken, strict=True)),
             "", f"![confusion matrix](../images/weights/{stem}-confusion.png)", "",
             "## Training", "", f"Validation accuracy by epoch, each seed of the board (seed {seed} made this file):",
             "", f"![training curves](../images/weights/{stem}-curve.png)", "",
             "## The test images it gets most wrong", "",
             "The 24 wrong predictions made with the most confidence (predicted class, probability, true class):", "",
             f"![most confident mistakes](../images/weights/{stem}-wrong.png)", ""]
    CARDS.mkdir(parents=True, exist_ok=True)
    path = CARDS / f"{stem}.md"
    path.write_text("\n".join(lines))
    meta["per_class_top1"] = [round(float(a), 2) for a in per_class]
    meta["card"] = f"docs/weights/{stem}.md"
    print(f"{entry['model']} zoo:{entry['tag']} -> {path}", flush=True)


def cards() -> None:
    each_shipped(card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", nargs="?", help="a zoo checkpoint (best.ckpt of the suite entry's run)")
    parser.add_argument("--tag", help="what the weights are called: zoo:TAG (e.g. fashion_mnist)")
    parser.add_argument("--suite", help="the suite whose entry trained them (its board gives the mean over seeds)")
    parser.add_argument("--seed", type=int, help="the seed of the entry's run the checkpoint is from")
    parser.add_argument("--refresh", action="store_true", help="measure every shipped file again instead")
    parser.add_argument("--cards", action="store_true", help="write every weight's model card instead")
    args = parser.parse_args()
    if args.refresh:
        return refresh()
    if args.cards:
        return cards()
    if not (args.ckpt and args.tag and args.suite and args.seed is not None):
        parser.error("give CKPT, --tag, --suite and --seed (or --refresh)")
    record = CheckpointRecord.read(args.ckpt)
    data = record.data
    model = zoo.ImageClassifier.load_from_checkpoint(record, map_location="cpu").eval()
    datamodule = DATASETS.get(data.name)(**{**data.arguments, "normalize": record.normalization()})
    name = record.model
    path = HERE / "files" / f"{name}-{args.tag}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, path)
    net_arguments = builder_arguments(MODELS.get(name).builder)  # num_classes, in_chans, image_size, the net's own
    arguments = {k: v for k, v in record.hyper_parameters.items() if k in net_arguments}
    figures = measured(model, datamodule, path, args.suite, args.seed)
    entry = {
        "model": name, "tag": args.tag, "file": path.name, "sha256": sha256_of(path), "arguments": arguments,
        "meta": {
            "dataset": data.name, **figures,
            "recipe": f"zoo bench --suite {args.suite} (seed {args.seed}; leaderboard mean over "
                      f"{figures['leaderboard_seeds']} seeds)",
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
    with quiet_lightning():
        main()
