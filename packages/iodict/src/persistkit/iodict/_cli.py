"""``persistkit iodict DIR``: what an IODict holds, read through its order index.

Opens the store with ``read_only=True``: nothing is created, locked for writing, rebuilt on
disk or swept. Counts and the first and last keys come from the order index (constant time
at any size); ``--keys`` lists the keys in order; ``--check`` lists the folder to name the
item files whose key cannot be recovered. Item files whose key is lost are a problem (exit
status 1), as is a folder that holds no store.

A folder that holds a `DurableQueue` shows the queue instead: items waiting, unfinished
tasks, head and tail numbers, leases held and returned, dead letters.

``DIR`` may also be ``s3://bucket/prefix``: the dict is read with GETs and LISTs only (its
keys are counted by listing them).
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

from persistkit.core import Codec, cli
from persistkit.core.errors import SerializationError, UnsupportedOperationError
from persistkit.iodict._iodict import IODict, Summary
from persistkit.iodict._keys import Key
from persistkit.iodict._meta import META_NAME as IODICT_META_NAME
from persistkit.iodict._meta import read_meta
from persistkit.iodict._object_iodict import ObjectIODict
from persistkit.iodict._object_layout import META
from persistkit.iodict._queue import DurableQueue
from persistkit.iodict._queue_meta import read_queue_format
from persistkit.iodict._queue_names import PREFIX as QUEUE_PREFIX
from persistkit.iodict.errors import KeylessItemsWarning

_SHOWN = 60


def register(commands: cli.Commands) -> None:
    """Add the ``iodict`` subcommand to the ``persistkit`` command."""
    parser = commands.add(
        "iodict",
        help="show an IODict's size, layout and order, without changing anything",
        handler=_show,
    )
    parser.add_argument("path", help="the store's folder, or s3://bucket/prefix")
    parser.add_argument("--keys", action="store_true", help="list every key, in order")
    parser.add_argument(
        "--check",
        action="store_true",
        help="list the folder to name item files whose key is lost (reads every name)",
    )


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


def _open(path: str) -> tuple[IODict[Any, Any], Summary]:
    """Open the IODict at ``path`` (a folder or ``s3://``) for reading, with its summary."""
    if path.startswith("s3://"):
        objects: ObjectIODict[Any, Any] = ObjectIODict(path, read_only=True)
        summary = objects._summary()
        if not summary.items and not any(name == META for name in objects.objects.list(META)):
            objects.close()
            raise cli.CommandError("no IODict here (no meta object)", path=path, kind="missing")
        return objects, summary
    folder = cli.existing_folder(path, what="an IODict")
    meta = read_meta(folder)
    store: IODict[Any, Any] = IODict(folder, read_only=True)
    summary = store._summary()
    if meta is None and not summary.items and not summary.keyless:
        raise cli.CommandError(
            "no IODict here (no .persistkit-iodict.json, no item files)",
            path=folder,
            kind="wrong_kind",
        )
    return store, summary


def _is_queue(path: str) -> bool:
    """True for a folder a DurableQueue wrote (its names start with the queue's prefix)."""
    if path.startswith("s3://") or not os.path.isdir(path):
        return False
    if os.path.lexists(os.path.join(path, IODICT_META_NAME)):
        return False  # an IODict: its folder may hold millions of names, so list none
    return any(name.startswith(QUEUE_PREFIX) for name in os.listdir(path))


class _Undecoded:
    """Stands in for a queue's format: inspecting a queue reads no value."""

    @staticmethod
    def dumps(value: object) -> bytes:
        raise SerializationError("persistkit iodict writes no values")

    @staticmethod
    def loads(data: bytes) -> object:
        raise UnsupportedOperationError("persistkit iodict reads no values")


def _show_queue(args: argparse.Namespace, out: cli.Output) -> None:
    if args.keys or args.check:
        raise cli.CommandError(
            "a DurableQueue has no keys: --keys and --check are for an IODict",
            path=args.path,
            kind="wrong_kind",
        )
    stored = read_queue_format(args.path)
    # The summary counts items and never decodes one, so a format of the user's own (which
    # this command cannot import) or bson without its extra is no obstacle.
    format = None if stored is None else Codec(_Undecoded, name=stored, is_binary=True)
    queue: DurableQueue[Any] = DurableQueue(args.path, format=format)
    try:
        summary = queue._summary()
    finally:
        queue.close()
    out.data(
        path=queue.path,
        kind="queue",
        waiting=summary.waiting,
        unfinished=summary.unfinished,
        head=summary.head,
        tail=summary.tail,
        leases_held=summary.leases_held,
        leases_returned=summary.leases_returned,
        dead=summary.dead,
        format=summary.format,
    )
    out.fields(
        [
            ("queue", queue.path),
            ("waiting", summary.waiting),
            ("unfinished", summary.unfinished),
            ("head", summary.head),
            ("tail", summary.tail),
            ("leases", f"{summary.leases_held} held, {summary.leases_returned} returned"),
            ("dead letters", summary.dead),
            ("format", summary.format),
        ]
    )
    if summary.dead:
        out.problem(f"{summary.dead} dead letter(s): items that could not be delivered")


def _show(args: argparse.Namespace, out: cli.Output) -> None:
    if _is_queue(args.path):
        _show_queue(args, out)
        return
    with warnings.catch_warnings():
        # Lost keys are reported below, in this command's own words.
        warnings.simplefilter("ignore", KeylessItemsWarning)
        store, summary = _open(args.path)
        keyless = store.keyless_files() if args.check else None
        lost = summary.keyless if keyless is None else len(keyless)
        out.data(
            path=store.path,
            kind="iodict",
            items=summary.items,
            layout=summary.layout,
            format=summary.format,
            first=_json_key(summary.first),
            last=_json_key(summary.last),
            index=summary.index,
            keyless=lost,
        )
        rows: list[tuple[str, cli.Cell]] = [
            ("store", store.path),
            ("items", summary.items),
            ("layout", f"{summary.layout}, {summary.format} values"),
        ]
        if summary.items:
            rows.append(("order", f"first {_shown(summary.first)}, last {_shown(summary.last)}"))
        rows.append(("index", summary.index))
        out.fields(rows)
        if keyless is not None:
            out.data(keyless_files=keyless)
            for path in keyless:
                out.line(f"keyless  {path}")
        if lost:
            out.problem(f"{lost} item file(s) whose key is lost (kept on disk; --check names them)")
        if args.keys:
            keys = list(store)
            out.data(keys=[_json_key(key) for key in keys])
            for key in keys:
                out.line(repr(key))
