// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/resnet_after_all.c -o resnet_after_all -lm
/* examples/resnet_after_all.c - "ResNet After All? Neural ODEs and Their
   Numerical Solution" (Ott, Katiyar, Hennig, Tiemann, ICLR 2021), written with
   nde from the paper's description (the research code is AGPL; nothing of it
   is reused).

   A Neural ODE classifier dz/dt = f(z) on [0, 1] (the research code's
   simple_odenet: Conv1d 1->C (k=1), act, Conv1d C->C (k=3, pad 1), act, Conv1d
   C->1 (k=1), acting on the d coordinates as a 1-channel signal; or
   linear_odenet, an MLP d->C->C->d), followed by a linear read-out of z(1), is
   trained with Adam through a chosen solver (direct backpropagation through
   the solve): euler / midpoint / rk4 with --step_size h, or dopri5 /
   fehlberg2 with --tol (rtol = atol). The trained model is then evaluated on
   the test set with every solver of --test_solver_list at every factor of
   --test_factor_list (fixed steps: h / factor, i.e. factor times the training
   steps; adaptive: tol * factor), and the accuracies are plotted against the
   number of steps. The paper's finding: a model trained with a coarse step
   only works with that discretisation (its accuracy collapses with finer
   solvers: a ResNet, not an ODE), while below a critical step size the
   accuracy stays flat. The default run shows both: it trains with 2 Euler
   steps (h = 1/2) and with h = 1/64 (--step_size_list).

   --use_step_adaption_algo runs the paper's step adaptation (Algorithm 2):
   the initial h from Hairer's starting-step heuristic with plain norms; every
   --adaption_interval iterations the batch accuracy of the training solver is
   compared with a ~50x more accurate test solver (euler -> midpoint with
   h_test = min(h, sqrt(h/50)); midpoint -> rk4 with min(h, (h^2/50)^(1/4));
   rk4 -> rk4 with h/50^(1/4), our extension); a gap above --threshold halves
   h (or moves the step count halfway to --max_steps), otherwise 1.1 h (at
   most 1) is tried on the same batch and kept if the gap stays within the
   threshold. For dopri5/fehlberg2 the tolerance variant (Algorithm 3):
   start at --initial_tol, test with dopri5 at tol/10 (dopri5) or tol/5
   (fehlberg2), divided by 10 until the test solve takes more evaluations; a
   gap halves tol, otherwise 1.1 tol is tried, and kept unless the gap grows
   past the threshold or the forward NFE has not changed over the last 5
   iterations.

   Data (generated, seeded by --data_seed): concentric_sphere{2,3,10,900}: three
   shells, radii [0.10,0.15], [0.25,0.30], [0.40,0.45], labels 0/1/0, 2000
   train (500/1000/500) and 1000 test (250/500/250) points; three_minima: a
   damped particle x'' = -V'(x) - 0.2 x' in a potential with minima at
   -0.850, 0.269, 1.839, started at x ~ U[-1, 2], v ~ U[-2, 2], integrated with
   RK4 (h = 0.02) to t = 100; the class is the minimum it settles in (a sample
   that has not settled within 0.02 with |v| < 1e-3 is drawn again).

   Accuracy is exact: correct / N over the whole test set. The research code
   averages per-batch accuracies with every batch divided by the nominal batch
   size, which under-counts the last partial batch (a perfect classifier
   scores (7 + 104/128)/8 = 0.977 on 1000 test points in batches of 128);
   that number is logged too, as acc_research_code.

   Outputs in --save: train.csv (per iteration: loss, batch accuracy, NFE,
   step size or tolerance), eval.csv (the solver x factor grid), raa.svg,
   checkpoints ckpt_<model>.{safetensors,state.npy} (every
   --model_checkpoint_freq iterations and at the end; --resume continues).
   Flags use the research code's names (--dataset --network --solver
   --step_size --tol --niter --batch_size --lr --ch_residual_block --act
   --use_step_adaption_algo --threshold --initial_tol --adaption_interval
   --max_steps --test_solver_list --test_factor_list --random_seed
   --model_checkpoint_freq); --step_size_list, --data_seed, --test_batch_size,
   --n_train, --n_test, --save, --resume are ours.

   Default (about 5 CPU minutes): Sphere2, simple_odenet C = 32, batch 128,
   3000 iterations of Adam at 1e-3 (the research code's 1e-4 needs its 10 000
   iterations), h = 1/2 and h = 1/64, tested with euler/midpoint/rk4 at
   factors 0.5..16:
       ./resnet_after_all
   The paper's Fig. 4a setting (10 000 iterations at 1e-4, several training
   step sizes):
       ./resnet_after_all --niter 10000 --lr 1e-4 --step_size_list 1,0.5,0.25,0.0625,0.015625 \
           --test_factor_list 0.5,0.75,1,1.5,2
   Step adaptation from Hairer's guess:
       ./resnet_after_all --use_step_adaption_algo --step_size_list 0 --solver euler
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_solvers.h"

#define RAA_MAX_MODELS 8
#define RAA_MAX_TEST 16

typedef struct raa_args {
    const char *dataset, *network, *act, *solver;
    double step_size, tol, lr, weight_decay, threshold, initial_tol;
    const char *step_size_list, *test_solver_list, *test_factor_list;
    int ch_residual_block, niter, batch_size, test_batch_size;
    int use_step_adaption_algo, adaption_interval, max_steps, model_checkpoint_freq;
    int random_seed, data_seed, n_train, n_test;
    const char *save;
    int resume, quiet;
} raa_args;

static void raa_args_default(raa_args *a) {
    memset(a, 0, sizeof *a);
    a->dataset = "concentric_sphere2"; a->network = "simple_odenet"; a->act = "relu"; a->solver = "euler";
    a->step_size = 0.0; a->tol = 1e-3; a->lr = 1e-3; a->weight_decay = 0.0; a->threshold = 0.1; a->initial_tol = 1e-6;
    a->step_size_list = "0.5,0.015625"; a->test_solver_list = "euler,midpoint,rk4";
    a->test_factor_list = "0.5,1,2,4,8,16";
    a->ch_residual_block = 32; a->niter = 3000; a->batch_size = 128; a->test_batch_size = 128;
    a->adaption_interval = 50; a->max_steps = 500; a->model_checkpoint_freq = 500;
    a->random_seed = 0; a->data_seed = 1234; a->n_train = 2000; a->n_test = 1000;
    a->save = "resnet_after_all_out";
}

/* ---------------------------------------------------------------- data */
typedef struct raa_data {
    int64_t n_train, n_test;
    int dim, classes;
    nde_real *x_train, *x_test;      /* (n, dim) */
    int64_t *y_train, *y_test;
    int64_t resampled;               /* three minima: samples drawn again */
} raa_data;

