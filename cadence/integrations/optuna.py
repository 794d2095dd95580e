"""Optuna: prune unpromising trials of a hyperparameter search from inside ``fit``.

::

    import optuna
    from cadence.integrations.optuna import PruningCallback

    def objective(trial):
        model = build(trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True))
        history = model.fit(x, y, validation_split=0.2, epochs=20,
                            callbacks=[CSVLogger(f"runs/{trial.number}.csv"),
                                       PruningCallback(trial, monitor="val_loss")])
        return history.history["val_loss"][-1]

    optuna.create_study(pruner=optuna.pruners.MedianPruner()).optimize(objective, n_trials=50)
"""

from __future__ import annotations

import warnings
from typing import Any

from cadence import extras
from cadence.callbacks.callback import Callback


class PruningCallback(Callback):
    """Report the monitored value to an Optuna trial every epoch; prune the trial when told to.

    At every epoch's end the value of ``monitor`` in the epoch's logs is reported with
    ``trial.report(value, step=epoch)`` (epochs from 0). When ``trial.should_prune()`` says so,
    training stops at that epoch's end (``model.stop_training``, agreed across ranks), so every
    callback finishes the epoch and training as usual (the CSV row written, checkpoints and
    backups complete, the loggers' runs closed); then this callback's ``on_train_end`` raises
    ``optuna.TrialPruned``, which ``model.fit`` passes on to Optuna, and the trial is recorded as
    pruned. Callbacks listed after this one do not get ``on_train_end`` of a pruned trial, so put
    it last (``BackupAndRestore`` runs after it anyway; its backup of the pruned run is kept).

    An epoch without the monitored value (no validation that epoch, with
    ``validation_freq > 1``) is not reported; a run that never has it is warned about once.

    Needs the ``optuna`` extra (``pip install 'cadence[optuna]'``).

    Args:
        trial: The ``optuna.trial.Trial`` of the objective function.
        monitor: The log key to report, e.g. ``"val_loss"`` or ``"val_accuracy"``; the study's
            direction says whether lower or higher is better.
    """

    #: Pruning stops training: in a distributed run the stop is agreed by every rank.
    may_stop_training = True

    def __init__(self, trial: Any, monitor: str = "val_loss") -> None:
        super().__init__()
        optuna = extras.require("optuna", "cadence.integrations.optuna.PruningCallback")
        if not isinstance(trial, optuna.trial.BaseTrial):
            raise TypeError(
                "PruningCallback needs an optuna trial (the argument of the objective function); "
                f"received: trial of type {type(trial).__name__}."
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be a non-empty log key; received: monitor={monitor!r}.")
        self.trial = trial
        self.monitor = monitor
        #: The epoch (from 0) at which the trial was pruned, or ``None``.
        self.pruned_epoch: int | None = None
        self._pruned_value: float | None = None
        self._reported = False

    def on_train_begin(self, logs=None):
        """Forget a previous fit's pruning."""
        self.pruned_epoch = None
        self._reported = False

    def on_epoch_end(self, epoch, logs=None):
        """Report the monitored value; stop training when the trial should be pruned."""
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(value)
        self._reported = True
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_epoch, self._pruned_value = epoch, value
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Raise ``optuna.TrialPruned`` if the trial was pruned (after every epoch-end hook ran)."""
        if not self._reported:
            warnings.warn(
                f"PruningCallback never found {self.monitor!r} in the epoch logs (keys: "
                f"{sorted(logs or {})}); nothing was reported to trial {self.trial.number}.",
                stacklevel=2,
            )
        if self.pruned_epoch is not None:
            import optuna

            raise optuna.TrialPruned(
                f"Trial {self.trial.number} was pruned at epoch {self.pruned_epoch} "
                f"({self.monitor}={self._pruned_value!r})."
            )
