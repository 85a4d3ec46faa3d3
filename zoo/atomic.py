"""Files written whole or not at all: write to a temporary file beside the target, then rename it.

Every result zoo writes (checkpoints, CSVs, pictures, exports, caches) goes through
:func:`atomic_path`, so a crash or a kill never leaves half a file under the real name.
"""

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
    finally:
        temporary.unlink(missing_ok=True)
