"""``IFileStore``: gocept.filestore's zope interface, for users who register stores with it.

Importable only where ``zope.interface`` is installed; persistkit-spool never depends on it.
Importing this module also declares that `persistkit.spool.FileStore` implements
`IFileStore`, so ``IFileStore.providedBy(store)`` holds and a store can be registered as a
utility or adapted to, as with ``gocept.filestore.interfaces.IFileStore``.

Example:
    >>> from persistkit.spool.interfaces import IFileStore  # doctest: +SKIP
    >>> zope.component.provideUtility(FileStore("/var/spool/x"), IFileStore)  # doctest: +SKIP
"""

from __future__ import annotations

try:
    import zope.interface
except ImportError as error:
    raise ImportError(
        "persistkit.spool.interfaces needs zope.interface, which persistkit-spool does not "
        "install: pip install zope.interface",
        name=__name__,
    ) from error

from persistkit.spool._filestore import FileStore

__all__ = ["IFileStore"]


class IFileStore(zope.interface.Interface):
    """A maildir-like store of files in the areas ``tmp``, ``new`` and ``cur``."""

    def prepare():
        """Create the store's folder and its areas where missing."""

    def create(filename, mode="w"):
        """Create a new file in ``tmp`` and return it open for writing; the caller closes it."""

    def move(filename, source, destination):
        """Move a file from one area to another (a path from `list` is accepted)."""

    def copy(filename, source, destination):
        """Copy a file into another area."""

    def remove(filename, space):
        """Remove a file from an area."""

    def list(space):
        """Return the full paths of the files in an area."""


zope.interface.classImplements(FileStore, IFileStore)
