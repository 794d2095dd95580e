"""Shared fixtures: seeded RNGs and the seeds' tiny data sets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def mnist_like():
    """Seed 002's shapes: 1000 samples of 784 features in [0, 1] and a digit label."""
    rng = np.random.default_rng(0)
    x_train = rng.random((1000, 784), dtype=np.float32)
    y_train = rng.integers(0, 10, 1000).astype(np.float32)
    x_test = rng.random((1000, 784), dtype=np.float32)
    y_test = rng.integers(0, 10, 1000).astype(np.float32)
    return x_train, y_train, x_test, y_test
