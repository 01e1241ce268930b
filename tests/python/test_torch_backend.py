"""The torch.distributed backend "cohort" (cohort.torch), with real ranks: each test runs
torch_ranks.py SCENARIO under mpirun on loopback and passes when every rank printed
"OK SCENARIO". Skipped where this cohort was built without libtorch or there is no mpirun."""
import os
import shutil
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cohort._torch", reason="this cohort was built without libtorch")

HERE = os.path.dirname(os.path.abspath(__file__))
RANKS = os.path.join(HERE, "torch_ranks.py")
MPIRUN = os.environ.get("COHORT_MPIEXEC") or shutil.which("mpirun")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(**extra):
    env = dict(os.environ)
    # Only what the test gives: no launch contract or MPI identity inherited from outside.
    for name in list(env):
        if name.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_")) or name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            del env[name]
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    env.pop("COHORT_TORCH_DEVICE_BACKEND", None)
    env.update(extra)
    return env


def ranks(n, scenario, **env):
    if not MPIRUN:
        pytest.skip("no mpirun (install openmpi-bin)")
    done = subprocess.run([MPIRUN, "-n", str(n), sys.executable, RANKS, scenario], env=launch_env(**env),
                          capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert done.stdout.count(f"OK {scenario}") == n, output
    return done.stdout


@pytest.mark.parametrize("n", [2, 3])
def test_every_op_matches_numpy_for_every_dtype(n):
    ranks(n, "ops")


def test_bad_input_fails_on_every_rank_and_the_group_goes_on():
    out = ranks(2, "errors")
    # The rank whose tensor was fine names the one whose was not.
    assert "rank 0: non-contiguous on rank 1: cohort backend: allreduce: rank 1 passed" in out


def test_async_work_completes_in_issue_order_with_futures():
    ranks(2, "async")


def test_send_and_recv_cross_without_deadlock():
    ranks(2, "p2p")


def test_sub_groups_reduce_among_their_members():
    ranks(3, "groups")


def test_a_rank_that_never_comes_is_named_after_the_timeout():
    ranks(2, "timeout")


def test_ddp_ends_with_gloos_parameters():
    out = ranks(2, "ddp")
    assert "largest parameter difference cohort vs gloo" in out


@pytest.mark.parametrize("n", [2, 3])
def test_every_op_on_a_device_goes_to_the_device_group_and_gives_its_results(n):
    out = ranks(n, "devices", COHORT_TORCH_DEVICE_BACKEND="gloo")
    # What gloo lacks fails as gloo fails: the call reached it.
    assert "reduce_scatter: the same error as gloo" in out, out


def test_a_device_tensor_without_a_device_group_is_refused_naming_nccl():
    ranks(2, "no_device_group", COHORT_TORCH_DEVICE_BACKEND="none")


def single_rank(store, **env):
    """One rank alone, its group made under `env`."""
    code = ("import torch.distributed as dist, cohort.torch\n"
            f"dist.init_process_group('cohort', init_method='file://{store}', rank=0, world_size=1)\n"
            "print('device group:', dist.group.WORLD.device_backend)\n")
    return subprocess.run([sys.executable, "-c", code], env=launch_env(**env), capture_output=True, text=True,
                          timeout=120)


def test_the_device_backend_is_chosen_by_its_variable(tmp_path):
    done = single_rank(tmp_path / "auto-store")
    assert done.returncode == 0, done.stderr
    want = "nccl" if torch.cuda.is_available() and torch.distributed.is_nccl_available() else "None"
    assert f"device group: {want}" in done.stdout
    done = single_rank(tmp_path / "gloo-store", COHORT_TORCH_DEVICE_BACKEND="gloo")
    assert "device group: gloo" in done.stdout, done.stderr
    done = single_rank(tmp_path / "bad-store", COHORT_TORCH_DEVICE_BACKEND="ncl")
    assert done.returncode != 0
    assert "COHORT_TORCH_DEVICE_BACKEND='ncl' is not one of auto, nccl, gloo, none" in done.stderr, done.stderr


@pytest.mark.skipif(torch.distributed.is_nccl_available(), reason="this torch has NCCL")
def test_asking_for_nccl_where_torch_has_none_says_so(tmp_path):
    done = single_rank(tmp_path / "store", COHORT_TORCH_DEVICE_BACKEND="nccl")
    assert done.returncode != 0
    assert "COHORT_TORCH_DEVICE_BACKEND=nccl, but this torch was built without NCCL" in done.stderr, done.stderr


def test_ranks_not_started_by_mpi_are_told_how_to_start(tmp_path):
    # A file store: env://'s rank 0 would first wait for the second rank to reach its store.
    code = ("import torch.distributed as dist, cohort.torch\n"
            f"dist.init_process_group('cohort', init_method='file://{tmp_path}/store', rank=0, world_size=2)\n")
    done = subprocess.run([sys.executable, "-c", code], env=launch_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "not started by an MPI launcher" in done.stderr, done.stderr
    assert "srun --mpi=pmix" in done.stderr
