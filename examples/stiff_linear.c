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
   --test_batch_size pairs, and training processor time per iteration.
   Written to --save DIR (default stiff_linear_out):
     log.csv          one row per epoch of each training: experiment
                      (midpoint, dynamics), method, epoch, mean training loss
                      (the prediction error, without the remainder penalty),
                      test error (every --test_freq epochs and the last; empty
                      otherwise), processor ms per training iteration
     stiff_linear.svg log10 training loss and test error per epoch of each
                      training, and the final test error against processor
                      ms per prediction step of every method
     ckpt_midpoint.*, ckpt_dyn_<method>.*  parameters, both optimizers' state
                      (they share the context's Adam moments, each updating
                      its own parameters; the midpoint optimizer's step count
                      is a counter) and the per-epoch record, after every
                      epoch. --resume continues each training from its last
                      epoch (a finished one is loaded and evaluated) with the
                      same flags; the batches of epoch e are a Philox shuffle
                      of (--seed, e), so a resumed run ends with the very
                      parameters of an uninterrupted one. --stop_after N stops
                      every training after epoch N.
   Flags use the research code's names: --order --n_steps --nepochs --lr_init
   --lr_end --w_decay --grad_clip --pen_remainder --mid_freq_update
   --mid_num_grad_iter --mid_lr_init --mid_lr_end --mid_w_decay --mid_grad_clip
   --atol --rtol --train_batch_size --test_batch_size --seed; and --dt
   --num_traj --num_test --traj_duration (generate_sample.py), --mid_nepochs
   (experiment 1), --skip_midpoint, --skip_dynamics, --mid_unbounded (the
   research code's unbounded midpoint coefficient; needed at --order 2 here,
   where the Lagrange point lies outside [z, T]); --save, --resume,
   --stop_after, --test_freq, --quiet (no progress bar, no tables). --help
   lists them with their defaults.

   Default run (about 17 s of processor time, one thread; the tables it
   prints are in examples/README.md):
       ./stiff_linear
   Stopped and continued (ends with the parameters of the run above):
       ./stiff_linear --stop_after 50 && ./stiff_linear --resume
   Closer to the research code's data (100 trajectories of 20 s):
       ./stiff_linear --num_traj 100 --traj_duration 20

   Differences from the research code, chosen so that the default run takes
   well under a minute on one core: 20 training trajectories of 2 s (theirs:
   100 of 20 s), 300 epochs at lr 1e-1 -> 1e-3 for the dynamics; Adam with the
   usual b1 = 0.9, b2 = 0.999 (theirs 0.999, 0.9999: with it the midpoint
   overshoots its optimum here); the midpoint is xi = z + sigmoid(net(z)) *
   (T - z), T the truncated Taylor step (theirs: z + net(z) * f(z),
   unbounded). The learning rates decay exponentially from lr_init to lr_end,
   as theirs.
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_solvers.h"

/* ---------------------------------------------------------------- flags */
typedef struct args {
    double dt, traj_duration; int num_traj, num_test;
    int order, n_steps, nepochs, mid_nepochs, train_batch_size, test_batch_size;
    double lr_init, lr_end, w_decay, grad_clip, pen_remainder;
    int mid_freq_update, mid_num_grad_iter;
    double mid_lr_init, mid_lr_end, mid_w_decay, mid_grad_clip;
    double atol, rtol;
    int seed, skip_midpoint, skip_dynamics, mid_unbounded;
    const char *save;
    int test_freq, stop_after, resume, quiet;
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
    a->save = "stiff_linear_out"; a->test_freq = 1;
}

/* Points per trajectory. */
static int traj_len(const args *a) { return (int)(a->traj_duration / a->dt + 0.5); }

/* NULL, or what is wrong with the flags. */
static const char *args_problem(const args *a) {
    if (!(a->dt > 0)) return "--dt must be > 0";
    if (!(a->traj_duration >= a->dt)) return "--traj_duration must be >= --dt";
    if (a->num_traj < 1 || a->num_test < 1) return "--num_traj and --num_test must be >= 1";
    if (a->order < 1 || a->order > NDE_JET_MAX_ORDER - 1) return "--order must be in 1..15";
    if (a->n_steps < 1) return "--n_steps must be >= 1";
    if (a->nepochs < 0 || a->mid_nepochs < 0) return "--nepochs and --mid_nepochs must be >= 0";
    if (a->train_batch_size < 1 || a->train_batch_size > (int64_t)a->num_traj * traj_len(a))
        return "--train_batch_size must be in 1..num_traj * traj_duration / dt";
    if (a->test_batch_size < 1 || a->test_batch_size > (int64_t)a->num_test * traj_len(a))
        return "--test_batch_size must be in 1..num_test * traj_duration / dt";
    if (a->mid_freq_update < 1 || a->mid_num_grad_iter < 1) return "--mid_freq_update and --mid_num_grad_iter must be >= 1";
    if (a->test_freq < 1) return "--test_freq must be >= 1";
    if (a->stop_after < 0) return "--stop_after must be >= 0";
    if (!a->save[0]) return "--save must name a directory";
    return NULL;
}

