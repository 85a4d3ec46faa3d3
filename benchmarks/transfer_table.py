"""The transfer-learning table, measured: a similar or a different target, with little or a lot of data.

The source task is Fashion-MNIST's classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat: all their training
images but 1,000 kept for validation). A net trained on it is then given one of four target tasks:

- similar, little: Fashion-MNIST's classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot), 10 images per class;
- similar, a lot: the same classes, every training image (29,000, about 5,800 per class);
- different, little: scikit-learn's digits at 28x28, 10 images per class;
- different, a lot: digits, every training image (1,257, about 126 per class: all the dataset has);

and each target is learnt five ways: from scratch; a linear probe of the last stage (the net's own features); a
linear probe of the stage below it (``probe_stage``); fine-tuning the top stage; fine-tuning everything. The
pretrained layers that train do so at a tenth of the new final layer's learning rate (discriminative rates).
Every way gets the same data, steps and optimizer (Adam, 3e-3, cosine to 0 over the steps), and the final
weights are tested on the target's whole test split (5,000 Fashion-MNIST images; 360 digits). The seeds vary
the target's training images (which 10 per class), the new layers' initialisation and the batch order; the
source net is trained once.

Every run appends a row to ``results.csv`` in ``--out`` as it finishes, so an interrupted table resumes where it
stopped; ``table.md`` and the heat maps (``--picture``) are written from the rows at the end.

    python benchmarks/transfer_table.py --models lenet5 resnet20 --seeds 0 1 2
"""

import argparse
import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

import zoo
from zoo.finetune import Finetune
from zoo.models.net import StageProbe, training_stages
from zoo.results import append_rows, read_rows
from zoo.schedules import Schedule

IMAGE_SIZE = 28
SOURCE_CLASSES = [0, 1, 2, 3, 4]
TARGET_CLASSES = [5, 6, 7, 8, 9]
CELLS = [("similar", "little"), ("similar", "a lot"), ("different", "little"), ("different", "a lot")]
STRATEGIES = ["scratch", "linear probe, last stage", "linear probe, stage below", "fine-tune the top stage",
              "fine-tune everything"]
# a control: is the stage below better because it is earlier, or because its probe reads more values (resnet20:
# 3,872 against the last stage's 64)? The last stage's map pooled the same way (resnet20: all 64x7x7 = 3,136
# values), for nets whose last stage gives a map
CONTROL = "linear probe, last stage's map"
COLUMNS = ["model", "target", "amount", "strategy", "seed", "test_acc", "train_images", "steps", "seconds"]


@dataclass
class Budget:
    """Epochs and batch sizes: the source's, then the targets' (little: per 10-image-per-class set)."""

    source_epochs: int = 3
    source_per_class: int | None = None  # None: all of the source's training images
    little_epochs: int = 30
    little_batch: int = 10
    lot_epochs_similar: int = 1
    lot_epochs_different: int = 10
    lot_batch: int = 64


BUDGETS = {  # per model: what 2 CPU cores do in about 30 minutes for resnet20's whole table, 10 for lenet5's
    "lenet5": Budget(source_epochs=10, lot_epochs_similar=3, lot_epochs_different=30),
    "resnet20": Budget(),
}


def quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def trainer(epochs: int, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, callbacks=callbacks or [], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                     num_sanity_val_steps=0)


def adam(params: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=3e-3)


def cosine(optimizer: torch.optim.Optimizer) -> Schedule:
    """Down to 0 over the fit's steps: the final weights (which are tested) are not those of one noisy step."""
    return Schedule(optimizer, shape="cosine", interval="step")


def source_net(model: str, budget: Budget, folder: Path) -> tuple[Path, dict]:
    """The source net (trained once, then read back): its checkpoint and its row (test accuracy on classes 0-4)."""
    path = folder / f"{model}-fashion_mnist-0-4.ckpt"
    data = zoo.data.create("fashion_mnist", classes=SOURCE_CLASSES, val_split=1000, image_size=IMAGE_SIZE,
                           train_per_class=budget.source_per_class, batch_size=128)
    start, seconds = time.perf_counter(), ""
    if not path.exists():
        L.seed_everything(0, verbose=False)
        net = zoo.create(model, num_classes=5, in_chans=1, image_size=IMAGE_SIZE, optimizer=adam,
                         lr_scheduler=cosine)
        fit = trainer(budget.source_epochs)
        fit.fit(net, data)
        folder.mkdir(parents=True, exist_ok=True)
        fit.save_checkpoint(path)  # atomically: zoo's checkpoint IO
        seconds = round(time.perf_counter() - start, 1)
    net = zoo.ImageClassifier.load_from_checkpoint(path)
    acc = trainer(1).test(net, data, verbose=False)[0]["test_acc"]
    return path, {"model": model, "target": "source", "amount": "all", "strategy": "source", "seed": 0,
                  "test_acc": round(100 * acc, 2), "train_images": len(data.train_set),
                  "steps": zoo.checkpoint.CheckpointRecord.read(path).global_step, "seconds": seconds}


