"""zoo search on digits with a tiny budget: every trial is a real fit with its own folder and config."""

import csv

import pytest
import yaml

from tests.conftest import zoo_here
from zoo.errors import InputError
from zoo.search import parse_grid, parse_random, trials

FIT = ["--model", "mlp", "--data.image_size", "8", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar",
       "false"]


def test_search_runs_every_trial_in_its_own_folder_and_ranks_them(tmp_path):
    done = zoo_here("search", "--grid", "model.optimizer.lr=0.01,0.0001", "--random",
                   "model.label_smoothing=uniform:0:0.2", "--trials", "2", *FIT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "runs" / "search"
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    for row in rows:  # each trial's own config holds exactly the values its row reports
        config = yaml.safe_load((tmp_path / row["run"] / "config.yaml").read_text())
        assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == float(row["model.optimizer.lr"])
        assert config["model"]["init_args"]["label_smoothing"] == pytest.approx(float(row["model.label_smoothing"]))
        assert 0 <= float(row["model.label_smoothing"]) <= 0.2
    assert sorted(float(r["model.optimizer.lr"]) for r in rows) == [0.0001, 0.0001, 0.01, 0.01]
    table = done.stdout[done.stdout.index("trial  "):].splitlines()[2:6]
    accuracies = [float(line.split()[3]) for line in table]
    assert accuracies == sorted(accuracies, reverse=True)  # sorted by validation accuracy
    assert max(accuracies) > 80  # lr 0.01 learns digits in two epochs; 1e-4 barely moves
    assert (out / "search.png").read_bytes()[:4] == b"\x89PNG"

    again = zoo_here("search", "--grid", "model.optimizer.lr=0.003", *FIT, cwd=tmp_path)  # finer: added after
    assert again.returncode == 0, again.stderr[-3000:]
    with open(out / "results.csv") as f:
        assert [r["trial"] for r in csv.DictReader(f)] == ["0", "1", "2", "3", "4"]


def test_a_diverging_trial_is_recorded_and_the_search_goes_on(tmp_path):
    done = zoo_here("search", "--grid", "model.optimizer.lr=1e12,0.01", "--model.optimizer", "SGD", *FIT,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "runs" / "search" / "results.csv") as f:
        rows = {r["model.optimizer.lr"]: r for r in csv.DictReader(f)}
    assert rows["1000000000000.0"]["status"].startswith("failed: the training loss became")
    assert rows["0.01"]["status"] == "done"


def test_search_specs_are_parsed_and_checked():
    assert parse_grid(["model.optimizer.lr=0.1,0.01", "model.loss=hinge,cross_entropy"]) == {
        "model.optimizer.lr": [0.1, 0.01], "model.loss": ["hinge", "cross_entropy"]}
    assert parse_grid(["model.hidden=[256],[512,256]"]) == {"model.hidden": ["[256]", "[512,256]"]}  # lists whole
    draws = parse_random(["a=loguniform:1e-5:1e-2", "b=int:1:3", "c=choice:x,y"])
    points = trials({"g": [1, 2]}, draws, 50, seed=0)
    assert len(points) == 100 and [p["g"] for p in points[:2]] == [1, 1]
    assert all(1e-5 <= p["a"] <= 1e-2 and p["b"] in (1, 2, 3) and p["c"] in ("x", "y") for p in points)
    assert trials({}, draws, 3, seed=0) == trials({}, draws, 3, seed=0)  # reproducible
    for bad, message in (("lr", "takes KEY=DIST:ARGS"), ("lr=normal:0:1", "DIST one of"),
                         ("lr=uniform:1:0", "LOW < HIGH"), ("lr=loguniform:0:1", "positive bounds")):
        with pytest.raises(InputError, match=message):
            parse_random([bad])
    with pytest.raises(InputError, match="takes KEY=V1,V2"):
        parse_grid(["lr"])


def test_search_without_anything_to_search_says_what_to_give(tmp_path):
    done = zoo_here("search", *FIT, cwd=tmp_path)
    assert done.returncode == 2 and "nothing to search: give --grid" in done.stderr
