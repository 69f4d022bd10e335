/* tests/test_ex_resnet_after_all.c - examples/resnet_after_all.c: the data
   sets (shell radii, label counts, determinism by seed; three-minima labels
   are the minima the particle settles in), the convolution field as matmuls
   against nde_conv1d, the adaptation rules (test solver, step decrease,
   Hairer start), exact vs the research code's accuracy, a tiny training run
   (the loss falls), step adaptation, and resuming from a checkpoint. */
#define EXAMPLE_NO_MAIN
#include "../examples/resnet_after_all.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void tiny_args(raa_args *a, const char *save) {
    raa_args_default(a);
    a->n_train = 64; a->n_test = 40; a->niter = 30; a->batch_size = 16; a->test_batch_size = 16;
    a->ch_residual_block = 4; a->lr = 1e-2; a->step_size_list = "0.5"; a->test_solver_list = "euler,rk4";
    a->test_factor_list = "1,2"; a->model_checkpoint_freq = 10; a->save = save; a->quiet = 1;
}

static void test_spheres(void) {
    static const int dims[3] = {2, 3, 10};
    int k;
    for (k = 0; k < 3; k++) {
        int dim = dims[k];
        int64_t n = 2000, i, j, counts[3] = {0, 0, 0}, label1 = 0;
        nde_real *x = (nde_real *)malloc((size_t)(n * dim) * sizeof(nde_real)), *x2 = (nde_real *)malloc((size_t)(n * dim) * sizeof(nde_real));
        int64_t *y = (int64_t *)malloc((size_t)n * sizeof(int64_t)), *y2 = (int64_t *)malloc((size_t)n * sizeof(int64_t));
        nde_rng r = nde_rng_new(7, 0), r2 = nde_rng_new(7, 0), r3 = nde_rng_new(8, 0);
        int bad_radius = 0, same = 1;
        raa_spheres(&r, dim, n, x, y);
        raa_spheres(&r2, dim, n, x2, y2);
        for (i = 0; i < n; i++) {
            double rad = 0.0;
            int shell = -1;
            for (j = 0; j < dim; j++) rad += (double)x[i * dim + j] * (double)x[i * dim + j];
            rad = sqrt(rad);
            if (rad >= 0.10 - 1e-6 && rad <= 0.15 + 1e-6) shell = 0;
            else if (rad >= 0.25 - 1e-6 && rad <= 0.30 + 1e-6) shell = 1;
            else if (rad >= 0.40 - 1e-6 && rad <= 0.45 + 1e-6) shell = 2;
            if (shell < 0 || y[i] != (shell == 1)) bad_radius++;
            else counts[shell]++;
            label1 += y[i];
            for (j = 0; j < dim; j++) same &= x[i * dim + j] == x2[i * dim + j];
            same &= y[i] == y2[i];
        }
        CHECK(bad_radius == 0);
        CHECK(counts[0] == 500 && counts[1] == 1000 && counts[2] == 500);
        CHECK(label1 == 1000);
        CHECK(same);                                   /* the same seed, the same points */
        raa_spheres(&r3, dim, n, x2, y2);
        CHECK(x2[0] != x[0]);                          /* another seed, other points */
        free(x); free(x2); free(y); free(y2);
    }
}

/* The data sets as the program builds them: 2000 train (500/1000/500 per
   shell) and 1000 test (250/500/250) points, labels 0/1/0, in 2, 3, 10 and 900
   dimensions; three minima: 3 classes, deterministic by --data_seed. */
