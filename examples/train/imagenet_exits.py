#!/usr/bin/python3
"""Step 11: exit heads for torchvision's pretrained MobileNetV2 fitted on far more images, for two
demos: earlyexit-imagenet (1000 classes, heads distilled from the backbone, no labels) and
earlyexit-imagenette (10 classes, heads fitted with labels, the final head = the backbone's own
classifier restricted to the 10 classes). See examples/train/README.md ("Step 11") for the
commands, timings and results.

Subcommands, in order:

  features   the frozen backbone on every input image (augmented copies where asked) -> per
             candidate position pooled features of three kinds plus the backbone's logits and
             pooled 1280 features z, one resumable chunk per ~1000 images under CACHE/chunks/.
  select     every (position, feature kind, penalty) fitted on the fit set and scored on the
             selection set (1000 classes: agreement with the backbone on the 650 DISTILL images;
             Imagenette: accuracy on held-out training images) -> CACHE/select_<target>.json
  export     the chosen heads fitted once more and written with the backbone into
             models/mobilenet_v2_<target>.safetensors, with the parity data for the C++ tests
             (tests/data/<target>/reference.json), the calibration lists and, for Imagenette,
             the 500 shipped validation images.

Feature kinds at a position (the output x [C, H, W] of blocks.p):
  gap  mean of x over H x W                                                    C features
  g2   x average-pooled to a 2 x 2 grid, channel-major (c*4 + row*2 + col)     4C
  gx   x average-pooled to 7 x 7, then a copy of blocks.(p+1)'s expand conv    6C
       (1x1 + ReLU6, frozen), then the mean over 7 x 7

Image sets (images the pretrained backbone trained on: ImageNet training images; the 1300-image
subset, imagenet-val-1000 and Imagenette's ILSVRC2012_val_* files are validation images):
  v1k    ../shared/data/imagenet-val-1000 less every image also in the 1300-image subset or among
         Imagenette's 500 validation images; copy 0 = centre crop, copies 1.. augmented
  nette  Imagenette's 9 791 ImageNet-training images (train.tar and val.tar); copy 0 centre crop,
         copy 1 augmented. For the Imagenette demo a seeded 100 per class are held out
         (calibration and selection), the rest fit the heads.
  netteval  Imagenette's 500 ILSVRC2012 validation images, centre crops (Imagenette reporting only)
  distill, eval  the two halves of data/imagenet/split.json, centre crops (1000 classes:
         selection + calibration, and reporting only)

Caches live in CACHE (default /var/tmp/earlyexit-imagenet/step11), never in the repository.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_mobilenet_v2 as mb  # noqa: E402  (the backbone, its file format and helpers)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

REPO_ROOT = mb.REPO_ROOT
SHARED = mb.SHARED
POSITIONS = [3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
KINDS = ["gap", "g2", "gx"]
CHUNK = 1000
log = mb.log


# --------------------------------------------------------------------------------------------
# Image sets
# --------------------------------------------------------------------------------------------

def nette_classes(args):
    out = []
    with open(os.path.join(args.imagenette, "classes.txt")) as f:
        for line in f:
            if line.strip():
                i, wnid, k, *name = line.split()
                out.append(dict(index=int(i), wnid=wnid, imagenet=int(k), name=" ".join(name)))
    return out


def nette_members(args):
    """[(tar, member, wnid)] of train.tar and val.tar, sorted by member path within each tar."""
    out = []
    for tname in ("train.tar", "val.tar"):
        with tarfile.open(os.path.join(args.imagenette, tname)) as tf:
            for m in tf:
                if m.isfile():
                    out.append((tname, m.name, m.name.split("/")[0]))
    return out


def is_val_name(member):
    return os.path.basename(member).startswith("ILSVRC2012_val_")


def image_sets(args):
    """The named lists of (id, source) every subcommand agrees on; ids are unique strings."""
    split = mb.load_split(args)
    subset = set(split["distill"]) | set(split["eval"])
    members = nette_members(args)
    nette_val = [(f"nette:{t}:{m}", w) for t, m, w in members if is_val_name(m)]
    nette_train = [(f"nette:{t}:{m}", w) for t, m, w in members if not is_val_name(m)]
    val_names = {os.path.basename(i.split(":")[2]) for i, _ in nette_val}
    v1k_labels = mb.read_labels(os.path.join(args.v1k, "labels.txt"))
    v1k = [n for n in sorted(v1k_labels) if n not in subset and n not in val_names]
    # Imagenette: seeded per-class holdout of train.tar's training images (calibration and
    # selection; from one tar, so that the C++ demo can record their trace from it)
    rng = np.random.Generator(np.random.PCG64(args.nette_seed))
    by_class = {}
    for i, w in nette_train:
        if i.startswith("nette:train.tar:"):
            by_class.setdefault(w, []).append(i)
    held = set()
    for w in sorted(by_class):
        ids = by_class[w]
        held.update(ids[j] for j in rng.choice(len(ids), size=args.nette_holdout, replace=False))
    subset_labels = mb.read_labels(os.path.join(args.imagenet, "labels.txt"))
    wnid_index = {c["wnid"]: c["index"] for c in nette_classes(args)}
    return dict(split=split, v1k=v1k, v1k_labels=v1k_labels, nette_train=nette_train, nette_val=nette_val,
                nette_held=held, wnid_index=wnid_index,
                # labels by id: "sub:<file>" -> ImageNet index, "nette:<tar>:<wnid>/<file>" -> 0-9
                subset_label=lambda i: subset_labels[i.split(":", 1)[1]],
                nette_label=lambda i: wnid_index[i.split(":")[2].split("/")[0]])


def fit_chunks_of(args):
    """The chunks the exits are fitted on: imagenet-val-1000 and Imagenette for the 1000-class
    exits (no labels), Imagenette for its own (rows of held-out images are left out by the caller)."""
    nette = chunks_of(args, "nette", args.nette_copies)
    return chunks_of(args, "v1k", args.v1k_copies) + nette if args.target == "imagenet" else nette


class Loader:
    """Decoded PIL images by id, tars opened once."""

    def __init__(self, args):
        self.args = args
        self.tars = {}

    def blob(self, ident):
        kind, rest = ident.split(":", 1)
        if kind == "nette":
            tname, member = rest.split(":", 1)
            path = os.path.join(self.args.imagenette, tname)
        elif kind == "v1k":
            path, member = os.path.join(self.args.v1k, "images.tar"), rest
        elif kind == "sub":
            path, member = os.path.join(self.args.imagenet, "images.tar"), rest
        else:
            raise ValueError(ident)
        if path not in self.tars:
            self.tars[path] = tarfile.open(path)
        tf = self.tars[path]
        return tf.extractfile(tf.getmember(member)).read()

    def pil(self, ident):
        return mb.pil_rgb(self.blob(ident))


def chunk_plan(args, sets):
    """[(chunk name, [ids], copy)]: copy 0 = centre crop, copy c > 0 = augmented with seed c."""
    plan = []

    def add(prefix, ids, copies):
        for c in range(copies):
            for k in range(0, len(ids), CHUNK):
                plan.append((f"{prefix}_c{c:02d}_{k // CHUNK:02d}", ids[k:k + CHUNK], c))

    sp = sets["split"]
    add("distill", [f"sub:{n}" for n in sp["distill"]], args.distill_copies)
    add("eval", [f"sub:{n}" for n in sp["eval"]], 1)
    add("netteval", [i for i, _ in sets["nette_val"]], 1)
    add("nette", [i for i, _ in sets["nette_train"]], args.nette_copies)
    add("v1k", [f"v1k:{n}" for n in sets["v1k"]], args.v1k_copies)
    return plan


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------

def expand_convs(fsd):
    """blocks.(p+1)'s expand conv (weight, folded bias) for every candidate p < 16."""
    return {p: mb.head_conv(fsd, p) for p in POSITIONS if p < 16}


