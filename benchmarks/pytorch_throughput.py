#!/usr/bin/python3
"""PyTorch at its best: batched CPU throughput of the CIFAR-10 multi-exit ResNet, eager and TorchScript.

What it measures: the *full* network (every stage, then the final head only; no early exit),
built in PyTorch from the architecture metadata and the batch-norm-folded tensors of the
weight file the C++ demo runs (models/cifar10_multiexit.safetensors: plain nn.Conv2d with bias,
ReLU, residual adds, global average pool + linear), float32, eval mode, under
torch.inference_mode(), oneDNN (mkldnn) on, inter-op threads 1, intra-op threads as given
(torch.set_num_threads). Every configuration is a mode x memory layout x batch x threads:

  modes    eager       the nn.Module as is (PyTorch picks oneDNN or its native im2col + GEMM
                       convolution per call);
           jit_frozen  torch.jit.script(model) (torch.jit.trace when scripting fails), then
                       torch.jit.freeze and torch.jit.optimize_for_inference: weights become
                       constants and, where oneDNN is available, every convolution a
                       prim::mkldnn_convolution on weights reordered once into oneDNN tensors
                       (prim::ConstantMKLDNNTensor), the activations kept in oneDNN's layout
                       between them. In torch 1.13 on the CPU the ReLUs and residual adds stay
                       separate nodes (in place on those tensors), not fused into the
                       convolutions. The node kinds of each frozen graph are printed and stored,
                       so that a reader sees which kernels run;
  layouts  nchw (contiguous) and channels_last, for the module's weights and the input;
  batches  --batch (default 1 8 64), plus, unless --no-best-batch, "its best batch": for each
           thread count the fastest mode/layout at batch 64 (at the largest --batch when 64 is not
           among them) is also timed at --best-batch-sizes (default 16 32 128 256). The row with
           the most samples/s per thread count is marked best (JSON "best": true, "BEST" in the
           table).

Each configuration is warmed up (--warmup seconds and at least 2 calls; jit_frozen at least 5
calls, since the profiling executor optimizes a graph only after profiling runs), then timed in
repeats for at least --seconds; it reports samples/s (median over the repeats), the latency of one
batch (p50, p99 over every timed batch) and the convolution kernels that ran (eager: the
torch.profiler op names of one untimed call, e.g. aten::mkldnn_convolution = oneDNN,
aten::_slow_conv2d_forward = native im2col + BLAS GEMM; jit_frozen: the frozen graph's conv nodes).
Inputs are random normalized images (uint8 pixels drawn with a fixed seed, then x/255,
(x - mean) / std as the C++ demo does), or CIFAR-10 test images with --data.

Before anything is timed, every mode and layout is checked against the repository's parity fixture
tests/data/cifar10/reference_logits.json (the logits of every exit for 8 CIFAR-10 test images,
written by examples/train/train_cifar10.py from the folded tensors; the C++ test
tests/test_common_cifar_net.cpp checks cifar_net against the same file): the final head's logits
of each timed module (at batch 8, three calls for jit_frozen, and at batch 1) and every early
head's logits (eager) must match within --tolerance, or the script stops with exit status 1. A
mode that this torch cannot build (or run) is reported as skipped, with the reason, and the
others are timed.

What ran is printed and stored: torch version, torch.backends.mkldnn.is_available(), the lines
of torch.__config__.show() naming oneDNN (MKL-DNN), BLAS, OpenMP and the CPU capability
(torch.backends.cpu.get_cpu_capability() where this torch has it), the BLAS library loaded, the
frozen graphs' node kinds, and the machine's load average at the start and the end.

BLAS: Debian's torch calls whatever libblas.so.3 the alternatives system selects, for nn.Linear
and for the convolutions eager PyTorch keeps on its native im2col + GEMM path instead of oneDNN
(at batch 1, the 3x3 convs on maps of at most 20480 values). With the reference BLAS (libblas3,
what `apt-get install --no-install-recommends python3-torch` gives) eager batch 1 runs ~15x
slower; install libopenblas0 (a Recommends of libtorch1.13). jit_frozen runs every convolution in
oneDNN and does not depend on it. OpenBLAS gets --blas-threads (default 1): its own pthread pool
would compete with PyTorch's OpenMP threads for the cores. The report names the BLAS.
The "other" column is the number of cores other processes kept busy while a row was timed
(/proc/stat minus this process): above ~0.1 the row is not a clean measurement.

The JSON (--json) has a "rows" array; each row has "mode", "layout", "batch", "threads",
"samples_per_s" (the C++ demo's --torch-json takes the most samples/s over the rows with its batch
and thread count, i.e. PyTorch's best mode and layout there), latencies, "other_cpu_load",
"conv_kernels", "search" ("grid" or "best_batch"), "fastest" (over modes and layouts at that batch
and thread count), "fastest_layout" (within the mode) and "best" (over the thread count's rows).

Run (Debian 12: apt-get install python3-torch libopenblas0; the default run times 32
configurations at 1 and 2 threads: about 2.5 minutes on 2 cores):

    /usr/bin/python3 benchmarks/pytorch_throughput.py --threads 1 2 --json /tmp/torch.json

Quick self-check (parity of both modes in both layouts, a 0.2 s run of each at batch 2 and of the
best-batch search at batch 4, the JSON's shape; a few seconds; exit 0 when it passes, 77 when
PyTorch is not installed, 1 on a parity failure, a malformed report or, where this torch has
torch.jit.optimize_for_inference, a jit_frozen module that could not be built):

    /usr/bin/python3 benchmarks/pytorch_throughput.py --check

Exit status: 0 ok, 1 parity or report check failed, 2 bad arguments or unreadable files.
"""

