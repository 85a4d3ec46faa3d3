"""zoo bench: suites run in child processes, append-only CSVs that resume, the leaderboard page in Chromium, speed."""

import csv
import os
import re
import shutil
import statistics
from pathlib import Path

import lightning as L
import pytest
import torch

import zoo
from tests.conftest import ROOT, run_zoo
from zoo import bench
from zoo.errors import InputError, UnknownNameError

SUITES = sorted(bench.SUITES.glob("*.yaml"))


def write_suite(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_suite_file_errors_say_what_to_fix(tmp_path):
    with pytest.raises(InputError, match="suite file '.*missing.yaml' does not exist; .* shipped suite: .*digits"):
        bench.load_suite(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="suite file 'digit' does not exist"):
        bench.load_suite("digit")
    assert bench.suite_file("digits") == bench.SUITES / "digits.yaml"  # shipped, found by name from anywhere
    bad = write_suite(tmp_path / "bad.yaml", "name: x\nmodels: [lenet5]\ndatasets: [digits]\nrecipes: {}\n")
    with pytest.raises(InputError, match="unknown key.*recipes"):
        bench.load_suite(bad)
    typo = write_suite(tmp_path / "typo.yaml", "models: [resnt20]\ndatasets: [digits]\n")
    with pytest.raises(UnknownNameError, match="resnet20"):
        bench.load_suite(typo)
    good = write_suite(tmp_path / "good.yaml", "models: [lenet5]\ndatasets: [digits]\nseeds: [0, 1]\n")
    with pytest.raises(InputError, match="not in"):
        bench.load_suite(good, models=["resnet20"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        bench.load_suite(good, options=["trainer.max_epochs"])


def test_suite_entries_and_config_hash(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", """
name: demo
seeds: [0, 1]
target: 90
recipe: {trainer.max_epochs: 3, data.augment: none}
datasets: {digits: {data.image_size: 16}}
models:
  lenet5:
  linear: {model.optimizer.init_args.lr: 0.01, trainer.max_epochs: 5}
""")
    entries = bench.load_suite(suite)
    assert [(e.model, e.seed) for e in entries] == [("lenet5", 0), ("lenet5", 1), ("linear", 0), ("linear", 1)]
    linear = entries[2]
    assert linear.options == ("--trainer.max_epochs", "3", "--data.augment", "none", "--data.image_size", "16",
                              "--model.optimizer.init_args.lr", "0.01", "--trainer.max_epochs", "5")
    assert linear.target == 90 and linear.suite == "demo"
    assert entries[0].config == entries[1].config != linear.config  # seeds share a config, models do not
    other = bench.load_suite(suite, options=["trainer.max_epochs=4"])[0]
    assert other.config != entries[0].config  # a changed recipe is a new entry, not a finished one
    on_fake = bench.load_suite(suite, datasets=["fake"], seeds=[7], models=["linear"])
    assert [(e.model, e.dataset, e.seed) for e in on_fake] == [("linear", "fake", 7)]
    assert "--data.image_size" not in on_fake[0].options  # the suite's digits options stay with digits


def _row(model: str, seed: int, top1: float, **extra) -> dict:
    return {"suite": "s", "model": model, "dataset": "digits", "seed": str(seed), "config": "c" + model,
            "status": "done", "top1": str(top1), "top5": "100", "param_count": "0.5", "epochs": "3",
            "epochs_to_target": extra.pop("epochs_to_target", ""), **extra}


def test_leaderboard_means_latest_seed_rows_and_ranks():
    table = [
        _row("lenet5", 0, 90.0), _row("lenet5", 1, 96.0), _row("lenet5", 0, 94.0),  # seed 0 again: the later row counts
        _row("mlp", 0, 97.0, epochs_to_target="2"), _row("mlp", 1, 97.5),
        {**_row("linear", 0, 99.9), "status": "failed (exit 1): boom"},  # failed rows never rank
        {"suite": "s", "model": "vgg11"},  # a partial last line (a kill mid-write)
        {**_row("alexnet", 0, 10.0), "config": "old", "finished": "2026-01-01T00:00:00"},  # its recipe changed:
        {**_row("alexnet", 0, 93.0), "config": "new", "finished": "2026-01-02T00:00:00"},  # the newest is shown
    ]
    board = bench.leaderboard(table)
    assert [(e["model"], e["top1"]) for e in board] == [("mlp", 97.25), ("lenet5", 95.0), ("alexnet", 93.0)]
    lenet = board[1]
    assert lenet["top1"] == pytest.approx(95.0) and lenet["top1_std"] == pytest.approx(statistics.stdev([94, 96]))
    assert lenet["seeds"] == 2 and lenet["reached"] == 0 and lenet["epochs_to_target"] is None
    assert board[0]["reached"] == 1 and board[0]["epochs_to_target"] == 2
    assert bench.report._cell(board[0], "epochs_to_target", 1) == "2.0 (1/2)"
    assert bench.report._cell(lenet, "top1", 2) == f"95.00 ± {statistics.stdev([94, 96]):.2f}"
    assert bench.report._about(board).startswith("3 models, 1/2 seeds each; ")
    assert bench.report._about([lenet]).startswith("1 model, 2 seeds each; ")  # once "1 models"


def test_append_rows_never_rewrites_and_survive_a_torn_line(tmp_path):
    path = tmp_path / "r.csv"
    bench.append_rows(path, ["a", "b"], [{"a": 1, "b": None}])
    first = path.read_bytes()
    bench.append_rows(path, ["a", "b"], [{"a": 2, "b": 3, "ignored": 4}])
    assert path.read_bytes().startswith(first)
    assert rows(path) == [{"a": "1", "b": ""}, {"a": "2", "b": "3"}]
    with open(path, "a") as f:
        f.write("9")  # a row cut off by a kill
    bench.append_rows(path, ["a", "b"], [{"a": 4, "b": 5}])
    assert rows(path)[-2:] == [{"a": "9", "b": None}, {"a": "4", "b": "5"}]  # the next row is whole


def test_suite_runs_in_children_resumes_and_renders(tmp_path):
    """Two seeds of a real fit on digits, one entry failing; a rerun skips the finished ones and retries the failure.

    The working folder holds a random.py that breaks whoever imports it and the evil.py the failing entry names:
    the children import neither (they leave the working folder off sys.path, as the zoo command does).
    """
    (tmp_path / "random.py").write_text("raise RuntimeError('the working folder was on sys.path')\n")
    (tmp_path / "evil.py").write_text("open(__file__ + '.ran', 'w').close()\nclass Nothing: pass\n")
    suite = write_suite(tmp_path / "tiny.yaml", """
name: tiny
seeds: [0, 1]
target: 50
recipe: {trainer.max_epochs: 3, data.image_size: 8, data.batch_size: 128}
datasets: [digits]
models:
  linear: {model.optimizer.init_args.lr: 0.01}
  mlp: {trainer.callbacks: '[{"class_path": "evil.Nothing"}]'}
""")
    out, runs = tmp_path / "board", tmp_path / "runs"
    args = ("bench", "--suite", str(suite), "--out", str(out), "--runs", str(runs), "--seeds", "0")
    first = run_zoo(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # one entry failed: the command says so
    assert "1 entries run, 1 failed" in first.stdout and "zoo bench" in first.stderr  # the progress bar
    table = rows(out / "results.csv")
    assert [(r["model"], r["status"][:6]) for r in table] == [("linear", "done"), ("mlp", "failed")]
    log = Path(re.search(r"see (\S+)\)", table[1]["status"]).group(1))  # the log of that entry and config
    assert log.name == f"mlp-digits-seed0-{table[1]['config']}.log" and "evil" in log.read_text()
    assert not (tmp_path / "evil.py.ran").exists()  # the suite's class_path did not run the working folder's code

    done = table[0]
    assert list(done) == bench.COLUMNS
    net = zoo.create_model("linear", num_classes=10, in_chans=1, image_size=8)
    assert float(done["param_count"]) == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)
    assert float(done["infer_gmacs"]) == pytest.approx(10 * 64 / 1e9)  # one 64 -> 10 matrix product
    assert 80 < float(done["top1"]) <= 100 and float(done["top1_err"]) == pytest.approx(100 - float(done["top1"]))
    assert done["epochs"] == "3" and done["img_size"] == "8" and done["precision"] == "32-true"
    for column in ("train_samples_per_sec", "infer_samples_per_sec", "infer_latency_ms", "peak_mem_mb", "wall_s"):
        assert float(done[column]) > 0, column
    assert done["torch"] == torch.__version__ and done["zoo"] == zoo.__version__
    curve = rows(out / "curves.csv")
    assert [c["epoch"] for c in curve] == ["1", "2", "3"]
    seconds = [float(c["train_s"]) for c in curve]
    assert seconds == sorted(seconds) and seconds[0] > 0  # cumulative training time
    reached = next(c for c in curve if float(c["val_acc"]) >= 50)
    assert done["epochs_to_target"] == reached["epoch"] and float(done["time_to_target_s"]) == pytest.approx(
        float(reached["train_s"]), abs=0.1)
    assert max(float(c["val_acc"]) for c in curve) == pytest.approx(float(done["best_val"]), abs=1e-3)
    assert (runs / "tiny" / "linear-digits" / f"seed0-{done['config']}" / "checkpoints" / "best.ckpt").is_file()

    before = (out / "results.csv").read_bytes()
    again = run_zoo(*args[:-1], "0,1", "--models", "linear", cwd=tmp_path)  # seed 0 is done: only seed 1 runs
    assert again.returncode == 0, again.stderr
    assert "1 of 2 entries already in" in again.stdout
    after = (out / "results.csv").read_bytes()
    assert after.startswith(before)  # appended, never rewritten
    assert [(r["model"], r["seed"]) for r in rows(out / "results.csv")][2:] == [("linear", "1")]
    board = (out / "leaderboard.md").read_text()
    assert "| 1 | linear |" in board and "2 |\n" in board  # two seeds of linear
    for picture in ("tiny_digits_accuracy_vs_params.png", "tiny_digits_accuracy_vs_throughput.png",
                    "tiny_digits_curves.png"):
        assert (out / picture).stat().st_size > 5000


def test_an_entry_trains_under_ddp_with_lightnings_subprocess_launcher(tmp_path):
    """strategy=ddp starts rank 1 as `python -m zoo.bench fit ...`; both ranks fit and test, rank 0 measures.

    Also the fixes of zoo fit under DDP: after the test every rank takes part in the log folder's
    broadcast (rank 0 alone waited for a peer that had exited), and every rank destroys its process group
    before exiting (CI saw rank 0 abort with SIGABRT in Gloo's threads at interpreter exit)."""
    suite = write_suite(tmp_path / "ddp.yaml", "name: ddp\nrecipe: {trainer.max_epochs: 1}\nmodels: [linear]\n"
                                               "datasets: {fake: {data.image_size: 8, data.test_size: 201}}\n")
    proc = run_zoo("bench", "--suite", str(suite), "--out", "out", "--runs", "runs", "--no_progress", "--set",
                   "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", cwd=tmp_path)
    log = "".join(p.read_text() for p in (tmp_path / "runs" / "ddp" / "logs").glob("*.log"))
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log and "re-run: zoo fit --config" in log
    assert "sync_dist=True" not in log  # the training sums are reduced over ranks before they are logged
    row, = rows(tmp_path / "out" / "results.csv")
    assert row["status"] == "done" and float(row["top1"]) > 0
    # 201 test images on 2 ranks: each counted once, as one process testing the same checkpoint counts them
    best, = (tmp_path / "runs" / "ddp").glob("linear-fake/seed0-*/checkpoints/best.ckpt")
    model = zoo.ImageClassifier.load_from_checkpoint(best)
    alone = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False).test(
        model, datamodule=zoo.data.create("fake", image_size=8, test_size=201), verbose=False)
    assert float(row["top1"]) == round(100 * alone[0]["test_acc"], 3)


def test_every_suite_smoke_runs_on_fake(tmp_path):
    """Every entry of each shipped suite, with its own options, fits and is measured on `fake` with a tiny
    budget (one batch of 4; 16-mixed is a GPU precision: 32-true here; no checkpoint; the speed timed on one forward
    of each kind), each distinct command once."""
    tiny = ["trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "trainer.precision=32-true", "trainer.enable_checkpointing=false",
            "trainer.num_sanity_val_steps=0", "data.train_size=60", "data.val_split=10", "data.test_size=8",
            "data.batch_size=4"]
    from zoo.bench.measure import run_entry
    from zoo.bench.suite import ChildJob

    assert {p.stem for p in SUITES} == {"digits", "mnist", "cifar10", "cifar100", "fashion_mnist", "fashion_mnist_5min"}
    ran = set()
    for path in SUITES:  # in this process (the child process is test_suite_runs_in_children_...'s)
        entries = bench.load_suite(path, datasets=["fake"], seeds=[0], options=tiny)  # the seeds share options
        assert len(entries) >= 9, path.name  # every family at least
        for entry in entries:
            if (entry.model, entry.options) in ran:  # on fake, cifar100's entries are cifar10's same commands
                continue
            ran.add((entry.model, entry.options))
            row = run_entry(ChildJob(*entry.key, list(entry.options), entry.target, str(tmp_path), "", speed_rounds=1))
            assert 0 <= row["top1"] <= 100 and row["epochs"] == 1 and row["infer_samples_per_sec"] > 0, (
                path.name, entry.model)
            assert len(row["curve"]) == 1 and (row["param_count"] > 0) == (entry.model != "knn")
    assert len(ran) >= 30


@pytest.mark.parametrize("suite, page", [("digits", "leaderboard.md"), ("fashion_mnist_5min", "fashion_mnist.md")])
def test_committed_leaderboard_is_the_whole_suite_and_renders_the_same(suite, page, tmp_path):
    """benchmarks/results/SUITE holds every entry of the suite as it stands, every seed of it, and its docs page
    shows the table."""
    from zoo.registry import MODELS

    out = ROOT / "benchmarks" / "results" / suite
    entries = bench.load_suite(suite)
    assert {e.key for e in entries} <= bench.finished(bench.read_rows(out / bench.RESULTS))
    assert {MODELS.get(e.model).family for e in entries} >= {
        "knn", "linear", "mlp", "lenet", "alexnet", "vgg", "googlenet", "resnet", "densenet"}
    for name in (bench.RESULTS, bench.CURVES, bench.REFERENCES):
        if (out / name).is_file():
            shutil.copy(out / name, tmp_path / name)
    bench.render(tmp_path)
    committed = (out / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.md").read_text() == committed  # rendering is reproducible
    table = [line for line in committed.splitlines() if line.startswith("| ") or line.startswith("10 models")]
    assert len(table) == 12 and all(line in (ROOT / "docs" / page).read_text() for line in table)
    assert table[0].startswith("10 models, 3 seeds each;")


def test_the_converged_board_holds_the_suites_entries_as_they_stand_and_the_page_shows_it(tmp_path):
    """benchmarks/results/fashion_mnist fills a family at a time (3 runs of up to 30 minutes each): every row is an
    entry of the suite as it stands (none of a recipe since changed), each family's seeds are run in order (the
    table's seeds column says how many), and docs/fashion_mnist.md shows the rendered table."""
    out = ROOT / "benchmarks" / "results" / "fashion_mnist"
    rows = bench.read_rows(out / bench.RESULTS)
    assert {tuple(row[k] for k in bench.KEY) for row in rows} <= {e.key for e in bench.load_suite("fashion_mnist")}
    models = {row["model"] for row in rows}
    seeds = {model: sorted(row["seed"] for row in rows if row["model"] == model) for model in models}
    assert all(found == ["0", "1", "2"][:len(found)] for found in seeds.values()), seeds
    for name in (bench.RESULTS, bench.CURVES, bench.REFERENCES):
        shutil.copy(out / name, tmp_path / name)
    bench.render(tmp_path)
    committed = (out / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.md").read_text() == committed  # rendering is reproducible
    table = [line for line in committed.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(seeds)  # the header and a row a family
    page = (ROOT / "docs" / "fashion_mnist.md").read_text()
    assert all(line in page for line in table)


# headless Chromium offline: no sandbox (CI runs as root), no GPU, nothing fetched from the network
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("ZOO_REQUIRE_BROWSER"):
        pytest.fail("ZOO_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
    return found


def test_page_sorts_in_headless_chromium(tmp_path):
    """The rendered page in a real browser: every row is there, clicking a heading sorts by it, a screenshot."""
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no chromium here (.ci/run installs Debian's chromium and sets ZOO_REQUIRE_BROWSER)")
    playwright = pytest.importorskip("playwright.sync_api")
    table = [_row("lenet5", 0, 98.9, infer_samples_per_sec="5000", wall_s="20"),
             _row("mlp", 0, 97.2, infer_samples_per_sec="9000", wall_s="8"),
             _row("resnet20", 0, 99.2, infer_samples_per_sec="800", wall_s="90"),
             _row("knn", 0, 98.3, infer_samples_per_sec="", wall_s="3")]
    bench.append_rows(tmp_path / bench.RESULTS, bench.COLUMNS, table)
    bench.render(tmp_path)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((tmp_path / "index.html").as_uri())
        scroll, client = page.eval_on_selector("div.scroll", "e => [e.scrollWidth, e.clientWidth]")
        assert scroll <= client  # every column visible at 1,280 px, no sideways scrolling
        assert "1 seed each" in page.inner_text("body") and "1 seeds" not in page.inner_text("body")

        def column(name: str) -> list[str]:
            index = page.locator("table.leaderboard th").all_inner_texts().index(name)
            return page.locator(f"table.leaderboard tbody td:nth-child({index + 1})").all_inner_texts()

        assert column("model") == ["resnet20", "lenet5", "knn", "mlp"]  # ranked by top-1
        page.click("th:text-is('infer img/s')")
        assert column("model") == ["resnet20", "lenet5", "mlp", "knn"]  # ascending, the empty cell last
        page.click("th:text-is('infer img/s')")
        assert column("model") == ["mlp", "lenet5", "resnet20", "knn"]  # reversed; empty still last
        assert page.get_attribute("th:text-is('infer img/s')", "aria-sort") == "descending"
        page.click("th:text-is('model')")
        assert column("model") == ["knn", "lenet5", "mlp", "resnet20"]
        page.click("th:text-is('wall s')")
        assert column("wall s") == ["3", "8", "20", "90"]  # numbers sort as numbers, not as text
        assert all(img > 0 for img in page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)"))
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
        browser.close()
    assert (tmp_path / "leaderboard.png").stat().st_size > 20000


def test_speed_rows_and_ratio_against_torchvision(tmp_path):
    """timm-style rows; resnet18 against torchvision's resnet18, the same layers, so the ratio is near 1."""
    seen = []
    found = list(bench.measure_speed(["resnet18", "lenet5"], [2], ["fp32", "bf16"], image_size=32, device="cpu",
                                     rounds=5, warmup=1, bench="infer", progress=lambda *a: seen.append(a)))
    # progress after every step: warm-up and timed steps of both nets, then lenet5's own (it has no reference)
    assert seen[:12] == [("resnet18 fp32 batch 2 infer", n, 12) for n in range(1, 13)]
    assert seen[-1] == ("lenet5 bf16 batch 2 infer", 6, 6) and len(seen) == 12 + 12 + 6 + 6
    assert [(r["model"], r["precision"]) for r in found] == [("resnet18", "fp32"), ("resnet18", "bf16"),
                                                             ("lenet5", "fp32"), ("lenet5", "bf16")]
    first = found[0]
    assert first["reference"] == "torchvision:resnet18" and first["infer_batch_size"] == 2
    assert first["param_count"] == 11.689512  # torchvision's resnet18
    assert 0.5 < first["infer_ratio_vs_reference"] < 2.0
    assert first["infer_samples_per_sec"] == pytest.approx(2000 / first["infer_step_time"], rel=1e-3)
    assert "train_samples_per_sec" not in first and found[2]["reference"] == ""
    with pytest.raises(InputError, match="fp32, bf16, fp16"):
        next(bench.measure_speed(["lenet5"], [1], ["fp8"]))
    with pytest.raises(InputError, match="resnet18: a train step at batch 1, 32x32, fp32 failed: Expected more"):
        next(bench.measure_speed(["resnet18"], [1], ["fp32"], image_size=32, device="cpu", rounds=1, warmup=0))
    out = tmp_path / "speed.csv"
    proc = run_zoo("bench", "speed", "--models", "resnet20", "--batch_size", "1,4", "--image_size", "32",
                   "--rounds", "2", "--warmup", "1", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = rows(out)
    assert [r["train_batch_size"] for r in written] == ["1", "4"] and float(written[1]["train_samples_per_sec"]) > 0
    assert list(written[0]) == bench.SPEED_COLUMNS
    from zoo.bench.speed import implausible

    assert implausible(found[0] | {"train_samples_per_sec": 1.0}) is None
    assert "training (9.91 img/s) timed faster than inference (2.6 img/s), which cannot be" in implausible(
        found[0] | {"infer_samples_per_sec": 2.6, "train_samples_per_sec": 9.91})


def test_published_references_stand_beside_the_measured_accuracy(tmp_path):
    references = bench.suite_references("fashion_mnist_5min")
    assert references["resnet18"] == {"top1": 94.9, "what": "ResNet18, flips, translation, rotation"}
    for name in (bench.RESULTS, bench.CURVES):
        shutil.copy(ROOT / "benchmarks" / "results" / "digits" / name, tmp_path / name)
    bench.write_references(tmp_path, {"lenet5": references["lenet5"]})
    bench.render(tmp_path)
    page = (tmp_path / "leaderboard.md").read_text()
    header = next(line for line in page.splitlines() if line.startswith("| # |"))
    assert header.startswith("| # | model | top-1 % | published % | top-5 %")
    lenet = next(line for line in page.splitlines() if "| lenet5 |" in line).split(" | ")
    assert lenet[3] == "91.6" and "Published: lenet5: 2 Conv+pooling (TensorFlow's tutorial)." in page
    assert 'title="2 Conv+pooling (TensorFlow&#x27;s tutorial)">91.6</td>' in (tmp_path / "index.html").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [lenet5]\ndatasets: [digits]\npublished: {lenet5: 91.6}\n")
    with pytest.raises(InputError, match=r"published must map model names to \{top1: accuracy in %, what: text\}"):
        bench.suite_references(bad)


def test_a_killed_bench_takes_its_fit_along_and_a_rerun_starts_clean(tmp_path):
    """Killing zoo bench (SIGKILL) left its child fit running; the rerun trained into the same folder."""
    import signal
    import subprocess
    import sys
    import time

    slow = write_suite(tmp_path / "slow.yaml", """
name: slow
recipe: {trainer.max_epochs: 50, data.image_size: 8, data.batch_size: 1}
datasets: [digits]
models: [linear]
""")
    runs = tmp_path / "runs"
    parent = subprocess.Popen([sys.executable, "-m", "zoo", "bench", "--suite", str(slow), "--out", str(tmp_path / "b"),
                               "--runs", str(runs), "--no_progress"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(240):  # until the child fit is training: its first epoch wrote last.ckpt (about 12 s)
        if any((runs / "slow").glob("linear-digits/seed0-*/checkpoints/last.ckpt")):
            break
        time.sleep(0.25)
    else:
        pytest.fail("the child fit never finished an epoch")

    def children() -> list[str]:
        found = subprocess.run(["pgrep", "-f", f"zoo.bench .*{runs}"], capture_output=True, text=True)
        return found.stdout.split()

    assert children()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(40):
        if not children():
            break
        time.sleep(0.25)
    assert not children(), "the fit outlived zoo bench"

    entry = bench.load_suite(slow)[0]
    folder = runs / "slow" / "linear-digits" / f"seed0-{entry.config}"
    assert folder.is_dir()  # the killed try's folder
    quick = bench.Entry(entry.suite, entry.model, entry.dataset, entry.seed,
                        ("--trainer.max_epochs", "1", "--data.image_size", "8"), None)
    quick_folder = runs / "slow" / "linear-digits" / f"seed0-{quick.config}"
    folder.rename(quick_folder)  # as if the quick entry's own earlier try had been killed
    from tests.test_faults import _hold
    from zoo.runfolder import FolderInUseError

    holder = _hold(tmp_path / "b", "zoo bench")  # another bench writing into the same --out
    try:
        with pytest.raises(FolderInUseError, match=rf"b is in use by another zoo bench \(pid {holder.pid}\)"):
            bench.run_suite([quick], tmp_path / "b", runs, progress=False)
        assert not (tmp_path / "b" / "results.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    holder = _hold(quick_folder, "zoo fit")  # its fit still running, started by a bench with another --out
    try:
        with pytest.raises(FolderInUseError, match=r"is in use by another zoo fit"):
            bench.run_suite([quick], tmp_path / "b", runs, progress=False)
        assert quick_folder.is_dir()  # not moved aside under the running fit
    finally:
        holder.kill()
        holder.wait()
    row = bench.run_suite([quick], tmp_path / "b", runs, progress=False)[0]
    assert row["status"] == "done"
    aside = [p for p in quick_folder.parent.iterdir() if p.name.startswith(quick_folder.name + ".unfinished-")]
    assert len(aside) == 1 and (quick_folder / "metrics.csv").is_file()
    validations = [r for r in rows(quick_folder / "metrics.csv") if r.get("val_acc")]
    assert len(validations) == 1  # one fit of one epoch, not two fits' rows in one file


@pytest.mark.parametrize("args, message", [
    (["--models", ""], "--models, --batch_size and --precision each take one value or more, separated by commas"),
    (["--models", "lenet5", "--batch_size", ""], "each take one value or more"),
    (["--models", "lenet5", "--batch_size", "1,x"], "--batch_size takes integers separated by commas, got '1,x'"),
    (["--models", "lenet5", "--rounds", "0"], "--batch_size and --rounds must be 1 or more, --warmup 0 or more"),
])
def test_speed_options_without_a_usable_value_are_one_line(args, message, tmp_path):
    """An empty or malformed list (--models "") was a TypeError traceback from inside zoo.bench.speed."""
    from tests.conftest import zoo_here

    proc = zoo_here("bench", "speed", *args, "--out", str(tmp_path / "s.csv"), cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "s.csv").exists()


def test_ctrl_c_keeps_the_finished_entries_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_suite", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["bench", "--suite", "digits", "--data", "fake", "--seeds", "0", "--out", str(tmp_path / "board")])
    assert stopped.value.code == 130  # 128 + SIGINT
    message = capsys.readouterr().err
    assert f"the finished entries are in {tmp_path / 'board' / 'results.csv'}" in message
    assert "Run the same command again to resume" in message and "Traceback" not in message
