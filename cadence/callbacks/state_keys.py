"""Callbacks' saved states, keyed by ``state_key`` and matched to the right callback on restore."""

from __future__ import annotations

from typing import Any


def keyed_callbacks(callbacks: list[Any]) -> dict[str, Any]:
    """Return the stateful callbacks (with ``state_dict`` and ``load_state_dict``) by ``state_key``.

    A callback without ``state_key`` (a Keras callback) is keyed by its class name. Callbacks
    whose keys are equal are told apart by their order: the second gets ``"<key>#2"``, and so on.
    """
    keyed: dict[str, Any] = {}
    for callback in callbacks:
        if not (
            callable(getattr(callback, "state_dict", None))
            and callable(getattr(callback, "load_state_dict", None))
        ):
            continue
        key = getattr(callback, "state_key", None) or type(callback).__name__
        unique, count = key, 1
        while unique in keyed:
            count += 1
            unique = f"{key}#{count}"
        keyed[unique] = callback
    return keyed


def check_callback_states(keyed: dict[str, Any], states: Any) -> None:
    """Raise a ``ValueError`` unless ``states`` holds a dict for each callback of ``keyed`` with a state.

    Args:
        keyed: This run's callbacks, from :func:`keyed_callbacks`.
        states: Saved states, ``{state_key: state_dict}``.

    Raises:
        ValueError: Naming the saved states that no callback of this run matches and the
            callbacks of this run that have no saved state, or the entry that is not a dict.
    """
    if not isinstance(states, dict):
        raise ValueError(
            "The saved callback states must be a dict of {state_key: state}; received "
            f"{type(states).__name__}."
        )
    for key, value in states.items():
        if not isinstance(key, str) or not isinstance(value, dict):
            raise ValueError(
                f"The saved state of callback {key!r} must be a dict; received "
                f"{type(value).__name__}."
            )
    lost = sorted(key for key in states if key not in keyed)
    holding = sorted(key for key, callback in keyed.items() if callback.state_dict())
    fresh = [key for key in holding if key not in states]
    if lost or fresh:
        detail = []
        if lost:
            detail.append(f"there are saved states for {lost}, which this run does not have")
        if fresh:
            detail.append(f"there is no saved state for {fresh} of this run")
        raise ValueError(
            "The saved callback states do not match this run's callbacks: " + "; ".join(detail)
            + f". This run's callbacks with a state are {holding}. Pass the same callbacks, "
            "with the same settings, as the run that saved them."
        )
    for key, value in states.items():  # Every state checked before anything is loaded.
        check = getattr(keyed[key], "check_state_dict", None)
        if callable(check):
            try:
                check(value)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"The saved state of callback {key} is malformed: {error}") from error
