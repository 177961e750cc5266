"""Naming an object store: a folder, ``file://`` or ``s3://bucket/prefix`` URLs, or a store."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from persistkit.core._durability import Durability
from persistkit.core._local_objects import LocalObjectStore
from persistkit.core._object_store import ObjectStore
from persistkit.core._s3_objects import S3ObjectStore
from persistkit.core.errors import InvalidArgumentError


def open_object_store(
    location: str | os.PathLike[str] | ObjectStore,
    *,
    durability: Durability = "durable",
    **s3_options: Any,
) -> ObjectStore:
    """Return the object store at ``location``.

    Args:
        location: an `ObjectStore` (returned as it is); ``s3://bucket/prefix`` (endpoint,
            region and credentials from the usual AWS environment and config files, or from
            ``s3_options``); ``file:///path`` or a plain path (a local folder).
        durability: for a local folder, ``"durable"`` or ``"atomic"``. An S3 server decides
            its own durability: a write it acknowledged is as safe as the server makes it.
        **s3_options: passed to `S3ObjectStore` (``endpoint_url``, ``region``...).

    Raises:
        InvalidArgumentError: a URL of another scheme, or a malformed one.
        ImportError: an ``s3://`` location without boto3 installed (the ``s3`` extra).

    Example:
        >>> store = open_object_store("s3://my-bucket/jobs/run-7")  # doctest: +SKIP
        >>> local = open_object_store("/var/lib/jobs")  # doctest: +SKIP
    """
    if isinstance(location, ObjectStore):
        return location
    if isinstance(location, str) and "://" in location:
        scheme = urllib.parse.urlsplit(location).scheme
        if scheme == "s3":
            return S3ObjectStore.from_url(location, **s3_options)
        if scheme == "file":
            parsed = urllib.parse.urlsplit(location)
            if parsed.netloc not in ("", "localhost"):
                raise InvalidArgumentError(f"a file:// URL names a local path: {location!r}")
            return LocalObjectStore(urllib.parse.unquote(parsed.path), durability=durability)
        raise InvalidArgumentError(
            f"unknown object-store URL scheme {scheme!r} in {location!r}: use s3:// or file://"
        )
    if s3_options:
        raise InvalidArgumentError(f"S3 options given for a local folder: {sorted(s3_options)}")
    return LocalObjectStore(location, durability=durability)
