"""cohort.checkpoint on one process: PyTorch and NumPy state through the C++ checkpointer."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import pytest
import torch

import cohort
import cohort.checkpoint as ckpt
from conftest import run


def trained(seed=0, steps=3):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 8)).square().sum().backward()
        optimizer.step()
    return model, optimizer


def fresh(seed=1):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    return model, torch.optim.Adam(model.parameters(), lr=0.5)


def tensors_of(value, prefix=""):
    """{dotted name: tensor} of a nested state, the way the checkpoint names them."""
    out = {}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix: value} if isinstance(value, (torch.Tensor, np.ndarray)) else {}
    for key, child in items:
        out.update(tensors_of(child, f"{prefix}.{key}" if prefix else str(key)))
    return out


def test_model_and_adam_state_round_trip_bit_exact(tmp_path):
    model, optimizer = trained()
    ckpt.save({"model": model.state_dict(), "optim": optimizer.state_dict(), "epoch": 7}, tmp_path, 3)

    model2, optimizer2 = fresh()  # its optimizer has not stepped: no exp_avg yet
    state = {"model": model2.state_dict(), "optim": optimizer2.state_dict()}
    info = ckpt.load(state, tmp_path)
    model2.load_state_dict(state["model"])
    optimizer2.load_state_dict(state["optim"])

    assert info["step"] == 3 and state["epoch"] == 7
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name
    saved, loaded = optimizer.state_dict(), optimizer2.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for key, a in tensors_of(saved["state"]).items():
        b = tensors_of(loaded["state"])[key]
        assert a.dtype == b.dtype and torch.equal(a, b), key
    # The restored optimizer continues exactly as the original does.
    torch.manual_seed(9)
    x = torch.randn(5, 8)
    for m, o in ((model, optimizer), (model2, optimizer2)):
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_structure_and_values_come_back_as_saved(tmp_path):
    state = {
        "ints": {0: 1, 5: [2, 3]},
        "tuple": (1, 2.5, None, "s", True),
        "floats": [float("inf"), float("-inf")],
        "array": np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2],  # not contiguous
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "flags": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4),
    }
    ckpt.save(state, tmp_path, 1, metadata={"run": "a", "lr": 0.1})
    back = {"array": np.zeros((3, 2), dtype=np.int16)}
    info = ckpt.load(back, tmp_path, step=1)
    assert info["metadata"] == {"run": "a", "lr": 0.1}
    assert back["ints"] == {0: 1, 5: [2, 3]} and back["tuple"] == (1, 2.5, None, "s", True)
    assert back["floats"] == [float("inf"), float("-inf")]
    assert np.array_equal(back["array"], state["array"])
    assert back["scalar"].dtype == torch.float64 and back["scalar"].item() == 3.5
    assert torch.equal(back["flags"], state["flags"]) and back["empty"].shape == (0, 4)


def test_h5py_reads_every_tensor(tmp_path):
    model, optimizer = trained()
    state = {"model": model.state_dict(), "optim": optimizer.state_dict()}
    result = ckpt.save(state, tmp_path, 12)
    expected = tensors_of(state)
    with h5py.File(os.path.join(result["path"], "state.h5"), "r") as f:
        assert sorted(f["tensors"]) == sorted(expected)
        for name, tensor in expected.items():
            assert np.array_equal(f["tensors"][name][()], tensor.numpy()), name


def test_cohort_ckpt_verify_accepts_a_python_checkpoint(tmp_path, cohort_bin):
    model, optimizer = trained()
    ckpt.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, tmp_path, 4)
    r = run([cohort_bin, "ckpt", "verify", str(tmp_path)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_checkpoint_saved_from_cpp_loads(tmp_path):
    writer = os.environ.get("COHORT_CKPT_WRITER")
    if not writer:
        pytest.skip("COHORT_CKPT_WRITER does not name tests/ckpt_crash_writer (ctest sets it)")
    r = run([writer, str(tmp_path), "5", "1"])
    assert r.returncode == 0, r.stderr
    state = {"a": np.zeros((256, 1024), dtype=np.float32), "b": torch.zeros(1000)}
    assert ckpt.load_latest(state, tmp_path)["step"] == 5
    with h5py.File(tmp_path / "step-00000005" / "state.h5", "r") as f:
        assert np.array_equal(state["a"], f["tensors/a"][()])
        assert np.array_equal(state["b"].numpy(), f["tensors/b"][()])


def test_async_save_stages_before_returning(tmp_path):
    w = torch.arange(1 << 16, dtype=torch.float32)
    handle = ckpt.save({"w": w}, tmp_path, 1, async_=True)
    original = w.clone()
    w.fill_(-1)  # the caller may change its tensors at once
    assert handle.wait()["step"] == 1 and handle.done()
    back = {"w": torch.zeros_like(w)}
    ckpt.load(back, tmp_path)
    assert torch.equal(back["w"], original)


def test_async_save_error_arrives_at_wait(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    handle = ckpt.save({"w": torch.zeros(2)}, tmp_path / "file" / "ckpt", 1, async_=True)
    with pytest.raises(cohort.Error, match="cannot create checkpoint directory"):
        handle.wait()


def test_load_latest_passes_over_a_damaged_checkpoint(tmp_path, capfd):
    ckpt.save({"w": torch.full((1024,), 1.0), "epoch": 1}, tmp_path, 1)
    ckpt.save({"w": torch.full((1024,), 2.0), "epoch": 2, "note": "two"}, tmp_path, 2)
    # The manifest says which rank file holds the tensor's bytes, and where.
    manifest = json.loads((tmp_path / "step-00000002" / "manifest.json").read_text())
    piece = next(t for t in manifest["tensors"] if t["name"] == "w")["pieces"][0]
    path = tmp_path / "step-00000002" / piece["file"]
    offset = piece["offset"]
    data = bytearray(path.read_bytes())
    data[offset + 10] ^= 0xFF  # one byte of the tensor's data
    path.write_bytes(bytes(data))
    state = {"w": torch.zeros(1024)}
    info = ckpt.load_latest(state, tmp_path)
    assert info["step"] == 1 and [s for s, _ in info["skipped"]] == [2]
    # The values around the tensors are step 1's too, not those of the step passed over.
    assert torch.equal(state["w"], torch.full((1024,), 1.0)) and state["epoch"] == 1 and "note" not in state
    assert "2" in capfd.readouterr().err


def test_latest_step_and_retention(tmp_path):
    assert ckpt.latest_step(tmp_path / "none") is None
    assert ckpt.load_latest({"w": torch.zeros(1)}, tmp_path / "none") is None
    for step in range(1, 6):
        result = ckpt.save({"w": torch.zeros(1)}, tmp_path, step, retention=2)
    assert result["pruned"] == [3]
    assert ckpt.latest_step(tmp_path) == 5 and ckpt.steps(tmp_path) == [4, 5]


def test_sharded_tensor_on_one_rank_is_the_whole_tensor(tmp_path):
    w = torch.arange(12.0).reshape(4, 3)
    ckpt.save({"w": ckpt.Sharded(w)}, tmp_path, 1)
    rows = {"w": ckpt.Sharded(torch.zeros(4, 3))}
    ckpt.load(rows, tmp_path)
    assert torch.equal(rows["w"].tensor, w)
    whole = {"w": torch.zeros(4, 3)}  # a sharded tensor loads whole into a replicated one
    ckpt.load(whole, tmp_path)
    assert torch.equal(whole["w"], w)


def refused(fn, *words):
    with pytest.raises(cohort.InputError) as e:
        fn()
    for w in words:
        assert w in str(e.value), str(e.value)
    return e.value


def test_unsupported_object_names_its_key_and_commits_nothing(tmp_path):
    refused(lambda: ckpt.save({"model": {"layer": object()}}, tmp_path, 1), "model.layer")
    assert not tmp_path.joinpath("step-00000001").exists() and ckpt.steps(tmp_path) == []


def test_name_with_slash_names_the_key_and_commits_nothing(tmp_path):
    refused(lambda: ckpt.save({"a/b": torch.zeros(2), "c": torch.zeros(2)}, tmp_path, 1), "a/b")
    assert ckpt.latest_step(tmp_path) is None


def test_unsupported_dtype_names_the_key(tmp_path):
    refused(lambda: ckpt.save({"w": torch.zeros(2, dtype=torch.bfloat16)}, tmp_path, 1), "'w'", "bfloat16")
    assert ckpt.latest_step(tmp_path) is None


def test_mismatched_shape_or_dtype_on_load_names_the_key(tmp_path):
    ckpt.save({"model": {"w": torch.zeros(2, 3)}, "epoch": 1}, tmp_path, 1)
    state = {"model": {"w": torch.ones(3, 3)}, "epoch": 0}
    refused(lambda: ckpt.load(state, tmp_path), "model.w", "[2, 3]", "[3, 3]")
    assert state["epoch"] == 0, "a refused load changed the state"
    refused(lambda: ckpt.load({"model": {"w": torch.zeros(2, 3, dtype=torch.float64)}}, tmp_path), "model.w", "float64")
    refused(lambda: ckpt.load({"model": {"w": torch.zeros(2, 3), "v": torch.zeros(1)}}, tmp_path), "model.v")


def test_missing_directory_is_an_input_error(tmp_path):
    refused(lambda: ckpt.load({"w": torch.zeros(1)}, tmp_path / "missing"), str(tmp_path / "missing"))
    refused(lambda: ckpt.save({"w": torch.zeros(1)}, "/proc/no/such/dir", 1), "/proc/no/such/dir")


WRITE_AS_NOBODY = """
import sys, torch, cohort, cohort.checkpoint as ckpt
try:
    ckpt.save({"w": torch.zeros(2)}, sys.argv[1], 1)