import argparse
import collections
import copy
import json
import math
import os
import platform
import re
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
MODES = ("eager", "jit_frozen")
BEST_BATCH_SIZES = (16, 32, 128, 256)
JIT_WARMUP_CALLS = 5  # the profiling executor optimizes a graph after its profiling runs (1 by default)
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
# Modes: eager and TorchScript (scripted or traced, frozen, optimized for inference)
# --------------------------------------------------------------------------------------------

_ABS_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/:'\"()<>,]+/)+([^\s/:'\"()<>,]*)")


def no_paths(s):
    """s with every absolute path cut to its last component (no path of this machine in the report)."""
    return _ABS_PATH.sub(r"\1", s)


def portable_path(p):
    """A path for the report: relative to the repository when inside it or beside it (../shared/...),
    else the file's name only."""
    p = Path(p).resolve()
    if p.is_relative_to(REPO):
        return os.path.relpath(p, REPO)
    if p.is_relative_to(REPO.parent):
        return os.path.relpath(p, REPO)
    return p.name


def _reason(e):
    text = " ".join(str(e).split())
    return no_paths(f"{type(e).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}")


def _graph_nodes(block):
    for n in block.nodes():
        yield n
        for b in n.blocks():
            yield from _graph_nodes(b)


def graph_summary(module):
    """Node kinds of a TorchScript module's forward graph (constants left out) and the counts the
    report prints: kinds containing mkldnn, prepacked, conv; standalone ReLUs."""
    kinds = collections.Counter(n.kind() for n in _graph_nodes(module.graph) if n.kind() != "prim::Constant")
    count = lambda word: sum(v for k, v in kinds.items() if word in k.lower())
    return {"node_kinds": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            "mkldnn_nodes": count("mkldnn"), "prepacked_nodes": count("prepacked"), "conv_nodes": count("conv"),
            "relu_nodes_standalone": sum(v for k, v in kinds.items() if k in ("aten::relu", "aten::relu_")),
            "conv_kernels": {k: v for k, v in sorted(kinds.items()) if "conv" in k.lower()}}


def build_jit_frozen(net, layout, example):
    """torch.jit.script (or torch.jit.trace when scripting fails) -> freeze -> optimize_for_inference,
    called 3 times on `example` (the profiling executor optimizes after its profiling runs). Returns
    (module, info); raises when this torch cannot build or run it."""
    base = model_in_layout(net, layout)
    info = {}
    with torch.no_grad():
        try:
            scripted = torch.jit.script(base)
            info["built_with"] = "torch.jit.script"
        except Exception as e:  # noqa: BLE001 (any scripting failure: fall back to tracing)
            info["script_error"] = _reason(e)
            scripted = torch.jit.trace(base, example)
            info["built_with"] = "torch.jit.trace"
        if not hasattr(torch.jit, "optimize_for_inference"):
            raise RuntimeError(f"torch.jit.optimize_for_inference is not in torch {torch.__version__}")
        module = torch.jit.optimize_for_inference(torch.jit.freeze(scripted.eval()))
    info["built_with"] += " -> torch.jit.freeze -> torch.jit.optimize_for_inference"
    with torch.inference_mode():
        for _ in range(3):
            module(example)
    info.update(graph_summary(module))
    return module, info


