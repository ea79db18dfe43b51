"""training.heap: freed training-sized blocks stay mapped, so the next step's arrays cost no page faults."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from training.heap import keep_freed_memory

    def faults_per_step():
        counts = []
        for _ in range(4):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            arrays = [np.ones(2 * 1024 * 1024, np.float32) for _ in range(6)]  # 6 x 8 MiB alive at once, a batch
            del arrays
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return counts

    default = faults_per_step()
    print(keep_freed_memory(), default[-1], max(faults_per_step()[1:]))
""")


def test_a_step_reuses_the_freed_memory_of_the_step_before():
    out = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], capture_output=True, text=True, check=True).stdout
    applied, default_faults, kept_faults = out.split()
    if applied != "True":
        pytest.skip("not glibc: mallopt refused the settings")
    if int(default_faults) < 200:  # huge pages everywhere: few faults to save on this kernel
        pytest.skip(f"only {default_faults} page faults a step with glibc's defaults")
    # glibc's defaults hand the 48 MiB back and fault it in again every step (about 3,000 faults here)
    assert int(kept_faults) * 10 < int(default_faults)