/* Concentric spheres (Ott et al.; Dupont et al.'s recipe): n points split
   1/4, 1/2, 1/4 over the inner, middle and outer shells. */
static void raa_spheres(nde_rng *rng, int dim, int64_t n, nde_real *x, int64_t *y) {
    static const double r_lo[3] = {0.10, 0.25, 0.40}, r_hi[3] = {0.15, 0.30, 0.45};
    static const int64_t label[3] = {0, 1, 0};
    int64_t count[3];
    count[0] = n / 4; count[2] = n / 4; count[1] = n - count[0] - count[2];
    ex_spheres(rng, dim, 3, r_lo, r_hi, count, label, x, y);
}

/* Three minima: V'(x) = sum_i a_i x^i. */
static const double raa_vprime_coef[6] = {-0.192, 0.176, 2.364, -0.768, -2.5, 1.2};
static const double raa_minima[3] = {-0.850, 0.269, 1.839};
static double raa_vprime(double x) {
    double p = 0.0;
    int i;
    for (i = 5; i >= 0; i--) p = p * x + raa_vprime_coef[i];
    return p;
}
/* The damped particle from (x, v) to t = 100 by RK4 with h = 0.02. */
static void raa_particle(double *x, double *v) {
    const double gamma = 0.2, h = 0.02;
    int i;
    for (i = 0; i < 5000; i++) {
        double x1 = *x, v1 = *v;
        double kx1 = v1, kv1 = -raa_vprime(x1) - gamma * v1;
        double kx2 = v1 + 0.5 * h * kv1, kv2 = -raa_vprime(x1 + 0.5 * h * kx1) - gamma * kx2;
        double kx3 = v1 + 0.5 * h * kv2, kv3 = -raa_vprime(x1 + 0.5 * h * kx2) - gamma * kx3;
        double kx4 = v1 + h * kv3, kv4 = -raa_vprime(x1 + h * kx3) - gamma * kx4;
        *x = x1 + h / 6.0 * (kx1 + 2 * kx2 + 2 * kx3 + kx4);
        *v = v1 + h / 6.0 * (kv1 + 2 * kv2 + 2 * kv3 + kv4);
    }
}
/* The class of the minimum (x, v) settles in, -1 if it has not settled. */
static int raa_three_minima_label(double x0, double v0) {
    double x = x0, v = v0;
    int k;
    raa_particle(&x, &v);
    if (fabs(v) >= 1e-3) return -1;
    for (k = 0; k < 3; k++) if (fabs(x - raa_minima[k]) < 0.02) return k;
    return -1;
}
static int64_t raa_three_minima(nde_rng *rng, int64_t n, nde_real *x, int64_t *y) {
    int64_t i, redrawn = 0;
    for (i = 0; i < n; i++) {
        for (;;) {
            double p = -1.0 + 3.0 * nde_rng_uniform1(rng), v = -2.0 + 4.0 * nde_rng_uniform1(rng);
            int label = raa_three_minima_label(p, v);
            if (label >= 0) {
                x[2 * i] = (nde_real)p; x[2 * i + 1] = (nde_real)v; y[i] = label;
                break;
            }
            redrawn++;
        }
    }
    return redrawn;
}