def build_modules(net, modes, layouts, example):
    """{(mode, layout): module}, [skipped {mode, layout, reason}], {layout: jit info}."""
    models, skipped, jit = {}, [], {}
    for mode in modes:
        for layout in layouts:
            if mode == "eager":
                models[mode, layout] = model_in_layout(net, layout)
                continue
            try:
                models[mode, layout], jit[layout] = build_jit_frozen(net, layout, in_layout(layout, example))
            except Exception as e:  # noqa: BLE001 (reported as skipped, the other modes go on)
                skipped.append({"mode": mode, "layout": layout, "reason": _reason(e)})
                print(f"warning: {mode} {layout} skipped: {skipped[-1]['reason']}", file=sys.stderr)
    return models, skipped, jit


# --------------------------------------------------------------------------------------------
# Parity check
# --------------------------------------------------------------------------------------------

def check_parity(net, models, reference, tolerance, mean, std):
    """Final-head logits of each timed module (batch 8, three calls for TorchScript modules, and
    batch 1) and every head's logits against the fixture; raises CheckFailed past the tolerance.
    Returns the report entry."""
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
        for (mode, layout), m in models.items():
            xl = in_layout(layout, x)
            calls = 1 if mode == "eager" else 3
            diffs[f"final_{mode}_{layout}_batch{len(imgs)}"] = max((m(xl) - want[:, -1]).abs().max().item()
                                                                   for _ in range(calls))
            diffs[f"final_{mode}_{layout}_batch1"] = max((m(xl[i:i + 1])[0] - want[i, -1]).abs().max().item()
                                                         for i in range(len(imgs)))
        allh = net.forward_all(x)
        diffs["every_head_eager_nchw"] = max((allh[k] - want[:, k]).abs().max().item() for k in range(len(allh)))
        top1 = (net(x).argmax(1) == want[:, -1].argmax(1)).all().item()
    worst = max(diffs.values())
    if not worst <= tolerance or not top1:
        bad = ", ".join(f"{k} {v:.3g}" for k, v in diffs.items() if not v <= tolerance)
        raise CheckFailed(f"parity: logits differ from {reference} by more than {tolerance}: {bad or 'top-1 differs'}")
    return {"reference": portable_path(reference), "images": len(imgs), "heads": len(net.heads),
            "tolerance_abs": tolerance, "max_abs_diff": worst, "max_abs_diff_by_check": diffs}


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
# What this torch is built with
# --------------------------------------------------------------------------------------------

_BUILD_SETTINGS = ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP", "PERF_WITH_AVX2", "PERF_WITH_AVX512")


def torch_build_info():
    """The lines of torch.__config__.show() / parallel_info() that name oneDNN (MKL-DNN), BLAS,
    LAPACK, OpenMP and the CPU capability, a few build settings, oneDNN's version and the CPU
    capability (torch.backends.cpu.get_cpu_capability() where it exists)."""
    try:
        show = torch.__config__.show()
    except Exception:  # noqa: BLE001
        show = ""
    try:
        par = torch.__config__.parallel_info()
    except Exception:  # noqa: BLE001
        par = ""
    lines, settings = [], {}
    for raw in show.splitlines():
        line = raw.strip().lstrip("-").strip()
        if line.startswith("Build settings:"):
            for kv in line[len("Build settings:"):].split(", "):
                k, _, v = kv.strip().partition("=")
                if k in _BUILD_SETTINGS:
                    settings[k] = v.strip().rstrip(",")
        elif re.search(r"MKL|DNN|BLAS|LAPACK|OpenMP|CPU capability", line):
            lines.append(no_paths(line))
    for raw in par.splitlines():
        line = raw.strip()
        if line.startswith("ATen parallel backend") or line == "MKL not found":
            lines.append(no_paths(line))
    m = re.search(r"(?:MKL-DNN|oneDNN)\s+v?(\d[\d.]*)", show)
    capability, source = None, None
    get_cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    if get_cap is not None:
        try:
            capability, source = str(get_cap()), "torch.backends.cpu.get_cpu_capability()"
        except Exception:  # noqa: BLE001
            pass
    if capability is None:
        c = re.search(r"CPU capability usage:\s*(\S+)", show)
        if c:
            capability = c.group(1)
            source = "torch.__config__.show(); torch.backends.cpu.get_cpu_capability() is not in this torch"
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        source = (source or "") + f"; ATEN_CPU_CAPABILITY={os.environ['ATEN_CPU_CAPABILITY']} is set"
    return {"config_lines": list(dict.fromkeys(lines)), "build_settings": settings,
            "onednn_version": m.group(1) if m else None, "cpu_capability": capability or "unknown",
            "cpu_capability_source": source or "unknown"}


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


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# The layers between conv2d and the kernel that runs (the profiler records them all).
_CONV_DISPATCH = {"aten::conv2d", "aten::convolution", "aten::_convolution", "aten::thnn_conv2d"}


