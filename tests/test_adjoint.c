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

/* ---------------------------------------------------------------- differentiable solves
   A problem: a field with its parameters, an initial state, output times and
   an optional running loss; the loss is L = sum(W * Y) + qw * Q with fixed
   weights W. Gradients of every mode are compared with central differences of
   a tight solve (the exact flow), within a tolerance tied to the solver's
   accuracy, and with each other. */
typedef struct prob {
    const char *name;
    nde_field_fn f;
    void (*make_params)(nde_ctx *ctx, struct prob *p);
    nde_field_fn running;      /* NULL: no integral loss */
    int zdim; int64_t zshape[2];
    nde_real z0[8];
    int num_ts; double ts[6];
    double qw;
    nde_tensor *pa, *pb;       /* parameters the field reads */
    nde_mlp mlp;
} prob;

/* constant: f = c */
static nde_tensor *f_const(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    prob *p = (prob *)u; (void)t;
    return nde_add(ctx, nde_scale(ctx, z, NDE_R(0.0)), p->pa);
}
static void mk_const(nde_ctx *ctx, prob *p) {
    int64_t two = 2; nde_real c[2] = {NDE_R(0.7), NDE_R(-1.3)};
    p->pa = nde_param_new(ctx, "c", 1, &two);
    nde_tensor_set_host(ctx, p->pa, c);
}
/* linear: f = z A^T */
static nde_tensor *f_linear(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    prob *p = (prob *)u; (void)t;
    return nde_matmul(ctx, z, p->pa, 0, 1);
}
static void mk_linear(nde_ctx *ctx, prob *p) {
    int64_t sh[2] = {2, 2}; nde_real a[4] = {NDE_R(-0.3), NDE_R(1.1), NDE_R(-1.1), NDE_R(-0.3)};
    p->pa = nde_param_new(ctx, "A", 2, sh);
    nde_tensor_set_host(ctx, p->pa, a);
}
/* sine: f = a sin(z) + b sin(t) (time dependent, for the time gradients) */
static nde_tensor *f_sine(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    prob *p = (prob *)u;
    return nde_add(ctx, nde_mul(ctx, nde_sin(ctx, z), p->pa), nde_mul(ctx, nde_sin(ctx, t), p->pb));
}
static void mk_sine(nde_ctx *ctx, prob *p) {
    int64_t one = 1; nde_real a = NDE_R(0.8), b = NDE_R(0.5);
    p->pa = nde_param_new(ctx, "a", 1, &one);
    p->pb = nde_param_new(ctx, "b", 1, &one);
    nde_tensor_set_host(ctx, p->pa, &a);
    nde_tensor_set_host(ctx, p->pb, &b);
}
/* a tiny MLP 2 -> 6 -> 2 (tanh) on a batch of 2 */
static nde_tensor *f_mlp(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    prob *p = (prob *)u; (void)t;
    return nde_mlp_forward(ctx, &p->mlp, z);
}
static void mk_mlp(nde_ctx *ctx, prob *p) {
    int64_t w[3] = {2, 6, 2};
    nde_mlp_init(ctx, &p->mlp, "mlp", 3, w, NDE_ACT_TANH, 11);
}
static nde_tensor *l_square(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)u;
    return nde_add(ctx, nde_scale(ctx, nde_sum(ctx, nde_square(ctx, z)), NDE_R(0.5)), nde_scale(ctx, t, NDE_R(0.1)));
}

