"""The leaderboard: results.csv ranked (mean +- std over seeds), as leaderboard.md, a sortable index.html and plots.

The page is ``report.html`` (package data) with the tables put in its ``{body}``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_path
from zoo.bench.suite import CURVES, KEY, REFERENCES, RESULTS
from zoo.errors import InputError
from zoo.figures import as_written, drawing, save_figure
from zoo.results import read_rows

PAGE = Path(__file__).with_name("report.html")

SHOWN = [  # (column, heading, digits); top1/top5 get "mean +- std"
    ("top1", "top-1 %", 2), ("top5", "top-5 %", 2), ("param_count", "params (M)", 3), ("infer_gmacs", "GMACs", 4),
    ("train_samples_per_sec", "train img/s", 0), ("infer_samples_per_sec", "infer img/s", 0),
    ("infer_latency_ms", "latency ms (batch 1)", 2), ("peak_mem_mb", "peak MB", 0),
    ("epochs", "epochs", 0), ("epochs_to_target", "epochs to target", 1), ("time_to_target_s", "s to target", 1),
    ("wall_s", "wall s", 0),
]


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def leaderboard(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Finished rows grouped by suite, dataset and model (the latest row of each seed), ranked by top-1.

    A model whose options changed (a new config) is shown with its newest config only; the older
    rows stay in the CSV. Each group gives the mean over its seeds of every measured column, and the
    sample std of top-1 and top-5; ``epochs_to_target`` and ``time_to_target_s`` average the seeds
    that reached the target (``reached`` counts them).
    """
    latest: dict[tuple[str, ...], dict[str, str]] = {}
    for row in rows:
        if row.get("status") == "done":
            latest[tuple(row.get(k) or "" for k in KEY)] = row
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for key, row in latest.items():
        groups.setdefault((key[0], key[2], key[1], key[4]), []).append(row)
    finished_at = {group: max(r.get("finished") or "" for r in seeds) for group, seeds in groups.items()}
    newest = {group[:3]: group for group in sorted(groups, key=finished_at.__getitem__)}  # later configs win
    groups = {group: groups[group] for group in newest.values()}
    board = []
    for (suite, dataset, model, config), seeds in groups.items():
        entry: dict[str, Any] = {"suite": suite, "dataset": dataset, "model": model, "config": config,
                                 "seeds": len(seeds), "reached": sum(_float(r.get("epochs_to_target")) is not None
                                                                     for r in seeds)}
        for column, _, _ in SHOWN:
            values = [v for v in (_float(r.get(column)) for r in seeds) if v is not None]
            entry[column] = statistics.fmean(values) if values else None
            if column in ("top1", "top5"):
                entry[column + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
        for column in ("precision", "device", "target", "torch", "lightning", "zoo", "git"):
            entry[column] = ", ".join(sorted({r.get(column) or "" for r in seeds} - {""}))
        board.append(entry)
    return sorted(board, key=lambda e: (e["suite"], e["dataset"], -(e["top1"] if e["top1"] is not None else -1)))


def _stem(suite: str, dataset: str) -> str:
    """The file-name stem of a section's pictures: the suite (and dataset) as they are when they make a plain file
    name, else their letters, digits, '.', '_' and '-' with a short hash of the whole; a results.csv can hold any
    text there (``../../x`` would write the pictures outside the folder)."""
    name = suite if suite.startswith(dataset) else f"{suite}_{dataset}"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if safe == name:
        return name
    return f"{safe[:60] or 'section'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _md(text: str) -> str:
    """Text for a Markdown table cell or line: no HTML (Markdown renderers pass tags through) and no cell breaks."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _cell(entry: dict[str, Any], column: str, digits: int) -> str:
    value = entry.get(column)
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    if column in ("top1", "top5") and entry["seeds"] > 1:
        text += f" ± {entry[column + '_std']:.{digits}f}"
    if column in ("epochs_to_target", "time_to_target_s") and entry["reached"] < entry["seeds"]:
        text += f" ({entry['reached']}/{entry['seeds']})"
    return text


def _sections(board: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    sections: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in board:
        sections.setdefault((entry["suite"], entry["dataset"]), []).append(entry)
    return sections


def _count(n: int, noun: str) -> str:
    """``1 model``, ``3 models``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _about(entries: list[dict[str, Any]]) -> str:
    def joined(column: str) -> str:
        return "; ".join(sorted({e[column] for e in entries if e[column]})) or "-"

    seeds = sorted({e["seeds"] for e in entries})
    commits = sorted({c for e in entries for c in e["git"].split(", ") if c})
    return (f"{_count(len(entries), 'model')}, {'/'.join(map(str, seeds))} seed{'' if seeds == [1] else 's'} "
            f"each; target {joined('target')} % validation accuracy; precision {joined('precision')}; "
            f"device {joined('device')}; torch {joined('torch')}, lightning {joined('lightning')}, "
            f"zoo {joined('zoo')}; commit{'s' if len(commits) > 1 else ''} {', '.join(commits) or '-'}")


def _label_offsets(ax: Any, points: list[tuple[float, float]], names: list[str],
                   fontsize: float = 9.0) -> list[tuple[float, float, bool]]:
    """Text offsets (in points) that keep each name clear of the other names and of every marker: each label, measured
    as drawn, takes the first free place of right, left, above and below its marker, then ever farther up or down
    (joined to its marker by a line: the third value); the labels of crowded points are placed first."""
    figure = ax.figure
    figure.canvas.draw()  # the axes' scales and the renderer, so that sizes are measured as drawn
    renderer, scale = figure.canvas.get_renderer(), figure.dpi / 72  # pixels per point
    markers = [tuple(ax.transData.transform(p)) for p in points]
    sizes = []
    for name in names:
        text = ax.text(0, 0, name, fontsize=fontsize)
        box = text.get_window_extent(renderer)
        sizes.append((box.width / scale, box.height / scale))
        text.remove()

    def crowding(i: int) -> float:
        return sum(1 for j, m in enumerate(markers) if j != i and abs(m[0] - markers[i][0]) < 120
                   and abs(m[1] - markers[i][1]) < 40)

    placed: list[tuple[float, float, float, float]] = []  # label boxes in pixels
    offsets: list[tuple[float, float, bool]] = [(5.0, 3.0, False)] * len(points)
    for i in sorted(range(len(points)), key=lambda i: -crowding(i)):
        (px, py), (w, h) = markers[i], sizes[i]
        near = [(5, -h / 3), (-5 - w, -h / 3), (-w / 2, 5), (-w / 2, -5 - h), (5, 4), (5, -4 - h), (-5 - w, 4),
                (-5 - w, -4 - h)]
        far = [(dx, sign * step * (h + 2) + (0 if sign > 0 else -h)) for step in range(1, 9) for sign in (1, -1)
               for dx in (12, -12 - w)]
        for k, (dx, dy) in enumerate([*near, *far]):  # noqa: B007 - read after the loop: the place taken
            box = (px + dx * scale, py + dy * scale, px + (dx + w) * scale, py + (dy + h) * scale)
            clear = all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 1 < b[1] or b[3] + 1 < box[1]
                        for b in placed)
            clear = clear and not any(box[0] - 4 < x < box[2] + 4 and box[1] - 4 < y < box[3] + 4 for x, y in markers)
            if clear:
                break
        placed.append(box)
        offsets[i] = (dx, dy, k >= len(near))
    return offsets


