#!/usr/bin/python3
"""PyTorch eager baseline for batched throughput of the CIFAR-10 multi-exit ResNet.

What it measures: the *full* network (every stage, then the final head only; no early exit),
built in PyTorch from the architecture metadata and the batch-norm-folded tensors of the
weight file the C++ demo runs (models/cifar10_multiexit.safetensors: plain nn.Conv2d with bias,
ReLU, residual adds, global average pool + linear). PyTorch eager, eval mode, under
torch.inference_mode(), float32, oneDNN (mkldnn) convolutions on, inter-op threads 1, intra-op
threads as given (torch.set_num_threads). Each configuration (batch x threads x memory layout,
contiguous NCHW and channels_last) is warmed up, then timed in repeats for at least --seconds;
it reports samples/s (median over the repeats) and the latency of one batch (p50, p99 over every
timed batch). Inputs are random normalized images (uint8 pixels drawn with a fixed seed, then
x/255, (x - mean) / std as the C++ demo does), or CIFAR-10 test images with --data.

Before anything is timed, the network is checked against the repository's parity fixture
tests/data/cifar10/reference_logits.json (the logits of every exit for 8 CIFAR-10 test images,
written by examples/train/train_cifar10.py from the folded tensors; the C++ test
tests/test_common_cifar_net.cpp checks cifar_net against the same file): the final head's logits
of the timed module (in every layout, at batch 8 and batch 1) and every early head's logits must
match within --tolerance, or the script stops with exit status 1.

BLAS: Debian's torch calls whatever libblas.so.3 the alternatives system selects, for nn.Linear
and for the convolutions PyTorch keeps on its native im2col + GEMM path instead of oneDNN (at
batch 1, the 3x3 convs on maps of at most 20480 values). With the reference BLAS (libblas3, what
`apt-get install --no-install-recommends python3-torch` gives) batch 1 runs ~15x slower; install
libopenblas0 (a Recommends of libtorch1.13). OpenBLAS gets --blas-threads (default 1): its own
pthread pool would compete with PyTorch's OpenMP threads for the cores. The report names the BLAS.
The "other" column is the number of cores other processes kept busy while a row was timed
(/proc/stat minus this process): above ~0.1 the row is not a clean measurement.

Run (Debian 12: apt-get install python3-torch libopenblas0; about 1 minute on 2 cores):

    /usr/bin/python3 benchmarks/pytorch_throughput.py --model models/cifar10_multiexit.safetensors \\
        --batch 1 8 64 --threads 1 2 --json /tmp/torch.json

Quick self-check (parity + a 0.2 s run at batch 2 + the JSON's shape; a few seconds; exit 0 when
it passes, 77 when PyTorch is not installed, 1 on a parity failure or a malformed report):

    /usr/bin/python3 benchmarks/pytorch_throughput.py --check

Exit status: 0 ok, 1 parity or report check failed, 2 bad arguments or unreadable files.
"""

import argparse
import copy
import json
import math
import os
import platform
import statistics
import struct
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "cifar10_multiexit.safetensors"
DEFAULT_REFERENCE = REPO / "tests" / "data" / "cifar10" / "reference_logits.json"
FORMAT = "earlyexit-cifar10-multiexit"
LAYOUTS = ("nchw", "channels_last")
EXIT_SKIP = 77  # ctest's conventional SKIP_RETURN_CODE

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # reported in main(), so that --check can skip
    torch = None
    TORCH_IMPORT_ERROR = e

    class nn:  # so that the module's classes can still be defined
        Module = object


class UsageError(Exception):
    """Bad arguments or input files: reported as one line, exit status 2."""


class CheckFailed(Exception):
    """Parity or report check failed: reported as one line, exit status 1."""


# --------------------------------------------------------------------------------------------
# Weight file
# --------------------------------------------------------------------------------------------