static void test_data_make(void) {
    static const char *sets[4] = {"concentric_sphere2", "concentric_sphere3", "concentric_sphere10", "concentric_sphere900"};
    raa_args a;
    raa_data d, d2;
    int k;
    for (k = 0; k < 4; k++) {
        int64_t i, j, shells[2][3] = {{0, 0, 0}, {0, 0, 0}};
        int split;
        raa_args_default(&a);
        a.dataset = sets[k];
        CHECK(raa_data_make(&a, &d));
        CHECK(d.n_train == 2000 && d.n_test == 1000 && d.classes == 2);
        CHECK(d.dim == (k == 0 ? 2 : k == 1 ? 3 : k == 2 ? 10 : 900));
        for (split = 0; split < 2; split++) {
            const nde_real *x = split ? d.x_test : d.x_train;
            const int64_t *y = split ? d.y_test : d.y_train;
            int64_t n = split ? d.n_test : d.n_train;
            for (i = 0; i < n; i++) {
                double r = 0.0;
                int shell;
                for (j = 0; j < d.dim; j++) r += (double)x[i * d.dim + j] * (double)x[i * d.dim + j];
                r = sqrt(r);
                shell = (r >= 0.10 - 1e-6 && r <= 0.15 + 1e-6) ? 0 : (r >= 0.25 - 1e-6 && r <= 0.30 + 1e-6) ? 1
                      : (r >= 0.40 - 1e-6 && r <= 0.45 + 1e-6) ? 2 : -1;
                if (shell >= 0 && y[i] == (shell == 1)) shells[split][shell]++;
            }
        }
        CHECK(shells[0][0] == 500 && shells[0][1] == 1000 && shells[0][2] == 500);
        CHECK(shells[1][0] == 250 && shells[1][1] == 500 && shells[1][2] == 250);
        CHECK(d.x_train[0] != d.x_test[0]);             /* train and test are different draws */
        raa_data_free(&d);
    }
    raa_args_default(&a);
    a.dataset = "three_minima"; a.n_train = 30; a.n_test = 20;
    CHECK(raa_data_make(&a, &d) && raa_data_make(&a, &d2));
    CHECK(d.classes == 3 && d.dim == 2 && d.n_train == 30 && d.n_test == 20);
    CHECK(d.x_train[7] == d2.x_train[7] && d.y_test[5] == d2.y_test[5]);
    raa_data_free(&d); raa_data_free(&d2);
    a.data_seed = 99;
    CHECK(raa_data_make(&a, &d2));
    CHECK(raa_data_make(&a, &d) && d.x_train[0] == d2.x_train[0]);
    raa_data_free(&d2);
    a.data_seed = 1234;
    CHECK(raa_data_make(&a, &d2) && d.x_train[0] != d2.x_train[0]);   /* another seed, other points */
    raa_data_free(&d); raa_data_free(&d2);
    a.dataset = "no_such_set";
    fprintf(stderr, "(test_ex_resnet_after_all: the next error message is expected)\n");
    CHECK(!raa_data_make(&a, &d));
    raa_data_free(&d);
}

/* Algorithm 2 / 3's decisions on one batch: a threshold below any gap halves
   the step (tolerance) at every check; one above every gap lengthens it by
   1.1 (at most 1); the tolerance is not loosened while the forward NFE has
   stayed the same over the last 5 iterations. */
static void test_adapt_decisions(void) {
    raa_args a;
    raa_data d;
    raa_model m;
    raa_adapt_state st;
    int64_t idx[16], labels[16], i;
    nde_tensor *x;
    double acc;
    tiny_args(&a, "unused");
    CHECK(raa_data_make(&a, &d));
    CHECK(raa_model_init(&m, &a, &d));
    for (i = 0; i < 16; i++) { idx[i] = i; labels[i] = d.y_train[i]; }
    x = ex_batch_rows(m.ctx, d.x_train, d.dim, idx, 16);
    memset(&st, 0, sizeof st);
    CHECK(raa_solver_set(m.ctx, &m.train_solver, "euler", 0.5, 0.0));
    acc = raa_batch_accuracy(&m, x, labels, &m.train_solver, NULL);
    a.threshold = -1.0;                                 /* every gap is too large */
    raa_adapt(&m, &a, &st, x, labels, acc, 2);
    CHECK(m.train_solver.h == 0.25);
    raa_adapt(&m, &a, &st, x, labels, acc, 4);
    CHECK(m.train_solver.h == 0.125);
    a.threshold = 2.0;                                  /* no gap is too large */
    raa_adapt(&m, &a, &st, x, labels, acc, 8);
    CHECK_NEAR(m.train_solver.h, 0.1375, 1e-15, 0.0);
    m.train_solver.h = 0.95;
    raa_adapt(&m, &a, &st, x, labels, acc, 2);
    CHECK(m.train_solver.h == 1.0);                    /* never fewer than one step */
    /* tolerance variant */
    CHECK(raa_solver_set(m.ctx, &m.train_solver, "dopri5", 0.0, 1e-3));
    acc = raa_batch_accuracy(&m, x, labels, &m.train_solver, NULL);
    a.threshold = -1.0;
    raa_adapt(&m, &a, &st, x, labels, acc, 14);
    CHECK(m.train_solver.tol == 5e-4);
    a.threshold = 2.0;
    st.nfe_count = 5;
    for (i = 0; i < 5; i++) st.nfe_hist[i] = 14 + i;  /* the NFE moves: loosen */
    raa_adapt(&m, &a, &st, x, labels, acc, 14);
    CHECK_NEAR(m.train_solver.tol, 5.5e-4, 1e-18, 1e-12);
    for (i = 0; i < 5; i++) st.nfe_hist[i] = 14;      /* stuck: keep */
    raa_adapt(&m, &a, &st, x, labels, acc, 14);
    CHECK_NEAR(m.train_solver.tol, 5.5e-4, 1e-18, 1e-12);
    raa_model_free(&m);
    raa_data_free(&d);
}

