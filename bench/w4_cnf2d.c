/* bench/w4_cnf2d.c - W4 of shared/WORKLOADS.md: a continuous normalizing flow
   in 2-D with the exact Jacobian trace.

     state s = [z, a] (512, 3), s(0) = [x, 0], x from two moons (the peers' data),
     dz/dt = g(z), g = MLP 2-64-64-64-2 tanh, da/dt = tr(dg/dz) exactly,
     dopri5 rtol = atol = 1e-5 on [0, 1] (error norm over all 3 columns),
     loss = mean(0.5 |z(1)|^2 + log(2 pi) - a(1)), Adam lr 1e-3.

   The trace is exact: the two columns of dg/dz are pushed forward through the
   network (forward-mode tangents u_i = dh/dz_i, one per input dimension, stacked
   as a (2, batch, 64) tensor so each layer does one matmul for both), so
   tr = sum_i (W4 u3_i)_i. The peers take two reverse-mode VJPs with
   create_graph; the work is of the same order (two extra products per hidden
   layer), and the result, the same number, is differentiable through the tape.

   Usage: build/w4_cnf2d [--iters N] [--warmup N] [--modes direct,adjoint,...] [--quick] [--data DIR] */
#define _POSIX_C_SOURCE 200809L
#define NDE_IMPLEMENTATION
#include "bench_workload.h"

#define W4_BATCH 512
#define W4_HIDDEN 64

typedef struct w4_model {
    nde_ctx *ctx;
    nde_linear l[4];
    nde_tensor *s0;
    nde_real *params0;
    nde_optimizer opt;
    nde_grad_mode mode;
} w4_model;

/* dz/dt = g(z) and da/dt = tr(dg/dz) for the state s = [z, a]. */
static nde_tensor *w4_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *user) {
    w4_model *m = (w4_model *)user;
    const int64_t B = s->shape[0], H = W4_HIDDEN;
    int64_t sh3[3], sh2[2];
    nde_tensor *z, *h, *d, *u, *g, *tr, *parts[2];
    int i;
    (void)t;
    z = nde_slice(ctx, s, 1, 0, 2);
    /* layer 1: h = tanh(z W1^T + b1); u_i = (1 - h^2) * W1[:, i] */
    h = nde_tanh(ctx, nde_linear_forward(ctx, &m->l[0], z));
    d = nde_add_scalar(ctx, nde_neg(ctx, nde_square(ctx, h)), NDE_R(1.0));
    sh3[0] = 2; sh3[1] = 1; sh3[2] = H;
    u = nde_mul(ctx, d, nde_reshape(ctx, nde_transpose(ctx, m->l[0].weight), 3, sh3));   /* (2, B, H) */
    /* layers 2, 3: h = tanh(h W^T + b); u = (1 - h^2) * (u W^T) */
    for (i = 1; i < 3; i++) {
        h = nde_tanh(ctx, nde_linear_forward(ctx, &m->l[i], h));
        d = nde_add_scalar(ctx, nde_neg(ctx, nde_square(ctx, h)), NDE_R(1.0));
        sh2[0] = 2 * B; sh2[1] = H;
        sh3[0] = 2; sh3[1] = B; sh3[2] = H;
        u = nde_mul(ctx, d, nde_reshape(ctx, nde_matmul(ctx, nde_reshape(ctx, u, 2, sh2), m->l[i].weight, 0, 1), 3, sh3));
    }
    g = nde_linear_forward(ctx, &m->l[3], h);                                            /* (B, 2) */
    /* tr = sum_i sum_j u3_i[:, j] W4[i, j] */
    sh3[0] = 2; sh3[1] = 1; sh3[2] = H;
    tr = nde_sum_axis(ctx, nde_sum_axis(ctx, nde_mul(ctx, u, nde_reshape(ctx, m->l[3].weight, 3, sh3)), 2, 0), 0, 0);
    sh2[0] = B; sh2[1] = 1;
    parts[0] = g;
    parts[1] = nde_reshape(ctx, tr, 2, sh2);
    return nde_concat(ctx, 2, parts, 1);
}

static void w4_reset(void *user) {
    w4_model *m = (w4_model *)user;
    memcpy(nde_params_data(m->ctx), m->params0, sizeof(nde_real) * (size_t)nde_params_count(m->ctx));
}