def read_safetensors(path, expect_format):
    """(name -> float32 tensor, metadata dict). safetensors: u64 LE header length N, N bytes of
    JSON header, then the tensors' little-endian bytes; data_offsets are [begin, end) into it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--model {path}: no such file")
    raw = bytearray(path.read_bytes())
    if len(raw) < 8:
        raise UsageError(f"--model {path}: {len(raw)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise UsageError(f"--model {path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--model {path}: header is not JSON ({e})")
    meta = header.pop("__metadata__", {}) or {}
    if meta.get("format") != expect_format:
        raise UsageError(f"--model {path}: format {meta.get('format')!r} is not supported (only {expect_format!r}; "
                         "the MobileNetV2 model is not benchmarked by this script)")
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if info.get("dtype") != "F32":
            raise UsageError(f"--model {path}: tensor {name} has dtype {info.get('dtype')} (F32 expected)")
        b, e = info["data_offsets"]
        count = math.prod(info["shape"])
        if e - b != 4 * count or base + e > len(raw):
            raise UsageError(f"--model {path}: tensor {name}: data_offsets {b}..{e} do not fit shape {info['shape']}")
        tensors[name] = torch.frombuffer(raw, dtype=torch.float32, count=count, offset=base + b) \
            .reshape(info["shape"]).clone()
    return tensors, meta


# --------------------------------------------------------------------------------------------
# The network (folded: conv with bias, no batch norm)
# --------------------------------------------------------------------------------------------

class _Weights:
    """The file's tensors, handed out by name with a shape check; remembers which were used."""

    def __init__(self, path, tensors):
        self.path, self.tensors, self.used = path, tensors, set()

    def load(self, param, name):
        if name not in self.tensors:
            raise UsageError(f"--model {self.path}: tensor {name} is missing")
        t = self.tensors[name]
        if tuple(t.shape) != tuple(param.shape):
            raise UsageError(f"--model {self.path}: tensor {name} has shape {list(t.shape)}, "
                             f"the architecture needs {list(param.shape)}")
        with torch.no_grad():
            param.copy_(t)
        self.used.add(name)

    def conv(self, name, cin, cout, k, stride):
        c = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=True)
        self.load(c.weight, name + ".weight")
        self.load(c.bias, name + ".bias")
        return c


class BasicBlock(nn.Module):
    """ReLU(conv2(ReLU(conv1(x))) + shortcut(x)), shortcut = identity or a 1x1 conv (stride s)."""

    def __init__(self, w, name, st):
        super().__init__()
        cin, cout, s = st["in_channels"], st["out_channels"], st["stride"]
        self.conv1 = w.conv(name + ".conv1", cin, cout, 3, s)
        self.conv2 = w.conv(name + ".conv2", cout, cout, 3, 1)
        self.shortcut = None if st["shortcut"] == "identity" else w.conv(name + ".shortcut", cin, cout, 1, s)

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Stem(nn.Module):
    def __init__(self, w, name, st):
        super().__init__()
        self.conv = w.conv(name + ".conv", st["in_channels"], st["out_channels"], st["kernel"], st["stride"])

    def forward(self, x):
        return F.relu(self.conv(x))


class Head(nn.Module):
    """gap_linear: global average pool + linear. pool_linear: adaptive average pool to grid x grid
    (mixed: w * max + (1 - w) * average), flattened channel-major, + linear."""

    def __init__(self, w, name, h, classes):
        super().__init__()
        self.grid = h.get("grid", 1) if h["type"] == "pool_linear" else 1
        pool = h.get("pool", "avg") if h["type"] == "pool_linear" else "avg"
        if h["type"] not in ("gap_linear", "pool_linear") or pool not in ("avg", "mixed"):
            raise UsageError(f"--model {w.path}: head {name}: unknown type/pool {h['type']}/{pool}")
        self.fc = nn.Linear(h["in_channels"] * self.grid * self.grid, classes)
        w.load(self.fc.weight, name + ".weight")
        w.load(self.fc.bias, name + ".bias")
        self.max_weight = None
        if pool == "mixed":
            mw = torch.zeros(1)
            w.load(mw, name + ".max_weight")
            self.max_weight = float(mw[0])

    def forward(self, x):
        if self.grid == 1 and self.max_weight is None:
            return self.fc(x.mean(dim=(2, 3)))
        a = F.adaptive_avg_pool2d(x, self.grid)
        if self.max_weight is not None:
            a = self.max_weight * F.adaptive_max_pool2d(x, self.grid) + (1 - self.max_weight) * a
        return self.fc(a.flatten(1))


