// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/taylanets_mnist.c -o taylanets_mnist -lm
/* examples/taylanets_mnist.c - the image classifier of TayLaNets (Djeumou,
   Neary, Goubault, Putot, Topcu, "Taylor-Lagrange Neural Ordinary
   Differential Equations", 2022; the research code's examples_taylanets/mnist),
   written with nde, against rk4 and dopri5 baselines.

   Model (the research code's): the image flattened to z0 (D = pixels, values
   in [0, 1]); dz/dt = W2 [t, sigmoid(W1 [t, sigmoid(z)] + b1)] + b2 with 100
   hidden units (--hidden); logits = Linear(sigmoid(z(1))). The block is
   integrated over [0, 1] by --method:
     tayla   Taylor-Lagrange: --n_steps steps of the order-K (--order) Taylor
             expansion plus the Lagrange remainder h^(K+1) z_{K+1} evaluated at
             a learned point xi = z + Gamma (T - z), Gamma from a midpoint MLP
             (D -> 16 ReLU -> D, weights U(-0.01, 0.01), zero biases; unbounded
             Gamma as the research code) (nde_tayla_solve); loss + --pen_remainder
             times the mean |remainder|
     taylor  the truncated Taylor expansion alone (no midpoint)
     rk4     --n_steps classic RK4 steps
     dopri5  adaptive, --rtol / --atol
   (a comma list trains one model each, same initialisation and batches).
   Training as the research code: Adam with beta1 = 0.999, beta2 = 0.9999, the
   learning rate decaying exponentially from --lr_init to --lr_end over the
   run, decoupled --w_decay, gradient clipping --grad_clip (global norm here;
   the research code clips unit-wise). --mid_freq_update N > 0 (default 5)
   trains the midpoint separately, the paper's alternating algorithm: the
   main optimizer then updates the dynamics and the head only, and every N
   iterations --mid_num_grad_iter Adam steps (betas 0.999, 0.9999; learning
   rate decaying exponentially from --mid_lr_init to --mid_lr_end;
   --mid_w_decay, --mid_grad_clip; examples/common.h's ex_midpoint_update)
   fit the Taylor-Lagrange block's z(1) to dopri5's z(1) of the same dynamics
   on the current batch (L1 loss).
   --mid_freq_update -1 trains all networks together on the loss (the
   research code's default); the midpoint then learns to help the loss rather
   than the integration, and the dopri5 check below drifts away.

   Reported per method: test accuracy, field evaluations per prediction (NFE;
   for tayla/taylor the number of jet-program evaluations: one per Taylor
   coefficient, as nde_solvers.h's Taylor method counts), wall-clock seconds
   per test-batch prediction and per training iteration, and, as the research
   code's "ODEINT Test", the accuracy of the same trained dynamics solved by
   dopri5 and the relative difference of the logits. <save>/log.csv,
   <save>/taylanets.svg (test accuracy and training loss per epoch of each
   method); per-method checkpoints after every epoch (--resume continues;
   --stop_after stops early).

   Data: the bundled 8x8 digits (D = 64), or MNIST (D = 784) with --data_dir.
   Default (a few CPU minutes): tayla (order 1, 1 step; midpoint updated
   every 5 iterations), rk4 (1 step) and dopri5, 20 epochs of batch 100, lr
   1e-2 -> 1e-4:
       ./taylanets_mnist
   Joint training of the midpoint on the loss (the research code's default):
       ./taylanets_mnist --mid_freq_update -1
   The research code's MNIST settings:
       ./taylanets_mnist --data_dir mnist --method tayla,rk4,dopri5 --train_batch_size 500 \
           --test_batch_size 1000 --lr_init 1e-4 --lr_end 1e-6 --nepochs 500
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_solvers.h"

#define TL_MAX_METHODS 4

typedef struct tl_args {
    const char *method, *data_dir, *save;
    int order, n_steps, nepochs, train_batch_size, test_batch_size, hidden, seed, max_train, max_test, stop_after;
    double lr_init, lr_end, w_decay, grad_clip, pen_remainder, atol, rtol;
    ex_midpoint_args mid;               /* --mid_*: the separate midpoint updates */
    int resume, quiet;
} tl_args;

