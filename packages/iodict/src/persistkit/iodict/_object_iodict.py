"""IODict in an object store (``s3://bucket/prefix``, or any core `ObjectStore`).

The layout is in `_object_layout`. How each change stays exact between machines, with no lock
server and no multi-object transaction (the commit point of each change is one conditional
request, so a crash or a lost reply anywhere leaves a state every reader reads correctly):

- **A new key**: take the next birth from the ``births`` counter (one compare-and-swap), create
  its order entry (``put_if_absent``; the birth is ours alone, so it cannot exist), then create
  the item (``put_if_absent``: the commit point). If another writer created the key meanwhile,
  our entry is removed (it is ours alone) and the write becomes an update.
- **An update**: replace the item with ``put_if_match`` on the version read (or remembered from
  this process's last write), keeping its birth; on a conflict, read again and retry. The item
  is never written unconditionally: a write racing a delete could otherwise bring back an item
  whose order entry was already removed.
- **A delete or pop**: remove the item with ``delete_if_match`` (the commit point: of racing
  removers exactly one wins), then its order entry.

So every item always has its order entry (created before it, removed after it). Entries
without their item (a writer between its two requests, or one that died there) and entries
of an earlier life of a key are skipped by readers: iteration lists ``order/`` and yields an
entry only if its item exists and holds the entry's birth (checked one GET each for the first
few entries, then against one listing of ``items/``, reading the birth only of keys with
several entries).
"""

from __future__ import annotations

import collections
import concurrent.futures
import errno
import functools
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from persistkit.core import (
    ConflictError,
    CorruptFileError,
    InvalidArgumentError,
    InvalidNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    OutcomeUnknownError,
    StoredObject,
    check_durability,
    open_object_store,
)
from persistkit.iodict._directory import resolve_user_lock
from persistkit.iodict._formats import resolve_recorded_format
from persistkit.iodict._iodict import IODict, Summary
from persistkit.iodict._keys import Key, key_from_bytes
from persistkit.iodict._object_layout import (
    BIRTHS,
    ITEMS,
    META,
    ORDER,
    Entry,
    Item,
    decode_births,
    decode_item,
    decode_meta,
    digest_of_item,
    encode_births,
    encode_item,
    encode_meta,
    entry_names,
    item_key,
    parse_entry,
)
from persistkit.iodict.errors import LayoutError, ReadOnlyStoreError

if TYPE_CHECKING:
    from typing_extensions import TypeVar as DefaultedTypeVar

    KT = DefaultedTypeVar("KT", bound=Key, default=Key)
    VT = DefaultedTypeVar("VT", default=Any)
else:
    KT = TypeVar("KT", bound=Key)
    VT = TypeVar("VT")

T = TypeVar("T")

_MISSING: Any = object()
# A conflict means another writer got in first; back off with jitter so that a crowd of
# writers on one key or on the birth counter spreads out instead of colliding again.
_ATTEMPTS = 64
_FIRST_BACKOFF = 0.002
_LAST_BACKOFF = 0.25
# (version, birth) of the items this process read or wrote last: an update of one of them is
# one request (put_if_match) instead of two.
_REMEMBERED = 4096
# Requests one call (update, clear, values) may have in flight at once.
_PARALLEL = 16
# Iteration checks this many first keys one GET each (cheap first key, however big the dict),
# then the rest against one listing of the items.
_CHECKED_ONE_BY_ONE = 8
# The first page of order entries a reader asks for (then pages of 1,000).
_FIRST_PAGE = 16
# Items `items()` and `values()` ask for at once (then yield in order before asking again).
_FETCH_BATCH = 64


def _backoffs(what: str) -> Iterator[int]:
    """Yield attempt numbers, sleeping a growing, jittered while before each retry."""
    for attempt in range(_ATTEMPTS):
        if attempt:
            ceiling = min(_LAST_BACKOFF, _FIRST_BACKOFF * 2**attempt)
            time.sleep(random.uniform(0, ceiling))
        yield attempt
    raise ConflictError(f"{what}: still conflicting after {_ATTEMPTS} attempts")


