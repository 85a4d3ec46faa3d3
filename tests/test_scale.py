"""Scale on one machine: two nodes through torchrun on loopback, and a SLURM job preempted and requeued.

docs/scale.md's several-machine commands, run as written with the machine's addresses replaced by loopback and
Gloo between the nodes; the nodes share the working folder, as a cluster's nodes share a file system (every process
reads best.ckpt for the test after fit, as Lightning does).
"""

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import zoo
from tests.conftest import run_zoo

DIGITS = ["--model", "lenet5", "--data", "digits", "--data.image_size", "16"]  # off a terminal: a line an epoch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(rank: int, port: int, cwd, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "zoo", "fit", *DIGITS, "--trainer.num_nodes", "2", "--trainer.devices", "1",
               "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.max_epochs", str(epochs)]
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def _evaluate(checkpoint, split: str) -> float:
    """Accuracy (%) of a checkpoint on a digits split, in this one process."""
    model = zoo.ImageClassifier.load_from_checkpoint(checkpoint).eval()
    x, y = zoo.data.create("digits", image_size=16).normalized(split)
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item() * 100


def test_two_nodes_through_torchrun_write_one_run_and_log_what_one_process_measures(tmp_path):
    port = _free_port()
    nodes = [_node(rank, port, tmp_path, epochs=3) for rank in (0, 1)]
    outputs = [node.communicate(timeout=240) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing else in the shared folder
    runs = tmp_path / "runs" / "lenet5-digits"
    assert [p.name for p in runs.iterdir()] == ["version_0"]  # global rank 0's: node 1 claimed no folder of its own
    run = runs / "version_0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert "test accuracy" not in outputs[1][0]  # node 1 prints nothing of its own

    # the validation accuracy logged after the last epoch is over all 180 validation images (synced, not one
    # node's half): what one process measures with the final weights
    with open(run / "metrics.csv") as f:
        logged = [float(row["val_acc"]) * 100 for row in csv.DictReader(f) if row.get("val_acc")]
    assert len(logged) == 3 and logged[-1] == pytest.approx(_evaluate(run / "checkpoints" / "last.ckpt", "val"),
                                                            abs=1e-4)
    # the test after fit counts each of the 360 test images once: what one process measures with best.ckpt
    printed = float(re.search(r"^test accuracy: ([\d.]+)%", outputs[0][0], re.M).group(1))
    assert printed == pytest.approx(_evaluate(run / "checkpoints" / "best.ckpt", "test"), abs=0.01)


def _kill_tree(pid: int) -> None:
    children = [int(child) for task in os.listdir(f"/proc/{pid}/task")
                for child in open(f"/proc/{pid}/task/{task}/children").read().split()]
    for child in children:
        _kill_tree(child)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds torchrun's workers in /proc (Linux)")
def test_when_a_node_dies_the_other_stops_with_one_clear_line(tmp_path):
    port = _free_port()
    nodes = [_node(rank, port, tmp_path, epochs=1000) for rank in (0, 1)]
    first = nodes[0].stdout.readline()  # the first epoch's line: both nodes are training
    deadline = time.monotonic() + 120
    while not first.startswith("epoch ") and time.monotonic() < deadline:
        assert nodes[0].poll() is None, nodes[0].stderr.read()[-3000:]
        first = nodes[0].stdout.readline()
    _kill_tree(nodes[1].pid)  # node 1's torchrun and its worker (in a session of its own), as a machine going down
    nodes[1].wait()
    try:
        out, err = nodes[0].communicate(timeout=90)  # a node that hangs instead of stopping fails here
    finally:
        if nodes[0].poll() is None:
            _kill_tree(nodes[0].pid)
    assert nodes[0].returncode not in (0, None)
    assert re.search(r"^zoo: error: another process of this run stopped", err, re.M), err[-3000:]
    assert "runs/lenet5-digits/version_0" in err and "--ckpt_path last" in err  # where to resume from


SCONTROL = """#!/bin/sh
echo "$@" >> "$SCONTROL_LOG"
"""

SIGNALLER = '''
import os
import signal

from lightning.pytorch.callbacks import Callback


class PreemptAt(Callback):
    """As SLURM does to a job with --signal=SIGUSR1@90 and --requeue: SIGUSR1 in the middle of an epoch, then,
    once the job is requeued, SIGKILL."""

    def __init__(self, epoch: int = 1, batch: int = 5) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            signal.raise_signal(signal.SIGUSR1)  # Lightning's handler: a checkpoint, then scontrol requeue
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_slurm_job_preempted_and_requeued_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """docs/scale.md's sbatch script with one task: srun's environment, a stand-in scontrol that records its
    call, SIGUSR1 in the middle of epoch 2 and SIGKILL after it; then the same command line runs again."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "scontrol").write_text(SCONTROL)
    (tmp_path / "bin" / "scontrol").chmod(0o755)
    (tmp_path / "preempt.py").write_text(SIGNALLER)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "zoo-digits", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
             "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODELIST": "localhost", "SCONTROL_LOG": str(tmp_path / "scontrol.log"),
             "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(tmp_path)}
    job = ["fit", *DIGITS, "--trainer.max_epochs", "3", "--data.mixup", "0.2", "--ckpt_path", "last"]
    whole = run_zoo(*job, "--trainer.logger.init_args.name", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    first = run_zoo(*job, "--trainer.callbacks+=preempt.PreemptAt", "--trainer.callbacks.epoch", "1", cwd=tmp_path,
                    env=slurm)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert "SLURM auto-requeueing enabled" in first.stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"  # the job asked to be requeued
    assert (tmp_path / "hpc_ckpt_1.ckpt").is_file()  # Lightning's, mid-epoch, in the working folder (docs/scale.md)
    requeued = run_zoo(*job, cwd=tmp_path, env=slurm)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "resuming" in requeued.stderr and "in the middle of epoch" not in requeued.stderr  # from epoch 1's end

    def weights(name):
        return torch.load(tmp_path / "runs" / name / "version_0" / "checkpoints" / "last.ckpt",
                          weights_only=True)["state_dict"]

    a, b = weights("whole"), weights("lenet5-digits")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (tmp_path / "runs" / "lenet5-digits").iterdir()] == ["version_0"]  # one run, resumed
    accuracy = [line for line in whole.stdout.splitlines() if line.startswith("test accuracy")]
    assert accuracy and accuracy == [line for line in requeued.stdout.splitlines() if line.startswith("test accuracy")]

