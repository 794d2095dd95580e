"""Callbacks: Keras's hooks and built-in callbacks over cadence models."""

from cadence.callbacks.backup_and_restore import BackupAndRestore
from cadence.callbacks.callback import Callback
from cadence.callbacks.callback_list import CallbackList
from cadence.callbacks.history import History
from cadence.callbacks.progbar import ProgbarLogger

__all__ = ["BackupAndRestore", "Callback", "CallbackList", "History", "ProgbarLogger"]
