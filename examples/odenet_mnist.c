// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/odenet_mnist.c -o odenet_mnist -lm
/* examples/odenet_mnist.c - the ODE-Net image classifier of Chen, Rubanova,
   Bettencourt, Duvenaud ("Neural Ordinary Differential Equations", NeurIPS
   2018), in the design of torchdiffeq's examples/odenet_mnist.py, written
   with nde:

     stem   Conv 3x3 (1 -> C), GroupNorm, ReLU, Conv 4x4/2 (pad 1), GroupNorm,
            ReLU, Conv 4x4/2 (pad 1)                    (28x28 -> 6x6 for MNIST)
     block  dz/dt = f(t, z) on t in [0, 1] with
            f = GroupNorm, ReLU, ConcatConv 3x3, GroupNorm, ReLU, ConcatConv 3x3,
            GroupNorm, where ConcatConv convolves [t, z] (a constant time
            channel concatenated to the input)
     head   GroupNorm, ReLU, global average pooling, Linear C -> 10

   GroupNorm uses min(32, C) groups. --network resnet replaces the block by six
   residual blocks (GroupNorm, ReLU, Conv, GroupNorm, ReLU, Conv, plus the
   input), the paper's ResNet baseline. The block is solved with --method
   (dopri5 at --tol = rtol = atol by default; fixed-step methods with
   --step_size) and differentiated by --adjoint_option (nde_adjoint.h): direct
   (backpropagation through the solver's operations, the default), adjoint
   (torchdiffeq's odeint_adjoint; --adjoint is the research code's switch for
   it), gq (Gauss-Legendre quadrature adjoint), interp, checkpoint, gq_step.
   The solver sees the state flattened to (N, C*H*W) (nde_odeint_adjoint
   stacks outputs on a new axis) and the field unflattens it.

   Training as the research code: SGD with momentum 0.9, learning rate --lr
   scaled by batch_size / 128, divided by 10 at each epoch of --decay_epochs,
   cross-entropy, random crops of the zero-padded image (--data_aug; padding 4
   for MNIST, 1 for the 8x8 digits). Per epoch: the mean forward NFE per
   training batch, time, training loss and accuracy over the epoch's batches,
   and the test accuracy, in <save>/log.csv (with the backward NFE of the
   adjoint modes) and <save>/odenet.svg (accuracies and NFE per epoch; the
   paper's figure 3d plots the forward NFE growing over training); checkpoints every epoch
   (--resume continues).

   Data: the bundled 8x8 digits (1437 train / 360 test) by default. On images
   smaller than 16 pixels the stem keeps the first convolution's size (pad 1)
   and downsamples once (8x8 -> 4x4), else the research code's stem. MNIST's
   IDX files with --data_dir.

   Default (a few minutes on one core): 32 channels, dopri5 tol 1e-3, 15 epochs
   of batch 32 (45 steps each; --lr 0.4 is 0.1 at this batch by the scaling
   rule above), decay at epochs 10, 13, 14:
       ./odenet_mnist
   The paper-sized run (torchdiffeq's defaults, MNIST):
       ./odenet_mnist --data_dir mnist --width 64 --batch_size 128 --lr 0.1 --nepochs 160 \
           --decay_epochs 60,100,140 --test_batch_size 1000
*/
#define NDE_IMPLEMENTATION
#include "common.h"
#include "../nde_adjoint.h"

#define ON_MAX_DECAYS 8
#define ON_RES_BLOCKS 6

typedef struct on_args {
    const char *network, *method, *adjoint_option, *decay_epochs, *data_dir, *save;
    double tol, step_size, lr;
    int width, nepochs, batch_size, test_batch_size, data_aug, seed, max_train, max_test, adjoint;
    int resume, quiet;
} on_args;

static void on_args_default(on_args *a) {
    memset(a, 0, sizeof *a);
    a->network = "odenet"; a->method = "dopri5"; a->adjoint_option = "direct"; a->decay_epochs = "10,13,14"; a->data_dir = ""; a->save = "odenet_mnist_out";
    a->tol = 1e-3; a->step_size = 0.0; a->lr = 0.4;
    a->width = 32; a->nepochs = 15; a->batch_size = 32; a->test_batch_size = 360; a->data_aug = 1; a->seed = 0;
}