static bw_iter w4_step(void *user) {
    w4_model *m = (w4_model *)user;
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    nde_solve_options o = nde_solve_options_default();
    bw_iter it;
    nde_tensor *s1, *z1, *a1, *nll, *loss;
    o.method = NDE_DOPRI5;
    o.rtol = 1e-5;
    o.atol = 1e-5;
    s1 = bw_solve_to(ctx, m->mode, w4_field, m, m->s0, 0.0, 1.0, &o, &it);
    z1 = nde_slice(ctx, s1, 1, 0, 2);
    a1 = nde_slice(ctx, s1, 1, 2, 3);
    /* -log p(x) = 0.5 |z|^2 + log(2 pi) - a  (D = 2) */
    nll = nde_sub(ctx, nde_add_scalar(ctx, nde_scale(ctx, nde_sum_axis(ctx, nde_square(ctx, z1), 1, 1), NDE_R(0.5)),
                                      (nde_real)log(2.0 * 3.14159265358979323846)), a1);
    loss = nde_mean(ctx, nll);
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    bw_solve_finish(&it);
    nde_optimizer_step(ctx, &m->opt);
    it.loss = loss ? nde_tensor_item(ctx, loss, 0) : NAN;
    bw_check(ctx, "W4");
    nde_ctx_reset(ctx, mk);
    return it;
}

/* Two moons without the peers' dump: sklearn's recipe (half circles, noise 0.05)
   drawn with Philox, standardised per column. */
static void w4_synthetic_moons(nde_real *s) {
    nde_rng r = nde_rng_new(400, 0);
    double mean[2] = {0, 0}, sd[2] = {0, 0};
    int i, c, half = W4_BATCH / 2;
    for (i = 0; i < W4_BATCH; i++) {
        double th = 3.14159265358979323846 * (i < half ? i : i - half) / (double)(half - 1);
        double x = i < half ? cos(th) : 1.0 - cos(th), y = i < half ? sin(th) : 0.5 - sin(th);
        s[3 * i] = (nde_real)(x + 0.05 * nde_rng_normal1(&r));
        s[3 * i + 1] = (nde_real)(y + 0.05 * nde_rng_normal1(&r));
        s[3 * i + 2] = NDE_R(0.0);
    }
    for (c = 0; c < 2; c++) {
        for (i = 0; i < W4_BATCH; i++) mean[c] += s[3 * i + c] / (double)W4_BATCH;
        for (i = 0; i < W4_BATCH; i++) sd[c] += (s[3 * i + c] - mean[c]) * (s[3 * i + c] - mean[c]) / (double)W4_BATCH;
        for (i = 0; i < W4_BATCH; i++) s[3 * i + c] = (nde_real)((s[3 * i + c] - mean[c]) / sqrt(sd[c]));
    }
}

static void w4_setup(w4_model *m, nde_ctx *ctx, const bw_args *a, int *synthetic) {
    static const int64_t widths[5] = {2, W4_HIDDEN, W4_HIDDEN, W4_HIDDEN, 2};
    float buf[W4_BATCH * 3];
    nde_real s[W4_BATCH * 3];
    int i;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    *synthetic = 0;
    for (i = 0; i < 4; i++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "l%d.w", i);
        snprintf(nb, sizeof nb, "l%d.b", i);
        *synthetic |= !bw_linear(ctx, a, "W4", &m->l[i], nw, nb, widths[i], widths[i + 1], 400 + (uint64_t)i);
    }
    if (bw_load_raw(a, "W4", "s0", W4_BATCH * 3, 0, buf)) {
        for (i = 0; i < W4_BATCH * 3; i++) s[i] = (nde_real)buf[i];
    } else {
        w4_synthetic_moons(s);
        *synthetic = 1;
    }
    m->s0 = nde_tensor_from(ctx, 2, (int64_t[]){W4_BATCH, 3}, s);
    m->params0 = bw_snapshot_params(ctx);
    m->opt = nde_adam(1e-3);
}

int main(int argc, char **argv) {
    bw_args a;
    w4_model m;
    nde_ctx *ctx;
    bw_result res[BW_MAX_MODES];
    nde_grad_mode modes[BW_MAX_MODES];
    int nmodes, synthetic, k;
    if (bw_parse(argc, argv, &a, 10, 2, "direct,adjoint")) return 1;
    nmodes = bw_modes(&a, modes);
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "w4: no context\n"); return 2; }
    w4_setup(&m, ctx, &a, &synthetic);
    bw_check(ctx, "W4 setup");
    printf("# nde W4 cnf2d: batch %d, MLP 2-64-64-64-2 tanh, exact trace, dopri5 rtol=atol=1e-5, Adam; "
           "threads=%d iters=%d warmup=%d data=%s\n", W4_BATCH, a.threads, a.iters, a.warmup,
           synthetic ? "synthetic" : "peers");
    for (k = 0; k < nmodes; k++) {
        m.mode = modes[k];
        res[k] = bw_time(&a, w4_reset, w4_step, &m);
        bw_print("W4", nde_grad_mode_name(modes[k]), &res[k], NULL);
    }
    bw_table_head("W4 cnf2d (nde)");
    for (k = 0; k < nmodes; k++) bw_table_row(nde_grad_mode_name(modes[k]), &res[k]);
    nde_ctx_free(ctx);
    free(m.params0);
    return 0;
}
