// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/quadrature_adjoint.c -o quadrature_adjoint -lm
/* examples/quadrature_adjoint.c - the experiments of Norcliffe and Deisenroth,
   "Faster Training of Neural ODEs Using Gauss-Legendre Quadrature" (TMLR 2023),
   written with nde (nde_adjoint.h's NDE_GRAD_GAUSS is their odeint_adjoint_gq:
   the parameter gradient of each output interval is a Gauss-Legendre sum of
   a^T df/dtheta at min(ceil(gtol NFE_forward |dt| / T), 64) nodes, while only
   [z, a] is integrated backwards).

   Every run trains one model per entry of --adjoint_option, from the same
   initialisation and with the same mini-batches, and reports the training
   time per epoch (wall clock and CPU), the forward and backward NFE per batch
   and the validation metric:
       adjoint_gq        Gauss-Legendre quadrature adjoint (NDE_GRAD_GAUSS, --gtol)
       adjoint_ode       torchdiffeq's continuous adjoint (NDE_GRAD_BACKSOLVE)
       adjoint_seminorm  the same with the seminorm step control
       direct            backpropagation through the solver (NDE_GRAD_DIRECT)
       sde_direct        ou only: train the SDE itself, backpropagating through
                         reversible Heun (step --sde_dt) as the research code's
                         torchsde sdeint
       sde_adjoint       ou only: the same through nde_sdeint_adjoint (reversible
                         Heun's exact algebraic reverse; torchsde's sdeint_adjoint)
   (any other nde gradient mode name works too: interp, checkpoint, gq_step).
   Solves use dopri5 with rtol = atol = --tol.

   --experiment nested_spheres (Dupont et al.'s "g"): 2-D points uniform in
     [-1, 1]^2, class 0 inside radius 0.4, class 1 between 0.7 and 0.9, 1000 +
     1000 training and 50 + 50 validation points; the state is the point with
     --aug_dim zeros appended, the field an MLP of [z, t] with two hidden layers
     of --width softplus units, the read-out a linear layer of z(1);
     cross-entropy; validation accuracy (%).
   --experiment sines: x'' = -x, x(t) = A sin t + B cos t with (B, A) uniform in
     [-1, 1]^2; 15 training and 5 validation series of --ntimes points on
     [0, 2 pi], --regular_times regular (a shared grid) or irregular (sorted
     uniform times per series, t_0 = 0; the solve outputs the union of the
     batch's times and each series takes its own); a second-order model
     [x, v]' = [v, MLP(x, v)]; mean squared error of x.
   --experiment ou: a time-dependent Ornstein-Uhlenbeck process dY = (0.2 t -
     0.1 Y) dt + (0.6 + 0.15 t) dW on [0, 10] (101 times), 200 training and 20
     validation initial values Y0 ~ U(-3, 3) with 45 sample paths each. The
     model's drift f(t, y) and diffusion g(t, y) are MLPs of [y, t] (--width);
     it is trained as the Wong-Zakai ODE y' = f + g eta(t), eta a Karhunen-Loeve
     truncation of white noise with --ncosines terms, eta(t) = sqrt(2/T)
     sum_n xi_n cos((n - 1/2) pi t / T), xi_n ~ N(0, 1) drawn per path and batch;
     loss: the KL divergence between normal fits (over the 45 paths) of the
     model's and the data's values at each time. For validation the same f and
     g are transferred to the SDE they approximate, the Stratonovich SDE
     dY = f dt + g o dW (Wong-Zakai), solved by nde_sdeint (nde_solvers.h) with
     every method of --sde_method at step --sde_dt on one Brownian path (a
     virtual Brownian tree keyed by --experiment_no, the same for every method
     and epoch): milstein on the Stratonovich form (g'g by an exact JVP),
     euler (Euler-Maruyama) on the Ito form dY = (f - 1/2 g dg/dy) dt + g dW,
     and optionally reversible_heun (the research code's test solver) or
     euler_heun. The metric is the mean log-likelihood of the validation paths
     under the normal fits of 45 model paths (the research code's
     sample_logp), one per SDE method. Times t > 0 only (at t = 0 every path
     equals Y0 and the normal fit degenerates).

   Outputs in --save: log.csv (per option and epoch), times.svg (validation
   metric against training time), checkpoints ckpt_<option>.* (--resume).
   Flags use the research code's names (--experiment_no is the seed, --batchsize
   0 = full batch); the experiment's own default applies to --width, --nepochs,
   --lr, --batchsize left at 0 (-1 for --batchsize):
                    width  nepochs  lr     batchsize
     nested_spheres  20     100     0.01   200
     sines           100    250     0.001  full
     ou              5      100     0.001  40
   Default (a few CPU minutes): nested spheres with a wide field, --width 200,
   --nepochs 30, the three options adjoint_ode, adjoint_gq, direct:
       ./quadrature_adjoint
   Paper-sized runs (the research code's README: width 2000 at lr 1e-4 for
   nested spheres, width 1000 at lr 3e-5 for sines):
       ./quadrature_adjoint --experiment nested_spheres --width 2000 --lr 0.0001 --nepochs 100
       ./quadrature_adjoint --experiment sines --width 1000 --lr 0.00003 --ntimes 50 --regular_times irregular
       ./quadrature_adjoint --experiment ou --adjoint_option adjoint_gq,sde_direct,sde_adjoint
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_adjoint.h"

#define QA_MAX_OPTIONS 6
#define QA_MAX_SDE 5
#define QA_PI 3.14159265358979323846

typedef struct qa_args {
    const char *experiment, *adjoint_option, *regular_times, *save, *sde_method;
    double tol, gtol, lr, sde_dt;
    int width, nepochs, batchsize, experiment_no, aug_dim, ntimes, ncosines;
    int max_train, max_val, resume, quiet;
} qa_args;

static void qa_args_default(qa_args *a) {
    memset(a, 0, sizeof *a);
    a->experiment = "nested_spheres"; a->adjoint_option = "adjoint_ode,adjoint_gq,direct";
    a->regular_times = "regular"; a->save = "quadrature_adjoint_out";
    a->tol = 1e-3; a->gtol = 0.1; a->lr = 0.0;
    a->width = 0; a->nepochs = 0; a->batchsize = -1; a->experiment_no = 1; a->aug_dim = 3; a->ntimes = 10;
    a->ncosines = 10; a->sde_method = "milstein,euler"; a->sde_dt = 0.01;
}

enum { QA_SPHERES, QA_SINES, QA_OU };

/* The experiment's defaults for flags left unset. */
static void qa_fill_defaults(qa_args *a, int kind, int default_run) {
    static const int width[3] = {20, 100, 5}, nepochs[3] = {100, 250, 100}, batch[3] = {200, 0, 40};
    static const double lr[3] = {0.01, 0.001, 0.001};
    if (a->width <= 0) a->width = (default_run && kind == QA_SPHERES) ? 200 : width[kind];
    if (a->nepochs <= 0) a->nepochs = (default_run && kind == QA_SPHERES) ? 30 : nepochs[kind];
    if (!(a->lr > 0)) a->lr = lr[kind];
    if (a->batchsize < 0) a->batchsize = batch[kind];
}

