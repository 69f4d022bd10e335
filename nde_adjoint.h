/* nde_adjoint.h - v0.1.0 - differentiable ODE solves for nde, with every gradient mode
   License: MIT (see the end of nde.h).

USAGE
   Include instead of nde.h / nde_solvers.h (it includes both). In exactly ONE C
   file:
       #define NDE_IMPLEMENTATION      (all of nde; or NDE_ADJOINT_IMPLEMENTATION for
       #include "nde_adjoint.h"        this header alone next to the other two)

QUICK START (this program runs in tests/test_adjoint.c as quickstart_adjoint)

       #define NDE_IMPLEMENTATION
       #include "nde_adjoint.h"
       static nde_tensor *field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
           (void)t;
           return nde_mlp_forward(ctx, (nde_mlp *)user, z);      // f(t, z) = MLP(z)
       }
       int main(void) {
           nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
           nde_mlp net;
           int64_t widths[3] = {2, 16, 2}, zs[2] = {8, 2}, nt = 3;
           nde_real tv[3] = {0.0f, 0.5f, 1.0f};
           nde_mlp_init(ctx, &net, "f", 3, widths, NDE_ACT_TANH, 1);
           nde_optimizer opt = nde_adam(1e-2);
           nde_adjoint_options adj = nde_adjoint_options_default(NDE_GRAD_GAUSS);   // or DIRECT, BACKSOLVE, ...
           for (int it = 0; it < 20; it++) {
               nde_mark m = nde_ctx_mark(ctx);
               nde_tensor *z0 = nde_tensor_randn(ctx, 2, zs, 3, 0);
               nde_tensor *t = nde_tensor_from(ctx, 1, &nt, tv);
               nde_tensor *z = nde_odeint_adjoint(ctx, field, &net, z0, t, NULL, &adj, NULL);  // (3, 8, 2)
               nde_tensor *loss = nde_mean(ctx, nde_square(ctx, z));    // a loss on all three times
               nde_zero_grad(ctx);
               nde_backward(ctx, loss);                                 // runs the chosen gradient mode
               nde_optimizer_step(ctx, &opt);
               nde_ctx_reset(ctx, m);
           }
           int bad = nde_ctx_status(ctx) != NDE_OK;
           nde_ctx_free(ctx);
           return bad;
       }

THE DIFFERENTIABLE SOLVE
   nde_odeint_adjoint(ctx, f, user, z0, t, &solve_options, &adjoint_options, &Q)
   returns z at every time of the tensor t, stacked (len(t), ...z0.shape). It is
   ONE node on the tape: the forward runs the solver with grad mode off and keeps
   what the mode needs; nde_backward reaching it runs the mode's backward pass
   and adds into z0's gradient, the parameters' gradient (whatever array
   nde_params_grad points to, so nde_vjp redirection works) and t's gradient.
   User code is the same whatever the mode. DIRECT is the exception that proves
   the rule: its forward is the solver's own taped solve, with two thin nodes
   around it for the time gradients.

GRADIENT MODES (nde_adjoint_options.mode; names for nde_grad_mode_from_name)
   mode         name        gradient                     memory              backward cost
   DIRECT       direct      exact, of the discrete solve grows with steps    1 backward pass
   CHECKPOINT   checkpoint  exact, identical to DIRECT   checkpoints states  p(l,s) recomputed steps
   BACKSOLVE    adjoint     continuous adjoint           O(1)                solve of [z, a, theta]
   INTERPOLATED interp      continuous adjoint           dense: grows;       solve of [a, theta]
                                                         checkpoints: O(1)   (+ recomputed steps)
   GAUSS        gq          continuous adjoint           O(1)                solve of [z, a] + VJPs
                                                                             at the nodes
   GAUSS_STEP   gq_step     continuous adjoint           O(1)                solve of [z, a] + VJPs
                                                                             at the nodes
   DIRECT: backpropagation through the solver's recorded operations (the step
     sizes are not differentiated, as in diffrax and torchdiffeq's controller).
   CHECKPOINT: the forward records only the accepted steps' (t0, h) (16 bytes a
     step, host memory); the backward replays the explicit RK steps from
     `checkpoints` stored states with the binomial schedule of Griewank & Walther
     (nde_revolve), recording one step at a time. Explicit RK methods only.
   BACKSOLVE: torchdiffeq's odeint_adjoint: [s, a, theta_bar] integrated from
     t_i back to t_{i-1} with a' = -a^T df/dz, theta_bar' = -a^T df/dtheta; s is
     reset to the stored forward value at each output time and dL/dz(t_i) added
     to a there. Backward method, rtol, atol of their own (adjoint options; 0 =
     the forward's); the step control uses the max of the RMS norms of the parts
     (torchdiffeq's mixed norm), or with seminorm = 1 leaves theta_bar out.
   INTERPOLATED: only [a, theta_bar] backwards; z(t) from the forward dense
     output (checkpoints = 0, memory grows with the steps), or with checkpoints
     > 0 from each forward step recomputed (revolve) and its interpolant
     (memory flat; explicit RK only).
   GAUSS: Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using
     Gauss-Legendre Quadrature" (TMLR 2023): [z, a] backwards per output
     interval; theta_bar = sum_k w_k a(t_k)^T df/dtheta(t_k, z(t_k)) over
     n = min(ceil(gtol NFE_forward |t_i - t_{i-1}| / |T - t_0|), 64) Gauss-Legendre
     nodes (gtol = 0.1), read from the backward solve's interpolant.
   GAUSS_STEP: SciMLSensitivity's GaussAdjoint: after each accepted step of the
     [z, a] backward solve, floor((order+1)/2) nodes (gauss_nodes to override) of
     that step's interpolant.
   The [z, a] fields of GAUSS* skip the parameter part of their VJPs (the
   parameters are frozen during those calls): that is what makes them fast for
   small states and many parameters.
   Gradients with respect to the times: dL/dt_i = dL/dz(t_i) . f(t_i, z(t_i)) for
   i >= 1 and dL/dt_0 = -a(t_0) . f(t_0, z0), in every mode.

RUNNING LOSS (torchdyn's integral loss)
   adjoint_options.running_loss = l (same signature as a field, returning one
   element): the solve also returns Q = integral over [t_0, T] of l(t, z(t)) dt
   in *integral. The state becomes [z; q] with q' = l, so every mode handles it
   (in the continuous adjoints the term dL/dQ dl/dz enters a' and no dense
   storage is needed).

METHODS AND MODES
   DIRECT works with every method (kvaerno5's taped solve differentiates its
   stages by the implicit-function theorem, see nde_solvers.h); CHECKPOINT and
   INTERPOLATED with checkpoints need an explicit RK method; the
   backward solves of BACKSOLVE, INTERPOLATED and GAUSS* cannot use kvaerno5
   (its Newton iteration would need second derivatives of f): with a kvaerno5
   forward solve set adjoint_options.method (e.g. NDE_DOPRI5). Other
   combinations fail at the call with NDE_ERR_UNSUPPORTED and a message naming
   the mode and the method. Events are not supported in differentiable solves.

BUILDING BLOCKS
   nde_gauss_legendre(n, x, w)   n-point rule on [-1, 1], n <= 64, full double precision
   nde_revolve(steps, s, fn, u)  binomial checkpoint schedule (actions through fn)
   nde_revolve_cost / nde_revolve_repetitions / nde_revolve_beta   its closed forms
   nde_gauss_interval_nodes      the GAUSS node-count rule

ADDED TO THE OTHER HEADERS FOR THIS ONE
   nde.h: nde_tape_custom (a custom node on the tape); nde_vjp restores a
   previous parameter-gradient redirection. nde_solvers.h: the on_step callback
   in nde_solve_options (marked block).
*/
#ifndef NDE_ADJOINT_H
#define NDE_ADJOINT_H

#include "nde_solvers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- Gauss-Legendre
   n-point Gauss-Legendre rule on [-1, 1] (1 <= n <= NDE_GAUSS_MAX_NODES): nodes in
   increasing order and positive weights; exact for polynomials of degree 2n-1.
   Newton's method on P_n from Tricomi's initial guesses, in long double. */
#define NDE_GAUSS_MAX_NODES 64
NDE_API nde_status nde_gauss_legendre(int n, double *nodes, double *weights);

/* ---------------------------------------------------------------- binomial checkpointing
   Reversing a chain of `steps` steps x_{k+1} = F_k(x_k) (k = 0..steps-1) in reverse
   order with at most `checkpoints` stored states (the initial state counts as one),
   after Griewank & Walther, "Algorithm 799: revolve", ACM TOMS 26(1), 2000. The
   schedule advances (recomputes) the minimal number of steps
       p(l, s) = t l - C(s + t, t - 1)   for C(s + t - 1, t - 1) < l <= C(s + t, t),
   t being the repetition number (nde_revolve_repetitions). The reverse sweep
   visits steps steps-1, ..., 0 exactly once each (NDE_REVOLVE_REVERSE) with the
   current state equal to x_k. */
typedef enum nde_revolve_action {
    NDE_REVOLVE_STORE,     /* slot <- current state (which is x_step)            */
    NDE_REVOLVE_RESTORE,   /* current state <- slot (x_step)                     */
    NDE_REVOLVE_ADVANCE,   /* current state x_step -> x_to, by to - step steps   */
    NDE_REVOLVE_REVERSE    /* current state is x_step: run step `step` forward
                              (recording) and backward                           */
} nde_revolve_action;
typedef nde_status (*nde_revolve_fn)(void *user, nde_revolve_action action, int64_t step, int64_t to, int slot);
/* C(s + t, t), saturating at INT64_MAX. */
NDE_API int64_t nde_revolve_beta(int64_t s, int64_t t);
/* Smallest t with C(s + t, t) >= steps; -1 for steps < 1 or checkpoints < 1. */
NDE_API int64_t nde_revolve_repetitions(int64_t steps, int checkpoints);
/* Minimal number of advanced steps p(l, s) above. */
NDE_API int64_t nde_revolve_cost(int64_t steps, int checkpoints);
/* Run the schedule, calling fn for each action; slot 0 holds x_0 on entry (the
   caller stores it); slots used are 0..checkpoints-1. Stops at the first nonzero
   status of fn and returns it. */
NDE_API nde_status nde_revolve(int64_t steps, int checkpoints, nde_revolve_fn fn, void *user);

/* ---------------------------------------------------------------- gradient modes */
typedef enum nde_grad_mode {
    NDE_GRAD_DIRECT = 0,     /* backpropagate through the solver's taped operations     */
    NDE_GRAD_CHECKPOINT,     /* the same gradient; binomial checkpoints + recomputation */
    NDE_GRAD_BACKSOLVE,      /* continuous adjoint, z integrated backwards (torchdiffeq) */
    NDE_GRAD_INTERPOLATED,   /* continuous adjoint, z from the forward interpolant       */
    NDE_GRAD_GAUSS,          /* Gauss-Legendre quadrature per output interval (Norcliffe
                                & Deisenroth 2023, torch_gq_adjoint)                     */
    NDE_GRAD_GAUSS_STEP,     /* Gauss-Legendre quadrature per reverse step
                                (SciMLSensitivity's GaussAdjoint)                       */
    NDE_GRAD_MODE_COUNT
} nde_grad_mode;

