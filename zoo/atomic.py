"""Files written whole or not at all: write to a temporary file beside the target, then rename it.

Every result zoo writes (checkpoints, CSVs, pictures, exports, caches) goes through
:func:`atomic_path`, so a crash or a kill never leaves half a file under the real name.
"""

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str], sync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it becomes `path` when the block ends without an error.

    The temporary file (``.NAME.PID.tmp``, hidden, one per process) is in the same folder, so the
    final ``os.replace`` is an atomic rename. An error in the block removes it and leaves `path` as
    it was. With `sync`, the data reach the disk before the rename (checkpoints: after a power cut
    the file is the old one or the new one, never a torn mix).
    """
    from zoo.errors import disk_full

    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        if sync:
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        os.replace(temporary, path)
    except Exception as exc:
        full = disk_full(exc, path)
        if full is None and temporary.exists() and _nearly_full(path.parent):
            # torch.save's zip writer reports a full disk as "unexpected pos 261824 vs 261716", no errno
            full = disk_full(OSError(errno.ENOSPC, "No space left on device"), path)
        if full is None:
            raise
        raise full from None
    finally:
        temporary.unlink(missing_ok=True)


def _nearly_full(folder: Path) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def output_file(path: str | os.PathLike[str], overwrite: bool = False, suffixes: tuple[str, ...] = (),
                what: str = "--out") -> Path:
    """`path` checked as a file to write: its folder exists, it is not a folder, and it is new unless `overwrite`.

    `suffixes`, when given, are the ones the file's format has (``.pt`` for TorchScript, ...). Every
    mistake is an :class:`~zoo.errors.InputError` that says what to do, before any work starts.
    """
    from zoo.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; give a file name in it, e.g. "
                         f"{str(path / ('out' + (suffixes[0] if suffixes else '')))!r}")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a folder; choose another {what}")
    if not parent.exists():
        raise InputError(f"{what} {str(path)!r}: the folder {str(parent)!r} does not exist; create it or choose "
                         f"another {what}")
    if suffixes and path.suffix not in suffixes:
        raise InputError(f"{what} {str(path)!r} does not end in {' or '.join(suffixes)}, as this format's files do; "
                         f"name it e.g. {str(path.with_suffix(suffixes[0]))!r}")
    if path.exists() and not overwrite:
        raise InputError(f"{what} {str(path)!r} exists; give --overwrite to replace it, or another {what}")
    return path


def output_folder(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """`path` as a folder to write into (made if missing); a file of that name is an InputError."""
    from zoo.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a file; give a folder (it is made if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{what} {str(path)!r}: a part of it is a file, not a folder; choose another {what}") from None
    return path


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that :func:`atomic_path` left in `folder` when its process was killed.

    Only zoo's own pattern (``.NAME.PID.tmp``) and only when process PID is gone: a live writer's file,
    and anything else, stay. Returns what was removed.
    """
    removed = []
    for path in Path(folder).glob(".*.*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
