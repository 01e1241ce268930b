"""cohort for Python scripts: checkpoints, launch signals and sweep metrics.

    import cohort.checkpoint, cohort.launch, cohort.sweep

Every cohort::Error of the C++ libraries arrives as cohort.Error, bad input as its subclass
cohort.InputError, with the same message.
"""
from cohort._cohort import Error, InputError

from cohort import checkpoint, launch, sweep

__all__ = ["Error", "InputError", "checkpoint", "launch", "sweep"]
