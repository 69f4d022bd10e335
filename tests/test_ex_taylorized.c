/* tests/test_ex_taylorized.c - examples/taylorized.c: the Taylorized models
   equal the network at theta0 and approximate it to order k + 1 around it; a
   tiny training run lowers every model's loss; a run resumed from its
   checkpoint ends in exactly the state of an uninterrupted run; the bundled
   digits and the Philox shuffle. */
#define EXAMPLE_NO_MAIN
#include "../examples/taylorized.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

#ifdef NDE_DOUBLE
#define TOL 1e-12
#else
#define TOL 2e-5
#endif

static void tiny_args(tz_args *a, const char *save) {
    tz_args_default(a);
    a->epochs = 3; a->batch_size_train = 16; a->batch_size_test = 32;
    a->n_channels = 4; a->n_layers = 2; a->expand_order = 2;
    a->max_train = 64; a->max_test = 32; a->decay_epoch = 2; a->decay_epoch_2 = 0;
    a->save = save; a->quiet = 1;
}

/* A fixed batch of 3 images 1x6x6. */
static nde_tensor *test_batch(nde_ctx *ctx) {
    int64_t shape[4] = {3, 1, 6, 6};
    return nde_tensor_randn(ctx, 4, shape, 11, 0);
}

/* max |f_k(x; theta) - f(x; theta)| with theta = theta0 + eps * direction. */
static double expansion_error(int order, double eps) {
    tz_args a;
    tz_model full, taylor;
    nde_rng r = nde_rng_new(5, 1);
    int64_t n, i;
    nde_real *dir;
    double worst = 0.0;
    tiny_args(&a, "unused");
    tz_model_init(&full, &a, 0, 1, 10);
    tz_model_init(&taylor, &a, order, 1, 10);
    n = nde_params_count(full.ctx);
    dir = (nde_real *)malloc((size_t)n * sizeof(nde_real));
    nde_rng_normal(&r, n, dir);
    for (i = 0; i < n; i++) {
        nde_params_data(full.ctx)[i] += (nde_real)(eps * dir[i]);
        nde_params_data(taylor.ctx)[i] += (nde_real)(eps * dir[i]);
    }
    {
        nde_tensor *yf = tz_logits(&full, test_batch(full.ctx));
        nde_tensor *yt = tz_logits(&taylor, test_batch(taylor.ctx));
        CHECK(yf && yt);
        for (i = 0; yf && yt && i < yf->size; i++) {
            double d = fabs((double)yf->data[i] - (double)yt->data[i]);
            if (d > worst) worst = d;
        }
    }
    free(dir);
    tz_model_free(&full);
    tz_model_free(&taylor);
    return worst;
}

static void test_expansion(void) {
    int order;
    for (order = 1; order <= 3; order++) CHECK_NEAR(expansion_error(order, 0.0), 0.0, TOL, 0.0);
#ifdef NDE_DOUBLE
    /* error of the order-k expansion ~ eps^(k+1): halving eps divides it by
       2^(k+1) (the 2-layer network is a degree-3 polynomial in its parameters
       while no ReLU switches, so order 3 is exact there; larger steps cross kinks of this seed) */
    for (order = 1; order <= 3; order++) {
        double e1 = expansion_error(order, 2e-4), e2 = expansion_error(order, 1e-4);
        double rate = log(e1 / e2) / log(2.0);
        if (order < 3) {
            CHECK(e1 > 1e-13);
            CHECK_NEAR(rate, order + 1, 0.1, 0.0);
        } else {
            CHECK(e1 < 1e-13);
        }
    }
#endif
}


