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
        return path
    if path.exists():
        raise InputError(f"{what} {value!r} is a folder, not a file; give a YAML file's path or a shipped {what}'s "
                         f"name ({', '.join(shipped_names(folder))})")
    shipped = folder / f"{value}.yaml"
    if path.name == value and shipped.is_file():
        return shipped
    raise InputError(f"{what} file {value!r} does not exist; give the path of a YAML file, or the name of a shipped "
                     f"{what}: {', '.join(shipped_names(folder))}")
