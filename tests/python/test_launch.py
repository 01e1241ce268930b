"""cohort.launch: the launch contract read by the launcher's own reader."""
import os
import sys

from conftest import run

CONTRACT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
            "MASTER_PORT", "COHORT_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT", "COHORT_HEARTBEAT_FILE",
            "COHORT_CHECKPOINT_REQUEST")


def in_child(code, **env):
    """Runs `code` in a fresh interpreter with exactly the contract variables `env` gives."""
    clean = {k: v for k, v in os.environ.items() if k not in CONTRACT}
    clean.update(env)
    return run([sys.executable, "-c", "import cohort.launch as L\n" + code], env=clean)


def test_outside_cohort_the_answers_are_sane():
    r = in_child("L.heartbeat(); print(L.rank(), L.world_size(), L.local_rank(), L.restart_count(), "
                 "L.checkpoint_requested())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "1", "0", "0", "False"]


def test_contract_values_are_read():
    r = in_child("print(L.rank(), L.world_size(), L.local_rank(), L.local_world_size(), L.restart_count())",
                 RANK="3", WORLD_SIZE="8", LOCAL_RANK="1", LOCAL_WORLD_SIZE="4", COHORT_RESTART_COUNT="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "8", "1", "4", "2"]


def test_a_malformed_variable_is_an_input_error():
    r = in_child("import cohort\ntry:\n    L.rank()\nexcept cohort.InputError as e:\n    print(e)", RANK="three")
    assert r.returncode == 0, r.stderr
    assert "RANK" in r.stdout and "three" in r.stdout


def test_heartbeat_touches_the_heartbeat_file(tmp_path):
    beat = tmp_path / "beat"
    beat.write_text("")
    os.utime(beat, (1, 1))
    r = in_child("L.heartbeat()", COHORT_HEARTBEAT_FILE=str(beat))
    assert r.returncode == 0, r.stderr
    assert beat.stat().st_mtime > 1


def test_checkpoint_request_file_is_seen_and_acknowledged(tmp_path):
    flag = tmp_path / "request"
    code = ("print(L.checkpoint_requested())\n"
            f"open({str(flag)!r}, 'w').close()\n"
            "print(L.checkpoint_requested())\n"
            "L.acknowledge_checkpoint()\n"
            "print(L.checkpoint_requested())")
    r = in_child(code, COHORT_CHECKPOINT_REQUEST=str(flag))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "False"]
    assert not flag.exists()


def test_sigusr1_asks_for_a_checkpoint():
    code = ("import os, signal\n"
            "print(L.checkpoint_requested())\n"
            "os.kill(os.getpid(), signal.SIGUSR1)\n"
            "print(L.checkpoint_requested())\n"
            "L.acknowledge_checkpoint()\n"
            "print(L.checkpoint_requested())")
    r = in_child(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "False"]
