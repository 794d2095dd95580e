"""A ``keras``-shaped namespace, so ported code keeps its spelling.

``from cadence import keras`` (for ``from tensorflow import keras``), ``import cadence as tf``
(for ``tf.keras.callbacks.Callback``), ``import cadence.keras.backend as K`` (for
``import tensorflow.keras.backend as K``) and ``from cadence.keras.utils import
register_keras_serializable`` all reach cadence's own modules: the names below are the same
objects as ``cadence.callbacks``, ``cadence.backend``, ``cadence.activations`` and so on.
"""

import sys

from cadence import activations, backend, callbacks, losses, metrics, optimizers, utils
from cadence.model import Model
from cadence.sequential import Sequential

__all__ = [
    "Model", "Sequential", "activations", "backend", "callbacks", "losses", "metrics", "optimizers",
    "utils",
]

for _name, _module in {
    "activations": activations,
    "backend": backend,
    "callbacks": callbacks,
    "losses": losses,
    "metrics": metrics,
    "optimizers": optimizers,
    "utils": utils,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
