/* tests/test_optim.c - nde.h optimizers against hand-computed steps (PyTorch
   conventions), learning-rate schedules, gradient clipping, initialisers,
   Philox 4x32-10 (Random123 known answers, moments, streams), matmul
   determinism across thread counts, and no allocation in a steady-state
   training loop (NDE_MALLOC is overridden to count). */
#include <stdlib.h>
static long alloc_count = 0;   /* malloc + realloc calls made by nde */
static void *count_malloc(size_t n) { alloc_count++; return malloc(n); }
static void *count_realloc(void *p, size_t n) { alloc_count++; return realloc(p, n); }
#define NDE_MALLOC(n) count_malloc(n)
#define NDE_REALLOC(p, n) count_realloc((p), (n))
#define NDE_FREE(p) free(p)
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "nde_test.h"

#ifdef NDE_DOUBLE
#define TOL 1e-13
#else
#define TOL 2e-6
#endif

/* ---------------------------------------------------------------- optimizers
   One parameter p of 3 elements, p0 = {1, -2, 0.5}; the gradient of step t
   (1-based) is g_t[i] given below. Element 0 follows p0 = 1, g = 0.5, -0.25,
   whose first two steps are written out as numbers. */
static const double p_init[3] = {1.0, -2.0, 0.5};
static double grad_at(int t, int i) {
    static const double g0[2] = {0.5, -0.25};
    if (i == 0 && t <= 2) return g0[t - 1];
    return 0.3 * sin(1.7 * t + i) + 0.1 * (i - 1);
}
typedef struct opt_run { nde_ctx *ctx; nde_tensor *p; } opt_run;
static opt_run opt_setup(void) {
    opt_run r; int64_t s[1] = {3}; int i;
    r.ctx = nde_ctx_new(nde_ctx_desc_default());
    r.p = nde_param_new(r.ctx, "p", 1, s);
    for (i = 0; i < 3; i++) r.p->data[i] = (nde_real)p_init[i];
    return r;
}
static void opt_set_grad(opt_run *r, int t) {
    int i;
    for (i = 0; i < 3; i++) r->p->grad[i] = (nde_real)grad_at(t, i);
}

/* Scalar references written from the update rules of torch.optim. */
typedef struct ref_state { double p, buf, sq, m, v; } ref_state;
static void ref_sgd(ref_state *s, double g, int t, double lr, double mom, double damp, int nesterov, double wd) {
    g += wd * s->p;
    if (mom != 0.0) {
        s->buf = t == 1 ? g : mom * s->buf + (1.0 - damp) * g;   /* buffer starts at the first gradient */
        g = nesterov ? g + mom * s->buf : s->buf;
    }
    s->p -= lr * g;
}
static void ref_rmsprop(ref_state *s, double g, double lr, double alpha, double eps, double mom, double wd) {
    double avg;
    g += wd * s->p;
    s->sq = alpha * s->sq + (1.0 - alpha) * g * g;
    avg = sqrt(s->sq) + eps;                                      /* eps outside the square root */
    if (mom != 0.0) { s->buf = mom * s->buf + g / avg; s->p -= lr * s->buf; }
    else s->p -= lr * g / avg;
}
static void ref_adam(ref_state *s, double g, int t, double lr, double b1, double b2, double eps, double wd, int decoupled) {
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    if (decoupled) s->p *= 1.0 - lr * wd; else g += wd * s->p;
    s->m = b1 * s->m + (1.0 - b1) * g;
    s->v = b2 * s->v + (1.0 - b2) * g * g;
    s->p -= (lr / bc1) * s->m / (sqrt(s->v) / sqrt(bc2) + eps);
}

/* Runs opt for 6 steps; element 0 after steps 1 and 2 must equal lit1/lit2
   (hand-computed), and every element must follow the scalar reference. */