/* Counters of one differentiable solve; the backward ones are filled when the
   backward pass runs (keep the struct alive until then). */
typedef struct nde_adjoint_stats {
    int64_t nfe_forward;        /* f evaluations of the forward solve               */
    int64_t steps_forward;      /* its accepted steps                               */
    int64_t nfe_backward;       /* f evaluations of the backward pass (a VJP is one) */
    int64_t steps_backward;     /* accepted steps of the backward solves            */
    int64_t recomputed_steps;   /* forward steps recomputed from checkpoints        */
    int64_t quadrature_nodes;   /* Gauss-Legendre nodes evaluated                   */
    int backward_runs;
} nde_adjoint_stats;

#define NDE_ADJOINT_SAME_METHOD (-1)
typedef struct nde_adjoint_options {
    nde_grad_mode mode;
    /* CHECKPOINT: stored states (>= 1; 0 = ceil(log2(steps)) + 1).
       INTERPOLATED: 0 keeps the forward dense output (memory grows with the
       steps); > 0 keeps this many states and recomputes each step. */
    int checkpoints;
    /* Backward solve of BACKSOLVE, INTERPOLATED, GAUSS, GAUSS_STEP: method
       (NDE_ADJOINT_SAME_METHOD = the forward one) and tolerances (0 = forward's). */
    int method;
    double rtol, atol;
    int seminorm;               /* BACKSOLVE, INTERPOLATED: leave the parameter part out
                                   of the step control (torchdiffeq's norm="seminorm") */
    double gtol;                /* GAUSS: nodes per interval = min(ceil(gtol NFE_forward
                                   |t_i - t_{i-1}| / |T - t_0|), 64); default 0.1     */
    int gauss_nodes;            /* GAUSS_STEP: nodes per step; 0 = floor((order+1)/2) */
    /* Optional running loss: the solve also returns Q = integral over [t_0, T] of
       l(t, z(t)) dt (l returns a one-element tensor); its gradient enters the
       adjoint dynamics (torchdyn's integral loss), no dense storage needed. */
    nde_field_fn running_loss; void *running_loss_user;
    nde_adjoint_stats *stats;   /* optional */
} nde_adjoint_options;

NDE_API nde_adjoint_options nde_adjoint_options_default(nde_grad_mode mode);
/* "direct", "checkpoint", "adjoint" (= backsolve), "interp", "gq", "gq_step". */
NDE_API const char *nde_grad_mode_name(nde_grad_mode mode);
NDE_API nde_status nde_grad_mode_from_name(nde_ctx *ctx, const char *name, nde_grad_mode *out);
/* The GAUSS node count rule above (at least 1). */
NDE_API int nde_gauss_interval_nodes(double gtol, int64_t nfe_forward, double interval, double total);

/* Solve z' = f(t, z) from z(t[0]) = z0 and return z at every time of t (a 1-D
   tensor, strictly monotonic) stacked: shape (len(t), ...z0.shape), so z0 may
   have up to NDE_MAX_DIMS-1 dimensions. The result is differentiable with
   respect to z0, t and the parameters f uses, with the gradient computed by
   adj->mode (NULL: backsolve with defaults); opts NULL = nde_solve's defaults.
   With adj->running_loss, *integral receives Q (one element, differentiable).
   f may use parameters and constants, but no other work tensors that require
   gradients (their gradient would be lost in all modes but DIRECT). The
   options' arrays (step_ts, jump_ts, grid) are copied; atol_tensor and the
   user pointers must live until the backward pass. */
NDE_API nde_tensor *nde_odeint_adjoint(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, nde_tensor *t,
                                       const nde_solve_options *opts, const nde_adjoint_options *adj,
                                       nde_tensor **integral);

#ifdef __cplusplus
}
#endif
#endif /* NDE_ADJOINT_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if defined(NDE_IMPLEMENTATION) && !defined(NDE_ADJOINT_IMPLEMENTATION)
#define NDE_ADJOINT_IMPLEMENTATION
#endif
#if defined(NDE_ADJOINT_IMPLEMENTATION) && !defined(NDE_ADJOINT_IMPLEMENTATION_DONE)
#define NDE_ADJOINT_IMPLEMENTATION_DONE

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if !defined(NDE_MALLOC)
#define NDE_MALLOC(sz) malloc(sz)
#define NDE_REALLOC(p, sz) realloc(p, sz)
#define NDE_FREE(p) free(p)
#endif

/* ------------------------------------------------------------ Gauss-Legendre */
/* P_n(x) and P_n'(x) by the three-term recurrence (k P_k = (2k-1) x P_{k-1} - (k-1) P_{k-2}). */
static void nde__adj_legendre(int n, long double x, long double *p, long double *dp) {
    long double p0 = 1.0L, p1 = x;
    int k;
    for (k = 2; k <= n; k++) {
        long double p2 = ((long double)(2 * k - 1) * x * p1 - (long double)(k - 1) * p0) / (long double)k;
        p0 = p1;
        p1 = p2;
    }
    *p = p1;
    *dp = (long double)n * (x * p1 - p0) / (x * x - 1.0L);
}

NDE_API nde_status nde_gauss_legendre(int n, double *nodes, double *weights) {
    const long double pi = 3.14159265358979323846264338327950288L;
    int i, half;
    if (n < 1 || n > NDE_GAUSS_MAX_NODES || !nodes || !weights) return NDE_ERR_ARG;
    if (n == 1) { nodes[0] = 0.0; weights[0] = 2.0; return NDE_OK; }
    half = (n + 1) / 2;
    for (i = 0; i < half; i++) {
        /* i-th largest root; Tricomi's guess cos(pi (i + 3/4) / (n + 1/2)) */
        long double x = cosl(pi * ((long double)i + 0.75L) / ((long double)n + 0.5L)), p, dp, dx;
        int it;
        for (it = 0; it < 100; it++) {
            nde__adj_legendre(n, x, &p, &dp);
            dx = p / dp;
            x -= dx;
            if (fabsl(dx) <= 1e-19L) break;
        }
        if (n % 2 == 1 && i == half - 1) x = 0.0L;   /* the middle root is exactly 0 */
        nde__adj_legendre(n, x, &p, &dp);
        nodes[n - 1 - i] = (double)x;
        nodes[i] = (double)-x;
        weights[i] = weights[n - 1 - i] = (double)(2.0L / ((1.0L - x * x) * dp * dp));
    }
    return NDE_OK;
}

/* ------------------------------------------------------------ binomial checkpointing */
NDE_API int64_t nde_revolve_beta(int64_t s, int64_t t) {
    /* C(s + t, t) = prod_{i=1..t} (s + i) / i, exact at each step */
    int64_t r = 1, i;
    if (s < 0 || t < 0) return 0;
    for (i = 1; i <= t; i++) {
        int64_t g = s + i;
        if (r > INT64_MAX / g) return INT64_MAX;
        r = r * g / i;
    }
    return r;
}

NDE_API int64_t nde_revolve_repetitions(int64_t steps, int checkpoints) {
    int64_t t = 0;
    if (steps < 1 || checkpoints < 1) return -1;
    while (nde_revolve_beta(checkpoints, t) < steps) t++;
    return t;
}

NDE_API int64_t nde_revolve_cost(int64_t steps, int checkpoints) {
    int64_t t = nde_revolve_repetitions(steps, checkpoints);
    if (t < 0) return -1;
    if (t == 0) return 0;
    return t * steps - nde_revolve_beta(checkpoints + 1, t - 1);
}

/* Reverse steps a..b-1 with the state x_a in `slot` and s slots (slot..slot+s-1).
   Split at m with b - m <= C(s-1+t, t) and m - a <= C(s+t-1, t-1): the right
   part then takes t repetitions with s-1 slots and the left part t-1 with s,
   which attains p(l, s) (Griewank & Walther 2000, Prop. 1). */
static nde_status nde__adj_revolve(int64_t a, int64_t b, int s, int slot, nde_revolve_fn fn, void *user) {
    nde_status st;
    while (b - a > 1) {
        int64_t l = b - a, t = nde_revolve_repetitions(l, s), m;
        int64_t left_max = nde_revolve_beta(s, t - 1), right_min = nde_revolve_beta(s - 1, t - 1);
        m = a + (left_max < l - right_min ? left_max : l - right_min);
        if (m <= a) m = a + 1;
        if (m >= b) m = b - 1;
        if ((st = fn(user, NDE_REVOLVE_RESTORE, a, a, slot)) != NDE_OK) return st;
        if ((st = fn(user, NDE_REVOLVE_ADVANCE, a, m, slot)) != NDE_OK) return st;
        if (b - m > 1) {
            if ((st = fn(user, NDE_REVOLVE_STORE, m, m, slot + 1)) != NDE_OK) return st;
            if ((st = nde__adj_revolve(m, b, s - 1, slot + 1, fn, user)) != NDE_OK) return st;
        } else {
            if ((st = fn(user, NDE_REVOLVE_REVERSE, m, b, slot)) != NDE_OK) return st;
        }
        b = m;
    }
    if ((st = fn(user, NDE_REVOLVE_RESTORE, a, a, slot)) != NDE_OK) return st;
    return fn(user, NDE_REVOLVE_REVERSE, a, b, slot);
}

NDE_API nde_status nde_revolve(int64_t steps, int checkpoints, nde_revolve_fn fn, void *user) {
    if (steps < 0 || checkpoints < 1 || !fn) return NDE_ERR_ARG;
    if (steps == 0) return NDE_OK;
    return nde__adj_revolve(0, steps, checkpoints, 0, fn, user);
}

/* ------------------------------------------------------------ names and options */
static const char *const nde__adj_grad_mode_names[NDE_GRAD_MODE_COUNT] = {
    "direct", "checkpoint", "adjoint", "interp", "gq", "gq_step"
};

NDE_API const char *nde_grad_mode_name(nde_grad_mode mode) {
    if ((int)mode < 0 || (int)mode >= NDE_GRAD_MODE_COUNT) return "(invalid gradient mode)";
    return nde__adj_grad_mode_names[mode];
}

NDE_API nde_status nde_grad_mode_from_name(nde_ctx *ctx, const char *name, nde_grad_mode *out) {
    static const struct { const char *alias; nde_grad_mode mode; } aliases[] = {
        {"backsolve", NDE_GRAD_BACKSOLVE}, {"interpolated", NDE_GRAD_INTERPOLATED},
        {"gauss", NDE_GRAD_GAUSS}, {"gauss_step", NDE_GRAD_GAUSS_STEP}, {"checkpointed", NDE_GRAD_CHECKPOINT}
    };
    int i;
    for (i = 0; name && i < NDE_GRAD_MODE_COUNT; i++)
        if (strcmp(name, nde__adj_grad_mode_names[i]) == 0) { if (out) *out = (nde_grad_mode)i; return NDE_OK; }
    for (i = 0; name && i < (int)(sizeof aliases / sizeof aliases[0]); i++)
        if (strcmp(name, aliases[i].alias) == 0) { if (out) *out = aliases[i].mode; return NDE_OK; }
    return nde_ctx_fail(ctx, NDE_ERR_ARG,
                        "nde_grad_mode_from_name: unknown gradient mode '%s' (known: direct, checkpoint, adjoint, "
                        "interp, gq, gq_step)", name ? name : "(null)");
}

