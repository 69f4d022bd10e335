// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/taylorized.c -o taylorized -lm
/* examples/taylorized.c - Taylorized training (Bai, Krause, Wang, Xiong, Socher,
   "Taylorized Training: Towards Better Approximation of Neural Network Training
   at Finite Width", 2020), written with nde.

   A CNN (--n_layers 3x3 convolutions of --n_channels channels, each followed by
   ReLU, global average pooling, a linear read-out; the research code's
   CNNTHIN) is trained in full and, from the SAME initialisation theta0 with
   the SAME mini-batch order, as its order-k Taylor expansions in the
   parameters for k = 1..--expand_order,

       f_k(x; theta) = sum_{j<=k} D^j_theta f(x; theta0)[theta - theta0]^j / j!,

   (k = 1 is the linearised / NTK model). nde evaluates f_k with ONE Taylor-mode
   jet along theta(s) = theta0 + s (theta - theta0) at s = 1
   (nde_taylorized_forward), and reverse mode through the jet gives its
   gradient, so every model trains with the ordinary optimizer: the research
   code's momentum SGD (--momentum), step decay of the learning rate by
   --decay_factor at --decay_epoch and --decay_epoch_2, gradient-norm clipping
   at --grad_norm_thresh, and its logistic loss (the softmax cross-entropy over
   the classes). Initialisation as the research code's: Glorot-normal weights,
   N(0, 1e-6^2) biases; images standardised by the training set's mean and
   standard deviation.

   After every epoch, on the test set: the test accuracy and loss of each model,
   the agreement of each Taylorized model's predicted classes with the full
   network's, the relative distance of its logits to the full network's, and
   the parameter distances ||theta - theta0|| and ||theta_k - theta_full||.
   Written to <save>/log.csv and plotted in <save>/taylorized.svg.

   Data (--data): digits, the bundled 8x8 digits (examples/data, 1437 train /
   360 test images; with --data_dir, MNIST's IDX files instead); mnist
   (--data_dir with train-images-idx3-ubyte etc.); cifar10, the paper's data
   set (not available offline: --data_dir is the extracted
   cifar-10-batches-bin of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz,
   data_batch_1..5.bin and test_batch.bin), with the research code's
   augmentation (--data_augment, on by default: random crops of the image
   zero-padded by 4 and horizontal flips, drawn from (--init_seed, epoch,
   batch) so every model sees the same augmented batches). --task even_odd
   turns the labels into the binary even/odd task. Digits and MNIST are not
   augmented, and the convolutions pad by 1 (the research code's are
   unpadded: 8x8 images would vanish after four of them).

   Flags use the research code's names (taylorized_train.py: --data,
   --data_augment, --epochs, --init_seed, --n_channels, --n_layers, --loss,
   --expand_order, --lr, --momentum, --weight_decay, --decay_epoch,
   --decay_epoch_2, --decay_factor, --grad_norm_thresh, --batch_size_train,
   --batch_size_test); --save, --resume, --data_dir, --task, --max_train,
   --max_test are ours. Run from the
   repository root (the bundled data are found relative to the source path).

   Default (about 2.5 CPU minutes): 16 channels, 12 epochs of batch 32 (45 steps
   per epoch), momentum 0.9, decay at epochs 6 and 9:
       ./taylorized
   The research code's CNNTHIN run (128 channels, batch 256, plain SGD with
   lr 0.1, gradient norm clipped at 5, 200 epochs, decay at 100 and 150, on
   CIFAR-10):
       ./taylorized --data cifar10 --data_dir cifar-10-batches-bin --n_channels 128 \
           --batch_size_train 256 --batch_size_test 256 --lr 0.1 --momentum 0 --grad_norm_thresh 5 \
           --epochs 200 --decay_epoch 100 --decay_epoch_2 150
*/
#define NDE_IMPLEMENTATION
#include "common.h"

#define TZ_MAX_LAYERS 8
#define TZ_MAX_ORDER 6
#define TZ_MAX_MODELS (TZ_MAX_ORDER + 1)

typedef struct tz_args {
    int epochs, init_seed, batch_size_train, batch_size_test;
    int n_channels, n_layers, expand_order;
    double lr, momentum, weight_decay, grad_norm_thresh, decay_factor;
    int decay_epoch, decay_epoch_2;
    const char *loss, *task, *data, *data_dir, *save;
    int resume, max_train, max_test, quiet, data_augment;
} tz_args;

