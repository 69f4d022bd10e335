// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/ffjord.c -o ffjord -lm
/* examples/ffjord.c - FFJORD continuous normalising flows (Grathwohl, Chen,
   Bettencourt, Sutskever, Duvenaud, "FFJORD: Free-form Continuous Dynamics for
   Scalable Reversible Generative Models", ICLR 2019), written with nde.

   The flow is dz/dt = f(t, z) on [0, --time_length] with FFJORD's
   concatsquash MLP: each layer is (W h + b) * sigmoid(G t + g) + B t, hidden
   sizes --dims ("64-64-64"), --nonlinearity tanh or softplus between layers.
   With the state [z, l] and l' = tr(df/dz), l(0) = 0,
       log p(x) = log N(z(T); 0, I) + l(T),
   and the model is trained on the mean negative log-likelihood. The trace:
     --divergence_fn brute_force  exact: d Jacobian-vector products with the
                                  unit vectors, by one forward-mode jet over
                                  the batch repeated d times (small d)
     --divergence_fn approximate  Hutchinson's estimator e^T (df/dz) e, one JVP,
                                  e ~ N(0, I) (or Rademacher with --rademacher)
                                  drawn once per solve (FFJORD's choice)
   The JVP is propagated by hand through the network alongside its value
   (du = (W u) * gate, u <- act'(h) du), written with nde.h's jet ops, so the
   whole augmented field [f, tr] is a jet program: reverse mode differentiates
   through it, and Taylor mode expands it in t (the Taylor solvers below).
   The solve is --method (a comma list; one model per method and divergence):
     dopri5  adaptive, --rtol / --atol, differentiated by --adjoint_option
             (direct by default; --adjoint is FFJORD's odeint_adjoint)
     rk4     --n_steps classic RK4 steps over [0, T] (same gradient modes)
     tayla   TayLaNets' Taylor-Lagrange solver (Djeumou et al. 2022, the
             research code's examples_taylanets/ffjord_tabular): --n_steps
             steps of the order-K (--order) Taylor expansion of [f, tr] plus the
             Lagrange remainder at a point from a midpoint network ([z, l] ->
             16 ReLU -> d + 2, the last output placing the remainder's time;
             weights U(-1e-4, 1e-4)); loss + --pen_remainder mean |remainder|.
             The point lies between z and the Taylor estimate T (Gamma =
             sigmoid(g)) unless --midpoint_unbounded (the research code's
             Gamma = g): unbounded, the midpoint learns to inflate the trace
             term's remainder and the likelihood stops being the flow's
             (training NLL far below what dopri5 gives the same dynamics)
     taylor  the truncated Taylor expansion alone
   The tayla midpoint trains jointly with the dynamics on the loss by default
   (--mid_freq_update -1, the research code's ffjord_tabular default), or
   separately, TayLaNets' alternating algorithm (--mid_freq_update N > 0):
   the likelihood step then updates the dynamics alone (midpoint frozen), and
   every N iterations --mid_num_grad_iter steps of a second Adam optimizer
   (betas 0.999, 0.9999; learning rate decaying exponentially from
   --mid_lr_init to --mid_lr_end over the midpoint steps; --mid_w_decay,
   --mid_grad_clip; examples/common.h's ex_midpoint_update) train the
   midpoint alone: the block's [z, l](T) is fitted to dopri5's (at --rtol /
   --atol) of the same dynamics on the same batch and trace probes (batch
   mean of the L1 distance, the research code's corrector loss) plus
   --pen_remainder times the remainder penalty (not in the research code's
   corrector loss).
   --divergence_fn may list both ("brute_force,approximate"); all models start
   from the same initialisation and see the same batches.

   Reported per model: training NLL, forward and backward NFE per training
   iteration, seconds per iteration; and every --val_freq iterations the test
   NLL in nats solved by the model's own method, and by dopri5 at --test_rtol
   / --test_atol (the research code's "ODEINT Test": the same dynamics solved
   accurately), each with its NFE and seconds per test batch. The test trace
   is exact when d <= --exact_max_dim, else the estimator averaged over 5
   draws. NFE counts field evaluations; for tayla/taylor one per jet program
   (one per Taylor coefficient set: the expansion, and the remainder).
   <save>/log.csv (mid_loss: the objective of each separate midpoint update;
   seconds per iteration include those updates); for 2-D data
   <save>/samples.svg shows data and samples of the flow (z ~ N(0, I)
   integrated from T back to 0 by dopri5 or rk4).
   Checkpoints ckpt_<method>_<divergence>.* every --val_freq iterations (and
   at --stop_after) hold both optimizers' state; --resume continues exactly.

   Data (--data): 2-D toy sets 8gaussians, checkerboard, 2spirals, circles
   (FFJORD's toy_data recipes, Philox-seeded; 20 000 training and 5 000 test
   points drawn once); the bundled tabular sets iris (4-D) and wine (13-D)
   (examples/data, .npy, standardised, from scikit-learn); or any
   <name>-train.npy / <name>-test.npy pair with --data_file <name> (e.g.
   FFJORD's preprocessed MINIBOONE, 43-D: not available offline).

   Default (a few CPU minutes): iris, dims 32-32, 300 iterations of the full
   training set, dopri5, exact trace and Hutchinson:
       ./ffjord
   TayLaNets' tabular comparison (a few CPU minutes): wine (13-D), Hutchinson,
   TL-NODE (order 1, 2 steps) against rk4 (2 steps) and dopri5, the midpoint
   trained jointly (add --mid_freq_update 5 for separate updates):
       ./ffjord --data wine --method tayla,rk4,dopri5 --divergence_fn approximate --dims 64-64 \
           --nonlinearity softplus --lr_init 1e-2 --lr_end 1e-3 --niters 300 --pen_remainder 1 \
           --save ffjord_tayla_out
   FFJORD-like runs:
       ./ffjord --data 8gaussians --dims 64-64-64 --niters 10000 --batch_size 100 --divergence_fn approximate
       ./ffjord --data_file /path/to/miniboone --dims 860-860 --niters 20000 --batch_size 1000 \
           --divergence_fn approximate --adjoint
   TayLaNets' MINIBOONE run (hdim_factor 20, 2 layers, softplus, 500 epochs of
   batch 1000 = about 15 000 iterations of the 29 556 training rows):
       ./ffjord --data_file /path/to/miniboone --dims 860-860 --nonlinearity softplus \
           --method tayla,rk4,dopri5 --order 1 --n_steps 2 --divergence_fn approximate \
           --lr_init 1e-2 --lr_end 1e-3 --batch_size 1000 --niters 15000 --rtol 1.4e-8 --atol 1.4e-8
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_adjoint.h"

#define FF_MAX_LAYERS 8
#define FF_MAX_MODELS 8
#define FF_PI 3.14159265358979323846

typedef struct ff_args {
    const char *data, *data_file, *dims, *nonlinearity, *divergence_fn, *adjoint_option, *method, *save;
    double time_length, rtol, atol, test_rtol, test_atol, lr, lr_end, weight_decay, pen_remainder;
    int niters, batch_size, test_batch_size, val_freq, rademacher, adjoint, exact_max_dim, seed, order, n_steps;
    int midpoint_unbounded, stop_after;
    ex_midpoint_args mid;               /* --mid_*: TayLaNets' separate midpoint updates */
    int resume, quiet, n_toy;
} ff_args;

