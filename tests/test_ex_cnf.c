/* tests/test_ex_cnf.c - examples/cnf.c: the flow's density integrates to 1
   (the change of variables with the log-density state is right, before and
   after training); a short training lowers the NLL with either trace. */
#define EXAMPLE_NO_MAIN
#include "../examples/cnf.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    cnf_args a;
    cnf_result r0, r, rh;
    cnf_args_default(&a);
    a.niters = 0; a.eval_n = 512; a.quiet = 1;
    CHECK(cnf_run(&a, &r0) == 0);
    a.niters = 25; a.batch = 64;
    CHECK(cnf_run(&a, &r) == 0);
    a.hutchinson = 1;
    CHECK(cnf_run(&a, &rh) == 0);
    printf("  untrained: NLL %.3f, mass %.4f; 25 iterations: exact NLL %.3f -> %.3f (mass %.4f), hutchinson -> %.3f (mass %.4f)\n",
           r0.final_nll, r0.mass, r.first_loss, r.final_nll, r.mass, rh.final_nll, rh.mass);
    CHECK_NEAR(r0.mass, 1.0, 0.01, 0);
    CHECK_NEAR(r.mass, 1.0, 0.01, 0);
    CHECK_NEAR(rh.mass, 1.0, 0.01, 0);
    CHECK(r.final_nll < r0.final_nll - 0.4);
    CHECK(rh.final_nll < r0.final_nll - 0.4);
    a.batch = 0;
    CHECK(cnf_run(&a, &r) == 2);
    return nde_test_finish("test_ex_cnf");
}