static void test_three_minima(void) {
    int k;
    int64_t n = 60, i, counts[3] = {0, 0, 0}, redrawn;
    nde_real x[120], x2[120];
    int64_t y[60], y2[60];
    nde_rng r = nde_rng_new(3, 0), r2 = nde_rng_new(3, 0);
    /* V' rises through zero within 1e-3 of each stated minimum */
    for (k = 0; k < 3; k++) CHECK(raa_vprime(raa_minima[k] - 1e-3) < 0 && raa_vprime(raa_minima[k] + 1e-3) > 0);
    /* a particle at rest in a minimum, or near one, settles there */
    CHECK(raa_three_minima_label(raa_minima[0], 0.0) == 0);
    CHECK(raa_three_minima_label(raa_minima[2], 0.0) == 2);
    CHECK(raa_three_minima_label(raa_minima[1] + 0.05, 0.0) == 1);
    redrawn = raa_three_minima(&r, n, x, y);
    raa_three_minima(&r2, n, x2, y2);
    for (i = 0; i < n; i++) {
        double p = x[2 * i], v = x[2 * i + 1];
        CHECK(p >= -1.0 && p <= 2.0 && v >= -2.0 && v <= 2.0);
        CHECK(y[i] == raa_three_minima_label(p, v));
        CHECK(x[2 * i] == x2[2 * i] && y[i] == y2[i]);
        counts[y[i]]++;
    }
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    CHECK(redrawn >= 0);
}

static void test_conv_field(void) {
    raa_args a;
    raa_data d;
    raa_model m;
    nde_tensor *z, *f1, *f2;
    int64_t shape[3] = {5, 1, 7}, i;
    double worst = 0.0;
    tiny_args(&a, "unused");
    a.dataset = "concentric_sphere7";
    CHECK(raa_data_make(&a, &d));
    CHECK(raa_model_init(&m, &a, &d));
    /* biases are zero at init: give them values so that they are checked too */
    nde_tensor_fill(m.ctx, m.b1, NDE_R(0.1));
    nde_tensor_fill(m.ctx, m.b2, NDE_R(-0.05));
    nde_tensor_fill(m.ctx, m.b3, NDE_R(0.2));
    z = nde_tensor_randn(m.ctx, 3, shape, 9, 0);
    f1 = raa_conv_field(m.ctx, &m, z);
    f2 = raa_conv_field_reference(m.ctx, &m, z);
    CHECK(f1 && f2 && nde_tensor_same_shape(f1, f2));
    for (i = 0; f1 && f2 && i < f1->size; i++) {
        double e = fabs((double)f1->data[i] - (double)f2->data[i]);
        if (e > worst) worst = e;
    }
#ifdef NDE_DOUBLE
    CHECK(worst < 1e-13);
#else
    CHECK(worst < 1e-5);
#endif
    raa_model_free(&m);
    raa_data_free(&d);
}

static void test_adaptation_rules(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    raa_solver train, test;
    CHECK(raa_solver_set(ctx, &train, "euler", 0.5, 0.0));
    test = raa_test_solver(ctx, &train);
    CHECK(test.method == NDE_MIDPOINT);
    CHECK_NEAR(test.h, 0.1, 1e-15, 0.0);               /* sqrt(0.5 / 50) */
    train.h = 0.01;
    test = raa_test_solver(ctx, &train);
    CHECK(test.h == 0.01);                              /* 1/h > 50: the same step */
    CHECK(raa_solver_set(ctx, &train, "midpoint", 0.5, 0.0));
    test = raa_test_solver(ctx, &train);
    CHECK(test.method == NDE_RK4);
    CHECK_NEAR(test.h, pow(0.25 / 50, 0.25), 1e-15, 0.0);
    CHECK(raa_solver_set(ctx, &train, "fehlberg2", 0.0, 1e-4));
    CHECK(train.adaptive);
    test = raa_test_solver(ctx, &train);
    CHECK(test.method == NDE_DOPRI5 && test.tol == 1e-4 / 5);
    CHECK(raa_solver_set(ctx, &train, "dopri5", 0.0, 1e-4));
    test = raa_test_solver(ctx, &train);
    CHECK(test.tol == 1e-4 / 10);
    CHECK(!raa_solver_set(ctx, &train, "no_such_solver", 0.1, 0.0));
    CHECK_MSG(nde_ctx_message(ctx), "no_such_solver");
    nde_ctx_free(ctx);
    /* decrease: halve; halfway to the cap; nothing at the cap */
    CHECK(raa_smaller_step(0.25, 500) == 0.125);
    CHECK_NEAR(raa_smaller_step(1.0 / 300, 500), 1.0 / 400, 1e-15, 0.0);
    CHECK(raa_smaller_step(1.0 / 500, 500) == 1.0 / 500);
    CHECK(raa_fixed_steps(0.1) == 10 && raa_fixed_steps(0.3) == 4 && raa_fixed_steps(1.0 / 64) == 64);
}