typedef enum { REF_SGD, REF_RMSPROP, REF_ADAM } ref_kind;
static void check_optimizer(const char *name, nde_optimizer opt, ref_kind kind, double lit1, double lit2) {
    opt_run r = opt_setup();
    ref_state s[3]; int t, i; double worst = 0.0;
    memset(s, 0, sizeof s);
    for (i = 0; i < 3; i++) s[i].p = p_init[i];
    for (t = 1; t <= 6; t++) {
        opt_set_grad(&r, t);
        CHECK(nde_optimizer_step(r.ctx, &opt) == NDE_OK);
        for (i = 0; i < 3; i++) {
            double g = grad_at(t, i), err;
            if (kind == REF_SGD) ref_sgd(&s[i], g, t, opt.lr, opt.momentum, opt.dampening, opt.nesterov, opt.weight_decay);
            else if (kind == REF_RMSPROP) ref_rmsprop(&s[i], g, opt.lr, opt.alpha, opt.eps, opt.momentum, opt.weight_decay);
            else ref_adam(&s[i], g, t, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.kind == NDE_OPT_ADAMW);
            err = fabs((double)r.p->data[i] - s[i].p) / (1.0 + fabs(s[i].p));
            if (err > worst) worst = err;
        }
        if (t == 1) CHECK_NEAR(r.p->data[0], lit1, TOL, 0.0);
        if (t == 2) CHECK_NEAR(r.p->data[0], lit2, TOL, 0.0);
    }
    if (worst > 10 * TOL) fprintf(stderr, "  %s: worst relative deviation from the reference %.3g\n", name, worst);
    CHECK(worst <= 10 * TOL);
    CHECK(opt.step == 6);
    nde_ctx_free(r.ctx);
}

static void test_optimizers(void) {
    nde_optimizer o;
    /* plain SGD, lr 0.1: 1 - 0.1*0.5 = 0.95; 0.95 + 0.1*0.25 = 0.975 */
    check_optimizer("sgd", nde_sgd(0.1, 0.0, 0), REF_SGD, 0.95, 0.975);
    /* momentum 0.9: buf = 0.5, p = 0.95; buf = 0.45 - 0.25 = 0.2, p = 0.93 */
    check_optimizer("sgd momentum", nde_sgd(0.1, 0.9, 0), REF_SGD, 0.95, 0.93);
    /* Nesterov: buf = 0.5, step 0.5 + 0.45 = 0.95, p = 0.905; buf = 0.2, step -0.25 + 0.18, p = 0.912 */
    check_optimizer("sgd nesterov", nde_sgd(0.1, 0.9, 1), REF_SGD, 0.905, 0.912);
    /* dampening 0.5: buf = 0.5 (no dampening on the first step); buf = 0.45 - 0.125 = 0.325, p = 0.9175 */
    o = nde_sgd(0.1, 0.9, 0); o.dampening = 0.5;
    check_optimizer("sgd dampening", o, REF_SGD, 0.95, 0.9175);
    /* weight decay 0.01: g = 0.51, p = 0.949; g = -0.25 + 0.00949, p = 0.973051 */
    o = nde_sgd(0.1, 0.0, 0); o.weight_decay = 0.01;
    check_optimizer("sgd weight decay", o, REF_SGD, 0.949, 0.973051);
    o = nde_sgd(0.05, 0.8, 1); o.weight_decay = 0.02;
    check_optimizer("sgd nesterov + weight decay", o, REF_SGD, 1.0 - 0.05 * (0.52 + 0.8 * 0.52),
                    (1.0 - 0.05 * 0.936) - 0.05 * ((-0.25 + 0.02 * 0.9532) * 1.8 + 0.8 * 0.8 * 0.52));
    /* RMSprop lr 0.01, alpha 0.99, eps 1e-8: sq = 0.0025, p = 1 - 0.01*0.5/(0.05 + 1e-8);
       sq = 0.0031, p -= 0.01*(-0.25)/(sqrt(0.0031) + 1e-8) */
    check_optimizer("rmsprop", nde_rmsprop(0.01), REF_RMSPROP, 0.900000019999996, 0.9449013374421751);
    o = nde_rmsprop(0.01); o.momentum = 0.9;
    check_optimizer("rmsprop momentum", o, REF_RMSPROP, 0.900000019999996, 0.8549013554421715);
    o = nde_rmsprop(0.01); o.weight_decay = 0.1;
    {   /* g = 0.6: sq = 0.0036, p = 1 - 0.01*0.6/(0.06 + 1e-8) */
        double p1 = 1.0 - 0.01 * 0.6 / (0.06 + 1e-8), g2 = -0.25 + 0.1 * p1, sq2 = 0.99 * 0.0036 + 0.01 * g2 * g2;
        check_optimizer("rmsprop weight decay", o, REF_RMSPROP, p1, p1 - 0.01 * g2 / (sqrt(sq2) + 1e-8));
    }
    /* Adam lr 0.1: m = 0.05, v = 0.00025, p = 1 - (0.1/0.1) * 0.05/(0.5 + 1e-8);
       m = 0.02, v = 0.00031225, bc1 = 0.19, bc2 = 0.001999 */
    check_optimizer("adam", nde_adam(0.1), REF_ADAM, 0.9000000019999999, 0.8733662987078462);
    /* AdamW wd 0.1: p = 0.99 first, then the Adam step */
    check_optimizer("adamw", nde_adamw(0.1, 0.1), REF_ADAM, 0.8900000019999998, 0.8544662986878462);
    /* Adam with L2 weight decay 0.1: g = 0.6 */
    o = nde_adam(0.1); o.weight_decay = 0.1;
    check_optimizer("adam l2", o, REF_ADAM, 0.9000000016666666, 0.8544413674617625);

    /* a frozen parameter does not move; the others do */
    {
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
        int64_t s[1] = {2};
        nde_tensor *a = nde_param_new(ctx, "a", 1, s), *b = nde_param_new(ctx, "b", 1, s);
        nde_optimizer adam = nde_adam(0.1);
        nde_tensor_fill(ctx, a, NDE_R(1.0)); nde_tensor_fill(ctx, b, NDE_R(1.0));
        nde_param_set_trainable(ctx, 0, 0);
        a->grad[0] = a->grad[1] = b->grad[0] = b->grad[1] = NDE_R(0.5);
        CHECK(nde_optimizer_step(ctx, &adam) == NDE_OK);
        CHECK(a->data[0] == NDE_R(1.0) && a->data[1] == NDE_R(1.0));
        CHECK_NEAR(b->data[1], 0.9000000019999999, TOL, 0.0);
        CHECK(nde_optimizer_step(ctx, NULL) == NDE_ERR_ARG);
        CHECK_MSG(nde_ctx_message(ctx), "nde_optimizer_step: NULL optimizer");
        nde_ctx_free(ctx);
    }
}

