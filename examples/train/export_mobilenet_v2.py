#!/usr/bin/python3
"""Pretrained MobileNetV2 (ImageNet) -> the project's weight file, with early-exit heads fitted by
distillation, plus the shipped sample and the C++ parity data. See examples/train/README.md
("ImageNet: MobileNetV2 with distilled exit heads") for the commands, timings and results.

Subcommands (run them in this order; `all` runs split, teacher, fit, export):

  split    fixed, seeded split of the 1300 labelled validation images into a DISTILL half and an
           EVAL half -> data/imagenet/split.json; the shipped sample (100 EVAL images) ->
           data/imagenet/sample/ (+ labels.txt); data/imagenet/synset_words.txt.
  teacher  the frozen backbone on augmented copies of the DISTILL half (and optionally CIFAR-10
           training images as unlabelled inputs, and the EVAL half's centre crops for reporting):
           stores the backbone's features at the candidate exit positions and its logits, one
           chunk per augmented copy, under CACHE/chunks/ (resumable: finished chunks are skipped).
  fit      fits each head's fc by ridge regression onto the backbone's own pooled features
           (backbone and classifier frozen). --holdout N seeded DISTILL images are kept out of
           every fit: the penalty is chosen by label-free agreement with the backbone on them
           (model selection never looks at the EVAL half), and they become the policies'
           calibration set (data/imagenet/calibration.txt). --final refits with the chosen
           penalties and evaluates once on the EVAL half.
  export   writes models/mobilenet_v2_imagenet.safetensors (int8 weights exactly as in the int8
           model, F32 biases and heads), checks it (bit-exact dequantization, reference forward
           vs torchvision), writes tests/data/imagenet/ (parity data) and the EVAL half's logits
           of every exit to CACHE/eval_logits.npy.

Everything heavy runs at 1 thread by default (--threads); caches and logs live in CACHE
(default /var/tmp/earlyexit-imagenet), never in the repository.
"""

import argparse
import io
import json
import math
import os
import shutil
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHARED = os.path.join(REPO_ROOT, "..", "shared", "data")
FORMAT_NAME = "earlyexit-imagenet-mobilenet-v2"
FORMAT_VERSION = "1"
NUM_CLASSES = 1000
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
WEIGHTS_INT8 = "mobilenet_v2_qnnpack_state_dict.pth"
WEIGHTS_FLOAT = "mobilenet_v2_float_dequantized_state_dict.pth"
# torchvision's MobileNetV2 inverted-residual setting: expand ratio t, out channels c, blocks n, stride s.
IR_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
              [6, 320, 1, 1]]
# Candidate exit positions (block indices, blocks.i = torchvision features[i + 1]) whose outputs the
# teacher pass stores: the last 14x14 block (96 channels) and every 7x7 block. Earlier positions
# were measured too (see examples/train/README.md) and are not worth a head.
CANDIDATES = [12, 13, 14, 15, 16]


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


# --------------------------------------------------------------------------------------------
# Architecture as data
# --------------------------------------------------------------------------------------------

def arch_spec():
    """Every stage of MobileNetV2 at 224x224, in order, with MACs (multiply-accumulates of the
    convolutions and linear layers; bias, ReLU6, residual adds and pooling are not counted in
    the stages; a head's MACs add its global-average-pool additions C*H*W, as in the CIFAR file)."""
    stages = []
    hw = 112
    stages.append(dict(name="stem", type="conv_relu6", in_channels=3, out_channels=32, kernel=3, stride=2,
                       padding=1, in_hw=224, out_hw=hw, macs=3 * 32 * 9 * hw * hw))
    cin = 32
    i = 0
    for t, c, n, s in IR_SETTING:
        for j in range(n):
            stride = s if j == 0 else 1
            hidden = cin * t
            out_hw = hw // stride
            macs = (cin * hidden * hw * hw if t != 1 else 0) + hidden * 9 * out_hw * out_hw + hidden * c * out_hw * out_hw
            stages.append(dict(name=f"blocks.{i}", type="inverted_residual", torchvision=f"features.{i + 1}",
                               in_channels=cin, out_channels=c, expand_ratio=t, hidden_channels=hidden,
                               stride=stride, residual=(stride == 1 and cin == c), in_hw=hw, out_hw=out_hw,
                               macs=macs))
            cin, hw, i = c, out_hw, i + 1
    stages.append(dict(name="last_conv", type="conv_relu6", torchvision="features.18", in_channels=320,
                       out_channels=1280, kernel=1, stride=1, padding=0, in_hw=7, out_hw=7,
                       macs=320 * 1280 * 49))
    return stages


def head_spec(stages, positions, classes=NUM_CLASSES):
    """Exit heads: heads.k after blocks.positions[k] (see Head), then the backbone's own
    classifier (GAP + linear after last_conv), the final exit. A head after blocks.i (i < 16)
    carries a copy of blocks.(i+1)'s expand conv; after blocks.16 (whose successor is
    last_conv) it has no conv."""
    heads = []
    for k, b in enumerate(positions):
        st = stages[b + 1]
        c, hw = st["out_channels"], st["out_hw"]
        pool = hw // 7
        conv = b + 1 < 17
        d = stages[b + 2]["hidden_channels"] if conv else c
        h = dict(name=f"heads.{k}", type="exit_head", after_block=b, after_stage=b + 1, in_channels=c, in_hw=hw,
                 pool=pool, pooled_hw=hw // pool, conv=conv, conv_from=f"blocks.{b + 1}.expand" if conv else None,
                 conv_out=d if conv else None, fc_in=d, fc_out=1280, classifier="classifier",
                 out_features=classes)
        h["adds_pool"] = c * hw * hw if pool > 1 else 0
        h["macs_conv"] = c * d * 49 if conv else 0
        h["adds_gap"] = d * 49
        h["macs_fc"] = d * 1280
        h["macs_classifier"] = 1280 * classes
        h["macs"] = h["adds_pool"] + h["macs_conv"] + h["adds_gap"] + h["macs_fc"] + h["macs_classifier"]
        heads.append(h)
    heads.append(dict(name="classifier", type="gap_linear", after_block=None, after_stage=len(stages) - 1,
                      in_channels=1280, in_hw=7, out_features=classes, adds_gap=1280 * 49,
                      macs_fc=1280 * classes, macs=1280 * 49 + 1280 * classes, final=True))
    assert stages[-1]["name"] == "last_conv"
    return heads


def macs_to_exit(stages, heads):
    """All stages up to the head's position plus the head itself (earlier heads not included)."""
    out = []
    for h in heads:
        out.append(sum(st["macs"] for st in stages[:h["after_stage"] + 1]) + h["macs"])
    return out


# --------------------------------------------------------------------------------------------
# Data: the labelled subset, the split, preprocessing, augmentation
# --------------------------------------------------------------------------------------------

def read_labels(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                name, lab = line.split()
                out[name] = int(lab)
    return out


def read_tar(path):
    """member name -> bytes (flat tar of regular files)."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf:
            if m.isfile():
                out[m.name] = tf.extractfile(m).read()
    return out


def pil_rgb(data):
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def eval_transform_pil():
    """torchvision's standard evaluation preprocessing up to the uint8 224x224 crop."""
    import torchvision.transforms as T
    return T.Compose([T.Resize(256), T.CenterCrop(224)])


def to_input(pil_images):
    """ToTensor + Normalize: list of PIL 224x224 RGB -> float32 [N, 3, 224, 224]."""
    x = torch.stack([torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1) for im in pil_images])
    x = x.to(torch.float32) / 255.0
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def distill_transform(kind):
    import torchvision.transforms as T
    if kind == "imagenet":
        return T.Compose([T.RandomResizedCrop(224, scale=(0.25, 1.0)), T.RandomHorizontalFlip(),
                          T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)])
    if kind == "cifar":  # 32x32 -> 224: upsampled, mild crop
        return T.Compose([T.RandomResizedCrop(224, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                          T.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)])
    raise ValueError(kind)