static prob problems[] = {
    {"constant", f_const, mk_const, NULL, 2, {1, 2}, {NDE_R(0.5), NDE_R(-0.2)}, 2, {0.0, 1.5}, 0, NULL, NULL, {0}},
    {"linear", f_linear, mk_linear, NULL, 2, {1, 2}, {NDE_R(1.0), NDE_R(0.5)}, 3, {0.0, 0.7, 2.0}, 0, NULL, NULL, {0}},
    {"sine", f_sine, mk_sine, NULL, 2, {2, 1}, {NDE_R(0.4), NDE_R(-1.2)}, 3, {0.2, 1.0, 1.8}, 0, NULL, NULL, {0}},
    {"sine-backwards", f_sine, mk_sine, NULL, 2, {2, 1}, {NDE_R(0.4), NDE_R(-1.2)}, 3, {1.8, 1.1, 0.2}, 0, NULL, NULL, {0}},
    {"mlp", f_mlp, mk_mlp, NULL, 2, {2, 2}, {NDE_R(0.6), NDE_R(-0.4), NDE_R(-0.9), NDE_R(0.3)}, 4, {0.0, 0.4, 0.9, 1.5},
     0, NULL, NULL, {0}},
    {"mlp+integral", f_mlp, mk_mlp, l_square, 2, {2, 2}, {NDE_R(0.6), NDE_R(-0.4), NDE_R(-0.9), NDE_R(0.3)}, 3,
     {0.0, 0.6, 1.2}, 0.7, NULL, NULL, {0}}
};
#define NUM_PROBS ((int)(sizeof problems / sizeof problems[0]))

static prob *find_prob(const char *name) {
    int i;
    for (i = 0; i < NUM_PROBS; i++) if (strcmp(problems[i].name, name) == 0) return &problems[i];
    return NULL;
}

static int64_t prob_n(const prob *p) { return p->zshape[0] * p->zshape[1]; }

/* Fixed loss weights W (num_ts x N), deterministic. */
static double loss_weight(int i, int64_t j) { return 0.3 + 0.25 * sin(1.7 * i + 0.9 * (double)j + 0.4); }

typedef struct grads { double L; double gz[8], gp[64], gt[6]; int64_t np; } grads;

/* L and (with grad) its gradients for one solve configuration. */
static nde_status run_case(nde_ctx *ctx, prob *p, const nde_solve_options *opt, const nde_adjoint_options *adj,
                           const nde_real *z0v, const double *tsv, int with_grad, grads *g) {
    nde_mark m = nde_ctx_mark(ctx);
    int64_t n = prob_n(p), tsz = p->num_ts, j, wshape[3];
    nde_real tv[6], wv[64];
    nde_tensor *z0, *t, *y, *q = NULL, *w, *L;
    int i, was = nde_set_grad_enabled(ctx, with_grad);
    nde_status st;
    for (i = 0; i < p->num_ts; i++) tv[i] = (nde_real)tsv[i];
    for (i = 0; i < p->num_ts; i++) for (j = 0; j < n; j++) wv[i * n + j] = (nde_real)loss_weight(i, j);
    wshape[0] = p->num_ts; wshape[1] = p->zshape[0]; wshape[2] = p->zshape[1];
    z0 = nde_tensor_from(ctx, p->zdim, p->zshape, z0v);
    t = nde_tensor_from(ctx, 1, &tsz, tv);
    w = nde_tensor_from(ctx, 3, wshape, wv);
    if (with_grad && z0 && t) { z0->requires_grad = 1; t->requires_grad = 1; }
    nde_zero_grad(ctx);
    y = nde_odeint_adjoint(ctx, p->f, p, z0, t, opt, adj, p->running ? &q : NULL);
    L = nde_sum(ctx, nde_mul(ctx, y, w));
    if (L && q) L = nde_add(ctx, L, nde_scale(ctx, q, (nde_real)p->qw));
    if (L) g->L = nde_tensor_item(ctx, L, 0);
    if (with_grad && L) {
        nde_backward(ctx, L);
        g->np = nde_params_count(ctx);
        for (j = 0; j < n; j++) g->gz[j] = z0->grad ? z0->grad[j] : 0.0;
        for (j = 0; j < g->np; j++) g->gp[j] = nde_params_grad(ctx)[j];
        for (i = 0; i < p->num_ts; i++) g->gt[i] = t->grad ? t->grad[i] : 0.0;
    }
    nde_set_grad_enabled(ctx, was);
    st = nde_ctx_status(ctx);
    nde_ctx_reset(ctx, m);
    return st;
}

