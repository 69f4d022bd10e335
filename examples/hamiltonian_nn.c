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

#define N 512

typedef struct energy { nde_mlp T, V; } energy;

/* H(x) = T(p) + V(q) on jets, x = [q, p] */
static nde_jet *hamiltonian(nde_ctx *ctx, nde_jet *x, void *user) {
    energy *e = (energy *)user;
    return nde_jet_add(ctx, nde_jet_mlp_forward(ctx, &e->T, nde_jet_slice(ctx, x, 1, 1, 2)),
                       nde_jet_mlp_forward(ctx, &e->V, nde_jet_slice(ctx, x, 1, 0, 1)));
}
static double true_energy(double q, double p) { return 0.5 * p * p - cos(q); }

int main(int argc, char **argv) {
    int niters = 400, seed = 1;
    double lr = 1e-2, target = 1e-3;
    ex_flag flags[] = {
        {"niters", EX_INT, &niters, "training iterations"},
        {"lr", EX_DOUBLE, &lr, "Adam learning rate"},
        {"seed", EX_INT, &seed, "data and initialisation seed"},
        {"target", EX_DOUBLE, &target, "the field MSE the run must reach"},
    };
    int rc = ex_parse_flags(argc, argv, flags, 4, "a Hamiltonian neural network on the pendulum");
    nde_ctx *ctx;
    energy e;
    nde_hnn hnn;
    nde_tensor *x, *y;
    nde_optimizer opt;
    ex_progress bar;
    int64_t w[3] = {1, 32, 1}, shp[2] = {N, 2};
    nde_real xs[2 * N], ys[2 * N];
    nde_rng rng;
    double loss_v = 1e9;
    int i, it;
    if (rc) return rc < 0 ? 2 : 0;
    rng = nde_rng_new((uint64_t)seed, 0);
    for (i = 0; i < N; i++) {
        double q = 4 * nde_rng_uniform1(&rng) - 2, p = 4 * nde_rng_uniform1(&rng) - 2;
        xs[2 * i] = (nde_real)q; xs[2 * i + 1] = (nde_real)p;
        ys[2 * i] = (nde_real)p; ys[2 * i + 1] = (nde_real)-sin(q);
    }
    ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp_init(ctx, &e.T, "T", 3, w, NDE_ACT_TANH, (uint64_t)seed);
    nde_mlp_init(ctx, &e.V, "V", 3, w, NDE_ACT_TANH, (uint64_t)seed + 1);
    hnn.energy = hamiltonian; hnn.user = &e; hnn.dim = 1;
    x = nde_tensor_from(ctx, 2, shp, xs);
    y = nde_tensor_from(ctx, 2, shp, ys);
    opt = nde_adam(lr);
    bar = ex_progress_start(niters);
    for (it = 0; it < niters; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *loss = nde_mse_loss(ctx, nde_hnn_field(ctx, NULL, x, &hnn), y);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (nde_ctx_status(ctx) != NDE_OK) break;
        loss_v = nde_tensor_item(ctx, loss, 0);
        ex_progress_update(&bar, it + 1, "field MSE %.2e", loss_v);
        nde_ctx_reset(ctx, mk);
    }
    ex_progress_finish(&bar);
    if (nde_ctx_status(ctx) == NDE_OK) {
        /* a long rollout: leapfrog conserves the learned energy, rk4 need not */
        static nde_tensor *lf[101];
        double ts[101], h0, dev_lf = 0, dev_true = 0, dev_rk = 0;
        nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){1.0, 0.0});
        nde_solution sol;
        nde_solve_options o = nde_solve_options_default();
        nde_set_grad_enabled(ctx, 0);
        for (i = 0; i <= 100; i++) ts[i] = 10.0 * i;
        h0 = nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, z0), 0);
        nde_symplectic_solve(ctx, nde_hnn_field, &hnn, z0, 101, ts, 0.25, NDE_LEAPFROG, lf);
        o.method = NDE_MIDPOINT; o.step_size = 0.25;
        nde_solve(ctx, nde_hnn_field, &hnn, z0, 101, ts, &o, &sol);
        for (i = 0; i <= 100 && nde_ctx_status(ctx) == NDE_OK; i++) {
            double q = nde_tensor_item(ctx, lf[i], 0), p = nde_tensor_item(ctx, lf[i], 1);
            dev_lf = fmax(dev_lf, fabs(nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, lf[i]), 0) - h0));
            dev_true = fmax(dev_true, fabs(true_energy(q, p) - true_energy(1.0, 0.0)));
            dev_rk = fmax(dev_rk, fabs(nde_tensor_item(ctx, nde_hnn_energy(ctx, &hnn, sol.ys[i]), 0) - h0));
        }
        nde_solution_free(ctx, &sol);
        printf("rollout t in [0, 1000], h = 0.25 from (q, p) = (1, 0), two field evaluations a step each:\n");
        printf("  leapfrog: max |H_learned - H0| %.2e, true pendulum energy within %.2e of its start\n", dev_lf, dev_true);
        printf("  midpoint: max |H_learned - H0| %.2e (second order too, not symplectic: it drifts)\n", dev_rk);
    }
    if (nde_ctx_status(ctx) != NDE_OK) {
        fprintf(stderr, "error: %s\n", nde_ctx_message(ctx));
        nde_ctx_free(ctx);
        return 1;
    }
    printf("field MSE %.2e (target < %g)\n", loss_v, target);
    nde_ctx_free(ctx);
    return loss_v < target ? 0 : 1;
}
