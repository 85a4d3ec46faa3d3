"""How well each CAM method localizes, per family: trains on cluttered_digits, scores the test split.

For each model: train for --epochs on cluttered_digits exactly as ``zoo fit --model NAME --data cluttered_digits
--trainer.max_epochs EPOCHS`` does (zoo.fit: seed 0, zoo's default recipe, the best validation checkpoint kept,
which docs/cam.md's first command is), then with that checkpoint on the 720 test images (or the first --n)
(targets: the true classes) report test accuracy, the pointing game (the map's peak inside the
digit's box) and the box IoU (largest region above 20 % of the peak, the CAM paper's rule) for
every method of zoo.cam.METHODS. Two maps that need no model give the floor: the image itself (its
brightest pixel) and a centred Gaussian. Writes a Markdown table and one Grad-CAM picture per model.

    python benchmarks/cam_localization.py --models lenet5:40,resnet20,alexnet:5:he   # name[:epochs[:init[:layer]]]

A model's layer (a module name, as ``zoo cam --layer``) replaces the methods' own choice, the last feature map:
vgg16_bn_s:5::features.42 reads VGG's last convolution, 4x4 at 64 px, where its last map is pooled to 2x2.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.cam import METHODS, compute_cam, localization, save_grid
from zoo.errors import ZooError


def baselines(data, n: int) -> dict[str, dict[str, float]]:
    x, boxes = data.test_set.images[:n, 0], data.boxes["test"][:n]
    size = x.shape[-1]
    grid = torch.arange(size) - (size - 1) / 2
    centre = torch.exp(-(grid[:, None] ** 2 + grid[None] ** 2) / (2 * (size / 6) ** 2))
    return {"image brightness": localization(x, boxes),
            "centre prior": localization(centre.expand_as(x).clone(), boxes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lenet5:40,resnet20",
                        help="comma-separated name[:epochs[:init[:layer]]]")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", default="docs/images", help="where the pictures go")
    parser.add_argument("--out", default="benchmarks/results/cam_localization.md")
    parser.add_argument("--n", type=int, default=720,
                        help="the first N test images are scored (default: all 720; Score-CAM, one pass per channel "
                             "and image, takes about an hour for them on 2 cores on airbench or GoogLeNet)")
    args = parser.parse_args()
    data = zoo.data.create("cluttered_digits")
    data.setup()
    x, y = data.normalized("test", args.n)
    boxes = data.boxes["test"][:args.n]
    floor = ["| map without a model | pointing game | box IoU |", "|---|---|---|"]
    floor += [f"| {name} | {s['pointing_game']:.3f} | {s['box_iou']:.3f} |"
              for name, s in baselines(data, args.n).items()]
    rows, pointing_rows, iou_rows, runs = [], [], [], tempfile.mkdtemp(prefix="cam_localization_")
    Path(args.images).mkdir(parents=True, exist_ok=True)
    for spec in args.models.split(","):
        name, epochs, init, layer = (spec.split(":") + ["", "", ""])[:4]
        epochs = int(epochs or args.epochs)
        options = {"trainer.max_epochs": epochs, "trainer.enable_progress_bar": False,
                   "trainer.logger.init_args.save_dir": runs}
        options.update({"model.stem": "cifar"} if name in ("alexnet", "resnet18", "densenet121") else {})
        options.update({"model.init": init} if init else {})
        start = time.perf_counter()
        result = zoo.fit(name, "cluttered_digits", options)
        minutes = (time.perf_counter() - start) / 60
        model = zoo.ImageClassifier.load_from_checkpoint(result.checkpoint).eval()
        accuracy = result.test_acc
        pointing, iou = [], []
        for method in METHODS:
            try:
                maps = torch.cat([compute_cam(model, x[i:i + 90], y[i:i + 90], method, layer=layer or None).maps
                                  for i in range(0, len(x), 90)])
                s = localization(maps, boxes)
                pointing.append(f"{s['pointing_game']:.3f}")
                iou.append(f"{s['box_iou']:.3f}")
            except ZooError:
                pointing.append("n/a")
                iou.append("n/a")
        label = name + (f" (init {init})" if init else "") + (f" ({layer})" if layer else "")
        rows.append(f"| {label} | {epochs} | {accuracy:.3f} | {minutes:.1f} |")
        pointing_rows.append(f"| {label} | " + " | ".join(pointing) + " |")
        iou_rows.append(f"| {label} | " + " | ".join(iou) + " |")
        print(rows[-1], pointing_rows[-1], flush=True)
        result = compute_cam(model, x[:16], method="gradcam", layer=layer or None)
        shown = data.test_set.images[:16]
        titles = [f"{p} ({q:.2f}) / true {t}" for p, q, t in
                  zip(result.targets.tolist(), result.probs.tolist(), y[:16].tolist(), strict=True)]
        save_grid(shown, result.maps, titles, f"{args.images}/cam_{name}.png", boxes=boxes[:16])
        # written after each model: a stopped run keeps the models measured so far
        table = write(args.out, rows, pointing_rows, iou_rows, floor, len(x), len(data.test_set))
    print(table)


def write(out: str, rows: list[str], pointing_rows: list[str], iou_rows: list[str], floor: list[str], n: int,
          total: int) -> str:
    """The tables of the models measured so far, written to `out`; the tables' text."""
    methods = "| model | " + " | ".join(METHODS) + " |\n|---|" + "---|" * len(METHODS)
    table = "\n".join(["| model | epochs | test acc | train min |\n|---|---|---|---|", *rows, "",
                       "Pointing game (the map's peak inside the digit's box):", "", methods, *pointing_rows, "",
                       "Box IoU (largest region above 20 % of the peak against the digit's box):", "", methods,
                       *iou_rows, "", *floor])
    scored = f"{total} images" if n == total else f"the first {n} of its {total} images"
    Path(out).write_text(f"cluttered_digits test split ({scored}), seed 0, "
                         f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {cpu()}\n\n{table}\n")
    return table


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "CPU"


if __name__ == "__main__":
    main()