/* 0: parsed and in range; 1: --help was printed; -1: an error was printed. */
static int args_parse(args *a, int argc, char **argv) {
    const char *problem;
    int rc;
    ex_flag flags[] = {
        {"dt", EX_DOUBLE, &a->dt, "sampling interval of the trajectories (the prediction step)"},
        {"traj_duration", EX_DOUBLE, &a->traj_duration, "length of each trajectory"},
        {"num_traj", EX_INT, &a->num_traj, "training trajectories"},
        {"num_test", EX_INT, &a->num_test, "test trajectories"},
        {"order", EX_INT, &a->order, "Taylor order K"},
        {"n_steps", EX_INT, &a->n_steps, "steps per prediction (tayla, taylor, rk4)"},
        {"nepochs", EX_INT, &a->nepochs, "epochs of experiment 2 (the dynamics)"},
        {"mid_nepochs", EX_INT, &a->mid_nepochs, "epochs of experiment 1 (the midpoint, known dynamics)"},
        {"train_batch_size", EX_INT, &a->train_batch_size, "training batch size"},
        {"test_batch_size", EX_INT, &a->test_batch_size, "test batch size (one prediction step)"},
        {"lr_init", EX_DOUBLE, &a->lr_init, "initial learning rate of the dynamics"},
        {"lr_end", EX_DOUBLE, &a->lr_end, "final learning rate of the dynamics (exponential decay)"},
        {"w_decay", EX_DOUBLE, &a->w_decay, "weight decay of the dynamics"},
        {"grad_clip", EX_DOUBLE, &a->grad_clip, "global gradient-norm clipping of the dynamics (0: off)"},
        {"pen_remainder", EX_DOUBLE, &a->pen_remainder, "weight of the mean |remainder| in the loss"},
        {"mid_freq_update", EX_INT, &a->mid_freq_update, "experiment 2: a midpoint update every N iterations"},
        {"mid_num_grad_iter", EX_INT, &a->mid_num_grad_iter, "Adam steps per midpoint update"},
        {"mid_lr_init", EX_DOUBLE, &a->mid_lr_init, "initial learning rate of the midpoint"},
        {"mid_lr_end", EX_DOUBLE, &a->mid_lr_end, "final learning rate of the midpoint"},
        {"mid_w_decay", EX_DOUBLE, &a->mid_w_decay, "weight decay of the midpoint"},
        {"mid_grad_clip", EX_DOUBLE, &a->mid_grad_clip, "gradient-norm clipping of the midpoint (0: off)"},
        {"atol", EX_DOUBLE, &a->atol, "dopri5 atol"},
        {"rtol", EX_DOUBLE, &a->rtol, "dopri5 rtol"},
        {"seed", EX_INT, &a->seed, "seed of the networks and the shuffles"},
        {"skip_midpoint", EX_BOOL, &a->skip_midpoint, "skip experiment 1"},
        {"skip_dynamics", EX_BOOL, &a->skip_dynamics, "skip experiment 2"},
        {"mid_unbounded", EX_BOOL, &a->mid_unbounded, "unbounded midpoint coefficient (the research code's)"},
        {"test_freq", EX_INT, &a->test_freq, "test error every N epochs (and at the last)"},
        {"save", EX_STRING, &a->save, "output directory: log.csv, stiff_linear.svg, checkpoints"},
        {"resume", EX_BOOL, &a->resume, "continue from the checkpoints in --save"},
        {"stop_after", EX_INT, &a->stop_after, "stop each training after this epoch (0: never)"},
        {"quiet", EX_BOOL, &a->quiet, "no progress bar, no tables"},
    };
    rc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                        "TayLaNets' stiff linear experiment (Djeumou et al. 2022)");
    if (rc) return rc;
    problem = args_problem(a);
    if (problem) { fprintf(stderr, "%s: %s\n", argv[0], problem); return -1; }
    return 0;
}

/* Processor time of this program: steadier than wall time on a shared
   machine (single-threaded with the cc line above). */
static double cpu_seconds(void) { return (double)clock() / (double)CLOCKS_PER_SEC; }

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

/* Pairs (z(t_i), z(t_i + dt)) along num trajectories of len points each
   (x and y NULL when out of memory). */
