// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/stiff_linear.c -o stiff_linear -lm
/* examples/stiff_linear.c - the stiff linear experiment of TayLaNets
   (Djeumou, Neary, Goubault, Putot, Topcu, "Taylor-Lagrange Neural Ordinary
   Differential Equations", 2022), written with nde.

   The system is z' = A z with A = P^-1 diag(-1000, -1) P, P = [[3, 1], [1, -2]]
   (eigenvalues -1000 and -1: stiff). Trajectories of the exact flow are sampled
   every --dt from initial states uniform in [-0.5, 0.5]^2; the data are pairs
   (z(t), z(t + dt)). Two experiments, as the research code's learn_midpoint.py
   and learn_dynamics.py:

   1. Learn the midpoint for the KNOWN dynamics: a Taylor-Lagrange step of order
      --order whose remainder h^(K+1) z_{K+1} is evaluated at a learned point
      between z(t) and its Taylor estimate of z(t + h) (nde_tayla_step), trained
      on the data. Compared on the test trajectories with the truncated Taylor
      step, fixed-step rk4 and adaptive dopri5 (--rtol, --atol) on the same field.
   2. Learn the dynamics (a 2-64-2 linear network, like the research code) and
      the midpoint together: the dynamics take an Adam step on every batch
      (loss: L1 prediction error + --pen_remainder * mean |remainder|); every
      --mid_freq_update iterations the midpoint takes --mid_num_grad_iter Adam
      steps of its own optimizer and schedule towards the dopri5 solution of the
      current dynamics. Compared with the same network trained through rk4 and
      through dopri5 (direct backpropagation through the solver).

   Reported: test error (mean over pairs of sum_i |prediction_i - truth_i|, the
   research code's metric), processor time per prediction step for a batch of
   --test_batch_size pairs, and training time per iteration (single thread).
   Flags use the research code's names: --order --n_steps --nepochs --lr_init
   --lr_end --w_decay --grad_clip --pen_remainder --mid_freq_update
   --mid_num_grad_iter --mid_lr_init --mid_lr_end --mid_w_decay --mid_grad_clip
   --atol --rtol --train_batch_size --test_batch_size --seed; and --dt
   --num_traj --num_test --traj_duration (generate_sample.py), --mid_nepochs
   (experiment 1), --skip_midpoint, --skip_dynamics, --mid_unbounded (the
   research code's unbounded midpoint coefficient; needed at --order 2 here,
   where the Lagrange point lies outside [z, T]).

   Differences from the research code, chosen so that the default run takes a
   minute or two on one core: 20 training trajectories of 2 s (theirs: 100 of
   20 s), 300 epochs at lr 1e-1 -> 1e-3 for the dynamics; Adam with the usual
   b1 = 0.9, b2 = 0.999 (theirs 0.999, 0.9999: with it the midpoint overshoots
   its optimum here); the midpoint is xi = z + sigmoid(net(z)) * (T - z), T the
   truncated Taylor step (theirs: z + net(z) * f(z), unbounded). The learning
   rates decay exponentially from lr_init to lr_end, as theirs.
*/
#define NDE_IMPLEMENTATION
#include "../nde_solvers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- flags */
typedef struct args {
    double dt, traj_duration; int num_traj, num_test;
    int order, n_steps, nepochs, mid_nepochs, train_batch_size, test_batch_size;
    double lr_init, lr_end, w_decay, grad_clip, pen_remainder;
    int mid_freq_update, mid_num_grad_iter;
    double mid_lr_init, mid_lr_end, mid_w_decay, mid_grad_clip;
    double atol, rtol;
    int seed, skip_midpoint, skip_dynamics, mid_unbounded;
} args;

static void args_default(args *a) {
    memset(a, 0, sizeof *a);
    a->dt = 0.01; a->traj_duration = 2.0; a->num_traj = 20; a->num_test = 10;
    a->order = 1; a->n_steps = 1; a->nepochs = 300; a->mid_nepochs = 100;
    a->train_batch_size = 500; a->test_batch_size = 500;
    a->lr_init = 1e-1; a->lr_end = 1e-3; a->pen_remainder = 1e-3;
    a->mid_freq_update = 10; a->mid_num_grad_iter = 1; a->mid_lr_init = 1e-2; a->mid_lr_end = 1e-4;
    a->atol = 1e-8; a->rtol = 1e-8;
    a->seed = 0;
}

