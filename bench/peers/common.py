"""Library-free parts of the peer benchmarks (torchdiffeq, torchdyn, diffrax).

Everything a workload needs that is not solver code lives here, in numpy, so
that the three peer scripts (and, through --dump, the C side) start from the
SAME data and the SAME initial parameters:

  * workload constants (shapes, tolerances, learning rates) from
    shared/WORKLOADS.md,
  * data recipes and initial parameters drawn from fixed seeds,
  * the timing loop (warm-up, then the median of timed iterations),
  * the BENCH output line.

Data / parameter recipe (the contract the C side matches; or load the dump):
  Parameter layouts are PyTorch's: Linear weight (out, in), bias (out,),
  y = x W^T + b; Conv2d weight (out, in, kh, kw) (OIHW), NCHW activations.
  Unless said otherwise a layer is initialised like PyTorch's default
  (kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), +1/sqrt(fan_in)) for the
  weight, same bound for the bias), drawn from numpy's PCG64 generator
  np.random.default_rng(SEEDS[w]) in layer order, weight before bias, and the
  data drawn after all the parameters from the same generator.

  W1 spiral  seed 1. Weights N(0, 0.1^2), biases 0 (as torchdiffeq's
             ode_demo). True trajectory: dy/dt = (y**3) @ A,
             A = [[-0.1, 2.0], [-2.0, -0.1]], y0 = (2, 0), solved in float64
             by scipy solve_ivp(DOP853, rtol=1e-12, atol=1e-12) at
             t = linspace(0, 25, 1000) (float64), then cast to float32.
             Fixed batch: s_i = 49*i, i = 0..19 (batch_size 20), batch_t =
             t[0:10], batch_y0 = true_y[s] (20, 2), batch_y[j] = true_y[s + j]
             (10, 20, 2). Loss: mean |pred - batch_y| over all 10x20x2
             entries (pred[0] == batch_y0, as in ode_demo).
  W2 wide    seed 2. Linear(2,2000), Linear(2000,2); z0 ~ N(0,1) (256, 2).
  W3 dense   seed 3. Linear(64,256), Linear(256,256), Linear(256,64);
             z0 ~ N(0,1) (512, 64).
  W4 cnf2d   seed 4. Linear(2,64), Linear(64,64), Linear(64,64), Linear(64,2).
             x = sklearn.datasets.make_moons(512, noise=0.05, random_state=0)[0]
             (float64), standardised per column: (x - mean) / std (std with
             ddof=0), then cast to float32. ODE state is ONE (512, 3) tensor
             s = [z, a], s(0) = [x, 0], dz/dt = f(z), da/dt = tr(df/dz) (exact,
             two VJPs). loss = mean over the batch of
             0.5*|z(1)|^2 + log(2*pi) - a(1)   (= -log p(x), standard normal
             base, D = 2). The error norm covers all 3 columns.
  W5 odenet  seed 5. conv1 = Conv2d(65, 64, 3, padding 1) on cat([t, x]) (time
             channel FIRST), conv2 the same, GroupNorm(32, 64) x3 with
             weight 1, bias 0, eps 1e-5; head Linear(64, 10) on the global
             average pool of z(1). Draw order: conv1 W, b, conv2 W, b,
             head W, b, then x ~ N(0,1) (128, 64, 7, 7). labels[i] = i % 10.
             Loss: mean cross-entropy.

`python3 bench/peers/common.py --dump DIR` writes every array as raw
little-endian float32 (labels as int32) to DIR/<W>/<name>.bin with
DIR/<W>/manifest.txt ("name dtype dim0 dim1 ..."), for the C side to load.
"""

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

SEEDS = {"W1": 1, "W2": 2, "W3": 3, "W4": 4, "W5": 5}
ALL_WORKLOADS = ["W1", "W2", "W3", "W4", "W5"]
PEER_MODES = ["direct", "adjoint"]

# Solver / optimiser settings, straight from WORKLOADS.md.
CFG = {
    "W1": dict(method="dopri5", rtol=1e-7, atol=1e-9, opt="rmsprop", lr=1e-3),
    "W2": dict(method="dopri5", rtol=1e-3, atol=1e-4, opt="adam", lr=1e-3,
               t0=0.0, t1=1.0),
    "W3": dict(method="rk4", step=0.1, opt="adam", lr=1e-3, t0=0.0, t1=1.0),
    "W4": dict(method="dopri5", rtol=1e-5, atol=1e-5, opt="adam", lr=1e-3,
               t0=0.0, t1=1.0),
    "W5": dict(method="dopri5", rtol=1e-3, atol=1e-3, opt="sgd", lr=0.1,
               momentum=0.9, t0=0.0, t1=1.0),
}

