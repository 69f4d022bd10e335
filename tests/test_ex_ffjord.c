/* tests/test_ex_ffjord.c - examples/ffjord.c: the toy densities and the
   bundled tabular sets, the exact trace against a finite-difference Jacobian,
   Hutchinson's estimator against the exact trace on average, the log-density
   of a flow with a known answer, tiny training runs (the NLL falls, 2-D
   samples), resuming from a checkpoint, and TayLaNets' separate midpoint
   training (the update fits the block to dopri5, training with it, resuming
   it exactly). */
#define EXAMPLE_NO_MAIN
#include "../examples/ffjord.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void tiny_args(ff_args *a, const char *save) {
    ff_args_default(a);
    a->save = save; a->quiet = 1; a->niters = 12; a->val_freq = 6; a->dims = "8"; a->lr = 1e-2;
    a->rtol = 1e-4; a->atol = 1e-4; a->test_rtol = 1e-4; a->test_atol = 1e-4;
}

static void test_data(void) {
    ff_args a;
    ff_data d, d2;
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t i, j;
    int ok = 1;
    ff_args_default(&a);
    a.n_toy = 400;
    a.data = "checkerboard";
    CHECK(ff_data_load(ctx, &a, &d) && ff_data_load(ctx, &a, &d2));
    for (i = 0; i < d.n_train; i++) {
        double x = d.train[2 * i] / 2, y = d.train[2 * i + 1] / 2;
        long cells = (long)floor(x) + (long)floor(y);
        ok &= (cells % 2 == 0) && fabs(x) <= 2 && fabs(y) <= 2;
        ok &= d.train[2 * i] == d2.train[2 * i];
    }
    CHECK(ok && d.dim == 2 && d.n_train == 400 && d.n_test == 100);
    ff_data_free(&d); ff_data_free(&d2);
    a.data = "8gaussians";
    CHECK(ff_data_load(ctx, &a, &d));
    {
        double mx = 0, my = 0;
        for (i = 0; i < d.n_train; i++) { mx += d.train[2 * i]; my += d.train[2 * i + 1]; }
        CHECK(fabs(mx / d.n_train) < 0.3 && fabs(my / d.n_train) < 0.3);
    }
    ff_data_free(&d);
    a.data = "wine";
    CHECK(ff_data_load(ctx, &a, &d));
    CHECK(d.dim == 13 && d.n_train == 142 && d.n_test == 36);
    for (j = 0; j < d.dim; j++) {
        double s = 0, q = 0;
        for (i = 0; i < d.n_train; i++) { s += d.train[i * d.dim + j]; q += d.train[i * d.dim + j] * d.train[i * d.dim + j]; }
        ok &= fabs(s / d.n_train) < 1e-6 && fabs(q / d.n_train - 1) < 1e-5;   /* standardised columns */
    }
    CHECK(ok);
    ff_data_free(&d);
    a.data = "nope";
    fprintf(stderr, "(test_ex_ffjord: the next error message is expected)\n");
    CHECK(!ff_data_load(ctx, &a, &d));
    ff_data_free(&d);
    nde_ctx_free(ctx);
    {
        ff_model m;
        a.adjoint_option = "no_such_mode";
        fprintf(stderr, "(test_ex_ffjord: the next error message is expected)\n");
        CHECK(!ff_model_init(&m, &a, 2, 1, FF_DOPRI5));
        CHECK_MSG(nde_ctx_message(m.ctx), "no_such_mode");
        ff_model_free(&m);
    }
}

/* The field's trace column against central differences of f (double), and
   Hutchinson's estimate averaged over probes against it. */