def make_split(files, seed, n_distill):
    rng = np.random.Generator(np.random.PCG64(seed))
    perm = rng.permutation(len(files))
    distill = sorted(files[i] for i in perm[:n_distill])
    ev = sorted(files[i] for i in perm[n_distill:])
    return distill, ev


def load_split(args):
    path = os.path.join(REPO_ROOT, "data", "imagenet", "split.json")
    if not os.path.exists(path):
        raise SystemExit(f"{path}: missing, run the 'split' subcommand first")
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------
# Backbone (torchvision float model with the dequantized weights)
# --------------------------------------------------------------------------------------------

def load_backbone(args):
    import torchvision
    m = torchvision.models.mobilenet_v2()
    sd = torch.load(os.path.join(args.weights, WEIGHTS_FLOAT), map_location="cpu")
    m.load_state_dict(sd, strict=True)
    m.eval()
    return m


@torch.no_grad()
def backbone_run(model, x, positions, with_z=False):
    """torchvision's forward, step by step: returns (logits, {block index: block output}) and,
    with_z, the classifier's input z (the pooled 1280 features)."""
    feats = {}
    x = model.features[0](x)
    for i in range(17):
        x = model.features[i + 1](x)
        if i in positions:
            feats[i] = x
    x = model.features[18](x)
    z = F.adaptive_avg_pool2d(x, 1).flatten(1)
    lo = model.classifier(z)
    return (lo, feats, z) if with_z else (lo, feats)


# --------------------------------------------------------------------------------------------
# Exit heads (trained on stored block outputs)
# --------------------------------------------------------------------------------------------

class Head(nn.Module):
    """Exit head after blocks.pos, on the block output x [N, C, H, W] average-pooled to 7x7:
        [1x1 conv C->Hd + bias, ReLU6 (frozen: a copy of the next block's expand conv)] -> GAP ->
        fc (Hd or C -> 1280) -> ReLU6 -> the backbone's frozen classifier (1280 -> 1000).
    fc predicts the backbone's own classifier input z (its pooled 1280 features); only fc is
    fitted. forward() takes the 7x7-pooled block output (what the teacher chunks store)."""

    def __init__(self, conv, fc_in, classifier):
        super().__init__()
        if conv is not None:
            self.register_buffer("conv_w", conv[0].clone())
            self.register_buffer("conv_b", conv[1].clone())
        else:
            self.conv_w = self.conv_b = None
        self.fc = nn.Linear(fc_in, 1280)
        self.register_buffer("cls_w", classifier[0].clone())
        self.register_buffer("cls_b", classifier[1].clone())

    def features(self, x):
        if self.conv_w is not None:
            x = F.relu6(F.conv2d(x, self.conv_w, self.conv_b))
        return x.mean(dim=(2, 3))

    def from_features(self, g, with_z=False):
        # the linear layers as 1x1 convolutions: same result, but through oneDNN instead of the
        # generic BLAS of Debian's torch (see mm())
        n = g.shape[0]
        z = F.relu6(F.conv2d(g.view(n, -1, 1, 1), self.fc.weight[:, :, None, None], self.fc.bias))
        lo = F.conv2d(z, self.cls_w[:, :, None, None], self.cls_b).view(n, -1)
        z = z.view(n, -1)
        return (lo, z) if with_z else lo

    def forward(self, x, with_z=False):
        return self.from_features(self.features(x), with_z)


def head_forward_folded(t, h, x, dq):
    """Reference forward of an exported head from the file's tensors (x: the block output;
    dq(name) = the dequantized float32 weight of conv/linear `name`)."""
    p = h["name"]
    if h["pool"] > 1:
        x = F.avg_pool2d(x, h["pool"])
    if h["conv"]:
        x = F.relu6(F.conv2d(x, dq(p + ".conv"), torch.from_numpy(t[p + ".conv.bias"])))
    z = F.relu6(F.linear(x.mean(dim=(2, 3)), dq(p + ".fc"), torch.from_numpy(t[p + ".fc.bias"])))
    return F.linear(z, dq("classifier"), torch.from_numpy(t["classifier.bias"]))


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------

def dequantize(t, name):
    """Float32 weight of a conv/linear from the file: (q - zero_point) * scale, in float32."""
    q = t[name + ".weight"].astype(np.float32)
    scale = t[name + ".weight_scale"].astype(np.float32)
    zp = t.get(name + ".weight_zero_point")
    zp = np.zeros_like(scale) if zp is None else zp.astype(np.float32)
    shape = (-1,) + (1,) * (q.ndim - 1)  # per-tensor: [1], per-channel: [out]
    return (q - zp.reshape(shape)) * scale.reshape(shape)


def reference_forward(t, stages, heads, x):
    """Plain forward of the exported network from the file's tensors and the architecture only:
    conv (groups = channels for depthwise) + bias, ReLU6, residual add, GAP, linear; every head
    on its block's output. Returns the logits of every exit, in head order (final last)."""
    W = {}

    def w(name):
        if name not in W:
            W[name] = torch.from_numpy(dequantize(t, name))
        return W[name]

    def b(name):
        return torch.from_numpy(t[name + ".bias"])

    at = {}
    for k, h in enumerate(heads[:-1]):
        at.setdefault(h["after_stage"], []).append((k, h))
    outs = [None] * len(heads)
    x = F.relu6(F.conv2d(x, w("stem"), b("stem"), stride=2, padding=1))
    for si, st in enumerate(stages[1:-1], start=1):
        p = st["name"]
        y = x
        if st["expand_ratio"] != 1:
            y = F.relu6(F.conv2d(y, w(p + ".expand"), b(p + ".expand")))
        y = F.relu6(F.conv2d(y, w(p + ".depthwise"), b(p + ".depthwise"), stride=st["stride"], padding=1,
                             groups=st["hidden_channels"]))
        y = F.conv2d(y, w(p + ".project"), b(p + ".project"))
        x = x + y if st["residual"] else y
        for k, h in at.get(si, []):
            outs[k] = head_forward_folded(t, h, x, w)
    x = F.relu6(F.conv2d(x, w("last_conv"), b("last_conv")))
    outs[-1] = F.linear(x.mean(dim=(2, 3)), w("classifier"), b("classifier"))
    return outs


# --------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------

