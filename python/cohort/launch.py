"""The launch contract, as a rank started by cohort sees it.

Outside cohort (a plain `python train.py`) every function still answers: rank 0 of 1, no
restarts, no checkpoint requested, and heartbeat() does nothing.
"""
from cohort import _cohort

_watch = None


def _contract():
    return _cohort.contract()


def rank():
    """Global rank (RANK), 0 outside a launch."""
    return _contract()["rank"]


def world_size():
    """Number of ranks (WORLD_SIZE), 1 outside a launch."""
    return _contract()["world_size"]


def local_rank():
    """Rank on this node (LOCAL_RANK), 0 outside a launch."""
    return _contract()["local_rank"]


def local_world_size():
    """Ranks on this node (LOCAL_WORLD_SIZE)."""
    return _contract()["local_world_size"]


def restart_count():
    """How many times the launcher restarted the gang (COHORT_RESTART_COUNT)."""
    return _contract()["restart_count"]


def heartbeat():
    """Tells the launcher's hang detection that this rank is alive; cheap, call it each step."""
    _cohort.heartbeat()


def _preemption():
    # The watch installs the SIGUSR1 handler Slurm's --signal relies on: made once, on the
    # first question, so that a script that never asks keeps Python's default handling.
    global _watch
    if _watch is None:
        _watch = _cohort.PreemptionWatch()
    return _watch


def checkpoint_requested():
    """True when the launcher asks for a checkpoint (SIGUSR1, or its request file).

    Call it at step boundaries on every rank: under MPI it is collective, and every rank gets
    the same answer. The first call starts listening for the signal, so call it once early.
    """
    return _preemption().requested()


def acknowledge_checkpoint():
    """Says the requested checkpoint is saved: the request is cleared."""
    _preemption().acknowledge()