static int raa_data_make(const raa_args *a, raa_data *d) {
    nde_rng rtrain = nde_rng_new((uint64_t)a->data_seed, 0), rtest = nde_rng_new((uint64_t)a->data_seed, 1);
    memset(d, 0, sizeof *d);
    if (!strncmp(a->dataset, "concentric_sphere", 17)) {
        d->dim = atoi(a->dataset + 17);
        d->classes = 2;
    } else if (!strcmp(a->dataset, "three_minima")) {
        d->dim = 2;
        d->classes = 3;
    }
    if (d->dim < 1 || d->dim > 100000 || a->n_train < 4 || a->n_test < 4) {
        fprintf(stderr, "resnet_after_all: unknown --dataset '%s' (concentric_sphere<d>, three_minima) or "
                        "n_train/n_test < 4\n", a->dataset);
        return 0;
    }
    d->n_train = a->n_train; d->n_test = a->n_test;
    d->x_train = (nde_real *)malloc((size_t)(d->n_train * d->dim) * sizeof(nde_real));
    d->x_test = (nde_real *)malloc((size_t)(d->n_test * d->dim) * sizeof(nde_real));
    d->y_train = (int64_t *)malloc((size_t)d->n_train * sizeof(int64_t));
    d->y_test = (int64_t *)malloc((size_t)d->n_test * sizeof(int64_t));
    if (!d->x_train || !d->x_test || !d->y_train || !d->y_test) { fprintf(stderr, "resnet_after_all: out of memory\n"); return 0; }
    if (d->classes == 2) {
        raa_spheres(&rtrain, d->dim, d->n_train, d->x_train, d->y_train);
        raa_spheres(&rtest, d->dim, d->n_test, d->x_test, d->y_test);
    } else {
        d->resampled = raa_three_minima(&rtrain, d->n_train, d->x_train, d->y_train);
        d->resampled += raa_three_minima(&rtest, d->n_test, d->x_test, d->y_test);
    }
    return 1;
}
static void raa_data_free(raa_data *d) {
    free(d->x_train); free(d->x_test); free(d->y_train); free(d->y_test);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- solvers */
typedef struct raa_solver {
    nde_method method;
    int adaptive;        /* the method has an error estimate: use tol */
    double h, tol;
} raa_solver;

static int raa_solver_set(nde_ctx *ctx, raa_solver *s, const char *name, double h, double tol) {
    const nde_method_info *mi;
    memset(s, 0, sizeof *s);
    if (nde_method_from_name(ctx, name, &s->method) != NDE_OK) return 0;
    mi = nde_method_get(s->method);
    if (!mi) return 0;
    s->adaptive = mi->error_order > 0;
    s->h = h; s->tol = tol;
    return 1;
}
static int raa_solver_order(const raa_solver *s) { return nde_method_get(s->method)->order; }
/* Fixed steps over [0, 1] (nde_solve's rule: the last step shortened). */
static int64_t raa_fixed_steps(double h) { return (int64_t)ceil(1.0 / h * (1.0 - 1e-12)); }
static void raa_solver_describe(const raa_solver *s, char *buf, size_t len) {
    if (s->adaptive) snprintf(buf, len, "%s tol %.3g", nde_method_name(s->method), s->tol);
    else snprintf(buf, len, "%s h %.5g (%lld steps)", nde_method_name(s->method), s->h, (long long)raa_fixed_steps(s->h));
}

/* ---------------------------------------------------------------- model */
typedef struct raa_model {
    nde_ctx *ctx;
    int dim, classes, channels, linear;   /* linear: linear_odenet */
    nde_activation act;
    nde_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    nde_linear head;
    nde_optimizer opt;
    raa_solver train_solver;
} raa_model;

static nde_tensor *raa_param(nde_ctx *ctx, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, uint64_t seed,
                             int is_bias) {
    int64_t shape[3];
    nde_tensor *t;
    shape[0] = d0; shape[1] = d1; shape[2] = d2;
    t = nde_param_new(ctx, name, ndim, shape);
    /* Kaiming-normal (fan-in) weights and zero biases, the research code's init */
    if (t && !is_bias) nde_init_kaiming_normal(ctx, t, NDE_R(0.0), seed);
    return t;
}

static int raa_model_init(raa_model *m, const raa_args *a, const raa_data *d) {
    int64_t c = a->ch_residual_block, dim = d->dim;
    uint64_t seed = (uint64_t)a->random_seed;
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return 0;
    m->dim = d->dim; m->classes = d->classes; m->channels = (int)c;
    m->linear = !strcmp(a->network, "linear_odenet");
    if (!strcmp(a->act, "relu")) m->act = NDE_ACT_RELU;
    else if (!strcmp(a->act, "lrelu")) m->act = NDE_ACT_LEAKY_RELU;
    else if (!strcmp(a->act, "sigmoid")) m->act = NDE_ACT_SIGMOID;
    else { fprintf(stderr, "resnet_after_all: --act must be relu, lrelu or sigmoid\n"); return 0; }
    if (!m->linear && strcmp(a->network, "simple_odenet")) {
        fprintf(stderr, "resnet_after_all: --network must be simple_odenet or linear_odenet\n");
        return 0;
    }
    if (m->linear) {
        m->w1 = raa_param(m->ctx, "f.w1", 2, c, dim, 1, seed, 0);
        m->b1 = raa_param(m->ctx, "f.b1", 1, c, 1, 1, seed, 1);
        m->w2 = raa_param(m->ctx, "f.w2", 2, c, c, 1, seed, 0);
        m->b2 = raa_param(m->ctx, "f.b2", 1, c, 1, 1, seed, 1);
        m->w3 = raa_param(m->ctx, "f.w3", 2, dim, c, 1, seed, 0);
        m->b3 = raa_param(m->ctx, "f.b3", 1, dim, 1, 1, seed, 1);
    } else {
        m->w1 = raa_param(m->ctx, "f.w1", 3, c, 1, 1, seed, 0);
        m->b1 = raa_param(m->ctx, "f.b1", 1, c, 1, 1, seed, 1);
        m->w2 = raa_param(m->ctx, "f.w2", 3, c, c, 3, seed, 0);
        m->b2 = raa_param(m->ctx, "f.b2", 1, c, 1, 1, seed, 1);
        m->w3 = raa_param(m->ctx, "f.w3", 3, 1, c, 1, seed, 0);
        m->b3 = raa_param(m->ctx, "f.b3", 1, 1, 1, 1, seed, 1);
    }
    nde_linear_init(m->ctx, &m->head, "head", dim, d->classes, 1, seed);
    nde_init_kaiming_normal(m->ctx, m->head.weight, NDE_R(0.0), seed);
    nde_tensor_fill(m->ctx, m->head.bias, NDE_R(0.0));
    m->opt = nde_adam(a->lr);
    m->opt.weight_decay = a->weight_decay;
    if (nde_ctx_status(m->ctx) != NDE_OK) {
        fprintf(stderr, "resnet_after_all: %s\n", nde_ctx_message(m->ctx));
        return 0;
    }
    return 1;
}
static void raa_model_free(raa_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

static nde_tensor *raa_act(nde_ctx *ctx, nde_tensor *x, nde_activation act) {
    return act == NDE_ACT_LEAKY_RELU ? nde_leaky_relu(ctx, x, NDE_R(0.01)) : nde_activate(ctx, x, act);
}
/* simple_odenet's three convolutions over the d coordinates, z (N, 1, d).
   With positions as rows, (N d, C), the kernel-1 convolutions are matmuls
   and the kernel-3 one is a sum of three matmuls of shifted rows (zero
   padded): the same numbers as nde_conv1d, with a few large products instead
   of many per-sample ones (raa_conv_field_reference is the plain form). */
static nde_tensor *raa_conv_field(nde_ctx *ctx, const raa_model *m, nde_tensor *z) {
    int64_t n = z->shape[0], d = m->dim, c = m->channels, s2[2], s3[3], wc1[2], wc3[2], k;
    nde_tensor *h, *acc = NULL, *parts[3], *w1, *w3;
    s2[0] = n * d; s2[1] = 1;
    wc1[0] = c; wc1[1] = 1;
    wc3[0] = 1; wc3[1] = c;
    w1 = nde_reshape(ctx, m->w1, 2, wc1);
    w3 = nde_reshape(ctx, m->w3, 2, wc3);
    /* (N, 1, d) -> (N d, 1) -> (N d, C) */
    h = raa_act(ctx, nde_add(ctx, nde_matmul(ctx, nde_reshape(ctx, z, 2, s2), w1, 0, 1), m->b1), m->act);
    {
        int64_t s_ndc[3], zs[3], wk[2];
        nde_tensor *padded;
        s_ndc[0] = n; s_ndc[1] = d; s_ndc[2] = c;
        zs[0] = n; zs[1] = 1; zs[2] = c;
        parts[0] = nde_tensor_zeros(ctx, 3, zs);
        parts[1] = nde_reshape(ctx, h, 3, s_ndc);
        parts[2] = parts[0];
        padded = nde_concat(ctx, 3, parts, 1);                  /* (N, d + 2, C) */
        wk[0] = c; wk[1] = c;
        s2[0] = n * d; s2[1] = c;
        for (k = 0; k < 3; k++) {
            /* output position p takes input p + k - 1 through w2[:, :, k] */
            nde_tensor *rows = nde_reshape(ctx, nde_slice(ctx, padded, 1, k, k + d), 2, s2);
            nde_tensor *wslice = nde_reshape(ctx, nde_slice(ctx, m->w2, 2, k, k + 1), 2, wk);
            nde_tensor *term = nde_matmul(ctx, rows, wslice, 0, 1);
            acc = acc ? nde_add(ctx, acc, term) : term;
        }
    }
    h = raa_act(ctx, nde_add(ctx, acc, m->b2), m->act);
    h = nde_add(ctx, nde_matmul(ctx, h, w3, 0, 1), m->b3);     /* (N d, 1) */
    s3[0] = n; s3[1] = 1; s3[2] = d;
    return nde_reshape(ctx, h, 3, s3);
}
/* The same field with nde_conv1d (reference for the test). */
static EX_UNUSED nde_tensor *raa_conv_field_reference(nde_ctx *ctx, const raa_model *m, nde_tensor *z) {
    z = raa_act(ctx, nde_conv1d(ctx, z, m->w1, m->b1, 1, 0), m->act);
    z = raa_act(ctx, nde_conv1d(ctx, z, m->w2, m->b2, 1, 1), m->act);
    return nde_conv1d(ctx, z, m->w3, m->b3, 1, 0);
}

/* The vector field f(z), z of shape (N, 1, d); autonomous (t is ignored). */
static nde_tensor *raa_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const raa_model *m = (const raa_model *)user;
    (void)t;
    if (m->linear) {
        int64_t s2[2], s3[3];
        nde_tensor *h;
        s2[0] = z->shape[0]; s2[1] = m->dim;
        h = nde_reshape(ctx, z, 2, s2);
        h = raa_act(ctx, nde_add(ctx, nde_matmul(ctx, h, m->w1, 0, 1), m->b1), m->act);
        h = raa_act(ctx, nde_add(ctx, nde_matmul(ctx, h, m->w2, 0, 1), m->b2), m->act);
        h = nde_add(ctx, nde_matmul(ctx, h, m->w3, 0, 1), m->b3);
        s3[0] = z->shape[0]; s3[1] = 1; s3[2] = m->dim;
        return nde_reshape(ctx, h, 3, s3);
    }
    return raa_conv_field(ctx, m, z);
}

/* Logits of x (N, d) through the ODE block solved with s; *nfe, *steps if not NULL. */
static nde_tensor *raa_logits(raa_model *m, nde_tensor *x, const raa_solver *s, int64_t *nfe, int64_t *steps) {
    nde_ctx *ctx = m->ctx;
    nde_solve_options o = nde_solve_options_default();
    nde_solution sol;
    double ts[2] = {0.0, 1.0};
    int64_t s3[3], s2[2];
    nde_tensor *z1 = NULL;
    s3[0] = x->shape[0]; s3[1] = 1; s3[2] = m->dim;
    o.method = s->method;
    if (s->adaptive) { o.rtol = s->tol; o.atol = s->tol; }
    else o.step_size = s->h;
    if (nde_solve(ctx, raa_field, m, nde_reshape(ctx, x, 3, s3), 2, ts, &o, &sol) == NDE_OK) z1 = sol.ys[1];
    if (nfe) *nfe = sol.stats.nfe;
    if (steps) *steps = sol.stats.accepted;
    nde_solution_free(ctx, &sol);
    if (!z1) return NULL;
    s2[0] = x->shape[0]; s2[1] = m->dim;
    return nde_linear_forward(ctx, &m->head, nde_reshape(ctx, z1, 2, s2));
}
static int64_t raa_count_correct(nde_ctx *ctx, nde_tensor *logits, const int64_t *labels) {
    int64_t i, j, n = logits->shape[0], k = logits->shape[1], correct = 0;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(n * k) * sizeof(nde_real));
    if (!host || nde_tensor_to_host(ctx, logits, host) != NDE_OK) return 0;
    for (i = 0; i < n; i++) {
        int64_t best = 0;
        for (j = 1; j < k; j++) if (host[i * k + j] > host[i * k + best]) best = j;
        correct += best == labels[i];
    }
    return correct;
}
/* Accuracy of a batch (no gradients). */
static double raa_batch_accuracy(raa_model *m, nde_tensor *x, const int64_t *labels, const raa_solver *s, int64_t *nfe) {
    nde_mark mark = nde_ctx_mark(m->ctx);
    int prev = nde_set_grad_enabled(m->ctx, 0);
    nde_tensor *logits = raa_logits(m, x, s, nfe, NULL);
    double acc = logits ? (double)raa_count_correct(m->ctx, logits, labels) / (double)x->shape[0] : NAN;
    nde_set_grad_enabled(m->ctx, prev);
    nde_ctx_reset(m->ctx, mark);
    return acc;
}

