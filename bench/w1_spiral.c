/* bench/w1_spiral.c - workload W1 (../shared/WORKLOADS.md): torchdiffeq's ode_demo.
   True system dy/dt = y^3 A on t = linspace(0, 25, 1000) from (2, 0); model
   f(t, y) = Linear(50,2)(tanh(Linear(2,50)(y^3))); one fixed batch of 20 windows
   of 10 points (fixed seed); dopri5 rtol 1e-7 atol 1e-9; loss mean |pred - true|;
   RMSprop lr 1e-3; float32. One training iteration = forward solve, loss,
   backward, optimizer step; ms is the median over --iters after --warmup, the
   modes taking turns iteration by iteration.

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

/* One mode's training state; the batch is the same fixed one for all. */
typedef struct runner {
    nde_grad_mode mode;
    nde_ctx *ctx;
    spiral m;
    nde_solve_options opt;
    nde_adjoint_options adj;
    nde_adjoint_stats stats;
    nde_optimizer rms;
    nde_tensor *z0, *tt, *target;
    double *ms, *nf, *nb, loss;
    int bad;
} runner;

static void runner_init(runner *r, nde_grad_mode mode, int iters, const nde_real *true_y, const double *t) {
    int64_t bshape[2] = {BATCH_SIZE, 2}, tshape = BATCH_TIME, yshape[3] = {BATCH_TIME, BATCH_SIZE, 2};
    nde_real by0[2 * BATCH_SIZE], by[2 * BATCH_SIZE * BATCH_TIME], bt[BATCH_TIME];
    nde_rng rng = nde_rng_new(0, 1);
    int b, k;
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->ctx = nde_ctx_new(nde_ctx_desc_default());
    r->opt = nde_solve_options_default();      /* dopri5, rtol 1e-7, atol 1e-9 */
    r->adj = nde_adjoint_options_default(mode);
    r->adj.stats = &r->stats;
    r->rms = nde_rmsprop(1e-3);
    nde_linear_init(r->ctx, &r->m.l1, "net.0", 2, 50, 1, 0);
    nde_linear_init(r->ctx, &r->m.l2, "net.2", 50, 2, 1, 1);
    nde_tensor_fill_normal(r->ctx, r->m.l1.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill_normal(r->ctx, r->m.l2.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill(r->ctx, r->m.l1.bias, NDE_R(0.0));
    nde_tensor_fill(r->ctx, r->m.l2.bias, NDE_R(0.0));
    for (b = 0; b < BATCH_SIZE; b++) {      /* fixed windows, spread over the trajectory */
        int s = (b * 97 + 13) % (DATA_SIZE - BATCH_TIME);
        by0[2 * b] = true_y[2 * s]; by0[2 * b + 1] = true_y[2 * s + 1];
        for (k = 0; k < BATCH_TIME; k++) {
            by[(k * BATCH_SIZE + b) * 2] = true_y[2 * (s + k)];
            by[(k * BATCH_SIZE + b) * 2 + 1] = true_y[2 * (s + k) + 1];
        }
    }
    for (k = 0; k < BATCH_TIME; k++) bt[k] = (nde_real)t[k];
    r->z0 = nde_tensor_from(r->ctx, 2, bshape, by0);
    r->tt = nde_tensor_from(r->ctx, 1, &tshape, bt);
    r->target = nde_tensor_from(r->ctx, 3, yshape, by);
    r->ms = (double *)calloc((size_t)iters, sizeof(double));
    r->nf = (double *)calloc((size_t)iters, sizeof(double));
    r->nb = (double *)calloc((size_t)iters, sizeof(double));
    r->loss = NAN;
}

static void runner_step(runner *r, int slot) {
    nde_ctx *ctx = r->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    double t0 = ex_now();
    nde_tensor *pred, *l;
    if (r->bad) return;
    pred = nde_odeint_adjoint(ctx, model_field, &r->m, r->z0, r->tt, &r->opt, &r->adj, NULL);
    l = nde_l1_loss(ctx, pred, r->target);
    nde_zero_grad(ctx);
    nde_backward(ctx, l);
    nde_optimizer_step(ctx, &r->rms);
    if (nde_ctx_status(ctx) != NDE_OK) {
        fprintf(stderr, "w1_spiral: %s: %s\n", nde_grad_mode_name(r->mode), nde_ctx_message(ctx));
        r->bad = 1;
        return;
    }
    r->loss = nde_tensor_item(ctx, l, 0);
    if (slot >= 0) {
        r->ms[slot] = 1e3 * (ex_now() - t0);
        r->nf[slot] = (double)r->stats.nfe_forward;
        r->nb[slot] = (double)r->stats.nfe_backward;
    }
    nde_ctx_reset(ctx, mk);
}

static void runner_report(runner *r, int iters) {
    if (!r->bad)
        printf("BENCH lib=nde workload=W1 mode=%s ms=%.3f nfe_f=%.0f nfe_b=%.0f loss=%.6f iters=%d\n",
               nde_grad_mode_name(r->mode), ex_median(r->ms, iters), ex_median(r->nf, iters), ex_median(r->nb, iters),
               r->loss, iters);
    free(r->ms); free(r->nf); free(r->nb);
    nde_ctx_free(r->ctx);
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
    static runner runs[16];
    int count = 0, it;
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
    for (tok = strtok(buf, ","); tok && count < 16; tok = strtok(NULL, ",")) {
        nde_grad_mode mode;
        nde_ctx *probe = nde_ctx_new(nde_ctx_desc_default());
        if (nde_grad_mode_from_name(probe, tok, &mode) != NDE_OK) {
            fprintf(stderr, "w1_spiral: %s\n", nde_ctx_message(probe));
            nde_ctx_free(probe);
            return 2;
        }
        nde_ctx_free(probe);
        runner_init(&runs[count++], mode, iters, true_y, t);
    }
    for (it = -warmup; it < iters; it++)        /* round robin, as w2_wide.c */
        for (i = 0; i < count; i++) runner_step(&runs[i], it);
    for (i = 0; i < count; i++) {
        bad |= runs[i].bad;
        runner_report(&runs[i], iters);
    }
    return bad;
}