#ifdef NDE_DOUBLE
/* Central differences of L over z0, every parameter and every time, with a
   tight dopri5 solve (grad mode off). */
static void fd_reference(nde_ctx *ctx, prob *p, grads *g) {
    nde_solve_options tight = nde_solve_options_default();
    nde_adjoint_options adj = nde_adjoint_options_default(NDE_GRAD_DIRECT);
    nde_real z0v[8];
    double ts[6], h = 1e-4;
    int64_t n = prob_n(p), j;
    int i;
    grads tmp;
    tight.rtol = 1e-13; tight.atol = 1e-13;
    memcpy(z0v, p->z0, sizeof z0v);
    memcpy(ts, p->ts, sizeof ts);
    run_case(ctx, p, &tight, &adj, z0v, ts, 0, g);
    for (j = 0; j < n; j++) {
        double lp, lm; nde_real keep = z0v[j];
        z0v[j] = (nde_real)(keep + h); run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lp = tmp.L;
        z0v[j] = (nde_real)(keep - h); run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lm = tmp.L;
        z0v[j] = keep;
        g->gz[j] = (lp - lm) / (2 * h);
    }
    g->np = nde_params_count(ctx);
    for (j = 0; j < g->np; j++) {
        double lp, lm; nde_real *pd = nde_params_data(ctx), keep = pd[j];
        pd[j] = (nde_real)(keep + h); run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lp = tmp.L;
        pd[j] = (nde_real)(keep - h); run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lm = tmp.L;
        pd[j] = keep;
        g->gp[j] = (lp - lm) / (2 * h);
    }
    for (i = 0; i < p->num_ts; i++) {
        double lp, lm, keep = ts[i];
        ts[i] = keep + h; run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lp = tmp.L;
        ts[i] = keep - h; run_case(ctx, p, &tight, &adj, z0v, ts, 0, &tmp); lm = tmp.L;
        ts[i] = keep;
        g->gt[i] = (lp - lm) / (2 * h);
    }
}

#endif

/* max |a - b| / (1 + |b|) over every gradient entry */
static double grad_diff(const prob *p, const grads *a, const grads *b) {
    double worst = 0.0, d;
    int64_t j;
    int i;
    for (j = 0; j < prob_n(p); j++) { d = fabs(a->gz[j] - b->gz[j]) / (1 + fabs(b->gz[j])); if (!(d <= worst)) worst = d; }
    for (j = 0; j < b->np; j++) { d = fabs(a->gp[j] - b->gp[j]) / (1 + fabs(b->gp[j])); if (!(d <= worst)) worst = d; }
    for (i = 0; i < p->num_ts; i++) { d = fabs(a->gt[i] - b->gt[i]) / (1 + fabs(b->gt[i])); if (!(d <= worst)) worst = d; }
    return worst;
}

#ifdef NDE_DOUBLE
typedef struct method_cfg { const char *name; nde_method method; double rtol, atol, step_size; double tol; } method_cfg;
/* tol: allowed max relative gradient error against the exact flow: a few
   times the methods' measured global error (fixed steps: h^4 with h = 0.01
   and 0.005; adaptive: 20 rtol; kvaerno5's global error is ~300 rtol here). */
static const method_cfg methods[] = {
    {"rk4", NDE_RK4, 1e-7, 1e-9, 0.01, 2e-8},
    {"dopri5", NDE_DOPRI5, 1e-9, 1e-10, 0.0, 2e-8},
    {"explicit_adams", NDE_EXPLICIT_ADAMS, 1e-7, 1e-9, 0.005, 2e-8},
    {"kvaerno5", NDE_KVAERNO5, 1e-9, 1e-10, 0.0, 1e-6}
};
#define NUM_METHODS ((int)(sizeof methods / sizeof methods[0]))

