/* tests/test_adjoint.c - nde_adjoint.h: Gauss-Legendre rules, binomial checkpoint
   schedules, and every gradient mode of the differentiable solve against central
   finite differences (double) and against each other. */
#define NDE_IMPLEMENTATION
#include "../nde_adjoint.h"
#include "nde_test.h"
#include <stdlib.h>

/* ---------------------------------------------------------------- Gauss-Legendre */
static void test_gauss_legendre_closed_forms(void) {
    double x[NDE_GAUSS_MAX_NODES], w[NDE_GAUSS_MAX_NODES];
    double s35 = sqrt(3.0 / 5.0);
    double a4 = sqrt(3.0 / 7.0 - 2.0 / 7.0 * sqrt(6.0 / 5.0)), b4 = sqrt(3.0 / 7.0 + 2.0 / 7.0 * sqrt(6.0 / 5.0));
    double wa4 = (18.0 + sqrt(30.0)) / 36.0, wb4 = (18.0 - sqrt(30.0)) / 36.0;
    double a5 = sqrt(5.0 - 2.0 * sqrt(10.0 / 7.0)) / 3.0, b5 = sqrt(5.0 + 2.0 * sqrt(10.0 / 7.0)) / 3.0;
    double wa5 = (322.0 + 13.0 * sqrt(70.0)) / 900.0, wb5 = (322.0 - 13.0 * sqrt(70.0)) / 900.0;
    CHECK(nde_gauss_legendre(1, x, w) == NDE_OK);
    CHECK_NEAR(x[0], 0.0, 1e-16, 0); CHECK_NEAR(w[0], 2.0, 1e-16, 0);
    CHECK(nde_gauss_legendre(2, x, w) == NDE_OK);
    CHECK_NEAR(x[0], -1.0 / sqrt(3.0), 2e-16, 0); CHECK_NEAR(x[1], 1.0 / sqrt(3.0), 2e-16, 0);
    CHECK_NEAR(w[0], 1.0, 2e-16, 0); CHECK_NEAR(w[1], 1.0, 2e-16, 0);
    CHECK(nde_gauss_legendre(3, x, w) == NDE_OK);
    CHECK_NEAR(x[0], -s35, 2e-16, 0); CHECK(x[1] == 0.0); CHECK_NEAR(x[2], s35, 2e-16, 0);
    CHECK_NEAR(w[0], 5.0 / 9.0, 2e-16, 0); CHECK_NEAR(w[1], 8.0 / 9.0, 2e-16, 0); CHECK_NEAR(w[2], 5.0 / 9.0, 2e-16, 0);
    CHECK(nde_gauss_legendre(4, x, w) == NDE_OK);
    CHECK_NEAR(x[0], -b4, 2e-16, 0); CHECK_NEAR(x[1], -a4, 2e-16, 0); CHECK_NEAR(x[2], a4, 2e-16, 0); CHECK_NEAR(x[3], b4, 2e-16, 0);
    CHECK_NEAR(w[0], wb4, 3e-16, 0); CHECK_NEAR(w[1], wa4, 3e-16, 0); CHECK_NEAR(w[2], wa4, 3e-16, 0); CHECK_NEAR(w[3], wb4, 3e-16, 0);
    CHECK(nde_gauss_legendre(5, x, w) == NDE_OK);
    CHECK_NEAR(x[0], -b5, 2e-16, 0); CHECK_NEAR(x[1], -a5, 2e-16, 0); CHECK(x[2] == 0.0);
    CHECK_NEAR(x[3], a5, 2e-16, 0); CHECK_NEAR(x[4], b5, 2e-16, 0);
    CHECK_NEAR(w[0], wb5, 3e-16, 0); CHECK_NEAR(w[1], wa5, 3e-16, 0); CHECK_NEAR(w[2], 128.0 / 225.0, 3e-16, 0);
    CHECK(nde_gauss_legendre(0, x, w) == NDE_ERR_ARG);
    CHECK(nde_gauss_legendre(65, x, w) == NDE_ERR_ARG);
}

/* Every rule n = 1..64 integrates x^k exactly for k <= 2n-1 (to rounding) and
   misses x^(2n) by the known error term. */