/* ---------------------------------------------------------------- model */
typedef struct on_norm { nde_tensor *gamma, *beta; int groups; } on_norm;
typedef struct on_resblock { on_norm n1, n2; nde_conv2d_layer c1, c2; } on_resblock;

typedef struct on_model {
    nde_ctx *ctx;
    int width, is_resnet, small;      /* small: images under 16 pixels */
    nde_conv2d_layer stem1, stem2, stem3;
    on_norm stem_n1, stem_n2;
    on_norm f_n1, f_n2, f_n3;           /* ODE function */
    nde_conv2d_layer f_c1, f_c2;        /* ConcatConv: C + 1 -> C */
    on_resblock res[ON_RES_BLOCKS];
    on_norm head_n;
    nde_linear head;
    nde_optimizer opt;
    nde_solve_options solve;
    nde_adjoint_options adj;
    int64_t state_shape[4];             /* (N, C, H, W) of the block's state */
    int64_t nfe;                        /* field evaluations (a counter) */
} on_model;

static void on_norm_init(nde_ctx *ctx, on_norm *n, const char *name, int channels) {
    char nm[64];
    int64_t c = channels;
    snprintf(nm, sizeof nm, "%s.weight", name);
    n->gamma = nde_param_new(ctx, nm, 1, &c);
    snprintf(nm, sizeof nm, "%s.bias", name);
    n->beta = nde_param_new(ctx, nm, 1, &c);
    if (n->gamma) nde_tensor_fill(ctx, n->gamma, NDE_R(1.0));
    n->groups = channels < 32 ? channels : 32;
}
static nde_tensor *on_norm_apply(nde_ctx *ctx, const on_norm *n, nde_tensor *x) {
    return nde_group_norm(ctx, x, n->groups, n->gamma, n->beta, NDE_R(1e-5));
}

static int on_model_init(on_model *m, const on_args *a, int64_t image_side) {
    nde_ctx *ctx;
    int c = a->width, i;
    uint64_t s = (uint64_t)a->seed;
    char nm[32];
    memset(m, 0, sizeof *m);
    m->ctx = ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx) return 0;
    m->width = c;
    m->is_resnet = !strcmp(a->network, "resnet");
    m->small = image_side < 16;
    if (!m->is_resnet && strcmp(a->network, "odenet")) {
        fprintf(stderr, "odenet_mnist: --network must be odenet or resnet\n");
        return 0;
    }
    /* PyTorch's default initialisation (nde_conv2d_init / nde_linear_init) */
    nde_conv2d_init(ctx, &m->stem1, "stem.0", 1, c, 3, 1, m->small ? 1 : 0, 1, s + 1);
    on_norm_init(ctx, &m->stem_n1, "stem.1", c);
    nde_conv2d_init(ctx, &m->stem2, "stem.3", c, c, 4, 2, 1, 1, s + 2);
    if (!m->small) {
        on_norm_init(ctx, &m->stem_n2, "stem.4", c);
        nde_conv2d_init(ctx, &m->stem3, "stem.6", c, c, 4, 2, 1, 1, s + 3);
    }
    if (m->is_resnet) {
        for (i = 0; i < ON_RES_BLOCKS; i++) {
            snprintf(nm, sizeof nm, "res%d.norm1", i); on_norm_init(ctx, &m->res[i].n1, nm, c);
            snprintf(nm, sizeof nm, "res%d.conv1", i); nde_conv2d_init(ctx, &m->res[i].c1, nm, c, c, 3, 1, 1, 0, s + 10 + 2 * (uint64_t)i);
            snprintf(nm, sizeof nm, "res%d.norm2", i); on_norm_init(ctx, &m->res[i].n2, nm, c);
            snprintf(nm, sizeof nm, "res%d.conv2", i); nde_conv2d_init(ctx, &m->res[i].c2, nm, c, c, 3, 1, 1, 0, s + 11 + 2 * (uint64_t)i);
        }
    } else {
        on_norm_init(ctx, &m->f_n1, "odefunc.norm1", c);
        nde_conv2d_init(ctx, &m->f_c1, "odefunc.conv1", c + 1, c, 3, 1, 1, 1, s + 4);
        on_norm_init(ctx, &m->f_n2, "odefunc.norm2", c);
        nde_conv2d_init(ctx, &m->f_c2, "odefunc.conv2", c + 1, c, 3, 1, 1, 1, s + 5);
        on_norm_init(ctx, &m->f_n3, "odefunc.norm3", c);
    }
    on_norm_init(ctx, &m->head_n, "fc.0", c);
    nde_linear_init(ctx, &m->head, "fc.4", c, 10, 1, s + 6);
    m->solve = nde_solve_options_default();
    if (nde_method_from_name(ctx, a->method, &m->solve.method) != NDE_OK) {
        fprintf(stderr, "odenet_mnist: --method: %s\n", nde_ctx_message(ctx));
        return 0;
    }
    m->solve.rtol = a->tol; m->solve.atol = a->tol;
    m->solve.step_size = a->step_size;
    {
        nde_grad_mode mode;
        const char *name = a->adjoint ? "adjoint" : a->adjoint_option;
        if (nde_grad_mode_from_name(ctx, name, &mode) != NDE_OK) {
            fprintf(stderr, "odenet_mnist: --adjoint_option: %s\n", nde_ctx_message(ctx));
            return 0;
        }
        m->adj = nde_adjoint_options_default(mode);
    }
    if (nde_method_get(m->solve.method)->error_order == 0 && !(a->step_size > 0)) {
        fprintf(stderr, "odenet_mnist: the fixed-step method %s needs --step_size\n", a->method);
        return 0;
    }
    if (nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "odenet_mnist: %s\n", nde_ctx_message(ctx)); return 0; }
    return 1;
}
static void on_model_free(on_model *m) { if (m->ctx) nde_ctx_free(m->ctx); m->ctx = NULL; }

