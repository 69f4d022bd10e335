/* tests/test_ex_odenet_mnist.c - examples/odenet_mnist.c: shapes of the stem
   and the ODE function, the time channel, the random crop, a tiny training
   run of the ODE-Net and of the ResNet baseline (the loss falls), resuming
   from a checkpoint, and the adjoint gradient modes. */
#define EXAMPLE_NO_MAIN
#include "../examples/odenet_mnist.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void tiny_args(on_args *a, const char *save) {
    on_args_default(a);
    a->width = 4; a->nepochs = 3; a->batch_size = 16; a->test_batch_size = 32; a->max_train = 64; a->max_test = 32;
    a->method = "rk4"; a->step_size = 0.5; a->decay_epochs = "2"; a->save = save; a->quiet = 1; a->lr = 0.1;
}

static void test_model_pieces(void) {
    on_args a;
    on_model m;
    int64_t xs[4] = {2, 1, 8, 8}, zs[4] = {2, 4, 4, 4}, i;
    nde_tensor *x, *z, *f0, *f1, *logits;
    double diff = 0.0;
    tiny_args(&a, "unused");
    CHECK(on_model_init(&m, &a, 8));
    CHECK(m.small == 1);
    x = nde_tensor_rand(m.ctx, 4, xs, 1, 0);
    logits = on_forward(&m, x);
    CHECK(logits && logits->ndim == 2 && logits->shape[0] == 2 && logits->shape[1] == 10);
    CHECK(m.nfe == 8);                                   /* rk4, 2 steps */
    for (i = 0; i < 4; i++) m.state_shape[i] = zs[i];
    zs[1] = 4 * 4 * 4; zs[2] = 1;                       /* the solver's flat state (N, C*H*W) */
    z = nde_tensor_randn(m.ctx, 2, zs, 2, 0);
    f0 = on_field(m.ctx, nde_tensor_scalar(m.ctx, NDE_R(0.0)), z, &m);
    f1 = on_field(m.ctx, nde_tensor_scalar(m.ctx, NDE_R(1.0)), z, &m);
    CHECK(f0 && f1 && nde_tensor_same_shape(f0, z));
    for (i = 0; f0 && f1 && i < f0->size; i++) diff += fabs((double)f0->data[i] - (double)f1->data[i]);
    CHECK(diff > 1e-6);                                  /* the time channel matters */
    CHECK(m.f_c1.weight->shape[1] == 5);                 /* C + 1 input channels */
    on_model_free(&m);
    /* 28x28 images: the research code's stem, 28 -> 26 -> 13 -> 6 */
    a.width = 4;
    CHECK(on_model_init(&m, &a, 28));
    {
        int64_t s28[4] = {1, 1, 28, 28};
        nde_tensor *h = nde_conv2d_forward(m.ctx, &m.stem1, nde_tensor_rand(m.ctx, 4, s28, 1, 0));
        h = nde_conv2d_forward(m.ctx, &m.stem3, nde_conv2d_forward(m.ctx, &m.stem2, h));
        CHECK(h && h->shape[2] == 6 && h->shape[3] == 6);
    }
    on_model_free(&m);
    a.method = "euler"; a.step_size = 0.0;
    fprintf(stderr, "(test_ex_odenet_mnist: the next error message is expected)\n");
    CHECK(!on_model_init(&m, &a, 8));                   /* a fixed-step method needs a step */
    on_model_free(&m);
    a.method = "no_such_method";
    fprintf(stderr, "(test_ex_odenet_mnist: the next error message is expected)\n");
    CHECK(!on_model_init(&m, &a, 8));
    CHECK_MSG(nde_ctx_message(m.ctx), "no_such_method");
    on_model_free(&m);
}

static void test_random_crop(void) {
    nde_real img[2 * 16], orig[2 * 16];
    int i, k, ok = 1;
    for (i = 0; i < 32; i++) img[i] = orig[i] = (nde_real)(i + 1);
    on_random_crop(img, 2, 4, 4, 0, 1, 0);
    for (i = 0; i < 32; i++) ok &= img[i] == orig[i];
    CHECK(ok);                                           /* padding 0: the identity */
    on_random_crop(img, 2, 4, 4, 1, 1, 0);
    /* every image is its original shifted by one offset (dy, dx) in [-1, 1]^2 */
    for (k = 0; k < 2; k++) {
        int found = 0, dy, dx, y, x;
        for (dy = -1; dy <= 1; dy++)
            for (dx = -1; dx <= 1; dx++) {
                int match = 1;
                for (y = 0; y < 4; y++)
                    for (x = 0; x < 4; x++) {
                        int sy = y + dy, sx = x + dx;
                        nde_real want = (sy >= 0 && sy < 4 && sx >= 0 && sx < 4) ? orig[k * 16 + sy * 4 + sx] : NDE_R(0.0);
                        match &= img[k * 16 + y * 4 + x] == want;
                    }
                found |= match;
            }
        CHECK(found);
    }
}

static void test_training_and_resume(void) {
    char dir_a[64], dir_b[64], pa[512];
    on_args a;
    on_result ra, rb;
    strcpy(dir_a, "/tmp/nde_test_on_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_on_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    tiny_args(&a, dir_a);
    CHECK(on_run(&a, &ra) == 0);
    CHECK(ra.epochs_run == 3 && ra.last_loss < ra.first_loss);
    ex_path(pa, sizeof pa, dir_a, "/odenet.svg", NULL);
    CHECK(ex_file_exists(pa));
    CHECK_NEAR(ra.nfe_forward, 8.0, 0.0, 0.0);
    tiny_args(&a, dir_b);
    a.nepochs = 2;
    CHECK(on_run(&a, &rb) == 0);
    a.nepochs = 3; a.resume = 1;
    CHECK(on_run(&a, &rb) == 0);
    CHECK(rb.epochs_run == 1 && rb.test_acc == ra.test_acc);
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt.safetensors"));
    CHECK(nde_test_same_file(dir_a, dir_b, "ckpt.state.npy"));
    nde_test_remove_dir(dir_b);
    /* the ResNet baseline and an adaptive solve */
    CHECK(mkdir(dir_b, 0700) == 0);
    tiny_args(&a, dir_b);
    a.network = "resnet";
    CHECK(on_run(&a, &rb) == 0);
    CHECK(rb.last_loss < rb.first_loss && rb.nfe_forward == 0.0);
    a.network = "odenet"; a.method = "dopri5"; a.step_size = 0.0; a.nepochs = 1;
    CHECK(on_run(&a, &rb) == 0);
    CHECK(rb.nfe_forward >= 8 && rb.nfe_backward == 0.0);   /* direct: no field calls backwards */
    /* the continuous adjoint and the quadrature adjoint call the field backwards */
    a.adjoint_option = "adjoint";
    CHECK(on_run(&a, &rb) == 0);
    CHECK(rb.nfe_backward > 0 && rb.last_loss == rb.last_loss);
    a.adjoint_option = "adjoint_gq_is_not_a_mode";
    fprintf(stderr, "(test_ex_odenet_mnist: the next error message is expected)\n");
    CHECK(on_run(&a, &rb) != 0);
    a.adjoint_option = "gq";
    CHECK(on_run(&a, &rb) == 0);
    CHECK(rb.nfe_backward > 0);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

int main(void) {
    test_model_pieces();
    test_random_crop();
    test_training_and_resume();
    return nde_test_finish("test_ex_odenet_mnist");
}