static void ff_args_default(ff_args *a) {
    memset(a, 0, sizeof *a);
    a->data = "iris"; a->data_file = ""; a->dims = "32-32"; a->nonlinearity = "tanh";
    a->divergence_fn = "brute_force,approximate"; a->adjoint_option = "direct"; a->method = "dopri5";
    a->save = "ffjord_out"; a->order = 1; a->n_steps = 2;
    a->time_length = 1.0; a->rtol = 1e-5; a->atol = 1e-5; a->test_rtol = 1e-6; a->test_atol = 1e-6;
    a->lr = 1e-3; a->weight_decay = 0.0;
    a->niters = 300; a->batch_size = 1000; a->test_batch_size = 1000; a->val_freq = 100; a->exact_max_dim = 16;
    a->n_toy = 20000;
    /* the research code's ffjord_tabular defaults: joint training */
    a->mid.freq_update = -1; a->mid.num_grad_iter = 1; a->mid.lr_init = 1e-4; a->mid.lr_end = 1e-7;
}

/* ---------------------------------------------------------------- data */
typedef struct ff_data { int64_t n_train, n_test, dim; nde_real *train, *test; char name[64]; } ff_data;

/* FFJORD's toy 2-D densities (their toy_data.py recipes). */
static void ff_toy(const char *name, nde_rng *r, int64_t n, nde_real *x) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double px = 0, py = 0;
        if (!strcmp(name, "8gaussians")) {
            int k = (int)(nde_rng_uniform1(r) * 8) % 8;
            double cx = cos(k * FF_PI / 4), cy = sin(k * FF_PI / 4);
            px = (4 * cx + 0.5 * nde_rng_normal1(r)) / 1.414;
            py = (4 * cy + 0.5 * nde_rng_normal1(r)) / 1.414;
        } else if (!strcmp(name, "checkerboard")) {
            double x1 = nde_rng_uniform1(r) * 4 - 2;
            double x2 = nde_rng_uniform1(r) - 2.0 * (double)(int)(nde_rng_uniform1(r) * 2);
            x2 += fmod(floor(x1) + 4.0, 2.0);
            px = 2 * x1; py = 2 * x2;
        } else if (!strcmp(name, "2spirals")) {
            double m = sqrt(nde_rng_uniform1(r)) * 540 * (2 * FF_PI) / 360, sgn = (i % 2) ? -1.0 : 1.0;
            px = sgn * (-cos(m) * m + nde_rng_uniform1(r) * 0.5) / 3 + 0.1 * nde_rng_normal1(r);
            py = sgn * (sin(m) * m + nde_rng_uniform1(r) * 0.5) / 3 + 0.1 * nde_rng_normal1(r);
        } else {   /* circles: sklearn's make_circles(factor 0.5, noise 0.08) * 3 */
            double ang = 2 * FF_PI * nde_rng_uniform1(r), rad = (i % 2) ? 0.5 : 1.0;
            px = 3 * (rad * cos(ang) + 0.08 * nde_rng_normal1(r));
            py = 3 * (rad * sin(ang) + 0.08 * nde_rng_normal1(r));
        }
        x[2 * i] = (nde_real)px; x[2 * i + 1] = (nde_real)py;
    }
}
static int ff_is_toy(const char *name) {
    return !strcmp(name, "8gaussians") || !strcmp(name, "checkerboard") || !strcmp(name, "2spirals") || !strcmp(name, "circles");
}

/* A (n, d) .npy as host reals. */
static nde_real *ff_load_matrix(nde_ctx *ctx, const char *path, int64_t *n, int64_t *d) {
    nde_mark m = nde_ctx_mark(ctx);
    nde_tensor *t = nde_load_npy(ctx, path);
    nde_real *host = NULL;
    if (t && t->ndim == 2) {
        host = (nde_real *)malloc((size_t)t->size * sizeof(nde_real));
        if (host) nde_tensor_to_host(ctx, t, host);
        *n = t->shape[0]; *d = t->shape[1];
    } else if (t) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ffjord: '%s' must be a 2-D array (rows, features)", path);
    }
    nde_ctx_reset(ctx, m);
    return host;
}

static int ff_data_load(nde_ctx *ctx, const ff_args *a, ff_data *d) {
    memset(d, 0, sizeof *d);
    if (!a->data_file[0] && ff_is_toy(a->data)) {
        nde_rng rt = nde_rng_new((uint64_t)a->seed + 7, 0), rv = nde_rng_new((uint64_t)a->seed + 7, 1);
        d->dim = 2; d->n_train = a->n_toy; d->n_test = a->n_toy / 4;
        d->train = (nde_real *)malloc((size_t)(2 * d->n_train) * sizeof(nde_real));
        d->test = (nde_real *)malloc((size_t)(2 * d->n_test) * sizeof(nde_real));
        if (!d->train || !d->test) return 0;
        ff_toy(a->data, &rt, d->n_train, d->train);
        ff_toy(a->data, &rv, d->n_test, d->test);
        snprintf(d->name, sizeof d->name, "%s", a->data);
        return 1;
    } else {
        char tr[600], te[600], prefix[520];
        int64_t d2 = 0;
        if (a->data_file[0]) {
            ex_path(prefix, sizeof prefix, a->data_file, NULL, NULL);
        } else if (!strcmp(a->data, "iris") || !strcmp(a->data, "wine")) {
            /* the bundled files beside this source */
            const char *slash = strrchr(__FILE__, '/');
            size_t dirlen = slash ? (size_t)(slash - __FILE__ + 1) : 0;
            char here[400];
            if (dirlen >= sizeof here) dirlen = 0;
            memcpy(here, __FILE__, dirlen);
            here[dirlen] = 0;
            ex_path(prefix, sizeof prefix, here, "data/", a->data);
        } else {
            fprintf(stderr, "ffjord: --data must be 8gaussians, checkerboard, 2spirals, circles, iris or wine "
                            "(or give --data_file)\n");
            return 0;
        }
        ex_path(tr, sizeof tr, prefix, "-train.npy", NULL);
        ex_path(te, sizeof te, prefix, "-test.npy", NULL);
        d->train = ff_load_matrix(ctx, tr, &d->n_train, &d->dim);
        d->test = ff_load_matrix(ctx, te, &d->n_test, &d2);
        if (!d->train || !d->test || d2 != d->dim) {
            fprintf(stderr, "ffjord: %s\n", nde_ctx_status(ctx) != NDE_OK ? nde_ctx_message(ctx) : "train and test widths differ");
            return 0;
        }
        snprintf(d->name, sizeof d->name, "%s", a->data_file[0] ? "data_file" : a->data);
        return 1;
    }
}
static void ff_data_free(ff_data *d) { free(d->train); free(d->test); memset(d, 0, sizeof *d); }

