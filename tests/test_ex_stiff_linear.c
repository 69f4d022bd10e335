/* tests/test_ex_stiff_linear.c - examples/stiff_linear.c: the data are pairs of
   the exact flow (z(t + dt) = e^(A dt) z(t), A with eigenvalues -1000 and -1),
   drawn in [-0.5, 0.5]^2 and reproducible from the seed; a tiny run of each
   experiment trains (the midpoint's test error falls; the learned dynamics
   beat the untrained network). */
#define EXAMPLE_NO_MAIN
#include "../examples/stiff_linear.c"
#include "nde_test.h"

static void test_data(void) {
    double A[4], flow[4], tr_, det;
    dataset d = make_data(3, 50, 0.01, 101, 0), d2 = make_data(3, 50, 0.01, 101, 0), d3 = make_data(3, 50, 0.01, 101, 1);
    int64_t i;
    int same = 1, differs = 0, on_flow = 1, chained = 1, inside = 1;
    stiff_matrix(0, 0, A);
    tr_ = A[0] + A[3];
    det = A[0] * A[3] - A[1] * A[2];
    CHECK_NEAR(tr_, -1001.0, 1e-9, 0.0);   /* eigenvalues -1000 and -1 */
    CHECK_NEAR(det, 1000.0, 1e-9, 0.0);
    stiff_matrix(0.01, 1, flow);
    CHECK(d.n == 150);
    for (i = 0; i < d.n; i++) {
        double y0 = flow[0] * d.x[2 * i] + flow[1] * d.x[2 * i + 1], y1 = flow[2] * d.x[2 * i] + flow[3] * d.x[2 * i + 1];
#ifdef NDE_DOUBLE
        on_flow &= fabs(y0 - d.y[2 * i]) < 1e-12 && fabs(y1 - d.y[2 * i + 1]) < 1e-12;
#else
        on_flow &= fabs(y0 - d.y[2 * i]) < 1e-6 && fabs(y1 - d.y[2 * i + 1]) < 1e-6;
#endif
        if (i % 50) chained &= d.x[2 * i] == d.y[2 * (i - 1)] && d.x[2 * i + 1] == d.y[2 * (i - 1) + 1];
        else inside &= fabs(d.x[2 * i]) <= 0.5 && fabs(d.x[2 * i + 1]) <= 0.5;
        same &= d.x[2 * i] == d2.x[2 * i] && d.y[2 * i + 1] == d2.y[2 * i + 1];
        differs |= d.x[2 * i] != d3.x[2 * i];
    }
    CHECK(on_flow && chained && inside && same && differs);
    free(d.x); free(d.y); free(d2.x); free(d2.y); free(d3.x); free(d3.y);
}

static void test_tiny_runs(void) {
    args a;
    dataset tr, te;
    eval_result mid[2], dyn, untrained;
    memset(mid, 0, sizeof mid); memset(&dyn, 0, sizeof dyn); memset(&untrained, 0, sizeof untrained);
    args_default(&a);
    a.num_traj = 4; a.num_test = 2; a.traj_duration = 0.5; a.train_batch_size = 50; a.test_batch_size = 50;
    a.mid_nepochs = 15; a.nepochs = 15; a.mid_freq_update = 2;
    tr = make_data(a.num_traj, 50, a.dt, 101, 0);
    te = make_data(a.num_test, 50, a.dt, 101, 1);
    CHECK(learn_midpoint(&a, &tr, &te, mid) == 0);
    CHECK(mid[1].loss == mid[1].loss && mid[1].loss < mid[0].loss);
    CHECK(learn_dynamics(&a, &tr, &te, M_TAYLA, &dyn) == 0);
    a.nepochs = 0;
    CHECK(learn_dynamics(&a, &tr, &te, M_TAYLA, &untrained) == 0);
    CHECK(dyn.loss == dyn.loss && dyn.loss < 0.8 * untrained.loss);
    a.nepochs = 5;
    CHECK(learn_dynamics(&a, &tr, &te, M_RK4, &dyn) == 0 && dyn.loss == dyn.loss);
    free(tr.x); free(tr.y); free(te.x); free(te.y);
}

int main(void) {
    test_data();
    test_tiny_runs();
    return nde_test_finish("test_ex_stiff_linear");
}
