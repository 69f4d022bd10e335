/* bench/w1_spiral.c - workload W1 (../shared/WORKLOADS.md): torchdiffeq's ode_demo.
   True system dy/dt = y^3 A on t = linspace(0, 25, 1000) from (2, 0); model
   f(t, y) = Linear(50,2)(tanh(Linear(2,50)(y^3))); one fixed batch of 20 windows
   of 10 points (fixed seed); dopri5 rtol 1e-7 atol 1e-9; loss mean |pred - true|;
   RMSprop lr 1e-3; float32. One training iteration = forward solve, loss,
   backward, optimizer step; ms is the median over --iters after --warmup.

   BENCH lib=nde workload=W1 mode=<direct|adjoint|...> ms=... nfe_f=... nfe_b=... loss=... iters=...

   ./build/w1_spiral [--iters 50] [--warmup 5] [--modes direct,adjoint] [--threads 2] */
#include "../examples/common.h"
#define NDE_IMPLEMENTATION
#include "../nde_adjoint.h"

#define DATA_SIZE 1000
#define BATCH_TIME 10
#define BATCH_SIZE 20

typedef struct spiral { nde_linear l1, l2; } spiral;

static nde_tensor *model_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    spiral *m = (spiral *)user;
    (void)t;
    return nde_linear_forward(ctx, &m->l2, nde_tanh(ctx, nde_linear_forward(ctx, &m->l1, nde_powi(ctx, y, 3))));
}
static nde_tensor *true_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    (void)t;
    return nde_matmul(ctx, nde_powi(ctx, y, 3), (nde_tensor *)user, 0, 0);
}

