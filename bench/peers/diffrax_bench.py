#!/usr/bin/env python3
"""diffrax peer benchmark for W1..W5 (shared/WORKLOADS.md), JAX on CPU.

One training iteration = one call of a jax.jit-compiled function doing
diffeqsolve + loss + jax.grad + optax update. The first call (compilation) is
always a warm-up iteration (warm-up is forced to >= 1).

Modes: direct  = diffrax.RecursiveCheckpointAdjoint() (default; discretise-then-
                 optimise with online binomial checkpointing, max_steps=4096)
       adjoint = diffrax.BacksolveAdjoint() (same solver and controller for the
                 backward solve, diffrax's default full RMS norm over the
                 augmented state)
dopri5 = diffrax.Dopri5 + PIDController(rtol, atol) (plain I controller, the
default coefficients), dt0=None. NB: diffrax 0.7.2 wraps the term in a
WrapTerm, so PIDController's Hairer heuristic takes its non-ODETerm branch and
the first step is always 0.01, with no extra evaluation (kept as is).
W3 rk4: diffrax has no RK4 class; a classic-RK4 ButcherTableau solver is
defined below, stepped with ConstantStepSize, dt0 = 0.1 (10 steps on [0, 1]).

NFE: diffrax gives step counts, not evaluations, and a jitted program cannot
count calls at run time, so NFE are counted once per (workload, mode) in an
instrumented copy (the field calls jax.debug.callback to bump a counter),
compiled separately and not timed: nfe_f from the forward-only program,
nfe_b = (calls in the value-and-grad program) - nfe_f. For "direct" nfe_b
counts the forward recomputations from checkpoints plus the VJPs' primal
evaluations. The timed program has no callback.
"""
import os
import sys

# Must be set before jax is imported: 2 threads on this 2-core machine, CPU only.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.dont_write_bytecode = True  # keep bench/peers/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CFG, make_workload, parse_args, report, unsupported  # noqa: E402

LIB = "diffrax"


