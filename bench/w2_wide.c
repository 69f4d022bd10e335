/* bench/w2_wide.c - workload W2 (../shared/WORKLOADS.md): the quadrature-adjoint
   regime, a small state and many parameters.
   f(t, z) = Linear(2000,2)(softplus(Linear(2,2000)(z))), batch 256, z0 ~ N(0,1)
   (fixed seed, one fixed batch), t in [0, 1], dopri5 rtol 1e-3 atol 1e-4, loss
   mean(z(1)^2), Adam lr 1e-3, float32. One training iteration = forward solve,
   loss, backward, optimizer step; ms is the median over --iters iterations after
   --warmup; nfe_f / nfe_b are the medians of the forward and backward function
   evaluations (a VJP counts one; direct mode has no backward evaluations).

   BENCH lib=nde workload=W2 mode=<direct|checkpoint|adjoint|interp|gq|gq_step> ms=... nfe_f=... nfe_b=... loss=... iters=...

   ./build/w2_wide [--iters 20] [--warmup 3] [--modes direct,adjoint,gq] [--threads 2] */
#include "../examples/common.h"
#define NDE_IMPLEMENTATION
#include "../nde_adjoint.h"

typedef struct wide { nde_linear l1, l2; } wide;

static nde_tensor *wide_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    wide *w = (wide *)user;
    (void)t;
    return nde_linear_forward(ctx, &w->l2, nde_softplus(ctx, nde_linear_forward(ctx, &w->l1, z)));
}

static int run_mode(nde_grad_mode mode, int iters, int warmup) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_solve_options opt = nde_solve_options_default();
    nde_adjoint_options adj = nde_adjoint_options_default(mode);
    nde_adjoint_stats stats;
    nde_optimizer adam = nde_adam(1e-3);
    wide w;
    int64_t zshape[2] = {256, 2}, two = 2;
    nde_real tv[2] = {NDE_R(0.0), NDE_R(1.0)};
    double *ms = (double *)malloc((size_t)iters * sizeof(double));
    double *nf = (double *)malloc((size_t)iters * sizeof(double)), *nb = (double *)malloc((size_t)iters * sizeof(double));
    double loss = NAN;
    nde_tensor *z0, *t;
    int it, bad = 0;
    opt.method = NDE_DOPRI5; opt.rtol = 1e-3; opt.atol = 1e-4;
    adj.stats = &stats;
    nde_linear_init(ctx, &w.l1, "l1", 2, 2000, 1, 1);
    nde_linear_init(ctx, &w.l2, "l2", 2000, 2, 1, 2);
    z0 = nde_tensor_randn(ctx, 2, zshape, 42, 0);
    t = nde_tensor_from(ctx, 1, &two, tv);
    for (it = -warmup; it < iters && !bad; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        double t0 = ex_now();
        nde_tensor *y = nde_odeint_adjoint(ctx, wide_field, &w, z0, t, &opt, &adj, NULL);
        nde_tensor *l = nde_mean(ctx, nde_square(ctx, nde_slice(ctx, y, 0, 1, 2)));
        nde_zero_grad(ctx);
        nde_backward(ctx, l);
        nde_optimizer_step(ctx, &adam);
        if (nde_ctx_status(ctx) != NDE_OK) { bad = 1; break; }
        loss = nde_tensor_item(ctx, l, 0);
        if (it >= 0) {
            ms[it] = 1e3 * (ex_now() - t0);
            nf[it] = (double)stats.nfe_forward;
            nb[it] = (double)stats.nfe_backward;
        }
        nde_ctx_reset(ctx, m);
    }
    if (bad) fprintf(stderr, "w2_wide: %s: %s\n", nde_grad_mode_name(mode), nde_ctx_message(ctx));
    else
        printf("BENCH lib=nde workload=W2 mode=%s ms=%.3f nfe_f=%.0f nfe_b=%.0f loss=%.6f iters=%d\n", nde_grad_mode_name(mode),
               ex_median(ms, iters), ex_median(nf, iters), ex_median(nb, iters), loss, iters);
    fflush(stdout);
    free(ms); free(nf); free(nb);
    nde_ctx_free(ctx);
    return bad;
}

int main(int argc, char **argv) {
    int iters = 20, warmup = 3, threads = 0, bad = 0;
    const char *modes = "direct,checkpoint,adjoint,interp,gq,gq_step";
    ex_flag flags[] = {
        {"iters", EX_INT, &iters, "timed iterations per mode"},
        {"warmup", EX_INT, &warmup, "untimed iterations first"},
        {"modes", EX_STRING, &modes, "comma-separated gradient modes"},
        {"threads", EX_INT, &threads, "OpenMP threads (0: default)"},
    };
    char buf[256], *tok;
    int rc = ex_parse_flags(argc, argv, flags, 4, "benchmark W2 (wide MLP field, small state)");
    if (rc) return rc < 0 ? 2 : 0;
    if (iters < 1 || warmup < 0) { fprintf(stderr, "w2_wide: --iters >= 1, --warmup >= 0\n"); return 2; }
    if (threads > 0) nde_set_num_threads(threads);
    snprintf(buf, sizeof buf, "%s", modes);
    for (tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        nde_grad_mode mode;
        nde_ctx *probe = nde_ctx_new(nde_ctx_desc_default());
        if (nde_grad_mode_from_name(probe, tok, &mode) != NDE_OK) {
            fprintf(stderr, "w2_wide: %s\n", nde_ctx_message(probe));
            nde_ctx_free(probe);
            return 2;
        }
        nde_ctx_free(probe);
        bad |= run_mode(mode, iters, warmup);
    }
    return bad;
}
