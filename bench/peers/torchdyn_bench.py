#!/usr/bin/env python3
"""torchdyn peer benchmark for W1..W5 (shared/WORKLOADS.md).

Modes: direct  = NeuralODE(sensitivity='autograd')  (backprop through the solver)
       adjoint = NeuralODE(sensitivity='adjoint')   (backsolve adjoint)
The adjoint tolerances are set equal to the forward ones (torchdyn's own
defaults are 1e-4/1e-4); the adjoint's step control uses torchdyn's hard-coded
seminorm over (x, lambda). dopri5 uses torchdyn's Hairer initial-step
heuristic (one extra evaluation). torchdyn steps exactly onto every t_span
point (no dense interpolation by default), which matters for W1's 10 output
times. W3: solver 'rk4' (classic tableau) with t_span = linspace(0, 1, 11),
i.e. step 0.1.

Prints one `BENCH lib=torchdyn ...` line per (workload, mode); see README.md.
"""
import os
import sys
import warnings

sys.dont_write_bytecode = True  # keep bench/peers/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CFG, parse_args, report, unsupported  # noqa: E402

LIB = "torchdyn"


def make_solve(w, mode, field):
    import torch
    from torchdyn.core import NeuralODE
    c = CFG[w]
    sens = "autograd" if mode == "direct" else "adjoint"
    if c["method"] == "rk4":
        n = int(round((c["t1"] - c["t0"]) / c["step"]))
        tspan = torch.linspace(c["t0"], c["t1"], n + 1)
        node = NeuralODE(field, solver="rk4", sensitivity=sens, return_t_eval=False)
    else:
        tspan = None
        node = NeuralODE(field, solver="dopri5", sensitivity=sens, rtol=c["rtol"], atol=c["atol"],
                         rtol_adjoint=c["rtol"], atol_adjoint=c["atol"], return_t_eval=False)

    def solve(_field, y0, t):
        return node(y0, t if tspan is None else tspan)

    return solve


def main():
    args = parse_args(LIB)
    import torch
    warnings.filterwarnings("ignore")
    import torchdyn
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from torch_common import Problem
    ver = getattr(torchdyn, "__version__", None)
    if ver is None:
        from importlib.metadata import version
        ver = version("torchdyn")
    print(f"# {LIB} {ver} torch {torch.__version__} threads={torch.get_num_threads()} "
          f"iters={args.iters} warmup={args.warmup}", flush=True)
    for w in args.workloads:
        for mode in args.modes:
            if mode not in ("direct", "adjoint"):
                unsupported(LIB, w, mode, f"mode {mode} not available in {LIB}")
                continue
            prob = Problem(w)
            report(LIB, w, mode, args, prob.make_step(make_solve(w, mode, prob.field)), reset=prob.reset)


if __name__ == "__main__":
    main()
