"""Keras-named optimizers over torch: `get`, the optimizer specs and the Keras-style extras.

`cadence.optimizers.get(identifier, params)` is what `Model.compile` calls. Whatever it
is given, it returns a real `torch.optim.Optimizer` (an instance of the torch class) that
also has Keras's attributes: `learning_rate` / `lr`, `momentum`, `weight_decay`,
`epsilon`, `beta_1`, `beta_2`, `rho`, `iterations`, `clipnorm`, `clipvalue`,
`global_clipnorm`, `use_ema`, `ema_momentum`, `ema_overwrite_frequency`, `decay`,
`apply_gradients`, `apply`, `finalize_variable_values` and `get_config`. See
`OptimizerMixin`. `cadence.optimizers.schedules` holds Keras's learning-rate schedules.
"""

from cadence.optimizers import schedules
from cadence.optimizers.hyperparameter import Hyperparameter
from cadence.optimizers.mixin import OptimizerMixin, mixed_class, wrap
from cadence.optimizers.rate import SCHEDULE_NOT_SETTABLE, check_settable_learning_rate
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
    "SCHEDULE_NOT_SETTABLE",
    "check_settable_learning_rate",
    "get",
    "mixed_class",
    "schedules",
    "wrap",
]