def target_data(target: str, amount: str, seed: int, budget: Budget) -> L.LightningDataModule:
    per_class = 10 if amount == "little" else None
    batch = budget.little_batch if amount == "little" else budget.lot_batch
    if target == "similar":
        return zoo.data.create("fashion_mnist", classes=TARGET_CLASSES, val_split=1000, image_size=IMAGE_SIZE,
                               train_per_class=per_class, batch_size=batch, split_seed=seed)
    return zoo.data.create("digits", image_size=IMAGE_SIZE, train_per_class=per_class, batch_size=batch,
                           split_seed=seed)


def learner(model: str, strategy: str, num_classes: int, source: Path) -> tuple[zoo.ImageClassifier, list]:
    """The model and the fine-tuning callback of one strategy."""
    if strategy == "scratch":
        return zoo.create(model, num_classes=num_classes, in_chans=1, image_size=IMAGE_SIZE, optimizer=adam,
                         lr_scheduler=cosine), []
    below = None
    if strategy == "linear probe, stage below":
        below = len(training_stages(zoo.create_model(model, in_chans=1, image_size=IMAGE_SIZE))[0]) - 1
    net = zoo.create(model, num_classes=num_classes, in_chans=1, image_size=IMAGE_SIZE, optimizer=adam,
                     lr_scheduler=cosine, weights=str(source), reset_head=True, probe_stage=below)
    if strategy == CONTROL:  # stage_probe gives the net itself for its last stage: the probe is made here
        net.net = StageProbe(net.net, len(training_stages(net.net)[0]), IMAGE_SIZE)
    finetune = {
        CONTROL: Finetune("linear_probe"),
        "linear probe, last stage": Finetune("linear_probe"),
        "linear probe, stage below": Finetune("linear_probe"),
        "fine-tune the top stage": Finetune("gradual", milestones=[0], backbone_lr_ratio=0.1),
        "fine-tune everything": Finetune("full", backbone_lr_ratio=0.1),
    }[strategy]
    return net, [finetune]


def run(model: str, target: str, amount: str, strategy: str, seed: int, budget: Budget, source: Path) -> dict:
    """One cell, one strategy, one seed: train for the budget, test the final weights."""
    data = target_data(target, amount, seed, budget)
    L.seed_everything(seed, verbose=False)
    net, callbacks = learner(model, strategy, data.num_classes, source)
    epochs = budget.little_epochs if amount == "little" else \
        budget.lot_epochs_similar if target == "similar" else budget.lot_epochs_different
    start = time.perf_counter()
    fit = trainer(epochs, callbacks)
    fit.fit(net, data)
    acc = fit.test(net, data, verbose=False)[0]["test_acc"]
    return {"model": model, "target": target, "amount": amount, "strategy": strategy, "seed": seed,
            "test_acc": round(100 * acc, 2), "train_images": len(data.train_set), "steps": fit.global_step,
            "seconds": round(time.perf_counter() - start, 1)}


def has_control(model: str) -> bool:
    """Whether the net's last stage gives a spatial map (resnet20's does; lenet5's is its fully connected layers)."""
    net = zoo.create_model(model, in_chans=1, image_size=IMAGE_SIZE)
    return not any(m in net.head_modules() for m in training_stages(net)[0][-1])


def summary(rows: list[dict[str, str]]) -> dict[tuple[str, str, str, str], list[float]]:
    """Test accuracies by (model, target, amount, strategy)."""
    table: dict[tuple[str, str, str, str], list[float]] = {}
    for row in rows:
        table.setdefault((row["model"], row["target"], row["amount"], row["strategy"]), []).append(
            float(row["test_acc"]))
    return table


def mean_std(accs: list[float]) -> str:
    return f"{statistics.mean(accs):.1f} ± {statistics.stdev(accs) if len(accs) > 1 else 0.0:.1f}"


