from __future__ import annotations

import errno
import pickle

import pytest

from persistkit.core import errors

ALL_ERRORS = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_is_rooted_in_persistkit_error(cls: type[Exception]) -> None:
    assert issubclass(cls, errors.PersistkitError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.TargetExistsError, FileExistsError),
        (errors.TargetIsDirectoryError, IsADirectoryError),
        (errors.CrossDeviceError, OSError),
        (errors.SyncError, OSError),
        (errors.LockTimeoutError, TimeoutError),
        (errors.FormatError, ValueError),
        (errors.InvalidNameError, ValueError),
        (errors.SerializationError, TypeError),
        (errors.SerializationError, ValueError),
        (errors.CorruptFileError, ValueError),
        (errors.UnsupportedPlatformError, NotImplementedError),
    ],
)
def test_errors_are_also_the_builtin_users_catch(
    cls: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(cls, builtin)


def test_os_errors_keep_errno_and_filename_across_pickling() -> None:
    error = errors.TargetExistsError(errno.EEXIST, "destination exists", "/data/x")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.TargetExistsError
    assert (copy.errno, copy.strerror, copy.filename) == (
        errno.EEXIST,
        "destination exists",
        "/data/x",
    )


def test_corrupt_file_error_names_the_file_and_pickles() -> None:
    error = errors.CorruptFileError("/data/state.json", "Expecting value")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.path == "/data/state.json"
    assert "/data/state.json" in str(copy)
    assert "Expecting value" in str(copy)