@torch.no_grad()
def run_features(model, convs, x):
    feats = {}
    x = model.features[0](x)
    for i in range(17):
        x = model.features[i + 1](x)
        if i in POSITIONS:
            f = dict(gap=x.mean(dim=(2, 3)), g2=F.adaptive_avg_pool2d(x, 2).flatten(1))
            if i in convs:
                w, b = convs[i]
                f["gx"] = F.relu6(F.conv2d(mb.pool7(x), w, b)).mean(dim=(2, 3))
            feats[i] = f
    x = model.features[18](x)
    z = F.adaptive_avg_pool2d(x, 1).flatten(1)
    return model.classifier(z), feats, z


chunk_dir = mb.chunk_dir


def input_batch(args, loader, ids, copy):
    """The backbone's input for these images: copy 0 = torchvision's centre crop, copy c > 0 = an
    augmented copy seeded by (id, c, --aug-seed), so that every pass makes the same crops."""
    ev_t = mb.eval_transform_pil()
    aug = mb.distill_transform("imagenet")
    ims = []
    for ident in ids:
        im = loader.pil(ident)
        if copy == 0:
            ims.append(ev_t(im))
        else:
            seed = int.from_bytes(hashlib.sha256(f"{ident}/{copy}/{args.aug_seed}".encode()).digest()[:4], "little")
            torch.manual_seed(seed)
            ims.append(aug(im))
    return mb.to_input(ims).contiguous(memory_format=torch.channels_last)


def write_chunk(args, name, ids, copy, model, convs, loader):
    d = chunk_dir(args, name)
    t0 = time.time()
    tmp = mb.new_chunk(d)
    if tmp is None:
        return False
    n = len(ids)
    out = {}
    logits = np.zeros((n, 1000), dtype=np.float32)
    zs = np.zeros((n, 1280), dtype=np.float32)
    for i in range(0, n, args.batch):
        x = input_batch(args, loader, ids[i:i + args.batch], copy)
        m = len(x)
        lo, fe, z = run_features(model, convs, x)
        logits[i:i + m] = lo.numpy()
        zs[i:i + m] = z.numpy()
        for p, f in fe.items():
            for k, v in f.items():
                key = f"{k}_b{p}"
                if key not in out:
                    out[key] = np.lib.format.open_memmap(os.path.join(tmp, key + ".npy"), mode="w+",
                                                         dtype=np.float16, shape=(n, v.shape[1]))
                out[key][i:i + m] = v.numpy().astype(np.float16)
    for a in out.values():
        a.flush()
    del out
    dt = mb.finish_chunk(tmp, d, logits, zs, dict(ids=ids, copy=copy), t0)
    log(f"features: {name}: {n} images in {dt:.1f} s ({n / dt:.1f} img/s)")
    return True


MAP_POSITIONS = [3, 5, 6, 7, 8, 9, 10, 11, 12]


@torch.no_grad()
def write_maps(args, name, model, loader):
    """The block outputs at MAP_POSITIONS average-pooled to 7 x 7 (float16), for the heads whose
    conv is trained (Imagenette), added to a finished chunk: the same images, the same crops."""
    d = chunk_dir(args, name)
    if os.path.exists(os.path.join(d, "maps_done")):
        return False
    t0 = time.time()
    with open(os.path.join(d, "ids.json")) as f:
        meta = json.load(f)
    ids, copy = meta["ids"], meta["copy"]
    n = len(ids)
    stages = mb.arch_spec()
    out = {p: np.lib.format.open_memmap(os.path.join(d, f"p7_b{p}.npy.tmp"), mode="w+", dtype=np.float16,
                                        shape=(n, stages[p + 1]["out_channels"], 7, 7)) for p in MAP_POSITIONS}
    for i in range(0, n, args.batch):
        x = input_batch(args, loader, ids[i:i + args.batch], copy)
        m = len(x)
        x = model.features[0](x)
        for b in range(max(MAP_POSITIONS) + 1):
            x = model.features[b + 1](x)
            if b in out:
                out[b][i:i + m] = mb.pool7(x).numpy().astype(np.float16)
    for p, a in out.items():
        a.flush()
        del a
        os.replace(os.path.join(d, f"p7_b{p}.npy.tmp"), os.path.join(d, f"p7_b{p}.npy"))
    with open(os.path.join(d, "maps_done"), "w") as f:
        f.write(f"{n} images {time.time() - t0:.1f} s\n")
    log(f"features: maps of {name}: {n} images in {time.time() - t0:.1f} s")
    return True


def cmd_features(args):
    sets = image_sets(args)
    model = mb.load_backbone(args).to(memory_format=torch.channels_last)
    convs = expand_convs(mb.float_weights(args))
    loader = Loader(args)
    plan = chunk_plan(args, sets)
    if args.only:  # e.g. "nette,netteval": Imagenette's chunks only (the Imagenette exits need no others)
        prefixes = args.only.split(",")
        plan = [c for c in plan if c[0].rsplit("_c", 1)[0] in prefixes]
    log(f"features: {len(plan)} chunks, {sum(len(c[1]) for c in plan)} images "
        f"(v1k {len(sets['v1k'])} x {args.v1k_copies}, Imagenette training {len(sets['nette_train'])} x "
        f"{args.nette_copies}, Imagenette validation {len(sets['nette_val'])}, DISTILL + EVAL 1300)")
    t0 = time.time()
    for name, ids, copy in plan:
        if args.time_budget_min and time.time() - t0 > args.time_budget_min * 60:
            log("features: time budget used up; run the same command again to continue")
            return
        write_chunk(args, name, ids, copy, model, convs, loader)
    if args.maps:  # the 7x7 maps of Imagenette's images (the trained-conv heads)
        for name, ids, copy in plan:
            if name.startswith("nette"):
                if args.time_budget_min and time.time() - t0 > args.time_budget_min * 60:
                    log("features: time budget used up; run the same command again to continue")
                    return
                write_maps(args, name, model, loader)
    log(f"features: done in {time.time() - t0:.0f} s")


# --------------------------------------------------------------------------------------------
# Reading chunks back
# --------------------------------------------------------------------------------------------