class CifarNet(nn.Module):
    """forward(x): the full network, every stage then the final head only (what is timed).
    forward_all(x): the logits of every head, in head order (for the parity check)."""

    def __init__(self, path, tensors, arch):
        super().__init__()
        w = _Weights(path, tensors)
        st = arch["stages"]
        if not st or st[0]["type"] != "conv_bn_relu" or any(s["type"] != "basic_block" for s in st[1:]):
            raise UsageError(f"--model {path}: stages must be one conv_bn_relu stem, then basic_blocks")
        self.stages = nn.ModuleList([Stem(w, st[0]["name"], st[0])] +
                                    [BasicBlock(w, s["name"], s) for s in st[1:]])
        self.heads = nn.ModuleList(Head(w, h["name"], h, arch["classes"]) for h in arch["heads"])
        self.head_after = [h["after_stage"] for h in arch["heads"]]
        if not self.head_after or self.head_after[-1] != len(st) - 1:
            raise UsageError(f"--model {path}: the last head must sit after the last stage")
        unused = sorted(set(tensors) - w.used)
        if unused:
            raise UsageError(f"--model {path}: tensors the architecture does not use: {', '.join(unused)}")
        self.eval()

    def forward(self, x):
        for s in self.stages:
            x = s(x)
        return self.heads[-1](x)

    def forward_all(self, x):
        outs, k = [], 0
        for i, s in enumerate(self.stages):
            x = s(x)
            while k < len(self.head_after) and self.head_after[k] == i:
                outs.append(self.heads[k](x))
                k += 1
        return outs


def load_model(path):
    tensors, meta = read_safetensors(path, FORMAT)
    try:
        arch = json.loads(meta["architecture"])
        mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    except (KeyError, json.JSONDecodeError) as e:
        raise UsageError(f"--model {path}: metadata 'architecture', 'mean' or 'std' missing or not JSON ({e})")
    try:
        net = CifarNet(path, tensors, arch)
    except KeyError as e:
        raise UsageError(f"--model {path}: architecture metadata lacks key {e}")
    macs = sum(s["macs"] for s in arch["stages"]) + arch["heads"][-1]["macs"]
    return net, arch, mean, std, macs


def in_layout(layout, t):
    return t.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else t.contiguous()


def model_in_layout(net, layout):
    m = copy.deepcopy(net)
    if layout == "channels_last":
        m = m.to(memory_format=torch.channels_last)
    return m.eval()


def normalize(u8_nhwc, mean, std):
    """uint8 [N, H, W, 3] -> float32 NCHW, x/255 then (x - mean[c]) / std[c]."""
    x = u8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# --------------------------------------------------------------------------------------------
# Parity check
# --------------------------------------------------------------------------------------------

def check_parity(net, models, reference, tolerance, mean, std):
    """Final-head logits of each timed module (batch 8 and batch 1) and every head's logits
    against the fixture; raises CheckFailed past the tolerance. Returns the report entry."""
    reference = Path(reference)
    if not reference.is_file():
        raise UsageError(f"--reference {reference}: no such file")
    try:
        ref = json.loads(reference.read_text())
        imgs = ref["images"]
        pix = torch.tensor([im["pixels_hwc"] for im in imgs], dtype=torch.uint8).view(len(imgs), 32, 32, 3)
        want = torch.tensor([im["logits"] for im in imgs], dtype=torch.float32)  # [N, heads, classes]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"--reference {reference}: not a reference_logits.json ({e})")
    if want.shape[1] != len(net.heads):
        raise CheckFailed(f"parity: {reference} has {want.shape[1]} heads, the model {len(net.heads)}")
    if any(abs(a - b) > 1e-6 for a, b in zip(list(ref["mean"]) + list(ref["std"]), list(mean) + list(std))):
        raise CheckFailed(f"parity: {reference}: mean/std differ from the model's metadata")
    x = normalize(pix, ref["mean"], ref["std"])
    diffs = {}
    with torch.inference_mode():
        for layout, m in models.items():
            xl = in_layout(layout, x)
            diffs[f"final_{layout}_batch{len(imgs)}"] = (m(xl) - want[:, -1]).abs().max().item()
            diffs[f"final_{layout}_batch1"] = max((m(xl[i:i + 1])[0] - want[i, -1]).abs().max().item()
                                                  for i in range(len(imgs)))
        allh = net.forward_all(x)
        diffs["every_head_nchw"] = max((allh[k] - want[:, k]).abs().max().item() for k in range(len(allh)))
        top1 = (net(x).argmax(1) == want[:, -1].argmax(1)).all().item()
    worst = max(diffs.values())
    if not worst <= tolerance or not top1:
        bad = ", ".join(f"{k} {v:.3g}" for k, v in diffs.items() if not v <= tolerance)
        raise CheckFailed(f"parity: logits differ from {reference} by more than {tolerance}: {bad or 'top-1 differs'}")
    return {"reference": os.path.relpath(reference, REPO) if reference.is_relative_to(REPO) else str(reference),
            "images": len(imgs), "heads": len(net.heads), "tolerance_abs": tolerance,
            "max_abs_diff": worst, "max_abs_diff_by_check": diffs}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def random_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)


