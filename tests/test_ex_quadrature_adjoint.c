/* tests/test_ex_quadrature_adjoint.c - examples/quadrature_adjoint.c: the data
   sets (nested-spheres radii and classes, sine series, the OU process's mean
   against its closed form, determinism), the Wong-Zakai noise basis, the
   union-of-times gather for irregular series, the three gradient options
   against each other, tiny training runs (the loss falls, OU through the SDE
   validation), and resuming from a checkpoint. */
#define EXAMPLE_NO_MAIN
#include "../examples/quadrature_adjoint.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void tiny_args(qa_args *a, const char *experiment, const char *save) {
    qa_args_default(a);
    a->experiment = experiment; a->save = save; a->quiet = 1;
    a->width = 8; a->nepochs = 3; a->max_train = 40; a->max_val = 20; a->batchsize = 20; a->lr = 0.01;
}

static void test_data(void) {
    qa_args a;
    qa_data d, d2;
    int64_t i, j, c0 = 0, c1 = 0;
    int ok = 1;
    qa_args_default(&a);
    CHECK(qa_data_make(&a, QA_SPHERES, &d) && qa_data_make(&a, QA_SPHERES, &d2));
    CHECK(d.n_train == 2000 && d.n_val == 100);
    for (i = 0; i < d.n_train; i++) {
        double r = sqrt((double)d.x_train[2 * i] * d.x_train[2 * i] + (double)d.x_train[2 * i + 1] * d.x_train[2 * i + 1]);
        if (d.label_train[i] == 0) { c0++; ok &= r < 0.4; } else { c1++; ok &= r > 0.7 && r < 0.9; }
        ok &= d.label_train[i] == (i % 2);                  /* classes alternate */
        ok &= d.x_train[2 * i] == d2.x_train[2 * i];        /* deterministic */
    }
    CHECK(ok && c0 == 1000 && c1 == 1000);
    qa_data_free(&d); qa_data_free(&d2);
    /* sines: y = A sin t + B cos t, t_0 = 0, sorted times in [0, 2 pi] */
    a.regular_times = "irregular"; a.ntimes = 10;
    CHECK(qa_data_make(&a, QA_SINES, &d));
    for (i = 0; i < d.n_train; i++) {
        double b = d.x_train[2 * i], aa = d.x_train[2 * i + 1];
        ok &= d.t_train[i * 10] == 0 && fabs(b) <= 1 && fabs(aa) <= 1;
        for (j = 0; j < 10; j++) {
            double t = d.t_train[i * 10 + j];
            ok &= t >= 0 && t <= 2 * QA_PI + 1e-6 && (j == 0 || t >= d.t_train[i * 10 + j - 1]);
            ok &= fabs(d.y_train[i * 10 + j] - (aa * sin(t) + b * cos(t))) < 1e-5;
        }
    }
    CHECK(ok && d.n_train == 15 && d.n_val == 5);
    qa_data_free(&d);
    a.regular_times = "regular";
    CHECK(qa_data_make(&a, QA_SINES, &d));
    CHECK_NEAR(d.t_val[9], 2 * QA_PI, 1e-6, 0.0);
    CHECK_NEAR(d.t_val[3], 2 * QA_PI / 3, 1e-6, 0.0);
    qa_data_free(&d);
    /* OU: paths start at Y0 in [-3, 3]; E[Y(10)] = Y0 e^-1 + 2 * 10 - 20 (1 - e^-1) */
    CHECK(qa_data_make(&a, QA_OU, &d));
    {
        double sum = 0.0, e1 = exp(-1.0);
        int64_t p;
        for (i = 0; i < d.n_train; i++) {
            ok &= fabs(d.x_train[i]) <= 3;
            for (p = 0; p < 45; p++) {
                const nde_real *path = d.y_train + (i * 45 + p) * QA_OU_TIMES;
                ok &= path[0] == d.x_train[i];
                sum += path[QA_OU_TIMES - 1] - d.x_train[i] * e1;
            }
        }
        CHECK(ok);
        CHECK_NEAR(sum / (double)(d.n_train * 45), 20.0 - 20.0 * (1.0 - e1), 0.08, 0.0);
    }
    qa_data_free(&d);
}