#ifndef EXAMPLE_NO_MAIN   /* tests/test_ex_stiff_linear.c includes this file without main */
static int args_parse(args *a, int argc, char **argv) {
    static const struct { const char *name; int is_int; size_t off; } flags[] = {
        {"--dt", 0, offsetof(args, dt)}, {"--traj_duration", 0, offsetof(args, traj_duration)},
        {"--num_traj", 1, offsetof(args, num_traj)}, {"--num_test", 1, offsetof(args, num_test)},
        {"--order", 1, offsetof(args, order)}, {"--n_steps", 1, offsetof(args, n_steps)},
        {"--nepochs", 1, offsetof(args, nepochs)}, {"--mid_nepochs", 1, offsetof(args, mid_nepochs)},
        {"--train_batch_size", 1, offsetof(args, train_batch_size)}, {"--test_batch_size", 1, offsetof(args, test_batch_size)},
        {"--lr_init", 0, offsetof(args, lr_init)}, {"--lr_end", 0, offsetof(args, lr_end)},
        {"--w_decay", 0, offsetof(args, w_decay)}, {"--grad_clip", 0, offsetof(args, grad_clip)},
        {"--pen_remainder", 0, offsetof(args, pen_remainder)},
        {"--mid_freq_update", 1, offsetof(args, mid_freq_update)}, {"--mid_num_grad_iter", 1, offsetof(args, mid_num_grad_iter)},
        {"--mid_lr_init", 0, offsetof(args, mid_lr_init)}, {"--mid_lr_end", 0, offsetof(args, mid_lr_end)},
        {"--mid_w_decay", 0, offsetof(args, mid_w_decay)}, {"--mid_grad_clip", 0, offsetof(args, mid_grad_clip)},
        {"--atol", 0, offsetof(args, atol)}, {"--rtol", 0, offsetof(args, rtol)},
        {"--seed", 1, offsetof(args, seed)}
    };
    int i; size_t f;
    for (i = 1; i < argc; i++) {
        int found = 0;
        if (!strcmp(argv[i], "--skip_midpoint")) { a->skip_midpoint = 1; continue; }
        if (!strcmp(argv[i], "--skip_dynamics")) { a->skip_dynamics = 1; continue; }
        if (!strcmp(argv[i], "--mid_unbounded")) { a->mid_unbounded = 1; continue; }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 0;
        for (f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            char *end;
            if (strcmp(argv[i], flags[f].name)) continue;
            if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n", argv[i]); return 0; }
            if (flags[f].is_int) *(int *)(void *)((char *)a + flags[f].off) = (int)strtol(argv[++i], &end, 10);
            else *(double *)(void *)((char *)a + flags[f].off) = strtod(argv[++i], &end);
            if (*end) { fprintf(stderr, "%s: bad value '%s'\n", flags[f].name, argv[i]); return 0; }
            found = 1;
            break;
        }
        if (!found) { fprintf(stderr, "unknown flag %s\n", argv[i]); return 0; }
    }
    if (a->dt <= 0 || a->order < 1 || a->order > NDE_JET_MAX_ORDER - 1 || a->n_steps < 1 || a->nepochs < 0 ||
        a->train_batch_size < 1 || a->test_batch_size < 1 || a->num_traj < 1 || a->num_test < 1 ||
        a->traj_duration < a->dt || a->mid_freq_update < 1 || a->mid_num_grad_iter < 1) {
        fprintf(stderr, "flags out of range\n");
        return 0;
    }
    return 1;
}
#endif

/* Processor time of this (single-threaded) program: steadier than wall time on a
   shared machine. */
static double now_seconds(void) { return (double)clock() / (double)CLOCKS_PER_SEC; }

/* ---------------------------------------------------------------- the system */
/* A = P^-1 D P and the exact flow e^(A t) = P^-1 e^(D t) P. */
static void stiff_matrix(double t, int exponential, double out[4]) {
    const double p[4] = {3, 1, 1, -2}, det = 3.0 * -2.0 - 1.0 * 1.0;
    const double pinv[4] = {-2 / det, -1 / det, -1 / det, 3 / det};
    double d0 = exponential ? exp(-1000.0 * t) : -1000.0, d1 = exponential ? exp(-1.0 * t) : -1.0;
    int i, j;
    for (i = 0; i < 2; i++)
        for (j = 0; j < 2; j++) out[2 * i + j] = pinv[2 * i + 0] * d0 * p[0 * 2 + j] + pinv[2 * i + 1] * d1 * p[1 * 2 + j];
}