typedef struct dataset { int64_t n; nde_real *x, *y; } dataset;
static dataset make_data(int num, int len, double dt, uint64_t seed, uint64_t stream) {
    dataset d; double flow[4]; nde_rng r = nde_rng_new(seed, stream); int i, k;
    stiff_matrix(dt, 1, flow);
    d.n = (int64_t)num * len;
    d.x = (nde_real *)malloc((size_t)d.n * 2 * sizeof(nde_real));
    d.y = (nde_real *)malloc((size_t)d.n * 2 * sizeof(nde_real));
    if (!d.x || !d.y) { free(d.x); free(d.y); d.x = d.y = NULL; d.n = 0; return d; }
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
static const char *const method_names[] = {"tayla", "taylor", "rk4", "dopri5"};

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
        t0 = cpu_seconds();
        p = predict(ctx, m, method, a, x, NULL, &r.nfe);
        t_pred += cpu_seconds() - t0;
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

static int check(nde_ctx *ctx, const char *where) {
    if (nde_ctx_status(ctx) == NDE_OK) return 1;
    fprintf(stderr, "%s: %s\n", where, nde_ctx_message(ctx));
    return 0;
}

/* Field evaluations per prediction for the Taylor methods: K jet coefficients at z,
   and K + 1 at the midpoint (each is one extension of the recorded field). */
static int tayla_nfe(const args *a, int with_midpoint) { return a->n_steps * (a->order + (with_midpoint ? a->order + 1 : 0)); }

/* ---------------------------------------------------------------- trainings */
/* One training (experiment 1's midpoint, or experiment 2's dynamics by one
   method) and its record. rec holds the checkpoint's counters: the epochs
   done, the iterations, the processor seconds of training, the midpoint
   optimizer's step, then per epoch the mean training loss and the test error
   (NaN where not evaluated); loss and err point into it. */
enum { REC_EPOCH, REC_ITERS, REC_CPU, REC_MID_STEP, REC_HEAD };
typedef struct training {
    nde_ctx *ctx;
    model m;
    int method, dynamics;            /* dynamics: experiment 2 */
    nde_optimizer opt, mopt;         /* mopt: experiment 2's midpoint updates */
    const args *a;
    const dataset *tr, *te;
    const char *experiment;          /* "midpoint" or "dynamics" (the CSV's column) */
    char label[32], ckpt[512];
    int nepochs, epoch, rec_len;
    int64_t iters;
    double cpu;
    double *rec, *loss, *err;
} training;

/* 0, or 1 after printing why not. The model and optimizers are the caller's. */
static int training_open(training *t, const args *a, const dataset *tr, const dataset *te, int dynamics, int method,
                         int nepochs) {
    char name[48];
    int e;
    memset(t, 0, sizeof *t);
    t->a = a; t->tr = tr; t->te = te; t->dynamics = dynamics; t->method = method; t->nepochs = nepochs;
    t->experiment = dynamics ? "dynamics" : "midpoint";
    snprintf(t->label, sizeof t->label, dynamics ? "dynamics by %s" : "midpoint (known A)", method_names[method]);
    snprintf(name, sizeof name, dynamics ? "/ckpt_dyn_%s" : "/ckpt_midpoint", method_names[method]);
    t->rec_len = REC_HEAD + 2 * nepochs;
    t->rec = (double *)malloc((size_t)t->rec_len * sizeof(double));
    t->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!t->rec || !t->ctx || ex_path(t->ckpt, sizeof t->ckpt, a->save, name, NULL) != 0) {
        fprintf(stderr, "stiff_linear: out of memory, or --save too long\n");
        return 1;
    }
    memset(t->rec, 0, (size_t)REC_HEAD * sizeof(double));
    t->loss = t->rec + REC_HEAD;
    t->err = t->loss + nepochs;
    for (e = 0; e < 2 * nepochs; e++) t->loss[e] = NAN;
    return 0;
}
static void training_close(training *t) {
    if (t->ctx) nde_ctx_free(t->ctx);
    free(t->rec);
    memset(t, 0, sizeof *t);
}

static nde_status training_save(training *t) {
    t->rec[REC_EPOCH] = t->epoch;
    t->rec[REC_ITERS] = (double)t->iters;
    t->rec[REC_CPU] = t->cpu;
    t->rec[REC_MID_STEP] = (double)t->mopt.step;
    return ex_checkpoint_save(t->ctx, t->ckpt, &t->opt, t->rec, t->rec_len);
}
/* With --resume: the saved state, where a checkpoint exists. 0, or 1 after
   printing why not. */