/* ConcatConv2d: the convolution of [t, x] (a channel filled with t first). */
static nde_tensor *on_concat_conv(nde_ctx *ctx, const nde_conv2d_layer *l, nde_tensor *t, nde_tensor *x) {
    int64_t s[4];
    nde_tensor *parts[2];
    if (!x) return NULL;
    s[0] = x->shape[0]; s[1] = 1; s[2] = x->shape[2]; s[3] = x->shape[3];
    parts[0] = nde_add(ctx, nde_tensor_zeros(ctx, 4, s), t);
    parts[1] = x;
    return nde_conv2d_forward(ctx, l, nde_concat(ctx, 2, parts, 1));
}
/* The ODE function f(t, z) on the flattened state z (N, C*H*W). */
static nde_tensor *on_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    on_model *m = (on_model *)user;
    nde_tensor *h;
    m->nfe++;
    h = nde_reshape(ctx, z, 4, m->state_shape);
    h = nde_relu(ctx, on_norm_apply(ctx, &m->f_n1, h));
    h = on_concat_conv(ctx, &m->f_c1, t, h);
    h = nde_relu(ctx, on_norm_apply(ctx, &m->f_n2, h));
    h = on_concat_conv(ctx, &m->f_c2, t, h);
    return nde_reshape(ctx, on_norm_apply(ctx, &m->f_n3, h), 2, z->shape);
}

static nde_tensor *on_forward(on_model *m, nde_tensor *x) {
    nde_ctx *ctx = m->ctx;
    nde_tensor *h = nde_conv2d_forward(ctx, &m->stem1, x);
    h = nde_relu(ctx, on_norm_apply(ctx, &m->stem_n1, h));
    h = nde_conv2d_forward(ctx, &m->stem2, h);
    if (!m->small) {
        h = nde_relu(ctx, on_norm_apply(ctx, &m->stem_n2, h));
        h = nde_conv2d_forward(ctx, &m->stem3, h);
    }
    if (!h) return NULL;
    if (m->is_resnet) {
        int i;
        for (i = 0; i < ON_RES_BLOCKS; i++) {
            const on_resblock *b = &m->res[i];
            nde_tensor *r = nde_relu(ctx, on_norm_apply(ctx, &b->n1, h));
            r = nde_conv2d_forward(ctx, &b->c1, r);
            r = nde_relu(ctx, on_norm_apply(ctx, &b->n2, r));
            h = nde_add(ctx, h, nde_conv2d_forward(ctx, &b->c2, r));
        }
    } else {
        nde_real tv[2] = {NDE_R(0.0), NDE_R(1.0)};
        int64_t two = 2, flat[2], i;
        nde_tensor *zs;
        for (i = 0; i < 4; i++) m->state_shape[i] = h->shape[i];
        flat[0] = h->shape[0]; flat[1] = h->size / h->shape[0];
        zs = nde_odeint_adjoint(ctx, on_field, m, nde_reshape(ctx, h, 2, flat), nde_tensor_from(ctx, 1, &two, tv),
                                &m->solve, &m->adj, NULL);
        if (!zs) return NULL;
        h = nde_reshape(ctx, nde_slice(ctx, zs, 0, 1, 2), 4, m->state_shape);   /* z(1) */
    }
    h = nde_relu(ctx, on_norm_apply(ctx, &m->head_n, h));
    return nde_linear_forward(ctx, &m->head, nde_global_avg_pool(ctx, h));
}

