#!/usr/bin/python3
"""Train a multi-exit ResNet-style CNN on CIFAR-10 (JPEG copy) on a CPU, export it for C++.

What it does (see examples/train/README.md for the details and the measured timings):

* decodes ../shared/data/cifar10/{train,test}.tar once into uint8 arrays (cached as .npz);
* holds out a fixed, seeded, stratified 5 000 of the 50 000 training images as a validation
  split (calibration data for the exit policies), never trained on;
* trains all exit heads jointly (weighted sum of cross-entropies), SGD + Nesterov, one-cycle LR,
  random crop (4-px zero padding) + horizontal flip done on uint8 tensors in torch;
* checkpoints every epoch, resumes exactly (--resume), prints progress;
* exports the network with batch norm folded into the convolutions as safetensors
  (cifar10_multiexit.safetensors), checks the export by reloading it into a plain-PyTorch
  implementation of the folded network, writes reference logits for the C++ parity test, the
  validation and test images as .npy, and metrics.json with every exit's accuracy.

torchvision is not needed (Pillow decodes the JPEGs once); Debian 12's python3-torch (1.13)
is enough.
"""

import argparse
import copy
import io
import json
import math
import os
import random
import sys
import tarfile
import time

# glibc malloc returns PyTorch's large activation buffers to the kernel after every use and
# page-faults them back in on the next batch: measured here ~2 M minor faults and ~45% extra
# (system) CPU time per 20 batches. Keeping freed memory in the heap removes most of it. The
# settings only take effect at process start, so the script re-executes itself once with them
# (set EARLYEXIT_TRAIN_NO_REEXEC=1 to skip).
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824",
               "MALLOC_TOP_PAD_": "268435456"}
if __name__ == "__main__" and "EARLYEXIT_TRAIN_NO_REEXEC" not in os.environ:
    _env = dict(os.environ, EARLYEXIT_TRAIN_NO_REEXEC="1")
    for _k, _v in _MALLOC_ENV.items():
        _env.setdefault(_k, _v)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], _env)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors

FORMAT_NAME = "earlyexit-cifar10-multiexit"
FORMAT_VERSION = "2"  # 2: pool_linear heads (grid and mixed pooling) besides gap_linear
NUM_CLASSES = 10
EXPORT_NAME = "cifar10_multiexit.safetensors"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def read_labels(path):
    """labels.txt: 'index class-name' per line -> list of class names by index."""
    names = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            idx, name = line.split(maxsplit=1)
            names[int(idx)] = name
    if sorted(names) != list(range(NUM_CLASSES)):
        raise SystemExit(f"{path}: expected indices 0..{NUM_CLASSES - 1}, got {sorted(names)}")
    return [names[i] for i in range(NUM_CLASSES)]


def decode_tar(path, class_names):
    """All '<class>/NNNN.jpg' members of a tar, in tar order (sorted by path), as
    (images uint8 [N, 32, 32, 3] HWC RGB, labels int64 [N], member names)."""
    from PIL import Image

    index = {name: i for i, name in enumerate(class_names)}
    images, labels, members = [], [], []
    with tarfile.open(path) as tf:
        for m in tf:
            if not m.isfile():
                continue
            cls = m.name.split("/")[0]
            if cls not in index:
                raise SystemExit(f"{path}: member {m.name!r}: unknown class {cls!r}")
            with Image.open(io.BytesIO(tf.extractfile(m).read())) as im:
                a = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if a.shape != (32, 32, 3):
                raise SystemExit(f"{path}: member {m.name!r}: shape {a.shape}, expected (32, 32, 3)")
            images.append(a)
            labels.append(index[cls])
            members.append(m.name)
    return np.stack(images), np.asarray(labels, dtype=np.int64), members


def load_data(data_dir, cache):
    """Decoded CIFAR-10, from the .npz cache when it exists (written on first use)."""
    class_names = read_labels(os.path.join(data_dir, "labels.txt"))
    if os.path.exists(cache):
        z = np.load(cache)
        d = {k: z[k] for k in z.files}
        if list(d["class_names"]) != class_names:
            raise SystemExit(f"{cache}: class names differ from {data_dir}/labels.txt; delete the cache")
        log(f"data: loaded cache {cache}")
    else:
        t0 = time.time()
        log(f"data: decoding {data_dir}/train.tar and test.tar (once) ...")
        xtr, ytr, mtr = decode_tar(os.path.join(data_dir, "train.tar"), class_names)
        xte, yte, mte = decode_tar(os.path.join(data_dir, "test.tar"), class_names)
        d = dict(train_x=xtr, train_y=ytr, train_members=np.asarray(mtr),
                 test_x=xte, test_y=yte, test_members=np.asarray(mte),
                 class_names=np.asarray(class_names))
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        tmp = cache + ".tmp.npz"
        np.savez(tmp, **d)
        os.replace(tmp, cache)
        log(f"data: decoded {len(ytr)} train + {len(yte)} test images in {time.time() - t0:.1f} s, "
            f"cached at {cache}")
    d["class_names"] = [str(s) for s in d["class_names"]]
    return d


