"""Run folders with one writer each.

A fit claims the next free ``version_N`` by making it (a plain ``mkdir``, never ``exist_ok``): two fits started
together used to pick the same number about 220 ms before either made it, and wrote into one folder. A fit holds
an exclusive lock on its run folder for its life, and ``zoo bench`` on its ``--out``: a second writer (a requeued
job overlapping the old one, a second bench into the same folder) gets one line naming the holder instead of
doubling every metrics row. The lock is ``flock`` on a small file holding the holder's pid; the system drops it
when the holder exits, however it ends, so a killed run never leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from zoo.errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no flock; a second writer is not detected there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".zoo.lock"

_held: dict[Path, int] = {}  # lock file -> open descriptor, for this process
_made: dict[Path, list[Path]] = {}  # claimed folder -> the folders its claim made, deepest first


class FolderInUseError(InputError):
    """Another process is writing into the run folder (or ``zoo bench --out``) asked for."""


def make_folder(folder: Path) -> None:
    """``mkdir -p folder``, or one :class:`InputError` saying which part of the path is in the way and what to do."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        for part in reversed((folder, *folder.parents)):
            if part.is_symlink() and not part.exists():
                why = f"{part} is a link to {os.readlink(part)}, which does not exist"
                break
            if part.exists() and not part.is_dir():
                why = f"{part} is a file, not a folder"
                break
        raise InputError(f"cannot make the folder {folder}: {why}; move that out of the way, or write somewhere "
                         "else (zoo fit: --trainer.logger.init_args.save_dir DIR; zoo bench: --runs DIR, --out "
                         "DIR)") from None


def claim_next_version(root: Path) -> Path:
    """Make and return ``root/version_N`` with the next free N; a number another process takes first is skipped."""
    made = [p for p in (root, *root.parents) if not p.exists()]
    make_folder(root)
    while True:
        taken = [int(p.name.removeprefix("version_")) for p in root.glob("version_*")
                 if p.name.removeprefix("version_").isdigit()]
        folder = root / f"version_{max(taken, default=-1) + 1}"
        try:
            folder.mkdir()
        except FileExistsError:  # made between the listing and the mkdir: the next number
            continue
        _made[folder.resolve()] = [folder.resolve(), *(p.resolve() for p in made)]
        return folder


def lock_folder(folder: Path, what: str) -> None:
    """Hold an exclusive lock on `folder` (made if missing) until :func:`release` or the process ends.

    `what` names the holder's kind in the error a second writer gets (``"zoo fit"``, ``"zoo bench"``).
    Taking a lock this process already holds does nothing.
    """
    make_folder(folder)
    path = (folder / LOCK_FILE).resolve()
    if fcntl is None or path in _held:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the processes a fit execs
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderInUseError(
            f"{folder} is in use by another {what} (pid {holder}); wait for it to end or stop it, "
            f"or write somewhere else") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd


def held() -> list[Path]:
    """The folders this process holds locked (a fit's run folder, ``zoo bench``'s --out)."""
    return [path.parent for path in _held]


def release(folder: Path | None = None) -> None:
    """Drop this process's lock on `folder` (every lock it holds without one).

    A folder left holding nothing but its lock file (a fit that stopped before writing anything, such as an
    option the model refused) is removed, with the empty folders its claim made: no empty ``version_N`` that
    looks like a run.
    """
    paths = list(_held) if folder is None else [(folder / LOCK_FILE).resolve()]
    for path in paths:
        fd = _held.pop(path, None)
        if fd is None:
            continue
        made = _made.pop(path.parent, [])
        if not path.parent.is_dir():  # deleted while held: nothing to tidy
            os.close(fd)
            continue
        if [p.name for p in path.parent.iterdir()] == [LOCK_FILE]:
            path.unlink(missing_ok=True)
            for folder in made or [path.parent]:
                with contextlib.suppress(OSError):  # not empty: kept
                    folder.rmdir()
        os.close(fd)  # closing the descriptor drops the flock
