/* bench/w1_spiral.c - workload W1 (../shared/WORKLOADS.md): torchdiffeq's ode_demo.

     true system dy/dt = y^3 A, A = [[-0.1, 2], [-2, -0.1]], y0 = (2, 0) on
     t = linspace(0, 25, 1000); model f(t, y) = Linear(50,2)(tanh(Linear(2,50)(y^3)))
     (weights N(0, 0.1^2), biases 0); one fixed batch: windows s_i = 49 i,
     i < 20, of 10 points; dopri5 rtol 1e-7 atol 1e-9 through the 10 output
     times; loss mean |pred - true|; RMSprop lr 1e-3; float32.

   The data and initial weights are the peers' (bench/peers/common.py --dump;
   see bench_workload.h); without the dump the true trajectory is solved here
   (dopri5, rtol = atol = 1e-10) and the weights drawn with Philox.

   Usage: build/w1_spiral [--iters N] [--warmup N] [--modes direct,adjoint,...] [--quick] [--data DIR] */
#define _POSIX_C_SOURCE 200809L
#define NDE_IMPLEMENTATION
#include "bench_workload.h"

#define W1_DATA 1000
#define W1_TIME 10
#define W1_BATCH 20
#define W1_HIDDEN 50

typedef struct w1_model {
    nde_ctx *ctx;
    nde_linear l[2];
    nde_tensor *y0, *t, *target;
    nde_real *params0;
    nde_optimizer opt;
    nde_grad_mode mode;
} w1_model;

static nde_tensor *w1_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    w1_model *m = (w1_model *)user;
    (void)t;
    return nde_linear_forward(ctx, &m->l[1], nde_tanh(ctx, nde_linear_forward(ctx, &m->l[0], nde_powi(ctx, y, 3))));
}

static nde_tensor *w1_true_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    (void)t;
    return nde_matmul(ctx, nde_powi(ctx, y, 3), (nde_tensor *)user, 0, 0);
}

static void w1_reset(void *user) {
    w1_model *m = (w1_model *)user;
    memcpy(nde_params_data(m->ctx), m->params0, sizeof(nde_real) * (size_t)nde_params_count(m->ctx));
}

static bw_iter w1_step(void *user) {
    w1_model *m = (w1_model *)user;
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    nde_solve_options o = nde_solve_options_default();
    bw_iter it;
    nde_tensor *pred, *loss;
    o.method = NDE_DOPRI5;
    o.rtol = 1e-7;
    o.atol = 1e-9;
    pred = bw_solve(ctx, m->mode, w1_field, m, m->y0, m->t, &o, &it);   /* (10, 20, 2) */
    loss = nde_l1_loss(ctx, pred, m->target);
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    bw_solve_finish(&it);
    nde_optimizer_step(ctx, &m->opt);
    it.loss = loss ? nde_tensor_item(ctx, loss, 0) : NAN;
    bw_check(ctx, "W1");
    nde_ctx_reset(ctx, mk);
    return it;
}

/* Without the dump: the true trajectory by nde itself, windows s_i = 49 i. */
static void w1_synthetic_data(nde_ctx *ctx, nde_real *t, nde_real *y0, nde_real *y) {
    static double ts[W1_DATA];
    nde_real a[4] = {NDE_R(-0.1), NDE_R(2.0), NDE_R(-2.0), NDE_R(-0.1)}, start[2] = {NDE_R(2.0), NDE_R(0.0)}, v[2];
    nde_solve_options o = nde_solve_options_default();
    nde_mark mk = nde_ctx_mark(ctx);
    nde_tensor *A = nde_tensor_from(ctx, 2, (int64_t[]){2, 2}, a), *s0 = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, start);
    nde_solution sol;
    int i, k;
    o.rtol = o.atol = 1e-10;
    for (i = 0; i < W1_DATA; i++) ts[i] = 25.0 * i / (W1_DATA - 1);
    for (k = 0; k < W1_TIME; k++) t[k] = (nde_real)ts[k];
    if (nde_solve(ctx, w1_true_field, A, s0, W1_DATA, ts, &o, &sol) == NDE_OK) {
        for (i = 0; i < W1_BATCH; i++)
            for (k = 0; k < W1_TIME; k++) {
                nde_tensor_to_host(ctx, sol.ys[49 * i + k], v);
                y[(k * W1_BATCH + i) * 2] = v[0];
                y[(k * W1_BATCH + i) * 2 + 1] = v[1];
                if (k == 0) { y0[2 * i] = v[0]; y0[2 * i + 1] = v[1]; }
            }
    }
    nde_solution_free(ctx, &sol);
    nde_ctx_reset(ctx, mk);
}

