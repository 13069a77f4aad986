"""Checkpoints: safetensors + JSON, atomic, never pickle; clear errors for bad files."""

import json
import os

import numpy as np
import pytest
import safetensors.numpy

import tinyllm
from tinyllm import backend
from tinyllm.serialization import CheckpointError, CheckpointNotFoundError, load, save, write_atomic


def _host(t):
    return tinyllm.to_numpy(t.data)


def _assert_same(got, want):
    """Structural equality: Tensors compared on the host (values and dtype), the rest with ==."""
    if isinstance(want, tinyllm.Tensor) or backend.is_array(want):
        want = want.data if isinstance(want, tinyllm.Tensor) else want
        assert isinstance(got, tinyllm.Tensor)
        assert got.device == tinyllm.get_device()
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(_host(got), tinyllm.to_numpy(want))
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    else:
        assert type(got) is type(want) and got == want


def test_flat_state_dict_round_trip(tmp_path):
    sd = {"wte.weight": tinyllm.randn(5, 4), "h.0.ln_1.bias": tinyllm.zeros(4), "lm_head.weight": tinyllm.randn(5, 4)}
    path = tmp_path / "model.safetensors"
    save(sd, path)
    _assert_same(load(path), sd)
    # a flat state dict keeps its names in the file: other tools read it key for key
    assert set(safetensors.numpy.load_file(path)) == set(sd)


def test_nested_dict_with_metadata_round_trip(tmp_path):
    ckpt = {
        "model": {"wte.weight": tinyllm.randn(3, 2), "blocks": [{"w": tinyllm.ones(2)}, {"w": tinyllm.zeros(2)}]},
        "optim": {"state": {0: {"step": 7, "exp_avg": tinyllm.zeros(3, 2)}}, "param_groups": [
            {"lr": 3e-4, "betas": [0.9, 0.95], "params": [0], "name": "decay"}]},
        "step": 1200, "loss": 2.5, "best": float("inf"), "note": "ünïcode ✓", "done": False, "parent": None,
        "config": {"n_layer": 2, "tied": True, "dims": [64, 128]},
        "raw": backend.xp_for(None).arange(6, dtype=np.int64).reshape(2, 3),  # a raw device array
    }
    path = tmp_path / "ckpt.safetensors"
    save(ckpt, path)
    got = load(path)
    _assert_same(got, ckpt)
    assert list(got["optim"]["state"]) == [0]  # int keys stay ints
    assert got["best"] == float("inf")


def test_tuples_come_back_as_lists(tmp_path):
    save({"betas": (0.9, 0.999), "shape": (2, (3, 4))}, tmp_path / "t.safetensors")
    assert load(tmp_path / "t.safetensors") == {"betas": [0.9, 0.999], "shape": [2, [3, 4]]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8,
                                   np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 4)])
def test_dtypes_and_shapes_preserved(tmp_path, dtype, shape):
    host = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)
    x = tinyllm.Tensor(backend.asarray(host))
    save({"x": x}, tmp_path / "x.safetensors")
    got = load(tmp_path / "x.safetensors")["x"]
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(_host(got), host)


def test_empty_dict(tmp_path):
    save({}, tmp_path / "empty.safetensors")
    assert load(tmp_path / "empty.safetensors") == {}
    save({"nothing": {}}, tmp_path / "empty2.safetensors")
    assert load(tmp_path / "empty2.safetensors") == {"nothing": {}}


def test_non_contiguous_and_requires_grad(tmp_path):
    w = tinyllm.randn(3, 4, requires_grad=True)
    t = w.data.T  # a transposed view: not C-contiguous
    save({"w": w, "t": t}, tmp_path / "v.safetensors")
    got = load(tmp_path / "v.safetensors")
    np.testing.assert_array_equal(_host(got["t"]), tinyllm.to_numpy(w.data).T)
    assert not got["w"].requires_grad


def test_load_to_a_device_and_arrays_are_writable(tmp_path):
    save({"w": tinyllm.ones(2, 2)}, tmp_path / "w.safetensors")
    got = load(tmp_path / "w.safetensors", device="cpu")["w"]
    assert got.device == "cpu" and isinstance(got.data, np.ndarray)
    got.data += 1  # an optimizer updates loaded state in place
    assert (got.numpy() == 2).all()
    strict = load(tmp_path / "w.safetensors", device="strict")["w"]
    assert strict.device == "strict"


