import pytest
import torch

from cadence import metrics

torchmetrics = pytest.importorskip("torchmetrics")


def test_get_wraps_torchmetrics_metric_with_snake_case_name():
    adapter = metrics.get(torchmetrics.classification.MulticlassAccuracy(num_classes=3))
    assert type(adapter) is metrics.TorchMetricsAdapter
    assert adapter.name == "multiclass_accuracy"
    assert metrics.resolve(torchmetrics.MeanSquaredError()).name == "mean_squared_error"


def test_update_passes_predictions_first_and_result_computes():
    adapter = metrics.get(
        torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
    )
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    adapter.update_state(torch.tensor([0, 1, 1, 0]), logits)
    assert adapter.result().item() == pytest.approx(0.75)
    adapter.reset_state()
    adapter.update_state(torch.tensor([0]), logits[:1])
    assert adapter.result().item() == 1.0


def test_sample_weight_is_refused():
    adapter = metrics.get(torchmetrics.MeanSquaredError())
    with pytest.raises(
        ValueError,
        match=r"Metric 'mean_squared_error' wraps torchmetrics\.MeanSquaredError, which does "
        r"not support `sample_weight`\.",
    ):
        adapter.update_state(torch.zeros(2), torch.ones(2), sample_weight=torch.ones(2))


def test_state_dict_round_trip():
    first = metrics.get(torchmetrics.MeanSquaredError())
    first.update_state(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0]))
    second = metrics.get(torchmetrics.MeanSquaredError())
    second.load_state_dict(first.state_dict())
    assert second.result().item() == pytest.approx(2.0)
    assert [t.tolist() for t in second.state_tensors()] == [[4.0], 2]


def test_load_state_dict_rejects_other_keys():
    adapter = metrics.get(torchmetrics.MeanSquaredError())
    with pytest.raises(
        ValueError,
        match=r"expected keys \['sum_squared_error', 'total'\], received \['total'\]\.",
    ):
        adapter.load_state_dict({"total": torch.tensor(1)})


def test_states_not_reduced_by_sum_cannot_be_all_reduced():
    adapter = metrics.get(torchmetrics.MaxMetric())
    with pytest.raises(ValueError, match=r"reduces its state 'max_value' with"):
        adapter.state_tensors()


def test_torchmetrics_objects_train_end_to_end_with_their_names_and_resume(tmp_path):
    import torchmetrics
    from torch import nn

    import cadence
    from cadence import callbacks

    def run(crash_at_epoch=None, epochs=3):
        torch.manual_seed(0)
        model = cadence.Sequential(nn.Linear(4, 1))
        model.compile(optimizer="sgd", loss=cadence.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[torchmetrics.classification.BinaryAccuracy(),
                               torchmetrics.classification.BinaryAUROC()])
        g = torch.Generator().manual_seed(1)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, :1] > 0).float()

        class Crash(callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == crash_at_epoch:
                    raise RuntimeError("crash")

        extra = [Crash()] if crash_at_epoch is not None else []
        return model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, validation_split=0.25,
                         callbacks=[callbacks.BackupAndRestore(tmp_path / "backup", save_freq=2), *extra])

    reference = run()
    assert sorted(reference.history) == ["binary_accuracy", "binary_auroc", "loss",
                                         "val_binary_accuracy", "val_binary_auroc", "val_loss"]
    assert all(0.0 <= v <= 1.0 for v in reference.history["val_binary_auroc"])
    with pytest.raises(RuntimeError, match="crash"):
        run(crash_at_epoch=2)  # AUROC's list state is in every backup.
    resumed = run()
    assert resumed.history == reference.history