/* ---------------------------------------------------------------- data */
typedef struct qa_data {
    int kind;
    /* spheres: x (n, 2), y labels. sines: x (n, 2) = (B, A), times (n, ntimes), y (n, ntimes).
       ou: y0 per item, paths (n, 45, 101). */
    int64_t n_train, n_val, ntimes, npaths;
    nde_real *x_train, *x_val, *t_train, *t_val, *y_train, *y_val;
    int64_t *label_train, *label_val;
} qa_data;

/* Nested spheres: rejection sampling of uniform points in [-1, 1]^2 until
   per_class points of each class; the classes alternate (rows 0, 2, 4, ...
   class 0), so any prefix is balanced. */
static void qa_nested_spheres(nde_rng *r, int64_t per_class, nde_real *x, int64_t *y) {
    int64_t n0 = 0, n1 = 0;
    while (n0 < per_class || n1 < per_class) {
        double px = 2 * nde_rng_uniform1(r) - 1, py = 2 * nde_rng_uniform1(r) - 1, len = sqrt(px * px + py * py);
        int64_t row = -1;
        if (len < 0.4 && n0 < per_class) { row = 2 * n0++; y[row] = 0; }
        else if (len > 0.7 && len < 0.9 && n1 < per_class) { row = 2 * n1++ + 1; y[row] = 1; }
        if (row >= 0) { x[2 * row] = (nde_real)px; x[2 * row + 1] = (nde_real)py; }
    }
}

/* Sines: (B, A) ~ U(-1, 1)^2; times regular on [0, 2 pi] or sorted uniform with t_0 = 0. */
static void qa_sines(nde_rng *r, int64_t n, int64_t ntimes, int regular, nde_real *x, nde_real *t, nde_real *y) {
    int64_t i, j, k;
    for (i = 0; i < n; i++) {
        double b = 2 * nde_rng_uniform1(r) - 1, a = 2 * nde_rng_uniform1(r) - 1;
        double *ts = (double *)malloc((size_t)ntimes * sizeof(double));
        if (!ts) return;
        x[2 * i] = (nde_real)b; x[2 * i + 1] = (nde_real)a;
        for (j = 0; j < ntimes; j++) ts[j] = regular ? 2 * QA_PI * (double)j / (double)(ntimes - 1) : 2 * QA_PI * nde_rng_uniform1(r);
        for (j = 1; j < ntimes; j++)    /* insertion sort */
            for (k = j; k > 0 && ts[k] < ts[k - 1]; k--) { double tmp = ts[k]; ts[k] = ts[k - 1]; ts[k - 1] = tmp; }
        ts[0] = 0.0;
        for (j = 0; j < ntimes; j++) {
            t[i * ntimes + j] = (nde_real)ts[j];
            y[i * ntimes + j] = (nde_real)(a * sin(ts[j]) + b * cos(ts[j]));
        }
        free(ts);
    }
}

/* Ornstein-Uhlenbeck data: n initial values, npaths paths each, at 101 times on
   [0, 10], by Euler-Maruyama with step 0.01 (exact in distribution up to
   O(dt) for this additive noise, where Ito and Stratonovich agree). */
#define QA_OU_TIMES 101
static void qa_ou(nde_rng *r, int64_t n, int64_t npaths, nde_real *y0, nde_real *paths) {
    const double mu = 0.2, theta = 0.1, sigma = 0.6, phi = 0.15, dt = 0.01;
    int64_t i, p, j, k;
    for (i = 0; i < n; i++) {
        double start = 6 * nde_rng_uniform1(r) - 3;
        y0[i] = (nde_real)start;
        for (p = 0; p < npaths; p++) {
            double y = start, t = 0.0;
            nde_real *out = paths + (i * npaths + p) * QA_OU_TIMES;
            out[0] = (nde_real)y;
            for (j = 1; j < QA_OU_TIMES; j++)
                for (k = 0; k < 10; k++) {
                    y += (mu * t - theta * y) * dt + (sigma + phi * t) * sqrt(dt) * nde_rng_normal1(r);
                    t += dt;
                    if (k == 9) out[j] = (nde_real)y;
                }
        }
    }
}

