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


class TrainingError(ZooError):
    """Training cannot go on: the loss became NaN or infinite."""


def zoo_error_behind(exc: BaseException | None) -> ZooError | None:
    """The ZooError behind `exc`: jsonargparse and Lightning re-raise errors wrapped in their own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ZooError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