NDE_API nde_adjoint_options nde_adjoint_options_default(nde_grad_mode mode) {
    nde_adjoint_options o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    o.method = NDE_ADJOINT_SAME_METHOD;
    o.gtol = 0.1;
    return o;
}

NDE_API int nde_gauss_interval_nodes(double gtol, int64_t nfe_forward, double interval, double total) {
    double n;
    if (!(total != 0.0) || !(gtol > 0.0)) return 1;
    n = ceil(gtol * (double)nfe_forward * fabs(interval) / fabs(total));
    if (!(n >= 1.0)) return 1;
    return n > NDE_GAUSS_MAX_NODES ? NDE_GAUSS_MAX_NODES : (int)n;
}

/* ------------------------------------------------------------ the solve's record
   Everything the backward pass needs lives in this struct, allocated in the
   arenas at the forward call and released with them. The "state" s is z itself,
   or the flat [z; q] with q' = l(t, z) when there is a running loss: every mode
   then works on s with the field F(t, s) = [f(t, z); l(t, z)], and the cotangent
   of q is dL/dQ at every time (F does not depend on q). */
typedef struct nde__adj {
    nde_ctx *ctx;
    nde_field_fn f; void *user;
    nde_field_fn loss; void *loss_user;
    nde_adjoint_options adj;
    nde_solve_options fopt;            /* forward options, arrays copied        */
    const nde_method_info *mi;         /* forward method                        */
    const nde_method_info *bmi;        /* backward-solve method                 */
    double brtol, batol;
    int packed;
    int zdim; int64_t zshape[NDE_MAX_DIMS]; int64_t N;
    int sdim; int64_t sshape[NDE_MAX_DIMS]; int64_t S;
    int64_t P;                         /* number of parameters (reals)          */
    int num_ts; double *ts; double dir;
    nde_tensor *z0, *t;
    nde_real *states;                  /* num_ts x S forward states at ts       */
    int64_t nfe_forward, steps_forward;
    int64_t nfe_backward, steps_backward, recomputed, nodes;
    /* accepted forward steps' start times (CHECKPOINT, INTERPOLATED+checkpoints) */
    int64_t num_steps; double *step_t0, *step_h; int64_t step_cap;
    /* forward dense output copy (INTERPOLATED without checkpoints) */
    nde_step *dense;
    const nde_step *cur_step;          /* the interpolant the backward field reads */
    const nde_tableau *cur_tab;
    /* DIRECT */
    nde_tensor **inner_states; nde_real *g0; int have_g0;
    /* sweep state */
    nde_real *a, *pbar;
    const nde_real *G;                 /* num_ts x S cotangents                 */
    int next_out;
    /* Gauss-Legendre nodes: per step (x on [-1, 1]) or per interval (times t) */
    double gauss_x[NDE_GAUSS_MAX_NODES], gauss_w[NDE_GAUSS_MAX_NODES], gauss_t[NDE_GAUSS_MAX_NODES];
    int gauss_n, gauss_next;
} nde__adj;

/* ------------------------------------------------------------ small helpers */
static const nde_backend *nde__adj_be(nde__adj *A) { return nde_ctx_backend(A->ctx); }
static void nde__adj_copy(nde__adj *A, nde_real *dst, const nde_real *src, int64_t n) {
    const nde_backend *be = nde__adj_be(A);
    if (n > 0 && dst != src) be->copy(be->self, dst, src, (size_t)n * sizeof(nde_real), NDE_COPY_DEVICE);
}
static void nde__adj_axpy(nde__adj *A, int64_t n, nde_real alpha, const nde_real *x, nde_real *y) {
    const nde_backend *be = nde__adj_be(A);
    const nde_real *xs[1];
    xs[0] = x;
    if (n > 0) be->lincomb(be->self, n, 1, &alpha, xs, 1, y);
}
static void nde__adj_zero(nde__adj *A, nde_real *x, int64_t n) {
    const nde_backend *be = nde__adj_be(A);
    if (n > 0) be->fill(be->self, n, NDE_R(0.0), x);
}
static double nde__adj_dot(nde__adj *A, int64_t n, const nde_real *x, const nde_real *y) {
    const nde_backend *be = nde__adj_be(A);
    return n > 0 ? be->dot(be->self, n, x, y) : 0.0;
}
/* A tensor header viewing n reals of backend memory (no history). */
static nde_tensor *nde__adj_view(nde_ctx *ctx, nde_real *data, int ndim, const int64_t *shape) {
    nde_tensor *v = (nde_tensor *)nde_ctx_alloc_host(ctx, sizeof(nde_tensor));
    int i;
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    v->ndim = ndim;
    v->size = 1;
    for (i = 0; i < NDE_MAX_DIMS; i++) {
        v->shape[i] = i < ndim ? shape[i] : 1;
        if (i < ndim) v->size *= shape[i];
    }
    v->data = data;
    v->node = -1;
    v->param = -1;
    return v;
}
/* a strictly before b in the direction of the forward solve */
static int nde__adj_before(const nde__adj *A, double a, double b) { return A->dir * (b - a) > 0.0; }

/* ------------------------------------------------------------ the field on the state */
static nde_tensor *nde__adj_state_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *u) {
    nde__adj *A = (nde__adj *)u;
    nde_tensor *z, *fz, *l, *parts[2];
    int64_t n1, one = 1;
    if (!A->packed) return A->f(ctx, t, s, A->user);
    n1 = A->N;
    z = nde_reshape(ctx, nde_slice(ctx, s, 0, 0, A->N), A->zdim, A->zshape);
    if (!z) return NULL;
    fz = A->f(ctx, t, z, A->user);
    l = fz ? A->loss(ctx, t, z, A->loss_user) : NULL;
    if (!fz || !l) {
        if (nde_ctx_status(ctx) == NDE_OK)
            nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_odeint_adjoint: the %s returned NULL", fz ? "running loss" : "field");
        return NULL;
    }
    if (fz->size != A->N || l->size != 1) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_odeint_adjoint: f returned %s for a state of %lld elements and the running "
                     "loss returned %s (it must return one element)", nde_shape_str(fz, s1, sizeof s1),
                     (long long)A->N, nde_shape_str(l, s2, sizeof s2));
        return NULL;
    }
    parts[0] = nde_reshape(ctx, fz, 1, &n1);
    parts[1] = nde_reshape(ctx, l, 1, &one);
    return nde_concat(ctx, 2, parts, 0);
}

static int nde__adj_check_field_out(nde__adj *A, const nde_tensor *y) {
    if (!y) {
        if (nde_ctx_status(A->ctx) == NDE_OK) nde_ctx_fail(A->ctx, NDE_ERR_USER_FN, "nde_odeint_adjoint: the field returned NULL");
        return 0;
    }
    if (y->size != A->S) {
        char s1[64];
        nde_ctx_fail(A->ctx, NDE_ERR_SHAPE, "nde_odeint_adjoint: the field returned %s for a state of %lld elements",
                     nde_shape_str(y, s1, sizeof s1), (long long)A->S);
        return 0;
    }
    return 1;
}

/* out = F(t, s) unrecorded; s: S reals of backend memory. */
static nde_status nde__adj_F_eval(nde__adj *A, double t, const nde_real *s, nde_real *out) {
    nde_ctx *ctx = A->ctx;
    nde_mark m = nde_ctx_mark(ctx);
    int was = nde_set_grad_enabled(ctx, 0);
    nde_tensor *sv = nde_tensor_new(ctx, A->sdim, A->sshape), *tt = nde_tensor_scalar(ctx, (nde_real)t), *y = NULL;
    if (sv && tt) {
        nde__adj_copy(A, sv->data, s, A->S);
        y = nde__adj_state_field(ctx, tt, sv, A);
        A->nfe_backward++;
        if (nde__adj_check_field_out(A, y)) nde__adj_copy(A, out, y->data, A->S);
    }
    nde_set_grad_enabled(ctx, was);
    nde_ctx_reset(ctx, m);
    return nde_ctx_status(ctx);
}

/* With y = F(t, s): sbar += scale v^T dF/ds; param_buf += scale v^T dF/dtheta
   (param_buf NULL: the parameters are frozen for this call, which skips their
   part of the backward pass); f_out = y. All arrays are backend memory and may
   be NULL (v not). One evaluation of f. */
static nde_status nde__adj_F_vjp(nde__adj *A, double t, const nde_real *s, const nde_real *v, nde_real scale,
                             nde_real *f_out, nde_real *sbar, nde_real *param_buf) {
    nde_ctx *ctx = A->ctx;
    nde_mark m = nde_ctx_mark(ctx);
    int64_t start = nde_tape_length(ctx);
    nde_real *prev_grad = nde_params_grad(ctx);
    int np = nde_params_num(ctx), i, was;
    unsigned char *frozen = NULL;
    nde_tensor *sl = nde_tensor_new(ctx, A->sdim, A->sshape), *vt = nde_tensor_new(ctx, A->sdim, A->sshape);
    nde_tensor *tt = nde_tensor_scalar(ctx, (nde_real)t), *y = NULL;
    if (!sl || !vt || !tt) { nde_ctx_reset(ctx, m); return nde_ctx_status(ctx); }
    nde__adj_copy(A, sl->data, s, A->S);
    nde__adj_zero(A, vt->data, A->S);
    nde__adj_axpy(A, A->S, scale, v, vt->data);
    sl->requires_grad = 1;
    if (!param_buf && np > 0) {
        frozen = (unsigned char *)nde_ctx_alloc_host(ctx, (size_t)np);
        if (!frozen) { nde_ctx_reset(ctx, m); return nde_ctx_status(ctx); }
        for (i = 0; i < np; i++) {
            nde_tensor *p = nde_param_at(ctx, i);
            frozen[i] = (unsigned char)p->requires_grad;
            p->requires_grad = 0;
        }
    }
    was = nde_set_grad_enabled(ctx, 1);
    y = nde__adj_state_field(ctx, tt, sl, A);
    nde_set_grad_enabled(ctx, was);
    A->nfe_backward++;
    if (nde__adj_check_field_out(A, y)) {
        if (f_out) nde__adj_copy(A, f_out, y->data, A->S);
        if (y->requires_grad) {
            if (param_buf) nde_params_redirect_grad(ctx, param_buf);
            nde_backward_seed(ctx, y, vt, start);
            if (param_buf) nde_params_redirect_grad(ctx, prev_grad);
        }
        if (sbar && sl->grad) nde__adj_axpy(A, A->S, NDE_R(1.0), sl->grad, sbar);
    }
    if (frozen)
        for (i = 0; i < np; i++) nde_param_at(ctx, i)->requires_grad = frozen[i];
    nde_ctx_reset(ctx, m);
    return nde_ctx_status(ctx);
}

