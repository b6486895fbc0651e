"""The training recipe of bench/train-speed.ts in PyTorch, as a point of comparison.

Reads the data set that train-speed.ts wrote (raw float32 files and a JSON description), trains
the same classifier head with the same optimiser, batch size and L2 penalty, and prints one JSON
line: seconds per epoch (training plus validation), peak RSS, thread count and the BLAS library
that was loaded.

    python3 bench/peer_torch.py DIR HIDDEN EPOCHS
"""

import ctypes
import json
import os
import resource
import sys
import time

import numpy as np
import torch


def read(folder, name, rows, cols):
    data = np.fromfile(os.path.join(folder, name), dtype=np.float32)
    return torch.from_numpy(data.reshape(rows, cols))


def blas_libraries():
    """BLAS libraries this process has mapped (Python extension modules left out), with the
    thread count of each OpenBLAS among them."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            name = os.path.basename(path).lower()
            if "blas" in name and ".cpython-" not in name:
                found.add(os.path.realpath(path))
    libraries = []
    for path in sorted(found):
        entry = {"path": path}
        try:
            entry["threads"] = ctypes.CDLL(path).openblas_get_num_threads()
        except (OSError, AttributeError):
            pass
        libraries.append(entry)
    return libraries


def macro_auprc(scores, labels):
    try:
        from sklearn.metrics import average_precision_score
    except ImportError:
        return None
    present = labels.sum(axis=0) > 0
    if not present.any():
        return None
    return float(average_precision_score(labels[:, present], scores[:, present], average="macro"))


def build(dim, hidden, classes):
    if hidden == 0:
        output = torch.nn.Linear(dim, classes)
        torch.nn.init.xavier_uniform_(output.weight)
        torch.nn.init.zeros_(output.bias)
        return torch.nn.Sequential(output), [output.weight]
    first = torch.nn.Linear(dim, hidden)
    torch.nn.init.kaiming_normal_(first.weight, nonlinearity="relu")
    torch.nn.init.zeros_(first.bias)
    output = torch.nn.Linear(hidden, classes)
    torch.nn.init.xavier_uniform_(output.weight)
    torch.nn.init.zeros_(output.bias)
    return torch.nn.Sequential(first, torch.nn.ReLU(), output), [first.weight, output.weight]


def main():
    folder, hidden, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(os.path.join(folder, "data.json")) as f:
        spec = json.load(f)
    dim, classes = spec["dim"], spec["classes"]
    x = read(folder, "x_train.f32", spec["trainRows"], dim)
    y = read(folder, "y_train.f32", spec["trainRows"], classes)
    vx = read(folder, "x_validation.f32", spec["validationRows"], dim)
    vy = read(folder, "y_validation.f32", spec["validationRows"], classes)

    torch.manual_seed(1)
    model, kernels = build(dim, hidden, classes)
    options = dict(lr=spec["learningRate"], betas=(0.9, 0.999), eps=1e-7)
    try:
        # One kernel per step for all parameters: the faster of PyTorch's CPU variants here.
        optimiser = torch.optim.AdamW(
            model.parameters(), weight_decay=spec["weightDecay"], foreach=True, **options
        )
    except TypeError:
        optimiser = torch.optim.AdamW(model.parameters(), weight_decay=spec["weightDecay"], **options)
    bce = torch.nn.BCEWithLogitsLoss(reduction="sum")
    batch, l2 = spec["batchSize"], spec["l2"]

    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(x.shape[0])
        for b in range(0, x.shape[0], batch):
            rows = order[b : b + batch]
            optimiser.zero_grad(set_to_none=True)
            loss = bce(model(x[rows]), y[rows]) / len(rows)
            loss.backward()
            # The L2 penalty as the package applies it: its gradient 2 l2 w added directly.
            with torch.no_grad():
                penalty = l2 * sum(float((w * w).sum()) for w in kernels)
                for w in kernels:
                    w.grad.add_(w, alpha=2 * l2)
            _ = loss.item() + penalty
            optimiser.step()
        model.eval()
        with torch.no_grad():
            logits = model(vx)
            _ = bce(logits, vy).item() / vx.shape[0]
            macro_auprc(torch.sigmoid(logits).numpy(), vy.numpy() >= 0.5)
        seconds.append(time.perf_counter() - start)

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "secondsPerEpoch": seconds,
                "peakRssMiB": round(peak_kib / 1024, 1),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "blas": blas_libraries(),
            }
        )
    )


if __name__ == "__main__":
    main()