class ObjectIODict(IODict[KT, VT], object_store=True):
    """`IODict` kept in an object store; made by ``IODict("s3://bucket/prefix")``.

    The same mapping API, errors and insertion order as a folder's IODict, across machines.
    See the module docstring for the protocol and docs/iodict.md for what each call costs.

    Args:
        path: ``s3://bucket/prefix`` or an `ObjectStore` (not closed by `close`).
        lock: as for a folder: taken around every write in this process.
        format: the value format of a new dict (``"pickle"`` by default); for an existing
            one, None means "what it was created with".
        durability: only ``"durable"``: an object store decides its own durability.
        use_xattrs: must be None (an object store has no extended attributes).
        read_only: never write (every write raises `ReadOnlyStoreError`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | ObjectStore,
        lock: Any = None,
        *,
        format: Any = None,
        durability: str = "durable",
        use_xattrs: bool | None = None,
        read_only: bool = False,
    ) -> None:
        check_durability(durability)
        if durability != "durable":
            raise InvalidArgumentError(
                "an object store decides its own durability; for a local folder without "
                "fsyncs pass LocalObjectStore(folder, durability='atomic')"
            )
        if use_xattrs is not None:
            raise InvalidArgumentError("use_xattrs applies to folders, not to object stores")
        self._user_lock = resolve_user_lock(lock)  # checked before anything is opened
        self._owns_objects = not isinstance(path, ObjectStore)
        self._objects = open_object_store(path)
        self._read_only = read_only
        self._where = self._objects.location
        self._guard = threading.Lock()
        self._birth_guard = threading.Lock()
        self._births: StoredObject | None = None
        self._waiting: list[_BirthRequest] = []
        self._remembered: collections.OrderedDict[bytes, tuple[str, int]] = (
            collections.OrderedDict()
        )
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            stored = self._read_meta()
            self._meta_written = stored is not None
            self._codec = resolve_recorded_format(format, stored, self._where)
        except BaseException:
            self.close()
            raise

    def _read_meta(self) -> str | None:
        try:
            found = self._objects.get(META)
        except ObjectNotFoundError:
            return None
        return decode_meta(found.data, self._name(META))

    def _name(self, object_key: str) -> str:
        return f"{self._where}/{object_key}"

    @property
    def path(self) -> str:
        """Where the dict lives: ``s3://bucket/prefix`` (or the object store's location)."""
        return self._where

    @property
    def objects(self) -> ObjectStore:
        """The object store holding the dict."""
        return self._objects

    # -- the process's memory of items ---------------------------------------------------

    def _remember(self, key_bytes: bytes, version: str, birth: int) -> None:
        with self._guard:
            self._remembered[key_bytes] = (version, birth)
            self._remembered.move_to_end(key_bytes)
            if len(self._remembered) > _REMEMBERED:
                self._remembered.popitem(last=False)

    def _forget(self, key_bytes: bytes) -> None:
        with self._guard:
            self._remembered.pop(key_bytes, None)

    def _recall(self, key_bytes: bytes) -> tuple[str, int] | None:
        with self._guard:
            return self._remembered.get(key_bytes)

    # -- reading -------------------------------------------------------------------------

    def _fetch(self, key_bytes: bytes) -> Item | None:
        """Read a key's item (one GET); None if it has none."""
        name = item_key(key_bytes)
        try:
            found = self._objects.get(name)
        except ObjectNotFoundError:
            self._forget(key_bytes)
            return None
        stored, birth, payload = decode_item(found.data, self._name(name))
        if stored != key_bytes:
            raise CorruptFileError(self._name(name), "the item holds another key")
        self._remember(key_bytes, found.version, birth)
        return Item(birth, payload, found.version)

    def _decode(self, key_bytes: bytes, payload: bytes) -> Any:
        return self._codec.decode(payload, self._name(item_key(key_bytes)))

    def __getitem__(self, key: KT) -> VT:
        """Return the value stored under ``key`` (one GET).

        Raises:
            KeyError: there is no such key.
            CorruptFileError: the item cannot be decoded (it is left as it is).
            UnloadableValueError: the item names a class this program cannot import.
            StoreUnavailableError: the server could not be reached.
        """
        key_bytes = self._read_key(key)
        item = None if key_bytes is None else self._fetch(key_bytes)
        if item is None or key_bytes is None:
            raise KeyError(key)
        value: VT = self._decode(key_bytes, item.payload)
        return value

    def __contains__(self, key: object) -> bool:
        """Tell whether ``key`` has an item (one HEAD: the item is not downloaded)."""
        key_bytes = self._read_key(key)
        if key_bytes is None:
            return False
        return self._objects.exists(item_key(key_bytes))

    def _entry_key(self, entry: Entry) -> bytes:
        if entry.key_bytes is not None:
            return entry.key_bytes
        try:
            return self._objects.get(entry.name).data
        except ObjectNotFoundError:
            return b""  # removed since it was listed: its item is gone too

    def _live_entries(self, entries: Iterable[Entry], skip: set[str]) -> list[Entry]:
        """The order entries of the items that exist, in birth order (``skip``: digests).

        Lists ``items/`` once: an item present throughout has its entry present throughout
        the listing of ``order/`` too (entries are created before items and removed after
        them), so every key that exists throughout is found once. Entries of a key's earlier
        lives and of crashed writers are dropped; where a key has several, its item says
        which birth is live.
        """
        entries = [e for e in entries if e.digest not in skip]
        if not entries:
            return []
        live = {d for d in map(digest_of_item, self._objects.list(ITEMS)) if d is not None}
        counts = collections.Counter(e.digest for e in entries if e.digest in live)
        births: dict[str, int | None] = {}
        for digest, count in counts.items():
            if count > 1:
                births[digest] = self._birth_of(digest)
        return [
            entry
            for entry in entries
            if entry.digest in live
            and (counts[entry.digest] == 1 or births[entry.digest] == entry.birth)
        ]

    def _birth_of(self, digest: str) -> int | None:
        name = ITEMS + digest
        try:
            found = self._objects.get(name)
        except ObjectNotFoundError:
            return None
        return decode_item(found.data, self._name(name))[1]

    def _decode_key(self, key_bytes: bytes, entry: Entry) -> Any:
        try:
            return key_from_bytes(key_bytes)
        except (ValueError, UnicodeDecodeError, IndexError) as error:
            raise CorruptFileError(self._name(entry.name), f"undecodable key: {error}") from None

    def _entries(self) -> Iterator[Entry]:
        """Yield the order entries in birth order: a first small page, then pages of 1,000.

        The small page keeps the first key and ``popleft`` at one short LIST request however
        many keys the dict holds.
        """
        head = list(itertools.islice(self._objects.list(ORDER, page_size=_FIRST_PAGE), _FIRST_PAGE))
        names: Iterable[str] = head
        if len(head) == _FIRST_PAGE:
            names = itertools.chain(head, self._objects.list(ORDER, start_after=head[-1]))
        for name in names:
            entry = parse_entry(name)
            if entry is not None:
                yield entry

    def _live_keys(self) -> Iterator[tuple[Any, bytes, Item | None]]:
        """Yield (key, canonical bytes, item if it was read) of the live entries, in order.

        The first `_CHECKED_ONE_BY_ONE` entries are checked against their items one GET at a
        time, so that the first key costs one page of ``order/`` and one GET whatever the
        size of the dict; the rest are checked against one listing of ``items/``.
        """
        listed = self._entries()
        yielded: set[str] = set()
        for entry in listed:
            key_bytes = self._entry_key(entry)
            if entry.key_bytes is None and not key_bytes:
                continue
            item: Item | None = None
            try:
                item = self._fetch(key_bytes)
                live = item is not None and item.birth == entry.birth
            except CorruptFileError:
                live = True  # its key exists; reading its value will say what is wrong
            if live:
                yielded.add(entry.digest)
                yield self._decode_key(key_bytes, entry), key_bytes, item
            if len(yielded) == _CHECKED_ONE_BY_ONE:
                break
        for entry in self._live_entries(listed, yielded):
            key_bytes = self._entry_key(entry)
            if entry.key_bytes is None and not key_bytes:
                continue
            yield self._decode_key(key_bytes, entry), key_bytes, None

    def __iter__(self) -> Iterator[KT]:
        """Iterate over the keys in insertion order.

        Costs one listing of ``order/`` (1,000 keys per request), a GET for each of the first
        8 keys, then one listing of ``items/``: ``next(iter(d))`` is two requests however big
        the dict is.

        The keys are listed when iteration starts: a key set or deleted meanwhile may or may
        not be seen; a key that exists throughout is seen exactly once, in its place.
        """
        for key, _, _ in self._live_keys():
            yield key

    def _fetched_items(self) -> Iterator[tuple[Any, Any]]:
        """Yield (key, value) in insertion order, reading `_PARALLEL` items at a time."""
        live = self._live_keys()
        while batch := list(itertools.islice(live, _FETCH_BATCH)):
            missing = [key_bytes for _, key_bytes, item in batch if item is None]
            read = self._parallel([functools.partial(self._fetch, k) for k in missing])
            found = dict(zip(missing, read, strict=True))
            for key, key_bytes, listed in batch:
                item = found[key_bytes] if listed is None else listed
                if item is not None:  # None: deleted since it was listed
                    yield key, self._decode(key_bytes, item.payload)

    def items(self) -> ItemsView[KT, VT]:
        """Return a view of (key, value) pairs in insertion order.

        Iterating it lists the keys (see `__iter__`) and reads the items 16 at a time; items
        deleted meanwhile are skipped, an undecodable one raises `CorruptFileError`.
        """
        return _FetchedItems(self)

    def values(self) -> ValuesView[VT]:
        """Return a view of the values in insertion order (read as `items` reads them)."""
        return _FetchedValues(self)

    def __len__(self) -> int:
        """Return the number of items: one listing of ``items/`` (1 request per 1,000)."""
        return sum(1 for name in self._objects.list(ITEMS) if digest_of_item(name))

    def __bool__(self) -> bool:
        """Tell whether any item exists (one listing request)."""
        return any(digest_of_item(name) for name in self._objects.list(ITEMS))

    def _summary(self) -> Summary:
        keys = list(self)
        return Summary(
            items=len(keys),
            layout="objects",
            format=self._codec.name,
            first=keys[0] if keys else None,
            last=keys[-1] if keys else None,
            index="listed",
            keyless=0,
        )

    def keyless_files(self) -> list[str]:
        """Always empty: every item object holds its key."""
        return []

    # -- writing -------------------------------------------------------------------------

    def _write_access(self) -> Any:
        if self._read_only:
            raise ReadOnlyStoreError(
                errno.EROFS, "the store was opened with read_only=True", self._where
            )
        if not self._meta_written:
            self._write_meta()
        return self._user_lock if self._user_lock is not None else _NO_LOCK

    def _write_meta(self) -> None:
        try:
            self._objects.put_if_absent(META, encode_meta(self._codec.name))
        except ObjectExistsError:
            stored = self._read_meta()
            if stored is not None and stored != self._codec.name:
                raise LayoutError(
                    f"{self._where!r} stores values as {stored!r}, not {self._codec.name!r}"
                ) from None
        self._meta_written = True

    def _take_births(self, count: int) -> int:
        """Take ``count`` consecutive births from the counter; return the first.

        Threads of this process that ask at once share one swap of the counter: whoever
        holds the swap takes births for every request waiting, in the order they came.
        """
        mine = _BirthRequest(count)
        with self._guard:
            self._waiting.append(mine)
        with self._birth_guard:
            if mine.done:  # an earlier holder took ours along with its own
                return mine.first
            with self._guard:
                batch, self._waiting = self._waiting, []
            try:
                first = self._swap_births(sum(request.count for request in batch))
            except BaseException:
                with self._guard:  # the others try again themselves
                    self._waiting[:0] = [request for request in batch if request is not mine]
                raise
            for request in batch:
                request.first, request.done = first, True
                first += request.count
            return mine.first

    def _swap_births(self, count: int) -> int:
        """Move the counter on by ``count`` (under `_birth_guard`); return the first taken.

        One ``put_if_match`` when this process swapped the counter last, a GET more when
        another writer did. A swap whose outcome is unclear is never counted as ours (at
        worst its numbers stay unused: a gap, never a birth given twice).
        """
        where = self._name(BIRTHS)
        for _ in _backoffs(f"taking a birth from {where}"):
            current = self._births
            if current is None:
                try:
                    current = self._objects.get(BIRTHS)
                except ObjectNotFoundError:
                    body = encode_births(1 + count)
                    try:
                        version = self._objects.put_if_absent(BIRTHS, body)
                    except (ObjectExistsError, OutcomeUnknownError):
                        continue
                    self._births = StoredObject(body, version)
                    return 1
            first = decode_births(current.data, where)
            body = encode_births(first + count)
            try:
                version = self._objects.put_if_match(BIRTHS, body, current.version)
            except (ConflictError, OutcomeUnknownError):
                self._births = None
                continue
            self._births = StoredObject(body, version)
            return first
        raise AssertionError("unreachable: _backoffs raises when attempts run out")

    def _with_entry(self, birth: int, key_bytes: bytes, call: Callable[[str], T]) -> T:
        """Call ``call`` with the entry's name (the hash form where the key's is too long)."""
        spelled, hashed = entry_names(birth, key_bytes)
        try:
            return call(spelled)
        except InvalidNameError:
            if spelled == hashed:
                raise
            return call(hashed)

    def _create_item(self, key_bytes: bytes, birth: int, payload: bytes) -> bool:
        """Create a new key's order entry, then its item; False if the key exists meanwhile."""
        self._with_entry(
            birth, key_bytes, lambda name: self._objects.put_if_absent(name, key_bytes)
        )
        try:
            version = self._objects.put_if_absent(
                item_key(key_bytes), encode_item(key_bytes, birth, payload)
            )
        except ObjectExistsError:
            self._drop_entry(birth, key_bytes)
            return False
        self._remember(key_bytes, version, birth)
        return True

    def _drop_entry(self, birth: int, key_bytes: bytes) -> None:
        # Unconditional: an entry's name holds a birth that only one writer ever took.
        self._with_entry(birth, key_bytes, self._objects.delete)

    def _store(
        self, key_bytes: bytes, payload: bytes, known: tuple[str, int] | None = None
    ) -> None:
        """Write one key: update its item in place, or create it if it has none.

        Args:
            key_bytes: the key's canonical bytes.
            payload: the encoded value.
            known: the item's (version, birth) to try first; else what this process
                remembers, else what a read finds.
        """
        if known is None:
            known = self._recall(key_bytes)
        for _ in _backoffs(f"writing {self._name(item_key(key_bytes))}"):
            if known is None:
                found = self._fetch(key_bytes)
                if found is None:
                    if self._create_item(key_bytes, self._take_births(1), payload):
                        return
                    continue
                known = (found.version, found.birth)
            version, birth = known
            try:
                new_version = self._objects.put_if_match(
                    item_key(key_bytes), encode_item(key_bytes, birth, payload), version
                )
            except ConflictError:
                known = None
                continue
            self._remember(key_bytes, new_version, birth)
            return

    def __setitem__(self, key: KT, value: VT) -> None:
        """Store ``value`` under ``key``; durable once the server acknowledged it.

        An update is one ``put_if_match`` when this process knows the item's version, two
        requests otherwise; a new key is four (read, take a birth, order entry, item).

        Raises:
            UnsupportedKeyError: ``key`` has a type that cannot be stored.
            SerializationError: ``value`` cannot be encoded; nothing was written.
            StoreUnavailableError: the server failed; the write may or may not have landed
                (`OutcomeUnknownError` says it could not be told), and either way a reader
                sees the old value or the new one, whole.
        """
        key_bytes = self._write_key(key)
        payload = self._codec.dumps(value)
        with self._write_access():
            self._store(key_bytes, payload)

    def _take(self, key_bytes: bytes, decode: bool) -> Any:
        """Remove a key's item (its value decoded first, if asked); _MISSING if it has none."""
        for _ in _backoffs(f"removing {self._name(item_key(key_bytes))}"):
            item = self._fetch(key_bytes)
            if item is None:
                return _MISSING
            value = self._decode(key_bytes, item.payload) if decode else None
            if self._remove_item(key_bytes, item):
                return value
        raise AssertionError("unreachable: _backoffs raises when attempts run out")

    def _remove_item(self, key_bytes: bytes, item: Item) -> bool:
        """Remove the item if it is still at ``item.version``, then its order entry."""
        try:
            self._objects.delete_if_match(item_key(key_bytes), item.version)
        except ConflictError:
            return False
        self._forget(key_bytes)
        self._drop_entry(item.birth, key_bytes)
        return True

    def __delitem__(self, key: KT) -> None:
        """Delete ``key``'s item (three requests: read, remove it, remove its order entry).

        Raises:
            KeyError: there is no such key.
            ConditionNotHonouredError: the server ignores ``If-Match`` on DELETE (Ceph RGW).
        """
        key_bytes = self._read_key(key)
        if key_bytes is None:
            raise KeyError(key)
        with self._write_access():
            if self._take(key_bytes, decode=False) is _MISSING:
                raise KeyError(key)

    def pop(self, key: KT, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is missing.

        Of processes popping one key at once, on any machines, exactly one gets it.

        Raises:
            KeyError: ``key`` is missing and no default was given.
        """
        key_bytes = self._read_key(key)
        if key_bytes is not None:
            with self._write_access():
                value = self._take(key_bytes, decode=True)
            if value is not _MISSING:
                return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def _pop_end(self, last: bool) -> tuple[KT, VT]:
        with self._write_access():
            listed: Iterable[Entry] = self._entries()
            if last:
                listed = reversed(list(listed))
            for entry in listed:
                key_bytes = self._entry_key(entry)
                popped = self._pop_entry(entry, key_bytes)
                if popped is not _MISSING:
                    key: Any = self._decode_key(key_bytes, entry)
                    return key, popped
        raise KeyError("popitem(): dictionary is empty")

    def _pop_entry(self, entry: Entry, key_bytes: bytes) -> Any:
        """Pop the entry's item if the entry is live; _MISSING if it is not (or was lost)."""
        if entry.key_bytes is None and not key_bytes:
            return _MISSING
        for _ in _backoffs(f"popping {self._name(entry.name)}"):
            item = self._fetch(key_bytes)
            if item is None or item.birth != entry.birth:
                return _MISSING
            value = self._decode(key_bytes, item.payload)
            if self._remove_item(key_bytes, item):
                return value
        raise AssertionError("unreachable: _backoffs raises when attempts run out")

    def popitem(self, last: bool = True) -> tuple[KT, VT]:
        """Remove and return the newest pair, or the oldest with ``last=False``.

        Of consumers popping at once, each item goes to exactly one. The oldest costs one
        listing request and three more; the newest lists every entry first.

        Raises:
            KeyError: the dict is empty.
        """
        return self._pop_end(last)

    def popleft(self) -> VT:
        """Remove the oldest item and return its value (see `popitem`).

        Raises:
            KeyError: the dict is empty.
        """
        return self._pop_end(False)[1]

    def setdefault(self, key: KT, default: Any = None) -> Any:
        """Return ``key``'s value; if it is missing, store ``default`` first and return it.

        An existing value is never overwritten, even by a writer on another machine racing
        this call: the item is created only if absent.
        """
        key_bytes = self._write_key(key)
        payload = self._codec.dumps(default)
        with self._write_access():
            for _ in _backoffs(f"setdefault on {self._name(item_key(key_bytes))}"):
                item = self._fetch(key_bytes)
                if item is not None:
                    return self._decode(key_bytes, item.payload)
                if self._create_item(key_bytes, self._take_births(1), payload):
                    return default
        raise AssertionError("unreachable: _backoffs raises when attempts run out")

    def _parallel(self, calls: list[Callable[[], T]]) -> list[T]:
        """Run calls with up to `_PARALLEL` requests in flight; raise the first error."""
        if len(calls) <= 1:
            return [call() for call in calls]
        with self._guard:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    _PARALLEL, thread_name_prefix="persistkit-iodict"
                )
            pool = self._pool
        futures = [pool.submit(call) for call in calls]
        concurrent.futures.wait(futures)
        return [future.result() for future in futures]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items, with up to 16 requests in flight.

        Every key and value is encoded before anything is written, so a bad one raises with
        the dict untouched. The new keys take their births in one swap of the counter, in
        the order given. Each item is atomic, the update as a whole is not: if the server
        fails midway, some items are new and the rest old.
        """
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping):
            pairs = [(key, other[key]) for key in other]
        elif hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 - the dict protocol: keys() then []
        else:
            pairs = list(other)
        encoded = {
            self._write_key(key): self._codec.dumps(value)
            for key, value in [*pairs, *kwargs.items()]
        }
        if not encoded:
            return
        with self._write_access():
            keys = list(encoded)
            found = self._parallel([functools.partial(self._fetch, k) for k in keys])
            new = [k for k, item in zip(keys, found, strict=True) if item is None]
            first = self._take_births(len(new)) if new else 0
            births = {k: first + i for i, k in enumerate(new)}

            def write(key_bytes: bytes, item: Item | None) -> None:
                payload = encoded[key_bytes]
                if item is None and self._create_item(key_bytes, births[key_bytes], payload):
                    return
                known = None if item is None else (item.version, item.birth)
                self._store(key_bytes, payload, known)

            self._parallel(
                [functools.partial(write, k, i) for k, i in zip(keys, found, strict=True)]
            )

    def clear(self) -> None:
        """Remove every item (three requests each, 16 in flight)."""
        with self._write_access():
            digests = [d for d in map(digest_of_item, self._objects.list(ITEMS)) if d]
            self._parallel([functools.partial(self._clear_one, d) for d in digests])

    def _clear_one(self, digest: str) -> None:
        name = ITEMS + digest
        for _ in _backoffs(f"removing {self._name(name)}"):
            try:
                found = self._objects.get(name)
            except ObjectNotFoundError:
                return
            key_bytes, birth, _ = decode_item(found.data, self._name(name))
            if self._remove_item(key_bytes, Item(birth, b"", found.version)):
                return

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections and threads (an `ObjectStore` passed in stays open)."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        if self._owns_objects:
            self._objects.close()


@dataclass(slots=True)
class _BirthRequest:
    """A thread's wait for births (see `ObjectIODict._take_births`)."""

    count: int
    first: int = 0
    done: bool = False


class _FetchedItems(ItemsView[Any, Any]):
    _mapping: ObjectIODict[Any, Any]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._fetched_items()


class _FetchedValues(ValuesView[Any]):
    _mapping: ObjectIODict[Any, Any]

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._mapping._fetched_items())


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_LOCK = _NoLock()
