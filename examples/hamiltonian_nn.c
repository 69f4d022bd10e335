// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/hamiltonian_nn.c -o build/ex_hamiltonian_nn -lm
/* examples/hamiltonian_nn.c - a Hamiltonian neural network learns the pendulum
   (Greydanus, Dzamba, Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019).

   Data: 512 states (q, p) uniform in [-2, 2]^2 with the pendulum's vector
   field (dq/dt, dp/dt) = (p, -sin q). Model: a separable learned energy
   H(q, p) = T(p) + V(q), T and V MLPs 1 - 32 - 1 (tanh); the field J grad H =
   (dH/dp, -dH/dq) comes from exact forward-mode jets, and training
   backpropagates through them. Loss: mean squared error of the field, Adam
   1e-2.

   After training, one trajectory from (q, p) = (1, 0) over t in [0, 1000] is
   integrated with leapfrog (h = 0.25), which conserves the learned H up to
   O(h^2) with no drift (measured max deviation 6.6e-3), and with the explicit
   midpoint rule (also second order, also two evaluations a step), whose
   learned energy drifts (1.6 by t = 1000).
   Default run (400 iterations): field MSE below 1e-3 (measured 8.8e-5); exit
   status 1 otherwise.

       ./build/ex_hamiltonian_nn
*/
#include "common.h"
#define NDE_IMPLEMENTATION
#include "../nde_zoo.h"

#define MAX_N 4096

typedef struct energy { nde_mlp T, V; } energy;

/* H(x) = T(p) + V(q) on jets, x = [q, p] */
static nde_jet *hamiltonian(nde_ctx *ctx, nde_jet *x, void *user) {
    energy *e = (energy *)user;
    return nde_jet_add(ctx, nde_jet_mlp_forward(ctx, &e->T, nde_jet_slice(ctx, x, 1, 1, 2)),
                       nde_jet_mlp_forward(ctx, &e->V, nde_jet_slice(ctx, x, 1, 0, 1)));
}
static double true_energy(double q, double p) { return 0.5 * p * p - cos(q); }

typedef struct hnn_args {
    int niters, seed, n, quiet;
    double lr, horizon, h;     /* the rollout: t in [0, horizon], step h */
} hnn_args;
static void hnn_args_default(hnn_args *a) {
    a->niters = 400; a->seed = 1; a->n = 512; a->quiet = 0; a->lr = 1e-2; a->horizon = 1000; a->h = 0.25;
}
typedef struct hnn_result {
    double first_loss, final_loss;   /* field MSE                                   */
    double dev_leapfrog, dev_true, dev_midpoint;  /* max energy deviations on the rollout */
} hnn_result;

