"""How long the ``zoo`` command takes to answer: each command the median of 5 fresh processes, in one run.

Goals: ``zoo --help`` and the help of zoo's own subcommands <= 0.5 s; ``zoo models``, ``zoo info NAME``,
``zoo data list`` <= 2 s; ``import zoo; zoo.create_model("resnet20")`` loads no Lightning (a test in
tests/test_layout.py checks that; here it is timed). ``zoo fit --help`` (LightningCLI builds its parser
from every class) is shown for scale, without a goal.

    python benchmarks/startup.py [--repeat 5]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ZOO = shutil.which("zoo") or str(Path(sys.executable).with_name("zoo"))
COMMANDS = [  # (label, command, goal in seconds or None)
    ("python -c 'import zoo'", [sys.executable, "-c", "import zoo"], None),
    ("zoo --help", [ZOO, "--help"], 0.5),
    ("zoo models --help", [ZOO, "models", "--help"], 0.5),
    ("zoo cam --help", [ZOO, "cam", "--help"], 0.5),
    ("zoo bench --help", [ZOO, "bench", "--help"], 0.5),
    ("zoo predict --help", [ZOO, "predict", "--help"], 0.5),
    ("zoo data list", [ZOO, "data", "list"], 2.0),
    ("zoo info resnet20", [ZOO, "info", "resnet20"], 2.0),
    ("zoo models", [ZOO, "models"], 2.0),
    ("create_model('resnet20')", [sys.executable, "-c", "import zoo; zoo.create_model('resnet20')"], None),
    ("zoo fit --help", [ZOO, "fit", "--help"], None),
]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per command (default: 5)")
    args = parser.parse_args()
    print(f"{'command':<28} {'median s':>9} {'goal s':>7}  met")
    for label, command, goal in COMMANDS:
        seconds(command)  # the first run fills the OS file cache; not counted
        median = statistics.median(seconds(command) for _ in range(args.repeat))
        met = "" if goal is None else ("yes" if median <= goal else "NO")
        print(f"{label:<28} {median:>9.2f} {'' if goal is None else f'{goal:.1f}':>7}  {met}", flush=True)


if __name__ == "__main__":
    main()