/* Pairs (z(t_i), z(t_i + dt)) along num trajectories of len points each. */
typedef struct dataset { int64_t n; nde_real *x, *y; } dataset;
static dataset make_data(int num, int len, double dt, uint64_t seed, uint64_t stream) {
    dataset d; double flow[4]; nde_rng r = nde_rng_new(seed, stream); int i, k;
    stiff_matrix(dt, 1, flow);
    d.n = (int64_t)num * len;
    d.x = (nde_real *)malloc((size_t)d.n * 2 * sizeof(nde_real));
    d.y = (nde_real *)malloc((size_t)d.n * 2 * sizeof(nde_real));
    for (i = 0; i < num; i++) {
        double z[2], zn[2];
        z[0] = nde_rng_uniform1(&r) - 0.5; z[1] = nde_rng_uniform1(&r) - 0.5;
        for (k = 0; k < len; k++) {
            int64_t row = (int64_t)i * len + k;
            zn[0] = flow[0] * z[0] + flow[1] * z[1];
            zn[1] = flow[2] * z[0] + flow[3] * z[1];
            d.x[2 * row] = (nde_real)z[0]; d.x[2 * row + 1] = (nde_real)z[1];
            d.y[2 * row] = (nde_real)zn[0]; d.y[2 * row + 1] = (nde_real)zn[1];
            z[0] = zn[0]; z[1] = zn[1];
        }
    }
    return d;
}

/* ---------------------------------------------------------------- the model */
typedef struct model {
    int known;                 /* 1: f(z) = A z, else the dynamics network */
    nde_tensor *A;             /* (2, 2), persistent */
    nde_mlp dyn, mid;
    int has_mid;
} model;

static nde_jet *jet_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    model *m = (model *)user;
    (void)t;
    if (m->known) return nde_jet_matmul(ctx, z, nde_jet_const(ctx, m->A, 0), 0, 1);   /* rows: z A^T */
    return nde_jet_mlp_forward(ctx, &m->dyn, z);
}
static nde_tensor *plain_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    model *m = (model *)user;
    (void)t;
    if (m->known) return nde_matmul(ctx, z, m->A, 0, 1);
    return nde_mlp_forward(ctx, &m->dyn, z);
}
static nde_tensor *midpoint_net(nde_ctx *ctx, nde_tensor *z, void *user) {
    return nde_mlp_forward(ctx, &((model *)user)->mid, z);
}

/* The midpoint network as in the research code: 2-16-2, relu, weights U(-1e-2, 1e-2), zero biases. */
static void init_midpoint(nde_ctx *ctx, model *m, uint64_t seed) {
    int64_t w[3] = {2, 16, 2}; int i;
    nde_mlp_init(ctx, &m->mid, "mid", 3, w, NDE_ACT_RELU, seed);
    for (i = 0; i < m->mid.num_layers; i++) {
        nde_init_uniform(ctx, m->mid.layer[i].weight, NDE_R(-1e-2), NDE_R(1e-2), seed + (uint64_t)i);
        nde_tensor_fill(ctx, m->mid.layer[i].bias, NDE_R(0.0));
    }
    m->has_mid = 1;
}

/* Freeze every parameter whose name does not start with prefix. */
static void train_only(nde_ctx *ctx, const char *prefix) {
    int i;
    for (i = 0; i < nde_params_num(ctx); i++)
        nde_param_set_trainable(ctx, i, strncmp(nde_param_name(ctx, i), prefix, strlen(prefix)) == 0);
}

/* Adam with an exponential decay from lr_init to lr_end (optax.exponential_decay, as the research
   code). Its Adam uses b1 = 0.999, b2 = 0.9999; the defaults 0.9, 0.999 train this problem in far
   fewer epochs (b1 = 0.999 carries the midpoint far past its optimum at these learning rates). */