static void test_traces(void) {
    ff_args a;
    ff_model m;
    int64_t b = 3, d = 3, sh[2], i, j;
    nde_real zv[9] = {0.3, -0.5, 0.8, 1.2, 0.1, -0.7, -0.4, 0.9, 0.2}, sv[12];
    nde_tensor *t, *s, *out;
    double tr_exact[3];
    nde_rng r = nde_rng_new(3, 0);
    ff_args_default(&a);
    a.dims = "16-16";
    CHECK(ff_model_init(&m, &a, d, 1, FF_DOPRI5));
    t = nde_tensor_scalar(m.ctx, NDE_R(0.37));
    for (i = 0; i < b; i++) { for (j = 0; j < d; j++) sv[i * 4 + j] = zv[i * 3 + j]; sv[i * 4 + 3] = NDE_R(0.0); }
    sh[0] = b; sh[1] = d + 1;
    s = nde_tensor_from(m.ctx, 2, sh, sv);
    ff_set_noise(&m, b, 1, 0, &r);
    out = ff_field(m.ctx, t, s, &m);
    CHECK(out && out->shape[0] == b && out->shape[1] == d + 1);
    for (i = 0; out && i < b; i++) tr_exact[i] = out->data[i * 4 + 3];
#ifdef NDE_DOUBLE
    for (i = 0; out && i < b; i++) {
        double fd = 0.0, h = 1e-5;
        for (j = 0; j < d; j++) {
            nde_real zp[3], zm[3];
            int64_t s2[2] = {1, 3}, k;
            nde_tensor *fp, *fm;
            for (k = 0; k < 3; k++) zp[k] = zm[k] = zv[i * 3 + k];
            zp[j] += h; zm[j] -= h;
            fp = ff_flow(m.ctx, t, nde_tensor_from(m.ctx, 2, s2, zp), &m);
            fm = ff_flow(m.ctx, t, nde_tensor_from(m.ctx, 2, s2, zm), &m);
            fd += (fp->data[j] - fm->data[j]) / (2 * h);
        }
        CHECK_NEAR(tr_exact[i], fd, 1e-8, 1e-6);
    }
#endif
    /* Hutchinson: the mean of e^T J e over probes tends to tr J */
    {
        double mean[3] = {0, 0, 0};
        int draws = 400, k;
        for (k = 0; k < draws; k++) {
            nde_mark mk = nde_ctx_mark(m.ctx);
            nde_tensor *o;
            ff_set_noise(&m, b, 0, k % 2, &r);
            o = ff_field(m.ctx, t, s, &m);
            for (i = 0; o && i < b; i++) mean[i] += o->data[i * 4 + 3] / draws;
            nde_ctx_reset(m.ctx, mk);
        }
        for (i = 0; i < b; i++) CHECK_NEAR(mean[i], tr_exact[i], 0.05 + 0.1 * fabs(tr_exact[i]), 0.0);
    }
    ff_model_free(&m);
}

/* With the layer weights zero, f(t, z) = B t (the last hyper-bias) does not
   depend on z: the trace is 0 and log p(x) = log N(x + integral of f). */
static void test_known_density(void) {
    ff_args a;
    ff_model m;
    int64_t sh[2] = {2, 2}, l;
    nde_real xv[4] = {0.5, -1.0, 2.0, 0.25};
    nde_tensor *lp;
    double bvec[2];
    ff_args_default(&a);
    a.dims = "4"; a.rtol = 1e-8; a.atol = 1e-8;
    CHECK(ff_model_init(&m, &a, 2, 1, FF_DOPRI5));
    for (l = 0; l < m.num_layers; l++) nde_tensor_fill(m.ctx, m.layer[l].lin.weight, NDE_R(0.0));
    bvec[0] = m.layer[1].hbias.weight->data[0];
    bvec[1] = m.layer[1].hbias.weight->data[1];
    {
        /* f = sigmoid(g1 t + c1) * b1 + B1 t, where b1 is the last layer's bias;
           integrate numerically on the host by Simpson's rule */
        double shift[2] = {0, 0};
        int n = 2000, k, q;
        for (k = 0; k <= n; k++) {
            double t = (double)k / n, w = (k == 0 || k == n) ? 1 : (k % 2 ? 4 : 2);
            for (q = 0; q < 2; q++) {
                double g = m.layer[1].gate.weight->data[q] * t + m.layer[1].gate.bias->data[q];
                double f = m.layer[1].lin.bias->data[q] / (1 + exp(-g)) + bvec[q] * t;
                shift[q] += w * f / (3.0 * n);
            }
        }
        ff_set_noise(&m, 2, 1, 0, NULL);
        lp = ff_log_prob_by(&m, FF_DOPRI5, nde_tensor_from(m.ctx, 2, sh, xv), 1.0, &m.solve, NULL);
        CHECK(lp != NULL);
        for (k = 0; lp && k < 2; k++) {
            double z0 = xv[2 * k] + shift[0], z1 = xv[2 * k + 1] + shift[1];
            double want = -0.5 * (z0 * z0 + z1 * z1) - log(2 * FF_PI);
#ifdef NDE_DOUBLE
            CHECK_NEAR(lp->data[k], want, 1e-6, 0.0);
#else
            CHECK_NEAR(lp->data[k], want, 1e-3, 0.0);
#endif
        }
    }
    ff_model_free(&m);
}


