"""Keras-named optimizers over torch: `get`, the optimizer specs and the Keras-style extras.

`cadence.optimizers.get(identifier, params)` is what `Model.compile` calls. Whatever it
is given, it returns a real `torch.optim.Optimizer` (an instance of the torch class) that
also has Keras's attributes: `learning_rate` / `lr`, `momentum`, `weight_decay`,
`epsilon`, `beta_1`, `beta_2`, `rho`, `iterations`, `clipnorm`, `clipvalue`,
`global_clipnorm`, `apply_gradients`, `apply` and `get_config`. See `OptimizerMixin`.
"""

from cadence.optimizers.hyperparameter import Hyperparameter
from cadence.optimizers.mixin import OptimizerMixin, mixed_class, wrap
from cadence.optimizers.registry import NAMES, get
from cadence.optimizers.specs import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    Optimizer,
    RMSprop,
)

__all__ = [
    "NAMES",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Hyperparameter",
    "Nadam",
    "Optimizer",
    "OptimizerMixin",
    "RMSprop",
    "get",
    "mixed_class",
    "wrap",
]