def eager_conv_kernels(model, x):
    """{op name: count} of the convolution kernels one call runs (torch.profiler), or None."""
    try:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
        c = collections.Counter(e.name for e in prof.events() if "conv" in e.name and e.name not in _CONV_DISPATCH)
        return dict(sorted(c.items()))
    except Exception:  # noqa: BLE001 (the kernel names are informative only)
        return None


def kernel_label(kernels):
    """'oneDNN 6 + im2col+GEMM 9' from {op name: count}."""
    if not kernels:
        return "-"
    name = lambda k: ("oneDNN" if "mkldnn" in k else "im2col+GEMM" if "slow_conv2d" in k
                      else k.split("::")[-1])
    merged = collections.Counter()
    for k, v in kernels.items():
        merged[name(k)] += v
    return " + ".join(f"{k} {v}" for k, v in merged.items())


def time_config(model, x, seconds, warmup_s, min_warmup_calls=2, min_repeats=5, kernels=False):
    """Warm up for warmup_s (at least min_warmup_calls batches), then (kernels=True) one untimed
    profiled call for the conv kernel names, then repeats of about seconds/10 each until seconds
    have passed and min_repeats are done. Returns (samples/s per repeat, latency per batch, cores
    other processes kept busy, conv kernels or None)."""
    batch = x.shape[0]
    repeat_s = seconds / 10.0
    clock = time.perf_counter
    with torch.inference_mode():
        end, n = clock() + warmup_s, 0
        while n < min_warmup_calls or clock() < end:
            model(x)
            n += 1
        ran = eager_conv_kernels(model, x) if kernels else None
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
    return rates, lat, other, ran


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

ROW_KEYS = {"mode": str, "layout": str, "batch": int, "threads": int, "samples_per_s": float,
            "batch_latency_p50_ms": float, "batch_latency_p99_ms": float, "search": str,
            "best": bool, "fastest": bool, "fastest_layout": bool}
TOP_KEYS = {"torch_version": str, "mkldnn": bool, "threads_interop": int, "model": str, "modes": list,
            "layouts": list, "skipped": list, "torch_build": dict, "cpu_capability": str, "blas": str,
            "jit_frozen": dict, "best_batch": dict, "parity": dict, "rows": list}


def _row_order(r):
    return (r["threads"], r["batch"], MODES.index(r["mode"]), LAYOUTS.index(r["layout"]))


def _strings(j):
    if isinstance(j, str):
        yield j
    elif isinstance(j, dict):
        for k, v in j.items():
            yield k
            yield from _strings(v)
    elif isinstance(j, list):
        for v in j:
            yield from _strings(v)


