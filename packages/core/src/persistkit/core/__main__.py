"""``python -m persistkit.core``: the ``persistkit`` command."""

from persistkit.core._cli import main

raise SystemExit(main())
