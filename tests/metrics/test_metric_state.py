import pytest
import torch

from cadence import metrics


def test_mean_with_python_int_weight_for_a_scalar_loss():
    tracker = metrics.Mean(name="loss")
    tracker.update_state(torch.tensor(2.0), sample_weight=3)
    tracker.update_state(torch.tensor(4.0), sample_weight=1)
    assert tracker.result().item() == pytest.approx((2 * 3 + 4) / 4)
    assert tracker.name == "loss"


def test_mean_of_vectors_and_weights():
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state(torch.tensor([[10.0, 20.0]]), sample_weight=torch.tensor([[0.5]]))
    assert m.result().item() == pytest.approx((6 + 15 * 0.5) / 3.5)
    # A scalar weight weights the batch mean as one sample, as in Keras.
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0], sample_weight=2)
    assert m.result().item() == 2.0
    assert m.state_dict()["count"].item() == 2.0


def test_zero_weight_contributes_nothing_and_empty_mean_is_zero():
    m = metrics.Mean()
    assert m.result().item() == 0.0
    m.update_state([5.0, 7.0], sample_weight=[0.0, 1.0])
    assert m.result().item() == 7.0


def test_sum():
    s = metrics.Sum()
    s.update_state([1.0, 2.0], sample_weight=[3.0, 0.5])
    s.update_state(torch.tensor(4.0))
    assert s.result().item() == pytest.approx(8.0)


def test_counts_stay_exact_beyond_float32_precision():
    m = metrics.Mean()
    m.update_state(torch.tensor(1.0), sample_weight=2**24)
    m.update_state(torch.tensor(0.0), sample_weight=1)
    assert m.state_dict()["count"].item() == 2**24 + 1
    assert m.result().dtype == torch.float32


def test_result_dtype_follows_dtype_argument():
    assert metrics.Mean(dtype="float64").result().dtype == torch.float64
    with pytest.raises(ValueError, match=r"Invalid metric dtype: 'int32'\. Expected a floating"):
        metrics.Mean(dtype="int32")


def test_reset_state_zeroes_in_place():
    m = metrics.MeanAbsoluteError()
    m.update_state([1.0], [[3.0]])
    before = m.state_tensors()
    m.reset_state()
    after = m.state_tensors()
    assert all(a is b for a, b in zip(before, after, strict=True))
    assert [t.item() for t in after] == [0.0, 0.0]  # total, count
    m.update_state([0.0], [[1.0]])
    assert m.result().item() == 1.0


def test_state_tensors_are_live_for_all_reduce():
    m = metrics.Accuracy()
    m.update_state([1, 2], [[1], [0]])
    total, count = m.state_tensors()
    total.add_(3.0)  # what an all-reduce with a second process would do
    count.add_(4.0)
    assert m.result().item() == pytest.approx(4 / 6)


def test_state_dict_round_trip_resumes_exactly():
    first = metrics.SparseCategoricalAccuracy()
    first.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    saved = first.state_dict()
    second = metrics.SparseCategoricalAccuracy()
    second.load_state_dict(saved)
    for m in (first, second):
        m.update_state([1], [[0.3, 0.7]])
    assert second.result().item() == first.result().item() == pytest.approx(2 / 3)
    saved["total"].add_(100.0)  # state_dict is a copy
    assert first.result().item() == pytest.approx(2 / 3)


def test_load_state_dict_rejects_other_keys():
    with pytest.raises(
        ValueError,
        match=r"Cannot load state into metric 'precision': expected keys "
        r"\['false_positives', 'true_positives'\], received \['count', 'total'\]\.",
    ):
        metrics.Precision().load_state_dict({"total": torch.tensor(1.0), "count": torch.tensor(1)})


def test_to_moves_existing_state():
    m = metrics.Mean()
    m.update_state([1.0])
    assert m.to("meta") is m
    assert m.device == torch.device("meta")
    assert [t.device.type for t in m.state_tensors()] == ["meta", "meta"]