/* ---------------------------------------------------------------- model */
typedef struct ff_layer { nde_linear lin, gate, hbias; } ff_layer;

enum { FF_DOPRI5, FF_RK4, FF_TAYLA, FF_TAYLOR };
static int ff_method_kind(const char *name) {
    if (!strcmp(name, "dopri5")) return FF_DOPRI5;
    if (!strcmp(name, "rk4")) return FF_RK4;
    if (!strcmp(name, "tayla")) return FF_TAYLA;
    if (!strcmp(name, "taylor")) return FF_TAYLOR;
    return -1;
}

typedef struct ff_model {
    nde_ctx *ctx;
    int dim, num_layers, exact, kind;
    nde_activation act;
    ff_layer layer[FF_MAX_LAYERS];
    nde_mlp mid;                        /* TayLaNets' midpoint network (tayla) */
    int mid_first, mid_end;             /* its parameter indices */
    /* per solve: Hutchinson's noise (B, d) or the exact trace's unit rows (d B, d) */
    nde_tensor *noise;
    nde_optimizer opt, mid_opt;         /* mid_opt: the separate midpoint updates */
    nde_solve_options solve;
    nde_adjoint_options adj;
    nde_tayla_options tayla;
    nde_jet_field_ref ref;              /* the augmented field for nde_jet_field_plain */
    int64_t nfe;
} ff_model;

static int ff_parse_dims(const char *dims, int64_t *out, int max) {
    int n = 0;
    const char *p = dims;
    while (*p && n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1) return -1;
        out[n++] = v;
        p = *end == '-' ? end + 1 : end;
        if (*end && *end != '-') return -1;
    }
    return *p ? -1 : n;
}

static nde_jet *ff_aug_field(nde_ctx *ctx, nde_jet *t, nde_jet *s, void *user);
static nde_tensor *ff_midpoint(nde_ctx *ctx, nde_tensor *s, void *user) {
    return nde_mlp_forward(ctx, &((ff_model *)user)->mid, s);
}

