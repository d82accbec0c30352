"""Time the course CNN's training epoch with Chainer's own CPU convolution and with the harness's.

    .venv/bin/python bench/bench_conv.py                        # 10k images, 1 epoch, 2 rounds each
    .venv/bin/python bench/bench_conv.py --torch /tmp/torchvenv/bin/python   # and PyTorch's time
    .venv/bin/python bench/bench_conv.py --ops                  # per-operation times, for tuning
    .venv/bin/python bench/bench_conv.py --others               # DCGAN and conv-autoencoder steps

The model is ``baselines/course-cnn/classifier.py`` (four 3x3 convolutions of 32 channels, padding
1, max-pooling after the second, linear to 10), trained as the harness's default classify loop
does: Adam(alpha=0.001), batches of 100, softmax cross-entropy, seeded shuffling. Both runs start
from the same weights and see the same batches, in one process, alternating (stock, fast, stock,
fast, ...) so that load from other processes on the machine hits both alike. The speed-up is the
median over rounds of each round's stock/fast ratio (runs made back to back); the ratio of the
best epochs is printed beside it.

``--torch PYTHON`` also times the same network and loop in PyTorch (same data, same batches, its
own initial weights) with that interpreter (a separate venv: PyTorch is not a harness dependency),
in a subprocess, once per round, and prints fast/PyTorch.

Prints ``speed-up over Chainer's own CPU convolution: <X>x``; copy the output to
``bench/results/conv-<date>.txt``. The script re-executes itself with the memory settings (glibc malloc, NumPy's hugepage advice) every
ingestion process has in the sandbox (``harness.sandbox.mounts.MEMORY_SETTINGS``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.chainer_env import chainer  # noqa: E402
from harness.ingestion import fast_adam, fast_conv, fast_pool  # noqa: E402

F = chainer.functions


def course_cnn_class():
    spec = importlib.util.spec_from_file_location("course_cnn", ROOT / "baselines" / "course-cnn" / "classifier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CourseCNN


def load_subset(n: int):
    from harness import data

    m = data.load()
    x = m.train_x[:n].reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0)
    t = m.train_y[:n].astype(np.int32)
    return x, t


def batch_order(n: int, batch_size: int, seed: int):
    perm = np.random.default_rng(seed).permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def train_epoch(model, x, t, order) -> tuple[float, float]:
    """One epoch of the default classify loop; (seconds, mean loss)."""
    opt = chainer.optimizers.Adam(alpha=0.001)
    opt.setup(model)
    loss_sum = 0.0
    start = time.perf_counter()
    for idx in order:
        loss = F.softmax_cross_entropy(model(x[idx]), t[idx])
        model.cleargrads()
        loss.backward()
        opt.update()
        loss_sum += float(loss.array) * len(idx)
    return time.perf_counter() - start, loss_sum / len(x)


TORCH_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
torch.manual_seed(0)
x = torch.from_numpy(np.load(sys.argv[1])); t = torch.from_numpy(np.load(sys.argv[2]).astype(np.int64))
order = [torch.from_numpy(o) for o in np.load(sys.argv[3], allow_pickle=False)]
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                      nn.ReLU(), nn.Flatten(), nn.Linear(32 * 14 * 14, 10))
opt = torch.optim.Adam(model.parameters(), lr=0.001)
start = time.perf_counter(); loss_sum = 0.0
for idx in order:
    loss = nn.functional.cross_entropy(model(x[idx]), t[idx])
    opt.zero_grad(); loss.backward(); opt.step()
    loss_sum += float(loss) * len(idx)
print(json.dumps({"seconds": time.perf_counter() - start, "loss": loss_sum / len(x),
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
"""


