/* tests/test_core.c - nde.h: ops and their gradients (central finite differences
   in double), broadcasting, arena/tape, errors. */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "nde_test.h"
#include <stdlib.h>

#ifdef NDE_DOUBLE
#define GRAD_TOL 1e-6
#endif

/* ---------------------------------------------------------------- gradcheck */
#define GC_MAX_IN 3
typedef nde_tensor *(*gc_fn)(nde_ctx *ctx, nde_tensor **in, void *user);
typedef struct gc_case {
    const char *name; gc_fn f; void *user; int nin;
    int ndim[GC_MAX_IN]; int64_t shape[GC_MAX_IN][4];
    int positive;          /* inputs drawn from [0.5, 1.5] (log, sqrt, div) */
} gc_case;

#ifdef GRAD_TOL
static double gc_loss(nde_ctx *ctx, const gc_case *c, nde_tensor **in, const nde_tensor *w, nde_tensor **y_out) {
    nde_tensor *y = c->f(ctx, in, c->user);
    nde_tensor *l;
    if (!y) return NAN;
    if (y_out) *y_out = y;
    l = nde_sum(ctx, nde_mul(ctx, y, (nde_tensor *)w));
    return l ? (double)nde_tensor_item(ctx, l, 0) : NAN;
}
#endif

#ifdef GRAD_TOL
/* Max over inputs and elements of |analytic - fd| / max(1, |fd|). */
static double gradcheck(const gc_case *c) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_tensor *in[GC_MAX_IN], *y = NULL, *w, *loss;
    nde_rng r = nde_rng_new(1234, 0);
    double worst = 0.0, h = 1e-5;
    int i; int64_t j;
    for (i = 0; i < c->nin; i++) {
        in[i] = nde_tensor_new(ctx, c->ndim[i], c->shape[i]);
        if (c->positive) nde_tensor_fill_uniform(ctx, in[i], &r, NDE_R(0.5), NDE_R(1.5));
        else nde_tensor_fill_normal(ctx, in[i], &r, NDE_R(0.0), NDE_R(1.0));
        in[i]->requires_grad = 1;
    }
    {
        nde_tensor *y0 = c->f(ctx, in, c->user);
        if (!y0) { fprintf(stderr, "gradcheck %s: %s\n", c->name, nde_ctx_message(ctx)); nde_ctx_free(ctx); return 1e9; }
        w = nde_tensor_new(ctx, y0->ndim, y0->shape);
        nde_tensor_fill_normal(ctx, w, &r, NDE_R(0.0), NDE_R(1.0));
    }
    {
        nde_tensor *yy = c->f(ctx, in, c->user);
        loss = nde_sum(ctx, nde_mul(ctx, yy, w));
        y = yy;
    }
    (void)y;
    for (i = 0; i < c->nin; i++) in[i]->grad = NULL;
    nde_backward(ctx, loss);
    nde_set_grad_enabled(ctx, 0);
    for (i = 0; i < c->nin; i++) {
        for (j = 0; j < in[i]->size; j++) {
            nde_real keep = in[i]->data[j];
            double lp, lm, fd, an, err;
            nde_mark m = nde_ctx_mark(ctx);
            in[i]->data[j] = keep + (nde_real)h; lp = gc_loss(ctx, c, in, w, NULL); nde_ctx_reset(ctx, m);
            in[i]->data[j] = keep - (nde_real)h; lm = gc_loss(ctx, c, in, w, NULL); nde_ctx_reset(ctx, m);
            in[i]->data[j] = keep;
            fd = (lp - lm) / (2 * h);
            an = in[i]->grad ? in[i]->grad[j] : 0.0;
            err = fabs(an - fd) / (fabs(fd) > 1 ? fabs(fd) : 1);
            if (!(err <= worst)) worst = err;
        }
    }
    if (nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "gradcheck %s: %s\n", c->name, nde_ctx_message(ctx)); worst = 1e9; }
    nde_ctx_free(ctx);
    return worst;
}
#endif

