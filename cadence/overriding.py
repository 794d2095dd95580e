"""Whether an object redefines methods it inherits: one answer for callbacks and models.

The loops decide things once from it: a batch hook that no callback redefines is not called
(``Callback.wants_hook``), and a model whose class or instance redefines ``train_step`` gets its
gradients zeroed before each call (``Model.make_train_function``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def defining_class(cls: type, name: str) -> type | None:
    """Return the class in ``cls``'s MRO whose own namespace defines ``name``, or ``None``."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def redefined_below(obj: Any, owner: type, names: Iterable[str]) -> bool:
    """Return whether ``obj`` defines any of ``names`` below ``owner``.

    True when the instance itself holds one of them, or its class resolves one to something
    other than what ``owner`` resolves it to (a subclass of ``owner`` redefined it).

    Args:
        obj: An instance of ``owner`` (or of a subclass).
        owner: The class whose methods are compared.
        names: Method names.
    """
    own = getattr(obj, "__dict__", {})
    cls = type(obj)
    return any(name in own or getattr(cls, name) is not getattr(owner, name) for name in names)
