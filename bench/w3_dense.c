/* bench/w3_dense.c - W3 of shared/WORKLOADS.md: a dense vector field where the
   matmuls dominate.

     f(t, z) = Linear(256,64)(tanh(Linear(256,256)(tanh(Linear(64,256)(z))))),
     z (512, 64), rk4 (classic) with step 0.1 on [0, 1] (10 steps, 40 NFE),
     loss mean(z(1)^2), Adam lr 1e-3.

   Besides the time per training iteration this reports
     gflops      the workload's flops per iteration over its median time:
                 3 x 2mnk per matmul per evaluation (forward + two backward
                 products; WORKLOADS.md's count) for direct mode; an adjoint
                 pass costs 1 x per forward evaluation and 3 x per backward one,
     gemm_gflops flops executed inside the backend's gemm over the time spent
                 there (a timing wrapper around the CPU backend's gemm),
     peak        the measured FMA peak of this machine: threads x the best
                 single-thread measurement of bench_common.h (a multi-thread
                 measurement is cut short by other processes on a shared
                 machine), and both rates as a percentage of it.

   Usage: build/w3_dense [--iters N] [--warmup N] [--modes direct,adjoint,...] [--quick] [--data DIR] */
#define _POSIX_C_SOURCE 200809L
#define NDE_IMPLEMENTATION
#include "bench_workload.h"
#include "bench_common.h"

#define W3_BATCH 512
#define W3_DIM 64
#define W3_HIDDEN 256

/* ------------------------------------------------------------ gemm timing wrapper */
static struct { nde_backend table; const nde_backend *cpu; double seconds, flops; int on; } w3_gemm;

static void w3_timed_gemm(void *self, int ta, int tb, int64_t m, int64_t n, int64_t k, nde_real alpha,
                          const nde_real *a, int64_t lda, const nde_real *b, int64_t ldb, nde_real beta,
                          nde_real *c, int64_t ldc) {
    double t0 = w3_gemm.on ? bw_now() : 0.0;
    (void)self;
    w3_gemm.cpu->gemm(w3_gemm.cpu->self, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (w3_gemm.on) {
        w3_gemm.seconds += bw_now() - t0;
        w3_gemm.flops += 2.0 * (double)m * (double)n * (double)k;
    }
}

/* ------------------------------------------------------------ model */
typedef struct w3_model {
    nde_ctx *ctx;
    nde_linear l[3];
    nde_tensor *z0;
    nde_real *params0;
    nde_optimizer opt;
    nde_grad_mode mode;
} w3_model;

static nde_tensor *w3_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    w3_model *m = (w3_model *)user;
    nde_tensor *h;
    (void)t;
    h = nde_tanh(ctx, nde_linear_forward(ctx, &m->l[0], z));
    h = nde_tanh(ctx, nde_linear_forward(ctx, &m->l[1], h));
    return nde_linear_forward(ctx, &m->l[2], h);
}

static void w3_reset(void *user) {
    w3_model *m = (w3_model *)user;
    memcpy(nde_params_data(m->ctx), m->params0, sizeof(nde_real) * (size_t)nde_params_count(m->ctx));
}

static bw_iter w3_step(void *user) {
    w3_model *m = (w3_model *)user;
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    nde_solve_options o = nde_solve_options_default();
    bw_iter it;
    nde_tensor *z1, *loss;
    o.method = NDE_RK4;
    o.step_size = 0.1;
    z1 = bw_solve_to(ctx, m->mode, w3_field, m, m->z0, 0.0, 1.0, &o, &it);
    loss = nde_mean(ctx, nde_square(ctx, z1));
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    bw_solve_finish(&it);
    nde_optimizer_step(ctx, &m->opt);
    it.loss = loss ? nde_tensor_item(ctx, loss, 0) : NAN;
    bw_check(ctx, "W3");
    nde_ctx_reset(ctx, mk);
    return it;
}