static int training_resume(training *t) {
    char path[560];
    if (!t->a->resume) return 0;
    ex_path(path, sizeof path, t->ckpt, ".state.npy", NULL);
    if (!ex_file_exists(path)) {
        if (!t->a->quiet) fprintf(stderr, "stiff_linear: no %s; %s starts from scratch\n", path, t->label);
        return 0;
    }
    if (ex_checkpoint_load(t->ctx, t->ckpt, &t->opt, t->rec, t->rec_len) != NDE_OK ||
        !(t->rec[REC_EPOCH] >= 0 && t->rec[REC_EPOCH] <= t->nepochs)) {
        fprintf(stderr, "stiff_linear: --resume: %s: %s (resume with the flags of the saved run)\n", t->ckpt,
                nde_ctx_status(t->ctx) ? nde_ctx_message(t->ctx) : "bad epoch count");
        return 1;
    }
    t->epoch = (int)t->rec[REC_EPOCH];
    t->iters = (int64_t)t->rec[REC_ITERS];
    t->cpu = t->rec[REC_CPU];
    t->mopt.step = (int64_t)t->rec[REC_MID_STEP];
    return 0;
}

/* Experiment 1: one Adam step of the midpoint on the prediction error. */
static double step_midpoint(training *t, nde_tensor *x, nde_tensor *y) {
    nde_ctx *ctx = t->ctx;
    nde_tensor *loss = pred_loss(ctx, predict(ctx, &t->m, M_TAYLA, t->a, x, NULL, NULL), y);
    if (!loss) return NAN;
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    nde_optimizer_step(ctx, &t->opt);
    return nde_tensor_item(ctx, loss, 0);
}

/* Experiment 2, tayla: --mid_num_grad_iter steps of the midpoint towards the
   dopri5 solution of the current dynamics. */
static void update_midpoint(training *t, nde_tensor *x) {
    nde_ctx *ctx = t->ctx;
    const args *a = t->a;
    nde_tensor *target, *rem = NULL;
    int g;
    nde_set_grad_enabled(ctx, 0);
    target = nde_tensor_detach(ctx, predict(ctx, &t->m, M_DOPRI5, a, x, NULL, NULL));
    nde_set_grad_enabled(ctx, 1);
    train_only(ctx, "mid.");
    for (g = 0; g < a->mid_num_grad_iter && target; g++) {
        nde_mark mg = nde_ctx_mark(ctx);
        nde_tensor *ml = pred_loss(ctx, predict(ctx, &t->m, M_TAYLA, a, x, &rem, NULL), target);
        if (rem && a->pen_remainder > 0) ml = nde_add(ctx, ml, nde_scale(ctx, rem, (nde_real)a->pen_remainder));
        if (ml) {
            nde_zero_grad(ctx);
            nde_backward(ctx, ml);
            nde_optimizer_step(ctx, &t->mopt);
        }
        nde_ctx_reset(ctx, mg);
    }
}

/* Experiment 2: one Adam step of the dynamics (tayla: then, every
   --mid_freq_update iterations, a midpoint update). Returns the prediction
   error (without the remainder penalty). */
static double step_dynamics(training *t, nde_tensor *x, nde_tensor *y) {
    nde_ctx *ctx = t->ctx;
    const args *a = t->a;
    nde_tensor *rem = NULL, *err, *loss;
    double value;
    if (t->method == M_TAYLA) train_only(ctx, "dyn.");
    err = pred_loss(ctx, predict(ctx, &t->m, t->method, a, x, &rem, NULL), y);
    if (!err) return NAN;
    value = nde_tensor_item(ctx, err, 0);
    loss = rem && a->pen_remainder > 0 ? nde_add(ctx, err, nde_scale(ctx, rem, (nde_real)a->pen_remainder)) : err;
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    nde_optimizer_step(ctx, &t->opt);
    if (t->method == M_TAYLA && t->iters % a->mid_freq_update == 0) update_midpoint(t, x);
    return value;
}

/* One epoch: the batches of a Philox shuffle of (--seed, experiment, epoch),
   so a resumed run draws what an uninterrupted one would. Returns the mean
   training loss. */
static double training_epoch(training *t, int64_t *perm) {
    const args *a = t->a;
    int64_t bs = a->train_batch_size, nb = t->tr->n / bs, i;
    uint64_t stream = ((uint64_t)(t->dynamics ? 11 : 7) << 32) | (uint64_t)t->epoch;
    double sum = 0.0;
    ex_permutation((uint64_t)a->seed, stream, t->tr->n, perm);
    for (i = 0; i < nb; i++) {
        nde_mark mk = nde_ctx_mark(t->ctx);
        double t0 = cpu_seconds();
        nde_tensor *x = ex_batch_rows(t->ctx, t->tr->x, 2, perm + i * bs, bs);
        nde_tensor *y = ex_batch_rows(t->ctx, t->tr->y, 2, perm + i * bs, bs);
        t->iters++;
        if (x && y) sum += t->dynamics ? step_dynamics(t, x, y) : step_midpoint(t, x, y);
        t->cpu += cpu_seconds() - t0;
        nde_ctx_reset(t->ctx, mk);
    }
    return nb ? sum / (double)nb : NAN;
}

