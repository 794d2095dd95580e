"""Stand-ins for the seeds' data sets (MNIST cannot be downloaded here): same shapes and ranges."""

import numpy as np


def mnist_like(n_train=1000, n_test=1000, seed=0):
    """Return (x_train, y_train), (x_test, y_test) shaped like the seeds' flattened MNIST."""
    rng = np.random.default_rng(seed)
    x_train = rng.random((n_train, 784), dtype=np.float32)
    x_test = rng.random((n_test, 784), dtype=np.float32)
    # Targets depend on the inputs so that the regression can actually learn something.
    w = rng.normal(size=784).astype(np.float32) / 10
    y_train = np.clip(np.round(x_train @ w + 4.5), 0, 9).astype(np.float32)
    y_test = np.clip(np.round(x_test @ w + 4.5), 0, 9).astype(np.float32)
    return (x_train, y_train), (x_test, y_test)