/* The interpolant of one step at time t (the solver's: the tableau's own
   polynomial when the step carries stages, else the Hermite cubic). */
static nde_tensor *nde__adj_step_interp(nde_ctx *ctx, const nde_tableau *tab, const nde_step *s, double t) {
    double th = (t - s->t0) / s->h;
    if (s->num_k > 0 && tab && tab->dense_degree > 0) {
        nde_tensor *xs[NDE_RK_MAX_STAGES + 1];
        nde_real co[NDE_RK_MAX_STAGES + 1];
        int i, p, m = 0;
        xs[m] = s->y0; co[m++] = NDE_R(1.0);
        for (i = 0; i < s->num_k && i < tab->stages; i++) {
            double bi = 0.0, tp = th;
            for (p = 0; p < tab->dense_degree; p++) { bi += tab->dense[i][p] * tp; tp *= th; }
            if (bi != 0.0) { xs[m] = s->k[i]; co[m++] = (nde_real)(s->h * bi); }
        }
        return nde_lincomb(ctx, m, co, xs);
    }
    return nde_hermite_eval(ctx, s->y0, s->y1, s->f0, s->f1, s->h, th);
}

/* ------------------------------------------------------------ backward-solve options */
typedef struct nde__adj_norm_parts { int count; int64_t off[3], len[3]; } nde__adj_norm_parts;
/* max over the parts of their RMS (torchdiffeq's mixed norm; the seminorm
   drops the parameter part). */
static double nde__adj_parts_norm(nde_ctx *ctx, const nde_tensor *scaled, void *u) {
    const nde__adj_norm_parts *np = (const nde__adj_norm_parts *)u;
    const nde_backend *be = nde_ctx_backend(ctx);
    double worst = 0.0;
    int i;
    for (i = 0; i < np->count; i++) {
        double r;
        if (np->len[i] <= 0) continue;
        r = sqrt(be->dot(be->self, np->len[i], scaled->data + np->off[i], scaled->data + np->off[i]) /
                 (double)np->len[i]);
        if (!(r <= worst)) worst = r;    /* NaN propagates */
    }
    return worst;
}

/* Options for the backward solve from ta to tb; arrays from the forward
   options restricted to the open interval, in backward order, in scratch. */
static nde_solve_options nde__adj_back_options(nde__adj *A, double ta, double tb, nde__adj_norm_parts *norm) {
    nde_solve_options o = A->fopt;
    nde_ctx *ctx = A->ctx;
    o.method = A->bmi->method;
    o.rtol = A->brtol;
    o.atol = A->batol;
    o.atol_tensor = NULL;
    o.norm = norm ? nde__adj_parts_norm : NULL;
    o.norm_user = norm;
    o.first_step = 0.0;
    o.dense = 0;
    o.record_steps = 0;
    o.event = NULL;
    o.event_user = NULL;
    o.on_step = NULL;
    o.on_step_user = NULL;
    o.step_ts = NULL; o.num_step_ts = 0;
    o.jump_ts = NULL; o.num_jump_ts = 0;
    o.grid = NULL; o.grid_len = 0;
    if (A->fopt.num_jump_ts > 0) {
        double *j = (double *)nde_ctx_alloc_host(ctx, (size_t)A->fopt.num_jump_ts * sizeof(double));
        int i, n = 0;
        if (j) {
            for (i = A->fopt.num_jump_ts - 1; i >= 0; i--) {
                double x = A->fopt.jump_ts[i];
                if ((x - ta) * (x - tb) < 0.0) j[n++] = x;
            }
            o.jump_ts = j; o.num_jump_ts = n;
        }
    }
    if (A->fopt.grid && A->fopt.grid_len > 0 && A->bmi->error_order == 0 && A->fopt.step_size <= 0.0) {
        /* the forward grid's points inside the interval, with its ends, backwards */
        double *g = (double *)nde_ctx_alloc_host(ctx, (size_t)(A->fopt.grid_len + 2) * sizeof(double));
        int i, n = 0;
        if (g) {
            g[n++] = ta;
            for (i = A->fopt.grid_len - 1; i >= 0; i--) {
                double x = A->fopt.grid[A->dir > 0 ? i : A->fopt.grid_len - 1 - i];
                if ((x - ta) * (x - tb) < 0.0) g[n++] = x;
            }
            g[n++] = tb;
            o.grid = g; o.grid_len = n;
        }
    }
    return o;
}

/* One backward solve of the augmented field from times[0] (where y is) to
   times[num-1]; y receives the end state. on_step (may be NULL) sees every
   accepted step. */
static nde_status nde__adj_back_solve(nde__adj *A, nde_field_fn aug, nde_tensor *y, int num, const double *times,
                                      nde__adj_norm_parts *norm, nde_step_fn on_step) {
    nde_ctx *ctx = A->ctx;
    nde_mark m = nde_ctx_mark(ctx);
    nde_solution sol;
    nde_solve_options o = nde__adj_back_options(A, times[0], times[num - 1], norm);
    nde_status st;
    o.on_step = on_step;
    o.on_step_user = A;
    memset(&sol, 0, sizeof sol);
    st = nde_solve(ctx, aug, A, y, num, times, &o, &sol);
    A->steps_backward += sol.stats.accepted;
    if (st == NDE_OK && sol.num_out == num) {
        nde__adj_copy(A, y->data, sol.ys[num - 1]->data, y->size);
    } else if (st == NDE_OK) {
        st = nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_odeint_adjoint: the backward solve stopped early at t = %.17g",
                          sol.t_final);
    }
    nde_solution_free(ctx, &sol);
    nde_ctx_reset(ctx, m);
    if (st == NDE_OK) st = nde_ctx_status(ctx);
    return st;
}

/* ------------------------------------------------------------ BACKSOLVE
   torchdiffeq's odeint_adjoint: y = [s, a, theta_bar] with
   y' = [F(t, s), -a^T dF/ds, -a^T dF/dtheta], from t_i back to t_{i-1}; then s is
   reset to the stored forward value and dL/ds(t_{i-1}) added to a. */
static nde_tensor *nde__adj_aug_backsolve(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *u) {
    nde__adj *A = (nde__adj *)u;
    nde_tensor *out = nde_tensor_new(ctx, y->ndim, y->shape);
    if (!out) return NULL;
    nde__adj_zero(A, out->data + A->S, A->S + A->P);
    nde__adj_F_vjp(A, (double)nde_tensor_item(ctx, t, 0), y->data, y->data + A->S, NDE_R(-1.0), out->data,
               out->data + A->S, A->P > 0 ? out->data + 2 * A->S : NULL);
    return nde_ctx_status(ctx) == NDE_OK ? out : NULL;
}

static nde_status nde__adj_sweep_backsolve(nde__adj *A) {
    nde_ctx *ctx = A->ctx;
    int64_t S = A->S, M = 2 * A->S + A->P;
    nde_tensor *y = nde_tensor_zeros(ctx, 1, &M);
    nde__adj_norm_parts np;
    int i;
    nde_status st = NDE_OK;
    if (!y) return nde_ctx_status(ctx);
    np.count = A->adj.seminorm ? 2 : 3;
    np.off[0] = 0; np.len[0] = S;
    np.off[1] = S; np.len[1] = S;
    np.off[2] = 2 * S; np.len[2] = A->P;
    nde__adj_copy(A, y->data, A->states + (int64_t)(A->num_ts - 1) * S, S);
    nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(A->num_ts - 1) * S, y->data + S);
    for (i = A->num_ts - 1; i >= 1 && st == NDE_OK; i--) {
        double times[2];
        times[0] = A->ts[i]; times[1] = A->ts[i - 1];
        st = nde__adj_back_solve(A, nde__adj_aug_backsolve, y, 2, times, &np, NULL);
        nde__adj_copy(A, y->data, A->states + (int64_t)(i - 1) * S, S);
        if (i - 1 > 0) nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(i - 1) * S, y->data + S);
    }
    if (st != NDE_OK) return st;
    nde__adj_copy(A, A->a, y->data + S, S);
    if (A->P > 0) nde__adj_axpy(A, A->P, NDE_R(1.0), y->data + 2 * S, A->pbar);
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ INTERPOLATED
   y = [a, theta_bar], s(t) read from the forward interpolant. */
static nde_tensor *nde__adj_interp_state(nde__adj *A, double t) {
    const nde_step *st = A->cur_step;
    if (!st) {
        int64_t lo = 0, hi = A->num_steps - 1;
        while (lo < hi) {   /* last step starting at or before t */
            int64_t mid = (lo + hi + 1) / 2;
            if (nde__adj_before(A, t, A->dense[mid].t0)) hi = mid - 1; else lo = mid;
        }
        st = &A->dense[lo];
    }
    return nde__adj_step_interp(A->ctx, A->cur_tab, st, t);
}

static nde_tensor *nde__adj_aug_interp(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *u) {
    nde__adj *A = (nde__adj *)u;
    nde_tensor *out = nde_tensor_new(ctx, y->ndim, y->shape), *s;
    double tv = (double)nde_tensor_item(ctx, t, 0);
    nde_mark m;
    int was;
    if (!out) return NULL;
    nde__adj_zero(A, out->data, A->S + A->P);
    m = nde_ctx_mark(ctx);
    was = nde_set_grad_enabled(ctx, 0);
    s = nde__adj_interp_state(A, tv);
    nde_set_grad_enabled(ctx, was);
    if (s) nde__adj_F_vjp(A, tv, s->data, y->data, NDE_R(-1.0), NULL, out->data, A->P > 0 ? out->data + A->S : NULL);
    nde_ctx_reset(ctx, m);
    return nde_ctx_status(ctx) == NDE_OK ? out : NULL;
}

static void nde__adj_interp_norm(const nde__adj *A, nde__adj_norm_parts *np) {
    np->count = A->adj.seminorm ? 1 : 2;
    np->off[0] = 0; np->len[0] = A->S;
    np->off[1] = A->S; np->len[1] = A->P;
}

static nde_status nde__adj_sweep_interp_dense(nde__adj *A) {
    nde_ctx *ctx = A->ctx;
    int64_t S = A->S, M = A->S + A->P;
    nde_tensor *y = nde_tensor_zeros(ctx, 1, &M);
    nde__adj_norm_parts np;
    int i;
    nde_status st = NDE_OK;
    if (!y) return nde_ctx_status(ctx);
    nde__adj_interp_norm(A, &np);
    A->cur_step = NULL;
    A->cur_tab = A->mi->tableau;
    nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(A->num_ts - 1) * S, y->data);
    for (i = A->num_ts - 1; i >= 1 && st == NDE_OK; i--) {
        double times[2];
        times[0] = A->ts[i]; times[1] = A->ts[i - 1];
        st = nde__adj_back_solve(A, nde__adj_aug_interp, y, 2, times, &np, NULL);
        if (i - 1 > 0) nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(i - 1) * S, y->data);
    }
    if (st != NDE_OK) return st;
    nde__adj_copy(A, A->a, y->data, S);
    if (A->P > 0) nde__adj_axpy(A, A->P, NDE_R(1.0), y->data + S, A->pbar);
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ Gauss-Legendre quadrature
   y = [s, a] backwards (s re-anchored at the output times); the parameter
   gradient theta_bar = integral of a^T dF/dtheta dt is a Gauss-Legendre sum of
   VJPs at the nodes (Norcliffe & Deisenroth 2023, eq. for dL/dtheta). */
