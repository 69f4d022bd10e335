/* tests/test_ex_taylanets_mnist.c - examples/taylanets_mnist.c: the truncated
   Taylor block of order 1 is Euler's method, order 4 agrees with dopri5 to
   high accuracy; the field evaluation counts; a tiny training run of every
   method (the loss falls) and resuming from a checkpoint. */
#define EXAMPLE_NO_MAIN
#include "../examples/taylanets_mnist.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void tiny_args(tl_args *a, const char *save) {
    tl_args_default(a);
    a->nepochs = 3; a->train_batch_size = 16; a->test_batch_size = 32; a->max_train = 64; a->max_test = 32;
    a->hidden = 8; a->lr_init = 3e-2; a->lr_end = 1e-2; a->save = save; a->quiet = 1;
    a->mid.freq_update = -1;   /* joint training; test_midpoint_update and the resume test cover the separate updates */
}

static double max_diff(const nde_tensor *a, const nde_tensor *b) {
    double w = 0;
    int64_t i;
    if (!a || !b || a->size != b->size) return HUGE_VAL;
    for (i = 0; i < a->size; i++) if (fabs((double)a->data[i] - (double)b->data[i]) > w) w = fabs((double)a->data[i] - (double)b->data[i]);
    return w;
}

static void test_blocks(void) {
    tl_args a;
    tl_model m;
    int64_t s[2] = {3, 5};
    nde_tensor *z0, *zt, *ze, *zd;
    nde_solve_options o;
    double ts[2] = {0.0, 1.0};
    nde_solution sol;
    tl_args_default(&a);
    a.hidden = 6;
    CHECK(tl_model_init(&m, &a, TL_TAYLOR, 5, 10));
    z0 = nde_tensor_randn(m.ctx, 2, s, 4, 0);
    /* order 1, 4 steps = 4 Euler steps */
    m.tayla.order = 1; m.tayla.n_steps = 4;
    m.nfe = 0;
    zt = tl_block(&m, z0, TL_TAYLOR, NULL);
    CHECK(m.nfe == 4);                                  /* one jet program per step */
    o = nde_solve_options_default();
    o.method = NDE_EULER; o.step_size = 0.25;
    CHECK(nde_solve(m.ctx, nde_jet_field_plain, &m.ref, z0, 2, ts, &o, &sol) == NDE_OK);
    ze = sol.ys[1];
#ifdef NDE_DOUBLE
    CHECK(max_diff(zt, ze) < 1e-12);
#else
    CHECK(max_diff(zt, ze) < 1e-5);
#endif
    nde_solution_free(m.ctx, &sol);
    /* order 4, 8 steps against dopri5 at 1e-10 */
    m.tayla.order = 4; m.tayla.n_steps = 8;
    zt = tl_block(&m, z0, TL_TAYLOR, NULL);
    m.solve.rtol = 1e-10; m.solve.atol = 1e-10;
    zd = tl_block(&m, z0, TL_DOPRI5, NULL);
#ifdef NDE_DOUBLE
    CHECK(max_diff(zt, zd) < 1e-7);
#else
    CHECK(max_diff(zt, zd) < 1e-4);
#endif
    tl_model_free(&m);
    /* Taylor-Lagrange: two jet programs per step (the expansion and the remainder) */
    CHECK(tl_model_init(&m, &a, TL_TAYLA, 5, 10));
    {
        nde_tensor *rem = NULL;
        z0 = nde_tensor_randn(m.ctx, 2, s, 4, 0);
        m.nfe = 0;
        zt = tl_block(&m, z0, TL_TAYLA, &rem);
        CHECK(zt && rem && rem->size == 1 && m.nfe == 2);
    }
    tl_model_free(&m);
    CHECK(tl_method_kind("tayla") == TL_TAYLA && tl_method_kind("rk45") < 0);
}


/* The separate midpoint update: only the midpoint network moves, and its
   fit to dopri5's z(1) improves. */