def test_state_is_created_on_the_device_set_by_to():
    m = metrics.Sum().to("meta")
    assert m.result().device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_state_follows_inputs_to_cuda():
    m = metrics.Mean()
    m.update_state([1.0])
    m.update_state(torch.tensor([3.0], device="cuda"))
    assert m.result().device.type == "cuda"
    assert m.state_tensors()[0].dtype == torch.float64
    assert m.result().item() == 2.0


@pytest.fixture
def no_host_sync(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("host-device sync")

    for attribute in ("item", "tolist", "__float__", "__int__", "__bool__", "numpy"):
        monkeypatch.setattr(torch.Tensor, attribute, refuse)


@pytest.mark.parametrize(
    ("metric", "y_true", "y_pred"),
    [
        (metrics.Accuracy(), [[1], [2]], [[1.0], [0.0]]),
        (metrics.BinaryAccuracy(), [1, 0], [[0.7], [0.2]]),
        (metrics.SparseCategoricalAccuracy(), [1, 0], [[0.2, 0.8], [0.6, 0.4]]),
        (metrics.TopKCategoricalAccuracy(k=1), [[0, 1], [1, 0]], [[0.2, 0.8], [0.6, 0.4]]),
        (metrics.RootMeanSquaredError(), [1.0, 2.0], [[1.5], [2.0]]),
        (metrics.MeanAbsolutePercentageError(), [1.0, 2.0], [[1.5], [2.0]]),
        (metrics.BinaryCrossentropy(), [1.0, 0.0], [[0.6], [0.2]]),
        (metrics.SparseCategoricalCrossentropy(), [1, 0], [[0.2, 0.8], [0.6, 0.4]]),
        (metrics.Precision(), [1, 0], [0.7, 0.6]),
        (metrics.Recall(), [1, 0], [0.7, 0.6]),
    ],
)
def test_update_result_and_reset_do_not_sync(metric, y_true, y_pred, no_host_sync):
    y_true, y_pred = torch.tensor(y_true), torch.tensor(y_pred)
    metric.update_state(y_true, y_pred)
    metric.update_state(y_true, y_pred, sample_weight=torch.tensor([1.0, 0.5]))
    result = metric.result()
    metric.reset_state()
    assert type(result) is torch.Tensor and result.dim() == 0


def test_loss_tracker_update_does_not_sync(no_host_sync):
    tracker = metrics.Mean(name="loss")
    tracker.update_state(torch.tensor(0.5), sample_weight=32)
    result = tracker.result()
    tracker.reset_state()
    assert type(result) is torch.Tensor


def test_metric_call_updates_and_returns_result():
    m = metrics.MeanSquaredError()
    assert m([0.0], [[2.0]]).item() == 4.0
    assert m([0.0], [[0.0]]).item() == 2.0


def test_base_metric_requires_update_and_result():
    with pytest.raises(NotImplementedError, match=r"Metric must implement `update_state`\."):
        metrics.Metric().update_state()
    with pytest.raises(NotImplementedError, match=r"Metric must implement `result`\."):
        metrics.Metric().result()


def _float32_batches(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand((), generator=generator) * 100 for _ in range(count)]


def test_the_loss_tracker_adds_each_batch_in_float64():
    batches = _float32_batches(100)
    m = metrics.Mean()
    for value in batches:
        m.update_state(value, sample_weight=4)
    expected = torch.zeros((), dtype=torch.float64)
    for value in batches:
        expected += value.double() * 4
    states = m.state_dict()
    assert states["total"].dtype == torch.float64 and torch.equal(states["total"], expected)
    assert states["count"].item() == 400
    assert m.result().item() == pytest.approx(expected.item() / 400, rel=1e-7)


def test_reading_or_saving_a_mean_never_changes_its_value():
    batches = _float32_batches(100)
    quiet, watched = metrics.Mean(), metrics.Mean()
    for value in batches:
        quiet.update_state(value, sample_weight=4)
        watched.update_state(value, sample_weight=4)
        watched.result()
        watched.state_dict()
        watched.state_tensors()
    assert torch.equal(quiet.result(), watched.result())
    assert all(torch.equal(a, b) for a, b in zip(quiet.state_tensors(), watched.state_tensors(), strict=True))


def test_a_mean_resumed_from_its_state_dict_adds_in_the_same_order():
    batches = _float32_batches(70)
    straight = metrics.Mean()
    for value in batches:
        straight.update_state(value, sample_weight=4)
    first = metrics.Mean()
    for value in batches[:45]:
        first.update_state(value, sample_weight=4)
    resumed = metrics.Mean()
    resumed.load_state_dict(first.state_dict())
    for value in batches[45:]:
        resumed.update_state(value, sample_weight=4)
    assert torch.equal(resumed.result(), straight.result())
    assert resumed.state_dict().keys() == straight.state_dict().keys()
    assert all(torch.equal(resumed.state_dict()[k], straight.state_dict()[k]) for k in straight.state_dict())


def test_a_mean_refuses_a_state_of_other_keys():
    m = metrics.Mean()
    m.load_state_dict({"total": torch.tensor(6.0, dtype=torch.float64), "count": torch.tensor(3.0)})
    assert m.result().item() == 2.0
    with pytest.raises(ValueError, match=r"expected keys \['count', 'total'\], received \['total'\]"):
        m.load_state_dict({"total": torch.tensor(6.0)})


def test_a_mean_is_zero_whenever_its_count_is_zero_whatever_the_host_saw():
    m = metrics.Mean()
    assert m.result().item() == 0.0
    m.update_state(torch.tensor([1.0, 3.0]))
    assert m.result().item() == 2.0
    m.update_state(torch.tensor([5.0, 7.0]), sample_weight=torch.tensor([0.0, 0.0]))
    assert m.result().item() == 2.0
    zero = metrics.Mean()
    zero.update_state(torch.tensor([5.0]), sample_weight=torch.tensor([0.0]))
    assert zero.result().item() == 0.0
    loaded = metrics.Mean()
    loaded.update_state(torch.tensor(4.0), sample_weight=2)
    loaded.load_state_dict({"total": torch.tensor(0.0), "count": torch.tensor(0.0)})
    assert loaded.result().item() == 0.0
    summed = metrics.Mean()
    summed.update_state(torch.tensor(4.0), sample_weight=2)
    for tensor in summed.state_tensors():  # As an all-reduce would, in place.
        tensor.zero_()
    assert summed.result().item() == 0.0
    summed.reset_state()
    summed.update_state(torch.tensor(6.0), sample_weight=3)
    assert summed.result().item() == 6.0


def test_whole_number_counts_summed_on_the_host_are_in_every_read_of_the_state():
    m = metrics.Mean()
    m.update_state(torch.tensor([1.0, 2.0, 3.0]))  # count 3, known to the host
    m.update_state(torch.tensor(4.0), sample_weight=5)  # the loss tracker's form
    expected_count = 3 + 5
    expected_total = 1.0 + 2.0 + 3.0 + 4.0 * 5
    assert m.states()["count"].item() == expected_count
    assert m.state_dict() == {"total": torch.tensor(expected_total, dtype=torch.float64),
                              "count": torch.tensor(8.0, dtype=torch.float64)}
    m.update_state(torch.tensor([6.0]))
    assert [t.item() for t in m.state_tensors()] == [expected_total + 6.0, 9.0]
    m.update_state(torch.tensor([2.0]), sample_weight=0.5)  # a float weight: added at once
    assert m.result().item() == pytest.approx((expected_total + 6.0 + 1.0) / 9.5)
    m.reset_state()
    m.update_state(torch.tensor([1.0]))
    loaded = metrics.Mean()
    loaded.update_state(torch.tensor([7.0, 7.0]))  # pending count dropped by the load
    loaded.load_state_dict(m.state_dict())
    assert loaded.state_dict()["count"].item() == 1.0
    assert loaded.result().item() == 1.0
