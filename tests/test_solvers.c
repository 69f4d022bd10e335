/* tests/test_solvers.c - nde_solvers.h: convergence orders of every method,
   adaptive accuracy on four problems, a stiff problem, dense output, backwards
   integration, events, direct gradients, memory, the torchdiffeq step counts,
   and every bad-input case. */
#define NDE_IMPLEMENTATION
#include "../nde_solvers.h"
#include "nde_test.h"
#include <stdlib.h>

#ifdef NDE_DOUBLE
#define DOUBLE_ONLY 1
#else
#define DOUBLE_ONLY 0
#endif

static nde_ctx *new_ctx(void) { return nde_ctx_new(nde_ctx_desc_default()); }
static nde_tensor *row(nde_ctx *ctx, int n, const double *v) {
    nde_real buf[16]; int i; int64_t shp[2];
    for (i = 0; i < n; i++) buf[i] = (nde_real)v[i];
    shp[0] = 1; shp[1] = n;
    return nde_tensor_from(ctx, 2, shp, buf);
}
static double item(nde_ctx *ctx, nde_tensor *t, int i) { return t ? (double)nde_tensor_item(ctx, t, i) : NAN; }

/* ---------------------------------------------------------------- fields */
static nde_tensor *f_decay(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_neg(ctx, z); }
/* y' = y cos t, y = y0 exp(sin t) */
static nde_tensor *f_cos(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)u; return nde_mul(ctx, z, nde_cos(ctx, t)); }
static double exact_cos(double t) { return exp(sin(t)); }
/* harmonic oscillator (x, v)' = (v, -x) */
static nde_tensor *f_osc(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_real a[4] = {0, -1, 1, 0}; int64_t s[2] = {2, 2}; (void)t; (void)u;
    return nde_matmul(ctx, z, nde_tensor_from(ctx, 2, s, a), 0, 0);
}
/* Lotka-Volterra x' = 1.5x - xy, y' = xy - 3y */
static nde_tensor *f_lv(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *x = nde_slice(ctx, z, 1, 0, 1), *y = nde_slice(ctx, z, 1, 1, 2), *p[2];
    (void)t; (void)u;
    p[0] = nde_mul(ctx, x, nde_add_scalar(ctx, nde_neg(ctx, y), NDE_R(1.5)));
    p[1] = nde_mul(ctx, y, nde_add_scalar(ctx, x, NDE_R(-3.0)));
    return nde_concat(ctx, 2, p, 1);
}
/* Arenstorf orbit (Hairer, Norsett, Wanner I, II.0) */
#define AR_MU 0.012277471
#define AR_T 17.0652165601579625588917206249
static nde_tensor *f_arenstorf(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_tensor *x = nde_slice(ctx, z, 1, 0, 1), *y = nde_slice(ctx, z, 1, 1, 2);
    nde_tensor *vx = nde_slice(ctx, z, 1, 2, 3), *vy = nde_slice(ctx, z, 1, 3, 4);
    nde_tensor *xa = nde_add_scalar(ctx, x, (nde_real)AR_MU), *xb = nde_add_scalar(ctx, x, (nde_real)(-(1.0 - AR_MU)));
    nde_tensor *y2 = nde_square(ctx, y);
    nde_tensor *r1 = nde_add(ctx, nde_square(ctx, xa), y2), *r2 = nde_add(ctx, nde_square(ctx, xb), y2);
    nde_tensor *d1 = nde_mul(ctx, r1, nde_sqrt(ctx, r1)), *d2 = nde_mul(ctx, r2, nde_sqrt(ctx, r2));
    nde_tensor *ax, *ay, *p[4];
    (void)t; (void)u;
    ax = nde_sub(ctx, nde_add(ctx, x, nde_scale(ctx, vy, NDE_R(2.0))),
                 nde_add(ctx, nde_scale(ctx, nde_div(ctx, xa, d1), (nde_real)(1.0 - AR_MU)), nde_scale(ctx, nde_div(ctx, xb, d2), (nde_real)AR_MU)));
    ay = nde_sub(ctx, nde_sub(ctx, y, nde_scale(ctx, vx, NDE_R(2.0))),
                 nde_add(ctx, nde_scale(ctx, nde_div(ctx, y, d1), (nde_real)(1.0 - AR_MU)), nde_scale(ctx, nde_div(ctx, y, d2), (nde_real)AR_MU)));
    p[0] = vx; p[1] = vy; p[2] = ax; p[3] = ay;
    return nde_concat(ctx, 4, p, 1);
}
/* Van der Pol (y, v)' = (v, mu (1 - y^2) v - y) */
static nde_tensor *f_vdp(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    double mu = *(double *)u;
    nde_tensor *y = nde_slice(ctx, z, 1, 0, 1), *v = nde_slice(ctx, z, 1, 1, 2), *p[2];
    (void)t;
    p[0] = v;
    p[1] = nde_sub(ctx, nde_scale(ctx, nde_mul(ctx, nde_add_scalar(ctx, nde_neg(ctx, nde_square(ctx, y)), NDE_R(1.0)), v), (nde_real)mu), y);
    return nde_concat(ctx, 2, p, 1);
}
/* spiral of torchdiffeq's ode_demo: y' = y^3 A */
static nde_tensor *f_spiral(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    nde_real a[4] = {-0.1, 2.0, -2.0, -0.1}; int64_t s[2] = {2, 2}; (void)t; (void)u;
    return nde_matmul(ctx, nde_powi(ctx, z, 3), nde_tensor_from(ctx, 2, s, a), 0, 0);
}
/* y' = y^2 blows up at t = 1 */
static nde_tensor *f_blowup(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_square(ctx, z); }
static nde_tensor *f_nan(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; (void)u; return nde_sqrt(ctx, nde_add_scalar(ctx, nde_abs(ctx, z), NDE_R(-100.0)));
}
static nde_tensor *f_nan_later(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)u; return nde_mul(ctx, z, nde_log(ctx, nde_add_scalar(ctx, nde_neg(ctx, t), NDE_R(1.2))));
}
static nde_tensor *f_badshape(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) { (void)t; (void)u; return nde_sum(ctx, z); }
#ifdef NDE_DOUBLE
/* z' = -a z with a parameter */
static nde_tensor *f_param(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; return nde_neg(ctx, nde_mul(ctx, z, (nde_tensor *)u));
}
#endif

/* ---------------------------------------------------------------- helpers */
static double solve_end(nde_ctx *ctx, nde_field_fn f, void *u, nde_tensor *z0, double t0, double t1,
                        const nde_solve_options *o, nde_solution *sol_out, int comp) {
    double ts[2]; nde_solution sol; nde_status st; double v;
    ts[0] = t0; ts[1] = t1;
    st = nde_solve(ctx, f, u, z0, 2, ts, o, &sol);
    v = st == NDE_OK ? item(ctx, sol.ys[1], comp) : NAN;
    if (st != NDE_OK) fprintf(stderr, "solve failed: %s\n", nde_ctx_message(ctx));
    if (sol_out) *sol_out = sol; else nde_solution_free(ctx, &sol);
    return v;
}

/* max_i |a_i - b_i| / (1 + |b_i|) */
static double rel_err(nde_ctx *ctx, nde_tensor *a, const double *b, int n) {
    double e = 0; int i;
    if (!a) return INFINITY;
    for (i = 0; i < n; i++) { double d = fabs(item(ctx, a, i) - b[i]) / (1.0 + fabs(b[i])); if (!(d <= e)) e = d; }
    return e;
}

