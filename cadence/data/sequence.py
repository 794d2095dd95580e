"""Sequence (alias PyDataset): Keras's indexable batch source, loaded by torch's DataLoader."""

from __future__ import annotations

from typing import Any


class Sequence:
    """Base class for data sets that return whole batches by index, as ``keras.utils.Sequence``.

    Implement ``__len__`` (the number of batches per epoch) and ``__getitem__(index)`` (the
    batch at ``index``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``); optionally
    ``on_epoch_end``, which cadence calls once at the end of every epoch.

    Args:
        workers: Number of processes loading batches in parallel. With ``use_multiprocessing``
            these are torch ``DataLoader`` worker processes (each gets a copy of the sequence
            when a pass starts, after the previous epoch's ``on_epoch_end``); batches still
            arrive in index order, so training is the same with or without them. Without
            ``use_multiprocessing`` batches are loaded in the main process, in order (torch's
            loader has no thread workers).
        use_multiprocessing: Load batches in ``workers`` processes.
        max_queue_size: Batches kept ready ahead of training, over all workers.

    ``fit(..., workers=2, use_multiprocessing=True)`` (Keras 2's spelling) overrides these for
    a sequence that does not pass them to ``super().__init__`` (such as seed 003's
    ``DataGenerator``). ``on_epoch_end`` is called for training data only, never for a
    sequence given as ``validation_data``.

    A batch that is not ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` of arrays with
    one batch size, or whose structure differs from the first batch's, raises a ``ValueError``
    naming ``__getitem__(index)``.

    Subclasses need not call ``super().__init__()``: the defaults are class attributes.
    """

    workers: int = 1
    use_multiprocessing: bool = False
    max_queue_size: int = 10

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0; received workers={workers!r}.")
        if not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(
                f"max_queue_size must be an integer >= 1; received max_queue_size={max_queue_size!r}."
            )
        self.workers = workers
        self.use_multiprocessing = bool(use_multiprocessing)
        self.max_queue_size = max_queue_size

    def __getitem__(self, index: int) -> Any:
        """Return the batch at ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index).")

    def __len__(self) -> int:
        """Return the number of batches in one epoch."""
        raise NotImplementedError(f"{type(self).__name__} must implement __len__().")

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch; override to reshuffle or regenerate."""

    @property
    def num_batches(self) -> int:
        """The number of batches per epoch (``len(self)``)."""
        return len(self)


PyDataset = Sequence
