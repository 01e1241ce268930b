"""cohort.sweep: a trial's parameters and metrics, as `cohort sweep` gives and reads them."""
import sys

import pytest

import cohort
import cohort.sweep as sweep
from cohort import _cohort
from conftest import run


def test_report_prints_a_line_the_sweep_parses(capsys):
    sweep.report(step=3, loss=0.25, accuracy=0.91)
    sweep.report(loss=1e-9)
    first, second = capsys.readouterr().out.splitlines()
    assert first == "step=3 loss=0.25 accuracy=0.91"
    assert _cohort.parse_metric_line(first) == ([("loss", 0.25), ("accuracy", 0.91)], 3)
    assert _cohort.parse_metric_line(second) == ([("loss", 1e-9)], None)


@pytest.mark.parametrize("metrics, words", [
    ({}, "at least one metric"),
    ({"val.loss": 1}, "val.loss"),
    ({"loss": float("inf")}, "loss"),
    ({"loss": "low"}, "must be a number"),
    ({"epoch": 3}, "step="),
])
def test_report_refuses_what_the_sweep_would_not_read(metrics, words, capsys):
    with pytest.raises(cohort.InputError, match=words.replace(".", r"\.")):
        sweep.report(**metrics)
    assert capsys.readouterr().out == ""


def test_parameters_outside_a_trial_are_empty(monkeypatch):
    monkeypatch.delenv("COHORT_SWEEP_DIR", raising=False)
    monkeypatch.delenv("COHORT_TRIAL_ID", raising=False)
    assert sweep.parameters() == {}


EXPERIMENT = """\
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
maxTrialCount: 2
parallelTrialCount: 1
parameters:
  - name: lr
    parameterType: double
    feasibleSpace: {min: "0.1", max: "0.2", step: "0.1"}
  - name: optimizer
    parameterType: categorical
    feasibleSpace: {list: [adam]}
trialTemplate:
  command: [{python}, -c, "{trial}"]
"""

TRIAL = ("import json, cohort.sweep as s; p = s.parameters(); "
         "open(p['optimizer'] + p['lr'], 'w').write(json.dumps(p)); s.report(step=1, loss=float(p['lr']))")


def test_a_trial_of_cohort_sweep_gets_its_parameters_and_reports(tmp_path, cohort_bin):
    spec = tmp_path / "exp.yaml"
    spec.write_text(EXPERIMENT.replace("{python}", sys.executable).replace("{trial}", TRIAL))
    r = run([cohort_bin, "sweep", "run", str(spec), "--dir", str(tmp_path / "sweep")], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([cohort_bin, "sweep", "best", str(tmp_path / "sweep"), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"loss"' in r.stdout and "0.1" in r.stdout
    written = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("adam"))
    assert written == ["adam0.1", "adam0.2"]
