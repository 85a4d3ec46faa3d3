"""The CAM leaderboard: every CAM method on every family with ``zoo:fashion_mnist`` weights, scored for faithfulness.

For each model, on the first --n (1,000) images of Fashion-MNIST's test split at the weights' input size, with the
true class as target, every method of zoo.cam.METHODS is scored by zoo.cam.evaluate_faithfulness: deletion and
insertion AUC (Petsiuk et al. 2018), ROAD most- and least-relevant first and combined (Rong et al. 2022), the
model-randomization sanity check (Adebayo et al. 2018) and seconds per image for the maps. The same 8 images are
drawn under every method, one picture per model. Writes, under --out (benchmarks/results/cam):

    fashion_mnist.json   every score, with the machine; a model already there is not run again (resumable)
    fashion_mnist.md     the table, per model and method
    <model>.png          the 8 images under every method
    index.html           the page: the table and the pictures

    python benchmarks/cam_board.py --n 1000            # every family with weights: about 2 hours on 2 CPU cores
    python benchmarks/cam_board.py --models lenet5 --n 64 --out /tmp/cam   # a quick look

Models whose features are not a spatial map (linear, mlp) are listed as such. Run it alone: seconds per image are
timings.
"""

import argparse
import html
import json
import platform
import time
from pathlib import Path

import torch

import zoo
from zoo.atomic import atomic_path
from zoo.cam import FAITHFULNESS, METHODS, compute_cam, evaluate_faithfulness, save_methods
from zoo.errors import ZooError

COLUMNS = ("deletion", "insertion", "road_morf", "road_lerf", "road", "sanity", "seconds_per_image")


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def weighted_models() -> list[str]:
    from zoo.pretrained import list_weights

    return sorted({w.model for w in list_weights() if w.name.removeprefix("zoo:") == "fashion_mnist"})


def score_model(name: str, n: int, pictures: Path, batch_size: int, steps: int) -> dict:
    from zoo.data.files import denormalize

    model = zoo.create(name, weights="zoo:fashion_mnist").eval()
    data = zoo.data.create("fashion_mnist", image_size=model.hparams.image_size)
    x, y = data.normalized("test", n)
    try:
        compute_cam(model, x[:1], method="gradcam")
    except ZooError as exc:
        return {"model": name, "spatial": False, "why": str(exc)}
    with torch.no_grad():
        side = model.net.forward_features(x[:1]).shape[-1]
    # a 1x1 last map (VGG's small form at 28 px) makes every map flat: read the registry's CAM layer, before the pool
    layer = zoo.model_info(name).cam_layer if side == 1 else None
    with torch.no_grad():
        top1 = float((model(x).argmax(1) == y).float().mean())
    start = time.perf_counter()
    scores = evaluate_faithfulness(model, x, y, METHODS, layer, batch_size=batch_size, steps=steps)
    minutes = (time.perf_counter() - start) / 60
    shown = denormalize(x[:8], data.mean, data.std)
    maps = {}
    for method in METHODS:
        try:
            maps[method] = compute_cam(model, x[:8], y[:8], method, layer, batch_size=batch_size).maps
        except ZooError:
            maps[method] = None
    names = data.class_names
    titles = [f"{names[int(t)]}" for t in y[:8]]
    save_methods(shown, maps, titles, str(pictures / f"{name}.png"))
    return {"model": name, "spatial": True, "images": len(x), "top1": round(top1, 4), "layer": layer,
            "image_size": model.hparams.image_size, "minutes": round(minutes, 2), "scores": scores}


def retime(board: dict, n: int, batch_size: int) -> None:
    """Seconds per image of each method's maps again, best of 2 on the first `n` images, for a run that shared the
    machine: the scores do not change, only the timings."""
    for row in board["models"]:
        if not row["spatial"]:
            continue
        model = zoo.create(row["model"], weights="zoo:fashion_mnist").eval()
        x, y = zoo.data.create("fashion_mnist", image_size=row["image_size"]).normalized("test", n)
        for method, s in row["scores"].items():
            if s is not None:
                times = []
                for _ in range(2):
                    start = time.perf_counter()
                    compute_cam(model, x, y, method, row["layer"], batch_size)
                    times.append((time.perf_counter() - start) / len(x))
                s["seconds_per_image"] = min(times)
        print(f"{row['model']}: timed again on {len(x)} images", flush=True)


