// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/cnf.c -o build/ex_cnf -lm
/* examples/cnf.c - a continuous normalizing flow learns a two-Gaussian density
   (Chen, Rubanova, Bettencourt, Duvenaud 2018; FFJORD, Grathwohl et al. 2019).

   Data: an even mixture of N((-1.5, 0), 0.4^2 I) and N((1.5, 0), 0.4^2 I); its
   entropy, the best reachable negative log-likelihood, is about 1.70 nats
   (a standard normal scores about 3.1 on it). Model: dz/dt = MLP(z)
   (2 - 32 - 32 - 2, tanh) on t in [0, 1], state [z, D] with dD/dt = -tr(df/dz),
   so log p(x) = log N(z(1); 0, I) - D(1). Trace: exact by default (2 JVPs by
   jets), --hutchinson for the Hutchinson estimator with Rademacher noise
   drawn once per solve. rk4 with 8 steps, batches of 128 fresh samples, Adam
   1e-2, loss = mean negative log-likelihood.
   Default run (150 iterations): NLL on 4096 fresh samples below 2.0 nats
   (measured 1.76 with either trace); exit status 1 otherwise.

       ./build/ex_cnf
       ./build/ex_cnf --hutchinson
*/
#include "common.h"
#define NDE_IMPLEMENTATION
#include "../nde_zoo.h"

static nde_jet *flow(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)t;
    return nde_jet_mlp_forward(ctx, (nde_mlp *)user, z);
}

/* n samples of the mixture */
static nde_tensor *sample(nde_ctx *ctx, int64_t n, uint64_t seed) {
    nde_real *v = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(2 * n) * sizeof(nde_real));
    nde_rng r = nde_rng_new(seed, 1);
    int64_t i, shp[2];
    if (!v) return NULL;
    for (i = 0; i < n; i++) {
        double c = nde_rng_uniform1(&r) < 0.5 ? -1.5 : 1.5;
        v[2 * i] = (nde_real)(c + 0.4 * nde_rng_normal1(&r));
        v[2 * i + 1] = (nde_real)(0.4 * nde_rng_normal1(&r));
    }
    shp[0] = n; shp[1] = 2;
    return nde_tensor_from(ctx, 2, shp, v);
}

/* log p(x) under the flow, (n, 1) */
static nde_tensor *cnf_log_density(nde_ctx *ctx, nde_cnf *c, nde_tensor *x, uint64_t noise_seed) {
    nde_solve_options o = nde_solve_options_default();
    double ts[2] = {0.0, 1.0};
    int64_t n, shp[2];
    nde_tensor *s, *zT, *D;
    if (!x) return NULL;
    n = x->shape[0];
    if (c->trace == NDE_TRACE_HUTCHINSON) {
        nde_rng r = nde_rng_new(noise_seed, 2);
        nde_cnf_draw_noise(ctx, c, n, &r);          /* once per solve */
    }
    o.method = NDE_RK4; o.step_size = 1.0 / 8;
    s = nde_odeint(ctx, nde_cnf_field, c, nde_augment_zeros(ctx, x, 1), 2, ts, &o);
    shp[0] = n; shp[1] = 3;
    s = nde_reshape(ctx, nde_slice(ctx, s, 0, 1, 2), 2, shp);
    zT = nde_slice(ctx, s, 1, 0, 2);
    D = nde_slice(ctx, s, 1, 2, 3);
    return nde_sub(ctx, nde_normal_logpdf(ctx, zT), D);
}
/* mean negative log-likelihood of x under the flow */
static nde_tensor *nll(nde_ctx *ctx, nde_cnf *c, nde_tensor *x, uint64_t noise_seed) {
    return nde_neg(ctx, nde_mean(ctx, cnf_log_density(ctx, c, x, noise_seed)));
}

typedef struct cnf_args { int niters, batch, hutchinson, seed, eval_n, quiet; double lr; } cnf_args;
static void cnf_args_default(cnf_args *a) {
    a->niters = 150; a->batch = 128; a->hutchinson = 0; a->seed = 1; a->eval_n = 4096; a->quiet = 0; a->lr = 1e-2;
}
typedef struct cnf_result {
    double first_loss;     /* training NLL of iteration 1                        */
    double final_nll;      /* exact-trace NLL on eval_n fresh samples            */
    double mass;           /* integral of p over [-6, 6]^2 (0.2 grid): ~1        */
} cnf_result;

