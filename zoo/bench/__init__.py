"""Benchmark leaderboards: run a suite, keep every result, render a ranked table and a page.

``zoo bench --suite digits`` fits every model x dataset x seed of the suite
(each a plain ``zoo fit`` with the suite's recipe, in its own process so peak memory is its own),
then measures the best checkpoint: top-1/top-5 test accuracy, parameters, MACs, training and
inference throughput, batch-1 latency, peak memory, wall time and the epochs and training time
it took to reach the suite's target validation accuracy. Each finished entry is appended to
``results.csv`` (timm's column names where timm has one) and its validation curve to
``curves.csv``; nothing is ever overwritten, and a rerun skips the entries already done, so an
interrupted suite resumes where it stopped. ``zoo bench render`` turns the CSVs into
``leaderboard.md``, a static ``index.html`` (sortable table, scatter plots, curves) and the PNGs.
``zoo bench speed`` times forward and training steps in the manner of timm's benchmark.py against
the same architecture from torchvision (or timm), alternating in one process.

The suite format: :mod:`zoo.bench.suite`; measuring an entry: :mod:`zoo.bench.measure`; the page:
:mod:`zoo.bench.report`; speed against torchvision: :mod:`zoo.bench.speed`.
"""

from pathlib import Path
from typing import Any

from zoo.bench.report import leaderboard, render
from zoo.bench.speed import SPEED_COLUMNS, measure_speed
from zoo.bench.suite import (
    COLUMNS,
    CURVE_COLUMNS,
    CURVES,
    KEY,
    REFERENCES,
    RESULTS,
    SUITES,
    Entry,
    finished,
    load_suite,
    run_suite,
    suite_file,
    suite_references,
    write_references,
)
from zoo.errors import StoppedError
from zoo.results import append_rows, read_rows

__all__ = ["COLUMNS", "CURVES", "CURVE_COLUMNS", "KEY", "REFERENCES", "RESULTS", "SPEED_COLUMNS", "SUITES", "Entry",
           "append_rows", "bench_suite", "finished", "leaderboard", "load_suite", "measure_speed", "read_rows",
           "render", "run_suite", "suite_file", "suite_references", "write_references"]


def bench_suite(suite: str | Path, models: list[str] | None, datasets: list[str] | None, seeds: list[int] | None,
                settings: list[str], out: str | Path | None, runs: Path,
                progress: bool = True) -> tuple[Path, list[dict[str, Any]], list[Path]]:
    """``zoo bench --suite``: the suite's entries (:func:`load_suite`'s choice of them) not yet in ``OUT/results.csv``
    run (:func:`run_suite`; OUT defaults to ``runs/bench/SUITE``), the suite's references written beside them, and
    the page rendered once an entry is done. Returns OUT, the rows this call added and the pages written.

    Raises:
        StoppedError: Ctrl-C stopped the suite (exit code 130); the entries already finished are kept.
    """
    entries = load_suite(suite, models, datasets, seeds, settings)
    out = Path(out or Path("runs/bench") / entries[0].suite)
    write_references(out, suite_references(suite))
    try:
        added = run_suite(entries, out, runs, progress)
    except KeyboardInterrupt:
        stopped = StoppedError(f"zoo bench interrupted; the finished entries are in {out / RESULTS}. Run the same "
                               "command again to resume")
        stopped.exit_code = 130  # 128 + SIGINT, as a shell reports Ctrl-C
        raise stopped from None
    return out, added, render(out) if finished(read_rows(out / RESULTS)) else []