/* A CSV row for epoch e (0-based); cpu_ms: processor ms per iteration in it. */
static void training_log(const training *t, FILE *log, int e, double cpu_ms) {
    if (!log) return;
    fprintf(log, "%s,%s,%d,%.6e,", t->experiment, method_names[t->method], e + 1, t->loss[e]);
    if (t->err[e] == t->err[e]) fprintf(log, "%.6e", t->err[e]);
    fprintf(log, ",%.4f\n", cpu_ms);
}

/* Resumes (--resume), then trains epoch by epoch up to nepochs (or
   --stop_after) with a progress bar, a test error every --test_freq epochs,
   a CSV row and a checkpoint after each. 0, or 1 after printing an error. */
static int training_run(training *t, FILE *log) {
    const args *a = t->a;
    int64_t *perm = (int64_t *)malloc((size_t)t->tr->n * sizeof(int64_t));
    ex_progress bar;
    int start, rc = 0;
    double last_err = NAN;
    if (!perm) { fprintf(stderr, "stiff_linear: out of memory\n"); return 1; }
    if (training_resume(t)) { free(perm); return 1; }
    start = t->epoch;
    bar = ex_progress_start(t->nepochs - start);
    while (t->epoch < t->nepochs && (a->stop_after <= 0 || t->epoch < a->stop_after)) {
        int e = t->epoch;
        double cpu0 = t->cpu;
        int64_t it0 = t->iters;
        t->loss[e] = training_epoch(t, perm);
        if (!check(t->ctx, t->label)) { rc = 1; break; }
        if ((e + 1) % a->test_freq == 0 || e + 1 == t->nepochs) last_err = t->err[e] = evaluate(t->ctx, &t->m, t->method, a, t->te).loss;
        t->epoch = e + 1;
        if (training_save(t) != NDE_OK) { check(t->ctx, t->ckpt); rc = 1; break; }
        training_log(t, log, e, t->iters > it0 ? 1e3 * (t->cpu - cpu0) / (double)(t->iters - it0) : 0.0);
        if (!a->quiet) ex_progress_update(&bar, t->epoch - start, "%s  loss %.3e  test error %.3e", t->label, t->loss[e], last_err);
    }
    if (!a->quiet) ex_progress_finish(&bar);
    free(perm);
    return rc;
}

/* ---------------------------------------------------------------- outputs */
enum { MAX_CURVES = 4, MAX_POINTS = 8 };
/* What the trainings of one run leave for the plot and the caller. */
typedef struct outputs {
    FILE *log;                               /* <save>/log.csv, or NULL */
    int num_curves, num_points, stopped;     /* stopped: a training ended at --stop_after */
    struct { char label[32]; int n; double *loss, *err; } curve[MAX_CURVES];   /* per epoch (owned) */
    struct { char label[32]; double ms, err; } point[MAX_POINTS];              /* final test errors */
} outputs;

/* Keeps t's per-epoch record for the plot. */
static void keep_curve(outputs *o, const training *t) {
    size_t bytes = (size_t)(t->epoch > 0 ? t->epoch : 1) * sizeof(double);
    int k = o->num_curves;
    if (k >= MAX_CURVES) return;
    o->curve[k].loss = (double *)malloc(bytes);
    o->curve[k].err = (double *)malloc(bytes);
    if (!o->curve[k].loss || !o->curve[k].err) { free(o->curve[k].loss); free(o->curve[k].err); return; }
    memcpy(o->curve[k].loss, t->loss, (size_t)t->epoch * sizeof(double));
    memcpy(o->curve[k].err, t->err, (size_t)t->epoch * sizeof(double));
    o->curve[k].n = t->epoch;
    snprintf(o->curve[k].label, sizeof o->curve[k].label, "%s", t->label);
    o->num_curves++;
    if (t->epoch < t->nepochs) o->stopped = 1;
}
static void keep_point(outputs *o, const char *prefix, const char *method, const eval_result *r) {
    if (o->num_points >= MAX_POINTS) return;
    snprintf(o->point[o->num_points].label, sizeof o->point[0].label, "%s%s", prefix, method);
    o->point[o->num_points].ms = 1e3 * r->seconds_per_step;
    o->point[o->num_points].err = r->loss;
    o->num_points++;
}
static void outputs_free(outputs *o) {
    int k;
    for (k = 0; k < o->num_curves; k++) { free(o->curve[k].loss); free(o->curve[k].err); }
    memset(o, 0, sizeof *o);
}

