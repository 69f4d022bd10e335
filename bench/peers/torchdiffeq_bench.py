#!/usr/bin/env python3
"""torchdiffeq peer benchmark for W1..W5 (shared/WORKLOADS.md).

Modes: direct  = torchdiffeq.odeint (backprop through the solver internals)
       adjoint = torchdiffeq.odeint_adjoint (backsolve adjoint; library defaults:
                 adjoint_rtol/atol = rtol/atol, same method, default adjoint norm)
dopri5 uses torchdiffeq's default initial step selection (Hairer's heuristic,
one extra field evaluation). W3: method='rk4', options step_size=0.1; note
torchdiffeq's 'rk4' is the 3/8-rule variant (rk4_alt_step_func), 4 evaluations
per step like the classic tableau.

Prints one `BENCH lib=torchdiffeq ...` line per (workload, mode); see README.md.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep bench/peers/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CFG, parse_args, report, unsupported  # noqa: E402

LIB = "torchdiffeq"


def make_solve(w, mode):
    import torchdiffeq
    c = CFG[w]
    fn = torchdiffeq.odeint if mode == "direct" else torchdiffeq.odeint_adjoint
    if c["method"] == "rk4":
        kw = dict(method="rk4", options=dict(step_size=c["step"]))
    else:
        kw = dict(method="dopri5", rtol=c["rtol"], atol=c["atol"])
    return lambda field, y0, t: fn(field, y0, t, **kw)


def main():
    args = parse_args(LIB)
    import torch
    import torchdiffeq
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from torch_common import Problem
    print(f"# {LIB} {torchdiffeq.__version__} torch {torch.__version__} threads={torch.get_num_threads()} "
          f"iters={args.iters} warmup={args.warmup}", flush=True)
    for w in args.workloads:
        for mode in args.modes:
            if mode not in ("direct", "adjoint"):
                unsupported(LIB, w, mode, f"mode {mode} not available in {LIB}")
                continue
            prob = Problem(w)
            report(LIB, w, mode, args, prob.make_step(make_solve(w, mode)), reset=prob.reset)


if __name__ == "__main__":
    main()