/* ---------------------------------------------------------------- schedules */
/* nde_optimizer_state: copying parameters, both state arrays and the step
   count into a fresh context resumes training exactly (Adam, SGD momentum). */
static void resume_matches(nde_optimizer proto) {
    opt_run a = opt_setup(), b = opt_setup();
    nde_optimizer oa = proto, ob = proto;
    int t, i, w;
    for (t = 1; t <= 3; t++) { opt_set_grad(&a, t); CHECK(nde_optimizer_step(a.ctx, &oa) == NDE_OK); }
    for (w = 0; w < 2; w++) {
        nde_real *sa = nde_optimizer_state(a.ctx, w), *sb = nde_optimizer_state(b.ctx, w);
        CHECK(sa != NULL && sb != NULL);
        if (!sa || !sb) return;
        for (i = 0; i < 3; i++) { CHECK(sb[i] == NDE_R(0.0)); sb[i] = sa[i]; }
    }
    for (i = 0; i < 3; i++) b.p->data[i] = a.p->data[i];
    ob.step = oa.step;
    for (t = 4; t <= 6; t++) {
        opt_set_grad(&a, t); opt_set_grad(&b, t);
        CHECK(nde_optimizer_step(a.ctx, &oa) == NDE_OK);
        CHECK(nde_optimizer_step(b.ctx, &ob) == NDE_OK);
    }
    for (i = 0; i < 3; i++) CHECK(a.p->data[i] == b.p->data[i]);
    CHECK(nde_optimizer_state(a.ctx, 2) == NULL);
    CHECK_MSG(nde_ctx_message(a.ctx), "nde_optimizer_state: which is 2");
    nde_ctx_free(a.ctx); nde_ctx_free(b.ctx);
}
static void test_optimizer_state(void) {
    resume_matches(nde_adam(0.1));
    resume_matches(nde_sgd(0.1, 0.9, 0));
}

