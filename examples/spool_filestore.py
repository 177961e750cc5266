"""gocept.filestore code, unchanged but for the import, on persistkit-spool's FileStore.

    python examples/spool_filestore.py

Shows the safety differences: an escaping name is refused, a move never overwrites.
"""

from __future__ import annotations

import os
import tempfile

from persistkit.spool import FileStore, InvalidNameError, TargetExistsError

store = FileStore(os.path.join(tempfile.mkdtemp(), "inbox"))
store.prepare()

with store.create("order-1.csv") as f:
    f.write("id,qty\n1,3\n")
store.move("order-1.csv", "tmp", "new")  # fsync file, rename, fsync both folders

for path in store.list("new"):
    store.move(path, "new", "cur")
    print("processing", os.path.basename(path))

try:
    store.create("../../etc/cron.d/evil")
except InvalidNameError as error:
    print("refused:", error)

with store.create("order-1.csv") as f:
    f.write("a different order with the same name\n")
store.copy("order-1.csv", "tmp", "new")
try:
    store.move("order-1.csv", "tmp", "new")
except TargetExistsError:
    print("refused: new/order-1.csv exists, and a move never overwrites")
