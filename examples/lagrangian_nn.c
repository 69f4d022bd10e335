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

#define N 512

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

int main(int argc, char **argv) {
    int niters = 500, seed = 1;
    double lr = 1e-2, target = 2e-3;
    ex_flag flags[] = {
        {"niters", EX_INT, &niters, "training iterations"},
        {"lr", EX_DOUBLE, &lr, "Adam learning rate"},
        {"seed", EX_INT, &seed, "data and initialisation seed"},
        {"target", EX_DOUBLE, &target, "the acceleration MSE the run must reach"},
    };
    int rc = ex_parse_flags(argc, argv, flags, 4, "a Lagrangian neural network on a heavy pendulum");
    nde_ctx *ctx;
    nde_mlp net;
    nde_lnn lnn;
    nde_tensor *x, *a;
    nde_optimizer opt;
    ex_progress bar;
    int64_t w[3] = {2, 32, 1}, shp[2] = {N, 2}, ashp[2] = {N, 1};
    nde_real xs[2 * N], as[N];
    nde_rng rng;
    double loss_v = 1e9;
    int i, it;
    if (rc) return rc < 0 ? 2 : 0;
    rng = nde_rng_new((uint64_t)seed, 0);
    for (i = 0; i < N; i++) {
        double q = 4 * nde_rng_uniform1(&rng) - 2, v = 4 * nde_rng_uniform1(&rng) - 2;
        xs[2 * i] = (nde_real)q; xs[2 * i + 1] = (nde_real)v;
        as[i] = (nde_real)(-1.5 * sin(q));
    }
    ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp_init(ctx, &net, "L", 3, w, NDE_ACT_TANH, (uint64_t)seed);
    lnn.lagrangian = lagrangian; lnn.user = &net; lnn.dim = 1;
    x = nde_tensor_from(ctx, 2, shp, xs);
    a = nde_tensor_from(ctx, 2, ashp, as);
    opt = nde_adam(lr);
    bar = ex_progress_start(niters);
    for (it = 0; it < niters; it++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *loss = nde_mse_loss(ctx, nde_lnn_acceleration(ctx, &lnn, x), a);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (nde_ctx_status(ctx) != NDE_OK) break;
        loss_v = nde_tensor_item(ctx, loss, 0);
        ex_progress_update(&bar, it + 1, "acceleration MSE %.2e", loss_v);
        nde_ctx_reset(ctx, mk);
    }
    ex_progress_finish(&bar);
    if (nde_ctx_status(ctx) == NDE_OK) {
        nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){1.0, 0.0});
        nde_solve_options o = nde_solve_options_default();
        double ts[2] = {0.0, 10.0};
        nde_solution sl, st;
        nde_set_grad_enabled(ctx, 0);
        o.method = NDE_RK4; o.step_size = 0.01;
        nde_solve(ctx, nde_lnn_field, &lnn, z0, 2, ts, &o, &sl);
        nde_solve(ctx, true_field, NULL, z0, 2, ts, &o, &st);
        if (nde_ctx_status(ctx) == NDE_OK)
            printf("q(10): learned %.4f, true %.4f\n", nde_tensor_item(ctx, sl.ys[1], 0), nde_tensor_item(ctx, st.ys[1], 0));
        nde_solution_free(ctx, &sl); nde_solution_free(ctx, &st);
    }
    if (nde_ctx_status(ctx) != NDE_OK) {
        fprintf(stderr, "error: %s\n", nde_ctx_message(ctx));
        nde_ctx_free(ctx);
        return 1;
    }
    printf("acceleration MSE %.2e (target < %g)\n", loss_v, target);
    nde_ctx_free(ctx);
    return loss_v < target ? 0 : 1;
}