static int qa_data_make(const qa_args *a, int kind, qa_data *d) {
    nde_rng rt = nde_rng_new(982846947, (uint64_t)kind), rv = nde_rng_new(535617672, (uint64_t)kind);
    int regular = strcmp(a->regular_times, "irregular") != 0;
    memset(d, 0, sizeof *d);
    d->kind = kind;
    if (kind == QA_SPHERES) {
        d->n_train = 2000; d->n_val = 100;
        d->x_train = (nde_real *)malloc(2 * 2000 * sizeof(nde_real));
        d->x_val = (nde_real *)malloc(2 * 100 * sizeof(nde_real));
        d->label_train = (int64_t *)malloc(2000 * sizeof(int64_t));
        d->label_val = (int64_t *)malloc(100 * sizeof(int64_t));
        if (!d->x_train || !d->x_val || !d->label_train || !d->label_val) return 0;
        qa_nested_spheres(&rt, 1000, d->x_train, d->label_train);
        qa_nested_spheres(&rv, 50, d->x_val, d->label_val);
    } else if (kind == QA_SINES) {
        d->n_train = 15; d->n_val = 5; d->ntimes = a->ntimes;
        d->x_train = (nde_real *)malloc(2 * 15 * sizeof(nde_real));
        d->x_val = (nde_real *)malloc(2 * 5 * sizeof(nde_real));
        d->t_train = (nde_real *)malloc((size_t)(15 * d->ntimes) * sizeof(nde_real));
        d->t_val = (nde_real *)malloc((size_t)(5 * d->ntimes) * sizeof(nde_real));
        d->y_train = (nde_real *)malloc((size_t)(15 * d->ntimes) * sizeof(nde_real));
        d->y_val = (nde_real *)malloc((size_t)(5 * d->ntimes) * sizeof(nde_real));
        if (!d->x_train || !d->x_val || !d->t_train || !d->t_val || !d->y_train || !d->y_val) return 0;
        qa_sines(&rt, 15, d->ntimes, regular, d->x_train, d->t_train, d->y_train);
        qa_sines(&rv, 5, d->ntimes, regular, d->x_val, d->t_val, d->y_val);
    } else {
        d->n_train = 200; d->n_val = 20; d->npaths = 45; d->ntimes = QA_OU_TIMES;
        d->x_train = (nde_real *)malloc(200 * sizeof(nde_real));
        d->x_val = (nde_real *)malloc(20 * sizeof(nde_real));
        d->y_train = (nde_real *)malloc((size_t)(200 * 45 * QA_OU_TIMES) * sizeof(nde_real));
        d->y_val = (nde_real *)malloc((size_t)(20 * 45 * QA_OU_TIMES) * sizeof(nde_real));
        if (!d->x_train || !d->x_val || !d->y_train || !d->y_val) return 0;
        qa_ou(&rt, 200, 45, d->x_train, d->y_train);
        qa_ou(&rv, 20, 45, d->x_val, d->y_val);
    }
    /* the first items only (for tests) */
    if (a->max_train > 0 && a->max_train < d->n_train) d->n_train = a->max_train;
    if (a->max_val > 0 && a->max_val < d->n_val) d->n_val = a->max_val;
    return 1;
}
static void qa_data_free(qa_data *d) {
    free(d->x_train); free(d->x_val); free(d->t_train); free(d->t_val); free(d->y_train); free(d->y_val);
    free(d->label_train); free(d->label_val);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- model */
typedef struct qa_model {
    nde_ctx *ctx;
    int kind, dim;                /* dim: the ODE state per sample          */
    nde_mlp drift, diffusion;     /* diffusion: ou only                      */
    nde_linear decoder;           /* spheres only                            */
    nde_optimizer opt;
    nde_solve_options solve;
    nde_adjoint_options adj;
    /* ou: the Wong-Zakai noise of the current solve: xi (paths, ncosines) */
    nde_tensor *xi;
    int ncosines;
    double t_end;
    int64_t nfe;
    /* ou trained as the SDE itself (the research code's sde_direct /
       sde_adjoint): 0 = Wong-Zakai ODE, 1 = backprop through reversible
       Heun, 2 = its exact reverse adjoint (nde_sdeint_adjoint) */
    int sde_train;
    double sde_dt;
} qa_model;

/* The research code's names first, then nde's own. */
static int qa_grad_mode(nde_ctx *ctx, const char *name, nde_adjoint_options *adj, double gtol, int *sde_train) {
    nde_grad_mode mode;
    int seminorm = 0;
    *sde_train = 0;
    if (!strcmp(name, "sde_direct") || !strcmp(name, "sde_adjoint")) {
        *sde_train = name[4] == 'd' ? 1 : 2;
        *adj = nde_adjoint_options_default(NDE_GRAD_DIRECT);
        return 1;
    }
    if (!strcmp(name, "adjoint_gq")) mode = NDE_GRAD_GAUSS;
    else if (!strcmp(name, "adjoint_ode")) mode = NDE_GRAD_BACKSOLVE;
    else if (!strcmp(name, "adjoint_seminorm")) { mode = NDE_GRAD_BACKSOLVE; seminorm = 1; }
    else if (nde_grad_mode_from_name(ctx, name, &mode) != NDE_OK) return 0;
    *adj = nde_adjoint_options_default(mode);
    adj->seminorm = seminorm;
    adj->gtol = gtol;
    return 1;
}

static int qa_model_init(qa_model *m, const qa_args *a, int kind, const char *option) {
    uint64_t seed = (uint64_t)a->experiment_no * 1000;
    int64_t w = a->width;
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return 0;
    m->kind = kind;
    if (kind == QA_SPHERES) {
        int64_t widths[4];
        m->dim = 2 + a->aug_dim;
        widths[0] = m->dim + 1; widths[1] = w; widths[2] = w; widths[3] = m->dim;
        nde_mlp_init(m->ctx, &m->drift, "drift", 4, widths, NDE_ACT_SOFTPLUS, seed);
        nde_linear_init(m->ctx, &m->decoder, "decoder", m->dim, 2, 1, seed + 1);
    } else if (kind == QA_SINES) {
        int64_t widths[4] = {2, 0, 0, 1};
        widths[1] = w; widths[2] = w;
        m->dim = 2;
        nde_mlp_init(m->ctx, &m->drift, "drift", 4, widths, NDE_ACT_SOFTPLUS, seed);
    } else {
        int64_t widths[4] = {2, 0, 0, 1};
        widths[1] = w; widths[2] = w;
        m->dim = 1;
        nde_mlp_init(m->ctx, &m->drift, "drift", 4, widths, NDE_ACT_SOFTPLUS, seed);
        nde_mlp_init(m->ctx, &m->diffusion, "diffusion", 4, widths, NDE_ACT_SOFTPLUS, seed + 2);
        m->ncosines = a->ncosines;
        m->t_end = 10.0;
    }
    m->opt = nde_adam(a->lr);
    m->solve = nde_solve_options_default();
    m->solve.method = NDE_DOPRI5;
    m->solve.rtol = a->tol; m->solve.atol = a->tol;
    if (!qa_grad_mode(m->ctx, option, &m->adj, a->gtol, &m->sde_train)) {
        fprintf(stderr, "quadrature_adjoint: --adjoint_option '%s': %s\n", option, nde_ctx_message(m->ctx));
        return 0;
    }
    if (m->sde_train && kind != QA_OU) {
        fprintf(stderr, "quadrature_adjoint: --adjoint_option %s trains an SDE: --experiment ou only\n", option);
        return 0;
    }
    m->sde_dt = a->sde_dt;
    if (nde_ctx_status(m->ctx) != NDE_OK) { fprintf(stderr, "quadrature_adjoint: %s\n", nde_ctx_message(m->ctx)); return 0; }
    return 1;
}
static void qa_model_free(qa_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

/* [z, t] for the MLPs of z and t. */
static nde_tensor *qa_with_time(nde_ctx *ctx, nde_tensor *z, nde_tensor *t) {
    int64_t s[2];
    nde_tensor *parts[2];
    if (!z) return NULL;
    s[0] = z->shape[0]; s[1] = 1;
    parts[0] = z;
    parts[1] = nde_add(ctx, nde_tensor_zeros(ctx, 2, s), t);
    return nde_concat(ctx, 2, parts, 1);
}
/* eta(t) = sqrt(2/T) sum_n xi_n cos((n - 1/2) pi t / T): (paths, 1). */
static nde_tensor *qa_wong_zakai_noise(nde_ctx *ctx, const qa_model *m, nde_tensor *t) {
    int64_t k = m->ncosines, one[2], n;
    double tv = (double)nde_tensor_item(ctx, t, 0), scale = sqrt(2.0 / m->t_end);
    nde_real *c = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)k * sizeof(nde_real));
    if (!c) return NULL;
    for (n = 0; n < k; n++) c[n] = (nde_real)(scale * cos(((double)n + 0.5) * QA_PI * tv / m->t_end));
    one[0] = k; one[1] = 1;
    return nde_matmul(ctx, m->xi, nde_tensor_from(ctx, 2, one, c), 0, 0);
}

