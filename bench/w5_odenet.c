/* bench/w5_odenet.c - W5 of shared/WORKLOADS.md: the ODE block of torchdiffeq's
   odenet_mnist.

     z(0) = x (128, 64, 7, 7); f(t, z) = GN3(conv2([t, relu(GN2(conv1([t, relu(GN1(z))])))]))
     with GroupNorm(32, 64) (weight 1, bias 0, eps 1e-5), 3x3 convolutions 65 -> 64
     (padding 1) on the time channel concatenated FIRST, dopri5 rtol = atol = 1e-3
     on [0, 1]; head: global average pool + Linear(64, 10), cross-entropy on the
     labels i % 10; SGD lr 0.1 momentum 0.9.

   Usage: build/w5_odenet [--iters N] [--warmup N] [--modes direct,adjoint,...] [--quick] [--data DIR] */
#define _POSIX_C_SOURCE 200809L
#define NDE_IMPLEMENTATION
#include "bench_workload.h"

#define W5_BATCH 128
#define W5_CH 64
#define W5_HW 7
#define W5_GROUPS 32
#define W5_CLASSES 10

typedef struct w5_model {
    nde_ctx *ctx;
    nde_tensor *conv_w[2], *conv_b[2], *gn_w[3], *gn_b[3];
    nde_linear head;
    nde_tensor *x, *xflat;    /* the input (N, C, H, W) and its (N, C*H*W) view */
    nde_tensor *ones;         /* (N, 1, H, W): the time channel is ones * t */
    int64_t labels[W5_BATCH];
    nde_real *params0;
    nde_optimizer opt;
    nde_grad_mode mode;
} w5_model;

static nde_tensor *w5_concat_conv(nde_ctx *ctx, w5_model *m, int i, nde_tensor *t, nde_tensor *x) {
    nde_tensor *parts[2];
    parts[0] = nde_mul(ctx, m->ones, t);
    parts[1] = x;
    return nde_conv2d(ctx, nde_concat(ctx, 2, parts, 1), m->conv_w[i], m->conv_b[i], 1, 1);
}

/* The solver's state is (N, C*H*W) (nde_odeint_adjoint stacks the output times
   on a new axis, so a state has at most 3 dimensions); the field works on the
   (N, C, H, W) view of it. */
static nde_tensor *w5_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *zflat, void *user) {
    w5_model *m = (w5_model *)user;
    const nde_real eps = NDE_R(1e-5);
    nde_tensor *z = nde_reshape(ctx, zflat, 4, m->x->shape);
    nde_tensor *h = nde_relu(ctx, nde_group_norm(ctx, z, W5_GROUPS, m->gn_w[0], m->gn_b[0], eps));
    h = w5_concat_conv(ctx, m, 0, t, h);
    h = nde_relu(ctx, nde_group_norm(ctx, h, W5_GROUPS, m->gn_w[1], m->gn_b[1], eps));
    h = w5_concat_conv(ctx, m, 1, t, h);
    return nde_reshape(ctx, nde_group_norm(ctx, h, W5_GROUPS, m->gn_w[2], m->gn_b[2], eps), 2, zflat->shape);
}

static void w5_reset(void *user) {
    w5_model *m = (w5_model *)user;
    memcpy(nde_params_data(m->ctx), m->params0, sizeof(nde_real) * (size_t)nde_params_count(m->ctx));
}

static bw_iter w5_step(void *user) {
    w5_model *m = (w5_model *)user;
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    nde_solve_options o = nde_solve_options_default();
    bw_iter it;
    nde_tensor *z1, *logits, *loss;
    o.method = NDE_DOPRI5;
    o.rtol = 1e-3;
    o.atol = 1e-3;
    z1 = bw_solve_to(ctx, m->mode, w5_field, m, m->xflat, 0.0, 1.0, &o, &it);
    logits = nde_linear_forward(ctx, &m->head, nde_global_avg_pool(ctx, nde_reshape(ctx, z1, 4, m->x->shape)));
    loss = nde_cross_entropy(ctx, logits, m->labels);
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    bw_solve_finish(&it);
    nde_optimizer_step(ctx, &m->opt);
    it.loss = loss ? nde_tensor_item(ctx, loss, 0) : NAN;
    bw_check(ctx, "W5");
    nde_ctx_reset(ctx, mk);
    return it;
}