static void tz_args_default(tz_args *a) {
    memset(a, 0, sizeof *a);
    a->epochs = 12; a->init_seed = 100; a->batch_size_train = 32; a->batch_size_test = 256;
    a->n_channels = 16; a->n_layers = 4; a->expand_order = 4;
    a->lr = 0.1; a->momentum = 0.9; a->weight_decay = 0.0; a->grad_norm_thresh = 5.0; a->decay_factor = 0.1;
    a->decay_epoch = 6; a->decay_epoch_2 = 9;
    a->loss = "logistic"; a->task = "digits"; a->data = "digits"; a->data_dir = "";
    a->data_augment = 1; a->save = "taylorized_out";
}

/* ---------------------------------------------------------------- the model */
typedef struct tz_model {
    nde_ctx *ctx;
    int order;                         /* 0: the full network; k: order-k Taylorized */
    int num_layers, num_classes;
    nde_conv2d_layer conv[TZ_MAX_LAYERS];
    nde_linear head;
    nde_optimizer opt;
    nde_taylorized tz;
    double train_loss;                 /* mean over the last epoch's batches */
} tz_model;

/* Glorot-normal weights, N(0, 1e-6^2) biases: jax.experimental.stax's
   defaults, which the research code's standard parameterisation uses. */
static void tz_glorot(nde_ctx *ctx, nde_tensor *w, nde_tensor *b, double fan_in, double fan_out, uint64_t seed,
                      uint64_t stream) {
    nde_rng r = nde_rng_new(seed, stream);
    nde_tensor_fill_normal(ctx, w, &r, NDE_R(0.0), (nde_real)sqrt(2.0 / (fan_in + fan_out)));
    if (b) nde_tensor_fill_normal(ctx, b, &r, NDE_R(0.0), NDE_R(1e-6));
}

static nde_status tz_model_init(tz_model *m, const tz_args *a, int order, int in_channels, int num_classes) {
    int l;
    char name[32];
    memset(m, 0, sizeof *m);
    m->ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!m->ctx) return NDE_ERR_OOM;
    m->order = order;
    m->num_layers = a->n_layers;
    m->num_classes = num_classes;
    for (l = 0; l < a->n_layers; l++) {
        int in = l ? a->n_channels : in_channels;
        snprintf(name, sizeof name, "conv%d", l);
        nde_conv2d_init(m->ctx, &m->conv[l], name, in, a->n_channels, 3, 1, 1, 1, (uint64_t)a->init_seed);
        tz_glorot(m->ctx, m->conv[l].weight, m->conv[l].bias, 9.0 * in, 9.0 * a->n_channels, (uint64_t)a->init_seed,
                  (uint64_t)l);
    }
    nde_linear_init(m->ctx, &m->head, "head", a->n_channels, num_classes, 1, (uint64_t)a->init_seed);
    tz_glorot(m->ctx, m->head.weight, m->head.bias, a->n_channels, num_classes, (uint64_t)a->init_seed, 100);
    m->opt = nde_sgd(a->lr, a->momentum, 0);
    m->opt.weight_decay = a->weight_decay;
    m->opt.clip_grad_norm = a->grad_norm_thresh;
    if (order > 0) nde_taylorized_init(m->ctx, &m->tz, order);
    return nde_ctx_status(m->ctx);
}
static void tz_model_free(tz_model *m) {
    if (!m->ctx) return;
    if (m->order > 0) nde_taylorized_free(m->ctx, &m->tz);
    nde_ctx_free(m->ctx);
    m->ctx = NULL;
}

/* The step decay of the research code, as an nde schedule in optimizer steps. */
static void tz_set_schedule(tz_model *m, const tz_args *a, int64_t steps_per_epoch) {
    nde_schedule *s = &m->opt.schedule;
    s->kind = NDE_SCHED_PIECEWISE;
    s->lr_init = a->lr;
    s->factor = a->decay_factor;
    s->num_milestones = 0;
    if (a->decay_epoch > 0) s->milestones[s->num_milestones++] = (int64_t)a->decay_epoch * steps_per_epoch;
    if (a->decay_epoch_2 > a->decay_epoch) s->milestones[s->num_milestones++] = (int64_t)a->decay_epoch_2 * steps_per_epoch;
}