def test_keys_with_dots_are_disambiguated(tmp_path):
    ckpt = {"a.b": tinyllm.zeros(2), "a": {"b": tinyllm.ones(2), "b#1": tinyllm.full((2,), 2.0)}, "a.b#1": 5}
    save(ckpt, tmp_path / "d.safetensors")
    _assert_same(load(tmp_path / "d.safetensors"), ckpt)
    assert len(safetensors.numpy.load_file(tmp_path / "d.safetensors")) == 3


def test_plain_safetensors_file_loads_as_flat_dict(tmp_path):
    path = tmp_path / "hf.safetensors"
    tensors = {"b.weight": np.ones((2, 2), np.float32), "a.bias": np.arange(3, dtype=np.int64)}
    safetensors.numpy.save_file(tensors, path, metadata={"format": "pt"})
    got = load(path)
    assert list(got) == ["a.bias", "b.weight"]
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype
        np.testing.assert_array_equal(_host(got[k]), v)


# ----------------------------------------------------------------------------- what can't be saved


@pytest.mark.parametrize("obj,where", [
    ({"meta": {"fn": print}}, "meta/fn"),
    ({"s": {1, 2}}, "s"),
    ({"lr": np.float32(0.1)}, "lr"),
    ({"xs": [1, object()]}, "xs/1"),
    ({"d": {(1, 2): 3}}, "d"),
    ({"c": np.zeros(2, np.complex128)}, "c"),
])
def test_unsaveable_values_raise_type_error(tmp_path, obj, where):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(TypeError, match=f"'{where}'"):
        save(obj, path)
    assert not os.listdir(tmp_path)  # nothing written
    with pytest.raises(TypeError, match="expects a dict"):
        save([tinyllm.zeros(1)], path)


# ----------------------------------------------------------------------------- atomic writes


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save({"w": tinyllm.zeros(1)}, tmp_path / "no" / "c.safetensors")


def test_no_temp_files_left(tmp_path):
    for i in range(3):
        save({"w": tinyllm.full((2,), float(i))}, tmp_path / "c.safetensors")
    assert os.listdir(tmp_path) == ["c.safetensors"]
    assert load(tmp_path / "c.safetensors")["w"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize("fail", ["fsync", "replace", "write"])
def test_error_mid_write_keeps_the_old_file(tmp_path, monkeypatch, fail):
    path = tmp_path / "c.safetensors"
    save({"w": tinyllm.ones(3), "step": 1}, path)
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    if fail == "write":  # half the bytes reach the temp file, then the disk fills up
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise OSError("disk full (simulated)")

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, fail, boom)
    with pytest.raises(OSError, match="simulated"):
        save({"w": tinyllm.zeros(3), "step": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.safetensors"]
    assert load(path)["step"] == 1


# ----------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointNotFoundError, match="nope.safetensors"):
        load(path)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "short-header"])
def test_corrupt_files_name_the_file(tmp_path, damage):
    path = tmp_path / "ckpt.safetensors"
    save({"w": tinyllm.randn(16, 16), "step": 3}, path)
    data = path.read_bytes()
    bad = {
        "truncate": data[: len(data) - 100],
        "garbage": b"this is not a checkpoint at all, just some text" * 10,
        "empty": b"",
        "short-header": data[:20],
    }[damage]
    path.write_bytes(bad)
    with pytest.raises(CheckpointError, match="ckpt.safetensors is not a valid tinyllm checkpoint") as e:
        load(path)
    assert str(path) in str(e.value)


def test_corrupt_structure_header(tmp_path):
    path = tmp_path / "s.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, path,
                                metadata={"tinyllm.format": "1", "tinyllm.structure": '{"dict": [["w", {"tens'})
    with pytest.raises(CheckpointError, match="s.safetensors"):
        load(path)
    structure = json.dumps({"dict": [["w", {"tensor": "missing"}]]})
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, path,
                                metadata={"tinyllm.format": "1", "tinyllm.structure": structure})
    with pytest.raises(CheckpointError, match="missing"):
        load(path)
    safetensors.numpy.save_file({}, path, metadata={"tinyllm.format": "99", "tinyllm.structure": "{}"})
    with pytest.raises(CheckpointError, match="format '99'"):
        load(path)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old")

    with pytest.raises(TypeError):
        write_atomic(path, object())  # fails while writing
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
