/* tests/test_zoo.c - the model zoo (nde_zoo.h) and neural SDEs (nde_solvers.h):
   the Brownian tree (reproducible, order-independent, exact statistics at
   dyadic points), SDE convergence orders on geometric Brownian motion (strong
   and weak), SRA1 on additive noise, scalar noise, gradients through the
   solver and the reversible adjoint against finite differences, constant
   memory off the tape; the symplectic integrators; each zoo model's defining
   property (augmented dimensions start at zero, Galerkin weights are the basis
   expansion, the HNN conserves its learned energy along leapfrog, the LNN
   reproduces Euler-Lagrange, the CNF log-density is the change of variables,
   per-sample spans, Parareal reproduces the fine solve), the CSR op's
   backward against finite differences, and bad input. */
#define NDE_IMPLEMENTATION
#include "../nde_zoo.h"
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

/* ---------------------------------------------------------------- Ito <-> Stratonovich
   Ito GBM dX = l X dt + s X dW converted to Stratonovich (drift (l - s^2/2) X)
   and solved by the Stratonovich-only methods converges to the Ito solution
   exp((l - s^2/2) t + s W) at strong order 1; a Stratonovich GBM converted to
   Ito converges under Euler-Maruyama (0.5) and Milstein (1) to exp(l t + s W);
   the round trip gives the original drift; the reversible adjoint through the
   converted drift equals backpropagation. */
