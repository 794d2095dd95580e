"""Integrations with other tools: SageMaker's ``metric_definitions``; Optuna pruning.

``cadence.integrations.optuna`` (``PruningCallback``) is imported on its own, as it needs the
``optuna`` extra.
"""

from cadence.integrations import sagemaker

__all__ = ["sagemaker"]