static void w3_setup(w3_model *m, nde_ctx *ctx, const bw_args *a, int *synthetic) {
    static const int64_t widths[4] = {W3_DIM, W3_HIDDEN, W3_HIDDEN, W3_DIM};
    int i;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    *synthetic = 0;
    for (i = 0; i < 3; i++) {
        char nw[16], nb[16];
        snprintf(nw, sizeof nw, "l%d.w", i);
        snprintf(nb, sizeof nb, "l%d.b", i);
        *synthetic |= !bw_linear(ctx, a, "W3", &m->l[i], nw, nb, widths[i], widths[i + 1], 300 + (uint64_t)i);
    }
    m->z0 = nde_tensor_new(ctx, 2, (int64_t[]){W3_BATCH, W3_DIM});
    *synthetic |= !bw_tensor(ctx, a, "W3", "z0", m->z0, 310);
    m->params0 = bw_snapshot_params(ctx);
    m->opt = nde_adam(1e-3);
}

int main(int argc, char **argv) {
    bw_args a;
    w3_model m;
    nde_ctx *ctx;
    nde_ctx_desc desc = nde_ctx_desc_default();
    bw_result res[BW_MAX_MODES];
    nde_grad_mode modes[BW_MAX_MODES];
    int nmodes, synthetic, k;
    double peak;
    const double flops_eval = 2.0 * W3_BATCH * (W3_DIM * W3_HIDDEN + W3_HIDDEN * W3_HIDDEN + W3_HIDDEN * W3_DIM);
    if (bw_parse(argc, argv, &a, 10, 2, "direct,adjoint")) return 1;
    nmodes = bw_modes(&a, modes);
    w3_gemm.cpu = nde_cpu_backend();
    w3_gemm.table = *w3_gemm.cpu;
    w3_gemm.table.gemm = w3_timed_gemm;
    desc.backend = &w3_gemm.table;
    ctx = nde_ctx_new(desc);
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "w3: no context\n"); return 2; }
    w3_setup(&m, ctx, &a, &synthetic);
    bw_check(ctx, "W3 setup");
    /* threads x the single-thread peak (best of 10): on a shared machine a run of
       all threads at once is often cut short by the scheduler, one thread is not */
    peak = a.threads * bench_fma_peak(sizeof(nde_real) == 8, 1, 10);
    printf("# nde W3 dense: batch %d, 64-256-256-64 tanh, rk4 h=0.1, Adam; threads=%d iters=%d warmup=%d data=%s "
           "fma_peak=%.1f GFLOP/s (%s, %d x 1-thread peak)\n", W3_BATCH, a.threads, a.iters, a.warmup,
           synthetic ? "synthetic" : "peers", peak, BENCH_ISA, a.threads);
    for (k = 0; k < nmodes; k++) {
        char extra[256];
        double fl, gemm_rate;
        m.mode = modes[k];
        w3_gemm.seconds = w3_gemm.flops = 0.0;
        w3_gemm.on = 1;
        res[k] = bw_time(&a, w3_reset, w3_step, &m);
        w3_gemm.on = 0;
        /* flops per iteration: direct 3F per forward eval; adjoint F forward + 3F per backward eval */
        fl = flops_eval * (m.mode == NDE_GRAD_DIRECT ? 3.0 * (double)res[k].first.nfe_f
                                               : (double)res[k].first.nfe_f + 3.0 * (double)res[k].first.nfe_b);
        gemm_rate = w3_gemm.seconds > 0 ? w3_gemm.flops / w3_gemm.seconds * 1e-9 : 0.0;
        snprintf(extra, sizeof extra, " gflops=%.2f gemm_gflops=%.2f peak_gflops=%.1f pct_peak=%.1f gemm_pct_peak=%.1f",
                 fl / (res[k].ms * 1e-3) * 1e-9, gemm_rate, peak, 100.0 * fl / (res[k].ms * 1e-3) * 1e-9 / peak,
                 100.0 * gemm_rate / peak);
        bw_print("W3", nde_grad_mode_name(modes[k]), &res[k], extra);
    }
    bw_table_head("W3 dense (nde)");
    for (k = 0; k < nmodes; k++) bw_table_row(nde_grad_mode_name(modes[k]), &res[k]);
    nde_ctx_free(ctx);
    free(m.params0);
    return 0;
}