/* ---------------------------------------------------------------- experiment 1 */
/* out (optional): the tayla test error before [0] and after [1] training. */
static int learn_midpoint(const args *a, const dataset *tr, const dataset *te, outputs *o, eval_result *out) {
    training t;
    double A[4];
    nde_real Ar[4];
    int64_t s22[2] = {2, 2};
    int i, rc;
    eval_result before, after, base[4];
    if (training_open(&t, a, tr, te, 0, M_TAYLA, a->mid_nepochs)) { training_close(&t); return 1; }
    stiff_matrix(0, 0, A);
    for (i = 0; i < 4; i++) Ar[i] = (nde_real)A[i];
    t.m.known = 1;
    t.m.A = nde_param_new(t.ctx, "A", 2, s22);
    nde_tensor_set_host(t.ctx, t.m.A, Ar);
    nde_param_set_trainable(t.ctx, 0, 0);
    init_midpoint(t.ctx, &t.m, (uint64_t)a->seed + 1);
    t.opt = make_adam(a->mid_lr_init, a->mid_lr_end, (int64_t)a->mid_nepochs * (tr->n / a->train_batch_size),
                      a->mid_w_decay, a->mid_grad_clip);
    if (!a->quiet)
        printf("\n== 1. learn the midpoint for the known dynamics (order %d, n_steps %d, dt %g, %lld pairs, %d epochs)\n",
               a->order, a->n_steps, a->dt, (long long)tr->n, a->mid_nepochs);
    before = evaluate(t.ctx, &t.m, M_TAYLA, a, te);   /* the initial midpoint, before any resume */
    rc = training_run(&t, o->log);
    if (!rc) {
        after = evaluate(t.ctx, &t.m, M_TAYLA, a, te);
        for (i = M_TAYLOR; i <= M_DOPRI5; i++) base[i] = evaluate(t.ctx, &t.m, i, a, te);
        rc = !check(t.ctx, "evaluate");
    }
    if (!rc) {
        if (out) { out[0] = before; out[1] = after; }
        keep_curve(o, &t);
        keep_point(o, "known A: ", "tayla", &after);
        for (i = M_TAYLOR; i <= M_DOPRI5; i++) keep_point(o, "known A: ", method_names[i], &base[i]);
    }
    if (!rc && !a->quiet) {
        printf("   train cpu time per iteration: %.3g ms\n", t.iters ? 1e3 * t.cpu / (double)t.iters : 0.0);
        printf("   %-22s %14s %18s %10s\n", "method (known field)", "test error", "cpu ms/step", "nfe/step");
        printf("   %-22s %14.4e %18.4f %10d\n", "tayla, midpoint init", before.loss, 1e3 * before.seconds_per_step, tayla_nfe(a, 1));
        printf("   %-22s %14.4e %18.4f %10d\n", "tayla, learned", after.loss, 1e3 * after.seconds_per_step, tayla_nfe(a, 1));
        for (i = M_TAYLOR; i <= M_DOPRI5; i++)
            printf("   %-22s %14.4e %18.4f %10lld\n", method_names[i], base[i].loss, 1e3 * base[i].seconds_per_step,
                   i == M_TAYLOR ? (long long)tayla_nfe(a, 0) : (long long)base[i].nfe);
    }
    training_close(&t);
    return rc;
}

/* ---------------------------------------------------------------- experiment 2 */
/* The learned field is affine, M z + c: the eigenvalues of M (to compare with
   -1000 and -1) as text. */
static void learned_eigenvalues(nde_ctx *ctx, model *m, char *buf, size_t len) {
    double mm[4], tr, det, disc;
    int64_t s12[2] = {1, 2};
    nde_real e0[2] = {1, 0}, e1[2] = {0, 1}, zero[2] = {0, 0};
    nde_mark mk = nde_ctx_mark(ctx);
    int was = nde_set_grad_enabled(ctx, 0);
    nde_tensor *c = nde_mlp_forward(ctx, &m->dyn, nde_tensor_from(ctx, 2, s12, zero));
    nde_tensor *c0 = nde_mlp_forward(ctx, &m->dyn, nde_tensor_from(ctx, 2, s12, e0));
    nde_tensor *c1 = nde_mlp_forward(ctx, &m->dyn, nde_tensor_from(ctx, 2, s12, e1));
    nde_set_grad_enabled(ctx, was);
    if (!c || !c0 || !c1) { snprintf(buf, len, "?"); nde_ctx_reset(ctx, mk); return; }
    mm[0] = c0->data[0] - c->data[0]; mm[2] = c0->data[1] - c->data[1];
    mm[1] = c1->data[0] - c->data[0]; mm[3] = c1->data[1] - c->data[1];
    nde_ctx_reset(ctx, mk);
    tr = mm[0] + mm[3]; det = mm[0] * mm[3] - mm[1] * mm[2]; disc = tr * tr / 4 - det;
    if (disc >= 0) snprintf(buf, len, "%.4g, %.4g", tr / 2 - sqrt(disc), tr / 2 + sqrt(disc));
    else snprintf(buf, len, "%.4g +- %.4gi", tr / 2, sqrt(-disc));
}