def cifar_images(data, n):
    """n CIFAR-10 test images, evenly spaced over DATA/test.tar (or the tar DATA itself)."""
    data = Path(data)
    tar_path = data / "test.tar" if data.is_dir() else data
    if not tar_path.is_file():
        raise UsageError(f"--data {data}: no test.tar there (expected the CIFAR-10 JPEG folder, e.g. ../shared/data/cifar10)")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError(f"--data {data}: decoding the JPEGs needs Pillow (apt-get install python3-pil)")
    import io
    try:
        with tarfile.open(tar_path) as tf:
            members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                             key=lambda m: m.name)
            if not members:
                raise UsageError(f"--data {tar_path}: no .jpg members")
            step = max(1, len(members) // n)
            pick = [members[(i * step) % len(members)] for i in range(n)]
            arrs = []
            for m in pick:
                im = Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB")
                if im.size != (32, 32):
                    raise UsageError(f"--data {tar_path}: {m.name} is {im.size[0]}x{im.size[1]}, not 32x32")
                arrs.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(32, 32, 3))
    except tarfile.TarError as e:
        raise UsageError(f"--data {tar_path}: not a readable tar ({e})")
    return torch.stack(arrs)


# --------------------------------------------------------------------------------------------
# BLAS (PyTorch's native conv path and nn.Linear call it; Debian's torch takes whatever
# libblas.so.3 the alternatives system points to: reference BLAS, or OpenBLAS when installed)
# --------------------------------------------------------------------------------------------

def loaded_blas():
    """(description, set_threads callable or None) of the BLAS library this process loaded."""
    libs = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            f = line.split()[-1] if len(line.split()) >= 6 else ""
            if ("blas" in f or "mkl_rt" in f) and f not in libs:
                libs.append(f)
    except OSError:
        return "unknown", None
    real = sorted({os.path.realpath(f) for f in libs})
    # library names only: the output carries no path of the machine it ran on
    names = ", ".join(os.path.basename(f) for f in real)
    openblas = [f for f in real if "openblas" in os.path.basename(f)]
    if openblas:
        import ctypes
        name = os.path.basename(openblas[0])
        try:
            fn = ctypes.CDLL(openblas[0]).openblas_set_num_threads
            fn.argtypes = [ctypes.c_int]
            return f"OpenBLAS ({name})", fn
        except (OSError, AttributeError):
            return f"OpenBLAS ({name}), thread count not settable", None
    if any("/blas/" in f or os.path.basename(f).startswith("libblas.so") for f in real):
        return f"reference BLAS, unoptimized ({names}); apt-get install libopenblas0 for a fair baseline", None
    return names or "none loaded", None


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

def percentile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _busy_seconds():
    """CPU-seconds the whole machine has been busy (all cores, /proc/stat), or None."""
    try:
        f = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        v = [int(x) for x in f[1:9]]  # user nice system idle iowait irq softirq steal
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_seconds():
    t = os.times()
    return t.user + t.system


