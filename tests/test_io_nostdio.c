/* tests/test_io_nostdio.c - nde.h built with NDE_NO_STDIO: the file functions
   exist, touch no file and report NDE_ERR_UNSUPPORTED. */
#define NDE_NO_STDIO
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "nde_test.h"

int main(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s[1] = {3};
    nde_tensor *p = nde_param_new(ctx, "p", 1, s);
    const char *path = "nde_nostdio_must_not_exist.npy";
    CHECK(nde_save_params(ctx, path) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "nde_save_params: built with NDE_NO_STDIO");
    nde_ctx_clear_error(ctx);
    CHECK(nde_load_params(ctx, path) == NDE_ERR_UNSUPPORTED);
    nde_ctx_clear_error(ctx);
    CHECK(nde_save_npy(ctx, path, p) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "nde_save_npy");
    nde_ctx_clear_error(ctx);
    CHECK(nde_load_npy(ctx, path) == NULL && nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
    nde_ctx_clear_error(ctx);
    CHECK(nde_load_idx(ctx, path) == NULL && nde_ctx_status(ctx) == NDE_ERR_UNSUPPORTED);
    CHECK_MSG(nde_ctx_message(ctx), "nde_load_idx");
    nde_ctx_clear_error(ctx);
    CHECK(fopen(path, "rb") == NULL);
    CHECK_NEAR(nde_tensor_item(ctx, p, 0), 0.0, 0.0, 0.0);   /* the rest of the library works */
    nde_ctx_free(ctx);
    return nde_test_finish("test_io_nostdio");
}