def _cell(s: dict | None, column: str) -> str:
    return "n/a" if s is None else format(s[column], ".4f" if column == "seconds_per_image" else ".3f")


def markdown(board: dict) -> str:
    lines = [f"Fashion-MNIST test, first {board['n']} images, targets: the true classes; deletion and insertion in "
             f"{board['steps']} steps; seconds per image for the maps alone"
             + (f", timed on {board['timed_on']} images" if board.get("timed_on") else "") + f"; {board['cpu']}, "
             f"{board['threads']} threads, torch {board['torch']}. Better: "
             + ", ".join(f"{c} {w}" for c, w in FAITHFULNESS.items()) + ".", "",
             "| model | method | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for row in board["models"]:
        if not row["spatial"]:
            lines.append(f"| {row['model']} | (no spatial feature map) |" + " |" * len(COLUMNS))
            continue
        for method, s in row["scores"].items():
            cells = [_cell(s, c) for c in COLUMNS]
            lines.append(f"| {row['model']} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def page(board: dict) -> str:
    e = html.escape
    rows = []
    for row in board["models"]:
        if not row["spatial"]:
            rows.append(f"<tr><td>{e(row['model'])}</td><td colspan='{len(COLUMNS) + 1}'>no spatial feature map"
                        "</td></tr>")
            continue
        for method, s in row["scores"].items():
            cells = "".join(f"<td>{_cell(s, c)}</td>" for c in COLUMNS)
            rows.append(f"<tr><td>{e(row['model'])}</td><td>{e(method)}</td>{cells}</tr>")
    figures = "".join(f"<figure id='{e(row['model'])}'><img src='{e(row['model'])}.png' alt='{e(row['model'])}: "
                      f"8 test images under every method'><figcaption>{e(row['model'])}</figcaption></figure>"
                      for row in board["models"] if row["spatial"])
    head = "".join(f"<th>{e(c)}<br><small>{e(FAITHFULNESS.get(c, 'lower'))} is better</small></th>"
                   for c in COLUMNS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zoo: the CAM leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 6px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}img{{max-width:100%}}</style>
</head><body><h1>The CAM leaderboard</h1>
<p>{e(markdown(board).splitlines()[0])}</p>
<table id="scores"><thead><tr><th>model</th><th>method</th>{head}</tr></thead><tbody>
{''.join(rows)}
</tbody></table>
<h2>The same 8 images under every method</h2>
{figures}
</body></html>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated names (default: every model with zoo:fashion_mnist weights)")
    parser.add_argument("--n", type=int, default=1000, help="test images scored (default: 1000)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16, help="deletion and insertion steps (default: 16)")
    parser.add_argument("--out", default="benchmarks/results/cam")
    parser.add_argument("--retime", type=int, metavar="N",
                        help="only time each method's maps again on N images (alone), keeping the scores")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "fashion_mnist.json"
    board = json.loads(results.read_text()) if results.is_file() else {}
    if (board.get("n"), board.get("steps")) != (args.n, args.steps):
        board = {"n": args.n, "steps": args.steps, "models": []}
    board.update(cpu=cpu(), threads=torch.get_num_threads(), torch=torch.__version__)
    done = {row["model"] for row in board["models"]}
    if args.retime:
        retime(board, args.retime, args.batch_size)
        board["timed_on"] = args.retime
        with atomic_path(results) as temporary:
            Path(temporary).write_text(json.dumps(board, indent=1))
    for name in [] if args.retime else args.models.split(",") if args.models else weighted_models():
        if name in done:
            print(f"{name}: already scored")
            continue
        print(f"{name}: scoring {len(METHODS)} methods on {args.n} images", flush=True)
        row = score_model(name, args.n, out, args.batch_size, args.steps)
        board["models"].append(row)
        with atomic_path(results) as temporary:
            Path(temporary).write_text(json.dumps(board, indent=1))
        print(f"{name}: done" + (f" in {row['minutes']} min" if row["spatial"] else " (no spatial map)"), flush=True)
    (out / "fashion_mnist.md").write_text(markdown(board))
    (out / "index.html").write_text(page(board))
    print(markdown(board))


if __name__ == "__main__":
    main()
