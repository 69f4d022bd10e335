/* tests/test_ex_neural_sde.c - examples/neural_sde.c: the moment loss is ~0
   for the true Ornstein-Uhlenbeck SDE (so the target law is right); a short
   training run lowers the loss; the reversible adjoint trains exactly as
   backpropagation through the solver does. */
#define EXAMPLE_NO_MAIN
#include "../examples/neural_sde.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static nde_tensor *ou_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *x, void *u) {
    (void)t; (void)u;
    return nde_scale(ctx, nde_add_scalar(ctx, nde_neg(ctx, x), (nde_real)MU), (nde_real)THETA);
}
static nde_tensor *ou_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *x, void *u) {
    (void)t; (void)u;
    return nde_add_scalar(ctx, nde_scale(ctx, x, 0), (nde_real)SIGMA);
}

static void test_target_law(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_sde sde;
    nde_sde_options o = nde_sde_options_default();
    double ts[NT + 1], loss;
    int64_t shp[2] = {8192, 1};
    nde_tensor *xs;
    nsde_times(ts);
    memset(&sde, 0, sizeof sde);
    sde.drift = ou_drift; sde.diffusion = ou_diffusion; sde.noise = NDE_NOISE_ADDITIVE;
    o.method = NDE_SDE_SRA1; o.dt = 0.05; o.seed = 3;
    xs = nde_sdeint(ctx, &sde, nde_tensor_zeros(ctx, 2, shp), NT + 1, ts, &o);
    loss = nde_tensor_item(ctx, moment_loss(ctx, xs, ts), 0);
    printf("  moment loss of the true OU process on 8192 paths: %.2e\n", loss);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    CHECK(loss < 2e-3);     /* sampling error only: ~8 * (s^2 + s^2/2) / 8192 ~ 1e-4 */
    nde_ctx_free(ctx);
}

static void test_training(void) {
    nsde_args a;
    nsde_result adj, bp;
    nsde_args_default(&a);
    a.niters = 25; a.paths = 64; a.eval_paths = 1024; a.quiet = 1;
    CHECK(nsde_run(&a, &adj) == 0);
    a.adjoint = 0;
    CHECK(nsde_run(&a, &bp) == 0);
    printf("  25 iterations: loss %.4f -> %.4f (adjoint), %.4f (backprop)\n", adj.first_loss, adj.final_loss, bp.final_loss);
    CHECK(adj.first_loss > 0.5);
    CHECK(adj.final_loss < 0.5 * adj.first_loss);
    CHECK_NEAR(adj.first_loss, bp.first_loss, 1e-12, 1e-5);
#ifdef NDE_DOUBLE
    CHECK_NEAR(adj.final_loss, bp.final_loss, 0, 1e-7);
#else
    CHECK_NEAR(adj.final_loss, bp.final_loss, 0, 5e-2);
#endif
}

int main(void) {
    test_target_law();
    test_training();
    return nde_test_finish("test_ex_neural_sde");
}
