import math
import os
import pickle
import re
import stat
from collections import OrderedDict

import pytest
import torch

from cadence.io import (
    CorruptFileError,
    UnsafeFileError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    load_latest,
    load_state,
    load_torch_file,
    load_weights_file,
    rotate_write,
    save_state,
    save_weights_file,
)


def nested_state():
    return {
        "model": OrderedDict(weight=torch.arange(6.0).reshape(2, 3), bias=torch.tensor([1, 2])),
        "param": torch.nn.Parameter(torch.ones(2)),
        "callbacks": {"EarlyStopping": {"best": 0.25, "wait": 3, "mode": "min", "done": False}},
        "rng": (3, [1, 2, 3], None),
        "epoch": 7,
        "nan": float("nan"),
        "z": 1 + 2j,
        "flags": torch.tensor([True, False]),
        1: "int key",
    }


def header_and_size(path):
    data = path.read_bytes()
    end = data.index(b"\n")
    return data, end + 1, int(data[:end].split()[2])


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_bytes_and_text_create_parents(tmp_path):
    target = tmp_path / "a" / "b" / "f.bin"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t.csv", "é,1\r\nx,2\n")
    assert (tmp_path / "t.csv").read_bytes() == "é,1\r\nx,2\n".encode()
    assert sorted(os.listdir(tmp_path)) == ["a", "t.csv"]


def test_atomic_write_keeps_permission_bits(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old content")
    with pytest.raises(RuntimeError, match="^boom$"):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            assert any(name.startswith(".f.bin.tmp-") for name in os.listdir(tmp_path))
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_rejects_read_mode(tmp_path):
    with pytest.raises(ValueError, match=r"^atomic_write mode must be 'wb', 'w' or 'wt'; "
                       r"received: mode='rb'$"):
        with atomic_write(tmp_path / "f", "rb"):
            pass
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- state files


def test_state_round_trip(tmp_path):
    state = nested_state()
    save_state(state, tmp_path / "s.ckpt")
    loaded = load_state(tmp_path / "s.ckpt")
    assert loaded.keys() == state.keys()
    assert type(loaded["model"]) is OrderedDict
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert torch.equal(loaded["model"]["bias"], torch.tensor([1, 2]))
    assert loaded["model"]["bias"].dtype == torch.int64
    assert torch.equal(loaded["flags"], torch.tensor([True, False]))
    assert torch.equal(loaded["param"], torch.ones(2))
    assert loaded["callbacks"] == state["callbacks"]
    assert loaded["rng"] == (3, [1, 2, 3], None)
    assert (loaded["epoch"], loaded["z"], loaded[1]) == (7, 1 + 2j, "int key")
    assert math.isnan(loaded["nan"])
    assert os.listdir(tmp_path) == ["s.ckpt"]
    assert (tmp_path / "s.ckpt").read_bytes().startswith(b"cadence-state v1 ")


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "s.ckpt"
    save_state(nested_state(), path)
    data, start, size = header_and_size(path)
    path.write_bytes(data[: start + size - 10])
    expected = f"Corrupt file '{path}': truncated: expected {size} bytes, found {size - 10}."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(expected)}$") as info:
        load_state(path)
    assert (info.value.path, info.value.reason) == (str(path), expected.split(": ", 1)[1][:-1])


@pytest.mark.parametrize(
    ("keep", "reason"),
    [
        (0, "empty file (0 bytes)"),
        (9, "truncated: incomplete header (9 bytes)"),
        (40, "truncated: incomplete header (40 bytes)"),
    ],
)
def test_truncated_header_is_detected(tmp_path, keep, reason):
    path = tmp_path / "s.ckpt"
    save_state({"a": 1}, path)
    path.write_bytes(path.read_bytes()[:keep])
    message = f"Corrupt file '{path}': {reason}."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_state(path)