def cmd_split(args):
    labels = read_labels(os.path.join(args.imagenet, "labels.txt"))
    files = sorted(labels)
    if len(files) != 1300:
        raise SystemExit(f"expected 1300 labelled images, got {len(files)}")
    distill, ev = make_split(files, args.split_seed, args.n_distill)
    rng = np.random.Generator(np.random.PCG64(args.sample_seed))
    sample = sorted(ev[i] for i in rng.choice(len(ev), size=args.n_sample, replace=False))
    out_dir = os.path.join(REPO_ROOT, "data", "imagenet")
    os.makedirs(os.path.join(out_dir, "sample"), exist_ok=True)
    split = dict(
        description="Split of the 1300 labelled ILSVRC2012 validation images of "
                    "../shared/data/imagenet-val-subset (labels.txt, sorted by filename): "
                    "perm = numpy.random.Generator(PCG64(seed)).permutation(1300); the first n_distill "
                    "indices of perm are the DISTILL half (exit heads fitted on augmented copies of "
                    "these; their labels are used for reporting only), the rest the EVAL half (never "
                    "seen while fitting; what the demo reports on). sample: the images shipped in "
                    "data/imagenet/sample/, numpy.random.Generator(PCG64(sample_seed)).choice("
                    "len(eval), n_sample, replace=False) of the EVAL half. Lists sorted by filename.",
        seed=args.split_seed, n_distill=len(distill), n_eval=len(ev), sample_seed=args.sample_seed,
        n_sample=len(sample), distill=distill, eval=ev, sample=sample)
    with open(os.path.join(out_dir, "split.json"), "w") as f:
        json.dump(split, f, indent=0)
        f.write("\n")
    blobs = read_tar(os.path.join(args.imagenet, "images.tar"))
    total = 0
    with open(os.path.join(out_dir, "sample", "labels.txt"), "w") as f:
        for name in sample:
            with open(os.path.join(out_dir, "sample", name), "wb") as g:
                g.write(blobs[name])
            total += len(blobs[name])
            f.write(f"{name} {labels[name]}\n")
    shutil.copyfile(os.path.join(args.imagenet, "synset_words.txt"), os.path.join(out_dir, "synset_words.txt"))
    log(f"split: {len(distill)} distill / {len(ev)} eval; sample {len(sample)} images, {total:,} bytes "
        f"-> {out_dir}")


# --------------------------------------------------------------------------------------------
# teacher: backbone features of augmented copies
# --------------------------------------------------------------------------------------------

def chunk_dir(args, name):
    return os.path.join(args.cache, "chunks", name)


def new_chunk(d):
    """A fresh temporary folder for the chunk folder d, or None when d is finished already."""
    if os.path.exists(os.path.join(d, "done")):
        return None
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def finish_chunk(tmp, d, logits, zs, meta, t0):
    """Writes the backbone's logits and z, ids.json (meta) and the 'done' marker into tmp, then
    moves it to d, so that a chunk is whole or absent; returns the seconds since t0."""
    np.save(os.path.join(tmp, "logits.npy"), logits)
    np.save(os.path.join(tmp, "z.npy"), zs)
    with open(os.path.join(tmp, "ids.json"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(tmp, "done"), "w") as f:
        f.write(f"{len(logits)} images {time.time() - t0:.1f} s\n")
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp, d)
    return time.time() - t0


def write_chunk(args, name, ids, pil_list, model, extra=None):
    d = chunk_dir(args, name)
    t0 = time.time()
    tmp = new_chunk(d)
    if tmp is None:
        return False
    n = len(pil_list)
    stages = arch_spec()
    # block outputs average-pooled to 7x7 (the heads' first operation), float16
    feats = {b: np.lib.format.open_memmap(os.path.join(tmp, f"p7_b{b}.npy"), mode="w+", dtype=np.float16,
                                          shape=(n, stages[b + 1]["out_channels"], 7, 7))
             for b in CANDIDATES}
    logits = np.zeros((n, NUM_CLASSES), dtype=np.float32)
    zs = np.zeros((n, 1280), dtype=np.float32)
    bs = args.batch
    for i in range(0, n, bs):
        x = to_input([f() for f in pil_list[i:i + bs]]).contiguous(memory_format=torch.channels_last)
        lo, fe, z = backbone_run(model, x, CANDIDATES, with_z=True)
        logits[i:i + bs] = lo.numpy()
        zs[i:i + bs] = z.numpy()
        for b in CANDIDATES:
            feats[b][i:i + bs] = pool7(fe[b]).to(torch.float16).numpy()
    for a in feats.values():
        a.flush()
    del feats
    dt = finish_chunk(tmp, d, logits, zs, dict(ids=ids, **(extra or {})), t0)
    log(f"teacher: chunk {name}: {n} images in {dt:.1f} s ({n / dt:.1f} img/s)")
    return True


def pool7(x):
    k = x.shape[-1] // 7
    return F.avg_pool2d(x, k) if k > 1 else x


def cutmix_pair(aug, im_a, im_b):
    """CutMix of two augmented images: a random box of b (area fraction U(0.25, 0.6), aspect
    U(0.5, 2)) pasted into a; uses the global torch RNG (seeded by the caller)."""
    a, b = aug(im_a), aug(im_b)
    area = 224 * 224 * float(torch.empty(1).uniform_(0.25, 0.6))
    ar = math.exp(float(torch.empty(1).uniform_(math.log(0.5), math.log(2.0))))
    h = min(224, int(round(math.sqrt(area / ar))))
    w = min(224, int(round(math.sqrt(area * ar))))
    y0 = int(torch.randint(0, 224 - h + 1, (1,)))
    x0 = int(torch.randint(0, 224 - w + 1, (1,)))
    a = a.copy()
    a.paste(b.crop((x0, y0, x0 + w, y0 + h)), (x0, y0))
    return a


def seeded(fn, seed):
    def run():
        torch.manual_seed(seed)
        return fn()
    return run


def cmd_teacher(args):
    split = load_split(args)
    model = load_backbone(args).to(memory_format=torch.channels_last)
    blobs = read_tar(os.path.join(args.imagenet, "images.tar"))
    ev_t = eval_transform_pil()
    t_start = time.time()
    def out_of_time():
        if args.time_budget_min and time.time() - t_start > args.time_budget_min * 60:
            log("teacher: time budget used up; run the same command again to continue")
            return True
        return False

    aug = distill_transform("imagenet")
    distill = split["distill"]
    for c in range(args.copies):
        if out_of_time():
            return
        if c == 0:  # copy 0: the plain centre crop
            fns = [(lambda n=n: ev_t(pil_rgb(blobs[n]))) for n in distill]
        else:
            fns = [seeded(lambda n=n: aug(pil_rgb(blobs[n])), args.aug_seed * 1_000_003 + c * 10_007 + j)
                   for j, n in enumerate(distill)]
        write_chunk(args, f"distill_{c:03d}", distill, fns, model, dict(copy=c))
    for c in range(args.mix_chunks):  # CutMix pairs of DISTILL images (a, perm[a])
        if out_of_time():
            return
        perm = np.random.Generator(np.random.PCG64(args.aug_seed * 31 + c)).permutation(len(distill))
        fns = [seeded(lambda n=n, m=distill[perm[j]]: cutmix_pair(aug, pil_rgb(blobs[n]), pil_rgb(blobs[m])),
                      args.aug_seed * 1_000_003 + 500_000 + c * 10_007 + j) for j, n in enumerate(distill)]
        write_chunk(args, f"mix_{c:03d}", distill, fns, model,
                    dict(copy=c, partner=[distill[perm[j]] for j in range(len(distill))]))
    if args.cifar_chunks:
        cblobs = read_tar(os.path.join(args.cifar, "train.tar"))
        names = sorted(cblobs)
        rng = np.random.Generator(np.random.PCG64(args.aug_seed + 7))
        order = rng.permutation(len(names))
        caug = distill_transform("cifar")
        per = args.cifar_per_chunk
        for c in range(args.cifar_chunks):
            if out_of_time():
                return
            sel = [names[i] for i in order[c * per:(c + 1) * per]]
            fns = [seeded(lambda n=n: caug(pil_rgb(cblobs[n])), args.aug_seed * 1_000_003 + 900_000 + c * 10_007 + j)
                   for j, n in enumerate(sel)]
            write_chunk(args, f"cifar_{c:03d}", sel, fns, model, dict(copy=c))
    # The EVAL half's centre crops (reporting only, never used for fitting or selection).
    if args.eval_chunk and not out_of_time():
        write_chunk(args, "eval", split["eval"], [(lambda n=n: ev_t(pil_rgb(blobs[n]))) for n in split["eval"]], model)
    log(f"teacher: done in {time.time() - t_start:.0f} s")


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------