static void w1_setup(w1_model *m, nde_ctx *ctx, const bw_args *a, int *synthetic) {
    static const int64_t widths[3] = {2, W1_HIDDEN, 2};
    float buf[W1_TIME * W1_BATCH * 2];
    nde_real t[W1_TIME], y0[W1_BATCH * 2], y[W1_TIME * W1_BATCH * 2];
    int i, got;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    *synthetic = 0;
    for (i = 0; i < 2; i++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "l%d.w", i);
        snprintf(nb, sizeof nb, "l%d.b", i);
        if (!bw_linear(ctx, a, "W1", &m->l[i], nw, nb, widths[i], widths[i + 1], 100 + (uint64_t)i)) {
            nde_rng r = nde_rng_new(110 + (uint64_t)i, 0);           /* ode_demo: N(0, 0.1^2), bias 0 */
            nde_tensor_fill_normal(ctx, m->l[i].weight, &r, NDE_R(0.0), NDE_R(0.1));
            nde_tensor_fill(ctx, m->l[i].bias, NDE_R(0.0));
            *synthetic = 1;
        }
    }
    got = bw_load_raw(a, "W1", "t", W1_TIME, 0, buf);
    if (got) for (i = 0; i < W1_TIME; i++) t[i] = (nde_real)buf[i];
    got = got && bw_load_raw(a, "W1", "y0", W1_BATCH * 2, 0, buf);
    if (got) for (i = 0; i < W1_BATCH * 2; i++) y0[i] = (nde_real)buf[i];
    got = got && bw_load_raw(a, "W1", "y", W1_TIME * W1_BATCH * 2, 0, buf);
    if (got) for (i = 0; i < W1_TIME * W1_BATCH * 2; i++) y[i] = (nde_real)buf[i];
    if (!got) { w1_synthetic_data(ctx, t, y0, y); *synthetic = 1; }
    m->t = nde_tensor_from(ctx, 1, (int64_t[]){W1_TIME}, t);
    m->y0 = nde_tensor_from(ctx, 2, (int64_t[]){W1_BATCH, 2}, y0);
    m->target = nde_tensor_from(ctx, 3, (int64_t[]){W1_TIME, W1_BATCH, 2}, y);
    m->params0 = bw_snapshot_params(ctx);
    m->opt = nde_rmsprop(1e-3);
}

int main(int argc, char **argv) {
    bw_args a;
    w1_model m;
    nde_ctx *ctx;
    bw_result res[BW_MAX_MODES];
    nde_grad_mode modes[BW_MAX_MODES];
    int nmodes, synthetic, k;
    if (bw_parse(argc, argv, &a, 20, 3, "direct,adjoint")) return 1;
    nmodes = bw_modes(&a, modes);
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "w1: no context\n"); return 2; }
    w1_setup(&m, ctx, &a, &synthetic);
    bw_check(ctx, "W1 setup");
    printf("# nde W1 spiral: batch 20 x 10 times, 2-50-2 tanh on y^3, dopri5 rtol 1e-7 atol 1e-9, RMSprop; "
           "threads=%d iters=%d warmup=%d data=%s\n", a.threads, a.iters, a.warmup, synthetic ? "synthetic" : "peers");
    for (k = 0; k < nmodes; k++) {
        m.mode = modes[k];
        res[k] = bw_time(&a, w1_reset, w1_step, &m);
        bw_print("W1", nde_grad_mode_name(modes[k]), &res[k], NULL);
    }
    bw_table_head("W1 spiral (nde)");
    for (k = 0; k < nmodes; k++) bw_table_row(nde_grad_mode_name(modes[k]), &res[k]);
    nde_ctx_free(ctx);
    free(m.params0);
    return 0;
}