static void test_schedules(void) {
    nde_schedule s; int t;
    memset(&s, 0, sizeof s);
    s.kind = NDE_SCHED_CONSTANT; s.lr_init = 0.3;
    CHECK(nde_schedule_lr(&s, 0) == 0.3 && nde_schedule_lr(&s, 1000) == 0.3);
    /* exponential 1e-2 -> 1e-4 over 100 steps: 1e-3 half way, 1e-4 at the end and after */
    s.kind = NDE_SCHED_EXPONENTIAL; s.lr_init = 1e-2; s.lr_end = 1e-4; s.steps = 100;
    CHECK_NEAR(nde_schedule_lr(&s, 0), 1e-2, 0.0, 1e-14);
    CHECK_NEAR(nde_schedule_lr(&s, 50), 1e-3, 0.0, 1e-13);
    CHECK_NEAR(nde_schedule_lr(&s, 25), 1e-2 * pow(1e-2, 0.25), 0.0, 1e-13);
    CHECK_NEAR(nde_schedule_lr(&s, 100), 1e-4, 0.0, 1e-14);
    CHECK_NEAR(nde_schedule_lr(&s, 5000), 1e-4, 0.0, 1e-14);
    for (t = 1; t < 100; t++) if (!(nde_schedule_lr(&s, t) < nde_schedule_lr(&s, t - 1))) break;
    CHECK(t == 100);   /* strictly decreasing */
    /* cosine 1 -> 0.1 over 10 steps: 0.55 half way; 0.1 + 0.45 (1 + cos(pi/5)) at step 2 */
    s.kind = NDE_SCHED_COSINE; s.lr_init = 1.0; s.lr_end = 0.1; s.steps = 10;
    CHECK_NEAR(nde_schedule_lr(&s, 0), 1.0, 1e-15, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 5), 0.55, 1e-15, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 2), 0.1 + 0.45 * (1.0 + 0.8090169943749475), 1e-15, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 10), 0.1, 1e-15, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 11), 0.1, 1e-15, 0.0);
    /* piecewise: x0.1 at steps 3 and 6 */
    s.kind = NDE_SCHED_PIECEWISE; s.lr_init = 1.0; s.factor = 0.1; s.num_milestones = 2;
    s.milestones[0] = 3; s.milestones[1] = 6;
    CHECK(nde_schedule_lr(&s, 0) == 1.0 && nde_schedule_lr(&s, 2) == 1.0);
    CHECK_NEAR(nde_schedule_lr(&s, 3), 0.1, 1e-16, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 5), 0.1, 1e-16, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 6), 0.01, 1e-17, 0.0);
    CHECK_NEAR(nde_schedule_lr(&s, 100), 0.01, 1e-17, 0.0);
    /* the optimizer uses lr(step) for its step number step = 0, 1, ...: with
       g = 1, SGD moves p by the sum of the scheduled rates */
    {
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
        int64_t one = 1;
        nde_tensor *p = nde_param_new(ctx, "p", 1, &one);
        nde_optimizer o = nde_sgd(1.0, 0.0, 0);
        double expect = 0.0;
        o.schedule = s;   /* piecewise 1, 1, 1, 0.1, 0.1, 0.1, 0.01 */
        for (t = 0; t < 7; t++) {
            CHECK_NEAR(nde_optimizer_lr(&o), nde_schedule_lr(&s, t), 1e-17, 0.0);
            p->grad[0] = NDE_R(1.0);
            nde_optimizer_step(ctx, &o);
            expect -= nde_schedule_lr(&s, t);
        }
        CHECK_NEAR(p->data[0], expect, TOL, 0.0);
        CHECK_NEAR(expect, -3.31, 1e-12, 0.0);
        nde_ctx_free(ctx);
    }
}