typedef struct raa_test_result { double acc, acc_research_code; int64_t nfe, steps; } raa_test_result;

/* The whole test set with solver s: exact accuracy, the research code's
   batch-averaged one, NFE and steps of the first batch. */
static raa_test_result raa_test(raa_model *m, const raa_args *a, const raa_data *d, const raa_solver *s) {
    raa_test_result r;
    int64_t start, i, correct = 0, batches = 0;
    double batch_mean = 0.0;
    int64_t *idx = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    int prev = nde_set_grad_enabled(m->ctx, 0);
    memset(&r, 0, sizeof r);
    r.acc = r.acc_research_code = NAN;
    if (!idx) return r;
    for (start = 0; start < d->n_test; start += a->test_batch_size) {
        int64_t count = d->n_test - start < a->test_batch_size ? d->n_test - start : a->test_batch_size, c, nfe, steps;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *logits;
        for (i = 0; i < count; i++) idx[i] = start + i;
        logits = raa_logits(m, ex_batch_rows(m->ctx, d->x_test, d->dim, idx, count), s, &nfe, &steps);
        if (!logits) { nde_ctx_reset(m->ctx, mark); break; }
        c = raa_count_correct(m->ctx, logits, d->y_test + start);
        correct += c;
        batch_mean += (double)c / (double)a->test_batch_size;   /* the research code's under-count */
        if (batches == 0) { r.nfe = nfe; r.steps = steps; }
        batches++;
        nde_ctx_reset(m->ctx, mark);
    }
    nde_set_grad_enabled(m->ctx, prev);
    free(idx);
    if (nde_ctx_status(m->ctx) == NDE_OK) {
        r.acc = (double)correct / (double)d->n_test;
        r.acc_research_code = batch_mean / (double)batches;
    }
    return r;
}