static void test_gauss_legendre_exactness(void) {
    double x[NDE_GAUSS_MAX_NODES], w[NDE_GAUSS_MAX_NODES], worst = 0.0, worst_sorted = 1.0, worst_miss = 1.0;
    int n, i, k;
    for (n = 1; n <= NDE_GAUSS_MAX_NODES; n++) {
        long double q;
        if (nde_gauss_legendre(n, x, w) != NDE_OK) { CHECK(0); return; }
        for (i = 1; i < n; i++) if (x[i] <= x[i - 1] || w[i] <= 0.0) worst_sorted = -1.0;
        for (k = 0; k <= 2 * n - 1; k++) {
            double exact = (k % 2) ? 0.0 : 2.0 / (k + 1), err;
            q = 0.0L;
            for (i = 0; i < n; i++) q += (long double)w[i] * powl((long double)x[i], (long double)k);
            err = fabs((double)q - exact) / (exact != 0.0 ? exact : 1.0);
            if (err > worst) worst = err;
        }
        if (n <= 10) {   /* degree 2n: the error is 2^(2n+1) (n!)^4 / ((2n+1) ((2n)!)^2) */
            double lg = lgamma(n + 1.0), lg2 = lgamma(2.0 * n + 1.0);
            double expect = exp((2 * n + 1) * log(2.0) + 4 * lg - log(2.0 * n + 1) - 2 * lg2), miss;
            q = 0.0L;
            for (i = 0; i < n; i++) q += (long double)w[i] * powl((long double)x[i], (long double)(2 * n));
            miss = fabs((2.0 / (2 * n + 1) - (double)q) / expect - 1.0);
            if (miss > worst_miss || n == 1) worst_miss = miss;
        }
    }
    CHECK(worst_sorted > 0.0);
    CHECK(worst < 1e-14);
    CHECK(worst_miss < 1e-9);    /* degree 2n misses by exactly the Gauss error term */
}

/* ---------------------------------------------------------------- revolve */
typedef struct rv_sim {
    int64_t steps; int slots; int64_t slot_state[64]; int64_t current;
    int64_t advances, next_reverse, max_slot; int bad;
} rv_sim;
static nde_status rv_sim_fn(void *user, nde_revolve_action action, int64_t step, int64_t to, int slot) {
    rv_sim *s = (rv_sim *)user;
    if (slot < 0 || slot >= s->slots) { s->bad = 1; return NDE_ERR_INTERNAL; }
    if (slot > s->max_slot) s->max_slot = slot;
    switch (action) {
    case NDE_REVOLVE_STORE: if (s->current != step) s->bad = 2; s->slot_state[slot] = s->current; break;
    case NDE_REVOLVE_RESTORE: if (s->slot_state[slot] != step) s->bad = 3; s->current = s->slot_state[slot]; break;
    case NDE_REVOLVE_ADVANCE:
        if (s->current != step || to <= step || to > s->steps) s->bad = 4;
        s->advances += to - step; s->current = to; break;
    case NDE_REVOLVE_REVERSE:
        if (s->current != step || step != s->next_reverse || to != step + 1) s->bad = 5;
        s->next_reverse--; s->current = -1; break;
    }
    return s->bad ? NDE_ERR_INTERNAL : NDE_OK;
}
/* Brute force: fewest advances to reverse l steps with s slots (state at start stored). */
static int64_t rv_dp[80][8];
static int64_t rv_brute(int l, int s) {
    int m; int64_t best = INT64_MAX;
    if (l == 1) return 0;
    if (rv_dp[l][s] >= 0) return rv_dp[l][s];
    for (m = 1; m < l; m++) {
        int64_t right, c;
        if (l - m > 1 && s < 2) continue;
        right = (l - m > 1) ? rv_brute(l - m, s - 1) : 0;
        c = m + right + rv_brute(m, s);
        if (c < best) best = c;
    }
    rv_dp[l][s] = best;
    return best;
}
static void test_revolve(void) {
    int l, s, bad = 0, notopt = 0;
    memset(rv_dp, 0xff, sizeof rv_dp);
    /* closed form: p(l, 1) = l(l-1)/2; p(l, s >= l) = l - 1 */
    CHECK(nde_revolve_cost(10, 1) == 45);
    CHECK(nde_revolve_cost(10, 10) == 9);
    CHECK(nde_revolve_beta(3, 2) == 10);
    CHECK(nde_revolve_repetitions(10, 3) == 2);
    CHECK(nde_revolve_repetitions(11, 3) == 3);
    for (l = 1; l < 80; l++)
        for (s = 1; s < 8; s++) {
            rv_sim sim; nde_status st;
            memset(&sim, 0, sizeof sim);
            sim.steps = l; sim.slots = s; sim.slot_state[0] = 0; sim.current = 0; sim.next_reverse = l - 1;
            st = nde_revolve(l, s, rv_sim_fn, &sim);
            if (st != NDE_OK || sim.bad || sim.next_reverse != -1 || sim.advances != nde_revolve_cost(l, s)) bad++;
            if (sim.advances != rv_brute(l, s)) notopt++;
        }
    CHECK(bad == 0);
    CHECK(notopt == 0);
    {   /* a long chain: 10000 steps, 8 slots: C(15,7) = 6435 < 10000 <= C(16,8) = 12870, t = 8 */
        rv_sim sim; memset(&sim, 0, sizeof sim);
        sim.steps = 10000; sim.slots = 8; sim.next_reverse = 9999;
        CHECK(nde_revolve(10000, 8, rv_sim_fn, &sim) == NDE_OK);
        CHECK(sim.bad == 0 && sim.next_reverse == -1);
        CHECK(nde_revolve_repetitions(10000, 8) == 8);
        CHECK(sim.advances == 8 * 10000 - nde_revolve_beta(9, 7));
        CHECK(sim.max_slot == 7);
    }
    CHECK(nde_revolve(5, 0, rv_sim_fn, NULL) == NDE_ERR_ARG);
}

