"""Callbacks' saved states keyed by state_key, and the check that they match a run's callbacks."""

from __future__ import annotations

import re

import pytest

from cadence.callbacks import Callback, History
from cadence.callbacks.state_keys import check_callback_states, keyed_callbacks


class Stateless:
    def on_epoch_end(self, epoch, logs=None): ...


class Foreign:  # A stateful object without state_key: keyed by its class name.
    def state_dict(self):
        return {"n": 1}

    def load_state_dict(self, state): ...


def test_stateful_callbacks_are_keyed_and_equal_keys_numbered_in_order():
    first, second, third = History(), History(), Foreign()
    keyed = keyed_callbacks([first, Stateless(), second, third])
    assert list(keyed) == ["History", "History#2", "Foreign"]
    assert keyed["History"] is first and keyed["History#2"] is second and keyed["Foreign"] is third


def test_a_saved_entry_that_is_not_a_dict_is_refused():
    with pytest.raises(ValueError, match=re.escape(
        "The saved state of callback 'Foreign' must be a dict; received list."
    )):
        check_callback_states(keyed_callbacks([Foreign()]), {"Foreign": [1]})


def test_a_callback_without_state_needs_no_saved_entry():
    check_callback_states(keyed_callbacks([Callback(), Foreign()]), {"Foreign": {"n": 1}})
    with pytest.raises(ValueError, match=re.escape(
        "there is no saved state for ['Foreign'] of this run. This run's callbacks with a state are "
        "['Foreign']."
    )):
        check_callback_states(keyed_callbacks([Callback(), Foreign()]), {})