def time_config(model, x, seconds, warmup_s, min_repeats=5):
    """Warm up for warmup_s (at least 2 batches), then repeats of about seconds/10 each until
    seconds have passed and min_repeats are done. Returns (samples/s per repeat, latency per batch)."""
    batch = x.shape[0]
    repeat_s = seconds / 10.0
    clock = time.perf_counter
    with torch.inference_mode():
        end, n = clock() + warmup_s, 0
        while n < 2 or clock() < end:
            model(x)
            n += 1
        lat, rates = [], []
        busy0, own0 = _busy_seconds(), _own_seconds()
        start = clock()
        while True:
            r0, rn = clock(), 0
            while True:
                t0 = clock()
                model(x)
                t1 = clock()
                lat.append(t1 - t0)
                rn += 1
                if t1 - r0 >= repeat_s:
                    break
            rates.append(rn * batch / (t1 - r0))
            if t1 - start >= seconds and len(rates) >= min_repeats:
                break
        busy1, own1 = _busy_seconds(), _own_seconds()
    # Cores kept busy by other processes meanwhile (0: the machine was ours alone).
    other = None if busy0 is None else max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - start))
    return rates, lat, other


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

ROW_KEYS = {"batch": int, "threads": int, "layout": str, "samples_per_s": float,
            "batch_latency_p50_ms": float, "batch_latency_p99_ms": float}
TOP_KEYS = {"torch_version": str, "mkldnn": bool, "threads_interop": int, "model": str, "rows": list}


def validate_report(rep, batches, threads, layouts):
    for k, t in TOP_KEYS.items():
        if not isinstance(rep.get(k), t):
            raise CheckFailed(f"report: key {k!r} missing or not {t.__name__}")
    want = {(b, n, l) for b in batches for n in threads for l in layouts}
    got = set()
    for r in rep["rows"]:
        for k, t in ROW_KEYS.items():
            v = r.get(k)
            if not isinstance(v, t) or isinstance(v, bool) or (t is float and not (math.isfinite(v) and v > 0)):
                raise CheckFailed(f"report: row {r}: key {k!r} missing, not {t.__name__} or not positive")
        if r["layout"] not in LAYOUTS:
            raise CheckFailed(f"report: row layout {r['layout']!r} is not one of {LAYOUTS}")
        if r["batch_latency_p99_ms"] < r["batch_latency_p50_ms"]:
            raise CheckFailed(f"report: row {r}: p99 below p50")
        got.add((r["batch"], r["threads"], r["layout"]))
    if got != want or len(rep["rows"]) != len(want):
        raise CheckFailed(f"report: rows {sorted(got)} differ from the configurations {sorted(want)}")


def print_table(rep, out=sys.stdout):
    p = lambda s="": print(s, file=out)
    p(f"PyTorch {rep['torch_version']} eager, fp32, mkldnn available {rep['mkldnn']} (enabled), "
      f"interop threads {rep['threads_interop']}, full network (final head only)")
    p(f"BLAS: {rep['blas']}, threads {rep['blas_threads'] if rep['blas_threads'] is not None else 'not set'}")
    p(f"model {rep['model']}: {rep['macs_per_sample'] / 1e6:.1f} MMAC per sample; inputs: {rep['input']}")
    pr = rep["parity"]
    p(f"parity vs {pr['reference']}: {pr['images']} images, max |diff| {pr['max_abs_diff']:.2e} "
      f"(tolerance {pr['tolerance_abs']:g}) ok")
    p()
    p(f"{'batch':>5} {'threads':>7} {'layout':<14} {'samples/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'batches':>7}"
      f" {'other':>5}")
    for r in rep["rows"]:
        mark = " *" if r.get("fastest_layout") and len(rep["layouts"]) > 1 else ""
        p(f"{r['batch']:>5} {r['threads']:>7} {r['layout']:<14} {r['samples_per_s']:>10.1f} "
          f"{r['batch_latency_p50_ms']:>9.3f} {r['batch_latency_p99_ms']:>9.3f} {r['timed_batches']:>7}"
          f" {'-' if r['other_cpu_load'] is None else format(r['other_cpu_load'], '5.2f'):>5}{mark}")
    if len(rep["layouts"]) > 1:
        p("* the faster layout for that batch and thread count")
    p("samples/s: median over the timed repeats; p50/p99: latency of one batch over every timed batch;")
    p("other: cores kept busy by other processes while timing (above ~0.1 the row is not a clean measurement)")
    noisy = [r for r in rep["rows"] if (r.get("other_cpu_load") or 0) > 0.1]
    if noisy:
        p(f"warning: {len(noisy)} of {len(rep['rows'])} rows ran beside other work; rerun on an idle machine")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def positive_int(flag):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            v = 0
        if v < 1 or str(v) != s.strip().lstrip("+"):
            raise argparse.ArgumentTypeError(f"{s!r} is not a positive integer")
        return v
    return parse


