/* The quick start of nde_cuda.h, kept compiling: `make cuda` builds it with the
   documented command  nvcc -O2 tests/quickstart_cuda.c nde_cuda.cu -lcublas -o build/quickstart_cuda */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "../nde_cuda.h"
#include <stdio.h>
int main(void) {
    const nde_backend *gpu; char why[256];
    if (nde_cuda_backend_create(0, &gpu, why, sizeof why) != NDE_OK) { printf("no GPU: %s\n", why); return 0; }
    nde_ctx_desc desc = nde_ctx_desc_default();
    desc.backend = gpu;                                   // the one line that moves to the GPU
    nde_ctx *ctx = nde_ctx_new(desc);
    nde_mlp net; int64_t widths[3] = {2, 16, 1};
    nde_mlp_init(ctx, &net, "net", 3, widths, NDE_ACT_TANH, 42);
    nde_optimizer opt = nde_adam(1e-2);
    for (int it = 0; it < 200; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        int64_t xs[2] = {64, 2};
        nde_tensor *x = nde_tensor_randn(ctx, 2, xs, 7, it);   // drawn on the device
        nde_tensor *y = nde_sum_axis(ctx, nde_square(ctx, x), 1, 1);
        nde_tensor *loss = nde_mse_loss(ctx, nde_mlp_forward(ctx, &net, x), y);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        nde_ctx_reset(ctx, m);
    }
    int bad = nde_ctx_synchronize(ctx) != NDE_OK;       // surfaces any CUDA error
    if (bad) printf("%s\n", nde_ctx_message(ctx));
    nde_ctx_free(ctx);                                    // contexts first,
    nde_cuda_backend_destroy(gpu);                        // then their backend
    return bad;
}