/* ---------------------------------------------------------------- quick start */
static nde_tensor *decay(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    (void)t; (void)user;
    return nde_neg(ctx, z);
}
static int quickstart_solvers(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_real z0v[2] = {1, 2};
    nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){2, 1}, z0v);
    double ts[3] = {0.0, 0.5, 1.0};
    nde_solve_options opt = nde_solve_options_default();  // dopri5, rtol 1e-7, atol 1e-9
    nde_solution sol;
    nde_status st = nde_solve(ctx, decay, NULL, z0, 3, ts, &opt, &sol);
    // sol.ys[i] is z(ts[i]); sol.stats.nfe, .accepted, .rejected
    double z1 = nde_tensor_item(ctx, sol.ys[2], 0);     // ~ exp(-1)
    nde_solution_free(ctx, &sol);
    nde_ctx_free(ctx);
    return st != NDE_OK || z1 < 0.3678 || z1 > 0.3679;
}

/* ---------------------------------------------------------------- methods table */
static void test_methods_table(void) {
    nde_ctx *ctx = new_ctx();
    nde_method m;
    int i, p;
    for (i = 0; i < NDE_METHOD_COUNT; i++) {
        const nde_method_info *mi = nde_method_get((nde_method)i);
        CHECK(mi && (int)mi->method == i);
        CHECK(nde_method_from_name(ctx, mi->name, &m) == NDE_OK && (int)m == i);
        if (mi->tableau) {
            const nde_tableau *tb = mi->tableau;
            double sb = 0, sbc = 0, se = 0;
            int j, s = tb->stages;
            for (j = 0; j < s; j++) {
                double rs = 0; int l;
                for (l = 0; l < s; l++) rs += tb->a[j][l];
                CHECK_NEAR(rs, tb->c[j], 1e-12, 0);     /* row sums = c */
                sb += tb->b[j]; sbc += tb->b[j] * tb->c[j]; se += tb->b_error[j];
            }
            CHECK_NEAR(sb, 1.0, 1e-12, 0);
            if (mi->order >= 2) CHECK_NEAR(sbc, 0.5, 1e-12, 0);
            CHECK_NEAR(se, 0.0, 1e-12, 0);              /* b and b_hat both consistent */
            if (tb->dense_degree > 0) {                 /* b_i(1) = b_i, sum b_i(theta) = theta */
                double tot = 0;
                for (j = 0; j < s; j++) {
                    double bj = 0;
                    for (p = 0; p < tb->dense_degree; p++) bj += tb->dense[j][p];
                    CHECK_NEAR(bj, tb->b[j], 1e-12, 0);
                    for (p = 0; p < tb->dense_degree; p++) tot += tb->dense[j][p] * pow(0.3, p + 1);
                }
                CHECK_NEAR(tot, 0.3, 1e-12, 0);
            }
            CHECK(nde_tableau_by_name(ctx, mi->name) == tb);
        }
    }
    CHECK(nde_method_get(NDE_METHOD_COUNT) == NULL);
    CHECK(nde_method_from_name(ctx, "dopri7", &m) == NDE_ERR_ARG);
    CHECK_MSG(nde_ctx_message(ctx), "unknown method 'dopri7'");
    CHECK_MSG(nde_ctx_message(ctx), "tsit5");
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- controller, initial step, rk_step */
static void test_building_blocks(void) {
    nde_ctx *ctx = new_ctx();
    nde_solve_options o = nde_solve_options_default();
    nde_step_controller c = nde_step_controller_init(&o, 5);
    double hn;
    CHECK(nde_step_controller_propose(&c, 0.5, 0.1, &hn) == 1);
    CHECK_NEAR(hn, 0.1 * 0.9 * pow(2.0, 0.2), 1e-15, 0);
    CHECK(nde_step_controller_propose(&c, 0.99, 0.1, &hn) == 1);
    CHECK_NEAR(hn, 0.1, 1e-15, 0);                    /* accepted steps never shrink */
    CHECK(nde_step_controller_propose(&c, 2.0, -0.1, &hn) == 0);
    CHECK_NEAR(hn, -0.1 * 0.9 * pow(2.0, -0.2), 1e-15, 0);
    CHECK(nde_step_controller_propose(&c, 1e9, 0.1, &hn) == 0);
    CHECK_NEAR(hn, 0.02, 1e-15, 0);                   /* factor_min */
    CHECK(nde_step_controller_propose(&c, 0.0, 0.1, &hn) == 1);
    CHECK_NEAR(hn, 1.0, 1e-15, 0);                    /* factor_max */
    /* PI: history enters only through accepted steps */
    o.pcoeff = 0.4; o.icoeff = 0.3;
    c = nde_step_controller_init(&o, 5);
    CHECK(nde_step_controller_propose(&c, 0.1, 1.0, &hn) == 1);
    CHECK_NEAR(hn, 0.9 * pow(10.0, 0.7 / 5), 1e-14, 0);
    CHECK(nde_step_controller_propose(&c, 4.0, 1.0, &hn) == 0);
    CHECK(nde_step_controller_propose(&c, 0.01, 1.0, &hn) == 1);
    CHECK_NEAR(hn, 0.9 * pow(100.0, 0.7 / 5) * pow(10.0, -0.4 / 5), 1e-14, 0);
    {   /* one rk4 step of y' = -y equals the Taylor polynomial of degree 4 */
        double v = 1.0, h = 0.1;
        nde_tensor *z = row(ctx, 1, &v), *zn = NULL, *err = NULL, *k[4];
        CHECK(nde_rk_step(ctx, nde_tableau_get(NDE_RK4), f_decay, NULL, 0.0, z, h, NULL, &zn, &err, k) == NDE_OK);
        CHECK_NEAR(item(ctx, zn, 0), 1 - h + h * h / 2 - h * h * h / 6 + h * h * h * h / 24, 1e-6, 0);
        CHECK(err == NULL);
        CHECK_NEAR(item(ctx, k[3], 0), -(1 - h * (1 - h / 2 * (1 - h / 2))), 1e-6, 0);
        CHECK(nde_rk_step(ctx, nde_tableau_get(NDE_DOPRI5), f_decay, NULL, 0.0, z, h, NULL, &zn, &err, NULL) == NDE_OK);
        CHECK(err && fabs(item(ctx, err, 0)) < 1e-6 && fabs(item(ctx, err, 0)) > 0);
        CHECK_NEAR(item(ctx, zn, 0), exp(-h), 1e-7, 0);
        CHECK(nde_rk_step(ctx, nde_tableau_get(NDE_KVAERNO5), f_decay, NULL, 0.0, z, h, NULL, &zn, &err, NULL) == NDE_ERR_ARG);
        nde_ctx_clear_error(ctx);
    }
    {   /* Hairer's initial step on y' = -y, y0 = 1, rtol 1e-7, atol 1e-9, order 5 (computed by hand) */
        double v = 1.0, h0 = 0, sc = 1e-9 + 1e-7, d0 = 1.0 / sc, d1 = 1.0 / sc, hh = 0.01 * d0 / d1;
        double d2 = fabs((-(1 - hh)) - (-1.0)) / sc / hh, h1 = pow(0.01 / fmax(d1, d2), 0.2);
        int64_t nfe = 0;
        nde_tensor *z = row(ctx, 1, &v);
        CHECK(nde_initial_step(ctx, f_decay, NULL, 0.0, z, NULL, 5, -1.0, &o, &h0, &nfe) == NDE_OK);
        CHECK_NEAR(h0, -fmin(100 * hh, h1), 0, 1e-5);
        CHECK(nfe == 2);
    }
    {   /* LU with pivoting */
        double a[9] = {0, 2, 1, 1, 1, 1, 4, 1, 0}, b[3] = {7, 6, 6}, lu[9];
        int64_t piv[3];
        memcpy(lu, a, sizeof a);
        CHECK(nde_lu_factor(3, lu, piv) == 0);
        nde_lu_solve(3, lu, piv, b);
        CHECK_NEAR(b[0], 1, 1e-14, 0); CHECK_NEAR(b[1], 2, 1e-14, 0); CHECK_NEAR(b[2], 3, 1e-14, 0);
        a[0] = 1; a[1] = 2; a[2] = 3; a[3] = 2; a[4] = 4; a[5] = 6;
        memcpy(lu, a, sizeof a);
        CHECK(nde_lu_factor(3, lu, piv) != 0);     /* singular */
    }
    {   /* Lagrange weights: AB2 on a uniform grid = (3/2, -1/2); AM2 = (1/2, 1/2) */
        double x[3] = {0, -1, -2}, w[3], xm[2] = {1, 0};
        nde_lagrange_weights(2, x, 0, 1, w);
        CHECK_NEAR(w[0], 1.5, 1e-14, 0); CHECK_NEAR(w[1], -0.5, 1e-14, 0);
        nde_lagrange_weights(3, x, 0, 1, w);
        CHECK_NEAR(w[0], 23.0 / 12, 1e-14, 0); CHECK_NEAR(w[1], -16.0 / 12, 1e-14, 0); CHECK_NEAR(w[2], 5.0 / 12, 1e-14, 0);
        nde_lagrange_weights(2, xm, 0, 1, w);
        CHECK_NEAR(w[0], 0.5, 1e-14, 0); CHECK_NEAR(w[1], 0.5, 1e-14, 0);
    }
    {   /* Jacobian by reverse mode */
        double v[2] = {0.5, -1.5}, mu = 3.0, jac[4];
        nde_tensor *z = row(ctx, 2, v);
        CHECK(nde_jacobian(ctx, f_vdp, &mu, 0.0, z, jac) == NDE_OK);
        CHECK_NEAR(jac[0], 0, 1e-6, 0); CHECK_NEAR(jac[1], 1, 1e-6, 0);
        CHECK_NEAR(jac[2], -2 * mu * v[0] * v[1] - 1, 1e-5, 1e-6); CHECK_NEAR(jac[3], mu * (1 - v[0] * v[0]), 1e-5, 1e-6);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- convergence orders */
static double fixed_error(nde_ctx *ctx, nde_method m, int n, double T) {
    nde_solve_options o = nde_solve_options_default();
    double v = 1.0, y;
    nde_mark mk = nde_ctx_mark(ctx);
    o.method = m; o.step_size = T / n; o.rtol = 1e-13; o.atol = 1e-13;
    y = solve_end(ctx, f_cos, NULL, row(ctx, 1, &v), 0.0, T, &o, NULL, 0);
    nde_ctx_reset(ctx, mk);
    return fabs(y - exact_cos(T));
}

static void test_convergence_orders(void) {
    struct { nde_method m; int n; double order; } cases[] = {
        {NDE_EULER, 200, 1}, {NDE_MIDPOINT, 100, 2}, {NDE_HEUN, 100, 2}, {NDE_RALSTON, 100, 2},
        {NDE_RK4, 20, 4}, {NDE_RK4_38, 20, 4}, {NDE_BOSH3, 40, 3}, {NDE_ADAPTIVE_HEUN, 100, 2},
        {NDE_FEHLBERG2, 100, 2}, {NDE_DOPRI5, 10, 5}, {NDE_TSIT5, 64, 5}, {NDE_DOPRI8, 4, 8},
        {NDE_EXPLICIT_ADAMS, 64, 4}, {NDE_IMPLICIT_ADAMS, 64, 4}, {NDE_KVAERNO5, 10, 5}};
    nde_ctx *ctx = new_ctx();
    int i;
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        double e1 = fixed_error(ctx, cases[i].m, cases[i].n, 2.0);
        double e2 = fixed_error(ctx, cases[i].m, 2 * cases[i].n, 2.0);
        double slope = log(e1 / e2) / log(2.0);
        if (DOUBLE_ONLY) {
            if (fabs(slope - cases[i].order) > 0.3)
                fprintf(stderr, "order of %s: %.3f (errors %.3g, %.3g)\n", nde_method_name(cases[i].m), slope, e1, e2);
            CHECK(fabs(slope - cases[i].order) <= 0.3);
        } else {
            CHECK(e2 < 5e-3);   /* float: accuracy only */
        }
    }
    nde_ctx_free(ctx);
}

/* Adams on an uneven grid keeps its order (coefficients from the actual nodes). */
static void test_adams_uneven_grid(void) {
    nde_ctx *ctx = new_ctx();
    double err[2];
    int k;
    for (k = 0; k < 2; k++) {
        int n = 40 << k, i;
        double *g = (double *)malloc((size_t)(n + 1) * sizeof(double)), v = 1.0, ts[2] = {0, 2};
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        for (i = 0; i <= n; i++) { double s = (double)i / n; g[i] = 2.0 * (s + 0.1 * sin(3.14159265358979 * s) / 3.14159265358979); }
        g[n] = 2.0;
        o.method = NDE_EXPLICIT_ADAMS; o.grid = g; o.grid_len = n + 1;
        CHECK(nde_solve(ctx, f_cos, NULL, row(ctx, 1, &v), 2, ts, &o, &sol) == NDE_OK);
        err[k] = fabs(item(ctx, sol.ys[1], 0) - exact_cos(2.0));
        nde_solution_free(ctx, &sol);
        free(g);
    }
    if (DOUBLE_ONLY) CHECK(fabs(log(err[0] / err[1]) / log(2.0) - 4) <= 0.3);
    else CHECK(err[1] < 1e-3);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- adaptive accuracy */
typedef struct problem {
    const char *name; nde_field_fn f; int dim; double z0[4]; double T; int smooth; double ref[4];
} problem;

static void test_adaptive_accuracy(void) {
    nde_ctx *ctx = new_ctx();
    problem probs[4] = {
        {"decay", f_decay, 2, {1, 2}, 5.0, 1, {0}},
        {"oscillator", f_osc, 2, {1, 0}, 10.0, 1, {0}},
        {"lotka-volterra", f_lv, 2, {1, 1}, 5.0, 1, {0}},
        {"arenstorf", f_arenstorf, 4, {0.994, 0, 0, -2.00158510637908252240537862224}, AR_T, 0, {0}}};
    /* factor: the bound on global error / tolerance on the smooth problems. 10 as the
       issue asks, except (measured, double, NDE_TEST_VERBOSE=1 prints them):
       - fehlberg2: its embedded solution is first order with error constant ~1/512,
         so the estimate h^2 y''/512 cannot bound the propagated second-order
         solution's h^3 y'''/6: global error ~ 85 T tol whatever tol (ratios 80-1300
         here; torchdiffeq's fehlberg2 is the same pair and behaves the same);
       - bosh3 (3(2) pair): ratio 14-16 on the oscillator over [0, 10];
       - kvaerno5: ratio 12 on the oscillator, 20-80 on Lotka-Volterra (the embedded
         4th-order solution underestimates the 5th-order error on this problem). */
    struct { nde_method m; double tol[3]; double factor; } meth[] = {
        {NDE_ADAPTIVE_HEUN, {1e-3, 1e-4, 1e-5}, 10}, {NDE_FEHLBERG2, {1e-3, 1e-4, 1e-5}, 2000},
        {NDE_BOSH3, {1e-4, 1e-6, 1e-8}, 20}, {NDE_DOPRI5, {1e-5, 1e-7, 1e-9}, 10}, {NDE_TSIT5, {1e-5, 1e-7, 1e-9}, 10},
        {NDE_DOPRI8, {1e-6, 1e-9, 1e-12}, 10}, {NDE_KVAERNO5, {1e-4, 1e-6, 1e-8}, 100}};
    int p, mi, k, ntol = DOUBLE_ONLY ? 3 : 1;
    /* references: closed forms, or dopri8 at rtol = atol = 1e-13 */
    probs[0].ref[0] = exp(-5.0); probs[0].ref[1] = 2 * exp(-5.0);
    probs[1].ref[0] = cos(10.0); probs[1].ref[1] = -sin(10.0);
    for (p = 2; p < 4; p++) {
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double ts[2] = {0, probs[p].T};
        o.method = NDE_DOPRI8; o.rtol = DOUBLE_ONLY ? 1e-13 : 1e-6; o.atol = o.rtol;
        CHECK(nde_solve(ctx, probs[p].f, NULL, row(ctx, probs[p].dim, probs[p].z0), 2, ts, &o, &sol) == NDE_OK);
        for (k = 0; k < probs[p].dim; k++) probs[p].ref[k] = item(ctx, sol.ys[1], k);
        nde_solution_free(ctx, &sol);
    }
    /* the Arenstorf orbit is periodic: the reference closes it */
    if (DOUBLE_ONLY) CHECK(rel_err(ctx, row(ctx, 4, probs[3].ref), probs[3].z0, 4) < 1e-9);
    for (mi = 0; mi < (int)(sizeof meth / sizeof meth[0]); mi++) {
        for (p = 0; p < 4; p++) {
            double prev = INFINITY;
            for (k = 0; k < ntol; k++) {
                nde_solve_options o = nde_solve_options_default();
                nde_solution sol;
                double ts[2] = {0, probs[p].T}, tol = DOUBLE_ONLY ? meth[mi].tol[k] : 1e-4, e;
                nde_mark mk = nde_ctx_mark(ctx);
                nde_status st;
                o.method = meth[mi].m; o.rtol = tol; o.atol = tol;
                st = nde_solve(ctx, probs[p].f, NULL, row(ctx, probs[p].dim, probs[p].z0), 2, ts, &o, &sol);
                CHECK(st == NDE_OK);
                e = st == NDE_OK ? rel_err(ctx, sol.ys[1], probs[p].ref, probs[p].dim) : INFINITY;
                if (getenv("NDE_TEST_VERBOSE")) printf("RATIO %-14s %-15s tol %g err/tol %.3g steps %lld\n", nde_method_name(meth[mi].m), probs[p].name, tol, e / tol, (long long)sol.stats.accepted);
                if (!(e < prev) || (probs[p].smooth && !(e <= (DOUBLE_ONLY ? 1 : 2) * meth[mi].factor * tol + (DOUBLE_ONLY ? 0 : 2e-5))))
                    fprintf(stderr, "%s on %s, tol %g: error %.3g (previous %.3g), %lld steps\n", nde_method_name(meth[mi].m),
                            probs[p].name, tol, e, prev, (long long)sol.stats.accepted);
                CHECK(e < prev);
                if (probs[p].smooth) CHECK(e <= (DOUBLE_ONLY ? 1 : 2) * meth[mi].factor * tol + (DOUBLE_ONLY ? 0 : 2e-5));
                prev = e;
                nde_solution_free(ctx, &sol);
                nde_ctx_reset(ctx, mk);
            }
        }
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- torchdiffeq step counts */
/* torchdiffeq 0.2.5 (bench/.venv), float64, odeint(f, y0=[[2,0]], t=linspace(0,25,1000),
   method='dopri5') on W1's true system y' = y^3 A:
       rtol 1e-7, atol 1e-9:   nfe 2450, accepted 329, rejected 79
       rtol 1e-5, atol 1e-7:   nfe  938, accepted 130, rejected 26
   nde (same tableau: Shampine's embedded pair, same controller and initial step): identical.
   Other methods, same problem (torchdiffeq / nde):
       bosh3 rtol 1e-6 atol 1e-8:     nfe 4100 / 4100, accepted 1217 / 1217, rejected 149 / 149
       dopri8 rtol 1e-9 atol 1e-11:   nfe 2823 / 2823, accepted  183 /  183, rejected  34 /  34
       adaptive_heun rtol 1e-4 atol 1e-6: nfe 2712 / 5466, accepted 2456 / 2468, rejected 254 / 264
       fehlberg2 rtol 1e-4 atol 1e-6: nfe  372 /  520, accepted  148 /  148, rejected  37 /  37
   torchdiffeq's adaptive_heun and fehlberg2 reuse their last stage as f(t1, y1) although it is
   evaluated at the embedded (Euler / first-order) point, not at y1: one evaluation per step
   fewer, and a slightly different solution; nde evaluates f(t1, y1). */
static void test_torchdiffeq_counts(void) {
    nde_ctx *ctx = new_ctx();
    double y0[2] = {2, 0}, ts[1000];
    struct { nde_method m; double rtol, atol; int64_t nfe, acc, rej; } ref[4] = {
        {NDE_DOPRI5, 1e-7, 1e-9, 2450, 329, 79}, {NDE_DOPRI5, 1e-5, 1e-7, 938, 130, 26},
        {NDE_BOSH3, 1e-6, 1e-8, 4100, 1217, 149}, {NDE_DOPRI8, 1e-9, 1e-11, 2823, 183, 34}};
    int i, k;
    for (i = 0; i < 1000; i++) ts[i] = 25.0 * i / 999.0;
    for (k = 0; k < (DOUBLE_ONLY ? 4 : 2); k++) {
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        o.method = ref[k].m; o.rtol = ref[k].rtol; o.atol = ref[k].atol;
        CHECK(nde_solve(ctx, f_spiral, NULL, row(ctx, 2, y0), 1000, ts, &o, &sol) == NDE_OK);
        if (DOUBLE_ONLY) {
            printf("spiral %s rtol %g: nde nfe %lld acc %lld rej %lld; torchdiffeq nfe %lld acc %lld rej %lld\n",
                   nde_method_name(ref[k].m), ref[k].rtol,
                   (long long)sol.stats.nfe, (long long)sol.stats.accepted, (long long)sol.stats.rejected, (long long)ref[k].nfe,
                   (long long)ref[k].acc, (long long)ref[k].rej);
            CHECK(llabs(sol.stats.nfe - ref[k].nfe) <= ref[k].nfe / 50);      /* within 2% */
            CHECK(llabs(sol.stats.accepted - ref[k].acc) <= ref[k].acc / 50 + 1);
            CHECK(sol.stats.nfe == 2 + (nde_tableau_get(ref[k].m)->stages - 1) * (sol.stats.accepted + sol.stats.rejected));
        }
        if (k == 0) {   /* torchdiffeq's value at t = 25 */
            CHECK_NEAR(item(ctx, sol.ys[999], 0), -0.44362288065720373, DOUBLE_ONLY ? 1e-7 : 1e-3, 0);
            CHECK_NEAR(item(ctx, sol.ys[999], 1), 0.2794428693066235, DOUBLE_ONLY ? 1e-7 : 1e-3, 0);
        }
        nde_solution_free(ctx, &sol);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- stiff */
static void test_stiff_vdp(void) {
    nde_ctx *ctx = new_ctx();
    double mu = 1000.0, z0[2] = {2, 0}, ts[2] = {0, 3.0};
    nde_solve_options o = nde_solve_options_default();
    nde_solution si, se;
    nde_status st;
    o.method = NDE_KVAERNO5; o.rtol = 1e-6; o.atol = 1e-6;
    st = nde_solve(ctx, f_vdp, &mu, row(ctx, 2, z0), 2, ts, &o, &si);
    CHECK(st == NDE_OK);
    o.method = NDE_DOPRI5;
    CHECK(nde_solve(ctx, f_vdp, &mu, row(ctx, 2, z0), 2, ts, &o, &se) == NDE_OK);
    printf("van der Pol mu=1000 on [0, 3]: kvaerno5 %lld steps (%lld rejected, nfe %lld, %lld Jacobians), dopri5 %lld steps (nfe %lld)\n",
           (long long)si.stats.accepted, (long long)si.stats.rejected, (long long)si.stats.nfe, (long long)si.stats.njev,
           (long long)se.stats.accepted, (long long)se.stats.nfe);
    CHECK(si.stats.accepted * 20 < se.stats.accepted);
    CHECK_NEAR(item(ctx, si.ys[1], 0), item(ctx, se.ys[1], 0), DOUBLE_ONLY ? 1e-4 : 1e-2, 0);
    CHECK_NEAR(item(ctx, si.ys[1], 1), item(ctx, se.ys[1], 1), DOUBLE_ONLY ? 1e-5 : 1e-2, 0);
    nde_solution_free(ctx, &si);
    nde_solution_free(ctx, &se);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- dense output */
static double dense_error(nde_ctx *ctx, nde_method m, int n) {
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double v = 1.0, ts[2] = {0, 2.0}, e = 0;
    nde_mark mk = nde_ctx_mark(ctx);
    int i;
    o.method = m; o.step_size = 2.0 / n; o.dense = 1;
    if (nde_solve(ctx, f_cos, NULL, row(ctx, 1, &v), 2, ts, &o, &sol) != NDE_OK) return NAN;
    for (i = 0; i < 4 * n; i++) {
        double t = 2.0 * (i + 0.37) / (4 * n);
        nde_tensor *y = nde_solution_eval(ctx, &sol, t);
        double d = fabs(item(ctx, y, 0) - exact_cos(t));
        if (!(d <= e)) e = d;
    }
    nde_solution_free(ctx, &sol);
    nde_ctx_reset(ctx, mk);
    return e;
}
static void test_dense_output(void) {
    nde_ctx *ctx = new_ctx();
    struct { nde_method m; int n; double order; } cases[] = {
        {NDE_EULER, 200, 1}, {NDE_RK4, 20, 4}, {NDE_BOSH3, 40, 3}, {NDE_DOPRI5, 10, 5},
        {NDE_TSIT5, 10, 5}, {NDE_DOPRI8, 8, 6}, {NDE_EXPLICIT_ADAMS, 40, 4}, {NDE_KVAERNO5, 10, 4}};
    int i;
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        double e1 = dense_error(ctx, cases[i].m, cases[i].n), e2 = dense_error(ctx, cases[i].m, 2 * cases[i].n);
        double slope = log(e1 / e2) / log(2.0);
        if (DOUBLE_ONLY) {
            if (!(slope >= cases[i].order - 0.3))
                fprintf(stderr, "dense order of %s: %.3f (%.3g, %.3g)\n", nde_method_name(cases[i].m), slope, e1, e2);
            CHECK(slope >= cases[i].order - 0.3);
        } else CHECK(e2 < 1e-2);
    }
    {   /* adaptive dopri5 dense output vs the exact solution and vs outputs at ts */
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double v[2] = {1, 0}, ts[3] = {0, 3.3, 10}, e = 0;
        int j;
        o.dense = 1; o.rtol = 1e-9; o.atol = 1e-9;
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, v), 3, ts, &o, &sol) == NDE_OK);
        CHECK(sol.num_steps == sol.stats.accepted);
        for (j = 0; j <= 100; j++) {
            double t = 0.1 * j;
            nde_tensor *y = nde_solution_eval(ctx, &sol, t);
            double d = fabs(item(ctx, y, 0) - cos(t)) + fabs(item(ctx, y, 1) + sin(t));
            if (!(d <= e)) e = d;
        }
        CHECK(e < (DOUBLE_ONLY ? 1e-7 : 1e-4));
        CHECK_NEAR(item(ctx, nde_solution_eval(ctx, &sol, 3.3), 0), item(ctx, sol.ys[1], 0), 1e-12, 0);
        CHECK(nde_solution_find_step(&sol, 0.0) == 0);
        CHECK(nde_solution_find_step(&sol, 10.0) == sol.num_steps - 1);
        CHECK(nde_solution_find_step(&sol, 10.5) == -1);
        CHECK(nde_solution_eval(ctx, &sol, 11.0) == NULL);
        CHECK(nde_ctx_status(ctx) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "outside the solved interval");
        nde_ctx_clear_error(ctx);
        {   /* stacked output */
            nde_tensor *s = nde_solution_stack(ctx, &sol);
            CHECK(s && s->ndim == 3 && s->shape[0] == 3 && s->shape[1] == 1 && s->shape[2] == 2);
            CHECK_NEAR(item(ctx, s, 4), cos(10.0), 1e-6, 0);
        }
        nde_solution_free(ctx, &sol);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- backwards in time */
static void test_backwards(void) {
    nde_ctx *ctx = new_ctx();
    nde_method ms[4] = {NDE_DOPRI5, NDE_RK4, NDE_IMPLICIT_ADAMS, NDE_KVAERNO5};
    int i;
    for (i = 0; i < 4; i++) {
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double v[2] = {1, 2}, ts[3] = {2.0, 1.2, 0.0};
        o.method = ms[i]; o.rtol = 1e-8; o.atol = 1e-8;
        if (ms[i] == NDE_RK4 || ms[i] == NDE_IMPLICIT_ADAMS) o.step_size = 0.01;
        CHECK(nde_solve(ctx, f_decay, NULL, row(ctx, 2, v), 3, ts, &o, &sol) == NDE_OK);
        CHECK(sol.num_out == 3);
        CHECK_NEAR(item(ctx, sol.ys[1], 1), 2 * exp(0.8), DOUBLE_ONLY ? 1e-6 : 1e-4, 1e-6);
        CHECK_NEAR(item(ctx, sol.ys[2], 0), exp(2.0), DOUBLE_ONLY ? 1e-6 : 1e-4, 1e-6);
        CHECK(sol.t_final == 0.0);
        nde_solution_free(ctx, &sol);
    }
    {   /* backwards dense output */
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double v = 1.0, ts[2] = {2.0, -1.0};
        o.dense = 1; o.method = NDE_TSIT5;
        CHECK(nde_solve(ctx, f_cos, NULL, row(ctx, 1, &v), 2, ts, &o, &sol) == NDE_OK);
        CHECK_NEAR(item(ctx, nde_solution_eval(ctx, &sol, 0.4), 0), exact_cos(0.4) / exact_cos(2.0), 1e-5, 1e-5);
        nde_solution_free(ctx, &sol);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- events */
static nde_tensor *g_half(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    (void)t; (void)u;
    return nde_add_scalar(ctx, nde_slice(ctx, z, 1, 0, 1), NDE_R(-0.5));
}
static nde_tensor *g_two(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {   /* x = 0 or t = 2.5 */
    nde_tensor *p[2];
    (void)u;
    p[0] = nde_reshape(ctx, nde_slice(ctx, z, 1, 0, 1), 1, (int64_t[]){1});
    p[1] = nde_add_scalar(ctx, t, NDE_R(-2.5));
    return nde_concat(ctx, 2, p, 0);
}
static void test_events(void) {
    nde_ctx *ctx = new_ctx();
    double tol = DOUBLE_ONLY ? 1e-8 : 1e-4;
    {   /* y' = -y, y = 0.5 at ln 2 */
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double v = 1.0, ts[4] = {0, 0.25, 0.9, 2.0};
        o.event = g_half;
        CHECK(nde_solve(ctx, f_decay, NULL, row(ctx, 1, &v), 4, ts, &o, &sol) == NDE_EVENT);
        CHECK_NEAR(sol.t_event, log(2.0), tol, 0);
        CHECK_NEAR(item(ctx, sol.z_event, 0), 0.5, tol, 0);
        CHECK(sol.event_index == 0 && sol.num_out == 2 && sol.t_final == sol.t_event);
        nde_solution_free(ctx, &sol);
        o.event_direction = +1;    /* g falls: a rising-only event never fires */
        CHECK(nde_solve(ctx, f_decay, NULL, row(ctx, 1, &v), 4, ts, &o, &sol) == NDE_OK);
        CHECK(sol.num_out == 4);
        nde_solution_free(ctx, &sol);
    }
    {   /* oscillator x = cos t: x = 0 at pi/2, with several methods */
        nde_method ms[4] = {NDE_DOPRI5, NDE_RK4, NDE_DOPRI8, NDE_KVAERNO5};
        int i;
        for (i = 0; i < 4; i++) {
            nde_solve_options o = nde_solve_options_default();
            nde_solution sol;
            double v[2] = {1, 0}, ts[2] = {0, 10};
            o.event = g_two; o.method = ms[i]; o.rtol = DOUBLE_ONLY ? 1e-12 : 1e-6; o.atol = o.rtol;
            if (ms[i] == NDE_RK4) o.step_size = 0.005;
            if (ms[i] == NDE_KVAERNO5 && DOUBLE_ONLY) { o.rtol = 1e-10; o.atol = 1e-10; }
            CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, v), 2, ts, &o, &sol) == NDE_EVENT);
            if (fabs(sol.t_event - 1.5707963267948966) > tol)
                fprintf(stderr, "event with %s at %.17g\n", nde_method_name(ms[i]), sol.t_event);
            CHECK_NEAR(sol.t_event, 1.5707963267948966, tol, 0);
            CHECK(sol.event_index == 0 && sol.num_out == 1);
            nde_solution_free(ctx, &sol);
            o.event_direction = +1;   /* first rising crossing: the t = 2.5 function */
            CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, v), 2, ts, &o, &sol) == NDE_EVENT);
            CHECK_NEAR(sol.t_event, 2.5, tol, 0);
            CHECK(sol.event_index == 1);
            nde_solution_free(ctx, &sol);
        }
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- taped solves (direct gradients) */
static void test_direct_gradients(void) {
#ifdef NDE_DOUBLE
    nde_ctx *ctx = new_ctx();
    nde_tensor *a = nde_param_new(ctx, "a", 1, (int64_t[]){1});
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double v[2] = {1.0, 3.0}, ts[3] = {0, 0.7, 1.5}, av = 0.8;
    nde_tensor *z0, *loss;
    nde_real aval = (nde_real)av;
    nde_mark m0;
    nde_tensor_set_host(ctx, a, &aval);
    /* loss = sum z(0.7) + sum z(1.5); z = z0 exp(-a t) */
    o.rtol = 1e-10; o.atol = 1e-10; o.dense = 1;
    z0 = row(ctx, 2, v); z0->requires_grad = 1;
    m0 = nde_ctx_mark(ctx);
    CHECK(nde_solve(ctx, f_param, a, z0, 3, ts, &o, &sol) == NDE_OK);
    CHECK(sol.taped == 1);
    loss = nde_add(ctx, nde_sum(ctx, sol.ys[1]), nde_sum(ctx, sol.ys[2]));
    nde_zero_grad(ctx);
    CHECK(nde_backward(ctx, loss) == NDE_OK);
    CHECK_NEAR(z0->grad[0], exp(-av * 0.7) + exp(-av * 1.5), 1e-8, 0);
    CHECK_NEAR(nde_params_grad(ctx)[0], -4.0 * (0.7 * exp(-av * 0.7) + 1.5 * exp(-av * 1.5)), 1e-8, 0);
    nde_solution_free(ctx, &sol);
    nde_ctx_reset(ctx, m0);
    z0->grad = NULL;
    {   /* the dense output of a taped solve is taped too: d z(1.1) / d z0 */
        nde_tensor *y;
        CHECK(nde_solve(ctx, f_param, a, z0, 3, ts, &o, &sol) == NDE_OK);
        y = nde_solution_eval(ctx, &sol, 1.1);
        CHECK(nde_backward(ctx, nde_sum(ctx, nde_slice(ctx, y, 1, 1, 2))) == NDE_OK);
        CHECK(z0->grad && fabs(z0->grad[0]) < 1e-12);
        CHECK_NEAR(z0->grad ? z0->grad[1] : 0, exp(-av * 1.1), 1e-7, 0);
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, m0);
        z0->grad = NULL;
    }
    {   /* fixed-step rk4: the gradient of the discrete map equals central differences */
        double eps = 1e-6, lp = 0, lm = 0, g;
        nde_solve_options f = nde_solve_options_default();
        int k;
        nde_mark mk = nde_ctx_mark(ctx);
        f.method = NDE_RK4; f.step_size = 0.1;
        nde_zero_grad(ctx);
        CHECK(nde_solve(ctx, f_param, a, z0, 3, ts, &f, &sol) == NDE_OK);
        loss = nde_add(ctx, nde_sum(ctx, nde_square(ctx, sol.ys[1])), nde_sum(ctx, sol.ys[2]));
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        g = nde_params_grad(ctx)[0];
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, mk);
        nde_set_grad_enabled(ctx, 0);
        for (k = 0; k < 2; k++) {
            double l;
            aval = (nde_real)(av + (k ? -eps : eps));
            nde_tensor_set_host(ctx, a, &aval);
            CHECK(nde_solve(ctx, f_param, a, z0, 3, ts, &f, &sol) == NDE_OK);
            CHECK(sol.taped == 0);
            l = item(ctx, sol.ys[1], 0) * item(ctx, sol.ys[1], 0) + item(ctx, sol.ys[1], 1) * item(ctx, sol.ys[1], 1) +
                item(ctx, sol.ys[2], 0) + item(ctx, sol.ys[2], 1);
            if (k) lm = l; else lp = l;
            nde_solution_free(ctx, &sol);
        }
        nde_set_grad_enabled(ctx, 1);
        CHECK_NEAR(g, (lp - lm) / (2 * eps), 1e-7, 1e-7);
    }
    {   /* the implicit method: taped through the implicit-function theorem */
        nde_solve_options k5 = nde_solve_options_default();
        nde_mark mk = nde_ctx_mark(ctx);
        k5.method = NDE_KVAERNO5; k5.rtol = 1e-10; k5.atol = 1e-10;
        aval = (nde_real)av;
        nde_tensor_set_host(ctx, a, &aval);
        nde_zero_grad(ctx);
        z0->grad = NULL;
        CHECK(nde_solve(ctx, f_param, a, z0, 3, ts, &k5, &sol) == NDE_OK);
        CHECK(sol.taped == 1);
        loss = nde_add(ctx, nde_sum(ctx, sol.ys[1]), nde_sum(ctx, sol.ys[2]));
        CHECK(nde_backward(ctx, loss) == NDE_OK);
        CHECK_NEAR(z0->grad ? z0->grad[0] : 0, exp(-av * 0.7) + exp(-av * 1.5), 1e-7, 0);
        CHECK_NEAR(nde_params_grad(ctx)[0], -4.0 * (0.7 * exp(-av * 0.7) + 1.5 * exp(-av * 1.5)), 1e-7, 0);
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, mk);
        z0->grad = NULL;
    }
    {   /* the Jacobians of an untaped implicit solve leave parameter gradients and their redirection alone */
        nde_real buf[1] = {0};
        nde_solve_options k5 = nde_solve_options_default();
        nde_mark mk = nde_ctx_mark(ctx);
        k5.method = NDE_KVAERNO5;
        nde_params_redirect_grad(ctx, buf);
        nde_set_grad_enabled(ctx, 0);
        CHECK(nde_solve(ctx, f_param, a, row(ctx, 2, v), 3, ts, &k5, &sol) == NDE_OK);
        CHECK(sol.stats.njev > 0 && sol.taped == 0);
        CHECK(nde_params_grad(ctx) == buf && buf[0] == 0);
        nde_set_grad_enabled(ctx, 1);
        nde_params_redirect_grad(ctx, NULL);
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, mk);
    }
    {   /* nonlinear (Van der Pol, z0 gradient), fixed kvaerno5 steps: tape vs central differences */
        double mu = 5.0, w[2] = {1.5, -0.5}, tt[2] = {0, 0.8}, eps = 1e-6, fd[2], gl[2];
        nde_solve_options k5 = nde_solve_options_default();
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *zv = row(ctx, 2, w);
        int k, c;
        k5.method = NDE_KVAERNO5; k5.step_size = 0.1; k5.rtol = 1e-12; k5.atol = 1e-12;
        zv->requires_grad = 1;
        CHECK(nde_solve(ctx, f_vdp, &mu, zv, 2, tt, &k5, &sol) == NDE_OK);
        CHECK(sol.taped == 1);
        CHECK(nde_backward(ctx, nde_sum(ctx, nde_mul(ctx, sol.ys[1], sol.ys[1]))) == NDE_OK);
        gl[0] = zv->grad ? zv->grad[0] : 0; gl[1] = zv->grad ? zv->grad[1] : 0;
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, mk);
        nde_set_grad_enabled(ctx, 0);
        for (c = 0; c < 2; c++) {
            double l[2];
            for (k = 0; k < 2; k++) {
                double ww[2] = {w[0], w[1]};
                ww[c] += k ? -eps : eps;
                CHECK(nde_solve(ctx, f_vdp, &mu, row(ctx, 2, ww), 2, tt, &k5, &sol) == NDE_OK);
                l[k] = item(ctx, sol.ys[1], 0) * item(ctx, sol.ys[1], 0) + item(ctx, sol.ys[1], 1) * item(ctx, sol.ys[1], 1);
                nde_solution_free(ctx, &sol);
            }
            fd[c] = (l[0] - l[1]) / (2 * eps);
        }
        nde_set_grad_enabled(ctx, 1);
        nde_ctx_reset(ctx, mk);
        CHECK_NEAR(gl[0], fd[0], 1e-6, 1e-6);
        CHECK_NEAR(gl[1], fd[1], 1e-6, 1e-6);
    }
    nde_ctx_free(ctx);
#endif
}

