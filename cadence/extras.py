"""Optional dependencies: import a package that an extra provides, or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The extra of ``pyproject.toml`` that provides each optional top-level package.
EXTRAS: dict[str, str] = {
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "matplotlib": "plot",
    "torchmetrics": "metrics",
    "wandb": "wandb",
    "optuna": "optuna",
    "torchdata": "torchdata",
    "fsspec": "remote",
    "s3fs": "remote",
    "gcsfs": "remote",
    "sklearn": "demo",
    "ipywidgets": "notebook",
}


class MissingExtraError(ImportError):
    """Raised when a feature needs an optional package that is not installed."""


def require(module: str, feature: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error that names the extra that installs it.

    Args:
        module: The module to import, e.g. ``"mlflow"`` or ``"torch.utils.tensorboard"``.
        feature: What needs it, for the message, e.g. ``"cadence.callbacks.MLflowLogger"``.
        extra: The extra that installs it; by default looked up from the top-level package.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: When the package (not one of its own dependencies' internals) is
            missing, with the ``pip install 'cadence[extra]'`` line to run.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or module
        if missing.split(".")[0] in EXTRAS:
            top = missing.split(".")[0]
        elif not (module == missing or module.startswith(missing + ".")):
            raise
        name = extra or EXTRAS.get(top, top)
        package = next((p for p, e in EXTRAS.items() if e == name), top)
        raise MissingExtraError(
            f"{feature} needs the optional package '{package}', which is not installed "
            f"(importing '{missing}' failed). Install it with: pip install 'cadence[{name}]' "
            "(or pip install 'cadence[all]')."
        ) from error