static void w5_setup(w5_model *m, nde_ctx *ctx, const bw_args *a, int *synthetic) {
    const int64_t cw[4] = {W5_CH, W5_CH + 1, 3, 3}, cb[1] = {W5_CH}, gs[1] = {W5_CH};
    const double bound = 1.0 / sqrt((double)((W5_CH + 1) * 9));
    int32_t lab[W5_BATCH];
    int i;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    *synthetic = 0;
    for (i = 0; i < 2; i++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "conv%d.w", i + 1);
        snprintf(nb, sizeof nb, "conv%d.b", i + 1);
        *synthetic |= !bw_param(ctx, a, "W5", nw, 4, cw, bound, 500 + (uint64_t)i, &m->conv_w[i]);
        *synthetic |= !bw_param(ctx, a, "W5", nb, 1, cb, bound, 510 + (uint64_t)i, &m->conv_b[i]);
    }
    for (i = 0; i < 3; i++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "gn%d.w", i + 1);
        snprintf(nb, sizeof nb, "gn%d.b", i + 1);
        m->gn_w[i] = nde_param_new(ctx, nw, 1, gs);
        m->gn_b[i] = nde_param_new(ctx, nb, 1, gs);
        if (m->gn_w[i]) nde_tensor_fill(ctx, m->gn_w[i], NDE_R(1.0));   /* weight 1, bias 0 (zero-filled) */
    }
    *synthetic |= !bw_linear(ctx, a, "W5", &m->head, "head.w", "head.b", W5_CH, W5_CLASSES, 520);
    m->x = nde_tensor_new(ctx, 4, (int64_t[]){W5_BATCH, W5_CH, W5_HW, W5_HW});
    *synthetic |= !bw_tensor(ctx, a, "W5", "x", m->x, 530);
    m->xflat = nde_reshape(ctx, m->x, 2, (int64_t[]){W5_BATCH, W5_CH * W5_HW * W5_HW});
    m->ones = nde_tensor_full(ctx, 4, (int64_t[]){W5_BATCH, 1, W5_HW, W5_HW}, NDE_R(1.0));
    if (!bw_load_raw(a, "W5", "labels", W5_BATCH, 1, lab)) for (i = 0; i < W5_BATCH; i++) lab[i] = i % W5_CLASSES;
    for (i = 0; i < W5_BATCH; i++) m->labels[i] = lab[i];
    m->params0 = bw_snapshot_params(ctx);
    m->opt = nde_sgd(0.1, 0.9, 0);
}

int main(int argc, char **argv) {
    bw_args a;
    w5_model m;
    nde_ctx *ctx;
    bw_result res[BW_MAX_MODES];
    nde_grad_mode modes[BW_MAX_MODES];
    int nmodes, synthetic, k;
    if (bw_parse(argc, argv, &a, 5, 1, "direct,adjoint")) return 1;
    nmodes = bw_modes(&a, modes);
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "w5: no context\n"); return 2; }
    w5_setup(&m, ctx, &a, &synthetic);
    bw_check(ctx, "W5 setup");
    printf("# nde W5 odenet: x (128, 64, 7, 7), GN-ReLU-ConcatConv3x3 x2 + GN, dopri5 rtol=atol=1e-3, SGD momentum; "
           "threads=%d iters=%d warmup=%d data=%s\n", a.threads, a.iters, a.warmup, synthetic ? "synthetic" : "peers");
    for (k = 0; k < nmodes; k++) {
        m.mode = modes[k];
        res[k] = bw_time(&a, w5_reset, w5_step, &m);
        bw_print("W5", nde_grad_mode_name(modes[k]), &res[k], NULL);
    }
    bw_table_head("W5 odenet (nde)");
    for (k = 0; k < nmodes; k++) bw_table_row(nde_grad_mode_name(modes[k]), &res[k]);
    nde_ctx_free(ctx);
    free(m.params0);
    return 0;
}
