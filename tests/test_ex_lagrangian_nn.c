/* tests/test_ex_lagrangian_nn.c - examples/lagrangian_nn.c: the model's
   acceleration at initialisation is that of L = v^2/2 + MLP (checked against
   the Euler-Lagrange formula by central differences of the MLP in double); a
   short training lowers the acceleration error and brings the learned
   trajectory close to the true pendulum's. */
#define EXAMPLE_NO_MAIN
#include "../examples/lagrangian_nn.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

#ifdef NDE_DOUBLE
/* L(q, v) of the example with a given MLP, by plain values. */
static double lag_value(nde_ctx *ctx, nde_mlp *net, double q, double v) {
    nde_tensor *x = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){q, v});
    return 0.5 * v * v + nde_tensor_item(ctx, nde_mlp_forward(ctx, net, x), 0);
}
/* a = (L_vv)^-1 (L_q - L_vq v) by central differences of L (step e). */
static double fd_acceleration(nde_ctx *ctx, nde_mlp *net, double q, double v) {
    double e = 1e-4;
    double lq = (lag_value(ctx, net, q + e, v) - lag_value(ctx, net, q - e, v)) / (2 * e);
    double lvv = (lag_value(ctx, net, q, v + e) - 2 * lag_value(ctx, net, q, v) + lag_value(ctx, net, q, v - e)) / (e * e);
    double lvq = (lag_value(ctx, net, q + e, v + e) - lag_value(ctx, net, q + e, v - e) - lag_value(ctx, net, q - e, v + e) +
                  lag_value(ctx, net, q - e, v - e)) / (4 * e * e);
    return (lq - lvq * v) / lvv;
}
static void test_acceleration(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp net;
    nde_lnn lnn;
    int64_t w[3] = {2, 32, 1};
    double qs[3] = {0.3, -1.2, 1.7}, vs[3] = {0.5, 1.1, -0.8};
    int i;
    nde_mlp_init(ctx, &net, "L", 3, w, NDE_ACT_TANH, 1);
    lnn.lagrangian = lagrangian; lnn.user = &net; lnn.dim = 1;
    for (i = 0; i < 3; i++) {
        nde_tensor *x = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, (nde_real[]){qs[i], vs[i]});
        double a = nde_tensor_item(ctx, nde_lnn_acceleration(ctx, &lnn, x), 0);
        CHECK_NEAR(a, fd_acceleration(ctx, &net, qs[i], vs[i]), 1e-5, 1e-4);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}
#endif

int main(void) {
    lnn_args a;
    lnn_result r;
#ifdef NDE_DOUBLE
    test_acceleration();
#endif
    lnn_args_default(&a);
    a.niters = 200; a.n = 128; a.quiet = 1;
    CHECK(lnn_run(&a, &r) == 0);
    printf("  acceleration MSE %.2e -> %.2e; q(10) learned %.4f, true %.4f\n", r.first_loss, r.final_loss, r.q10_learned,
           r.q10_true);
    CHECK(r.final_loss < 0.01 * r.first_loss);
    CHECK_NEAR(r.q10_true, 0.4788, 2e-3, 0);         /* the heavy pendulum from (1, 0), rk4 h = 0.01 */
    CHECK_NEAR(r.q10_learned, r.q10_true, 0.3, 0);
    a.n = 0;
    CHECK(lnn_run(&a, &r) == 2);
    return nde_test_finish("test_ex_lagrangian_nn");
}