def kd_loss(student, teacher, T):
    return F.kl_div(F.log_softmax(student / T, 1), F.softmax(teacher / T, 1), reduction="batchmean") * (T * T)


def float_weights(args):
    return torch.load(os.path.join(args.weights, WEIGHTS_FLOAT), map_location="cpu")


def head_conv(fsd, pos):
    """The head's frozen conv: blocks.(pos+1)'s expand conv (torchvision features[pos+2].conv[0]),
    weight and folded bias (its BatchNorm is identity + bias); None after blocks.16."""
    if pos + 1 >= 17:
        return None
    f = f"features.{pos + 2}.conv.0"
    return fsd[f + ".0.weight"], fsd[f + ".1.bias"]


def chunk_features(args, name, pos, conv):
    """GAP features the head's fc sees, for every row of a chunk (cached as float32 .npy)."""
    d = chunk_dir(args, name)
    path = os.path.join(d, f"g_b{pos}.npy")
    if os.path.exists(path):
        return np.load(path)
    x = np.load(os.path.join(d, f"p7_b{pos}.npy"))
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            xb = torch.from_numpy(x[i:i + 256]).float()
            if conv is not None:
                xb = F.relu6(F.conv2d(xb, conv[0], conv[1]))
            out.append(xb.mean(dim=(2, 3)).numpy())
    g = np.concatenate(out).astype(np.float32)
    np.save(path, g)
    return g


def fit_chunks(args):
    chunks = [f"distill_{c:03d}" for c in range(args.copies)]
    chunks += [f"mix_{c:03d}" for c in range(args.use_mix_chunks)]
    chunks += [f"cifar_{c:03d}" for c in range(args.use_cifar_chunks)]
    for c in chunks:
        if not os.path.exists(os.path.join(chunk_dir(args, c), "done")):
            raise SystemExit(f"chunk {c} missing: run 'teacher' with enough --copies / --mix-chunks / --cifar-chunks")
    return chunks


def gather(args, chunks, positions, convs, exclude=None, only=None):
    """Rows of the chunks: ({pos: features [N, D] float64}, teacher logits [N, 1000], z [N, 1280]).
    exclude: ImageNet ids whose rows (also as CutMix partner) are dropped; only: keep just these ids."""
    gs, ls, zs = {p: [] for p in positions}, [], []
    for name in chunks:
        d = chunk_dir(args, name)
        with open(os.path.join(d, "ids.json")) as f:
            meta = json.load(f)
        ids, partner = meta["ids"], meta.get("partner")
        keep = np.ones(len(ids), dtype=bool)
        if exclude and not name.startswith("cifar"):
            keep &= np.array([n not in exclude for n in ids])
            if partner is not None:
                keep &= np.array([n not in exclude for n in partner])
        if only is not None:
            keep &= np.array([n in only for n in ids])
        rows = np.flatnonzero(keep)
        for p in positions:
            gs[p].append(chunk_features(args, name, p, convs[p])[rows].astype(np.float64))
        ls.append(np.load(os.path.join(d, "logits.npy"))[rows])
        zs.append(np.load(os.path.join(d, "z.npy"))[rows].astype(np.float64))
    return {p: np.concatenate(v) for p, v in gs.items()}, np.concatenate(ls), np.concatenate(zs)


def mm(a, b):
    """a [m, k] @ b [k, n] in float32 through a 1x1 convolution: Debian's torch and numpy use the
    generic reference BLAS (measured ~1 GFLOP/s here), the convolution goes through oneDNN (~10x
    faster)."""
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    m, k = a.shape
    n = b.shape[1]
    out = torch.empty(m, n)
    for i in range(0, m, 16384):
        ai = a[i:i + 16384]
        out[i:i + len(ai)] = F.conv2d(ai.T.contiguous().view(1, k, len(ai), 1), b.T.contiguous().view(n, k, 1, 1)).view(n, len(ai)).T
    return out


def ridge(g, z, lams):
    """Ridge regression z ~ g (features standardised, intercept unpenalised, penalty lam * N per
    weight) for every lambda: [(W [1280, D], b [1280]) as float64 numpy] in the original feature
    scale. Gram matrices in float32 (oneDNN), solves in float64."""
    mu, sd = g.mean(0), g.std(0) + 1e-6
    gs = (g - mu) / sd
    zc = z - z.mean(0)
    A = mm(gs.T, gs).double()
    B = mm(gs.T, zc).double()
    out = []
    for lam in lams:
        Wt = torch.linalg.solve(A + lam * len(g) * torch.eye(A.shape[0], dtype=torch.float64), B).numpy()
        W = (Wt / sd[:, None]).T
        out.append((W, z.mean(0) - W @ mu))
    return out


def agreement(head, g, teacher_logits):
    """Top-1 agreement of the head (from its GAP features g) with the teacher's logits; and its logits."""
    with torch.no_grad():
        z = F.relu6(mm(g, head.fc.weight.T) + head.fc.bias)
        lo = mm(z, head.cls_w.T) + head.cls_b
    return float((lo.argmax(1) == torch.as_tensor(teacher_logits).argmax(1)).float().mean()), lo


