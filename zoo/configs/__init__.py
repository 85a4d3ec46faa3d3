"""zoo's shipped configs (``zoo fit --config digits``) and the rule that finds a shipped file by its name.

The YAML files beside this module install with zoo, so ``--config NAME`` works wherever zoo is installed;
a path still works as one.
"""

from pathlib import Path

from zoo.errors import InputError

FOLDER = Path(__file__).resolve().parent


def shipped_names(folder: Path = FOLDER) -> list[str]:
    """The names of the YAML files in `folder` (zoo's configs by default), without ``.yaml``."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find(value: str, folder: Path = FOLDER, what: str = "config") -> Path:
    """The file `value` names: an existing path as it is, else a shipped file of `folder` by its name.

    Raises:
        InputError: neither exists; the message says which was looked for and lists the shipped names.
    """
    path = Path(value)
    if path.is_file():
        return check_expansion(path, what)
    if path.exists():
        raise InputError(f"{what} {value!r} is a folder, not a file; give a YAML file's path or a shipped {what}'s "
                         f"name ({', '.join(shipped_names(folder))})")
    shipped = folder / f"{value}.yaml"
    if path.name == value and shipped.is_file():
        return check_expansion(shipped, what)
    raise InputError(f"{what} file {value!r} does not exist; give the path of a YAML file, or the name of a shipped "
                     f"{what}: {', '.join(shipped_names(folder))}")


MAX_VALUES = 100_000  # a config or suite is a few hundred values; "billion laughs" aliases expand to 10**9


def check_expansion(path: Path, what: str = "config") -> Path:
    """`path` unless its YAML aliases expand to more than MAX_VALUES values, which would exhaust the parser.

    YAML's ``&anchor``/``*alias`` let a file of a few lines stand for a billion values; the parser that reads
    a config copies them out and ended in an IndexError deep inside it. Text that is not YAML passes here: the
    reader of the file says what is wrong with it.
    """
    import yaml

    try:
        root = yaml.compose(path.read_text(errors="replace"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError, UnicodeError):
        return path
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
    return path