/* kind: FF_DOPRI5, FF_RK4, FF_TAYLA or FF_TAYLOR; exact: the brute-force trace. */
static int ff_model_init(ff_model *m, const ff_args *a, int64_t dim, int exact, int kind) {
    int64_t hidden[FF_MAX_LAYERS], widths[FF_MAX_LAYERS + 2];
    int nh = ff_parse_dims(a->dims, hidden, FF_MAX_LAYERS - 1), l;
    char nm[32];
    nde_grad_mode mode;
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return 0;
    if (nh < 1) { fprintf(stderr, "ffjord: --dims must look like 64-64-64\n"); return 0; }
    m->dim = (int)dim; m->exact = exact; m->num_layers = nh + 1; m->kind = kind;
    m->act = !strcmp(a->nonlinearity, "softplus") ? NDE_ACT_SOFTPLUS : NDE_ACT_TANH;
    if (strcmp(a->nonlinearity, "softplus") && strcmp(a->nonlinearity, "tanh")) {
        fprintf(stderr, "ffjord: --nonlinearity must be tanh or softplus\n");
        return 0;
    }
    widths[0] = dim;
    for (l = 0; l < nh; l++) widths[l + 1] = hidden[l];
    widths[nh + 1] = dim;
    for (l = 0; l < m->num_layers; l++) {
        uint64_t s = (uint64_t)a->seed * 100 + (uint64_t)l;
        snprintf(nm, sizeof nm, "odefunc.layer%d", l);
        nde_linear_init(m->ctx, &m->layer[l].lin, nm, widths[l], widths[l + 1], 1, s);
        snprintf(nm, sizeof nm, "odefunc.gate%d", l);
        nde_linear_init(m->ctx, &m->layer[l].gate, nm, 1, widths[l + 1], 1, s + 50);
        snprintf(nm, sizeof nm, "odefunc.hyperbias%d", l);
        nde_linear_init(m->ctx, &m->layer[l].hbias, nm, 1, widths[l + 1], 0, s + 70);
    }
    if (kind == FF_TAYLA) {
        /* the research code's midpoint: [z, l] -> 16 ReLU -> d + 2 (the last
           output places the remainder's time), weights U(-1e-4, 1e-4), zero biases */
        int64_t mw[3];
        mw[0] = dim + 1; mw[1] = 16; mw[2] = dim + 2;
        m->mid_first = nde_params_num(m->ctx);
        nde_mlp_init(m->ctx, &m->mid, "midpoint", 3, mw, NDE_ACT_RELU, (uint64_t)a->seed + 9);
        m->mid_end = nde_params_num(m->ctx);
        for (l = 0; l < 2; l++) {
            nde_init_uniform(m->ctx, m->mid.layer[l].weight, NDE_R(-1e-4), NDE_R(1e-4), (uint64_t)a->seed + 10 + (uint64_t)l);
            nde_tensor_fill(m->ctx, m->mid.layer[l].bias, NDE_R(0.0));
        }
    }
    m->opt = nde_adam(a->lr);
    m->opt.weight_decay = a->weight_decay;
    if (a->lr_end > 0 && a->lr_end < a->lr) {
        m->opt.schedule.kind = NDE_SCHED_EXPONENTIAL;
        m->opt.schedule.lr_init = a->lr; m->opt.schedule.lr_end = a->lr_end; m->opt.schedule.steps = a->niters;
    }
    m->mid_opt = ex_midpoint_optimizer(&a->mid, a->niters);
    /* separate midpoint updates: the likelihood step trains the dynamics alone */
    if (kind == FF_TAYLA && ex_midpoint_separate(&a->mid)) ex_params_train_only(m->ctx, m->mid_first, m->mid_end, 0);
    m->solve = nde_solve_options_default();
    m->solve.method = kind == FF_RK4 ? NDE_RK4 : NDE_DOPRI5;
    if (kind == FF_RK4) m->solve.step_size = a->time_length / a->n_steps;
    m->solve.rtol = a->rtol; m->solve.atol = a->atol;
    m->tayla = nde_tayla_options_default();
    m->tayla.order = a->order; m->tayla.n_steps = a->n_steps;
    if (kind == FF_TAYLA) { m->tayla.midpoint = ff_midpoint; m->tayla.midpoint_user = m; m->tayla.midpoint_unbounded = a->midpoint_unbounded; }
    m->ref.f = ff_aug_field; m->ref.user = m;
    if (nde_grad_mode_from_name(m->ctx, a->adjoint ? "adjoint" : a->adjoint_option, &mode) != NDE_OK) {
        fprintf(stderr, "ffjord: --adjoint_option: %s\n", nde_ctx_message(m->ctx));
        return 0;
    }
    m->adj = nde_adjoint_options_default(mode);
    if (nde_ctx_status(m->ctx) != NDE_OK) { fprintf(stderr, "ffjord: %s\n", nde_ctx_message(m->ctx)); return 0; }
    return 1;
}
static void ff_model_free(ff_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

/* The concatsquash MLP f(t, x) on jets, layer by layer
       h = (W x + b) * sigmoid(G t + g) + B t,   x <- act(h) (not after the last),
   and, when u is given, the JVP J_f(x) u carried alongside by hand:
       du = (W u) * sigmoid(G t + g),   u <- act'(h) du.
   Written with jet ops only, the JVP is itself Taylor-expandable in t, which
   the Taylor-Lagrange solver needs (it differentiates the trace term too).
   t: a jet of shape (1) or (B, 1). */
static nde_jet *ff_net(nde_ctx *ctx, ff_model *m, nde_jet *t, nde_jet *x, nde_jet **u) {
    int64_t one[2] = {1, 1};
    int l;
    if (!t || !x) return NULL;
    if (t->c[0]->ndim == 1) t = nde_jet_reshape(ctx, t, 2, one);
    for (l = 0; l < m->num_layers && x; l++) {
        nde_jet *gate = nde_jet_sigmoid(ctx, nde_jet_linear_forward(ctx, &m->layer[l].gate, t));
        nde_jet *h = nde_jet_add(ctx, nde_jet_mul(ctx, nde_jet_linear_forward(ctx, &m->layer[l].lin, x), gate),
                                 nde_jet_linear_forward(ctx, &m->layer[l].hbias, t));
        nde_jet *du = u ? nde_jet_mul(ctx, nde_jet_matmul(ctx, *u, nde_jet_param(ctx, m->layer[l].lin.weight, x->order), 0, 1),
                                      gate) : NULL;
        if (l + 1 == m->num_layers) {
            x = h;
            if (u) *u = du;
        } else {
            x = nde_jet_activate(ctx, h, m->act);
            if (u) {
                nde_jet *slope = m->act == NDE_ACT_TANH ? nde_jet_add_scalar(ctx, nde_jet_neg(ctx, nde_jet_square(ctx, x)), NDE_R(1.0))
                                                        : nde_jet_sigmoid(ctx, h);   /* tanh' = 1 - tanh^2, softplus' = sigmoid */
                *u = nde_jet_mul(ctx, slope, du);
            }
        }
    }
    return x;
}

/* d[z, l]/dt = [f(t, z), tr(df/dz)] on the state s (B, d + 1), on jets. The
   trace: exact, as the JVPs of the batch repeated d times against the unit
   vectors (m->noise (d B, d)), or Hutchinson's e^T (df/dz) e (m->noise (B, d)). */
static nde_jet *ff_aug_field(nde_ctx *ctx, nde_jet *t, nde_jet *s, void *user) {
    ff_model *m = (ff_model *)user;
    int64_t b, d = m->dim, sh[2];
    nde_jet *z, *y, *u, *tr, *parts[2];
    if (!s) return NULL;
    m->nfe++;
    b = s->c[0]->shape[0];
    z = nde_jet_slice(ctx, s, 1, 0, d);
    u = nde_jet_const(ctx, m->noise, s->order);
    if (m->exact) {
        nde_jet *reps[64], *treps[64];
        int64_t i;
        for (i = 0; i < d; i++) { reps[i] = z; treps[i] = t; }
        if (t && t->c[0]->ndim == 2 && t->c[0]->shape[0] > 1 && d > 1)   /* per-sample times (a Lagrange midpoint) */
            t = nde_jet_concat(ctx, (int)d, treps, 0);
        y = ff_net(ctx, m, t, d == 1 ? z : nde_jet_concat(ctx, (int)d, reps, 0), &u);
        sh[0] = d; sh[1] = b;
        tr = nde_jet_sum_axis(ctx, nde_jet_reshape(ctx, nde_jet_sum_axis(ctx, nde_jet_mul(ctx, u, nde_jet_const(ctx, m->noise, s->order)), 1, 0),
                                                   2, sh), 0, 0);
        y = y ? nde_jet_slice(ctx, y, 0, 0, b) : NULL;
    } else {
        y = ff_net(ctx, m, t, z, &u);
        tr = nde_jet_sum_axis(ctx, nde_jet_mul(ctx, u, nde_jet_const(ctx, m->noise, s->order)), 1, 0);
    }
    if (!y || !tr) return NULL;
    sh[0] = b; sh[1] = 1;
    parts[0] = y;
    parts[1] = nde_jet_reshape(ctx, tr, 2, sh);
    return nde_jet_concat(ctx, 2, parts, 1);
}
/* The augmented field on plain tensors (for the Runge-Kutta solvers). */
static nde_tensor *ff_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *user) {
    return nde_jet_field_plain(ctx, t, s, &((ff_model *)user)->ref);
}
/* f alone (sampling): dz/dt on (B, d). */
static nde_tensor *ff_flow(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    ff_model *m = (ff_model *)user;
    nde_jet *y;
    m->nfe++;
    y = ff_net(ctx, m, nde_jet_const(ctx, t, 0), nde_jet_const(ctx, z, 0), NULL);
    return y ? y->c[0] : NULL;
}

/* The trace probes of one solve for a batch of b rows. */
static int ff_set_noise(ff_model *m, int64_t b, int exact, int rademacher, nde_rng *r) {
    int64_t d = m->dim, sh[2], i, k;
    m->exact = exact;
    if (exact) {
        nde_real *host = (nde_real *)nde_ctx_alloc_host(m->ctx, (size_t)(d * b * d) * sizeof(nde_real));
        if (!host) return 0;
        for (i = 0; i < d * b; i++) for (k = 0; k < d; k++) host[i * d + k] = (i / b == k) ? NDE_R(1.0) : NDE_R(0.0);
        sh[0] = d * b; sh[1] = d;
        m->noise = nde_tensor_from(m->ctx, 2, sh, host);
    } else {
        sh[0] = b; sh[1] = d;
        m->noise = nde_tensor_new(m->ctx, 2, sh);
        if (m->noise) {
            if (rademacher) nde_tensor_fill_rademacher(m->ctx, m->noise, r);
            else nde_tensor_fill_normal(m->ctx, m->noise, r, NDE_R(0.0), NDE_R(1.0));
        }
    }
    return m->noise != NULL;
}

