/* tests/test_taylor.c - Taylor mode: jet rules against closed-form series and
   finite differences, ODE time derivatives, gradients through jets, the
   TayNODE regulariser, the Taylor-series solver of nde_solvers.h (observed
   order, adaptive accuracy, taped gradients), Taylor-Lagrange steps, Taylorized
   models. */
#define NDE_IMPLEMENTATION
#include "../nde_solvers.h"
#include "nde_test.h"
#include <stdlib.h>

#ifdef NDE_DOUBLE
#define TOL 1e-11
#else
#define TOL 2e-5
#endif

static nde_ctx *new_ctx(void) { return nde_ctx_new(nde_ctx_desc_default()); }
static nde_tensor *scalar(nde_ctx *ctx, double v) { return nde_tensor_scalar(ctx, (nde_real)v); }
/* coefficient k, element i, as double (0 for an exact zero) */
static double coef(nde_ctx *ctx, const nde_jet *j, int k, int64_t i) {
    nde_tensor *c = nde_jet_coeff(ctx, j, k);
    return c ? (double)nde_tensor_item(ctx, c, i) : NAN;
}
static double fact(int k) { double f = 1; int i; for (i = 2; i <= k; i++) f *= i; return f; }
static double binom(double r, int k) { double b = 1; int i; for (i = 0; i < k; i++) b *= (r - i) / (i + 1); return b; }