W1_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
W1_BATCH, W1_BATCH_TIME, W1_DATA = 20, 10, 1000


def _linear(rng, fan_in, fan_out):
    bound = 1.0 / math.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_out, fan_in))
    b = rng.uniform(-bound, bound, size=(fan_out,))
    return w.astype(np.float32), b.astype(np.float32)


def _conv(rng, cin, cout, k):
    bound = 1.0 / math.sqrt(cin * k * k)
    w = rng.uniform(-bound, bound, size=(cout, cin, k, k))
    b = rng.uniform(-bound, bound, size=(cout,))
    return w.astype(np.float32), b.astype(np.float32)


def _mlp(rng, sizes):
    """Returns [(W, b), ...] for Linear(sizes[i], sizes[i+1])."""
    return [_linear(rng, sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]


def w1_truth():
    from scipy.integrate import solve_ivp
    t = np.linspace(0.0, 25.0, W1_DATA)
    sol = solve_ivp(lambda _t, y: (y ** 3) @ W1_A, (0.0, 25.0), np.array([2.0, 0.0]),
                    method="DOP853", t_eval=t, rtol=1e-12, atol=1e-12)
    return t, sol.y.T


def make_workload(w):
    """Returns dict(params=[(name, array)], data={name: array}) for workload w."""
    rng = np.random.default_rng(SEEDS[w])
    params, data = [], {}
    if w == "W1":
        for i, (fi, fo) in enumerate([(2, 50), (50, 2)]):
            params.append((f"l{i}.w", (0.1 * rng.standard_normal((fo, fi))).astype(np.float32)))
            params.append((f"l{i}.b", np.zeros(fo, np.float32)))
        t, ytrue = w1_truth()
        s = 49 * np.arange(W1_BATCH)
        data["t"] = t[:W1_BATCH_TIME].astype(np.float32)
        data["y0"] = ytrue[s].astype(np.float32)
        data["y"] = np.stack([ytrue[s + j] for j in range(W1_BATCH_TIME)]).astype(np.float32)
    elif w in ("W2", "W3", "W4"):
        sizes = {"W2": [2, 2000, 2], "W3": [64, 256, 256, 64], "W4": [2, 64, 64, 64, 2]}[w]
        for i, (wt, b) in enumerate(_mlp(rng, sizes)):
            params += [(f"l{i}.w", wt), (f"l{i}.b", b)]
        if w == "W2":
            data["z0"] = rng.standard_normal((256, 2)).astype(np.float32)
        elif w == "W3":
            data["z0"] = rng.standard_normal((512, 64)).astype(np.float32)
        else:
            from sklearn.datasets import make_moons
            x = make_moons(512, noise=0.05, random_state=0)[0]
            x = (x - x.mean(0)) / x.std(0)
            data["x"] = x.astype(np.float32)
            data["s0"] = np.concatenate([data["x"], np.zeros((512, 1), np.float32)], 1)
    elif w == "W5":
        for name in ("conv1", "conv2"):
            cw, cb = _conv(rng, 65, 64, 3)
            params += [(f"{name}.w", cw), (f"{name}.b", cb)]
        for name in ("gn1", "gn2", "gn3"):
            params += [(f"{name}.w", np.ones(64, np.float32)), (f"{name}.b", np.zeros(64, np.float32))]
        hw, hb = _linear(rng, 64, 10)
        params += [("head.w", hw), ("head.b", hb)]
        data["x"] = rng.standard_normal((128, 64, 7, 7)).astype(np.float32)
        data["labels"] = (np.arange(128) % 10).astype(np.int32)
    else:
        raise ValueError(w)
    return dict(params=params, data=data)


def w3_flops_per_eval():
    """2mnk summed over the three matmuls of one W3 field evaluation."""
    b = 512
    return 2 * b * (64 * 256 + 256 * 256 + 256 * 64)


# ---------------------------------------------------------------- CLI / timing

def parse_args(lib, argv=None, extra=None):
    p = argparse.ArgumentParser(description=f"{lib} peer benchmark (see bench/peers/README.md)")
    if extra is not None:
        extra(p)
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--modes", default=",".join(PEER_MODES))
    p.add_argument("--iters", type=int, default=10, help="timed iterations (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--quick", action="store_true", help="iters=3, warmup=1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-reset", action="store_true",
                   help="keep training across iterations instead of restoring the initial parameters "
                        "before every iteration")
    a = p.parse_args(argv)
    if a.quick:
        a.iters, a.warmup = 3, 1
    a.workloads = [w.strip().upper() for w in a.workloads.split(",") if w.strip()]
    a.modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for w in a.workloads:
        if w not in ALL_WORKLOADS:
            p.error(f"unknown workload {w}")
    return a


def bench_line(lib, w, mode, ms, nfe_f, nfe_b, loss, iters, note=None):
    ms_s = "nan" if ms is None or (isinstance(ms, float) and math.isnan(ms)) else f"{ms:.3f}"
    loss_s = "nan" if loss is None else f"{loss:.7g}"
    line = (f"BENCH lib={lib} workload={w} mode={mode} ms={ms_s} nfe_f={int(nfe_f)} "
            f"nfe_b={int(nfe_b)} loss={loss_s} iters={iters}")
    if note:
        line += " note=" + note.replace(" ", "_")
    print(line, flush=True)


def time_iterations(step, warmup, iters, reset=None):
    """Runs step() warmup+iters times. step() performs one full training
    iteration, blocks until it is done, and returns (loss, nfe_f, nfe_b) or
    (loss, nfe_f, nfe_b, info_text). Returns (median ms over the timed
    iterations, first iteration's result, last iteration's result, timed ms,
    ms of the first call)."""
    first = last = None
    times = []
    first_ms = None
    for i in range(warmup + iters):
        if reset is not None:
            reset()  # untimed
        t0 = time.perf_counter()
        r = step()
        dt = (time.perf_counter() - t0) * 1e3
        if i == 0:
            first, first_ms = r, dt
        last = r
        if i >= warmup:
            times.append(dt)
    return statistics.median(times), first, last, times, first_ms


def report(lib, w, mode, args, step, reset=None, nfe=None, info=""):
    """Time `step` and print the BENCH line plus a readable INFO line.
    Unless --no-reset, reset() restores the initial parameters before every
    iteration (outside the timed region), so every iteration does the same
    work as the first. loss / nfe_f / nfe_b on the BENCH line are those of the
    FIRST iteration (initial parameters, comparable across libraries);
    `nfe` = (f, b) overrides the NFE taken from step()'s first result."""
    ms, first, last, times, first_ms = time_iterations(
        step, args.warmup, args.iters, None if args.no_reset else reset)
    loss = first[0]
    nf, nb = nfe if nfe is not None else (first[1], first[2])
    bench_line(lib, w, mode, ms, nf, nb, loss, args.iters)
    extra = ""
    if w == "W3" and nf > 0:
        gflops = 3 * w3_flops_per_eval() * nf / (ms * 1e-3) / 1e9
        extra += f" gflops={gflops:.2f}"
    last_txt = last[3] if len(last) > 3 else f"last_nfe_f={last[1]} last_nfe_b={last[2]}"
    print(f"INFO lib={lib} workload={w} mode={mode} first_call_ms={first_ms:.1f} "
          f"times_ms=[{', '.join(f'{t:.1f}' for t in times)}] last_loss={last[0]:.7g} "
          f"{last_txt}{extra}{info}", flush=True)


def unsupported(lib, w, mode, note):
    bench_line(lib, w, mode, float("nan"), -1, -1, None, 0, note=note)


def dump(outdir):
    for w in ALL_WORKLOADS:
        d = os.path.join(outdir, w)
        os.makedirs(d, exist_ok=True)
        wl = make_workload(w)
        with open(os.path.join(d, "manifest.txt"), "w") as man:
            for name, arr in list(wl["params"]) + list(wl["data"].items()):
                arr = np.ascontiguousarray(arr)
                dt = "int32" if arr.dtype.kind in "iu" else "float32"
                arr = arr.astype("<i4" if dt == "int32" else "<f4")
                arr.tofile(os.path.join(d, name + ".bin"))
                man.write(f"{name} {dt} {' '.join(map(str, arr.shape))}\n")
        print(f"wrote {d}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="dump the peer benchmarks' data and initial parameters")
    ap.add_argument("--dump", required=True, metavar="DIR")
    dump(ap.parse_args().dump)
    sys.exit(0)