/* The augmented state [z, l](t_end), (B, d + 1), from [x, 0] for the rows x
   (B, d), solved by kind: the Runge-Kutta solve with the options so
   (FF_DOPRI5, FF_RK4: so says which, differentiated by m->adj) or m->tayla
   (FF_TAYLA, FF_TAYLOR). rem (optional): the Taylor-Lagrange remainder
   penalty (tayla). */
static nde_tensor *ff_solve_by(ff_model *m, int kind, nde_tensor *x, double t_end, const nde_solve_options *so,
                               nde_tensor **rem) {
    nde_ctx *ctx = m->ctx;
    int64_t b = x->shape[0], d = m->dim, sh[2], two = 2;
    nde_real tv[2];
    nde_tensor *parts[2], *s0, *s1;
    if (rem) *rem = NULL;
    sh[0] = b; sh[1] = 1;
    parts[0] = x;
    parts[1] = nde_tensor_zeros(ctx, 2, sh);
    s0 = nde_concat(ctx, 2, parts, 1);
    if (kind == FF_TAYLA || kind == FF_TAYLOR) {
        nde_tayla_options o = m->tayla;
        if (kind == FF_TAYLOR) o.midpoint = NULL;   /* the truncated expansion alone */
        s1 = nde_tayla_solve(ctx, ff_aug_field, m, &o, NDE_R(0.0), (nde_real)t_end, s0, kind == FF_TAYLA ? rem : NULL);
    } else {
        nde_tensor *out;
        tv[0] = NDE_R(0.0); tv[1] = (nde_real)t_end;
        out = nde_odeint_adjoint(ctx, ff_field, m, s0, nde_tensor_from(ctx, 1, &two, tv), so, &m->adj, NULL);
        sh[0] = b; sh[1] = d + 1;
        s1 = out ? nde_reshape(ctx, nde_slice(ctx, out, 0, 1, 2), 2, sh) : NULL;
    }
    return s1;
}

/* log p(x) per row, (B, 1), for the rows x (B, d), solved by kind as in
   ff_solve_by. */
static nde_tensor *ff_log_prob_by(ff_model *m, int kind, nde_tensor *x, double t_end, const nde_solve_options *so,
                                  nde_tensor **rem) {
    nde_ctx *ctx = m->ctx;
    int64_t d = m->dim;
    nde_tensor *s1 = ff_solve_by(m, kind, x, t_end, so, rem), *z1, *l1;
    if (!s1) return NULL;
    z1 = nde_slice(ctx, s1, 1, 0, d);
    l1 = nde_slice(ctx, s1, 1, d, d + 1);
    /* log N(z1; 0, I) + l1 */
    return nde_add(ctx, nde_add_scalar(ctx, nde_scale(ctx, nde_sum_axis(ctx, nde_square(ctx, z1), 1, 1), NDE_R(-0.5)),
                                       (nde_real)(-0.5 * (double)d * log(2 * FF_PI))), l1);
}

/* TayLaNets' midpoint objective: the Taylor-Lagrange block's [z, l](T) fitted
   to the target (the batch mean of sum_i |s_tayla_i - target_i|, the research
   code's corrector loss), plus --pen_remainder times the remainder penalty as
   in the main loss. */
typedef struct ff_mid_fit { ff_model *m; nde_tensor *x, *target; double t_end, pen_remainder; } ff_mid_fit;
static nde_tensor *ff_midpoint_loss(nde_ctx *ctx, void *user) {
    ff_mid_fit *f = (ff_mid_fit *)user;
    nde_tensor *rem = NULL, *s1 = ff_solve_by(f->m, FF_TAYLA, f->x, f->t_end, NULL, &rem), *loss;
    loss = s1 ? nde_mean(ctx, nde_sum_axis(ctx, nde_abs(ctx, nde_sub(ctx, s1, f->target)), 1, 0)) : NULL;
    if (loss && rem && f->pen_remainder > 0) loss = nde_add(ctx, loss, nde_scale(ctx, rem, (nde_real)f->pen_remainder));
    return loss;
}

/* The separate midpoint update (--mid_freq_update > 0) on the rows x with the
   trace probes of the current iteration (m->noise): the target is dopri5's
   [z, l](T) at --rtol/--atol of the same dynamics (no gradient), then
   --mid_num_grad_iter steps of m->mid_opt on the midpoint network alone
   (ex_midpoint_update). Returns the objective before the last step. */
static double ff_midpoint_update(ff_model *m, const ff_args *a, nde_tensor *x) {
    ff_mid_fit fit;
    nde_solve_options so = m->solve;
    int prev = nde_set_grad_enabled(m->ctx, 0);
    so.method = NDE_DOPRI5; so.step_size = 0.0;
    fit.m = m; fit.x = x; fit.t_end = a->time_length; fit.pen_remainder = a->pen_remainder;
    fit.target = ff_solve_by(m, FF_DOPRI5, x, a->time_length, &so, NULL);
    nde_set_grad_enabled(m->ctx, prev);
    if (!fit.target) return NAN;
    return ex_midpoint_update(m->ctx, m->mid_first, m->mid_end, &a->mid, &m->mid_opt, ff_midpoint_loss, &fit);
}

/* Mean test NLL (nats) solved by kind with the options so, exact trace when
   d <= exact_max_dim, else the mean of 5 estimator draws; the field
   evaluations and the seconds per test batch into nfe and seconds. */
static double ff_test_nll(ff_model *m, const ff_args *a, const ff_data *d, int kind, const nde_solve_options *so,
                          int64_t *nfe, double *seconds) {
    int prev = nde_set_grad_enabled(m->ctx, 0), exact = d->dim <= a->exact_max_dim, draws = exact ? 1 : 5, k, keep = m->exact;
    int64_t start, i, batches = 0, *idx = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    double sum = 0.0, t_sum = 0.0;
    nde_rng r = nde_rng_new((uint64_t)a->seed + 99, 0);
    if (!idx) return NAN;
    m->nfe = 0;
    for (k = 0; k < draws; k++)
        for (start = 0; start < d->n_test; start += a->test_batch_size) {
            int64_t count = d->n_test - start < a->test_batch_size ? d->n_test - start : a->test_batch_size;
            nde_mark mk = nde_ctx_mark(m->ctx);
            nde_tensor *lp, *x;
            double t0;
            for (i = 0; i < count; i++) idx[i] = start + i;
            ff_set_noise(m, count, exact, a->rademacher, &r);
            x = ex_batch_rows(m->ctx, d->test, d->dim, idx, count);
            t0 = ex_now();
            lp = ff_log_prob_by(m, kind, x, a->time_length, so, NULL);
            if (lp) sum -= (double)nde_tensor_item(m->ctx, nde_sum(m->ctx, lp), 0);
            t_sum += ex_now() - t0;
            batches++;
            nde_ctx_reset(m->ctx, mk);
        }
    if (nfe) *nfe = batches ? m->nfe / batches : 0;
    if (seconds) *seconds = batches ? t_sum / (double)batches : 0.0;
    m->exact = keep;
    nde_set_grad_enabled(m->ctx, prev);
    free(idx);
    return nde_ctx_status(m->ctx) == NDE_OK ? sum / (double)(d->n_test * draws) : NAN;
}