/* ---------------------------------------------------------------- data */
/* Random crop of the zero-padded image (torchvision's RandomCrop(size, padding)),
   offsets from Philox (seed, stream = epoch). In place on a host batch. */
static void on_random_crop(nde_real *x, int64_t count, int64_t h, int64_t w, int pad, uint64_t seed, uint64_t stream) {
    nde_rng r = nde_rng_new(seed, stream);
    nde_real *tmp = (nde_real *)malloc((size_t)(h * w) * sizeof(nde_real));
    int64_t i, y, xx;
    if (!tmp) return;
    for (i = 0; i < count; i++) {
        int dy = (int)(nde_rng_uniform1(&r) * (2 * pad + 1)) - pad, dx = (int)(nde_rng_uniform1(&r) * (2 * pad + 1)) - pad;
        nde_real *img = x + i * h * w;
        for (y = 0; y < h; y++)
            for (xx = 0; xx < w; xx++) {
                int64_t sy = y + dy, sx = xx + dx;
                tmp[y * w + xx] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? img[sy * w + sx] : NDE_R(0.0);
            }
        memcpy(img, tmp, (size_t)(h * w) * sizeof(nde_real));
    }
    free(tmp);
}

typedef struct on_epoch_stats { double loss, acc, nfe_forward, nfe_backward, seconds; } on_epoch_stats;

static on_epoch_stats on_train_epoch(on_model *m, const on_args *a, const ex_images *train, int epoch, int64_t *perm) {
    on_epoch_stats st;
    int64_t start, batches = 0, correct = 0, i, j;
    int64_t *labels = (int64_t *)malloc((size_t)a->batch_size * sizeof(int64_t));
    double t0 = ex_now();
    memset(&st, 0, sizeof st);
    if (!labels) return st;
    ex_permutation((uint64_t)a->seed, (uint64_t)epoch, train->n, perm);
    for (start = 0; start < train->n; start += a->batch_size) {
        int64_t count = train->n - start < a->batch_size ? train->n - start : a->batch_size;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *x = ex_batch_images(m->ctx, train, perm + start, count, labels), *logits, *loss;
        if (x && a->data_aug)   /* x->data is host memory: the CPU backend */
            on_random_crop(x->data, count, train->height, train->width, train->height < 16 ? 1 : 4,
                           (uint64_t)a->seed + 1000, (uint64_t)(epoch * 100000 + start));
        m->nfe = 0;
        logits = on_forward(m, x);
        st.nfe_forward += (double)m->nfe;
        loss = nde_cross_entropy(m->ctx, logits, labels);
        if (loss) {
            nde_real *host = (nde_real *)nde_ctx_alloc_host(m->ctx, (size_t)(count * 10) * sizeof(nde_real));
            st.loss += nde_tensor_item(m->ctx, loss, 0);
            if (host && nde_tensor_to_host(m->ctx, logits, host) == NDE_OK)
                for (i = 0; i < count; i++) {
                    int64_t best = 0;
                    for (j = 1; j < 10; j++) if (host[i * 10 + j] > host[i * 10 + best]) best = j;
                    correct += best == labels[i];
                }
            nde_zero_grad(m->ctx);
            m->nfe = 0;
            nde_backward(m->ctx, loss);
            st.nfe_backward += (double)m->nfe;
            nde_optimizer_step(m->ctx, &m->opt);
        }
        nde_ctx_reset(m->ctx, mark);
        batches++;
        if (nde_ctx_status(m->ctx) != NDE_OK) break;
    }
    free(labels);
    st.loss /= (double)(batches ? batches : 1);
    st.nfe_forward /= (double)(batches ? batches : 1);
    st.nfe_backward /= (double)(batches ? batches : 1);
    st.acc = (double)correct / (double)train->n;
    st.seconds = ex_now() - t0;
    return st;
}

