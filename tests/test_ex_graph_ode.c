/* tests/test_ex_graph_ode.c - examples/graph_ode.c: the stochastic block
   model has the stated edge densities; the graph ODE classifies the
   unlabelled nodes far better than the same layers without the graph. */
#define EXAMPLE_NO_MAIN
#include "../examples/graph_ode.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    static int64_t edges[NODES * NODES];
    static nde_real feat[NODES * F];
    int64_t labels[NODES], inside, n;
    double pairs_in = C * PER * (PER - 1) / 2.0, pairs_out = NODES * (NODES - 1) / 2.0 - pairs_in;
    gde_args a;
    gde_result with, without;
    n = gde_graph(1, edges, labels, feat, &inside);
    printf("  SBM: %lld edges, inside density %.3f (0.15), across %.4f (0.01)\n", (long long)n, inside / pairs_in,
           (n - inside) / pairs_out);
    CHECK_NEAR(inside / pairs_in, 0.15, 0.03, 0);
    CHECK_NEAR((n - inside) / pairs_out, 0.01, 0.005, 0);
    gde_args_default(&a);
    a.niters = 60; a.quiet = 1;
    CHECK(gde_run(&a, &with) == 0);
    a.use_gde = 0;
    CHECK(gde_run(&a, &without) == 0);
    printf("  60 iterations: test accuracy %.1f%% with the graph ODE, %.1f%% without\n", 100 * with.accuracy, 100 * without.accuracy);
    CHECK(with.accuracy >= 0.8);
    CHECK(without.accuracy < 0.6);
    CHECK(with.final_loss < 0.05);
    return nde_test_finish("test_ex_graph_ode");
}