static nde_tensor *f_add(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_add(c, x[0], x[1]); }
static nde_tensor *f_sub(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_sub(c, x[0], x[1]); }
static nde_tensor *f_mul(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mul(c, x[0], x[1]); }
static nde_tensor *f_div(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_div(c, x[0], x[1]); }
typedef nde_tensor *(*unary_op)(nde_ctx *, nde_tensor *);
static nde_tensor *f_unary(nde_ctx *c, nde_tensor **x, void *u) { return (*(unary_op *)u)(c, x[0]); }
static nde_tensor *f_scale(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_scale(c, x[0], NDE_R(-2.5)); }
static nde_tensor *f_leaky(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_leaky_relu(c, x[0], NDE_R(0.1)); }
static nde_tensor *f_elu(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_elu(c, x[0], NDE_R(0.7)); }
static nde_tensor *f_powi(nde_ctx *c, nde_tensor **x, void *u) { return nde_powi(c, x[0], *(int *)u); }
static nde_tensor *f_matmul(nde_ctx *c, nde_tensor **x, void *u) { int *t = (int *)u; return nde_matmul(c, x[0], x[1], t[0], t[1]); }
static nde_tensor *f_sum(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_sum(c, x[0]); }
static nde_tensor *f_mean(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mean(c, x[0]); }
static nde_tensor *f_sum_axis(nde_ctx *c, nde_tensor **x, void *u) { return nde_sum_axis(c, x[0], *(int *)u, 0); }
static nde_tensor *f_mean_axis(nde_ctx *c, nde_tensor **x, void *u) { return nde_mean_axis(c, x[0], *(int *)u, 1); }
static nde_tensor *f_transpose(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_transpose(c, x[0]); }
static nde_tensor *f_reshape(nde_ctx *c, nde_tensor **x, void *u) { int64_t s[2] = {4, 6}; (void)u; return nde_tanh(c, nde_reshape(c, x[0], 2, s)); }
static nde_tensor *f_concat(nde_ctx *c, nde_tensor **x, void *u) { nde_tensor *xs[2]; xs[0] = x[0]; xs[1] = x[1]; return nde_concat(c, 2, xs, *(int *)u); }
static nde_tensor *f_slice(nde_ctx *c, nde_tensor **x, void *u) { return nde_slice(c, x[0], *(int *)u, 1, 3); }
static nde_tensor *f_gather(nde_ctx *c, nde_tensor **x, void *u) { int64_t idx[5] = {2, 0, 2, 3, 1}; (void)u; return nde_gather_rows(c, x[0], 5, idx); }
static nde_tensor *f_conv2d(nde_ctx *c, nde_tensor **x, void *u) { int *sp = (int *)u; return nde_conv2d(c, x[0], x[1], x[2], sp[0], sp[1]); }
static nde_tensor *f_conv1d(nde_ctx *c, nde_tensor **x, void *u) { int *sp = (int *)u; return nde_conv1d(c, x[0], x[1], x[2], sp[0], sp[1]); }
static nde_tensor *f_gnorm(nde_ctx *c, nde_tensor **x, void *u) { return nde_group_norm(c, x[0], *(int *)u, x[1], x[2], NDE_R(1e-5)); }
static nde_tensor *f_avgpool(nde_ctx *c, nde_tensor **x, void *u) { int *ks = (int *)u; return nde_avg_pool2d(c, x[0], ks[0], ks[1]); }
static nde_tensor *f_gap(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_global_avg_pool(c, x[0]); }
static nde_tensor *f_logsm(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_log_softmax(c, x[0]); }
static nde_tensor *f_xent(nde_ctx *c, nde_tensor **x, void *u) { int64_t lab[4] = {0, 2, 1, 2}; (void)u; return nde_cross_entropy(c, x[0], lab); }
static nde_tensor *f_mse(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mse_loss(c, x[0], x[1]); }
static nde_tensor *f_l1(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_l1_loss(c, x[0], x[1]); }
static nde_tensor *f_lincomb(nde_ctx *c, nde_tensor **x, void *u) {
    nde_real co[3] = {NDE_R(0.5), NDE_R(-2.0), NDE_R(3.0)}; nde_tensor *xs[3]; (void)u;
    xs[0] = x[0]; xs[1] = x[1]; xs[2] = x[0];
    return nde_lincomb(c, 3, co, xs);
}
static nde_tensor *f_clone(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mul(c, nde_tensor_clone(c, x[0]), x[0]); }