def build(w, mode, w5_conv="fast"):
    import math
    from typing import Callable, ClassVar

    import diffrax
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    class RK4(diffrax.AbstractERK):
        """Classic 4-stage RK4 (no error estimate; fixed steps only)."""
        tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
            c=np.array([0.5, 0.5, 1.0]),
            b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
            b_error=np.zeros(4),
            a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        )
        interpolation_cls: ClassVar[Callable[..., diffrax.ThirdOrderHermitePolynomialInterpolation]] = \
            diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    c = CFG[w]
    wl = make_workload(w)
    params = {k: jnp.asarray(v) for k, v in wl["params"]}
    data = {k: jnp.asarray(v) for k, v in wl["data"].items()}

    def lin(p, i, x):
        return x @ p[f"l{i}.w"].T + p[f"l{i}.b"]

    # W5 runs in NHWC / HWIO inside JAX: XLA:CPU compiles an NCHW convolution
    # inside a while loop (every diffrax solve) about 35x slower than NHWC. The
    # OIHW weights and NCHW input of the recipe are transposed once, outside the
    # timed step; the math is the same (time channel first, GroupNorm groups of
    # consecutive channels).
    def group_norm(x, g, b, groups=32, eps=1e-5):
        n, h, wd, ch = x.shape
        xg = x.reshape(n, h, wd, groups, ch // groups)
        mean = xg.mean(axis=(1, 2, 4), keepdims=True)
        var = jnp.mean((xg - mean) ** 2, axis=(1, 2, 4), keepdims=True)
        xg = (xg - mean) * jax.lax.rsqrt(var + eps)
        return xg.reshape(n, h, wd, ch) * g + b

    def conv_lax(x, wt):
        return jax.lax.conv_general_dilated(x, wt, (1, 1), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    # XLA:CPU also compiles lax.conv's WEIGHT gradient (a conv with batch and
    # feature roles swapped) inside a while loop ~40x slower than outside one.
    # conv_fast keeps lax.conv for the forward pass and for the input gradient
    # (a forward conv with the flipped, transposed kernel) and computes the
    # weight gradient as an im2col matmul. --w5-conv lax uses plain lax.conv.
    def _cols(x):
        n, h, wd, ch = x.shape
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return jnp.concatenate([xp[:, i:i + h, j:j + wd, :] for i in range(3) for j in range(3)],
                               axis=3).reshape(n * h * wd, 9 * ch)

    @jax.custom_vjp
    def conv_fast(x, wt):
        return conv_lax(x, wt)

    def _conv_fwd(x, wt):
        return conv_lax(x, wt), (x, wt)

    def _conv_bwd(res, g):
        x, wt = res
        n, h, wd, _ = x.shape
        dx = conv_lax(g, jnp.flip(wt, (0, 1)).transpose(0, 1, 3, 2))
        dw = (_cols(x).T @ g.reshape(n * h * wd, -1)).reshape(wt.shape)
        return dx, dw

    conv_fast.defvjp(_conv_fwd, _conv_bwd)
    conv = conv_lax if w5_conv == "lax" else conv_fast

    def concat_conv(p, name, t, x):
        tt = jnp.full(x.shape[:3] + (1,), t, dtype=x.dtype)
        return conv(jnp.concatenate([tt, x], 3), p[f"{name}.w"]) + p[f"{name}.b"]

    if w == "W5":
        for name in ("conv1", "conv2"):
            params[f"{name}.w"] = jnp.transpose(params[f"{name}.w"], (2, 3, 1, 0))  # OIHW -> HWIO
        data["x"] = jnp.transpose(data["x"], (0, 2, 3, 1))  # NCHW -> NHWC

    if w == "W1":
        def field(t, y, p):
            return lin(p, 1, jnp.tanh(lin(p, 0, y ** 3)))
    elif w == "W2":
        def field(t, y, p):
            return lin(p, 1, jax.nn.softplus(lin(p, 0, y)))
    elif w == "W3":
        def field(t, y, p):
            return lin(p, 2, jnp.tanh(lin(p, 1, jnp.tanh(lin(p, 0, y)))))
    elif w == "W4":
        def g(p, z):
            for i in range(3):
                z = jnp.tanh(lin(p, i, z))
            return lin(p, 3, z)

        def field(t, y, p):
            z = y[:, :2]
            gz, vjp = jax.vjp(lambda zz: g(p, zz), z)
            tr = 0.0
            for i in range(2):
                e = jnp.zeros_like(gz).at[:, i].set(1.0)
                tr = tr + vjp(e)[0][:, i]
            return jnp.concatenate([gz, tr[:, None]], 1)
    else:
        def field(t, y, p):
            out = jax.nn.relu(group_norm(y, p["gn1.w"], p["gn1.b"]))
            out = concat_conv(p, "conv1", t, out)
            out = jax.nn.relu(group_norm(out, p["gn2.w"], p["gn2.b"]))
            out = concat_conv(p, "conv2", t, out)
            return group_norm(out, p["gn3.w"], p["gn3.b"])

    field_keys = [k for k in params if not k.startswith("head.")]
    counter = [0]

    def _bump():
        counter[0] += 1

    def counted_field(t, y, p):
        jax.debug.callback(_bump)
        return field(t, y, p)

    if c["method"] == "rk4":
        # ConstantStepSize with dt0 = 0.1 (StepTo is not accepted by BacksolveAdjoint's
        # reversed solve); diffrax clips the last step to t1: 10 steps.
        solver, controller, dt0 = RK4(), diffrax.ConstantStepSize(), c["step"]
    else:
        solver, dt0 = diffrax.Dopri5(), None
        controller = diffrax.PIDController(rtol=c["rtol"], atol=c["atol"])
    adjoint = diffrax.RecursiveCheckpointAdjoint() if mode == "direct" else diffrax.BacksolveAdjoint()

    if w == "W1":
        t = data["t"]
        t0, t1, saveat, y0 = t[0], t[-1], diffrax.SaveAt(ts=t), data["y0"]
    else:
        t0, t1, saveat = c["t0"], c["t1"], diffrax.SaveAt(t1=True)
        y0 = {"W2": data.get("z0"), "W3": data.get("z0"), "W4": data.get("s0"), "W5": data.get("x")}[w]

    def loss_fn(p, counting):
        fp = {k: p[k] for k in field_keys}
        sol = diffrax.diffeqsolve(diffrax.ODETerm(counted_field if counting else field), solver,
                                  t0, t1, dt0, y0, fp, saveat=saveat, stepsize_controller=controller,
                                  adjoint=adjoint, max_steps=4096)
        ys = sol.ys
        if w == "W1":
            loss = jnp.mean(jnp.abs(ys - data["y"]))
        elif w in ("W2", "W3"):
            loss = jnp.mean(ys[-1] ** 2)
        elif w == "W4":
            s1 = ys[-1]
            loss = jnp.mean(0.5 * jnp.sum(s1[:, :2] ** 2, 1) + math.log(2 * math.pi) - s1[:, 2])
        else:
            logits = ys[-1].mean(axis=(1, 2)) @ p["head.w"].T + p["head.b"]
            loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, data["labels"]))
        return loss, sol.stats["num_steps"]

    if c["opt"] == "rmsprop":  # torch.optim.RMSprop defaults: alpha .99, eps 1e-8 outside the sqrt
        opt = optax.rmsprop(c["lr"], decay=0.99, eps=1e-8, eps_in_sqrt=False)
    elif c["opt"] == "adam":
        opt = optax.adam(c["lr"])
    else:
        opt = optax.sgd(c["lr"], momentum=c["momentum"])

    @jax.jit
    def train_step(p, opt_state):
        (loss, nsteps), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, False)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss, nsteps

    def count_nfe():
        counter[0] = 0
        _, ns = jax.jit(lambda p: loss_fn(p, True))(params)
        jax.block_until_ready(ns)
        nf = counter[0]
        counter[0] = 0
        (_, ns2), gr = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, True), has_aux=True))(params)
        jax.block_until_ready(gr)
        return nf, counter[0] - nf, int(ns)

    state = [params, opt.init(params)]
    params0 = params

    def reset():  # the optimiser state is kept, as on the torch side
        state[0] = params0

    def step():
        p, o, loss, ns = train_step(*state)
        loss = float(loss)
        jax.block_until_ready(p)
        state[0], state[1] = p, o
        return loss, -1, -1, f"last_num_steps={int(ns)}"

    return step, reset, count_nfe


def main():
    args = parse_args(LIB, extra=lambda p: p.add_argument(
        "--w5-conv", choices=["fast", "lax"], default="fast",
        help="W5 convolution: lax.conv with an im2col weight gradient (fast) or plain lax.conv"))
    args.warmup = max(args.warmup, 1)  # the first call compiles
    import diffrax
    import jax
    print(f"# {LIB} {diffrax.__version__} jax {jax.__version__} devices={jax.devices()} "
          f"XLA_FLAGS='{os.environ.get('XLA_FLAGS', '')}' iters={args.iters} warmup={args.warmup}", flush=True)
    for w in args.workloads:
        for mode in args.modes:
            if mode not in ("direct", "adjoint"):
                unsupported(LIB, w, mode, f"mode {mode} not available in {LIB}")
                continue
            step, reset, count_nfe = build(w, mode, args.w5_conv)
            nf, nb, nsteps = count_nfe()
            report(LIB, w, mode, args, step, reset=reset, nfe=(nf, nb), info=f" first_num_steps={nsteps}")


if __name__ == "__main__":
    main()
