"""``persistkit store PATH``: print a store's value as JSON, without changing anything."""

from __future__ import annotations

import argparse
import json
from typing import Any

from persistkit.core import read_value


def register(commands: Any) -> None:
    """Add the ``store`` subcommand to the ``persistkit`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "store", help="print the value held in a store file"
    )
    parser.add_argument("path", help="the store's file")
    parser.add_argument(
        "--format",
        default="json",
        choices=["json", "pickle", "bson"],
        help="the store's format; pickle runs code while loading: only for files you trust",
    )
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    value = read_value(args.path, args.format)
    print(json.dumps(value, indent=2, ensure_ascii=False, default=repr))
    return 0