def chunks_of(args, prefix, copies=None):
    out = []
    for name in sorted(os.listdir(os.path.join(args.cache, "chunks"))):
        if name.startswith(prefix + "_c") and not name.endswith(".tmp"):
            c = int(name[len(prefix) + 2:len(prefix) + 4])
            if copies is None or c < copies:
                if not os.path.exists(os.path.join(chunk_dir(args, name), "done")):
                    raise SystemExit(f"chunk {name} unfinished: run 'features' again")
                out.append(name)
    if not out:
        raise SystemExit(f"no chunks '{prefix}': run 'features' first")
    return out


def load_rows(args, chunks, keys, keep=None):
    """Concatenated rows of the chunks: ({key: float32 [N, D]}, logits [N, 1000], z [N, 1280], ids).
    keep(id) -> bool filters rows."""
    fs, ls, zs, ids = {k: [] for k in keys}, [], [], []
    for name in chunks:
        d = chunk_dir(args, name)
        with open(os.path.join(d, "ids.json")) as f:
            cid = json.load(f)["ids"]
        rows = np.array([j for j, i in enumerate(cid) if keep is None or keep(i)], dtype=np.int64)
        for k in keys:
            fs[k].append(np.load(os.path.join(d, k + ".npy"), mmap_mode="r")[rows].astype(np.float32))
        ls.append(np.load(os.path.join(d, "logits.npy"))[rows])
        zs.append(np.load(os.path.join(d, "z.npy"))[rows])
        ids += [cid[j] for j in rows]
    return {k: np.concatenate(v) for k, v in fs.items()}, np.concatenate(ls), np.concatenate(zs), ids


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------

def ridge_solutions(g, z, lams):
    """mb.ridge (standardised features, unpenalised intercept), float32 returned."""
    return [(W.astype(np.float32), b.astype(np.float32)) for W, b in mb.ridge(g, z, lams)]


def distilled_logits(g, W, b, cls_w, cls_b):
    zz = F.relu6(mb.mm(g, torch.from_numpy(W).T) + torch.from_numpy(b))
    return mb.mm(zz, cls_w.T) + cls_b