/* ---------------------------------------------------------------- memory */
static void test_memory_flat(void) {
    nde_ctx *ctx = new_ctx();
    size_t used[2];
    int k;
    for (k = 0; k < 2; k++) {
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        double v[2] = {1, 0}, ts[2] = {0, k ? 200.0 : 20.0};
        size_t base;
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *z0 = row(ctx, 2, v);
        base = nde_ctx_used_bytes(ctx);
        nde_ctx_reset_peak(ctx);
        CHECK(nde_solve(ctx, f_osc, NULL, z0, 2, ts, &o, &sol) == NDE_OK);   /* grad mode on, nothing requires grad */
        used[k] = nde_ctx_peak_bytes(ctx) - base;
        CHECK(sol.taped == 0 && nde_grad_enabled(ctx) == 1);
        CHECK(nde_tape_length(ctx) == 0);
        if (k) CHECK(sol.stats.accepted > 1000);
        nde_solution_free(ctx, &sol);
        nde_ctx_reset(ctx, m);
    }
    CHECK(used[1] == used[0]);   /* 10x the steps, the same peak */
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- step_ts, jump_ts, dtmax, options */
static nde_tensor *f_jump(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *u) {
    /* z' = 1 for t < 1, z' = -1 after */
    double tv = item(ctx, t, 0);
    (void)u;
    return nde_tensor_full(ctx, z->ndim, z->shape, tv < 1.0 ? NDE_R(1.0) : NDE_R(-1.0));
}
static void test_step_options(void) {
    nde_ctx *ctx = new_ctx();
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double v = 0.0, ts[2] = {0, 2}, jt = 1.0, st_[2] = {0.3, 0.77};
    int64_t i;
    int hit[2] = {0, 0};
    o.jump_ts = &jt; o.num_jump_ts = 1; o.step_ts = st_; o.num_step_ts = 2; o.record_steps = 1;
    CHECK(nde_solve(ctx, f_jump, NULL, row(ctx, 1, &v), 2, ts, &o, &sol) == NDE_OK);
    CHECK_NEAR(item(ctx, sol.ys[1], 0), 0.0, DOUBLE_ONLY ? 1e-12 : 1e-5, 0);   /* exact: the kink is stepped to */
    for (i = 0; i < sol.num_steps; i++) {
        if (sol.steps[i].t0 == 0.3) hit[0] = 1;
        if (sol.steps[i].t0 == 0.77) hit[1] = 1;
    }
    CHECK(hit[0] && hit[1]);
    CHECK(sol.steps[0].y0 && sol.steps[0].y1 && sol.steps[0].f0 == NULL);
    nde_solution_free(ctx, &sol);
    {   /* dtmin: steps never shorter (but the last), accepted whatever their error */
        nde_solve_options d = nde_solve_options_default();
        double w[2] = {1, 0}, t2[2] = {0, 5};
        d.dtmin = 0.5; d.record_steps = 1;
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, w), 2, t2, &d, &sol) == NDE_OK);
        for (i = 0; i + 1 < sol.num_steps; i++) CHECK(sol.steps[i].h >= 0.5);
        CHECK(sol.stats.rejected == 0 && sol.num_steps <= 10);
        nde_solution_free(ctx, &sol);
    }
    {   /* dtmax bounds every step; first_step is used */
        nde_solve_options d = nde_solve_options_default();
        double w[2] = {1, 0}, t2[2] = {0, 5};
        d.dtmax = 0.05; d.first_step = 0.01; d.record_steps = 1;
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, w), 2, t2, &d, &sol) == NDE_OK);
        CHECK(sol.steps[0].h == 0.01);
        for (i = 0; i < sol.num_steps; i++) CHECK(sol.steps[i].h <= 0.05 + 1e-15);
        CHECK(sol.num_steps >= 100);
        nde_solution_free(ctx, &sol);
    }
    {   /* a per-component atol and a user norm (max norm) */
        nde_solve_options d = nde_solve_options_default();
        double w[2] = {1, 0}, t2[2] = {0, 5};
        nde_real at[2] = {1e-9, 1e-3};
        d.atol_tensor = nde_tensor_from(ctx, 2, (int64_t[]){1, 2}, at);
        d.rtol = 1e-9;
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, w), 2, t2, &d, &sol) == NDE_OK);
        CHECK_NEAR(item(ctx, sol.ys[1], 0), cos(5.0), DOUBLE_ONLY ? 1e-6 : 1e-4, 0);
        nde_solution_free(ctx, &sol);
    }
    {   /* fixed step_size: the last step lands on the end */
        nde_solve_options d = nde_solve_options_default();
        double w = 1.0, t2[2] = {0, 1.05};
        d.method = NDE_EULER; d.step_size = 0.1; d.record_steps = 1;
        CHECK(nde_solve(ctx, f_decay, NULL, row(ctx, 1, &w), 2, t2, &d, &sol) == NDE_OK);
        CHECK(sol.num_steps == 11);
        CHECK_NEAR(sol.steps[10].h, 0.05, 1e-12, 0);
        CHECK_NEAR(item(ctx, sol.ys[1], 0), pow(0.9, 10) * 0.95, 1e-6, 0);
        nde_solution_free(ctx, &sol);
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- bad input */
static double max_norm(nde_ctx *ctx, const nde_tensor *s, void *u) {
    const nde_backend *be = nde_ctx_backend(ctx);
    (void)u;
    return be->max_abs(be->self, s->size, s->data);
}
#define EXPECT_FAIL(call, status, fragment) do { \
        nde_status st__ = (call); \
        CHECK(st__ == (status)); \
        CHECK(nde_ctx_status(ctx) == (status)); \
        CHECK_MSG(nde_ctx_message(ctx), fragment); \
        nde_solution_free(ctx, &sol); \
        nde_ctx_clear_error(ctx); \
    } while (0)
