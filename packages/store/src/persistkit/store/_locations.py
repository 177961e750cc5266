"""Where a store lives: a local file, or one object of an object store."""

from __future__ import annotations

import os

from persistkit.core import ObjectStore, open_object_store
from persistkit.core.errors import InvalidArgumentError

S3_SCHEME = "s3://"


def object_location(
    path: str | os.PathLike[str] | ObjectStore, key: str | None
) -> tuple[ObjectStore, str] | None:
    """Return the object store and key that ``path`` (and ``key``) name, or None for a file.

    ``path`` is an `ObjectStore` (then ``key`` names the object), an ``s3://bucket/prefix``
    URL with ``key``, or an ``s3://bucket/prefix/key`` URL whose last segment is the key.
    Anything else is a local file's path, which takes no ``key``.

    Raises:
        InvalidArgumentError: no key for an object store, a key for a local file, or a
            malformed URL.
    """
    if isinstance(path, ObjectStore):
        if key is None:
            raise InvalidArgumentError("a store in an object store needs key= (the object's key)")
        return path, _checked(key)
    if isinstance(path, str) and path.startswith(S3_SCHEME):
        if key is None:
            prefix, _, key = path[len(S3_SCHEME) :].rpartition("/")
            if not prefix or not key:
                raise InvalidArgumentError(
                    f"{path!r} names no object: use s3://bucket/prefix/name, or pass key="
                )
            return open_object_store(S3_SCHEME + prefix), key
        key = _checked(key)
        return open_object_store(path), key
    if key is not None:
        raise InvalidArgumentError(
            f"key= is for object stores; {os.fspath(path)!r} is a local file"
        )
    return None


def _checked(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"an object's key is a non-empty str, not {key!r}")
    return key