/* The ODE right-hand side of each experiment. */
static nde_tensor *qa_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    qa_model *m = (qa_model *)user;
    m->nfe++;
    if (m->kind == QA_SPHERES) return nde_mlp_forward(ctx, &m->drift, qa_with_time(ctx, z, t));
    if (m->kind == QA_SINES) {
        nde_tensor *parts[2];
        parts[0] = nde_slice(ctx, z, 1, 1, 2);                 /* x' = v          */
        parts[1] = nde_mlp_forward(ctx, &m->drift, z);         /* v' = MLP(x, v)  */
        return nde_concat(ctx, 2, parts, 1);
    }
    {
        nde_tensor *zt = qa_with_time(ctx, z, t);
        nde_tensor *f = nde_mlp_forward(ctx, &m->drift, zt), *g = nde_mlp_forward(ctx, &m->diffusion, zt);
        return nde_add(ctx, f, nde_mul(ctx, g, qa_wong_zakai_noise(ctx, m, t)));
    }
}

/* ---------------------------------------------------------------- forward passes */
static nde_tensor *qa_times_tensor(nde_ctx *ctx, int64_t n, const double *ts) {
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_real));
    int64_t i;
    if (!host) return NULL;
    for (i = 0; i < n; i++) host[i] = (nde_real)ts[i];
    return nde_tensor_from(ctx, 1, &n, host);
}

/* Spheres: logits of the points idx[0..count-1] (augmented with zeros). */
static nde_tensor *qa_spheres_logits(qa_model *m, const nde_real *x, const int64_t *idx, int64_t count) {
    nde_ctx *ctx = m->ctx;
    int64_t s[2], i, j;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(count * m->dim) * sizeof(nde_real));
    double ts[2] = {0.0, 1.0};
    nde_tensor *zs;
    if (!host) return NULL;
    for (i = 0; i < count; i++)
        for (j = 0; j < m->dim; j++) host[i * m->dim + j] = j < 2 ? x[idx[i] * 2 + j] : NDE_R(0.0);
    s[0] = count; s[1] = m->dim;
    zs = nde_odeint_adjoint(ctx, qa_field, m, nde_tensor_from(ctx, 2, s, host), qa_times_tensor(ctx, 2, ts), &m->solve,
                            &m->adj, NULL);
    if (!zs) return NULL;
    return nde_linear_forward(ctx, &m->decoder, nde_reshape(ctx, nde_slice(ctx, zs, 0, 1, 2), 2, s));
}

/* Sines: predicted x at each series' own times, (count, ntimes). The solve
   outputs the sorted union of the batch's times. */
static nde_tensor *qa_sines_predict(qa_model *m, const nde_real *x0, const nde_real *t, int64_t ntimes, const int64_t *idx,
                                    int64_t count) {
    nde_ctx *ctx = m->ctx;
    int64_t s[2], i, j, k, nu = 0, rows[2];
    double *u = (double *)nde_ctx_alloc_host(ctx, (size_t)(count * ntimes) * sizeof(double));
    int64_t *gather = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)(count * ntimes) * sizeof(int64_t));
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(count * 2) * sizeof(nde_real));
    nde_tensor *zs, *flat;
    if (!u || !gather || !host) return NULL;
    for (i = 0; i < count; i++) {
        host[2 * i] = x0[2 * idx[i]]; host[2 * i + 1] = x0[2 * idx[i] + 1];
        for (j = 0; j < ntimes; j++) u[nu++] = (double)t[idx[i] * ntimes + j];
    }
    qsort(u, (size_t)nu, sizeof(double), ex__cmp_double);
    for (i = 1, k = 1; i < nu; i++) if (u[i] != u[k - 1]) u[k++] = u[i];
    nu = k;
    for (i = 0; i < count; i++)
        for (j = 0; j < ntimes; j++) {
            double tv = (double)t[idx[i] * ntimes + j];
            int64_t lo = 0, hi = nu - 1;
            while (lo < hi) { int64_t mid = (lo + hi) / 2; if (u[mid] < tv) lo = mid + 1; else hi = mid; }
            gather[i * ntimes + j] = lo * count + i;           /* row of (time, series) in (nu * count, 2) */
        }
    s[0] = count; s[1] = 2;
    zs = nde_odeint_adjoint(ctx, qa_field, m, nde_tensor_from(ctx, 2, s, host), qa_times_tensor(ctx, nu, u), &m->solve,
                            &m->adj, NULL);                    /* (nu, count, 2) */
    if (!zs) return NULL;
    rows[0] = nu * count; rows[1] = 2;
    flat = nde_gather_rows(ctx, nde_reshape(ctx, zs, 2, rows), count * ntimes, gather);
    s[0] = count; s[1] = ntimes;
    return nde_reshape(ctx, nde_slice(ctx, flat, 1, 0, 1), 2, s);
}

/* Mean and unbiased standard deviation (+ 1e-9) over the last axis of x (a, b, n). */
static void qa_normal_fit(nde_ctx *ctx, nde_tensor *x, nde_tensor **mean, nde_tensor **std) {
    int64_t n = x->shape[2];
    nde_tensor *mu = nde_mean_axis(ctx, x, 2, 1);
    nde_tensor *var = nde_scale(ctx, nde_sum_axis(ctx, nde_square(ctx, nde_sub(ctx, x, mu)), 2, 1), NDE_R(1.0) / (nde_real)(n - 1));
    *mean = mu;
    *std = nde_add_scalar(ctx, nde_sqrt(ctx, var), NDE_R(1e-9));
}
/* KL(N(mp, sp) || N(md, sd)) averaged over all entries. */
static nde_tensor *qa_normal_kl(nde_ctx *ctx, nde_tensor *mp, nde_tensor *sp, nde_tensor *md, nde_tensor *sd) {
    nde_tensor *ratio = nde_div(ctx, sp, sd);
    nde_tensor *d = nde_div(ctx, nde_sub(ctx, mp, md), sd);
    nde_tensor *kl = nde_add(ctx, nde_neg(ctx, nde_log(ctx, ratio)), nde_scale(ctx, nde_add(ctx, nde_square(ctx, ratio), nde_square(ctx, d)), NDE_R(0.5)));
    return nde_add_scalar(ctx, nde_mean(ctx, kl), NDE_R(-0.5));
}