static void test_bad_input(void) {
    nde_ctx *ctx = new_ctx();
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double v = 1.0, ts[3] = {0, 1, 2}, bad[3] = {0, 1, 0.5}, nanv = NAN;
    nde_tensor *z = row(ctx, 1, &v);
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 0, ts, &o, &sol), NDE_ERR_ARG, "empty ts");
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, bad, &o, &sol), NDE_ERR_ARG, "ts must be strictly monotonic");
    bad[2] = NAN;
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, bad, &o, &sol), NDE_ERR_ARG, "ts[2] = nan is not finite");
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, row(ctx, 1, &nanv), 3, ts, &o, &sol), NDE_ERR_NONFINITE, "initial state has NaN");
    EXPECT_FAIL(nde_solve(ctx, NULL, NULL, z, 3, ts, &o, &sol), NDE_ERR_ARG, "NULL vector field");
    EXPECT_FAIL(nde_solve(ctx, f_badshape, NULL, row(ctx, 2, ts), 3, ts, &o, &sol), NDE_ERR_SHAPE, "returned shape (1) for a state of shape (1, 2)");
    {   /* NaN from f: immediately at t0, and later in the solve */
        double big = 200.0, small = 1.0;
        EXPECT_FAIL(nde_solve(ctx, f_nan, NULL, row(ctx, 1, &small), 3, ts, &o, &sol), NDE_ERR_NONFINITE,
                    "nde_solve (dopri5): at t = 0, h = 0: the vector field returned NaN or Inf");
        /* f = z log(1.2 - t) is NaN after t = 1.2 */
        (void)big;
        o.method = NDE_RK4; o.step_size = 0.5;
        EXPECT_FAIL(nde_solve(ctx, f_nan_later, NULL, row(ctx, 1, &small), 3, ts, &o, &sol), NDE_ERR_NONFINITE,
                    "nde_solve (rk4): at t = 1, h = 0.5: the state became NaN or Inf");
        o.method = NDE_DOPRI5; o.step_size = 0;
        EXPECT_FAIL(nde_solve(ctx, f_nan_later, NULL, row(ctx, 1, &small), 3, ts, &o, &sol), NDE_ERR_NONFINITE,
                    "NaN or Inf in the vector field or the state");
        CHECK(sol.t_final > 1.19 && sol.t_final <= 1.2);
    }
    o.max_num_steps = 10;
    EXPECT_FAIL(nde_solve(ctx, f_osc, NULL, row(ctx, 2, ts), 3, ts, &o, &sol), NDE_ERR_MAX_STEPS, "max_num_steps (10) exceeded");
    o.method = NDE_RK4; o.step_size = 0.01;
    EXPECT_FAIL(nde_solve(ctx, f_osc, NULL, row(ctx, 2, ts), 3, ts, &o, &sol), NDE_ERR_MAX_STEPS, "max_num_steps (10) exceeded");
    o = nde_solve_options_default();
    EXPECT_FAIL(nde_solve(ctx, f_blowup, NULL, z, 3, ts, &o, &sol), NDE_ERR_STEP_UNDERFLOW, "step size underflow");
    {
        const char *msg;
        nde_solve(ctx, f_blowup, NULL, z, 3, ts, &o, &sol);
        msg = nde_ctx_message(ctx);
        CHECK_MSG(msg, "nde_solve (dopri5): at t = ");
        CHECK(fabs(sol.t_final - 1.0) < 1e-3);
        nde_solution_free(ctx, &sol);
        nde_ctx_clear_error(ctx);
    }
    o.rtol = -1;
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, ts, &o, &sol), NDE_ERR_ARG, "rtol = -1");
    o = nde_solve_options_default();
    o.method = (nde_method)99;
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, ts, &o, &sol), NDE_ERR_ARG, "unknown method 99");
    o = nde_solve_options_default();
    {
        double g[3] = {0, 1.5, 1.9};
        o.grid = g; o.grid_len = 3; o.method = NDE_RK4;
        EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, ts, &o, &sol), NDE_ERR_ARG, "the grid must start at ts[0]");
    }
    o = nde_solve_options_default();
    o.atol_tensor = row(ctx, 2, ts);
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, ts, &o, &sol), NDE_ERR_SHAPE, "atol_tensor is (1, 2) but the state is (1, 1)");
    o = nde_solve_options_default();
    o.adams_order = 12;
    EXPECT_FAIL(nde_solve(ctx, f_decay, NULL, z, 3, ts, &o, &sol), NDE_ERR_ARG, "adams_order = 12");
    /* a user norm is used (max norm is stricter than RMS: more steps) */
    {
        nde_solution s2;
        double w[2] = {1, 0};
        o = nde_solve_options_default();
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, w), 3, ts, &o, &s2) == NDE_OK);
        o.norm = max_norm;
        CHECK(nde_solve(ctx, f_osc, NULL, row(ctx, 2, w), 3, ts, &o, &sol) == NDE_OK);
        CHECK(sol.stats.accepted >= s2.stats.accepted);
        CHECK(sol.stats.nfe != s2.stats.nfe);
        nde_solution_free(ctx, &sol);
        nde_solution_free(ctx, &s2);
    }
    /* a single output time returns z0 */
    CHECK(nde_solve(ctx, f_decay, NULL, z, 1, ts, NULL, &sol) == NDE_OK);
    CHECK(sol.num_out == 1 && item(ctx, sol.ys[0], 0) == 1.0 && sol.stats.nfe == 0);
    nde_solution_free(ctx, &sol);
    /* the context's sticky error stops a solve */
    nde_ctx_fail(ctx, NDE_ERR_IO, "earlier failure");
    CHECK(nde_solve(ctx, f_decay, NULL, z, 3, ts, NULL, &sol) == NDE_ERR_IO);
    nde_ctx_clear_error(ctx);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- odeint / batches */
