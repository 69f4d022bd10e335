/* tests/test_ex_multiple_shooting.c - examples/multiple_shooting.c: with
   NT - 1 iterations the layer equals the sequential rk4 solve; a short
   training through the 3-iteration layer lowers the trajectory error. */
#define EXAMPLE_NO_MAIN
#include "../examples/multiple_shooting.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    ms_args a;
    ms_result r, exact;
    ms_args_default(&a);
    a.niters = 0; a.iters = NT - 1; a.quiet = 1;
    CHECK(ms_run(&a, &exact) == 0);
    a.niters = 60; a.iters = 3;
    CHECK(ms_run(&a, &r) == 0);
    printf("  exact layer gap %.2e; 60 iterations through 3 Parareal iterations: MSE %.3f -> %.3f, gap %.2e\n", exact.gap,
           r.first_loss, r.final_loss, r.gap);
    CHECK(exact.gap < 1e-12);
    CHECK(r.final_loss < 0.25 * r.first_loss);
    CHECK(r.gap < 0.05);
    a.iters = NT;
    CHECK(ms_run(&a, &r) == 2);
    return nde_test_finish("test_ex_multiple_shooting");
}