def val_split(labels, per_class, seed):
    """Stratified split: `per_class` images of every class, chosen with numpy's PCG64(seed).
    Returns (train indices, val indices), both sorted, as indices into the train tar order."""
    rng = np.random.Generator(np.random.PCG64(seed))
    val = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)
        val.append(rng.choice(idx, size=per_class, replace=False))
    val = np.sort(np.concatenate(val))
    mask = np.ones(len(labels), dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def channel_stats(x_nhwc, idx):
    """Normalization constants: per-channel mean and std of x/255 over the training-split images
    `idx` (never the validation or test images), rounded to 4 decimals so that C++ can state them
    as literals (the rounded values are the ones used, in training and in the export)."""
    s1, s2, n = np.zeros(3), np.zeros(3), 0
    for i in range(0, len(idx), 5000):
        x = x_nhwc[idx[i:i + 5000]].reshape(-1, 3).astype(np.float64) / 255.0
        s1 += x.sum(0)
        s2 += (x * x).sum(0)
        n += len(x)
    mean = s1 / n
    std = np.sqrt(s2 / n - mean * mean)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def to_nchw(x_nhwc):
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))


def normalize(x_u8, mean, std):
    """The preprocessing the C++ side uses: uint8 -> float32 / 255, then (x - mean) / std per
    channel. x_u8: uint8 [N, 3, H, W]; mean, std: float32 tensors [3]."""
    x = x_u8.to(torch.float32) / 255.0
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def augment(x_u8, gen):
    """Random crop 32x32 from the image zero-padded by 4 px, then random horizontal flip.
    Works on a uint8 batch [B, 3, 32, 32]; all randomness from `gen`."""
    b, c, h, w = x_u8.shape
    p = 4
    padded = F.pad(x_u8, (p, p, p, p))
    oy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * p + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    rows = (oy[:, None] + torch.arange(h)[None, :])                      # [B, H]
    cols = ox[:, None] + torch.arange(w)[None, :]                        # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)                # flip = reversed columns
    bi = torch.arange(b)[:, None, None, None]
    ci = torch.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Stem(nn.Module):
    def __init__(self, cout):
        super().__init__()
        self.conv = ConvBN(3, cout, 3, 1)

    def forward(self, x):
        return F.relu(self.conv(x))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut = identity, or
    bn(conv1x1 stride s) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride)
        self.conv2 = ConvBN(cout, cout, 3, 1)
        self.shortcut = ConvBN(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = self.conv2(out)
        sc = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + sc)


class Head(nn.Module):
    """Exit head: pool the feature map to grid x grid cells (adaptive average pooling; with
    pool = 'mixed', w * max + (1 - w) * average with w = sigmoid(a) learned per head, as in
    Shallow-Deep Networks), flatten (channel-major: c * grid^2 + row * grid + col), linear.
    grid 1 with average pooling is the classic global-average-pool + linear head."""

    def __init__(self, cin, classes, grid=1, pool="avg"):
        super().__init__()
        self.grid = grid
        self.fc = nn.Linear(cin * grid * grid, classes)
        self.mix = nn.Parameter(torch.zeros(1)) if pool == "mixed" else None

    def max_weight(self):
        return None if self.mix is None else torch.sigmoid(self.mix)

    def forward(self, x):
        return self.fc(head_features(x, self.grid, self.max_weight()))


def head_features(x, grid, max_weight):
    """What a head's linear layer reads from the map x [B, C, H, W]: the global average [B, C]
    (grid 1, no max_weight), else the average of each of grid x grid cells, mixed with their max
    when max_weight is given, flattened channel-major [B, C * grid^2]."""
    if grid == 1 and max_weight is None:
        return x.mean(dim=(2, 3))
    a = F.adaptive_avg_pool2d(x, grid)
    if max_weight is not None:
        a = max_weight * F.adaptive_max_pool2d(x, grid) + (1 - max_weight) * a
    return a.flatten(1)