/* Trains; 0 on success, 2 on a bad argument, 1 on a library error (printed). */
static int hnn_run(const hnn_args *a, hnn_result *r) {
    nde_ctx *ctx;
    energy e;
    nde_hnn hnn;
    nde_tensor *x, *y;
    nde_optimizer opt;
    ex_progress bar;
    int64_t w[3] = {1, 32, 1}, shp[2];
    static nde_real xs[2 * MAX_N], ys[2 * MAX_N];
    nde_rng rng;
    int i, it;
    memset(r, 0, sizeof *r);
    if (a->n < 1 || a->n > MAX_N || !(a->horizon > 0) || !(a->h > 0)) {
        fprintf(stderr, "need 1 <= n <= %d, horizon > 0, h > 0\n", MAX_N);
        return 2;
    }
    shp[0] = a->n; shp[1] = 2;
    rng = nde_rng_new((uint64_t)a->seed, 0);
    for (i = 0; i < a->n; i++) {
        double q = 4 * nde_rng_uniform1(&rng) - 2, p = 4 * nde_rng_uniform1(&rng) - 2;
        xs[2 * i] = (nde_real)q; xs[2 * i + 1] = (nde_real)p;
        ys[2 * i] = (nde_real)p; ys[2 * i + 1] = (nde_real)-sin(q);
    }
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx) return 1;
    nde_mlp_init(ctx, &e.T, "T", 3, w, NDE_ACT_TANH, (uint64_t)a->seed);
    nde_mlp_init(ctx, &e.V, "V", 3, w, NDE_ACT_TANH, (uint64_t)a->seed + 1);
    hnn.energy = hamiltonian; hnn.user = &e; hnn.dim = 1;
    x = nde_tensor_from(ctx, 2, shp, xs);
    y = nde_tensor_from(ctx, 2, shp, ys);
    opt = nde_adam(a->lr);
    bar = ex_progress_start(a->niters);
    for (it = 0; it < a->niters; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *loss = nde_mse_loss(ctx, nde_hnn_field(ctx, NULL, x, &hnn), y);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (nde_ctx_status(ctx) != NDE_OK) break;
        r->final_loss = nde_tensor_item(ctx, loss, 0);
        if (it == 0) r->first_loss = r->final_loss;
        if (!a->quiet) ex_progress_update(&bar, it + 1, "field MSE %.2e", r->final_loss);
        nde_ctx_reset(ctx, mk);
    }
    if (!a->quiet) ex_progress_finish(&bar);
    if (nde_ctx_status(ctx) == NDE_OK) {
        /* a long rollout: leapfrog conserves the learned energy, the midpoint rule need not */
        nde_tensor *lf[101];
        double ts[101], h0;
        nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){1.0, 0.0});
        nde_solution sol;
        nde_solve_options o = nde_solve_options_default();
        nde_set_grad_enabled(ctx, 0);
        for (i = 0; i <= 100; i++) ts[i] = a->horizon * i / 100.0;
        h0 = nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, z0), 0);
        nde_symplectic_solve(ctx, nde_hnn_field, &hnn, z0, 101, ts, a->h, NDE_LEAPFROG, lf);
        o.method = NDE_MIDPOINT; o.step_size = a->h;
        if (nde_solve(ctx, nde_hnn_field, &hnn, z0, 101, ts, &o, &sol) == NDE_OK) {
            for (i = 0; i <= 100 && nde_ctx_status(ctx) == NDE_OK; i++) {
                double q = nde_tensor_item(ctx, lf[i], 0), p = nde_tensor_item(ctx, lf[i], 1);
                r->dev_leapfrog = fmax(r->dev_leapfrog, fabs(nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, lf[i]), 0) - h0));
                r->dev_true = fmax(r->dev_true, fabs(true_energy(q, p) - true_energy(1.0, 0.0)));
                r->dev_midpoint = fmax(r->dev_midpoint, fabs(nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, sol.ys[i]), 0) - h0));
            }
            nde_solution_free(ctx, &sol);
        }
    }
    return ex_ctx_finish(ctx);
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    hnn_args a;
    hnn_result r;
    double target = 1e-3;
    int rc;
    hnn_args_default(&a);
    {
        ex_flag flags[] = {
            {"niters", EX_INT, &a.niters, "training iterations"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate"},
            {"n", EX_INT, &a.n, "training states"},
            {"horizon", EX_DOUBLE, &a.horizon, "rollout length"},
            {"h", EX_DOUBLE, &a.h, "rollout step"},
            {"seed", EX_INT, &a.seed, "data and initialisation seed"},
            {"target", EX_DOUBLE, &target, "the field MSE the run must reach"},
        };
        rc = ex_parse_flags(argc, argv, flags, 7, "a Hamiltonian neural network on the pendulum");
        if (rc) return rc < 0 ? 2 : 0;
    }
    rc = hnn_run(&a, &r);
    if (rc) return rc;
    printf("rollout t in [0, %g], h = %g from (q, p) = (1, 0), two field evaluations a step each:\n", a.horizon, a.h);
    printf("  leapfrog: max |H_learned - H0| %.2e, true pendulum energy within %.2e of its start\n", r.dev_leapfrog, r.dev_true);
    printf("  midpoint: max |H_learned - H0| %.2e (second order too, not symplectic: it drifts)\n", r.dev_midpoint);
    printf("field MSE %.2e (target < %g)\n", r.final_loss, target);
    return r.final_loss < target ? 0 : 1;
}
#endif