/* OU: the data paths of items idx as (times - 1, count, paths) for t > 0. */
static nde_tensor *qa_ou_targets(nde_ctx *ctx, const nde_real *paths, int64_t npaths, const int64_t *idx, int64_t count) {
    int64_t s[3], i, p, j, nt = QA_OU_TIMES - 1;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(nt * count * npaths) * sizeof(nde_real));
    if (!host) return NULL;
    for (j = 0; j < nt; j++)
        for (i = 0; i < count; i++)
            for (p = 0; p < npaths; p++)
                host[(j * count + i) * npaths + p] = paths[(idx[i] * npaths + p) * QA_OU_TIMES + j + 1];
    s[0] = nt; s[1] = count; s[2] = npaths;
    return nde_tensor_from(ctx, 3, s, host);
}
/* OU, Wong-Zakai ODE: model values at t > 0, (times - 1, count, paths). */
static nde_tensor *qa_ou_predict(qa_model *m, const nde_real *y0, int64_t npaths, const int64_t *idx, int64_t count,
                                 uint64_t noise_seed, uint64_t noise_stream) {
    nde_ctx *ctx = m->ctx;
    int64_t s[2], i, p, rows = count * npaths, nt = QA_OU_TIMES - 1, s3[3];
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)rows * sizeof(nde_real));
    double ts[QA_OU_TIMES];
    nde_rng r = nde_rng_new(noise_seed, noise_stream);
    nde_tensor *zs;
    if (!host) return NULL;
    for (i = 0; i < count; i++) for (p = 0; p < npaths; p++) host[i * npaths + p] = y0[idx[i]];
    for (i = 0; i < QA_OU_TIMES; i++) ts[i] = 0.1 * (double)i;
    s[0] = rows; s[1] = m->ncosines;
    m->xi = nde_tensor_new(ctx, 2, s);
    if (!m->xi || nde_tensor_fill_normal(ctx, m->xi, &r, NDE_R(0.0), NDE_R(1.0)) != NDE_OK) return NULL;
    s[1] = 1;
    zs = nde_odeint_adjoint(ctx, qa_field, m, nde_tensor_from(ctx, 2, s, host), qa_times_tensor(ctx, QA_OU_TIMES, ts),
                            &m->solve, &m->adj, NULL);         /* (101, rows, 1) */
    if (!zs) return NULL;
    s3[0] = nt; s3[1] = count; s3[2] = npaths;
    return nde_reshape(ctx, nde_slice(ctx, zs, 0, 1, QA_OU_TIMES), 3, s3);
}

/* ---- OU as an SDE (nde_solvers.h's SDE block). The Wong-Zakai ODE
   y' = f + g eta converges, as the noise gets rough, to the Stratonovich SDE
   dY = f dt + g o dW (Wong & Zakai 1965), so the trained f, g are evaluated as
   that SDE: Milstein on the Stratonovich form (its g'g term by an exact JVP of
   the diffusion written on jets), Euler-Maruyama on the equivalent Ito form
   dY = (f - 1/2 g dg/dy) dt + g dW, reversible Heun (the research code's
   test solver, torchsde's reversible_heun) and Euler-Heun on the Stratonovich
   form. The state is (rows, 1), one path per row, diagonal noise; the
   Brownian path is nde_sdeint's own virtual Brownian tree keyed by the seed
   (every method of a validation sees the same path). */
static nde_tensor *qa_ou_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    qa_model *m = (qa_model *)user;
    m->nfe++;
    return nde_mlp_forward(ctx, &m->drift, qa_with_time(ctx, z, t));
}
static nde_tensor *qa_ou_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    qa_model *m = (qa_model *)user;
    return nde_mlp_forward(ctx, &m->diffusion, qa_with_time(ctx, z, t));
}
/* g on jets: [z, t] through the diffusion MLP (t broadcast over the rows). */
static nde_jet *qa_ou_diffusion_jet(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    qa_model *m = (qa_model *)user;
    nde_jet *parts[2];
    int64_t s[2];
    nde_tensor *zeros;
    if (!t || !z || !z->c[0]) return NULL;
    s[0] = z->c[0]->shape[0]; s[1] = 1;
    zeros = nde_tensor_zeros(ctx, 2, s);
    parts[0] = z;
    parts[1] = nde_jet_add(ctx, nde_jet_const(ctx, zeros, z->order), t);
    return nde_jet_mlp_forward(ctx, &m->diffusion, nde_jet_concat(ctx, 2, parts, 1));
}
/* dg/dy times g at fixed t, for the Ito drift: g(t, .) as a jet function of y. */
typedef struct qa_g_at { qa_model *m; nde_tensor *t; } qa_g_at;
static nde_jet *qa_g_of_y(nde_ctx *ctx, nde_jet *y, void *user) {
    qa_g_at *at = (qa_g_at *)user;
    return qa_ou_diffusion_jet(ctx, nde_jet_const(ctx, at->t, y->order), y, at->m);
}
/* The Ito drift f - 1/2 g dg/dy (exact JVP; each row's g depends on its own y). */
static nde_tensor *qa_ou_ito_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    qa_model *m = (qa_model *)user;
    qa_g_at at;
    nde_tensor *g = NULL, *dg = NULL;
    at.m = m; at.t = t;
    if (nde_jvp(ctx, qa_g_of_y, &at, z, nde_tensor_full(ctx, z->ndim, z->shape, NDE_R(1.0)), &g, &dg) != NDE_OK) return NULL;
    return nde_sub(ctx, qa_ou_drift(ctx, t, z, user), nde_scale(ctx, nde_mul(ctx, g, dg), NDE_R(0.5)));
}

/* The SDE of the model for an nde SDE method: euler (Ito form), the others
   on the Stratonovich form. */
static nde_sde qa_ou_sde(qa_model *m, nde_sde_method method) {
    nde_sde sde;
    memset(&sde, 0, sizeof sde);
    sde.drift = method == NDE_SDE_EULER ? qa_ou_ito_drift : qa_ou_drift;
    sde.diffusion = qa_ou_diffusion;
    sde.diffusion_jet = qa_ou_diffusion_jet;
    sde.user = m;
    sde.type = method == NDE_SDE_EULER ? NDE_SDE_ITO : NDE_SDE_STRATONOVICH;
    sde.noise = NDE_NOISE_DIAGONAL;
    return sde;
}

/* npaths SDE paths per item from y0[idx], solved with `method` at step dt on
   the Brownian path of `seed`: values at t > 0 on the 0.1 grid, (times - 1,
   count, paths). adjoint: nde_sdeint_adjoint (reversible Heun's exact
   reverse), else nde_sdeint (taped when gradients are on). */
static nde_tensor *qa_ou_sde_paths(qa_model *m, nde_sde_method method, double dt, int adjoint, const nde_real *y0,
                                   int64_t npaths, const int64_t *idx, int64_t count, uint64_t seed) {
    nde_ctx *ctx = m->ctx;
    int64_t rows = count * npaths, s[2], s3[3], i, p, nt = QA_OU_TIMES - 1;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)rows * sizeof(nde_real));
    double ts[QA_OU_TIMES];
    nde_sde sde = qa_ou_sde(m, method);
    nde_sde_options o = nde_sde_options_default();
    nde_tensor *ys;
    if (!host) return NULL;
    for (i = 0; i < count; i++) for (p = 0; p < npaths; p++) host[i * npaths + p] = y0[idx[i]];
    for (i = 0; i < QA_OU_TIMES; i++) ts[i] = 0.1 * (double)i;
    s[0] = rows; s[1] = 1;
    o.method = method; o.dt = dt; o.seed = seed;
    ys = adjoint ? nde_sdeint_adjoint(ctx, &sde, nde_tensor_from(ctx, 2, s, host), QA_OU_TIMES, ts, &o)
                 : nde_sdeint(ctx, &sde, nde_tensor_from(ctx, 2, s, host), QA_OU_TIMES, ts, &o);   /* (101, rows, 1) */
    if (!ys) return NULL;
    s3[0] = nt; s3[1] = count; s3[2] = npaths;
    return nde_reshape(ctx, nde_slice(ctx, ys, 0, 1, QA_OU_TIMES), 3, s3);
}