/* Samples x = flow^{-1}(z), z ~ N(0, I), into host memory (n, d). */
static int ff_sample(ff_model *m, const ff_args *a, int64_t n, nde_real *out) {
    nde_mark mk = nde_ctx_mark(m->ctx);
    int prev = nde_set_grad_enabled(m->ctx, 0);
    int64_t sh[2];
    double ts[2];
    nde_solution sol;
    int ok = 0;
    sh[0] = n; sh[1] = m->dim;
    ts[0] = a->time_length; ts[1] = 0.0;
    if (nde_solve(m->ctx, ff_flow, m, nde_tensor_randn(m->ctx, 2, sh, (uint64_t)a->seed + 5, 0), 2, ts, &m->solve, &sol) == NDE_OK)
        ok = nde_tensor_to_host(m->ctx, sol.ys[1], out) == NDE_OK;
    nde_solution_free(m->ctx, &sol);
    nde_set_grad_enabled(m->ctx, prev);
    nde_ctx_reset(m->ctx, mk);
    return ok;
}

/* ---------------------------------------------------------------- run */
/* Training iteration it (0-based) on the rows idx[0..count) of the training
   set: one step of m->opt on the NLL (+ --pen_remainder remainder, tayla),
   then, with separate midpoint training, every --mid_freq_update iterations a
   midpoint update on the same batch and trace probes. Returns the training
   NLL; the step's forward and backward NFE into fnfe and bnfe, the midpoint
   objective (NAN when none) into mid_loss. */
static double ff_train_iteration(ff_model *m, const ff_args *a, const ff_data *d, int it, const int64_t *idx, int64_t count,
                                 double *fnfe, double *bnfe, double *mid_loss) {
    nde_mark mk = nde_ctx_mark(m->ctx), mk_step;
    nde_rng r = nde_rng_new((uint64_t)a->seed + 1, (uint64_t)it);   /* the trace noise of this iteration */
    nde_tensor *x, *lp, *loss, *rem = NULL;
    double lossv = NAN;
    *mid_loss = NAN;
    ff_set_noise(m, count, m->exact, a->rademacher, &r);
    x = ex_batch_rows(m->ctx, d->train, d->dim, idx, count);
    mk_step = nde_ctx_mark(m->ctx);
    m->nfe = 0;
    lp = ff_log_prob_by(m, m->kind, x, a->time_length, &m->solve, &rem);
    *fnfe = (double)m->nfe;
    loss = nde_neg(m->ctx, nde_mean(m->ctx, lp));
    if (loss) lossv = nde_tensor_item(m->ctx, loss, 0);
    if (loss && rem && a->pen_remainder > 0) loss = nde_add(m->ctx, loss, nde_scale(m->ctx, rem, (nde_real)a->pen_remainder));
    m->nfe = 0;
    if (loss) {
        nde_zero_grad(m->ctx);
        nde_backward(m->ctx, loss);
        nde_optimizer_step(m->ctx, &m->opt);
    }
    *bnfe = (double)m->nfe;
    nde_ctx_reset(m->ctx, mk_step);
    if (x && m->kind == FF_TAYLA && ex_midpoint_separate(&a->mid) && (it + 1) % a->mid.freq_update == 0)
        *mid_loss = ff_midpoint_update(m, a, x);
    nde_ctx_reset(m->ctx, mk);
    return lossv;
}

typedef struct ff_result {
    char name[48];
    int iterations, mid_updates;
    double mid_loss;                                       /* the last midpoint objective (separate updates) */
    double first_loss, last_loss, fnfe, bnfe, seconds_per_iter;
    double test_nll, test_seconds, ref_nll, ref_seconds;   /* by the model's method; by dopri5 at the test tolerances */
    int64_t test_nfe, ref_nfe;                             /* per test batch */
} ff_result;

static void ff_plot_samples(const ff_args *a, const ff_data *d, ff_model *models, const ff_result *res, int count) {
    char path[512], title[96];
    int k;
    int64_t n = 1000, i;
    ex_svg *s;
    nde_real *smp = (nde_real *)malloc((size_t)(2 * n) * sizeof(nde_real));
    ex_path(path, sizeof path, a->save, "/samples.svg", NULL);
    s = smp ? ex_svg_open(path, 320 * (count + 1), 340) : NULL;
    if (!s) { free(smp); return; }
    ex_svg_panel(s, 0, 0, 320, 340, -4.5, 4.5, -4.5, 4.5, "data", "x1", "x2");
    for (i = 0; i < n && i < d->n_test; i++)
        fprintf(s->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\" fill=\"#1f77b4\"/>\n", ex__svg_x(s, d->test[2 * i]),
                ex__svg_y(s, d->test[2 * i + 1]));
    for (k = 0; k < count; k++) {
        ex_path(title, sizeof title, "samples, ", res[k].name, NULL);
        ex_svg_panel(s, 320 * (k + 1), 0, 320, 340, -4.5, 4.5, -4.5, 4.5, title, "x1", "x2");
        if (!ff_sample(&models[k], a, n, smp)) continue;
        for (i = 0; i < n; i++)
            if (fabs(smp[2 * i]) < 4.5 && fabs(smp[2 * i + 1]) < 4.5)
                fprintf(s->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.2\" fill=\"#d62728\"/>\n", ex__svg_x(s, smp[2 * i]),
                        ex__svg_y(s, smp[2 * i + 1]));
    }
    ex_svg_close(s);
    free(smp);
}

