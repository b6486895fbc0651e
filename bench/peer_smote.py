"""imbalanced-learn's SMOTE on the rows that bench/smote.ts wrote, as a point of comparison.

Reads raw float32 rows, int32 class indices and the per-class targets, runs
SMOTE(k_neighbors=5, sampling_strategy=targets) a few times and prints one JSON line with the
median seconds that fit_resample took, every run's seconds, and the rows it returned.

    python3 bench/peer_smote.py DIR
"""

import gc
import json
import os
import sys
import time

import numpy as np
from imblearn.over_sampling import SMOTE
import imblearn


def main():
    folder = sys.argv[1]
    with open(os.path.join(folder, "data.json")) as f:
        spec = json.load(f)
    x = np.fromfile(os.path.join(folder, "x.f32"), dtype=np.float32).reshape(-1, spec["dim"])
    y = np.fromfile(os.path.join(folder, "y.i32"), dtype=np.int32)
    targets = {int(c): int(n) for c, n in spec["targets"].items()}

    runs = []
    for seed in range(spec["runs"]):
        smote = SMOTE(k_neighbors=5, sampling_strategy=targets, random_state=seed + 1)
        # Garbage of earlier runs is collected outside the timed part, as on our side.
        gc.collect()
        start = time.perf_counter()
        out_x, _ = smote.fit_resample(x, y)
        runs.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "seconds": sorted(runs)[len(runs) // 2],
                "runs": [round(r, 3) for r in runs],
                "rowsOut": int(out_x.shape[0]),
                "imblearn": imblearn.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