/* The Taylor solvers on the augmented field [f, tr]: the truncated Taylor
   expansion of order 6 with 10 steps agrees with dopri5 at 1e-10 (so the jets
   of the hand-written JVP, the trace term, are right: an error in its
   coefficients would stop the convergence), order 1 with 1 step is one Euler
   step, and the Taylor-Lagrange step (midpoint with a time column) differs
   from the truncated one by its remainder. Exact and Hutchinson traces, tanh
   and softplus. */
static void test_taylor_solvers(void) {
    ff_args a;
    ff_model m;
    int64_t sh[2] = {3, 3}, i;
    nde_real xv[9] = {0.3, -0.5, 0.8, 1.2, 0.1, -0.7, -0.4, 0.9, 0.2};
    int pass;
    for (pass = 0; pass < 2; pass++) {
        nde_tensor *x, *lt, *ld, *l1, *le, *rem;
        nde_solve_options so;
        nde_rng r = nde_rng_new(5, 0);
        ff_args_default(&a);
        a.dims = "8-8"; a.nonlinearity = pass ? "softplus" : "tanh"; a.order = 6; a.n_steps = 10;
        CHECK(ff_model_init(&m, &a, 3, pass == 0, FF_TAYLA));
        x = nde_tensor_from(m.ctx, 2, sh, xv);
        ff_set_noise(&m, 3, pass == 0, 0, &r);
        lt = ff_log_prob_by(&m, FF_TAYLOR, x, 1.0, &m.solve, NULL);
        so = m.solve; so.rtol = 1e-10; so.atol = 1e-10;
        ld = ff_log_prob_by(&m, FF_DOPRI5, x, 1.0, &so, NULL);
        CHECK(lt && ld);
        for (i = 0; lt && ld && i < 3; i++) {
#ifdef NDE_DOUBLE
            CHECK_NEAR(lt->data[i], ld->data[i], 1e-6, 0.0);
#else
            CHECK_NEAR(lt->data[i], ld->data[i], 2e-3, 0.0);
#endif
        }
        /* order 1, one step: Euler, z + f, l + tr */
        m.tayla.order = 1; m.tayla.n_steps = 1;
        l1 = ff_log_prob_by(&m, FF_TAYLOR, x, 1.0, &m.solve, NULL);
        so.method = NDE_EULER; so.step_size = 1.0;
        le = ff_log_prob_by(&m, FF_RK4, x, 1.0, &so, NULL);
        for (i = 0; l1 && le && i < 3; i++) CHECK_NEAR(l1->data[i], le->data[i], 1e-5, 1e-5);
        /* with the midpoint: a remainder, and a different result */
        rem = NULL;
        l1 = ff_log_prob_by(&m, FF_TAYLA, x, 1.0, &m.solve, &rem);
        CHECK(l1 && rem && rem->size == 1 && rem->data[0] > 0);
        CHECK(l1 && le && fabs((double)l1->data[0] - (double)le->data[0]) > 1e-7);
        ff_model_free(&m);
    }
}

/* The separate midpoint update on a fixed batch: only the midpoint network
   moves (its optimizer alone steps), and the objective (the fit of the
   Taylor-Lagrange [z, l](T) to dopri5's, plus the remainder penalty) falls. */