/* The integral of the flow's density over [-6, 6]^2 by the midpoint rule. */
static double cnf_mass(nde_ctx *ctx, nde_cnf *c) {
    enum { G = 60 };
    int64_t shp[2] = {G * G, 2};
    nde_real *v = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(2 * G * G) * sizeof(nde_real));
    nde_tensor *lp;
    double h = 12.0 / G, sum = 0;
    int i, j;
    if (!v) return 0;
    for (i = 0; i < G; i++)
        for (j = 0; j < G; j++) {
            v[2 * (i * G + j)] = (nde_real)(-6 + h * (i + 0.5));
            v[2 * (i * G + j) + 1] = (nde_real)(-6 + h * (j + 0.5));
        }
    lp = cnf_log_density(ctx, c, nde_tensor_from(ctx, 2, shp, v), 0);
    for (i = 0; lp && i < G * G; i++) sum += exp((double)lp->data[i]);
    return sum * h * h;
}

/* Trains; 0 on success, 2 on a bad argument, 1 on a library error (printed). */
static int cnf_run(const cnf_args *a, cnf_result *r) {
    nde_ctx *ctx;
    nde_mlp net;
    nde_cnf cnf;
    nde_optimizer opt;
    ex_progress bar;
    int64_t w[4] = {2, 32, 32, 2};
    int it;
    memset(r, 0, sizeof *r);
    if (a->batch < 1 || a->eval_n < 1) { fprintf(stderr, "--batch must be positive\n"); return 2; }
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx) return 1;
    nde_mlp_init(ctx, &net, "f", 4, w, NDE_ACT_TANH, (uint64_t)a->seed);
    memset(&cnf, 0, sizeof cnf);
    cnf.f = flow; cnf.user = &net; cnf.dim = 2;
    cnf.trace = a->hutchinson ? NDE_TRACE_HUTCHINSON : NDE_TRACE_EXACT;
    opt = nde_adam(a->lr);
    bar = ex_progress_start(a->niters);
    for (it = 0; it < a->niters; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *loss = nll(ctx, &cnf, sample(ctx, a->batch, (uint64_t)it + 100), (uint64_t)it);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (nde_ctx_status(ctx) != NDE_OK) break;
        if (it == 0) r->first_loss = nde_tensor_item(ctx, loss, 0);
        if (!a->quiet) ex_progress_update(&bar, it + 1, "NLL %.3f", (double)nde_tensor_item(ctx, loss, 0));
        nde_ctx_reset(ctx, mk);
    }
    if (!a->quiet) ex_progress_finish(&bar);
    if (nde_ctx_status(ctx) == NDE_OK) {   /* exact-trace NLL on fresh samples, and the total mass */
        nde_set_grad_enabled(ctx, 0);
        cnf.trace = NDE_TRACE_EXACT;
        r->final_nll = nde_tensor_item(ctx, nll(ctx, &cnf, sample(ctx, a->eval_n, 7), 0), 0);
        r->mass = cnf_mass(ctx, &cnf);
    }
    return ex_ctx_finish(ctx);
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    cnf_args a;
    cnf_result r;
    double target = 2.0;
    int rc;
    cnf_args_default(&a);
    {
        ex_flag flags[] = {
            {"niters", EX_INT, &a.niters, "training iterations"},
            {"batch", EX_INT, &a.batch, "samples per iteration"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate"},
            {"hutchinson", EX_BOOL, &a.hutchinson, "Hutchinson trace estimator instead of the exact trace"},
            {"seed", EX_INT, &a.seed, "initialisation seed"},
            {"target", EX_DOUBLE, &target, "the evaluation NLL the run must reach"},
        };
        rc = ex_parse_flags(argc, argv, flags, 6, "a continuous normalizing flow on a two-Gaussian density");
        if (rc) return rc < 0 ? 2 : 0;
    }
    rc = cnf_run(&a, &r);
    if (rc) return rc;
    printf("the learned density integrates to %.4f over [-6, 6]^2\n", r.mass);
    printf("NLL on %d fresh samples: %.3f nats (entropy of the data ~1.70; target < %g; trained with the %s trace)\n",
           a.eval_n, r.final_nll, target, a.hutchinson ? "Hutchinson" : "exact");
    return r.final_nll < target ? 0 : 1;
}
#endif