/* f(x; theta): conv-ReLU blocks, global average pooling, linear. */
static nde_tensor *tz_forward(nde_ctx *ctx, const tz_model *m, nde_tensor *x) {
    int l;
    for (l = 0; l < m->num_layers; l++) x = nde_relu(ctx, nde_conv2d_forward(ctx, &m->conv[l], x));
    return nde_linear_forward(ctx, &m->head, nde_global_avg_pool(ctx, x));
}
/* The same network on jets (its parameters enter through nde_jet_param). */
static nde_jet *tz_forward_jet(nde_ctx *ctx, nde_jet *x, void *user) {
    const tz_model *m = (const tz_model *)user;
    int l;
    for (l = 0; l < m->num_layers; l++) x = nde_jet_relu(ctx, nde_jet_conv2d_forward(ctx, &m->conv[l], x));
    return nde_jet_linear_forward(ctx, &m->head, nde_jet_global_avg_pool(ctx, x));
}
/* Logits of the model: the network itself, or its order-k expansion at theta0. */
static nde_tensor *tz_logits(tz_model *m, nde_tensor *x) {
    if (m->order == 0) return tz_forward(m->ctx, m, x);
    return nde_taylorized_forward(m->ctx, &m->tz, tz_forward_jet, m, x);
}

/* The research code's losses: "logistic" = mean softmax cross-entropy;
   "squared" = mean over rows of ||logits - onehot||^2. */
static nde_tensor *tz_loss(nde_ctx *ctx, const char *kind, nde_tensor *logits, const int64_t *labels) {
    if (!strcmp(kind, "squared")) {
        int64_t i, n = logits->shape[0], k = logits->shape[1];
        nde_real *onehot = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(n * k) * sizeof(nde_real));
        if (!onehot) return NULL;
        for (i = 0; i < n * k; i++) onehot[i] = NDE_R(0.0);
        for (i = 0; i < n; i++) onehot[i * k + labels[i]] = NDE_R(1.0);
        return nde_scale(ctx, nde_mse_loss(ctx, logits, nde_tensor_from(ctx, 2, logits->shape, onehot)), (nde_real)k);
    }
    return nde_cross_entropy(ctx, logits, labels);
}

/* ---------------------------------------------------------------- data */
typedef struct tz_data { ex_images train, test; int num_classes, augment; } tz_data;

/* CIFAR-10's binary version (cifar-10-batches-bin): data_batch_1..5.bin (train)
   or test_batch.bin, each record one label byte and 3 x 32 x 32 pixel bytes
   (red, green, blue planes, rows top to bottom). max_n > 0 keeps the first
   max_n images. Pixels divided by 255. */
static nde_status tz_load_cifar10(nde_ctx *ctx, const char *dir, int train, int64_t max_n, ex_images *out) {
    enum { REC = 1 + 3 * 32 * 32, PER_FILE = 10000 };
    int files = train ? 5 : 1, f;
    int64_t cap = (int64_t)files * PER_FILE, n = 0, j;
    unsigned char *rec = (unsigned char *)malloc(REC);
    memset(out, 0, sizeof *out);
    if (max_n > 0 && max_n < cap) cap = max_n;
    out->x = (nde_real *)malloc((size_t)cap * (REC - 1) * sizeof(nde_real));
    out->y = (int64_t *)malloc((size_t)cap * sizeof(int64_t));
    if (!rec || !out->x || !out->y) {
        free(rec); ex_images_free(out);
        return nde_ctx_fail(ctx, NDE_ERR_OOM, "taylorized: out of memory for CIFAR-10");
    }
    for (f = 0; f < files && n < cap; f++) {
        char name[32], path[600];
        FILE *fp;
        int64_t in_file = 0;
        if (train) snprintf(name, sizeof name, "/data_batch_%d.bin", f + 1);
        else snprintf(name, sizeof name, "/test_batch.bin");
        ex_path(path, sizeof path, dir, name, NULL);
        fp = fopen(path, "rb");
        if (!fp) {
            free(rec); ex_images_free(out);
            return nde_ctx_fail(ctx, NDE_ERR_IO, "taylorized: cannot open '%s' (CIFAR-10 binary version)", path);
        }
        for (;;) {
            size_t got;
            int label;
            if (n >= cap) break;
            got = fread(rec, 1, REC, fp);
            if (got == 0 && feof(fp)) break;
            label = got == (size_t)REC ? rec[0] : -1;
            if (label < 0 || label > 9) {
                fclose(fp); free(rec); ex_images_free(out);
                return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "taylorized: '%s' record %lld: %s (CIFAR-10 binary records are "
                                    "%d bytes, labels 0..9)", path, (long long)in_file,
                                    label < 0 ? "truncated" : "label outside 0..9", REC);
            }
            out->y[n] = label;
            for (j = 0; j < REC - 1; j++) out->x[n * (REC - 1) + j] = (nde_real)rec[1 + j] / NDE_R(255.0);
            n++; in_file++;
        }
        fclose(fp);
        if (in_file == 0) {
            free(rec); ex_images_free(out);
            return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "taylorized: '%s' holds no CIFAR-10 records", path);
        }
    }
    free(rec);
    out->n = n; out->channels = 3; out->height = 32; out->width = 32;
    ex_path(out->source, sizeof out->source, dir, train ? "/data_batch_*.bin" : "/test_batch.bin", NULL);
    return NDE_OK;
}

