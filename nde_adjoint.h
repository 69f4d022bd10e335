/* nde_adjoint.h - v0.1.0 - differentiable ODE solves for nde, with every gradient mode
   License: MIT (see the end of nde.h).

   (Work in progress: this part holds the solver-independent pieces: Gauss-Legendre
   rules, binomial checkpoint schedules and the field VJP helper.)
*/
#ifndef NDE_ADJOINT_H
#define NDE_ADJOINT_H

#include "nde.h"

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
#include <string.h>

/* ------------------------------------------------------------ Gauss-Legendre */
/* P_n(x) and P_n'(x) by the three-term recurrence (k P_k = (2k-1) x P_{k-1} - (k-1) P_{k-2}). */
static void nde__legendre(int n, long double x, long double *p, long double *dp) {
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
            nde__legendre(n, x, &p, &dp);
            dx = p / dp;
            x -= dx;
            if (fabsl(dx) <= 1e-19L) break;
        }
        if (n % 2 == 1 && i == half - 1) x = 0.0L;   /* the middle root is exactly 0 */
        nde__legendre(n, x, &p, &dp);
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
static nde_status nde__revolve(int64_t a, int64_t b, int s, int slot, nde_revolve_fn fn, void *user) {
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
            if ((st = nde__revolve(m, b, s - 1, slot + 1, fn, user)) != NDE_OK) return st;
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
    return nde__revolve(0, steps, checkpoints, 0, fn, user);
}

#endif /* NDE_ADJOINT_IMPLEMENTATION */