/* ---------------------------------------------------------------- training */
typedef struct qa_epoch { double loss, val_loss, val_metric, seconds, cpu_seconds, fnfe, bnfe; } qa_epoch;

/* The loss of one batch (taped). */
static nde_tensor *qa_batch_loss(qa_model *m, const qa_data *d, const int64_t *idx, int64_t count, int train,
                                 uint64_t noise_stream) {
    nde_ctx *ctx = m->ctx;
    if (m->kind == QA_SPHERES) {
        int64_t *labels = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(int64_t)), i;
        const int64_t *all = train ? d->label_train : d->label_val;
        if (!labels) return NULL;
        for (i = 0; i < count; i++) labels[i] = all[idx[i]];
        return nde_cross_entropy(ctx, qa_spheres_logits(m, train ? d->x_train : d->x_val, idx, count), labels);
    }
    if (m->kind == QA_SINES) {
        const nde_real *y = train ? d->y_train : d->y_val;
        int64_t s[2], i, j, nt = d->ntimes;
        nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(count * nt) * sizeof(nde_real));
        if (!host) return NULL;
        for (i = 0; i < count; i++) for (j = 0; j < nt; j++) host[i * nt + j] = y[idx[i] * nt + j];
        s[0] = count; s[1] = nt;
        return nde_mse_loss(ctx, qa_sines_predict(m, train ? d->x_train : d->x_val, train ? d->t_train : d->t_val, nt, idx, count),
                            nde_tensor_from(ctx, 2, s, host));
    }
    {
        nde_tensor *pred = m->sde_train
            ? qa_ou_sde_paths(m, NDE_SDE_REVERSIBLE_HEUN, m->sde_dt, m->sde_train == 2, train ? d->x_train : d->x_val,
                              d->npaths, idx, count, 10000 + noise_stream)
            : qa_ou_predict(m, train ? d->x_train : d->x_val, d->npaths, idx, count, 10000, noise_stream);
        nde_tensor *target = qa_ou_targets(ctx, train ? d->y_train : d->y_val, d->npaths, idx, count);
        nde_tensor *mp, *sp, *md, *sd;
        if (!pred || !target) return NULL;
        qa_normal_fit(ctx, pred, &mp, &sp);
        qa_normal_fit(ctx, target, &md, &sd);
        return qa_normal_kl(ctx, mp, sp, md, sd);
    }
}

/* The research code's sample_logp: log N(data | normal fit of the model's
   paths) per validation item, time and path, averaged. */
static double qa_sample_logp(nde_ctx *ctx, nde_tensor *sample, nde_tensor *target) {
    nde_tensor *mp, *sp, *z, *lp;
    if (!sample || !target) return NAN;
    qa_normal_fit(ctx, sample, &mp, &sp);
    z = nde_div(ctx, nde_sub(ctx, target, mp), sp);
    lp = nde_neg(ctx, nde_add(ctx, nde_add_scalar(ctx, nde_log(ctx, sp), (nde_real)(0.5 * log(2 * QA_PI))),
                              nde_scale(ctx, nde_square(ctx, z), NDE_R(0.5))));
    return lp ? (double)nde_tensor_item(ctx, nde_mean(ctx, lp), 0) : NAN;
}

/* Validation: loss and metric (accuracy %, MSE, or SDE log-likelihood). For
   ou, metric is the log-likelihood under the first of the nsde SDE methods,
   per_method[k] under each (same Brownian path, seeded by seed). */
static void qa_validate(qa_model *m, const qa_data *d, int epoch, const nde_sde_method *sde, int nsde, uint64_t seed,
                        double *loss, double *metric, double *per_method) {
    nde_ctx *ctx = m->ctx;
    nde_mark mk = nde_ctx_mark(ctx);
    int prev = nde_set_grad_enabled(ctx, 0);
    int64_t n = d->n_val, i;
    int64_t *idx = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(int64_t));
    nde_tensor *l;
    *loss = *metric = NAN;
    if (!idx) { nde_set_grad_enabled(ctx, prev); return; }
    for (i = 0; i < n; i++) idx[i] = i;
    l = qa_batch_loss(m, d, idx, n, 0, 1000000 + (uint64_t)epoch);
    if (l) *loss = nde_tensor_item(ctx, l, 0);
    if (m->kind == QA_SPHERES) {
        nde_tensor *logits = qa_spheres_logits(m, d->x_val, idx, n);
        nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(2 * n) * sizeof(nde_real));
        int64_t correct = 0;
        if (logits && host && nde_tensor_to_host(ctx, logits, host) == NDE_OK) {
            for (i = 0; i < n; i++) correct += (host[2 * i + 1] > host[2 * i]) == (d->label_val[i] == 1);
            *metric = 100.0 * (double)correct / (double)n;
        }
    } else if (m->kind == QA_SINES) {
        *metric = *loss;
    } else {
        /* the trained f, g transferred to SDE solvers: 45 paths per item */
        nde_tensor *target = qa_ou_targets(ctx, d->y_val, d->npaths, idx, n);
        int k;
        for (k = 0; k < nsde; k++) {
            nde_mark mk2 = nde_ctx_mark(ctx);
            per_method[k] = qa_sample_logp(ctx, qa_ou_sde_paths(m, sde[k], m->sde_dt, 0, d->x_val, d->npaths, idx, n, seed),
                                           target);
            nde_ctx_reset(ctx, mk2);
        }
        *metric = nsde > 0 ? per_method[0] : NAN;
    }
    nde_set_grad_enabled(ctx, prev);
    nde_ctx_reset(ctx, mk);
}