def positive_float(flag):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            v = float("nan")
        if not (math.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"{s!r} is not a positive number")
        return v
    return parse


def blas_threads_arg(s):
    if s == "match" or (s.isdigit() and int(s) >= 1):
        return s
    raise argparse.ArgumentTypeError(f"{s!r} is neither a positive integer nor 'match'")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring (head of this file) for details.")
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="weight file (default: %(default)s)")
    ap.add_argument("--batch", nargs="+", type=positive_int("--batch"), default=[1, 8, 64], metavar="B",
                    help="batch sizes (default: 1 8 64)")
    ap.add_argument("--threads", nargs="+", type=positive_int("--threads"), default=[1, 2], metavar="T",
                    help="intra-op thread counts, torch.set_num_threads (default: 1 2)")
    ap.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS),
                    help="memory layouts (default: both)")
    ap.add_argument("--seconds", type=positive_float("--seconds"), default=3.0, metavar="S",
                    help="timed seconds per configuration, at least (default: 3)")
    ap.add_argument("--warmup", type=positive_float("--warmup"), default=0.5, metavar="S",
                    help="warmup seconds per configuration, at least 2 batches (default: 0.5)")
    ap.add_argument("--data", metavar="DIR", help="CIFAR-10 JPEG folder with test.tar (e.g. ../shared/data/cifar10); "
                    "default: random images")
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="parity fixture (default: %(default)s)")
    ap.add_argument("--tolerance", type=positive_float("--tolerance"), default=1e-4,
                    help="max |logit difference| allowed by the parity check (default: %(default)g)")
    ap.add_argument("--blas-threads", default="1", type=blas_threads_arg, metavar="N|match",
                    help="OpenBLAS threads (PyTorch's native conv path and nn.Linear): 1 (default; OpenBLAS's "
                         "own pthread pool would compete with PyTorch's OpenMP threads for the cores) or "
                         "'match' (= --threads)")
    ap.add_argument("--json", metavar="FILE", help="write the report here")
    ap.add_argument("--check", action="store_true",
                    help="self-check: parity, batch 2, 1 thread, 0.2 s, JSON shape (overrides --batch, "
                         "--threads, --seconds, --warmup)")
    a = ap.parse_args(argv)
    if a.check:
        a.batch, a.threads, a.seconds, a.warmup = [2], [1], 0.2, 0.05
    a.batch = list(dict.fromkeys(a.batch))
    a.threads = list(dict.fromkeys(a.threads))
    a.layouts = list(dict.fromkeys(a.layouts))
    return a