static void test_midpoint_update(void) {
    ff_args a;
    ff_model m;
    int64_t sh[2] = {6, 3}, n, mid_off, i;
    nde_rng r = nde_rng_new(7, 0);
    nde_tensor *x;
    nde_real *before;
    double first, last = NAN;
    int k, same_dyn = 1, moved_mid = 0;
    ff_args_default(&a);
    a.dims = "8"; a.pen_remainder = 1e-2;
    a.mid.freq_update = 1; a.mid.num_grad_iter = 5; a.mid.lr_init = 1e-2; a.mid.lr_end = 1e-2;
    CHECK(ff_model_init(&m, &a, 3, 0, FF_TAYLA));
    x = nde_tensor_randn(m.ctx, 2, sh, 11, 0);
    ff_set_noise(&m, 6, 0, 0, &r);
    n = nde_params_count(m.ctx);
    mid_off = nde_param_offset(m.ctx, m.mid_first);
    CHECK(m.mid_end == nde_params_num(m.ctx) && mid_off > 0);
    before = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    memcpy(before, nde_params_data(m.ctx), (size_t)n * sizeof(nde_real));
    first = ff_midpoint_update(&m, &a, x);
    for (k = 0; k < 6; k++) last = ff_midpoint_update(&m, &a, x);
    CHECK(first == first && last < 0.8 * first);
    CHECK(m.mid_opt.step == 35 && m.opt.step == 0);
    for (i = 0; i < n; i++) {
        if (i < mid_off) same_dyn &= nde_params_data(m.ctx)[i] == before[i];
        else moved_mid |= nde_params_data(m.ctx)[i] != before[i];
    }
    CHECK(same_dyn && moved_mid);
    free(before);
    ff_model_free(&m);
}

