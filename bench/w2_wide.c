/* bench/w2_wide.c - workload W2 (../shared/WORKLOADS.md): the quadrature-adjoint
   regime, a small state and many parameters.

     f(t, z) = Linear(2000,2)(softplus(Linear(2,2000)(z))), z0 ~ N(0,1) (256, 2),
     t in [0, 1], dopri5 rtol 1e-3 atol 1e-4, loss mean(z(1)^2), Adam lr 1e-3.

   Modes (default direct, adjoint, gq): direct, checkpoint, adjoint (backsolve),
   interp, gq (Gauss-Legendre quadrature adjoint, gtol 0.1, Norcliffe &
   Deisenroth 2023), gq_step. The peers have no quadrature adjoint on PyPI; gq is
   compared with their backsolve adjoint. Data and initial weights: the peers'
   (bench_workload.h), else the same recipe drawn with Philox.

   Usage: build/w2_wide [--iters N] [--warmup N] [--modes direct,adjoint,gq,...] [--quick] [--data DIR] */
#define _POSIX_C_SOURCE 200809L
#define NDE_IMPLEMENTATION
#include "bench_workload.h"

#define W2_BATCH 256
#define W2_HIDDEN 2000

typedef struct w2_model {
    nde_ctx *ctx;
    nde_linear l[2];
    nde_tensor *z0;
    nde_real *params0;
    nde_optimizer opt;
    nde_grad_mode mode;
} w2_model;

static nde_tensor *w2_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    w2_model *m = (w2_model *)user;
    (void)t;
    return nde_linear_forward(ctx, &m->l[1], nde_softplus(ctx, nde_linear_forward(ctx, &m->l[0], z)));
}

static void w2_reset(void *user) {
    w2_model *m = (w2_model *)user;
    memcpy(nde_params_data(m->ctx), m->params0, sizeof(nde_real) * (size_t)nde_params_count(m->ctx));
}

static bw_iter w2_step(void *user) {
    w2_model *m = (w2_model *)user;
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    nde_solve_options o = nde_solve_options_default();
    bw_iter it;
    nde_tensor *z1, *loss;
    o.method = NDE_DOPRI5;
    o.rtol = 1e-3;
    o.atol = 1e-4;
    z1 = bw_solve_to(ctx, m->mode, w2_field, m, m->z0, 0.0, 1.0, &o, &it);
    loss = nde_mean(ctx, nde_square(ctx, z1));
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    bw_solve_finish(&it);
    nde_optimizer_step(ctx, &m->opt);
    it.loss = loss ? nde_tensor_item(ctx, loss, 0) : NAN;
    bw_check(ctx, "W2");
    nde_ctx_reset(ctx, mk);
    return it;
}

int main(int argc, char **argv) {
    static const int64_t widths[3] = {2, W2_HIDDEN, 2};
    bw_args a;
    w2_model m;
    nde_ctx *ctx;
    bw_result res[BW_MAX_MODES];
    nde_grad_mode modes[BW_MAX_MODES];
    int nmodes, synthetic = 0, k;
    if (bw_parse(argc, argv, &a, 10, 2, "direct,adjoint,gq")) return 1;
    nmodes = bw_modes(&a, modes);
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "w2: no context\n"); return 2; }
    memset(&m, 0, sizeof m);
    m.ctx = ctx;
    for (k = 0; k < 2; k++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "l%d.w", k);
        snprintf(nb, sizeof nb, "l%d.b", k);
        synthetic |= !bw_linear(ctx, &a, "W2", &m.l[k], nw, nb, widths[k], widths[k + 1], 200 + (uint64_t)k);
    }
    m.z0 = nde_tensor_new(ctx, 2, (int64_t[]){W2_BATCH, 2});
    synthetic |= !bw_tensor(ctx, &a, "W2", "z0", m.z0, 210);
    m.params0 = bw_snapshot_params(ctx);
    m.opt = nde_adam(1e-3);
    bw_check(ctx, "W2 setup");
    printf("# nde W2 wide: batch 256, 2-2000-2 softplus, dopri5 rtol 1e-3 atol 1e-4, Adam; threads=%d iters=%d "
           "warmup=%d data=%s\n", a.threads, a.iters, a.warmup, synthetic ? "synthetic" : "peers");
    for (k = 0; k < nmodes; k++) {
        m.mode = modes[k];
        res[k] = bw_time(&a, w2_reset, w2_step, &m);
        bw_print("W2", nde_grad_mode_name(modes[k]), &res[k], NULL);
    }
    bw_table_head("W2 wide (nde)");
    for (k = 0; k < nmodes; k++) bw_table_row(nde_grad_mode_name(modes[k]), &res[k]);
    nde_ctx_free(ctx);
    free(m.params0);
    return 0;
}