/* The Karhunen-Loeve basis sqrt(2/T) cos((n - 1/2) pi t / T) is orthonormal on [0, T]. */
static void test_wong_zakai_basis(void) {
    qa_args a;
    qa_model m;
    int64_t k = 4, s[2], i, j, n = 4001;
    double gram[4][4] = {{0}}, worst = 0.0;
    qa_args_default(&a);
    a.width = 3; a.ncosines = (int)k; a.lr = 1e-3;
    CHECK(qa_model_init(&m, &a, QA_OU, "adjoint_gq"));
    s[0] = k; s[1] = k;
    m.xi = nde_tensor_zeros(m.ctx, 2, s);
    for (i = 0; i < k; i++) m.xi->data[i * k + i] = NDE_R(1.0);   /* row i: the basis function i */
    for (j = 0; j < n; j++) {
        nde_mark mk = nde_ctx_mark(m.ctx);
        double t = 10.0 * (double)j / (double)(n - 1), w = (j == 0 || j == n - 1) ? 0.5 : 1.0;
        nde_tensor *eta = qa_wong_zakai_noise(m.ctx, &m, nde_tensor_scalar(m.ctx, (nde_real)t));
        int64_t p, q;
        for (p = 0; eta && p < k; p++)
            for (q = 0; q < k; q++) gram[p][q] += w * 10.0 / (double)(n - 1) * (double)eta->data[p] * (double)eta->data[q];
        nde_ctx_reset(m.ctx, mk);
    }
    for (i = 0; i < k; i++)
        for (j = 0; j < k; j++) {
            double e = fabs(gram[i][j] - (i == j ? 1.0 : 0.0));
            if (e > worst) worst = e;
        }
    CHECK(worst < 1e-4);
    qa_model_free(&m);
}

/* Irregular series: one solve at the union of the times, gathered per series,
   equals solving each series alone (fixed rk4 steps of 1e-3). */
static void test_sines_gather(void) {
    qa_args a;
    qa_data d;
    qa_model m;
    int64_t both[2] = {3, 7}, one[1], j;
    nde_tensor *pb, *p1;
    double worst = 0.0;
    qa_args_default(&a);
    a.regular_times = "irregular"; a.ntimes = 10; a.width = 6; a.lr = 1e-3;
    CHECK(qa_data_make(&a, QA_SINES, &d));
    CHECK(qa_model_init(&m, &a, QA_SINES, "direct"));
    m.solve.method = NDE_RK4; m.solve.step_size = 1e-3;
    pb = qa_sines_predict(&m, d.x_train, d.t_train, 10, both, 2);
    CHECK(pb && pb->shape[0] == 2 && pb->shape[1] == 10);
    for (j = 0; j < 2; j++) {
        int64_t i;
        one[0] = both[j];
        p1 = qa_sines_predict(&m, d.x_train, d.t_train, 10, one, 1);
        for (i = 0; pb && p1 && i < 10; i++) {
            double e = fabs((double)pb->data[j * 10 + i] - (double)p1->data[i]);
            if (e > worst) worst = e;
        }
    }
#ifdef NDE_DOUBLE
    CHECK(worst < 1e-9);
#else
    CHECK(worst < 1e-4);
#endif
    /* at t = 0 the prediction is the initial x itself */
    CHECK(pb && fabs((double)pb->data[0] - (double)d.x_train[2 * 3]) < 1e-6);
    qa_model_free(&m);
    qa_data_free(&d);
}

/* The parameter gradient of one batch by direct, adjoint_ode and adjoint_gq:
   the same up to the solver tolerances. */
