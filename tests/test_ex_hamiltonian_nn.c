/* tests/test_ex_hamiltonian_nn.c - examples/hamiltonian_nn.c: a short
   training lowers the field error; on the rollout leapfrog keeps the learned
   energy within O(h^2) (halving h divides the deviation by about 4) while
   the explicit midpoint rule drifts far more. */
#define EXAMPLE_NO_MAIN
#include "../examples/hamiltonian_nn.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    hnn_args a;
    hnn_result r, r2;
    hnn_args_default(&a);
    a.niters = 150; a.n = 128; a.horizon = 200; a.quiet = 1;
    CHECK(hnn_run(&a, &r) == 0);
    a.h /= 2;
    CHECK(hnn_run(&a, &r2) == 0);
    printf("  field MSE %.2e -> %.2e; rollout over [0, 200]: leapfrog |dH| %.2e (h 0.25), %.2e (h 0.125); midpoint %.2e\n",
           r.first_loss, r.final_loss, r.dev_leapfrog, r2.dev_leapfrog, r.dev_midpoint);
    CHECK(r.final_loss < 0.05 * r.first_loss);
    CHECK(r.dev_leapfrog < 0.1 * r.dev_midpoint);
    CHECK_NEAR(log(r.dev_leapfrog / r2.dev_leapfrog) / log(2.0), 2.0, 0.3, 0);
    CHECK(r.dev_true < 0.2);          /* the learned flow keeps the pendulum's energy roughly too */
    a.h = -1;
    CHECK(hnn_run(&a, &r) == 2);
    return nde_test_finish("test_ex_hamiltonian_nn");
}
