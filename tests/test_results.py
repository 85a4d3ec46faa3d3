"""zoo.results: the one append-only CSV store of bench, search and cv."""

import csv

from zoo.results import append_rows, read_rows


def test_rows_are_appended_never_rewritten(tmp_path):
    path = tmp_path / "results.csv"
    append_rows(path, ["trial", "lr", "val_acc"], [{"trial": 0, "lr": 0.1, "val_acc": 91.5}])
    before = path.read_bytes()
    append_rows(path, ["trial", "lr", "val_acc"], [{"trial": 1, "lr": 0.01, "val_acc": None}])
    assert path.read_bytes().startswith(before)
    assert read_rows(path) == [{"trial": "0", "lr": "0.1", "val_acc": "91.5"},
                               {"trial": "1", "lr": "0.01", "val_acc": ""}]


def test_a_new_column_widens_the_header_and_keeps_the_rows(tmp_path):
    """A coarse search over lr, then a finer one that also draws weight_decay, into the same file."""
    path = tmp_path / "results.csv"
    append_rows(path, ["trial", "lr", "val_acc"], [{"trial": 0, "lr": 0.1, "val_acc": 90.0}])
    append_rows(path, ["trial", "lr", "weight_decay", "val_acc"],
                [{"trial": 1, "lr": 0.05, "weight_decay": 1e-4, "val_acc": 92.0}])
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert table == [["trial", "lr", "val_acc", "weight_decay"], ["0", "0.1", "90.0", ""],
                     ["1", "0.05", "92.0", "0.0001"]]
    assert not list(tmp_path.glob("*.tmp*")) and len(list(tmp_path.iterdir())) == 1  # replaced atomically


def test_a_partial_last_line_stays_apart_from_the_next_row(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("trial,val_acc\n0,90.0\n1,9")  # a kill during a write
    append_rows(path, ["trial", "val_acc"], [{"trial": 2, "val_acc": 93.0}])
    assert path.read_text().splitlines()[-1] == "2,93.0"


def test_formulas_are_kept_as_text(tmp_path):
    """A value that a spreadsheet would run as a formula is written so that it is not."""
    path = tmp_path / "results.csv"
    append_rows(path, ["status"], [{"status": "=HYPERLINK(\"http://x\")"}])
    assert not read_rows(path)[0]["status"].startswith("=")