static void test_midpoint_update(void) {
    tl_args a;
    tl_model m;
    int64_t s[2] = {6, 5}, n, mid_off, i;
    nde_tensor *x;
    nde_real *before;
    double first, last = 0;
    int k, same_dyn = 1, moved_mid = 0;
    tl_args_default(&a);
    a.hidden = 6; a.mid.freq_update = 1; a.mid.num_grad_iter = 5; a.mid.lr_init = 1e-2; a.mid.lr_end = 1e-2;
    CHECK(tl_model_init(&m, &a, TL_TAYLA, 5, 10));
    tl_train_only(&m, 0);
    x = nde_tensor_randn(m.ctx, 2, s, 11, 0);
    n = nde_params_count(m.ctx);
    mid_off = nde_param_offset(m.ctx, m.mid_first);
    before = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    memcpy(before, nde_params_data(m.ctx), (size_t)n * sizeof(nde_real));
    first = tl_midpoint_update(&m, &a, x);
    for (k = 0; k < 6; k++) last = tl_midpoint_update(&m, &a, x);
    CHECK(first == first && last < first);
    CHECK(m.mid_opt.step == 35 && m.opt.step == 0);
    for (i = 0; i < n; i++) {
        if (i < mid_off) same_dyn &= nde_params_data(m.ctx)[i] == before[i];
        else moved_mid |= nde_params_data(m.ctx)[i] != before[i];
    }
    CHECK(same_dyn && moved_mid);
    free(before);
    tl_model_free(&m);
}

static void test_training_and_resume(void) {
    char dir_a[64], dir_b[64], pa[512];
    tl_args a;
    tl_result ra[TL_MAX_METHODS], rb[TL_MAX_METHODS];
    int n, k;
    strcpy(dir_a, "/tmp/nde_test_tl_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_tl_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    tiny_args(&a, dir_a);
    a.method = "tayla,taylor,rk4,dopri5"; a.pen_remainder = 1e-3;
    CHECK(tl_run(&a, ra, &n) == 0);
    CHECK(n == 4);
    for (k = 0; k < 4; k++) {
        CHECK(ra[k].epochs_run == 3 && ra[k].last_loss < ra[k].first_loss);
        CHECK(ra[k].eval.acc >= 0 && ra[k].eval.acc <= 1 && ra[k].eval.logit_diff >= 0);
    }
    CHECK(ra[0].eval.nfe == 2 && ra[1].eval.nfe == 1 && ra[2].eval.nfe == 4 && ra[3].eval.nfe >= 8);
    CHECK(ra[3].eval.logit_diff == 0);                  /* dopri5 against itself */
    tiny_args(&a, dir_b);
    a.method = "tayla"; a.pen_remainder = 1e-3; a.stop_after = 2;   /* the schedule spans nepochs = 3 */
    CHECK(tl_run(&a, rb, &n) == 0);
    CHECK(rb[0].epochs_run == 2);
    a.stop_after = 0; a.resume = 1;
    CHECK(tl_run(&a, rb, &n) == 0);
    CHECK(rb[0].epochs_run == 1 && rb[0].eval.acc == ra[0].eval.acc);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla.safetensors"));
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla.state.npy"));
    /* with separate midpoint updates: trains, and resumes to the same state */
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
    CHECK(mkdir(dir_a, 0700) == 0 && mkdir(dir_b, 0700) == 0);
    tiny_args(&a, dir_a);
    a.method = "tayla"; a.mid.freq_update = 2; a.mid.lr_init = 1e-3; a.mid.lr_end = 1e-4;
    CHECK(tl_run(&a, ra, &n) == 0);
    CHECK(ra[0].epochs_run == 3 && ra[0].last_loss < ra[0].first_loss);
    tiny_args(&a, dir_b);
    a.method = "tayla"; a.mid.freq_update = 2; a.mid.lr_init = 1e-3; a.mid.lr_end = 1e-4; a.stop_after = 1;
    CHECK(tl_run(&a, rb, &n) == 0);
    a.stop_after = 0; a.resume = 1;
    CHECK(tl_run(&a, rb, &n) == 0);
    CHECK(rb[0].epochs_run == 2 && rb[0].eval.acc == ra[0].eval.acc);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla.safetensors"));
    ex_path(pa, sizeof pa, dir_a, "/taylanets.svg", NULL);
    CHECK(ex_file_exists(pa));
    a.method = "tayla,rk45";
    fprintf(stderr, "(test_ex_taylanets_mnist: the next error message is expected)\n");
    CHECK(tl_run(&a, rb, &n) == 2);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

int main(void) {
    test_blocks();
    test_midpoint_update();
    test_training_and_resume();
    return nde_test_finish("test_ex_taylanets_mnist");
}
