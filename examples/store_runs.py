"""Remember every start of this program in runs.json (atomic_store's first README example).

Run it a few times: each run prints the earlier start times and adds its own (by default in
$TMPDIR/persistkit-examples/runs.json). Interrupt it
or make it fail inside the ``with`` block and runs.json keeps its previous content.

    python examples/store_runs.py [runs.json]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from persistkit import store as atomic_store


def main(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_store.open(path, default=[]) as store:
        print("Previous executions:")
        print(store.value)
        store.value.append(time.strftime("%Y-%m-%d %H:%M:%S%z"))


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.gettempdir(), "persistkit-examples", "runs.json")
    )