static int mode_supported(nde_grad_mode mode, nde_method method, int checkpoints) {
    int erk = method != NDE_EXPLICIT_ADAMS && method != NDE_IMPLICIT_ADAMS && method != NDE_KVAERNO5;
    if (mode == NDE_GRAD_DIRECT) return 1;
    if (mode == NDE_GRAD_CHECKPOINT) return erk;
    if (mode == NDE_GRAD_INTERPOLATED && checkpoints > 0) return erk;
    return 1;
}

static void test_modes_vs_fd(void) {
    int pi, mi, mode, ck, verbose = getenv("NDE_TEST_VERBOSE") != NULL;
    for (pi = 0; pi < NUM_PROBS; pi++) {
        prob *p = &problems[pi];
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
        grads ref;
        p->make_params(ctx, p);
        fd_reference(ctx, p, &ref);
        for (mi = 0; mi < NUM_METHODS; mi++) {
            const method_cfg *mc = &methods[mi];
            grads direct;
            int have_direct = 0;
            for (mode = 0; mode < NDE_GRAD_MODE_COUNT; mode++)
                for (ck = 0; ck < (mode == NDE_GRAD_INTERPOLATED || mode == NDE_GRAD_CHECKPOINT ? 2 : 1); ck++) {
                    nde_solve_options opt = nde_solve_options_default();
                    nde_adjoint_options adj = nde_adjoint_options_default((nde_grad_mode)mode);
                    grads g;
                    nde_status st;
                    double d;
                    opt.method = mc->method; opt.rtol = mc->rtol; opt.atol = mc->atol; opt.step_size = mc->step_size;
                    adj.checkpoints = ck ? 3 : 0;
                    if (mc->method == NDE_KVAERNO5) adj.method = NDE_DOPRI5;
                    memset(&g, 0, sizeof g);
                    st = run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g);
                    if (!mode_supported((nde_grad_mode)mode, mc->method, adj.checkpoints)) {
                        CHECK(st == NDE_ERR_UNSUPPORTED);
                        CHECK_MSG(nde_ctx_message(ctx), "nde_odeint_adjoint");
                        nde_ctx_clear_error(ctx);
                        continue;
                    }
                    if (st != NDE_OK) {
                        fprintf(stderr, "FAIL %s %s %s ck=%d: %s\n", p->name, mc->name, nde_grad_mode_name((nde_grad_mode)mode),
                                adj.checkpoints, nde_ctx_message(ctx));
                        CHECK(st == NDE_OK);
                        nde_ctx_clear_error(ctx);
                        continue;
                    }
                    d = grad_diff(p, &g, &ref);
                    if (verbose || d > (mode == NDE_GRAD_GAUSS ? 1e-6 : mc->tol))
                        printf("  %-12s %-14s %-10s ck=%d  vs fd %.2e  L %.12f (fd %.12f)\n", p->name, mc->name,
                               nde_grad_mode_name((nde_grad_mode)mode), adj.checkpoints, d, g.L, ref.L);
                    /* gq: the node count rule (gtol 0.1) adds quadrature error of its own */
                    CHECK(d <= (mode == NDE_GRAD_GAUSS ? 1e-6 : mc->tol));
                    CHECK_NEAR(g.L, ref.L, 1e-6, 1e-6);
                    if (mode == NDE_GRAD_DIRECT) { direct = g; have_direct = 1; }
                    if (mode == NDE_GRAD_CHECKPOINT && have_direct) {
                        /* the same discrete gradient, recomputed from checkpoints */
                        double dd = grad_diff(p, &g, &direct);
                        if (verbose || dd > 1e-12) printf("  %-12s %-14s checkpoint vs direct %.2e\n", p->name, mc->name, dd);
                        CHECK(dd <= 1e-12);
                    }
                }
        }
        nde_ctx_free(ctx);
    }
}
#endif

/* ---------------------------------------------------------------- memory
   The same problem with 10x more (fixed) steps: the work arena's high-water
   mark of forward + backward stays flat for the modes that promise it, grows
   for direct (and for interp with the dense output). */