static void convert_errors(const nde_sde *sde, nde_sde_method method, int ito_exact, double *hs, double *err) {
    nde_ctx *ctx = new_ctx();
    const double lambda = 2.0, sigma = 1.0;
    nde_brownian bm;
    int64_t shp[2] = {PATHS / 4, 1}, n = PATHS / 4, e;
    double *wT = (double *)malloc((size_t)n * sizeof(double));
    nde_real *y = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    int k;
    nde_brownian_init(ctx, &bm, 0.0, 1.0, 2, shp, ldexp(1.0, -9), 404);
    nde_brownian_query(ctx, &bm, 0.0, 1.0, wT, NULL);
    for (k = 5; k <= 9; k++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_sde_options o = nde_sde_options_default();
        double ts[2] = {0.0, 1.0}, se = 0;
        nde_tensor *ys[2];
        o.method = method; o.dt = ldexp(1.0, -k); o.bm = &bm;
        CHECK(nde_sde_solve(ctx, sde, nde_tensor_full(ctx, 2, shp, NDE_R(1.0)), 2, ts, &o, ys) == NDE_OK);
        nde_tensor_to_host(ctx, ys[1], y);
        for (e = 0; e < n; e++)
            se += fabs((double)y[e] - exp((ito_exact ? lambda - 0.5 * sigma * sigma : lambda) + sigma * wT[e]));
        hs[k - 5] = o.dt; err[k - 5] = se / (double)n;
        nde_ctx_reset(ctx, m);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_brownian_free(&bm);
    free(wT); free(y);
    nde_ctx_free(ctx);
}
static void test_sde_convert(void) {
    gbm p = {2.0, 1.0};
    nde_sde ito, strat;
    nde_sde_conversion to_strat, to_ito, back;
    nde_ctx *ctx = new_ctx();
    double hs[5], err[5], s;
    memset(&ito, 0, sizeof ito);
    ito.drift = gbm_drift; ito.diffusion = gbm_diffusion; ito.diffusion_jet = gbm_diffusion_jet; ito.user = &p;
    ito.type = NDE_SDE_ITO; ito.noise = NDE_NOISE_DIAGONAL;
    strat = ito; strat.type = NDE_SDE_STRATONOVICH;
    CHECK(nde_sde_convert(ctx, &ito, NDE_SDE_STRATONOVICH, &to_strat) == NDE_OK);
    CHECK(to_strat.sde.type == NDE_SDE_STRATONOVICH);
    {   /* drift (l - s^2/2) x at x = 1.5; the round trip gives l x back */
        nde_tensor *x = nde_tensor_full(ctx, 2, (int64_t[]){1, 1}, NDE_R(1.5)), *t = nde_tensor_scalar(ctx, 0);
        CHECK_NEAR(nde_tensor_item(ctx, to_strat.sde.drift(ctx, t, x, to_strat.sde.user), 0), (2.0 - 0.5) * 1.5, 1e-6, 0);
        CHECK(nde_sde_convert(ctx, &to_strat.sde, NDE_SDE_ITO, &back) == NDE_OK);
        CHECK_NEAR(nde_tensor_item(ctx, back.sde.drift(ctx, t, x, back.sde.user), 0), 2.0 * 1.5, 1e-6, 0);
        CHECK_NEAR(nde_tensor_item(ctx, back.sde.diffusion(ctx, t, x, back.sde.user), 0), 1.5, 1e-6, 0);
    }
    convert_errors(&to_strat.sde, NDE_SDE_REVERSIBLE_HEUN, 1, hs, err);
    s = slope(5, hs, err);
    printf("  ito gbm as stratonovich: reversible heun strong order %.3f (error %.2e at h = 2^-9)\n", s, err[4]);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    convert_errors(&to_strat.sde, NDE_SDE_EULER_HEUN, 1, hs, err);
    s = slope(5, hs, err);
    printf("  ito gbm as stratonovich: euler-heun strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    convert_errors(&strat, NDE_SDE_EULER_HEUN, 1, hs, err + 0);   /* unconverted: the wrong process */
    CHECK(err[4] > 1.0);
    CHECK(nde_sde_convert(ctx, &strat, NDE_SDE_ITO, &to_ito) == NDE_OK);
    convert_errors(&to_ito.sde, NDE_SDE_EULER, 0, hs, err);
    s = slope(5, hs, err);
    printf("  stratonovich gbm as ito: euler-maruyama strong order %.3f\n", s);
    CHECK_NEAR(s, 0.5, 0.3, 0);
    convert_errors(&to_ito.sde, NDE_SDE_MILSTEIN, 0, hs, err);
    s = slope(5, hs, err);
    printf("  stratonovich gbm as ito: milstein strong order %.3f\n", s);
    CHECK_NEAR(s, 1.0, 0.3, 0);
    {   /* additive noise and the same type: copies; bad input */
        nde_sde add = ito, nojet = ito;
        nde_sde_conversion c;
        add.noise = NDE_NOISE_ADDITIVE; add.diffusion_jet = NULL;
        CHECK(nde_sde_convert(ctx, &add, NDE_SDE_STRATONOVICH, &c) == NDE_OK && c.sde.drift == gbm_drift);
        CHECK(nde_sde_convert(ctx, &ito, NDE_SDE_ITO, &c) == NDE_OK && c.sde.drift == gbm_drift);
        nojet.diffusion_jet = NULL;
        CHECK(nde_sde_convert(ctx, &nojet, NDE_SDE_STRATONOVICH, &c) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "diffusion_jet");
        nde_ctx_clear_error(ctx);
        CHECK(nde_sde_convert(ctx, NULL, NDE_SDE_ITO, &c) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
#ifdef NDE_DOUBLE
    {   /* an Ito model trained through the reversible adjoint: gradients equal backprop */
        nde_sde sde;
        nde_sde_conversion c;
        grad_model gm;
        nde_sde_options o = nde_sde_options_default();
        int64_t two = 2, shp[2] = {6, 3};
        nde_real th[2] = {0.3, 0.7}, zv[18];
        double ts[3] = {0.0, 0.5, 1.0}, g_direct[2];
        nde_tensor *z0, *loss;
        int i;
        ctx = new_ctx();
        for (i = 0; i < 18; i++) zv[i] = (nde_real)(0.2 + 0.1 * i - 0.004 * i * i);
        gm.theta = nde_param_new(ctx, "theta", 1, &two);
        nde_tensor_set_host(ctx, gm.theta, th);
        memset(&sde, 0, sizeof sde);
        sde.drift = gm_drift; sde.diffusion = gm_diffusion; sde.diffusion_jet = gm_diffusion_jet; sde.user = &gm;
        sde.type = NDE_SDE_ITO;
        CHECK(nde_sde_convert(ctx, &sde, NDE_SDE_STRATONOVICH, &c) == NDE_OK);
        o.method = NDE_SDE_REVERSIBLE_HEUN; o.dt = 1.0 / 32; o.seed = 6;
        z0 = nde_tensor_from(ctx, 2, shp, zv);
        loss = nde_mean(ctx, nde_square(ctx, nde_sdeint(ctx, &c.sde, z0, 3, ts, &o)));
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        for (i = 0; i < 2; i++) g_direct[i] = nde_params_grad(ctx)[i];
        loss = nde_mean(ctx, nde_square(ctx, nde_sdeint_adjoint(ctx, &c.sde, z0, 3, ts, &o)));
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        printf("  converted ito model, reversible adjoint vs backprop: dtheta %.12g vs %.12g\n", nde_params_grad(ctx)[1], g_direct[1]);
        for (i = 0; i < 2; i++) CHECK_NEAR(nde_params_grad(ctx)[i], g_direct[i], 1e-9, 1e-8);
        CHECK(fabs(g_direct[1]) > 1e-3);
        CHECK(nde_ctx_status(ctx) == NDE_OK);
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

/* ================================================================ the zoo */
static nde_tensor *mat(nde_ctx *ctx, int64_t r, int64_t c, const double *v) {
    nde_real buf[256]; int64_t i, shp[2];
    for (i = 0; i < r * c; i++) buf[i] = (nde_real)v[i];
    shp[0] = r; shp[1] = c;
    return nde_tensor_from(ctx, 2, shp, buf);
}

/* the QUICK START of nde_zoo.h, verbatim */
static nde_jet *qs_energy(nde_ctx *ctx, nde_jet *x, void *user) {
    return nde_jet_mlp_forward(ctx, (nde_mlp *)user, x);
}
static int quickstart_zoo(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp net;
    int64_t widths[3] = {2, 32, 1}, zs[2] = {16, 2};
    nde_mlp_init(ctx, &net, "H", 3, widths, NDE_ACT_TANH, 1);
    nde_hnn hnn = {qs_energy, &net, 1};
    nde_optimizer opt = nde_adam(1e-2);
    for (int it = 0; it < 50; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *z = nde_tensor_randn(ctx, 2, zs, 7, it);
        nde_tensor *pq[2] = {nde_slice(ctx, z, 1, 1, 2), nde_neg(ctx, nde_slice(ctx, z, 1, 0, 1))};
        nde_tensor *target = nde_concat(ctx, 2, pq, 1);
        nde_tensor *loss = nde_mse_loss(ctx, nde_hnn_field(ctx, NULL, z, &hnn), target);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
    }
    int bad = nde_ctx_status(ctx) != NDE_OK;
    nde_ctx_free(ctx);
    return bad;
}

/* ---------------------------------------------------------------- CSR op */
static void test_csr(void) {
    nde_ctx *ctx = new_ctx();
    /* A (3 x 4) = [[1 0 2 0], [0 0 0 0], [0 3 0 4]] */
    int64_t rp[4] = {0, 2, 2, 4}, ci[4] = {0, 2, 1, 3}, nnz = 4, bad_ci[4] = {0, 2, 1, 4};
    double vals[4] = {1, 2, 3, 4}, xv[8] = {1, -1, 2, 0.5, -3, 1, 0.25, 2};
    nde_csr a;
    nde_tensor *v, *x, *y;
    CHECK(nde_csr_init(ctx, &a, 3, 4, 4, rp, ci) == NDE_OK);
    v = nde_tensor_from(ctx, 1, &nnz, (nde_real[]){1, 2, 3, 4});
    x = mat(ctx, 4, 2, xv);
    y = nde_csr_matmul(ctx, &a, v, x);
    CHECK(y && y->shape[0] == 3 && y->shape[1] == 2);
    CHECK_NEAR(nde_tensor_item(ctx, y, 0), 1 * 1 + 2 * -3, 1e-6, 0);
    CHECK_NEAR(nde_tensor_item(ctx, y, 1), 1 * -1 + 2 * 1, 1e-6, 0);
    CHECK_NEAR(nde_tensor_item(ctx, y, 2), 0, 0, 0);
    CHECK_NEAR(nde_tensor_item(ctx, y, 4), 3 * 2 + 4 * 0.25, 1e-6, 0);
    CHECK_NEAR(nde_tensor_item(ctx, y, 5), 3 * 0.5 + 4 * 2, 1e-6, 0);
#ifdef NDE_DOUBLE
    {   /* backward against central differences: d/dx and d/dvalues of sum(w * (A x)) */
        nde_tensor *w = nde_tensor_randn(ctx, 2, (int64_t[]){3, 2}, 4, 0), *loss;
        double gx[8], gv[4];
        int i;
        x->requires_grad = 1; v->requires_grad = 1;
        loss = nde_sum(ctx, nde_mul(ctx, nde_csr_matmul(ctx, &a, v, x), w));
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        for (i = 0; i < 8; i++) gx[i] = x->grad[i];
        for (i = 0; i < 4; i++) gv[i] = v->grad[i];
        x->requires_grad = 0; v->requires_grad = 0;
        for (i = 0; i < 12; i++) {
            nde_real *p = i < 8 ? &x->data[i] : &v->data[i - 8], keep = *p;
            double lp, lm;
            *p = keep + 1e-6; lp = nde_tensor_item(ctx, nde_sum(ctx, nde_mul(ctx, nde_csr_matmul(ctx, &a, v, x), w)), 0);
            *p = keep - 1e-6; lm = nde_tensor_item(ctx, nde_sum(ctx, nde_mul(ctx, nde_csr_matmul(ctx, &a, v, x), w)), 0);
            *p = keep;
            CHECK_NEAR(i < 8 ? gx[i] : gv[i - 8], (lp - lm) / 2e-6, 1e-8, 1e-7);
        }
    }
#endif
    (void)vals;
    /* bad input */
    CHECK(nde_csr_init(ctx, &a, 3, 4, 4, rp, bad_ci) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "col_idx[3]");
    nde_ctx_clear_error(ctx);
    CHECK(nde_csr_init(ctx, &a, 3, 4, 4, rp, ci) == NDE_OK);
    CHECK(nde_csr_matmul(ctx, &a, v, mat(ctx, 3, 2, xv)) == NULL && nde_ctx_status(ctx) == NDE_ERR_SHAPE);
    nde_ctx_clear_error(ctx);
    {   /* A_hat = D^-1/2 (A + I) D^-1/2 of the path 0 - 1 - 2 */
        int64_t edges[4] = {0, 1, 1, 2}, dup[4] = {0, 1, 1, 0};
        nde_tensor *ah = NULL, *I3 = mat(ctx, 3, 3, (double[]){1, 0, 0, 0, 1, 0, 0, 0, 1}), *dense;
        double expect[9] = {1.0 / 2, 1.0 / sqrt(6.0), 0, 1.0 / sqrt(6.0), 1.0 / 3, 1.0 / sqrt(6.0), 0, 1.0 / sqrt(6.0), 1.0 / 2};
        int i;
        CHECK(nde_gcn_adjacency(ctx, 3, 2, edges, &a, &ah) == NDE_OK);
        CHECK(a.nnz == 7);
        dense = nde_csr_matmul(ctx, &a, ah, I3);
        for (i = 0; i < 9; i++) CHECK_NEAR(nde_tensor_item(ctx, dense, i), expect[i], 1e-6, 0);
        CHECK(nde_gcn_adjacency(ctx, 3, 2, dup, &a, &ah) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "twice");
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- augmentation */
static nde_tensor *ho_minus_x(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_neg(ctx, nde_slice(ctx, z, 1, 0, 1)); }
static void test_augmentation(void) {
    nde_ctx *ctx = new_ctx();
    double xv[6] = {1, 2, 3, 4, 5, 6};
    nde_tensor *x = mat(ctx, 3, 2, xv), *a = nde_augment_zeros(ctx, x, 3), *img, *aimg;
    nde_augmenter aug;
    int i, zero = 1, same = 1;
    CHECK(a && a->shape[0] == 3 && a->shape[1] == 5);
    for (i = 0; i < 3 && a; i++) {
        int j;
        for (j = 0; j < 2; j++) if (nde_tensor_item(ctx, a, i * 5 + j) != nde_tensor_item(ctx, x, i * 2 + j)) same = 0;
        for (j = 2; j < 5; j++) if (nde_tensor_item(ctx, a, i * 5 + j) != 0) zero = 0;
    }
    CHECK(same);
    CHECK(zero);                               /* augmented dimensions start at zero */
    img = nde_tensor_randn(ctx, 4, (int64_t[]){2, 3, 4, 4}, 1, 0);
    aimg = nde_augment_zeros(ctx, img, 2);     /* extra channels for NCHW */
    CHECK(aimg && aimg->shape[1] == 5 && nde_tensor_item(ctx, aimg, 3 * 16 + 7) == 0 && nde_tensor_item(ctx, aimg, 5 * 16 + 1) == nde_tensor_item(ctx, img, 3 * 16 + 1));
    CHECK(nde_augmenter_init(ctx, &aug, "aug", 2, 4, 3) == NDE_OK);
    {
        nde_tensor *y = nde_augmenter_forward(ctx, &aug, x), *lx = nde_linear_forward(ctx, &aug.layer, x);
        CHECK(y && y->shape[1] == 6 && nde_tensor_item(ctx, y, 6 + 1) == nde_tensor_item(ctx, x, 3));
        CHECK(y && nde_tensor_item(ctx, y, 6 + 3) == nde_tensor_item(ctx, lx, 4 + 1));
    }
    {
        nde_tensor *dc = nde_depth_cat(ctx, nde_tensor_scalar(ctx, NDE_R(0.25)), x), *ctl = nde_data_control(ctx, x, x);
        CHECK(dc && dc->shape[1] == 3 && nde_tensor_item(ctx, dc, 2) == NDE_R(0.25) && nde_tensor_item(ctx, dc, 8) == NDE_R(0.25));
        CHECK(ctl && ctl->shape[1] == 4 && nde_tensor_item(ctx, ctl, 3) == nde_tensor_item(ctx, x, 1));
    }
    {   /* second order: x'' = -x, x(0) = 1, x'(0) = 0 -> cos t */
        nde_higher_order ho;
        double ts[2] = {0, 2};
        nde_solution sol;
        ho.order = 2; ho.dim = 1; ho.highest = ho_minus_x; ho.user = NULL;
        CHECK(nde_solve(ctx, nde_higher_order_field, &ho, mat(ctx, 1, 2, (double[]){1, 0}), 2, ts, NULL, &sol) == NDE_OK);
        CHECK_NEAR(nde_tensor_item(ctx, sol.ys[1], 0), cos(2.0), 1e-5, 0);
        CHECK_NEAR(nde_tensor_item(ctx, sol.ys[1], 1), -sin(2.0), 1e-5, 0);
        nde_solution_free(ctx, &sol);
        ho.order = 3;
        CHECK(nde_higher_order_field(ctx, NULL, mat(ctx, 1, 2, (double[]){1, 0}), &ho) == NULL && nde_ctx_status(ctx) == NDE_ERR_SHAPE);
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_augment_zeros(ctx, x, -1) == NULL && nde_ctx_status(ctx) == NDE_ERR_ARG);
    nde_ctx_clear_error(ctx);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- Galerkin */
static double basis_ref(const nde_galerkin_basis *b, int k, double t) {
    switch (b->kind) {
    case NDE_BASIS_FOURIER: {
        int f = (k + 1) / 2; double w = 6.283185307179586 * f / b->period;
        return k == 0 ? 1.0 : (k % 2 ? cos(w * t) : sin(w * t));
    }
    case NDE_BASIS_POLYNOMIAL: return pow(t, k);
    case NDE_BASIS_CHEBYSHEV: { double s = 2 * (t - b->lo) / (b->hi - b->lo) - 1; return cos(k * acos(s)); }
    case NDE_BASIS_RBF: { double c = b->lo + (b->hi - b->lo) * k / (b->n - 1); return exp(-b->gamma * (t - c) * (t - c)); }
    }
    return NAN;
}
static void test_galerkin(void) {
    nde_ctx *ctx = new_ctx();
    int kind;
    for (kind = 0; kind < 4; kind++) {
        nde_galerkin_basis b = nde_galerkin_basis_make((nde_basis_kind)kind, 5);
        nde_gal_linear l;
        nde_gal_conv2d cv;
        double t = 0.3;
        nde_tensor *tt = nde_tensor_scalar(ctx, (nde_real)t), *phi, *w, *bias = NULL, *cw;
        nde_real *cwh, *cbh;
        int k, i, ok = 1, okb = 1, okc = 1;
        char nm[32];
        if (kind == NDE_BASIS_FOURIER) b.period = 2.0;
        if (kind == NDE_BASIS_CHEBYSHEV) { b.lo = -1.0; b.hi = 2.0; }
        phi = nde_galerkin_basis_eval(ctx, &b, tt);
        for (k = 0; k < 5; k++) CHECK_NEAR(nde_tensor_item(ctx, phi, k), basis_ref(&b, k, t), 1e-6, 1e-6);
        snprintf(nm, sizeof nm, "gal%d", kind);
        CHECK(nde_gal_linear_init(ctx, &l, nm, 3, 2, b, 10 + kind) == NDE_OK);
        w = nde_gal_linear_weight(ctx, &l, tt, &bias);
        /* W(t) = sum_k phi_k(t) W_k from the coefficients, on the host */
        cwh = nde_params_data(ctx) + nde_param_offset(ctx, l.coeff_w->param);
        cbh = nde_params_data(ctx) + nde_param_offset(ctx, l.coeff_b->param);
        for (i = 0; i < 6; i++) {
            double e = 0; for (k = 0; k < 5; k++) e += basis_ref(&b, k, t) * cwh[k * 6 + i];
            if (fabs(nde_tensor_item(ctx, w, i) - e) > 1e-5) ok = 0;
        }
        for (i = 0; i < 2; i++) {
            double e = 0; for (k = 0; k < 5; k++) e += basis_ref(&b, k, t) * cbh[k * 2 + i];
            if (fabs(nde_tensor_item(ctx, bias, i) - e) > 1e-5) okb = 0;
        }
        CHECK(ok && w->shape[0] == 2 && w->shape[1] == 3);
        CHECK(okb);
        {   /* forward = x W(t)^T + b(t) */
            nde_tensor *x = mat(ctx, 1, 3, (double[]){0.5, -1, 2}), *y = nde_gal_linear_forward(ctx, &l, tt, x);
            double e = nde_tensor_item(ctx, bias, 1);
            for (i = 0; i < 3; i++) e += nde_tensor_item(ctx, w, 3 + i) * nde_tensor_item(ctx, x, i);
            CHECK_NEAR(nde_tensor_item(ctx, y, 1), e, 1e-5, 0);
        }
        snprintf(nm, sizeof nm, "galconv%d", kind);
        CHECK(nde_gal_conv2d_init(ctx, &cv, nm, 2, 3, 3, 1, 1, b, 20 + kind) == NDE_OK);
        cw = nde_gal_conv2d_weight(ctx, &cv, tt, NULL);
        CHECK(cw && cw->ndim == 4 && cw->shape[0] == 3 && cw->shape[1] == 2 && cw->shape[2] == 3);
        cwh = nde_params_data(ctx) + nde_param_offset(ctx, cv.coeff_w->param);
        for (i = 0; i < 54; i += 7) {
            double e = 0; for (k = 0; k < 5; k++) e += basis_ref(&b, k, t) * cwh[k * 54 + i];
            if (fabs(nde_tensor_item(ctx, cw, i) - e) > 1e-5) okc = 0;
        }
        CHECK(okc);
        {
            nde_tensor *img = nde_tensor_randn(ctx, 4, (int64_t[]){1, 2, 5, 5}, 3, 1), *y = nde_gal_conv2d_forward(ctx, &cv, tt, img);
            CHECK(y && y->shape[1] == 3 && y->shape[2] == 5);
        }
    }
    {
        nde_galerkin_basis b = nde_galerkin_basis_make(NDE_BASIS_RBF, 3);
        b.hi = b.lo;
        CHECK(nde_galerkin_basis_eval(ctx, &b, nde_tensor_scalar(ctx, 0)) == NULL && nde_ctx_status(ctx) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- HNN */
typedef struct sep_energy { nde_mlp T, V; } sep_energy;
/* H = T(p) + V(q), two MLPs: a separable learned energy */
static nde_jet *sep_H(nde_ctx *ctx, nde_jet *x, void *u) {
    sep_energy *e = (sep_energy *)u;
    return nde_jet_add(ctx, nde_jet_mlp_forward(ctx, &e->T, nde_jet_slice(ctx, x, 1, 1, 2)),
                       nde_jet_mlp_forward(ctx, &e->V, nde_jet_slice(ctx, x, 1, 0, 1)));
}
static nde_jet *osc_H(nde_ctx *ctx, nde_jet *x, void *u) {   /* (q^2 + p^2) / 2 */
    (void)u; return nde_jet_scale(ctx, nde_jet_sum_axis(ctx, nde_jet_square(ctx, x), 1, 1), NDE_R(0.5));
}
static void test_hnn(void) {
    nde_ctx *ctx = new_ctx();
    sep_energy e;
    nde_hnn h;
    int64_t w1[3] = {1, 16, 1};
    nde_tensor *z = mat(ctx, 3, 2, (double[]){0.3, -0.2, 1.0, 0.5, -0.7, 0.1}), *f;
    int i;
    CHECK(quickstart_zoo() == 0);
    /* the oscillator: J grad H = (p, -q) */
    h.energy = osc_H; h.user = NULL; h.dim = 1;
    f = nde_hnn_field(ctx, NULL, z, &h);
    for (i = 0; i < 3; i++) {
        CHECK_NEAR(nde_tensor_item(ctx, f, 2 * i), nde_tensor_item(ctx, z, 2 * i + 1), 1e-6, 0);
        CHECK_NEAR(nde_tensor_item(ctx, f, 2 * i + 1), -nde_tensor_item(ctx, z, 2 * i), 1e-6, 0);
    }
    nde_mlp_init(ctx, &e.T, "T", 3, w1, NDE_ACT_TANH, 5);
    nde_mlp_init(ctx, &e.V, "V", 3, w1, NDE_ACT_TANH, 6);
    h.energy = sep_H; h.user = &e;
#ifdef NDE_DOUBLE
    {   /* grad H against central differences */
        nde_tensor *g = nde_energy_grad(ctx, sep_H, &e, z, NULL);
        for (i = 0; i < 6; i++) {
            nde_real keep = z->data[i]; double hp, hm;
            z->data[i] = keep + 1e-6; hp = nde_tensor_item(ctx, nde_hnn_energy(ctx, &h, z), i / 2);
            z->data[i] = keep - 1e-6; hm = nde_tensor_item(ctx, nde_hnn_energy(ctx, &h, z), i / 2);
            z->data[i] = keep;
            CHECK_NEAR(nde_tensor_item(ctx, g, i), (hp - hm) / 2e-6, 1e-8, 1e-7);
        }
    }
    {   /* training differentiates the jet gradient: d/dtheta of a loss on the field */
        nde_tensor *loss = nde_sum(ctx, nde_square(ctx, nde_hnn_field(ctx, NULL, z, &h)));
        nde_real *pd = nde_params_data(ctx);
        int64_t idx[3] = {3, 20, 40};
        double g[3];
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        for (i = 0; i < 3; i++) g[i] = nde_params_grad(ctx)[idx[i]];
        for (i = 0; i < 3; i++) {
            nde_real keep = pd[idx[i]]; double lp, lm;
            pd[idx[i]] = keep + 1e-6; lp = nde_tensor_item(ctx, nde_sum(ctx, nde_square(ctx, nde_hnn_field(ctx, NULL, z, &h))), 0);
            pd[idx[i]] = keep - 1e-6; lm = nde_tensor_item(ctx, nde_sum(ctx, nde_square(ctx, nde_hnn_field(ctx, NULL, z, &h))), 0);
            pd[idx[i]] = keep;
            CHECK_NEAR(g[i], (lp - lm) / 2e-6, 1e-7, 1e-6);
        }
    }
#endif
    {   /* the learned energy is conserved along leapfrog: |H(t) - H(0)| = O(h^2), no drift */
        double ts[51], dev[2] = {0, 0};
        nde_tensor *ys[51], *z0 = mat(ctx, 1, 2, (double[]){0.8, 0.3});
        double h0;
        int r;
        for (i = 0; i <= 50; i++) ts[i] = 4.0 * i;
        h0 = nde_tensor_item(ctx, nde_hnn_energy(ctx, &h, z0), 0);
        for (r = 0; r < 2; r++) {
            CHECK(nde_symplectic_solve(ctx, nde_hnn_field, &h, z0, 51, ts, r ? 0.025 : 0.05, NDE_LEAPFROG, ys) == NDE_OK);
            for (i = 0; i <= 50; i++) {
                double d = fabs(nde_tensor_item(ctx, nde_hnn_energy(ctx, &h, ys[i]), 0) - h0);
                if (d > dev[r]) dev[r] = d;
            }
        }
        printf("  HNN learned energy along leapfrog, t in [0, 200]: max |H - H0| %.2e (h = 0.05), %.2e (h = 0.025)\n", dev[0], dev[1]);
        CHECK(dev[0] < 2e-3);
#ifdef NDE_DOUBLE
        CHECK_NEAR(dev[0] / dev[1], 4.0, 1.0, 0);     /* second order */
#endif
    }
    CHECK(nde_hnn_field(ctx, NULL, mat(ctx, 1, 3, (double[]){1, 2, 3}), &h) == NULL && nde_ctx_status(ctx) == NDE_ERR_SHAPE);
    nde_ctx_clear_error(ctx);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- LNN
   L = 1/2 v^T A v - 1/2 q^T K q + q^T B v (d = 2): Euler-Lagrange gives
   A a = -K q + B v - B^T v. And the pendulum L = v^2/2 + cos q: a = -sin q. */
static const double LA[4] = {2.0, 0.5, 0.5, 1.0}, LK[4] = {1.0, 0.2, 0.2, 3.0}, LB[4] = {0.3, -0.4, 0.7, 0.1};
static nde_jet *quad_L(nde_ctx *ctx, nde_jet *x, void *u) {
    nde_jet *q = nde_jet_slice(ctx, x, 1, 0, 2), *v = nde_jet_slice(ctx, x, 1, 2, 4);
    int64_t s2[2] = {2, 2};
    nde_real a[4], k[4], b[4]; int i;
    nde_jet *A, *K, *B, *t1, *t2, *t3;
    (void)u;
    for (i = 0; i < 4; i++) { a[i] = (nde_real)LA[i]; k[i] = (nde_real)LK[i]; b[i] = (nde_real)LB[i]; }
    A = nde_jet_const(ctx, nde_tensor_from(ctx, 2, s2, a), 0);
    K = nde_jet_const(ctx, nde_tensor_from(ctx, 2, s2, k), 0);
    B = nde_jet_const(ctx, nde_tensor_from(ctx, 2, s2, b), 0);
    t1 = nde_jet_sum_axis(ctx, nde_jet_mul(ctx, nde_jet_matmul(ctx, v, A, 0, 0), v), 1, 1);   /* v^T A v (A symmetric) */
    t2 = nde_jet_sum_axis(ctx, nde_jet_mul(ctx, nde_jet_matmul(ctx, q, K, 0, 0), q), 1, 1);
    t3 = nde_jet_sum_axis(ctx, nde_jet_mul(ctx, nde_jet_matmul(ctx, v, B, 0, 1), q), 1, 1);  /* q^T B v */
    return nde_jet_add(ctx, nde_jet_scale(ctx, nde_jet_sub(ctx, t1, t2), NDE_R(0.5)), t3);
}
static nde_jet *pend_L(nde_ctx *ctx, nde_jet *x, void *u) {
    (void)u;
    return nde_jet_add(ctx, nde_jet_scale(ctx, nde_jet_square(ctx, nde_jet_slice(ctx, x, 1, 1, 2)), NDE_R(0.5)),
                       nde_jet_cos(ctx, nde_jet_slice(ctx, x, 1, 0, 1)));
}
static void test_lnn(void) {
    nde_ctx *ctx = new_ctx();
    nde_lnn l;
    nde_tensor *z = mat(ctx, 2, 4, (double[]){0.3, -0.2, 1.0, 0.5, -0.7, 0.1, 0.4, -1.2}), *a;
    int r;
    l.lagrangian = quad_L; l.user = NULL; l.dim = 2;
    a = nde_lnn_acceleration(ctx, &l, z);
    CHECK(a && a->shape[0] == 2 && a->shape[1] == 2);
    for (r = 0; r < 2 && a; r++) {
        double q[2], v[2], rhs[2], det = LA[0] * LA[3] - LA[1] * LA[2], e0, e1; int i;
        for (i = 0; i < 2; i++) { q[i] = nde_tensor_item(ctx, z, r * 4 + i); v[i] = nde_tensor_item(ctx, z, r * 4 + 2 + i); }
        for (i = 0; i < 2; i++)   /* -K q + B v - B^T v */
            rhs[i] = -(LK[i * 2] * q[0] + LK[i * 2 + 1] * q[1]) + (LB[i * 2] * v[0] + LB[i * 2 + 1] * v[1]) - (LB[i] * v[0] + LB[2 + i] * v[1]);
        e0 = (LA[3] * rhs[0] - LA[1] * rhs[1]) / det;
        e1 = (-LA[2] * rhs[0] + LA[0] * rhs[1]) / det;
        CHECK_NEAR(nde_tensor_item(ctx, a, r * 2), e0, 1e-5, 1e-5);
        CHECK_NEAR(nde_tensor_item(ctx, a, r * 2 + 1), e1, 1e-5, 1e-5);
    }
    l.lagrangian = pend_L; l.dim = 1;
    {
        nde_tensor *zp = mat(ctx, 3, 2, (double[]){0.5, 1.0, -1.2, 0.0, 2.0, -0.3}), *f = nde_lnn_field(ctx, NULL, zp, &l);
        for (r = 0; r < 3; r++) {
            CHECK_NEAR(nde_tensor_item(ctx, f, 2 * r), nde_tensor_item(ctx, zp, 2 * r + 1), 1e-6, 0);
            CHECK_NEAR(nde_tensor_item(ctx, f, 2 * r + 1), -sin(nde_tensor_item(ctx, zp, 2 * r)), 1e-5, 0);
        }
    }
    {   /* nde_batched_solve on its own */
        nde_tensor *M = mat(ctx, 1, 9, (double[]){4, 1, 0, 1, 3, 1, 0, 1, 2}), *b = mat(ctx, 1, 3, (double[]){1, 2, 3});
        nde_tensor *x = nde_batched_solve(ctx, M, b);
        /* check M x = b */
        CHECK_NEAR(4 * nde_tensor_item(ctx, x, 0) + nde_tensor_item(ctx, x, 1), 1, 1e-5, 0);
        CHECK_NEAR(nde_tensor_item(ctx, x, 0) + 3 * nde_tensor_item(ctx, x, 1) + nde_tensor_item(ctx, x, 2), 2, 1e-5, 0);
        CHECK_NEAR(nde_tensor_item(ctx, x, 1) + 2 * nde_tensor_item(ctx, x, 2), 3, 1e-5, 0);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- CNF */
static const double CA[4] = {-0.5, 1.0, -0.3, 0.2};
static nde_jet *lin_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *u) {   /* z A^T: dz/dt = A z */
    nde_real a[4]; int i; int64_t s2[2] = {2, 2};
    (void)t; (void)u;
    for (i = 0; i < 4; i++) a[i] = (nde_real)CA[i];
    return nde_jet_matmul(ctx, z, nde_jet_const(ctx, nde_tensor_from(ctx, 2, s2, a), 0), 0, 1);
}
static nde_jet *tanh_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *u) {
    (void)t;
    return nde_jet_mlp_forward(ctx, (nde_mlp *)u, z);
}
static void test_cnf(void) {
    nde_ctx *ctx = new_ctx();
    nde_cnf c;
    double T = 1.5, ts[2] = {0.0, 1.5}, trA = CA[0] + CA[3];
    nde_tensor *z0 = mat(ctx, 2, 2, (double[]){0.7, -0.4, 0.1, 1.3}), *s0 = nde_augment_zeros(ctx, z0, 1), *e1, *e2;
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double M[4], detM;
    int i;
    memset(&c, 0, sizeof c);
    c.f = lin_field; c.dim = 2; c.trace = NDE_TRACE_EXACT;
    o.rtol = 1e-10; o.atol = 1e-10;
    CHECK(nde_solve(ctx, nde_cnf_field, &c, s0, 2, ts, &o, &sol) == NDE_OK);
    /* M = exp(A T) column by column from the same solver: D(T) = -log det M = -tr(A) T */
    e1 = nde_solution_stack(ctx, &sol);
    (void)e1;
    {
        nde_solution s1, s2;
        nde_solve(ctx, nde_cnf_field, &c, mat(ctx, 1, 3, (double[]){1, 0, 0}), 2, ts, &o, &s1);
        nde_solve(ctx, nde_cnf_field, &c, mat(ctx, 1, 3, (double[]){0, 1, 0}), 2, ts, &o, &s2);
        M[0] = nde_tensor_item(ctx, s1.ys[1], 0); M[2] = nde_tensor_item(ctx, s1.ys[1], 1);
        M[1] = nde_tensor_item(ctx, s2.ys[1], 0); M[3] = nde_tensor_item(ctx, s2.ys[1], 1);
        nde_solution_free(ctx, &s1); nde_solution_free(ctx, &s2);
    }
    detM = M[0] * M[3] - M[1] * M[2];
    for (i = 0; i < 2; i++) {
        /* change of variables: log p_T(z_T) = log p_0(z_0) - log|det M| with the state's D = -log det M */
        double D = nde_tensor_item(ctx, sol.ys[1], 3 * i + 2);
        double zT0 = nde_tensor_item(ctx, sol.ys[1], 3 * i), zT1 = nde_tensor_item(ctx, sol.ys[1], 3 * i + 1);
        double x0 = (M[3] * zT0 - M[1] * zT1) / detM, x1 = (-M[2] * zT0 + M[0] * zT1) / detM;   /* M^-1 z_T */
        double logp_cov = -0.5 * (x0 * x0 + x1 * x1) - log(6.283185307179586) - log(fabs(detM));
        double logp_cnf = nde_tensor_item(ctx, nde_normal_logpdf(ctx, z0), i) + D;
        CHECK_NEAR(D, -trA * T, 1e-6, 1e-6);
        CHECK_NEAR(logp_cnf, logp_cov, 1e-5, 1e-6);
    }
    nde_solution_free(ctx, &sol);
    {   /* Hutchinson: unbiased for the trace of a nonlinear field (mean over 4000 noise rows) */
        nde_mlp net;
        int64_t w[3] = {2, 8, 2}, n = PATHS;
        nde_rng rng = nde_rng_new(3, 0);
        nde_tensor *one = mat(ctx, 1, 3, (double[]){0.3, -0.5, 0}), *rows, *fe, *fh, *ones;
        double exact, mean = 0, var = 0;
        nde_mlp_init(ctx, &net, "cnf", 3, w, NDE_ACT_TANH, 2);
        c.f = tanh_field; c.user = &net;
        fe = nde_cnf_field(ctx, nde_tensor_scalar(ctx, 0), one, &c);
        exact = -nde_tensor_item(ctx, fe, 2);
        ones = nde_tensor_full(ctx, 2, (int64_t[]){n, 1}, NDE_R(1.0));
        rows = nde_mul(ctx, ones, one);
        c.trace = NDE_TRACE_HUTCHINSON;
        CHECK(nde_cnf_field(ctx, NULL, rows, &c) == NULL && nde_ctx_status(ctx) == NDE_ERR_ARG);   /* no noise drawn */
        nde_ctx_clear_error(ctx);
        CHECK(nde_cnf_draw_noise(ctx, &c, n, &rng) == NDE_OK);
        fh = nde_cnf_field(ctx, nde_tensor_scalar(ctx, 0), rows, &c);
        for (i = 0; i < n; i++) { double v = -nde_tensor_item(ctx, fh, 3 * i + 2); mean += v; var += v * v; }
        mean /= (double)n; var = var / (double)n - mean * mean;
        printf("  hutchinson trace %.4f +- %.4f, exact %.4f\n", mean, sqrt(var / (double)n), exact);
        CHECK_NEAR(mean, exact, 4 * sqrt(var / (double)n) + 1e-6, 0);
        CHECK_NEAR(nde_tensor_item(ctx, fh, 0), nde_tensor_item(ctx, fe, 0), 1e-6, 0);   /* same f */
        /* the same noise at every evaluation: the field is deterministic */
        e2 = nde_cnf_field(ctx, nde_tensor_scalar(ctx, 0), rows, &c);
        CHECK(nde_tensor_item(ctx, e2, 3 * 7 + 2) == nde_tensor_item(ctx, fh, 3 * 7 + 2));
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- per-sample spans, ODE-RNN */
static nde_tensor *cos_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)u; return nde_mul(ctx, z, nde_cos(ctx, t)); }
static nde_tensor *decay_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_scale(ctx, z, NDE_R(-0.5)); }
static void test_per_sample(void) {
    nde_ctx *ctx = new_ctx();
    nde_real t0[4] = {0.0, 0.5, 2.0, 1.0}, t1[4] = {1.0, 3.0, 1.0, 1.0};   /* forward, longer, reversed, empty */
    nde_tensor *z0 = mat(ctx, 4, 2, (double[]){1, 2, 1, -1, 0.5, 1, 3, 3}), *z;
    nde_solve_options o = nde_solve_options_default();
    int i;
    o.rtol = 1e-9; o.atol = 1e-9;
    z = nde_odeint_per_sample(ctx, cos_field, NULL, z0, t0, t1, &o);
    for (i = 0; i < 8 && z; i++)
        CHECK_NEAR(nde_tensor_item(ctx, z, i), nde_tensor_item(ctx, z0, i) * exp(sin(t1[i / 2]) - sin(t0[i / 2])), 1e-6, 1e-6);
    {   /* ODE-RNN: with mask 0 only the ODE acts; one step with mask 1 is the GRU */
        nde_odernn r;
        nde_tensor *h0 = mat(ctx, 2, 3, (double[]){0.1, -0.2, 0.3, 0.5, 0.0, -0.4}), *xs[2], *h, *g;
        nde_real ts[4] = {0.0, 1.0, 0.0, 2.0}, mask0[4] = {0, 0, 0, 0}, mask1[4] = {1, 0, 1, 0};
        xs[0] = mat(ctx, 2, 2, (double[]){1, 2, 3, 4}); xs[1] = xs[0];
        CHECK(nde_gru_init(ctx, &r.cell, "gru", 2, 3, 9) == NDE_OK);
        r.f = decay_field; r.f_user = NULL; r.opts = o;
        h = nde_odernn_forward(ctx, &r, h0, 2, xs, ts, mask0, NULL);
        CHECK_NEAR(nde_tensor_item(ctx, h, 0), 0.1 * exp(-0.5), 1e-6, 0);
        CHECK_NEAR(nde_tensor_item(ctx, h, 5), -0.4 * exp(-1.0), 1e-6, 0);
        h = nde_odernn_forward(ctx, &r, h0, 2, xs, ts, mask1, NULL);
        g = nde_gru_forward(ctx, &r.cell, xs[0], h0);
        CHECK_NEAR(nde_tensor_item(ctx, h, 4), nde_tensor_item(ctx, g, 4) * exp(-1.0), 1e-6, 1e-6);
        {   /* the GRU against PyTorch's formula on the host */
            nde_real *pd = nde_params_data(ctx);
            const nde_real *Wx = pd + nde_param_offset(ctx, r.cell.wx.weight->param), *bx = pd + nde_param_offset(ctx, r.cell.wx.bias->param);
            const nde_real *Wh = pd + nde_param_offset(ctx, r.cell.wh.weight->param), *bh = pd + nde_param_offset(ctx, r.cell.wh.bias->param);
            double x[2] = {1, 2}, hh[3] = {0.1, -0.2, 0.3}, gx[9], gh[9], out;
            int j, k;
            for (j = 0; j < 9; j++) {
                gx[j] = bx[j]; gh[j] = bh[j];
                for (k = 0; k < 2; k++) gx[j] += Wx[j * 2 + k] * x[k];
                for (k = 0; k < 3; k++) gh[j] += Wh[j * 3 + k] * hh[k];
            }
            for (j = 0; j < 3; j++) {
                double rr = 1 / (1 + exp(-(gx[j] + gh[j]))), zz = 1 / (1 + exp(-(gx[3 + j] + gh[3 + j])));
                double nn = tanh(gx[6 + j] + rr * gh[6 + j]);
                out = (1 - zz) * nn + zz * hh[j];
                CHECK_NEAR(nde_tensor_item(ctx, g, j), out, 1e-6, 1e-6);
            }
        }
    }
    {   /* KL and reparameterization */
        nde_tensor *mu = mat(ctx, 2, 2, (double[]){0, 0, 1, 0}), *lv = mat(ctx, 2, 2, (double[]){0, 0, 0, log(2.0)});
        CHECK_NEAR(nde_tensor_item(ctx, nde_kl_normal(ctx, mu, lv), 0), 0.5 * (1 + (2 - 1 - log(2.0))) / 2, 1e-6, 0);
        {
            nde_tensor *m0 = nde_tensor_zeros(ctx, 2, (int64_t[]){PATHS, 1}), *l0 = nde_tensor_full(ctx, 2, (int64_t[]){PATHS, 1}, (nde_real)log(4.0));
            nde_tensor *s = nde_reparameterize(ctx, m0, l0, 1, 2);
            double v = nde_tensor_item(ctx, nde_mean(ctx, nde_square(ctx, s)), 0);
            CHECK_NEAR(v, 4.0, 0, 0.15);
        }
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- hypersolvers */
static nde_tensor *lam_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_scale(ctx, z, NDE_R(-1.3)); }
/* the exact local error of Euler on z' = l z: (e^{lh} - 1 - l h) / h^2 z */
static nde_tensor *exact_corr(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, nde_tensor *dz, void *u) {
    double h = *(double *)u, l = -1.3;
    (void)t; (void)dz;
    return nde_scale(ctx, z, (nde_real)((exp(l * h) - 1 - l * h) / (h * h)));
}
static void test_hypersolver(void) {
    nde_ctx *ctx = new_ctx();
    double h = 0.1, ts[3] = {0.0, 0.5, 1.0};
    nde_hypersolver hs;
    nde_tensor *z0 = mat(ctx, 1, 2, (double[]){1.0, -2.0}), *ys[3], *plain = NULL;
    hs.base = NDE_RK4; hs.g = NULL; hs.g_user = NULL;
    CHECK(nde_rk_step(ctx, nde_tableau_get(NDE_RK4), lam_field, NULL, 0.0, z0, h, NULL, &plain, NULL, NULL) == NDE_OK);
    CHECK(nde_tensor_item(ctx, nde_hypersolver_step(ctx, &hs, lam_field, NULL, 0.0, z0, h), 1) == nde_tensor_item(ctx, plain, 1));
    hs.base = NDE_EULER; hs.g = exact_corr; hs.g_user = &h;
    CHECK(nde_hypersolve(ctx, &hs, lam_field, NULL, z0, 3, ts, 5, ys) == NDE_OK);
    CHECK_NEAR(nde_tensor_item(ctx, ys[2], 1), -2.0 * exp(-1.3), 1e-6, 1e-6);   /* Euler + the exact correction is exact */
    {
        nde_tensor *next = nde_scale(ctx, z0, (nde_real)exp(-1.3 * h));
        CHECK_NEAR(nde_tensor_item(ctx, nde_hypersolver_residual_loss(ctx, &hs, lam_field, NULL, 0.0, z0, h, next), 0), 0.0, 1e-8, 0);
    }
    hs.base = NDE_DOPRI5;
    CHECK(nde_hypersolver_step(ctx, &hs, lam_field, NULL, 0.0, z0, h) == NULL && nde_ctx_status(ctx) == NDE_ERR_ARG);
    nde_ctx_clear_error(ctx);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- Parareal */
static nde_tensor *vdp_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *y = nde_slice(ctx, z, 1, 0, 1), *v = nde_slice(ctx, z, 1, 1, 2), *p[2];
    (void)t; (void)u;
    p[0] = v;
    p[1] = nde_sub(ctx, nde_mul(ctx, nde_add_scalar(ctx, nde_neg(ctx, nde_square(ctx, y)), NDE_R(1.0)), v), y);
    return nde_concat(ctx, 2, p, 1);
}
static void test_parareal(void) {
    nde_ctx *ctx = new_ctx();
    double ts[9];
    nde_tensor *z0 = mat(ctx, 2, 2, (double[]){2.0, 0.0, -1.0, 0.5}), *ys[9], *fine[9], *zf = z0;
    nde_parareal_options o = nde_parareal_options_default();
    int i, k, iters;
    double err_prev = 1e9;
    for (i = 0; i <= 8; i++) ts[i] = 0.5 * i;
    fine[0] = z0;   /* the sequential fine solve: 4 rk4 steps per interval */
    for (i = 0; i < 8; i++) {
        for (k = 0; k < 4; k++) {
            nde_tensor *z1 = NULL;
            nde_rk_step(ctx, nde_tableau_get(NDE_RK4), vdp_field, NULL, ts[i] + k * 0.125, zf, 0.125, NULL, &z1, NULL, NULL);
            zf = z1;
        }
        fine[i + 1] = zf;
    }
    o.coarse = NDE_MIDPOINT;   /* Euler at h = 0.5 is too rough a coarse model of Van der Pol to contract early */
    for (k = 1; k <= 8; k++) {
        double err = 0;
        o.max_iters = k;
        CHECK(nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, &iters) == NDE_OK && iters == k);
        for (i = 0; i < 4; i++) err = fmax(err, fabs(nde_tensor_item(ctx, ys[8], i) - nde_tensor_item(ctx, fine[8], i)));
        /* the first k intervals are exact after k iterations */
        CHECK_NEAR(nde_tensor_item(ctx, ys[k], 1), nde_tensor_item(ctx, fine[k], 1), 1e-12, 1e-5);
        if (k >= 3) CHECK(err <= err_prev * 1.0001 + 1e-12);
        err_prev = err;
        if (k == 8) {
            printf("  parareal: after 8 iterations |U - fine| = %.2e\n", err);
            CHECK(err < 1e-5);
        }
    }
    o.max_iters = 0; o.tol = 1e-3;
    CHECK(nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, &iters) == NDE_OK);
    printf("  parareal: tol 1e-3 reached after %d of 8 iterations\n", iters);
    CHECK(iters < 8);
    CHECK_NEAR(nde_tensor_item(ctx, ys[8], 0), nde_tensor_item(ctx, fine[8], 0), 1e-2, 0);
#ifdef NDE_DOUBLE
    {   /* backpropagation through the iterations against central differences in z0 */
        nde_tensor *loss;
        double g, lp, lm;
        nde_real keep;
        o.tol = 0; o.max_iters = 3;
        z0->requires_grad = 1;
        nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, NULL);
        loss = nde_sum(ctx, nde_square(ctx, ys[8]));
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        g = z0->grad[1];
        z0->requires_grad = 0;
        keep = z0->data[1];
        z0->data[1] = keep + 1e-6; nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, NULL);
        lp = nde_tensor_item(ctx, nde_sum(ctx, nde_square(ctx, ys[8])), 0);
        z0->data[1] = keep - 1e-6; nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, NULL);
        lm = nde_tensor_item(ctx, nde_sum(ctx, nde_square(ctx, ys[8])), 0);
        z0->data[1] = keep;
        CHECK_NEAR(g, (lp - lm) / 2e-6, 1e-7, 1e-6);
    }
#endif
    o = nde_parareal_options_default(); o.fine = NDE_DOPRI5;
    CHECK(nde_parareal(ctx, vdp_field, NULL, z0, 9, ts, &o, ys, NULL) == NDE_ERR_ARG);
    nde_ctx_clear_error(ctx);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- a graph neural ODE learns */
static void test_gde(void) {
    nde_ctx *ctx = new_ctx();
    /* two triangles joined by one edge; node features = noisy community id */
    int64_t edges[14] = {0, 1, 1, 2, 0, 2, 3, 4, 4, 5, 3, 5, 2, 3}, labels[6] = {0, 0, 0, 1, 1, 1};
    nde_csr a;
    nde_tensor *ah = NULL, *x;
    nde_gde g;
    nde_linear head;
    nde_optimizer opt = nde_adam(2e-2);
    double ts[2] = {0.0, 1.0}, first = 0, last = 0;
    int it;
    CHECK(nde_gcn_adjacency(ctx, 6, 7, edges, &a, &ah) == NDE_OK);
    x = mat(ctx, 6, 2, (double[]){1, 0.1, 0.9, 0, 1.1, 0.2, 0.1, 1, 0, 0.8, 0.2, 1.2});
    nde_gcn_init(ctx, &g.layer[0], "gde0", &a, ah, 2, 8, 1);
    nde_gcn_init(ctx, &g.layer[1], "gde1", &a, ah, 8, 2, 2);
    g.act = NDE_ACT_TANH;
    nde_linear_init(ctx, &head, "head", 2, 2, 1, 3);
    for (it = 0; it < 60; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_solve_options o = nde_solve_options_default();
        nde_tensor *hT, *loss;
        nde_tensor *zs;
        o.method = NDE_RK4; o.step_size = 0.25;
        zs = nde_odeint(ctx, nde_gde_field, &g, x, 2, ts, &o);
        hT = nde_reshape(ctx, nde_slice(ctx, zs, 0, 1, 2), 2, (int64_t[]){6, 2});
        loss = nde_cross_entropy(ctx, nde_linear_forward(ctx, &head, hT), labels);
        if (it == 0) first = nde_tensor_item(ctx, loss, 0);
        last = nde_tensor_item(ctx, loss, 0);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
    }
    printf("  GDE node classification on two triangles: cross-entropy %.3f -> %.4f\n", first, last);
    CHECK(last < 0.1 && last < first);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
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
    test_sde_convert();
    test_sde_memory();
    test_sde_bad_input();
    test_symplectic();
    test_csr();
    test_augmentation();
    test_galerkin();
    test_hnn();
    test_lnn();
    test_cnf();
    test_per_sample();
    test_hypersolver();
    test_parareal();
    test_gde();
    return nde_test_finish("test_zoo");
}
