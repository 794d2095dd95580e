"""cadence: Keras's ``fit()`` and its whole callback system, over plain PyTorch modules."""

from cadence import (
    activations,
    backend,
    callbacks,
    data,
    integrations,
    keras,
    losses,
    metrics,
    optimizers,
    summary,
    utils,
)
from cadence.model import Model
from cadence.saving import load_model
from cadence.sequential import Sequential

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "data",
    "integrations",
    "losses",
    "metrics",
    "optimizers",
    "summary",
    "keras",
    "load_model",
    "utils",
]
