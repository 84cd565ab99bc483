"""SciPy's arithmetic for a steady-state epoch (epoch 1: bonds and stake carried
from epoch 0, new weights), on the shape of ../../../shared/bench/baseline_scipy.py,
whose `network` and `epoch` it reuses unchanged.

usage: python3 steady_scipy.py N K [repeats]   (needs numpy, scipy, pyarrow)
"""
import os, sys, time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("FACEBLOCK_SCIPY_BASELINE_DIR",
                                  os.path.join(here, "..", "..", "..", "shared", "bench")))
import baseline_scipy as base  # noqa: E402


def main():
    n, k = int(sys.argv[1]), int(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    src, dst, w, stake = base.network(n, k)
    import scipy.sparse as sp
    stake1, bonds1, _ = base.epoch(src, dst, w, stake, sp.csr_matrix((n, n)))
    w2 = np.random.default_rng(2).random(n * k) + 0.01
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        base.epoch(src, dst, w2, stake1, bonds1)
        times.append(time.perf_counter() - t)
    a = sorted(times)[len(times) // 2]
    e = n * k
    print(f"scipy steady n={n} k={k} edges={e} bonds={bonds1.nnz} arithmetic {a*1e3:.0f} ms "
          f"({a/e*1e9:.1f} ns/edge)")


if __name__ == "__main__":
    main()