/* ---------------------------------------------------------------- adaptation */
/* Hairer, Norsett, Wanner I, p. 169, with plain norms (batch mean of the
   per-sample Euclidean norms), as the research code's initial step. */
static double raa_hairer_step(raa_model *m, nde_tensor *x, int order) {
    nde_ctx *ctx = m->ctx;
    nde_mark mark = nde_ctx_mark(ctx);
    int prev = nde_set_grad_enabled(ctx, 0);
    int64_t s3[3], n = x->shape[0], i, j, dim = m->dim;
    nde_tensor *y0, *f0, *y1, *f1;
    nde_real *hy, *hf0, *hf1;
    double d0 = 0, d1 = 0, d2 = 0, h0, h1, dmax;
    s3[0] = n; s3[1] = 1; s3[2] = dim;
    y0 = nde_reshape(ctx, x, 3, s3);
    f0 = raa_field(ctx, NULL, y0, m);
    hy = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(n * dim) * sizeof(nde_real));
    hf0 = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(n * dim) * sizeof(nde_real));
    hf1 = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(n * dim) * sizeof(nde_real));
    if (!f0 || !hy || !hf0 || !hf1) { nde_set_grad_enabled(ctx, prev); nde_ctx_reset(ctx, mark); return 1.0; }
    nde_tensor_to_host(ctx, y0, hy);
    nde_tensor_to_host(ctx, f0, hf0);
    for (i = 0; i < n; i++) {
        double sy = 0, sf = 0;
        for (j = 0; j < dim; j++) { sy += hy[i * dim + j] * hy[i * dim + j]; sf += hf0[i * dim + j] * hf0[i * dim + j]; }
        d0 += sqrt(sy) / (double)n; d1 += sqrt(sf) / (double)n;
    }
    h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    y1 = nde_add(ctx, y0, nde_scale(ctx, f0, (nde_real)h0));
    f1 = raa_field(ctx, NULL, y1, m);
    if (f1) nde_tensor_to_host(ctx, f1, hf1);
    for (i = 0; f1 && i < n; i++) {
        double s = 0;
        for (j = 0; j < dim; j++) { double df = hf1[i * dim + j] - hf0[i * dim + j]; s += df * df; }
        d2 += sqrt(s) / (double)n / h0;
    }
    dmax = d1 > d2 ? d1 : d2;
    h1 = dmax <= 1e-15 ? (h0 * 1e-3 > 1e-6 ? h0 * 1e-3 : 1e-6) : pow(0.01 / dmax, 1.0 / (order + 1));
    nde_set_grad_enabled(ctx, prev);
    nde_ctx_reset(ctx, mark);
    return 100 * h0 < h1 ? 100 * h0 : h1;
}

/* The ~50x more accurate test solver of the step adaptation (acc_fact 50). */
static raa_solver raa_test_solver(nde_ctx *ctx, const raa_solver *train) {
    raa_solver t = *train;
    double h = train->h;
    if (train->adaptive) {
        raa_solver_set(ctx, &t, "dopri5", 0.0, train->method == NDE_DOPRI5 ? train->tol / 10 : train->tol / 5);
    } else if (train->method == NDE_EULER) {
        raa_solver_set(ctx, &t, "midpoint", fmin(h, sqrt(h / 50.0)), 0.0);
    } else if (train->method == NDE_MIDPOINT) {
        raa_solver_set(ctx, &t, "rk4", fmin(h, pow(h * h / 50.0, 0.25)), 0.0);
    } else {
        raa_solver_set(ctx, &t, nde_method_name(train->method), h / pow(50.0, 1.0 / raa_solver_order(train)), 0.0);
    }
    return t;
}

/* Algorithm 2's decrease: h/2, or the step count halfway to max_steps when
   doubling it would pass the cap; h itself at the cap. */
static double raa_smaller_step(double h, int max_steps) {
    int64_t n = raa_fixed_steps(h);
    if (n >= max_steps) return h;
    if (2 * n > max_steps) return 2.0 / (double)(n + max_steps);
    return h / 2;
}

typedef struct raa_adapt_state { int64_t nfe_hist[5]; int nfe_count; } raa_adapt_state;

/* One adaptation decision on the batch (x, labels) whose training accuracy
   is acc_train; changes m->train_solver. Returns the accuracy gap. */
static double raa_adapt(raa_model *m, const raa_args *a, raa_adapt_state *st, nde_tensor *x, const int64_t *labels,
                        double acc_train, int64_t nfe_train) {
    raa_solver test = raa_test_solver(m->ctx, &m->train_solver), trial = m->train_solver;
    int64_t nfe_test = 0;
    double acc_test, gap, acc_trial;
    int guard;
    if (m->train_solver.adaptive) {
        acc_test = raa_batch_accuracy(m, x, labels, &test, &nfe_test);
        for (guard = 0; guard < 5 && nfe_test <= nfe_train; guard++) {
            test.tol /= 10;
            acc_test = raa_batch_accuracy(m, x, labels, &test, &nfe_test);
        }
    } else {
        acc_test = raa_batch_accuracy(m, x, labels, &test, NULL);
    }
    gap = fabs(acc_test - acc_train);
    if (gap > a->threshold) {
        if (m->train_solver.adaptive) {
            m->train_solver.tol /= 2;
        } else {
            double h = raa_smaller_step(m->train_solver.h, a->max_steps);
            if (h == m->train_solver.h && !a->quiet)
                fprintf(stderr, "\nresnet_after_all: at max_steps (%d); step size kept\n", a->max_steps);
            m->train_solver.h = h;
        }
        return gap;
    }
    if (trial.adaptive) trial.tol *= 1.1;
    else trial.h = fmin(1.1 * trial.h, 1.0);
    acc_trial = raa_batch_accuracy(m, x, labels, &trial, NULL);
    if (fabs(acc_test - acc_trial) <= a->threshold) {
        int stuck = 0;
        if (trial.adaptive && st->nfe_count >= 5) {
            int k;
            stuck = 1;
            for (k = 1; k < 5; k++) stuck &= st->nfe_hist[k] == st->nfe_hist[0];
        }
        if (!stuck) m->train_solver = trial;
    }
    return gap;
}

/* ---------------------------------------------------------------- training */
typedef struct raa_run_result {
    double final_loss, first_loss, test_acc, h, tol;
    double loss_head, loss_tail;       /* mean loss of the first / last 10 iterations run */
    int iterations;
    raa_test_result grid[RAA_MAX_TEST][RAA_MAX_TEST];
} raa_run_result;