def validate_report(rep, batches, threads):
    """The JSON's shape: top-level keys, one row per configuration timed (grid: every mode and
    layout not skipped x batch x threads; best-batch search: the searched mode/layout at the
    candidate batches not in the grid), the marks, and no absolute path anywhere."""
    for k, t in TOP_KEYS.items():
        if not isinstance(rep.get(k), t) or (t is str and not rep[k]):
            raise CheckFailed(f"report: key {k!r} missing or not {t.__name__}")
    for k in ("loadavg_start", "loadavg_end"):
        v = rep.get(k, "missing")
        if v is not None and not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
            raise CheckFailed(f"report: key {k!r} missing or not [1, 5, 15 min] or null")
    modes, layouts = rep["modes"], rep["layouts"]
    if not set(modes) <= set(MODES) or not set(layouts) <= set(LAYOUTS):
        raise CheckFailed(f"report: modes {modes} / layouts {layouts} not among {MODES} / {LAYOUTS}")
    skipped = {(s.get("mode"), s.get("layout")) for s in rep["skipped"]}
    if any(not isinstance(s.get("reason"), str) or not s["reason"] for s in rep["skipped"]):
        raise CheckFailed("report: a skipped entry without a reason")
    for layout, info in rep["jit_frozen"].items():
        if ("jit_frozen", layout) in skipped or not isinstance(info.get("node_kinds"), dict) or \
                not all(isinstance(info.get(k), int) for k in ("mkldnn_nodes", "prepacked_nodes", "conv_nodes")):
            raise CheckFailed(f"report: jit_frozen[{layout!r}]: node kinds and counts missing")
    if "jit_frozen" in modes and set(rep["jit_frozen"]) != {l for l in layouts if ("jit_frozen", l) not in skipped}:
        raise CheckFailed(f"report: jit_frozen graphs for {sorted(rep['jit_frozen'])}, built {layouts} less skipped")
    for r in rep["rows"]:
        for k, t in ROW_KEYS.items():
            v = r.get(k)
            if not isinstance(v, t) or (t is not bool and isinstance(v, bool)) or \
                    (t is float and not (math.isfinite(v) and v > 0)) or (t is int and v < 1):
                raise CheckFailed(f"report: row {r}: key {k!r} missing, not {t.__name__} or not positive")
        if r["mode"] not in modes or r["layout"] not in layouts or (r["mode"], r["layout"]) in skipped:
            raise CheckFailed(f"report: row mode/layout {r['mode']}/{r['layout']} was not to be timed")
        if r["search"] not in ("grid", "best_batch"):
            raise CheckFailed(f"report: row search {r['search']!r} is neither 'grid' nor 'best_batch'")
        if r["batch_latency_p99_ms"] < r["batch_latency_p50_ms"]:
            raise CheckFailed(f"report: row {r}: p99 below p50")
        o = r.get("other_cpu_load", "missing")
        if o is not None and not (isinstance(o, (int, float)) and o >= 0):
            raise CheckFailed(f"report: row {r}: other_cpu_load missing or negative")
    timed = [(m, l) for m in modes for l in layouts if (m, l) not in skipped]
    want = {(m, l, b, n, "grid") for m, l in timed for b in batches for n in threads}
    bb = rep["best_batch"]
    by_threads = {e.get("threads"): e for e in bb.get("by_threads", [])}
    if set(by_threads) != set(threads):
        raise CheckFailed(f"report: best_batch.by_threads covers threads {sorted(by_threads)}, not {threads}")
    for n, e in by_threads.items():
        if bb.get("enabled"):
            s = e.get("searched", {})
            want |= {(s.get("mode"), s.get("layout"), b, n, "best_batch") for b in bb["candidates"] if b not in batches}
        rows_n = [r for r in rep["rows"] if r["threads"] == n]
        best = [r for r in rows_n if r["best"]]
        if len(best) != 1 or best[0]["samples_per_s"] != max(r["samples_per_s"] for r in rows_n):
            raise CheckFailed(f"report: threads {n}: {len(best)} rows marked best, one (the fastest) expected")
        b = e.get("best", {})
        if (b.get("mode"), b.get("layout"), b.get("batch")) != (best[0]["mode"], best[0]["layout"], best[0]["batch"]):
            raise CheckFailed(f"report: best_batch.by_threads[{n}].best differs from the row marked best")
    got = [(r["mode"], r["layout"], r["batch"], r["threads"], r["search"]) for r in rep["rows"]]
    if set(got) != want or len(got) != len(want):
        raise CheckFailed(f"report: rows {sorted(got)} differ from the configurations {sorted(want)}")
    for r in rep["rows"]:
        same = [s["samples_per_s"] for s in rep["rows"] if (s["batch"], s["threads"]) == (r["batch"], r["threads"])]
        if r["fastest"] != (r["samples_per_s"] == max(same)):
            raise CheckFailed(f"report: row {r}: 'fastest' mark wrong")
    for s in _strings(rep):
        if _ABS_PATH.search(s) or str(REPO) in s:
            raise CheckFailed(f"report: an absolute path in {s!r}")