static nde_optimizer make_adam(double lr_init, double lr_end, int64_t steps, double w_decay, double clip) {
    nde_optimizer o = nde_adam(lr_init);
    o.weight_decay = w_decay; o.clip_grad_norm = clip;
    o.schedule.kind = NDE_SCHED_EXPONENTIAL;
    o.schedule.lr_init = lr_init; o.schedule.lr_end = lr_end; o.schedule.steps = steps > 0 ? steps : 1;
    return o;
}

/* ---------------------------------------------------------------- predictors */
enum { M_TAYLA, M_TAYLOR, M_RK4, M_DOPRI5 };
static const char *method_names[] = {"tayla", "taylor", "rk4", "dopri5"};

/* One prediction z(t + dt) from a batch z (B, 2); *rem_l1 (tayla) the remainder term. */
static nde_tensor *predict(nde_ctx *ctx, model *m, int method, const args *a, nde_tensor *z, nde_tensor **rem_l1,
                           int64_t *nfe) {
    if (rem_l1) *rem_l1 = NULL;
    if (method == M_TAYLA || method == M_TAYLOR) {
        nde_tayla_options o = nde_tayla_options_default();
        o.order = a->order; o.n_steps = a->n_steps; o.midpoint_unbounded = a->mid_unbounded;
        o.midpoint = method == M_TAYLA ? midpoint_net : NULL; o.midpoint_user = m;
        return nde_tayla_solve(ctx, jet_field, m, &o, 0, (nde_real)a->dt, z, method == M_TAYLA ? rem_l1 : NULL);
    } else {
        double ts[2]; nde_solve_options so = nde_solve_options_default(); nde_solution sol; nde_tensor *y;
        ts[0] = 0; ts[1] = a->dt;
        if (method == M_RK4) { so.method = NDE_RK4; so.step_size = a->dt / a->n_steps; }   /* n_steps rk4 steps */
        else { so.method = NDE_DOPRI5; so.rtol = a->rtol; so.atol = a->atol; }
        if (nde_solve(ctx, plain_field, m, z, 2, ts, &so, &sol) != NDE_OK) return NULL;
        y = sol.ys[1];
        if (nfe) *nfe += sol.stats.nfe;
        nde_solution_free(ctx, &sol);
        return y;
    }
}
/* the research code's _pred_loss: mean over the batch of sum_i |pred_i - next_i| */
static nde_tensor *pred_loss(nde_ctx *ctx, nde_tensor *pred, nde_tensor *next) {
    return nde_scale(ctx, nde_l1_loss(ctx, pred, next), NDE_R(2.0));
}

static nde_tensor *batch(nde_ctx *ctx, const nde_real *src, int64_t start, int64_t count) {
    int64_t s[2]; s[0] = count; s[1] = 2;
    return nde_tensor_from(ctx, 2, s, src + 2 * start);
}

typedef struct eval_result { double loss, seconds_per_step; int64_t nfe; } eval_result;
/* Test error and processor time per prediction step (one step = one test batch). */
static eval_result evaluate(nde_ctx *ctx, model *m, int method, const args *a, const dataset *te) {
    eval_result r; int64_t i, nb = 0; double total = 0, t0, t_pred = 0;
    int was = nde_set_grad_enabled(ctx, 0);
    r.nfe = 0;
    for (i = 0; i + a->test_batch_size <= te->n; i += a->test_batch_size) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *x = batch(ctx, te->x, i, a->test_batch_size), *y = batch(ctx, te->y, i, a->test_batch_size), *p;
        t0 = now_seconds();
        p = predict(ctx, m, method, a, x, NULL, &r.nfe);
        t_pred += now_seconds() - t0;
        if (!p) break;
        total += nde_tensor_item(ctx, pred_loss(ctx, p, y), 0);
        nb++;
        nde_ctx_reset(ctx, mk);
    }
    nde_set_grad_enabled(ctx, was);
    r.loss = nb ? total / (double)nb : NAN;
    r.seconds_per_step = nb ? t_pred / (double)nb : NAN;
    if (nb) r.nfe /= nb;
    return r;
}