static nde_tensor *nde__adj_aug_gauss(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *u) {
    nde__adj *A = (nde__adj *)u;
    nde_tensor *out = nde_tensor_new(ctx, y->ndim, y->shape);
    if (!out) return NULL;
    nde__adj_zero(A, out->data + A->S, A->S);
    nde__adj_F_vjp(A, (double)nde_tensor_item(ctx, t, 0), y->data, y->data + A->S, NDE_R(-1.0), out->data,
               out->data + A->S, NULL);
    return nde_ctx_status(ctx) == NDE_OK ? out : NULL;
}

/* After each accepted reverse step of the interval's solve: the interval's
   nodes inside the step, from the step's interpolant (the values the solver
   would output there, without storing outputs): theta_bar += w_j a^T dF/dtheta. */
static nde_status nde__adj_gauss_interval_cb(nde_ctx *ctx, const nde_step *step, void *u) {
    nde__adj *A = (nde__adj *)u;
    double t_end = step->t0 + step->h;
    while (A->gauss_next < A->gauss_n && (step->h < 0.0 ? A->gauss_t[A->gauss_next] >= t_end
                                                          : A->gauss_t[A->gauss_next] <= t_end)) {
        double t = A->gauss_t[A->gauss_next];
        nde_mark m = nde_ctx_mark(ctx);
        int was = nde_set_grad_enabled(ctx, 0);
        nde_tensor *y = nde__adj_step_interp(ctx, A->bmi->tableau, step, t);
        nde_set_grad_enabled(ctx, was);
        if (y && A->P > 0)
            nde__adj_F_vjp(A, t, y->data, y->data + A->S, (nde_real)A->gauss_w[A->gauss_next], NULL, NULL, A->pbar);
        nde_ctx_reset(ctx, m);
        A->nodes++;
        A->gauss_next++;
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    }
    return NDE_OK;
}

static nde_status nde__adj_sweep_gauss(nde__adj *A) {
    nde_ctx *ctx = A->ctx;
    int64_t S = A->S, M = 2 * A->S;
    nde_tensor *y = nde_tensor_zeros(ctx, 1, &M);
    nde__adj_norm_parts np;
    double total = A->ts[A->num_ts - 1] - A->ts[0], x[NDE_GAUSS_MAX_NODES], w[NDE_GAUSS_MAX_NODES];
    int i, j;
    nde_status st = NDE_OK;
    if (!y) return nde_ctx_status(ctx);
    np.count = 2;
    np.off[0] = 0; np.len[0] = S;
    np.off[1] = S; np.len[1] = S;
    nde__adj_copy(A, y->data, A->states + (int64_t)(A->num_ts - 1) * S, S);
    nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(A->num_ts - 1) * S, y->data + S);
    for (i = A->num_ts - 1; i >= 1 && st == NDE_OK; i--) {
        double times[2], mid = 0.5 * (A->ts[i] + A->ts[i - 1]), half = 0.5 * (A->ts[i] - A->ts[i - 1]);
        int n = nde_gauss_interval_nodes(A->adj.gtol, A->nfe_forward, A->ts[i] - A->ts[i - 1], total);
        nde_gauss_legendre(n, x, w);
        for (j = 0; j < n; j++) {          /* from t_i towards t_{i-1} */
            A->gauss_t[j] = mid + half * x[n - 1 - j];
            A->gauss_w[j] = half * w[n - 1 - j];
        }
        A->gauss_n = n;
        A->gauss_next = 0;
        times[0] = A->ts[i]; times[1] = A->ts[i - 1];
        st = nde__adj_back_solve(A, nde__adj_aug_gauss, y, 2, times, &np, nde__adj_gauss_interval_cb);
        if (st == NDE_OK && A->gauss_next != n)
            st = nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_odeint_adjoint: %d of %d quadrature nodes were not reached",
                              n - A->gauss_next, n);
        nde__adj_copy(A, y->data, A->states + (int64_t)(i - 1) * S, S);
        if (i - 1 > 0) nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(i - 1) * S, y->data + S);
    }
    if (st != NDE_OK) return st;
    nde__adj_copy(A, A->a, y->data + S, S);
    return nde_ctx_status(ctx);
}

/* Per accepted reverse step [t0, t0 + h]: floor((order+1)/2) nodes on the
   step's own interpolant (SciMLSensitivity's GaussAdjoint). The step runs
   backwards, so the forward-oriented integral carries the factor -h/2. */
static nde_status nde__adj_gauss_step_cb(nde_ctx *ctx, const nde_step *step, void *u) {
    nde__adj *A = (nde__adj *)u;
    int j;
    if (A->P == 0) return NDE_OK;
    for (j = 0; j < A->gauss_n; j++) {
        double t = step->t0 + 0.5 * step->h * (1.0 + A->gauss_x[j]);
        nde_mark m = nde_ctx_mark(ctx);
        int was = nde_set_grad_enabled(ctx, 0);
        nde_tensor *y = nde__adj_step_interp(ctx, A->bmi->tableau, step, t);
        nde_set_grad_enabled(ctx, was);
        if (y) nde__adj_F_vjp(A, t, y->data, y->data + A->S, (nde_real)(-0.5 * step->h * A->gauss_w[j]), NULL, NULL, A->pbar);
        nde_ctx_reset(ctx, m);
        A->nodes++;
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    }
    return NDE_OK;
}

static nde_status nde__adj_sweep_gauss_step(nde__adj *A) {
    nde_ctx *ctx = A->ctx;
    int64_t S = A->S, M = 2 * A->S;
    nde_tensor *y = nde_tensor_zeros(ctx, 1, &M);
    nde__adj_norm_parts np;
    int i;
    nde_status st = NDE_OK;
    if (!y) return nde_ctx_status(ctx);
    A->gauss_n = A->adj.gauss_nodes > 0 ? A->adj.gauss_nodes : (A->bmi->order + 1) / 2;
    if (A->gauss_n < 1) A->gauss_n = 1;
    nde_gauss_legendre(A->gauss_n, A->gauss_x, A->gauss_w);
    np.count = 2;
    np.off[0] = 0; np.len[0] = S;
    np.off[1] = S; np.len[1] = S;
    nde__adj_copy(A, y->data, A->states + (int64_t)(A->num_ts - 1) * S, S);
    nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(A->num_ts - 1) * S, y->data + S);
    for (i = A->num_ts - 1; i >= 1 && st == NDE_OK; i--) {
        double times[2];
        times[0] = A->ts[i]; times[1] = A->ts[i - 1];
        st = nde__adj_back_solve(A, nde__adj_aug_gauss, y, 2, times, &np, nde__adj_gauss_step_cb);
        nde__adj_copy(A, y->data, A->states + (int64_t)(i - 1) * S, S);
        if (i - 1 > 0) nde__adj_axpy(A, S, NDE_R(1.0), A->G + (int64_t)(i - 1) * S, y->data + S);
    }
    if (st != NDE_OK) return st;
    nde__adj_copy(A, A->a, y->data + S, S);
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ checkpointed sweeps
   The forward solve recorded every accepted step's start and size; the
   backward pass replays explicit RK steps from binomial checkpoints (revolve)
   and visits the steps in reverse, each with its start state. */
static double nde__adj_step_end(const nde__adj *A, int64_t k) {
    return k + 1 < A->num_steps ? A->step_t0[k + 1] : A->ts[A->num_ts - 1];
}

static nde_status nde__adj_record_step_cb(nde_ctx *ctx, const nde_step *step, void *u) {
    nde__adj *A = (nde__adj *)u;
    if (A->num_steps == A->step_cap) {
        int64_t cap = A->step_cap ? 2 * A->step_cap : 256;
        double *t0 = (double *)NDE_REALLOC(A->step_t0, (size_t)cap * sizeof(double));
        double *h;
        if (t0) A->step_t0 = t0;
        h = t0 ? (double *)NDE_REALLOC(A->step_h, (size_t)cap * sizeof(double)) : NULL;
        if (!t0 || !h) return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_odeint_adjoint: out of memory recording %lld steps", (long long)cap);
        A->step_h = h;
        A->step_cap = cap;
    }
    A->step_t0[A->num_steps] = step->t0;
    A->step_h[A->num_steps] = step->h;
    A->num_steps++;
    return NDE_OK;
}

static nde_status nde__adj_advance(nde__adj *A, nde_tensor *cur, int64_t from, int64_t to) {
    nde_ctx *ctx = A->ctx;
    const nde_tableau *tab = A->mi->tableau;
    int64_t k;
    for (k = from; k < to; k++) {
        nde_mark m = nde_ctx_mark(ctx);
        int was = nde_set_grad_enabled(ctx, 0);
        nde_tensor *zn = NULL;
        nde_rk_step(ctx, tab, nde__adj_state_field, A, A->step_t0[k], cur, A->step_h[k], NULL, &zn, NULL, NULL);
        nde_set_grad_enabled(ctx, was);
        if (zn) nde__adj_copy(A, cur->data, zn->data, A->S);
        nde_ctx_reset(ctx, m);
        A->recomputed++;
        A->nfe_backward += tab->stages;
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    }
    return NDE_OK;
}

/* Outputs at exactly the end of step k are its end state: their cotangent
   goes straight into the adjoint a (length S, backend memory). */
static void nde__adj_outputs_at_end(nde__adj *A, int64_t k, nde_real *a) {
    double t1 = nde__adj_step_end(A, k);
    while (A->next_out >= 1 && A->ts[A->next_out] == t1) {
        nde__adj_axpy(A, A->S, NDE_R(1.0), A->G + (int64_t)A->next_out * A->S, a);
        A->next_out--;
    }
}

/* The end derivative the Hermite interpolant needs (FSAL: the last stage). */
static nde_tensor *nde__adj_end_derivative(nde__adj *A, const nde_tableau *tab, nde_tensor **stages, double t1, nde_tensor *y1) {
    nde_tensor *tt;
    if (tab->fsal) return stages[tab->stages - 1];
    tt = nde_tensor_scalar(A->ctx, (nde_real)t1);
    A->nfe_backward++;
    return tt ? nde__adj_state_field(A->ctx, tt, y1, A) : NULL;
}

/* CHECKPOINT: step k recorded on the tape from a leaf copy of x_k, outputs
   inside the step from its interpolant; one backward walk gives a(t_k). */