static void test_gradient_options(void) {
    static const char *opts[3] = {"direct", "adjoint_ode", "adjoint_gq"};
    qa_args a;
    qa_data d;
    nde_real *grads[3];
    int64_t idx[20], i, n = 0;
    int k;
    double num = 0, den = 0, num2 = 0;
    qa_args_default(&a);
    a.width = 10; a.lr = 0.01;
#ifdef NDE_DOUBLE
    a.tol = 1e-9;
#else
    a.tol = 1e-5;
#endif
    CHECK(qa_data_make(&a, QA_SPHERES, &d));
    for (i = 0; i < 20; i++) idx[i] = i;
    for (k = 0; k < 3; k++) {
        qa_model m;
        nde_tensor *loss;
        grads[k] = NULL;
        CHECK(qa_model_init(&m, &a, QA_SPHERES, opts[k]));
        loss = qa_batch_loss(&m, &d, idx, 20, 1, 0);
        nde_zero_grad(m.ctx);
        CHECK(loss && nde_backward(m.ctx, loss) == NDE_OK);
        n = nde_params_count(m.ctx);
        grads[k] = (nde_real *)malloc((size_t)n * sizeof(nde_real));
        memcpy(grads[k], nde_params_grad(m.ctx), (size_t)n * sizeof(nde_real));
        qa_model_free(&m);
    }
    for (i = 0; i < n; i++) {
        double g0 = grads[0][i], g1 = grads[1][i], g2 = grads[2][i];
        num += (g1 - g0) * (g1 - g0); num2 += (g2 - g0) * (g2 - g0); den += g0 * g0;
    }
    CHECK(den > 0);
#ifdef NDE_DOUBLE
    CHECK(sqrt(num / den) < 1e-5 && sqrt(num2 / den) < 1e-5);
#else
    CHECK(sqrt(num / den) < 1e-2 && sqrt(num2 / den) < 1e-2);
#endif
    for (k = 0; k < 3; k++) free(grads[k]);
    qa_data_free(&d);
}

/* The checkpoint states hold the same optimizer state and epoch; the second
   counter (cumulative training time) may differ. */