def arch_spec(widths, blocks, heads, classes=NUM_CLASSES, head_grid=1, head_pool="avg"):
    """The architecture as plain data (also written into the weight file's metadata).
    Stages, in order: 'stem' then 'blocks.0' .. 'blocks.{n-1}'. heads: list of block indices
    that carry an exit head (the last block must be among them: the final classifier).
    head_grid, head_pool: the pooling of the early heads (the final head is always global
    average pool + linear)."""
    stages = []
    hw = 32
    stages.append(dict(name="stem", type="conv_bn_relu", in_channels=3, out_channels=widths[0],
                       kernel=3, stride=1, padding=1, in_hw=hw, out_hw=hw))
    cin = widths[0]
    bi = 0
    for s, (w, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            stride = 2 if (s > 0 and j == 0) else 1
            out_hw = hw // stride
            stages.append(dict(name=f"blocks.{bi}", type="basic_block", stage_group=s,
                               in_channels=cin, out_channels=w, stride=stride,
                               shortcut="identity" if (stride == 1 and cin == w) else "conv1x1_bn",
                               in_hw=hw, out_hw=out_hw))
            hw, cin, bi = out_hw, w, bi + 1
    nblocks = bi
    heads = sorted(set(heads))
    if not heads or heads[-1] != nblocks - 1 or heads[0] < 0:
        raise SystemExit(f"--heads {heads}: must be block indices in 0..{nblocks - 1} and include the last")
    for st in stages:
        st["macs"] = stage_macs(st)
    head_list = []
    for k, b in enumerate(heads):
        st = stages[b + 1]
        c, hw = st["out_channels"], st["out_hw"]
        final = k == len(heads) - 1
        grid, pool = (1, "avg") if final else (head_grid, head_pool)
        if grid < 1 or hw % grid != 0:
            raise SystemExit(f"--head-grid {grid}: must divide the {hw}x{hw} map after block {b}")
        features = c * grid * grid
        adds = c * hw * hw * (2 if pool == "mixed" else 1)  # average (and max) pooling
        h = dict(name=f"heads.{k}", type="gap_linear" if (grid == 1 and pool == "avg") else "pool_linear",
                 after_block=b, after_stage=b + 1, in_channels=c, in_hw=hw, out_features=classes,
                 macs=features * classes + adds, macs_linear=features * classes, adds_pool=adds)
        if h["type"] == "pool_linear":
            h.update(grid=grid, pool=pool, features=features)
        head_list.append(h)
    return dict(input=[3, 32, 32], classes=classes, widths=list(widths), blocks_per_group=list(blocks),
                stages=stages, heads=head_list)


def conv_macs(cin, cout, k, out_hw):
    return cin * cout * k * k * out_hw * out_hw


def stage_macs(st):
    if st["type"] == "conv_bn_relu":
        return conv_macs(st["in_channels"], st["out_channels"], st["kernel"], st["out_hw"])
    m = conv_macs(st["in_channels"], st["out_channels"], 3, st["out_hw"])
    m += conv_macs(st["out_channels"], st["out_channels"], 3, st["out_hw"])
    if st["shortcut"] != "identity":
        m += conv_macs(st["in_channels"], st["out_channels"], 1, st["out_hw"])
    return m


class MultiExitNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.stem = Stem(spec["stages"][0]["out_channels"])
        self.blocks = nn.ModuleList(
            BasicBlock(st["in_channels"], st["out_channels"], st["stride"]) for st in spec["stages"][1:])
        self.heads = nn.ModuleList(Head(h["in_channels"], spec["classes"], h.get("grid", 1), h.get("pool", "avg"))
                                   for h in spec["heads"])
        self.head_after = [h["after_block"] for h in spec["heads"]]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of every residual branch: blocks start as identity (helps short runs).
        for blk in self.blocks:
            nn.init.zeros_(blk.conv2.bn.weight)

    def forward(self, x):
        outs = []
        x = self.stem(x)
        k = 0
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if k < len(self.head_after) and self.head_after[k] == i:
                outs.append(self.heads[k](x))
                k += 1
        return outs


# --------------------------------------------------------------------------------------------
# Folding, export, reference implementation of the folded network
# --------------------------------------------------------------------------------------------

def fold_convbn(cb):
    """conv (no bias) + BN (eval) -> conv weight [O, I, kh, kw] and bias [O], computed in float64."""
    w = cb.conv.weight.detach().double()
    bn = cb.bn
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    wf = w * scale.view(-1, 1, 1, 1)
    bf = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
    return wf.float().contiguous(), bf.float().contiguous()


def folded_tensors(model):
    """name -> float32 tensor, in the order they are written."""
    t = {}
    t["stem.conv.weight"], t["stem.conv.bias"] = fold_convbn(model.stem.conv)
    for i, blk in enumerate(model.blocks):
        t[f"blocks.{i}.conv1.weight"], t[f"blocks.{i}.conv1.bias"] = fold_convbn(blk.conv1)
        t[f"blocks.{i}.conv2.weight"], t[f"blocks.{i}.conv2.bias"] = fold_convbn(blk.conv2)
        if blk.shortcut is not None:
            t[f"blocks.{i}.shortcut.weight"], t[f"blocks.{i}.shortcut.bias"] = fold_convbn(blk.shortcut)
    for k, h in enumerate(model.heads):
        t[f"heads.{k}.weight"] = h.fc.weight.detach().float().contiguous()
        t[f"heads.{k}.bias"] = h.fc.bias.detach().float().contiguous()
        if h.mix is not None:
            t[f"heads.{k}.max_weight"] = h.max_weight().detach().float().contiguous()
    return t


def read_safetensors_f32(path):
    """The written file read back by the independent reader: (tensors as torch float32, metadata)."""
    t, meta, _ = read_safetensors(path)
    for name, a in t.items():
        if a.dtype != np.float32:
            raise ValueError(f"{path}: {name}: dtype {a.dtype}, expected float32")
    return {name: torch.from_numpy(a) for name, a in t.items()}, meta


def folded_forward(t, spec, x):
    """Reference implementation of the exported network from the folded tensors and the
    metadata's architecture only: conv with bias, relu, residual add, pooling (global average,
    or to a grid, mixed with max), linear. Returns the logits of every head, in head order."""
    x = F.relu(F.conv2d(x, t["stem.conv.weight"], t["stem.conv.bias"], stride=1, padding=1))
    heads_at = {h["after_block"]: k for k, h in enumerate(spec["heads"])}
    outs = []
    for i, st in enumerate(spec["stages"][1:]):
        p = f"blocks.{i}"
        s = st["stride"]
        y = F.relu(F.conv2d(x, t[p + ".conv1.weight"], t[p + ".conv1.bias"], stride=s, padding=1))
        y = F.conv2d(y, t[p + ".conv2.weight"], t[p + ".conv2.bias"], stride=1, padding=1)
        if st["shortcut"] == "identity":
            sc = x
        else:
            sc = F.conv2d(x, t[p + ".shortcut.weight"], t[p + ".shortcut.bias"], stride=s, padding=0)
        x = F.relu(y + sc)
        if i in heads_at:
            k = heads_at[i]
            h = spec["heads"][k]  # gap_linear heads have neither grid nor pool
            mw = t[f"heads.{k}.max_weight"] if h.get("pool") == "mixed" else None
            outs.append(F.linear(head_features(x, h.get("grid", 1), mw), t[f"heads.{k}.weight"], t[f"heads.{k}.bias"]))
    return outs


# --------------------------------------------------------------------------------------------
# Training helpers
# --------------------------------------------------------------------------------------------

def exit_weights(kind, n):
    if kind == "uniform":
        return [1.0] * n
    if kind == "linear":  # (k+1)/n: early heads weigh less, final head 1
        return [(k + 1) / n for k in range(n)]
    if kind == "half-linear":  # 0.5 + 0.5 (k+1)/n, rounded to 3 decimals: 0.583 ... 1 for 6 heads
        return [round(0.5 + 0.5 * (k + 1) / n, 3) for k in range(n)]
    w = [float(v) for v in kind.split(",")]
    if len(w) != n:
        raise SystemExit(f"--exit-weights: {len(w)} values for {n} heads")
    return w


@torch.no_grad()
def evaluate(model, x_u8, y, mean, std, batch=500, channels_last=False, amp=False):
    """Accuracy of every head on uint8 images [N, 3, 32, 32] (on the CPU; run on the device of
    mean and std; amp: under bfloat16 autocast, for the per-epoch monitoring of --amp runs); also
    returns the logits [H, N, C] (on the CPU, float32)."""
    model.eval()
    logits = []
    for i in range(0, len(y), batch):
        xb = normalize(x_u8[i:i + batch].to(mean.device), mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(mean.device.type, dtype=torch.bfloat16, enabled=amp):
            logits.append(torch.stack([o.float() for o in model(xb)]).cpu())
    logits = torch.cat(logits, dim=1)
    acc = (logits.argmax(-1) == y.view(1, -1)).float().mean(1)
    return [round(float(a), 5) for a in acc], logits


def make_optimizer(model, args):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if (p.ndim <= 1) else decay).append(p)  # no weight decay on BN and biases
    return torch.optim.SGD([dict(params=decay, weight_decay=args.wd), dict(params=no_decay, weight_decay=0.0)],
                           lr=args.lr, momentum=0.9, nesterov=True)


def make_scheduler(opt, args, steps_per_epoch):
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=args.warmup_frac, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
        three_phase=False, cycle_momentum=False)