/* ---------------------------------------------------------------- series */
static void test_closed_form_series(void) {
    nde_ctx *ctx = new_ctx();
    const int K = 10;
    const double x0 = 0.3;
    nde_jet *x = nde_jet_line(ctx, scalar(ctx, x0), scalar(ctx, 1.0), K);   /* x0 + s */
    nde_jet *s = nde_jet_line(ctx, scalar(ctx, 0.0), scalar(ctx, 1.0), K);  /* s */
    nde_jet *one = nde_jet_const(ctx, scalar(ctx, 1.0), K);
    nde_jet *e = nde_jet_exp(ctx, x), *sn = nde_jet_sin(ctx, x), *cs = nde_jet_cos(ctx, x);
    nde_jet *th0 = nde_jet_tanh(ctx, s);
    nde_jet *geo = nde_jet_div(ctx, one, nde_jet_sub(ctx, one, x));        /* 1/(1 - x) */
    nde_jet *lg = nde_jet_log(ctx, nde_jet_add_scalar(ctx, s, NDE_R(1.0)));  /* log(1 + s) */
    nde_jet *sq = nde_jet_sqrt(ctx, nde_jet_add_scalar(ctx, s, NDE_R(1.0))); /* (1 + s)^(1/2) */
    nde_jet *p5 = nde_jet_powi(ctx, x, 5), *pm3 = nde_jet_powi(ctx, x, -3);
    /* tanh, sigmoid, softplus at x0 through independent compositions of exp/div/log */
    nde_jet *e2 = nde_jet_exp(ctx, nde_jet_scale(ctx, x, NDE_R(2.0)));
    nde_jet *th_ref = nde_jet_div(ctx, nde_jet_add_scalar(ctx, e2, NDE_R(-1.0)), nde_jet_add_scalar(ctx, e2, NDE_R(1.0)));
    nde_jet *sg_ref = nde_jet_div(ctx, one, nde_jet_add_scalar(ctx, nde_jet_exp(ctx, nde_jet_neg(ctx, x)), NDE_R(1.0)));
    nde_jet *sp_ref = nde_jet_log(ctx, nde_jet_add_scalar(ctx, e, NDE_R(1.0)));
    nde_jet *th = nde_jet_tanh(ctx, x), *sg = nde_jet_sigmoid(ctx, x), *sp = nde_jet_softplus(ctx, x);
    /* tanh(s) = s - s^3/3 + 2 s^5/15 - 17 s^7/315 + 62 s^9/2835 */
    static const double tanh_series[11] = {0, 1, 0, -1.0 / 3, 0, 2.0 / 15, 0, -17.0 / 315, 0, 62.0 / 2835, 0};
    int k;
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    CHECK(e->order == K && !e->closed && one->closed);
    for (k = 0; k <= K; k++) {
        double sk = sin(x0 + k * 1.5707963267948966) / fact(k), ck = cos(x0 + k * 1.5707963267948966) / fact(k);
        CHECK_NEAR(coef(ctx, e, k, 0), exp(x0) / fact(k), TOL, TOL);
        CHECK_NEAR(coef(ctx, sn, k, 0), sk, TOL, TOL);
        CHECK_NEAR(coef(ctx, cs, k, 0), ck, TOL, TOL);
        CHECK_NEAR(coef(ctx, th0, k, 0), tanh_series[k], TOL, TOL);
        CHECK_NEAR(coef(ctx, geo, k, 0), pow(1.0 - x0, -(k + 1)), 10 * TOL, 10 * TOL);
        CHECK_NEAR(coef(ctx, lg, k, 0), k == 0 ? 0.0 : ((k % 2) ? 1.0 : -1.0) / k, TOL, TOL);
        CHECK_NEAR(coef(ctx, sq, k, 0), binom(0.5, k), TOL, TOL);
        CHECK_NEAR(coef(ctx, p5, k, 0), binom(5, k) * pow(x0, 5 - k), TOL, TOL);
        CHECK_NEAR(coef(ctx, pm3, k, 0), binom(-3, k) * pow(x0, -3 - k), 1e3 * TOL, 10 * TOL);
        CHECK_NEAR(coef(ctx, th, k, 0), coef(ctx, th_ref, k, 0), 10 * TOL, 10 * TOL);
        CHECK_NEAR(coef(ctx, sg, k, 0), coef(ctx, sg_ref, k, 0), 10 * TOL, 10 * TOL);
        CHECK_NEAR(coef(ctx, sp, k, 0), coef(ctx, sp_ref, k, 0), 10 * TOL, 10 * TOL);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* Piecewise maps: relu/abs/leaky are linear on each side of the kink; elu is
   x or alpha (e^x - 1). Shapes and broadcasting: a (3,2) jet plus a (2) row. */
static void test_piecewise_and_broadcast(void) {
    nde_ctx *ctx = new_ctx();
    nde_real xv[6] = {-1.0, 0.5, 2.0, -0.25, 0.75, -3.0}, vv[6] = {1, 2, 3, 4, 5, 6}, bv[2] = {10, 20}, bd[2] = {1, -1};
    int64_t s32[2] = {3, 2}, s2 = 2;
    nde_jet *x = nde_jet_line(ctx, nde_tensor_from(ctx, 2, s32, xv), nde_tensor_from(ctx, 2, s32, vv), 3);
    nde_jet *b = nde_jet_line(ctx, nde_tensor_from(ctx, 1, &s2, bv), nde_tensor_from(ctx, 1, &s2, bd), 3);
    nde_jet *r = nde_jet_relu(ctx, x), *a = nde_jet_abs(ctx, x), *l = nde_jet_leaky_relu(ctx, x, NDE_R(0.1));
    nde_jet *el = nde_jet_elu(ctx, x, NDE_R(0.5)), *y = nde_jet_add(ctx, x, b), *m = nde_jet_mul(ctx, x, b);
    int i;
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    for (i = 0; i < 6; i++) {
        double x0 = xv[i], v = vv[i], pos = x0 > 0;
        CHECK_NEAR(coef(ctx, r, 1, i), pos ? v : 0.0, TOL, TOL);
        CHECK_NEAR(coef(ctx, a, 1, i), pos ? v : -v, TOL, TOL);
        CHECK_NEAR(coef(ctx, l, 1, i), pos ? v : 0.1 * v, TOL, TOL);
        CHECK_NEAR(coef(ctx, r, 2, i), 0.0, 0, 0);
        /* elu on the negative side: 0.5 e^(x0 + v s) - 0.5 -> coefficient 2 = 0.5 e^x0 v^2 / 2 */
        CHECK_NEAR(coef(ctx, el, 2, i), pos ? 0.0 : 0.25 * exp(x0) * v * v, TOL, TOL);
        CHECK_NEAR(coef(ctx, y, 1, i), v + bd[i % 2], TOL, TOL);
        CHECK_NEAR(coef(ctx, m, 1, i), v * bv[i % 2] + x0 * bd[i % 2], TOL, TOL);
        CHECK_NEAR(coef(ctx, m, 2, i), v * bd[i % 2], TOL, TOL);
        CHECK(y->c[1]->ndim == 2 && y->c[1]->shape[0] == 3);
    }
    /* line + line is a line: closed, coefficient 2 an exact zero (NULL) */
    CHECK(y->closed && y->c[2] == NULL);
    CHECK(m->closed && m->order == 3 && m->c[3] == NULL);   /* (x0 + v s)(b0 + d s): a quadratic */
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- fields */
/* z' = A z with A = [[-1, 2], [-0.5, -0.3]] applied to rows of z (batch, 2) */
static nde_jet *field_linear(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    nde_real a[4] = {-1.0, 2.0, -0.5, -0.3}; int64_t s[2] = {2, 2};
    (void)t; (void)user;
    if (z->c[0]->ndim == 1) return nde_jet_scale(ctx, z, NDE_R(-0.7));
    return nde_jet_matmul(ctx, z, nde_jet_const(ctx, nde_tensor_from(ctx, 2, s, a), 0), 0, 1);
}

/* logistic z' = z (1 - z) */
static nde_jet *field_logistic(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)t; (void)user;
    return nde_jet_mul(ctx, z, nde_jet_add_scalar(ctx, nde_jet_neg(ctx, z), NDE_R(1.0)));
}
/* time dependent z' = cos(t) z: z = z0 exp(sin t - sin t0) */
static nde_jet *field_cos_t(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)user;
    return nde_jet_mul(ctx, nde_jet_cos(ctx, t), z);
}

static void test_ode_coeffs(void) {
    nde_ctx *ctx = new_ctx();
    const int K = 8;
    nde_real zv[4] = {0.5, -1.0, 2.0, 0.25};
    int64_t s22[2] = {2, 2};
    nde_tensor *z = nde_tensor_from(ctx, 2, s22, zv);
    nde_jet *lin = nde_ode_taylor_coeffs(ctx, field_linear, NULL, 0, z, K);
    double p = 0.3, c, sig[5];
    nde_jet *lg = nde_ode_taylor_coeffs(ctx, field_logistic, NULL, 0, scalar(ctx, p), K);
    /* the logistic solution is sigmoid(t + logit(p)): the sigmoid jet of a line */
    nde_jet *ref = nde_jet_sigmoid(ctx, nde_jet_line(ctx, scalar(ctx, log(p / (1 - p))), scalar(ctx, 1.0), K));
    double t0 = 0.4;
    nde_jet *ct = nde_ode_taylor_coeffs(ctx, field_cos_t, NULL, (nde_real)t0, scalar(ctx, 1.5), K);
    nde_jet *ct_ref = nde_jet_scale(ctx, nde_jet_exp(ctx, nde_jet_add_scalar(ctx,
                          nde_jet_sin(ctx, nde_jet_line(ctx, scalar(ctx, t0), scalar(ctx, 1.0), K)), (nde_real)-sin(t0))), NDE_R(1.5));
    double a[4] = {-1.0, 2.0, -0.5, -0.3}, zk[4], nz[4];
    int k, i, r;
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    CHECK(lin && lin->order == K && lg && lg->order == K);
    /* linear: z_k = (A^k z0) / k! per row */
    for (i = 0; i < 4; i++) zk[i] = zv[i];
    for (k = 0; k <= K; k++) {
        for (i = 0; i < 4; i++) CHECK_NEAR(coef(ctx, lin, k, i), zk[i] / fact(k), TOL, TOL);
        for (r = 0; r < 2; r++) {
            nz[2 * r] = a[0] * zk[2 * r] + a[1] * zk[2 * r + 1];
            nz[2 * r + 1] = a[2] * zk[2 * r] + a[3] * zk[2 * r + 1];
        }
        for (i = 0; i < 4; i++) zk[i] = nz[i];
    }
    /* logistic: closed-form derivatives of sigma up to order 4, the sigmoid jet beyond */
    c = p * (1 - p);
    sig[0] = p; sig[1] = c; sig[2] = c * (1 - 2 * p); sig[3] = c * (1 - 6 * p + 6 * p * p);
    sig[4] = c * (1 - 2 * p) * (1 - 12 * p + 12 * p * p);
    for (k = 0; k <= 4; k++) CHECK_NEAR(coef(ctx, lg, k, 0) * fact(k), sig[k], TOL, TOL);
    for (k = 0; k <= K; k++) CHECK_NEAR(coef(ctx, lg, k, 0), coef(ctx, ref, k, 0), TOL, TOL);
    for (k = 0; k <= K; k++) CHECK_NEAR(coef(ctx, ct, k, 0), coef(ctx, ct_ref, k, 0), 10 * TOL, 10 * TOL);
    nde_ctx_free(ctx);
}

/* A composed network: y = w . tanh(W2 softplus(W1 x + b1) + b2) * exp(sin(x_0))
   along the line x0 + s v; jets against central differences with Richardson
   extrapolation (double only). */
typedef struct net_user { nde_mlp mlp; } net_user;
static nde_jet *net_fn(nde_ctx *ctx, nde_jet *x, void *user) {
    net_user *u = (net_user *)user;
    nde_jet *h = nde_jet_mlp_forward(ctx, &u->mlp, x);
    nde_jet *g = nde_jet_exp(ctx, nde_jet_sin(ctx, nde_jet_slice(ctx, x, 1, 0, 1)));
    return nde_jet_mul(ctx, nde_jet_tanh(ctx, h), g);
}
#ifdef NDE_DOUBLE
static double net_at(nde_ctx *ctx, net_user *u, const nde_real *x0, const nde_real *v, double s, int out) {
    nde_real x[3]; int64_t sh[2] = {1, 3}; int i; double r;
    nde_mark m = nde_ctx_mark(ctx);
    for (i = 0; i < 3; i++) x[i] = x0[i] + (nde_real)s * v[i];
    r = (double)nde_tensor_item(ctx, net_fn(ctx, nde_jet_const(ctx, nde_tensor_from(ctx, 2, sh, x), 0), u)->c[0], out);
    nde_ctx_reset(ctx, m);
    return r;
}
/* k-th derivative at 0 by the central difference of step h, Richardson x3 */
static double fd_derivative(nde_ctx *ctx, net_user *u, const nde_real *x0, const nde_real *v, int k, int out) {
    double d[3], h = 0.08; int lvl, j;
    for (lvl = 0; lvl < 3; lvl++, h /= 2) {
        double acc = 0.0;
        for (j = 0; j <= k; j++) acc += ((j % 2) ? -1.0 : 1.0) * binom(k, j) * net_at(ctx, u, x0, v, (k / 2.0 - j) * h, out);
        d[lvl] = acc / pow(h, k);
    }
    d[0] = (4 * d[1] - d[0]) / 3; d[1] = (4 * d[2] - d[1]) / 3;
    return (16 * d[1] - d[0]) / 15;
}
#endif
static void test_mlp_vs_finite_differences(void) {
#ifdef NDE_DOUBLE
    nde_ctx *ctx = new_ctx();
    net_user u;
    int64_t w[4] = {3, 8, 8, 2}, sh[2] = {1, 3};
    nde_real x0[3] = {0.2, -0.4, 0.7}, v[3] = {0.5, 0.3, -0.6};
    nde_jet *y;
    int k, o;
    nde_mlp_init(ctx, &u.mlp, "net", 4, w, NDE_ACT_SOFTPLUS, 3);
    y = net_fn(ctx, nde_jet_line(ctx, nde_tensor_from(ctx, 2, sh, x0), nde_tensor_from(ctx, 2, sh, v), 5), &u);
    CHECK(y && y->order == 5);
    for (o = 0; o < 2; o++)
        for (k = 1; k <= 4; k++) {
            double jet = coef(ctx, y, k, o) * fact(k), fd = fd_derivative(ctx, &u, x0, v, k, o);
            CHECK_NEAR(jet, fd, 2e-7, 2e-6);
        }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
#else
    SKIP("finite differences of high order need double");
#endif
}

/* JVP: the identity u . (J v) = (J^T u) . v against nde_vjp, and J v against
   the order-1 coefficient of the line jet. */
static nde_tensor *net_plain(nde_ctx *ctx, nde_tensor *x, void *user) {
    nde_jet *y = net_fn(ctx, nde_jet_const(ctx, x, 0), user);
    return y ? y->c[0] : NULL;
}
static void test_jvp(void) {
    nde_ctx *ctx = new_ctx();
    net_user u;
    int64_t w[3] = {3, 6, 2}, sh[2] = {1, 3}, so[2] = {1, 2};
    nde_real x0[3] = {0.1, 0.8, -0.3}, v[3] = {-0.2, 0.4, 0.9}, uu[2] = {0.7, -1.3};
    nde_tensor *x = nde_tensor_from(ctx, 2, sh, x0), *vt = nde_tensor_from(ctx, 2, sh, v), *ut = nde_tensor_from(ctx, 2, so, uu);
    nde_tensor *y = NULL, *jv = NULL, *y2 = NULL, *xbar = NULL;
    double lhs = 0, rhs = 0; int i;
    nde_mlp_init(ctx, &u.mlp, "jvp", 3, w, NDE_ACT_TANH, 5);
    CHECK(nde_jvp(ctx, net_fn, &u, x, vt, &y, &jv) == NDE_OK);
    CHECK(nde_vjp(ctx, net_plain, &u, x, ut, &y2, &xbar, NULL) == NDE_OK);
    nde_zero_grad(ctx);
    CHECK(y && jv && y2 && xbar && jv->size == 2);
    for (i = 0; i < 2; i++) { lhs += uu[i] * nde_tensor_item(ctx, jv, i); CHECK_NEAR(nde_tensor_item(ctx, y, i), nde_tensor_item(ctx, y2, i), TOL, TOL); }
    for (i = 0; i < 3; i++) rhs += v[i] * nde_tensor_item(ctx, xbar, i);
    CHECK_NEAR(lhs, rhs, 10 * TOL, 10 * TOL);
    nde_ctx_free(ctx);
}

/* Gradients through jets: loss = sum_k sum(w_k * z_k) over the ODE coefficients
   of an MLP field, against central differences in z0 and in every parameter. */
typedef struct field_user { nde_mlp mlp; } field_user;
static nde_jet *field_mlp(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    field_user *u = (field_user *)user;
    nde_jet *tz = nde_jet_mul(ctx, z, nde_jet_add_scalar(ctx, nde_jet_scale(ctx, t, NDE_R(0.3)), NDE_R(1.0)));
    return nde_jet_mlp_forward(ctx, &u->mlp, tz);   /* f(t, z) = mlp(z (1 + 0.3 t)) */
}
#ifdef NDE_DOUBLE
static double coeff_loss(nde_ctx *ctx, field_user *u, nde_tensor *z, int K) {
    nde_jet *c = nde_ode_taylor_coeffs(ctx, field_mlp, u, NDE_R(0.2), z, K);
    nde_real wk[NDE_JET_MAX_ORDER + 1]; nde_tensor *terms[NDE_JET_MAX_ORDER + 1], *l; int k;
    for (k = 0; k <= K; k++) {
        nde_tensor *w = nde_tensor_randn(ctx, z->ndim, z->shape, 77, (uint64_t)k);
        terms[k] = nde_sum(ctx, nde_mul(ctx, nde_jet_coeff(ctx, c, k), w)); wk[k] = 1.0;
    }
    l = nde_lincomb(ctx, K + 1, wk, terms);
    return l ? nde_tensor_item(ctx, l, 0) : NAN;
}
#endif
static void test_gradients_through_jets(void) {
#ifdef NDE_DOUBLE
    nde_ctx *ctx = new_ctx();
    field_user u;
    int64_t w[4] = {3, 5, 5, 3}, sh[2] = {2, 3};
    nde_tensor *z = nde_tensor_randn(ctx, 2, sh, 9, 0), *loss;
    double h = 1e-6, worst = 0; int64_t i, np; int K = 5;
    nde_mlp_init(ctx, &u.mlp, "f", 4, w, NDE_ACT_TANH, 11);
    z->requires_grad = 1;
    nde_zero_grad(ctx);
    {
        nde_jet *c = nde_ode_taylor_coeffs(ctx, field_mlp, &u, NDE_R(0.2), z, K);
        nde_real wk[NDE_JET_MAX_ORDER + 1]; nde_tensor *terms[NDE_JET_MAX_ORDER + 1]; int k;
        for (k = 0; k <= K; k++) {
            terms[k] = nde_sum(ctx, nde_mul(ctx, nde_jet_coeff(ctx, c, k), nde_tensor_randn(ctx, 2, sh, 77, (uint64_t)k)));
            wk[k] = 1.0;
        }
        loss = nde_lincomb(ctx, K + 1, wk, terms);
    }
    CHECK(nde_backward(ctx, loss) == NDE_OK);
    nde_set_grad_enabled(ctx, 0);
    for (i = 0; i < z->size; i++) {
        nde_real keep = z->data[i]; double lp, lm, fd;
        z->data[i] = keep + h; lp = coeff_loss(ctx, &u, z, K);
        z->data[i] = keep - h; lm = coeff_loss(ctx, &u, z, K);
        z->data[i] = keep;
        fd = (lp - lm) / (2 * h);
        if (fabs(fd - z->grad[i]) / fmax(1.0, fabs(fd)) > worst) worst = fabs(fd - z->grad[i]) / fmax(1.0, fabs(fd));
    }
    np = nde_params_count(ctx);
    for (i = 0; i < np; i += 3) {
        nde_real *p = nde_params_data(ctx), keep = p[i]; double lp, lm, fd, an = nde_params_grad(ctx)[i];
        p[i] = keep + h; lp = coeff_loss(ctx, &u, z, K);
        p[i] = keep - h; lm = coeff_loss(ctx, &u, z, K);
        p[i] = keep;
        fd = (lp - lm) / (2 * h);
        if (fabs(fd - an) / fmax(1.0, fabs(fd)) > worst) worst = fabs(fd - an) / fmax(1.0, fabs(fd));
    }
    if (worst > 1e-6) fprintf(stderr, "gradients through jets: worst relative error %.3g\n", worst);
    CHECK(worst < 1e-6);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
#else
    SKIP("gradient checks run in double");
#endif
}

/* The recorded, incrementally extended program (O(K^2) products per op) against
   the naive recursion that re-evaluates f eagerly at each order (O(K^3)). */
static void test_recorded_vs_naive(void) {
    nde_ctx *ctx = new_ctx();
    field_user u;
    int64_t w[4] = {3, 16, 16, 3}, sh[2] = {4, 3};
    nde_tensor *z = nde_tensor_randn(ctx, 2, sh, 3, 0), *c[NDE_JET_MAX_ORDER + 1];
    const int K = 10;
    nde_jet *rec, *tj;
    int k; int64_t i; double worst = 0;
    nde_mlp_init(ctx, &u.mlp, "rv", 4, w, NDE_ACT_SOFTPLUS, 2);
    nde_set_grad_enabled(ctx, 0);
    rec = nde_ode_taylor_coeffs(ctx, field_mlp, &u, NDE_R(0.1), z, K);
    c[0] = z;
    for (k = 0; k < K; k++) {
        nde_jet *y;
        tj = nde_jet_line(ctx, scalar(ctx, 0.1), scalar(ctx, 1.0), k);
        y = field_mlp(ctx, tj, nde_jet_new(ctx, k, c), &u);
        c[k + 1] = nde_scale(ctx, nde_jet_coeff(ctx, y, k), NDE_R(1.0) / (nde_real)(k + 1));
    }
    CHECK(rec && rec->order == K);
    for (k = 0; k <= K; k++)
        for (i = 0; i < z->size; i++) {
            double a = nde_tensor_item(ctx, rec->c[k], i), b = nde_tensor_item(ctx, c[k], i);
            worst = fmax(worst, fabs(a - b) / fmax(1.0, fabs(b)));
        }
    CHECK(worst < 100 * TOL);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- TayNODE */
/* z' = -0.7 z: d^K z/dt^K = (-0.7)^K z, R_K = 0.7^(2K) z0^2 (1 - e^(-1.4 T)) / 1.4 */
static void test_taynode_linear(void) {
    nde_ctx *ctx = new_ctx();
    enum { N = 201 };
    nde_real ts[N]; nde_tensor *zs[N]; double T = 2.0, z0 = 1.3, exact[3];
    nde_tensor *r2, *r3, *si = NULL;
    int i, K;
    for (i = 0; i < N; i++) { ts[i] = (nde_real)(T * i / (N - 1)); zs[i] = scalar(ctx, z0 * exp(-0.7 * ts[i])); }
    for (K = 1; K <= 3; K++) exact[K - 1] = pow(0.7, 2 * K) * z0 * z0 * (1 - exp(-1.4 * T)) / 1.4;
    r2 = nde_taynode_reg(ctx, field_linear, NULL, 2, N, ts, zs);
    r3 = nde_taynode_reg(ctx, field_linear, NULL, 3, N, ts, zs);
    CHECK(r2 && r3 && r2->size == 1);
    CHECK_NEAR(nde_tensor_item(ctx, r2, 0), exact[1], 0, 2e-5);   /* trapezoid, h = 0.01 */
    CHECK_NEAR(nde_tensor_item(ctx, r3, 0), exact[2], 0, 2e-5);
    /* the step integral of local order-8 Taylor polynomials over 8 steps */
    for (i = 0; i < 8; i++) {
        nde_real t = (nde_real)(0.25 * i);
        nde_jet *c = nde_ode_taylor_coeffs(ctx, field_linear, NULL, t, scalar(ctx, z0 * exp(-0.7 * t)), 8);
        nde_tensor *piece = nde_taynode_step_integral(ctx, c, 2, NDE_R(0.25));
        si = si ? nde_add(ctx, si, piece) : piece;
    }
    CHECK_NEAR(nde_tensor_item(ctx, si, 0), exact[1], 0, 50 * TOL);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}
/* Nonlinear field: R_2 against d^2z/dt^2 by central differences of an RK4
   trajectory (double), and its parameter gradient against finite differences. */
#ifdef NDE_DOUBLE
static void rk4_path(nde_ctx *ctx, field_user *u, nde_tensor *z0, int n, double h, nde_tensor **zs, nde_real *ts) {
    int i;
    zs[0] = z0; ts[0] = 0;
    for (i = 1; i < n; i++) {
        double t = (i - 1) * h;
        nde_tensor *z = zs[i - 1];
        nde_tensor *k1 = nde_jet_field_eval(ctx, field_mlp, u, (nde_real)t, z);
        nde_tensor *k2 = nde_jet_field_eval(ctx, field_mlp, u, (nde_real)(t + h / 2), nde_add(ctx, z, nde_scale(ctx, k1, (nde_real)(h / 2))));
        nde_tensor *k3 = nde_jet_field_eval(ctx, field_mlp, u, (nde_real)(t + h / 2), nde_add(ctx, z, nde_scale(ctx, k2, (nde_real)(h / 2))));
        nde_tensor *k4 = nde_jet_field_eval(ctx, field_mlp, u, (nde_real)(t + h), nde_add(ctx, z, nde_scale(ctx, k3, (nde_real)h)));
        nde_real c[5]; nde_tensor *xs[5];
        c[0] = 1; c[1] = (nde_real)(h / 6); c[2] = (nde_real)(h / 3); c[3] = (nde_real)(h / 3); c[4] = (nde_real)(h / 6);
        xs[0] = z; xs[1] = k1; xs[2] = k2; xs[3] = k3; xs[4] = k4;
        zs[i] = nde_lincomb(ctx, 5, c, xs);
        ts[i] = (nde_real)(i * h);
    }
}
static double taynode_fd(nde_ctx *ctx, field_user *u, nde_tensor *z0, int n, double h, double *fd_estimate) {
    nde_tensor *zs[512]; nde_real ts[512]; nde_tensor *r; int i; int64_t j;
    nde_mark m = nde_ctx_mark(ctx);
    double out;
    rk4_path(ctx, u, z0, n, h, zs, ts);
    if (fd_estimate) {   /* trapezoid of mean((z'')^2) with z'' by central differences, interior points */
        double acc = 0, prev = 0;
        for (i = 1; i < n - 1; i++) {
            double g = 0;
            for (j = 0; j < z0->size; j++) {
                double d2 = (zs[i + 1]->data[j] - 2 * zs[i]->data[j] + zs[i - 1]->data[j]) / (h * h);
                g += d2 * d2;
            }
            g /= (double)z0->size;
            if (i > 1) acc += 0.5 * h * (g + prev);
            prev = g;
        }
        *fd_estimate = acc;
    }
    r = nde_taynode_reg(ctx, field_mlp, u, 2, n - 2, ts + 1, zs + 1);
    out = r ? nde_tensor_item(ctx, r, 0) : NAN;
    nde_ctx_reset(ctx, m);
    return out;
}
#endif
static void test_taynode_nonlinear(void) {
#ifdef NDE_DOUBLE
    nde_ctx *ctx = new_ctx();
    field_user u;
    int64_t w[3] = {2, 8, 2}, sh[2] = {3, 2};
    nde_tensor *z0 = nde_tensor_randn(ctx, 2, sh, 21, 0);
    double fd = 0, reg, h = 1e-3, worst = 0; int64_t i;
    nde_mlp_init(ctx, &u.mlp, "tn", 3, w, NDE_ACT_TANH, 13);
    nde_set_grad_enabled(ctx, 0);
    reg = taynode_fd(ctx, &u, z0, 301, 0.005, &fd);
    CHECK(reg > 0);
    CHECK_NEAR(reg, fd, 0, 1e-4);
    /* gradient of R_2 over a short path (RK4 steps on the tape) */
    nde_set_grad_enabled(ctx, 1);
    nde_zero_grad(ctx);
    {
        nde_tensor *zs[64]; nde_real ts[64];
        rk4_path(ctx, &u, z0, 21, 0.05, zs, ts);
        CHECK(nde_backward(ctx, nde_taynode_reg(ctx, field_mlp, &u, 2, 21, ts, zs)) == NDE_OK);
    }
    nde_set_grad_enabled(ctx, 0);
    for (i = 0; i < nde_params_count(ctx); i++) {
        nde_real *p = nde_params_data(ctx), keep = p[i]; double lp, lm, an = nde_params_grad(ctx)[i], d;
        nde_tensor *zs[64]; nde_real ts[64]; nde_mark m;
        m = nde_ctx_mark(ctx); p[i] = keep + h; rk4_path(ctx, &u, z0, 21, 0.05, zs, ts);
        lp = nde_tensor_item(ctx, nde_taynode_reg(ctx, field_mlp, &u, 2, 21, ts, zs), 0); nde_ctx_reset(ctx, m);
        p[i] = keep - h; rk4_path(ctx, &u, z0, 21, 0.05, zs, ts);
        lm = nde_tensor_item(ctx, nde_taynode_reg(ctx, field_mlp, &u, 2, 21, ts, zs), 0); nde_ctx_reset(ctx, m);
        p[i] = keep;
        d = fabs((lp - lm) / (2 * h) - an) / fmax(1.0, fabs(an));
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-6);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
#else
    SKIP("finite-difference estimate of R_K runs in double");
#endif
}

/* ---------------------------------------------------------------- TayLaNets */
/* z' = -0.7 z, K = 1, h = 1: the Lagrange point of the exact remainder is
   Gamma* = ((e^x - 1 - x) / (x^2 / 2) - 1) / x, x = -0.7. */
typedef struct mid_user { nde_tensor *g; } mid_user;
static nde_tensor *midpoint_const(nde_ctx *ctx, nde_tensor *z, void *user) {
    return nde_add(ctx, nde_tensor_zeros_like(ctx, z), ((mid_user *)user)->g);
}
static void test_tayla(void) {
    nde_ctx *ctx = new_ctx();
    double x = -0.7, gstar = ((exp(x) - 1 - x) / (x * x / 2) - 1) / x, z0 = 1.7;
    int64_t one = 1;
    mid_user mu;
    nde_tensor *z = scalar(ctx, z0), *R = NULL, *zn, *lin;
    nde_optimizer opt = nde_adam(5e-2);
    nde_tayla_options o;
    int it;
    mu.g = nde_param_new(ctx, "mid", 1, &one);
    mu.g->data[0] = (nde_real)log(gstar / (1 - gstar));
    CHECK(gstar > 0 && gstar < 1);
    o = nde_tayla_options_default();
    o.midpoint = midpoint_const; o.midpoint_user = &mu;
    zn = nde_tayla_step(ctx, field_linear, NULL, &o, 0, NDE_R(1.0), z, &R);
    CHECK_NEAR(nde_tensor_item(ctx, zn, 0), z0 * exp(x), 0, 50 * TOL);
    CHECK_NEAR(nde_tensor_item(ctx, R, 0), z0 * (exp(x) - 1 - x), 0, 50 * TOL);
    /* order 2 at x = -10 (h = 10/0.7): the truncated step overshoots (T = 41 z) and the
       Lagrange point lies outside [z, T]: Gamma* < 0, reachable only unbounded */
    {
        double x2 = -10.0, q = x2 + x2 * x2 / 2;
        double g2 = ((exp(x2) - 1 - q) / (x2 * x2 * x2 / 6) - 1) / q;
        nde_tensor *zb;
        CHECK(g2 < 0);
        o.order = 2; o.midpoint_unbounded = 1;
        mu.g->data[0] = (nde_real)g2;
        zb = nde_tayla_step(ctx, field_linear, NULL, &o, 0, (nde_real)(10.0 / 0.7), z, NULL);
        CHECK_NEAR(nde_tensor_item(ctx, zb, 0), z0 * exp(x2), 1e3 * TOL, 0);
        o.order = 1; o.midpoint_unbounded = 0;
        mu.g->data[0] = (nde_real)log(gstar / (1 - gstar));
    }
    /* truncated Taylor of order 3 */
    o.midpoint = NULL; o.order = 3;
    lin = nde_tayla_step(ctx, field_linear, NULL, &o, 0, NDE_R(0.5), z, NULL);
    CHECK_NEAR(nde_tensor_item(ctx, lin, 0), z0 * (1 - 0.35 + 0.35 * 0.35 / 2 - 0.35 * 0.35 * 0.35 / 6), TOL, TOL);
    /* learn the midpoint from Gamma = 1/2 for the known field */
    mu.g->data[0] = 0;
    o.order = 1; o.n_steps = 2; o.midpoint = midpoint_const; o.midpoint_user = &mu;
    for (it = 0; it < 300; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *pred = nde_tayla_solve(ctx, field_linear, NULL, &o, 0, NDE_R(2.0), z, NULL);
        nde_tensor *loss = nde_mse_loss(ctx, pred, scalar(ctx, z0 * exp(2 * x)));
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
    }
    {
        nde_tensor *rl1 = NULL;
        nde_tensor *pred = nde_tayla_solve(ctx, field_linear, NULL, &o, 0, NDE_R(2.0), z, &rl1);
        double g = 1 / (1 + exp(-(double)mu.g->data[0]));
        CHECK_NEAR(g, gstar, 2e-3, 0);
        CHECK_NEAR(nde_tensor_item(ctx, pred, 0), z0 * exp(2 * x), 1e-4, 0);
        CHECK(rl1 && nde_tensor_item(ctx, rl1, 0) > 0);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- Taylorized */
typedef struct tz_user { nde_mlp mlp; } tz_user;
static nde_jet *tz_fn(nde_ctx *ctx, nde_jet *x, void *user) { return nde_jet_mlp_forward(ctx, &((tz_user *)user)->mlp, x); }
static void test_taylorized(void) {
    nde_ctx *ctx = new_ctx();
    tz_user u;
    int64_t w[4] = {3, 16, 16, 2}, sx[2] = {4, 3};
    nde_tensor *x;
    nde_real *theta0, *dir;
    int64_t np, i;
#ifdef NDE_DOUBLE
    const int kmax = 4; const double eps0 = 0.4;
#else
    const int kmax = 2; const double eps0 = 0.4;
#endif
    int k, e;
    nde_mlp_init(ctx, &u.mlp, "tz", 4, w, NDE_ACT_TANH, 17);
    x = nde_tensor_randn(ctx, 2, sx, 5, 0);
    np = nde_params_count(ctx);
    theta0 = (nde_real *)malloc((size_t)np * sizeof(nde_real));
    dir = (nde_real *)malloc((size_t)np * sizeof(nde_real));
    memcpy(theta0, nde_params_data(ctx), (size_t)np * sizeof(nde_real));
    { nde_rng r = nde_rng_new(99, 0); nde_rng_normal(&r, np, dir); for (i = 0; i < np; i++) dir[i] *= NDE_R(0.1); }
    for (k = 1; k <= kmax; k++) {
        nde_taylorized tz;
        double lx[4], ly[4], mx = 0, my = 0, sxy = 0, sxx = 0, slope;
        CHECK(nde_taylorized_init(ctx, &tz, k) == NDE_OK);
        for (e = 0; e < 4; e++) {
            double eps = eps0 / pow(2.0, e), err = 0; nde_tensor *full, *fk;
            nde_mark m = nde_ctx_mark(ctx);
            for (i = 0; i < np; i++) nde_params_data(ctx)[i] = theta0[i] + (nde_real)eps * dir[i];
            full = nde_mlp_forward(ctx, &u.mlp, x);
            fk = nde_taylorized_forward(ctx, &tz, tz_fn, &u, x);
            for (i = 0; i < full->size; i++) err = fmax(err, fabs((double)full->data[i] - (double)fk->data[i]));
            lx[e] = log(eps); ly[e] = log(err);
            if (getenv("TZ_DEBUG")) printf("  k %d eps %g err %g\n", k, eps, err);
            nde_ctx_reset(ctx, m);
        }
        for (e = 0; e < 4; e++) { mx += lx[e] / 4; my += ly[e] / 4; }
        for (e = 0; e < 4; e++) { sxy += (lx[e] - mx) * (ly[e] - my); sxx += (lx[e] - mx) * (lx[e] - mx); }
        slope = sxy / sxx;
        printf("taylorized k = %d: log-log slope %.3f (expected %d)\n", k, slope, k + 1);
        CHECK(fabs(slope - (k + 1)) < 0.3);
        /* at theta0 the expansion is the network itself */
        {
            nde_mark m = nde_ctx_mark(ctx); nde_tensor *full, *fk; double d = 0;
            memcpy(nde_params_data(ctx), theta0, (size_t)np * sizeof(nde_real));
            full = nde_mlp_forward(ctx, &u.mlp, x);
            fk = nde_taylorized_forward(ctx, &tz, tz_fn, &u, x);
            for (i = 0; i < full->size; i++) d = fmax(d, fabs((double)full->data[i] - (double)fk->data[i]));
            CHECK(d == 0.0);
            nde_ctx_reset(ctx, m);
        }
        nde_taylorized_free(ctx, &tz);
    }
    /* k = 1 (linearised model) trains with Adam: the loss falls */
    {
        nde_taylorized tz; nde_optimizer opt = nde_adam(1e-2); double first = 0, last = 0; int it;
        nde_tensor *y = nde_tensor_randn(ctx, 2, (int64_t[]){4, 2}, 6, 0);
        memcpy(nde_params_data(ctx), theta0, (size_t)np * sizeof(nde_real));
        nde_taylorized_init(ctx, &tz, 1);
        for (it = 0; it < 100; it++) {
            nde_mark m = nde_ctx_mark(ctx);
            nde_tensor *loss = nde_mse_loss(ctx, nde_taylorized_forward(ctx, &tz, tz_fn, &u, x), y);
            double l = nde_tensor_item(ctx, loss, 0);
            if (it == 0) first = l;
            last = l;
            nde_zero_grad(ctx); nde_backward(ctx, loss); nde_optimizer_step(ctx, &opt);
            nde_ctx_reset(ctx, m);
        }
        CHECK(last < 0.1 * first);
        nde_taylorized_free(ctx, &tz);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    free(theta0); free(dir);
    nde_ctx_free(ctx);
}

static nde_tensor *plain_decay(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user);
/* ---------------------------------------------------------------- Taylor solver */
#ifdef NDE_DOUBLE
#define ADAPTIVE_RTOL 1e-10
#else
#define ADAPTIVE_RTOL 1e-6
#endif
static nde_jet *field_cos_t2(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user);
/* z' = cos(t) z - 0.1 z^2 with z(0) = 1: a reference by the adaptive method at tight tolerance */
static nde_jet *field_cos_t2(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)user;
    return nde_jet_sub(ctx, nde_jet_mul(ctx, nde_jet_cos(ctx, t), z), nde_jet_scale(ctx, nde_jet_square(ctx, z), NDE_R(0.1)));
}
static double taylor_solve_end(nde_ctx *ctx, nde_jet_field f, int order, double step, double rtol, int64_t *steps) {
    nde_jet_field_ref ref; nde_solve_options o = nde_solve_options_default(); nde_solution sol; double ts[2] = {0, 2.0}, v;
    nde_mark m = nde_ctx_mark(ctx);
    ref.f = f; ref.user = NULL;
    o.method = NDE_TAYLOR; o.taylor_order = order; o.step_size = step; o.rtol = rtol; o.atol = rtol;
    if (nde_solve(ctx, nde_jet_field_plain, &ref, scalar(ctx, 1.0), 2, ts, &o, &sol) != NDE_OK) { nde_ctx_reset(ctx, m); return NAN; }
    v = nde_tensor_item(ctx, sol.ys[1], 0);
    if (steps) *steps = sol.stats.accepted;
    nde_solution_free(ctx, &sol);
    nde_ctx_reset(ctx, m);
    return v;
}
static void test_taylor_solver(void) {
    nde_ctx *ctx = new_ctx();
#ifdef NDE_DOUBLE
    static const int orders[3] = {2, 4, 6};
    const double rtol_ref = 1e-15;
#else
    static const int orders[3] = {1, 2, 3};
    const double rtol_ref = 1e-7;
#endif
    int64_t steps = 0; int i;
    double ref = taylor_solve_end(ctx, field_cos_t2, 0, 0, rtol_ref, &steps);
    CHECK(ref == ref && steps > 0 && steps < 200);
    for (i = 0; i < 3; i++) {
        int p = orders[i];
        double e1 = fabs(taylor_solve_end(ctx, field_cos_t2, p, 0.2, 1e-7, NULL) - ref);
        double e2 = fabs(taylor_solve_end(ctx, field_cos_t2, p, 0.1, 1e-7, NULL) - ref);
        double observed = log(e1 / e2) / log(2.0);
        printf("taylor solver order %d: errors %.3g, %.3g, observed order %.2f\n", p, e1, e2, observed);
        CHECK(fabs(observed - p) < 0.35);
    }
    {   /* adaptive, linear 2x2 system with several outputs against e^(A t) */
        nde_jet_field_ref fr; nde_solve_options o = nde_solve_options_default(); nde_solution sol;
        double ts[4] = {0, 0.5, 2.0, 5.0}; nde_real zv[2] = {1.0, -0.5}; int64_t s12[2] = {1, 2};
        int k;
        fr.f = field_linear; fr.user = NULL;
        o.method = NDE_TAYLOR; o.rtol = ADAPTIVE_RTOL; o.atol = 1e-2 * ADAPTIVE_RTOL;
        CHECK(nde_solve(ctx, nde_jet_field_plain, &fr, nde_tensor_from(ctx, 2, s12, zv), 4, ts, &o, &sol) == NDE_OK);
        for (k = 1; k < 4; k++) {
            /* reference: the Taylor series of e^(A t) z0 summed to convergence in double */
            double a[4] = {-1.0, 2.0, -0.5, -0.3}, term[2] = {zv[0], zv[1]}, sum[2] = {zv[0], zv[1]}, t = ts[k]; int n;
            for (n = 1; n < 80; n++) {
                double u0 = (a[0] * term[0] + a[1] * term[1]) * t / n, u1 = (a[2] * term[0] + a[3] * term[1]) * t / n;
                term[0] = u0; term[1] = u1; sum[0] += u0; sum[1] += u1;
            }
            CHECK_NEAR(nde_tensor_item(ctx, sol.ys[k], 0), sum[0], 100 * ADAPTIVE_RTOL, 0);
            CHECK_NEAR(nde_tensor_item(ctx, sol.ys[k], 1), sum[1], 100 * ADAPTIVE_RTOL, 0);
        }
        printf("taylor solver, adaptive (rtol %g): %lld steps, %lld coefficient evaluations\n",
               ADAPTIVE_RTOL, (long long)sol.stats.accepted, (long long)sol.stats.nfe);
        CHECK(sol.stats.rejected == 0 && sol.stats.accepted < 40);
        nde_solution_free(ctx, &sol);
    }
    {   /* taped: d z(T) / d z0 = e^(-0.7 T); R_2 over the recorded steps */
        nde_jet_field_ref fr; nde_solve_options o = nde_solve_options_default(); nde_solution sol;
        double ts[2] = {0, 1.5}; nde_tensor *z0 = scalar(ctx, 2.0), *r2;
        fr.f = field_linear; fr.user = NULL;
        z0->requires_grad = 1;
        o.method = NDE_TAYLOR; o.taylor_order = 6; o.step_size = 0.01; o.record_steps = 1;
        CHECK(nde_solve(ctx, nde_jet_field_plain, &fr, z0, 2, ts, &o, &sol) == NDE_OK);
        CHECK(nde_backward(ctx, sol.ys[1]) == NDE_OK);
        CHECK_NEAR(z0->grad[0], exp(-0.7 * 1.5), 10 * TOL, 10 * TOL);
        r2 = nde_taynode_reg_solution(ctx, field_linear, NULL, 2, &sol);
        CHECK_NEAR(nde_tensor_item(ctx, r2, 0), pow(0.7, 4) * 4.0 * (1 - exp(-1.4 * 1.5)) / 1.4, 0, 1e-4);
        nde_solution_free(ctx, &sol);
    }
    {   /* a plain field is refused with a clear message */
        nde_solve_options o = nde_solve_options_default(); nde_solution sol; double ts[2] = {0, 1};
        o.method = NDE_TAYLOR;
        CHECK(nde_solve(ctx, plain_decay, NULL, scalar(ctx, 1.0), 2, ts, &o, &sol) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "needs a field written on jets");
        nde_solution_free(ctx, &sol);
        nde_ctx_clear_error(ctx);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}
static nde_tensor *plain_decay(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) { (void)t; (void)user; return nde_neg(ctx, z); }

/* The example in nde.h's JETS documentation, verbatim apart from the set-up. */
static nde_jet *doc_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)t; return nde_jet_mlp_forward(ctx, (const nde_mlp *)user, z);
}
static nde_jet *doc_net(nde_ctx *ctx, nde_jet *x, void *user) {
    return nde_jet_mlp_forward(ctx, (const nde_mlp *)user, x);
}
static void test_doc_example(void) {
    nde_ctx *ctx = new_ctx();
    nde_mlp mlp; int64_t w[3] = {2, 8, 2}, sh[2] = {3, 2};
    nde_tensor *z0, *x, *v;
    nde_mlp_init(ctx, &mlp, "doc", 3, w, NDE_ACT_TANH, 1);
    z0 = nde_tensor_randn(ctx, 2, sh, 1, 0); x = z0; v = nde_tensor_randn(ctx, 2, sh, 1, 1);
    {
        nde_jet *c = nde_ode_taylor_coeffs(ctx, doc_field, &mlp, 0.0, z0, 6);  /* z_0..z_6 */
        nde_tensor *d3 = nde_jet_derivative(ctx, c, 3);                      /* d^3z/dt^3 = 3! z_3 */
        nde_tensor *y, *jv;
        nde_jvp(ctx, doc_net, &mlp, x, v, &y, &jv);                          /* mlp(x), J v */
        CHECK(c && c->order == 6 && d3 && y && jv);
        nde_zero_grad(ctx);
        CHECK(nde_backward(ctx, nde_sum(ctx, nde_square(ctx, d3))) == NDE_OK);
        CHECK(nde_grad_norm(ctx) > 0);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- errors */
static nde_jet *field_linear(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user);
static void test_errors(void) {
    nde_ctx *ctx = new_ctx();
    nde_tensor *z = scalar(ctx, 1.0);
    nde_jet *a = nde_jet_line(ctx, scalar(ctx, 1.0), scalar(ctx, 1.0), 2), *b;
    CHECK(nde_ode_taylor_coeffs(ctx, field_linear, NULL, 0, z, NDE_JET_MAX_ORDER + 1) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "nde_ode_taylor_coeffs: order");
    nde_ctx_clear_error(ctx);
    /* orders: an open order-1 jet cannot give coefficient 2 */
    b = nde_jet_exp(ctx, nde_jet_new(ctx, 1, a->c));
    CHECK(b && b->order == 1);
    CHECK(nde_jet_coeff(ctx, b, 2) == NULL && nde_ctx_status(ctx) == NDE_ERR_ARG);
    nde_ctx_clear_error(ctx);
    CHECK(nde_jet_mul(ctx, a, NULL) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_jet_mul: NULL jet");
    nde_ctx_free(ctx);
}

int main(void) {
    test_closed_form_series();
    test_piecewise_and_broadcast();
    test_ode_coeffs();
    test_mlp_vs_finite_differences();
    test_jvp();
    test_gradients_through_jets();
    test_recorded_vs_naive();
    test_taynode_linear();
    test_taynode_nonlinear();
    test_tayla();
    test_taylorized();
    test_taylor_solver();
    test_doc_example();
    test_errors();
    return nde_test_finish("test_taylor");
}
