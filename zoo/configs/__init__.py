"""zoo's shipped configs (``zoo fit --config digits``) and the rule that finds a shipped file by its name.

The YAML files beside this module install with zoo, so ``--config NAME`` works wherever zoo is installed;
a path still works as one.
"""

import stat
import warnings
from pathlib import Path

from zoo.errors import InputError

FOLDER = Path(__file__).resolve().parent


def shipped_names(folder: Path = FOLDER) -> list[str]:
    """The names of the YAML files in `folder` (zoo's configs by default), without ``.yaml``."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find(value: str, folder: Path = FOLDER, what: str = "config") -> Path:
    """The file `value` names: a shipped file of `folder` by its bare name (``digits``), else a path.

    A bare name (no folder part) of a shipped file is always the shipped file: a file or folder of that name in the
    working folder is not read instead (a warning names it; ``./digits`` reads it). A path is checked by
    :func:`read_config` (a regular file of UTF-8 YAML, at most :data:`MAX_BYTES`, aliases within
    :data:`MAX_VALUES`).

    Raises:
        InputError: neither exists, or the file is not one to read; the message says which and lists the shipped
        names.
    """
    path = Path(value)
    shipped = folder / f"{value}.yaml"
    if path.name == value and shipped.is_file():
        if path.exists() or path.is_symlink():
            kind = "folder" if path.is_dir() else "file"
            warnings.warn(f"{what} {value!r} is zoo's shipped {what} ({shipped}); the {kind} {value!r} in this folder "
                          f"is not read (give ./{value} for it)", stacklevel=2)
        read_config(shipped, what)
        return shipped
    if path.is_dir():
        raise InputError(f"{what} {value!r} is a folder, not a file; give a YAML file's path or a shipped {what}'s "
                         f"name ({', '.join(shipped_names(folder))})")
    if path.exists():
        if stat.S_ISFIFO(path.stat().st_mode):  # read_config would take its text, and the caller would find none
            raise InputError(f"{what} {value!r} is a pipe; give a YAML file's path")
        read_config(path, what)
        return path
    raise InputError(f"{what} file {value!r} does not exist; give the path of a YAML file, or the name of a shipped "
                     f"{what}: {', '.join(shipped_names(folder))}")


def config_argument(value: str) -> str:
    """What ``--config VALUE`` passes to the parser: YAML text as it is, a pipe's text (``--config <(...)``, which
    can be read only once), else the checked path of :func:`find`."""
    if "\n" in value or value.lstrip().startswith("{"):
        return value
    try:
        pipe = stat.S_ISFIFO(Path(value).stat().st_mode)
    except (OSError, ValueError):
        pipe = False
    return read_config(Path(value)) if pipe else str(find(value))


MAX_BYTES = 1_000_000
"""The largest config or suite file read: they are a few KB of YAML (a 50 MB one took 3 minutes and 5.6 GB)."""


def read_config(path: Path, what: str = "config") -> str:
    """The text of a config or suite file, or one :class:`InputError` saying why it is not one to read.

    Refused: what is not a regular file or a pipe (``/dev/zero``, a socket), more than :data:`MAX_BYTES`, text that
    is not UTF-8, YAML whose aliases expand past :data:`MAX_VALUES` values (:func:`check_expansion`). A pipe
    (``--config <(...)``) is read once here: pass its text on, not its path.
    """
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise InputError(f"{what} {str(path)!r} is not a file (a device or a socket); give a YAML file's path")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{what} file {str(path)!r} cannot be read ({exc.strerror}); give a YAML file's "
                         "path") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"{what} file {str(path)!r} is larger than {MAX_BYTES:,} bytes; a {what} is a few KB of "
                         "YAML: give the right file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} file {str(path)!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8 YAML") from None
    check_expansion(text, path, what)
    return text


MAX_VALUES = 100_000  # a config or suite is a few hundred values; "billion laughs" aliases expand to 10**9


def check_expansion(text: str, path: Path, what: str = "config") -> None:
    """An InputError if the YAML `text` of `path` has aliases that expand to more than MAX_VALUES values, which
    would exhaust the parser.

    YAML's ``&anchor``/``*alias`` let a file of a few lines stand for a billion values; the parser that reads
    a config copies them out and ended in an IndexError deep inside it. Text that is not YAML passes here: the
    reader of the file says what is wrong with it.
    """
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return
    sizes: dict[int, int] = {}
    stack = [root] if root is not None else []
    while stack:  # children before parents, each node once: aliases share their node
        node = stack[-1]
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        todo = [c for c in children if id(c) not in sizes and c is not node]
        if todo and id(node) not in sizes:
            sizes[id(node)] = -1  # in progress (a node that contains itself counts once)
            stack.extend(todo)
            continue
        stack.pop()
        if sizes.get(id(node), -1) < 0:
            sizes[id(node)] = min(1 + sum(max(sizes.get(id(c), 1), 1) for c in children), 10 * MAX_VALUES)
    if root is not None and sizes.get(id(root), 1) > MAX_VALUES:
        raise InputError(f"{what} file {str(path)!r} expands to more than {MAX_VALUES:,} values through its YAML "
                         "aliases (&name / *name); write the values out, or use fewer aliases")
