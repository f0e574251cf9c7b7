#!/usr/bin/python3
"""Quick exit trade-off of trained CIFAR-10 runs, from the logits train_cifar10.py exports.

For each run folder (metrics.json, val_logits.npy, test_logits.npy, val_split.json): every exit's
test accuracy, the oracle's compute saving (each test image exits at the first head that is right),
and max_prob's: one softmax threshold for every early head, the lowest-cost one whose validation
accuracy is within B points of the final head's (thresholds 0.300, 0.301, ..., 1.000), then
applied to the test set. Cost of an exit = the stages up to it + every head evaluated on the way
(max_prob evaluates each head it passes), in the MACs of metrics.json; saving = 1 - mean cost /
cost of the full network (all stages + the final head only).

This is a training-time shortcut for comparing variants; the C++ demo (earlyexit-cifar10) is the
reference: it calibrates on the C++-recorded validation trace and measures the skipped work live.

    /usr/bin/python3 examples/train/exit_tradeoff.py --data ../shared/data/cifar10 RUN [RUN ...]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_cifar10 as tc  # noqa: E402  (data loading and the validation split)


def softmax_max(logits):
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).max(-1)


def exit_costs(m):
    """Fraction of the full network's MACs spent by an image that exits at head k."""
    cum = np.cumsum(np.asarray(m["stage_macs"], dtype=np.float64))
    head = np.asarray(m["head_macs"], dtype=np.float64)
    after = [b + 1 for b in m["exit_after_block"]]
    full = cum[-1] + head[-1]
    return np.array([cum[a] + head[:k + 1].sum() for k, a in enumerate(after)]) / full


def max_prob(logits, y, conf, cost, threshold):
    """(accuracy, mean cost) of exiting at the first head whose max softmax >= threshold."""
    heads, n = conf.shape
    exit_at = np.full(n, heads - 1)
    done = np.zeros(n, dtype=bool)
    for k in range(heads - 1):
        e = ~done & (conf[k] >= threshold)
        exit_at[e] = k
        done |= e
    return float((logits[exit_at, np.arange(n)].argmax(-1) == y).mean()), float(cost[exit_at].mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="output folders of train_cifar10.py")
    ap.add_argument("--data", default=os.path.join(tc.REPO_ROOT, "..", "shared", "data", "cifar10"))
    ap.add_argument("--cache", default="/var/tmp/earlyexit-train/cifar10.npz")
    ap.add_argument("--max-loss", type=float, default=0.5, help="accuracy points max_prob may lose on validation")
    a = ap.parse_args()
    data = tc.load_data(a.data, a.cache)
    y_test = data["test_y"]
    for run in a.runs:
        m = json.load(open(os.path.join(run, "metrics.json")))
        split = json.load(open(os.path.join(run, "val_split.json")))
        y_val = data["train_y"][np.asarray(split["val_indices"])]
        val, test = np.load(os.path.join(run, "val_logits.npy")), np.load(os.path.join(run, "test_logits.npy"))
        cost = exit_costs(m)
        right = test.argmax(-1) == y_test[None, :]
        first = np.where(right.any(0), right.argmax(0), len(cost) - 1)
        oracle = 1 - cost[first].mean()
        full_val = float((val[-1].argmax(-1) == y_val).mean())
        full_test = float((test[-1].argmax(-1) == y_test).mean())
        conf_val, conf_test = softmax_max(val), softmax_max(test)
        best = None
        for t in np.round(np.arange(300, 1001) / 1000, 3):
            acc, c = max_prob(val, y_val, conf_val, cost, t)
            if (full_val - acc) * 100 <= a.max_loss and (best is None or c < best[1]):
                best = (t, c, acc)
        t, c_val, acc_val = best
        acc_t, c_t = max_prob(test, y_test, conf_test, cost, t)
        print(f"{os.path.basename(os.path.normpath(run))}: test accuracy per exit "
              f"{' / '.join(f'{x * 100:.1f}' for x in m['test_acc_per_exit'])}%; oracle saves {oracle * 100:.1f}%")
        print(f"  max_prob {t:.3f} (<= {a.max_loss} points on validation: {(full_val - acc_val) * 100:.2f}, "
              f"saving {(1 - c_val) * 100:.1f}%) on test: {(acc_t - full_test) * 100:+.2f} points, "
              f"saving {(1 - c_t) * 100:.1f}%")


if __name__ == "__main__":
    main()