def softmax_regression(g, y, classes, lam, iters=300):
    """Multinomial logistic regression with an L2 penalty lam on the (standardised) weights,
    L-BFGS in float64; returns (W [classes, D], b [classes]) in the original feature scale."""
    mu, sd = g.mean(0), g.std(0) + 1e-6
    n, d = g.shape
    # the product as a 1x1 convolution (oneDNN, forward and backward): Debian's torch does dense
    # products with the generic reference BLAS (see mb.mm)
    x = torch.from_numpy(((g - mu) / sd).astype(np.float32)).T.contiguous().view(1, d, n, 1)
    yt = torch.from_numpy(np.asarray(y)).long()
    W = torch.zeros(classes, d, 1, 1, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        opt.zero_grad()
        lo = F.conv2d(x, W, b).view(classes, n).T
        loss = F.cross_entropy(lo, yt) + lam * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    Ws = W.detach().view(classes, d).double().numpy() / sd[None, :]
    bn = b.detach().double().numpy() - Ws @ mu
    return Ws.astype(np.float32), bn.astype(np.float32)


def train_conv_head(x, y, classes, width, epochs, lr=2e-3, wd=5e-4, seed=1, batch=256, smoothing=0.1):
    """A head trained with labels on 7x7 maps x [N, C, 7, 7] (float16 numpy): conv 1x1 C -> width +
    ReLU6 -> global average pool -> linear to the classes; AdamW, one-cycle cosine schedule,
    cross-entropy with label smoothing. Returns float32 numpy (conv_w [width, C, 1, 1], conv_b,
    fc_w [classes, width], fc_b)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    c = x.shape[1]
    conv = torch.nn.Conv2d(c, width, 1)
    fc = torch.nn.Linear(width, classes)
    params = list(conv.parameters()) + list(fc.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    n = len(x)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.asarray(y)).long()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            h = F.relu6(conv(xt[idx].float())).mean(dim=(2, 3))
            # the linear layer as a 1x1 convolution (oneDNN rather than the reference BLAS)
            lo = F.conv2d(h[:, :, None, None], fc.weight[:, :, None, None], fc.bias).flatten(1)
            loss = F.cross_entropy(lo, yt[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return tuple(t.detach().numpy().astype(np.float32) for t in (conv.weight, conv.bias, fc.weight, fc.bias))


@torch.no_grad()
def conv_head_logits(x, w):
    conv_w, conv_b, fc_w, fc_b = (torch.from_numpy(a) for a in w)
    out = []
    for i in range(0, len(x), 1024):
        h = F.relu6(F.conv2d(torch.from_numpy(np.ascontiguousarray(x[i:i + 1024])).float(), conv_w, conv_b))
        out.append(h.mean(dim=(2, 3)) @ fc_w.T + fc_b)
    return torch.cat(out)


def load_maps(args, chunks, p, keep):
    xs, ids = [], []
    for name in chunks:
        d = chunk_dir(args, name)
        if not os.path.exists(os.path.join(d, "maps_done")):
            raise SystemExit(f"chunk {name} has no maps: run 'features --maps'")
        with open(os.path.join(d, "ids.json")) as f:
            cid = json.load(f)["ids"]
        rows = np.array([j for j, i in enumerate(cid) if keep is None or keep(i)], dtype=np.int64)
        xs.append(np.load(os.path.join(d, f"p7_b{p}.npy"), mmap_mode="r")[rows])
        ids += [cid[j] for j in rows]
    return np.concatenate(xs), ids


def classifier(args):
    fsd = mb.float_weights(args)
    return fsd["classifier.1.weight"].float(), fsd["classifier.1.bias"].float()


def keys_for(p):
    return [f"{k}_b{p}" for k in KINDS if not (k == "gx" and p == 16)]


def cmd_select(args):
    sets = image_sets(args)
    t0 = time.time()
    res = {}
    if args.target == "imagenet":
        cls_w, cls_b = classifier(args)
        lams = mb.parse_list(args.lams, float)
        fit_chunks = fit_chunks_of(args)
        for p in mb.parse_list(args.positions, int):
            keys = keys_for(p)
            g, tl, tz, _ = load_rows(args, fit_chunks, keys)
            gd, ld, _, idd = load_rows(args, chunks_of(args, "distill"), keys)
            y = torch.tensor([sets["subset_label"](i) for i in idd])
            teacher = torch.from_numpy(ld).argmax(1)
            res[p] = {}
            for k in keys:
                rows = []
                for lam, (W, b) in zip(lams, ridge_solutions(g[k], tz, lams)):
                    lo = distilled_logits(gd[k], W, b, cls_w, cls_b)
                    pred = lo.argmax(1)
                    rows.append(dict(lam=lam, agreement=round(float((pred == teacher).float().mean()), 4),
                                     top1=round(float((pred == y).float().mean()), 4)))
                best = max(rows, key=lambda r: (r["agreement"], r["lam"]))
                res[p][k] = dict(rows=rows, best=best, features=int(g[k].shape[1]), fit_inputs=int(len(tz)))
                log(f"select imagenet: blocks.{p} {k:<3} ({g[k].shape[1]} features, {len(tz)} inputs): "
                    + "  ".join(f"lam {r['lam']:g} {r['agreement']:.3f}/{r['top1']:.3f}" for r in rows)
                    + f"  -> {best['lam']:g}")
            del g, tl, tz
    else:
        classes = nette_classes(args)
        held = sets["nette_held"]
        label_of = sets["nette_label"]
        cs = mb.parse_list(args.nette_lams, float)
        fit_chunks = fit_chunks_of(args)
        held_chunks = chunks_of(args, "nette", 1)
        cls_w, cls_b = classifier(args)
        idx = torch.tensor([c["imagenet"] for c in classes])
        for p in mb.parse_list(args.positions, int):
            keys = [k for k in keys_for(p) if k.split("_")[0] in mb.parse_list(args.nette_kinds_early if p <= 12
                                                                                else args.nette_kinds_late)]
            g, _, _, ids = load_rows(args, fit_chunks, keys, keep=lambda i: i not in held)
            gh, _, zh, idh = load_rows(args, held_chunks, keys, keep=lambda i: i in held)
            y = np.array([label_of(i) for i in ids])
            yh = torch.tensor([label_of(i) for i in idh])
            final = (torch.from_numpy(zh) @ cls_w[idx].T + cls_b[idx]).argmax(1)
            res[p] = {}
            if p in MAP_POSITIONS and args.conv_widths:  # a trained conv head on the 7x7 maps, per width
                x, _ = load_maps(args, fit_chunks, p, keep=lambda i: i not in held)
                xh, _ = load_maps(args, held_chunks, p, keep=lambda i: i in held)
                rows = []
                for width in mb.parse_list(args.conv_widths, int):
                    w = train_conv_head(x, y, len(classes), width, args.conv_epochs)
                    pred = conv_head_logits(xh, w).argmax(1)
                    rows.append(dict(width=width, accuracy=round(float((pred == yh).float().mean()), 4),
                                     agreement=round(float((pred == final).float().mean()), 4)))
                best = max(rows, key=lambda r: (r["accuracy"], -r["width"]))
                res[p][f"cx_b{p}"] = dict(rows=rows, best=best, fit_inputs=int(len(y)), epochs=args.conv_epochs)
                log(f"select imagenette: blocks.{p} cx  (trained conv, {len(y)} inputs, {args.conv_epochs} epochs): "
                    + "  ".join(f"width {r['width']} {r['accuracy']:.3f}" for r in rows) + f"  -> {best['width']}")
                del x, xh
            for k in keys:
                rows = []
                for lam in cs:
                    W, b = softmax_regression(g[k], y, len(classes), lam)
                    pred = (torch.from_numpy(gh[k]) @ torch.from_numpy(W).T + torch.from_numpy(b)).argmax(1)
                    rows.append(dict(lam=lam, accuracy=round(float((pred == yh).float().mean()), 4),
                                     agreement=round(float((pred == final).float().mean()), 4)))
                best = max(rows, key=lambda r: (r["accuracy"], r["lam"]))
                res[p][k] = dict(rows=rows, best=best, features=int(g[k].shape[1]), fit_inputs=int(len(y)))
                log(f"select imagenette: blocks.{p} {k:<3} ({g[k].shape[1]} features, {len(y)} inputs): "
                    + "  ".join(f"lam {r['lam']:g} {r['accuracy']:.3f}" for r in rows) + f"  -> {best['lam']:g}"
                    + f"  (final head on the held-out: {float((final == yh).float().mean()):.3f})")
    path = os.path.join(args.cache, f"select_{args.target}.json")
    with open(path, "w") as f:
        json.dump(dict(target=args.target, results=res, wall_s=round(time.time() - t0, 1)), f, indent=1)
    log(f"select {args.target}: {time.time() - t0:.0f} s -> {path}")


# --------------------------------------------------------------------------------------------
# plan: which set of exits, on the selection set only
# --------------------------------------------------------------------------------------------

def max_prob_proxy(P, y, cost, z=2.326, max_loss=1.0):
    """The most compute a single max-prob threshold saves on (P [heads + 1, N, classes], labels y)
    with the demo's bound: loss + z * its standard error <= max_loss points (z = 2.326: 99%, the
    demo's level per family); cost[k] = the network's share paid when leaving at exit k (the heads
    evaluated on the way included). Returns (saving %, threshold, bound) or None; and the
    oracle's saving (the first correct exit, every head on the way paid)."""
    import math
    conf, pred = P.max(2), P.argmax(2)
    n, last = len(y), len(P) - 1
    right = pred[-1] == y
    best = None
    for tau in np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -7, 60)]):
        ex = np.full(n, last)
        for k in range(last - 1, -1, -1):
            ex = np.where(conf[k] >= tau, k, ex)
        ok = pred[ex, np.arange(n)] == y
        lost, won = int((right & ~ok).sum()), int((~right & ok).sum())
        d = (lost - won) / n
        bound = 100 * (d + z * math.sqrt(max(0.0, ((lost + won) / n - d * d) / n)))
        saving = 100 * (1 - cost[ex].mean())
        if bound <= max_loss and (best is None or saving > best[0]):
            best = (saving, float(tau), bound)
    ok = pred == y
    first = np.where(ok.any(0), ok.argmax(0), last)
    return best, 100 * (1 - cost[first].mean())


