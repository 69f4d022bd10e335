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
   Both JVPs are Taylor-mode jets (nde.h JETS) whose result stays on the tape,
   so reverse mode differentiates through them. The solve is dopri5 at
   --rtol/--atol, differentiated by --adjoint_option (direct by default;
   --adjoint is FFJORD's odeint_adjoint). --divergence_fn may list both
   ("brute_force,approximate"): one model each, from the same initialisation
   and batches.

   Reported: test NLL in nats (always with the exact trace at --test_rtol /
   --test_atol when d <= --exact_max_dim, else with the estimator averaged
   over 5 draws), forward and backward NFE per training iteration, seconds
   per iteration, in <save>/log.csv; for 2-D data <save>/samples.svg shows
   data and samples of the flow (z ~ N(0, I) integrated from T back to 0).
   Checkpoints every --val_freq iterations; --resume continues.

   Data (--data): 2-D toy sets 8gaussians, checkerboard, 2spirals, circles
   (FFJORD's toy_data recipes, Philox-seeded; 20 000 training and 5 000 test
   points drawn once); the bundled tabular sets iris (4-D) and wine (13-D)
   (examples/data, .npy, standardised, from scikit-learn); or any
   <name>-train.npy / <name>-test.npy pair with --data_file <name> (e.g.
   FFJORD's preprocessed MINIBOONE, 43-D: not available offline).

   Default (a few CPU minutes): iris, dims 32-32, 300 iterations of the full
   training set, exact trace and Hutchinson:
       ./ffjord
   FFJORD-like runs:
       ./ffjord --data 8gaussians --dims 64-64-64 --niters 10000 --batch_size 100 --divergence_fn approximate
       ./ffjord --data_file /path/to/miniboone --dims 860-860 --niters 20000 --batch_size 1000 \
           --divergence_fn approximate --adjoint
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_adjoint.h"

#define FF_MAX_LAYERS 8
#define FF_MAX_MODELS 2
#define FF_PI 3.14159265358979323846

typedef struct ff_args {
    const char *data, *data_file, *dims, *nonlinearity, *divergence_fn, *adjoint_option, *save;
    double time_length, rtol, atol, test_rtol, test_atol, lr, weight_decay;
    int niters, batch_size, test_batch_size, val_freq, rademacher, adjoint, exact_max_dim, seed;
    int resume, quiet, n_toy;
} ff_args;

static void ff_args_default(ff_args *a) {
    memset(a, 0, sizeof *a);
    a->data = "iris"; a->data_file = ""; a->dims = "32-32"; a->nonlinearity = "tanh";
    a->divergence_fn = "brute_force,approximate"; a->adjoint_option = "direct"; a->save = "ffjord_out";
    a->time_length = 1.0; a->rtol = 1e-5; a->atol = 1e-5; a->test_rtol = 1e-6; a->test_atol = 1e-6;
    a->lr = 1e-3; a->weight_decay = 0.0;
    a->niters = 300; a->batch_size = 1000; a->test_batch_size = 1000; a->val_freq = 100; a->exact_max_dim = 16;
    a->n_toy = 20000;
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

typedef struct ff_model {
    nde_ctx *ctx;
    int dim, num_layers, exact;
    nde_activation act;
    ff_layer layer[FF_MAX_LAYERS];
    /* per field evaluation: gate and bias rows from t */
    nde_tensor *gate_t[FF_MAX_LAYERS], *bias_t[FF_MAX_LAYERS];
    /* per solve: Hutchinson's noise (B, d) or the exact trace's unit rows (d B, d) */
    nde_tensor *noise;
    nde_optimizer opt;
    nde_solve_options solve;
    nde_adjoint_options adj;
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

static int ff_model_init(ff_model *m, const ff_args *a, int64_t dim, int exact) {
    int64_t hidden[FF_MAX_LAYERS], widths[FF_MAX_LAYERS + 2];
    int nh = ff_parse_dims(a->dims, hidden, FF_MAX_LAYERS - 1), l;
    char nm[32];
    nde_grad_mode mode;
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return 0;
    if (nh < 1) { fprintf(stderr, "ffjord: --dims must look like 64-64-64\n"); return 0; }
    m->dim = (int)dim; m->exact = exact; m->num_layers = nh + 1;
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
    m->opt = nde_adam(a->lr);
    m->opt.weight_decay = a->weight_decay;
    m->solve = nde_solve_options_default();
    m->solve.method = NDE_DOPRI5;
    m->solve.rtol = a->rtol; m->solve.atol = a->atol;
    if (nde_grad_mode_from_name(m->ctx, a->adjoint ? "adjoint" : a->adjoint_option, &mode) != NDE_OK) {
        fprintf(stderr, "ffjord: --adjoint_option: %s\n", nde_ctx_message(m->ctx));
        return 0;
    }
    m->adj = nde_adjoint_options_default(mode);
    if (nde_ctx_status(m->ctx) != NDE_OK) { fprintf(stderr, "ffjord: %s\n", nde_ctx_message(m->ctx)); return 0; }
    return 1;
}
static void ff_model_free(ff_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

/* The concatsquash MLP on a jet (order 0: the plain value; order 1: a JVP). */
static nde_jet *ff_net_jet(nde_ctx *ctx, nde_jet *x, void *user) {
    ff_model *m = (ff_model *)user;
    int l;
    for (l = 0; l < m->num_layers && x; l++) {
        nde_jet *h = nde_jet_linear_forward(ctx, &m->layer[l].lin, x);
        h = nde_jet_add(ctx, nde_jet_mul(ctx, h, nde_jet_const(ctx, m->gate_t[l], x->order)),
                        nde_jet_const(ctx, m->bias_t[l], x->order));
        x = l + 1 < m->num_layers ? nde_jet_activate(ctx, h, m->act) : h;
    }
    return x;
}
/* sigmoid(G t + g) and B t of every layer, rows of shape (1, out). */
static void ff_time_rows(nde_ctx *ctx, ff_model *m, nde_tensor *t) {
    int64_t one[2] = {1, 1};
    nde_tensor *t11 = nde_reshape(ctx, t, 2, one);
    int l;
    for (l = 0; l < m->num_layers; l++) {
        m->gate_t[l] = nde_sigmoid(ctx, nde_linear_forward(ctx, &m->layer[l].gate, t11));
        m->bias_t[l] = nde_linear_forward(ctx, &m->layer[l].hbias, t11);
    }
}

/* d[z, l]/dt = [f(t, z), tr(df/dz)] on the state (B, d + 1). */
static nde_tensor *ff_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *user) {
    ff_model *m = (ff_model *)user;
    int64_t b = s->shape[0], d = m->dim, sh[2];
    nde_tensor *z = nde_slice(ctx, s, 1, 0, d), *y = NULL, *jv = NULL, *tr, *parts[2];
    m->nfe++;
    ff_time_rows(ctx, m, t);
    if (m->exact) {
        /* one JVP of the batch repeated d times against the unit vectors */
        nde_tensor *reps[64], *rep;
        int64_t i;
        for (i = 0; i < d; i++) reps[i] = z;
        rep = d == 1 ? z : nde_concat(ctx, (int)d, reps, 0);
        if (nde_jvp(ctx, ff_net_jet, m, rep, m->noise, &y, &jv) != NDE_OK) return NULL;
        sh[0] = d; sh[1] = b;
        tr = nde_sum_axis(ctx, nde_reshape(ctx, nde_sum_axis(ctx, nde_mul(ctx, jv, m->noise), 1, 0), 2, sh), 0, 0);
        y = nde_slice(ctx, y, 0, 0, b);
    } else {
        if (nde_jvp(ctx, ff_net_jet, m, z, m->noise, &y, &jv) != NDE_OK) return NULL;
        tr = nde_sum_axis(ctx, nde_mul(ctx, jv, m->noise), 1, 0);
    }
    sh[0] = b; sh[1] = 1;
    parts[0] = y;
    parts[1] = nde_reshape(ctx, tr, 2, sh);
    return nde_concat(ctx, 2, parts, 1);
}
/* f alone (sampling): dz/dt on (B, d). */
static nde_tensor *ff_flow(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    ff_model *m = (ff_model *)user;
    nde_jet *y;
    m->nfe++;
    ff_time_rows(ctx, m, t);
    y = ff_net_jet(ctx, nde_jet_const(ctx, z, 0), m);
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

/* log p(x) per row, (B, 1), for the rows x (B, d). */
static nde_tensor *ff_log_prob(ff_model *m, nde_tensor *x, double t_end, const nde_solve_options *so) {
    nde_ctx *ctx = m->ctx;
    int64_t b = x->shape[0], d = m->dim, sh[2], two = 2;
    nde_real tv[2];
    nde_tensor *parts[2], *s1, *z1, *l1, *out;
    sh[0] = b; sh[1] = 1;
    parts[0] = x;
    parts[1] = nde_tensor_zeros(ctx, 2, sh);
    tv[0] = NDE_R(0.0); tv[1] = (nde_real)t_end;
    out = nde_odeint_adjoint(ctx, ff_field, m, nde_concat(ctx, 2, parts, 1), nde_tensor_from(ctx, 1, &two, tv), so,
                             &m->adj, NULL);
    if (!out) return NULL;
    sh[0] = b; sh[1] = d + 1;
    s1 = nde_reshape(ctx, nde_slice(ctx, out, 0, 1, 2), 2, sh);
    z1 = nde_slice(ctx, s1, 1, 0, d);
    l1 = nde_slice(ctx, s1, 1, d, d + 1);
    /* log N(z1; 0, I) + l1 */
    return nde_add(ctx, nde_add_scalar(ctx, nde_scale(ctx, nde_sum_axis(ctx, nde_square(ctx, z1), 1, 1), NDE_R(-0.5)),
                                       (nde_real)(-0.5 * (double)d * log(2 * FF_PI))), l1);
}

/* Mean test NLL (nats): exact trace when d <= exact_max_dim, else the mean of 5 estimator draws. */
static double ff_test_nll(ff_model *m, const ff_args *a, const ff_data *d, int64_t *nfe) {
    int prev = nde_set_grad_enabled(m->ctx, 0), exact = d->dim <= a->exact_max_dim, draws = exact ? 1 : 5, k, keep = m->exact;
    int64_t start, i, *idx = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    double sum = 0.0;
    nde_solve_options so = m->solve;
    nde_rng r = nde_rng_new((uint64_t)a->seed + 99, 0);
    so.rtol = a->test_rtol; so.atol = a->test_atol;
    if (!idx) return NAN;
    m->nfe = 0;
    for (k = 0; k < draws; k++)
        for (start = 0; start < d->n_test; start += a->test_batch_size) {
            int64_t count = d->n_test - start < a->test_batch_size ? d->n_test - start : a->test_batch_size;
            nde_mark mk = nde_ctx_mark(m->ctx);
            nde_tensor *lp;
            for (i = 0; i < count; i++) idx[i] = start + i;
            ff_set_noise(m, count, exact, a->rademacher, &r);
            lp = ff_log_prob(m, ex_batch_rows(m->ctx, d->test, d->dim, idx, count), a->time_length, &so);
            if (lp) sum -= (double)nde_tensor_item(m->ctx, nde_sum(m->ctx, lp), 0);
            nde_ctx_reset(m->ctx, mk);
        }
    if (nfe) *nfe = m->nfe;
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
typedef struct ff_result {
    char name[32];
    int iterations;
    double first_loss, last_loss, test_nll, fnfe, bnfe, seconds_per_iter;
    int64_t test_nfe;
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
    const char *divs[FF_MAX_MODELS];
    char buf[128], path[512];
    int count, k, rc = 1;
    int64_t *perm = NULL, *idx = NULL;
    FILE *log = NULL;
    nde_ctx *dctx;
    memset(models, 0, sizeof models);
    *num_models = 0;
    count = ex_split_words(a->divergence_fn, buf, sizeof buf, divs, FF_MAX_MODELS);
    if (count < 1 || a->niters < 0 || a->batch_size < 1 || a->test_batch_size < 1 || a->val_freq < 1 ||
        !(a->time_length > 0) || !(a->rtol > 0) || !(a->atol > 0) || !(a->lr > 0)) {
        fprintf(stderr, "ffjord: bad arguments (--divergence_fn: 1..%d of brute_force, approximate; niters >= 0; "
                        "batch sizes, val_freq >= 1; time_length, tolerances, lr > 0)\n", FF_MAX_MODELS);
        return 2;
    }
    for (k = 0; k < count; k++)
        if (strcmp(divs[k], "brute_force") && strcmp(divs[k], "approximate")) {
            fprintf(stderr, "ffjord: --divergence_fn entries are brute_force or approximate, not '%s'\n", divs[k]);
            return 2;
        }
    dctx = nde_ctx_new(nde_ctx_desc_default());
    if (!dctx || !ff_data_load(dctx, a, &d)) { nde_ctx_free(dctx); ff_data_free(&d); return 1; }
    nde_ctx_free(dctx);
    if (ex_mkdir(a->save) != 0) goto done;
    for (k = 0; k < count; k++) {
        int exact = !strcmp(divs[k], "brute_force");
        if (exact && d.dim > 64) { fprintf(stderr, "ffjord: brute_force needs d <= 64 (d = %lld)\n", (long long)d.dim); goto done; }
        if (!ff_model_init(&models[k], a, d.dim, exact)) goto done;
        memset(&res[k], 0, sizeof res[k]);
        snprintf(res[k].name, sizeof res[k].name, "%s", divs[k]);
        res[k].first_loss = NAN;
    }
    perm = (int64_t *)malloc((size_t)d.n_train * sizeof(int64_t));
    idx = (int64_t *)malloc((size_t)a->batch_size * sizeof(int64_t));
    ex_path(path, sizeof path, a->save, "/log.csv", NULL);
    log = ex_csv_open(path, "divergence_fn,iteration,train_nll,fnfe,bnfe,seconds,test_nll,test_nfe", a->resume);
    if (!perm || !idx || !log) goto done;
    if (!a->quiet)
        printf("ffjord: %s (d = %lld), %lld train / %lld test, dims %s, %s, dopri5 rtol %g atol %g, %s gradients\n", d.name,
               (long long)d.dim, (long long)d.n_train, (long long)d.n_test, a->dims, a->nonlinearity, a->rtol, a->atol,
               nde_grad_mode_name(models[0].adj.mode));
    for (k = 0; k < count; k++) {
        ff_model *m = &models[k];
        int it = 0;
        char ckpt[512], nm[64];
        double t_train = 0.0;
        int64_t bs = a->batch_size < d.n_train ? a->batch_size : d.n_train, nb = (d.n_train + bs - 1) / bs, epoch_cached = -1;
        ex_progress bar;
        snprintf(nm, sizeof nm, "/ckpt_%s", divs[k]);
        ex_path(ckpt, sizeof ckpt, a->save, nm, NULL);
        if (a->resume) {
            double counters[1] = {0};
            if (ex_checkpoint_load(m->ctx, ckpt, &m->opt, counters, 1) != NDE_OK) {
                fprintf(stderr, "ffjord: --resume: %s\n", nde_ctx_message(m->ctx));
                goto done;
            }
            it = (int)counters[0];
        }
        bar = ex_progress_start(a->niters - it > 0 ? a->niters - it : 1);
        for (; it < a->niters; it++) {
            int64_t epoch = it / nb, start = (it % nb) * bs, count_b = d.n_train - start < bs ? d.n_train - start : bs, i;
            nde_mark mk = nde_ctx_mark(m->ctx);
            nde_rng r = nde_rng_new((uint64_t)a->seed + 1, (uint64_t)it);   /* the trace noise of this solve */
            nde_tensor *lp, *loss;
            double t0 = ex_now(), fnfe, bnfe, lossv = NAN;
            if (epoch != epoch_cached) { ex_permutation((uint64_t)a->seed, (uint64_t)epoch, d.n_train, perm); epoch_cached = epoch; }
            for (i = 0; i < count_b; i++) idx[i] = perm[start + i];
            ff_set_noise(m, count_b, m->exact, a->rademacher, &r);
            m->nfe = 0;
            lp = ff_log_prob(m, ex_batch_rows(m->ctx, d.train, d.dim, idx, count_b), a->time_length, &m->solve);
            fnfe = (double)m->nfe;
            loss = nde_neg(m->ctx, nde_mean(m->ctx, lp));
            if (loss) {
                lossv = nde_tensor_item(m->ctx, loss, 0);
                nde_zero_grad(m->ctx);
                m->nfe = 0;
                nde_backward(m->ctx, loss);
                nde_optimizer_step(m->ctx, &m->opt);
            }
            bnfe = (double)m->nfe;
            nde_ctx_reset(m->ctx, mk);
            if (nde_ctx_status(m->ctx) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "ffjord: %s, iteration %d: %s\n", divs[k], it + 1, nde_ctx_message(m->ctx));
                goto done;
            }
            t_train += ex_now() - t0;
            if (res[k].first_loss != res[k].first_loss) res[k].first_loss = lossv;
            res[k].last_loss = lossv;
            res[k].fnfe += fnfe; res[k].bnfe += bnfe;
            res[k].iterations++;
            if ((it + 1) % a->val_freq == 0 || it + 1 == a->niters) {
                int64_t tnfe = 0;
                double nll = ff_test_nll(m, a, &d, &tnfe), counters[1];
                res[k].test_nll = nll; res[k].test_nfe = tnfe;
                fprintf(log, "%s,%d,%.6f,%.0f,%.0f,%.4f,%.6f,%lld\n", divs[k], it + 1, lossv, fnfe, bnfe, t_train / res[k].iterations,
                        nll, (long long)tnfe);
                counters[0] = it + 1;
                if (ex_checkpoint_save(m->ctx, ckpt, &m->opt, counters, 1) != NDE_OK) {
                    fprintf(stderr, "ffjord: %s\n", nde_ctx_message(m->ctx));
                    goto done;
                }
            } else {
                fprintf(log, "%s,%d,%.6f,%.0f,%.0f,%.4f,,\n", divs[k], it + 1, lossv, fnfe, bnfe, t_train / res[k].iterations);
            }
            if (!a->quiet)
                ex_progress_update(&bar, it + 1, "%s  nll %.4f  NFE %.0f/%.0f  test nll %.4f", divs[k], lossv, fnfe, bnfe,
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
        printf("  %-12s %10s %8s %8s %10s %10s\n", "divergence", "test NLL", "NFE-F", "NFE-B", "s/iter", "test NFE");
        for (k = 0; k < count; k++)
            printf("  %-12s %10.4f %8.1f %8.1f %10.4f %10lld\n", res[k].name, res[k].test_nll, res[k].fnfe, res[k].bnfe,
                   res[k].seconds_per_iter, (long long)res[k].test_nfe);
        printf("  (test NLL in nats, exact trace%s; log %s/log.csv)\n", d.dim <= a->exact_max_dim ? "" : " estimated", a->save);
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
        ex_flag flags[] = {
            {"data", EX_STRING, &a.data, "8gaussians, checkerboard, 2spirals, circles, iris, wine"},
            {"data_file", EX_STRING, &a.data_file, "prefix of <prefix>-train.npy / <prefix>-test.npy"},
            {"dims", EX_STRING, &a.dims, "hidden sizes, e.g. 64-64-64"},
            {"nonlinearity", EX_STRING, &a.nonlinearity, "tanh or softplus"},
            {"divergence_fn", EX_STRING, &a.divergence_fn, "brute_force, approximate, or both (comma)"},
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
            {"weight_decay", EX_DOUBLE, &a.weight_decay, "L2 weight decay"},
            {"val_freq", EX_INT, &a.val_freq, "iterations between test evaluations and checkpoints"},
            {"exact_max_dim", EX_INT, &a.exact_max_dim, "largest d for the exact test likelihood"},
            {"seed", EX_INT, &a.seed, "seed"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "FFJORD continuous normalising flow (Grathwohl et al., ICLR 2019)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return ff_run(&a, res, &n);
}
#endif