static nde_status nde__adj_reverse_direct(nde__adj *A, nde_tensor *cur, int64_t k) {
    nde_ctx *ctx = A->ctx;
    const nde_tableau *tab = A->mi->tableau;
    double t0 = A->step_t0[k], h = A->step_h[k], t1 = nde__adj_step_end(A, k);
    nde_mark m;
    int64_t start;
    nde_tensor *xl, *zn = NULL, *stages[NDE_RK_MAX_STAGES], *total, *one;
    nde_step st;
    int was;
    nde__adj_outputs_at_end(A, k, A->a);
    m = nde_ctx_mark(ctx);
    start = nde_tape_length(ctx);
    xl = nde_tensor_detach(ctx, cur);
    if (!xl) return nde_ctx_status(ctx);
    xl->requires_grad = 1;
    was = nde_set_grad_enabled(ctx, 1);
    nde_rk_step(ctx, tab, nde__adj_state_field, A, t0, xl, h, NULL, &zn, NULL, stages);
    A->nfe_backward += tab->stages;
    total = nde_sum(ctx, nde_mul(ctx, zn, nde__adj_view(ctx, A->a, A->sdim, A->sshape)));
    memset(&st, 0, sizeof st);
    st.t0 = t0; st.h = h; st.y0 = xl; st.y1 = zn;
    while (total && A->next_out >= 1 && nde__adj_before(A, t0, A->ts[A->next_out])) {
        nde_tensor *yi;
        if (!st.f0) {
            st.f0 = stages[0];
            if (tab->dense_degree > 0) { st.k = stages; st.num_k = tab->stages; }
            else st.f1 = nde__adj_end_derivative(A, tab, stages, t1, zn);
        }
        yi = nde__adj_step_interp(ctx, tab, &st, A->ts[A->next_out]);
        total = nde_add(ctx, total, nde_sum(ctx, nde_mul(ctx, yi, nde__adj_view(ctx, (nde_real *)A->G + (int64_t)A->next_out * A->S,
                                                                        A->sdim, A->sshape))));
        A->next_out--;
    }
    nde_set_grad_enabled(ctx, was);
    one = nde_tensor_scalar(ctx, NDE_R(1.0));
    if (total && one && total->requires_grad) nde_backward_seed(ctx, total, one, start);
    if (nde_ctx_status(ctx) == NDE_OK) {
        if (xl->grad) nde__adj_copy(A, A->a, xl->grad, A->S);
        else nde__adj_zero(A, A->a, A->S);
    }
    nde_ctx_reset(ctx, m);
    return nde_ctx_status(ctx);
}

/* INTERPOLATED with checkpoints: recompute step k (unrecorded) and integrate
   [a, theta_bar] backwards across it, reading s from the step's interpolant. */
static nde_status nde__adj_reverse_interp(nde__adj *A, nde_tensor *cur, int64_t k, nde_tensor *y, nde__adj_norm_parts *np) {
    nde_ctx *ctx = A->ctx;
    const nde_tableau *tab = A->mi->tableau;
    double t0 = A->step_t0[k], h = A->step_h[k], t1 = nde__adj_step_end(A, k), tau = t1;
    nde_mark m = nde_ctx_mark(ctx);
    nde_tensor *zn = NULL, *stages[NDE_RK_MAX_STAGES];
    nde_step st;
    nde_status s = NDE_OK;
    int was = nde_set_grad_enabled(ctx, 0);
    nde__adj_outputs_at_end(A, k, y->data);
    nde_rk_step(ctx, tab, nde__adj_state_field, A, t0, cur, h, NULL, &zn, NULL, stages);
    A->nfe_backward += tab->stages;
    A->recomputed++;
    memset(&st, 0, sizeof st);
    st.t0 = t0; st.h = h; st.y0 = cur; st.y1 = zn;
    if (zn) {
        st.f0 = stages[0];
        if (tab->dense_degree > 0) { st.k = stages; st.num_k = tab->stages; }
        else st.f1 = nde__adj_end_derivative(A, tab, stages, t1, zn);
    }
    nde_set_grad_enabled(ctx, was);
    A->cur_step = &st;
    A->cur_tab = tab;
    while (nde_ctx_status(ctx) == NDE_OK && s == NDE_OK && A->next_out >= 1 && nde__adj_before(A, t0, A->ts[A->next_out])) {
        double times[2];
        times[0] = tau; times[1] = A->ts[A->next_out];
        s = nde__adj_back_solve(A, nde__adj_aug_interp, y, 2, times, np, NULL);
        nde__adj_axpy(A, A->S, NDE_R(1.0), A->G + (int64_t)A->next_out * A->S, y->data);
        tau = A->ts[A->next_out];
        A->next_out--;
    }
    if (s == NDE_OK && nde_ctx_status(ctx) == NDE_OK && tau != t0) {
        double times[2];
        times[0] = tau; times[1] = t0;
        s = nde__adj_back_solve(A, nde__adj_aug_interp, y, 2, times, np, NULL);
    }
    A->cur_step = NULL;
    nde_ctx_reset(ctx, m);
    return s != NDE_OK ? s : nde_ctx_status(ctx);
}

typedef struct nde__adj_rv {
    nde__adj *A; nde_tensor **slots, *cur, *y; nde__adj_norm_parts *np;
} nde__adj_rv;

static nde_status nde__adj_rv_fn(void *u, nde_revolve_action action, int64_t step, int64_t to, int slot) {
    nde__adj_rv *R = (nde__adj_rv *)u;
    nde__adj *A = R->A;
    switch (action) {
    case NDE_REVOLVE_STORE: nde__adj_copy(A, R->slots[slot]->data, R->cur->data, A->S); break;
    case NDE_REVOLVE_RESTORE: nde__adj_copy(A, R->cur->data, R->slots[slot]->data, A->S); break;
    case NDE_REVOLVE_ADVANCE: return nde__adj_advance(A, R->cur, step, to);
    case NDE_REVOLVE_REVERSE:
        return R->y ? nde__adj_reverse_interp(A, R->cur, step, R->y, R->np) : nde__adj_reverse_direct(A, R->cur, step);
    }
    return nde_ctx_status(A->ctx);
}

static int nde__adj_default_checkpoints(int64_t steps) {
    int c = 1;
    while (((int64_t)1 << (c - 1)) < steps && c < 62) c++;
    return c + 1;
}

static nde_status nde__adj_sweep_revolve(nde__adj *A, int interp) {
    nde_ctx *ctx = A->ctx;
    int c = A->adj.checkpoints > 0 ? A->adj.checkpoints : nde__adj_default_checkpoints(A->num_steps), i;
    int64_t M = A->S + A->P;
    nde__adj_rv R;
    nde__adj_norm_parts np;
    nde_status st;
    memset(&R, 0, sizeof R);
    R.A = A;
    R.slots = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)c * sizeof(nde_tensor *));
    R.cur = nde_tensor_new(ctx, A->sdim, A->sshape);
    if (!R.slots || !R.cur) return nde_ctx_status(ctx);
    for (i = 0; i < c; i++) {
        R.slots[i] = nde_tensor_new(ctx, A->sdim, A->sshape);
        if (!R.slots[i]) return nde_ctx_status(ctx);
    }
    if (interp) {
        R.y = nde_tensor_zeros(ctx, 1, &M);
        if (!R.y) return nde_ctx_status(ctx);
        nde__adj_interp_norm(A, &np);
        R.np = &np;
    }
    nde__adj_copy(A, R.slots[0]->data, A->states, A->S);
    nde__adj_copy(A, R.cur->data, A->states, A->S);
    A->next_out = A->num_ts - 1;
    st = nde_revolve(A->num_steps, c, nde__adj_rv_fn, &R);
    if (st != NDE_OK) return nde_ctx_status(ctx) != NDE_OK ? nde_ctx_status(ctx) : st;
    if (A->next_out != 0)
        return nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_odeint_adjoint: %d output times were not matched to steps", A->next_out);
    if (interp) {
        nde__adj_copy(A, A->a, R.y->data, A->S);
        if (A->P > 0) nde__adj_axpy(A, A->P, NDE_R(1.0), R.y->data + A->S, A->pbar);
    }
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ time gradients
   dL/dt_i = G_i . F(t_i, s_i) for i >= 1 (moving an output time moves its
   sample along the trajectory); dL/dt_0 = -a(t_0) . F(t_0, s_0) with a(t_0)
   the adjoint without dL/ds(t_0) (moving the start shifts the whole solution). */
static void nde__adj_add_time_grad(nde__adj *A, nde_real *tg, int i, double value) {
    nde_ctx *ctx = A->ctx;
    nde_mark m = nde_ctx_mark(ctx);
    nde_tensor *v = nde_tensor_scalar(ctx, (nde_real)value);
    if (v) nde__adj_axpy(A, 1, NDE_R(1.0), v->data, tg + i);
    nde_ctx_reset(ctx, m);
}

static nde_status nde__adj_time_grads(nde__adj *A, nde_real *tg, const nde_real *a_excl, nde_real *const *state_of) {
    nde_ctx *ctx = A->ctx;
    nde_mark m = nde_ctx_mark(ctx);
    nde_real *tmp = nde_ctx_alloc_reals(ctx, A->S);
    int i;
    if (!tmp) return nde_ctx_status(ctx);
    for (i = A->G ? 1 : A->num_ts; i < A->num_ts; i++) {
        if (nde__adj_F_eval(A, A->ts[i], state_of[i], tmp) != NDE_OK) break;
        nde__adj_add_time_grad(A, tg, i, nde__adj_dot(A, A->S, A->G + (int64_t)i * A->S, tmp));
    }
    if (a_excl && A->num_ts > 1 && nde__adj_F_eval(A, A->ts[0], state_of[0], tmp) == NDE_OK)
        nde__adj_add_time_grad(A, tg, 0, -nde__adj_dot(A, A->S, a_excl, tmp));
    nde_ctx_reset(ctx, m);
    return nde_ctx_status(ctx);
}

/* Cotangents G (num_ts x S) of the states from the packed output's gradient. */
static nde_real *nde__adj_cotangents(nde__adj *A, const nde_real *og) {
    nde_real *G = nde_ctx_alloc_reals(A->ctx, (int64_t)A->num_ts * A->S);
    int i;
    if (!G) return NULL;
    nde__adj_zero(A, G, (int64_t)A->num_ts * A->S);
    for (i = 0; i < A->num_ts; i++) nde__adj_copy(A, G + (int64_t)i * A->S, og + (int64_t)i * A->N, A->N);
    if (A->packed) nde__adj_copy(A, G + (int64_t)(A->num_ts - 1) * A->S + A->N, og + (int64_t)A->num_ts * A->N, 1);
    return G;
}

static void nde__adj_report_backward(nde__adj *A) {
    nde_adjoint_stats *s = A->adj.stats;
    if (!s) return;
    s->nfe_backward = A->nfe_backward;
    s->steps_backward = A->steps_backward;
    s->recomputed_steps = A->recomputed;
    s->quadrature_nodes = A->nodes;
    s->backward_runs++;
}

