/* tests/test_ex_latent_ode.c - examples/latent_ode.c: every series has its
   own sorted times; a short training of the latent ODE (ODE-RNN encoder,
   per-sample spans) lowers the reconstruction error. */
#define EXAMPLE_NO_MAIN
#include "../examples/latent_ode.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

int main(void) {
    static nde_real ts[MAX_B * K], xv[K][MAX_B];
    lat_args a;
    lat_result r0, r;
    int i, k, sorted = 1, shared = 0;
    lat_data(MAX_B, 1, ts, xv);
    for (i = 0; i < MAX_B; i++)
        for (k = 1; k < K; k++) if (!(ts[i * K + k] > ts[i * K + k - 1])) sorted = 0;
    for (i = 1; i < MAX_B; i++) if (ts[i * K] == ts[0]) shared = 1;
    CHECK(sorted && !shared);
    CHECK(ts[0] >= 0 && ts[K - 1] <= 5);
    lat_args_default(&a);
    a.n = 16; a.niters = 0; a.quiet = 1;
    CHECK(lat_run(&a, &r0) == 0);
    a.niters = 40;
    CHECK(lat_run(&a, &r) == 0);
    printf("  16 series: reconstruction MSE untrained %.4f, after 40 iterations %.4f\n", r0.final_rec, r.final_rec);
    CHECK(r0.final_rec > 0.3);
    CHECK(r.final_rec < 0.7 * r0.final_rec);
    a.n = 65;
    CHECK(lat_run(&a, &r) == 2);
    return nde_test_finish("test_ex_latent_ode");
}
