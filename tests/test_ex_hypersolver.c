/* tests/test_ex_hypersolver.c - examples/hypersolver.c: the Euler baseline
   equals a hand-written Euler loop; a short training of the correction lowers
   the residual loss and cuts HyperEuler's global error far below Euler's. */
#define EXAMPLE_NO_MAIN
#include "../examples/hypersolver.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    hyp_args a;
    hyp_result r;
    double q = 1.5, v = 0.0, e;
    int k;
    hyp_args_default(&a);
    a.niters = 150; a.n = 256; a.quiet = 1;
    CHECK(hyp_run(&a, &r) == 0);
    for (k = 0; k < 100; k++) {      /* Euler, h = 0.1, to t = 10 */
        double dq = v, dv = -sin(q) - 0.1 * v;
        q += STEP * dq; v += STEP * dv;
    }
    e = fabs(q - r.ref[0]) + fabs(v - r.ref[1]);
    printf("  residual loss %.2e -> %.2e; error at t = 10: euler %.4f (hand loop %.4f), hypereuler %.4f, midpoint %.4f\n",
           r.first_loss, r.final_loss, r.e_euler, e, r.e_hyper, r.e_midpoint);
    CHECK_NEAR(r.e_euler, e, 1e-4, 1e-4);
    CHECK(r.final_loss < 0.05 * r.first_loss);
    CHECK(r.e_hyper < 0.2 * r.e_euler);
    a.n = 0;
    CHECK(hyp_run(&a, &r) == 2);
    return nde_test_finish("test_ex_hypersolver");
}
