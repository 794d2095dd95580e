"""SwapEMAWeights: keep an exponential moving average of the weights and evaluate with it."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from cadence.callbacks.callback import Callback

_OWNER = "SwapEMAWeights"


class SwapEMAWeights(Callback):
    """Keep an EMA of the model's weights and swap it in for validation, evaluation and prediction.

    Keras 3's ``SwapEMAWeights`` swaps in the EMA that an optimizer built with ``use_ema=True``
    keeps. Torch optimizers keep none, so this callback keeps it itself: after every optimizer
    step of ``fit`` it updates, on the device and with ``torch._foreach`` ops (no host-device
    synchronisation),

    ``ema = decay * ema + (1 - decay) * weight``

    for every floating-point parameter of the model (buffers such as BatchNorm's running
    statistics are not averaged, as in Keras). As in Keras, the first update copies the weights
    (``ema = weight`` after the first optimizer step). A batch after which the optimizer did not
    step (gradient accumulation, a step skipped by the float16 gradient scaler) does not update the
    average: the callback compares ``model.optimizer.iterations`` with its last value.

    When the weights are swapped:

    - ``on_test_begin`` / ``on_test_end``: validation inside ``fit`` (and ``evaluate`` or
      ``predict`` when the callback is passed to them) runs with the EMA weights; the trained
      weights are put back afterwards.
    - ``swap_on_epoch=True``: the EMA weights are also swapped in at every epoch end, so callbacks
      after this one in the list (``ModelCheckpoint``, ``BackupAndRestore``) save the EMA weights;
      they are swapped out again at the next epoch begin. Put ``SwapEMAWeights`` before
      ``ModelCheckpoint`` in the callbacks list.
    - ``finalize=True`` (default): at the end of ``fit`` the EMA weights are written into the model,
      as a Keras optimizer with ``use_ema=True`` does, so ``evaluate``, ``predict`` and
      ``save_weights`` after ``fit`` use them. With ``finalize=False`` the trained weights stay.

    :meth:`state_dict` holds the EMA tensors, the update count, the optimizer step last seen and,
    while the EMA is swapped in, the trained weights it replaced, so ``BackupAndRestore`` resumes
    the average exactly.

    Args:
        swap_on_epoch: Also swap the EMA weights in at epoch end (see above).
        decay: The EMA's decay (Keras's ``ema_momentum``), in [0, 1).
        finalize: Write the EMA weights into the model when ``fit`` ends.
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True  # batch logs are never read, so the per-batch update is sync-free

    def __init__(self, swap_on_epoch: bool = False, decay: float = 0.999, finalize: bool = True) -> None:
        super().__init__()
        if not isinstance(swap_on_epoch, bool):
            raise TypeError(f"{_OWNER}: swap_on_epoch must be True or False; received {swap_on_epoch!r}.")
        if not isinstance(finalize, bool):
            raise TypeError(f"{_OWNER}: finalize must be True or False; received {finalize!r}.")
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
            raise ValueError(f"{_OWNER}: decay must be a number in [0, 1); received decay={decay!r}.")
        self.swap_on_epoch = swap_on_epoch
        self.decay = float(decay)
        self.finalize = finalize
        self.updates = 0
        self._ema: list[torch.Tensor] | None = None
        self._backup: list[torch.Tensor] | None = None
        self._in_model = False
        self._swapped_for_eval = False
        self._seen_iterations: int | None = None

    @property
    def ema_weights(self) -> list[torch.Tensor] | None:
        """The EMA tensors, one per floating-point parameter (``None`` before the first update)."""
        return self._ema

    @property
    def ema_in_model(self) -> bool:
        """Whether the model currently holds the EMA weights (swapped in)."""
        return self._in_model

    def _params(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.is_floating_point()]

    def _sync_ema(self, params: list[torch.Tensor]) -> None:
        """Check the EMA matches the parameters and put it on their devices and dtypes."""
        for name, tensors in (("EMA", self._ema), ("saved weights", self._backup)):
            if tensors is None:
                continue
            shapes = [tuple(t.shape) for t in tensors]
            expected = [tuple(p.shape) for p in params]
            if shapes != expected:
                raise ValueError(
                    f"{_OWNER}: the {name} holds {len(shapes)} tensors of shapes {shapes}, but the "
                    f"model has {len(expected)} floating-point parameters of shapes {expected}. "
                    "Use one SwapEMAWeights per model."
                )
        if self._ema is not None:
            self._ema = [e.to(device=p.device, dtype=p.dtype) for e, p in zip(self._ema, params, strict=True)]
        if self._backup is not None:
            self._backup = [
                b.to(device=p.device, dtype=p.dtype) for b, p in zip(self._backup, params, strict=True)
            ]

    def _optimizer_iterations(self) -> int | None:
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return iterations if isinstance(iterations, int) else None

    @torch.no_grad()
    def _update(self) -> None:
        params = self._params()
        if self._ema is None:
            self._ema = [p.detach().clone() for p in params]
        else:
            torch._foreach_mul_(self._ema, self.decay)
            torch._foreach_add_(self._ema, params, alpha=1.0 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def _swap_in(self) -> None:
        params = self._params()
        if self._backup is None:
            self._backup = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(self._backup, params)
        torch._foreach_copy_(params, self._ema)
        self._in_model = True

    @torch.no_grad()
    def _swap_out(self) -> None:
        torch._foreach_copy_(self._params(), self._backup)
        self._in_model = False

    def on_train_begin(self, logs=None):
        """Check a restored EMA against the model and remember the optimizer's step count."""
        self._sync_ema(self._params())
        if self._seen_iterations is None:
            self._seen_iterations = self._optimizer_iterations()

    def on_epoch_begin(self, epoch, logs=None):
        """With ``swap_on_epoch``, put the trained weights back before training the epoch."""
        if self.swap_on_epoch and self._in_model:
            self._swap_out()

    def on_train_batch_end(self, batch, logs=None):
        """Update the EMA if the optimizer stepped during this batch."""
        iterations = self._optimizer_iterations()
        if iterations is not None and iterations == self._seen_iterations:
            return
        self._seen_iterations = iterations
        self._update()

    def on_epoch_end(self, epoch, logs=None):
        """With ``swap_on_epoch``, swap the EMA weights in so later callbacks save them."""
        if self.swap_on_epoch and not self._in_model and self._ema is not None:
            self._swap_in()

    def on_train_end(self, logs=None):
        """With ``finalize``, leave the EMA weights in the model; otherwise the trained ones."""
        if self._ema is None:
            return
        if self.finalize:
            if not self._in_model:
                with torch.no_grad():
                    torch._foreach_copy_(self._params(), self._ema)
            self._in_model = False
        elif self._in_model:
            self._swap_out()

    def _begin_eval(self) -> None:
        if self.model is not None and not self._in_model and self._ema is not None:
            self._sync_ema(self._params())
            self._swap_in()
            self._swapped_for_eval = True

    def _end_eval(self) -> None:
        if self._swapped_for_eval:
            self._swapped_for_eval = False
            self._swap_out()

    def on_test_begin(self, logs=None):
        """Swap the EMA weights in for validation or evaluation."""
        self._begin_eval()

    def on_test_end(self, logs=None):
        """Put the trained weights back after validation or evaluation."""
        self._end_eval()

    def on_predict_begin(self, logs=None):
        """Swap the EMA weights in for prediction."""
        self._begin_eval()

    def on_predict_end(self, logs=None):
        """Put the trained weights back after prediction."""
        self._end_eval()

    def state_dict(self) -> dict[str, Any]:
        """Return the EMA tensors, the update count and the swap state."""
        def copy(tensors: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
            return None if tensors is None else [t.detach().clone() for t in tensors]

        return {
            "ema": copy(self._ema),
            "updates": self.updates,
            "seen_iterations": self._seen_iterations,
            "in_model": self._in_model,
            "backup": copy(self._backup) if self._in_model else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`."""
        self._ema = None if state["ema"] is None else [t.detach().clone() for t in state["ema"]]
        self.updates = int(state["updates"])
        seen = state["seen_iterations"]
        self._seen_iterations = None if seen is None else int(seen)
        self._in_model = bool(state["in_model"])
        backup = state["backup"]
        self._backup = None if backup is None else [t.detach().clone() for t in backup]
        self._swapped_for_eval = False
        if self.model is not None:
            self._sync_ema(self._params())