/* Shuffled batch order for one epoch (Fisher-Yates with Philox). */
static void shuffle(int64_t *idx, int64_t n, nde_rng *r) {
    int64_t i;
    for (i = 0; i < n; i++) idx[i] = i;
    for (i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(nde_rng_uniform1(r) * (double)(i + 1)), t;
        if (j > i) j = i;
        t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}
static nde_tensor *gather(nde_ctx *ctx, const nde_real *src, const int64_t *idx, int64_t count) {
    nde_real *buf = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)count * 2 * sizeof(nde_real));
    int64_t i;
    for (i = 0; i < count; i++) { buf[2 * i] = src[2 * idx[i]]; buf[2 * i + 1] = src[2 * idx[i] + 1]; }
    return batch(ctx, buf, 0, count);
}

static int check(nde_ctx *ctx, const char *where) {
    if (nde_ctx_status(ctx) == NDE_OK) return 1;
    fprintf(stderr, "%s: %s\n", where, nde_ctx_message(ctx));
    return 0;
}

/* Field evaluations per prediction for the Taylor methods: K jet coefficients at z,
   and K + 1 at the midpoint (each is one extension of the recorded field). */
static int tayla_nfe(const args *a, int with_midpoint) { return a->n_steps * (a->order + (with_midpoint ? a->order + 1 : 0)); }

/* ---------------------------------------------------------------- experiment 1 */
/* out (optional): the tayla test error before [0] and after [1] training. */
static int learn_midpoint(const args *a, const dataset *tr, const dataset *te, eval_result *out) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    model m; double A[4]; nde_real Ar[4]; int i, e; int64_t it = 0, *idx, nb = tr->n / a->train_batch_size;
    int64_t s22[2] = {2, 2};
    nde_rng rng = nde_rng_new((uint64_t)a->seed, 7);
    nde_optimizer opt = make_adam(a->mid_lr_init, a->mid_lr_end, (int64_t)a->mid_nepochs * nb, a->mid_w_decay, a->mid_grad_clip);
    double t_train = 0;
    eval_result before, after, base[4];
    memset(&m, 0, sizeof m);
    stiff_matrix(0, 0, A);
    for (i = 0; i < 4; i++) Ar[i] = (nde_real)A[i];
    m.known = 1;
    m.A = nde_param_new(ctx, "A", 2, s22);
    nde_tensor_set_host(ctx, m.A, Ar);
    nde_param_set_trainable(ctx, 0, 0);
    init_midpoint(ctx, &m, (uint64_t)a->seed + 1);
    idx = (int64_t *)malloc((size_t)tr->n * sizeof(int64_t));
    printf("\n== 1. learn the midpoint for the known dynamics (order %d, n_steps %d, dt %g, %lld pairs, %d epochs)\n",
           a->order, a->n_steps, a->dt, (long long)tr->n, a->mid_nepochs);
    before = evaluate(ctx, &m, M_TAYLA, a, te);
    for (e = 0; e < a->mid_nepochs; e++) {
        shuffle(idx, tr->n, &rng);
        for (i = 0; i < nb; i++, it++) {
            nde_mark mk = nde_ctx_mark(ctx);
            double t0 = now_seconds();
            nde_tensor *x = gather(ctx, tr->x, idx + (int64_t)i * a->train_batch_size, a->train_batch_size);
            nde_tensor *y = gather(ctx, tr->y, idx + (int64_t)i * a->train_batch_size, a->train_batch_size);
            nde_tensor *loss = pred_loss(ctx, predict(ctx, &m, M_TAYLA, a, x, NULL, NULL), y);
            nde_zero_grad(ctx);
            nde_backward(ctx, loss);
            nde_optimizer_step(ctx, &opt);
            t_train += now_seconds() - t0;
            nde_ctx_reset(ctx, mk);
        }
        if (!check(ctx, "learn_midpoint")) return 1;
    }
    after = evaluate(ctx, &m, M_TAYLA, a, te);
    if (out) { out[0] = before; out[1] = after; }
    for (i = M_TAYLOR; i <= M_DOPRI5; i++) base[i] = evaluate(ctx, &m, i, a, te);
    if (!check(ctx, "evaluate")) return 1;
    printf("   train cpu time per iteration: %.3g ms\n", it ? 1e3 * t_train / (double)it : 0.0);
    printf("   %-22s %14s %18s %10s\n", "method (known field)", "test error", "cpu ms/step", "nfe/step");
    printf("   %-22s %14.4e %18.4f %10d\n", "tayla, midpoint init", before.loss, 1e3 * before.seconds_per_step, tayla_nfe(a, 1));
    printf("   %-22s %14.4e %18.4f %10d\n", "tayla, learned", after.loss, 1e3 * after.seconds_per_step, tayla_nfe(a, 1));
    for (i = M_TAYLOR; i <= M_DOPRI5; i++)
        printf("   %-22s %14.4e %18.4f %10lld\n", method_names[i], base[i].loss, 1e3 * base[i].seconds_per_step,
               i == M_TAYLOR ? (long long)tayla_nfe(a, 0) : (long long)base[i].nfe);
    free(idx);
    nde_ctx_free(ctx);
    return 0;
}