static double on_test_accuracy(on_model *m, const on_args *a, const ex_images *test, double *nfe_per_batch) {
    int64_t start, i, j, correct = 0, batches = 0;
    int64_t *idx = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    int64_t *labels = (int64_t *)malloc((size_t)a->test_batch_size * sizeof(int64_t));
    int prev = nde_set_grad_enabled(m->ctx, 0);
    double nfe = 0;
    if (!idx || !labels) { free(idx); free(labels); nde_set_grad_enabled(m->ctx, prev); return NAN; }
    for (start = 0; start < test->n; start += a->test_batch_size) {
        int64_t count = test->n - start < a->test_batch_size ? test->n - start : a->test_batch_size;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *logits;
        nde_real *host = (nde_real *)nde_ctx_alloc_host(m->ctx, (size_t)(count * 10) * sizeof(nde_real));
        for (i = 0; i < count; i++) idx[i] = start + i;
        m->nfe = 0;
        logits = on_forward(m, ex_batch_images(m->ctx, test, idx, count, labels));
        nfe += (double)m->nfe;
        if (logits && host && nde_tensor_to_host(m->ctx, logits, host) == NDE_OK)
            for (i = 0; i < count; i++) {
                int64_t best = 0;
                for (j = 1; j < 10; j++) if (host[i * 10 + j] > host[i * 10 + best]) best = j;
                correct += best == labels[i];
            }
        nde_ctx_reset(m->ctx, mark);
        batches++;
    }
    nde_set_grad_enabled(m->ctx, prev);
    free(idx); free(labels);
    if (nfe_per_batch) *nfe_per_batch = nfe / (double)(batches ? batches : 1);
    return nde_ctx_status(m->ctx) == NDE_OK ? (double)correct / (double)test->n : NAN;
}

/* ---------------------------------------------------------------- run */
typedef struct on_result {
    int epochs_run; double first_loss, last_loss, test_acc, nfe_forward, nfe_backward, seconds_per_epoch; int64_t params;
} on_result;

/* <save>/odenet.svg: training and test accuracy, and the forward / backward
   NFE per training batch, against the epoch (the epochs of this run). */
typedef struct on_history { int n; double *epoch, *train_acc, *test_acc, *nfe_f, *nfe_b; } on_history;

static void on_plot(const on_args *a, const on_history *h) {
    char path[512];
    const double *xs[2], *ys[2];
    const char *labels[2];
    int n[2];
    ex_svg *s;
    ex_path(path, sizeof path, a->save, "/odenet.svg", NULL);
    s = ex_svg_open(path, 900, 380);
    if (!s) { fprintf(stderr, "odenet_mnist: cannot write %s\n", path); return; }
    xs[0] = xs[1] = h->epoch; n[0] = n[1] = h->n;
    ys[0] = h->train_acc; ys[1] = h->test_acc; labels[0] = "train"; labels[1] = "test";
    ex_svg_series(s, 0, 0, 450, 380, "accuracy", "epoch", "accuracy", 2, xs, ys, n, labels, 0, 0);
    ys[0] = h->nfe_f; ys[1] = h->nfe_b; labels[0] = "NFE forward"; labels[1] = "NFE backward";
    ex_svg_series(s, 450, 0, 450, 380, "field evaluations per training batch", "epoch", "NFE", 2, xs, ys, n, labels, 0, 1);
    if (ex_svg_close(s) != 0) fprintf(stderr, "odenet_mnist: cannot write %s\n", path);
}

