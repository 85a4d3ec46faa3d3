"""The exceptions zoo raises: one base class, a subclass per kind a caller may want to catch."""


class ZooError(Exception):
    """Base of every error zoo raises on purpose.

    The message names what was wrong, the value given, and what to do about it.
    """


class UnknownNameError(ZooError, KeyError):
    """A model, dataset or other registry name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputError(ZooError, ValueError):
    """An input (tensor shape, argument value, data) that does not fit what it is given to."""


class CheckpointError(ZooError):
    """A checkpoint path that does not exist, cannot be read, or was not written by zoo."""


class DiskFullError(ZooError, OSError):
    """No space left on the disk a file was being written to (nothing half-written is left under its name)."""

    def __str__(self) -> str:  # OSError would print "[Errno 28] ..."
        return str(self.strerror)


def disk_full(exc: BaseException | None, path: object = None) -> DiskFullError | None:
    """A :class:`DiskFullError` saying where, if `exc` (or an error behind it) is "No space left on device"."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DiskFullError):
            return exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = path if path is not None else exc.filename
            return DiskFullError(errno.ENOSPC, f"no space left on the disk to write {where or 'a file'}; free "
                                 "some space there, or write somewhere else (--out, --trainer.default_root_dir, "
                                 "TORCH_HOME for weights)")
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def enough_space(path: object, needed: int) -> None:
    """A :class:`DiskFullError` now if the disk holding `path` has less than `needed` bytes free.

    For writers that cannot fail cleanly: TorchScript's and torch.export's savers abort the process (SIGABRT)
    on a full disk instead of raising.
    """
    import errno
    import shutil
    from pathlib import Path

    folder = Path(str(path)).parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFullError(errno.ENOSPC, f"no space left on the disk to write {path}: about {needed / 2**20:.1f} "
                            f"MB are needed, {free / 2**20:.1f} MB are free in {folder}; free some space there, "
                            "or write somewhere else")


class TrainingError(ZooError):
    """Training cannot go on: the loss became NaN or infinite."""


class StoppedError(ZooError):
    """A fit, validation or test stopped by a signal before its end (SIGTERM from a scheduler or ``kill``).

    ``exit_code`` is what the ``zoo`` command exits with: 143 (128 + SIGTERM), as a shell reports a process
    that SIGTERM ended, so ``zoo fit && zoo export`` does not go on with a run that did not finish.
    """

    exit_code = 143


def one_line(text: str) -> str:
    """`text` as one line that is safe to print on a terminal: line breaks, terminal escape sequences and other
    control or invisible characters (from a class folder named ``a\\nb`` or ``\\x1b[2J``, a file name, a
    checkpoint) written as Python escapes (``\\n``, ``\\x1b``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def zoo_error_behind(exc: BaseException | None) -> ZooError | None:
    """The ZooError behind `exc`: jsonargparse and Lightning re-raise errors wrapped in their own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ZooError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def check_count(name: str, value: int, minimum: int = 1) -> int:
    """`value` if it is an integer of at least `minimum`; otherwise an :class:`InputError` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer of {minimum} or more, got {value!r}")
    return value
