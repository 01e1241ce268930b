"""Shared helpers of the cohort package's tests. ctest runs them with the build tree's
package first on PYTHONPATH and COHORT_BIN naming the cohort executable."""
import os
import subprocess

import pytest


@pytest.fixture
def cohort_bin():
    path = os.environ.get("COHORT_BIN")
    if not path or not os.path.exists(path):
        pytest.skip("COHORT_BIN does not name the built cohort executable (ctest sets it)")
    return path


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
