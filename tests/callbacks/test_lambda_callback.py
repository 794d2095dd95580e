"""LambdaCallback: any hook by keyword, dispatched by CallbackList through fit/evaluate/predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import CallbackList, LambdaCallback
from cadence.callbacks.callback import HOOKS


def make_model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse")
    return model


def data(n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def recording_callback(calls, hooks=HOOKS):
    """A LambdaCallback with every hook recording (name, index or None, sorted log keys)."""
    functions = {}
    for hook in hooks:
        if "batch" in hook or "epoch" in hook:
            functions[hook] = lambda i, logs, _h=hook: calls.append((_h, i, sorted(logs or {})))
        else:
            functions[hook] = lambda logs, _h=hook: calls.append((_h, None, sorted(logs or {})))
    return LambdaCallback(**functions)


def test_every_hook_is_dispatched_through_fit_evaluate_and_predict():
    calls = []
    callback = recording_callback(calls)
    x, y = data(8)
    model = make_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x[:4], y[:4]), callbacks=[callback])
    model.evaluate(x[:4], y[:4], batch_size=4, verbose=0, callbacks=[callback])
    model.predict(x[:4], batch_size=4, verbose=0, callbacks=[callback])
    keys = ["loss"]
    assert calls == [
        ("on_train_begin", None, []),
        ("on_epoch_begin", 0, []),
        ("on_train_batch_begin", 0, []), ("on_train_batch_end", 0, keys),
        ("on_train_batch_begin", 1, []), ("on_train_batch_end", 1, keys),
        ("on_test_begin", None, []),
        ("on_test_batch_begin", 0, []), ("on_test_batch_end", 0, keys),
        ("on_test_end", None, keys),
        ("on_epoch_end", 0, ["loss", "val_loss"]),
        ("on_train_end", None, ["loss", "val_loss"]),
        ("on_test_begin", None, []),
        ("on_test_batch_begin", 0, []), ("on_test_batch_end", 0, keys),
        ("on_test_end", None, keys),
        ("on_predict_begin", None, []),
        ("on_predict_batch_begin", 0, []), ("on_predict_batch_end", 0, ["outputs"]),
        ("on_predict_end", None, []),
    ]


def test_callback_list_sees_only_the_hooks_given():
    callback = LambdaCallback(on_epoch_end=lambda epoch, logs: None, on_test_end=lambda logs: None)
    callbacks = CallbackList([callback])
    wanted = {hook for hook in HOOKS if callbacks.wants(hook)}
    assert wanted == {"on_epoch_end", "on_test_end"}


def test_functions_get_positional_arguments_whatever_their_names():
    seen = []
    callback = LambdaCallback(on_epoch_end=lambda e, lg: seen.append((e, lg)),
                              on_train_begin=lambda lg: seen.append(lg))
    x, y = data()
    history = make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert seen == [{}, (0, {"loss": history.history["loss"][0]}), (1, {"loss": history.history["loss"][1]})]


def test_legacy_on_batch_end_fires_for_training_batches():
    seen = []
    callback = LambdaCallback(on_batch_begin=lambda b, lg: seen.append(("begin", b)),
                              on_batch_end=lambda b, lg: seen.append(("end", b, sorted(lg))))
    assert CallbackList([callback]).wants("on_train_batch_end")
    x, y = data()
    make_model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert seen == [("begin", 0), ("end", 0, ["loss"]), ("begin", 1), ("end", 1, ["loss"])]


def test_seed_style_stop_from_a_lambda():
    x, y = data()
    model = make_model()
    stopper = LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1))
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[stopper])
    assert history.epoch == [0, 1]


def test_extra_keywords_are_kept_as_attributes_as_keras_does():
    def custom(logs):
        return logs

    callback = LambdaCallback(custom_method=custom, threshold=0.5)
    assert callback.custom_method is custom and callback.threshold == 0.5


def test_a_misspelt_hook_is_kept_but_warns_listing_the_valid_hooks():
    with pytest.warns(UserWarning, match=r"^LambdaCallback received on_epoch_ends, on_step, which name no hook: kept "
                      r"as attributes \(as Keras does\) but never called\. Valid hooks are: on_train_begin, "
                      r"on_train_end, .*on_predict_batch_end, on_batch_begin, on_batch_end\.$"):
        callback = LambdaCallback(on_step=print, on_epoch_ends=print)
    assert callback.on_step is print


def test_non_callable_is_refused():
    with pytest.raises(TypeError, match=r"LambdaCallback on_epoch_end must be callable or None; received int: 3\."):
        LambdaCallback(on_epoch_end=3)


def test_none_keeps_the_base_hook():
    callback = LambdaCallback(on_epoch_end=None, on_test_end=None)
    assert not any(CallbackList([callback]).wants(hook) for hook in HOOKS)
    assert callback.state_dict() == {}


def test_return_value_is_passed_through():
    callback = LambdaCallback(on_train_end=lambda logs: "done")
    assert callback.on_train_end({}) == "done"