static int on_run(const on_args *a, on_result *res) {
    on_model m;
    ex_images train, test;
    nde_ctx *dctx;
    double decays[ON_MAX_DECAYS];
    int num_decays, epoch, start_epoch = 0, rc = 1, k;
    int64_t *perm = NULL, steps_per_epoch;
    FILE *log = NULL;
    char path[512];
    on_history hist;
    memset(&hist, 0, sizeof hist);
    memset(res, 0, sizeof *res);
    memset(&m, 0, sizeof m);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    if (a->nepochs < 0 || a->batch_size < 1 || a->test_batch_size < 1 || a->width < 1 || !(a->lr > 0) || !(a->tol > 0) ||
        a->step_size < 0) {
        fprintf(stderr, "odenet_mnist: bad arguments (nepochs >= 0, batch sizes and width >= 1, lr and tol > 0)\n");
        return 2;
    }
    num_decays = a->decay_epochs[0] ? ex_parse_doubles(a->decay_epochs, decays, ON_MAX_DECAYS) : 0;
    if (num_decays < 0) { fprintf(stderr, "odenet_mnist: --decay_epochs: up to %d epochs\n", ON_MAX_DECAYS); return 2; }
    dctx = nde_ctx_new(nde_ctx_desc_default());
    if (!dctx || ex_load_images(dctx, a->data_dir[0] ? a->data_dir : NULL, 1, a->max_train, &train) != NDE_OK ||
        ex_load_images(dctx, a->data_dir[0] ? a->data_dir : NULL, 0, a->max_test, &test) != NDE_OK) {
        fprintf(stderr, "odenet_mnist: %s\n", nde_ctx_message(dctx));
        nde_ctx_free(dctx);
        goto done;
    }
    nde_ctx_free(dctx);
    if (ex_mkdir(a->save) != 0) goto done;
    if (!on_model_init(&m, a, train.height)) goto done;
    steps_per_epoch = (train.n + a->batch_size - 1) / a->batch_size;
    /* SGD, momentum 0.9, lr * batch / 128, x0.1 at each decay epoch */
    m.opt = nde_sgd(a->lr * a->batch_size / 128.0, 0.9, 0);
    m.opt.schedule.kind = NDE_SCHED_PIECEWISE;
    m.opt.schedule.lr_init = m.opt.lr;
    m.opt.schedule.factor = 0.1;
    for (k = 0; k < num_decays; k++) m.opt.schedule.milestones[k] = (int64_t)decays[k] * steps_per_epoch;
    m.opt.schedule.num_milestones = num_decays;
    perm = (int64_t *)malloc((size_t)train.n * sizeof(int64_t));
    hist.epoch = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
    hist.train_acc = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
    hist.test_acc = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
    hist.nfe_f = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
    hist.nfe_b = (double *)calloc((size_t)a->nepochs + 1, sizeof(double));
    if (!perm || !hist.epoch || !hist.train_acc || !hist.test_acc || !hist.nfe_f || !hist.nfe_b) goto done;
    res->params = nde_params_count(m.ctx);
    if (!a->quiet)
        printf("odenet_mnist: %s, width %d, %lld parameters, %s%s; %lld train / %lld test images %lldx%lld from %s\n",
               a->network, a->width, (long long)res->params, m.is_resnet ? "" : a->method,
               m.is_resnet ? "6 residual blocks" : (a->step_size > 0 ? " (fixed steps)" : ""), (long long)train.n,
               (long long)test.n, (long long)train.height, (long long)train.width, train.source);
    ex_path(path, sizeof path, a->save, "/ckpt", NULL);
    if (a->resume) {
        double counters[1] = {0};
        if (ex_checkpoint_load(m.ctx, path, &m.opt, counters, 1) != NDE_OK) {
            fprintf(stderr, "odenet_mnist: --resume: %s\n", nde_ctx_message(m.ctx));
            goto done;
        }
        start_epoch = (int)counters[0];
        if (!a->quiet) printf("resumed after epoch %d\n", start_epoch);
    }
    {
        char lp[512];
        ex_path(lp, sizeof lp, a->save, "/log.csv", NULL);
        log = ex_csv_open(lp, "epoch,lr,seconds,nfe_forward,nfe_backward,train_loss,train_acc,test_acc", a->resume);
        if (!log) goto done;
    }
    {
        ex_progress bar = ex_progress_start(a->nepochs - start_epoch > 0 ? a->nepochs - start_epoch : 1);
        for (epoch = start_epoch; epoch < a->nepochs; epoch++) {
            double lr = nde_optimizer_lr(&m.opt), test_acc, counters[1];
            on_epoch_stats st = on_train_epoch(&m, a, &train, epoch, perm);
            if (nde_ctx_status(m.ctx) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "odenet_mnist: epoch %d: %s\n", epoch + 1, nde_ctx_message(m.ctx));
                goto done;
            }
            test_acc = on_test_accuracy(&m, a, &test, NULL);
            fprintf(log, "%d,%.6g,%.2f,%.1f,%.1f,%.6f,%.4f,%.4f\n", epoch + 1, lr, st.seconds, st.nfe_forward,
                    st.nfe_backward, st.loss, st.acc, test_acc);
            if (epoch == start_epoch) res->first_loss = st.loss;
            res->last_loss = st.loss;
            res->test_acc = test_acc;
            res->nfe_forward = st.nfe_forward;
            res->nfe_backward = st.nfe_backward;
            res->seconds_per_epoch = st.seconds;
            res->epochs_run++;
            hist.epoch[hist.n] = epoch + 1; hist.train_acc[hist.n] = st.acc; hist.test_acc[hist.n] = test_acc;
            hist.nfe_f[hist.n] = st.nfe_forward; hist.nfe_b[hist.n] = st.nfe_backward; hist.n++;
            counters[0] = epoch + 1;
            if (ex_checkpoint_save(m.ctx, path, &m.opt, counters, 1) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "odenet_mnist: %s\n", nde_ctx_message(m.ctx));
                goto done;
            }
            if (!a->quiet) {
                ex_progress_update(&bar, epoch - start_epoch + 1,
                                   "epoch %d  loss %.4f  train acc %.4f  test acc %.4f  NFE-F %.1f  NFE-B %.1f", epoch + 1,
                                   st.loss, st.acc, test_acc, st.nfe_forward, st.nfe_backward);
                ex_progress_finish(&bar);
            }
        }
    }
    if (hist.n > 0) on_plot(a, &hist);
    if (!a->quiet && res->epochs_run)
        printf("final: test accuracy %.4f (error %.2f%%), NFE-F %.1f, NFE-B %.1f per batch, %.1f s per epoch; log %s/log.csv, "
               "plot %s/odenet.svg\n", res->test_acc, 100.0 * (1.0 - res->test_acc), res->nfe_forward, res->nfe_backward,
               res->seconds_per_epoch, a->save, a->save);
    rc = 0;