static int states_equal_but_time(const char *pa, const char *pb) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_tensor *a = nde_load_npy(ctx, pa), *b = nde_load_npy(ctx, pb);
    int64_t i, time_lo = 4 * (EX_CKPT_HEAD + 1), time_hi = time_lo + 4;
    int same = a && b && a->size == b->size;
    for (i = 0; same && i < a->size; i++)
        if ((i < time_lo || i >= time_hi) && a->data[i] != b->data[i]) same = 0;
    nde_ctx_free(ctx);
    return same;
}
static void test_training_and_resume(void) {
    char dir_a[64], dir_b[64], pa[512], pb[512];
    qa_args a;
    qa_option_result ra[QA_MAX_OPTIONS], rb[QA_MAX_OPTIONS];
    int n;
    strcpy(dir_a, "/tmp/nde_test_qa_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_qa_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    tiny_args(&a, "nested_spheres", dir_a);
    a.adjoint_option = "direct,adjoint_gq";
    CHECK(qa_run(&a, ra, &n, 0) == 0);
    CHECK(n == 2 && ra[0].epochs_run == 3);
    CHECK(ra[0].last_loss < ra[0].first_loss && ra[1].last_loss < ra[1].first_loss);
    CHECK(ra[0].bnfe == 0 && ra[1].bnfe > 0 && ra[0].fnfe > 0);
    CHECK(ra[0].val_metric >= 0 && ra[0].val_metric <= 100);
    /* resume: 2 epochs then 3 */
    tiny_args(&a, "nested_spheres", dir_b);
    a.adjoint_option = "direct"; a.nepochs = 2;
    CHECK(qa_run(&a, rb, &n, 0) == 0);
    a.nepochs = 3; a.resume = 1;
    CHECK(qa_run(&a, rb, &n, 0) == 0);
    CHECK(rb[0].epochs_run == 1 && rb[0].val_metric == ra[0].val_metric);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt_direct.safetensors"));
    ex_path(pa, sizeof pa, dir_a, "/ckpt_direct.state.npy", NULL);
    ex_path(pb, sizeof pb, dir_b, "/ckpt_direct.state.npy", NULL);
    CHECK(states_equal_but_time(pa, pb));
    nde_test_remove_dir(dir_b);
    /* sines (irregular) and OU (Wong-Zakai training, SDE validation), tiny */
    CHECK(mkdir(dir_b, 0700) == 0);
    tiny_args(&a, "sines", dir_b);
    a.adjoint_option = "direct"; a.regular_times = "irregular"; a.max_train = 4; a.batchsize = 0; a.nepochs = 4;
    CHECK(qa_run(&a, rb, &n, 0) == 0);
    CHECK(rb[0].last_loss < rb[0].first_loss);
    nde_test_remove_dir(dir_b);
    CHECK(mkdir(dir_b, 0700) == 0);
    tiny_args(&a, "ou", dir_b);
    a.adjoint_option = "adjoint_gq"; a.max_train = 2; a.max_val = 1; a.batchsize = 2; a.nepochs = 2; a.width = 4;
    a.ncosines = 3; a.tol = 1e-2;
    CHECK(qa_run(&a, rb, &n, 0) == 0);
    CHECK(rb[0].bnfe > 0 && rb[0].val_metric == rb[0].val_metric && rb[0].last_loss < rb[0].first_loss);
    /* validation by Milstein and Euler-Maruyama; the SDE trained directly and
       by the reversible-Heun adjoint: the same training (gradients equal up
       to round-off) */
    CHECK(rb[0].sde_metric[0] == rb[0].val_metric && rb[0].sde_metric[1] == rb[0].sde_metric[1]);
    CHECK(fabs(rb[0].sde_metric[0] - rb[0].sde_metric[1]) < 0.05 * fabs(rb[0].sde_metric[0]));
    a.adjoint_option = "sde_direct,sde_adjoint"; a.sde_dt = 0.05;
    CHECK(qa_run(&a, rb, &n, 0) == 0);
    CHECK(n == 2 && rb[0].last_loss < rb[0].first_loss && rb[0].bnfe == 0 && rb[1].bnfe > 0);
    CHECK_NEAR(rb[1].last_loss, rb[0].last_loss, 1e-3, 1e-3);
    CHECK_NEAR(rb[1].val_metric, rb[0].val_metric, 1e-3, 1e-3);
    a.adjoint_option = "adjoint_gq";
    a.adjoint_option = "no_such_option";
    fprintf(stderr, "(test_ex_quadrature_adjoint: the next error message is expected)\n");
    CHECK(qa_run(&a, rb, &n, 0) != 0);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

static void test_option_names(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_adjoint_options adj;
    int sde = -1;
    CHECK(qa_grad_mode(ctx, "adjoint_gq", &adj, 0.3, &sde) && adj.mode == NDE_GRAD_GAUSS && adj.gtol == 0.3 && sde == 0);
    CHECK(qa_grad_mode(ctx, "adjoint_ode", &adj, 0.1, &sde) && adj.mode == NDE_GRAD_BACKSOLVE && !adj.seminorm);
    CHECK(qa_grad_mode(ctx, "adjoint_seminorm", &adj, 0.1, &sde) && adj.mode == NDE_GRAD_BACKSOLVE && adj.seminorm);
    CHECK(qa_grad_mode(ctx, "direct", &adj, 0.1, &sde) && adj.mode == NDE_GRAD_DIRECT && sde == 0);
    CHECK(qa_grad_mode(ctx, "interp", &adj, 0.1, &sde) && adj.mode == NDE_GRAD_INTERPOLATED);
    CHECK(qa_grad_mode(ctx, "sde_direct", &adj, 0.1, &sde) && sde == 1);
    CHECK(qa_grad_mode(ctx, "sde_adjoint", &adj, 0.1, &sde) && sde == 2);
    CHECK(!qa_grad_mode(ctx, "no_such_mode", &adj, 0.1, &sde));
    CHECK_MSG(nde_ctx_message(ctx), "no_such_mode");
    nde_ctx_free(ctx);
}

/* The trained OU model as an SDE: the Ito drift of Euler-Maruyama is
   f - 1/2 g dg/dy (checked against a central difference of g); the Brownian
   path is a function of the seed (same seed, same paths; another seed,
   others); Milstein and Euler-Maruyama on the same path follow the same
   solution (strong order 1 each, additive-like noise of a small MLP). */
static void test_ou_sde(void) {
    qa_args a;
    qa_data d;
    qa_model m;
    int64_t idx[2] = {0, 1}, s[2] = {3, 1}, i, n;
    nde_tensor *y, *t, *ito, *f, *g, *gp, *gm, *p1, *p2, *p3, *pe;
    double eps = 1e-4, worst = 0.0, diff = 0.0, spread = 0.0, other = 0.0;
    nde_real host[3] = {NDE_R(-1.5), NDE_R(0.2), NDE_R(2.0)};
    qa_args_default(&a);
    a.width = 4; a.lr = 1e-3; a.sde_dt = 0.02;
    CHECK(qa_data_make(&a, QA_OU, &d));
    CHECK(qa_model_init(&m, &a, QA_OU, "adjoint_gq"));
    /* Ito drift against a central difference (double: 1e-6; float: looser) */
    y = nde_tensor_from(m.ctx, 2, s, host);
    t = nde_tensor_scalar(m.ctx, NDE_R(2.5));
    ito = qa_ou_ito_drift(m.ctx, t, y, &m);
    f = qa_ou_drift(m.ctx, t, y, &m);
    g = qa_ou_diffusion(m.ctx, t, y, &m);
    gp = qa_ou_diffusion(m.ctx, t, nde_add_scalar(m.ctx, y, (nde_real)eps), &m);
    gm = qa_ou_diffusion(m.ctx, t, nde_add_scalar(m.ctx, y, (nde_real)-eps), &m);
    CHECK(ito && f && g && gp && gm);
    for (i = 0; ito && gm && i < 3; i++) {
        double dg = ((double)gp->data[i] - (double)gm->data[i]) / (2 * eps);
        double want = (double)f->data[i] - 0.5 * (double)g->data[i] * dg;
        double e = fabs((double)ito->data[i] - want);
        if (e > worst) worst = e;
        other += fabs(0.5 * (double)g->data[i] * dg);
    }
#ifdef NDE_DOUBLE
    CHECK(worst < 1e-7);
#else
    CHECK(worst < 2e-3);
#endif
    CHECK(other > 1e-6);            /* the correction is not zero here */
    /* paths: reproducible from the seed */
    p1 = qa_ou_sde_paths(&m, NDE_SDE_MILSTEIN, 0.02, 0, d.x_val, 5, idx, 2, 42);
    p2 = qa_ou_sde_paths(&m, NDE_SDE_MILSTEIN, 0.02, 0, d.x_val, 5, idx, 2, 42);
    p3 = qa_ou_sde_paths(&m, NDE_SDE_MILSTEIN, 0.02, 0, d.x_val, 5, idx, 2, 43);
    pe = qa_ou_sde_paths(&m, NDE_SDE_EULER, 0.02, 0, d.x_val, 5, idx, 2, 42);
    CHECK(p1 && p2 && p3 && pe && p1->shape[0] == QA_OU_TIMES - 1 && p1->shape[1] == 2 && p1->shape[2] == 5);
    n = p1 ? p1->size : 0;
    {
        int same = 1, differ = 0;
        for (i = 0; i < n; i++) {
            same &= p1->data[i] == p2->data[i];
            differ += p1->data[i] != p3->data[i];
            diff += fabs((double)p1->data[i] - (double)pe->data[i]) / (double)n;
            spread += fabs((double)p1->data[i] - (double)p3->data[i]) / (double)n;
        }
        CHECK(same && differ == n);
    }
    /* Milstein and Euler-Maruyama on one path: far closer than two paths */
    CHECK(diff < 0.05 * spread);
    qa_model_free(&m);
    qa_data_free(&d);
}

int main(void) {
    test_option_names();
    test_data();
    test_wong_zakai_basis();
    test_sines_gather();
    test_gradient_options();
    test_ou_sde();
    test_training_and_resume();
    return nde_test_finish("test_ex_quadrature_adjoint");
}
