"""A POD behaves like a dict across set, delete, in-place change, sync, revert and reopen."""

from __future__ import annotations

import copy
import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from persistkit.tracker import POD, _exit_hooks

keys = st.sampled_from(["a", "b", "1", 1, 2, -7, ("t", 1), ("t", (1, "x")), "tab\tkey", "é\\"])
leaves = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans())
values = st.one_of(
    leaves,
    st.lists(leaves, max_size=3),
    st.dictionaries(st.text(max_size=2), leaves, max_size=2),
)


class PODMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pk-tracker-model-")
        self.file_size = 2
        self.pod = self.open()
        self.model: dict = {}
        self.disk: dict = {}

    def open(self):
        return POD(
            self.folder,
            file_size=self.file_size,
            sync_at=10_000,
            clone=False,
            durability="atomic",
        )

    def teardown(self):
        self.forget()
        shutil.rmtree(self.folder, ignore_errors=True)

    def forget(self):
        _exit_hooks.unregister(self.pod._state)
        self.pod._state.closed = True

    @rule(key=keys, value=values)
    def set(self, key, value):
        self.pod[key] = value
        self.model[key] = copy.deepcopy(value)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        del self.pod[key]
        del self.model[key]

    @precondition(lambda self: any(isinstance(v, list) for v in self.model.values()))
    @rule(data=st.data(), item=leaves)
    def append_in_place(self, data, item):
        key = data.draw(
            st.sampled_from(
                sorted((k for k, v in self.model.items() if isinstance(v, list)), key=repr)
            )
        )
        self.pod[key].append(item)
        self.model[key] = [*self.model[key], item]

    @rule()
    def sync(self):
        self.pod.sync()
        self.disk = dict(self.model)

    @rule()
    def revert(self):
        self.pod.revert()
        self.model = dict(self.disk)

    @rule()
    def crash_and_reopen(self):
        self.forget()
        self.pod = self.open()
        self.model = dict(self.disk)

    @rule()
    def close_and_reopen(self):
        self.pod.close()
        self.disk = dict(self.model)
        self.pod = self.open()

    @rule(file_size=st.integers(1, 4))
    def reopen_with_another_file_size(self, file_size):
        self.pod.close()
        self.disk = dict(self.model)
        self.file_size = file_size
        self.pod = self.open()

    @invariant()
    def same_as_the_model(self):
        assert list(self.pod.keys()) == list(self.model)
        assert {k: self.pod._peek(k) for k in self.pod} == self.model


PODMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestPOD = PODMachine.TestCase