static void raa_ckpt_path(char *buf, size_t len, const raa_args *a, int model) {
    char name[32];
    snprintf(name, sizeof name, "/ckpt_model%d", model);
    ex_path(buf, len, a->save, name, NULL);
}

/* Trains model index `which` with the training solver start; returns 0 on success. */
static int raa_train(raa_model *m, const raa_args *a, const raa_data *d, int which, FILE *log, raa_run_result *res) {
    int64_t nb = (d->n_train + a->batch_size - 1) / a->batch_size, *perm, labels_cap = a->batch_size;
    int64_t *labels;
    int it = 0, epoch_cached = -1;
    double counters[8] = {0};
    raa_adapt_state st;
    char path[1024], desc[96];
    ex_progress bar;
    memset(&st, 0, sizeof st);
    perm = (int64_t *)malloc((size_t)d->n_train * sizeof(int64_t));
    labels = (int64_t *)malloc((size_t)labels_cap * sizeof(int64_t));
    if (!perm || !labels) { free(perm); free(labels); return 1; }
    raa_ckpt_path(path, sizeof path, a, which);
    if (a->resume) {
        char sp[1100];
        ex_path(sp, sizeof sp, path, ".state.npy", NULL);
        if (!ex_file_exists(sp)) {
            if (!a->quiet) printf("model %d: no checkpoint to resume from; training from the start\n", which);
        } else {
            if (ex_checkpoint_load(m->ctx, path, &m->opt, counters, 8) != NDE_OK) {
                fprintf(stderr, "resnet_after_all: --resume: %s\n", nde_ctx_message(m->ctx));
                free(perm); free(labels);
                return 1;
            }
            it = (int)counters[0];
            m->train_solver.h = counters[1]; m->train_solver.tol = counters[2];
            st.nfe_count = (int)counters[3];
            { int k; for (k = 0; k < 4; k++) st.nfe_hist[k] = (int64_t)counters[4 + k]; }
            if (!a->quiet) printf("model %d: resumed at iteration %d\n", which, it);
        }
    }
    bar = ex_progress_start(a->niter);
    for (; it < a->niter; it++) {
        int64_t epoch = it / nb, b = it % nb, start = b * a->batch_size;
        int64_t count = d->n_train - start < a->batch_size ? d->n_train - start : a->batch_size, nfe = 0, i;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *x, *logits, *loss;
        double acc = NAN, lossv = NAN, gap = NAN;
        if (epoch != epoch_cached) {
            ex_permutation((uint64_t)a->random_seed, (uint64_t)epoch, d->n_train, perm);
            epoch_cached = (int)epoch;
        }
        for (i = 0; i < count; i++) labels[i] = d->y_train[perm[start + i]];
        if (it == 0 && a->use_step_adaption_algo && !m->train_solver.adaptive) {
            x = ex_batch_rows(m->ctx, d->x_train, d->dim, perm + start, count);
            m->train_solver.h = fmin(1.0, fmax(1.0 / a->max_steps, raa_hairer_step(m, x, raa_solver_order(&m->train_solver))));
            if (!a->quiet) printf("model %d: Hairer's initial step %.5g (%lld steps)\n", which, m->train_solver.h,
                                  (long long)raa_fixed_steps(m->train_solver.h));
        }
        x = ex_batch_rows(m->ctx, d->x_train, d->dim, perm + start, count);
        logits = raa_logits(m, x, &m->train_solver, &nfe, NULL);
        loss = nde_cross_entropy(m->ctx, logits, labels);
        if (loss) {
            lossv = nde_tensor_item(m->ctx, loss, 0);
            acc = (double)raa_count_correct(m->ctx, logits, labels) / (double)count;
            nde_zero_grad(m->ctx);
            nde_backward(m->ctx, loss);
        }
        if (nde_ctx_status(m->ctx) != NDE_OK) {
            ex_progress_finish(&bar);
            fprintf(stderr, "resnet_after_all: iteration %d: %s\n", it, nde_ctx_message(m->ctx));
            nde_ctx_reset(m->ctx, mark);
            free(perm); free(labels);
            return 1;
        }
        if (m->train_solver.adaptive) {
            memmove(st.nfe_hist + 1, st.nfe_hist, 4 * sizeof st.nfe_hist[0]);
            st.nfe_hist[0] = nfe;
            if (st.nfe_count < 5) st.nfe_count++;
        }
        if (a->use_step_adaption_algo && (it + 1) % a->adaption_interval == 0)
            gap = raa_adapt(m, a, &st, x, labels, acc, nfe);
        nde_optimizer_step(m->ctx, &m->opt);
        nde_ctx_reset(m->ctx, mark);
        if (res->first_loss != res->first_loss) res->first_loss = lossv;
        if (res->iterations < 10) res->loss_head += lossv / 10;
        if (it >= a->niter - 10) res->loss_tail += lossv / 10;
        res->final_loss = lossv;
        fprintf(log, "%d,%d,%.6f,%.4f,%lld,%.8g,%.6g,%.4f,%.3f\n", which, it + 1, lossv, acc, (long long)nfe,
                m->train_solver.h, m->train_solver.tol, gap, ex_progress_elapsed(&bar));
        if (!a->quiet) {
            raa_solver_describe(&m->train_solver, desc, sizeof desc);
            ex_progress_update(&bar, it + 1, "model %d  loss %.4f  acc %.3f  nfe %lld  %s", which, lossv, acc,
                               (long long)nfe, desc);
        }
        if ((it + 1) % a->model_checkpoint_freq == 0 || it + 1 == a->niter) {
            int k;
            counters[0] = it + 1; counters[1] = m->train_solver.h; counters[2] = m->train_solver.tol;
            counters[3] = st.nfe_count;
            for (k = 0; k < 4; k++) counters[4 + k] = (double)st.nfe_hist[k];
            if (ex_checkpoint_save(m->ctx, path, &m->opt, counters, 8) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "resnet_after_all: %s\n", nde_ctx_message(m->ctx));
                free(perm); free(labels);
                return 1;
            }
        }
        res->iterations++;
    }
    if (!a->quiet) ex_progress_finish(&bar);
    res->h = m->train_solver.h; res->tol = m->train_solver.tol;
    free(perm); free(labels);
    return 0;
}

/* ---------------------------------------------------------------- evaluation and plots */
typedef struct raa_grid {
    int num_solvers, num_factors;
    const char *solvers[RAA_MAX_TEST];
    double factors[RAA_MAX_TEST];
    char buf[512];
} raa_grid;