/* out (optional): the test error of the trained model by its own method. */
static int learn_dynamics(const args *a, const dataset *tr, const dataset *te, int method, outputs *o, eval_result *out) {
    training t;
    int64_t w[3] = {2, 64, 2}, nb = tr->n / a->train_batch_size;
    int64_t mid_steps = ((int64_t)a->nepochs * nb / a->mid_freq_update) * a->mid_num_grad_iter;
    int rc;
    eval_result r;
    char eig[96];
    if (training_open(&t, a, tr, te, 1, method, a->nepochs)) { training_close(&t); return 1; }
    nde_mlp_init(t.ctx, &t.m.dyn, "dyn", 3, w, NDE_ACT_NONE, (uint64_t)a->seed + 3);
    if (method == M_TAYLA) init_midpoint(t.ctx, &t.m, (uint64_t)a->seed + 1);
    t.opt = make_adam(a->lr_init, a->lr_end, (int64_t)a->nepochs * nb, a->w_decay, a->grad_clip);
    t.mopt = make_adam(a->mid_lr_init, a->mid_lr_end, mid_steps, a->mid_w_decay, a->mid_grad_clip);
    rc = training_run(&t, o->log);
    if (method == M_TAYLA) train_only(t.ctx, "");
    if (!rc) {
        r = evaluate(t.ctx, &t.m, method, a, te);
        learned_eigenvalues(t.ctx, &t.m, eig, sizeof eig);
        rc = !check(t.ctx, "evaluate");
    }
    if (!rc) {
        if (out) *out = r;
        keep_curve(o, &t);
        keep_point(o, "learned: ", method_names[method], &r);
    }
    if (!rc && !a->quiet) {
        printf("   %-10s %14.4e %18.4f %22.3f %12lld   %s\n", method_names[method], r.loss, 1e3 * r.seconds_per_step,
               t.iters ? 1e3 * t.cpu / (double)t.iters : 0.0,
               method == M_DOPRI5 ? (long long)r.nfe : method == M_RK4 ? 4LL * a->n_steps : (long long)tayla_nfe(a, 1), eig);
        if (method == M_TAYLA) {
            eval_result ref = evaluate(t.ctx, &t.m, M_DOPRI5, a, te);
            printf("   %-10s %14.4e %18.4f %22s %12lld   (the tayla-trained field solved by dopri5)\n", "", ref.loss,
                   1e3 * ref.seconds_per_step, "-", (long long)ref.nfe);
        }
    }
    training_close(&t);
    return rc;
}

/* ---------------------------------------------------------------- plot */
/* <save>/stiff_linear.svg: log10 training loss and test error per epoch of
   each training; log10 final test error against processor ms per step. */