/* --data digits (bundled; with --data_dir: MNIST), mnist, cifar10. */
static nde_status tz_data_load(nde_ctx *ctx, const tz_args *a, tz_data *d) {
    int64_t i;
    const char *dir = a->data_dir[0] ? a->data_dir : NULL;   /* "": the bundled digits */
    memset(d, 0, sizeof *d);
    if (!strcmp(a->data, "cifar10")) {
        if (!dir) return nde_ctx_fail(ctx, NDE_ERR_ARG, "taylorized: --data cifar10 needs --data_dir (cifar-10-batches-bin)");
        if (tz_load_cifar10(ctx, dir, 1, a->max_train, &d->train) != NDE_OK) return nde_ctx_status(ctx);
        if (tz_load_cifar10(ctx, dir, 0, a->max_test, &d->test) != NDE_OK) return nde_ctx_status(ctx);
        d->augment = a->data_augment;
    } else if (!strcmp(a->data, "digits") || !strcmp(a->data, "mnist")) {
        if (!strcmp(a->data, "mnist") && !dir) return nde_ctx_fail(ctx, NDE_ERR_ARG, "taylorized: --data mnist needs --data_dir");
        if (ex_load_images(ctx, dir, 1, a->max_train, &d->train) != NDE_OK) return nde_ctx_status(ctx);
        if (ex_load_images(ctx, dir, 0, a->max_test, &d->test) != NDE_OK) return nde_ctx_status(ctx);
    } else {
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "taylorized: --data must be digits, mnist or cifar10, not '%s'", a->data);
    }
    ex_images_standardize(&d->train, &d->test);
    d->num_classes = 10;
    if (!strcmp(a->task, "even_odd")) {
        for (i = 0; i < d->train.n; i++) d->train.y[i] %= 2;
        for (i = 0; i < d->test.n; i++) d->test.y[i] %= 2;
        d->num_classes = 2;
    } else if (strcmp(a->task, "digits") != 0) {
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "taylorized: --task must be digits or even_odd, not '%s'", a->task);
    }
    return NDE_OK;
}
static void tz_data_free(tz_data *d) { ex_images_free(&d->train); ex_images_free(&d->test); }

/* CIFAR's augmentation (the research code's): a random 32x32 crop of the image
   zero-padded by 4 and a horizontal flip with probability 1/2, in place on a
   host batch (count, C, H, W); Philox (seed, stream): the same for every model. */
static void tz_augment(nde_real *x, int64_t count, int64_t c, int64_t h, int64_t w, uint64_t seed, uint64_t stream) {
    nde_rng r = nde_rng_new(seed, stream);
    nde_real *tmp = (nde_real *)malloc((size_t)(c * h * w) * sizeof(nde_real));
    int64_t i, ch, y, xx;
    if (!tmp) return;
    for (i = 0; i < count; i++) {
        int dy = (int)(nde_rng_uniform1(&r) * 9) - 4, dx = (int)(nde_rng_uniform1(&r) * 9) - 4;
        int flip = nde_rng_uniform1(&r) < 0.5;
        nde_real *img = x + i * c * h * w;
        for (ch = 0; ch < c; ch++)
            for (y = 0; y < h; y++)
                for (xx = 0; xx < w; xx++) {
                    int64_t sy = y + dy, sx = (flip ? w - 1 - xx : xx) + dx;
                    tmp[(ch * h + y) * w + xx] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? img[(ch * h + sy) * w + sx] : NDE_R(0.0);
                }
        memcpy(img, tmp, (size_t)(c * h * w) * sizeof(nde_real));
    }
    free(tmp);
}

/* ---------------------------------------------------------------- training */
/* One epoch of mini-batch steps over the permutation perm; returns the mean loss. */
static double tz_train_epoch(tz_model *m, const tz_args *a, const ex_images *train, const int64_t *perm, int augment,
                             int epoch) {
    int64_t start, batches = 0;
    double sum = 0.0;
    int64_t *labels = (int64_t *)malloc((size_t)a->batch_size_train * sizeof(int64_t));
    if (!labels) { nde_ctx_fail(m->ctx, NDE_ERR_OOM, "taylorized: out of memory"); return NAN; }
    for (start = 0; start < train->n; start += a->batch_size_train) {
        int64_t count = train->n - start < a->batch_size_train ? train->n - start : a->batch_size_train;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *x = ex_batch_images(m->ctx, train, perm + start, count, labels), *loss;
        if (x && augment)   /* x->data is host memory: the CPU backend */
            tz_augment(x->data, count, train->channels, train->height, train->width, (uint64_t)a->init_seed + 7,
                       (uint64_t)epoch * 1048576u + (uint64_t)start);
        loss = tz_loss(m->ctx, a->loss, tz_logits(m, x), labels);
        if (loss) {
            sum += nde_tensor_item(m->ctx, loss, 0);
            nde_zero_grad(m->ctx);
            nde_backward(m->ctx, loss);
            nde_optimizer_step(m->ctx, &m->opt);
        }
        nde_ctx_reset(m->ctx, mark);
        batches++;
        if (nde_ctx_status(m->ctx) != NDE_OK) break;
    }
    free(labels);
    return batches ? sum / (double)batches : NAN;
}

