"""``persistkit iodict DIR``: what an IODict holds, read through its order index.

Opens the store with ``read_only=True``: nothing is created, locked for writing, rebuilt on
disk or swept. Counts and the first and last keys come from the order index (constant time
at any size); ``--keys`` streams the keys in order; ``--check`` lists the folder to name the
item files whose key cannot be recovered. Exit status 0 when all is well, 1 for a problem
(no store, an unreadable one, item files whose key is lost), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

from persistkit.iodict._iodict import IODict
from persistkit.iodict._keys import Key
from persistkit.iodict._meta import read_meta
from persistkit.iodict.errors import KeylessItemsWarning

_SHOWN = 60


def register(commands: Any) -> None:
    """Add the ``iodict`` subcommand to the ``persistkit`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "iodict", help="show an IODict's size, layout and order, without changing anything"
    )
    parser.add_argument("path", help="the store's folder")
    parser.add_argument("--keys", action="store_true", help="list every key, in order")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="list the folder and name item files whose key is lost (reads every name)",
    )
    parser.set_defaults(handler=_show)


def _json_key(key: Key | None) -> Any:
    """A key as JSON: str and int as themselves, bytes as hex, tuples as arrays."""
    if key is None:
        return None
    if isinstance(key, bytes):
        return {"bytes": key.hex()}
    if isinstance(key, tuple):
        return [_json_key(item) for item in key]
    return key


def _shown(key: Key | None) -> str:
    text = repr(key)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _show(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.path):
        raise FileNotFoundError(errno.ENOENT, "no IODict here", args.path)
    meta = read_meta(args.path)
    with warnings.catch_warnings():
        # Lost keys are reported below, in this command's own words.
        warnings.simplefilter("ignore", KeylessItemsWarning)
        store: IODict[Any, Any] = IODict(args.path, read_only=True)
        summary = store._summary()
        keyless = store.keyless_files() if args.check else None
        if meta is None and not summary.items and not summary.keyless:
            raise FileNotFoundError(
                errno.ENOENT,
                "no IODict here (no .persistkit-iodict.json, no item files)",
                args.path,
            )
        keys: Iterator[Key] = iter(store) if args.keys else iter(())
        lost = summary.keyless if keyless is None else len(keyless)
        if args.json:
            document: dict[str, Any] = {
                "path": store.path,
                "items": summary.items,
                "layout": summary.layout,
                "format": summary.format,
                "first": _json_key(summary.first),
                "last": _json_key(summary.last),
                "index": summary.index,
                "keyless": lost,
            }
            if keyless is not None:
                document["keyless_files"] = keyless
            if args.keys:
                document["keys"] = [_json_key(key) for key in keys]
            print(json.dumps(document, ensure_ascii=False))
        else:
            print(f"store    {store.path}")
            print(f"items    {summary.items}")
            print(f"layout   {summary.layout}, {summary.format} values")
            if summary.items:
                print(f"order    first {_shown(summary.first)}, last {_shown(summary.last)}")
            print(f"index    {summary.index}")
            if lost:
                print(f"keyless  {lost} item file(s) whose key is lost (kept on disk)")
            for path in keyless or ():
                print(f"  {path}")
            for key in keys:
                print(repr(key))
    return 1 if lost else 0
