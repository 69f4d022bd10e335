/* The quick-start program from the top of nde.h, kept compiling and running. */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include <stdio.h>
int main(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_mlp net;
    int64_t widths[3] = {2, 16, 1};
    double first = 0, last = 0;
    int it, bad;
    nde_mlp_init(ctx, &net, "net", 3, widths, NDE_ACT_TANH, 42);
    nde_optimizer opt = nde_adam(1e-2);
    for (it = 0; it < 200; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        int64_t xs[2] = {64, 2};
        nde_tensor *x = nde_tensor_randn(ctx, 2, xs, 7, (uint64_t)it);
        nde_tensor *y = nde_sum_axis(ctx, nde_square(ctx, x), 1, 1);
        nde_tensor *loss = nde_mse_loss(ctx, nde_mlp_forward(ctx, &net, x), y);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &opt);
        if (it == 0) first = nde_tensor_item(ctx, loss, 0);
        last = nde_tensor_item(ctx, loss, 0);
        nde_ctx_reset(ctx, m);
    }
    bad = nde_ctx_status(ctx) != NDE_OK;
    if (bad) fprintf(stderr, "%s\n", nde_ctx_message(ctx));
    bad |= !(last < 0.5 * first);
    printf("quickstart: loss %.4f -> %.4f\n", first, last);
    printf("quickstart: %d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
    nde_ctx_free(ctx);
    return bad;
}