@drawing
def plot_section(entries: list[dict[str, Any]], curves: list[dict[str, str]], stem: Path) -> list[Path]:
    """Accuracy against parameters and against inference throughput, and the validation curves, as PNGs."""
    import matplotlib.pyplot as plt

    paths = []
    for column, label, name in (("param_count", "parameters (millions, log scale)", "accuracy_vs_params"),
                                ("infer_samples_per_sec", "inference images/s (batched, log scale)",
                                 "accuracy_vs_throughput")):
        shown = [e for e in entries if (e[column] or 0) > 0 and e["top1"] is not None]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        ax.errorbar([e[column] for e in shown], [e["top1"] for e in shown], yerr=[e["top1_std"] for e in shown],
                    fmt="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 test accuracy (%), mean ± std")
        what = {"param_count": "no parameters", "infer_samples_per_sec": "no measured throughput"}[column]
        left_out = [e["model"] for e in entries if e not in shown]
        ax.set_title(as_written(f"{entries[0]['dataset']}: top-1 vs {label.split(' (')[0]}"
                                + (f"\n({', '.join(left_out)}: {what}, not shown)" if left_out else "")), fontsize=11)
        ax.margins(x=0.12, y=0.08)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        labels = [as_written(e["model"]) for e in shown]  # placed on the axes as they are drawn: scale, margins, layout
        placed = _label_offsets(ax, [(e[column], e["top1"]) for e in shown], labels)
        for e, text, (dx, dy, far) in zip(shown, labels, placed, strict=True):
            ax.annotate(text, (e[column], e["top1"]), textcoords="offset points", xytext=(dx, dy), fontsize=9,
                        va="bottom", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if far else None)
        paths.append(save_figure(fig, stem.with_name(f"{stem.name}_{name}.png")))
    latest: dict[tuple[str, ...], float] = {}  # an entry run again (it failed after its curve) counts once
    for row in curves:
        value = _float(row.get("val_acc"))
        if value is not None and (row.get("epoch") or "").isdigit():
            latest[(*(row.get(k) or "" for k in KEY), row["epoch"])] = value
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for e in entries:
        points: dict[int, list[float]] = {}
        for (suite, model, dataset, _, config, epoch), value in latest.items():
            if (suite, dataset, model, config) == (e["suite"], e["dataset"], e["model"], e["config"]):
                points.setdefault(int(epoch), []).append(value)
        if points:
            epochs = sorted(points)
            ax.plot(epochs, [statistics.fmean(points[k]) for k in epochs], marker="." if len(epochs) < 40 else None,
                    label=as_written(e["model"]))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%), mean over seeds")
    ax.set_title(as_written(f"{entries[0]['dataset']}: validation curves"), fontsize=10)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(save_figure(fig, stem.with_name(f"{stem.name}_curves.png")))
    return paths