static void tl_args_default(tl_args *a) {
    memset(a, 0, sizeof *a);
    a->method = "tayla,rk4,dopri5"; a->data_dir = ""; a->save = "taylanets_mnist_out";
    a->order = 1; a->n_steps = 1; a->nepochs = 20; a->train_batch_size = 100; a->test_batch_size = 360;
    a->hidden = 100; a->lr_init = 1e-2; a->lr_end = 1e-4; a->pen_remainder = 0.0;
    a->atol = 1.4e-5; a->rtol = 1.4e-5;
    a->mid.freq_update = 5; a->mid.num_grad_iter = 1; a->mid.lr_init = 1e-3; a->mid.lr_end = 1e-5;
}

enum { TL_TAYLA, TL_TAYLOR, TL_RK4, TL_DOPRI5 };
static int tl_method_kind(const char *name) {
    if (!strcmp(name, "tayla")) return TL_TAYLA;
    if (!strcmp(name, "taylor")) return TL_TAYLOR;
    if (!strcmp(name, "rk4")) return TL_RK4;
    if (!strcmp(name, "dopri5")) return TL_DOPRI5;
    return -1;
}

typedef struct tl_model {
    nde_ctx *ctx;
    int kind, dim;
    nde_linear lin1, lin2, post;
    nde_mlp mid;
    int mid_first, mid_end;             /* parameter indices of the midpoint network */
    nde_optimizer opt, mid_opt;         /* mid_opt: the separate midpoint updates */
    nde_tayla_options tayla;
    nde_solve_options solve;
    nde_jet_field_ref ref;
    int64_t nfe;
} tl_model;

/* [t, x] for x (B, n) and t a jet of shape (1). */
static nde_jet *tl_with_time(nde_ctx *ctx, nde_jet *t, nde_jet *x) {
    int64_t s[2];
    nde_jet *parts[2];
    if (!x) return NULL;
    s[0] = x->c[0]->shape[0]; s[1] = 1;
    parts[0] = nde_jet_add(ctx, nde_jet_const(ctx, nde_tensor_zeros(ctx, 2, s), x->order), t);
    parts[1] = x;
    return nde_jet_concat(ctx, 2, parts, 1);
}
/* The research code's MLPDynamics on jets. */
static nde_jet *tl_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    tl_model *m = (tl_model *)user;
    nde_jet *h;
    m->nfe++;
    h = nde_jet_linear_forward(ctx, &m->lin1, tl_with_time(ctx, t, nde_jet_sigmoid(ctx, z)));
    h = nde_jet_linear_forward(ctx, &m->lin2, tl_with_time(ctx, t, nde_jet_sigmoid(ctx, h)));
    return h;
}
static nde_tensor *tl_midpoint(nde_ctx *ctx, nde_tensor *z, void *user) {
    return nde_mlp_forward(ctx, &((tl_model *)user)->mid, z);
}