static qa_epoch qa_train_epoch(qa_model *m, const qa_args *a, const qa_data *d, int epoch, int64_t *perm) {
    qa_epoch e;
    int64_t bs = a->batchsize > 0 && a->batchsize < d->n_train ? a->batchsize : d->n_train, start, batches = 0;
    double t0 = ex_now();
    clock_t c0 = clock();
    memset(&e, 0, sizeof e);
    ex_permutation((uint64_t)a->experiment_no, (uint64_t)epoch, d->n_train, perm);
    for (start = 0; start < d->n_train; start += bs) {
        int64_t count = d->n_train - start < bs ? d->n_train - start : bs;
        nde_mark mk = nde_ctx_mark(m->ctx);
        nde_tensor *loss;
        m->nfe = 0;
        loss = qa_batch_loss(m, d, perm + start, count, 1, (uint64_t)(epoch * 100000 + start));
        e.fnfe += (double)m->nfe;
        if (loss) {
            e.loss += nde_tensor_item(m->ctx, loss, 0);
            nde_zero_grad(m->ctx);
            m->nfe = 0;
            nde_backward(m->ctx, loss);
            e.bnfe += (double)m->nfe;
            nde_optimizer_step(m->ctx, &m->opt);
        }
        nde_ctx_reset(m->ctx, mk);
        batches++;
        if (nde_ctx_status(m->ctx) != NDE_OK) break;
    }
    e.seconds = ex_now() - t0;
    e.cpu_seconds = (double)(clock() - c0) / CLOCKS_PER_SEC;
    e.loss /= (double)batches; e.fnfe /= (double)batches; e.bnfe /= (double)batches;
    return e;
}

/* ---------------------------------------------------------------- run */
typedef struct qa_option_result {
    char name[32];
    int epochs_run;
    double first_loss, last_loss, val_metric, seconds_per_epoch, cpu_per_epoch, fnfe, bnfe, total_seconds;
    double sde_metric[QA_MAX_SDE];    /* ou: validation log-likelihood per --sde_method */
    int64_t params;
} qa_option_result;

static int qa_kind(const char *experiment) {
    if (!strcmp(experiment, "nested_spheres")) return QA_SPHERES;
    if (!strcmp(experiment, "sines")) return QA_SINES;
    if (!strcmp(experiment, "ou")) return QA_OU;
    return -1;
}

static void qa_plot(const qa_args *a, int count, double hist_t[][512], double hist_m[][512], const int *n, char names[][32]) {
    char path[512];
    const double *xs[QA_MAX_OPTIONS], *ys[QA_MAX_OPTIONS];
    const char *labels[QA_MAX_OPTIONS];
    int k;
    ex_svg *s;
    ex_path(path, sizeof path, a->save, "/times.svg", NULL);
    s = ex_svg_open(path, 600, 400);
    if (!s) return;
    for (k = 0; k < count; k++) { xs[k] = hist_t[k]; ys[k] = hist_m[k]; labels[k] = names[k]; }
    ex_svg_series(s, 0, 0, 600, 400, a->experiment, "training time (CPU s)",
                  qa_kind(a->experiment) == QA_SPHERES ? "validation accuracy %" :
                  qa_kind(a->experiment) == QA_SINES ? "validation MSE" : "validation log-likelihood",
                  count, xs, ys, n, labels, 0, 0);
    ex_svg_close(s);
}