/* Test-set logits (n, classes) into host memory; returns the mean test loss. */
static double tz_test_logits(tz_model *m, const tz_args *a, const ex_images *test, nde_real *logits) {
    int64_t start, i;
    double loss_sum = 0.0;
    int64_t *idx = (int64_t *)malloc((size_t)a->batch_size_test * sizeof(int64_t));
    int64_t *labels = (int64_t *)malloc((size_t)a->batch_size_test * sizeof(int64_t));
    int prev = nde_set_grad_enabled(m->ctx, 0);
    if (!idx || !labels) { free(idx); free(labels); nde_set_grad_enabled(m->ctx, prev); return NAN; }
    for (start = 0; start < test->n; start += a->batch_size_test) {
        int64_t count = test->n - start < a->batch_size_test ? test->n - start : a->batch_size_test;
        nde_mark mark = nde_ctx_mark(m->ctx);
        nde_tensor *x, *out, *loss;
        for (i = 0; i < count; i++) idx[i] = start + i;
        x = ex_batch_images(m->ctx, test, idx, count, labels);
        out = tz_logits(m, x);
        loss = tz_loss(m->ctx, a->loss, out, labels);
        if (loss) {
            loss_sum += (double)nde_tensor_item(m->ctx, loss, 0) * (double)count;
            nde_tensor_to_host(m->ctx, out, logits + start * m->num_classes);
        }
        nde_ctx_reset(m->ctx, mark);
    }
    nde_set_grad_enabled(m->ctx, prev);
    free(idx); free(labels);
    return loss_sum / (double)test->n;
}

static int64_t tz_argmax(const nde_real *row, int k) {
    int j, best = 0;
    for (j = 1; j < k; j++) if (row[j] > row[best]) best = j;
    return best;
}