def finetune(args, head, g, tl, tz):
    """Optional: KD fine-tuning of the ridge fc (KL to the backbone's softmax at temperature T,
    plus z_weight * MSE(z)), AdamW, cosine one-cycle."""
    gt, tlt, tzt = torch.from_numpy(g).float(), torch.from_numpy(tl), torch.from_numpy(tz).float()
    opt = torch.optim.AdamW(head.fc.parameters(), lr=args.lr, weight_decay=args.wd)
    n = len(gt)
    steps = args.finetune_epochs * math.ceil(n / args.fit_batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1,
                                                anneal_strategy="cos")
    gen = torch.Generator().manual_seed(args.fit_seed)
    for ep in range(args.finetune_epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, args.fit_batch):
            idx = perm[i:i + args.fit_batch]
            lo, z = head.from_features(gt[idx], with_z=True)
            loss = kd_loss(lo, tlt[idx], args.temperature) + args.z_weight * F.mse_loss(z, tzt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head


def cmd_fit(args):
    """1. lambda per head chosen on a holdout of --holdout DISTILL images (label-free: agreement
    with the backbone's top-1 on their centre crops; the held-out images and CutMix pairs
    containing them are left out of that fit); 2. refit on every DISTILL input with the chosen
    lambda; 3. evaluate once on the EVAL half."""
    split = load_split(args)
    distill = split["distill"]
    positions = parse_list(args.positions, int)
    lams = parse_list(args.lams, float)
    chunks = fit_chunks(args)
    fsd = float_weights(args)
    classifier = (fsd["classifier.1.weight"], fsd["classifier.1.bias"])
    convs = {p: head_conv(fsd, p) for p in positions}
    t_all, c_all = time.time(), time.process_time()
    rng = np.random.Generator(np.random.PCG64(args.split_seed + 1))
    held = set(distill[i] for i in rng.choice(len(distill), size=args.holdout, replace=False))
    g, tl, tz = gather(args, chunks, positions, convs, exclude=held)
    gv, lv, _ = gather(args, ["distill_000"], positions, convs, only=held)
    # secondary, less noisy: the held-out images' augmented copies too
    ga, la, _ = gather(args, [c for c in chunks if c.startswith("distill")], positions, convs, only=held)
    log(f"fit {args.tag}: selection: {len(tl)} inputs from {len(chunks)} chunks, holdout {len(lv)} DISTILL images "
        f"({time.time() - t_all:.0f} s)")
    chosen, selection = {}, {}
    for p in positions:
        sols = ridge(g[p], tz, lams)
        res = []
        for lam, (W, b) in zip(lams, sols):
            head = Head(convs[p], W.shape[1], classifier)
            head.fc.weight.data = torch.from_numpy(W).float()
            head.fc.bias.data = torch.from_numpy(b).float()
            a_tr = agreement(head, g[p][:4000], tl[:4000])[0]
            a_ho = agreement(head, gv[p], lv)[0]
            r = dict(lam=lam, holdout_agreement=round(a_ho, 4), holdout_all_copies=round(agreement(head, ga[p], la)[0], 4),
                     train_agreement=round(a_tr, 4))
            if args.finetune_epochs:
                finetune(args, head, g[p], tl, tz)
                r["finetuned_holdout_agreement"] = round(agreement(head, gv[p], lv)[0], 4)
            res.append(r)
        # chosen on the held-out images' centre crops and all their copies together (less noisy)
        best = max(res, key=lambda r: (r.get("finetuned_holdout_agreement", r["holdout_agreement"])
                                       + r["holdout_all_copies"], r["lam"]))
        chosen[p] = best["lam"]
        selection[p] = res
        log(f"fit {args.tag}: blocks.{p}: " + "  ".join(
            f"lam {r['lam']:g}: holdout {r['holdout_agreement']:.3f} / {r['holdout_all_copies']:.3f} "
            f"(train {r['train_agreement']:.3f})"
            + (f" ft {r['finetuned_holdout_agreement']:.3f}" if "finetuned_holdout_agreement" in r else "")
            for r in res) + f"  -> lam {chosen[p]:g}")
    summary = dict(tag=args.tag, copies=args.copies, mix_chunks=args.use_mix_chunks, cifar_chunks=args.use_cifar_chunks,
                   holdout=args.holdout, lams=lams, selection=selection, chosen_lambda=chosen,
                   finetune_epochs=args.finetune_epochs, temperature=args.temperature, z_weight=args.z_weight)
    if not args.final:
        summary.update(wall_s=round(time.time() - t_all, 1), cpu_s=round(time.process_time() - c_all, 1))
        os.makedirs(os.path.join(args.cache, "fits"), exist_ok=True)
        with open(os.path.join(args.cache, "fits", f"{args.tag}.json"), "w") as f:
            json.dump(summary, f, indent=1)
        log(f"fit {args.tag}: selection only (no --final); {time.time() - t_all:.0f} s, CPU "
            f"{time.process_time() - c_all:.0f} s")
        return
    # refit on every DISTILL input except the held-out images (they stay unseen: the exit
    # policies are calibrated on them), evaluate once on the EVAL half
    del g, tl, tz
    g, tl, tz = gather(args, chunks, positions, convs, exclude=held)
    ge, le, _ = gather(args, ["eval"], positions, convs)
    with open(os.path.join(chunk_dir(args, "eval"), "ids.json")) as f:
        ev_ids = json.load(f)["ids"]
    labels = read_labels(os.path.join(args.imagenet, "labels.txt"))
    y = torch.tensor([labels[n] for n in ev_ids])
    final_top1 = float((torch.from_numpy(le).argmax(1) == y).float().mean())
    results, heads = [], {}
    for p in positions:
        (W, b), = ridge(g[p], tz, [chosen[p]])
        head = Head(convs[p], W.shape[1], classifier)
        head.fc.weight.data = torch.from_numpy(W).float()
        head.fc.bias.data = torch.from_numpy(b).float()
        if args.finetune_epochs:
            finetune(args, head, g[p], tl, tz)
        a_ev, lo = agreement(head, ge[p], le)
        r = dict(position=p, lam=chosen[p], eval_agreement=round(a_ev, 4),
                 eval_top1=round(float((lo.argmax(1) == y).float().mean()), 4), eval_final_top1=round(final_top1, 4))
        results.append(r)
        heads[p] = dict(fc_weight=head.fc.weight.data.clone(), fc_bias=head.fc.bias.data.clone(), lam=chosen[p])
        log(f"fit {args.tag}: {json.dumps(r)}")
    summary.update(n_inputs=len(tl), results=results, calibration_holdout=sorted(held), wall_s=round(time.time() - t_all, 1),
                   cpu_s=round(time.process_time() - c_all, 1))
    os.makedirs(os.path.join(args.cache, "fits"), exist_ok=True)
    with open(os.path.join(args.cache, "fits", f"{args.tag}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    torch.save(dict(summary=summary, heads=heads), os.path.join(args.cache, "fits", f"{args.tag}.pt"))
    log(f"fit {args.tag}: done in {time.time() - t_all:.0f} s, CPU {time.process_time() - c_all:.0f} s")


def parse_list(s, f=str):
    return [f(v) for v in s.split(",")]


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

def backbone_tensors(args):
    """name -> numpy array (I8 weights, F32 scales and biases) from the int8 state dict; checks
    that the dequantized weights equal the float state dict's bit for bit and that every
    BatchNorm of the float model is identity + bias."""
    torch.backends.quantized.engine = "qnnpack"
    q = torch.load(os.path.join(args.weights, WEIGHTS_INT8), map_location="cpu")
    fsd = torch.load(os.path.join(args.weights, WEIGHTS_FLOAT), map_location="cpu")
    stages = arch_spec()
    t = {}
    checked = []

    def add(name, qkey, bias, fkey, bnkey):
        w = q[qkey] if not isinstance(q[qkey], tuple) else q[qkey][0]
        if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            scale = np.array([w.q_scale()], dtype=np.float64)
            zp = np.array([w.q_zero_point()], dtype=np.int64)
        else:
            if w.q_per_channel_axis() != 0:
                raise SystemExit(f"{qkey}: per-channel axis {w.q_per_channel_axis()}")
            scale = w.q_per_channel_scales().double().numpy()
            zp = w.q_per_channel_zero_points().numpy()
        if not np.all(scale.astype(np.float32).astype(np.float64) == scale):
            raise SystemExit(f"{qkey}: scale not representable in float32")
        t[name + ".weight"] = w.int_repr().numpy().astype(np.int8)
        t[name + ".weight_scale"] = scale.astype(np.float32)
        if np.any(zp != 0):
            t[name + ".weight_zero_point"] = zp.astype(np.int32)
        t[name + ".bias"] = bias.detach().numpy().astype(np.float32)
        # bit-exact: (q - zp) * scale in float32 == dequantized float weights == torch's dequantize
        deq = dequantize(t, name)
        ref = fsd[fkey].numpy()
        if deq.shape != ref.shape or not np.array_equal(deq.view(np.uint32), ref.view(np.uint32)):
            raise SystemExit(f"{name}: dequantized int8 weights differ from {fkey}")
        if not np.array_equal(w.dequantize().numpy().view(np.uint32), ref.view(np.uint32)):
            raise SystemExit(f"{name}: torch dequantize() differs from {fkey}")
        if bnkey is not None:  # identity BN: weight 1, mean 0, var + eps == 1 in float32, bias == conv bias
            g, m_, v, bb = (fsd[bnkey + s] for s in (".weight", ".running_mean", ".running_var", ".bias"))
            if not (torch.all(g == 1) and torch.all(m_ == 0) and torch.all(v + 1e-5 == 1.0)
                    and torch.all(torch.sqrt(v + 1e-5) == 1.0) and torch.equal(bb, bias)):
                raise SystemExit(f"{bnkey}: not an identity+bias BatchNorm equal to the int8 conv bias")
        elif not torch.equal(fsd[fkey.replace(".weight", ".bias")], bias):
            raise SystemExit(f"{fkey}: bias differs")
        checked.append(name)

    add("stem", "features.0.0.weight", q["features.0.0.bias"], "features.0.0.weight", "features.0.1")
    for st in stages[1:-1]:
        i = int(st["name"].split(".")[1])
        f = f"features.{i + 1}.conv"
        if st["expand_ratio"] == 1:
            add(st["name"] + ".depthwise", f + ".0.0.weight", q[f + ".0.0.bias"], f + ".0.0.weight", f + ".0.1")
            add(st["name"] + ".project", f + ".1.weight", q[f + ".1.bias"], f + ".1.weight", f + ".2")
        else:
            add(st["name"] + ".expand", f + ".0.0.weight", q[f + ".0.0.bias"], f + ".0.0.weight", f + ".0.1")
            add(st["name"] + ".depthwise", f + ".1.0.weight", q[f + ".1.0.bias"], f + ".1.0.weight", f + ".1.1")
            add(st["name"] + ".project", f + ".2.weight", q[f + ".2.bias"], f + ".2.weight", f + ".3")
    add("last_conv", "features.18.0.weight", q["features.18.0.bias"], "features.18.0.weight", "features.18.1")
    packed = q["classifier.1._packed_params._packed_params"]
    add("classifier", "classifier.1._packed_params._packed_params", packed[1], "classifier.1.weight", None)
    return t, checked


def quantize_rows(w):
    """Symmetric int8 per output row: scale = max|w_row| / 127 (float32), q = round(w / scale)."""
    w = np.asarray(w, dtype=np.float32)
    scale = (np.abs(w).max(axis=1) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def cmd_export(args):
    from PIL import Image

    split = load_split(args)
    fit = torch.load(os.path.join(args.cache, "fits", f"{args.tag}.pt"), map_location="cpu")
    summary, fitted = fit["summary"], fit["heads"]
    wanted = parse_list(args.positions, int)
    positions = [p for p in sorted(fitted) if p in wanted]  # --positions: the fitted heads to export
    if len(positions) != len(set(wanted)):
        raise SystemExit(f"export: --positions {args.positions}: fit '{args.tag}' has heads at {sorted(fitted)}")
    fitted = {p: fitted[p] for p in positions}
    stages = arch_spec()
    heads = head_spec(stages, positions)
    fsd = float_weights(args)
    classifier = (fsd["classifier.1.weight"], fsd["classifier.1.bias"])
    fc_q = {p: quantize_rows(fitted[p]["fc_weight"].numpy()) for p in positions}
    modules, modules_float = [], []
    for p in positions:
        for store, w in ((modules_float, fitted[p]["fc_weight"]),
                         (modules, torch.from_numpy(fc_q[p][0].astype(np.float32) * fc_q[p][1][:, None]))):
            m = Head(head_conv(fsd, p), w.shape[1], classifier)
            m.fc.weight.data = w.clone().float()
            m.fc.bias.data = fitted[p]["fc_bias"].clone().float()
            store.append(m.eval())

    t0 = time.time()
    tensors, checked = backbone_tensors(args)
    log(f"export: {len(checked)} int8 convs/linears: dequantized weights bit-identical to {WEIGHTS_FLOAT}; "
        f"every BatchNorm is identity + the int8 conv bias")
    for k, (p, h) in enumerate(zip(positions, heads)):
        if h["conv"]:  # an exact copy of the next block's expand conv (I8, same scale, F32 bias)
            src = h["conv_from"]
            for suffix in (".weight", ".weight_scale", ".weight_zero_point", ".bias"):
                if src + suffix in tensors:
                    tensors[f"heads.{k}.conv{suffix}"] = tensors[src + suffix].copy()
            if not torch.equal(torch.from_numpy(dequantize(tensors, f"heads.{k}.conv")), modules[k].conv_w):
                raise SystemExit(f"heads.{k}.conv differs from {src}")
        q, sc = fc_q[p]
        tensors[f"heads.{k}.fc.weight"] = q
        tensors[f"heads.{k}.fc.weight_scale"] = sc
        tensors[f"heads.{k}.fc.bias"] = fitted[p]["fc_bias"].numpy().astype(np.float32)
    # header order: backbone in forward order, then heads
    n_params = sum(int(v.size) for n, v in tensors.items() if not n.endswith((".weight_scale", ".weight_zero_point")))
    mt = macs_to_exit(stages, heads)
    dist = dict(
        method="feature distillation: each head's fc predicts the backbone's own classifier input z (the "
               "pooled 1280 features after last_conv) from its GAP features, fitted by ridge regression "
               "(closed form, standardised features, unpenalised intercept); the backbone and its classifier "
               "stay frozen and the head's logits are classifier(relu6(fc(...))). Penalty per head chosen on "
               f"{summary['holdout']} held-out DISTILL images by agreement with the backbone's top-1 (no labels)",
        teacher="the backbone itself (torchvision mobilenet_v2 with the dequantized float weights), frozen",
        targets="z = the backbone's pooled 1280 features of the same augmented input (its logits = classifier(z))",
        chosen_lambda={str(k): v for k, v in summary["chosen_lambda"].items() if int(k) in positions},
        lambda_grid=summary["lams"],
        kd_finetune_epochs=summary["finetune_epochs"],
        inputs=summary.get("n_inputs"),
        data=f"DISTILL half of data/imagenet/split.json ({split['n_distill']} images; labels not used): "
             f"{summary['copies']} copies, copy 0 = Resize(256)+CenterCrop(224), the others RandomResizedCrop(224, "
             f"scale=(0.25,1)) + RandomHorizontalFlip + ColorJitter(0.3,0.3,0.3)"
             + (f"; {summary['mix_chunks']} x {split['n_distill']} CutMix pairs of two such augmented DISTILL images "
                f"(box area 25-60%)" if summary["mix_chunks"] else "")
             + (f"; {summary['cifar_chunks']} x {args.cifar_per_chunk} CIFAR-10 training images "
                f"(../shared/data/cifar10/train.tar, unlabelled) upsampled by RandomResizedCrop(224, scale=(0.5,1)) "
                f"+ flip + ColorJitter" if summary["cifar_chunks"] else ""),
        fc_storage="fc fitted in float64, stored as int8 per output row (symmetric, scale = max|row|/127)",
        script="examples/train/export_mobilenet_v2.py")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(dict(input=[3, 224, 224], classes=NUM_CLASSES, stages=stages, heads=heads),
                                   separators=(",", ":")),
        "stages": ",".join(st["name"] for st in stages),
        "strides": ",".join(str(st["stride"]) for st in stages),
        "channels": ",".join(str(st["out_channels"]) for st in stages),
        "head_after_stage": ",".join(str(h["after_stage"]) for h in heads),
        "head_names": ",".join(h["name"] for h in heads),
        "stage_macs": ",".join(str(st["macs"]) for st in stages),
        "head_macs": ",".join(str(h["macs"]) for h in heads),
        "macs_to_exit": ",".join(str(v) for v in mt),
        "macs_convention": "multiply-accumulates of convolutions (depthwise: C*9*H*W) and linear layers; "
                           "bias, ReLU6, residual adds not counted in stages; a head's MACs include its pooling "
                           "additions (7x7 average pool: C*H*W, global average pool: C*49) and the backbone "
                           "classifier it ends in (1 280 000); macs_to_exit = stages up to the head's position + "
                           "that head (earlier heads not included)",
        "input": "RGB image -> torchvision Resize(256) (PIL bilinear, shorter side to 256) -> CenterCrop(224) "
                 "-> uint8 224x224 -> float32 x/255 -> (x - mean[c]) / std[c], layout [3, 224, 224] (CHW)",
        "preprocessing": json.dumps(dict(resize_shorter=256, interpolation="bilinear (PIL, as torchvision 0.14 "
                                         "Resize on a PIL image)", center_crop=224, scale=1 / 255, mean=MEAN, std=STD)),
        "mean": json.dumps(MEAN),
        "std": json.dumps(STD),
        "classes": "1000 ILSVRC2012 classes, index = line of data/imagenet/synset_words.txt (sorted WNIDs)",
        "layouts": "conv weight [out, in/groups, kh, kw] row-major (depthwise: [C, 1, 3, 3], groups = C), "
                   "bias [out]; padding kh//2; linear weight [out, in] row-major, bias [out]; every "
                   "BatchNorm folded into the preceding conv's bias (backbone: BN was identity) or weights (heads)",
        "weight_quantization": "every conv/linear '<name>.weight' is I8 with '<name>.weight_scale' F32: shape [1] "
                               "= per-tensor (backbone, heads' conv), shape [out] = per output channel/row (heads' "
                               "fc); an optional '<name>.weight_zero_point' I32 of the same shape (absent = 0; "
                               "absent in this file); float weight = (float(q) - zp) * scale in float32 (backbone: "
                               "bit-identical to torchvision's dequantize()); every bias F32",
        "activations": "float32; ReLU6 after stem, expand, depthwise, last_conv and in the heads (after conv "
                       "and after fc); no activation after project (linear bottleneck)",
        "head_forward": "x = output of blocks.<after_block> [C, H, W]; if pool > 1: x = avg_pool(x, kernel = "
                        "stride = pool) -> [C, 7, 7]; if conv: x = relu6(conv1x1(x, heads.k.conv)); g = mean over "
                        "7x7 of x; z = relu6(heads.k.fc.weight . g + heads.k.fc.bias) [1280]; logits = "
                        "classifier.weight . z + classifier.bias (the backbone's classifier, shared)",
        "source": "torchvision quantized MobileNetV2 (mobilenet_v2_qnnpack_37f702c5, QNNPACK int8, ImageNet-1k), "
                  "recovered from GitHub ioarun/RecycleSure@11d41efcdfd07bcc2e7aa2726cf22007b91baf8d "
                  "app/src/main/assets/mobilenetv2_quantized.pt; see ../shared/data/imagenet-weights/README.md. "
                  "License not stated by the source; ImageNet terms (non-commercial research) may apply.",
        "split": json.dumps(dict(file="data/imagenet/split.json", seed=split["seed"], n_distill=split["n_distill"],
                                 n_eval=split["n_eval"], method="numpy PCG64 permutation of the 1300 sorted filenames; "
                                 "first n_distill = DISTILL")),
        "distillation": json.dumps(dist),
        "parameters": str(n_params),
    }
    os.makedirs(os.path.dirname(args.out_weights), exist_ok=True)
    write_safetensors(args.out_weights, tensors, meta)
    size = os.path.getsize(args.out_weights)

    # Read back with the independent reader; everything below uses only the file.
    tf, mf, order = read_safetensors(args.out_weights)
    arch = json.loads(mf["architecture"])
    for n, v in tensors.items():
        if tf[n].dtype != v.dtype or not np.array_equal(tf[n], v):
            raise SystemExit(f"read-back mismatch: {n}")
    log(f"export: {args.out_weights}: {size:,} bytes, {len(tf)} tensors, {n_params:,} parameters")

    # Evaluation set: the EVAL half's centre crops.
    labels = read_labels(os.path.join(args.imagenet, "labels.txt"))
    blobs = read_tar(os.path.join(args.imagenet, "images.tar"))
    ev_t = eval_transform_pil()
    ev = split["eval"][:args.limit_eval] if args.limit_eval else split["eval"]
    y = torch.tensor([labels[n] for n in ev])
    model = load_backbone(args)
    torch_logits, ref_logits, float_fc = [], [], []
    with torch.no_grad():
        for i in range(0, len(ev), args.batch):
            x = to_input([ev_t(pil_rgb(blobs[n])) for n in ev[i:i + args.batch]])
            lo, fe = backbone_run(model, x, positions)
            torch_logits.append(torch.stack([m(pool7(fe[p])) for m, p in zip(modules, positions)] + [lo]))
            float_fc.append(torch.stack([m(pool7(fe[p])) for m, p in zip(modules_float, positions)]))
            if i < args.check_images:
                ref_logits.append(torch.stack(reference_forward(tf, arch["stages"], arch["heads"], x)))
    torch_logits = torch.cat(torch_logits, 1)  # [exits, N, 1000]
    ref_logits = torch.cat(ref_logits, 1)
    nchk = ref_logits.shape[1]
    diff = (torch_logits[:, :nchk] - ref_logits).abs().amax(dim=(1, 2))
    log(f"export: reference forward from the file vs torchvision mobilenet_v2 (+ head modules) on {nchk} EVAL "
        f"images: max |logit diff| per exit {' '.join(f'{d:.2e}' for d in diff.tolist())}")
    if not float(diff.max()) <= 1e-3:
        raise SystemExit(f"reference forward check FAILED: {float(diff.max())}")
    np.save(os.path.join(args.cache, "eval_logits.npy"), torch_logits.numpy().astype(np.float32))
    np.save(os.path.join(args.cache, "eval_labels.npy"), y.numpy().astype(np.int64))
    with open(os.path.join(args.cache, "eval_files.json"), "w") as f:
        json.dump(dict(files=ev, exits=[h["name"] for h in heads]), f)

    pred = torch_logits.argmax(-1)
    pred_f = torch.cat(float_fc, 1).argmax(-1)
    log("export: EVAL top-1 of the heads with the float64-fitted fc (before int8 storage): "
        + " ".join(f"{100 * float((pred_f[e] == y).float().mean()):.1f}%" for e in range(len(positions)))
        + "; top-1 agreement int8 fc vs float fc: "
        + " ".join(f"{100 * float((pred_f[e] == pred[e]).float().mean()):.1f}%" for e in range(len(positions))))
    top1 = [float((pred[e] == y).float().mean()) for e in range(len(heads))]
    agree = [float((pred[e] == pred[-1]).float().mean()) for e in range(len(heads))]
    top5_final = float((torch_logits[-1].topk(5, -1).indices == y[:, None]).any(1).float().mean())
    sample = set(split["sample"])
    sidx = torch.tensor([i for i, n in enumerate(ev) if n in sample])
    top1_sample = [float((pred[e][sidx] == y[sidx]).float().mean()) for e in range(len(heads))]
    total = sum(st["macs"] for st in stages) + heads[-1]["macs"]
    rows = []
    for e, h in enumerate(heads):
        rows.append(dict(exit=h["name"], after=stages[h["after_stage"]]["name"], head_macs=h["macs"],
                         macs_to_exit=mt[e], fraction_of_full=round(mt[e] / total, 4), eval_top1=round(top1[e], 4),
                         agreement_with_final=round(agree[e], 4), sample_top1=round(top1_sample[e], 4)))
        log(f"  {h['name']:<11} after {rows[-1]['after']:<10} head {h['macs'] / 1e6:6.2f} M  to exit "
            f"{mt[e] / 1e6:7.2f} M ({100 * mt[e] / total:5.1f}%)  EVAL top-1 {100 * top1[e]:5.1f}%  "
            f"agreement {100 * agree[e]:5.1f}%  sample top-1 {100 * top1_sample[e]:5.1f}%")
    log(f"  final head EVAL top-5 {100 * top5_final:.1f}%")

    # Parity data for the C++ tests.
    tdir = os.path.join(REPO_ROOT, "tests", "data", "imagenet")
    os.makedirs(tdir, exist_ok=True)
    refs = []
    crop_t = eval_transform_pil()
    for name in args.ref_images.split(","):
        path = os.path.join(REPO_ROOT, "data", "imagenet", "sample", name)
        with open(path, "rb") as f:
            im = pil_rgb(f.read())
        stem = os.path.splitext(name)[0]
        im.save(os.path.join(tdir, stem + ".png"), optimize=True)
        crop = crop_t(im)
        crop.save(os.path.join(tdir, stem + "_crop224.png"), optimize=True)
        # PNGs must round-trip exactly
        for p_, a_ in ((stem + ".png", im), (stem + "_crop224.png", crop)):
            with Image.open(os.path.join(tdir, p_)) as chk:
                if not np.array_equal(np.asarray(chk.convert("RGB")), np.asarray(a_)):
                    raise SystemExit(f"{p_}: PNG round trip differs")
        x = to_input([crop])
        with torch.no_grad():
            outs = reference_forward(tf, arch["stages"], arch["heads"], x)
            lo, fe = backbone_run(model, x, positions)
            tl = [m(pool7(fe[p])) for m, p in zip(modules, positions)] + [lo]
        d = max(float((a - b).abs().max()) for a, b in zip(outs, tl))
        refs.append(dict(
            file=name, label=labels[name], image_png=stem + ".png", crop224_png=stem + "_crop224.png",
            image_hw=[im.height, im.width], max_abs_diff_vs_torchvision=d,
            exits=[dict(name=h["name"], after_stage=h["after_stage"], logits=[float(v) for v in o[0]],
                        top5=[int(v) for v in o[0].topk(5).indices]) for h, o in zip(heads, outs)]))
    with open(os.path.join(tdir, "reference.json"), "w") as f:
        json.dump(dict(
            description="C++ parity data for models/mobilenet_v2_imagenet.safetensors. For each image: "
                        "image_png = the JPEG from data/imagenet/sample/ decoded by Pillow (RGB, lossless PNG); "
                        "crop224_png = torchvision Resize(256) (PIL bilinear) + CenterCrop(224) of it; logits = "
                        "every exit's 1000 logits (head order as in the file; the last is the backbone's "
                        "classifier), computed in float32 from the exported file's tensors (int8 weights "
                        "dequantized) by the Python reference forward on ToTensor+Normalize(mean, std) of "
                        "crop224_png; top5 = indices of the 5 largest logits, largest first.",
            weights="models/mobilenet_v2_imagenet.safetensors", mean=MEAN, std=STD,
            tolerance_used_in_python=1e-3, images=refs), f)
    # The held-out DISTILL images (never fitted on): the calibration set of the exit policies.
    held = summary.get("calibration_holdout")
    if held:
        cpath = os.path.join(REPO_ROOT, "data", "imagenet", "calibration.txt")
        with open(cpath, "w") as f:
            f.writelines(f"{n} {labels[n]}\n" for n in held)
        log(f"export: {len(held)} held-out DISTILL images (calibration set) listed in {cpath}")
    metrics = dict(weights=os.path.relpath(args.out_weights, REPO_ROOT), bytes=size, parameters=n_params,
                   fit_tag=args.tag, exits=rows, final_top5=top5_final, n_eval=len(ev),
                   reference_check_images=nchk, reference_check_max_abs_diff=[float(v) for v in diff],
                   full_network_macs=total, export_s=round(time.time() - t0, 1))
    with open(os.path.join(args.cache, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"export: parity data in {tdir}; metrics in {args.cache}/metrics.json; {time.time() - t0:.0f} s")


# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["split", "teacher", "fit", "export", "all"])
    ap.add_argument("--imagenet", default=os.path.join(SHARED, "imagenet-val-subset"))
    ap.add_argument("--weights", default=os.path.join(SHARED, "imagenet-weights"))
    ap.add_argument("--cifar", default=os.path.join(SHARED, "cifar10"))
    ap.add_argument("--cache", default="/var/tmp/earlyexit-imagenet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16, help="backbone batch size")
    # split
    ap.add_argument("--split-seed", type=int, default=20240611)
    ap.add_argument("--n-distill", type=int, default=650)
    ap.add_argument("--sample-seed", type=int, default=20240612)
    ap.add_argument("--n-sample", type=int, default=100)
    # teacher
    ap.add_argument("--copies", type=int, default=16, help="copies of the DISTILL half (copy 0 = centre crop)")
    ap.add_argument("--aug-seed", type=int, default=7)
    ap.add_argument("--cifar-chunks", type=int, default=12, help="teacher: chunks of CIFAR-10 images to run")
    ap.add_argument("--mix-chunks", type=int, default=12, help="teacher: chunks of CutMix pairs of DISTILL images")
    ap.add_argument("--cifar-per-chunk", type=int, default=650)
    ap.add_argument("--no-eval-chunk", dest="eval_chunk", action="store_false")
    ap.add_argument("--time-budget-min", type=float, default=0.0)
    # fit
    ap.add_argument("--tag", default="final")
    ap.add_argument("--positions", default="12,13,14,15,16", help="blocks that get an exit head")
    ap.add_argument("--lams", default="0.0001,0.0003,0.001,0.003,0.01,0.03",
                    help="ridge penalties tried (times N, on standardised features); the best on the holdout is used")
    ap.add_argument("--holdout", type=int, default=130, help="DISTILL images held out for the choice of lambda")
    ap.add_argument("--final", action="store_true", help="after the selection, refit on all and evaluate on EVAL")
    ap.add_argument("--use-mix-chunks", type=int, default=12)
    ap.add_argument("--use-cifar-chunks", type=int, default=12)
    ap.add_argument("--finetune-epochs", type=int, default=0, help="KD fine-tuning of the ridge fc (0: none)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--z-weight", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--fit-batch", type=int, default=256)
    ap.add_argument("--fit-seed", type=int, default=1)
    # export
    ap.add_argument("--out-weights", default=os.path.join(REPO_ROOT, "models", "mobilenet_v2_imagenet.safetensors"))
    ap.add_argument("--check-images", type=int, default=650, help="EVAL images run through the reference forward")
    ap.add_argument("--limit-eval", type=int, default=0, help="export: evaluate only the first N EVAL images (smoke tests)")
    ap.add_argument("--ref-images", default="", help="two sample filenames for tests/data/imagenet "
                                                      "(default: the first two of the sample)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    if args.command in ("split", "all"):
        cmd_split(args)
    if not args.ref_images and os.path.exists(os.path.join(REPO_ROOT, "data", "imagenet", "split.json")):
        args.ref_images = ",".join(load_split(args)["sample"][:2])
    if args.command in ("teacher", "all"):
        cmd_teacher(args)
    if args.command in ("fit", "all"):
        cmd_fit(args)
    if args.command in ("export", "all"):
        cmd_export(args)


if __name__ == "__main__":
    main()
