"""The torch.distributed backend "cohort" (cohort.torch), with real ranks: each test runs
torch_ranks.py SCENARIO on loopback, under mpirun or as plain processes that only have the
launch contract (as torchrun starts them, meeting through torch's store without MPI), and
passes when every rank printed "OK SCENARIO". Skipped where this cohort was built without
libtorch, and the mpirun cases where there is no mpirun."""
import os
import shutil
import subprocess
import sys

import pytest
from loopback import free_port

torch = pytest.importorskip("torch")
pytest.importorskip("cohort._torch", reason="this cohort was built without libtorch")

HERE = os.path.dirname(os.path.abspath(__file__))
RANKS = os.path.join(HERE, "torch_ranks.py")
MPIRUN = os.environ.get("COHORT_MPIEXEC") or shutil.which("mpirun")


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


def plain_ranks(n, scenario, env):
    """n processes with RANK, WORLD_SIZE and LOCAL_RANK, as torchrun starts them; their
    combined output, and whether every one ended with 0."""
    children = []
    for rank in range(n):
        rank_env = dict(env, RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(n))
        children.append(subprocess.Popen([sys.executable, RANKS, scenario], env=rank_env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    stdout, stderr, ok = "", "", True
    for child in children:
        try:
            out, err = child.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            out, err = child.communicate()
            err += "\n(timed out)"
        stdout, stderr, ok = stdout + out, stderr + err, ok and child.returncode == 0
    return stdout, stderr, ok


def ranks(n, scenario, launch="mpi", **env):
    if launch == "plain":
        stdout, stderr, ok = plain_ranks(n, scenario, launch_env(**env))
    else:
        if not MPIRUN:
            pytest.skip("no mpirun (install openmpi-bin)")
        done = subprocess.run([MPIRUN, "-n", str(n), sys.executable, RANKS, scenario], env=launch_env(**env),
                              capture_output=True, text=True, timeout=240)
        stdout, stderr, ok = done.stdout, done.stderr, done.returncode == 0
    output = stdout + stderr
    assert ok, output
    assert stdout.count(f"OK {scenario}") == n, output
    return stdout


LAUNCHES = ["mpi", "plain"]


@pytest.mark.parametrize("launch", LAUNCHES)
@pytest.mark.parametrize("n", [2, 3])
def test_every_op_matches_numpy_for_every_dtype(n, launch):
    ranks(n, "ops", launch)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_bad_input_fails_on_every_rank_and_the_group_goes_on(launch):
    out = ranks(2, "errors", launch)
    # The rank whose tensor was fine names the one whose was not.
    assert "rank 0: non-contiguous on rank 1: cohort backend: allreduce: rank 1 passed" in out


@pytest.mark.parametrize("launch", LAUNCHES)
def test_async_work_completes_in_issue_order_with_futures(launch):
    ranks(2, "async", launch)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_send_and_recv_cross_without_deadlock(launch):
    ranks(2, "p2p", launch)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_sub_groups_reduce_among_their_members(launch):
    ranks(3, "groups", launch)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_a_rank_that_never_comes_is_named_after_the_timeout(launch):
    ranks(2, "timeout", launch)


@pytest.mark.parametrize("launch", LAUNCHES)
def test_ddp_ends_with_gloos_parameters(launch):
    out = ranks(2, "ddp", launch)
    assert "largest parameter difference cohort vs gloo" in out


def test_plain_ranks_meet_through_the_store_and_not_over_mpi():
    out = ranks(2, "bootstrap", "plain")
    assert "bootstrap tcp" in out, out


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


def test_ranks_not_started_by_mpi_are_told_how_to_start_when_mpi_is_asked_for(tmp_path):
    # A file store: env://'s rank 0 would first wait for the second rank to reach its store.
    code = ("import torch.distributed as dist, cohort.torch\n"
            f"dist.init_process_group('cohort', init_method='file://{tmp_path}/store', rank=0, world_size=2)\n")
    done = subprocess.run([sys.executable, "-c", code], env=launch_env(COHORT_COLLECTIVES_BOOTSTRAP="mpi"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "not started by an MPI launcher" in done.stderr, done.stderr
    assert "srun --mpi=pmix" in done.stderr