static int tl_model_init(tl_model *m, const tl_args *a, int kind, int64_t dim, int64_t steps_total) {
    int64_t widths[3];
    uint64_t s = (uint64_t)a->seed;
    int l;
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return 0;
    m->kind = kind; m->dim = (int)dim;
    nde_linear_init(m->ctx, &m->lin1, "dyn.lin1", dim + 1, a->hidden, 1, s + 1);
    nde_linear_init(m->ctx, &m->lin2, "dyn.lin2", a->hidden + 1, dim, 1, s + 2);
    nde_linear_init(m->ctx, &m->post, "post", dim, 10, 1, s + 3);
    if (kind == TL_TAYLA) {
        widths[0] = dim; widths[1] = 16; widths[2] = dim;
        m->mid_first = nde_params_num(m->ctx);
        nde_mlp_init(m->ctx, &m->mid, "midpoint", 3, widths, NDE_ACT_RELU, s + 4);
        m->mid_end = nde_params_num(m->ctx);
        for (l = 0; l < 2; l++) {
            nde_init_uniform(m->ctx, m->mid.layer[l].weight, NDE_R(-1e-2), NDE_R(1e-2), s + 5 + (uint64_t)l);
            nde_tensor_fill(m->ctx, m->mid.layer[l].bias, NDE_R(0.0));
        }
    }
    m->opt = a->w_decay > 0 ? nde_adamw(a->lr_init, a->w_decay) : nde_adam(a->lr_init);
    m->opt.beta1 = 0.999; m->opt.beta2 = 0.9999;
    m->opt.clip_grad_norm = a->grad_clip;
    m->opt.schedule.kind = NDE_SCHED_EXPONENTIAL;
    m->opt.schedule.lr_init = a->lr_init; m->opt.schedule.lr_end = a->lr_end; m->opt.schedule.steps = steps_total;
    m->mid_opt = ex_midpoint_optimizer(&a->mid, steps_total);   /* the research code's midpoint optimizer */
    m->tayla = nde_tayla_options_default();
    m->tayla.order = a->order; m->tayla.n_steps = a->n_steps;
    if (kind == TL_TAYLA) { m->tayla.midpoint = tl_midpoint; m->tayla.midpoint_user = m; m->tayla.midpoint_unbounded = 1; }
    m->solve = nde_solve_options_default();
    m->solve.method = kind == TL_RK4 ? NDE_RK4 : NDE_DOPRI5;
    if (kind == TL_RK4) m->solve.step_size = 1.0 / a->n_steps;
    m->solve.rtol = a->rtol; m->solve.atol = a->atol;
    m->ref.f = tl_field; m->ref.user = m;
    if (nde_ctx_status(m->ctx) != NDE_OK) { fprintf(stderr, "taylanets_mnist: %s\n", nde_ctx_message(m->ctx)); return 0; }
    return 1;
}
static void tl_model_free(tl_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

/* z(1) by the model's method (kind), or by dopri5 when force_dopri5. */
static nde_tensor *tl_block(tl_model *m, nde_tensor *z0, int kind, nde_tensor **rem) {
    nde_ctx *ctx = m->ctx;
    if (kind == TL_TAYLA || kind == TL_TAYLOR) return nde_tayla_solve(ctx, tl_field, m, &m->tayla, NDE_R(0.0), NDE_R(1.0), z0, rem);
    {
        nde_solve_options o = m->solve;
        double ts[2] = {0.0, 1.0};
        nde_solution sol;
        nde_tensor *z1 = NULL;
        if (kind == TL_DOPRI5) { o.method = NDE_DOPRI5; o.step_size = 0.0; }
        if (nde_solve(ctx, nde_jet_field_plain, &m->ref, z0, 2, ts, &o, &sol) == NDE_OK) z1 = sol.ys[1];
        nde_solution_free(ctx, &sol);
        return z1;
    }
}
static nde_tensor *tl_logits(tl_model *m, nde_tensor *x, int kind, nde_tensor **rem) {
    int64_t s[2];
    s[0] = x->shape[0]; s[1] = m->dim;
    return nde_linear_forward(m->ctx, &m->post, nde_sigmoid(m->ctx, tl_block(m, nde_reshape(m->ctx, x, 2, s), kind, rem)));
}

/* Only the midpoint network (mid = 1) or only the other networks (mid = 0)
   receive gradients and optimizer steps. */
static void tl_train_only(tl_model *m, int mid) { ex_params_train_only(m->ctx, m->mid_first, m->mid_end, mid); }

/* The midpoint objective: the batch mean of sum_i |z_tayla(1)_i - target_i|. */
typedef struct tl_mid_fit { tl_model *m; nde_tensor *z0, *target; } tl_mid_fit;
static nde_tensor *tl_midpoint_loss(nde_ctx *ctx, void *user) {
    tl_mid_fit *f = (tl_mid_fit *)user;
    return nde_mean(ctx, nde_sum_axis(ctx, nde_abs(ctx, nde_sub(ctx, tl_block(f->m, f->z0, TL_TAYLA, NULL), f->target)), 1, 0));
}

/* The research code's separate midpoint update (--mid_freq_update): the
   Taylor-Lagrange block is fitted to dopri5's z(1) of the same dynamics by
   --mid_num_grad_iter Adam steps on the midpoint network alone
   (ex_midpoint_update). Returns the objective before the last step. */
static double tl_midpoint_update(tl_model *m, const tl_args *a, nde_tensor *x) {
    int64_t s[2];
    int prev;
    tl_mid_fit fit;
    s[0] = x->shape[0]; s[1] = m->dim;
    fit.m = m;
    fit.z0 = nde_reshape(m->ctx, x, 2, s);
    prev = nde_set_grad_enabled(m->ctx, 0);
    fit.target = tl_block(m, fit.z0, TL_DOPRI5, NULL);
    nde_set_grad_enabled(m->ctx, prev);
    if (!fit.target) return NAN;
    return ex_midpoint_update(m->ctx, m->mid_first, m->mid_end, &a->mid, &m->mid_opt, tl_midpoint_loss, &fit);
}

/* ---------------------------------------------------------------- evaluation */
typedef struct tl_eval { double acc, nfe, seconds, acc_dopri5, nfe_dopri5, seconds_dopri5, logit_diff; } tl_eval;

static tl_eval tl_evaluate(tl_model *m, const tl_args *a, const ex_images *test) {
    tl_eval e;
    int64_t start, i, j, c1 = 0, c2 = 0, batches = 0;
    int64_t *idx = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    int64_t *labels = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    double num = 0, den = 0;
    int prev = nde_set_grad_enabled(m->ctx, 0);
    memset(&e, 0, sizeof e);
    e.acc = NAN;
    if (!idx || !labels) { free(idx); free(labels); nde_set_grad_enabled(m->ctx, prev); return e; }
    for (start = 0; start < test->n; start += a->test_batch_size) {
        int64_t count = test->n - start < a->test_batch_size ? test->n - start : a->test_batch_size;
        nde_mark mk = nde_ctx_mark(m->ctx);
        nde_tensor *x, *l1, *l2;
        nde_real *h1 = (nde_real *)nde_ctx_alloc_host(m->ctx, (size_t)(count * 10) * sizeof(nde_real));
        nde_real *h2 = (nde_real *)nde_ctx_alloc_host(m->ctx, (size_t)(count * 10) * sizeof(nde_real));
        double t0;
        for (i = 0; i < count; i++) idx[i] = start + i;
        x = ex_batch_images(m->ctx, test, idx, count, labels);
        m->nfe = 0; t0 = ex_now();
        l1 = tl_logits(m, x, m->kind, NULL);
        e.seconds += ex_now() - t0; e.nfe += (double)m->nfe;
        m->nfe = 0; t0 = ex_now();
        l2 = tl_logits(m, x, TL_DOPRI5, NULL);
        e.seconds_dopri5 += ex_now() - t0; e.nfe_dopri5 += (double)m->nfe;
        if (!l1 || !l2 || !h1 || !h2) { nde_ctx_reset(m->ctx, mk); break; }
        nde_tensor_to_host(m->ctx, l1, h1);
        nde_tensor_to_host(m->ctx, l2, h2);
        for (i = 0; i < count; i++) {
            int64_t b1 = 0, b2 = 0;
            for (j = 1; j < 10; j++) { if (h1[i * 10 + j] > h1[i * 10 + b1]) b1 = j; if (h2[i * 10 + j] > h2[i * 10 + b2]) b2 = j; }
            c1 += b1 == labels[i]; c2 += b2 == labels[i];
            for (j = 0; j < 10; j++) { num += fabs((double)h1[i * 10 + j] - h2[i * 10 + j]); den += fabs((double)h1[i * 10 + j]) + fabs((double)h2[i * 10 + j]); }
        }
        batches++;
        nde_ctx_reset(m->ctx, mk);
    }
    nde_set_grad_enabled(m->ctx, prev);
    free(idx); free(labels);
    if (batches && nde_ctx_status(m->ctx) == NDE_OK) {
        e.acc = (double)c1 / (double)test->n; e.acc_dopri5 = (double)c2 / (double)test->n;
        e.nfe /= batches; e.nfe_dopri5 /= batches; e.seconds /= batches; e.seconds_dopri5 /= batches;
        e.logit_diff = num / (den > 0 ? den : 1);   /* the research code's relative error */
    }
    return e;
}

/* ---------------------------------------------------------------- run */
typedef struct tl_result {
    char name[16];
    int epochs_run;
    double first_loss, last_loss, seconds_per_iter;
    tl_eval eval;
} tl_result;

/* <save>/taylanets.svg: test accuracy and training loss per epoch of each method
   (the epochs of this run). */
static void tl_plot(const tl_args *a, int count, const tl_result *res, const double *const *epoch, const double *const *acc,
                    const double *const *loss, const int *n) {
    char path[512];
    const char *labels[TL_MAX_METHODS];
    ex_svg *s;
    int k;
    for (k = 0; k < count; k++) labels[k] = res[k].name;
    ex_path(path, sizeof path, a->save, "/taylanets.svg", NULL);
    s = ex_svg_open(path, 900, 380);
    if (!s) { fprintf(stderr, "taylanets_mnist: cannot write %s\n", path); return; }
    ex_svg_series(s, 0, 0, 450, 380, "test accuracy", "epoch", "accuracy", count, epoch, acc, n, labels, 0, 0);
    ex_svg_series(s, 450, 0, 450, 380, "training loss", "epoch", "cross-entropy", count, epoch, loss, n, labels, 0, 0);
    if (ex_svg_close(s) != 0) fprintf(stderr, "taylanets_mnist: cannot write %s\n", path);
}

static int tl_run(const tl_args *a, tl_result *res, int *num_models) {
    ex_images train, test;
    char buf[64], path[512];
    const char *methods[TL_MAX_METHODS];
    int count, k, rc = 1;
    int64_t *perm = NULL, *labels = NULL, steps_per_epoch;
    double *h_epoch[TL_MAX_METHODS], *h_acc[TL_MAX_METHODS], *h_loss[TL_MAX_METHODS];
    int h_n[TL_MAX_METHODS];
    FILE *log = NULL;
    nde_ctx *dctx;
    memset(&train, 0, sizeof train); memset(&test, 0, sizeof test);
    memset(h_epoch, 0, sizeof h_epoch); memset(h_acc, 0, sizeof h_acc); memset(h_loss, 0, sizeof h_loss);
    memset(h_n, 0, sizeof h_n);
    *num_models = 0;
    count = ex_split_words(a->method, buf, sizeof buf, methods, TL_MAX_METHODS);
    if (count < 1 || a->order < 1 || a->order > 8 || a->n_steps < 1 || a->nepochs < 0 || a->train_batch_size < 1 ||
        a->test_batch_size < 1 || a->hidden < 1 || !(a->lr_init > 0) || !(a->lr_end > 0) || a->lr_end > a->lr_init) {
        fprintf(stderr, "taylanets_mnist: bad arguments (1..%d methods; order 1..8; n_steps, epochs, batch sizes, "
                        "hidden >= 1; 0 < lr_end <= lr_init)\n", TL_MAX_METHODS);
        return 2;
    }
    if (!ex_midpoint_args_check("taylanets_mnist", &a->mid)) return 2;
    for (k = 0; k < count; k++)
        if (tl_method_kind(methods[k]) < 0) {
            fprintf(stderr, "taylanets_mnist: --method entries are tayla, taylor, rk4, dopri5; not '%s'\n", methods[k]);
            return 2;
        }
    dctx = nde_ctx_new(nde_ctx_desc_default());
    if (!dctx || ex_load_images(dctx, a->data_dir[0] ? a->data_dir : NULL, 1, a->max_train, &train) != NDE_OK ||
        ex_load_images(dctx, a->data_dir[0] ? a->data_dir : NULL, 0, a->max_test, &test) != NDE_OK) {
        fprintf(stderr, "taylanets_mnist: %s\n", nde_ctx_message(dctx));
        nde_ctx_free(dctx);
        goto done;
    }
    nde_ctx_free(dctx);
    if (ex_mkdir(a->save) != 0) goto done;
    steps_per_epoch = (train.n + a->train_batch_size - 1) / a->train_batch_size;
    perm = (int64_t *)malloc((size_t)train.n * sizeof(int64_t));
    labels = (int64_t *)malloc((size_t)a->train_batch_size * sizeof(int64_t));
    ex_path(path, sizeof path, a->save, "/log.csv", NULL);
    log = ex_csv_open(path, "method,order,n_steps,epoch,train_loss,seconds_per_iter,test_acc,nfe,predict_seconds,"
                            "dopri5_acc,dopri5_nfe,dopri5_predict_seconds,logit_rel_diff", a->resume);
    for (k = 0; k < count; k++) {
        h_epoch[k] = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
        h_acc[k] = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
        h_loss[k] = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
        if (!h_epoch[k] || !h_acc[k] || !h_loss[k]) goto done;
    }
    if (!perm || !labels || !log) goto done;
    if (!a->quiet)
        printf("taylanets_mnist: %lld train / %lld test images (D = %lld), order %d, %d step(s), %d epochs of batch %d\n",
               (long long)train.n, (long long)test.n, (long long)(train.height * train.width), a->order, a->n_steps,
               a->nepochs, a->train_batch_size);
    for (k = 0; k < count; k++) {
        tl_model m;
        int epoch, start_epoch = 0, separate_mid;
        double t_train = 0;
        int64_t iters = 0;
        char ckpt[512], nm[32];
        ex_progress bar;
        memset(&res[k], 0, sizeof res[k]);
        snprintf(res[k].name, sizeof res[k].name, "%s", methods[k]);
        res[k].first_loss = NAN;
        if (!tl_model_init(&m, a, tl_method_kind(methods[k]), train.height * train.width, steps_per_epoch * a->nepochs)) {
            tl_model_free(&m);
            goto done;
        }
        separate_mid = m.kind == TL_TAYLA && ex_midpoint_separate(&a->mid);
        if (separate_mid) tl_train_only(&m, 0);
        snprintf(nm, sizeof nm, "/ckpt_%s", methods[k]);
        ex_path(ckpt, sizeof ckpt, a->save, nm, NULL);
        if (a->resume) {
            double counters[2] = {0, 0};
            if (ex_checkpoint_load(m.ctx, ckpt, &m.opt, counters, 2) != NDE_OK) {
                fprintf(stderr, "taylanets_mnist: --resume: %s\n", nde_ctx_message(m.ctx));
                tl_model_free(&m);
                goto done;
            }
            start_epoch = (int)counters[0];
            m.mid_opt.step = (int64_t)counters[1];
        }
        bar = ex_progress_start(a->nepochs - start_epoch > 0 ? a->nepochs - start_epoch : 1);
        for (epoch = start_epoch; epoch < a->nepochs && (a->stop_after <= 0 || epoch < a->stop_after); epoch++) {
            int64_t start;
            double loss_sum = 0, counters[2];
            int batches = 0;
            ex_permutation((uint64_t)a->seed, (uint64_t)epoch, train.n, perm);
            for (start = 0; start < train.n; start += a->train_batch_size) {
                int64_t cnt = train.n - start < a->train_batch_size ? train.n - start : a->train_batch_size;
                nde_mark mk = nde_ctx_mark(m.ctx);
                nde_tensor *rem = NULL, *loss, *x;
                double t0 = ex_now();
                x = ex_batch_images(m.ctx, &train, perm + start, cnt, labels);
                {
                    nde_mark mk2 = nde_ctx_mark(m.ctx);
                    loss = nde_cross_entropy(m.ctx, tl_logits(&m, x, m.kind, m.kind == TL_TAYLA ? &rem : NULL), labels);
                    if (loss && rem && a->pen_remainder > 0) loss = nde_add(m.ctx, loss, nde_scale(m.ctx, rem, (nde_real)a->pen_remainder));
                    if (loss) {
                        loss_sum += nde_tensor_item(m.ctx, loss, 0);
                        nde_zero_grad(m.ctx);
                        nde_backward(m.ctx, loss);
                        nde_optimizer_step(m.ctx, &m.opt);
                    }
                    nde_ctx_reset(m.ctx, mk2);
                }
                if (separate_mid && x && m.opt.step % a->mid.freq_update == 0) tl_midpoint_update(&m, a, x);
                nde_ctx_reset(m.ctx, mk);
                t_train += ex_now() - t0;
                iters++; batches++;
                if (nde_ctx_status(m.ctx) != NDE_OK) break;
            }
            if (nde_ctx_status(m.ctx) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "taylanets_mnist: %s, epoch %d: %s\n", methods[k], epoch + 1, nde_ctx_message(m.ctx));
                tl_model_free(&m);
                goto done;
            }
            res[k].eval = tl_evaluate(&m, a, &test);
            loss_sum /= batches;
            if (res[k].first_loss != res[k].first_loss) res[k].first_loss = loss_sum;
            res[k].last_loss = loss_sum;
            res[k].epochs_run++;
            res[k].seconds_per_iter = t_train / (double)iters;
            h_epoch[k][h_n[k]] = epoch + 1; h_acc[k][h_n[k]] = res[k].eval.acc; h_loss[k][h_n[k]] = loss_sum; h_n[k]++;
            fprintf(log, "%s,%d,%d,%d,%.6f,%.5f,%.4f,%.1f,%.5f,%.4f,%.1f,%.5f,%.3g\n", methods[k], a->order, a->n_steps,
                    epoch + 1, loss_sum, res[k].seconds_per_iter, res[k].eval.acc, res[k].eval.nfe, res[k].eval.seconds,
                    res[k].eval.acc_dopri5, res[k].eval.nfe_dopri5, res[k].eval.seconds_dopri5, res[k].eval.logit_diff);
            counters[0] = epoch + 1;
            counters[1] = (double)m.mid_opt.step;
            if (ex_checkpoint_save(m.ctx, ckpt, &m.opt, counters, 2) != NDE_OK) {
                fprintf(stderr, "taylanets_mnist: %s\n", nde_ctx_message(m.ctx));
                tl_model_free(&m);
                goto done;
            }
            if (!a->quiet)
                ex_progress_update(&bar, epoch - start_epoch + 1, "%s  loss %.4f  test acc %.4f  NFE %.0f", methods[k], loss_sum,
                                   res[k].eval.acc, res[k].eval.nfe);
        }
        if (!a->quiet) ex_progress_finish(&bar);
        tl_model_free(&m);
        *num_models = k + 1;
    }
    tl_plot(a, count, res, (const double *const *)h_epoch, (const double *const *)h_acc, (const double *const *)h_loss, h_n);
    if (!a->quiet) {
        printf("  %-8s %8s %6s %12s %12s | dopri5 on the same dynamics: %6s %6s %10s %9s\n", "method", "test acc", "NFE",
               "s/predict", "s/train it", "acc", "NFE", "s/predict", "rel diff");
        for (k = 0; k < count; k++)
            printf("  %-8s %8.4f %6.1f %12.5f %12.5f | %35.4f %6.1f %10.5f %9.2g\n", res[k].name, res[k].eval.acc,
                   res[k].eval.nfe, res[k].eval.seconds, res[k].seconds_per_iter, res[k].eval.acc_dopri5,
                   res[k].eval.nfe_dopri5, res[k].eval.seconds_dopri5, res[k].eval.logit_diff);
        printf("  (log %s/log.csv, plot %s/taylanets.svg; predictions of a test batch of %d)\n", a->save, a->save,
               a->test_batch_size);
    }
    rc = 0;
done:
    if (log) fclose(log);
    free(perm); free(labels);
    for (k = 0; k < TL_MAX_METHODS; k++) { free(h_epoch[k]); free(h_acc[k]); free(h_loss[k]); }
    ex_images_free(&train); ex_images_free(&test);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    tl_args a;
    static tl_result res[TL_MAX_METHODS];
    int n, prc;
    tl_args_default(&a);
    {
        ex_flag own[] = {
            {"method", EX_STRING, &a.method, "comma list of tayla, taylor, rk4, dopri5"},
            {"order", EX_INT, &a.order, "Taylor order K (tayla, taylor)"},
            {"n_steps", EX_INT, &a.n_steps, "steps over [0, 1] (tayla, taylor, rk4)"},
            {"nepochs", EX_INT, &a.nepochs, "epochs"},
            {"train_batch_size", EX_INT, &a.train_batch_size, "training batch size"},
            {"test_batch_size", EX_INT, &a.test_batch_size, "test batch size"},
            {"hidden", EX_INT, &a.hidden, "hidden units of the dynamics"},
            {"lr_init", EX_DOUBLE, &a.lr_init, "initial learning rate"},
            {"lr_end", EX_DOUBLE, &a.lr_end, "final learning rate (exponential decay)"},
            {"w_decay", EX_DOUBLE, &a.w_decay, "decoupled weight decay"},
            {"grad_clip", EX_DOUBLE, &a.grad_clip, "global gradient-norm clipping (0: off)"},
            {"pen_remainder", EX_DOUBLE, &a.pen_remainder, "weight of the mean |remainder| in the loss"},
            {"atol", EX_DOUBLE, &a.atol, "dopri5 atol"},
            {"rtol", EX_DOUBLE, &a.rtol, "dopri5 rtol"},
            {"seed", EX_INT, &a.seed, "seed"},
            {"data_dir", EX_STRING, &a.data_dir, "directory with MNIST's IDX files (default: bundled 8x8 digits)"},
            {"max_train", EX_INT, &a.max_train, "use the first N training images (0: all)"},
            {"max_test", EX_INT, &a.max_test, "use the first N test images (0: all)"},
            {"stop_after", EX_INT, &a.stop_after, "stop after this epoch (continue later with --resume; 0: never)"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        ex_flag flags[sizeof own / sizeof own[0] + EX_MIDPOINT_NUM_FLAGS];
        memcpy(flags, own, sizeof own);
        ex_midpoint_flags(flags + sizeof own / sizeof own[0], &a.mid);
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "TayLaNets image classifier vs rk4 and dopri5 (Djeumou et al. 2022)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return tl_run(&a, res, &n);
}
#endif