static void plot(const args *a, const outputs *o) {
    char path[512];
    const double *xs[MAX_CURVES + MAX_POINTS], *ys[MAX_CURVES + MAX_POINTS];
    const char *labels[MAX_CURVES + MAX_POINTS];
    double *buf[MAX_CURVES], lx[MAX_POINTS], ly[MAX_POINTS];
    int n[MAX_CURVES + MAX_POINTS], k, e, ok = 1;
    ex_svg *s;
    if (o->num_curves + o->num_points == 0) return;
    for (k = 0; k < o->num_curves; k++) {   /* epochs, log10 loss, epochs tested, log10 error */
        buf[k] = (double *)malloc((size_t)(4 * o->curve[k].n + 1) * sizeof(double));
        ok &= buf[k] != NULL;
    }
    ex_path(path, sizeof path, a->save, "/stiff_linear.svg", NULL);
    s = ok ? ex_svg_open(path, 1260, 380) : NULL;
    if (s) {
        for (k = 0; k < o->num_curves; k++) {
            int m = o->curve[k].n, tested = 0;
            for (e = 0; e < m; e++) {
                buf[k][e] = e + 1;
                buf[k][m + e] = log10(o->curve[k].loss[e]);
                if (o->curve[k].err[e] != o->curve[k].err[e]) continue;
                buf[k][2 * m + tested] = e + 1;
                buf[k][3 * m + tested++] = log10(o->curve[k].err[e]);
            }
            xs[k] = buf[k]; ys[k] = buf[k] + m; n[k] = m; labels[k] = o->curve[k].label;
            xs[MAX_CURVES + k] = buf[k] + 2 * m; ys[MAX_CURVES + k] = buf[k] + 3 * m; n[MAX_CURVES + k] = tested;
        }
        ex_svg_series(s, 0, 0, 420, 380, "training loss", "epoch", "log10 loss", o->num_curves, xs, ys, n,
                      labels, 0, 0);
        ex_svg_series(s, 420, 0, 420, 380, "test error", "epoch", "log10 test error", o->num_curves, xs + MAX_CURVES,
                      ys + MAX_CURVES, n + MAX_CURVES, labels, 0, 0);
        for (k = 0; k < o->num_points; k++) {
            lx[k] = o->point[k].ms; ly[k] = log10(o->point[k].err);
            xs[k] = &lx[k]; ys[k] = &ly[k]; n[k] = 1; labels[k] = o->point[k].label;
        }
        ex_svg_series_range(s, 840, 0, 420, 380, "final test error per method", "cpu ms per step", "log10 test error",
                            o->num_points, xs, ys, n, labels, 1, 3, NAN, NAN);
        for (k = 0; k < o->num_points; k++)
            if (lx[k] > 0 && ly[k] == ly[k]) ex_svg_circle(s, log10(lx[k]), ly[k], 5.0, ex_svg_color(k));
    }
    if (!s || ex_svg_close(s) != 0) fprintf(stderr, "stiff_linear: cannot write %s\n", path);
    for (k = 0; k < o->num_curves; k++) free(buf[k]);
}

/* ---------------------------------------------------------------- the program */
/* Both experiments (unless skipped), the CSV log, the plot and the tables.
   o (optional) receives the curves and final test errors. 0, or 1 after an error. */
static int run_all(const args *a, outputs *o) {
    outputs local;
    dataset tr, te;
    char path[512];
    int len = traj_len(a), rc = 0, mth;
    if (!o) o = &local;
    memset(o, 0, sizeof *o);
    if (ex_mkdir(a->save) != 0 || ex_path(path, sizeof path, a->save, "/log.csv", NULL) != 0) return 1;
    o->log = ex_csv_open(path, "experiment,method,epoch,train_loss,test_error,cpu_ms_per_iter", a->resume);
    if (!o->log) return 1;
    tr = make_data(a->num_traj, len, a->dt, 101, 0);
    te = make_data(a->num_test, len, a->dt, 101, 1);
    if (!tr.x || !tr.y || !te.x || !te.y) { fprintf(stderr, "stiff_linear: out of memory\n"); rc = 1; }
    if (!rc && !a->quiet) {
        printf("stiff linear system, eigenvalues -1000 and -1; dt %g, %d training and %d test trajectories of %d steps\n",
               a->dt, a->num_traj, a->num_test, len);
        printf("test error: mean over pairs of sum_i |prediction_i - z_i(t + dt)|; cpu ms/step: one prediction step of %d pairs\n",
               a->test_batch_size);
    }
    if (!rc && !a->skip_midpoint) rc = learn_midpoint(a, &tr, &te, o, NULL);
    if (!rc && !a->skip_dynamics) {
        if (!a->quiet) {
            printf("\n== 2. learn the dynamics (2-64-2 linear network) and the midpoint together (order %d, %d epochs, "
                   "pen_remainder %g, mid_freq_update %d)\n", a->order, a->nepochs, a->pen_remainder, a->mid_freq_update);
            printf("   %-10s %14s %18s %22s %12s   %s\n", "trained by", "test error", "cpu ms/step", "train cpu ms/iter",
                   "nfe/step", "learned eigenvalues");
        }
        for (mth = M_TAYLA; mth <= M_DOPRI5 && !rc; mth++)
            if (mth != M_TAYLOR) rc = learn_dynamics(a, &tr, &te, mth, o, NULL);
    }
    fclose(o->log);
    o->log = NULL;
    if (!rc) plot(a, o);
    if (!rc && !a->quiet) {
        printf("\n(log %s/log.csv, plot %s/stiff_linear.svg, checkpoints %s/ckpt_*)\n", a->save, a->save, a->save);
        if (o->stopped) printf("stopped after epoch %d (--stop_after): continue with --resume\n", a->stop_after);
    }
    free(tr.x); free(tr.y); free(te.x); free(te.y);
    if (o == &local) outputs_free(o);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    args a;
    int rc;
    args_default(&a);
    rc = args_parse(&a, argc, argv);
    if (rc) return rc < 0 ? 2 : 0;
    return run_all(&a, NULL);
}
#endif
