"""Keras's registry of custom objects: ``register_keras_serializable`` and its lookups.

Ported code decorates its own classes and functions with
``@keras.utils.register_keras_serializable(package, name)``; the object is registered under
``"package>name"`` (``name`` defaults to the object's ``__name__``) and found again with
``get_registered_object``, as in Keras. As in Keras, a class must have a ``get_config()``
method to be registered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = [
    "CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
    "get_registered_object", "register_keras_serializable",
]

_CUSTOM_OBJECTS: dict[str, Any] = {}
_CUSTOM_NAMES: dict[Any, str] = {}
_SCOPES: list[dict[str, Any]] = []


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Return a decorator that registers a class or function under ``"package>name"``.

    Args:
        package: The package part of the key.
        name: The name part of the key; the object's ``__name__`` when omitted.

    Returns:
        The decorator, which returns the object unchanged.

    Raises:
        ValueError: When a decorated class has no ``get_config()`` method (as in Keras).
    """
    def decorator(obj: Any) -> Any:
        registered_name = f"{package}>{name if name is not None else obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        _CUSTOM_OBJECTS[registered_name] = obj
        _CUSTOM_NAMES[obj] = registered_name
        return obj

    return decorator


def get_registered_name(obj: Any) -> str:
    """Return the key ``obj`` was registered under, or its ``__name__`` if it was not."""
    return _CUSTOM_NAMES.get(obj, obj.__name__)


def get_registered_object(
    name: str, custom_objects: dict[str, Any] | None = None,
    module_objects: dict[str, Any] | None = None,
) -> Any:
    """Return the object registered under ``name``, or ``None``.

    Looked up, in order: the innermost ``custom_object_scope``, the global registry,
    ``custom_objects``, then ``module_objects``.
    """
    scope = _SCOPES[-1] if _SCOPES else {}
    for table in (scope, _CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


def get_custom_objects() -> dict[str, Any]:
    """Return the live global dictionary of registered objects (keys ``"package>name"``)."""
    return _CUSTOM_OBJECTS


class CustomObjectScope:
    """A ``with`` block in which extra objects are found by :func:`get_registered_object`.

    Args:
        custom_objects: A dict ``{name: object}``.
    """

    def __init__(self, custom_objects: dict[str, Any]) -> None:
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self) -> CustomObjectScope:
        outer = _SCOPES[-1] if _SCOPES else {}
        _SCOPES.append({**outer, **self.custom_objects})
        return self

    def __exit__(self, *args: Any) -> None:
        _SCOPES.pop()


custom_object_scope = CustomObjectScope