static int ff_run(const ff_args *a, ff_result *res, int *num_models) {
    ff_data d;
    ff_model models[FF_MAX_MODELS];
    const char *divs[FF_MAX_MODELS], *meths[FF_MAX_MODELS];
    char buf[128], mbuf[128], path[512];
    int count, num_divs, num_meths, k, rc = 1;
    int64_t *perm = NULL, *idx = NULL;
    FILE *log = NULL;
    nde_ctx *dctx;
    memset(models, 0, sizeof models);
    memset(&d, 0, sizeof d);
    *num_models = 0;
    num_divs = ex_split_words(a->divergence_fn, buf, sizeof buf, divs, FF_MAX_MODELS);
    num_meths = ex_split_words(a->method, mbuf, sizeof mbuf, meths, FF_MAX_MODELS);
    count = num_divs * num_meths;
    if (num_divs < 1 || num_meths < 1 || count > FF_MAX_MODELS || a->niters < 0 || a->batch_size < 1 ||
        a->test_batch_size < 1 || a->val_freq < 1 || !(a->time_length > 0) || !(a->rtol > 0) || !(a->atol > 0) ||
        !(a->lr > 0) || a->order < 1 || a->order > 8 || a->n_steps < 1) {
        fprintf(stderr, "ffjord: bad arguments (--method x --divergence_fn: 1..%d models; niters >= 0; batch sizes, "
                        "val_freq, n_steps >= 1; order 1..8; time_length, tolerances, lr > 0)\n", FF_MAX_MODELS);
        return 2;
    }
    if (!ex_midpoint_args_check("ffjord", &a->mid)) return 2;
    for (k = 0; k < num_divs; k++)
        if (strcmp(divs[k], "brute_force") && strcmp(divs[k], "approximate")) {
            fprintf(stderr, "ffjord: --divergence_fn entries are brute_force or approximate, not '%s'\n", divs[k]);
            return 2;
        }
    for (k = 0; k < num_meths; k++)
        if (ff_method_kind(meths[k]) < 0) {
            fprintf(stderr, "ffjord: --method entries are dopri5, rk4, tayla or taylor, not '%s'\n", meths[k]);
            return 2;
        }
    dctx = nde_ctx_new(nde_ctx_desc_default());
    if (!dctx || !ff_data_load(dctx, a, &d)) { nde_ctx_free(dctx); ff_data_free(&d); return 1; }
    nde_ctx_free(dctx);
    if (ex_mkdir(a->save) != 0) goto done;
    for (k = 0; k < count; k++) {
        const char *meth = meths[k / num_divs], *div = divs[k % num_divs];
        int exact = !strcmp(div, "brute_force");
        if (exact && d.dim > 64) { fprintf(stderr, "ffjord: brute_force needs d <= 64 (d = %lld)\n", (long long)d.dim); goto done; }
        if (!ff_model_init(&models[k], a, d.dim, exact, ff_method_kind(meth))) goto done;
        memset(&res[k], 0, sizeof res[k]);
        snprintf(res[k].name, sizeof res[k].name, "%s_%s", meth, div);
        res[k].first_loss = NAN; res[k].test_nll = NAN; res[k].ref_nll = NAN; res[k].mid_loss = NAN;
    }
    perm = (int64_t *)malloc((size_t)d.n_train * sizeof(int64_t));
    idx = (int64_t *)malloc((size_t)a->batch_size * sizeof(int64_t));
    ex_path(path, sizeof path, a->save, "/log.csv", NULL);
    log = ex_csv_open(path, "method,divergence_fn,order,n_steps,iteration,train_nll,fnfe,bnfe,seconds_per_iter,mid_loss,test_nll,"
                            "test_nfe,predict_seconds,dopri5_test_nll,dopri5_test_nfe,dopri5_predict_seconds", a->resume);
    if (!perm || !idx || !log) goto done;
    if (!a->quiet)
        printf("ffjord: %s (d = %lld), %lld train / %lld test, dims %s, %s, methods %s (rk4/tayla/taylor: %d step(s), "
               "Taylor order %d; dopri5 rtol %g atol %g, %s gradients)\n", d.name, (long long)d.dim, (long long)d.n_train,
               (long long)d.n_test, a->dims, a->nonlinearity, a->method, a->n_steps, a->order, a->rtol, a->atol,
               nde_grad_mode_name(models[0].adj.mode));
    for (k = 0; k < count; k++) {
        ff_model *m = &models[k];
        const char *meth = meths[k / num_divs], *div = divs[k % num_divs];
        int it = 0;
        char ckpt[512];
        double t_train = 0.0;
        int64_t bs = a->batch_size < d.n_train ? a->batch_size : d.n_train, nb = (d.n_train + bs - 1) / bs, epoch_cached = -1;
        ex_progress bar;
        ex_path(ckpt, sizeof ckpt, a->save, "/ckpt_", res[k].name);
        if (a->resume) {
            double counters[2] = {0, 0};   /* iterations done, midpoint optimizer steps */
            if (ex_checkpoint_load(m->ctx, ckpt, &m->opt, counters, 2) != NDE_OK) {
                fprintf(stderr, "ffjord: --resume: %s\n", nde_ctx_message(m->ctx));
                goto done;
            }
            it = (int)counters[0];
            m->mid_opt.step = (int64_t)counters[1];
        }
        bar = ex_progress_start(a->niters - it > 0 ? a->niters - it : 1);
        for (; it < a->niters && (a->stop_after <= 0 || it < a->stop_after); it++) {
            int64_t epoch = it / nb, start = (it % nb) * bs, count_b = d.n_train - start < bs ? d.n_train - start : bs, i;
            double t0 = ex_now(), fnfe, bnfe, lossv, mid_loss;
            if (epoch != epoch_cached) { ex_permutation((uint64_t)a->seed, (uint64_t)epoch, d.n_train, perm); epoch_cached = epoch; }
            for (i = 0; i < count_b; i++) idx[i] = perm[start + i];
            lossv = ff_train_iteration(m, a, &d, it, idx, count_b, &fnfe, &bnfe, &mid_loss);
            if (nde_ctx_status(m->ctx) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "ffjord: %s, iteration %d: %s\n", res[k].name, it + 1, nde_ctx_message(m->ctx));
                goto done;
            }
            t_train += ex_now() - t0;
            if (res[k].first_loss != res[k].first_loss) res[k].first_loss = lossv;
            res[k].last_loss = lossv;
            res[k].fnfe += fnfe; res[k].bnfe += bnfe;
            res[k].iterations++;
            if (mid_loss == mid_loss) { res[k].mid_loss = mid_loss; res[k].mid_updates++; }
            fprintf(log, "%s,%s,%d,%d,%d,%.6f,%.0f,%.0f,%.5f,", meth, div, a->order, a->n_steps, it + 1, lossv, fnfe, bnfe,
                    t_train / res[k].iterations);
            if (mid_loss == mid_loss) fprintf(log, "%.6f,", mid_loss);
            else fprintf(log, ",");
            if ((it + 1) % a->val_freq == 0 || it + 1 == a->niters || it + 1 == a->stop_after) {
                nde_solve_options ref = m->solve;
                double counters[2];
                ref.method = NDE_DOPRI5; ref.step_size = 0.0; ref.rtol = a->test_rtol; ref.atol = a->test_atol;
                res[k].test_nll = ff_test_nll(m, a, &d, m->kind, &m->solve, &res[k].test_nfe, &res[k].test_seconds);
                res[k].ref_nll = ff_test_nll(m, a, &d, FF_DOPRI5, &ref, &res[k].ref_nfe, &res[k].ref_seconds);
                fprintf(log, "%.6f,%lld,%.5f,%.6f,%lld,%.5f\n", res[k].test_nll, (long long)res[k].test_nfe, res[k].test_seconds,
                        res[k].ref_nll, (long long)res[k].ref_nfe, res[k].ref_seconds);
                counters[0] = it + 1;
                counters[1] = (double)m->mid_opt.step;
                if (ex_checkpoint_save(m->ctx, ckpt, &m->opt, counters, 2) != NDE_OK) {
                    fprintf(stderr, "ffjord: %s\n", nde_ctx_message(m->ctx));
                    goto done;
                }
            } else {
                fprintf(log, ",,,,,\n");
            }
            if (!a->quiet)
                ex_progress_update(&bar, it + 1, "%s  nll %.4f  NFE %.0f/%.0f  test nll %.4f", res[k].name, lossv, fnfe, bnfe,
                                   res[k].test_nll);
        }
        if (!a->quiet) ex_progress_finish(&bar);
        if (res[k].iterations) {
            res[k].fnfe /= res[k].iterations; res[k].bnfe /= res[k].iterations;
            res[k].seconds_per_iter = t_train / res[k].iterations;
        }
        *num_models = k + 1;
    }
    if (d.dim == 2) ff_plot_samples(a, &d, models, res, count);
    if (!a->quiet) {
        printf("  %-22s %9s %8s %8s %9s | test: %8s %6s %10s | dopri5 %g: %8s %6s %10s\n", "model", "train NLL", "NFE-F",
               "NFE-B", "s/iter", "NLL", "NFE", "s/predict", a->test_rtol, "NLL", "NFE", "s/predict");
        for (k = 0; k < count; k++)
            printf("  %-22s %9.4f %8.1f %8.1f %9.4f | %14.4f %6lld %10.4f | %17.4f %6lld %10.4f\n", res[k].name,
                   res[k].last_loss, res[k].fnfe, res[k].bnfe, res[k].seconds_per_iter, res[k].test_nll,
                   (long long)res[k].test_nfe, res[k].test_seconds, res[k].ref_nll, (long long)res[k].ref_nfe,
                   res[k].ref_seconds);
        printf("  (NLL in nats, %s trace; NFE per test batch of %d; log %s/log.csv)\n",
               d.dim <= a->exact_max_dim ? "exact" : "estimated", a->test_batch_size, a->save);
        for (k = 0; k < count; k++)
            if (res[k].mid_updates)
                printf("  (%s: midpoint trained separately, %d updates of %d steps, last objective %.4g; s/iter includes them)\n",
                       res[k].name, res[k].mid_updates, a->mid.num_grad_iter, res[k].mid_loss);
    }
    rc = 0;
