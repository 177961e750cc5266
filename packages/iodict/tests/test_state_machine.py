"""IODict against a dict, step by step, reopening the directory at random points."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from persistkit.core import capabilities
from persistkit.iodict import IODict

scalar_keys = st.one_of(
    st.text(max_size=4),
    st.binary(max_size=3),
    st.integers(min_value=-3, max_value=3),
)
keys = st.one_of(scalar_keys, st.tuples(scalar_keys), st.tuples(scalar_keys, scalar_keys))
values = st.one_of(
    st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)
)


class IODictMachine(RuleBasedStateMachine):
    use_xattrs: bool | None = None

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="iodict-sm-")
        self.store = IODict(self.directory, durability="atomic", use_xattrs=self.use_xattrs)
        self.model: dict[Any, Any] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(key=keys, value=values)
    def set(self, key: Any, value: Any) -> None:
        self.store[key] = value
        self.model[key] = value

    @rule(key=keys)
    def delete(self, key: Any) -> None:
        if key in self.model:
            del self.store[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.store[key]

    @rule(key=keys, default=values)
    def pop(self, key: Any, default: Any) -> None:
        assert self.store.pop(key, default) == self.model.pop(key, default)

    @rule(key=keys, default=values)
    def setdefault(self, key: Any, default: Any) -> None:
        assert self.store.setdefault(key, default) == self.model.setdefault(key, default)

    @rule(pairs=st.lists(st.tuples(keys, values), max_size=4))
    def update(self, pairs: list[tuple[Any, Any]]) -> None:
        self.store.update(pairs)
        self.model.update(pairs)

    @precondition(lambda self: bool(self.model))
    @rule()
    def popitem(self) -> None:
        assert self.store.popitem() == self.model.popitem()

    @precondition(lambda self: bool(self.model))
    @rule()
    def popitem_first(self) -> None:
        key = next(iter(self.model))
        assert self.store.popitem(last=False) == (key, self.model.pop(key))

    @precondition(lambda self: bool(self.model))
    @rule()
    def popleft(self) -> None:
        assert self.store.popleft() == self.model.pop(next(iter(self.model)))

    @rule()
    def clear(self) -> None:
        self.store.clear()
        self.model.clear()

    @rule()
    def reopen(self) -> None:
        self.store = IODict(self.directory, durability="atomic")

    @rule(key=keys)
    def lookup(self, key: Any) -> None:
        assert (key in self.store) == (key in self.model)
        assert self.store.get(key, "absent") == self.model.get(key, "absent")

    @invariant()
    def same_items_in_same_order(self) -> None:
        assert list(self.store.items()) == list(self.model.items())
        assert len(self.store) == len(self.model)
        assert bool(self.store) == bool(self.model)
        assert next(iter(self.store), "none") == next(iter(self.model), "none")
        assert self.store == self.model


machine_settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class XattrMachine(IODictMachine):
    use_xattrs = True


class HeaderMachine(IODictMachine):
    use_xattrs = False


@pytest.mark.skipif(
    not capabilities(tempfile.gettempdir()).user_xattrs,
    reason="the temporary directory's filesystem has no user xattrs",
)
def test_xattr_layout_behaves_like_a_dict() -> None:
    XattrMachine.TestCase.settings = machine_settings
    XattrMachine.TestCase().runTest()


def test_header_layout_behaves_like_a_dict() -> None:
    HeaderMachine.TestCase.settings = machine_settings
    HeaderMachine.TestCase().runTest()
