from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import S3Endpoint

sys.path.insert(0, os.path.dirname(__file__))
from store_places import Place, S3Place


@pytest.fixture
def read_json() -> Callable[[Path], Any]:
    """Decode a JSON file the way any other program would, without persistkit."""

    def read(path: Path) -> Any:
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return read


@pytest.fixture
def small_tmpfs(mounted_tmpfs: MountTmpfs) -> Path:
    """A real 64 KiB tmpfs, for a real full disk."""
    return mounted_tmpfs("64k")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    """A local folder, then a prefix in a fresh bucket of the real S3 server."""
    if request.param == "local":
        yield Place(tmp_path)
        return
    server: S3Endpoint = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    with server.store(bucket, "stores") as objects:
        yield S3Place(objects)