static int qa_run(const qa_args *user_args, qa_option_result *results, int *num_results, int default_run) {
    qa_args a = *user_args;
    qa_data d;
    char buf[256], path[512];
    const char *options[QA_MAX_OPTIONS];
    static double hist_t[QA_MAX_OPTIONS][512], hist_m[QA_MAX_OPTIONS][512];
    static char names[QA_MAX_OPTIONS][32];
    int hist_n[QA_MAX_OPTIONS];
    int kind = qa_kind(a.experiment), count, k, epoch, rc = 1, nsde = 0;
    const char *sde_names[QA_MAX_SDE];
    char sde_buf[128];
    nde_sde_method sde[QA_MAX_SDE];
    int64_t *perm = NULL;
    FILE *log = NULL;
    *num_results = 0;
    if (kind < 0) { fprintf(stderr, "quadrature_adjoint: --experiment must be nested_spheres, sines or ou\n"); return 2; }
    qa_fill_defaults(&a, kind, default_run);
    count = ex_split_words(a.adjoint_option, buf, sizeof buf, options, QA_MAX_OPTIONS);
    if (count < 1 || a.tol <= 0 || a.gtol <= 0 || a.aug_dim < 0 || a.ntimes < 2 || a.ncosines < 1 || a.width < 1) {
        fprintf(stderr, "quadrature_adjoint: bad arguments (1..%d adjoint options; tol, gtol > 0; ntimes >= 2; "
                        "ncosines, width >= 1)\n", QA_MAX_OPTIONS);
        return 2;
    }
    if (kind == QA_OU) {
        nde_ctx *tmp = nde_ctx_new(nde_ctx_desc_default());
        int i, ok = tmp != NULL && a.sde_dt > 0;
        nsde = ex_split_words(a.sde_method, sde_buf, sizeof sde_buf, sde_names, QA_MAX_SDE);
        ok &= nsde >= 1;
        for (i = 0; ok && i < nsde; i++) ok = nde_sde_method_from_name(tmp, sde_names[i], &sde[i]) == NDE_OK;
        if (!ok) fprintf(stderr, "quadrature_adjoint: --sde_method needs 1..%d of euler, milstein, euler_heun, "
                                 "reversible_heun (%s) and --sde_dt > 0\n", QA_MAX_SDE, tmp ? nde_ctx_message(tmp) : "");
        if (tmp) nde_ctx_free(tmp);
        if (!ok) return 2;
    }
    if (!qa_data_make(&a, kind, &d)) { fprintf(stderr, "quadrature_adjoint: out of memory\n"); qa_data_free(&d); return 1; }
    if (ex_mkdir(a.save) != 0) { qa_data_free(&d); return 1; }
    perm = (int64_t *)malloc((size_t)d.n_train * sizeof(int64_t));
    ex_path(path, sizeof path, a.save, "/log.csv", NULL);
    log = ex_csv_open(path, "experiment,adjoint_option,width,epoch,train_loss,val_loss,val_metric,seconds,cpu_seconds,"
                            "fnfe,bnfe,val_metric_per_sde_method", a.resume);
    if (!perm || !log) goto done;
    if (!a.quiet)
        printf("quadrature_adjoint: %s, width %d, %d epochs, batch %d, lr %g, dopri5 tol %g, gtol %g\n", a.experiment,
               a.width, a.nepochs, a.batchsize, a.lr, a.tol, a.gtol);
    for (k = 0; k < count; k++) {
        qa_model m;
        qa_option_result *r = &results[k];
        int start_epoch = 0;
        char ckpt[512], name[64];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", options[k]);
        snprintf(names[k], sizeof names[k], "%s", options[k]);
        hist_n[k] = 0;
        if (!qa_model_init(&m, &a, kind, options[k])) { qa_model_free(&m); goto done; }
        r->params = nde_params_count(m.ctx);
        snprintf(name, sizeof name, "/ckpt_%s", options[k]);
        ex_path(ckpt, sizeof ckpt, a.save, name, NULL);
        if (a.resume) {
            double counters[2] = {0, 0};
            if (ex_checkpoint_load(m.ctx, ckpt, &m.opt, counters, 2) != NDE_OK) {
                fprintf(stderr, "quadrature_adjoint: --resume: %s\n", nde_ctx_message(m.ctx));
                qa_model_free(&m);
                goto done;
            }
            start_epoch = (int)counters[0];
            r->total_seconds = counters[1];
        }
        {
            ex_progress bar = ex_progress_start(a.nepochs - start_epoch > 0 ? a.nepochs - start_epoch : 1);
            for (epoch = start_epoch; epoch < a.nepochs; epoch++) {
                qa_epoch e = qa_train_epoch(&m, &a, &d, epoch, perm);
                double counters[2];
                if (nde_ctx_status(m.ctx) != NDE_OK) {
                    ex_progress_finish(&bar);
                    fprintf(stderr, "quadrature_adjoint: %s, epoch %d: %s\n", options[k], epoch + 1, nde_ctx_message(m.ctx));
                    qa_model_free(&m);
                    goto done;
                }
                qa_validate(&m, &d, epoch, sde, nsde, 777000 + (uint64_t)a.experiment_no, &e.val_loss, &e.val_metric,
                            r->sde_metric);
                fprintf(log, "%s,%s,%d,%d,%.6g,%.6g,%.6g,%.3f,%.3f,%.1f,%.1f,", a.experiment, options[k], a.width, epoch + 1,
                        e.loss, e.val_loss, e.val_metric, e.seconds, e.cpu_seconds, e.fnfe, e.bnfe);
                {
                    int i;
                    for (i = 0; i < nsde; i++) fprintf(log, "%s%s:%.6g", i ? " " : "", sde_names[i], r->sde_metric[i]);
                    fprintf(log, "\n");
                }
                if (epoch == start_epoch) r->first_loss = e.loss;
                r->last_loss = e.loss;
                r->val_metric = e.val_metric;
                r->seconds_per_epoch += e.seconds;
                r->cpu_per_epoch += e.cpu_seconds;
                r->fnfe += e.fnfe; r->bnfe += e.bnfe;
                r->total_seconds += e.cpu_seconds;
                r->epochs_run++;
                if (hist_n[k] < 512) { hist_t[k][hist_n[k]] = r->total_seconds; hist_m[k][hist_n[k]] = e.val_metric; hist_n[k]++; }
                counters[0] = epoch + 1; counters[1] = r->total_seconds;
                if (ex_checkpoint_save(m.ctx, ckpt, &m.opt, counters, 2) != NDE_OK) {
                    fprintf(stderr, "quadrature_adjoint: %s\n", nde_ctx_message(m.ctx));
                    qa_model_free(&m);
                    goto done;
                }
                if (!a.quiet)
                    ex_progress_update(&bar, epoch - start_epoch + 1, "%s  loss %.4f  val %.4f  %.2f s/epoch  NFE %.0f/%.0f",
                                       options[k], e.loss, e.val_metric, e.cpu_seconds, e.fnfe, e.bnfe);
            }
            if (!a.quiet) ex_progress_finish(&bar);
        }
        if (r->epochs_run) {
            r->seconds_per_epoch /= r->epochs_run; r->cpu_per_epoch /= r->epochs_run;
            r->fnfe /= r->epochs_run; r->bnfe /= r->epochs_run;
        }
        qa_model_free(&m);
        *num_results = k + 1;
    }
    qa_plot(&a, count, hist_t, hist_m, hist_n, names);
    if (!a.quiet) {
        int i;
        printf("  %-17s %10s %10s %8s %8s", "adjoint_option", "s/epoch", "cpu/epoch", "FNFE", "BNFE");
        if (kind == QA_OU)
            for (i = 0; i < nsde; i++) printf(" %10.10s", sde_names[i]);
        else
            printf(" %12s", kind == QA_SPHERES ? "val acc %" : "val MSE");
        printf("\n");
        for (k = 0; k < count; k++) {
            printf("  %-17s %10.3f %10.3f %8.1f %8.1f", results[k].name, results[k].seconds_per_epoch,
                   results[k].cpu_per_epoch, results[k].fnfe, results[k].bnfe);
            if (kind == QA_OU)
                for (i = 0; i < nsde; i++) printf(" %10.4f", results[k].sde_metric[i]);
            else
                printf(" %12.4f", results[k].val_metric);
            printf("\n");
        }
        if (kind == QA_OU)
            printf("  (ou columns: validation log-likelihood of the data under 45 SDE paths per item, by SDE method, "
                   "step %g)\n", a.sde_dt);
        printf("  (%lld parameters; log %s/log.csv, plot %s/times.svg)\n", (long long)results[0].params, a.save, a.save);
    }
    rc = 0;
done:
    if (log) fclose(log);
    free(perm);
    qa_data_free(&d);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    qa_args a;
    static qa_option_result results[QA_MAX_OPTIONS];
    int n, prc, i, default_run = 1;
    qa_args_default(&a);
    for (i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--experiment", 12) || !strncmp(argv[i], "--width", 7) || !strncmp(argv[i], "--nepochs", 9))
            default_run = 0;
    {
        ex_flag flags[] = {
            {"experiment", EX_STRING, &a.experiment, "nested_spheres, sines or ou"},
            {"adjoint_option", EX_STRING, &a.adjoint_option, "comma list: adjoint_gq, adjoint_ode, adjoint_seminorm, direct, ..."},
            {"tol", EX_DOUBLE, &a.tol, "rtol = atol of dopri5"},
            {"gtol", EX_DOUBLE, &a.gtol, "quadrature nodes per unit of forward NFE (adjoint_gq)"},
            {"width", EX_INT, &a.width, "hidden width of the MLPs (0: the experiment's)"},
            {"nepochs", EX_INT, &a.nepochs, "epochs (0: the experiment's)"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate (0: the experiment's)"},
            {"batchsize", EX_INT, &a.batchsize, "batch size (0: full batch, -1: the experiment's)"},
            {"experiment_no", EX_INT, &a.experiment_no, "seed of the initialisation and batch order"},
            {"aug_dim", EX_INT, &a.aug_dim, "nested spheres: zero dimensions appended"},
            {"ntimes", EX_INT, &a.ntimes, "sines: points per series (10 or 50 in the paper)"},
            {"regular_times", EX_STRING, &a.regular_times, "sines: regular or irregular"},
            {"ncosines", EX_INT, &a.ncosines, "ou: terms of the Wong-Zakai noise"},
            {"sde_method", EX_STRING, &a.sde_method, "ou: SDE solvers of the validation (euler, milstein, euler_heun, reversible_heun)"},
            {"sde_dt", EX_DOUBLE, &a.sde_dt, "ou: SDE step (validation, and training with sde_direct / sde_adjoint)"},
            {"max_train", EX_INT, &a.max_train, "use the first N training items (0: all)"},
            {"max_val", EX_INT, &a.max_val, "use the first N validation items (0: all)"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "Gauss-Legendre quadrature adjoint experiments (Norcliffe & Deisenroth, TMLR 2023)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return qa_run(&a, results, &n, default_run);
}
#endif
