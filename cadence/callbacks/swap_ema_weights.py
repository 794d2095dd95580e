"""SwapEMAWeights: validate, evaluate and predict with the optimizer's moving average of the weights."""

from __future__ import annotations

from typing import Any

from cadence.callbacks.callback import Callback
from cadence.optimizers.ema import NO_EMA

_OWNER = "SwapEMAWeights"


class SwapEMAWeights(Callback):
    """Swap the optimizer's EMA weights in for evaluation, and back out afterwards.

    As Keras 3's ``SwapEMAWeights``, it works with an optimizer that keeps the exponential
    moving average of the weights, ``use_ema=True`` (``cadence.optimizers.SGD(use_ema=True,
    ema_momentum=0.99)``, or ``TorchOptimizerWrapper(opt, use_ema=True)`` around a torch
    optimizer); the optimizer updates the average after every step, on the device, and saves it
    in its ``state_dict``. Any other optimizer is refused with Keras's message before any batch.

    The weights and the averages are exchanged in place (``optimizer.swap_ema_weights()``), so no
    copy of the model is kept:

    - ``on_test_begin`` / ``on_test_end``, ``on_predict_begin`` / ``on_predict_end``: validation
      inside ``fit``, and ``evaluate`` or ``predict`` given this callback, run with the EMA
      weights; the trained weights are put back afterwards.
    - ``swap_on_epoch=True``: the EMA weights are also swapped in at every epoch end, so callbacks
      after this one in the list (``ModelCheckpoint``, ``BackupAndRestore``) save the EMA weights;
      they are swapped out at the next epoch begin. Put ``SwapEMAWeights`` before
      ``ModelCheckpoint``.

    At the end of ``fit`` the optimizer writes the EMA into the weights
    (``finalize_variable_values``), as Keras does, swapped in or not. Whether the weights hold the
    EMA is the optimizer's ``ema_weights_swapped``, saved in its ``state_dict``, so
    ``BackupAndRestore`` resumes a run whose backup holds the EMA weights exactly; the callback
    itself keeps no state between hooks. The optimizer refuses to step while the EMA is swapped in.

    Args:
        swap_on_epoch: Also swap the EMA weights in at epoch end (see above).
    """

    #: Never sets ``model.stop_training``.
    may_stop_training = False

    accepts_lazy_logs = True  # its hooks read no logs

    def __init__(self, swap_on_epoch: bool = False) -> None:
        super().__init__()
        if not isinstance(swap_on_epoch, bool):
            raise TypeError(f"{_OWNER}: swap_on_epoch must be True or False; received {swap_on_epoch!r}.")
        self.swap_on_epoch = swap_on_epoch
        self._swapped_for_eval = False

    def _optimizer(self) -> Any:
        """Return the model's optimizer, refusing one without ``use_ema`` (Keras's message)."""
        optimizer = getattr(self.model, "optimizer", None)
        use_ema = getattr(optimizer, "use_ema", False)
        if use_ema is not True:
            raise ValueError(NO_EMA.format(use_ema=use_ema))
        return optimizer

    def on_train_begin(self, logs=None):
        """Refuse an optimizer without ``use_ema`` before any batch."""
        self._optimizer()

    def on_epoch_begin(self, epoch, logs=None):
        """With ``swap_on_epoch``, put the trained weights back before training the epoch."""
        if self.swap_on_epoch:
            optimizer = self._optimizer()
            if optimizer.ema_weights_swapped:
                optimizer.swap_ema_weights()

    def on_epoch_end(self, epoch, logs=None):
        """With ``swap_on_epoch``, swap the EMA weights in so later callbacks save them."""
        if self.swap_on_epoch:
            optimizer = self._optimizer()
            if not optimizer.ema_weights_swapped:
                optimizer.swap_ema_weights()

    def _begin_eval(self) -> None:
        optimizer = self._optimizer()
        if not optimizer.ema_weights_swapped:
            optimizer.swap_ema_weights()
            self._swapped_for_eval = True

    def _end_eval(self) -> None:
        if self._swapped_for_eval:
            self._swapped_for_eval = False
            self._optimizer().swap_ema_weights()

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