static int run_mode(nde_grad_mode mode, int iters, int warmup, const nde_real *true_y, const double *t) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_solve_options opt = nde_solve_options_default();
    nde_adjoint_options adj = nde_adjoint_options_default(mode);
    nde_adjoint_stats stats;
    nde_optimizer rms = nde_rmsprop(1e-3);
    nde_rng rng = nde_rng_new(0, 1);
    spiral m;
    int64_t bshape[2] = {BATCH_SIZE, 2}, tshape = BATCH_TIME, yshape[3] = {BATCH_TIME, BATCH_SIZE, 2};
    nde_real by0[2 * BATCH_SIZE], by[2 * BATCH_SIZE * BATCH_TIME], bt[BATCH_TIME];
    double *ms = (double *)malloc((size_t)iters * sizeof(double));
    double *nf = (double *)malloc((size_t)iters * sizeof(double)), *nb = (double *)malloc((size_t)iters * sizeof(double));
    double loss = NAN;
    nde_tensor *z0, *tt, *target;
    int it, b, k, bad = 0;
    adj.stats = &stats;
    nde_linear_init(ctx, &m.l1, "net.0", 2, 50, 1, 0);
    nde_linear_init(ctx, &m.l2, "net.2", 50, 2, 1, 1);
    nde_tensor_fill_normal(ctx, m.l1.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill_normal(ctx, m.l2.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill(ctx, m.l1.bias, NDE_R(0.0));
    nde_tensor_fill(ctx, m.l2.bias, NDE_R(0.0));
    for (b = 0; b < BATCH_SIZE; b++) {      /* fixed windows, spread over the trajectory */
        int s = (b * 97 + 13) % (DATA_SIZE - BATCH_TIME);
        by0[2 * b] = true_y[2 * s]; by0[2 * b + 1] = true_y[2 * s + 1];
        for (k = 0; k < BATCH_TIME; k++) {
            by[(k * BATCH_SIZE + b) * 2] = true_y[2 * (s + k)];
            by[(k * BATCH_SIZE + b) * 2 + 1] = true_y[2 * (s + k) + 1];
        }
    }
    for (k = 0; k < BATCH_TIME; k++) bt[k] = (nde_real)t[k];
    z0 = nde_tensor_from(ctx, 2, bshape, by0);
    tt = nde_tensor_from(ctx, 1, &tshape, bt);
    target = nde_tensor_from(ctx, 3, yshape, by);
    for (it = -warmup; it < iters && !bad; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        double t0 = ex_now();
        nde_tensor *pred = nde_odeint_adjoint(ctx, model_field, &m, z0, tt, &opt, &adj, NULL);
        nde_tensor *l = nde_l1_loss(ctx, pred, target);
        nde_zero_grad(ctx);
        nde_backward(ctx, l);
        nde_optimizer_step(ctx, &rms);
        if (nde_ctx_status(ctx) != NDE_OK) { bad = 1; break; }
        loss = nde_tensor_item(ctx, l, 0);
        if (it >= 0) {
            ms[it] = 1e3 * (ex_now() - t0);
            nf[it] = (double)stats.nfe_forward;
            nb[it] = (double)stats.nfe_backward;
        }
        nde_ctx_reset(ctx, mk);
    }
    if (bad) fprintf(stderr, "w1_spiral: %s: %s\n", nde_grad_mode_name(mode), nde_ctx_message(ctx));
    else
        printf("BENCH lib=nde workload=W1 mode=%s ms=%.3f nfe_f=%.0f nfe_b=%.0f loss=%.6f iters=%d\n",
               nde_grad_mode_name(mode), ex_median(ms, iters), ex_median(nf, iters), ex_median(nb, iters), loss, iters);
    fflush(stdout);
    free(ms); free(nf); free(nb);
    nde_ctx_free(ctx);
    return bad;
}

int main(int argc, char **argv) {
    int iters = 50, warmup = 5, threads = 0, bad = 0, i;
    const char *modes = "direct,adjoint";
    ex_flag flags[] = {
        {"iters", EX_INT, &iters, "timed iterations per mode"},
        {"warmup", EX_INT, &warmup, "untimed iterations first"},
        {"modes", EX_STRING, &modes, "comma-separated gradient modes"},
        {"threads", EX_INT, &threads, "OpenMP threads (0: default)"},
    };
    static double t[DATA_SIZE];
    static nde_real true_y[2 * DATA_SIZE];
    char buf[256], *tok;
    int rc = ex_parse_flags(argc, argv, flags, 4, "benchmark W1 (torchdiffeq's spiral)");
    if (rc) return rc < 0 ? 2 : 0;
    if (iters < 1 || warmup < 0) { fprintf(stderr, "w1_spiral: --iters >= 1, --warmup >= 0\n"); return 2; }
    if (threads > 0) nde_set_num_threads(threads);
    for (i = 0; i < DATA_SIZE; i++) t[i] = 25.0 * i / (DATA_SIZE - 1);
    {
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
        int64_t two2[2] = {2, 2}, one2[2] = {1, 2};
        nde_real a[4] = {NDE_R(-0.1), NDE_R(2.0), NDE_R(-2.0), NDE_R(-0.1)}, y0v[2] = {NDE_R(2.0), NDE_R(0.0)};
        nde_solution sol;
        nde_tensor *A = nde_tensor_from(ctx, 2, two2, a), *y0 = nde_tensor_from(ctx, 2, one2, y0v);
        if (nde_solve(ctx, true_field, A, y0, DATA_SIZE, t, NULL, &sol) == NDE_OK)
            for (i = 0; i < DATA_SIZE; i++) nde_tensor_to_host(ctx, sol.ys[i], true_y + 2 * i);
        else bad = 1;
        nde_solution_free(ctx, &sol);
        if (bad) fprintf(stderr, "w1_spiral: %s\n", nde_ctx_message(ctx));
        nde_ctx_free(ctx);
        if (bad) return 1;
    }
    snprintf(buf, sizeof buf, "%s", modes);
    for (tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        nde_grad_mode mode;
        nde_ctx *probe = nde_ctx_new(nde_ctx_desc_default());
        if (nde_grad_mode_from_name(probe, tok, &mode) != NDE_OK) {
            fprintf(stderr, "w1_spiral: %s\n", nde_ctx_message(probe));
            nde_ctx_free(probe);
            return 2;
        }
        nde_ctx_free(probe);
        bad |= run_mode(mode, iters, warmup, true_y, t);
    }
    return bad;
}
