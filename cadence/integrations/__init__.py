"""Integrations with other tools: ``sagemaker.metric_definitions`` for SageMaker Estimators."""

from cadence.integrations import sagemaker

__all__ = ["sagemaker"]
