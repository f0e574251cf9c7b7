#!/usr/bin/python3
"""Fit exit heads after every convolution of the trained CIFAR-10 network (the fine-grained variant).

The shipped 6-exit network (models/cifar10_multiexit.safetensors, batch norm folded) has a head
after every residual block. Predictive Exit's setting is an exit after every layer; here that is
after every convolution: the stem conv and both convs of each of the 6 blocks, 13 exits. The first
half of a block (conv1 + ReLU) and the second (conv2 + shortcut + add + ReLU) become two stages.

The backbone stays frozen and bit-identical, and so do the trained heads at the block outputs
(the final head among them, so the final accuracy is the one the demo reports). The 7 new heads
(after the stem and after each block's conv1) are the same kind as the trained early heads: the
map average-pooled to 4x4 cells, flattened channel-major, then a linear layer (10 classes). Each
is a multinomial logistic regression on the frozen features, fitted by full-batch L-BFGS:

* inputs: the 45 000 images of train_cifar10.py's training split (with --flip also their
  mirror images), features standardised for the fit and folded back into the layer after it;
* L2 penalty on the weights: the value of --lams with the lowest cross-entropy on a seeded
  5 000-image holdout of the training split (both views of an image on the same side), then
  refitted on all 45 000 images with it (the values are fitted from the largest down, each
  starting from the last solution, so each needs few iterations). The validation split (the 5 000 images the demo
  calibrates on) only reports accuracies; the test set is never read.

Outputs:

* models/cifar10_fine_exits.safetensors: the backbone's tensors unchanged, 13 heads, the
  architecture metadata (13 stages: stem, then blocks.<i>.conv1 / blocks.<i>.conv2) that
  examples/common/cifar_net.hpp reads, and the fit's settings and validation accuracies;
* tests/data/cifar10/fine_reference_logits.json: every head's logits, computed from the file as
  read back, for the first validation image of each class (the C++ parity test);
* in WORK (default /var/tmp/earlyexit-train/fine): the feature cache (per position, float16),
  metrics.json, val_indices.npy (so make_cifar10_val_tar.py --run WORK writes the validation tar).

    /usr/bin/python3 examples/train/fit_fine_heads.py            # ~20 min on 2 busy cores, see README

Data loading and the split come from train_cifar10.py (imported); the split's seed and size are
read from the weight file's metadata, so they are the ones the network was trained with.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_cifar10 as tc  # noqa: E402  (decoding, cache, validation split, preprocessing)
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

REPO_ROOT = tc.REPO_ROOT
EXPORT_NAME = "cifar10_fine_exits.safetensors"
FORMAT_VERSION = "3"  # 3: half-block stages (basic_block_conv1 / basic_block_conv2)
GRID = 4  # the new heads pool to GRID x GRID cells, as the trained early heads do


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# The fine-grained architecture and its reference forward
# --------------------------------------------------------------------------------------------

def fine_spec(base):
    """The 13-stage architecture from the trained network's 7-stage one: every basic block split
    into 'basic_block_conv1' (conv1 + ReLU; the block input is held for the second half) and
    'basic_block_conv2' (conv2 + shortcut of the held input + add + ReLU). Heads are filled in
    by the caller. MACs: conv1 alone, then conv2 + the 1x1 shortcut."""
    stem = dict(base["stages"][0])
    stages = [stem]
    for st in base["stages"][1:]:
        cin, cout, hw = st["in_channels"], st["out_channels"], st["out_hw"]
        common = dict(block=st["name"], in_channels=cin, out_channels=cout, stride=st["stride"],
                      shortcut=st["shortcut"], block_in_hw=st["in_hw"], out_hw=hw)
        c1 = dict(name=st["name"] + ".conv1", type="basic_block_conv1", in_hw=st["in_hw"], **common,
                  macs=tc.conv_macs(cin, cout, 3, hw))
        m2 = tc.conv_macs(cout, cout, 3, hw)
        if st["shortcut"] != "identity":
            m2 += tc.conv_macs(cin, cout, 1, hw)
        c2 = dict(name=st["name"] + ".conv2", type="basic_block_conv2", in_hw=hw, **common, macs=m2)
        if c1["macs"] + c2["macs"] != st["macs"]:
            raise SystemExit(f"{st['name']}: the halves' MACs {c1['macs']} + {c2['macs']} differ from the block's {st['macs']}")
        stages += [c1, c2]
    return dict(input=base["input"], classes=base["classes"], widths=base["widths"],
                blocks_per_group=base["blocks_per_group"], stages=stages, heads=[])


def stage_outputs(t, spec, x):
    """The map after every stage of the fine spec, in stage order (a generator), computed from the
    folded tensors t alone: conv with bias, ReLU, residual add."""
    st0 = spec["stages"][0]
    x = F.relu(F.conv2d(x, t["stem.conv.weight"], t["stem.conv.bias"], stride=st0["stride"], padding=1))
    yield x
    held = None
    for st in spec["stages"][1:]:
        p, s = st["block"], st["stride"]
        if st["type"] == "basic_block_conv1":
            held = x
            x = F.relu(F.conv2d(x, t[p + ".conv1.weight"], t[p + ".conv1.bias"], stride=s, padding=1))
        else:
            y = F.conv2d(x, t[p + ".conv2.weight"], t[p + ".conv2.bias"], stride=1, padding=1)
            sc = held if st["shortcut"] == "identity" else F.conv2d(
                held, t[p + ".shortcut.weight"], t[p + ".shortcut.bias"], stride=s, padding=0)
            x = F.relu(y + sc)
            held = None
        yield x


def head_logits(t, h, k, x):
    """Head k (its metadata h) on the map x: tc.head_features (the trained heads' pooling) + linear."""
    mw = t[f"heads.{k}.max_weight"] if h.get("pool") == "mixed" else None
    return F.linear(tc.head_features(x, h.get("grid", 1), mw), t[f"heads.{k}.weight"], t[f"heads.{k}.bias"])


def fine_forward(t, spec, x):
    """Every head's logits of the fine network (tensors t, architecture spec) on the normalized
    batch x, in head order."""
    at = {h["after_stage"]: k for k, h in enumerate(spec["heads"])}
    outs = []
    for s, y in enumerate(stage_outputs(t, spec, x)):
        if s in at:
            k = at[s]
            outs.append(head_logits(t, spec["heads"][k], k, y))
    return outs


# --------------------------------------------------------------------------------------------
# Features and fitting
# --------------------------------------------------------------------------------------------

def pooled(x):
    """What a new head's linear layer reads: the 4x4-cell averages, channel-major [B, C * 16]."""
    return F.adaptive_avg_pool2d(x, GRID).flatten(1)


def compute_features(t, spec, x_u8, mean, std, positions, path, batch=250):
    """Pooled features at the listed stage outputs for uint8 NCHW images, cached as float16 in
    path (one .npy per position, written once): {position: array [N, F]}."""
    files = {p: f"{path}.pos{p}.npy" for p in positions}
    if all(os.path.exists(f) for f in files.values()):
        out = {p: np.load(f, mmap_mode="r") for p, f in files.items()}
        if all(a.shape[0] == len(x_u8) for a in out.values()):
            return out
    t0 = time.time()
    chunks = {p: [] for p in positions}
    with torch.no_grad():
        for i in range(0, len(x_u8), batch):
            xb = tc.normalize(x_u8[i:i + batch], mean, std)
            for s, y in enumerate(stage_outputs(t, spec, xb)):
                if s in chunks:
                    chunks[s].append(pooled(y).numpy().astype(np.float16))
                if s >= max(positions):
                    break
            if (i // batch) % 20 == 0:
                log(f"  features {os.path.basename(path)}: {i + len(xb)}/{len(x_u8)} images, {time.time() - t0:.0f} s")
    out = {}
    for p in positions:
        a = np.concatenate(chunks[p])
        np.save(files[p] + ".tmp.npy", a)
        os.replace(files[p] + ".tmp.npy", files[p])
        out[p] = a
    log(f"  features {os.path.basename(path)}: {len(x_u8)} images in {time.time() - t0:.0f} s")
    return out


class design_matrix:
    """x (float32 [N, F]) for the two products a softmax fit needs, x @ W^T and x^T @ G, through
    oneDNN (mkldnn_linear): Debian's torch 1.13 does dense matrix products with the generic
    reference BLAS, ~0.5 GFLOP/s here, 10-20x slower than oneDNN on these shapes (measured:
    45 000 x 3 072 times 3 072 x 10 in 0.6 s against ~5 s). Holds x and its transpose (2 copies)."""

    def __init__(self, x):
        self.n = x.shape[0]
        self.x = x.contiguous().to_mkldnn()
        self.xt = x.t().contiguous().to_mkldnn()

    def times_wt(self, w):  # x @ w^T: [N, 10]
        return torch._C._nn.mkldnn_linear(self.x, w.contiguous().to_mkldnn(), None).to_dense()

    def t_times(self, g):  # x^T @ g: [F, 10]
        return torch._C._nn.mkldnn_linear(self.xt, g.t().contiguous().to_mkldnn(), None).to_dense()


def fit_softmax(x, y, lam, max_iter, start=None):
    """Multinomial logistic regression on standardised x (a design_matrix), labels y: minimises
    mean cross-entropy + lam / 2 * |W|^2 with full-batch L-BFGS (gradient by hand), from zero or
    from start = (W, b). Returns (W [10, F], b [10]) for the standardised inputs."""
    f = x.xt.size(0)
    w0, b0 = start if start is not None else (torch.zeros(tc.NUM_CLASSES, f), torch.zeros(tc.NUM_CLASSES))
    w, b = w0.clone(), b0.clone()
    onehot = F.one_hot(y, tc.NUM_CLASSES).float()
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-6,
                            tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        z = x.times_wt(w) + b
        logp = F.log_softmax(z, dim=1)
        loss = -(logp * onehot).sum() / x.n + 0.5 * lam * float((w * w).sum())
        g = (logp.exp() - onehot) / x.n  # d loss / d z
        w.grad = x.t_times(g).t().contiguous() + lam * w
        b.grad = g.sum(0)
        return torch.tensor(float(loss))

    with torch.no_grad():
        opt.step(closure)
    return w, b


def fit_head(feat_tr, y_tr, fit_rows, hold_rows, lams, max_iter):
    """One head: the penalty with the lowest holdout cross-entropy, then the refit on every row.
    The penalties are fitted from the largest down, each starting from the last solution (a
    regularisation path: few iterations each); the refit starts from the chosen one's.
    feat_tr: float16 [R, F] (all training rows, every view); fit_rows / hold_rows: row indices.
    Returns (weight, bias) for the raw features, the chosen penalty and the holdout table."""
    x = torch.from_numpy(np.asarray(feat_tr, dtype=np.float32))
    y = torch.from_numpy(y_tr)

    def standardise(rows):
        mu = x[rows].mean(0)
        sd = x[rows].std(0).clamp_min(1e-3)  # a dead channel (ReLU) has sd 0: keep it harmless
        return mu, sd

    table, solutions = [], {}
    mu, sd = standardise(fit_rows)
    xf, xh = design_matrix((x[fit_rows] - mu) / sd), design_matrix((x[hold_rows] - mu) / sd)
    start = None
    for lam in sorted(lams, reverse=True):
        start = solutions[lam] = fit_softmax(xf, y[fit_rows], lam, max_iter, start)
        with torch.no_grad():
            z = xh.times_wt(start[0]) + start[1]
            ce = float(F.cross_entropy(z, y[hold_rows]))
            acc = float((z.argmax(1) == y[hold_rows]).float().mean())
        table.append(dict(lam=lam, holdout_ce=round(ce, 5), holdout_acc=round(acc, 5)))
        log(f"    L2 {lam:g}: holdout cross-entropy {ce:.4f}, accuracy {acc:.4f}")
    del xf, xh
    best = min(table, key=lambda r: r["holdout_ce"])["lam"]
    # Refit on every row, standardised over them; the holdout fit is the start (same scale to ~1%).
    all_rows = torch.arange(len(y))
    mu, sd = standardise(all_rows)
    w, b = fit_softmax(design_matrix((x - mu) / sd), y, best, max_iter, solutions[best])
    wf = w / sd  # fold the standardisation into the layer: W (f - mu) / sd + b = (W / sd) f + b - (W / sd) mu
    bf = b - wf @ mu
    return wf.contiguous(), bf.contiguous(), best, table


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10"),
                    help="folder with train.tar, test.tar, labels.txt (train_cifar10.py's --data)")
    ap.add_argument("--cache", default="/var/tmp/earlyexit-train/cifar10.npz", help="decoded-data cache (train_cifar10.py's)")
    ap.add_argument("--weights", default=os.path.join(REPO_ROOT, "models", "cifar10_multiexit.safetensors"),
                    help="the trained network (folded), whose backbone and block heads are kept")
    ap.add_argument("--work", default="/var/tmp/earlyexit-train/fine", help="feature cache, metrics.json, val_indices.npy")
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "models", EXPORT_NAME), help="the weight file written")
    ap.add_argument("--ref-out", default=os.path.join(REPO_ROOT, "tests", "data", "cifar10", "fine_reference_logits.json"),
                    help="reference logits for the C++ parity test")
    ap.add_argument("--lams", default="1e-4,1e-3,1e-2,1e-1", help="L2 penalties tried (chosen on the training holdout)")
    ap.add_argument("--max-iter", type=int, default=50, help="L-BFGS iterations per fit (each penalty, and the refit)")
    ap.add_argument("--holdout", type=int, default=5000, help="training images held out to choose the penalty")
    ap.add_argument("--flip", action="store_true",
                    help="fit on the images and their mirror images (twice the rows, twice the fitting time)")
    ap.add_argument("--seed", type=int, default=1, help="the holdout draw")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    t_start = time.time()

    # The trained network, from the file alone.
    src, meta, _ = read_safetensors(args.weights)
    if meta.get("format") != tc.FORMAT_NAME:
        raise SystemExit(f"{args.weights}: format {meta.get('format')!r}, expected {tc.FORMAT_NAME!r}")
    t = {k: torch.from_numpy(v) for k, v in src.items()}
    base = json.loads(meta["architecture"])
    mean_f, std_f = json.loads(meta["mean"]), json.loads(meta["std"])
    mean, std = torch.tensor(mean_f, dtype=torch.float32), torch.tensor(std_f, dtype=torch.float32)
    vs = json.loads(meta["val_split"])
    spec = fine_spec(base)
    n_stages = len(spec["stages"])
    # Trained heads: after block b = fine stage 2 (b + 1); new heads after the stem and every conv1.
    trained_at = {2 * (h["after_stage"]): h for h in base["heads"]}
    trained_index = {2 * h["after_stage"]: k for k, h in enumerate(base["heads"])}
    new_positions = [s for s in range(n_stages) if s not in trained_at]
    log(f"{os.path.relpath(args.weights, REPO_ROOT)}: {n_stages} fine stages; trained heads after stages "
        f"{sorted(trained_at)}, new heads after {new_positions}")

    # Data and the split, exactly train_cifar10.py's.
    data = tc.load_data(args.data, args.cache)
    if list(data["class_names"]) != json.loads(meta["class_names"]):
        raise SystemExit("class names of the data differ from the weight file's")
    tr_idx, val_idx = tc.val_split(data["train_y"], vs["per_class"], vs["seed"])
    np.save(os.path.join(args.work, "val_indices.npy"), val_idx.astype(np.int64))
    x_all = tc.to_nchw(data["train_x"])
    y_all = data["train_y"].astype(np.int64)
    x_tr, y_tr = x_all[torch.from_numpy(tr_idx)], y_all[tr_idx]
    x_val, y_val = x_all[torch.from_numpy(val_idx)], y_all[val_idx]
    views = [x_tr, torch.flip(x_tr, dims=[3])] if args.flip else [x_tr]
    log(f"train {len(tr_idx)} images x {len(views)} views, validation {len(val_idx)} "
        f"(split seed {vs['seed']}, {vs['per_class']} per class)")

    # Frozen features at the new positions (cached).
    feats = [compute_features(t, spec, v, mean, std, new_positions, os.path.join(args.work, f"train_view{i}"))
             for i, v in enumerate(views)]

    # Holdout of whole images (both views on the same side), seeded.
    rng = np.random.Generator(np.random.PCG64(args.seed))
    hold_img = np.sort(rng.choice(len(tr_idx), size=args.holdout, replace=False))
    is_hold = np.zeros(len(tr_idx), dtype=bool)
    is_hold[hold_img] = True
    n = len(tr_idx)
    rows_hold = np.concatenate([np.flatnonzero(is_hold) + i * n for i in range(len(views))])
    rows_fit = np.concatenate([np.flatnonzero(~is_hold) + i * n for i in range(len(views))])
    y_rows = np.concatenate([y_tr] * len(views))
    lams = [float(v) for v in args.lams.split(",")]

    # Fit the new heads; assemble every head in stage order.
    out_t = {k: v for k, v in src.items() if not k.startswith("heads.")}
    heads, fits = [], []
    for s in range(n_stages):
        st = spec["stages"][s]
        c, hw = st["out_channels"], st["out_hw"]
        k = len(heads)
        if s in trained_at:
            h = dict(trained_at[s])
            old = trained_index[s]
            for suffix in ("weight", "bias", "max_weight"):
                if f"heads.{old}.{suffix}" in src:
                    out_t[f"heads.{k}.{suffix}"] = src[f"heads.{old}.{suffix}"]
            h.update(name=f"heads.{k}", after_stage=s, source=f"trained (heads.{old} of {os.path.basename(args.weights)})")
            h.pop("after_block", None)
            fits.append(None)
        else:
            t0 = time.time()
            x = np.concatenate([f[s] for f in feats])
            w, b, lam, table = fit_head(x, y_rows, torch.from_numpy(rows_fit), torch.from_numpy(rows_hold),
                                        lams, args.max_iter)
            del x
            out_t[f"heads.{k}.weight"] = w.numpy().astype(np.float32)
            out_t[f"heads.{k}.bias"] = b.numpy().astype(np.float32)
            features = c * GRID * GRID
            adds = c * hw * hw
            h = dict(name=f"heads.{k}", type="pool_linear", after_stage=s, in_channels=c, in_hw=hw,
                     out_features=tc.NUM_CLASSES, macs=features * tc.NUM_CLASSES + adds,
                     macs_linear=features * tc.NUM_CLASSES, adds_pool=adds, grid=GRID, pool="avg",
                     features=features, source=f"fitted (L2 {lam:g})")
            fits.append(dict(stage=st["name"], lam=lam, holdout=table, seconds=round(time.time() - t0, 1)))
            log(f"  head after {st['name']:<16} {features:>5} features: L2 {lam:g} "
                f"(holdout acc {' '.join(str(r['holdout_acc']) for r in table)}), {time.time() - t0:.0f} s")
        heads.append(h)
    spec["heads"] = heads

    # Metadata, as the trained file's, for 13 stages and heads.
    fit_info = dict(method="multinomial logistic regression on the frozen 4x4 average-pooled map, L-BFGS, "
                           "features standardised and folded back", lams=lams, max_iter=args.max_iter,
                    holdout_images=args.holdout, views="image + horizontal flip" if args.flip else "image",
                    seed=args.seed, train_images=int(len(tr_idx)))
    new_meta = {
        "format": tc.FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(spec, separators=(",", ":")),
        "stages": ",".join(st["name"] for st in spec["stages"]),
        "strides": ",".join(str(st["stride"]) if st["type"] != "basic_block_conv2" else "1" for st in spec["stages"]),
        "channels": ",".join(str(st["out_channels"]) for st in spec["stages"]),
        "head_after_stage": ",".join(str(h["after_stage"]) for h in heads),
        "stage_macs": ",".join(str(st["macs"]) for st in spec["stages"]),
        "head_macs": ",".join(str(h["macs"]) for h in heads),
        "input": meta["input"],
        "mean": meta["mean"],
        "std": meta["std"],
        "class_names": meta["class_names"],
        "layouts": meta["layouts"],
        "val_split": meta["val_split"],
        "backbone": f"{os.path.basename(args.weights)} ({meta.get('epochs_trained', '?')} epochs), frozen",
        "head_fit": json.dumps(fit_info),
        "parameters": str(sum(int(np.prod(a.shape)) for a in out_t.values())),
    }

    # Validation accuracy of every head (from the file as written and read back).
    write_safetensors(args.out, out_t, new_meta)
    back, back_meta, _ = read_safetensors(args.out)
    tb = {k: torch.from_numpy(v) for k, v in back.items()}
    spec_b = json.loads(back_meta["architecture"])
    correct = np.zeros(len(heads))
    with torch.no_grad():
        for i in range(0, len(x_val), 500):
            outs = fine_forward(tb, spec_b, tc.normalize(x_val[i:i + 500], mean, std))
            yb = torch.from_numpy(y_val[i:i + 500])
            correct += np.array([int((o.argmax(1) == yb).sum()) for o in outs])
    val_acc = [float(c) / len(y_val) for c in correct]
    cum, to_exit = 0, []
    for s, st in enumerate(spec["stages"]):
        cum += st["macs"]
        to_exit.append(cum + heads[s]["macs"])
    full = cum + heads[-1]["macs"]

    # The trained file's heads give the same logits in the fine network (same tensors, same maps).
    ref_old_path = os.path.join(REPO_ROOT, "tests", "data", "cifar10", "reference_logits.json")
    with open(ref_old_path) as f:
        ref_old = json.load(f)
    px = torch.from_numpy(np.asarray([im["pixels_hwc"] for im in ref_old["images"]], dtype=np.uint8).reshape(-1, 32, 32, 3))
    with torch.no_grad():
        outs = fine_forward(tb, spec_b, tc.normalize(tc.to_nchw(px.numpy()), mean, std))
    worst = 0.0
    for s, old in trained_index.items():
        want = torch.tensor([im["logits"][old] for im in ref_old["images"]])
        worst = max(worst, float((outs[s] - want).abs().max()))
    if not worst <= 1e-4:
        raise SystemExit(f"the trained heads' logits differ from reference_logits.json by {worst}")
    log(f"trained heads in the fine network: max |logit diff| against reference_logits.json {worst:.1e}")

    # Reference logits for the C++ parity test: the first validation image of each class.
    members = [str(m) for m in data["train_members"]]
    ref_pos = [int(np.flatnonzero(y_val == c)[0]) for c in range(tc.NUM_CLASSES)]
    with torch.no_grad():
        rl = torch.stack(fine_forward(tb, spec_b, tc.normalize(x_val[ref_pos], mean, std)))  # [heads, n, 10]
    refs = dict(
        description="Logits of every exit of the fine-grained network (an exit after every convolution) for the "
                    "first validation image of each class, computed from the weight file as read back, in float32. "
                    "Preprocessing: uint8 RGB -> float32 x/255 -> (x - mean[c]) / std[c], CHW. pixels_hwc are the "
                    "decoded uint8 pixels, row-major [32][32][3] (RGB). logits[h][c] is head h's logit for class c. "
                    "Written by examples/train/fit_fine_heads.py.",
        weights=EXPORT_NAME, mean=mean_f, std=std_f, tolerance_used_in_python=1e-4,
        images=[dict(train_index=int(val_idx[j]), member=members[int(val_idx[j])], label=int(y_val[j]),
                     pixels_hwc=data["train_x"][int(val_idx[j])].reshape(-1).tolist(),
                     logits=[[float(v) for v in rl[h, i]] for h in range(rl.shape[0])])
                for i, j in enumerate(ref_pos)])
    with open(args.ref_out, "w") as f:
        json.dump(refs, f)

    metrics = dict(weights=EXPORT_NAME, val_images=int(len(y_val)), val_acc_per_exit=val_acc,
                   exit_after_stage=[h["after_stage"] for h in heads], head_source=[h["source"] for h in heads],
                   stage_macs=[st["macs"] for st in spec["stages"]], head_macs=[h["macs"] for h in heads],
                   macs_to_exit=to_exit, macs_full_network=full, fits=fits, fit=fit_info,
                   seconds=round(time.time() - t_start, 1))
    with open(os.path.join(args.work, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"wrote {os.path.relpath(args.out, REPO_ROOT)} ({os.path.getsize(args.out):,} bytes) and "
        f"{os.path.relpath(args.ref_out, REPO_ROOT)}")
    log(f"{'exit':>4} {'after':<16} {'head':<28} {'val acc':>8} {'MACs to exit':>13} {'share':>6}")
    for k, h in enumerate(heads):
        log(f"{k:>4} {spec['stages'][h['after_stage']]['name']:<16} {h['source'][:28]:<28} {100 * val_acc[k]:>7.2f}% "
            f"{to_exit[k] / 1e6:>12.2f}M {100 * to_exit[k] / full:>5.1f}%")
    log(f"done in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
