/* tests/test_ex_resnet_after_all.c - examples/resnet_after_all.c: the data
   sets (shell radii, label counts, determinism by seed; three-minima labels
   are the minima the particle settles in), the convolution field as matmuls
   against nde_conv1d, the adaptation rules (test solver, step decrease,
   Hairer start), exact vs the research code's accuracy, a tiny training run
   (the loss falls), step adaptation, and resuming from a checkpoint. */
#define EXAMPLE_NO_MAIN
#include "../examples/resnet_after_all.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"
#include <unistd.h>

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

static int files_equal(const char *pa, const char *pb) {
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    int same = fa && fb, ca, cb;
    while (same) {
        ca = fgetc(fa); cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}
static void remove_run(const char *dir) {
    static const char *files[] = {"train.csv", "eval.csv", "raa.svg", "ckpt_model0.safetensors", "ckpt_model0.state.npy"};
    char path[512];
    size_t i;
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        ex_path(path, sizeof path, dir, "/", files[i]);
        remove(path);
    }
    rmdir(dir);
}

static void test_training_resume_adaptation(void) {
    char dir_a[64], dir_b[64], pa[512], pb[512];
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
    ex_path(pa, sizeof pa, dir_a, "/ckpt_model0.safetensors", NULL);
    ex_path(pb, sizeof pb, dir_b, "/ckpt_model0.safetensors", NULL);
    CHECK(files_equal(pa, pb));
    ex_path(pa, sizeof pa, dir_a, "/ckpt_model0.state.npy", NULL);
    ex_path(pb, sizeof pb, dir_b, "/ckpt_model0.state.npy", NULL);
    CHECK(files_equal(pa, pb));
    CHECK(rb[0].grid[1][0].acc == ra[0].grid[1][0].acc);
    remove_run(dir_b);
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
    remove_run(dir_a);
    remove_run(dir_b);
}

int main(void) {
    test_spheres();
    test_three_minima();
    test_conv_field();
    test_adaptation_rules();
    test_hairer_and_accuracy();
    test_training_resume_adaptation();
    return nde_test_finish("test_ex_resnet_after_all");
}
