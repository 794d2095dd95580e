"""Callbacks: Keras's hooks and built-in callbacks over cadence models."""

from cadence.callbacks.backup_and_restore import BackupAndRestore
from cadence.callbacks.callback import Callback
from cadence.callbacks.callback_list import CallbackList
from cadence.callbacks.csv_logger import CSVLogger
from cadence.callbacks.early_stopping import EarlyStopping
from cadence.callbacks.history import History
from cadence.callbacks.hyperparameter_scheduler import HyperparameterScheduler
from cadence.callbacks.lambda_callback import LambdaCallback
from cadence.callbacks.learning_rate_scheduler import LearningRateScheduler
from cadence.callbacks.metrics_logger import MetricsLogger
from cadence.callbacks.mlflow_logger import MLflowLogger
from cadence.callbacks.model_checkpoint import ModelCheckpoint
from cadence.callbacks.monitor import MonitorCallback
from cadence.callbacks.progbar import ProgbarLogger
from cadence.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from cadence.callbacks.remote_monitor import RemoteMonitor
from cadence.callbacks.swap_ema_weights import SwapEMAWeights
from cadence.callbacks.tensorboard import TensorBoard
from cadence.callbacks.terminate_on_nan import TerminateOnNaN
from cadence.callbacks.torch_scheduler import TorchScheduler
from cadence.callbacks.wandb_logger import WandbLogger

__all__ = ["BackupAndRestore", "Callback", "CallbackList", "History", "ProgbarLogger"]
__all__ += [
    "CSVLogger", "EarlyStopping", "LambdaCallback", "ModelCheckpoint", "MonitorCallback",
    "ReduceLROnPlateau", "RemoteMonitor", "TerminateOnNaN",
]
__all__ += [
    "HyperparameterScheduler", "LearningRateScheduler", "MetricsLogger", "SwapEMAWeights",
    "TorchScheduler",
]
__all__ += ["MLflowLogger", "TensorBoard", "WandbLogger"]