/* ---------------------------------------------------------------- custom tape node */
/* out = 3 x (custom node); backward uses nde_vjp on its own mini-graph. */
static nde_tensor *cn_inner(nde_ctx *ctx, nde_tensor *x, void *user) { (void)user; return nde_scale(ctx, x, NDE_R(3.0)); }
static void cn_backward(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *in, int n, void *saved) {
    nde_tensor *v = nde_tensor_from(ctx, out->ndim, out->shape, out->grad), *xb = NULL;
    nde_real *g;
    (void)saved; (void)n;
    if (!in[0]->requires_grad || !v) return;
    g = nde_tensor_grad(ctx, in[0]);
    if (nde_vjp(ctx, cn_inner, NULL, in[0], v, NULL, &xb, NULL) != NDE_OK || !g) return;
    {
        int64_t i; nde_real *hb = (nde_real *)malloc((size_t)xb->size * sizeof(nde_real));
        nde_tensor_to_host(ctx, xb, hb);
        for (i = 0; i < xb->size; i++) g[i] += hb[i];   /* CPU backend */
        free(hb);
    }
}
static void test_custom_node(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t shape[1] = {3};
    nde_real xv[3] = {1, 2, 3};
    nde_tensor *x = nde_tensor_from(ctx, 1, shape, xv), *y, *ins[1], *loss;
    x->requires_grad = 1;
    y = nde_tensor_new(ctx, 1, shape);
    nde_tensor_fill(ctx, y, NDE_R(0.0));
    ins[0] = x;
    CHECK(nde_tape_custom(ctx, cn_backward, y, 1, ins, NULL) == NDE_OK);
    CHECK(y->requires_grad == 1);
    loss = nde_sum(ctx, nde_square(ctx, nde_add_scalar(ctx, y, NDE_R(1.0))));   /* d/dy = 2 (y+1) = 2 */
    CHECK(nde_backward(ctx, loss) == NDE_OK);
    CHECK(x->grad != NULL);
    if (x->grad) { CHECK_NEAR(x->grad[0], 6.0, 1e-6, 0); CHECK_NEAR(x->grad[2], 6.0, 1e-6, 0); }
    CHECK(nde_tape_custom(ctx, cn_backward, y, 7, ins, NULL) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "nde_tape_custom");
    nde_ctx_free(ctx);
}

int main(void) {
    test_custom_node();
    test_gauss_legendre_closed_forms();
    test_gauss_legendre_exactness();
    test_revolve();
    return nde_test_finish("test_adjoint");
}