static void test_hairer_and_accuracy(void) {
    raa_args a;
    raa_data d;
    raa_model m;
    raa_solver s;
    raa_test_result r;
    int64_t idx[16], i;
    double h;
    tiny_args(&a, "unused");
    CHECK(raa_data_make(&a, &d));
    CHECK(raa_model_init(&m, &a, &d));
    for (i = 0; i < 16; i++) idx[i] = i;
    h = raa_hairer_step(&m, ex_batch_rows(m.ctx, d.x_train, d.dim, idx, 16), 1);
    CHECK(h > 0 && h < 1e6);
    /* exact accuracy vs the research code's: 40 points in batches of 16 (16, 16, 8) */
    raa_solver_set(m.ctx, &s, "euler", 0.5, 0.0);
    r = raa_test(&m, &a, &d, &s);
    CHECK(r.acc >= 0 && r.acc <= 1);
    CHECK_NEAR(r.acc_research_code, r.acc * 40.0 / (3 * 16.0), 1e-12, 0.0);
    a.test_batch_size = 40;
    CHECK_NEAR(raa_test(&m, &a, &d, &s).acc_research_code, r.acc, 1e-12, 0.0);
    raa_model_free(&m);
    raa_data_free(&d);
}

static void test_training_resume_adaptation(void) {
    char dir_a[64], dir_b[64];
    raa_args a;
    raa_run_result ra[RAA_MAX_MODELS], rb[RAA_MAX_MODELS];
    int n;
    strcpy(dir_a, "/tmp/nde_test_raa_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_raa_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    tiny_args(&a, dir_a);
    CHECK(raa_run(&a, ra, &n) == 0);
    CHECK(n == 1 && ra[0].iterations == 30);
    CHECK(ra[0].loss_tail < ra[0].loss_head);           /* the loss falls */
    CHECK(ra[0].grid[0][0].steps == 2 && ra[0].grid[0][1].steps == 4 && ra[0].grid[1][1].steps == 4);
    /* 20 iterations, then resume to 30: the same final state */
    tiny_args(&a, dir_b);
    a.niter = 20;
    CHECK(raa_run(&a, rb, &n) == 0);
    a.niter = 30; a.resume = 1;
    CHECK(raa_run(&a, rb, &n) == 0);
    CHECK(rb[0].iterations == 10);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_model0.safetensors"));
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_model0.state.npy"));
    CHECK(rb[0].grid[1][0].acc == ra[0].grid[1][0].acc);
    nde_test_remove_dir(dir_b);
    /* step adaptation from Hairer's start: every 5 iterations */
    CHECK(mkdir(dir_b, 0700) == 0);
    tiny_args(&a, dir_b);
    a.use_step_adaption_algo = 1; a.adaption_interval = 5; a.max_steps = 64; a.niter = 20;
    CHECK(raa_run(&a, rb, &n) == 0);
    CHECK(rb[0].h >= 1.0 / 64 && rb[0].h <= 1.0);
    /* the tolerance variant with dopri5 */
    a.solver = "dopri5"; a.initial_tol = 1e-3; a.test_solver_list = "dopri5"; a.test_factor_list = "1";
    CHECK(raa_run(&a, rb, &n) == 0);
    CHECK(rb[0].tol > 0 && rb[0].tol <= 1e-3 * pow(1.1, 4) * 1.0000001);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

int main(void) {
    test_spheres();
    test_three_minima();
    test_data_make();
    test_adapt_decisions();
    test_conv_field();
    test_adaptation_rules();
    test_hairer_and_accuracy();
    test_training_resume_adaptation();
    return nde_test_finish("test_ex_resnet_after_all");
}