static int raa_grid_parse(const raa_args *a, raa_grid *g) {
    g->num_solvers = ex_split_words(a->test_solver_list, g->buf, sizeof g->buf, g->solvers, RAA_MAX_TEST);
    g->num_factors = ex_parse_doubles(a->test_factor_list, g->factors, RAA_MAX_TEST);
    if (g->num_solvers < 1 || g->num_factors < 1) {
        fprintf(stderr, "resnet_after_all: --test_solver_list and --test_factor_list need 1..%d comma-separated entries\n",
                RAA_MAX_TEST);
        return 0;
    }
    return 1;
}

/* Every test solver at every factor: fixed steps h / factor, adaptive tol * factor. */
static int raa_evaluate(raa_model *m, const raa_args *a, const raa_data *d, const raa_grid *g, int which, FILE *eval,
                        raa_run_result *res) {
    int i, j;
    char train_desc[96];
    raa_solver_describe(&m->train_solver, train_desc, sizeof train_desc);
    for (i = 0; i < g->num_solvers; i++)
        for (j = 0; j < g->num_factors; j++) {
            raa_solver s;
            /* a fixed-step test of an adaptively trained model: h = --step_size
               (1 if unset) / factor, i.e. factor steps by default */
            double h = m->train_solver.adaptive ? (a->step_size > 0 ? a->step_size : 1.0) : m->train_solver.h;
            double tol = m->train_solver.adaptive ? m->train_solver.tol : a->tol;
            raa_test_result r;
            if (!raa_solver_set(m->ctx, &s, g->solvers[i], h / g->factors[j], tol * g->factors[j])) {
                fprintf(stderr, "resnet_after_all: %s\n", nde_ctx_message(m->ctx));
                return 1;
            }
            r = raa_test(m, a, d, &s);
            if (r.acc != r.acc) {
                fprintf(stderr, "resnet_after_all: evaluation with %s: %s\n", g->solvers[i], nde_ctx_message(m->ctx));
                return 1;
            }
            res->grid[i][j] = r;
            fprintf(eval, "%d,%s,%s,%g,%.8g,%.6g,%lld,%lld,%.4f,%.4f\n", which, train_desc, g->solvers[i], g->factors[j],
                    s.adaptive ? 0.0 : s.h, s.adaptive ? s.tol : 0.0, (long long)r.steps, (long long)r.nfe, r.acc,
                    r.acc_research_code);
        }
    res->test_acc = res->grid[0][0].acc;
    return 0;
}

static void raa_plot(const raa_args *a, const raa_grid *g, raa_model *models, raa_run_result *res, int count) {
    char path[512], title[160], desc[96];
    int k, i, j;
    ex_svg *s;
    ex_path(path, sizeof path, a->save, "/raa.svg", NULL);
    s = ex_svg_open(path, 420 * count, 380);
    if (!s) { fprintf(stderr, "cannot write %s\n", path); return; }
    for (k = 0; k < count; k++) {
        double xs[RAA_MAX_TEST][RAA_MAX_TEST], ys[RAA_MAX_TEST][RAA_MAX_TEST], tx, ty = NAN;
        const double *px[RAA_MAX_TEST], *py[RAA_MAX_TEST];
        int n[RAA_MAX_TEST];
        for (i = 0; i < g->num_solvers; i++) {
            for (j = 0; j < g->num_factors; j++) {
                xs[i][j] = (double)(res[k].grid[i][j].steps > 0 ? res[k].grid[i][j].steps : 1);
                ys[i][j] = res[k].grid[i][j].acc;
                if (!strcmp(g->solvers[i], nde_method_name(models[k].train_solver.method)) && g->factors[j] == 1.0) ty = ys[i][j];
            }
            px[i] = xs[i]; py[i] = ys[i]; n[i] = g->num_factors;
        }
        raa_solver_describe(&models[k].train_solver, desc, sizeof desc);
        snprintf(title, sizeof title, "trained: %s", desc);
        /* accuracy on a fixed [0, 1] axis, so that panels compare */
        ex_svg_series_range(s, 420 * k, 0, 420, 380, title, "steps (first test batch)", "test accuracy (exact)",
                            g->num_solvers, px, py, n, g->solvers, 1, 2, 0.0, 1.02);
        /* the training configuration, highlighted */
        tx = models[k].train_solver.adaptive ? (double)res[k].grid[0][0].steps : (double)raa_fixed_steps(models[k].train_solver.h);
        if (ty == ty && tx > 0) ex_svg_circle(s, log10(tx), ty, 7.0, "black");
    }
    if (ex_svg_close(s) != 0) fprintf(stderr, "cannot write %s\n", path);
}

/* Trains one model per entry of --step_size_list (or the single --step_size /
   --tol), evaluates each on the grid, writes logs and the plot. */
