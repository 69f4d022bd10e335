/* tests/test_ex_galerkin_node.c - examples/galerkin_node.c: the data are the
   closed-form solution of the time-varying rotation; with the same short
   training, every depth-varying basis fits the trajectories far better than
   a depth-invariant (one-term) field. */
#define EXAMPLE_NO_MAIN
#include "../examples/galerkin_node.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

/* x' = (-0.1 I + w(t) J) x with commuting A(t): x(t) = e^{-0.1 t} R(W(t)) x(0),
   W(t) = int_0^t 4 cos(2 pi s) ds = (2 / pi) sin(2 pi t). */
static void test_data(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_tensor *x0, *data = gal_data(ctx, 1, &x0);
    double ts[NT], worst = 0;
    int k, i;
    gal_times(ts);
    CHECK(data && data->shape[0] == NT && data->shape[1] == B);
    for (k = 0; data && k < NT; k++) {
        double d = exp(-0.1 * ts[k]), W = 2.0 / 3.141592653589793 * sin(6.283185307179586 * ts[k]);
        for (i = 0; i < B; i++) {
            double a = x0->data[2 * i], b = x0->data[2 * i + 1];
            double e0 = d * (cos(W) * a - sin(W) * b), e1 = d * (sin(W) * a + cos(W) * b);
            double g0 = data->data[(k * B + i) * 2], g1 = data->data[(k * B + i) * 2 + 1];
            if (fabs(g0 - e0) > worst) worst = fabs(g0 - e0);
            if (fabs(g1 - e1) > worst) worst = fabs(g1 - e1);
        }
    }
    printf("  data vs the closed form: max error %.2e\n", worst);
    CHECK(worst < 1e-4);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

static gal_result run_basis(const char *basis) {
    gal_args a;
    gal_result r;
    gal_args_default(&a);
    a.niters = 100; a.quiet = 1; a.basis = basis;
    CHECK(gal_run(&a, &r) == 0);
    printf("  %-10s (%d terms) MSE %.2e -> %.2e\n", basis, r.terms, r.first_loss, r.final_loss);
    return r;
}

int main(void) {
    gal_result c, f, p, ch, rb;
    gal_args a;
    test_data();
    c = run_basis("constant"); f = run_basis("fourier"); p = run_basis("polynomial");
    ch = run_basis("chebyshev"); rb = run_basis("rbf");
    CHECK(c.terms == 1 && f.terms == 5);
    CHECK(f.final_loss < 0.5 * f.first_loss);
    CHECK(c.final_loss > 1e-2);                  /* cannot follow the sign changes of w(t) */
    CHECK(f.final_loss < 0.2 * c.final_loss);
    CHECK(p.final_loss < 0.5 * c.final_loss);
    CHECK(ch.final_loss < 0.2 * c.final_loss);
    CHECK(rb.final_loss < 0.2 * c.final_loss);
    gal_args_default(&a);
    a.basis = "wavelet";
    CHECK(gal_run(&a, &f) == 2);
    return nde_test_finish("test_ex_galerkin_node");
}