done:
    if (log) fclose(log);
    free(perm);
    free(hist.epoch); free(hist.train_acc); free(hist.test_acc); free(hist.nfe_f); free(hist.nfe_b);
    on_model_free(&m);
    ex_images_free(&train);
    ex_images_free(&test);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    on_args a;
    on_result res;
    int prc;
    on_args_default(&a);
    {
        ex_flag flags[] = {
            {"network", EX_STRING, &a.network, "odenet or resnet"},
            {"method", EX_STRING, &a.method, "solver of the ODE block (dopri5, rk4, euler, ...)"},
            {"tol", EX_DOUBLE, &a.tol, "rtol = atol of an adaptive solver"},
            {"step_size", EX_DOUBLE, &a.step_size, "fixed step (0: adaptive)"},
            {"adjoint_option", EX_STRING, &a.adjoint_option, "gradient mode: direct, adjoint, gq, interp, checkpoint, gq_step"},
            {"adjoint", EX_BOOL, &a.adjoint, "torchdiffeq's switch: --adjoint_option adjoint"},
            {"width", EX_INT, &a.width, "channels (torchdiffeq: 64)"},
            {"nepochs", EX_INT, &a.nepochs, "epochs"},
            {"decay_epochs", EX_STRING, &a.decay_epochs, "epochs where the learning rate is divided by 10"},
            {"lr", EX_DOUBLE, &a.lr, "learning rate for batch 128"},
            {"batch_size", EX_INT, &a.batch_size, "training batch size"},
            {"test_batch_size", EX_INT, &a.test_batch_size, "test batch size"},
            {"data_aug", EX_BOOL, &a.data_aug, "random crops of the padded images"},
            {"seed", EX_INT, &a.seed, "seed of the initialisation, batch order and crops"},
            {"data_dir", EX_STRING, &a.data_dir, "directory with MNIST's IDX files (default: bundled 8x8 digits)"},
            {"max_train", EX_INT, &a.max_train, "use the first N training images (0: all)"},
            {"max_test", EX_INT, &a.max_test, "use the first N test images (0: all)"},
            {"save", EX_STRING, &a.save, "output directory"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoint in --save"},
        };
        prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "ODE-Net image classifier (torchdiffeq's odenet_mnist design)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    return on_run(&a, &res);
}
#endif