def cmd_plan(args):
    """Every set of --min-heads..--max-heads exits from --candidates, scored on the selection set
    (1000 classes: DISTILL; Imagenette: the held-out training images) by max_prob_proxy."""
    import itertools
    sets = image_sets(args)
    with open(os.path.join(args.cache, f"select_{args.target}.json")) as f:
        sel = json.load(f)["results"]
    imagenet = args.target == "imagenet"
    cands = parse_heads(args.candidates)
    stages = mb.arch_spec()
    cls_w, cls_b = classifier(args)
    classes_nette = nette_classes(args)
    idx = torch.tensor([c["imagenet"] for c in classes_nette])
    classes = 1000 if imagenet else 10
    keys = [f"{k}_b{p}" for p, k in cands]
    if imagenet:
        g, _, tz, _ = load_rows(args, fit_chunks_of(args), keys)
        gs, _, zs, ids = load_rows(args, chunks_of(args, "distill"), keys)
        y = np.array([sets["subset_label"](i) for i in ids])
    else:
        held = sets["nette_held"]
        label_of = sets["nette_label"]
        g, _, _, fit_ids = load_rows(args, fit_chunks_of(args), keys, keep=lambda i: i not in held)
        gs, _, zs, ids = load_rows(args, chunks_of(args, "nette", 1), keys, keep=lambda i: i in held)
        yfit = np.array([label_of(i) for i in fit_ids])
        y = np.array([label_of(i) for i in ids])
    probs = {}
    for (p, kind), key in zip(cands, keys):
        lam = sel[str(p)][key]["best"]["lam"]
        if imagenet:
            (W, b), = ridge_solutions(g[key], tz, [lam])
            lo = distilled_logits(gs[key], W, b, cls_w, cls_b)
        else:
            W, b = softmax_regression(g[key], yfit, classes, lam)
            lo = torch.from_numpy(gs[key] @ W.T + b)
        probs[(p, kind)] = F.softmax(lo, 1).numpy()
        log(f"plan {args.target}: blocks.{p} {kind}: accuracy {100 * float((probs[(p, kind)].argmax(1) == y).mean()):.1f}%")
    final = torch.from_numpy(zs) @ (cls_w if imagenet else cls_w[idx]).T + (cls_b if imagenet else cls_b[idx])
    pfinal = F.softmax(final, 1).numpy()
    total = sum(st["macs"] for st in stages) + 1280 * 49 + 1280 * classes
    cum = np.cumsum([st["macs"] for st in stages])
    out = []
    for r in range(args.min_heads, args.max_heads + 1):
        for hs in itertools.combinations(cands, r):
            if args.first_before and hs[0][0] > args.first_before:
                continue
            ents = [head_entry(stages, k, p, kind, classes, imagenet) for k, (p, kind) in enumerate(hs)]
            cost = [cum[e["after_stage"]] + sum(x["macs"] for x in ents[:k + 1]) for k, e in enumerate(ents)]
            cost = np.array(cost + [total + sum(x["macs"] for x in ents)]) / total
            best, oracle = max_prob_proxy(np.stack([probs[h] for h in hs] + [pfinal]), y, cost)
            out.append(dict(heads=",".join(f"{p}:{k}" for p, k in hs), saving=round(best[0], 2) if best else None,
                            threshold=best[1] if best else None, bound=round(best[2], 3) if best else None,
                            oracle=round(oracle, 2)))
    out.sort(key=lambda r: (-(r["saving"] if r["saving"] is not None else -1e9), -r["oracle"]))
    for r in out[:10]:
        log(f"plan {args.target}: {r['heads']:<48} max-prob saving {r['saving']}% (bound {r['bound']}), "
            f"oracle {r['oracle']}%")
    with open(os.path.join(args.cache, f"plan_{args.target}.json"), "w") as f:
        json.dump(dict(target=args.target, sets=out), f, indent=1)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

def head_entry(stages, k, p, kind, classes, shared, width=None):
    """Architecture entry of exit k after blocks.p (the C++ loader's "exit_head"): kind gap =
    global average pool -> fc; gx = avg pool to 7x7 -> copy of blocks.(p+1)'s expand conv (1x1 +
    ReLU6) -> global average pool -> fc; cx = the same with a trained conv of `width` outputs.
    shared: fc predicts the backbone's 1280 pooled features,
    then ReLU6 and the backbone's classifier; otherwise fc gives the logits. MACs as the C++
    loader counts them (pooling additions, conv and linear multiply-accumulates)."""
    st = stages[p + 1]
    c, hw = st["out_channels"], st["out_hw"]
    conv = kind in ("gx", "cx")
    if kind == "gx" and p + 2 >= len(stages) - 1:
        raise SystemExit(f"blocks.{p}: no next block to copy an expand conv from (kind gx)")
    pool = hw // 7 if conv else 1
    gh = hw // pool
    d = width if kind == "cx" else stages[p + 2]["hidden_channels"] if conv else c
    fc_out = 1280 if shared else classes
    h = dict(name=f"heads.{k}", type="exit_head", kind=kind, after_block=p, after_stage=p + 1, in_channels=c,
             in_hw=hw, pool=pool, pooled_hw=gh, conv=conv, conv_from=f"blocks.{p + 1}.expand" if kind == "gx" else None,
             conv_out=d if conv else None, fc_in=d, fc_out=fc_out, classifier="classifier" if shared else None,
             out_features=classes)
    h["adds_pool"] = c * hw * hw if pool > 1 else 0
    h["macs_conv"] = c * d * gh * gh if conv else 0
    h["adds_gap"] = d * gh * gh
    h["macs_fc"] = d * fc_out
    h["macs_classifier"] = 1280 * classes if shared else 0
    h["macs"] = h["adds_pool"] + h["macs_conv"] + h["adds_gap"] + h["macs_fc"] + h["macs_classifier"]
    return h


def weight_of(t, name):
    """Float32 weight of conv/linear `name` from the file's tensors (I8 dequantized, or F32)."""
    if t[name + ".weight"].dtype == np.int8:
        return torch.from_numpy(mb.dequantize(t, name))
    return torch.from_numpy(t[name + ".weight"].astype(np.float32))


def file_head(t, h, x):
    """An exported exit from the file's tensors on its block output x [N, C, H, W]."""
    p = h["name"]
    if h["pool"] > 1:
        x = F.avg_pool2d(x, h["pool"])
    if h["conv"]:
        x = F.relu6(F.conv2d(x, weight_of(t, p + ".conv"), torch.from_numpy(t[p + ".conv.bias"])))
    g = x.mean(dim=(2, 3))
    out = F.linear(g, weight_of(t, p + ".fc"), torch.from_numpy(t[p + ".fc.bias"]))
    if h["classifier"] is None:
        return out
    return F.linear(F.relu6(out), weight_of(t, "classifier"), torch.from_numpy(t["classifier.bias"]))


@torch.no_grad()
def file_forward(t, arch, x):
    """The whole exported network from the file's tensors and architecture only: every exit's
    logits, in head order (the final classifier last)."""
    stages, heads = arch["stages"], arch["heads"]
    at = {h["after_stage"]: h for h in heads[:-1]}
    outs = []
    x = F.relu6(F.conv2d(x, weight_of(t, "stem"), torch.from_numpy(t["stem.bias"]), stride=2, padding=1))
    for si, st in enumerate(stages[1:-1], start=1):
        n = st["name"]
        y = x
        if st["expand_ratio"] != 1:
            y = F.relu6(F.conv2d(y, weight_of(t, n + ".expand"), torch.from_numpy(t[n + ".expand.bias"])))
        y = F.relu6(F.conv2d(y, weight_of(t, n + ".depthwise"), torch.from_numpy(t[n + ".depthwise.bias"]),
                             stride=st["stride"], padding=1, groups=st["hidden_channels"]))
        y = F.conv2d(y, weight_of(t, n + ".project"), torch.from_numpy(t[n + ".project.bias"]))
        x = x + y if st["residual"] else y
        if si in at:
            outs.append(file_head(t, at[si], x))
    x = F.relu6(F.conv2d(x, weight_of(t, "last_conv"), torch.from_numpy(t["last_conv.bias"])))
    outs.append(F.linear(x.mean(dim=(2, 3)), weight_of(t, "classifier"), torch.from_numpy(t["classifier.bias"])))
    return outs


def parse_heads(spec):
    """"5:gx,8:gap,..." -> [(5, "gx"), (8, "gap"), ...]"""
    out = []
    for item in spec.split(","):
        p, k = item.split(":")
        if k not in KINDS + ["cx"]:
            raise SystemExit(f"--heads {spec}: kind '{k}' (choose from {KINDS + ['cx']})")
        out.append((int(p), k))
    if [p for p, _ in out] != sorted({p for p, _ in out}):
        raise SystemExit(f"--heads {spec}: positions must increase")
    return out


