"""Sequential: a stack of modules applied in order, as ``keras.Sequential``."""

from __future__ import annotations

from torch import nn

from cadence.model import Model


class Sequential(Model):
    """A stack of modules applied in order, as ``keras.Sequential``.

    Args:
        *modules: The modules, first to last (a single list is accepted too).
    """

    def __init__(self, *modules: nn.Module) -> None:
        if len(modules) == 1 and isinstance(modules[0], list | tuple):
            modules = tuple(modules[0])
        super().__init__(nn.Sequential(*modules))

    def add(self, module: nn.Module) -> None:
        """Append a module to the stack."""
        if not isinstance(module, nn.Module):
            raise TypeError(f"Sequential.add expects a torch.nn.Module; received {module!r}.")
        self.module.append(module)
        if self.compiled:
            module.to(self.device)