def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def fmt_time(s):
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# Arguments that define the run (restored from the checkpoint on --resume).
RUN_ARGS = ["widths", "blocks", "heads", "epochs", "batch_size", "lr", "wd", "warmup_frac",
            "label_smoothing", "exit_weights", "seed", "val_seed", "val_per_class", "limit_train",
            "self_distill", "distill_temperature", "init_from", "head_grid", "head_pool", "amp"]
RUN_ARG_DEFAULTS = {"self_distill": 0.0, "distill_temperature": 3.0, "init_from": "",  # older checkpoints
                    "head_grid": 1, "head_pool": "avg", "amp": "off"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10"),
                    help="folder with train.tar, test.tar, labels.txt (default: ../shared/data/cifar10 "
                         "relative to the repository root)")
    ap.add_argument("--cache", default="/var/tmp/earlyexit-train/cifar10.npz", help="decoded-data cache (.npz)")
    ap.add_argument("--out", default="/var/tmp/earlyexit-train/run1", help="output folder (checkpoint, export)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from OUT/checkpoint.pt (exactly: same data order, augmentation, schedule); "
                         "starts a new run when there is no checkpoint yet, so the same command can be repeated")
    ap.add_argument("--export-only", action="store_true",
                    help="load OUT/checkpoint.pt, export, evaluate on the test set; no training")
    ap.add_argument("--no-export", action="store_true",
                    help="skip the export and final test evaluation after training (tests of resume)")
    ap.add_argument("--bench", type=int, default=0, metavar="N",
                    help="time N training batches (after 5 warm-up batches) on the real data, print "
                         "the estimated time per epoch and for --epochs, and exit")
    # architecture
    ap.add_argument("--widths", default="32,64,192", help="channels of the block groups")
    ap.add_argument("--blocks", default="2,2,2", help="residual blocks per group")
    ap.add_argument("--heads", default="all",
                    help="'all' (a head after every block) or comma list of block indices (0-based) that "
                         "carry an exit head; must include the last block (the final classifier)")
    ap.add_argument("--head-grid", type=int, default=4, metavar="G",
                    help="early heads pool the feature map to G x G cells before their linear layer "
                         "(1: global average pool); the final head always pools globally")
    ap.add_argument("--head-pool", choices=["avg", "mixed"], default="mixed",
                    help="early heads' pooling: average, or mixed = w * max + (1 - w) * average with a "
                         "learned w per head")
    # optimization
    ap.add_argument("--epochs", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--wd", type=float, default=5e-4, help="weight decay (conv and linear weights only)")
    ap.add_argument("--warmup-frac", type=float, default=0.25, help="fraction of steps with rising LR")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--exit-weights", default="half-linear",
                    help="loss weight per head k of K: 'half-linear' (0.5 + 0.5 (k+1)/K, 3 decimals), "
                         "'linear' ((k+1)/K), 'uniform', or a comma list")
    ap.add_argument("--self-distill", type=float, default=0.0, metavar="A",
                    help="weight of the final head's softened output in the early heads' loss (0: none)")
    ap.add_argument("--distill-temperature", type=float, default=3.0)
    ap.add_argument("--init-from", default="", metavar="CHECKPOINT",
                    help="start from the model weights of another run's checkpoint.pt (same architecture), "
                         "with a new optimizer and schedule")
    ap.add_argument("--amp", choices=["off", "bf16"], default="off",
                    help="bf16: forward and backward under torch.autocast in bfloat16 (weights, optimizer "
                         "and losses stay float32); ~2.2x faster on CPUs with AMX (measured, see README)")
    ap.add_argument("--seed", type=int, default=1, help="model init, shuffling and augmentation")
    ap.add_argument("--val-seed", type=int, default=20240601, help="seed of the validation split")
    ap.add_argument("--val-per-class", type=int, default=500, help="validation images per class")
    ap.add_argument("--limit-train", type=int, default=0, metavar="N",
                    help="train on only the first N images of a seeded shuffle of the training split (smoke runs)")
    # runtime
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu",
                    help="torch device for training and evaluation, e.g. cuda (data order, augmentation "
                         "and the exported format do not depend on it)")
    ap.add_argument("--channels-last", choices=["on", "off"], default="on",
                    help="NHWC activations (measured 8-16%% faster here, torch 1.13 from Debian; see README)")
    ap.add_argument("--log-every", type=int, default=50, help="progress line every N batches")
    ap.add_argument("--time-budget-min", type=float, default=0.0,
                    help="stop after the epoch whose successor would end past this many minutes of "
                         "this invocation (0: no budget); --resume continues later")
    ap.add_argument("--ref-images", default="0,1,2,3,4,5,6,7",
                    help="test-image indices whose logits go to reference_logits.json")
    a = ap.parse_args(argv)
    a.widths = [int(v) for v in a.widths.split(",")]
    a.blocks = [int(v) for v in a.blocks.split(",")]
    a.heads = (list(range(sum(a.blocks))) if a.heads == "all" else [int(v) for v in a.heads.split(",")])
    tokens = sys.argv[1:] if argv is None else argv
    a.explicit = {k for k in RUN_ARGS
                  if any(t == "--" + k.replace("_", "-") or t.startswith("--" + k.replace("_", "-") + "=")
                         for t in tokens)}
    if len(a.widths) != len(a.blocks):
        ap.error("--widths and --blocks need the same number of groups")
    return a


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")

    ckpt = None
    if args.export_only and not os.path.exists(ckpt_path):
        raise SystemExit(f"{ckpt_path}: no checkpoint to export")
    if args.resume and not os.path.exists(ckpt_path):
        log(f"--resume: no checkpoint at {ckpt_path} yet, starting a new run")
    elif args.resume or args.export_only:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        for k in RUN_ARGS:  # the run's definition comes from the checkpoint
            v = ckpt["args"].get(k, RUN_ARG_DEFAULTS.get(k))
            if k in args.explicit and getattr(args, k) != v:
                log(f"note: {k} = {v!r} from the checkpoint, not {getattr(args, k)!r}")
            setattr(args, k, v)

    data = load_data(args.data, args.cache)
    class_names = data["class_names"]
    tr_idx, val_idx = val_split(data["train_y"], args.val_per_class, args.val_seed)
    mean_f, std_f = channel_stats(data["train_x"], tr_idx)
    if args.limit_train:
        g = np.random.Generator(np.random.PCG64(args.seed))
        tr_idx = np.sort(g.permutation(tr_idx)[:args.limit_train])
    x_all = to_nchw(data["train_x"])
    y_all = torch.from_numpy(data["train_y"])
    x_tr, y_tr = x_all[torch.from_numpy(tr_idx)], y_all[torch.from_numpy(tr_idx)]
    args.n_train = len(tr_idx)
    x_val, y_val = x_all[torch.from_numpy(val_idx)], y_all[torch.from_numpy(val_idx)]
    x_te, y_te = to_nchw(data["test_x"]), torch.from_numpy(data["test_y"])
    del x_all

    dev = torch.device(args.device)
    mean = torch.tensor(mean_f, dtype=torch.float32, device=dev)
    std = torch.tensor(std_f, dtype=torch.float32, device=dev)

    with open(os.path.join(args.out, "val_split.json"), "w") as f:
        json.dump(dict(description="Held-out validation split: indices into the 50 000 training images in "
                                   "train.tar order (members sorted by path, index = class*5000 + NNNN). "
                                   "Stratified, chosen per class with numpy.random.Generator(PCG64(seed))"
                                   ".choice(class_indices, size=per_class, replace=False), sorted.",
                       seed=args.val_seed, per_class=args.val_per_class, count=len(val_idx),
                       val_indices=[int(i) for i in val_idx]), f)

    spec = arch_spec(args.widths, args.blocks, args.heads, head_grid=args.head_grid, head_pool=args.head_pool)
    torch.manual_seed(args.seed)
    model = MultiExitNet(spec).to(dev)
    cl = args.channels_last == "on"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    n_heads = len(spec["heads"])
    weights = exit_weights(args.exit_weights, n_heads)
    steps_per_epoch = math.ceil(len(y_tr) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if not args.warmup_frac * total_steps > 1 or not args.warmup_frac < 1:
        raise SystemExit(f"--warmup-frac {args.warmup_frac} of {total_steps} steps ({args.epochs} epochs x "
                         f"{steps_per_epoch} batches) leaves {args.warmup_frac * total_steps:g} rising steps; the "
                         f"one-cycle schedule needs more than 1 and a falling part: use more images, epochs or "
                         f"a fraction in (1 / steps, 1)")
    opt = make_optimizer(model, args)
    sched = make_scheduler(opt, args, steps_per_epoch)
    crit = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    if not args.bench and not args.export_only:
        print_arch(spec)
        log(f"train {len(y_tr)}  val {len(y_val)}  test {len(y_te)}  heads {n_heads}  exit weights "
            f"{[round(w, 3) for w in weights]}  mean {mean_f} std {std_f}")

    history, start_epoch, train_time = [], 0, 0.0
    if ckpt is None and args.init_from:
        init = torch.load(args.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(init["model"])  # same architecture required; a mismatch names the tensors
        log(f"initialised the model from {args.init_from} ({init['epoch']} epochs there); new schedule of "
            f"{args.epochs} epochs")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, history, train_time = ckpt["epoch"], ckpt["history"], ckpt["train_time_s"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
        log(f"resumed from {ckpt_path}: {start_epoch}/{args.epochs} epochs done")

    def train_step(xb_u8, yb):
        xb_u8, yb = xb_u8.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        xb = normalize(xb_u8, mean, std)
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            outs = model(xb)
        outs = [o.float() for o in outs]
        losses = [crit(o, yb) for o in outs]
        if args.self_distill > 0:
            # early heads also learn the final head's softened output (self-distillation):
            # (1 - a) * CE + a * T^2 * KL(final/T || head/T), the final head's output detached
            t = args.distill_temperature
            soft = F.softmax(outs[-1].detach().float() / t, dim=1)
            a = args.self_distill
            losses = [(1 - a) * l + a * t * t * F.kl_div(F.log_softmax(o / t, dim=1), soft, reduction="batchmean")
                      for l, o in zip(losses[:-1], outs[:-1])] + [losses[-1]]
        loss = sum(w * l for w, l in zip(weights, losses))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr = sched.get_last_lr()[0]  # the rate this step used
        sched.step()
        return loss.detach(), (outs[-1].detach().argmax(1) == yb).sum(), lr

    if args.bench:
        bench(args, model, x_tr, y_tr, x_val, y_val, mean, std, train_step, steps_per_epoch, cl)
        return

    t_start = time.time()
    stopped_early = False
    for epoch in range(start_epoch, 0 if args.export_only else args.epochs):
        model.train()
        gen = torch.Generator().manual_seed(args.seed * 100003 + epoch)  # order + augmentation
        perm = torch.randperm(len(y_tr), generator=gen)
        t0 = time.time()
        run_loss, run_correct, run_n = torch.zeros((), device=dev), torch.zeros((), device=dev, dtype=torch.long), 0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb = augment(x_tr[idx], gen)
            yb = y_tr[idx]
            loss, correct, lr = train_step(xb, yb)  # tensors: no device sync per batch
            run_loss += loss * len(idx)
            run_correct += correct
            run_n += len(idx)
            if (b + 1) % args.log_every == 0 or b + 1 == steps_per_epoch:
                dt = time.time() - t0
                ips = run_n / dt
                ep_eta = (steps_per_epoch - b - 1) * dt / (b + 1)
                per_epoch = dt * steps_per_epoch / (b + 1)
                tot_eta = ep_eta + (args.epochs - epoch - 1) * per_epoch * 1.04
                log(f"epoch {epoch + 1}/{args.epochs} batch {b + 1}/{steps_per_epoch} "
                    f"loss {float(run_loss) / run_n:.4f} final-head train acc {int(run_correct) / run_n:.4f} "
                    f"lr {lr:.4f} {ips:.0f} img/s  epoch ETA {fmt_time(ep_eta)}  "
                    f"total ETA {fmt_time(tot_eta)}")
        t_train = time.time() - t0
        val_acc, _ = evaluate(model, x_val, y_val, mean, std, channels_last=cl, amp=args.amp == "bf16")
        t_epoch = time.time() - t0
        train_time += t_epoch
        history.append(dict(epoch=epoch + 1, train_loss=float(run_loss) / run_n, train_acc_final=int(run_correct) / run_n,
                            val_acc=val_acc, train_s=round(t_train, 1), epoch_s=round(t_epoch, 1)))
        log(f"epoch {epoch + 1}/{args.epochs} done in {t_epoch:.0f} s (train {t_train:.0f} s)  "
            f"val acc per exit {' '.join(f'{a:.4f}' for a in val_acc)}")
        save_checkpoint(ckpt_path, dict(
            model=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
            epoch=epoch + 1, history=history, train_time_s=train_time,
            args={k: getattr(args, k) for k in RUN_ARGS}, spec=spec,
            rng=dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())))
        elapsed = time.time() - t_start
        if (args.time_budget_min > 0 and epoch + 1 < args.epochs
                and elapsed + t_epoch > args.time_budget_min * 60):
            log(f"time budget: {elapsed / 60:.1f} min used, next epoch would end past "
                f"{args.time_budget_min} min; stopping after epoch {epoch + 1}/{args.epochs}. "
                f"Continue with --resume --out {args.out}")
            stopped_early = True
            break

    if args.export_only and start_epoch < args.epochs:
        log(f"--export-only: exporting the checkpoint after {start_epoch}/{args.epochs} epochs (run not finished)")
        stopped_early = True
    if args.no_export:
        log("--no-export: done")
        return
    export_and_evaluate(args, model, spec, history, mean_f, std_f, mean, std, class_names,
                        data, x_val, y_val, val_idx, x_te, y_te, train_time, stopped_early, cl)


def print_arch(spec):
    log("architecture (MACs per image; BN folded; pool adds counted in heads):")
    log(f"  {'stage':<10} {'type':<18} {'in->out ch':>11} {'stride':>6} {'out':>6} {'MACs':>12} {'cumulative':>12}")
    cum = 0
    for st in spec["stages"]:
        cum += st["macs"]
        kind = st["type"] + ("+proj" if st.get("shortcut") == "conv1x1_bn" else "")
        log(f"  {st['name']:<10} {kind:<18} {st['in_channels']:>5}->{st['out_channels']:<4} {st['stride']:>6} "
            f"{st['out_hw']:>3}x{st['out_hw']:<2} {st['macs']:>12,} {cum:>12,}")
    for h in spec["heads"]:
        log(f"  {h['name']:<10} after blocks.{h['after_block']} ({h['in_channels']} ch): {h['macs']:,} MACs")


def bench(args, model, x_tr, y_tr, x_val, y_val, mean, std, train_step, steps_per_epoch, cl):
    model.train()
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y_tr), generator=gen)
    warm = 5
    times, aug, losses = [], [], []
    for b in range(warm + args.bench):
        idx = perm[(b * args.batch_size) % len(y_tr):][:args.batch_size]
        t = time.perf_counter()
        xb = augment(x_tr[idx], gen)
        ta = time.perf_counter() - t
        losses.append(float(train_step(xb, y_tr[idx])[0]))
        if b >= warm:
            times.append(time.perf_counter() - t)
            aug.append(ta)
    per_batch, mean_batch, aug_t = float(np.median(times)), float(np.mean(times)), float(np.mean(aug))
    t = time.perf_counter()
    evaluate(model, x_val[:1000], y_val[:1000], mean, std, channels_last=cl)
    ev = (time.perf_counter() - t) * len(y_val) / 1000
    epoch = mean_batch * steps_per_epoch + ev
    log(f"bench: widths {args.widths} blocks {args.blocks} heads {len(args.heads)} batch {args.batch_size} "
        f"channels_last {args.channels_last} amp {args.amp} threads {args.threads}")
    log(f"bench: {args.bench} batches: median {per_batch * 1000:.0f} ms, mean {mean_batch * 1000:.0f} ms "
        f"per batch (augment {aug_t * 1000:.1f} ms) = {args.batch_size / mean_batch:.0f} img/s; "
        f"val eval {ev:.1f} s")
    log(f"bench: estimated {epoch:.0f} s per epoch ({steps_per_epoch} batches + val), "
        f"{args.epochs} epochs = {epoch * args.epochs / 60:.1f} min")
    log(f"bench: weighted loss, mean of first 5 batches {np.mean(losses[:5]):.3f}, of last 5 {np.mean(losses[-5:]):.3f}")