static void test_training_and_resume(void) {
    char dir_a[64], dir_b[64], file[64];
    tz_args a;
    tz_result ra, rb;
    int k;
    static const char *names[] = {"ckpt_full", "ckpt_order1", "ckpt_order2"};
    strcpy(dir_a, "/tmp/nde_test_tz_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_tz_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    /* uninterrupted: 3 epochs */
    tiny_args(&a, dir_a);
    CHECK(tz_run(&a, &ra) == 0);
    CHECK(ra.epochs_run == 3 && ra.num_models == 3);
    for (k = 0; k < 3; k++) {
        CHECK(ra.last[k].train_loss < ra.first[k].train_loss);   /* the loss falls */
        CHECK(ra.last[k].test_acc >= 0.0 && ra.last[k].test_acc <= 1.0);
    }
    CHECK(ra.first[0].agreement == 1.0);
    /* 2 epochs, then resume to 3 */
    tiny_args(&a, dir_b);
    a.epochs = 2;
    CHECK(tz_run(&a, &rb) == 0);
    a.epochs = 3; a.resume = 1;
    CHECK(tz_run(&a, &rb) == 0);
    CHECK(rb.epochs_run == 1);
    for (k = 0; k < 3; k++) {
        ex_path(file, sizeof file, names[k], ".safetensors", NULL);
        CHECK(nde_test_same_file(dir_a, dir_b, file));
        ex_path(file, sizeof file, names[k], ".state.npy", NULL);
        CHECK(nde_test_same_file(dir_a, dir_b, file));
        CHECK(rb.last[k].test_acc == ra.last[k].test_acc);
    }
    /* a resume from a directory without checkpoints fails cleanly */
    fprintf(stderr, "(test_ex_taylorized: the next error message is expected)\n");
    nde_test_remove_dir(dir_b);
    CHECK(ex_mkdir(dir_b) == 0);
    CHECK(tz_run(&a, &rb) != 0);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

static void test_data(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    ex_images tr, te;
    int64_t counts[10] = {0}, i, perm[50], perm2[50], seen[50] = {0};
    static const int64_t expected[10] = {143, 146, 142, 146, 144, 145, 144, 143, 141, 143};
    CHECK(ex_load_images(ctx, NULL, 1, 0, &tr) == NDE_OK);
    CHECK(ex_load_images(ctx, NULL, 0, 0, &te) == NDE_OK);
    CHECK(tr.n == 1437 && te.n == 360 && tr.height == 8 && tr.width == 8);
    for (i = 0; i < tr.n; i++) counts[tr.y[i]]++;
    for (i = 0; i < 10; i++) CHECK(counts[i] == expected[i]);
    for (i = 0; i < tr.n * 64; i++) if (tr.x[i] < 0 || tr.x[i] > 1) break;
    CHECK(i == tr.n * 64);
    ex_images_free(&tr); ex_images_free(&te);
    CHECK(ex_load_images(ctx, "/nonexistent", 1, 0, &tr) == NDE_ERR_IO);
    CHECK_MSG(nde_ctx_message(ctx), "/nonexistent/train-images-idx3-ubyte");
    nde_ctx_free(ctx);
    ex_permutation(3, 7, 50, perm);
    ex_permutation(3, 7, 50, perm2);
    for (i = 0; i < 50; i++) { seen[perm[i]]++; CHECK(perm[i] == perm2[i]); }
    for (i = 0; i < 50; i++) CHECK(seen[i] == 1);
    ex_permutation(3, 8, 50, perm2);
    for (i = 0; i < 50 && perm[i] == perm2[i]; i++) {}
    CHECK(i < 50);   /* another stream, another order */
}

/* CIFAR-10's binary format: fake batches written here (2 records in each
   training file, 3 in the test file) read back with their labels and pixel
   planes; a truncated record is an error; the augmentation is reproducible
   and only moves pixels (or pads zeros); a tiny run trains on it. */
static void write_cifar(const char *path, int records, int first_label) {
    FILE *f = fopen(path, "wb");
    int r, j;
    for (r = 0; f && r < records; r++) {
        fputc((first_label + r) % 10, f);
        for (j = 0; j < 3072; j++) fputc((j * 7 + r * 13 + first_label) % 256, f);
    }
    if (f) fclose(f);
}
static void test_cifar10(void) {
    char dir[64], path[512], name[32];
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    ex_images tr, te;
    int f, ok = 1;
    int64_t j;
    strcpy(dir, "/tmp/nde_test_cifar_XXXXXX");
    if (!mkdtemp(dir)) { CHECK(0); return; }
    for (f = 1; f <= 5; f++) {
        snprintf(name, sizeof name, "/data_batch_%d.bin", f);
        ex_path(path, sizeof path, dir, name, NULL);
        write_cifar(path, 2, f);
    }
    ex_path(path, sizeof path, dir, "/test_batch.bin", NULL);
    write_cifar(path, 3, 0);
    CHECK(tz_load_cifar10(ctx, dir, 1, 0, &tr) == NDE_OK);
    CHECK(tz_load_cifar10(ctx, dir, 0, 0, &te) == NDE_OK);
    CHECK(tr.n == 10 && te.n == 3 && tr.channels == 3 && tr.height == 32 && tr.width == 32);
    CHECK(tr.y[0] == 1 && tr.y[1] == 2 && tr.y[2] == 2 && tr.y[9] == 6 && te.y[2] == 2);
    /* record r of file f: byte j of the image = (7 j + 13 r + f) mod 256; plane 1 (green) starts at 1024 */
    for (j = 0; j < 3072; j++) ok &= fabs((double)tr.x[3 * 3072 + j] - (double)((j * 7 + 13 + 2) % 256) / 255.0) < 1e-6;
    CHECK(ok);
    ex_images_free(&te);
    CHECK(tz_load_cifar10(ctx, dir, 0, 2, &te) == NDE_OK && te.n == 2);
    ex_images_free(&te);
    /* augmentation */
    {
        int64_t n = 2 * 3072, i;
        nde_real *a1 = (nde_real *)malloc((size_t)n * sizeof(nde_real)), *a2 = (nde_real *)malloc((size_t)n * sizeof(nde_real));
        int same = 1, changed = 0, from_source = 1;
        memcpy(a1, tr.x, (size_t)n * sizeof(nde_real));
        memcpy(a2, tr.x, (size_t)n * sizeof(nde_real));
        tz_augment(a1, 2, 3, 32, 32, 5, 9);
        tz_augment(a2, 2, 3, 32, 32, 5, 9);
        for (i = 0; i < n; i++) {
            int64_t img = i / 3072, ch = (i % 3072) / 1024, k;
            int found = a1[i] == 0;
            same &= a1[i] == a2[i];
            changed |= a1[i] != tr.x[i];
            for (k = 0; k < 1024 && !found; k++) found = a1[i] == tr.x[img * 3072 + ch * 1024 + k];
            from_source &= found;
        }
        CHECK(same && changed && from_source);
        free(a1); free(a2);
    }
    ex_images_free(&tr);
    /* a truncated record */
    ex_path(path, sizeof path, dir, "/test_batch.bin", NULL);
    {
        FILE *fp = fopen(path, "ab");
        if (fp) { fputc(3, fp); fputc(0, fp); fclose(fp); }
    }
    fprintf(stderr, "(test_ex_taylorized: the next error message is expected)\n");
    CHECK(tz_load_cifar10(ctx, dir, 0, 0, &te) == NDE_ERR_FORMAT);
    CHECK_MSG(nde_ctx_message(ctx), "truncated");
    nde_ctx_free(ctx);
    write_cifar(path, 3, 0);
    {
        tz_args a;
        tz_result r;
        char save[600];
        ex_path(save, sizeof save, dir, "/run", NULL);
        tiny_args(&a, save);
        a.data = "cifar10"; a.data_dir = dir; a.n_channels = 2; a.expand_order = 1; a.epochs = 2; a.batch_size_train = 5;
        a.decay_epoch = 0;
        CHECK(tz_run(&a, &r) == 0);
        CHECK(r.epochs_run == 2 && r.num_models == 2 && r.last[0].train_loss < r.first[0].train_loss);
        nde_test_remove_dir(save);
    }
    nde_test_remove_dir(dir);
}

int main(void) {
    test_expansion();
    test_data();
    test_training_and_resume();
    test_cifar10();
    return nde_test_finish("test_ex_taylorized");
}