static size_t peak_of(nde_ctx *ctx, prob *p, nde_grad_mode mode, int checkpoints, double h, grads *g) {
    nde_solve_options opt = nde_solve_options_default();
    nde_adjoint_options adj = nde_adjoint_options_default(mode);
    size_t base;
    opt.method = NDE_RK4; opt.step_size = h;
    adj.checkpoints = checkpoints;
    nde_ctx_reset_peak(ctx);
    base = nde_ctx_used_bytes(ctx);
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, g) == NDE_OK);
    return nde_ctx_peak_bytes(ctx) - base;
}
static void test_memory(void) {
    prob *p = find_prob("mlp");   /* the MLP, 4 output times on [0, 1.5] */
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    struct { nde_grad_mode mode; int ck; int flat; } cases[] = {
        {NDE_GRAD_DIRECT, 0, 0}, {NDE_GRAD_CHECKPOINT, 4, 1}, {NDE_GRAD_BACKSOLVE, 0, 1},
        {NDE_GRAD_INTERPOLATED, 4, 1}, {NDE_GRAD_INTERPOLATED, 0, 0}, {NDE_GRAD_GAUSS, 0, 1}, {NDE_GRAD_GAUSS_STEP, 0, 1}
    };
    size_t direct10 = 0;
    int i;
    p->make_params(ctx, p);
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        grads g1, g10;
        size_t m1 = peak_of(ctx, p, cases[i].mode, cases[i].ck, 0.01, &g1);
        size_t m10 = peak_of(ctx, p, cases[i].mode, cases[i].ck, 0.001, &g10);
        if (getenv("NDE_TEST_VERBOSE"))
            printf("  memory %-10s ck=%d: %zu bytes at 150 steps, %zu at 1500\n", nde_grad_mode_name(cases[i].mode),
                   cases[i].ck, m1, m10);
        if (cases[i].flat) CHECK(m10 <= m1 + m1 / 50);
        else CHECK(m10 > 5 * m1);
        if (cases[i].mode == NDE_GRAD_DIRECT) direct10 = m10;
        if (cases[i].mode == NDE_GRAD_CHECKPOINT) CHECK(m10 * 20 < direct10);   /* the budget: a few states and one step */
        CHECK(grad_diff(p, &g10, &g1) < (sizeof(nde_real) == 4 ? 1e-3 : 1e-6));
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- bad input */
static nde_tensor *l_two(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; (void)u;
    return nde_slice(ctx, nde_reshape(ctx, z, 1, &z->size), 0, 0, 2);
}
static void test_bad_input(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    prob *p = find_prob("mlp");
    nde_solve_options opt = nde_solve_options_default();
    nde_adjoint_options adj = nde_adjoint_options_default(NDE_GRAD_BACKSOLVE);
    int64_t two = 2, four[4] = {1, 1, 1, 2}, three = 3;
    nde_real tv[3] = {0, 1, 0.5}, tg[2] = {0, 1};
    nde_tensor *z0, *t, *t2, *q, *z4, *y;
    nde_grad_mode gm;
    p->make_params(ctx, p);
    z0 = nde_tensor_from(ctx, p->zdim, p->zshape, p->z0);
    t = nde_tensor_from(ctx, 1, &three, tv);
    t2 = nde_tensor_from(ctx, 1, &two, tg);
    z4 = nde_tensor_zeros(ctx, 4, four);
    /* a gradient mode the method cannot support */
    opt.method = NDE_KVAERNO5;
    adj.mode = NDE_GRAD_CHECKPOINT;
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "'checkpoint'");
    CHECK_MSG(nde_ctx_message(ctx), "kvaerno5");
    nde_ctx_clear_error(ctx);
    adj.mode = NDE_GRAD_INTERPOLATED;
    adj.checkpoints = 2;
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
    nde_ctx_clear_error(ctx);
    adj.checkpoints = 0;
    adj.mode = NDE_GRAD_BACKSOLVE;        /* backward solve defaults to kvaerno5 too */
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_adjoint_options.method");
    nde_ctx_clear_error(ctx);
    opt.method = NDE_EXPLICIT_ADAMS; opt.step_size = 0.1;
    adj.mode = NDE_GRAD_CHECKPOINT;
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "explicit_adams");
    nde_ctx_clear_error(ctx);
    opt = nde_solve_options_default();
    adj = nde_adjoint_options_default(NDE_GRAD_GAUSS);
    /* times not monotonic */
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t, &opt, &adj, NULL) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "strictly monotonic");
    nde_ctx_clear_error(ctx);
    /* a 4-D state cannot be stacked */
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z4, t2, &opt, &adj, NULL) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_SHAPE);
    nde_ctx_clear_error(ctx);
    /* running loss: needs the output argument and one element */
    adj.running_loss = l_two;
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "integral output");
    nde_ctx_clear_error(ctx);
    y = nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, &q);
    CHECK(y == NULL && q == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_SHAPE);
    CHECK_MSG(nde_ctx_message(ctx), "one element");
    nde_ctx_clear_error(ctx);
    adj.running_loss = NULL;
    adj.gtol = -1.0;
    CHECK(nde_odeint_adjoint(ctx, p->f, p, z0, t2, &opt, &adj, NULL) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "gtol");
    nde_ctx_clear_error(ctx);
    CHECK(nde_grad_mode_from_name(ctx, "gq_step", &gm) == NDE_OK && gm == NDE_GRAD_GAUSS_STEP);
    CHECK(nde_grad_mode_from_name(ctx, "adjoint", &gm) == NDE_OK && gm == NDE_GRAD_BACKSOLVE);
    CHECK(nde_grad_mode_from_name(ctx, "bogus", &gm) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "bogus");
    nde_ctx_clear_error(ctx);
    CHECK(nde_gauss_interval_nodes(0.1, 100, 0.5, 1.0) == 5);
    CHECK(nde_gauss_interval_nodes(0.1, 5000, 1.0, 1.0) == 64);
    CHECK(nde_gauss_interval_nodes(0.1, 3, 0.1, 1.0) == 1);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- statistics, seminorm */