def markdown(rows: list[dict[str, str]], models: list[str]) -> str:
    table = summary(rows)
    images = {(r["target"], r["amount"]): r["train_images"] for r in rows}
    lines = []
    for model in models:
        source = next((r for r in rows if r["model"] == model and r["strategy"] == "source"), None)
        said = f"{float(source['test_acc']):.2f} % on its test images" if source else "not measured"
        lines += [f"**{model}** (source: Fashion-MNIST 0-4, {said})", "",
                  "| target | " + " | ".join(STRATEGIES) + " |", "|---" * (len(STRATEGIES) + 1) + "|"]
        for target, amount in CELLS:
            accs = [table.get((model, target, amount, s), []) for s in STRATEGIES]
            best = max((statistics.mean(a) for a in accs if a), default=None)
            cells = [("**" + mean_std(a) + "**" if statistics.mean(a) == best else mean_std(a)) if a else "-"
                     for a in accs]
            n = images.get((target, amount), "?")
            lines.append(f"| {target}, {amount} ({n} images) | " + " | ".join(cells) + " |")
        lines.append("")
        controls = [(t, a, table[(model, t, a, CONTROL)]) for t, a in CELLS if (model, t, a, CONTROL) in table]
        if controls:
            lines += [f"{model}, control: a linear probe of the last stage's map pooled as the stage below's is (to at "
                      "most 4,096 values, not to one average per channel): "
                      + "; ".join(f"{t}, {a}: {mean_std(accs)}" for t, a, accs in controls), ""]
    return "\n".join(lines)


def plot(rows: list[dict[str, str]], models: list[str], path: Path) -> None:
    """A heat map per model: the four cells down, the strategies across, mean test accuracy in each square."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(rows)
    fig, axes = plt.subplots(1, len(models), figsize=(7.5 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        grid = [[statistics.mean(table[(model, t, a, s)]) if (model, t, a, s) in table else float("nan")
                 for s in STRATEGIES] for t, a in CELLS]
        image = ax.imshow(grid, cmap="viridis", vmin=50, vmax=100)
        for i, (t, a) in enumerate(CELLS):
            best = max(v for v in grid[i] if v == v) if any(v == v for v in grid[i]) else None
            for j, s in enumerate(STRATEGIES):
                accs = table.get((model, t, a, s))
                if accs:
                    ax.text(j, i, mean_std(accs).replace(" ± ", "\n± "), ha="center", va="center", fontsize=8,
                            color="black" if grid[i][j] > 80 else "white",
                            fontweight="bold" if grid[i][j] == best else "normal")
        ax.set_xticks(range(len(STRATEGIES)), [s.replace(", ", ",\n").replace("fine-tune ", "fine-tune\n")
                                               for s in STRATEGIES], fontsize=8)
        ax.set_yticks(range(len(CELLS)), [f"{t},\n{a}" for t, a in CELLS], fontsize=8)
        ax.set_title(f"{model}: test accuracy (%) after transfer from Fashion-MNIST 0-4", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet20"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transfer"),
                        help="results.csv and table.md go here")
    parser.add_argument("--work", type=Path, default=Path("runs/transfer"), help="the source nets' checkpoints")
    parser.add_argument("--picture", type=Path, default=Path("docs/images/transfer_table.png"),
                        help="the heat maps of the table")
    args = parser.parse_args()
    quiet()
    torch.set_float32_matmul_precision("high")
    results = args.out / "results.csv"
    done = {(r["model"], r["target"], r["amount"], r["strategy"], r["seed"]) for r in read_rows(results)}
    start = time.perf_counter()
    for model in args.models:
        budget = BUDGETS.get(model, Budget())
        strategies = STRATEGIES + ([CONTROL] if has_control(model) else [])
        todo = [(target, amount, strategy, seed) for target, amount in CELLS for strategy in strategies
                for seed in args.seeds if (model, target, amount, strategy, str(seed)) not in done]
        measured = (model, "source", "all", "source", "0") in done
        if not todo and measured:
            continue
        source, row = source_net(model, budget, args.work)
        print(f"{model}: source net {source}: {row['test_acc']:.2f} % on Fashion-MNIST 0-4's test images", flush=True)
        if not measured:
            append_rows(results, COLUMNS, [row])
        for target, amount, strategy, seed in todo:
            row = run(model, target, amount, strategy, seed, budget, source)
            append_rows(results, COLUMNS, [row])
            print(f"  {target}, {amount}, {strategy}, seed {seed}: {row['test_acc']:.2f} % "
                  f"({row['steps']} steps, {row['seconds']:.0f} s)", flush=True)
    rows = read_rows(results)
    models = [m for m in args.models if any(r["model"] == m for r in rows)]
    text = markdown(rows, models)
    (args.out / "table.md").write_text(text)
    plot(rows, models, args.picture)
    print("\n" + text)
    print(f"{time.perf_counter() - start:.0f} s on {torch.get_num_threads()} threads; rows in {results}")


if __name__ == "__main__":
    main()