def test_flipped_byte_is_a_checksum_mismatch(tmp_path):
    path = tmp_path / "s.ckpt"
    save_state(nested_state(), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    message = f"Corrupt file '{path}': checksum mismatch (the file's bytes were altered)."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_state(path)


def test_trailing_data_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "s.ckpt"
    save_state({"a": 1}, path)
    _, _, size = header_and_size(path)
    path.write_bytes(path.read_bytes() + b"xx")
    message = f"Corrupt file '{path}': trailing data: expected {size} bytes, found {size + 2}."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_state(path)
    path.write_text("epoch,loss\n0,1.0\n")
    message = (
        f"Corrupt file '{path}': not a cadence state file or a torch file "
        "(starts with b'epoch,loss\\n0,1.0')."
    )
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_state(path)



@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"cadence-state v1 12 nothex\n", "malformed header b'cadence-state v1 12 nothex'"),
        (b"cadence-state v2 0 " + b"0" * 64 + b"\n",
         "unsupported format version 2; this cadence reads version 1"),
    ],
)
def test_bad_headers_are_refused(tmp_path, header, reason):
    path = tmp_path / "s.ckpt"
    path.write_bytes(header)
    message = f"Corrupt file '{path}': {reason}."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_state(path)

def test_truncated_plain_torch_file_is_corrupt(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    message = r"^Corrupt file '.*w\.pt': damaged zip archive \(File is not a zip file\)\.$"
    with pytest.raises(CorruptFileError, match=message):
        load_torch_file(path)


def test_a_flipped_byte_in_a_plain_torch_file_fails_its_zip_crc(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(64, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    index = bytes(data).index(torch.arange(64, dtype=torch.float32).numpy().tobytes()) + 100
    data[index] ^= 0x01
    path.write_bytes(bytes(data))
    message = (
        f"Corrupt file '{path}': checksum mismatch in the zip entry (Bad CRC-32 for file "
        "'w/data/0')."
    )
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_torch_file(path)


class MyObj:
    pass


def test_invalid_structure_is_refused_before_the_file_is_touched(tmp_path):
    path = tmp_path / "s.ckpt"
    save_state({"ok": 1}, path)
    before = path.read_bytes()
    message = (
        "Cannot save state: value at 'callbacks.EarlyStopping.best' has type 'MyObj'; "
        "expected tensors, numbers, strings, bools, None, lists, tuples or dicts."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        save_state({"callbacks": {"EarlyStopping": {"best": MyObj()}}}, path)
    in_list = r"^Cannot save state: value at 'rng\[1\]\[0\]' has type 'set';"
    with pytest.raises(TypeError, match=in_list):
        rotate_write(path, {"rng": (1, [{2}])})
    with pytest.raises(TypeError, match=r"^Cannot save state: value at '<root>' has type 'MyObj';"):
        save_state(MyObj(), path)
    message = (
        "Cannot save state: a key of 'a' has type 'tuple'; "
        "expected str, int, float, bool or None keys."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        save_state({"a": {(1, 2): 3}}, path)
    cycle = {"x": []}
    cycle["x"].append(cycle)
    with pytest.raises(ValueError, match=r"^Cannot save state: value at 'x\[0\]' contains itself"):
        save_state(cycle, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.ckpt"]


def test_shared_values_are_not_mistaken_for_cycles(tmp_path):
    shared = [1, 2]
    save_state({"a": shared, "b": shared}, tmp_path / "s.ckpt")
    assert load_state(tmp_path / "s.ckpt") == {"a": [1, 2], "b": [1, 2]}


def test_errors_pickle_round_trip():
    err = pickle.loads(pickle.dumps(CorruptFileError("f.ckpt", "checksum mismatch")))
    assert type(err) is CorruptFileError
    assert (str(err), err.path) == ("Corrupt file 'f.ckpt': checksum mismatch.", "f.ckpt")
    assert isinstance(UnsafeFileError("f", "x"), ValueError)


# ----------------------------------------------------------------------------- unsafe files


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


UNSAFE = (
    r"^Refusing to load '.*': it contains {} that weights_only loading refuses, and cadence never "
    r"runs code from files \(if you trust the file and its classes, see "
    r"torch\.serialization\.add_safe_globals\)\.$"
)


SYSTEM = UNSAFE.format(r"a pickled Python object \((posix|nt)\.system\)")


def test_the_exploit_is_real(tmp_path):
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


@pytest.mark.parametrize("loader", [load_state, load_torch_file, load_weights_file])
def test_torch_file_with_pickled_object_is_refused(tmp_path, loader):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.ones(2), "x": Exploit(marker)}, path)
    with pytest.raises(UnsafeFileError, match=SYSTEM):
        loader(path)
    assert not marker.exists()


def test_raw_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Exploit(marker), protocol=2))
    with pytest.raises(UnsafeFileError, match=SYSTEM):
        load_torch_file(path)
    path.write_bytes(pickle.dumps(Exploit(marker), protocol=4))
    frame = UNSAFE.format(r"pickle data \(Unsupported operand 149\)")
    with pytest.raises(UnsafeFileError, match=frame):
        load_state(path)
    assert not marker.exists()


def test_cadence_file_with_valid_checksum_but_pickled_object_is_refused(tmp_path):
    import hashlib
    import io

    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save([Exploit(marker)], buffer)
    payload = buffer.getvalue()
    header = f"cadence-state v1 {len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode()
    path = tmp_path / "evil.ckpt"
    path.write_bytes(header + payload)
    with pytest.raises(UnsafeFileError, match=SYSTEM):
        load_state(path)
    with pytest.raises(UnsafeFileError):
        load_latest(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- weights files


def test_safetensors_round_trip_with_shared_and_strided_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    weights = {"a": base, "tied": base, "t": base.t(), "view": base[1], "i": torch.tensor([7])}
    path = tmp_path / "w.safetensors"
    save_weights_file(weights, path)
    assert path.read_bytes()[8:9] == b"{"  # A safetensors header, not a pickle.
    loaded = load_weights_file(path)
    assert sorted(loaded) == ["a", "i", "t", "tied", "view"]
    for key, value in weights.items():
        assert torch.equal(loaded[key], value)
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_safetensors_refusals(tmp_path):
    path = tmp_path / "w.safetensors"
    message = (
        "A .safetensors file holds a dict of str to tensor; "
        "received key 'n' with a value of type 'int'."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        save_weights_file({"n": 3}, path)
    assert not path.exists()
    save_weights_file({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:-10])
    message = f"Corrupt file '{path}': truncated: the tensors need 400 bytes of data, the file has 390."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_weights_file(path)


@pytest.mark.parametrize("where", ["data", "header"])
def test_a_flipped_byte_in_a_safetensors_file_fails_its_checksum(tmp_path, where):
    path = tmp_path / "w.safetensors"
    save_weights_file({"w": torch.arange(16, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    if where == "data":
        data[-5] ^= 0x01
    else:  # The shape [16] becomes [17]: still a header safetensors itself would read.
        data = bytearray(bytes(data).replace(b'"shape":[16]', b'"shape":[17]'))
    path.write_bytes(bytes(data))
    message = f"Corrupt file '{path}': checksum mismatch (the file's bytes were altered)."
    with pytest.raises(CorruptFileError, match=f"^{re.escape(message)}$"):
        load_weights_file(path)


def test_a_safetensors_file_carries_its_checksum_and_foreign_files_load(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_weights_file({"w": torch.arange(4.0)}, path)
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    assert sorted(metadata) == ["cadence_sha256", "format"] and len(metadata["cadence_sha256"]) == 64
    save_file({"w": torch.arange(4.0)}, str(tmp_path / "other.safetensors"))  # No checksum.
    assert torch.equal(load_weights_file(tmp_path / "other.safetensors")["w"], torch.arange(4.0))


@pytest.mark.parametrize("name", ["w.pt", "w.pth", "w.bin", "w.ckpt", "weights"])
def test_torch_weights_round_trip_and_plain_torch_files(tmp_path, name):
    weights = {"w": torch.randn(3, 2), "b": torch.zeros(2)}
    save_weights_file(weights, tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(b"cadence-state v1 ")
    loaded = load_weights_file(tmp_path / name)
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    torch.save(weights, tmp_path / "plain.pt")
    plain = load_weights_file(tmp_path / "plain.pt")
    assert all(torch.equal(plain[k], weights[k]) for k in weights)