/* ||a - b|| over n parameters (host memory: the CPU backend). */
static double tz_param_dist(int64_t n, const nde_real *a, const nde_real *b) {
    int64_t i;
    double s = 0.0;
    for (i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return sqrt(s);
}

typedef struct tz_metrics {
    double train_loss, test_loss, test_acc, agreement, logit_dist, dist_init, dist_full;
} tz_metrics;

typedef struct tz_result {
    int num_models, epochs_run;
    tz_metrics first[TZ_MAX_MODELS], last[TZ_MAX_MODELS];
    double seconds;
} tz_result;

static const char *tz_model_name(int order) {
    static const char *names[] = {"full", "order1", "order2", "order3", "order4", "order5", "order6"};
    return names[order];
}

/* Evaluates every model on the test set. theta0: the common initialisation. */
static void tz_evaluate(tz_model *models, int count, const tz_args *a, const ex_images *test, const nde_real *theta0,
                        tz_metrics *out) {
    int k, classes = models[0].num_classes;
    int64_t i, n = test->n;
    nde_real *logits[TZ_MAX_MODELS];
    double full_norm = 0.0;
    for (k = 0; k < count; k++) {
        logits[k] = (nde_real *)malloc((size_t)(n * classes) * sizeof(nde_real));
        if (!logits[k]) { nde_ctx_fail(models[k].ctx, NDE_ERR_OOM, "taylorized: out of memory"); return; }
        out[k].test_loss = tz_test_logits(&models[k], a, test, logits[k]);
        out[k].train_loss = models[k].train_loss;
    }
    for (i = 0; i < n * classes; i++) full_norm += (double)logits[0][i] * (double)logits[0][i];
    for (k = 0; k < count; k++) {
        int64_t correct = 0, agree = 0;
        double diff = 0.0;
        for (i = 0; i < n; i++) {
            int64_t p = tz_argmax(logits[k] + i * classes, classes);
            correct += p == test->y[i];
            agree += p == tz_argmax(logits[0] + i * classes, classes);
        }
        for (i = 0; i < n * classes; i++) {
            double d = (double)logits[k][i] - (double)logits[0][i];
            diff += d * d;
        }
        out[k].test_acc = (double)correct / (double)n;
        out[k].agreement = (double)agree / (double)n;
        out[k].logit_dist = sqrt(diff / (full_norm > 0 ? full_norm : 1.0));
        int64_t np = nde_params_count(models[k].ctx);
        out[k].dist_init = tz_param_dist(np, nde_params_data(models[k].ctx), theta0);
        out[k].dist_full = tz_param_dist(np, nde_params_data(models[k].ctx), nde_params_data(models[0].ctx));
    }
    for (k = 0; k < count; k++) free(logits[k]);
}

static void tz_checkpoint_path(char *buf, size_t len, const tz_args *a, int order) {
    ex_path(buf, len, a->save, "/ckpt_", tz_model_name(order));
}

/* ---------------------------------------------------------------- plot */
typedef struct tz_history { int n; double *epoch, *acc[TZ_MAX_MODELS], *agree[TZ_MAX_MODELS], *dist[TZ_MAX_MODELS]; } tz_history;

static void tz_plot(const tz_args *a, const tz_history *h, int count) {
    char path[512];
    const double *xs[TZ_MAX_MODELS], *ys[TZ_MAX_MODELS];
    const char *labels[TZ_MAX_MODELS];
    int n[TZ_MAX_MODELS], k;
    ex_svg *s;
    ex_path(path, sizeof path, a->save, "/taylorized.svg", NULL);
    s = ex_svg_open(path, 1200, 380);
    if (!s) { fprintf(stderr, "cannot write %s\n", path); return; }
    for (k = 0; k < count; k++) { xs[k] = h->epoch; n[k] = h->n; labels[k] = tz_model_name(k); ys[k] = h->acc[k]; }
    ex_svg_series(s, 0, 0, 400, 380, "test accuracy", "epoch", "accuracy", count, xs, ys, n, labels, 0, 0);
    for (k = 0; k < count; k++) ys[k] = h->agree[k];   /* the full network's own line (1) keeps the colours */
    ex_svg_series(s, 400, 0, 400, 380, "agreement with the full network", "epoch", "fraction", count, xs, ys, n,
                  labels, 0, 0);
    for (k = 0; k < count; k++) { ys[k] = h->dist[k]; labels[k] = tz_model_name(k); }
    ex_svg_series(s, 800, 0, 400, 380, "||theta - theta0||", "epoch", "distance", count, xs, ys, n, labels, 0, 1);
    if (ex_svg_close(s) != 0) fprintf(stderr, "cannot write %s\n", path);
}

/* ---------------------------------------------------------------- run */
static int tz_check_args(const tz_args *a) {
    if (a->epochs < 0 || a->batch_size_train < 1 || a->batch_size_test < 1 || a->n_channels < 1 || a->n_layers < 1 ||
        a->n_layers > TZ_MAX_LAYERS || a->expand_order < 0 || a->expand_order > TZ_MAX_ORDER || !(a->lr > 0) ||
        a->momentum < 0 || a->grad_norm_thresh < 0 || (strcmp(a->loss, "logistic") && strcmp(a->loss, "squared"))) {
        fprintf(stderr, "taylorized: bad arguments: need epochs >= 0, batch sizes >= 1, n_channels >= 1, "
                        "n_layers 1..%d, expand_order 0..%d, lr > 0, momentum >= 0, grad_norm_thresh >= 0, "
                        "loss logistic|squared\n", TZ_MAX_LAYERS, TZ_MAX_ORDER);
        return 0;
    }
    return 1;
}

/* Trains the full network and its Taylorizations; 0 on success. */
static int tz_run(const tz_args *a, tz_result *res) {
    tz_model models[TZ_MAX_MODELS];
    tz_data data;
    tz_history hist;
    nde_real *theta0 = NULL;
    int count = a->expand_order + 1, k, epoch, start_epoch = 0, rc = 1;
    int64_t steps_per_epoch, *perm = NULL;
    FILE *log = NULL;
    char path[1024];
    ex_progress bar;
    nde_ctx *dctx;
    memset(res, 0, sizeof *res);
    memset(models, 0, sizeof models);
    memset(&hist, 0, sizeof hist);
    if (!tz_check_args(a)) return 2;
    if (ex_mkdir(a->save) != 0) return 1;
    dctx = nde_ctx_new(nde_ctx_desc_default());
    if (!dctx || tz_data_load(dctx, a, &data) != NDE_OK) {
        fprintf(stderr, "taylorized: %s\n", nde_ctx_message(dctx));
        nde_ctx_free(dctx);
        return 1;
    }
    nde_ctx_free(dctx);
    steps_per_epoch = (data.train.n + a->batch_size_train - 1) / a->batch_size_train;
    for (k = 0; k < count; k++) {
        if (tz_model_init(&models[k], a, k, (int)data.train.channels, data.num_classes) != NDE_OK) {
            fprintf(stderr, "taylorized: %s\n", nde_ctx_message(models[k].ctx));
            goto done;
        }
        tz_set_schedule(&models[k], a, steps_per_epoch);
    }
    theta0 = (nde_real *)malloc((size_t)nde_params_count(models[0].ctx) * sizeof(nde_real));
    perm = (int64_t *)malloc((size_t)data.train.n * sizeof(int64_t));
    hist.epoch = (double *)calloc((size_t)a->epochs + 1, sizeof(double));
    for (k = 0; k < count; k++) {
        hist.acc[k] = (double *)calloc((size_t)a->epochs + 1, sizeof(double));
        hist.agree[k] = (double *)calloc((size_t)a->epochs + 1, sizeof(double));
        hist.dist[k] = (double *)calloc((size_t)a->epochs + 1, sizeof(double));
        if (!hist.acc[k] || !hist.agree[k] || !hist.dist[k]) goto oom;
    }
    if (!theta0 || !perm || !hist.epoch) goto oom;
    memcpy(theta0, nde_params_data(models[0].ctx), (size_t)nde_params_count(models[0].ctx) * sizeof(nde_real));
    if (!a->quiet)
        printf("taylorized: %lld train / %lld test images %lldx%lld from %s, %d classes, %lld parameters, "
               "models: full + orders 1..%d\n", (long long)data.train.n, (long long)data.test.n,
               (long long)data.train.height, (long long)data.train.width, data.train.source, data.num_classes,
               (long long)nde_params_count(models[0].ctx), a->expand_order);
    if (a->resume) {
        double counters[1] = {0};
        for (k = 0; k < count; k++) {
            tz_checkpoint_path(path, sizeof path, a, k);
            if (ex_checkpoint_load(models[k].ctx, path, &models[k].opt, counters, 1) != NDE_OK) {
                fprintf(stderr, "taylorized: --resume: %s\n", nde_ctx_message(models[k].ctx));
                goto done;
            }
            if (k == 0) start_epoch = (int)counters[0];
            else if ((int)counters[0] != start_epoch) {
                fprintf(stderr, "taylorized: --resume: the checkpoints are from different epochs\n");
                goto done;
            }
        }
        if (!a->quiet) printf("resumed after epoch %d\n", start_epoch);
    }
    ex_path(path, sizeof path, a->save, "/log.csv", NULL);
    log = ex_csv_open(path, "epoch,model,order,lr,train_loss,test_loss,test_acc,agreement_with_full,"
                            "logit_dist_to_full,param_dist_to_init,param_dist_to_full,seconds", a->resume);
    if (!log) goto done;
    bar = ex_progress_start((long)((a->epochs - start_epoch > 0 ? a->epochs - start_epoch : 0) * count));
    for (epoch = start_epoch; epoch < a->epochs; epoch++) {
        tz_metrics m[TZ_MAX_MODELS];
        double lr = nde_optimizer_lr(&models[0].opt);
        /* the same order of mini-batches for every model: a Philox shuffle keyed by (seed, epoch) */
        ex_permutation((uint64_t)a->init_seed, (uint64_t)epoch, data.train.n, perm);
        for (k = 0; k < count; k++) {
            models[k].train_loss = tz_train_epoch(&models[k], a, &data.train, perm, data.augment, epoch);
            if (nde_ctx_status(models[k].ctx) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "taylorized: %s: %s\n", tz_model_name(k), nde_ctx_message(models[k].ctx));
                goto done;
            }
            if (!a->quiet)
                ex_progress_update(&bar, (long)((epoch - start_epoch) * count + k + 1), "epoch %d  %s loss %.4f", epoch + 1,
                               tz_model_name(k), models[k].train_loss);
        }
        tz_evaluate(models, count, a, &data.test, theta0, m);
        for (k = 0; k < count; k++) {
            fprintf(log, "%d,%s,%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f\n", epoch + 1, tz_model_name(k), k, lr,
                    m[k].train_loss, m[k].test_loss, m[k].test_acc, m[k].agreement, m[k].logit_dist, m[k].dist_init,
                    m[k].dist_full, ex_progress_elapsed(&bar));
            if (epoch == start_epoch) res->first[k] = m[k];
            res->last[k] = m[k];
            hist.acc[k][hist.n] = m[k].test_acc;
            hist.agree[k][hist.n] = m[k].agreement;
            hist.dist[k][hist.n] = m[k].dist_init;
        }
        hist.epoch[hist.n++] = epoch + 1;
        res->epochs_run++;
        for (k = 0; k < count; k++) {
            double counters[1];
            counters[0] = epoch + 1;
            tz_checkpoint_path(path, sizeof path, a, k);
            if (ex_checkpoint_save(models[k].ctx, path, &models[k].opt, counters, 1) != NDE_OK) {
                ex_progress_finish(&bar);
                fprintf(stderr, "taylorized: %s\n", nde_ctx_message(models[k].ctx));
                goto done;
            }
        }
    }
    ex_progress_finish(&bar);
    res->num_models = count;
    res->seconds = ex_progress_elapsed(&bar);
    if (hist.n > 0) tz_plot(a, &hist, count);
    if (!a->quiet && res->epochs_run > 0) {
        printf("after epoch %d (%.1f s):\n  model   test_acc  agreement  logit_dist  |theta-theta0|  |theta-theta_full|\n",
               a->epochs, res->seconds);
        for (k = 0; k < count; k++)
            printf("  %-7s %8.4f  %9.4f  %10.4f  %14.4f  %18.4f\n", tz_model_name(k), res->last[k].test_acc,
                   res->last[k].agreement, res->last[k].logit_dist, res->last[k].dist_init, res->last[k].dist_full);
        printf("log: %s/log.csv  plot: %s/taylorized.svg  checkpoints: %s/ckpt_*\n", a->save, a->save, a->save);
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "taylorized: out of memory\n");
done:
    if (log) fclose(log);
    for (k = 0; k < count; k++) {
        tz_model_free(&models[k]);
        free(hist.acc[k]); free(hist.agree[k]); free(hist.dist[k]);
    }
    free(hist.epoch); free(theta0); free(perm);
    tz_data_free(&data);
    return rc;
}