def export_and_evaluate(args, model, spec, history, mean_f, std_f, mean, std, class_names,
                        data, x_val, y_val, val_idx, x_te, y_te, train_time, stopped_early, cl):
    model.eval()
    t0 = time.time()
    tensors = folded_tensors(model)
    n_params = sum(int(t.numel()) for t in tensors.values())
    stage_costs = [st["macs"] for st in spec["stages"]]
    head_costs = [h["macs"] for h in spec["heads"]]
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(spec, separators=(",", ":")),
        "stages": ",".join(st["name"] for st in spec["stages"]),
        "strides": ",".join(str(st["stride"]) for st in spec["stages"]),
        "channels": ",".join(str(st["out_channels"]) for st in spec["stages"]),
        "head_after_stage": ",".join(str(h["after_stage"]) for h in spec["heads"]),
        "stage_macs": ",".join(str(c) for c in stage_costs),
        "head_macs": ",".join(str(c) for c in head_costs),
        "input": "uint8 RGB 32x32 -> float32 x/255 -> (x - mean[c]) / std[c], layout [3, 32, 32] (CHW)",
        "mean": json.dumps(mean_f),
        "std": json.dumps(std_f),
        "class_names": json.dumps(class_names),
        "layouts": "conv weight [out, in, kh, kw] row-major, bias [out]; padding kh//2; "
                   "linear weight [out, in] row-major, bias [out]; batch norm folded into conv",
        "val_split": json.dumps(dict(seed=args.val_seed, per_class=args.val_per_class,
                                     method="numpy PCG64 choice per class, see val_split.json")),
        "epochs_trained": str(len(history)),
        "parameters": str(n_params),
    }
    wpath = os.path.join(args.out, EXPORT_NAME)
    write_safetensors(wpath, {n: t.detach().cpu().numpy().astype(np.float32) for n, t in tensors.items()}, meta)

    # Check: reload the written file into the plain folded implementation, compare with the
    # unfolded model in eval mode (both on the CPU, in float32).
    t_loaded, meta_loaded = read_safetensors_f32(wpath)
    spec_loaded = json.loads(meta_loaded["architecture"])
    cpu_model = copy.deepcopy(model).cpu().eval()
    mean_cpu, std_cpu = mean.cpu(), std.cpu()
    xcheck = normalize(x_te[::40], mean_cpu, std_cpu)  # 250 test images, 25 per class
    with torch.no_grad():
        ref = torch.stack(cpu_model(xcheck.contiguous(memory_format=torch.channels_last) if cl else xcheck))
        fold = torch.stack(folded_forward(t_loaded, spec_loaded, xcheck))
    max_diff = float((ref - fold).abs().max())
    scale = max(1.0, float(ref.abs().max()))  # float32 rounding grows with the logits' size
    limit = 1e-4 * scale
    log(f"export: {wpath} ({os.path.getsize(wpath):,} bytes, {len(t_loaded)} tensors, {n_params:,} parameters); "
        f"fold check on {len(xcheck)} test images: max |logit diff| = {max_diff:.2e} "
        f"(limit 1e-4 x max(1, max |logit| = {scale:.1f}))")
    if not max_diff <= limit:
        raise SystemExit(f"fold check FAILED: max |logit diff| {max_diff} > {limit}")

    # Reference logits for the C++ parity test (from the folded network as read back).
    ref_idx = [int(i) for i in args.ref_images.split(",")]
    xr_u8 = x_te[ref_idx]
    with torch.no_grad():
        rl = torch.stack(folded_forward(t_loaded, spec_loaded, normalize(xr_u8, mean_cpu, std_cpu)))  # [H, n, C]
    members = [str(m) for m in data["test_members"]]
    refs = dict(
        description="Logits of every exit for a few test images, computed from the exported (folded) "
                    "weights in float32. Preprocessing: uint8 RGB -> float32 x/255 -> (x - mean[c]) / std[c], "
                    "CHW. pixels_hwc are the decoded uint8 pixels, row-major [32][32][3] (RGB), so the "
                    "parity test needs no JPEG decoder. logits[h][c] is head h's logit for class c.",
        weights=EXPORT_NAME, mean=mean_f, std=std_f, tolerance_used_in_python=1e-4,
        images=[dict(test_index=i, member=members[i], label=int(y_te[i]),
                     pixels_hwc=data["test_x"][i].reshape(-1).tolist(),
                     logits=[[float(v) for v in rl[h, j]] for h in range(rl.shape[0])])
                for j, i in enumerate(ref_idx)])
    with open(os.path.join(args.out, "reference_logits.json"), "w") as f:
        json.dump(refs, f)

    # Images for the C++ demo as .npy (earlyexit::npy reads uint8 and int64).
    np.save(os.path.join(args.out, "test_images.npy"), data["test_x"])
    np.save(os.path.join(args.out, "test_labels.npy"), data["test_y"].astype(np.int64))
    np.save(os.path.join(args.out, "val_images.npy"), data["train_x"][val_idx])
    np.save(os.path.join(args.out, "val_labels.npy"), data["train_y"][val_idx].astype(np.int64))
    np.save(os.path.join(args.out, "val_indices.npy"), val_idx.astype(np.int64))

    # Final evaluation.
    test_acc, test_logits = evaluate(model, x_te, y_te, mean, std, channels_last=cl)
    val_acc, val_logits = evaluate(model, x_val, y_val, mean, std, channels_last=cl)
    np.save(os.path.join(args.out, "test_logits.npy"), test_logits.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "val_logits.npy"), val_logits.numpy().astype(np.float32))
    cum, cum_costs = 0, []
    heads_at = {h["after_stage"]: h for h in spec["heads"]}
    for s, st in enumerate(spec["stages"]):
        cum += st["macs"]
        if s in heads_at:
            cum_costs.append(cum + heads_at[s]["macs"])
    metrics = dict(
        weights=EXPORT_NAME, epochs_planned=args.epochs, epochs_trained=len(history),
        stopped_early=stopped_early, train_time_s=round(train_time, 1), threads=args.threads,
        train_images=args.n_train, val_images=int(len(y_val)), test_images=int(len(y_te)),
        test_acc_per_exit=test_acc, val_acc_per_exit=val_acc,
        exit_after_block=[h["after_block"] for h in spec["heads"]],
        macs_to_exit=cum_costs, macs_full_network=sum(st["macs"] for st in spec["stages"]) + head_costs[-1],
        stage_macs=stage_costs, head_macs=head_costs, parameters=n_params, fold_check_max_abs_diff=max_diff,
        run_args={k: getattr(args, k) for k in RUN_ARGS}, history=history)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"test acc per exit  {' '.join(f'{a:.4f}' for a in test_acc)}")
    log(f"val  acc per exit  {' '.join(f'{a:.4f}' for a in val_acc)}")
    log(f"MACs to exit       {' '.join(f'{c / 1e6:.2f}M' for c in cum_costs)}")
    log(f"export + evaluation took {time.time() - t0:.0f} s; outputs in {args.out}")


if __name__ == "__main__":
    main()