static int raa_run(const raa_args *a, raa_run_result *results, int *num_models) {
    raa_data d;
    raa_grid g;
    raa_model models[RAA_MAX_MODELS];
    double hs[RAA_MAX_MODELS];
    int count, k, i, j, rc = 1;
    FILE *log = NULL, *eval = NULL;
    char path[512];
    memset(models, 0, sizeof models);
    *num_models = 0;
    if (a->niter < 0 || a->batch_size < 1 || a->test_batch_size < 1 || a->ch_residual_block < 1 || !(a->lr > 0) ||
        a->adaption_interval < 1 || a->max_steps < 1 || a->model_checkpoint_freq < 1 || !(a->tol > 0) ||
        !(a->initial_tol > 0)) {
        fprintf(stderr, "resnet_after_all: bad arguments (niter >= 0; batch sizes, channels, adaption_interval, "
                        "max_steps, model_checkpoint_freq >= 1; lr, tol, initial_tol > 0)\n");
        return 2;
    }
    /* one model per --step_size_list entry; one model with --step_size, an
       adaptive solver or the adaptation algorithm */
    {
        nde_ctx *tmp = nde_ctx_new(nde_ctx_desc_default());
        raa_solver probe;
        int ok = tmp && raa_solver_set(tmp, &probe, a->solver, 1.0, 1.0);
        if (!ok) fprintf(stderr, "resnet_after_all: --solver: %s\n", nde_ctx_message(tmp));
        nde_ctx_free(tmp);
        if (!ok) return 2;
        if (a->step_size > 0 || probe.adaptive || a->use_step_adaption_algo) {
            count = 1;
            hs[0] = a->step_size > 0 ? a->step_size : 1.0;
        } else {
            count = ex_parse_doubles(a->step_size_list, hs, RAA_MAX_MODELS);
        }
    }
    if (count < 1) { fprintf(stderr, "resnet_after_all: --step_size_list: 1..%d numbers\n", RAA_MAX_MODELS); return 2; }
    for (k = 0; k < count; k++) if (!(hs[k] > 0 && hs[k] <= 1)) {
        fprintf(stderr, "resnet_after_all: step sizes must lie in (0, 1]\n");
        return 2;
    }
    if (!raa_grid_parse(a, &g)) return 2;
    if (!raa_data_make(a, &d)) { raa_data_free(&d); return 1; }
    if (ex_mkdir(a->save) != 0) { raa_data_free(&d); return 1; }
    if (!a->quiet) {
        printf("resnet_after_all: %s (d = %d, %d classes), %lld train / %lld test", a->dataset, d.dim, d.classes,
               (long long)d.n_train, (long long)d.n_test);
        if (d.resampled) printf(" (%lld unsettled samples drawn again)", (long long)d.resampled);
        printf(", %s C = %d, %d iterations of batch %d\n", a->network, a->ch_residual_block, a->niter, a->batch_size);
    }
    ex_path(path, sizeof path, a->save, "/train.csv", NULL);
    log = ex_csv_open(path, "model,iteration,loss,batch_acc,nfe_forward,step_size,tol,adaption_gap,seconds", a->resume);
    ex_path(path, sizeof path, a->save, "/eval.csv", NULL);
    eval = ex_csv_open(path, "model,trained_with,test_solver,factor,test_step_size,test_tol,steps,nfe,acc,acc_research_code", 0);
    if (!log || !eval) goto done;
    for (k = 0; k < count; k++) {
        raa_model *m = &models[k];
        memset(&results[k], 0, sizeof results[k]);
        results[k].first_loss = NAN;
        if (!raa_model_init(m, a, &d)) goto done;
        if (!raa_solver_set(m->ctx, &m->train_solver, a->solver, hs[k],
                            a->use_step_adaption_algo ? a->initial_tol : a->tol)) {
            fprintf(stderr, "resnet_after_all: %s\n", nde_ctx_message(m->ctx));
            goto done;
        }
        if (raa_train(m, a, &d, k, log, &results[k]) != 0) goto done;
        if (raa_evaluate(m, a, &d, &g, k, eval, &results[k]) != 0) goto done;
        *num_models = k + 1;
        if (!a->quiet) {
            char desc[96];
            raa_solver_describe(&m->train_solver, desc, sizeof desc);
            if (results[k].iterations > 0)
                printf("model %d trained with %s, final loss %.4f; test accuracy (exact):\n  %-10s", k, desc,
                       results[k].final_loss, "factor");
            else    /* resumed at --niter: evaluation only */
                printf("model %d trained with %s (checkpoint, no iterations run); test accuracy (exact):\n  %-10s", k,
                       desc, "factor");
            for (j = 0; j < g.num_factors; j++) printf(" %7g", g.factors[j]);
            printf("\n");
            for (i = 0; i < g.num_solvers; i++) {
                printf("  %-10s", g.solvers[i]);
                for (j = 0; j < g.num_factors; j++) printf(" %7.3f", results[k].grid[i][j].acc);
                printf("   (steps");
                for (j = 0; j < g.num_factors; j++) printf(" %lld", (long long)results[k].grid[i][j].steps);
                printf(")\n");
            }
        }
    }
    raa_plot(a, &g, models, results, count);
    if (!a->quiet) printf("logs: %s/train.csv %s/eval.csv  plot: %s/raa.svg\n", a->save, a->save, a->save);
    rc = 0;
done:
    if (log) fclose(log);
    if (eval) fclose(eval);
    for (k = 0; k < count; k++) raa_model_free(&models[k]);
    raa_data_free(&d);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    raa_args a;
    static raa_run_result results[RAA_MAX_MODELS];
    int n, prc;
    raa_args_default(&a);
    {
        ex_flag flags[] = {
            {"dataset", EX_STRING, &a.dataset, "concentric_sphere2|3|10|900 or three_minima"},
            {"network", EX_STRING, &a.network, "simple_odenet or linear_odenet"},
            {"ch_residual_block", EX_INT, &a.ch_residual_block, "hidden channels of the vector field"},
            {"act", EX_STRING, &a.act, "relu, lrelu or sigmoid"},
            {"solver", EX_STRING, &a.solver, "training solver: euler, midpoint, rk4, dopri5, fehlberg2, ..."},
            {"step_size", EX_DOUBLE, &a.step_size, "training step of a fixed-step solver (0: --step_size_list)"},
            {"step_size_list", EX_STRING, &a.step_size_list, "train one model per step size"},
            {"tol", EX_DOUBLE, &a.tol, "rtol = atol of adaptive solvers"},
            {"niter", EX_INT, &a.niter, "training iterations"},
            {"batch_size", EX_INT, &a.batch_size, "training batch size"},
            {"test_batch_size", EX_INT, &a.test_batch_size, "test batch size"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate"},
            {"weight_decay", EX_DOUBLE, &a.weight_decay, "L2 weight decay"},
            {"use_step_adaption_algo", EX_BOOL, &a.use_step_adaption_algo, "adapt the step size / tolerance"},
            {"threshold", EX_DOUBLE, &a.threshold, "largest accepted accuracy gap"},
            {"initial_tol", EX_DOUBLE, &a.initial_tol, "starting tolerance of the adaptation"},
            {"adaption_interval", EX_INT, &a.adaption_interval, "iterations between adaptations"},
            {"max_steps", EX_INT, &a.max_steps, "cap on fixed steps"},
            {"test_solver_list", EX_STRING, &a.test_solver_list, "solvers of the evaluation grid"},
            {"test_factor_list", EX_STRING, &a.test_factor_list, "factors of the evaluation grid"},
            {"random_seed", EX_INT, &a.random_seed, "seed of the initialisation and batch order"},
            {"data_seed", EX_INT, &a.data_seed, "seed of the generated data"},
            {"n_train", EX_INT, &a.n_train, "training points"},
            {"n_test", EX_INT, &a.n_test, "test points"},
            {"model_checkpoint_freq", EX_INT, &a.model_checkpoint_freq, "iterations between checkpoints"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "Neural ODE classifiers and their solvers (Ott et al., ICLR 2021)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return raa_run(&a, results, &n);
}
#endif