#ifndef EXAMPLE_NO_MAIN
int main(int argc, char **argv) {
    tz_args a;
    tz_result res;
    int rc;
    tz_args_default(&a);
    {
        ex_flag flags[] = {
            {"epochs", EX_INT, &a.epochs, "training epochs"},
            {"init_seed", EX_INT, &a.init_seed, "seed of the initialisation and the mini-batch order"},
            {"batch_size_train", EX_INT, &a.batch_size_train, "training batch size"},
            {"batch_size_test", EX_INT, &a.batch_size_test, "test batch size"},
            {"n_channels", EX_INT, &a.n_channels, "channels per convolution (paper: 128)"},
            {"n_layers", EX_INT, &a.n_layers, "convolution layers"},
            {"expand_order", EX_INT, &a.expand_order, "train Taylorized models of orders 1..this"},
            {"lr", EX_DOUBLE, &a.lr, "initial learning rate"},
            {"momentum", EX_DOUBLE, &a.momentum, "SGD momentum (the paper's run: 0)"},
            {"weight_decay", EX_DOUBLE, &a.weight_decay, "L2 weight decay"},
            {"grad_norm_thresh", EX_DOUBLE, &a.grad_norm_thresh, "clip the gradient norm to this (0: off)"},
            {"decay_epoch", EX_INT, &a.decay_epoch, "first learning-rate decay epoch (0: none)"},
            {"decay_epoch_2", EX_INT, &a.decay_epoch_2, "second learning-rate decay epoch"},
            {"decay_factor", EX_DOUBLE, &a.decay_factor, "learning-rate decay factor"},
            {"loss", EX_STRING, &a.loss, "logistic (softmax cross-entropy) or squared"},
            {"task", EX_STRING, &a.task, "digits (10 classes) or even_odd (2 classes)"},
            {"data", EX_STRING, &a.data, "digits (bundled 8x8; MNIST with --data_dir), mnist, cifar10"},
            {"data_dir", EX_STRING, &a.data_dir, "directory with MNIST's IDX files or CIFAR-10's binary batches"},
            {"data_augment", EX_BOOL, &a.data_augment, "random crops and flips of CIFAR-10 training images"},
            {"max_train", EX_INT, &a.max_train, "use the first N training images (0: all)"},
            {"max_test", EX_INT, &a.max_test, "use the first N test images (0: all)"},
            {"save", EX_STRING, &a.save, "output directory (log.csv, taylorized.svg, checkpoints)"},
            {"resume", EX_BOOL, &a.resume, "continue from the checkpoints in --save"},
        };
        int prc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                                 "full and Taylorized training of a CNN (Bai et al. 2020)");
        if (prc) return prc < 0 ? 2 : 0;
    }
    rc = tz_run(&a, &res);
    return rc;
}
#endif
