#!/usr/bin/env python3
"""Write the CIFAR-10 validation split (the 5 000 training images train_cifar10.py held out) as an
uncompressed tar of class folders, '<class>/NNNN.jpg', with the JPEG bytes of train.tar unchanged.

earlyexit-cifar10 records its calibration trace from that tar:

    /usr/bin/python3 examples/train/make_cifar10_val_tar.py            # -> RUN/val.tar
    build/release/examples/earlyexit-cifar10 --data /var/tmp/earlyexit-train/run1/val.tar \\
        --record-only --record-trace data/cifar10/val_trace

The indices come from RUN/val_indices.npy (positions in train.tar's member order, which is the
order train_cifar10.py decodes and splits in). Needs numpy only.
"""
import argparse
import os
import tarfile

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10"),
                   help="folder with train.tar")
    p.add_argument("--run", default="/var/tmp/earlyexit-train/run1", help="training run folder (val_indices.npy)")
    p.add_argument("--out", default=None, help="output tar (default: RUN/val.tar)")
    args = p.parse_args()
    out = args.out or os.path.join(args.run, "val.tar")

    val = np.load(os.path.join(args.run, "val_indices.npy"))
    wanted = set(int(i) for i in val)
    if len(wanted) != len(val):
        raise SystemExit("val_indices.npy holds duplicates")
    written = 0
    with tarfile.open(os.path.join(args.data, "train.tar")) as src, \
            tarfile.open(out + ".tmp", "w", format=tarfile.USTAR_FORMAT) as dst:
        members = [m for m in src if m.isfile()]
        if max(wanted) >= len(members):
            raise SystemExit(f"index {max(wanted)} outside the {len(members)} members of train.tar")
        for i, m in enumerate(members):
            if i in wanted:
                dst.addfile(m, src.extractfile(m))
                written += 1
    os.replace(out + ".tmp", out)
    print(f"wrote {written} images to {out}")


if __name__ == "__main__":
    main()
