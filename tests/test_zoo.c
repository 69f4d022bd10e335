/* tests/test_zoo.c - the model zoo and neural SDEs: the Brownian tree
   (reproducible, order-independent, exact statistics at dyadic points), SDE
   convergence orders on geometric Brownian motion (strong and weak), SRA1 on
   additive noise, scalar noise, gradients through the solver against finite
   differences, constant memory off the tape, bad input. */
#define NDE_IMPLEMENTATION
#include "../nde_solvers.h"
#include "nde_test.h"
#include <stdlib.h>

#ifdef NDE_TEST_SANITIZE
#define PATHS 400
#else
#define PATHS 4000
#endif

static nde_ctx *new_ctx(void) { return nde_ctx_new(nde_ctx_desc_default()); }

/* least-squares slope of log(err) against log(h) */
static double slope(int n, const double *h, const double *err) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0; int i;
    for (i = 0; i < n; i++) {
        double x = log(h[i]), y = log(err[i]);
        sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

/* ---------------------------------------------------------------- Brownian tree */
static void test_brownian_reproducible(void) {
    nde_ctx *ctx = new_ctx();
    nde_brownian a, b;
    int64_t shp[2] = {3, 5};
    double qs[6][2] = {{0.0, 1.0}, {0.1, 0.35}, {0.35, 0.36}, {0.5, 0.5 + 1.0 / 1024}, {0.9, 0.2}, {0.0, 0.123456789}};
    double ra[6][2 * 15], rb[6][2 * 15], again[2 * 15];
    int i, order[6] = {5, 2, 0, 4, 1, 3}, same = 1, again_same = 1;
    CHECK(nde_brownian_init(ctx, &a, 0.0, 1.0, 2, shp, 1e-3, 77) == NDE_OK);
    CHECK(nde_brownian_init(ctx, &b, 0.0, 1.0, 2, shp, 1e-3, 77) == NDE_OK);
    CHECK(a.depth == 10 && a.size == 15);
    for (i = 0; i < 6; i++) nde_brownian_query(ctx, &a, qs[i][0], qs[i][1], ra[i], ra[i] + 15);
    for (i = 0; i < 6; i++) nde_brownian_query(ctx, &b, qs[order[i]][0], qs[order[i]][1], rb[order[i]], rb[order[i]] + 15);
    for (i = 0; i < 6; i++) if (memcmp(ra[i], rb[i], sizeof ra[i]) != 0) same = 0;
    CHECK(same);                                   /* any query order: bitwise identical */
    for (i = 0; i < 6; i++) {
        nde_brownian_query(ctx, &a, qs[i][0], qs[i][1], again, again + 15);
        if (memcmp(again, ra[i], sizeof again) != 0) again_same = 0;
    }
    CHECK(again_same);                             /* queried again: identical */
    /* W(0.9, 0.2) = -W(0.2, 0.9); increments add up */
    {
        double w1[15], w2[15], w3[15], w4[15]; int e, ok = 1, ok2 = 1;
        nde_brownian_query(ctx, &a, 0.2, 0.9, w1, NULL);
        for (e = 0; e < 15; e++) if (w1[e] != -ra[4][e]) ok = 0;
        CHECK(ok);
        nde_brownian_query(ctx, &a, 0.1, 0.45, w2, NULL);
        nde_brownian_query(ctx, &a, 0.45, 0.77, w3, NULL);
        nde_brownian_query(ctx, &a, 0.1, 0.77, w4, NULL);
        for (e = 0; e < 15; e++) if (fabs(w2[e] + w3[e] - w4[e]) > 1e-12) ok2 = 0;
        CHECK(ok2);
    }
    /* a different seed gives a different path */
    {
        nde_brownian c; double w[15];
        nde_brownian_init(ctx, &c, 0.0, 1.0, 2, shp, 1e-3, 78);
        nde_brownian_query(ctx, &c, 0.0, 1.0, w, NULL);
        CHECK(memcmp(w, ra[0], sizeof w) != 0);
        nde_brownian_free(&c);
    }
    /* tensors agree with the host query */
    {
        nde_tensor *dw = NULL, *h = NULL;
        CHECK(nde_brownian_increment(ctx, &a, 0.1, 0.35, &dw, &h) == NDE_OK);
        CHECK(dw && dw->ndim == 2 && dw->shape[0] == 3 && dw->shape[1] == 5);
        CHECK_NEAR(nde_tensor_item(ctx, dw, 7), ra[1][7], 1e-6, 1e-6);
        CHECK_NEAR(nde_tensor_item(ctx, h, 7), ra[1][15 + 7], 1e-6, 1e-6);
    }
    nde_brownian_free(&a); nde_brownian_free(&b);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* moments over many elements: Var W = h, Var H = h/12, Cov(W, H) = 0 on dyadic
   intervals; disjoint increments uncorrelated; a non-dyadic point has Var = t. */
static void test_brownian_statistics(void) {
#ifdef NDE_TEST_SANITIZE
    const int64_t n = 4000; const double tol = 0.1;
#else
    const int64_t n = 40000; const double tol = 0.04;
#endif
    nde_ctx *ctx = new_ctx();
    nde_brownian bm;
    double *w1 = (double *)malloc((size_t)n * 4 * sizeof(double)), *h1 = w1 + n, *w2 = h1 + n, *h2 = w2 + n;
    double sw = 0, sww = 0, shh = 0, swh = 0, s12 = 0, m;
    int64_t e;
    CHECK(nde_brownian_init(ctx, &bm, 1.0, 3.0, 1, &n, 2.0 / 256, 5) == NDE_OK);
    nde_brownian_query(ctx, &bm, 1.5, 1.75, w1, h1);     /* dyadic, h = 0.25 */
    nde_brownian_query(ctx, &bm, 1.75, 2.25, w2, h2);    /* the next, h = 0.5 */
    for (e = 0; e < n; e++) {
        sw += w1[e]; sww += w1[e] * w1[e]; shh += h1[e] * h1[e]; swh += w1[e] * h1[e]; s12 += w1[e] * w2[e];
    }
    m = (double)n;
    CHECK_NEAR(sw / m, 0.0, 4 * sqrt(0.25 / m), 0);
    CHECK_NEAR(sww / m, 0.25, 0, tol);
    CHECK_NEAR(shh / m, 0.25 / 12, 0, tol);
    CHECK_NEAR(swh / m / sqrt(0.25 * 0.25 / 12), 0.0, 4 / sqrt(m), 0);   /* correlation */
    CHECK_NEAR(s12 / m / sqrt(0.25 * 0.5), 0.0, 4 / sqrt(m), 0);
    {   /* H of the second interval: Var 0.5/12 */
        double s = 0; for (e = 0; e < n; e++) s += h2[e] * h2[e];
        CHECK_NEAR(s / m, 0.5 / 12, 0, tol);
    }
    {   /* a point off the dyadic grid at leaf resolution: W(1 + 1/3) - W(1) ~ N(0, 1/3) */
        double s = 0; nde_brownian_query(ctx, &bm, 1.0, 1.0 + 1.0 / 3.0, w1, NULL);
        for (e = 0; e < n; e++) s += w1[e] * w1[e];
        CHECK_NEAR(s / m, 1.0 / 3.0, 0, tol + 2.0 / 256);
    }
    nde_brownian_free(&bm);
    free(w1);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- GBM */
typedef struct gbm { double lambda, sigma; } gbm;
static nde_tensor *gbm_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; return nde_scale(ctx, z, (nde_real)((gbm *)u)->lambda);
}
static nde_tensor *gbm_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; return nde_scale(ctx, z, (nde_real)((gbm *)u)->sigma);
}
static nde_jet *gbm_diffusion_jet(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *u) {
    (void)t; return nde_jet_scale(ctx, z, (nde_real)((gbm *)u)->sigma);
}

/* Strong error E|X_N - X(T)| and weak error |E X_N - E X(T)| (with the exact
   solution on the same paths as control variate) for steps T/2^k. */
static void gbm_errors(nde_sde *sde, nde_sde_method method, int k0, int k1, double *hs, double *strong, double *weak) {
    nde_ctx *ctx = new_ctx();
    gbm *p = (gbm *)sde->user;
    nde_brownian bm;
    int64_t shp[2] = {PATHS, 1};
    double *wT = (double *)malloc(PATHS * sizeof(double));
    int k, e;
    nde_brownian_init(ctx, &bm, 0.0, 1.0, 2, shp, ldexp(1.0, -k1), 2024);
    nde_brownian_query(ctx, &bm, 0.0, 1.0, wT, NULL);
    for (k = k0; k <= k1; k++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_sde_options o = nde_sde_options_default();
        double ts[2] = {0.0, 1.0}, se = 0, we = 0;
        nde_tensor *ys[2];
        nde_real *y = (nde_real *)malloc(PATHS * sizeof(nde_real));
        o.method = method; o.dt = ldexp(1.0, -k); o.bm = &bm;
        CHECK(nde_sde_solve(ctx, sde, nde_tensor_full(ctx, 2, shp, NDE_R(1.0)), 2, ts, &o, ys) == NDE_OK);
        nde_tensor_to_host(ctx, ys[1], y);
        for (e = 0; e < PATHS; e++) {
            double ex = sde->type == NDE_SDE_ITO ? exp((p->lambda - 0.5 * p->sigma * p->sigma) + p->sigma * wT[e])
                                                 : exp(p->lambda + p->sigma * wT[e]);
            se += fabs((double)y[e] - ex);
            we += (double)y[e] - ex;
        }
        hs[k - k0] = o.dt; strong[k - k0] = se / PATHS; weak[k - k0] = fabs(we / PATHS);
        free(y);
        nde_ctx_reset(ctx, m);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_brownian_free(&bm);
    free(wT);
    nde_ctx_free(ctx);
}

static void test_gbm_orders(void) {
    gbm strong_p = {2.0, 1.0}, weak_p = {2.0, 0.1};   /* Higham (SIAM Review 2001) */
    nde_sde sde;
    double hs[8], se[8], we[8], s;
    memset(&sde, 0, sizeof sde);
    sde.drift = gbm_drift; sde.diffusion = gbm_diffusion; sde.type = NDE_SDE_ITO; sde.noise = NDE_NOISE_DIAGONAL;
    sde.user = &strong_p;
    gbm_errors(&sde, NDE_SDE_EULER, 4, 8, hs, se, we);
    s = slope(5, hs, se);
    printf("  euler-maruyama strong order %.3f\n", s);
    CHECK_NEAR(s, 0.5, 0.3, 0);
    gbm_errors(&sde, NDE_SDE_MILSTEIN, 4, 8, hs, se, we);   /* derivative-free g'g */
    s = slope(5, hs, se);
    printf("  milstein (derivative-free) strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    sde.diffusion_jet = gbm_diffusion_jet;                   /* g'g by an exact JVP */
    gbm_errors(&sde, NDE_SDE_MILSTEIN, 4, 8, hs, se, we);
    s = slope(5, hs, se);
    printf("  milstein (jet JVP) strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    sde.diffusion = NULL;                                    /* jet diffusion alone works too */
    gbm_errors(&sde, NDE_SDE_MILSTEIN, 4, 4, hs, se + 5, we);
    CHECK_NEAR(se[5], se[0], 1e-6, 1e-4);
    sde.diffusion = gbm_diffusion;
    sde.user = &weak_p;
    gbm_errors(&sde, NDE_SDE_EULER, 3, 7, hs, se, we);
    s = slope(5, hs, we);
    printf("  euler-maruyama weak order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    gbm_errors(&sde, NDE_SDE_MILSTEIN, 3, 7, hs, se, we);
    s = slope(5, hs, we);
    printf("  milstein weak order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    /* Stratonovich GBM dX = l X dt + s X o dW: X = exp(l t + s W) */
    sde.type = NDE_SDE_STRATONOVICH; sde.user = &strong_p;
    gbm_errors(&sde, NDE_SDE_EULER_HEUN, 4, 8, hs, se, we);
    s = slope(5, hs, se);
    printf("  euler-heun (Stratonovich) strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    gbm_errors(&sde, NDE_SDE_MILSTEIN, 4, 8, hs, se, we);
    s = slope(5, hs, se);
    printf("  milstein (Stratonovich) strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    gbm_errors(&sde, NDE_SDE_REVERSIBLE_HEUN, 4, 8, hs, se, we);
    s = slope(5, hs, se);
    printf("  reversible heun (Stratonovich) strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
}


/* ---------------------------------------------------------------- additive noise
   dX = (sin X - X) dt + s (1 + t/2) dW: SRA1 strong order 1.5, Euler-Maruyama and
   reversible Heun 1.0, against SRA1 with steps of 2^-11 on the same paths. */
static nde_tensor *add_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; (void)u; return nde_sub(ctx, nde_sin(ctx, z), z);
}
static nde_tensor *add_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)z; (void)u; return nde_scale(ctx, nde_add_scalar(ctx, nde_scale(ctx, t, NDE_R(0.5)), NDE_R(1.0)), NDE_R(0.8));
}
static void additive_errors(nde_sde_method method, int k0, int k1, double *hs, double *err) {
    nde_ctx *ctx = new_ctx();
    nde_sde sde;
    nde_brownian bm;
    int64_t shp[2] = {PATHS / 4, 1};
    int64_t n = PATHS / 4, e;
    nde_real *ref = (nde_real *)malloc((size_t)n * sizeof(nde_real)), *y = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    double ts[2] = {0.0, 1.0};
    nde_tensor *ys[2], *z0;
    nde_sde_options o = nde_sde_options_default();
    int k;
    memset(&sde, 0, sizeof sde);
    sde.drift = add_drift; sde.diffusion = add_diffusion; sde.noise = NDE_NOISE_ADDITIVE;
    nde_brownian_init(ctx, &bm, 0.0, 1.0, 2, shp, ldexp(1.0, -11), 99);
    z0 = nde_tensor_full(ctx, 2, shp, NDE_R(0.5));
    o.bm = &bm; o.method = NDE_SDE_SRA1; o.dt = ldexp(1.0, -11);
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_OK);
    nde_tensor_to_host(ctx, ys[1], ref);
    for (k = k0; k <= k1; k++) {
        double se = 0;
        nde_mark m = nde_ctx_mark(ctx);
        o.method = method; o.dt = ldexp(1.0, -k);
        CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_OK);
        nde_tensor_to_host(ctx, ys[1], y);
        for (e = 0; e < n; e++) se += fabs((double)y[e] - (double)ref[e]);
        hs[k - k0] = o.dt; err[k - k0] = se / (double)n;
        nde_ctx_reset(ctx, m);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_brownian_free(&bm);
    free(ref); free(y);
    nde_ctx_free(ctx);
}
static void test_additive_orders(void) {
    double hs[8], err[8], s;
    additive_errors(NDE_SDE_SRA1, 2, 6, hs, err);
    s = slope(5, hs, err);
    printf("  sra1 strong order %.3f (additive noise)\n", s);
#ifdef NDE_DOUBLE
    CHECK_NEAR(s, 1.5, 0.3, 0);
#else
    CHECK(s > 1.0);    /* float round-off at the finest steps */
#endif
    additive_errors(NDE_SDE_EULER, 3, 7, hs, err);
    s = slope(5, hs, err);
    printf("  euler-maruyama strong order %.3f (additive noise)\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    additive_errors(NDE_SDE_REVERSIBLE_HEUN, 3, 7, hs, err);
    s = slope(5, hs, err);
    printf("  reversible heun strong order %.3f (additive noise)\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
}

/* ---------------------------------------------------------------- scalar noise
   Two GBMs driven by ONE Brownian motion per sample: X_i = exp((l_i - s_i^2/2) t + s_i W). */
static nde_tensor *two_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_real l[2] = {1.0, -0.5}; int64_t s = 2; (void)t; (void)u;
    return nde_mul(ctx, z, nde_tensor_from(ctx, 1, &s, l));
}
static nde_jet *two_diffusion_jet(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *u) {
    nde_real sg[2] = {0.5, 1.0}; int64_t s = 2; (void)t; (void)u;
    return nde_jet_mul(ctx, z, nde_jet_const(ctx, nde_tensor_from(ctx, 1, &s, sg), 0));
}
static void test_scalar_noise(void) {
    nde_ctx *ctx = new_ctx();
    nde_sde sde;
    nde_brownian bm;
    int64_t n = PATHS / 4, shp[2], e;
    int nd, k;
    int64_t nshape[NDE_MAX_DIMS];
    double ts[2] = {0.0, 1.0}, hs[4], err[4], *wT = (double *)malloc((size_t)n * sizeof(double)), s;
    nde_real *y = (nde_real *)malloc((size_t)n * 2 * sizeof(nde_real));
    nde_tensor *z0, *ys[2];
    nde_sde_options o = nde_sde_options_default();
    memset(&sde, 0, sizeof sde);
    sde.drift = two_drift; sde.diffusion_jet = two_diffusion_jet; sde.noise = NDE_NOISE_SCALAR;
    shp[0] = n; shp[1] = 2;
    z0 = nde_tensor_full(ctx, 2, shp, NDE_R(1.0));
    CHECK(nde_sde_noise_shape(ctx, &sde, z0, &nd, nshape) == NDE_OK && nd == 2 && nshape[0] == n && nshape[1] == 1);
    nde_brownian_init(ctx, &bm, 0.0, 1.0, nd, nshape, ldexp(1.0, -8), 3);
    nde_brownian_query(ctx, &bm, 0.0, 1.0, wT, NULL);
    o.bm = &bm; o.method = NDE_SDE_MILSTEIN;
    for (k = 5; k <= 8; k++) {
        double se = 0;
        nde_mark m = nde_ctx_mark(ctx);
        o.dt = ldexp(1.0, -k);
        CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_OK);
        nde_tensor_to_host(ctx, ys[1], y);
        for (e = 0; e < n; e++)
            se += fabs((double)y[2 * e] - exp(1.0 - 0.125 + 0.5 * wT[e])) + fabs((double)y[2 * e + 1] - exp(-0.5 - 0.5 + wT[e]));
        hs[k - 5] = o.dt; err[k - 5] = se / (double)n;
        nde_ctx_reset(ctx, m);
    }
    s = slope(4, hs, err);
    printf("  milstein strong order %.3f (scalar noise, 2 components)\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    CHECK(err[3] < 0.05);      /* both columns follow the same W */
    nde_brownian_free(&bm);
    free(wT); free(y);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- gradients
   Backpropagation through the solver against central differences on the same
   path: parameters theta = (a, b) in dX = (a X - X^3/2) dt + b X dW (Ito) or
   o dW (Stratonovich), loss = mean(X(0.5)^2 + X(1)). */
#ifdef NDE_DOUBLE
typedef struct grad_model { nde_tensor *theta; } grad_model;
static nde_tensor *gm_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *a = nde_slice(ctx, ((grad_model *)u)->theta, 0, 0, 1); (void)t;
    return nde_sub(ctx, nde_mul(ctx, z, a), nde_scale(ctx, nde_powi(ctx, z, 3), NDE_R(0.5)));
}
static nde_tensor *gm_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *b = nde_slice(ctx, ((grad_model *)u)->theta, 0, 1, 2); (void)t;
    return nde_mul(ctx, nde_tanh(ctx, z), b);
}
static nde_jet *gm_diffusion_jet(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *u) {
    nde_jet *b = nde_jet_slice(ctx, nde_jet_param(ctx, ((grad_model *)u)->theta, z->order), 0, 1, 2); (void)t;
    return nde_jet_mul(ctx, nde_jet_tanh(ctx, z), b);
}
static double gm_loss(nde_ctx *ctx, nde_sde *sde, nde_sde_options *o, nde_tensor *z0, nde_tensor **loss_out) {
    double ts[3] = {0.0, 0.5, 1.0};
    nde_tensor *ys[3], *loss;
    if (nde_sde_solve(ctx, sde, z0, 3, ts, o, ys) != NDE_OK) return NAN;
    loss = nde_mean(ctx, nde_add(ctx, nde_square(ctx, ys[1]), ys[2]));
    if (loss_out) *loss_out = loss;
    return loss ? (double)nde_tensor_item(ctx, loss, 0) : NAN;
}
#endif
static void test_sde_gradients(void) {
#ifdef NDE_DOUBLE
    static const nde_sde_method methods[5] = {NDE_SDE_EULER, NDE_SDE_MILSTEIN, NDE_SDE_EULER_HEUN, NDE_SDE_REVERSIBLE_HEUN,
                                              NDE_SDE_MILSTEIN};
    int mi;
    for (mi = 0; mi < 5; mi++) {
        nde_ctx *ctx = new_ctx();
        grad_model gm;
        nde_sde sde;
        nde_sde_options o = nde_sde_options_default();
        int64_t two = 2, shp[2] = {6, 3};
        nde_real th[2] = {0.3, 0.7}, zv[18];
        nde_tensor *z0, *loss = NULL;
        nde_real *pd, *pg;
        double g_theta[2], g_z0, fd;
        int i;
        for (i = 0; i < 18; i++) zv[i] = (nde_real)(0.2 + 0.1 * i - 0.004 * i * i);
        gm.theta = nde_param_new(ctx, "theta", 1, &two);
        nde_tensor_set_host(ctx, gm.theta, th);
        memset(&sde, 0, sizeof sde);
        sde.drift = gm_drift; sde.diffusion = gm_diffusion; sde.user = &gm;
        sde.type = (methods[mi] == NDE_SDE_EULER_HEUN || methods[mi] == NDE_SDE_REVERSIBLE_HEUN || mi == 4)
                       ? NDE_SDE_STRATONOVICH : NDE_SDE_ITO;
        if (methods[mi] == NDE_SDE_MILSTEIN && mi == 1) sde.diffusion_jet = gm_diffusion_jet;
        o.method = methods[mi]; o.dt = 1.0 / 16; o.seed = 11;
        z0 = nde_tensor_from(ctx, 2, shp, zv);
        z0->requires_grad = 1;
        gm_loss(ctx, &sde, &o, z0, &loss);
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        pg = nde_params_grad(ctx); pd = nde_params_data(ctx);
        g_theta[0] = pg[0]; g_theta[1] = pg[1];
        g_z0 = z0->grad ? z0->grad[4] : NAN;
        for (i = 0; i < 2; i++) {
            nde_real keep = pd[i]; double lp, lm;
            pd[i] = keep + 1e-6; lp = gm_loss(ctx, &sde, &o, z0, NULL);
            pd[i] = keep - 1e-6; lm = gm_loss(ctx, &sde, &o, z0, NULL);
            pd[i] = keep;
            fd = (lp - lm) / 2e-6;
            CHECK_NEAR(g_theta[i], fd, 1e-7, 1e-6);
        }
        {
            double lp, lm; nde_real keep = z0->data[4];
            z0->data[4] = keep + 1e-6; lp = gm_loss(ctx, &sde, &o, z0, NULL);
            z0->data[4] = keep - 1e-6; lm = gm_loss(ctx, &sde, &o, z0, NULL);
            z0->data[4] = keep;
            CHECK_NEAR(g_z0, (lp - lm) / 2e-6, 1e-7, 1e-6);
        }
        CHECK(nde_ctx_status(ctx) == NDE_OK);
        nde_ctx_free(ctx);
    }
#endif
}

/* The reversible adjoint gives the gradient of backpropagation through the
   solver (same discrete solve, reconstructed backwards), in O(1) tape. */
static void test_sde_adjoint(void) {
#ifdef NDE_DOUBLE
    int pass;
    for (pass = 0; pass < 2; pass++) {
        nde_ctx *ctx = new_ctx();
        grad_model gm;
        nde_sde sde;
        nde_sde_options o = nde_sde_options_default();
        int64_t two = 2, shp[2] = {6, 3};
        nde_real th[2] = {0.3, 0.7}, zv[18];
        double ts[4] = {0.0, 0.3, 0.5, 1.0};
        double g_direct[2], gz_direct[18];
        nde_tensor *z0, *zs, *loss, *w;
        nde_brownian bm;
        int i, ok = 1;
        int64_t tape;
        for (i = 0; i < 18; i++) zv[i] = (nde_real)(0.2 + 0.1 * i - 0.004 * i * i);
        gm.theta = nde_param_new(ctx, "theta", 1, &two);
        nde_tensor_set_host(ctx, gm.theta, th);
        memset(&sde, 0, sizeof sde);
        sde.drift = gm_drift; sde.diffusion = gm_diffusion; sde.user = &gm; sde.type = NDE_SDE_STRATONOVICH;
        o.method = NDE_SDE_REVERSIBLE_HEUN; o.dt = 1.0 / 32; o.seed = 5;
        if (pass == 1) {   /* a user path instead of the internal one */
            nde_brownian_init(ctx, &bm, 0.0, 1.0, 2, shp, 1e-3, 8);
            o.bm = &bm;
        }
        z0 = nde_tensor_from(ctx, 2, shp, zv);
        z0->requires_grad = 1;
        w = nde_tensor_randn(ctx, 3, (int64_t[]){4, 6, 3}, 1, 2);   /* a loss on every output */
        zs = nde_sdeint(ctx, &sde, z0, 4, ts, &o);
        loss = nde_sum(ctx, nde_mul(ctx, nde_square(ctx, zs), w));
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        for (i = 0; i < 2; i++) g_direct[i] = nde_params_grad(ctx)[i];
        for (i = 0; i < 18; i++) gz_direct[i] = z0->grad[i];
        z0->grad = NULL;
        tape = nde_tape_length(ctx);
        zs = nde_sdeint_adjoint(ctx, &sde, z0, 4, ts, &o);
        CHECK(nde_tape_length(ctx) == tape + 1);          /* the whole solve is one node */
        loss = nde_sum(ctx, nde_mul(ctx, nde_square(ctx, zs), w));
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        for (i = 0; i < 2; i++) CHECK_NEAR(nde_params_grad(ctx)[i], g_direct[i], 1e-9, 1e-8);
        for (i = 0; i < 18; i++) if (!z0->grad || fabs(z0->grad[i] - gz_direct[i]) > 1e-9 + 1e-8 * fabs(gz_direct[i])) ok = 0;
        CHECK(ok);
        printf("  reversible adjoint vs backprop: dtheta %.12g vs %.12g\n", nde_params_grad(ctx)[1], g_direct[1]);
        if (pass == 1) nde_brownian_free(&bm);
        CHECK(nde_ctx_status(ctx) == NDE_OK);
        nde_ctx_free(ctx);
    }
    {   /* any other method is refused */
        nde_ctx *ctx = new_ctx();
        gbm p = {1.0, 0.5};
        nde_sde sde;
        nde_sde_options o = nde_sde_options_default();
        double ts[2] = {0, 1};
        memset(&sde, 0, sizeof sde);
        sde.drift = gbm_drift; sde.diffusion = gbm_diffusion; sde.user = &p;
        o.dt = 0.1;
        CHECK(nde_sdeint_adjoint(ctx, &sde, nde_tensor_scalar(ctx, 1), 2, ts, &o) == NULL);
        CHECK(nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
        nde_ctx_free(ctx);
    }
#endif
}

/* ---------------------------------------------------------------- memory
   Off the tape the solve resets the arena after every step: the peak does not
   grow with the number of steps. */
static void test_sde_memory(void) {
    nde_ctx *ctx = new_ctx();
    gbm p = {1.0, 0.5};
    nde_sde sde;
    nde_sde_options o = nde_sde_options_default();
    int64_t shp[2] = {64, 4};
    double ts[3] = {0.0, 0.5, 1.0};
    nde_tensor *z0 = nde_tensor_full(ctx, 2, shp, NDE_R(1.0)), *ys[3];
    size_t peak_small, peak_big, base;
    memset(&sde, 0, sizeof sde);
    sde.drift = gbm_drift; sde.diffusion = gbm_diffusion; sde.user = &p;
    sde.type = NDE_SDE_STRATONOVICH;
    o.method = NDE_SDE_REVERSIBLE_HEUN;
    o.dt = 1.0 / 16;
    nde_ctx_reset_peak(ctx);
    base = nde_ctx_used_bytes(ctx);
    CHECK(nde_sde_solve(ctx, &sde, z0, 3, ts, &o, ys) == NDE_OK);
    peak_small = nde_ctx_peak_bytes(ctx) - base;
    o.dt = 1.0 / 1024;
    nde_ctx_reset_peak(ctx);
    base = nde_ctx_used_bytes(ctx);
    CHECK(nde_sde_solve(ctx, &sde, z0, 3, ts, &o, ys) == NDE_OK);
    peak_big = nde_ctx_peak_bytes(ctx) - base;
    CHECK(peak_big <= peak_small + 4096);
    CHECK(nde_tape_length(ctx) == 0);
    /* the stacked form */
    {
        nde_tensor *zs = nde_sdeint(ctx, &sde, z0, 3, ts, &o);
        CHECK(zs && zs->ndim == 3 && zs->shape[0] == 3 && zs->shape[1] == 64 && zs->shape[2] == 4);
        CHECK(zs && nde_tensor_item(ctx, zs, 0) == NDE_R(1.0));
        CHECK(zs && nde_tensor_item(ctx, zs, 2 * 256 + 5) == nde_tensor_item(ctx, ys[2], 5));   /* same seed, same path */
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- symplectic
   Pendulum H = p^2/2 - cos q as the separable field [p, -sin q]: leapfrog and
   symplectic Euler orders, and a bounded energy error over 10^4 steps. */
static nde_tensor *pendulum(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *parts[2]; (void)t; (void)u;
    parts[0] = nde_slice(ctx, z, 1, 1, 2);
    parts[1] = nde_neg(ctx, nde_sin(ctx, nde_slice(ctx, z, 1, 0, 1)));
    return nde_concat(ctx, 2, parts, 1);
}
static double pendulum_energy(nde_ctx *ctx, nde_tensor *z) {
    double q = nde_tensor_item(ctx, z, 0), p = nde_tensor_item(ctx, z, 1);
    return 0.5 * p * p - cos(q);
}
static void test_symplectic(void) {
    nde_ctx *ctx = new_ctx();
    nde_real zv[2] = {1.2, 0.0};
    int64_t shp[2] = {1, 2};
    nde_tensor *z0 = nde_tensor_from(ctx, 2, shp, zv), *ys[1001];
    double ts[1001], hs[4], err[4], ref_q, ref_p, e0 = pendulum_energy(ctx, z0), drift_lf = 0, drift_100 = 0, drift_euler;
    int k, i, mth;
    nde_solve_options o = nde_solve_options_default();
    nde_tensor *ref[2];
    double rts[2] = {0.0, 3.0};
    o.rtol = 1e-12; o.atol = 1e-12;
    CHECK(nde_solve(ctx, pendulum, NULL, z0, 2, rts, &o, NULL) == NDE_ERR_ARG);   /* (NULL solution) */
    nde_ctx_clear_error(ctx);
    {
        nde_solution sol;
        nde_solve(ctx, pendulum, NULL, z0, 2, rts, &o, &sol);
        ref[1] = sol.ys[1];
        ref_q = nde_tensor_item(ctx, ref[1], 0); ref_p = nde_tensor_item(ctx, ref[1], 1);
        nde_solution_free(ctx, &sol);
    }
    for (mth = 0; mth < 2; mth++) {
        for (k = 0; k < 4; k++) {
            nde_tensor *out[2];
            double h = 0.1 / (1 << k);
            CHECK(nde_symplectic_solve(ctx, pendulum, NULL, z0, 2, rts, h, mth ? NDE_LEAPFROG : NDE_SYMPLECTIC_EULER, out) == NDE_OK);
            hs[k] = h;
            err[k] = fabs(nde_tensor_item(ctx, out[1], 0) - ref_q) + fabs(nde_tensor_item(ctx, out[1], 1) - ref_p);
        }
        printf("  %s order %.3f\n", mth ? "leapfrog" : "symplectic euler", slope(4, hs, err));
#ifdef NDE_DOUBLE
        CHECK_NEAR(slope(4, hs, err), mth ? 2.0 : 1.0, 0.2, 0);
#else
        CHECK_NEAR(slope(3, hs, err), mth ? 2.0 : 1.0, 0.3, 0);
#endif
    }
    /* energy over t in [0, 1000] with h = 0.1: leapfrog's error stays O(h^2)
       and does not grow after t = 100; explicit Euler's (order 1 too) drifts */
    for (i = 0; i <= 1000; i++) ts[i] = (double)i;
    CHECK(nde_symplectic_solve(ctx, pendulum, NULL, z0, 1001, ts, 0.1, NDE_LEAPFROG, ys) == NDE_OK);
    for (i = 0; i <= 1000; i++) {
        double d = fabs(pendulum_energy(ctx, ys[i]) - e0);
        if (d > drift_lf) drift_lf = d;
        if (i == 100) drift_100 = drift_lf;
    }
    {
        nde_solution sol;
        o.method = NDE_EULER; o.step_size = 0.1;
        nde_solve(ctx, pendulum, NULL, z0, 101, ts, &o, &sol);
        drift_euler = fabs(pendulum_energy(ctx, sol.ys[100]) - e0);
        nde_solution_free(ctx, &sol);
    }
    printf("  energy error, h = 0.1: leapfrog max %.2e over [0, 100], %.2e over [0, 1000]; euler %.2e at t = 100\n",
           drift_100, drift_lf, drift_euler);
    CHECK(drift_lf < 0.2 * 0.1 * 0.1);
    CHECK(drift_lf < 1.2 * drift_100);
    CHECK(drift_euler > 100 * drift_lf);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    /* bad input */
    {
        nde_real odd[3] = {1, 2, 3}; int64_t s3[2] = {1, 3};
        CHECK(nde_symplectic_solve(ctx, pendulum, NULL, nde_tensor_from(ctx, 2, s3, odd), 2, rts, 0.1, NDE_LEAPFROG, ys) == NDE_ERR_SHAPE);
        nde_ctx_clear_error(ctx);
        CHECK(nde_symplectic_solve(ctx, pendulum, NULL, z0, 2, rts, 0.0, NDE_LEAPFROG, ys) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- bad input */
static void test_sde_bad_input(void) {
    nde_ctx *ctx = new_ctx();
    gbm p = {1.0, 0.5};
    nde_sde sde;
    nde_sde_options o = nde_sde_options_default();
    int64_t shp[2] = {4, 2};
    double ts[2] = {0.0, 1.0}, bad_ts[2] = {1.0, 0.0};
    nde_tensor *z0 = nde_tensor_full(ctx, 2, shp, NDE_R(1.0)), *ys[2];
    nde_sde_method m;
    memset(&sde, 0, sizeof sde);
    sde.drift = gbm_drift; sde.diffusion = gbm_diffusion; sde.user = &p; sde.type = NDE_SDE_STRATONOVICH;
    o.dt = 0.1;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_UNSUPPORTED);   /* euler on Stratonovich */
    CHECK_MSG(nde_ctx_message(ctx), "Stratonovich");
    nde_ctx_clear_error(ctx);
    sde.type = NDE_SDE_ITO; o.method = NDE_SDE_SRA1;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "additive");
    nde_ctx_clear_error(ctx);
    o.method = NDE_SDE_REVERSIBLE_HEUN;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_UNSUPPORTED);
    nde_ctx_clear_error(ctx);
    o.method = NDE_SDE_EULER; o.dt = 0;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "dt");
    nde_ctx_clear_error(ctx);
    o.dt = 0.1;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, bad_ts, &o, ys) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "increasing");
    nde_ctx_clear_error(ctx);
    sde.diffusion = NULL;
    CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_ARG);
    nde_ctx_clear_error(ctx);
    sde.diffusion = gbm_diffusion;
    {   /* a path of the wrong size, a path too short */
        nde_brownian bm; int64_t n = 3;
        nde_brownian_init(ctx, &bm, 0.0, 1.0, 1, &n, 0.01, 1);
        o.bm = &bm;
        CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_SHAPE);
        nde_ctx_clear_error(ctx);
        nde_brownian_free(&bm);
        nde_brownian_init(ctx, &bm, 0.0, 0.5, 2, shp, 0.01, 1);
        CHECK(nde_sde_solve(ctx, &sde, z0, 2, ts, &o, ys) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "cover");
        nde_ctx_clear_error(ctx);
        {
            double w[8];
            CHECK(nde_brownian_query(ctx, &bm, 0.0, 0.7, w, NULL) == NDE_ERR_ARG);
            nde_ctx_clear_error(ctx);
        }
        nde_brownian_free(&bm);
        o.bm = NULL;
        CHECK(nde_brownian_init(ctx, &bm, 1.0, 1.0, 2, shp, 0.01, 1) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
        CHECK(nde_brownian_init(ctx, &bm, 0.0, 1.0, 2, shp, 0.0, 1) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_sde_method_from_name(ctx, "milstein", &m) == NDE_OK && m == NDE_SDE_MILSTEIN);
    CHECK(nde_sde_method_from_name(ctx, "srk", &m) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "sra1");
    nde_ctx_clear_error(ctx);
    nde_ctx_free(ctx);
}

int main(void) {
    test_brownian_reproducible();
    test_brownian_statistics();
    test_gbm_orders();
    test_additive_orders();
    test_scalar_noise();
    test_sde_gradients();
    test_sde_adjoint();
    test_sde_memory();
    test_sde_bad_input();
    test_symplectic();
    return nde_test_finish("test_zoo");
}
