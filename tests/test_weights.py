"""load_weights refuses a dtype change or an unknown layout unless allow_cast=True."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import cadence
from cadence import io


def make():
    torch.manual_seed(0)
    return cadence.Sequential(nn.Linear(2, 1))


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.complex64, torch.float16])
def test_a_dtype_change_is_refused_unless_asked_for(tmp_path, dtype):
    path = tmp_path / "w.pt"
    saved = {"module.0.weight": torch.tensor([[1.0, 2.0]]).to(dtype), "module.0.bias": torch.tensor([3.0])}
    io.save_state(saved, path)
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    message = (
        f"load_weights: '{path}' holds 'module.0.weight' as {dtype}; the model's 'module.0.weight' is "
        "torch.float32. Loading would cast it; pass allow_cast=True to accept that."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.load_weights(path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    if dtype.is_complex:
        return  # torch itself drops the imaginary part with a warning: not worth asking for.
    model.load_weights(path, allow_cast=True)
    assert torch.equal(model.state_dict()["module.0.weight"], torch.tensor([[1.0, 2.0]]))


def test_an_unknown_layout_is_refused_unless_asked_for(tmp_path):
    path = tmp_path / "w.pt"
    sparse = torch.tensor([[1.0, 0.0]]).to_sparse()
    io.save_state({"module.0.weight": sparse, "module.0.bias": torch.tensor([3.0])}, path)
    message = (
        f"load_weights: '{path}' holds 'module.0.weight' in the layout torch.sparse_coo; the model's "
        "weights are dense (torch.strided). Pass allow_cast=True to convert it."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make().load_weights(path)
    model = make()
    model.load_weights(path, allow_cast=True)
    assert torch.equal(model.state_dict()["module.0.weight"], torch.tensor([[1.0, 0.0]]))


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    io.save_state({"weights": [1, 2, 3]}, path)
    message = (
        f"load_weights: '{path}' is not a dict of parameter names to tensors (a state_dict); "
        "received dict in an unknown layout."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make().load_weights(path)