static void test_odeint_batch(void) {
    nde_ctx *ctx = new_ctx();
    nde_real v[6] = {1, 0, 0, 1, 2, 0};
    nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){3, 2}, v);
    double ts[4] = {0, 1, 2, 3};
    nde_tensor *ys = nde_odeint(ctx, f_osc, NULL, z0, 4, ts, NULL);
    CHECK(ys && ys->ndim == 3 && ys->shape[0] == 4 && ys->shape[1] == 3 && ys->shape[2] == 2);
    if (ys) {
        CHECK_NEAR(item(ctx, ys, 3 * 6 + 0), cos(3.0), 1e-5, 0);
        CHECK_NEAR(item(ctx, ys, 3 * 6 + 2), sin(3.0), 1e-5, 0);
        CHECK_NEAR(item(ctx, ys, 3 * 6 + 4), 2 * cos(3.0), 1e-5, 0);
    }
    nde_ctx_free(ctx);
}

int main(void) {
    CHECK(quickstart_solvers() == 0);
    test_methods_table();
    test_building_blocks();
    test_convergence_orders();
    test_adams_uneven_grid();
    test_adaptive_accuracy();
    test_torchdiffeq_counts();
    test_stiff_vdp();
    test_dense_output();
    test_backwards();
    test_events();
    test_direct_gradients();
    test_memory_flat();
    test_step_options();
    test_bad_input();
    test_odeint_batch();
    return nde_test_finish("test_solvers");
}
