// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/lagrangian_nn.c -o build/ex_lagrangian_nn -lm
/* examples/lagrangian_nn.c - a Lagrangian neural network learns a heavy pendulum
   (Cranmer, Greydanus, Hoyer, Battaglia, Spergel, Ho, "Lagrangian Neural
   Networks", 2020).

   Truth: L = v^2 + 3 cos q (mass 2), so Euler-Lagrange gives a = -1.5 sin q.
   Data: 512 states (q, v) uniform in [-2, 2]^2 with their accelerations.
   Model: L_theta(q, v) = v^2/2 + MLP(q, v) (2 - 32 - 1, tanh); the free-particle
   term keeps the mass matrix d2L/dv2 invertible at initialisation, the MLP
   learns the rest (here the extra v^2/2 and the potential). The acceleration
       a = (d2L/dv2)^-1 (dL/dq - d2L/dv dq v)
   comes from one order-2 jet over 4 directions per sample (nde_lnn_acceleration:
   Hessian entries by polarization), and training backpropagates through it.
   Loss: mean squared error of a, Adam 1e-2. Afterwards the learned model and
   the truth are integrated from (q, v) = (1, 0) to t = 10 (rk4, h = 0.01).
   Default run (500 iterations): acceleration MSE below 2e-3 (measured 1.6e-4);
   exit status 1 otherwise.

       ./build/ex_lagrangian_nn
*/
#include "common.h"
#define NDE_IMPLEMENTATION
#include "../nde_zoo.h"

#define MAX_N 4096

static nde_jet *lagrangian(nde_ctx *ctx, nde_jet *x, void *user) {
    nde_jet *v = nde_jet_slice(ctx, x, 1, 1, 2);
    return nde_jet_add(ctx, nde_jet_scale(ctx, nde_jet_square(ctx, v), NDE_R(0.5)), nde_jet_mlp_forward(ctx, (nde_mlp *)user, x));
}
static nde_tensor *true_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    nde_tensor *p[2];
    (void)t; (void)user;
    p[0] = nde_slice(ctx, z, 1, 1, 2);
    p[1] = nde_scale(ctx, nde_sin(ctx, nde_slice(ctx, z, 1, 0, 1)), NDE_R(-1.5));
    return nde_concat(ctx, 2, p, 1);
}

typedef struct lnn_args { int niters, seed, n, quiet; double lr; } lnn_args;
static void lnn_args_default(lnn_args *a) { a->niters = 500; a->seed = 1; a->n = 512; a->quiet = 0; a->lr = 1e-2; }
typedef struct lnn_result {
    double first_loss, final_loss;   /* acceleration MSE                   */
    double q10_learned, q10_true;    /* q(10) from (q, v) = (1, 0)         */
} lnn_result;

/* Trains; 0 on success, 2 on a bad argument, 1 on a library error (printed). */
static int lnn_run(const lnn_args *a, lnn_result *r) {
    nde_ctx *ctx;
    nde_mlp net;
    nde_lnn lnn;
    nde_tensor *x, *acc;
    nde_optimizer opt;
    ex_progress bar;
    int64_t w[3] = {2, 32, 1}, shp[2], ashp[2];
    static nde_real xs[2 * MAX_N], as[MAX_N];
    nde_rng rng;
    int i, it;
    memset(r, 0, sizeof *r);
    if (a->n < 1 || a->n > MAX_N) { fprintf(stderr, "--n must be in 1..%d\n", MAX_N); return 2; }
    shp[0] = ashp[0] = a->n; shp[1] = 2; ashp[1] = 1;
    rng = nde_rng_new((uint64_t)a->seed, 0);
    for (i = 0; i < a->n; i++) {
        double q = 4 * nde_rng_uniform1(&rng) - 2, v = 4 * nde_rng_uniform1(&rng) - 2;
        xs[2 * i] = (nde_real)q; xs[2 * i + 1] = (nde_real)v;
        as[i] = (nde_real)(-1.5 * sin(q));
    }
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx) return 1;
    nde_mlp_init(ctx, &net, "L", 3, w, NDE_ACT_TANH, (uint64_t)a->seed);
    lnn.lagrangian = lagrangian; lnn.user = &net; lnn.dim = 1;
    x = nde_tensor_from(ctx, 2, shp, xs);
    acc = nde_tensor_from(ctx, 2, ashp, as);
    opt = nde_adam(a->lr);
    bar = ex_progress_start(a->niters);
    for (it = 0; it < a->niters; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *loss = nde_mse_loss(ctx, nde_lnn_acceleration(ctx, &lnn, x), acc);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (nde_ctx_status(ctx) != NDE_OK) break;
        r->final_loss = nde_tensor_item(ctx, loss, 0);
        if (it == 0) r->first_loss = r->final_loss;
        if (!a->quiet) ex_progress_update(&bar, it + 1, "acceleration MSE %.2e", r->final_loss);
        nde_ctx_reset(ctx, mk);
    }
    if (!a->quiet) ex_progress_finish(&bar);
    if (nde_ctx_status(ctx) == NDE_OK) {
        nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){1.0, 0.0});
        nde_solve_options o = nde_solve_options_default();
        double ts[2] = {0.0, 10.0};
        nde_solution sl, st;
        nde_set_grad_enabled(ctx, 0);
        o.method = NDE_RK4; o.step_size = 0.01;
        if (nde_solve(ctx, nde_lnn_field, &lnn, z0, 2, ts, &o, &sl) == NDE_OK) {
            r->q10_learned = nde_tensor_item(ctx, sl.ys[1], 0);
            nde_solution_free(ctx, &sl);
        }
        if (nde_solve(ctx, true_field, NULL, z0, 2, ts, &o, &st) == NDE_OK) {
            r->q10_true = nde_tensor_item(ctx, st.ys[1], 0);
            nde_solution_free(ctx, &st);
        }
    }
    return ex_ctx_finish(ctx);
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    lnn_args a;
    lnn_result r;
    double target = 2e-3;
    int rc;
    lnn_args_default(&a);
    {
        ex_flag flags[] = {
            {"niters", EX_INT, &a.niters, "training iterations"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate"},
            {"n", EX_INT, &a.n, "training states"},
            {"seed", EX_INT, &a.seed, "data and initialisation seed"},
            {"target", EX_DOUBLE, &target, "the acceleration MSE the run must reach"},
        };
        rc = ex_parse_flags(argc, argv, flags, 5, "a Lagrangian neural network on a heavy pendulum");
        if (rc) return rc < 0 ? 2 : 0;
    }
    rc = lnn_run(&a, &r);
    if (rc) return rc;
    printf("q(10): learned %.4f, true %.4f\n", r.q10_learned, r.q10_true);
    printf("acceleration MSE %.2e (target < %g)\n", r.final_loss, target);
    return r.final_loss < target ? 0 : 1;
}
#endif