/* ------------------------------------------------------------ the tape node */
static void nde__adj_backward(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *in, int num_in, void *saved) {
    nde__adj *A = (nde__adj *)saved;
    nde_real *z0g = NULL, *tg = NULL, **state_of;
    nde_mark m;
    nde_status st = NDE_OK;
    int i;
    (void)in; (void)num_in;
    if (nde_ctx_status(ctx) != NDE_OK || !out->grad) return;
    if (nde_params_count(ctx) != A->P) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: the parameter store changed between the solve (%lld reals) "
                     "and its backward pass (%lld)", (long long)A->P, (long long)nde_params_count(ctx));
        return;
    }
    if (A->z0->requires_grad) z0g = nde_tensor_grad(ctx, A->z0);
    if (A->t->requires_grad) tg = nde_tensor_grad(ctx, A->t);
    m = nde_ctx_mark(ctx);
    A->nfe_backward = A->steps_backward = A->recomputed = A->nodes = 0;
    A->G = nde__adj_cotangents(A, out->grad);
    A->a = nde_ctx_alloc_reals(ctx, A->S);
    A->pbar = A->P > 0 ? nde_ctx_alloc_reals(ctx, A->P) : NULL;
    state_of = (nde_real **)nde_ctx_alloc_host(ctx, (size_t)A->num_ts * sizeof(nde_real *));
    if (!A->G || !A->a || (A->P > 0 && !A->pbar) || !state_of) { nde_ctx_reset(ctx, m); return; }
    nde__adj_zero(A, A->a, A->S);
    nde__adj_zero(A, A->pbar, A->P);
    if (A->num_ts > 1) {
        switch (A->adj.mode) {
        case NDE_GRAD_CHECKPOINT: st = nde__adj_sweep_revolve(A, 0); break;
        case NDE_GRAD_BACKSOLVE: st = nde__adj_sweep_backsolve(A); break;
        case NDE_GRAD_INTERPOLATED: st = A->adj.checkpoints > 0 ? nde__adj_sweep_revolve(A, 1) : nde__adj_sweep_interp_dense(A); break;
        case NDE_GRAD_GAUSS: st = nde__adj_sweep_gauss(A); break;
        case NDE_GRAD_GAUSS_STEP: st = nde__adj_sweep_gauss_step(A); break;
        default: st = nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_odeint_adjoint: no backward sweep for mode %d", (int)A->adj.mode);
        }
    }
    if (st == NDE_OK && nde_ctx_status(ctx) == NDE_OK) {
        if (tg) {
            for (i = 0; i < A->num_ts; i++) state_of[i] = A->states + (int64_t)i * A->S;
            nde__adj_time_grads(A, tg, A->a, state_of);
        }
        if (z0g) {
            nde__adj_axpy(A, A->N, NDE_R(1.0), A->a, z0g);
            nde__adj_axpy(A, A->N, NDE_R(1.0), A->G, z0g);
        }
        if (A->P > 0) nde__adj_axpy(A, A->P, NDE_R(1.0), A->pbar, nde_params_grad(ctx));
    }
    nde__adj_report_backward(A);
    A->G = NULL; A->a = NULL; A->pbar = NULL;
    nde_ctx_reset(ctx, m);
}

/* ------------------------------------------------------------ DIRECT
   The solve is recorded by the solver; two thin nodes around it add the time
   gradients: the exit node passes the output gradient through (and adds
   dL/dt_i, i >= 1), the entry node (run last) passes a(t_0) to z0 and adds
   dL/dt_0. */
static void nde__adj_direct_exit_backward(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *in, int num_in, void *saved) {
    nde__adj *A = (nde__adj *)saved;
    nde_tensor *inner = in[0];
    nde_mark m;
    (void)num_in;
    if (nde_ctx_status(ctx) != NDE_OK || !out->grad) return;
    if (inner->requires_grad) {
        nde_real *g = nde_tensor_grad(ctx, inner);
        if (g) nde__adj_axpy(A, out->size, NDE_R(1.0), out->grad, g);
    }
    nde__adj_zero(A, A->g0, A->S);
    nde__adj_copy(A, A->g0, out->grad, A->N);                                 /* G_0 */
    if (A->packed) nde__adj_copy(A, A->g0 + A->N, out->grad + (int64_t)A->num_ts * A->N, 1);  /* q_bar */
    A->have_g0 = 1;
    if (A->t->requires_grad) {
        nde_real *tg = nde_tensor_grad(ctx, A->t), **state_of;
        int i;
        m = nde_ctx_mark(ctx);
        A->G = nde__adj_cotangents(A, out->grad);
        state_of = (nde_real **)nde_ctx_alloc_host(ctx, (size_t)A->num_ts * sizeof(nde_real *));
        if (A->G && state_of && tg) {
            for (i = 0; i < A->num_ts; i++) state_of[i] = A->inner_states[i]->data;
            nde__adj_time_grads(A, tg, NULL, state_of);
        }
        A->G = NULL;
        nde_ctx_reset(ctx, m);
    }
}

static void nde__adj_direct_entry_backward(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *in, int num_in, void *saved) {
    nde__adj *A = (nde__adj *)saved;
    nde_tensor *z0 = in[0];
    (void)num_in;
    if (nde_ctx_status(ctx) != NDE_OK || !out->grad) return;
    if (z0->requires_grad) {
        nde_real *g = nde_tensor_grad(ctx, z0);
        if (g) nde__adj_axpy(A, A->N, NDE_R(1.0), out->grad, g);
    }
    if (A->t->requires_grad && A->num_ts > 1) {
        nde_real *tg = nde_tensor_grad(ctx, A->t), *a, *state_of[1];   /* before the mark: it stays */
        nde_mark m = nde_ctx_mark(ctx);
        a = nde_ctx_alloc_reals(ctx, A->S);
        if (a && tg) {
            /* a(t_0) without G_0: z part = z0' gradient - G_0; q part = q_bar */
            nde__adj_zero(A, a, A->S);
            nde__adj_copy(A, a, out->grad, A->N);
            if (A->have_g0) {
                nde__adj_axpy(A, A->N, NDE_R(-1.0), A->g0, a);
                if (A->packed) nde__adj_copy(A, a + A->N, A->g0 + A->N, 1);
            }
            state_of[0] = A->inner_states[0]->data;
            A->G = NULL;         /* only dL/dt_0 here */
            nde__adj_time_grads(A, tg, a, state_of);
        }
        nde_ctx_reset(ctx, m);
    }
}

/* ------------------------------------------------------------ forward */
/* Pack the outputs: rows z(t_i) (N each) and, with a running loss, Q last. */
static nde_tensor *nde__adj_user_outputs(nde__adj *A, nde_tensor *packed, nde_tensor **integral) {
    nde_ctx *ctx = A->ctx;
    int64_t shape[NDE_MAX_DIMS], nN = (int64_t)A->num_ts * A->N;
    int i;
    nde_tensor *y;
    shape[0] = A->num_ts;
    for (i = 0; i < A->zdim; i++) shape[i + 1] = A->zshape[i];
    y = A->packed ? nde_slice(ctx, packed, 0, 0, nN) : packed;
    y = nde_reshape(ctx, y, A->zdim + 1, shape);
    if (A->packed && integral) *integral = nde_slice(ctx, packed, 0, nN, nN + 1);
    return y;
}

static int nde__adj_needs_node(nde__adj *A) {
    return nde_grad_enabled(A->ctx) && (A->z0->requires_grad || A->t->requires_grad || A->P > 0);
}

/* The initial state s0 = z0 or [z0; 0] (recorded when grad mode is on). */
static nde_tensor *nde__adj_initial_state(nde__adj *A, nde_tensor *z0) {
    nde_ctx *ctx = A->ctx;
    nde_tensor *parts[2];
    int64_t n = A->N, one = 1;
    if (!A->packed) return z0;
    parts[0] = nde_reshape(ctx, z0, 1, &n);
    parts[1] = nde_tensor_zeros(ctx, 1, &one);
    return nde_concat(ctx, 2, parts, 0);
}

static nde_tensor *nde__adj_forward_direct(nde__adj *A, nde_tensor **integral) {
    nde_ctx *ctx = A->ctx;
    int rec = nde__adj_needs_node(A), i, count = A->num_ts + (A->packed ? 1 : 0);
    nde_tensor *z0e = A->z0, *s0, *inner, *outp, **parts;
    nde_solution sol;
    int64_t n = A->N;
    if (rec) {
        nde_tensor *ins[2];
        A->g0 = nde_ctx_alloc_reals(ctx, A->S);
        z0e = nde_tensor_detach(ctx, A->z0);
        ins[0] = A->z0; ins[1] = A->t;
        if (!A->g0 || !z0e || nde_tape_custom(ctx, nde__adj_direct_entry_backward, z0e, 2, ins, A) != NDE_OK) return NULL;
    }
    s0 = nde__adj_initial_state(A, z0e);
    A->inner_states = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)A->num_ts * sizeof(nde_tensor *));
    parts = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(nde_tensor *));
    if (!s0 || !A->inner_states || !parts) return NULL;
    memset(&sol, 0, sizeof sol);
    if (A->num_ts == 1) {
        A->inner_states[0] = s0;
    } else {
        if (nde_solve(ctx, nde__adj_state_field, A, s0, A->num_ts, A->ts, &A->fopt, &sol) != NDE_OK) {
            nde_solution_free(ctx, &sol);
            return NULL;
        }
        for (i = 0; i < A->num_ts; i++) A->inner_states[i] = sol.ys[i];
        A->nfe_forward = sol.stats.nfe;
        A->steps_forward = sol.stats.accepted;
        nde_solution_free(ctx, &sol);
    }
    for (i = 0; i < A->num_ts; i++)
        parts[i] = A->packed ? nde_slice(ctx, A->inner_states[i], 0, 0, A->N) : nde_reshape(ctx, A->inner_states[i], 1, &n);
    if (A->packed) parts[A->num_ts] = nde_slice(ctx, A->inner_states[A->num_ts - 1], 0, A->N, A->N + 1);
    inner = nde_concat(ctx, count, parts, 0);
    if (!inner) return NULL;
    outp = inner;
    if (rec) {
        nde_tensor *ins[2];
        outp = nde_tensor_detach(ctx, inner);
        ins[0] = inner; ins[1] = A->t;
        if (!outp || nde_tape_custom(ctx, nde__adj_direct_exit_backward, outp, 2, ins, A) != NDE_OK) return NULL;
    }
    return nde__adj_user_outputs(A, outp, integral);
}

/* Copy the untaped solution's dense output into the work arena (so that it
   is released with the tape), sharing end values between neighbours. */
static nde_status nde__adj_keep_dense(nde__adj *A, const nde_solution *sol) {
    nde_ctx *ctx = A->ctx;
    int64_t k;
    int i;
    A->num_steps = sol->num_steps;
    A->dense = (nde_step *)nde_ctx_alloc_host(ctx, (size_t)(sol->num_steps > 0 ? sol->num_steps : 1) * sizeof(nde_step));
    if (!A->dense) return nde_ctx_status(ctx);
    for (k = 0; k < sol->num_steps; k++) {
        const nde_step *s = &sol->steps[k];
        nde_step *d = &A->dense[k];
        memset(d, 0, sizeof *d);
        d->t0 = s->t0; d->h = s->h;
        d->y0 = k > 0 ? A->dense[k - 1].y1 : nde_tensor_detach(ctx, s->y0);
        d->y1 = nde_tensor_detach(ctx, s->y1);
        if (s->num_k > 0) {
            d->k = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)s->num_k * sizeof(nde_tensor *));
            if (!d->k) return nde_ctx_status(ctx);
            d->num_k = s->num_k;
            for (i = 0; i < s->num_k; i++) d->k[i] = nde_tensor_detach(ctx, s->k[i]);
        } else {
            d->f0 = k > 0 && A->dense[k - 1].f1 ? A->dense[k - 1].f1 : nde_tensor_detach(ctx, s->f0);
            d->f1 = nde_tensor_detach(ctx, s->f1);
        }
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    }
    return NDE_OK;
}