static void test_stats_and_seminorm(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    prob *p = find_prob("mlp");
    nde_solve_options opt = nde_solve_options_default();
    nde_adjoint_options adj;
    nde_adjoint_stats st, st_semi;
    grads g, gs;
    int i;
    int64_t total = 0;
    double x[NDE_GAUSS_MAX_NODES], w[NDE_GAUSS_MAX_NODES];
    p->make_params(ctx, p);
    opt.rtol = 1e-6; opt.atol = 1e-8;
    /* gq: nodes per interval follow the rule from the forward NFE */
    adj = nde_adjoint_options_default(NDE_GRAD_GAUSS);
    adj.stats = &st;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    for (i = 1; i < p->num_ts; i++)
        total += nde_gauss_interval_nodes(0.1, st.nfe_forward, p->ts[i] - p->ts[i - 1], p->ts[p->num_ts - 1] - p->ts[0]);
    CHECK(st.backward_runs == 1);
    CHECK(st.nfe_forward > 0 && st.quadrature_nodes == total);
    /* gq_step: floor((5+1)/2) = 3 nodes per accepted reverse step of dopri5 */
    adj = nde_adjoint_options_default(NDE_GRAD_GAUSS_STEP);
    adj.stats = &st;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    CHECK(st.steps_backward > 0 && st.quadrature_nodes == 3 * st.steps_backward);
    /* seminorm: the same gradient to tolerance, no more backward evaluations */
    adj = nde_adjoint_options_default(NDE_GRAD_BACKSOLVE);
    adj.stats = &st;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    adj.seminorm = 1;
    adj.stats = &st_semi;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &gs) == NDE_OK);
    if (getenv("NDE_TEST_VERBOSE"))
        printf("  backsolve nfe_backward: mixed norm %lld, seminorm %lld\n", (long long)st.nfe_backward,
               (long long)st_semi.nfe_backward);
    CHECK(st_semi.nfe_backward <= st.nfe_backward);
    CHECK(grad_diff(p, &gs, &g) < 1e-4);
    /* the backward solve's own method and tolerances are the ones used */
    adj = nde_adjoint_options_default(NDE_GRAD_BACKSOLVE);
    adj.stats = &st;
    adj.method = NDE_EULER;        /* fixed grid = the output times: one step per interval */
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    CHECK(st.steps_backward == p->num_ts - 1);
    CHECK(st.nfe_backward == (p->num_ts - 1) + p->num_ts);   /* one VJP a step + f at each time (dL/dt) */
    adj.method = NDE_ADJOINT_SAME_METHOD;
    adj.rtol = 1e-10; adj.atol = 1e-10;
    adj.stats = &st_semi;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &gs) == NDE_OK);
    adj.rtol = 0.0; adj.atol = 0.0;
    adj.stats = &st;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    if (getenv("NDE_TEST_VERBOSE"))
        printf("  backward steps: rtol 1e-10 %lld, forward rtol %lld\n", (long long)st_semi.steps_backward,
               (long long)st.steps_backward);
    CHECK(2 * st_semi.steps_backward > 3 * st.steps_backward);
    /* checkpoint: recomputation count is the revolve bound */
    adj = nde_adjoint_options_default(NDE_GRAD_CHECKPOINT);
    adj.checkpoints = 3;
    adj.stats = &st;
    opt.method = NDE_RK4; opt.step_size = 0.05;
    CHECK(run_case(ctx, p, &opt, &adj, p->z0, p->ts, 1, &g) == NDE_OK);
    CHECK(st.steps_forward == 30);
    CHECK(st.recomputed_steps == nde_revolve_cost(30, 3));
    nde_gauss_legendre(1, x, w);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- nested in nde_vjp
   nde_vjp with a parameter-gradient buffer around a differentiable solve: the
   solve's backward sends the parameter part to that buffer, nothing to the
   store's own gradient. */
