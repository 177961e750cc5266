"""``persistkit store FILE``: print a store's value, without changing anything.

``FILE`` may also be ``s3://bucket/prefix/key``: the object is read with one GET.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from persistkit.core import cli, read_value, resolve_format
from persistkit.store._locations import S3_SCHEME, object_location
from persistkit.store._object_value import ObjectValue


def register(commands: cli.Commands) -> None:
    """Add the ``store`` subcommand to the ``persistkit`` command."""
    parser = commands.add("store", help="print the value held in a store file", handler=_show)
    parser.add_argument("path", help="the store's file, or s3://bucket/prefix/key")
    parser.add_argument(
        "--format",
        default="json",
        choices=["json", "pickle", "bson"],
        help="the store's format; pickle runs code while loading: only for files you trust",
    )


def _show(args: argparse.Namespace, out: cli.Output) -> None:
    if args.path.startswith(S3_SCHEME):
        value, path = _read_object(args.path, args.format)
    else:
        path = os.path.abspath(cli.existing_file(args.path, what="a store file"))
        value = read_value(path, args.format)
    out.data(path=path, format=args.format, value=as_json(value))
    out.line(json.dumps(value, indent=2, ensure_ascii=False, default=repr))


def _read_object(url: str, format: str) -> tuple[Any, str]:
    """Read the store at ``url`` (one GET, nothing written); return its value and location."""
    where = object_location(url, None)
    if where is None:  # pragma: no cover - an s3:// URL always names an object store
        raise cli.CommandError("not an object store's URL", path=url, kind="wrong_kind")
    objects, key = where
    place = ObjectValue(objects, key)
    try:
        found = place.fetch()
    finally:
        objects.close()
    if found.value is None:
        raise cli.CommandError("no store here (no such object)", path=place.where, kind="missing")
    return resolve_format(format).decode(found.value, place.where), place.where


def as_json(value: Any) -> Any:
    """Return ``value`` as strict JSON can hold it (the ``value`` field of the document).

    Tuples and sets become arrays, keys that are not strings become their JSON text (as
    ``json.dumps`` writes them) or their repr, NaN and the infinities the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"``, and anything else its repr.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {_key(key): as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [as_json(item) for item in value]
    return repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return repr(key)