done:
    if (log) fclose(log);
    free(perm); free(idx);
    for (k = 0; k < FF_MAX_MODELS; k++) ff_model_free(&models[k]);
    ff_data_free(&d);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    ff_args a;
    static ff_result res[FF_MAX_MODELS];
    int n, prc;
    ff_args_default(&a);
    {
        ex_flag own[] = {
            {"data", EX_STRING, &a.data, "8gaussians, checkerboard, 2spirals, circles, iris, wine"},
            {"data_file", EX_STRING, &a.data_file, "prefix of <prefix>-train.npy / <prefix>-test.npy"},
            {"dims", EX_STRING, &a.dims, "hidden sizes, e.g. 64-64-64"},
            {"nonlinearity", EX_STRING, &a.nonlinearity, "tanh or softplus"},
            {"divergence_fn", EX_STRING, &a.divergence_fn, "brute_force, approximate, or both (comma)"},
            {"method", EX_STRING, &a.method, "comma list of dopri5, rk4, tayla, taylor (one model per method and divergence_fn)"},
            {"order", EX_INT, &a.order, "Taylor order K (tayla, taylor)"},
            {"n_steps", EX_INT, &a.n_steps, "steps over [0, T] (rk4, tayla, taylor)"},
            {"pen_remainder", EX_DOUBLE, &a.pen_remainder, "weight of the mean |remainder| in the loss (tayla)"},
            {"midpoint_unbounded", EX_BOOL, &a.midpoint_unbounded, "the research code's unbounded Lagrange point (default: between z and T)"},
            {"rademacher", EX_BOOL, &a.rademacher, "Rademacher instead of Gaussian probes"},
            {"time_length", EX_DOUBLE, &a.time_length, "integration time T"},
            {"rtol", EX_DOUBLE, &a.rtol, "training rtol"},
            {"atol", EX_DOUBLE, &a.atol, "training atol"},
            {"test_rtol", EX_DOUBLE, &a.test_rtol, "test rtol"},
            {"test_atol", EX_DOUBLE, &a.test_atol, "test atol"},
            {"adjoint_option", EX_STRING, &a.adjoint_option, "gradient mode: direct, adjoint, gq, interp, ..."},
            {"adjoint", EX_BOOL, &a.adjoint, "FFJORD's switch: --adjoint_option adjoint"},
            {"niters", EX_INT, &a.niters, "training iterations"},
            {"batch_size", EX_INT, &a.batch_size, "training batch size"},
            {"test_batch_size", EX_INT, &a.test_batch_size, "test batch size"},
            {"lr", EX_DOUBLE, &a.lr, "Adam learning rate"},
            {"lr_init", EX_DOUBLE, &a.lr, "the same as --lr (TayLaNets' name)"},
            {"lr_end", EX_DOUBLE, &a.lr_end, "final learning rate of an exponential decay over niters (0: constant)"},
            {"weight_decay", EX_DOUBLE, &a.weight_decay, "L2 weight decay"},
            {"val_freq", EX_INT, &a.val_freq, "iterations between test evaluations and checkpoints"},
            {"exact_max_dim", EX_INT, &a.exact_max_dim, "largest d for the exact test likelihood"},
            {"seed", EX_INT, &a.seed, "seed"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"stop_after", EX_INT, &a.stop_after, "stop after this iteration, with a checkpoint (continue with --resume; 0: never)"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        ex_flag flags[sizeof own / sizeof own[0] + EX_MIDPOINT_NUM_FLAGS];
        memcpy(flags, own, sizeof own);
        ex_midpoint_flags(flags + sizeof own / sizeof own[0], &a.mid);
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "FFJORD continuous normalising flow (Grathwohl et al., ICLR 2019)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return ff_run(&a, res, &n);
}
#endif