def print_table(rep, out=sys.stdout):
    p = lambda s="": print(s, file=out)
    tb = rep["torch_build"]
    p(f"PyTorch {rep['torch_version']}, fp32, interop threads {rep['threads_interop']}, full network "
      f"(final head only); modes {', '.join(rep['modes'])}; layouts {', '.join(rep['layouts'])}")
    p(f"oneDNN (mkldnn): torch.backends.mkldnn.is_available() {rep['mkldnn']}, enabled {rep['mkldnn_enabled']}, "
      f"version {tb['onednn_version'] or 'unknown'}; CPU capability {rep['cpu_capability']} "
      f"(from {tb['cpu_capability_source']})")
    p(f"torch.__config__: {'; '.join(tb['config_lines'])}")
    if tb["build_settings"]:
        p(f"  build settings: {', '.join(f'{k}={v}' for k, v in tb['build_settings'].items())}")
    p(f"BLAS loaded: {rep['blas']}, threads {rep['blas_threads'] if rep['blas_threads'] is not None else 'not set'}")
    p(f"CPU: {rep['cpu']}, {rep['cpu_count']} CPUs")
    p(f"model {rep['model']}: {rep['macs_per_sample'] / 1e6:.1f} MMAC per sample; inputs: {rep['input']}")
    for layout, j in rep["jit_frozen"].items():
        top = ", ".join(f"{v} {k}" for k, v in list(j["node_kinds"].items())[:8])
        p(f"jit_frozen {layout}: {j['built_with']}")
        p(f"  frozen graph: {top}{', ...' if len(j['node_kinds']) > 8 else ''}")
        p(f"  nodes with mkldnn in the kind {j['mkldnn_nodes']}, prepacked {j['prepacked_nodes']}, conv "
          f"{j['conv_nodes']}; standalone ReLU nodes {j['relu_nodes_standalone']}"
          f"{' (not fused into the convolutions)' if j['relu_nodes_standalone'] else ''}")
        if j.get("script_error"):
            p(f"  (torch.jit.script failed: {j['script_error']})")
    for s in rep["skipped"]:
        p(f"skipped: {s['mode']} {s['layout']}: {s['reason']}")
    pr = rep["parity"]
    p(f"parity vs {pr['reference']}: {pr['images']} images, {len(pr['max_abs_diff_by_check'])} checks over every "
      f"mode and layout, max |diff| {pr['max_abs_diff']:.2e} (tolerance {pr['tolerance_abs']:g}) ok")
    la = lambda v: " ".join(f"{x:.2f}" for x in v) if v else "unknown"
    p(f"load average (1, 5, 15 min): {la(rep['loadavg_start'])} at the start, {la(rep['loadavg_end'])} at the end")
    p()
    p(f"{'threads':>7} {'batch':>5} {'mode':<10} {'layout':<13} {'samples/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
      f"{'batches':>7} {'other':>5}  {'mark':<6} conv kernels")
    prev = None
    for r in rep["rows"]:
        if prev is not None and r["threads"] != prev:
            p()
        prev = r["threads"]
        mark = ("*" if r["fastest"] else "") + ("+" if r["search"] == "best_batch" else "") + \
            (" BEST" if r["best"] else "")
        p(f"{r['threads']:>7} {r['batch']:>5} {r['mode']:<10} {r['layout']:<13} {r['samples_per_s']:>10.1f} "
          f"{r['batch_latency_p50_ms']:>9.3f} {r['batch_latency_p99_ms']:>9.3f} {r['timed_batches']:>7}"
          f" {'-' if r['other_cpu_load'] is None else format(r['other_cpu_load'], '5.2f'):>5}  {mark:<6} "
          f"{kernel_label(r.get('conv_kernels'))}")
    p("* the fastest mode and layout at that batch and thread count; + timed by the best-batch search;")
    p("BEST: the most samples/s at that thread count")
    p("samples/s: median over the timed repeats; p50/p99: latency of one batch over every timed batch;")
    p("other: cores kept busy by other processes while timing (above ~0.1 the row is not a clean measurement)")
    p("conv kernels: eager, the profiler's ops of one call (oneDNN = aten::mkldnn_convolution, im2col+GEMM = "
      "aten::_slow_conv2d_forward on the BLAS above); jit_frozen, the frozen graph's conv nodes")
    bb = rep["best_batch"]
    for e in bb["by_threads"]:
        b = e["best"]
        s = e.get("searched")
        how = (f"; the search timed {s['mode']} {s['layout']} (fastest at batch {bb['chosen_at_batch']}) at batch "
               f"{', '.join(str(x) for x in s['batches']) or '(all already in the grid)'}") if s else ""
        p(f"best at {e['threads']} thread{'s' if e['threads'] != 1 else ''}: {b['mode']} {b['layout']} batch "
          f"{b['batch']}, {b['samples_per_s']:.1f} samples/s{how}")
    noisy = [r for r in rep["rows"] if (r.get("other_cpu_load") or 0) > 0.1]
    if noisy:
        p(f"warning: {len(noisy)} of {len(rep['rows'])} rows ran beside other work (other > 0.1); rerun on an "
          "idle machine")


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
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                    help="eager and/or jit_frozen (script or trace, freeze, optimize_for_inference; default: both)")
    ap.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS),
                    help="memory layouts (default: both)")
    ap.add_argument("--best-batch", action=argparse.BooleanOptionalAction, default=True,
                    help="for each thread count, also time the fastest mode/layout at batch 64 (at the largest "
                         "--batch when 64 is not among them) at --best-batch-sizes (default: on)")
    ap.add_argument("--best-batch-sizes", nargs="+", type=positive_int("--best-batch-sizes"),
                    default=list(BEST_BATCH_SIZES), metavar="B",
                    help="the batch sizes the best-batch search adds (default: 16 32 128 256)")
    ap.add_argument("--seconds", type=positive_float("--seconds"), default=3.0, metavar="S",
                    help="timed seconds per configuration, at least (default: 3)")
    ap.add_argument("--warmup", type=positive_float("--warmup"), default=0.5, metavar="S",
                    help=f"warmup seconds per configuration, at least 2 calls (jit_frozen: {JIT_WARMUP_CALLS}) "
                         "(default: 0.5)")
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
                    help="self-check: parity of every mode and layout, batch 2 (best-batch search: batch 4), "
                         "1 thread, 0.2 s, JSON shape (overrides --batch, --threads, --seconds, --warmup, "
                         "--best-batch, --best-batch-sizes)")
    a = ap.parse_args(argv)
    if a.check:
        a.batch, a.threads, a.seconds, a.warmup = [2], [1], 0.2, 0.05
        a.best_batch, a.best_batch_sizes = True, [4]
    a.batch = list(dict.fromkeys(a.batch))
    a.threads = list(dict.fromkeys(a.threads))
    a.modes = [m for m in MODES if m in a.modes]
    a.layouts = [l for l in LAYOUTS if l in a.layouts]
    a.best_batch_sizes = sorted(set(a.best_batch_sizes))
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

    load_start = load_average()
    print(f"load average (1, 5, 15 min) at the start: {load_start}", file=sys.stderr, flush=True)
    blas, blas_threads = loaded_blas()
    if blas.startswith("reference BLAS"):
        print(f"warning: PyTorch uses {blas}: batch-1 convolutions that eager PyTorch routes to its native "
              "(im2col + GEMM) path instead of oneDNN will be very slow", file=sys.stderr)
    build = torch_build_info()
    all_batches = a.batch + (a.best_batch_sizes if a.best_batch else [])
    nmax = max(all_batches + [8])
    pixels = cifar_images(a.data, min(nmax, 256)) if a.data else random_images(nmax)
    what = f"CIFAR-10 test images from {portable_path(a.data)}" if a.data else \
        "random uint8 pixels (seed 0), normalized"
    net, arch, mean, std, macs = load_model(a.model)
    pool = normalize(pixels, mean, std)
    torch.set_num_threads(min(a.threads))
    models, skipped, jit = build_modules(net, a.modes, a.layouts, pool[torch.arange(8) % pool.shape[0]])
    if not models:
        raise CheckFailed("nothing to time: every mode was skipped")
    parity = check_parity(net, models, a.reference, a.tolerance, mean, std)

    rows = []

    def measure(mode, layout, b, t, search):
        xb = in_layout(layout, pool[torch.arange(b) % pool.shape[0]])
        rates, lat, other, ran = time_config(models[mode, layout], xb, a.seconds, a.warmup,
                                             min_warmup_calls=JIT_WARMUP_CALLS if mode != "eager" else 2,
                                             kernels=mode == "eager")
        r = {"mode": mode, "layout": layout, "batch": b, "threads": t,
             "samples_per_s": float(statistics.median(rates)),
             "batch_latency_p50_ms": 1e3 * percentile(lat, 50),
             "batch_latency_p99_ms": 1e3 * percentile(lat, 99),
             "other_cpu_load": None if other is None else round(other, 3),
             "repeats": len(rates), "timed_batches": len(lat),
             "samples_per_s_min": min(rates), "samples_per_s_max": max(rates),
             "conv_kernels": ran if mode == "eager" else jit[layout]["conv_kernels"], "search": search}
        rows.append(r)
        print(f"  threads {t} batch {b:>4} {mode:<10} {layout:<13} {r['samples_per_s']:10.1f} samples/s"
              f"{'' if other is None else f'  (other {other:.2f})'}", file=sys.stderr, flush=True)
        return r

    timed = [(m, l) for m in a.modes for l in a.layouts if (m, l) in models]
    ref_batch = 64 if 64 in a.batch else max(a.batch)
    by_threads = []
    for t in a.threads:
        torch.set_num_threads(t)
        if blas_threads is not None:
            blas_threads(t if a.blas_threads == "match" else int(a.blas_threads))
        for b in a.batch:
            for mode, layout in timed:
                measure(mode, layout, b, t, "grid")
        entry = {"threads": t}
        if a.best_batch:
            top = max((r for r in rows if r["threads"] == t and r["batch"] == ref_batch and r["search"] == "grid"),
                      key=lambda r: r["samples_per_s"])
            extra = [b for b in a.best_batch_sizes if b not in a.batch]
            entry["searched"] = {"mode": top["mode"], "layout": top["layout"], "batches": extra}
            for b in extra:
                measure(top["mode"], top["layout"], b, t, "best_batch")
        by_threads.append(entry)

    for r in rows:
        same = [s for s in rows if s["batch"] == r["batch"] and s["threads"] == r["threads"]]
        r["fastest"] = r["samples_per_s"] == max(s["samples_per_s"] for s in same)
        r["fastest_layout"] = r["samples_per_s"] == max(s["samples_per_s"] for s in same if s["mode"] == r["mode"])
        r["best"] = False
    for e in by_threads:
        best = max((r for r in rows if r["threads"] == e["threads"]), key=lambda r: r["samples_per_s"])
        best["best"] = True
        e["best"] = {k: best[k] for k in ("mode", "layout", "batch", "samples_per_s")}
    rows.sort(key=_row_order)

    load_end = load_average()
    rep = {"torch_version": torch.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()),
           "mkldnn_enabled": bool(torch.backends.mkldnn.enabled), "threads_interop": torch.get_num_interop_threads(),
           "torch_build": build, "cpu_capability": build["cpu_capability"],
           "model": portable_path(a.model), "macs_per_sample": macs,
           "network": "full (every stage, final head only)", "dtype": "float32", "input": what,
           "modes": a.modes, "layouts": a.layouts, "skipped": skipped, "jit_frozen": jit,
           "jit_warmup_calls_min": JIT_WARMUP_CALLS,
           "jit_profiled_runs": torch._C._jit_get_num_profiled_runs()
           if hasattr(torch._C, "_jit_get_num_profiled_runs") else None,
           "best_batch": {"enabled": a.best_batch, "candidates": a.best_batch_sizes if a.best_batch else [],
                          "chosen_at_batch": ref_batch, "by_threads": by_threads},
           "seconds_per_config": a.seconds, "warmup_seconds": a.warmup,
           "cpu": platform.processor() or platform.machine(), "cpu_count": cores, "blas": blas,
           "blas_threads": (a.blas_threads if a.blas_threads == "match" else int(a.blas_threads))
           if blas_threads is not None else None,
           "python": platform.python_version(),
           "loadavg_start": load_start, "loadavg_end": load_end,
           "loadavg_1min_start": load_start[0] if load_start else None,
           "loadavg_1min_end": load_end[0] if load_end else None,
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
            validate_report(reread, a.batch, a.threads)
            # This torch can build jit_frozen: a skip here is a regression, not a missing feature.
            if hasattr(torch.jit, "optimize_for_inference") and reread["skipped"]:
                raise CheckFailed("; ".join(f"{s['mode']} {s['layout']} could not be built: {s['reason']}"
                                            for s in reread["skipped"]))
            print(f"{prog} --check: ok (parity of {', '.join(rep['modes'])} x {', '.join(rep['layouts'])}: max "
                  f"|diff| {rep['parity']['max_abs_diff']:.2e}; {len(rep['rows'])} rows)")
        else:
            validate_report(rep, a.batch, a.threads)
        return 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(f"{prog}: check failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
