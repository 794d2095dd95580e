"""cadence.summary: tf.summary's writer, default step and summaries, read back from the event file."""

from __future__ import annotations

import io as _io

import numpy as np
import pytest
import torch

import cadence as tf

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read(logdir):
    accumulator = EventAccumulator(str(logdir), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def decode_png(encoded):
    from PIL import Image

    return np.asarray(Image.open(_io.BytesIO(encoded)))


def test_no_default_writer_writes_nothing_and_returns_false(tmp_path):
    writer = tf.summary.create_file_writer(tmp_path)
    assert tf.summary.scalar("loss", 0.5, step=0) is False
    assert not list(tmp_path.iterdir())  # The event file opens with the first summary.
    with writer.as_default():
        assert tf.summary.scalar("loss", 0.5, step=0) is True


def test_scalars_with_explicit_and_default_steps(tmp_path):
    writer = tf.summary.create_file_writer(tmp_path / "run")
    with writer.as_default(step=7):
        tf.summary.scalar("a", torch.tensor(0.25))
        tf.summary.scalar("a", np.float32(0.5), step=9)
    step = torch.tensor(11)
    with writer.as_default(step=step):
        step += 1  # A counter that changes is read when the summary is written, as tf.Variable.
        tf.summary.scalar("a", 1.0)
    tf.summary.experimental.set_step(20)
    assert tf.summary.experimental.get_step() == 20
    with writer.as_default():
        tf.summary.scalar("a", 2)
    tf.summary.experimental.set_step(None)
    assert [(e.step, e.value) for e in read(tmp_path / "run").Scalars("a")] == [
        (7, 0.25), (9, 0.5), (12, 1.0), (20, 2.0)
    ]


def test_a_summary_without_any_step_raises_tensorflows_message(tmp_path):
    with tf.summary.create_file_writer(tmp_path).as_default():
        with pytest.raises(ValueError, match=r"^No step set\. Please specify one either through the `step` "
                           r"argument or through tf\.summary\.experimental\.set_step\(\)$"):
            tf.summary.scalar("a", 1.0)


def test_image_pixels_as_tensorflow_converts_them(tmp_path):
    rgba = np.zeros((1, 2, 3, 4), dtype=np.uint8)
    rgba[0, 1, 2] = [10, 20, 30, 255]
    floats = np.array([[[[0.0], [0.5], [1.0], [2.0]]]])  # 1 image, 1x4, one channel
    with tf.summary.create_file_writer(tmp_path).as_default(step=3):
        tf.summary.image("cm", rgba)
        tf.summary.image("grey", floats)
        tf.summary.image("many", np.zeros((5, 2, 2, 3), np.uint8), max_outputs=2)
    events = read(tmp_path)
    (cm,) = events.Images("cm")
    assert (cm.step, cm.width, cm.height) == (3, 3, 2)
    np.testing.assert_array_equal(decode_png(cm.encoded_image_string), rgba[0])
    (grey,) = events.Images("grey")
    # TensorFlow: clip to [0, 1], times 255.5, truncated (convert_image_dtype with saturate).
    assert decode_png(grey.encoded_image_string)[0, :, 0].tolist() == [0, 127, 255, 255]
    assert sorted(tag for tag in events.Tags()["images"] if tag.startswith("many")) == [
        "many/image/0", "many/image/1"
    ]


def test_histogram_and_text(tmp_path):
    values = np.arange(10, dtype=np.float32)
    with tf.summary.create_file_writer(tmp_path).as_default():
        tf.summary.histogram("w", torch.from_numpy(values), step=2, buckets=5)
        tf.summary.text("note", "**hello**", step=4)
    events = read(tmp_path)
    (histogram,) = events.Histograms("w")
    assert histogram.step == 2
    assert (histogram.histogram_value.min, histogram.histogram_value.max) == (0.0, 9.0)
    assert histogram.histogram_value.num == 10 and histogram.histogram_value.sum == 45.0
    buckets = list(histogram.histogram_value.bucket)
    assert buckets[-5:] == [2, 2, 2, 2, 2] and sum(buckets) == 10  # 5 equal-width buckets of 2 values
    (note,) = events.Tensors("note/text_summary")
    assert note.step == 4 and note.tensor_proto.string_val == [b"**hello**"]


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: tf.summary.scalar("s", [1.0, 2.0], step=0), ValueError,
     r"tf\.summary\.scalar 's' needs a single number; received shape \(2,\) of float64\."),
    (lambda: tf.summary.image("i", np.zeros((2, 2, 3)), step=0), ValueError,
     r"needs images shaped \[k, h, w, c\] with c in 1, 3 or 4; received shape \(2, 2, 3\)\."),
    (lambda: tf.summary.image("i", np.zeros((1, 2, 2, 3), np.int32), step=0), TypeError,
     r"tf\.summary\.image 'i' needs uint8 or floating-point pixels; received int32\."),
    (lambda: tf.summary.histogram("h", [1.0], step=0, buckets=0), ValueError,
     r"tf\.summary\.histogram needs buckets >= 1; received buckets=0\."),
    (lambda: tf.summary.text("t", 3, step=0), TypeError, r"tf\.summary\.text 't' needs a string; received int\."),
    (lambda: tf.summary.create_file_writer(""), ValueError,
     r"create_file_writer needs a non-empty logdir; received logdir=''\."),
])
def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, call, error, message):
    with tf.summary.create_file_writer(tmp_path).as_default():
        with pytest.raises(error, match=message):
            call()
    assert not list(tmp_path.iterdir())


def test_noop_writer_and_closed_writer(tmp_path):
    with tf.summary.create_noop_writer().as_default(step=0):
        assert tf.summary.scalar("a", 1.0) is False
    writer = tf.summary.create_file_writer(tmp_path)
    writer.close()
    with writer.as_default(step=0), pytest.raises(RuntimeError, match=r"summary writer of '.*' is closed\."):
        tf.summary.scalar("a", 1.0)
