"""The `Callback` base class: every hook of Keras 3, with Keras's signatures."""

from __future__ import annotations

from typing import Any

from cadence.overriding import defining_class, redefined_below

HOOKS: tuple[str, ...] = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)

# Legacy Keras aliases: overriding one of these counts as overriding the hook it stands for.
LEGACY_ALIASES: dict[str, str] = {
    "on_train_batch_begin": "on_batch_begin",
    "on_train_batch_end": "on_batch_end",
}


class Callback:
    """Base class for callbacks: override the hooks you need.

    A callback sees the model it is attached to as ``self.model`` and the run's parameters as
    ``self.params``, exactly as in Keras: ``epochs``, ``steps`` and ``verbose``, plus tf.keras 2's
    ``batch_size``, ``samples``, ``do_validation`` and ``metrics`` where ``fit`` knows them. During
    ``fit`` it also sees the run's state as ``self.run`` (a
    :class:`~cadence.trainer.state.TrainState`: ``epoch``, ``step_in_epoch``, ``global_step``,
    ``state_dict()``, ...; ``None`` outside ``fit``).

    Hooks are called the Keras 3 way: ``logs`` positionally to the epoch hooks and to the
    train/test/predict begin and end hooks (``on_epoch_end(epoch, logs)``), by keyword to the
    batch hooks (``on_train_batch_end(batch, logs=logs)``); a batch hook written for tf.keras 2
    whose logs parameter has another name gets it positionally. ``logs`` is a plain ``dict``
    sorted by key, of Python floats: begin hooks get ``{}``; batch-end hooks get running averages
    since the epoch (or evaluation) began; ``on_epoch_end`` gets the epoch's training values plus
    ``val_``-prefixed validation values; ``on_predict_batch_end`` gets ``{"outputs": tensor}``.

    Epochs and batches count from 0. ``on_batch_begin`` / ``on_batch_end`` are the legacy
    names for ``on_train_batch_begin`` / ``on_train_batch_end``: override either.

    Stateful callbacks implement :meth:`state_dict` and :meth:`load_state_dict` so that
    :class:`~cadence.callbacks.BackupAndRestore` can resume them exactly; :attr:`state_key`
    names the callback's entry in a backup.

    Several processes (``torch.distributed``): the class attributes :attr:`writes_files`,
    :attr:`may_stop_training` and :attr:`collective_when_sharded` declare what a callback does,
    for cadence's callbacks and yours.
    """

    #: cadence's own callbacks that can read lazy (device-side) batch logs set this to True. A
    #: subclass that overrides a batch hook itself receives plain floats all the same.
    accepts_lazy_logs: bool = False
    #: Whether the callback writes files, prints or posts, so that with several processes its
    #: hooks run on rank 0 only: ``True`` (every hook), ``False`` (every rank), or a set of hook
    #: names (those hooks on rank 0 only; e.g. ModelCheckpoint's saving hooks).
    writes_files: bool | frozenset[str] = False
    #: Whether the callback may set ``model.stop_training`` in a training-batch hook. With several
    #: processes, ``stop_training`` is agreed across ranks after every batch only when some
    #: callback that may stop training overrides a training-batch hook (after every epoch always).
    may_stop_training: bool = True
    #: Whether the callback's saving takes every rank when the model is sharded
    #: (``strategy="fsdp"``: gathering the whole weights, or writing each rank's shard). Its hooks
    #: then run on every rank, whatever :attr:`writes_files` says, and the callback writes on
    #: rank 0 itself (``ModelCheckpoint``).
    collective_when_sharded: bool = False
    #: Attributes that identify an instance in a backup, added to :attr:`state_key`
    #: (ModelCheckpoint: ``("filepath", "monitor")``).
    state_key_attributes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self.validation_data: Any = None
        self.run: Any = None

    def set_model(self, model: Any) -> None:
        """Attach the model this callback acts on."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Set the run's parameters (``epochs``, ``steps``, ``verbose``, ...)."""
        self.params = params

    def set_run(self, run: Any) -> None:
        """Attach the run's state (a :class:`~cadence.trainer.state.TrainState`), as ``self.run``.

        ``fit`` calls it before ``on_train_begin`` through
        :meth:`~cadence.callbacks.CallbackList.set_run`. ``self.run`` is ``None`` outside ``fit``.
        """
        self.run = run

    @property
    def state_key(self) -> str:
        """The name of this callback's entry in a backup's callback states.

        The class name, followed by the values of :attr:`state_key_attributes`
        (``"ModelCheckpoint(filepath='best.pt', monitor='val_loss')"``), so that a restored
        state goes back to the callback it was taken from whatever order the callbacks are
        passed in. Callbacks whose keys are equal are told apart by their order (``#2``, ...).
        """
        name = type(self).__name__
        fields = ", ".join(
            f"{attribute}={getattr(self, attribute, None)!r}"
            for attribute in self.state_key_attributes
        )
        return f"{name}({fields})" if fields else name

    def state_dict(self) -> dict[str, Any]:
        """Return this callback's resumable state (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict`."""

    def wants_hook(self, hook: str) -> bool:
        """Return whether this callback needs ``hook`` called, given its settings.

        Only hooks the callback overrides are ever called; this lets a callback that overrides
        a batch hook for some settings (``save_freq=100``) say that it ignores it under others
        (``save_freq="epoch"``), so that a loop need not call it on every batch. The answer is
        read when the callback joins a :class:`~cadence.callbacks.CallbackList`.

        Args:
            hook: A hook name, such as ``"on_train_batch_end"``.
        """
        return True

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Legacy alias of :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Legacy alias of :meth:`on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of an epoch (training only)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of an epoch with training and ``val_`` logs."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of a training batch."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a training batch with running-average logs."""
        self.on_batch_end(batch, logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of an evaluation batch."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of an evaluation batch with running-average logs."""

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called at the start of a prediction batch."""

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called at the end of a prediction batch with ``{"outputs": ...}``."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``fit``."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``fit`` with the last epoch's logs."""

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``evaluate`` (and of validation inside ``fit``)."""

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``evaluate`` with the evaluation's logs."""

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called at the end of ``predict``."""


def overrides(callback: Any, hook: str) -> bool:
    """Return whether ``callback`` implements ``hook`` (or its legacy alias) itself.

    ``callback`` may be any object with the callback protocol, as Keras's ``CallbackList``
    accepts: a hook counts as implemented when the object has it and it is not the do-nothing
    method of a library's root ``Callback`` class (cadence's, Keras's, tf.keras's), so that a
    ``keras.callbacks.Callback`` subclass is called for the hooks it overrides, and an object
    that defines only ``on_epoch_end`` is called for that one.
    """
    names = [hook]
    if hook in LEGACY_ALIASES:
        names.append(LEGACY_ALIASES[hook])
    for name in names:
        method = getattr(callback, name, None)
        if method is None or not callable(method):
            continue
        func = getattr(method, "__func__", method)
        if func is getattr(Callback, name) or _is_root_default(type(callback), name, func):
            continue
        return True
    return False


def _is_root_default(cls: type, name: str, func: Any) -> bool:
    """Return whether ``func`` is ``name`` as a root ``Callback`` class of some library defines it.

    A root ``Callback`` is a class named ``Callback`` that derives from nothing else; its hooks
    do nothing (or only forward a legacy alias, which :func:`overrides` checks on its own).
    """
    owner = defining_class(cls, name)
    return (
        owner is not None
        and owner.__name__ == "Callback"
        and owner.__bases__ == (object,)
        and vars(owner)[name] is func
    )


def wants(callback: Any, hook: str) -> bool:
    """Return whether ``callback`` is to be called for ``hook``: it overrides it and wants it."""
    if not overrides(callback, hook):
        return False
    wants_hook = getattr(callback, "wants_hook", None)
    return bool(wants_hook(hook)) if callable(wants_hook) else True


def overridden_below(callback: Callback, owner: type, hook: str) -> bool:
    """Return whether ``callback`` replaces ``owner``'s ``hook`` (or its legacy alias).

    True when a subclass of ``owner`` or the instance itself defines the hook: a built-in
    callback's :meth:`Callback.wants_hook` answers for its own hooks only.
    """
    names = [hook] + ([LEGACY_ALIASES[hook]] if hook in LEGACY_ALIASES else [])
    return redefined_below(callback, owner, names)