def run(a):
    torch.set_num_interop_threads(1)  # before any parallel work
    torch.backends.mkldnn.enabled = True
    cores = os.cpu_count() or 1
    for t in a.threads:
        if t > cores:
            print(f"warning: --threads {t} is more than the {cores} CPUs here", file=sys.stderr)
    if a.json:
        jdir = Path(a.json).resolve().parent
        if not jdir.is_dir():
            raise UsageError(f"--json {a.json}: folder {jdir} does not exist")

    blas, blas_threads = loaded_blas()
    if blas.startswith("reference BLAS"):
        print(f"warning: PyTorch uses {blas}: batch-1 convolutions that PyTorch routes to its native "
              "(im2col + GEMM) path instead of oneDNN will be very slow", file=sys.stderr)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    nmax = max(a.batch)
    pixels = cifar_images(a.data, min(nmax, 256)) if a.data else random_images(nmax)
    what = f"CIFAR-10 test images from {a.data}" if a.data else "random uint8 pixels (seed 0), normalized"
    net, arch, mean, std, macs = load_model(a.model)
    pool = normalize(pixels, mean, std)
    models = {l: model_in_layout(net, l) for l in a.layouts}
    torch.set_num_threads(min(a.threads))
    parity = check_parity(net, models, a.reference, a.tolerance, mean, std)
    rows = []
    for t in a.threads:
        torch.set_num_threads(t)
        if blas_threads is not None:
            blas_threads(t if a.blas_threads == "match" else int(a.blas_threads))
        for b in a.batch:
            xb = pool[torch.arange(b) % pool.shape[0]]
            for layout in a.layouts:
                rates, lat, other = time_config(models[layout], in_layout(layout, xb), a.seconds, a.warmup)
                r = {"batch": b, "threads": t, "layout": layout,
                     "samples_per_s": float(statistics.median(rates)),
                     "batch_latency_p50_ms": 1e3 * percentile(lat, 50),
                     "batch_latency_p99_ms": 1e3 * percentile(lat, 99),
                     "other_cpu_load": None if other is None else round(other, 3),
                     "repeats": len(rates), "timed_batches": len(lat),
                     "samples_per_s_min": min(rates), "samples_per_s_max": max(rates)}
                rows.append(r)
                print(f"  batch {b:>4} threads {t} {layout:<13} {r['samples_per_s']:10.1f} samples/s",
                      file=sys.stderr, flush=True)
    for r in rows:
        same = [s for s in rows if s["batch"] == r["batch"] and s["threads"] == r["threads"]]
        r["fastest_layout"] = r["samples_per_s"] == max(s["samples_per_s"] for s in same)

    model_str = os.path.relpath(Path(a.model).resolve(), REPO) if Path(a.model).resolve().is_relative_to(REPO) \
        else str(a.model)
    rep = {"torch_version": torch.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()),
           "mkldnn_enabled": bool(torch.backends.mkldnn.enabled), "threads_interop": torch.get_num_interop_threads(),
           "model": model_str, "macs_per_sample": macs, "mode": "full (every stage, final head only)",
           "dtype": "float32", "input": what, "layouts": a.layouts,
           "seconds_per_config": a.seconds, "warmup_seconds": a.warmup,
           "cpu": platform.processor() or platform.machine(), "cpu_count": cores, "blas": blas,
           "blas_threads": (a.blas_threads if a.blas_threads == "match" else int(a.blas_threads))
           if blas_threads is not None else None,
           "python": platform.python_version(), "loadavg_1min_start": load_start,
           "loadavg_1min_end": os.getloadavg()[0] if load_start is not None else None,
           "parity": parity, "rows": rows}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                rep["cpu"] = line.split(":", 1)[1].strip()
                break
    print_table(rep)
    return rep


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    prog = "pytorch_throughput.py"
    if torch is None:
        msg = f"PyTorch is not installed ({TORCH_IMPORT_ERROR}); Debian 12: apt-get install python3-torch"
        if a.check:
            print(f"{prog} --check: skipped: {msg}")
            return EXIT_SKIP
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    try:
        rep = run(a)
        text = json.dumps(rep, indent=2) + "\n"
        if a.json:
            Path(a.json).write_text(text)
            print(f"wrote {a.json}")
        if a.check:
            if a.json:
                reread = json.loads(Path(a.json).read_text())
            else:
                with tempfile.TemporaryDirectory() as d:
                    p = Path(d) / "torch.json"
                    p.write_text(text)
                    reread = json.loads(p.read_text())
            validate_report(reread, a.batch, a.threads, a.layouts)
            print(f"{prog} --check: ok (parity max |diff| {rep['parity']['max_abs_diff']:.2e}, "
                  f"{len(rep['rows'])} rows)")
        else:
            validate_report(rep, a.batch, a.threads, a.layouts)
        return 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(f"{prog}: check failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