/* ---------------------------------------------------------------- experiment 2 */
/* out (optional): the test error of the trained model by its own method. */
static int learn_dynamics(const args *a, const dataset *tr, const dataset *te, int method, eval_result *out) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    model m; int64_t w[3] = {2, 64, 2}, *idx, nb = tr->n / a->train_batch_size, it = 0;
    int e, i, g;
    nde_rng rng = nde_rng_new((uint64_t)a->seed, 11);
    int64_t mid_steps = ((int64_t)a->nepochs * nb / a->mid_freq_update) * a->mid_num_grad_iter;
    nde_optimizer opt = make_adam(a->lr_init, a->lr_end, (int64_t)a->nepochs * nb, a->w_decay, a->grad_clip);
    nde_optimizer mopt = make_adam(a->mid_lr_init, a->mid_lr_end, mid_steps, a->mid_w_decay, a->mid_grad_clip);
    double t_train = 0;
    eval_result r;
    char eig[96];
    memset(&m, 0, sizeof m);
    nde_mlp_init(ctx, &m.dyn, "dyn", 3, w, NDE_ACT_NONE, (uint64_t)a->seed + 3);
    if (method == M_TAYLA) init_midpoint(ctx, &m, (uint64_t)a->seed + 1);
    idx = (int64_t *)malloc((size_t)tr->n * sizeof(int64_t));
    for (e = 0; e < a->nepochs; e++) {
        shuffle(idx, tr->n, &rng);
        for (i = 0; i < nb; i++) {
            nde_mark mk = nde_ctx_mark(ctx);
            double t0 = now_seconds();
            nde_tensor *x = gather(ctx, tr->x, idx + (int64_t)i * a->train_batch_size, a->train_batch_size);
            nde_tensor *y = gather(ctx, tr->y, idx + (int64_t)i * a->train_batch_size, a->train_batch_size);
            nde_tensor *rem = NULL, *loss;
            it++;
            if (method == M_TAYLA) train_only(ctx, "dyn.");
            loss = pred_loss(ctx, predict(ctx, &m, method, a, x, &rem, NULL), y);
            if (rem && a->pen_remainder > 0) loss = nde_add(ctx, loss, nde_scale(ctx, rem, (nde_real)a->pen_remainder));
            nde_zero_grad(ctx);
            nde_backward(ctx, loss);
            nde_optimizer_step(ctx, &opt);
            if (method == M_TAYLA && it % a->mid_freq_update == 0) {
                /* the midpoint chases the accurate (dopri5) solution of the current dynamics */
                nde_tensor *target;
                nde_set_grad_enabled(ctx, 0);
                target = predict(ctx, &m, M_DOPRI5, a, x, NULL, NULL);
                target = nde_tensor_detach(ctx, target);
                nde_set_grad_enabled(ctx, 1);
                train_only(ctx, "mid.");
                for (g = 0; g < a->mid_num_grad_iter; g++) {
                    nde_mark mg = nde_ctx_mark(ctx);
                    nde_tensor *ml = pred_loss(ctx, predict(ctx, &m, M_TAYLA, a, x, &rem, NULL), target);
                    if (rem && a->pen_remainder > 0) ml = nde_add(ctx, ml, nde_scale(ctx, rem, (nde_real)a->pen_remainder));
                    nde_zero_grad(ctx);
                    nde_backward(ctx, ml);
                    nde_optimizer_step(ctx, &mopt);
                    nde_ctx_reset(ctx, mg);
                }
            }
            t_train += now_seconds() - t0;
            nde_ctx_reset(ctx, mk);
        }
        if (!check(ctx, method_names[method])) return 1;
    }
    if (method == M_TAYLA) train_only(ctx, "");
    r = evaluate(ctx, &m, method, a, te);
    if (!check(ctx, "evaluate")) return 1;
    if (out) *out = r;
    {   /* the learned field is affine, M z + c: the eigenvalues of M against -1000 and -1 */
        double mm[4], tr_, det, disc; int64_t s12[2] = {1, 2};
        nde_real e0[2] = {1, 0}, e1[2] = {0, 1}, zero[2] = {0, 0};
        nde_set_grad_enabled(ctx, 0);
        {
            nde_tensor *c = nde_mlp_forward(ctx, &m.dyn, nde_tensor_from(ctx, 2, s12, zero));
            nde_tensor *c0 = nde_mlp_forward(ctx, &m.dyn, nde_tensor_from(ctx, 2, s12, e0));
            nde_tensor *c1 = nde_mlp_forward(ctx, &m.dyn, nde_tensor_from(ctx, 2, s12, e1));
            mm[0] = c0->data[0] - c->data[0]; mm[2] = c0->data[1] - c->data[1];
            mm[1] = c1->data[0] - c->data[0]; mm[3] = c1->data[1] - c->data[1];
        }
        tr_ = mm[0] + mm[3]; det = mm[0] * mm[3] - mm[1] * mm[2]; disc = tr_ * tr_ / 4 - det;
        if (disc >= 0) snprintf(eig, sizeof eig, "%.4g, %.4g", tr_ / 2 - sqrt(disc), tr_ / 2 + sqrt(disc));
        else snprintf(eig, sizeof eig, "%.4g +- %.4gi", tr_ / 2, sqrt(-disc));
        nde_set_grad_enabled(ctx, 1);
    }
    printf("   %-10s %14.4e %18.4f %22.3f %12lld   %s\n", method_names[method], r.loss, 1e3 * r.seconds_per_step,
           it ? 1e3 * t_train / (double)it : 0.0,
           method == M_DOPRI5 ? (long long)r.nfe : method == M_RK4 ? 4LL * a->n_steps : (long long)tayla_nfe(a, 1), eig);
    if (method == M_TAYLA) {
        eval_result ref = evaluate(ctx, &m, M_DOPRI5, a, te);
        printf("   %-10s %14.4e %18.4f %22s %12lld   (the tayla-trained field solved by dopri5)\n", "", ref.loss,
               1e3 * ref.seconds_per_step, "-", (long long)ref.nfe);
    }
    free(idx);
    nde_ctx_free(ctx);
    return 0;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    args a; dataset tr, te; int len, rc = 0, mth;
    args_default(&a);
    if (!args_parse(&a, argc, argv)) {
        fprintf(stderr, "usage: %s [--dt 0.01] [--order 1] [--n_steps 1] [--nepochs 100] [--mid_nepochs 100] ...\n"
                        "       (see the comment at the top of examples/stiff_linear.c)\n", argv[0]);
        return 2;
    }
    len = (int)(a.traj_duration / a.dt + 0.5);
    tr = make_data(a.num_traj, len, a.dt, 101, 0);
    te = make_data(a.num_test, len, a.dt, 101, 1);
    printf("stiff linear system, eigenvalues -1000 and -1; dt %g, %d training and %d test trajectories of %d steps\n",
           a.dt, a.num_traj, a.num_test, len);
    printf("test error: mean over pairs of sum_i |prediction_i - z_i(t + dt)|; cpu ms/step: one prediction step of %d pairs\n",
           a.test_batch_size);
    if (!a.skip_midpoint) rc |= learn_midpoint(&a, &tr, &te, NULL);
    if (!a.skip_dynamics) {
        printf("\n== 2. learn the dynamics (2-64-2 linear network) and the midpoint together (order %d, %d epochs, "
               "pen_remainder %g, mid_freq_update %d)\n", a.order, a.nepochs, a.pen_remainder, a.mid_freq_update);
        printf("   %-10s %14s %18s %22s %12s   %s\n", "trained by", "test error", "cpu ms/step", "train cpu ms/iter", "nfe/step", "learned eigenvalues");
        for (mth = M_TAYLA; mth <= M_DOPRI5 && !rc; mth++) if (mth != M_TAYLOR) rc |= learn_dynamics(&a, &tr, &te, mth, NULL);
    }
    free(tr.x); free(tr.y); free(te.x); free(te.y);
    return rc;
}
#endif
