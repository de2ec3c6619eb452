"""OpenBLAS sgemm through numpy on the shapes and layouts of benchmarks/GemmBenchmark, as JSON.

Used by run-kernels.sh as the same-run reference: GFLOP/s of Y = X.Wt, dX = dY.W and dW = dYt.X.
"""
import json
import sys
import time

import numpy as np

SHAPES = ["512x768x768", "512x768x2304", "512x768x3072", "512x3072x768"]
REPEATS = 5


def best_seconds(operation, minimum_time=1.0):
    for _ in range(5):
        operation()
    best = float("inf")
    for _ in range(REPEATS):
        count = 0
        start = time.perf_counter()
        while True:
            operation()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= minimum_time / REPEATS:
                break
        best = min(best, elapsed / count)
    return best


def main():
    rng = np.random.default_rng(42)
    results = []
    for shape in SHAPES:
        m, k, n = (int(part) for part in shape.split("x"))
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        dy = rng.standard_normal((m, n), dtype=np.float32)
        y = np.empty((m, n), dtype=np.float32)
        dx = np.empty((m, k), dtype=np.float32)
        dw = np.empty((n, k), dtype=np.float32)
        layouts = {
            "forwardXWt": lambda: np.matmul(x, w.T, out=y),
            "inputGradDyW": lambda: np.matmul(dy, w, out=dx),
            "weightGradDyTX": lambda: np.matmul(dy.T, x, out=dw),
        }
        for layout, operation in layouts.items():
            seconds = best_seconds(operation)
            results.append({"shape": shape, "layout": layout, "gflops": 2.0 * m * k * n / seconds / 1e9})
    # The BLAS library numpy really runs is the one mapped into this process.
    with open("/proc/self/maps") as maps:
        libraries = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line})
    blas = ", ".join(libraries) or "unknown"
    json.dump({"blas": blas, "numpy": np.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