def torch_epoch(python: str, workdir: Path) -> dict:
    out = subprocess.run([python, "-c", TORCH_SCRIPT, str(workdir / "x.npy"), str(workdir / "t.npy"),
                          str(workdir / "order.npy")], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


ALL = "harness-all"  # the fast convolution, max pooling and Adam, as the ingestion installs them


def bench_epochs(args) -> None:
    x, t = load_subset(args.n)
    order = batch_order(len(x), args.batch_size, seed=0)
    CourseCNN = course_cnn_class()
    np.random.seed(0)
    init = CourseCNN()
    print(f"course CNN (baselines/course-cnn), {len(x)} MNIST images, batch {args.batch_size}, Adam, 1 epoch per run")
    print(f"python {platform.python_version()}, numpy {np.__version__}, chainer {chainer.__version__}, "
          f"{os.cpu_count()} CPUs, fast_conv CHUNK_BYTES={fast_conv.CHUNK_BYTES}, "
          f"STRIDE1_DECONV_AS_CONV={fast_conv.STRIDE1_DECONV_AS_CONV}")
    tmp = None
    if args.torch:
        tmp = Path(tempfile.mkdtemp(prefix="bench_conv_"))
        np.save(tmp / "x.npy", x)
        np.save(tmp / "t.npy", t)
        np.save(tmp / "order.npy", np.stack(order) if len({len(o) for o in order}) == 1 else np.array(order[:-1]))
    times = {"chainer": [], "harness-fast-conv": [], ALL: [], "pytorch": []}
    losses = {}
    for r in range(args.rounds):
        for name in ("chainer", "harness-fast-conv", ALL):
            model = init.copy(mode="copy")
            with contextlib.ExitStack() as stack:
                stack.enter_context(fast_conv.enabled(name != "chainer"))
                stack.enter_context(fast_pool.enabled(name == ALL))
                stack.enter_context(fast_adam.enabled(name == ALL))
                fast_conv.reset_stats()
                seconds, loss = train_epoch(model, x, t, order)
                counts = fast_conv.stats()
            times[name].append(seconds)
            losses[name] = loss
            extra = f", fast/fallback calls {counts['fast']}/{counts['fallback']}" if name != "chainer" else ""
            print(f"round {r + 1}: {name:18s} {seconds:7.2f} s  mean loss {loss:.6f}{extra}", flush=True)
        if args.torch:
            res = torch_epoch(args.torch, tmp)
            times["pytorch"].append(res["seconds"])
            losses["pytorch"] = res["loss"]
            print(f"round {r + 1}: {'pytorch ' + res['torch']:18s} {res['seconds']:7.2f} s  mean loss "
                  f"{res['loss']:.6f} ({res['threads']} threads, its own initial weights)", flush=True)
        ratio = times["chainer"][-1] / times["harness-fast-conv"][-1]
        print(f"round {r + 1}: speed-up {ratio:.2f}x (with pooling and Adam: {times['chainer'][-1] / times[ALL][-1]:.2f}x)"
              + (f", {ALL}/PyTorch {times[ALL][-1] / times['pytorch'][-1]:.2f}x" if args.torch else ""),
              flush=True)
    stock, fast = times["chainer"], times["harness-fast-conv"]
    diff = abs(losses["harness-fast-conv"] - losses["chainer"])
    print(f"mean loss difference fast vs stock after one epoch: {diff:.2e} (relative {diff / losses['chainer']:.2e})")
    print("epoch seconds (best of rounds): " + ", ".join(f"{k} {min(v):.2f}" for k, v in times.items() if v))
    # Other processes share the 2 cores: each round's ratio compares runs made back to back, and
    # the median of those is what is reported (the ratio of the best epochs is printed beside it).
    paired = [s / f for s, f in zip(stock, fast)]
    print(f"speed-up per round: {', '.join(f'{v:.2f}x' for v in paired)}; of the best epochs: {min(stock) / min(fast):.2f}x")
    print(f"speed-up over Chainer's own CPU convolution: {float(np.median(paired)):.2f}x")
    every = times[ALL]
    print(f"speed-up of everything the ingestion installs (convolution, max pooling, Adam) over stock Chainer: "
          f"{float(np.median([s / f for s, f in zip(stock, every)])):.2f}x; loss difference "
          f"{abs(losses[ALL] - losses['harness-fast-conv']):.2e} from the fast convolution alone (pooling and Adam: same bits)")
    if args.torch:
        torch_t = times["pytorch"]
        paired_t = [f / t for f, t in zip(every, torch_t)]
        print(f"{ALL} / PyTorch epoch time: {float(np.median(paired_t)):.2f}x "
              f"(per round {', '.join(f'{v:.2f}x' for v in paired_t)}; best epochs {min(every) / min(torch_t):.2f}x; "
              f"fast convolution alone / PyTorch {float(np.median([f / t for f, t in zip(fast, torch_t)])):.2f}x; "
              f"Chainer's own / PyTorch: {float(np.median([s / t for s, t in zip(stock, torch_t)])):.2f}x)")


def bench_ops(args) -> None:
    """Forward, gW and gx of each course-CNN convolution, stock vs fast, alternating call by call."""
    rng = np.random.default_rng(0)
    C2D = chainer.functions.connection.convolution_2d
    shapes = [(100, 1, 32, 28), (100, 32, 32, 28), (100, 32, 32, 14)]
    print(f"per-operation milliseconds, course CNN layers, float32, batch 100: best of {args.steps} "
          "and the median of call-by-call stock/fast ratios")
    for chunk in args.chunks:
        fast_conv.CHUNK_BYTES = chunk
        total = {False: 0.0, True: 0.0}
        for n, c, o, h in shapes:
            x = rng.random((n, c, h, h)).astype(np.float32)
            W = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
            b = rng.standard_normal(o).astype(np.float32)
            gy = rng.standard_normal((n, o, h, h)).astype(np.float32)
            f = C2D.Convolution2DFunction(1, 1)
            ops = {"fwd": lambda: F.convolution_2d(x, W, b, pad=1),
                   "gW": lambda: C2D.Convolution2DGradW(f, W.shape, W.dtype, None).apply((x, gy)),
                   "gx": lambda: F.deconvolution_2d(gy, W, pad=1, outsize=(h, h))}
            if c == 1:
                del ops["gx"]  # the first layer's input needs no gradient
            row = []
            for name, op in ops.items():
                times = {False: [], True: []}
                for _ in range(args.steps):
                    for on in (False, True):
                        with fast_conv.enabled(on):
                            start = time.perf_counter()
                            op()
                            times[on].append(time.perf_counter() - start)
                ratio = float(np.median(np.array(times[False]) / np.array(times[True])))
                for on in (False, True):
                    total[on] += min(times[on]) * 1e3
                row.append(f"{name} {min(times[False]) * 1e3:6.1f} -> {min(times[True]) * 1e3:5.1f} ({ratio:.2f}x)")
            print(f"  chunk {chunk / 2**20:g} MiB {(n, c, o, h)}: " + "  ".join(row), flush=True)
        print(f"  chunk {chunk / 2**20:g} MiB: one training step's convolutions (best times): "
              f"chainer {total[False]:.1f} ms, fast {total[True]:.1f} ms ({total[False] / total[True]:.2f}x)")


def load_baseline(folder: str, file: str, name: str):
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", ROOT / "baselines" / folder / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def bench_others(args) -> None:
    """One training step (forward, backward, Adam) of the other convolutional baselines, stock vs fast:
    strided convolutions and stride-2 deconvolutions (the col2im path)."""
    x, _ = load_subset(args.batch_size)
    Gen = load_baseline("course-dcgan", "gan.py", "Generator")
    Dis = load_baseline("course-dcgan", "gan.py", "Discriminator")
    AE = load_baseline("conv-autoencoder", "autoencoder.py", "ConvAutoEncoder")
    np.random.seed(0)
    z = np.random.uniform(-1, 1, (len(x), 100)).astype(np.float32)
    cases = {
        "conv-autoencoder": (AE(), lambda m: F.mean_squared_error(m(x), x)),
        "course-dcgan generator": (Gen(), lambda m: F.sum(m(z)) / len(z)),
        "course-dcgan discriminator": (Dis(), lambda m: F.sum(F.softplus(-m(x))) / len(x)),
    }
    print(f"one training step, batch {len(x)}, milliseconds: best of {args.steps} alternating, and the "
          "median of step-by-step stock/fast ratios")
    for name, (init, loss_of) in cases.items():
        times = {False: [], True: []}
        for _ in range(args.steps):
            for on in (False, True):
                model = init.copy(mode="copy")
                opt = chainer.optimizers.Adam()
                opt.setup(model)
                with fast_conv.enabled(on):
                    start = time.perf_counter()
                    loss = loss_of(model)
                    model.cleargrads()
                    loss.backward()
                    opt.update()
                    times[on].append(time.perf_counter() - start)
        ratio = float(np.median(np.array(times[False]) / np.array(times[True])))
        print(f"  {name:28s} chainer {min(times[False]) * 1e3:7.1f}  harness-fast-conv {min(times[True]) * 1e3:7.1f}  "
              f"({ratio:.2f}x)", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="training images (default 10000)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="alternating stock/fast epochs (default 2)")
    parser.add_argument("--torch", metavar="PYTHON", help="an interpreter with torch installed, to time PyTorch too")
    parser.add_argument("--ops", action="store_true", help="time single operations instead (tuning)")
    parser.add_argument("--others", action="store_true",
                        help="time a training step of the DCGAN and conv-autoencoder baselines instead")
    parser.add_argument("--steps", type=int, default=5, help="with --ops/--others: repetitions per version")
    parser.add_argument("--chunks", type=lambda s: [int(float(v) * 2**20) for v in s.split(",")],
                        default=[fast_conv.CHUNK_BYTES],
                        help="with --ops: CHUNK_BYTES values to try, in MiB, comma-separated")
    args = parser.parse_args(argv)
    if args.ops:
        bench_ops(args)
    elif args.others:
        bench_others(args)
    else:
        bench_epochs(args)


if __name__ == "__main__":
    # As in the sandbox (every ingestion process runs with these memory settings (glibc malloc, NumPy's hugepage advice)): without them,
    # stock Chainer's large fresh im2col buffers page-fault on every call and the ratios overstate
    # the speed-up. Set before Python starts, so re-run this script with them.
    from harness.sandbox.mounts import MEMORY_SETTINGS

    if any(os.environ.get(k) != v for k, v in MEMORY_SETTINGS.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MEMORY_SETTINGS})
    main()