/* ---------------------------------------------------------------- clipping */
static void test_clipping(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s1 = 1, s2 = 2;
    nde_tensor *a = nde_param_new(ctx, "a", 1, &s1), *b = nde_param_new(ctx, "b", 1, &s2);
    nde_tensor *frozen = nde_param_new(ctx, "frozen", 1, &s1);
    nde_optimizer o = nde_sgd(1.0, 0.0, 0);
    double c = 1.0 / (5.0 + 1e-6);   /* torch: max_norm / (norm + 1e-6) */
    nde_param_set_trainable(ctx, 2, 0);
    a->grad[0] = NDE_R(3.0); b->grad[0] = NDE_R(0.0); b->grad[1] = NDE_R(-4.0); frozen->grad[0] = NDE_R(100.0);
    CHECK_NEAR(nde_grad_norm(ctx), 5.0, 1e-12, 0.0);          /* frozen gradients do not count */
    CHECK_NEAR(nde_clip_grad_norm(ctx, 10.0), 5.0, 1e-12, 0.0);
    CHECK(a->grad[0] == NDE_R(3.0) && b->grad[1] == NDE_R(-4.0));   /* below the limit: untouched */
    CHECK_NEAR(nde_clip_grad_norm(ctx, 1.0), 5.0, 1e-12, 0.0);
    CHECK_NEAR(a->grad[0], 3.0 * c, TOL, 0.0);
    CHECK_NEAR(b->grad[1], -4.0 * c, TOL, 0.0);
    CHECK(frozen->grad[0] == NDE_R(100.0));
    CHECK_NEAR(nde_grad_norm(ctx), 5.0 * c, TOL, 0.0);
    /* inside the optimizer: clipped before the step, the norm before clipping recorded */
    a->grad[0] = NDE_R(3.0); b->grad[1] = NDE_R(-4.0);
    a->data[0] = NDE_R(0.0); b->data[1] = NDE_R(0.0);
    o.clip_grad_norm = 0.5;
    CHECK(nde_optimizer_step(ctx, &o) == NDE_OK);
    CHECK_NEAR(o.last_grad_norm, 5.0, 1e-12, 0.0);
    CHECK_NEAR(a->data[0], -3.0 * 0.5 / (5.0 + 1e-6), TOL, 0.0);
    CHECK_NEAR(b->data[1], 4.0 * 0.5 / (5.0 + 1e-6), TOL, 0.0);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- initialisers */
typedef struct moments { double mean, var, min, max; } moments;
static moments moments_of(const nde_real *x, int64_t n) {
    moments m; int64_t i; double s = 0.0, ss = 0.0;
    m.min = m.max = x[0];
    for (i = 0; i < n; i++) {
        s += x[i];
        if (x[i] < m.min) m.min = x[i];
        if (x[i] > m.max) m.max = x[i];
    }
    m.mean = s / (double)n;
    for (i = 0; i < n; i++) ss += (x[i] - m.mean) * (x[i] - m.mean);
    m.var = ss / (double)(n - 1);
    return m;
}
/* U(-b, b): |x| <= b, the extremes near b, mean 0 and variance b^2/3 within
   5 standard errors (Var of the sample variance of U: (mu4 - sigma^4)/n =
   b^4 (1/5 - 1/9)/n). */
static void check_uniform_sample(const nde_real *x, int64_t n, double b) {
    moments m = moments_of(x, n);
    double var = b * b / 3.0, se_var = b * b * sqrt((1.0 / 5.0 - 1.0 / 9.0) / (double)n);
    CHECK(m.min >= -b * (1 + 1e-6) && m.max <= b * (1 + 1e-6));
    CHECK(m.min < -0.98 * b && m.max > 0.98 * b);
    CHECK_NEAR(m.mean, 0.0, 5.0 * sqrt(var / (double)n), 0.0);
    CHECK_NEAR(m.var, var, 5.0 * se_var, 0.0);
}
static void test_init(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s2[2] = {256, 64}, s4[4] = {32, 16, 3, 3};
    nde_tensor *w = nde_param_new(ctx, "w", 2, s2), *k = nde_param_new(ctx, "k", 4, s4), *w2;
    nde_linear lin; nde_conv2d_layer conv;
    moments m; double std;
    /* kaiming_uniform_(a = 0): bound sqrt(6 / fan_in), fan_in = 64 */
    CHECK(nde_init_kaiming_uniform(ctx, w, NDE_R(0.0), 1) == NDE_OK);
    check_uniform_sample(w->data, w->size, sqrt(6.0 / 64.0));
    /* a = sqrt(5) (what Linear uses): bound 1/sqrt(fan_in); conv fan_in = 16*3*3 */
    CHECK(nde_init_kaiming_uniform(ctx, k, (nde_real)sqrt(5.0), 2) == NDE_OK);
    check_uniform_sample(k->data, k->size, 1.0 / sqrt(144.0));
    /* kaiming_normal_(a = 0): std sqrt(2 / fan_in); Var(s^2) = 2 sigma^4 / n */
    CHECK(nde_init_kaiming_normal(ctx, w, NDE_R(0.0), 3) == NDE_OK);
    m = moments_of(w->data, w->size); std = sqrt(2.0 / 64.0);
    CHECK_NEAR(m.mean, 0.0, 5.0 * std / sqrt((double)w->size), 0.0);
    CHECK_NEAR(m.var, std * std, 5.0 * std * std * sqrt(2.0 / (double)w->size), 0.0);
    CHECK(m.max > 3.0 * std && m.min < -3.0 * std);   /* tails: P(|z| > 3) n = 44 expected */
    /* leaky slope a = 1: std sqrt(1 / fan_in) */
    CHECK(nde_init_kaiming_normal(ctx, w, NDE_R(1.0), 3) == NDE_OK);
    m = moments_of(w->data, w->size);
    CHECK_NEAR(m.var, 1.0 / 64.0, 5.0 / 64.0 * sqrt(2.0 / (double)w->size), 0.0);
    /* same seed, same values; another seed, other values */
    {
        nde_real first = w->data[0];
        nde_init_kaiming_normal(ctx, w, NDE_R(1.0), 3);
        CHECK(w->data[0] == first);
        nde_init_kaiming_normal(ctx, w, NDE_R(1.0), 4);
        CHECK(w->data[0] != first);
    }
    /* nn.Linear(100, 300): weight and bias ~ U(-1/sqrt(100), 1/sqrt(100)) */
    CHECK(nde_linear_init(ctx, &lin, "lin", 100, 300, 1, 7) == NDE_OK);
    CHECK(lin.weight->shape[0] == 300 && lin.weight->shape[1] == 100 && lin.bias->size == 300);
    check_uniform_sample(lin.weight->data, lin.weight->size, 0.1);
    m = moments_of(lin.bias->data, lin.bias->size);
    CHECK(m.min >= -0.1 && m.max <= 0.1 && m.max - m.min > 0.19);
    CHECK(memcmp(lin.weight->data, lin.bias->data, 8 * sizeof(nde_real)) != 0);   /* separate streams */
    /* nn.Conv2d(8, 16, 3): bound 1/sqrt(8*3*3) */
    CHECK(nde_conv2d_init(ctx, &conv, "conv", 8, 16, 3, 1, 1, 1, 9) == NDE_OK);
    check_uniform_sample(conv.weight->data, conv.weight->size, 1.0 / sqrt(72.0));
    m = moments_of(conv.bias->data, conv.bias->size);
    CHECK(m.min >= -1.0 / sqrt(72.0) && m.max <= 1.0 / sqrt(72.0));
    /* an MLP's layers differ from each other */
    {
        nde_mlp mlp; int64_t widths[3] = {4, 4, 4};
        CHECK(nde_mlp_init(ctx, &mlp, "mlp", 3, widths, NDE_ACT_TANH, 11) == NDE_OK);
        CHECK(memcmp(mlp.layer[0].weight->data, mlp.layer[1].weight->data, 16 * sizeof(nde_real)) != 0);
    }
    w2 = nde_param_new(ctx, "w2", 2, s2);
    CHECK(nde_init_uniform(ctx, w2, NDE_R(2.0), NDE_R(3.0), 5) == NDE_OK);
    m = moments_of(w2->data, w2->size);
    CHECK(m.min >= 2.0 && m.max <= 3.0);
    CHECK_NEAR(m.mean, 2.5, 5.0 * sqrt(1.0 / 12.0 / (double)w2->size), 0.0);
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- Philox */
/* Random123's kat_vectors, "philox4x32 10" lines: counter words c0..c3, key
   words k0 k1, expected output words. nde_philox4x32(key, hi, lo) takes
   key = k1:k0, counter_lo = c1:c0, counter_hi = c3:c2. */
static void test_philox_kat(void) {
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,   /* digits of pi */
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    int k, i;
    for (k = 0; k < 3; k++) {
        const uint32_t *v = kat[k];
        uint32_t out[4];
        uint64_t lo = (uint64_t)v[1] << 32 | v[0], hi = (uint64_t)v[3] << 32 | v[2], key = (uint64_t)v[5] << 32 | v[4];
        nde_philox4x32(key, hi, lo, out);
        for (i = 0; i < 4; i++) {
            CHECK(out[i] == v[6 + i]);
            if (out[i] != v[6 + i]) fprintf(stderr, "  KAT %d word %d: %08x, expected %08x\n", k, i, out[i], v[6 + i]);
        }
    }
}

static void test_rng(void) {
    enum { N = 200000 };
    nde_real *x = (nde_real *)malloc(N * sizeof(nde_real)), *y = (nde_real *)malloc(N * sizeof(nde_real));
    nde_rng r = nde_rng_new(2024, 0), r2;
    moments m; int64_t i; int ok; double se;
    /* uniform: (0, 1), mean 1/2, variance 1/12 */
    nde_rng_uniform(&r, N, x);
    CHECK(r.counter == N);
    m = moments_of(x, N);
    CHECK(m.min > 0.0 && m.max < 1.0);
    CHECK_NEAR(m.mean, 0.5, 5.0 * sqrt(1.0 / 12.0 / N), 0.0);
    CHECK_NEAR(m.var, 1.0 / 12.0, 5.0 * sqrt((1.0 / 80.0 - 1.0 / 144.0) / N), 0.0);
    /* value i is (k + 1/2) 2^-b from the top bits of word 0 (and 1) of block counter + i:
       exact in nde_real, so never rounded up to 1 */
    {
        uint32_t o[4]; double expect;
        nde_philox4x32(2024, 0, 17, o);
#ifdef NDE_DOUBLE
        expect = ((double)(((uint64_t)o[0] << 20) | (o[1] >> 12)) + 0.5) / 4503599627370496.0;
        CHECK((double)(((uint64_t)1 << 52) - 1 + 0.5) / 4503599627370496.0 < 1.0);
#else
        expect = ((double)(o[0] >> 9) + 0.5) / 8388608.0;
        CHECK((float)(((double)((1u << 23) - 1) + 0.5) / 8388608.0) < 1.0f);
#endif
        CHECK(x[17] == (nde_real)expect && (double)x[17] == expect);
    }
    /* counter based: two draws of N/2 equal one of N */
    r2 = nde_rng_new(2024, 0);
    nde_rng_uniform(&r2, N / 2, y);
    nde_rng_uniform(&r2, N / 2, y + N / 2);
    CHECK(memcmp(x, y, N * sizeof(nde_real)) == 0);
    /* normal: mean 0, variance 1 (Var s^2 = 2/n), kurtosis 3, P(|z| < 1) = 0.6827 */
    nde_rng_normal(&r, N, x);
    m = moments_of(x, N);
    CHECK_NEAR(m.mean, 0.0, 5.0 / sqrt((double)N), 0.0);
    CHECK_NEAR(m.var, 1.0, 5.0 * sqrt(2.0 / N), 0.0);
    {
        double m4 = 0.0; int64_t inside = 0;
        for (i = 0; i < N; i++) { m4 += pow((double)x[i], 4); inside += fabs((double)x[i]) < 1.0; }
        CHECK_NEAR(m4 / N, 3.0, 5.0 * sqrt(96.0 / N), 0.0);   /* Var z^4 = 105 - 9 */
        se = sqrt(0.6827 * 0.3173 / N);
        CHECK_NEAR((double)inside / N, 0.682689492, 5.0 * se, 0.0);
    }
    /* Rademacher: exactly +-1, mean 0 */
    nde_rng_rademacher(&r, N, x);
    for (ok = 1, i = 0; i < N; i++) ok &= x[i] == NDE_R(1.0) || x[i] == NDE_R(-1.0);
    CHECK(ok);
    m = moments_of(x, N);
    CHECK_NEAR(m.mean, 0.0, 5.0 / sqrt((double)N), 0.0);
    /* scalar draws */
    {
        nde_rng s = nde_rng_new(1, 2); double u = 0.0, z2 = 0.0; int j;
        for (j = 0; j < 20000; j++) { double v = nde_rng_uniform1(&s); ok &= v > 0.0 && v < 1.0; u += v; }
        CHECK(ok);
        CHECK_NEAR(u / 20000, 0.5, 5.0 * sqrt(1.0 / 12.0 / 20000), 0.0);
        for (j = 0; j < 20000; j++) { double v = nde_rng_normal1(&s); z2 += v * v; }
        CHECK_NEAR(z2 / 20000, 1.0, 5.0 * sqrt(2.0 / 20000), 0.0);
    }
    /* streams: split is reproducible, children differ from each other and from
       the parent, and are uncorrelated */
    {
        nde_rng p = nde_rng_new(77, 5), c1 = nde_rng_split(&p, 1), c1b = nde_rng_split(&p, 1), c2 = nde_rng_split(&p, 2);
        nde_rng q = nde_rng_new(77, 5);
        double dot = 0.0;
        CHECK(c1.stream == c1b.stream && c1.seed == c1b.seed && c1.counter == 0);
        CHECK(c1.stream != c2.stream && c1.stream != p.stream && c2.stream != p.stream);
        nde_rng_normal(&c1, N, x);
        nde_rng_normal(&c2, N, y);
        for (i = 0; i < N; i++) dot += (double)x[i] * y[i];
        CHECK_NEAR(dot / N, 0.0, 5.0 / sqrt((double)N), 0.0);
        nde_rng_normal(&c1b, N, y);
        CHECK(memcmp(x, y, N * sizeof(nde_real)) == 0);
        nde_rng_normal(&q, 16, y);
        CHECK(memcmp(x, y, 16 * sizeof(nde_real)) != 0);
        /* no collisions across generations (stream + child would give split(split(p, 1), 1) == split(p, 2)) */
        {
            nde_rng g1 = nde_rng_split(&c1b, 1), g2 = nde_rng_split(&c2, 1);
            CHECK(g1.stream != g2.stream && g1.stream != c1.stream && g1.stream != c2.stream && g2.stream != p.stream);
        }
    }
    /* tensor fills draw the same stream as the host functions */
    {
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
        int64_t s[1] = {1000};
        nde_tensor *t = nde_tensor_new(ctx, 1, s);
        nde_rng a = nde_rng_new(9, 3), b = nde_rng_new(9, 3);
        nde_tensor_fill_normal(ctx, t, &a, NDE_R(0.0), NDE_R(1.0));
        nde_rng_normal(&b, 1000, x);
        CHECK(memcmp(t->data, x, 1000 * sizeof(nde_real)) == 0 && a.counter == b.counter);
        nde_tensor_fill_uniform(ctx, t, &a, NDE_R(-2.0), NDE_R(2.0));
        nde_rng_uniform(&b, 1000, x);
        for (ok = 1, i = 0; i < 1000; i++) ok &= fabs((double)t->data[i] - (4.0 * x[i] - 2.0)) < 1e-6;
        CHECK(ok);
        nde_ctx_free(ctx);
    }
    free(x); free(y);
}

/* ---------------------------------------------------------------- threads */
static void test_matmul_threads(void) {
#ifdef _OPENMP
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    static const int64_t dims[3][3] = {{150, 130, 170}, {64, 512, 33}, {257, 96, 129}};
    int d, ta, tb;
    for (d = 0; d < 3; d++) {
        for (ta = 0; ta < 2; ta++) for (tb = 0; tb < 2; tb++) {
            int64_t m = dims[d][0], k = dims[d][1], n = dims[d][2];
            int64_t sa[2], sb[2];
            nde_tensor *a, *b, *c1, *c2;
            nde_mark mk = nde_ctx_mark(ctx);
            sa[0] = ta ? k : m; sa[1] = ta ? m : k;
            sb[0] = tb ? n : k; sb[1] = tb ? k : n;
            a = nde_tensor_randn(ctx, 2, sa, 1, (uint64_t)d);
            b = nde_tensor_randn(ctx, 2, sb, 2, (uint64_t)d);
            nde_set_num_threads(1);
            c1 = nde_matmul(ctx, a, b, ta, tb);
            nde_set_num_threads(2);
            c2 = nde_matmul(ctx, a, b, ta, tb);
            CHECK(c1 && c2 && c1->size == m * n && memcmp(c1->data, c2->data, (size_t)(m * n) * sizeof(nde_real)) == 0);
            /* and it is the product: one entry in double */
            if (c1) {
                int64_t i = m / 2, j = n / 3, p; double s = 0.0;
                for (p = 0; p < k; p++)
                    s += (double)(ta ? a->data[p * m + i] : a->data[i * k + p]) * (double)(tb ? b->data[j * k + p] : b->data[p * n + j]);
                CHECK_NEAR(c1->data[i * n + j], s, 1e-4 * sqrt((double)k), 0.0);
            }
            nde_ctx_reset(ctx, mk);
        }
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
#else
    SKIP("built without -fopenmp: no thread-count comparison");
#endif
}

/* ---------------------------------------------------------------- allocation */
/* Allocations (malloc + realloc through NDE_MALLOC) per iteration of a
   training loop; after two warm-up iterations there must be none. */
static long steady_state_allocs(nde_optimizer opt, int clip) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp net; int64_t widths[4] = {3, 32, 32, 2}, xs[2] = {64, 3}, ys[2] = {64, 2};
    long after_warmup = 0; int it;
    nde_mlp_init(ctx, &net, "net", 4, widths, NDE_ACT_TANH, 1);
    if (clip) opt.clip_grad_norm = 1.0;
    for (it = 0; it < 8; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *x = nde_tensor_randn(ctx, 2, xs, 3, (uint64_t)it);
        nde_tensor *y = nde_tensor_randn(ctx, 2, ys, 4, (uint64_t)it);
        nde_tensor *loss = nde_mse_loss(ctx, nde_mlp_forward(ctx, &net, x), y);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
        if (it == 1) after_warmup = alloc_count;
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    after_warmup = alloc_count - after_warmup;
    nde_ctx_free(ctx);
    return after_warmup;
}
static void test_no_alloc_in_steady_state(void) {
    long before = alloc_count, n;
    nde_optimizer sched = nde_adam(1e-3);
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    CHECK(alloc_count > before);   /* the counter sees nde's allocations */
    nde_ctx_free(ctx);
    n = steady_state_allocs(nde_adam(1e-3), 0);
    CHECK(n == 0);
    if (n) fprintf(stderr, "  Adam loop: %ld allocations after warm-up\n", n);
    CHECK(steady_state_allocs(nde_adamw(1e-3, 1e-2), 1) == 0);
    CHECK(steady_state_allocs(nde_sgd(1e-2, 0.9, 1), 0) == 0);
    CHECK(steady_state_allocs(nde_rmsprop(1e-3), 1) == 0);
    sched.schedule.kind = NDE_SCHED_COSINE; sched.schedule.steps = 5; sched.schedule.lr_end = 1e-5;
    CHECK(steady_state_allocs(sched, 0) == 0);
}

int main(void) {
    test_optimizers();
    test_optimizer_state();
    test_schedules();
    test_clipping();
    test_init();
    test_philox_kat();
    test_rng();
    test_matmul_threads();
    test_no_alloc_in_steady_state();
    return nde_test_finish("test_optim");
}