def render(out: Path) -> list[Path]:
    """``out/leaderboard.md``, ``out/index.html`` and the plots, from ``out/results.csv`` and ``out/curves.csv``.

    Every value read from the CSV files (suite, dataset, model, ...) is escaped where the page shows it, and names
    no file outside `out`: rendering results from someone else is safe.
    """
    board = leaderboard(read_rows(out / RESULTS))
    if not board:
        raise InputError(f"no finished entries in {out / RESULTS}; run a suite first: zoo bench --suite SUITE.yaml "
                         f"--out {out}")
    curves = read_rows(out / CURVES)
    references = json.loads((out / REFERENCES).read_text()) if (out / REFERENCES).is_file() else {}
    for entry in board:
        reference = references.get(entry["model"])
        entry["published"] = None if reference is None else reference["top1"]
        entry["published_what"] = "" if reference is None else reference["what"]
    shown = SHOWN[:1] + [("published", "published %", 1)] + SHOWN[1:] if references else SHOWN
    md = ["# Leaderboard", "",
          f"Made by `zoo bench` from `{RESULTS}` ({_count(len(board), 'row')}); top-1 and top-5 are test accuracy, "
          "mean ± std over seeds, of the best-validation checkpoint. Throughput and latency are from the machine "
          "named below; compare them within one table only."
          + (" *published* is the reference result a suite names for the same architecture (its footnotes say "
             "which net and recipe): a long schedule, not zoo's budget." if references else ""), ""]
    page = []
    headings = ["#", "model", *(h for _, h, _ in shown), "seeds"]
    for (suite, dataset), entries in _sections(board).items():
        pictures = plot_section(entries, curves, out / _stem(suite, dataset))
        rows = [[str(i), _md(e["model"]), *(_cell(e, c, d) for c, _, d in shown), str(e["seeds"])]
                for i, e in enumerate(entries, 1)]
        notes = [f"{e['model']}: {e['published_what']}" for e in entries if e.get("published_what")]
        md += [f"## {_md(dataset)} (suite {_md(suite)})", "", _md(_about(entries)), "",
               "| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|",
               *("| " + " | ".join(r) + " |" for r in rows), "",
               *([f"Published: {_md('; '.join(notes))}.", ""] if notes else []),
               *(f"![{p.stem}]({p.name})" for p in pictures), ""]
        body = "\n".join(
            "<tr>" + f'<td data-value="{i}">{i}</td><td data-value="{html.escape(e["model"])}">'
            f'{html.escape(e["model"])}</td>'
            + "".join(f'<td data-value="{"" if e[c] is None else e[c]}"'
                      + (f' title="{html.escape(e["published_what"])}"' if c == "published" else "")
                      + f'>{html.escape(_cell(e, c, d))}</td>' for c, _, d in shown)
            + f'<td data-value="{e["seeds"]}">{e["seeds"]}</td></tr>'
            for i, e in enumerate(entries, 1))
        head = "".join(f'<th data-type="{"text" if h == "model" else "number"}" aria-sort="none">{html.escape(h)}'
                       f'</th>' for h in headings)
        page += [f"<h2>{html.escape(dataset)} <small>(suite {html.escape(suite)})</small></h2>",
                 f"<p>{html.escape(_about(entries))}</p>",
                 f'<div class="scroll"><table class="leaderboard"><thead><tr>{head}</tr></thead><tbody>\n{body}\n'
                 '</tbody></table></div>',
                 *([f'<p class="notes">Published: {html.escape("; ".join(notes))}.</p>'] if notes else []),
                 '<div class="plots">' + "".join(f'<img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">'
                                                 for p in pictures) + "</div>"]
    html_page = PAGE.read_text().replace("{body}", "\n".join(page))
    for name, text in (("leaderboard.md", "\n".join(md)), ("index.html", html_page)):
        with atomic_path(out / name) as temporary:
            temporary.write_text(text)
    return [out / "leaderboard.md", out / "index.html"]