static void test_training_and_resume(void) {
    char dir_a[64], dir_b[64], pb[512];
    ff_args a;
    ff_result ra[FF_MAX_MODELS], rb[FF_MAX_MODELS];
    int n;
    strcpy(dir_a, "/tmp/nde_test_ff_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_ff_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    tiny_args(&a, dir_a);
    CHECK(ff_run(&a, ra, &n) == 0);
    CHECK(n == 2 && ra[0].iterations == 12 && ra[1].iterations == 12);
    CHECK(ra[0].last_loss < ra[0].first_loss);
    CHECK(ra[0].test_nll == ra[0].test_nll && ra[1].test_nll == ra[1].test_nll && ra[0].fnfe > 0);
    tiny_args(&a, dir_b);
    a.niters = 6;
    CHECK(ff_run(&a, rb, &n) == 0);
    a.niters = 12; a.resume = 1;
    CHECK(ff_run(&a, rb, &n) == 0);
    CHECK(rb[0].iterations == 6 && rb[0].test_nll == ra[0].test_nll && rb[1].test_nll == ra[1].test_nll);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_dopri5_approximate.safetensors"));
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_dopri5_brute_force.state.npy"));
    nde_test_remove_dir(dir_b);
    /* TayLaNets: tayla (Hutchinson) and rk4/taylor (exact) train, resume bit-exactly */
    nde_test_remove_dir(dir_a);
    CHECK(mkdir(dir_a, 0700) == 0 && mkdir(dir_b, 0700) == 0);
    tiny_args(&a, dir_a);
    a.method = "tayla"; a.divergence_fn = "approximate"; a.pen_remainder = 1e-2;
    CHECK(ff_run(&a, ra, &n) == 0);
    CHECK(n == 1 && ra[0].iterations == 12 && ra[0].last_loss < ra[0].first_loss);
    CHECK(ra[0].fnfe == 4 && ra[0].test_nfe == 4 && ra[0].ref_nll == ra[0].ref_nll);   /* 2 steps x (expansion + remainder) */
    tiny_args(&a, dir_b);
    a.method = "tayla"; a.divergence_fn = "approximate"; a.pen_remainder = 1e-2; a.niters = 6;
    CHECK(ff_run(&a, rb, &n) == 0);
    a.niters = 12; a.resume = 1;
    CHECK(ff_run(&a, rb, &n) == 0);
    CHECK(rb[0].iterations == 6 && rb[0].test_nll == ra[0].test_nll);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla_approximate.safetensors"));
    tiny_args(&a, dir_a);
    a.method = "rk4,taylor"; a.divergence_fn = "brute_force"; a.niters = 8; a.lr_end = 2e-3;
    CHECK(ff_run(&a, ra, &n) == 0);
    CHECK(n == 2 && ra[0].last_loss < ra[0].first_loss && ra[1].last_loss < ra[1].first_loss);
    CHECK(ra[0].fnfe == 8 && ra[1].fnfe == 2);
    a.method = "dopri5,rk45";
    fprintf(stderr, "(test_ex_ffjord: the next error message is expected)\n");
    CHECK(ff_run(&a, ra, &n) == 2);
    nde_test_remove_dir(dir_b);
    /* a 2-D toy set with the adjoint: runs, writes the samples picture */
    CHECK(mkdir(dir_b, 0700) == 0);
    tiny_args(&a, dir_b);
    a.data = "8gaussians"; a.n_toy = 200; a.niters = 3; a.val_freq = 3; a.divergence_fn = "approximate";
    a.adjoint_option = "adjoint"; a.batch_size = 50;
    CHECK(ff_run(&a, rb, &n) == 0);
    CHECK(rb[0].bnfe > 0);
    ex_path(pb, sizeof pb, dir_b, "/samples.svg", NULL);
    CHECK(ex_file_exists(pb));
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

static void separate_args(ff_args *a, const char *save) {
    tiny_args(a, save);
    a->method = "tayla"; a->divergence_fn = "approximate"; a->pen_remainder = 1e-2; a->lr_end = 2e-3;
    a->mid.freq_update = 2; a->mid.lr_init = 1e-3; a->mid.lr_end = 1e-4;
}

/* Separate midpoint training: trains, and stopping after 6 iterations and
   resuming gives the uninterrupted run's parameters and both optimizers'
   state (both learning rates decaying). */
static void test_separate_midpoint(void) {
    char dir_a[64], dir_b[64];
    ff_args a;
    ff_result ra[FF_MAX_MODELS], rb[FF_MAX_MODELS];
    int n;
    strcpy(dir_a, "/tmp/nde_test_ffm_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_ffm_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    separate_args(&a, dir_a);
    CHECK(ff_run(&a, ra, &n) == 0);
    CHECK(n == 1 && ra[0].iterations == 12 && ra[0].last_loss < ra[0].first_loss);
    CHECK(ra[0].mid_updates == 6 && ra[0].mid_loss == ra[0].mid_loss && ra[0].fnfe == 4);
    separate_args(&a, dir_b);
    a.stop_after = 6;
    CHECK(ff_run(&a, rb, &n) == 0);
    CHECK(rb[0].iterations == 6 && rb[0].mid_updates == 3);
    a.stop_after = 0; a.resume = 1;
    CHECK(ff_run(&a, rb, &n) == 0);
    CHECK(rb[0].iterations == 6 && rb[0].test_nll == ra[0].test_nll && rb[0].mid_loss == ra[0].mid_loss);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla_approximate.safetensors"));
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_tayla_approximate.state.npy"));
    /* bad midpoint settings are refused before any work */
    separate_args(&a, dir_a);
    a.mid.lr_end = 1e-2;
    fprintf(stderr, "(test_ex_ffjord: the next error message is expected)\n");
    CHECK(ff_run(&a, ra, &n) == 2);
    a.mid.lr_end = 1e-4; a.mid.num_grad_iter = 0;
    fprintf(stderr, "(test_ex_ffjord: the next error message is expected)\n");
    CHECK(ff_run(&a, ra, &n) == 2);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

int main(void) {
    test_data();
    test_traces();
    test_known_density();
    test_taylor_solvers();
    test_midpoint_update();
    test_training_and_resume();
    test_separate_midpoint();
    return nde_test_finish("test_ex_ffjord");
}