static void set_shape(gc_case *c, int i, int nd, int64_t a, int64_t b, int64_t cc, int64_t d) {
    c->ndim[i] = nd; c->shape[i][0] = a; c->shape[i][1] = b; c->shape[i][2] = cc; c->shape[i][3] = d;
}
static gc_case mk(const char *name, gc_fn f, void *user, int nin, int positive) {
    gc_case c; memset(&c, 0, sizeof c); c.name = name; c.f = f; c.user = user; c.nin = nin; c.positive = positive; return c;
}
static void run_case(const gc_case *c) {
#ifdef GRAD_TOL
    double e = gradcheck(c);
    if (e > GRAD_TOL) fprintf(stderr, "gradcheck %s: max relative error %.3g\n", c->name, e);
    CHECK(e <= GRAD_TOL);
#else
    (void)c;
#endif
}

static void test_gradients(void) {
    static unary_op un[] = {nde_neg, nde_square, nde_exp, nde_sin, nde_cos, nde_tanh, nde_sigmoid, nde_relu, nde_softplus, nde_abs};
    static const char *un_names[] = {"neg", "square", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "softplus", "abs"};
    static unary_op pos[] = {nde_sqrt, nde_log};
    static int tt[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    static int ax0 = 0, ax1 = 1, ax2 = 2, p3 = 3, pm2 = -2, g2 = 2;
    static int conv_a[2] = {1, 1}, conv_b[2] = {2, 0}, pool[2] = {2, 2}, pool2[2] = {3, 1};
    gc_fn bins[4] = {f_add, f_sub, f_mul, f_div};
    const char *bin_names[4] = {"add", "sub", "mul", "div"};
    gc_case c; int i, k;
    /* binary ops on the broadcast cases: same, scalar, row, column, channel */
    for (k = 0; k < 4; k++) {
        c = mk(bin_names[k], bins[k], NULL, 2, k == 3);
        set_shape(&c, 0, 2, 3, 4, 1, 1); set_shape(&c, 1, 2, 3, 4, 1, 1); run_case(&c);
        set_shape(&c, 1, 1, 1, 1, 1, 1); run_case(&c);
        set_shape(&c, 1, 1, 4, 1, 1, 1); run_case(&c);
        set_shape(&c, 1, 2, 3, 1, 1, 1); run_case(&c);
        set_shape(&c, 0, 1, 4, 1, 1, 1); set_shape(&c, 1, 2, 3, 4, 1, 1); run_case(&c); /* broadcast a */
        set_shape(&c, 0, 4, 2, 3, 2, 2); set_shape(&c, 1, 4, 1, 3, 1, 1); run_case(&c);
    }
    for (i = 0; i < (int)(sizeof un / sizeof un[0]); i++) {
        c = mk(un_names[i], f_unary, &un[i], 1, 0); set_shape(&c, 0, 2, 3, 5, 1, 1); run_case(&c);
    }
    for (i = 0; i < 2; i++) { c = mk(i ? "log" : "sqrt", f_unary, &pos[i], 1, 1); set_shape(&c, 0, 1, 7, 1, 1, 1); run_case(&c); }
    c = mk("scale", f_scale, NULL, 1, 0); set_shape(&c, 0, 1, 5, 1, 1, 1); run_case(&c);
    c = mk("leaky_relu", f_leaky, NULL, 1, 0); set_shape(&c, 0, 1, 9, 1, 1, 1); run_case(&c);
    c = mk("elu", f_elu, NULL, 1, 0); set_shape(&c, 0, 1, 9, 1, 1, 1); run_case(&c);
    c = mk("powi3", f_powi, &p3, 1, 0); set_shape(&c, 0, 1, 6, 1, 1, 1); run_case(&c);
    c = mk("powi-2", f_powi, &pm2, 1, 1); set_shape(&c, 0, 1, 6, 1, 1, 1); run_case(&c);
    for (k = 0; k < 4; k++) {
        c = mk("matmul", f_matmul, tt[k], 2, 0);
        set_shape(&c, 0, 2, tt[k][0] ? 4 : 3, tt[k][0] ? 3 : 4, 1, 1);
        set_shape(&c, 1, 2, tt[k][1] ? 5 : 4, tt[k][1] ? 4 : 5, 1, 1);
        run_case(&c);
    }
    c = mk("sum", f_sum, NULL, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("mean", f_mean, NULL, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("sum_axis0", f_sum_axis, &ax0, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("sum_axis1", f_sum_axis, &ax1, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("mean_axis2", f_mean_axis, &ax2, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("transpose", f_transpose, NULL, 1, 0); set_shape(&c, 0, 2, 3, 5, 1, 1); run_case(&c);
    c = mk("reshape", f_reshape, NULL, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("concat0", f_concat, &ax0, 2, 0); set_shape(&c, 0, 2, 2, 3, 1, 1); set_shape(&c, 1, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("concat1", f_concat, &ax1, 2, 0); set_shape(&c, 0, 3, 2, 3, 2, 1); set_shape(&c, 1, 3, 2, 1, 2, 1); run_case(&c);
    c = mk("slice1", f_slice, &ax1, 1, 0); set_shape(&c, 0, 3, 2, 4, 3, 1); run_case(&c);
    c = mk("slice0", f_slice, &ax0, 1, 0); set_shape(&c, 0, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("gather_rows", f_gather, NULL, 1, 0); set_shape(&c, 0, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("conv2d", f_conv2d, conv_a, 3, 0); set_shape(&c, 0, 4, 2, 3, 5, 4); set_shape(&c, 1, 4, 4, 3, 3, 3); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("conv2d_s2", f_conv2d, conv_b, 3, 0); set_shape(&c, 0, 4, 2, 2, 5, 6); set_shape(&c, 1, 4, 3, 2, 2, 3); set_shape(&c, 2, 1, 3, 1, 1, 1); run_case(&c);
    c = mk("conv1d", f_conv1d, conv_a, 3, 0); set_shape(&c, 0, 3, 2, 3, 7, 1); set_shape(&c, 1, 3, 4, 3, 3, 1); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("group_norm", f_gnorm, &g2, 3, 0); set_shape(&c, 0, 4, 2, 4, 3, 2); set_shape(&c, 1, 1, 4, 1, 1, 1); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("avg_pool2d", f_avgpool, pool, 1, 0); set_shape(&c, 0, 4, 2, 2, 4, 6); run_case(&c);
    c = mk("avg_pool2d_k3s1", f_avgpool, pool2, 1, 0); set_shape(&c, 0, 4, 1, 2, 5, 4); run_case(&c);
    c = mk("global_avg_pool", f_gap, NULL, 1, 0); set_shape(&c, 0, 4, 2, 3, 2, 2); run_case(&c);
    c = mk("log_softmax", f_logsm, NULL, 1, 0); set_shape(&c, 0, 2, 3, 5, 1, 1); run_case(&c);
    c = mk("cross_entropy", f_xent, NULL, 1, 0); set_shape(&c, 0, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("mse", f_mse, NULL, 2, 0); set_shape(&c, 0, 2, 3, 2, 1, 1); set_shape(&c, 1, 2, 3, 2, 1, 1); run_case(&c);
    c = mk("l1", f_l1, NULL, 2, 0); set_shape(&c, 0, 2, 3, 2, 1, 1); set_shape(&c, 1, 2, 3, 2, 1, 1); run_case(&c);
    c = mk("lincomb", f_lincomb, NULL, 2, 0); set_shape(&c, 0, 2, 3, 2, 1, 1); set_shape(&c, 1, 2, 3, 2, 1, 1); run_case(&c);
    c = mk("clone", f_clone, NULL, 1, 0); set_shape(&c, 0, 1, 5, 1, 1, 1); run_case(&c);
}

/* ---------------------------------------------------------------- forward values */
static void test_forward_values(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_real av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {1, 0, -1, 2, 0.5, 3};
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    nde_tensor *a = nde_tensor_from(ctx, 2, s23, av), *b = nde_tensor_from(ctx, 2, s32, bv);
    nde_tensor *c = nde_matmul(ctx, a, b, 0, 0);
    /* [1 2 3;4 5 6] [1 0;-1 2;0.5 3] = [0.5 13; 2 28] */
    CHECK_NEAR(nde_tensor_item(ctx, c, 0), 0.5, 1e-6, 0); CHECK_NEAR(nde_tensor_item(ctx, c, 1), 13, 1e-5, 0);
    CHECK_NEAR(nde_tensor_item(ctx, c, 2), 2, 1e-5, 0); CHECK_NEAR(nde_tensor_item(ctx, c, 3), 28, 1e-5, 0);
    {
        nde_tensor *s = nde_sum_axis(ctx, a, 0, 0);
        CHECK(s->ndim == 1 && s->shape[0] == 3);
        CHECK_NEAR(nde_tensor_item(ctx, s, 2), 9, 1e-6, 0);
        s = nde_mean_axis(ctx, a, 1, 1);
        CHECK(s->ndim == 2 && s->shape[0] == 2 && s->shape[1] == 1);
        CHECK_NEAR(nde_tensor_item(ctx, s, 1), 5, 1e-6, 0);
    }
    {
        nde_real row[3] = {10, 20, 30};
        int64_t s3 = 3;
        nde_tensor *r = nde_tensor_from(ctx, 1, &s3, row), *y = nde_add(ctx, a, r);
        CHECK_NEAR(nde_tensor_item(ctx, y, 5), 36, 1e-6, 0);
        CHECK_NEAR(nde_tensor_item(ctx, nde_softplus(ctx, nde_tensor_scalar(ctx, NDE_R(100.0))), 0), 100, 1e-4, 0);
        CHECK_NEAR(nde_tensor_item(ctx, nde_softplus(ctx, nde_tensor_scalar(ctx, NDE_R(-100.0))), 0), 0, 1e-30, 0);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* Large broadcast ops and fills run in parallel tasks (rows, or pieces of long
   rows): every element must equal the scalar formula, for short and long rows,
   row and column broadcasting. */
static void test_large_elementwise(void) {
    static const int64_t shapes[][2] = { {3, 20001}, {20001, 3}, {64, 2000} };
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int s, bad = 0;
    for (s = 0; s < 3; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], row_shape[2] = {1, n}, col_shape[2] = {m, 1}, i, j;
        nde_tensor *a = nde_tensor_randn(ctx, 2, shapes[s], 3, (uint64_t)s);
        nde_tensor *b = nde_tensor_randn(ctx, 2, shapes[s], 4, (uint64_t)s);
        nde_tensor *r = nde_tensor_randn(ctx, 2, row_shape, 5, (uint64_t)s);
        nde_tensor *c = nde_tensor_randn(ctx, 2, col_shape, 6, (uint64_t)s);
        nde_tensor *sum = nde_add(ctx, a, r), *prod = nde_mul(ctx, a, c), *diff = nde_sub(ctx, a, b);
        nde_tensor *z = nde_tensor_zeros(ctx, 2, shapes[s]);
        nde_real *av = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n)), *bv = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n));
        nde_real *rv = (nde_real *)malloc(sizeof(nde_real) * (size_t)n), *cv = (nde_real *)malloc(sizeof(nde_real) * (size_t)m);
        nde_real *o1 = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n)), *o2 = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n));
        nde_real *o3 = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n)), *o4 = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * n));
        CHECK(nde_tensor_fill(ctx, z, NDE_R(2.5)) == NDE_OK);
        nde_tensor_to_host(ctx, a, av); nde_tensor_to_host(ctx, b, bv);
        nde_tensor_to_host(ctx, r, rv); nde_tensor_to_host(ctx, c, cv);
        nde_tensor_to_host(ctx, sum, o1); nde_tensor_to_host(ctx, prod, o2);
        nde_tensor_to_host(ctx, diff, o3); nde_tensor_to_host(ctx, z, o4);
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) {
                int64_t k = i * n + j;
                if (o1[k] != av[k] + rv[j] || o2[k] != av[k] * cv[i] || o3[k] != av[k] - bv[k] || o4[k] != NDE_R(2.5)) bad++;
            }
        free(av); free(bv); free(rv); free(cv); free(o1); free(o2); free(o3); free(o4);
    }
    CHECK(bad == 0);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* Convolutions run a batch as one GEMM over the columns of all its images
   (the backend's im2col_batch / col2im_batch): values and gradients must equal
   those of the images one at a time. */
static void test_conv_groups(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t xs[4] = {6, 3, 16, 16}, ws[4] = {2, 3, 3, 3}, bs[1] = {2}, i, k;
    nde_tensor *x = nde_tensor_randn(ctx, 4, xs, 11, 0), *w = nde_tensor_randn(ctx, 4, ws, 12, 0);
    nde_tensor *b = nde_tensor_randn(ctx, 1, bs, 13, 0), *y, *r, *gx, *gw;
    double err_y = 0.0, err_gx = 0.0, err_gw = 0.0;
    nde_real *gw_sum = (nde_real *)calloc((size_t)w->size, sizeof(nde_real));
    x->requires_grad = 1; w->requires_grad = 1;
    y = nde_conv2d(ctx, x, w, b, 1, 1);
    r = nde_tensor_randn(ctx, 4, y->shape, 14, 0);
    nde_backward(ctx, nde_sum(ctx, nde_mul(ctx, y, r)));
    gx = nde_tensor_detach(ctx, x); gw = nde_tensor_detach(ctx, w);
    nde_tensor_set_host(ctx, gx, x->grad); nde_tensor_set_host(ctx, gw, w->grad);
    for (i = 0; i < 6; i++) {
        nde_tensor *xi = nde_tensor_detach(ctx, nde_slice(ctx, x, 0, i, i + 1)), *wi = nde_tensor_detach(ctx, w), *yi, *ri;
        int64_t per = y->size / 6, xper = x->size / 6;
        xi->requires_grad = 1; wi->requires_grad = 1;
        yi = nde_conv2d(ctx, xi, wi, b, 1, 1);
        ri = nde_slice(ctx, r, 0, i, i + 1);
        nde_backward(ctx, nde_sum(ctx, nde_mul(ctx, yi, ri)));
        for (k = 0; k < per; k++) err_y = fmax(err_y, fabs(y->data[i * per + k] - yi->data[k]));
        for (k = 0; k < xper; k++) err_gx = fmax(err_gx, fabs(gx->data[i * xper + k] - xi->grad[k]));
        for (k = 0; k < w->size; k++) gw_sum[k] += wi->grad[k];
    }
    for (k = 0; k < w->size; k++) err_gw = fmax(err_gw, fabs(gw->data[k] - gw_sum[k]) / (1.0 + fabs(gw_sum[k])));
    CHECK(err_y <= 1e-4); CHECK(err_gx <= 1e-4); CHECK(err_gw <= 1e-4);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    free(gw_sum);
    nde_ctx_free(ctx);
}

/* The float build's vectorised tanh, sigmoid and softplus against libm in
   double, rounded: within 2 ulp (relative 2.4e-7) over [-30, 30], exact
   limits, NaN kept. */
static void test_fast_activations(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t n = 60001, i;
    nde_real *v = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    nde_tensor *x, *th, *sg, *sp;
    double worst = 0.0;
    for (i = 0; i < n; i++) v[i] = (nde_real)(-30.0 + 60.0 * (double)i / (double)(n - 1));
    x = nde_tensor_from(ctx, 1, &n, v);
    th = nde_tanh(ctx, x); sg = nde_sigmoid(ctx, x); sp = nde_softplus(ctx, x);
    for (i = 0; i < n; i++) {
        double xd = (double)v[i];
        double rt = (nde_real)tanh(xd), rs = (nde_real)(1.0 / (1.0 + exp(-xd)));
        double rp = (nde_real)(xd > 0 ? xd + log1p(exp(-xd)) : log1p(exp(xd)));
        worst = fmax(worst, fabs(th->data[i] - rt) / fmax(fabs(rt), 1e-30));
        worst = fmax(worst, fabs(sg->data[i] - rs) / fmax(fabs(rs), 1e-30));
        worst = fmax(worst, fabs(sp->data[i] - rp) / fmax(fabs(rp), 1e-30));
    }
    CHECK(worst <= 2.4e-7);
    v[0] = (nde_real)INFINITY; v[1] = (nde_real)-INFINITY; v[2] = (nde_real)NAN;
    x = nde_tensor_from(ctx, 1, (int64_t[]){3}, v);
    th = nde_tanh(ctx, x); sg = nde_sigmoid(ctx, x); sp = nde_softplus(ctx, x);
    CHECK(th->data[0] == 1 && th->data[1] == -1 && th->data[2] != th->data[2]);
    CHECK(sg->data[0] == 1 && sg->data[1] == 0 && sg->data[2] != sg->data[2]);
    CHECK(isinf(sp->data[0]) && sp->data[1] == 0 && sp->data[2] != sp->data[2]);
    free(v);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- errors */
static void test_shape_errors(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s23[2] = {2, 3}, s43[2] = {4, 3};
    nde_tensor *a = nde_tensor_zeros(ctx, 2, s23), *b = nde_tensor_zeros(ctx, 2, s43);
    CHECK(nde_matmul(ctx, a, b, 0, 0) == NULL);
    CHECK(nde_ctx_status(ctx) == NDE_ERR_SHAPE);
    CHECK_MSG(nde_ctx_message(ctx), "nde_matmul: inner dimensions differ");
    CHECK_MSG(nde_ctx_message(ctx), "(2, 3)");
    CHECK_MSG(nde_ctx_message(ctx), "(4, 3)");
    /* sticky: later ops return NULL, the first message stays */
    CHECK(nde_add(ctx, a, a) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_matmul");
    nde_ctx_clear_error(ctx);
    CHECK(nde_add(ctx, a, b) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_add: shapes (2, 3) and (4, 3) do not broadcast");
    nde_ctx_clear_error(ctx);
    CHECK(nde_reshape(ctx, a, 2, s43) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_reshape");
    nde_ctx_clear_error(ctx);
    CHECK(nde_slice(ctx, a, 1, 2, 5) == NULL);
    CHECK_MSG(nde_ctx_message(ctx), "nde_slice");
    nde_ctx_clear_error(ctx);
    {
        int64_t lab[2] = {0, 7};
        CHECK(nde_cross_entropy(ctx, a, lab) == NULL);
        CHECK_MSG(nde_ctx_message(ctx), "label[1] = 7");
    }
    nde_ctx_clear_error(ctx);
    {
        nde_ctx_desc d = nde_ctx_desc_default();
        nde_ctx *bad;
        d.real_size = (int)sizeof(nde_real) == 4 ? 8 : 4;
        bad = nde_ctx_new(d);
        CHECK(nde_ctx_status(bad) == NDE_ERR_CONFIG);
        CHECK_MSG(nde_ctx_message(bad), "NDE_DOUBLE");
        nde_ctx_free(bad);
    }
    CHECK(strstr(nde_strerror(NDE_ERR_SHAPE), "NDE_ERR_SHAPE") != NULL);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- arena, tape */
static void test_arena_and_tape(void) {
    nde_ctx_desc d = nde_ctx_desc_default();
    nde_ctx *ctx;
    int64_t s[2] = {16, 16};
    nde_tensor *w;
    size_t peak1 = 0, peak2;
    int it;
    d.arena_block_bytes = 4096;
    ctx = nde_ctx_new(d);
    w = nde_param_new(ctx, "w", 2, s);
    nde_init_uniform(ctx, w, -1, 1, 3);
    for (it = 0; it < 5; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *x = nde_tensor_randn(ctx, 2, s, 1, (uint64_t)it);
        nde_tensor *l = nde_mean(ctx, nde_tanh(ctx, nde_matmul(ctx, x, w, 0, 0)));
        nde_backward(ctx, l);
        CHECK(nde_tape_length(ctx) == 3);
        nde_ctx_reset(ctx, m);
        CHECK(nde_tape_length(ctx) == 0);
        if (it == 1) peak1 = nde_ctx_peak_bytes(ctx);
    }
    peak2 = nde_ctx_peak_bytes(ctx);
    CHECK(peak1 == peak2);               /* steady state: no growth */
    CHECK(nde_ctx_used_bytes(ctx) == 0);
    /* no-grad mode records nothing */
    nde_set_grad_enabled(ctx, 0);
    {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *x = nde_tensor_randn(ctx, 2, s, 1, 9);
        nde_tensor *y = nde_tanh(ctx, nde_matmul(ctx, x, w, 0, 0));
        CHECK(y && !y->requires_grad && nde_tape_length(ctx) == 0);
        nde_ctx_reset(ctx, m);
    }
    nde_set_grad_enabled(ctx, 1);
    /* work cap: an allocation past it is a clear OOM error */
    {
        nde_ctx_desc dc = nde_ctx_desc_default();
        nde_ctx *small;
        int64_t big[2] = {1024, 1024};
        dc.arena_block_bytes = 1 << 16; dc.max_work_bytes = 1 << 20;
        small = nde_ctx_new(dc);
        CHECK(nde_tensor_zeros(small, 2, big) == NULL);
        CHECK(nde_ctx_status(small) == NDE_ERR_OOM);
        CHECK_MSG(nde_ctx_message(small), "cap");
        nde_ctx_free(small);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- vjp */
static nde_tensor *vjp_f(nde_ctx *ctx, nde_tensor *x, void *user) {
    nde_linear *l = (nde_linear *)user;
    return nde_tanh(ctx, nde_linear_forward(ctx, l, x));
}
static void test_vjp(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_linear lin; int64_t s[2] = {3, 2}; nde_tensor *x, *v, *y, *xb; nde_real *pg;
    int64_t i;
    nde_linear_init(ctx, &lin, "lin", 2, 4, 1, 5);
    x = nde_tensor_randn(ctx, 2, s, 2, 0);
    { int64_t sv[2] = {3, 4}; v = nde_tensor_randn(ctx, 2, sv, 2, 1); }
    pg = nde_ctx_alloc_reals(ctx, nde_params_count(ctx));
    for (i = 0; i < nde_params_count(ctx); i++) pg[i] = 0;
    nde_zero_grad(ctx);
    CHECK(nde_vjp(ctx, vjp_f, &lin, x, v, &y, &xb, pg) == NDE_OK);
    CHECK(nde_tape_length(ctx) == 0);
    /* the store's own gradient was not touched */
    CHECK(nde_grad_norm(ctx) == 0.0);
    /* compare with a direct backward of sum(v * f(x)) */
    {
        nde_tensor *xl = nde_tensor_detach(ctx, x), *l;
        double md = 0;
        xl->requires_grad = 1;
        l = nde_sum(ctx, nde_mul(ctx, vjp_f(ctx, xl, &lin), v));
        nde_backward(ctx, l);
        for (i = 0; i < x->size; i++) md = fmax(md, fabs(xl->grad[i] - xb->data[i]));
        for (i = 0; i < nde_params_count(ctx); i++) md = fmax(md, fabs(nde_params_grad(ctx)[i] - pg[i]));
        CHECK(md < 1e-6);
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* Two backward passes over the same graph: leaves accumulate exactly twice. */
static void test_backward_twice(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s = 3;
    nde_real v[3] = {1, 2, 3};
    nde_tensor *x = nde_tensor_from(ctx, 1, &s, v), *l;
    x->requires_grad = 1;
    l = nde_sum(ctx, nde_square(ctx, nde_tanh(ctx, x)));
    nde_backward(ctx, l);
    {
        double g1 = x->grad[1];
        nde_backward(ctx, l);
        CHECK_NEAR(x->grad[1], 2 * g1, 1e-6, 1e-6);
    }
    nde_ctx_free(ctx);
}

int main(void) {
    test_backward_twice();
    test_gradients();
    test_forward_values();
    test_large_elementwise();
    test_conv_groups();
    test_fast_activations();
    test_shape_errors();
    test_arena_and_tape();
    test_vjp();
    return nde_test_finish("test_core");
}