except cohort.InputError as e:
    print(e, file=sys.stderr); sys.exit(2)
"""


def test_read_only_directory_is_an_input_error_and_commits_nothing(tmp_path):
    if os.geteuid() == 0:
        # Root ignores directory permissions: the save runs as the user nobody, under a folder
        # that user can reach (pytest's own are root's alone).
        with tempfile.TemporaryDirectory() as top:
            os.chmod(top, 0o755)
            read_only_as_nobody(pathlib.Path(top) / "ro")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        refused(lambda: ckpt.save({"w": torch.zeros(2)}, ro, 1), "cannot write in checkpoint directory", str(ro))
        assert list(ro.iterdir()) == []


def read_only_as_nobody(ro):
    ro.mkdir()
    ro.chmod(0o555)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
             WRITE_AS_NOBODY, str(ro)], env=env)
    assert r.returncode == 2, r.stderr
    assert "cannot write in checkpoint directory" in r.stderr and str(ro) in r.stderr
    assert list(ro.iterdir()) == []


def test_state_must_be_a_dict(tmp_path):
    refused(lambda: ckpt.save([torch.zeros(1)], tmp_path, 1), "dict")
    refused(lambda: ckpt.save({(1, 2): torch.zeros(1)}, tmp_path, 1), "(1, 2)")


SAVE_FOREVER = """
import sys, torch, cohort.checkpoint as ckpt
state = {f"t{i}": torch.full((1 << 20,), float(i)) for i in range(32)}
step = 0
while True:
    ckpt.save(state, sys.argv[1], step, retention=2)
    if step == 0:
        print("saved", flush=True)
    step += 1
"""


def test_ctrl_c_during_saves_leaves_only_whole_checkpoints(tmp_path, cohort_bin):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    saver = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    assert saver.stdout.readline() == "saved\n", saver.stderr.read()
    time.sleep(0.3)  # into a later save
    saver.send_signal(signal.SIGINT)
    _, err = saver.communicate(timeout=120)
    assert "KeyboardInterrupt" in err, err
    assert ckpt.steps(tmp_path), "no checkpoint survived"
    for step in ckpt.steps(tmp_path):
        r = run([cohort_bin, "ckpt", "verify", str(tmp_path / f"step-{step:08d}")])
        assert r.returncode == 0, r.stdout + r.stderr
    back = {f"t{i}": torch.zeros(1 << 20) for i in range(32)}
    ckpt.load(back, tmp_path)
    assert all(torch.equal(back[f"t{i}"], torch.full((1 << 20,), float(i))) for i in range(32))