static nde_tensor *nde__adj_forward_untaped(nde__adj *A, nde_tensor **integral) {
    nde_ctx *ctx = A->ctx;
    int64_t nN = (int64_t)A->num_ts * A->N, plen = nN + (A->packed ? 1 : 0);
    int i, was, grid = A->adj.mode == NDE_GRAD_CHECKPOINT || (A->adj.mode == NDE_GRAD_INTERPOLATED && A->adj.checkpoints > 0);
    int dense = A->adj.mode == NDE_GRAD_INTERPOLATED && A->adj.checkpoints == 0;
    nde_tensor *packed = nde_tensor_new(ctx, 1, &plen), *s0;
    nde_solution sol;
    nde_status st = NDE_OK;
    A->states = nde_ctx_alloc_reals(ctx, (int64_t)A->num_ts * A->S);
    if (!packed || !A->states) return NULL;
    was = nde_set_grad_enabled(ctx, 0);
    s0 = nde__adj_initial_state(A, A->z0);
    if (s0) nde__adj_copy(A, A->states, s0->data, A->S);
    memset(&sol, 0, sizeof sol);
    if (s0 && A->num_ts > 1) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_solve_options o = A->fopt;
        o.dense = dense;
        o.on_step = grid ? nde__adj_record_step_cb : NULL;
        o.on_step_user = A;
        st = nde_solve(ctx, nde__adj_state_field, A, s0, A->num_ts, A->ts, &o, &sol);
        if (st == NDE_OK)
            for (i = 0; i < A->num_ts; i++) nde__adj_copy(A, A->states + (int64_t)i * A->S, sol.ys[i]->data, A->S);
        A->nfe_forward = sol.stats.nfe;
        A->steps_forward = sol.stats.accepted;
        nde_ctx_reset(ctx, m);
        if (st == NDE_OK && dense) st = nde__adj_keep_dense(A, &sol);
        nde_solution_free(ctx, &sol);
    }
    if (grid) {
        double *t0 = NULL, *h = NULL;
        if (st == NDE_OK && A->num_steps > 0) {
            t0 = (double *)nde_ctx_alloc_host(ctx, (size_t)A->num_steps * sizeof(double));
            h = (double *)nde_ctx_alloc_host(ctx, (size_t)A->num_steps * sizeof(double));
            if (t0 && h) {
                memcpy(t0, A->step_t0, (size_t)A->num_steps * sizeof(double));
                memcpy(h, A->step_h, (size_t)A->num_steps * sizeof(double));
            }
        }
        NDE_FREE(A->step_t0);
        NDE_FREE(A->step_h);
        A->step_t0 = t0; A->step_h = h;
    }
    nde_set_grad_enabled(ctx, was);
    if (st != NDE_OK || nde_ctx_status(ctx) != NDE_OK) return NULL;
    for (i = 0; i < A->num_ts; i++) nde__adj_copy(A, packed->data + (int64_t)i * A->N, A->states + (int64_t)i * A->S, A->N);
    if (A->packed) nde__adj_copy(A, packed->data + nN, A->states + (int64_t)(A->num_ts - 1) * A->S + A->N, 1);
    if (nde__adj_needs_node(A)) {
        nde_tensor *ins[2];
        ins[0] = A->z0; ins[1] = A->t;
        if (nde_tape_custom(ctx, nde__adj_backward, packed, 2, ins, A) != NDE_OK) return NULL;
    }
    return nde__adj_user_outputs(A, packed, integral);
}

/* ------------------------------------------------------------ entry point */
static double *nde__adj_copy_times(nde_ctx *ctx, const double *src, int n) {
    double *d;
    if (!src || n <= 0) return NULL;
    d = (double *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(double));
    if (d) memcpy(d, src, (size_t)n * sizeof(double));
    return d;
}

static nde_status nde__adj_check_modes(nde_ctx *ctx, const nde_adjoint_options *ad, const nde_method_info *mi,
                                   const nde_method_info *bmi) {
    const char *mode = nde_grad_mode_name(ad->mode);
    int backward_solve = ad->mode == NDE_GRAD_BACKSOLVE || ad->mode == NDE_GRAD_INTERPOLATED ||
                         ad->mode == NDE_GRAD_GAUSS || ad->mode == NDE_GRAD_GAUSS_STEP;
    if ((ad->mode == NDE_GRAD_CHECKPOINT || (ad->mode == NDE_GRAD_INTERPOLATED && ad->checkpoints > 0)) &&
        mi->kind != NDE_KIND_ERK)
        return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_odeint_adjoint: gradient mode '%s' with checkpoints replays "
                            "explicit Runge-Kutta steps; method %s is not one (use 'direct', or 'interp' with "
                            "checkpoints = 0)", mode, mi->name);
    if (backward_solve && bmi->implicit)
        return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_odeint_adjoint: the backward solve of mode '%s' cannot use "
                            "the implicit method %s (its Newton iteration would need second derivatives of f); set "
                            "nde_adjoint_options.method to an explicit method such as NDE_DOPRI5", mode, bmi->name);
    if (ad->checkpoints < 0 || ad->gtol < 0.0 || ad->gauss_nodes < 0 || ad->gauss_nodes > NDE_GAUSS_MAX_NODES ||
        ad->rtol < 0.0 || ad->atol < 0.0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: bad adjoint options: checkpoints %d, gtol %g, "
                            "gauss_nodes %d (0..%d), rtol %g, atol %g", ad->checkpoints, ad->gtol, ad->gauss_nodes,
                            NDE_GAUSS_MAX_NODES, ad->rtol, ad->atol);
    return NDE_OK;
}

NDE_API nde_tensor *nde_odeint_adjoint(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, nde_tensor *t,
                                       const nde_solve_options *opts, const nde_adjoint_options *adj,
                                       nde_tensor **integral) {
    nde_adjoint_options ad = adj ? *adj : nde_adjoint_options_default(NDE_GRAD_BACKSOLVE);
    nde_solve_options fo = opts ? *opts : nde_solve_options_default();
    const nde_method_info *mi, *bmi;
    nde__adj *A;
    nde_real *thost;
    nde_tensor *y;
    int i;
    char s1[64];
    if (integral) *integral = NULL;
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!f || !z0 || !t) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: NULL field, z0 or t"); return NULL; }
    if (t->ndim != 1 || t->size < 1 || t->size > 1000000000) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_odeint_adjoint: t must be a non-empty 1-D tensor of times, got %s",
                     nde_shape_str(t, s1, sizeof s1));
        return NULL;
    }
    if (z0->ndim > NDE_MAX_DIMS - 1) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_odeint_adjoint: z0 %s has %d dimensions; at most %d (the output stacks times "
                     "on a new axis)", nde_shape_str(z0, s1, sizeof s1), z0->ndim, NDE_MAX_DIMS - 1);
        return NULL;
    }
    if ((int)ad.mode < 0 || (int)ad.mode >= NDE_GRAD_MODE_COUNT) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: unknown gradient mode %d", (int)ad.mode);
        return NULL;
    }
    if (ad.running_loss && !integral) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: a running loss needs the integral output argument");
        return NULL;
    }
    if (fo.event) {
        nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_odeint_adjoint: events are not supported in differentiable solves");
        return NULL;
    }
    mi = nde_method_get(fo.method);
    bmi = nde_method_get(ad.method == NDE_ADJOINT_SAME_METHOD ? fo.method : (nde_method)ad.method);
    if (!mi || !bmi) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: unknown method %d (adjoint method %d)", (int)fo.method, ad.method);
        return NULL;
    }
    if (nde__adj_check_modes(ctx, &ad, mi, bmi) != NDE_OK) return NULL;
    if (ad.gtol == 0.0) ad.gtol = 0.1;
    A = (nde__adj *)nde_ctx_alloc_host(ctx, sizeof(nde__adj));
    thost = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)t->size * sizeof(nde_real));
    if (!A || !thost) return NULL;
    memset(A, 0, sizeof *A);
    A->ctx = ctx; A->f = f; A->user = user;
    A->loss = ad.running_loss; A->loss_user = ad.running_loss_user;
    A->adj = ad; A->mi = mi; A->bmi = bmi;
    A->brtol = ad.rtol > 0.0 ? ad.rtol : fo.rtol;
    A->batol = ad.atol > 0.0 ? ad.atol : fo.atol;
    A->z0 = z0; A->t = t;
    A->packed = ad.running_loss != NULL;
    A->zdim = z0->ndim;
    for (i = 0; i < NDE_MAX_DIMS; i++) A->zshape[i] = z0->shape[i];
    A->N = z0->size;
    A->S = A->N + (A->packed ? 1 : 0);
    A->sdim = A->packed ? 1 : A->zdim;
    for (i = 0; i < NDE_MAX_DIMS; i++) A->sshape[i] = A->packed ? (i == 0 ? A->S : 1) : A->zshape[i];
    A->P = nde_params_count(ctx);
    A->num_ts = (int)t->size;
    A->ts = (double *)nde_ctx_alloc_host(ctx, (size_t)A->num_ts * sizeof(double));
    if (!A->ts || nde_tensor_to_host(ctx, t, thost) != NDE_OK) return NULL;
    for (i = 0; i < A->num_ts; i++) A->ts[i] = (double)thost[i];
    A->dir = A->num_ts > 1 && A->ts[A->num_ts - 1] < A->ts[0] ? -1.0 : 1.0;
    for (i = 1; i < A->num_ts; i++)
        if (!nde__adj_before(A, A->ts[i - 1], A->ts[i])) {
            nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_adjoint: the times must be strictly monotonic: t[%d] = %.17g, "
                         "t[%d] = %.17g", i - 1, A->ts[i - 1], i, A->ts[i]);
            return NULL;
        }
    A->fopt = fo;
    A->fopt.dense = 0;
    A->fopt.record_steps = 0;
    A->fopt.on_step = NULL;
    A->fopt.step_ts = nde__adj_copy_times(ctx, fo.step_ts, fo.num_step_ts);
    A->fopt.jump_ts = nde__adj_copy_times(ctx, fo.jump_ts, fo.num_jump_ts);
    A->fopt.grid = nde__adj_copy_times(ctx, fo.grid, fo.grid_len);
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    y = ad.mode == NDE_GRAD_DIRECT ? nde__adj_forward_direct(A, integral) : nde__adj_forward_untaped(A, integral);
    if (ad.stats && y) {
        memset(ad.stats, 0, sizeof *ad.stats);
        ad.stats->nfe_forward = A->nfe_forward;
        ad.stats->steps_forward = A->steps_forward;
    }
    return y;
}

#endif /* NDE_ADJOINT_IMPLEMENTATION */
