"""persistkit-core against the hand-written protocol, python-atomicwrites and safer."""

from __future__ import annotations

from pathlib import Path

import atomicwrites
import safer
from harness import Workload, os_only_replace

from persistkit.core import Batch, atomic_write, write_bytes

SMALL = b"x" * 100
LARGE = b"y" * (1 << 20)


def _replace_workload(title: str, data: bytes, ops: int, *, durable: bool) -> Workload:
    baseline = "os-only (temp, fsync, rename, fsync dir)" if durable else "os-only, no fsync"
    workload = Workload(title, ops, baseline)
    level = "durable" if durable else "atomic"

    def os_only(directory: Path, n: int) -> None:
        target = directory / "target"
        for _ in range(n):
            os_only_replace(target, data, sync=durable)

    def persistkit_write_bytes(directory: Path, n: int) -> None:
        target = directory / "target"
        for _ in range(n):
            write_bytes(target, data, durability=level)

    def persistkit_atomic_write(directory: Path, n: int) -> None:
        target = directory / "target"
        for _ in range(n):
            with atomic_write(target, "wb", durability=level) as f:
                f.write(data)

    workload.add(baseline, os_only)
    workload.add(f"persistkit write_bytes ({level})", persistkit_write_bytes)
    workload.add(f"persistkit atomic_write ({level})", persistkit_atomic_write)
    if durable:

        def atomicwrites_case(directory: Path, n: int) -> None:
            target = str(directory / "target")
            for _ in range(n):
                with atomicwrites.atomic_write(target, mode="wb", overwrite=True) as f:
                    f.write(data)

        workload.add("atomicwrites 1.4.1", atomicwrites_case, note="fsyncs file and directory")
    else:

        def safer_case(directory: Path, n: int) -> None:
            target = directory / "target"
            for _ in range(n):
                with safer.open(target, "wb") as f:
                    f.write(data)

        workload.add("safer 6.1.0", safer_case, note="never fsyncs")
    return workload


def _batch_workload(ops: int) -> Workload:
    separate = "100 separate durable write_bytes"
    workload = Workload("100 durable files into one directory (per file)", ops, separate)

    def separate_writes(directory: Path, n: int) -> None:
        for i in range(n):
            write_bytes(directory / f"f{i}", SMALL)

    def batched(directory: Path, n: int) -> None:
        for start in range(0, n, 100):
            with Batch() as batch:
                for i in range(start, min(start + 100, n)):
                    batch.write_bytes(directory / f"f{i}", SMALL)

    def os_only_separate(directory: Path, n: int) -> None:
        for i in range(n):
            os_only_replace(directory / f"f{i}", SMALL, sync=True)

    def batched_files(directory: Path, n: int) -> None:
        for start in range(0, n, 100):
            with Batch(flush="files") as batch:
                for i in range(start, min(start + 100, n)):
                    batch.write_bytes(directory / f"f{i}", SMALL)

    workload.add(separate, separate_writes)
    workload.add("persistkit Batch of 100", batched, note="one syncfs + one dir fsync per 100")
    workload.add(
        "persistkit Batch of 100, flush='files'",
        batched_files,
        note="an fsync per file + one dir fsync per 100",
    )
    workload.add("os-only, 100 separate", os_only_separate)
    return workload


def workloads(quick: bool) -> list[Workload]:
    scale = 10 if quick else 1
    return [
        _replace_workload("atomic replace, 100 B, durable", SMALL, 1000 // scale, durable=True),
        _replace_workload("atomic replace, 100 B, no fsync", SMALL, 3000 // scale, durable=False),
        _replace_workload("atomic replace, 1 MiB, durable", LARGE, 100 // scale, durable=True),
        _replace_workload("atomic replace, 1 MiB, no fsync", LARGE, 200 // scale, durable=False),
        _batch_workload(1000 // scale),
    ]