typedef struct vjp_user { prob *p; nde_tensor *t; nde_adjoint_options adj; } vjp_user;
static nde_tensor *vjp_solve(nde_ctx *ctx, nde_tensor *x, void *u) {
    vjp_user *vu = (vjp_user *)u;
    return nde_odeint_adjoint(ctx, vu->p->f, vu->p, x, vu->t, NULL, &vu->adj, NULL);
}
static void test_nested_vjp(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    prob *p = find_prob("mlp");
    int mode;
    p->make_params(ctx, p);
    for (mode = 0; mode < NDE_GRAD_MODE_COUNT; mode++) {
        nde_mark m = nde_ctx_mark(ctx);
        vjp_user vu;
        int64_t nt = 3, j, np = nde_params_count(ctx), yshape[3] = {3, 2, 2};
        nde_real tv[3] = {0, NDE_R(0.5), 1}, *buf = nde_ctx_alloc_reals(ctx, np);
        nde_tensor *z0 = nde_tensor_from(ctx, p->zdim, p->zshape, p->z0), *v = nde_tensor_full(ctx, 3, yshape, NDE_R(1.0));
        nde_tensor *xb = NULL, *y;
        double worst = 0.0, own = 0.0;
        vu.p = p;
        vu.t = nde_tensor_from(ctx, 1, &nt, tv);
        vu.adj = nde_adjoint_options_default((nde_grad_mode)mode);
        for (j = 0; j < np; j++) buf[j] = 0;
        nde_zero_grad(ctx);
        CHECK(nde_vjp(ctx, vjp_solve, &vu, z0, v, NULL, &xb, buf) == NDE_OK);
        for (j = 0; j < np; j++) own = fmax(own, fabs(nde_params_grad(ctx)[j]));
        CHECK(own == 0.0);
        /* the same through a plain backward of sum(y) */
        z0->requires_grad = 1;
        y = vjp_solve(ctx, z0, &vu);
        nde_backward(ctx, nde_sum(ctx, y));
        for (j = 0; j < np; j++) worst = fmax(worst, fabs(buf[j] - nde_params_grad(ctx)[j]));
        for (j = 0; xb && z0->grad && j < z0->size; j++) worst = fmax(worst, fabs(xb->data[j] - z0->grad[j]));
        CHECK(xb != NULL && z0->grad != NULL);
        CHECK(worst < (sizeof(nde_real) == 4 ? 1e-5 : 1e-12));
        CHECK(nde_ctx_status(ctx) == NDE_OK);
        nde_ctx_reset(ctx, m);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- forward values (float and double) */
static void test_forward_values(void) {
    /* linear z' = A z, A = [[a, b], [-b, a]]: z(t) = e^{at} R(bt) z0 */
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    prob *p = find_prob("linear");
    int mode;
    double tol = sizeof(nde_real) == 4 ? 2e-5 : 1e-8;
    p->make_params(ctx, p);
    for (mode = 0; mode < NDE_GRAD_MODE_COUNT; mode++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_solve_options opt = nde_solve_options_default();
        nde_adjoint_options adj = nde_adjoint_options_default((nde_grad_mode)mode);
        int64_t three = 3;
        nde_real tv[3] = {0, NDE_R(0.7), 2};
        nde_tensor *z0 = nde_tensor_from(ctx, 2, p->zshape, p->z0), *t = nde_tensor_from(ctx, 1, &three, tv), *y;
        int i;
        opt.rtol = sizeof(nde_real) == 4 ? 1e-6 : 1e-10;
        opt.atol = opt.rtol;
        z0->requires_grad = 1;
        y = nde_odeint_adjoint(ctx, f_linear, p, z0, t, &opt, &adj, NULL);
        CHECK(y != NULL && y->ndim == 3 && y->shape[0] == 3 && y->shape[1] == 1 && y->shape[2] == 2);
        for (i = 0; y && i < 3; i++) {
            double tt = tv[i], e = exp(-0.3 * tt), c = cos(1.1 * tt), s = sin(1.1 * tt);
            double z1 = e * (c * p->z0[0] + s * p->z0[1]), z2 = e * (-s * p->z0[0] + c * p->z0[1]);
            CHECK_NEAR(y->data[2 * i], z1, tol, tol);
            CHECK_NEAR(y->data[2 * i + 1], z2, tol, tol);
        }
        CHECK(nde_ctx_status(ctx) == NDE_OK);
        nde_ctx_reset(ctx, m);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- the header's quick start */
static nde_tensor *qs_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    (void)t;
    return nde_mlp_forward(ctx, (nde_mlp *)user, z);      /* f(t, z) = MLP(z) */
}
static int quickstart_adjoint(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp net;
    int64_t widths[3] = {2, 16, 2}, zs[2] = {8, 2}, nt = 3;
    nde_real tv[3] = {0.0f, 0.5f, 1.0f};
    nde_optimizer opt;
    nde_adjoint_options adj = nde_adjoint_options_default(NDE_GRAD_GAUSS);
    int it, bad;
    nde_mlp_init(ctx, &net, "f", 3, widths, NDE_ACT_TANH, 1);
    opt = nde_adam(1e-2);
    for (it = 0; it < 20; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *z0 = nde_tensor_randn(ctx, 2, zs, 3, 0);
        nde_tensor *t = nde_tensor_from(ctx, 1, &nt, tv);
        nde_tensor *z = nde_odeint_adjoint(ctx, qs_field, &net, z0, t, NULL, &adj, NULL);
        nde_tensor *loss = nde_mean(ctx, nde_square(ctx, z));
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
    }
    bad = nde_ctx_status(ctx) != NDE_OK;
    nde_ctx_free(ctx);
    return bad;
}

int main(void) {
    test_custom_node();
    test_gauss_legendre_closed_forms();
    test_gauss_legendre_exactness();
    test_revolve();
    CHECK(quickstart_adjoint() == 0);
    test_forward_values();
    test_nested_vjp();
    test_bad_input();
    test_stats_and_seminorm();
    test_memory();
#ifdef NDE_DOUBLE
    test_modes_vs_fd();
#endif
    return nde_test_finish("test_adjoint");
}