def cmd_export(args):
    from PIL import Image

    sets = image_sets(args)
    with open(os.path.join(args.cache, f"select_{args.target}.json")) as f:
        sel = json.load(f)["results"]
    chosen = parse_heads(args.heads)
    imagenet = args.target == "imagenet"
    classes_nette = nette_classes(args)
    classes = 1000 if imagenet else len(classes_nette)
    idx = torch.tensor([c["imagenet"] for c in classes_nette])
    stages = mb.arch_spec()
    cls_w, cls_b = classifier(args)
    fsd = mb.float_weights(args)
    t0 = time.time()
    # 1. fit the chosen heads once more with their chosen penalties
    fitted = []
    fit_chunks = fit_chunks_of(args)
    held = sets["nette_held"]
    label_of = sets["nette_label"]
    for p, kind in chosen:
        key = f"{kind}_b{p}"
        if kind == "cx":
            if imagenet:
                raise SystemExit("trained conv heads (cx) are Imagenette's only")
            width = sel[str(p)][key]["best"]["width"]
            x, ids = load_maps(args, fit_chunks, p, keep=lambda i: i not in held)
            cw, cb, W, b = train_conv_head(x, np.array([label_of(i) for i in ids]), classes, width, args.conv_epochs)
            fitted.append(dict(position=p, kind=kind, width=width, conv=(cw, cb), W=W, b=b, inputs=len(ids),
                               lam=None, epochs=args.conv_epochs))
            log(f"export {args.target}: blocks.{p} cx: width {width}, {len(ids)} inputs ({time.time() - t0:.0f} s)")
            del x
            continue
        lam = sel[str(p)][key]["best"]["lam"]
        if imagenet:
            g, _, tz, _ = load_rows(args, fit_chunks, [key])
            (W, b), = ridge_solutions(g[key], tz, [lam])
            n_fit = len(tz)
        else:
            g, _, _, ids = load_rows(args, fit_chunks, [key], keep=lambda i: i not in held)
            W, b = softmax_regression(g[key], np.array([label_of(i) for i in ids]), classes, lam)
            n_fit = len(ids)
        fitted.append(dict(position=p, kind=kind, lam=lam, W=W, b=b, inputs=n_fit))
        log(f"export {args.target}: blocks.{p} {kind}: lam {lam:g}, {n_fit} inputs ({time.time() - t0:.0f} s)")
        del g
    # 2. tensors: the backbone (int8, as in the int8 model), the heads
    tensors, checked = mb.backbone_tensors(args)
    if not imagenet:  # the classifier restricted to the 10 classes: its rows, same scales
        tensors["classifier.weight"] = tensors["classifier.weight"][idx.numpy()].copy()
        if tensors["classifier.weight_scale"].shape[0] != 1:
            tensors["classifier.weight_scale"] = tensors["classifier.weight_scale"][idx.numpy()].copy()
        if "classifier.weight_zero_point" in tensors and tensors["classifier.weight_zero_point"].shape[0] != 1:
            tensors["classifier.weight_zero_point"] = tensors["classifier.weight_zero_point"][idx.numpy()].copy()
        tensors["classifier.bias"] = tensors["classifier.bias"][idx.numpy()].copy()
    heads = []
    for k, f_ in enumerate(fitted):
        h = head_entry(stages, k, f_["position"], f_["kind"], classes, shared=imagenet, width=f_.get("width"))
        h["fit_lambda"] = f_["lam"]
        h["fit_inputs"] = f_["inputs"]
        if f_["kind"] == "cx":
            h["fit_epochs"] = f_["epochs"]
        heads.append(h)
        if f_["kind"] == "cx":  # the trained conv, float32
            tensors[f"heads.{k}.conv.weight"] = f_["conv"][0]
            tensors[f"heads.{k}.conv.bias"] = f_["conv"][1]
        elif h["conv"]:  # an exact copy of the next block's expand conv
            for suffix in (".weight", ".weight_scale", ".weight_zero_point", ".bias"):
                if h["conv_from"] + suffix in tensors:
                    tensors[f"heads.{k}.conv{suffix}"] = tensors[h["conv_from"] + suffix].copy()
        if imagenet:  # 1280 x D: int8 per output row
            q, sc = mb.quantize_rows(f_["W"])
            tensors[f"heads.{k}.fc.weight"] = q
            tensors[f"heads.{k}.fc.weight_scale"] = sc
        else:
            tensors[f"heads.{k}.fc.weight"] = f_["W"].astype(np.float32)
        tensors[f"heads.{k}.fc.bias"] = f_["b"].astype(np.float32)
    heads.append(dict(name="classifier", type="gap_linear", after_block=None, after_stage=len(stages) - 1,
                      in_channels=1280, in_hw=7, out_features=classes, adds_gap=1280 * 49, macs_fc=1280 * classes,
                      macs=1280 * 49 + 1280 * classes, final=True))
    mt = mb.macs_to_exit(stages, heads)
    n_params = sum(int(v.size) for n, v in tensors.items() if not n.endswith((".weight_scale", ".weight_zero_point")))
    fit_desc = (
        "each exit's fc predicts the backbone's own pooled 1280 features z (the classifier's input) of the same "
        "input by ridge regression (closed form, standardised features, unpenalised intercept); the backbone and "
        "its classifier frozen, no labels. Inputs: imagenet-val-1000 (less the images of the 1300-image subset and "
        f"of Imagenette's validation images) x {args.v1k_copies} copies and Imagenette's 9 791 training images x "
        f"{args.nette_copies} copies (copy 0 = Resize(256) + CenterCrop(224), the others RandomResizedCrop(224, "
        "scale=(0.25, 1)) + flip + ColorJitter(0.3, 0.3, 0.3)). Kind and penalty per exit chosen on the 650 DISTILL "
        "images (agreement with the backbone's top-1); fc stored as int8 per output row"
        if imagenet else
        "each exit's fc is a multinomial logistic regression (L2 penalty on standardised features, L-BFGS) with "
        f"the labels of Imagenette's training images, less {args.nette_holdout} per class of train.tar held out "
        f"(data/imagenette/calibration.txt), x {args.nette_copies} copies (copy 0 = Resize(256) + CenterCrop(224), "
        "copy 1 RandomResizedCrop(224, scale=(0.25, 1)) + flip + ColorJitter(0.3, 0.3, 0.3)); penalty and kind "
        "chosen on the held-out images; the final exit is the backbone's classifier restricted to the 10 classes "
        "(its rows, unchanged)")
    meta = {
        "format": mb.FORMAT_NAME,
        "format_version": "2",
        "architecture": json.dumps(dict(input=[3, 224, 224], classes=classes, stages=stages, heads=heads),
                                   separators=(",", ":")),
        "stages": ",".join(st["name"] for st in stages),
        "head_after_stage": ",".join(str(h["after_stage"]) for h in heads),
        "head_names": ",".join(h["name"] for h in heads),
        "stage_macs": ",".join(str(st["macs"]) for st in stages),
        "head_macs": ",".join(str(h["macs"]) for h in heads),
        "macs_to_exit": ",".join(str(v) for v in mt),
        "macs_convention": "multiply-accumulates of convolutions (depthwise: C*9*H*W) and linear layers; a head's "
                           "MACs include its pooling additions (one per input value) and, where it ends in it, the "
                           "backbone's classifier; macs_to_exit = stages up to the head's position + that head",
        "input": "RGB image -> torchvision Resize(256) (PIL bilinear, shorter side to 256) -> CenterCrop(224) -> "
                 "uint8 224x224 -> float32 x/255 -> (x - mean[c]) / std[c], layout [3, 224, 224] (CHW)",
        "preprocessing": json.dumps(dict(resize_shorter=256, interpolation="bilinear (PIL, as torchvision 0.14 "
                                         "Resize on a PIL image)", center_crop=224, scale=1 / 255, mean=mb.MEAN,
                                         std=mb.STD)),
        "mean": json.dumps(mb.MEAN),
        "std": json.dumps(mb.STD),
        "classes": ("1000 ILSVRC2012 classes, index = line of data/imagenet/synset_words.txt (sorted WNIDs)"
                    if imagenet else "the 10 Imagenette classes of data/imagenette/classes.txt; the classifier's "
                    "rows are ImageNet-1k rows " + ",".join(str(c["imagenet"]) for c in classes_nette)),
        "head_forward": "x = output of blocks.<after_block>; if pool > 1: x = avg_pool(x, pool); if conv: x = "
                        "relu6(conv1x1(x, heads.k.conv)); g = mean of x over H x W; y = heads.k.fc.weight . g + "
                        "heads.k.fc.bias; if classifier: logits = classifier.weight . relu6(y) + classifier.bias "
                        "else logits = y",
        "weight_quantization": "'<name>.weight' I8 with '<name>.weight_scale' F32 ([1] per tensor, [out] per row), "
                               "float weight = float(q) * scale; or F32; every bias F32",
        "fit": fit_desc,
        "source": "torchvision quantized MobileNetV2 (QNNPACK int8, ImageNet-1k), see "
                  "../shared/data/imagenet-weights/README.md; heads: examples/train/imagenet_exits.py",
        "parameters": str(n_params),
    }
    if not imagenet:
        meta["class_names"] = json.dumps([c["name"] for c in classes_nette])
    out_path = os.path.join(REPO_ROOT, "models", f"mobilenet_v2_{args.target}.safetensors")
    write_safetensors(out_path, tensors, meta)
    tf, mf, _ = read_safetensors(out_path)
    arch = json.loads(mf["architecture"])
    log(f"export {args.target}: {os.path.relpath(out_path, REPO_ROOT)}: {os.path.getsize(out_path):,} bytes, "
        f"{n_params:,} parameters")

    # 3. parity data: two report images through the file's forward, against torchvision + the fits
    model = mb.load_backbone(args)
    tdir = os.path.join(REPO_ROOT, "tests", "data", args.target)
    os.makedirs(tdir, exist_ok=True)
    loader = Loader(args)
    if imagenet:
        ref_ids = [f"sub:{n}" for n in sets["split"]["sample"][:2]]
        ref_label = sets["subset_label"]
    else:
        ref_ids = [i for i, _ in sets["nette_val"][:2]]
        ref_label = sets["nette_label"]
    ev_t = mb.eval_transform_pil()
    refs, worst = [], 0.0
    for ident in ref_ids:
        im = loader.pil(ident)
        stem = os.path.splitext(os.path.basename(ident.split(":")[-1]))[0]
        crop = ev_t(im)
        im.save(os.path.join(tdir, stem + ".png"), optimize=True)
        crop.save(os.path.join(tdir, stem + "_crop224.png"), optimize=True)
        for name_, a_ in ((stem + ".png", im), (stem + "_crop224.png", crop)):
            with Image.open(os.path.join(tdir, name_)) as chk:
                if not np.array_equal(np.asarray(chk.convert("RGB")), np.asarray(a_)):
                    raise SystemExit(f"{name_}: PNG round trip differs")
        x = mb.to_input([crop])
        outs = file_forward(tf, arch, x)
        # independent: torchvision's modules for the backbone, the fitted float heads on its block outputs
        lo, fe = mb.backbone_run(model, x, [f_["position"] for f_ in fitted])
        lo = lo if imagenet else lo[:, idx]
        for f_, h, o in zip(fitted, heads, outs):
            xb = fe[f_["position"]]
            if h["pool"] > 1:
                xb = F.avg_pool2d(xb, h["pool"])
            if h["conv"]:
                w_, b_ = ((torch.from_numpy(f_["conv"][0]), torch.from_numpy(f_["conv"][1])) if f_["kind"] == "cx"
                          else mb.head_conv(fsd, f_["position"]))
                xb = F.relu6(F.conv2d(xb, w_, b_))
            W_ = f_["W"]
            if imagenet:  # the fc as stored: int8 per row
                q_, sc_ = mb.quantize_rows(W_)
                W_ = q_.astype(np.float32) * sc_[:, None]
            y = F.linear(xb.mean(dim=(2, 3)), torch.from_numpy(W_), torch.from_numpy(f_["b"]))
            y = F.linear(F.relu6(y), cls_w, cls_b) if imagenet else y
            worst = max(worst, float((y - o).abs().max()))
        worst = max(worst, float((lo - outs[-1]).abs().max()))
        refs.append(dict(file=ident.split(":")[-1], label=ref_label(ident), image_png=stem + ".png",
                         crop224_png=stem + "_crop224.png", image_hw=[im.height, im.width],
                         exits=[dict(name=h["name"], after_stage=h["after_stage"], logits=[float(v) for v in o[0]],
                                     top5=[int(v) for v in o[0].topk(min(5, classes)).indices])
                                for h, o in zip(heads, outs)]))
    log(f"export {args.target}: file forward vs torchvision + the fitted heads (as stored) on the reference "
        f"images: max |logit difference| {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit(f"reference check FAILED: {worst}")
    with open(os.path.join(tdir, "reference.json"), "w") as f:
        json.dump(dict(description=f"C++ parity data for models/mobilenet_v2_{args.target}.safetensors: per image, "
                                   "the Pillow-decoded image (PNG), its Resize(256) + CenterCrop(224) crop, and every "
                                   "exit's logits from the file's tensors by examples/train/imagenet_exits.py's "
                                   "forward (float32), head order as in the file, the final exit last",
                       weights=f"models/mobilenet_v2_{args.target}.safetensors", mean=mb.MEAN, std=mb.STD,
                       tolerance_used_in_python=1e-3, images=refs), f)

    # 4. the calibration list (and, for Imagenette, the shipped validation images)
    if imagenet:
        with open(os.path.join(REPO_ROOT, "data", "imagenet", "calibration.txt"), "w") as f:
            f.writelines(f"{n} {sets['subset_label']('sub:' + n)}\n" for n in sets["split"]["distill"])
    else:
        ddir = os.path.join(REPO_ROOT, "data", "imagenette")
        vdir = os.path.join(ddir, "val")
        shutil.rmtree(vdir, ignore_errors=True)
        os.makedirs(vdir)
        wnid_index = sets["wnid_index"]
        with open(os.path.join(vdir, "labels.txt"), "w") as f:
            for ident, w in sorted(sets["nette_val"], key=lambda a: os.path.basename(a[0])):
                name = os.path.basename(ident.split(":")[2])
                with open(os.path.join(vdir, name), "wb") as g:
                    g.write(loader.blob(ident))
                f.write(f"{name} {wnid_index[w]}\n")
        with open(os.path.join(ddir, "calibration.txt"), "w") as f:
            for ident in sorted(sets["nette_held"]):
                member = ident.split(":")[2]
                f.write(f"{member} {wnid_index[member.split('/')[0]]}\n")
        shutil.copyfile(os.path.join(args.imagenette, "classes.txt"), os.path.join(ddir, "classes.txt"))

    # 5. per-exit figures from the stored features (float16), calibration and report sets
    def evaluate(prefix, keep, label_fn):
        keys = sorted({f"{f_['kind']}_b{f_['position']}" for f_ in fitted if f_["kind"] != "cx"})
        chunks = chunks_of(args, prefix, 1)
        g, lo_t, z, ids = load_rows(args, chunks, keys, keep=keep)
        y = torch.tensor([label_fn(i) for i in ids])
        final = torch.from_numpy(z) @ cls_w.T + cls_b if imagenet else torch.from_numpy(z) @ cls_w[idx].T + cls_b[idx]
        rows = []
        for f_ in fitted:
            if f_["kind"] == "cx":
                y_ = conv_head_logits(load_maps(args, chunks, f_["position"], keep)[0], (*f_["conv"], f_["W"], f_["b"]))
            else:
                gg = torch.from_numpy(g[f"{f_['kind']}_b{f_['position']}"])
                y_ = gg @ torch.from_numpy(f_["W"]).T + torch.from_numpy(f_["b"])
            lo_ = F.relu6(y_) @ cls_w.T + cls_b if imagenet else y_
            pr = lo_.argmax(1)
            rows.append(dict(accuracy=round(float((pr == y).float().mean()), 4),
                             agreement=round(float((pr == final.argmax(1)).float().mean()), 4)))
        rows.append(dict(accuracy=round(float((final.argmax(1) == y).float().mean()), 4), agreement=1.0))
        return rows, len(ids)

    if imagenet:
        cal, ncal = evaluate("distill", None, sets["subset_label"])
        rep, nrep = evaluate("eval", None, sets["subset_label"])
    else:
        cal, ncal = evaluate("nette", lambda i: i in sets["nette_held"], sets["nette_label"])
        rep, nrep = evaluate("netteval", None, sets["nette_label"])
    total = sum(st["macs"] for st in stages) + heads[-1]["macs"]
    summary = []
    for k, h in enumerate(heads):
        summary.append(dict(exit=h["name"], after=stages[h["after_stage"]]["name"], kind=h.get("kind", "classifier"),
                            head_macs=h["macs"], macs_to_exit=mt[k], share=round(mt[k] / total, 4),
                            calibration=cal[k], report=rep[k]))
        log(f"  {h['name']:<11} after {summary[-1]['after']:<10} {summary[-1]['kind']:<10} head "
            f"{h['macs'] / 1e6:5.2f} M  to exit {100 * mt[k] / total:5.1f}%  calibration ({ncal}) acc "
            f"{100 * cal[k]['accuracy']:5.1f}% agree {100 * cal[k]['agreement']:5.1f}%   report ({nrep}) acc "
            f"{100 * rep[k]['accuracy']:5.1f}% agree {100 * rep[k]['agreement']:5.1f}%")
    with open(os.path.join(args.cache, f"export_{args.target}.json"), "w") as f:
        json.dump(dict(target=args.target, heads=args.heads, exits=summary, n_calibration=ncal, n_report=nrep,
                       reference_worst=worst, wall_s=round(time.time() - t0, 1)), f, indent=1)
    log(f"export {args.target}: done in {time.time() - t0:.0f} s")


# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["features", "select", "plan", "export"])
    ap.add_argument("--target", choices=["imagenet", "imagenette"], default="imagenet")
    ap.add_argument("--imagenet", default=os.path.join(SHARED, "imagenet-val-subset"))
    ap.add_argument("--v1k", default=os.path.join(SHARED, "imagenet-val-1000"))
    ap.add_argument("--imagenette", default=os.path.join(SHARED, "imagenette"))
    ap.add_argument("--weights", default=os.path.join(SHARED, "imagenet-weights"))
    ap.add_argument("--cache", default="/var/tmp/earlyexit-imagenet/step11")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=25, help="backbone batch size")
    ap.add_argument("--aug-seed", type=int, default=11)
    ap.add_argument("--v1k-copies", type=int, default=12, help="copies of imagenet-val-1000 (copy 0 = centre crop)")
    ap.add_argument("--nette-copies", type=int, default=2, help="copies of Imagenette's training images")
    ap.add_argument("--distill-copies", type=int, default=1, help="copies of the DISTILL half (copy 0 = centre crop; the shipped heads: 1, DISTILL is the calibration set and is never fitted on)")
    ap.add_argument("--nette-seed", type=int, default=20261207)
    ap.add_argument("--nette-holdout", type=int, default=100, help="Imagenette training images held out per class")
    ap.add_argument("--time-budget-min", type=float, default=0.0)
    ap.add_argument("--only", default="", help="features: only the chunks of these sets (distill, eval, netteval, "
                    "nette, v1k), comma-separated; all by default")
    ap.add_argument("--maps", action="store_true", help="features: also the 7x7 maps of Imagenette's images")
    ap.add_argument("--positions", default=",".join(map(str, POSITIONS)))
    ap.add_argument("--lams", default="0.0003,0.001,0.003,0.01,0.03")
    ap.add_argument("--nette-lams", default="0.00003,0.0001")
    ap.add_argument("--nette-kinds-early", default="gx", help="Imagenette: feature kinds tried up to blocks.12")
    ap.add_argument("--nette-kinds-late", default="gap,g2", help="Imagenette: feature kinds tried after blocks.12 "
                    "(gx there costs 2.5%% of the network per head)")
    ap.add_argument("--conv-widths", default="", help="Imagenette: widths of trained conv heads to try as well "
                    "(needs 'features --maps'; none by default: they lost to gx, see the README)")
    ap.add_argument("--conv-epochs", type=int, default=20)
    ap.add_argument("--heads", default="", help="export: the exits, position:kind, e.g. 8:gx,10:gx,12:gap")
    ap.add_argument("--candidates", default="", help="plan: the exits to choose sets from, position:kind")
    ap.add_argument("--min-heads", type=int, default=5)
    ap.add_argument("--max-heads", type=int, default=7)
    ap.add_argument("--first-before", type=int, default=0, help="plan: the first exit after this block at the latest")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    {"features": cmd_features, "select": cmd_select, "plan": cmd_plan, "export": cmd_export}[args.command](args)


if __name__ == "__main__":
    main()
