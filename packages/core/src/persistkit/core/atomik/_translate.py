"""Raise atomik's exception classes for the persistkit errors they stand for."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from persistkit.core.atomik.errors import FileAlreadyExistsError, InvalidCrossDeviceError
from persistkit.core.errors import CrossDeviceError, TargetExistsError


@contextlib.contextmanager
def atomik_errors() -> Iterator[None]:
    """Re-raise `TargetExistsError` and `CrossDeviceError` as atomik's subclasses of them."""
    try:
        yield
    except TargetExistsError as error:
        if isinstance(error, FileAlreadyExistsError):
            raise
        raise FileAlreadyExistsError(*_os_args(error)) from error
    except CrossDeviceError as error:
        if isinstance(error, InvalidCrossDeviceError):
            raise
        raise InvalidCrossDeviceError(*_os_args(error)) from error


def _os_args(error: OSError) -> tuple[object, ...]:
    args: tuple[object, ...] = (error.errno, error.strerror, error.filename)
    if error.filename2 is not None:
        args = (*args, None, error.filename2)
    return args
