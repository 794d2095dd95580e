"""Callbacks: Keras's hooks and built-in callbacks over cadence models."""

from cadence.callbacks.backup_and_restore import BackupAndRestore
from cadence.callbacks.callback import Callback
from cadence.callbacks.callback_list import CallbackList
from cadence.callbacks.history import History
from cadence.callbacks.mlflow_logger import MLflowLogger
from cadence.callbacks.progbar import ProgbarLogger
from cadence.callbacks.tensorboard import TensorBoard

__all__ = ["BackupAndRestore", "Callback", "CallbackList", "History", "ProgbarLogger"]
__all__ += ["MLflowLogger", "TensorBoard"]
