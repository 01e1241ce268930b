"""A trial of `cohort sweep`: its parameters, and its metrics in Katib's StdOut format."""
import os
import sys

from cohort import _cohort
from cohort._cohort import InputError


def parameters():
    """The trial's parameters as {name: value string}, as the sweep assigned them.

    Values are strings, as Katib's parameterAssignments are: float(p["lr"]). Outside a
    trial (COHORT_SWEEP_DIR and COHORT_TRIAL_ID unset) the dict is empty.
    """
    sweep_dir = os.environ.get("COHORT_SWEEP_DIR")
    trial = os.environ.get("COHORT_TRIAL_ID")
    if not sweep_dir or not trial:
        return {}
    try:
        trial_id = int(trial)
    except ValueError:
        raise InputError(f"COHORT_TRIAL_ID={trial} is not a trial number") from None
    return _cohort.trial_parameters(sweep_dir, trial_id)


def report(step=None, **metrics):
    """Prints one metric line, `step=3 loss=0.25 accuracy=0.91`, and flushes it.

    `cohort sweep` reads the trial's standard output: values at a step are its intermediate
    values (for early stopping), and every value counts towards the metric's final one.
    """
    if not metrics:
        raise InputError("report: give at least one metric, as report(loss=0.25)")
    fields = [] if step is None else [f"step={int(step)}"]
    for name, value in metrics.items():
        if name in ("step", "epoch"):
            raise InputError(f"report: '{name}' is the step, not a metric: pass it as step=")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"report: {name}={value!r}: the value must be a number") from None
        fields.append(f"{name}={number!r}")
    line = " ".join(fields)
    # The sweep's own parser reads the line back here, so what it would not see (a name
    # with a '.', an infinite value) is refused now rather than lost.
    seen = {name for name, _ in _cohort.parse_metric_line(line)[0]}
    for name in metrics:
        if name not in seen:
            raise InputError(f"report: {name}={metrics[name]!r}: the sweep would not read it "
                             "(names take letters, digits, '_', '-' and '|'; values are finite numbers)")
    print(line, file=sys.stdout, flush=True)
