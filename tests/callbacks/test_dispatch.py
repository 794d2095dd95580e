"""How one callback's hook is called: the calling convention, lazy or plain logs, the order."""

from __future__ import annotations

import torch

from cadence.callbacks import BackupAndRestore, Callback, CallbackList, TerminateOnNaN
from cadence.callbacks.dispatch import ordered, reads_lazy_logs, takes_logs_keyword


def test_logs_go_by_keyword_only_to_a_method_that_takes_it():
    def named(batch, logs=None): ...
    def required(batch, logs): ...
    def keywords(batch, **kwargs): ...
    def other(batch, log): ...
    def varargs(*args): ...
    def positional_only(batch, logs, /): ...

    assert takes_logs_keyword(named) and takes_logs_keyword(required) and takes_logs_keyword(keywords)
    assert not takes_logs_keyword(other) and not takes_logs_keyword(varargs)
    assert not takes_logs_keyword(positional_only)


def test_only_batch_hooks_of_a_lazy_class_not_redefined_below_it_read_lazy_logs():
    class Mine(TerminateOnNaN):
        def on_batch_end(self, batch, logs=None):  # The legacy alias counts as the hook.
            pass

    assert reads_lazy_logs(TerminateOnNaN(), "on_train_batch_end")
    assert not reads_lazy_logs(TerminateOnNaN(), "on_epoch_end")
    assert not reads_lazy_logs(Mine(), "on_train_batch_end")
    assert not reads_lazy_logs(Callback(), "on_train_batch_end")


def test_a_backup_restores_first_and_saves_last(tmp_path):
    first, second = Callback(), Callback()
    backup = BackupAndRestore(str(tmp_path))
    assert ordered([first, backup, second], "on_train_begin") == [backup, first, second]
    assert ordered([first, backup, second], "on_epoch_end") == [first, second, backup]


def test_timed_and_untimed_dispatch_call_the_same_hooks_with_the_same_logs():
    def run(profile):
        seen = []

        class Adds(Callback):
            def on_train_batch_end(self, batch, logs=None):
                logs["lr"] = 0.5
                seen.append(("adds", batch, dict(logs)))

        class Reads(Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(("reads", batch, dict(logs)))

        class Lazy(Callback):
            accepts_lazy_logs = True

            def on_train_batch_end(self, batch, logs=None):
                seen.append(("lazy", batch, type(logs).__name__))

        callbacks = CallbackList([Lazy(), Adds(), Reads()], profile=profile)
        for batch in range(9):  # Past the slow-hook check's warm-up and timed batches.
            callbacks.on_train_batch_begin(batch)
            callbacks.on_train_batch_end(batch, {"loss": torch.tensor(float(batch))})
        return seen

    untimed, timed = run(False), run(True)
    assert untimed == timed
    assert untimed[:3] == [("lazy", 0, "dict"), ("adds", 0, {"loss": 0.0, "lr": 0.5}),
                           ("reads", 0, {"loss": 0.0, "lr": 0.5})]
