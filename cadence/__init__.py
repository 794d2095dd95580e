"""cadence: Keras's ``fit()`` and its whole callback system, over plain PyTorch modules."""

from cadence import backend, callbacks, data, losses, metrics, optimizers
from cadence.model import Model, Sequential

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Sequential",
    "backend",
    "callbacks",
    "data",
    "losses",
    "metrics",
    "optimizers",
]
