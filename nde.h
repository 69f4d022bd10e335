/* nde.h - v0.1.0 - neural differential equations in portable C: core
   (tensors, arenas, reverse-mode autodiff, layers, losses, optimizers, RNG, I/O)
   License: MIT (see the end of this file).

USAGE
   Header-only, stb style. In exactly ONE C file of your program:

       #define NDE_IMPLEMENTATION
       #include "nde.h"          (or nde_solvers.h / nde_adjoint.h, which include nde.h)

   Every other file just includes the header. Build with any C99 compiler:

       cc -O2 -std=c99 app.c -lm              (add -fopenmp for threads)

QUICK START (this exact program is tests/quickstart.c and runs in `make test`)

       #define NDE_IMPLEMENTATION
       #include "nde.h"
       int main(void) {
           nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
           nde_mlp net;                        // 2 -> 16 -> 1, tanh
           int64_t widths[3] = {2, 16, 1};
           nde_mlp_init(ctx, &net, "net", 3, widths, NDE_ACT_TANH, 42);
           nde_optimizer opt = nde_adam(1e-2);
           for (int it = 0; it < 200; it++) {
               nde_mark m = nde_ctx_mark(ctx);
               nde_tensor *x = nde_tensor_randn(ctx, 2, (int64_t[]){64, 2}, 7, it);
               nde_tensor *y = nde_sum_axis(ctx, nde_square(ctx, x), 1, 1);  // target |x|^2
               nde_tensor *loss = nde_mse_loss(ctx, nde_mlp_forward(ctx, &net, x), y);
               nde_zero_grad(ctx);
               nde_backward(ctx, loss);
               nde_optimizer_step(ctx, &opt);
               nde_ctx_reset(ctx, m);
           }
           int bad = nde_ctx_status(ctx) != NDE_OK;
           nde_ctx_free(ctx);
           return bad;
       }

OPTIONS (define before including)
   NDE_DOUBLE            every TU: nde_real is double instead of float.
   NDE_STATIC            every TU: all functions static (one-TU programs).
   NDE_MALLOC/NDE_REALLOC/NDE_FREE   implementation TU: the allocator (define all or none).
   NDE_ASSERT(x)         implementation TU: internal invariants (default assert).
   NDE_NO_STDIO          implementation TU: no file I/O (no fopen); the save/load
                         functions return NDE_ERR_UNSUPPORTED.
   NDE_OMP_MIN_WORK      implementation TU: smallest flop count that opens an OpenMP
                         region (default 32768). Without -fopenmp nothing is threaded.

SHAPES
   Row-major, shape[0] outermost, at most NDE_MAX_DIMS = 4 dimensions, always
   contiguous. "(batch, dim)" means shape[0] = batch. Images are NCHW.

MEMORY
   A context owns everything. Tensors returned by ops live in the work arena: bump
   allocation, no malloc per op. nde_ctx_mark() remembers the arena position and
   the tape length; nde_ctx_reset(ctx, mark) releases all tensors and tape nodes
   created after the mark in O(1) (blocks are kept for reuse). Parameters, their
   gradients and optimizer state live in a persistent store as flat arrays
   (nde_params_data / nde_params_grad); a parameter tensor is a view into it.
   The user never frees a tensor. nde_ctx_peak_bytes() reports the high-water mark.

ERRORS
   Functions that can fail return nde_status (0 ok, negative error, positive a
   legitimate stop such as an event). The context keeps the FIRST error with a
   message naming the function and the offending shapes or values
   (nde_ctx_status, nde_ctx_message, nde_ctx_clear_error). Ops return NULL when
   the context already holds an error or an input is NULL, so a chain of ops can
   be checked once at the end. The library never calls exit().

AUTODIFF
   With grad mode on (the default) ops whose inputs require gradients record a
   node on the context's tape. nde_backward(ctx, loss) walks the tape backwards
   and accumulates gradients: into tensor->grad for work tensors and into the
   flat gradient array for parameters. nde_set_grad_enabled(ctx, 0) turns
   recording off (no tape, no overhead). nde_vjp() evaluates a user function
   and its vector-Jacobian product in one call. nde_jvp(): JVP by an order-1
   jet, exact (forward mode through the Taylor-mode jets, see JETS).

THREADS
   One context is used by one thread. With -fopenmp the large kernels (matmul)
   run in parallel over output blocks; results are bitwise identical for any
   thread count (no floating-point reduction clauses).

BACKENDS
   Every op calls its kernels through an nde_backend table (the CPU table lives
   here; nde_cuda.h provides a CUDA one). Choose it in nde_ctx_desc.backend.
*/
#ifndef NDE_H
#define NDE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define NDE_VERSION_MAJOR 0
#define NDE_VERSION_MINOR 1
#define NDE_VERSION_PATCH 0
#define NDE_VERSION_STRING "0.1.0"

#ifndef NDE_MAX_DIMS
#define NDE_MAX_DIMS 4
#endif
#define NDE_MAX_INPUTS 4

#ifndef NDE_API
#ifdef NDE_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define NDE_API static __attribute__((unused))
#else
#define NDE_API static
#endif
#else
#define NDE_API extern
#endif
#endif

#ifdef NDE_DOUBLE
typedef double nde_real;
#define NDE_R(x) (x)
#define NDE_REAL_EPS 2.220446049250313e-16
#define NDE_REAL_FMT "%.17g"
#else
typedef float nde_real;
#define NDE_R(x) (x##f)
#define NDE_REAL_EPS 1.1920929e-07f
#define NDE_REAL_FMT "%.9g"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */
typedef int nde_status;
enum {
    NDE_OK = 0,
    NDE_ERR_ARG = -1,            /* a bad argument value                      */
    NDE_ERR_SHAPE = -2,          /* shapes do not fit                         */
    NDE_ERR_CONFIG = -3,         /* build configuration mismatch              */
    NDE_ERR_BACKEND = -4,        /* backend failure or mixed backends         */
    NDE_ERR_UNSUPPORTED = -5,    /* not available in this backend / mode      */
    NDE_ERR_OOM = -6,            /* allocation failed or over the cap         */
    NDE_ERR_IO = -7,             /* file could not be opened/read/written     */
    NDE_ERR_FORMAT = -8,         /* truncated or corrupt file                 */
    NDE_ERR_NONFINITE = -9,      /* NaN or Inf in a state or derivative       */
    NDE_ERR_MAX_STEPS = -10,     /* a solver exceeded max_num_steps           */
    NDE_ERR_STEP_UNDERFLOW = -11,/* the step size fell below its minimum      */
    NDE_ERR_USER_FN = -12,       /* a user callback failed                    */
    NDE_ERR_INTERNAL = -13,      /* a bug in nde                              */
    NDE_EVENT = 1,               /* an event function crossed zero            */
    NDE_STOPPED = 2              /* a user callback asked to stop             */
};
NDE_API const char *nde_strerror(nde_status status);

/* ---------------------------------------------------------------- types */
typedef struct nde_ctx nde_ctx;
typedef struct nde_backend nde_backend;

typedef struct nde_tensor {
    int ndim;
    int64_t shape[NDE_MAX_DIMS];
    int64_t size;              /* number of elements                        */
    nde_real *data;            /* backend memory                            */
    nde_real *grad;            /* same shape; NULL until backward reaches it */
    int requires_grad;         /* gradients flow into this tensor           */
    int32_t node;              /* tape index of the producing op, -1 = leaf */
    int32_t param;             /* parameter index, -1 if not a parameter    */
} nde_tensor;

/* A position in the arenas and the tape; nde_ctx_reset returns to it. */
typedef struct nde_mark {
    size_t meta_block, meta_used, data_block, data_used;
    int64_t tape_len;
} nde_mark;

typedef struct nde_ctx_desc {
    const nde_backend *backend;   /* NULL = the CPU backend                  */
    size_t arena_block_bytes;     /* first block size of each arena          */
    size_t max_work_bytes;        /* 0 = no cap; else growth past it is OOM  */
    int real_size;                /* filled by nde_ctx_desc_default: guards  */
    int version_major;            /*   against NDE_DOUBLE / version mismatch */
} nde_ctx_desc;

/* Inline so that it records the CALLER's nde_real size and header version. */
static inline nde_ctx_desc nde_ctx_desc_default(void) {
    nde_ctx_desc d;
    d.backend = NULL;
    d.arena_block_bytes = (size_t)1 << 20;
    d.max_work_bytes = 0;
    d.real_size = (int)sizeof(nde_real);
    d.version_major = NDE_VERSION_MAJOR;
    return d;
}

/* ---------------------------------------------------------------- context */
NDE_API nde_ctx *nde_ctx_new(nde_ctx_desc desc);   /* NULL only if out of memory;
                                                       check nde_ctx_status      */
NDE_API void nde_ctx_free(nde_ctx *ctx);
NDE_API nde_mark nde_ctx_mark(nde_ctx *ctx);
NDE_API void nde_ctx_reset(nde_ctx *ctx, nde_mark mark);
NDE_API size_t nde_ctx_peak_bytes(const nde_ctx *ctx);  /* data arena high-water mark */
NDE_API size_t nde_ctx_used_bytes(const nde_ctx *ctx);
NDE_API void nde_ctx_reset_peak(nde_ctx *ctx);
NDE_API const nde_backend *nde_ctx_backend(const nde_ctx *ctx);
NDE_API nde_status nde_ctx_status(const nde_ctx *ctx);
NDE_API const char *nde_ctx_message(const nde_ctx *ctx);
NDE_API void nde_ctx_clear_error(nde_ctx *ctx);
/* Record an error (first one wins); returns status. fmt is printf-style and
   should start with the function name: "nde_matmul: ...". */
NDE_API nde_status nde_ctx_fail(nde_ctx *ctx, nde_status status, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
NDE_API int nde_grad_enabled(const nde_ctx *ctx);
NDE_API int nde_set_grad_enabled(nde_ctx *ctx, int on);   /* returns previous */
NDE_API int64_t nde_tape_length(const nde_ctx *ctx);
NDE_API void nde_set_num_threads(int n);
/* Wait for the backend's queued work (a no-op on the CPU); a backend failure becomes
   the context's error. Useful before timing and at the end of a device program. */
NDE_API nde_status nde_ctx_synchronize(nde_ctx *ctx);
NDE_API const char *nde_version_string(void);

/* Raw scratch memory from the arenas (released by nde_ctx_reset). */
NDE_API void *nde_ctx_alloc_host(nde_ctx *ctx, size_t bytes);
NDE_API nde_real *nde_ctx_alloc_reals(nde_ctx *ctx, int64_t count); /* backend memory */

/* ---------------------------------------------------------------- tensors */
NDE_API nde_tensor *nde_tensor_new(nde_ctx *ctx, int ndim, const int64_t *shape); /* uninitialised */
NDE_API nde_tensor *nde_tensor_zeros(nde_ctx *ctx, int ndim, const int64_t *shape);
NDE_API nde_tensor *nde_tensor_full(nde_ctx *ctx, int ndim, const int64_t *shape, nde_real value);
NDE_API nde_tensor *nde_tensor_zeros_like(nde_ctx *ctx, const nde_tensor *t);
NDE_API nde_tensor *nde_tensor_from(nde_ctx *ctx, int ndim, const int64_t *shape, const nde_real *host_values);
NDE_API nde_tensor *nde_tensor_scalar(nde_ctx *ctx, nde_real value);       /* shape (1) */
NDE_API nde_tensor *nde_tensor_randn(nde_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, uint64_t stream);
NDE_API nde_tensor *nde_tensor_rand(nde_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, uint64_t stream);
/* A copy with no history (a new leaf); set requires_grad to differentiate w.r.t. it. */
NDE_API nde_tensor *nde_tensor_detach(nde_ctx *ctx, const nde_tensor *t);
NDE_API nde_tensor *nde_tensor_clone(nde_ctx *ctx, nde_tensor *t);          /* differentiable copy */
NDE_API nde_status nde_tensor_copy_into(nde_ctx *ctx, nde_tensor *dst, const nde_tensor *src); /* no grad */
NDE_API nde_status nde_tensor_to_host(nde_ctx *ctx, const nde_tensor *t, nde_real *host);
NDE_API nde_status nde_tensor_set_host(nde_ctx *ctx, nde_tensor *t, const nde_real *host);
NDE_API nde_status nde_tensor_fill(nde_ctx *ctx, nde_tensor *t, nde_real value);
NDE_API nde_real nde_tensor_item(nde_ctx *ctx, const nde_tensor *t, int64_t index); /* one element to host */
NDE_API int nde_tensor_same_shape(const nde_tensor *a, const nde_tensor *b);
NDE_API int nde_tensor_all_finite(nde_ctx *ctx, const nde_tensor *t);
/* "(2, 3, 4)" into buf; returns buf. */
NDE_API const char *nde_shape_str(const nde_tensor *t, char *buf, size_t buf_len);
/* Gradient buffer of t (allocated zeroed on first use). */
NDE_API nde_real *nde_tensor_grad(nde_ctx *ctx, nde_tensor *t);

/* ---------------------------------------------------------------- ops
   Every op returns a new tensor in the work arena (NULL on error) and records
   itself on the tape when grad mode is on and an input requires gradients.
   Binary ops broadcast NumPy-style (shapes aligned at the right; each dimension
   equal or 1): same shape, scalar, row (n) against (m, n), column (m, 1), per
   channel (1, C, 1, 1) against NCHW. */
NDE_API nde_tensor *nde_add(nde_ctx *ctx, nde_tensor *a, nde_tensor *b);
NDE_API nde_tensor *nde_sub(nde_ctx *ctx, nde_tensor *a, nde_tensor *b);
NDE_API nde_tensor *nde_mul(nde_ctx *ctx, nde_tensor *a, nde_tensor *b);
NDE_API nde_tensor *nde_div(nde_ctx *ctx, nde_tensor *a, nde_tensor *b);
NDE_API nde_tensor *nde_neg(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_scale(nde_ctx *ctx, nde_tensor *x, nde_real s);
NDE_API nde_tensor *nde_add_scalar(nde_ctx *ctx, nde_tensor *x, nde_real s);
NDE_API nde_tensor *nde_square(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_sqrt(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_exp(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_log(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_sin(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_cos(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_tanh(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_sigmoid(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_relu(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_leaky_relu(nde_ctx *ctx, nde_tensor *x, nde_real slope);
NDE_API nde_tensor *nde_softplus(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_elu(nde_ctx *ctx, nde_tensor *x, nde_real alpha);
NDE_API nde_tensor *nde_abs(nde_ctx *ctx, nde_tensor *x);
NDE_API nde_tensor *nde_powi(nde_ctx *ctx, nde_tensor *x, int n);       /* x^n, n any integer */
/* (m,k)x(k,n); trans_a / trans_b use the transpose of a stored (k,m) / b stored (n,k). */
NDE_API nde_tensor *nde_matmul(nde_ctx *ctx, nde_tensor *a, nde_tensor *b, int trans_a, int trans_b);
NDE_API nde_tensor *nde_sum(nde_ctx *ctx, nde_tensor *x);                 /* shape (1) */
NDE_API nde_tensor *nde_mean(nde_ctx *ctx, nde_tensor *x);                /* shape (1) */
/* Along one axis; keepdim keeps it with size 1. */
NDE_API nde_tensor *nde_sum_axis(nde_ctx *ctx, nde_tensor *x, int axis, int keepdim);
NDE_API nde_tensor *nde_mean_axis(nde_ctx *ctx, nde_tensor *x, int axis, int keepdim);
NDE_API nde_tensor *nde_reshape(nde_ctx *ctx, nde_tensor *x, int ndim, const int64_t *shape);
NDE_API nde_tensor *nde_transpose(nde_ctx *ctx, nde_tensor *x);          /* 2-D only */
NDE_API nde_tensor *nde_concat(nde_ctx *ctx, int count, nde_tensor *const *xs, int axis);
NDE_API nde_tensor *nde_slice(nde_ctx *ctx, nde_tensor *x, int axis, int64_t start, int64_t stop);
/* rows[i] = x[index[i]] for x (n, ...); index lives on the host. */
NDE_API nde_tensor *nde_gather_rows(nde_ctx *ctx, nde_tensor *x, int64_t count, const int64_t *index);
/* x (N,C,H,W), w (O,C,KH,KW), bias (O) or NULL. */
NDE_API nde_tensor *nde_conv2d(nde_ctx *ctx, nde_tensor *x, nde_tensor *w, nde_tensor *bias, int stride, int padding);
/* x (N,C,L), w (O,C,K), bias (O) or NULL. */
NDE_API nde_tensor *nde_conv1d(nde_ctx *ctx, nde_tensor *x, nde_tensor *w, nde_tensor *bias, int stride, int padding);
/* x (N,C,...) normalised over groups of C/groups channels; gamma, beta (C) or NULL. */
NDE_API nde_tensor *nde_group_norm(nde_ctx *ctx, nde_tensor *x, int groups, nde_tensor *gamma, nde_tensor *beta, nde_real eps);
NDE_API nde_tensor *nde_avg_pool2d(nde_ctx *ctx, nde_tensor *x, int kernel, int stride);
NDE_API nde_tensor *nde_global_avg_pool(nde_ctx *ctx, nde_tensor *x);    /* (N,C,H,W) -> (N,C) */
NDE_API nde_tensor *nde_log_softmax(nde_ctx *ctx, nde_tensor *x);        /* over the last axis of (n, k) */
/* Mean over rows of -log_softmax(logits)[i, labels[i]]; labels on the host. */
NDE_API nde_tensor *nde_cross_entropy(nde_ctx *ctx, nde_tensor *logits, const int64_t *labels);
NDE_API nde_tensor *nde_mse_loss(nde_ctx *ctx, nde_tensor *pred, nde_tensor *target);
NDE_API nde_tensor *nde_l1_loss(nde_ctx *ctx, nde_tensor *pred, nde_tensor *target);
/* out = sum_i coef[i] * xs[i] (same shapes); one fused kernel. */
NDE_API nde_tensor *nde_lincomb(nde_ctx *ctx, int count, const nde_real *coef, nde_tensor *const *xs);

/* ---------------------------------------------------------------- sparse (CSR)
   (added by the zoo issue for graph neural ODEs) A sparse matrix in
   compressed sparse row form. The pattern (row_ptr[rows + 1], col_idx[nnz],
   int64) is copied into backend memory in the work arena (nde_ctx_reset
   releases it: build it before a training loop's mark); the values are an
   ordinary tensor of nnz elements, so they can be constants (a normalised
   adjacency) or learned edge weights, with gradients. The kernels are the
   backend's optional csr_matmul / csr_sddmm entries (NDE_ERR_UNSUPPORTED on a
   backend without them). No jet rule. */
typedef struct nde_csr {
    int64_t rows, cols, nnz;
    int64_t *row_ptr, *col_idx;    /* backend memory */
} nde_csr;
/* Validate (row_ptr nondecreasing from 0 to nnz, col_idx in [0, cols)) and copy a host pattern. */
NDE_API nde_status nde_csr_init(nde_ctx *ctx, nde_csr *a, int64_t rows, int64_t cols, int64_t nnz,
                                const int64_t *row_ptr, const int64_t *col_idx);
/* y = A x: values (nnz), x (cols, f) -> (rows, f). Backward: dx += A^T dy,
   dvalues[k] += dy[i, :] . x[j, :] for the nonzero k = (i, j). */
NDE_API nde_tensor *nde_csr_matmul(nde_ctx *ctx, const nde_csr *a, nde_tensor *values, nde_tensor *x);

/* ---------------------------------------------------------------- autodiff */
/* Seed d loss = 1 (loss must have one element) and walk the whole tape. */
NDE_API nde_status nde_backward(nde_ctx *ctx, nde_tensor *loss);
/* Seed d out = cotangent (same shape) and walk the tape down to node index
   stop_at (0 = all of it). */
NDE_API nde_status nde_backward_seed(nde_ctx *ctx, nde_tensor *out, const nde_tensor *cotangent, int64_t stop_at);

typedef nde_tensor *(*nde_fn)(nde_ctx *ctx, nde_tensor *x, void *user);
/* y = f(x), and x_bar = (d f / d x)^T v, theta_bar += (d f / d theta)^T v.
   param_grad: a flat buffer of nde_params_count() reals that receives the
   parameter part (added to it), or NULL to add into the parameters' gradient.
   y and x_bar are new tensors in the work arena with no history. */
NDE_API nde_status nde_vjp(nde_ctx *ctx, nde_fn f, void *user, nde_tensor *x, const nde_tensor *v,
                           nde_tensor **y, nde_tensor **x_bar, nde_real *param_grad);

/* Custom tape nodes, for code built on nde (nde_adjoint.h records a whole ODE
   solve as one node). nde_tape_custom records a node producing `out` from
   `inputs` (at most NDE_MAX_INPUTS; NULL entries allowed) when grad mode is on;
   it sets out->requires_grad. When a backward walk reaches the node with
   out->grad set, backward(ctx, out, inputs, num_inputs, saved) runs with grad
   mode off. It adds (d loss / d input) into nde_tensor_grad(ctx, inputs[i]) for
   every input with requires_grad, and the parameter part into the current
   parameter-gradient array (nde_params_grad: nde_vjp with param_grad NULL does
   that). It may record and walk nodes of its own (nde_vjp, nde_backward_seed)
   and allocate scratch, but must release them (nde_ctx_mark/nde_ctx_reset)
   before it returns, never below the arena position it started at. `saved` is
   the caller's (keep it in the arenas to release it with the tape). */
typedef void (*nde_custom_backward_fn)(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *inputs, int num_inputs,
                                       void *saved);
NDE_API nde_status nde_tape_custom(nde_ctx *ctx, nde_custom_backward_fn backward, nde_tensor *out, int num_inputs,
                                   nde_tensor *const *inputs, void *saved);

/* ---------------------------------------------------------------- parameters */
/* A new parameter (persistent, requires grad) in the flat store, zero-filled. */
NDE_API nde_tensor *nde_param_new(nde_ctx *ctx, const char *name, int ndim, const int64_t *shape);
NDE_API int nde_params_num(const nde_ctx *ctx);                 /* number of parameter tensors */
NDE_API nde_tensor *nde_param_at(nde_ctx *ctx, int index);
NDE_API const char *nde_param_name(const nde_ctx *ctx, int index);
NDE_API nde_tensor *nde_param_find(nde_ctx *ctx, const char *name);
NDE_API int64_t nde_params_count(const nde_ctx *ctx);          /* total number of reals */
NDE_API int64_t nde_param_offset(const nde_ctx *ctx, int index); /* its offset in the flat arrays */
NDE_API nde_real *nde_params_data(nde_ctx *ctx);                /* flat, backend memory */
NDE_API nde_real *nde_params_grad(nde_ctx *ctx);
NDE_API void nde_zero_grad(nde_ctx *ctx);
/* Redirect parameter-gradient accumulation into buf (flat, nde_params_count
   reals, backend memory); NULL restores the store's own gradient array. */
NDE_API void nde_params_redirect_grad(nde_ctx *ctx, nde_real *buf);
/* Parameter gradients are accumulated only for these; 0 freezes a parameter. */
NDE_API void nde_param_set_trainable(nde_ctx *ctx, int index, int trainable);

/* ---------------------------------------------------------------- RNG
   Philox 4x32-10 (Salmon et al., SC'11), counter based: the value at (seed,
   stream, index) does not depend on how many values were drawn before, so CPU,
   GPU and reruns agree. */
typedef struct nde_rng { uint64_t seed, stream, counter; } nde_rng;
NDE_API nde_rng nde_rng_new(uint64_t seed, uint64_t stream);
NDE_API nde_rng nde_rng_split(const nde_rng *r, uint64_t child);   /* independent child stream */
NDE_API void nde_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* Fill host arrays (advancing r->counter). */
NDE_API void nde_rng_uniform(nde_rng *r, int64_t n, nde_real *out);   /* [0, 1) */
NDE_API void nde_rng_normal(nde_rng *r, int64_t n, nde_real *out);    /* N(0, 1) */
NDE_API void nde_rng_rademacher(nde_rng *r, int64_t n, nde_real *out);/* +-1 */
NDE_API double nde_rng_uniform1(nde_rng *r);
NDE_API double nde_rng_normal1(nde_rng *r);
/* Fill a tensor (any backend) from r. */
NDE_API nde_status nde_tensor_fill_normal(nde_ctx *ctx, nde_tensor *t, nde_rng *r, nde_real mean, nde_real std);
NDE_API nde_status nde_tensor_fill_uniform(nde_ctx *ctx, nde_tensor *t, nde_rng *r, nde_real lo, nde_real hi);
NDE_API nde_status nde_tensor_fill_rademacher(nde_ctx *ctx, nde_tensor *t, nde_rng *r);

/* The streams' value mapping, inline so that a device backend compiles the very
   same code (nde_cuda.h runs it in its kernels, hence NDE_HOST_DEVICE): value i
   of (seed, stream) comes from the block with key seed, counter_hi stream and
   counter_lo counter + i. kind 0: uniform (k + 1/2) 2^-b from the top b bits,
   b = 23 for float and 52 for double (exactly representable, so strictly inside
   (0, 1) in nde_real; with 24 or 53 bits the largest value would round up to 1);
   1: normal, Box-Muller on two 52-bit uniforms in double; 2: Rademacher +-1. */
#if defined(__CUDACC__)
#define NDE_HOST_DEVICE __host__ __device__
#else
#define NDE_HOST_DEVICE
#endif
static inline NDE_HOST_DEVICE void nde__philox_block(uint64_t key, uint64_t counter_hi, uint64_t counter_lo,
                                                     uint32_t out[4]) {
    /* Philox 4x32-10 (Salmon et al. 2011; Table 2 constants) */
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    int r;
    for (r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}
static inline NDE_HOST_DEVICE double nde__philox_u01_52(uint32_t hi, uint32_t lo) {
    return ((double)(((uint64_t)hi << 20) | (uint64_t)(lo >> 12)) + 0.5) * (1.0 / 4503599627370496.0);
}
static inline NDE_HOST_DEVICE double nde__philox_value(int kind, uint64_t seed, uint64_t stream, uint64_t idx) {
    uint32_t o[4];
    nde__philox_block(seed, stream, idx, o);
    if (kind == 0) {
#ifdef NDE_DOUBLE
        return nde__philox_u01_52(o[0], o[1]);
#else
        return ((double)(o[0] >> 9) + 0.5) * (1.0 / 8388608.0);
#endif
    }
    if (kind == 2) return (o[0] & 1u) ? 1.0 : -1.0;
    {
        double u1 = nde__philox_u01_52(o[0], o[1]), u2 = nde__philox_u01_52(o[2], o[3]);
        return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
}

/* ---------------------------------------------------------------- layers */
typedef enum nde_activation {
    NDE_ACT_NONE = 0, NDE_ACT_TANH, NDE_ACT_RELU, NDE_ACT_SIGMOID, NDE_ACT_SOFTPLUS,
    NDE_ACT_ELU, NDE_ACT_LEAKY_RELU, NDE_ACT_SIN
} nde_activation;
NDE_API nde_tensor *nde_activate(nde_ctx *ctx, nde_tensor *x, nde_activation act);

typedef struct nde_linear { nde_tensor *weight, *bias; int64_t in, out; } nde_linear;
/* PyTorch's default: weight (out, in) and bias ~ U(-1/sqrt(in), 1/sqrt(in)). */
NDE_API nde_status nde_linear_init(nde_ctx *ctx, nde_linear *l, const char *name, int64_t in, int64_t out, int bias, uint64_t seed);
NDE_API nde_tensor *nde_linear_forward(nde_ctx *ctx, const nde_linear *l, nde_tensor *x); /* (b,in)->(b,out) */

#define NDE_MLP_MAX_LAYERS 16
typedef struct nde_mlp {
    int num_layers; nde_linear layer[NDE_MLP_MAX_LAYERS]; nde_activation act;
} nde_mlp;
/* widths[0] inputs ... widths[n-1] outputs; act after every layer but the last. */
NDE_API nde_status nde_mlp_init(nde_ctx *ctx, nde_mlp *m, const char *name, int num_widths, const int64_t *widths, nde_activation act, uint64_t seed);
NDE_API nde_tensor *nde_mlp_forward(nde_ctx *ctx, const nde_mlp *m, nde_tensor *x);

typedef struct nde_conv2d_layer {
    nde_tensor *weight, *bias; int64_t in, out; int kernel, stride, padding;
} nde_conv2d_layer;
NDE_API nde_status nde_conv2d_init(nde_ctx *ctx, nde_conv2d_layer *l, const char *name, int64_t in, int64_t out,
                                   int kernel, int stride, int padding, int bias, uint64_t seed);
NDE_API nde_tensor *nde_conv2d_forward(nde_ctx *ctx, const nde_conv2d_layer *l, nde_tensor *x);

/* Initialisers (host-side RNG, any backend). fan_in = product of shape[1..]. */
NDE_API nde_status nde_init_uniform(nde_ctx *ctx, nde_tensor *t, nde_real lo, nde_real hi, uint64_t seed);
NDE_API nde_status nde_init_kaiming_uniform(nde_ctx *ctx, nde_tensor *t, nde_real a, uint64_t seed);
NDE_API nde_status nde_init_kaiming_normal(nde_ctx *ctx, nde_tensor *t, nde_real a, uint64_t seed);

/* ---------------------------------------------------------------- JETS
   Taylor mode. A jet is a truncated Taylor series in one scalar variable s,

       x(s) = c[0] + c[1] s + c[2] s^2 + ... + c[order] s^order,

   stored as NORMALISED coefficients c[k] = x^(k)(0) / k! (the convention of
   Griewank & Walther, "Evaluating Derivatives", 2nd ed. 2008, ch. 13; JAX's
   jet stores x^(k)(0) instead). Every c[k] has the shape of c[0]. A NULL c[k]
   (k >= 1) is an exact zero and costs nothing, so constants, parameters and
   the time line t0 + s stay cheap. A jet whose `closed` flag is set is a
   polynomial: every coefficient past `order` is zero (constants, parameters,
   lines x0 + s v), so it can meet jets of any order. Otherwise the result of
   an op has the smallest order of its open inputs.

   The propagation rules below are written with the taped tensor ops of this
   header, so reverse mode differentiates through any jet computation (TayNODE
   regularisers, Taylor-Lagrange steps, Taylorized models train this way).
   Rules (k >= 1, sums over j; G&W Table 13.1 and 13.2):
     mul      v_k = sum_{j=0..k} a_j b_{k-j}                      (Cauchy product;
              matmul, conv2d likewise: bilinear)
     div      v_k = (a_k - sum_{j=1..k} b_j v_{k-j}) / b_0
     exp      v_k = (1/k) sum_{j=1..k} j a_j v_{k-j}
     log      v_k = (a_k - (1/k) sum_{j=1..k-1} j v_j a_{k-j}) / a_0
     sqrt     v_k = (a_k - sum_{j=1..k-1} v_j v_{k-j}) / (2 v_0)
     sin, cos s_k = (1/k) sum j a_j c_{k-j},  c_k = -(1/k) sum j a_j s_{k-j}  (coupled)
     tanh     v' = w a', w = 1 - v^2;   sigmoid  v' = w a', w = v - v^2
     softplus v' = sigmoid(a) a'
     powi     repeated Cauchy products (n >= 0), 1 / a^|n| (n < 0)
     relu, leaky_relu, abs: v_k = m a_k with the mask m = f'(a_0) (piecewise
              linear; exact away from the kink, the kink takes f'(0) = 0 like
              the backward pass); elu: identity where a_0 > 0, alpha e^a else
     linear ops (add, sub, scale, sum, mean, reshape, transpose, slice, concat,
              pooling): coefficient by coefficient
     group_norm: composed from the rules above (mean, centring, variance,
              1/sqrt), hence exact.
   Cost: coefficient k of a nonlinear op costs O(k) tensor products, so a jet
   of order K costs O(K^2) products per op; linear ops cost O(K).

   Forward mode: nde_jvp() is a JVP by an order-1 jet, exact (no finite
   differences): x(s) = x + s v gives f(x) in c[0] and J v in c[1].

   Jet functions (nde_jet_fn, nde_jet_field) build their result with the
   nde_jet_* ops only. nde_ode_taylor_coeffs() evaluates such a function once
   at order 0 while recording the jet ops, then extends the recorded program
   one order at a time (coefficient k of every op from coefficients < k), so
   K ODE coefficients cost O(K^2) products per op: the classic recursive
   Taylor-integration scheme, not K nested VJPs. A jet function may branch on
   c[0] values (relu does); it must not read coefficients above 0 itself.

   Jets live in the work arena like tensors (nde_ctx_reset releases them).
   Functions returning nde_jet * return NULL on error (message in the context).

   Example (tests/test_taylor.c does this): the first derivatives in time of the
   solution of z' = mlp(z) through z0, and a JVP of the same network:
       static nde_jet *field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
           (void)t; return nde_jet_mlp_forward(ctx, (const nde_mlp *)user, z);
       }
       static nde_jet *net(nde_ctx *ctx, nde_jet *x, void *user) {
           return nde_jet_mlp_forward(ctx, (const nde_mlp *)user, x);
       }
       nde_jet *c = nde_ode_taylor_coeffs(ctx, field, &mlp, 0.0, z0, 6);  // z_0..z_6
       nde_tensor *d3 = nde_jet_derivative(ctx, c, 3);                   // d^3z/dt^3 = 3! z_3
       nde_tensor *y, *jv;
       nde_jvp(ctx, net, &mlp, x, v, &y, &jv);                           // mlp(x), J v
   Every tensor above is on the tape: nde_backward through d3 trains the net.
*/
#ifndef NDE_JET_MAX_ORDER
#define NDE_JET_MAX_ORDER 16          /* every TU: it sizes nde_jet */
#endif
typedef struct nde_jet {
    int order;                        /* coefficients 0..order are known        */
    int closed;                       /* 1: coefficients past order are all 0   */
    nde_tensor *c[NDE_JET_MAX_ORDER + 1];   /* c[k] = x^(k)/k!; NULL = 0 (k>=1) */
} nde_jet;

/* A function y = f(x) written with nde_jet_* ops. */
typedef nde_jet *(*nde_jet_fn)(nde_ctx *ctx, nde_jet *x, void *user);
/* An ODE right-hand side dz/dt = f(t, z) written with nde_jet_* ops. t is a jet
   of shape (1), or (batch, 1) for per-sample times (Taylor-Lagrange midpoints):
   write time dependence with broadcasting ops. */
typedef nde_jet *(*nde_jet_field)(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user);

/* Construction. nde_jet_new: coefficients coeffs[0..order] (coeffs[k >= 1] may
   be NULL), an open jet. nde_jet_const: x with zero derivatives (closed).
   nde_jet_line: x0 + s v (closed; v NULL = const). */
NDE_API nde_jet *nde_jet_new(nde_ctx *ctx, int order, nde_tensor *const *coeffs);
NDE_API nde_jet *nde_jet_const(nde_ctx *ctx, nde_tensor *x, int order);
NDE_API nde_jet *nde_jet_line(nde_ctx *ctx, nde_tensor *x0, nde_tensor *v, int order);
/* The jet of a parameter tensor: a constant, or theta0 + s (theta - theta0)
   inside nde_taylorized_forward (see TAYLORIZED MODELS below). */
NDE_API nde_jet *nde_jet_param(nde_ctx *ctx, nde_tensor *param, int order);
/* c[k] as a tensor (zeros when it is an exact zero); k! c[k] = x^(k)(0). */
NDE_API nde_tensor *nde_jet_coeff(nde_ctx *ctx, const nde_jet *x, int k);
NDE_API nde_tensor *nde_jet_derivative(nde_ctx *ctx, const nde_jet *x, int k);
/* sum_k c[k] s^k (differentiable in the coefficients). */
NDE_API nde_tensor *nde_jet_eval(nde_ctx *ctx, const nde_jet *x, nde_real s);

/* Linear ops (broadcasting as the tensor ops). */
NDE_API nde_jet *nde_jet_add(nde_ctx *ctx, nde_jet *a, nde_jet *b);
NDE_API nde_jet *nde_jet_sub(nde_ctx *ctx, nde_jet *a, nde_jet *b);
NDE_API nde_jet *nde_jet_neg(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_scale(nde_ctx *ctx, nde_jet *x, nde_real s);
NDE_API nde_jet *nde_jet_add_scalar(nde_ctx *ctx, nde_jet *x, nde_real s);
NDE_API nde_jet *nde_jet_sum(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_mean(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_sum_axis(nde_ctx *ctx, nde_jet *x, int axis, int keepdim);
NDE_API nde_jet *nde_jet_mean_axis(nde_ctx *ctx, nde_jet *x, int axis, int keepdim);
NDE_API nde_jet *nde_jet_reshape(nde_ctx *ctx, nde_jet *x, int ndim, const int64_t *shape);
NDE_API nde_jet *nde_jet_transpose(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_slice(nde_ctx *ctx, nde_jet *x, int axis, int64_t start, int64_t stop);
NDE_API nde_jet *nde_jet_concat(nde_ctx *ctx, int count, nde_jet *const *xs, int axis);
NDE_API nde_jet *nde_jet_avg_pool2d(nde_ctx *ctx, nde_jet *x, int kernel, int stride);
NDE_API nde_jet *nde_jet_global_avg_pool(nde_ctx *ctx, nde_jet *x);
/* Bilinear ops (Cauchy products). A constant operand: nde_jet_const / nde_jet_param. */
NDE_API nde_jet *nde_jet_mul(nde_ctx *ctx, nde_jet *a, nde_jet *b);
NDE_API nde_jet *nde_jet_matmul(nde_ctx *ctx, nde_jet *a, nde_jet *b, int trans_a, int trans_b);
NDE_API nde_jet *nde_jet_conv2d(nde_ctx *ctx, nde_jet *x, nde_jet *w, nde_jet *bias, int stride, int padding);
/* Nonlinear ops. */
NDE_API nde_jet *nde_jet_div(nde_ctx *ctx, nde_jet *a, nde_jet *b);
NDE_API nde_jet *nde_jet_square(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_powi(nde_ctx *ctx, nde_jet *x, int n);
NDE_API nde_jet *nde_jet_exp(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_log(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_sqrt(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_sin(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_cos(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_tanh(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_sigmoid(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_softplus(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_relu(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_leaky_relu(nde_ctx *ctx, nde_jet *x, nde_real slope);
NDE_API nde_jet *nde_jet_elu(nde_ctx *ctx, nde_jet *x, nde_real alpha);
NDE_API nde_jet *nde_jet_abs(nde_ctx *ctx, nde_jet *x);
NDE_API nde_jet *nde_jet_activate(nde_ctx *ctx, nde_jet *x, nde_activation act);
/* x (N,C,...); gamma, beta: jets of shape (C) or NULL. Exact (see above). */
NDE_API nde_jet *nde_jet_group_norm(nde_ctx *ctx, nde_jet *x, int groups, nde_jet *gamma, nde_jet *beta, nde_real eps);
/* Layers on jets; their parameters enter through nde_jet_param. */
NDE_API nde_jet *nde_jet_linear_forward(nde_ctx *ctx, const nde_linear *l, nde_jet *x);
NDE_API nde_jet *nde_jet_mlp_forward(nde_ctx *ctx, const nde_mlp *m, nde_jet *x);
NDE_API nde_jet *nde_jet_conv2d_forward(nde_ctx *ctx, const nde_conv2d_layer *l, nde_jet *x);

/* Forward mode: y = f(x) and jv = J_f(x) v by one order-1 jet (exact). y and jv
   keep their history on the tape (reverse-over-forward works). */
NDE_API nde_status nde_jvp(nde_ctx *ctx, nde_jet_fn f, void *user, nde_tensor *x, nde_tensor *v,
                           nde_tensor **y, nde_tensor **jv);

/* ODE time derivatives. For dz/dt = f(t, z), the normalised Taylor coefficients
   z_k = z^(k)(t)/k!, k = 0..order, of the solution through (t, z), by the
   recursion z_{k+1} = [f(t + s, z(s))]_k / (k + 1): f is evaluated once, and
   its recorded jet program is extended one order per step (O(order^2)).
   Returns a jet of the given order (c[0] = z). */
NDE_API nde_jet *nde_ode_taylor_coeffs(nde_ctx *ctx, nde_jet_field f, void *user, nde_real t, nde_tensor *z, int order);
/* f on order-0 jets: the plain value f(t, z), for use with ordinary solvers. */
NDE_API nde_tensor *nde_jet_field_eval(nde_ctx *ctx, nde_jet_field f, void *user, nde_real t, nde_tensor *z);

/* TayNODE regulariser (Kelly, Bettencourt, Johnson, Duvenaud, "Learning
   Differential Equations that are Easy to Solve", NeurIPS 2020):
       R_K = integral over the solve of || d^K z / dt^K ||^2 dt,
   normalised as the authors' code does: the squared norm is a mean over the
   state's elements (per sample), then a mean over the batch. All three are
   differentiable (shape (1)).
   nde_taynode_integrand: mean((K! z_K)^2) from a coefficient jet of order >= K.
   nde_taynode_reg: trapezoid rule over the solver's accepted points
     (ts[i], zs[i]), i < count, with z_K at each point from nde_ode_taylor_coeffs.
   nde_taynode_step_integral: the integral over [0, h] of the integrand of the
     local Taylor polynomial sum_k z_k s^k (the Taylor solver's step), by
     Gauss-Legendre with order - K + 1 nodes (exact for that polynomial). */
NDE_API nde_tensor *nde_taynode_integrand(nde_ctx *ctx, const nde_jet *zc, int K);
NDE_API nde_tensor *nde_taynode_reg(nde_ctx *ctx, nde_jet_field f, void *user, int K, int count,
                                    const nde_real *ts, nde_tensor *const *zs);
NDE_API nde_tensor *nde_taynode_step_integral(nde_ctx *ctx, const nde_jet *zc, int K, nde_real h);

/* Taylor-Lagrange step (TayLaNets: Djeumou, Neary, Goubault, Putot, Topcu,
   "Taylor-Lagrange Neural Ordinary Differential Equations", 2022). With
   T = sum_{i<=K} h^i z_i (the truncated Taylor step from (t, z)),
       z(t + h) = T + h^(K+1) z_{K+1}(t_m, xi),     xi = z + Gamma * (T - z),
   the Lagrange form of the remainder at a learned point. midpoint(z) returns
   (batch, n) outputs g for a state z (batch, n), or (batch, n + 1): the last
   column then places the remainder's time t_m = t + h sigmoid(g_n) per sample;
   without it t_m = t + h/2. Gamma = sigmoid(g) in (0,1)^n puts xi between z(t)
   and its Taylor estimate T of z(t + h) (the mean-value form; the default), or
   Gamma = g with midpoint_unbounded: the research code's parameterisation
   (it writes xi = z + c * f(z) with an unbounded c; component-wise the same
   family, since T - z = h f(z) for K = 1). Unbounded is needed when T
   overshoots so far that the Lagrange point lies outside [z, T] (stiff
   problems at order >= 2). midpoint = NULL: the truncated Taylor step. */
typedef struct nde_tayla_options {
    int order;                 /* K, the research code's --order (>= 1)          */
    int n_steps;               /* equal steps per interval (--n_steps, >= 1)     */
    nde_fn midpoint;           /* midpoint network, NULL: truncated Taylor       */
    void *midpoint_user;
    int midpoint_unbounded;    /* 0: Gamma = sigmoid(g) in (0,1); 1: Gamma = g   */
} nde_tayla_options;
NDE_API nde_tayla_options nde_tayla_options_default(void);   /* order 1, 1 step, no midpoint */
/* One step of size h from (t, z); n_steps is not used. remainder (optional)
   receives h^(K+1) z_{K+1}(t_m, xi) (NULL without a midpoint). */
NDE_API nde_tensor *nde_tayla_step(nde_ctx *ctx, nde_jet_field f, void *user, const nde_tayla_options *opt,
                                   nde_real t, nde_real h, nde_tensor *z, nde_tensor **remainder);
/* n_steps steps from (t0, z0) to t1. remainder_l1 (optional, NULL without a
   midpoint) receives the research code's penalty term: the mean over steps
   and batch of sum_i |remainder_i| (shape (1)). */
NDE_API nde_tensor *nde_tayla_solve(nde_ctx *ctx, nde_jet_field f, void *user, const nde_tayla_options *opt,
                                    nde_real t0, nde_real t1, nde_tensor *z0, nde_tensor **remainder_l1);

/* TAYLORIZED MODELS (Bai, Krause, Wang, Xiong, Socher, "Taylorized Training",
   2020). For a network f(x; theta) written on jets, the order-k expansion in
   the parameters around theta0:
       f_k(x; theta) = sum_{j<=k} D^j_theta f(x; theta0)[theta - theta0]^j / j!,
   computed by ONE jet in the parameter direction, theta(s) = theta0 + s (theta
   - theta0), evaluated at s = 1 (k = 1 is the linearised / NTK model). Inside
   nde_taylorized_forward every nde_jet_param (so every nde_jet_* layer) yields
   that line, and gradients flow into the current parameters: train f_k with
   the ordinary optimizers. theta0 is a snapshot of the flat parameter store. */
typedef struct nde_taylorized {
    int order;                 /* k, 1..NDE_JET_MAX_ORDER                        */
    int64_t count;             /* parameters in the snapshot                     */
    nde_real *theta0;          /* backend memory, owned                          */
} nde_taylorized;
NDE_API nde_status nde_taylorized_init(nde_ctx *ctx, nde_taylorized *tz, int order);  /* theta0 = now */
NDE_API nde_status nde_taylorized_snapshot(nde_ctx *ctx, nde_taylorized *tz);         /* re-centre  */
NDE_API void nde_taylorized_free(nde_ctx *ctx, nde_taylorized *tz);
NDE_API nde_tensor *nde_taylorized_forward(nde_ctx *ctx, const nde_taylorized *tz, nde_jet_fn f, void *user, nde_tensor *x);

/* ---------------------------------------------------------------- optimizers */
typedef enum nde_optimizer_kind { NDE_OPT_SGD, NDE_OPT_RMSPROP, NDE_OPT_ADAM, NDE_OPT_ADAMW } nde_optimizer_kind;
typedef enum nde_schedule_kind {
    NDE_SCHED_CONSTANT, NDE_SCHED_EXPONENTIAL, NDE_SCHED_COSINE, NDE_SCHED_PIECEWISE
} nde_schedule_kind;
#define NDE_SCHED_MAX_MILESTONES 8
typedef struct nde_schedule {
    nde_schedule_kind kind;
    double lr_init, lr_end;       /* exponential: lr_init -> lr_end over steps; cosine: to lr_end */
    int64_t steps;                /* length of the decay in optimizer steps */
    int num_milestones;           /* piecewise: lr *= factor at each milestone step */
    int64_t milestones[NDE_SCHED_MAX_MILESTONES];
    double factor;
} nde_schedule;
typedef struct nde_optimizer {
    nde_optimizer_kind kind;
    double lr;                    /* used when schedule.kind == CONSTANT */
    double momentum, dampening;   /* SGD */
    int nesterov;                 /* SGD */
    double alpha;                 /* RMSprop smoothing (0.99) */
    double beta1, beta2, eps;     /* Adam/AdamW (0.9, 0.999, 1e-8); RMSprop eps */
    double weight_decay;          /* L2 for SGD/RMSprop/Adam, decoupled for AdamW */
    double clip_grad_norm;        /* > 0: scale gradients to this global norm first */
    nde_schedule schedule;
    int64_t step;                 /* steps taken */
    double last_grad_norm;        /* before clipping */
} nde_optimizer;
NDE_API nde_optimizer nde_sgd(double lr, double momentum, int nesterov);
NDE_API nde_optimizer nde_rmsprop(double lr);
NDE_API nde_optimizer nde_adam(double lr);
NDE_API nde_optimizer nde_adamw(double lr, double weight_decay);
NDE_API double nde_schedule_lr(const nde_schedule *s, int64_t step);
NDE_API double nde_optimizer_lr(const nde_optimizer *opt);
/* One step over every trainable parameter, from the flat gradient. */
NDE_API nde_status nde_optimizer_step(nde_ctx *ctx, nde_optimizer *opt);
NDE_API double nde_grad_norm(nde_ctx *ctx);
NDE_API double nde_clip_grad_norm(nde_ctx *ctx, double max_norm); /* returns the norm before */
/* The optimizer's state arrays, flat like the parameters (nde_params_count
   reals, backend memory), created zeroed on first use. which 0: the SGD/RMSprop
   momentum buffer or Adam's first moment; 1: RMSprop's square average or Adam's
   second moment. With nde_optimizer.step they are the optimizer's whole state:
   save and restore them to resume training exactly. NULL on error. */
NDE_API nde_real *nde_optimizer_state(nde_ctx *ctx, int which);

/* ---------------------------------------------------------------- I/O
   Parameters as safetensors. nde_save_params writes every parameter under its
   name (F32, or F64 with NDE_DOUBLE; __metadata__ {"format": "pt",
   "nde_version", "nde_real_bytes"}); Python's safetensors reads it.
   nde_load_params fills the existing parameters from F32/F64 (also F16/BF16)
   tensors of the same names and shapes, converting to nde_real. The file must
   hold exactly the model's parameters: a parameter missing from the file, a
   tensor the model lacks, or a shape that differs is NDE_ERR_FORMAT naming
   them, and the model is changed only when the whole file read cleanly.
   Arrays as .npy: writes v1.0 '<f4'/'<f8'; reads v1.0-3.0 with f2/f4/f8,
   i1..i8, u1..u8, b1 in either byte order, C order only. IDX (MNIST,
   uncompressed): u8, i8, i16, i32, f32, f64, 1..4 dimensions.
   Writes are atomic: a temp file beside path, then rename(); on failure the
   temp file is removed and an existing file is left as it was (NDE_ERR_IO
   with the system's reason). Readers check every length and offset against
   the file size: a truncated or corrupt file is NDE_ERR_FORMAT with a message
   naming the file and the problem. */
NDE_API nde_status nde_save_params(nde_ctx *ctx, const char *path);
NDE_API nde_status nde_load_params(nde_ctx *ctx, const char *path);
NDE_API nde_status nde_save_npy(nde_ctx *ctx, const char *path, const nde_tensor *t);
NDE_API nde_tensor *nde_load_npy(nde_ctx *ctx, const char *path);
/* IDX file as a tensor of its dimensions, values as stored (0..255 for MNIST images). */
NDE_API nde_tensor *nde_load_idx(nde_ctx *ctx, const char *path);

/* ---------------------------------------------------------------- backend
   Kernels on raw backend pointers. All arrays contiguous, row-major. */
typedef enum nde_unary_op {
    NDE_UNARY_NEG, NDE_UNARY_SCALE, NDE_UNARY_ADD_SCALAR, NDE_UNARY_SQUARE, NDE_UNARY_SQRT,
    NDE_UNARY_EXP, NDE_UNARY_LOG, NDE_UNARY_SIN, NDE_UNARY_COS, NDE_UNARY_TANH,
    NDE_UNARY_SIGMOID, NDE_UNARY_RELU, NDE_UNARY_LEAKY_RELU, NDE_UNARY_SOFTPLUS,
    NDE_UNARY_ELU, NDE_UNARY_ABS, NDE_UNARY_POWI
} nde_unary_op;
typedef enum nde_binary_op { NDE_BINARY_ADD, NDE_BINARY_SUB, NDE_BINARY_MUL, NDE_BINARY_DIV } nde_binary_op;
typedef enum nde_copy_kind { NDE_COPY_DEVICE, NDE_COPY_TO_DEVICE, NDE_COPY_TO_HOST } nde_copy_kind;

struct nde_backend {
    const char *name;
    int is_device;                 /* 1: data pointers are not host-readable */
    void *self;
    void *(*alloc)(void *self, size_t bytes);
    void (*free)(void *self, void *ptr);
    nde_status (*copy)(void *self, void *dst, const void *src, size_t bytes, nde_copy_kind kind);
    nde_status (*synchronize)(void *self);
    void (*fill)(void *self, int64_t n, nde_real value, nde_real *x);
    /* C(m,n) = alpha op(A) op(B) + beta C with leading dimensions. */
    void (*gemm)(void *self, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 nde_real alpha, const nde_real *a, int64_t lda, const nde_real *b, int64_t ldb,
                 nde_real beta, nde_real *c, int64_t ldc);
    /* y = f(x; alpha) */
    void (*unary)(void *self, nde_unary_op op, int64_t n, const nde_real *x, nde_real alpha, nde_real *y);
    /* dx += f'(x; alpha) * dy (y = f(x) given too) */
    void (*unary_backward)(void *self, nde_unary_op op, int64_t n, const nde_real *x, const nde_real *y,
                           const nde_real *dy, nde_real alpha, nde_real *dx);
    /* out[i] = a[i.a_stride] op b[i.b_stride] over a 4-D index space (shape);
       strides are in elements, 0 on broadcast dimensions. */
    void (*binary)(void *self, nde_binary_op op, const int64_t *shape, const nde_real *a, const int64_t *a_strides,
                   const nde_real *b, const int64_t *b_strides, nde_real *out);
    /* out[i.out_strides] += alpha * x[i] summed over a 4-D index space (out_strides
       0 on the reduced dimensions). */
    void (*reduce_add)(void *self, const int64_t *shape, const nde_real *x, nde_real alpha,
                       nde_real *out, const int64_t *out_strides);
    /* out = sum_i coef[i] xs[i] (accumulate: out += ...) */
    void (*lincomb)(void *self, int64_t n, int count, const nde_real *coef, const nde_real *const *xs,
                    int accumulate, nde_real *out);
    /* dst[r*dst_ld + c] (+)= src[r*src_ld + c] for r < rows, c < cols. */
    void (*copy2d)(void *self, int64_t rows, int64_t cols, const nde_real *src, int64_t src_ld,
                   nde_real *dst, int64_t dst_ld, int accumulate);
    /* dst (cols, rows) (+)= src (rows, cols)^T */
    void (*transpose)(void *self, int64_t rows, int64_t cols, const nde_real *src, nde_real *dst, int accumulate);
    /* dst[i] (+)= src[index[i]] rows of width cols; scatter: dst[index[i]] += src[i]. index on host. */
    void (*gather_rows)(void *self, int64_t count, int64_t cols, const int64_t *index, const nde_real *src, nde_real *dst);
    void (*scatter_add_rows)(void *self, int64_t count, int64_t cols, const int64_t *index, const nde_real *src, nde_real *dst);
    /* im2col for one image: x (C,H,W) -> col (C*KH*KW, OH*OW); col2im accumulates back. */
    void (*im2col)(void *self, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                   const nde_real *x, nde_real *col);
    void (*col2im)(void *self, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                   const nde_real *col, nde_real *x);
    /* Group norm over x (N, C, S): y, and per (n, group) mean and rstd. */
    void (*group_norm)(void *self, int64_t n, int64_t c, int64_t s, int groups, nde_real eps,
                       const nde_real *x, const nde_real *gamma, const nde_real *beta,
                       nde_real *y, nde_real *mean, nde_real *rstd);
    /* dx, dgamma, dbeta accumulate (dgamma/dbeta may be NULL). */
    void (*group_norm_backward)(void *self, int64_t n, int64_t c, int64_t s, int groups,
                                const nde_real *x, const nde_real *gamma, const nde_real *mean, const nde_real *rstd,
                                const nde_real *dy, nde_real *dx, nde_real *dgamma, nde_real *dbeta);
    /* x (N*C, H, W) -> y (N*C, OH, OW), no padding. */
    void (*avg_pool2d)(void *self, int64_t nc, int64_t h, int64_t w, int kernel, int stride, const nde_real *x, nde_real *y);
    void (*avg_pool2d_backward)(void *self, int64_t nc, int64_t h, int64_t w, int kernel, int stride, const nde_real *dy, nde_real *dx);
    /* rows of x (n, k) -> log-softmax; backward: dx += dy - softmax * sum(dy). */
    void (*log_softmax)(void *self, int64_t n, int64_t k, const nde_real *x, nde_real *y);
    void (*log_softmax_backward)(void *self, int64_t n, int64_t k, const nde_real *y, const nde_real *dy, nde_real *dx);
    /* Philox streams: kind 0 uniform [0,1), 1 normal, 2 Rademacher; value i uses counter start + i/4 */
    void (*philox_fill)(void *self, int kind, uint64_t seed, uint64_t stream, uint64_t counter, int64_t n, nde_real *out);
    /* sqrt(mean((err / (atol + rtol*max(|y0|,|y1|)))^2)); atol_vec may be NULL (scalar atol).
       NaN if y1 (the proposed state) holds a NaN or Inf, so that this one reduction, one
       host read, both measures a step's error and vets the step. */
    double (*rms_error_norm)(void *self, int64_t n, const nde_real *err, const nde_real *y0, const nde_real *y1,
                             double rtol, double atol, const nde_real *atol_vec);
    double (*dot)(void *self, int64_t n, const nde_real *x, const nde_real *y); /* accumulated in double */
    double (*max_abs)(void *self, int64_t n, const nde_real *x);              /* NaN if any NaN */
    int (*all_finite)(void *self, int64_t n, const nde_real *x);
    /* Adam(W) over flat arrays; bc1 = 1-beta1^t, bc2 = 1-beta2^t. decoupled: AdamW. */
    void (*adam_step)(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *m, nde_real *v,
                      double lr, double beta1, double beta2, double eps, double weight_decay,
                      double bc1, double bc2, int decoupled);
    /* ---- optional entries: NULL means the core reports NDE_ERR_UNSUPPORTED or never asks. */
    /* SGD (PyTorch's form) over flat arrays; buf is the momentum buffer, first = 1 on the
       first step (buf := g). */
    void (*sgd_step)(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *buf, double lr,
                     double momentum, double dampening, int nesterov, double weight_decay, int first);
    /* RMSprop (PyTorch's form); sq the running mean of g^2, buf the momentum buffer. */
    void (*rmsprop_step)(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *sq, nde_real *buf,
                         double lr, double alpha, double eps, double momentum, double weight_decay);
    /* The backend's first failure (NDE_OK if none) and its message. Compute entries return
       void, so a device backend keeps its first failure here (and returns it from copy and
       synchronize); the core copies it into the context at every host read and in
       nde_ctx_synchronize. */
    nde_status (*last_error)(void *self, const char **message);
    /* im2col over a whole batch: x (N, C, H, W) -> col (C*KH*KW, N*OH*OW), image n in
       columns n*OH*OW onwards; col2im_batch accumulates back into x. With both set,
       nde_conv2d runs a batch as one GEMM and a few launches instead of two per image. */
    void (*im2col_batch)(void *self, int64_t n, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                         const nde_real *x, nde_real *col);
    void (*col2im_batch)(void *self, int64_t n, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                         const nde_real *col, nde_real *x);
    /* Sparse CSR (row_ptr, col_idx: backend memory, int64). transpose 0:
       y (rows, f) (+)= A x for x (cols, f); transpose 1: y (cols, f) += A^T x for
       x (rows, f) (always accumulates). */
    void (*csr_matmul)(void *self, int64_t rows, int64_t f, const int64_t *row_ptr, const int64_t *col_idx,
                       const nde_real *values, const nde_real *x, nde_real *y, int transpose, int accumulate);
    /* dvalues[k] += dy[i, :] . x[j, :] over the nonzeros k = (i, j). */
    void (*csr_sddmm)(void *self, int64_t rows, int64_t f, const int64_t *row_ptr, const int64_t *col_idx,
                      const nde_real *dy, const nde_real *x, nde_real *dvalues);
};
NDE_API const nde_backend *nde_cpu_backend(void);

#ifdef __cplusplus
}
#endif
#endif /* NDE_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if defined(NDE_IMPLEMENTATION) && !defined(NDE_CORE_IMPLEMENTATION)
#define NDE_CORE_IMPLEMENTATION
#endif
#if defined(NDE_CORE_IMPLEMENTATION) && !defined(NDE_CORE_IMPLEMENTATION_DONE)
#define NDE_CORE_IMPLEMENTATION_DONE

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "nde: do not build with -ffast-math/-Ofast: they remove the NaN/Inf checks"
#endif

#if defined(NDE_MALLOC) && defined(NDE_FREE) && defined(NDE_REALLOC)
#elif !defined(NDE_MALLOC) && !defined(NDE_FREE) && !defined(NDE_REALLOC)
#define NDE_MALLOC(sz) malloc(sz)
#define NDE_REALLOC(p, sz) realloc(p, sz)
#define NDE_FREE(p) free(p)
#else
#error "nde: define all of NDE_MALLOC, NDE_REALLOC and NDE_FREE, or none"
#endif

#ifndef NDE_ASSERT
#include <assert.h>
#define NDE_ASSERT(x) assert(x)
#endif

#ifndef NDE_OMP_MIN_WORK
#define NDE_OMP_MIN_WORK 32768
#endif

#ifdef _OPENMP
#include <omp.h>
/* The loop that follows runs in parallel when the local int nde_omp_go is
   nonzero (set it from a work estimate against NDE_OMP_MIN_WORK). */
#define NDE_OMP_PARALLEL_FOR _Pragma("omp parallel for schedule(static) if(nde_omp_go)")
#else
#define NDE_OMP_PARALLEL_FOR
#endif

#if defined(__SANITIZE_ADDRESS__)
#define NDE__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NDE__ASAN 1
#endif
#endif
#ifdef NDE__ASAN
#include <sanitizer/asan_interface.h>
#define NDE__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define NDE__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define NDE__POISON(p, n) ((void)(p), (void)(n))
#define NDE__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NDE__PRIVATE static __attribute__((unused))
#else
#define NDE__PRIVATE static
#endif

#define NDE__ALIGN 64

/* ------------------------------------------------------------ real math */
#ifdef NDE_DOUBLE
static inline nde_real nde__exp(nde_real x) { return exp(x); }
static inline nde_real nde__log(nde_real x) { return log(x); }
static inline nde_real nde__sqrt(nde_real x) { return sqrt(x); }
static inline nde_real nde__tanh(nde_real x) { return tanh(x); }
static inline nde_real nde__sin(nde_real x) { return sin(x); }
static inline nde_real nde__cos(nde_real x) { return cos(x); }
static inline nde_real nde__fabs(nde_real x) { return fabs(x); }
static inline nde_real nde__log1p(nde_real x) { return log1p(x); }
static inline nde_real nde__expm1(nde_real x) { return expm1(x); }
#else
static inline nde_real nde__exp(nde_real x) { return expf(x); }
static inline nde_real nde__log(nde_real x) { return logf(x); }
static inline nde_real nde__sqrt(nde_real x) { return sqrtf(x); }
static inline nde_real nde__tanh(nde_real x) { return tanhf(x); }
static inline nde_real nde__sin(nde_real x) { return sinf(x); }
static inline nde_real nde__cos(nde_real x) { return cosf(x); }
static inline nde_real nde__fabs(nde_real x) { return fabsf(x); }
static inline nde_real nde__log1p(nde_real x) { return log1pf(x); }
static inline nde_real nde__expm1(nde_real x) { return expm1f(x); }
#endif

/* Vectorisable tanh and sigmoid for the float CPU kernels (libm's tanhf/expf are
   scalar calls and dominated the MLP fields). Computed in double and rounded
   once: exp(y) = 2^k e^r with k = round(y / ln 2) (by the 1.5 * 2^52 shifter, so
   k lands in the low mantissa bits), |r| <= ln(2)/2 (Cody-Waite split of ln 2),
   e^r by its Taylor polynomial to r^9 (relative error < 1e-11), 2^k assembled in
   the exponent bits. Branch-free (selects only), so loops over them vectorise.
   tanh(a) = (e^{2a} - 1) / (e^{2a} + 1) for a = |x| >= 0.01, a - a^3/3 below
   (relative error < 2e-9 at the switch); |x| clamped to 10 (tanh rounds to 1
   in float from 9.01 on). Both are within 1 ulp of the correctly rounded float result
   (checked over all floats); NaN propagates through the arithmetic. Double
   builds keep libm (they check gradients). */
static inline double nde__exp_poly(double y) {   /* |y| <= 700 */
    const double log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;   /* 1.5 * 2^52 */
    double kt = y * log2e + shifter, k = kt - shifter, r = (y - k * ln2_hi) - k * ln2_lo, p;
    union { double d; int64_t i; } bits, scale;
    bits.d = kt;
    scale.i = (bits.i + 1023) << 52;   /* low bits of kt hold k */
    p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720
        + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))));
    return p * scale.d;
}
static inline float nde__tanh_float(float xf) {
    double x = (double)xf, ax = fabs(x), a = ax > 10.0 ? 10.0 : ax, e = nde__exp_poly(2.0 * a);
    double big = (e - 1.0) / (e + 1.0), small = a - a * a * a * (1.0 / 3.0);
    return (float)copysign(a < 0.01 ? small : big, x);
}
/* softplus(x) = max(x, 0) + log1p(u), u = exp(-|x|) in (0, 1], with
   log1p(u) = 2 atanh(s), s = u / (2 + u) in (0, 1/3]: no cancellation, and the
   odd series 2 s (1 + s^2/3 + ... + s^20/21) is within 2e-11 relative. */
static inline float nde__softplus_float(float xf) {
    double x = (double)xf, ax = fabs(x), a = ax > 120.0 ? 120.0 : ax, u = nde__exp_poly(-a);
    double s = u / (2.0 + u), s2 = s * s;
    double p = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13
        + s2 * (1.0 / 15 + s2 * (1.0 / 17 + s2 * (1.0 / 19 + s2 * (1.0 / 21))))))))));
    return (float)((x > 0.0 ? x : 0.0) + 2.0 * s * p);
}
static inline float nde__sigmoid_float(float xf) {   /* e/(1+e) or 1/(1+e), e = exp(-|x|), |x| <= 120 */
    double x = (double)xf, ax = fabs(x), a = ax > 120.0 ? 120.0 : ax, e = nde__exp_poly(-a);
    return (float)((x < 0.0 ? e : 1.0) / (1.0 + e));
}

/* ------------------------------------------------------------ arenas
   A chain of blocks with a bump pointer. Blocks are kept on reset and reused,
   so a steady-state training loop performs no allocation. */
typedef struct nde__block { unsigned char *raw, *base; size_t cap; size_t used; } nde__block;
typedef struct nde__arena {
    nde__block *blocks; size_t num_blocks, cap_blocks; size_t cur;
    size_t first_bytes; size_t live, peak, cap_total;
    const nde_backend *backend;   /* NULL: host memory with NDE_MALLOC */
} nde__arena;

typedef struct nde__node nde__node;
typedef void (*nde__backward_fn)(nde_ctx *ctx, nde__node *node);
struct nde__node {
    nde__backward_fn backward;
    nde_tensor *out;
    nde_tensor *in[NDE_MAX_INPUTS];
    int64_t iarg[4];
    nde_real rarg[2];
    void *saved;
};

typedef struct nde__param_info { char name[96]; int64_t offset; int trainable; nde_tensor *tensor; } nde__param_info;
typedef struct nde__jet_rec nde__jet_rec;   /* a recorded jet op (JETS section) */

struct nde_ctx {
    const nde_backend *be;
    nde__arena meta;              /* host: tensor headers, saved host data     */
    nde__arena data;              /* backend: tensor values and gradients      */
    nde__node *tape; int64_t tape_len, tape_cap;
    int grad_enabled;
    nde_status status; char message[512];
    /* parameter store */
    nde__param_info *params; int num_params, cap_params;
    int64_t param_count, param_cap;
    nde_real *param_data, *param_grad, *param_grad_own, *opt_m, *opt_v;
    /* jets: the op list being recorded by nde_ode_taylor_coeffs, and the
       parameter snapshot of an active Taylorized expansion (NULL: none) */
    nde__jet_rec *jet_rec_head, *jet_rec_tail;
    int jet_recording;
    const nde_real *jet_theta0;
};

NDE_API const char *nde_strerror(nde_status s) {
    switch (s) {
    case NDE_OK: return "NDE_OK: success";
    case NDE_ERR_ARG: return "NDE_ERR_ARG: invalid argument";
    case NDE_ERR_SHAPE: return "NDE_ERR_SHAPE: shapes do not fit";
    case NDE_ERR_CONFIG: return "NDE_ERR_CONFIG: build configuration mismatch";
    case NDE_ERR_BACKEND: return "NDE_ERR_BACKEND: backend failure";
    case NDE_ERR_UNSUPPORTED: return "NDE_ERR_UNSUPPORTED: not supported";
    case NDE_ERR_OOM: return "NDE_ERR_OOM: out of memory";
    case NDE_ERR_IO: return "NDE_ERR_IO: file input/output failed";
    case NDE_ERR_FORMAT: return "NDE_ERR_FORMAT: truncated or corrupt file";
    case NDE_ERR_NONFINITE: return "NDE_ERR_NONFINITE: NaN or Inf encountered";
    case NDE_ERR_MAX_STEPS: return "NDE_ERR_MAX_STEPS: too many steps";
    case NDE_ERR_STEP_UNDERFLOW: return "NDE_ERR_STEP_UNDERFLOW: step size underflow";
    case NDE_ERR_USER_FN: return "NDE_ERR_USER_FN: a user function failed";
    case NDE_ERR_INTERNAL: return "NDE_ERR_INTERNAL: internal error";
    case NDE_EVENT: return "NDE_EVENT: an event occurred";
    case NDE_STOPPED: return "NDE_STOPPED: stopped by a callback";
    default: return "unknown nde status";
    }
}

NDE_API const char *nde_version_string(void) { return NDE_VERSION_STRING; }

NDE_API nde_status nde_ctx_fail(nde_ctx *ctx, nde_status status, const char *fmt, ...) {
    va_list ap;
    if (!ctx) return status;
    if (ctx->status == NDE_OK) {
        ctx->status = status;
        va_start(ap, fmt);
        vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
        va_end(ap);
    }
    return status;
}
NDE_API nde_status nde_ctx_status(const nde_ctx *ctx) { return ctx ? ctx->status : NDE_ERR_OOM; }
NDE_API const char *nde_ctx_message(const nde_ctx *ctx) {
    return ctx ? ctx->message : "nde_ctx_new: out of memory";
}
NDE_API void nde_ctx_clear_error(nde_ctx *ctx) { ctx->status = NDE_OK; ctx->message[0] = 0; }

/* A backend failure (st, or the backend's own recorded error) into the context. */
static nde_status nde__backend_check(nde_ctx *ctx, nde_status st, const char *who) {
    const char *msg = "";
    nde_status rec = ctx->be->last_error ? ctx->be->last_error(ctx->be->self, &msg) : NDE_OK;
    if (st == NDE_OK) st = rec;
    if (st != NDE_OK) nde_ctx_fail(ctx, st, "%s: backend '%s' failed: %s", who, ctx->be->name, msg ? msg : "");
    return st;
}

static size_t nde__round_up(size_t n) { return (n + NDE__ALIGN - 1) / NDE__ALIGN * NDE__ALIGN; }

static void *nde__raw_alloc(const nde_backend *be, size_t bytes) {
    return be ? be->alloc(be->self, bytes) : NDE_MALLOC(bytes);
}
static void nde__raw_free(const nde_backend *be, void *p) {
    if (!p) return;
    if (be) be->free(be->self, p); else NDE_FREE(p);
}

/* Returns NULL (and records NDE_ERR_OOM) on failure. */
static void *nde__arena_alloc(nde_ctx *ctx, nde__arena *a, size_t bytes, const char *who) {
    size_t need = nde__round_up(bytes ? bytes : 1);
    while (a->cur < a->num_blocks) {
        nde__block *b = &a->blocks[a->cur];
        if (b->cap - b->used >= need) {
            unsigned char *p = b->base + b->used;
            b->used += need;
            a->live += need;
            if (a->live > a->peak) a->peak = a->live;
            if (!a->backend) NDE__UNPOISON(p, need);
            return p;
        }
        if (a->cur + 1 < a->num_blocks && a->blocks[a->cur + 1].cap >= need) {
            a->cur++;
            a->blocks[a->cur].used = 0;
            continue;
        }
        break;
    }
    {
        /* New block: at least the request and twice the last block. Blocks past
           the current one are dropped (they were too small). */
        size_t cap = a->num_blocks ? a->blocks[a->num_blocks - 1].cap * 2 : a->first_bytes;
        size_t total = 0, i;
        unsigned char *base;
        if (cap < need) cap = need;
        for (i = a->cur + 1; i < a->num_blocks; i++) nde__raw_free(a->backend, a->blocks[i].raw);
        if (a->num_blocks > a->cur + 1) a->num_blocks = a->num_blocks ? a->cur + 1 : 0;
        for (i = 0; i < a->num_blocks; i++) total += a->blocks[i].cap;
        if (a->cap_total && total + cap > a->cap_total) {
            nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: work arena: needed %zu bytes more, cap %zu bytes", who,
                         need, a->cap_total);
            return NULL;
        }
        if (a->num_blocks == a->cap_blocks) {
            size_t nc = a->cap_blocks ? a->cap_blocks * 2 : 8;
            nde__block *nb = (nde__block *)NDE_REALLOC(a->blocks, nc * sizeof *nb);
            if (!nb) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory (arena block list)", who); return NULL; }
            a->blocks = nb; a->cap_blocks = nc;
        }
        base = (unsigned char *)nde__raw_alloc(a->backend, cap + NDE__ALIGN);
        if (!base && a->backend && nde__backend_check(ctx, NDE_OK, who) != NDE_OK) return NULL;
        if (!base) {
            nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory allocating an arena block of %zu bytes", who, cap);
            return NULL;
        }
        a->blocks[a->num_blocks].raw = base;
        a->blocks[a->num_blocks].base = base + (NDE__ALIGN - ((uintptr_t)base % NDE__ALIGN)) % NDE__ALIGN;
        a->blocks[a->num_blocks].cap = cap;
        a->blocks[a->num_blocks].used = 0;
        if (!a->backend) NDE__POISON(base, cap + NDE__ALIGN);
        a->cur = a->num_blocks;
        a->num_blocks++;
        return nde__arena_alloc(ctx, a, bytes, who);
    }
}

static void nde__arena_reset(nde__arena *a, size_t block, size_t used) {
    size_t i;
    if (a->num_blocks == 0) return;
    for (i = block; i <= a->cur && i < a->num_blocks; i++) {
        size_t from = (i == block) ? used : 0;
        size_t to = a->blocks[i].used;
        if (to > from) {
            a->live -= (to - from);
            if (!a->backend) NDE__POISON(a->blocks[i].base + from, to - from);
        }
        if (i != block) a->blocks[i].used = 0;
    }
    if (block < a->num_blocks) a->blocks[block].used = used;
    a->cur = block;
}

static void nde__arena_free(nde__arena *a) {
    size_t i;
    for (i = 0; i < a->num_blocks; i++) {
        if (!a->backend) NDE__UNPOISON(a->blocks[i].raw, a->blocks[i].cap + NDE__ALIGN);
        nde__raw_free(a->backend, a->blocks[i].raw);
    }
    NDE_FREE(a->blocks);
    memset(a, 0, sizeof *a);
}

static void nde__arena_position(const nde__arena *a, size_t *block, size_t *used) {
    *block = a->cur;
    *used = a->num_blocks ? a->blocks[a->cur].used : 0;
}

NDE_API const nde_backend *nde_cpu_backend(void);

NDE_API nde_ctx *nde_ctx_new(nde_ctx_desc desc) {
    nde_ctx *ctx = (nde_ctx *)NDE_MALLOC(sizeof(nde_ctx));
    if (!ctx) return NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->be = desc.backend ? desc.backend : nde_cpu_backend();
    ctx->grad_enabled = 1;
    ctx->meta.first_bytes = desc.arena_block_bytes ? desc.arena_block_bytes / 4 + 4096 : (1u << 18);
    ctx->data.first_bytes = desc.arena_block_bytes ? desc.arena_block_bytes : (1u << 20);
    ctx->data.backend = ctx->be->is_device ? ctx->be : NULL;
    ctx->data.cap_total = desc.max_work_bytes;
    if (desc.real_size != (int)sizeof(nde_real)) {
        nde_ctx_fail(ctx, NDE_ERR_CONFIG,
                     "nde_ctx_new: the caller was compiled with nde_real of %d bytes, the library with %d: "
                     "define NDE_DOUBLE in every translation unit or in none",
                     desc.real_size, (int)sizeof(nde_real));
    } else if (desc.version_major != NDE_VERSION_MAJOR) {
        nde_ctx_fail(ctx, NDE_ERR_CONFIG, "nde_ctx_new: header version %d does not match library version %d",
                     desc.version_major, NDE_VERSION_MAJOR);
    }
    return ctx;
}

NDE_API void nde_ctx_free(nde_ctx *ctx) {
    int i;
    if (!ctx) return;
    nde__arena_free(&ctx->meta);
    nde__arena_free(&ctx->data);
    NDE_FREE(ctx->tape);
    for (i = 0; i < ctx->num_params; i++) NDE_FREE(ctx->params[i].tensor);
    NDE_FREE(ctx->params);
    nde__raw_free(ctx->data.backend, ctx->param_data);
    nde__raw_free(ctx->data.backend, ctx->param_grad_own);
    nde__raw_free(ctx->data.backend, ctx->opt_m);
    nde__raw_free(ctx->data.backend, ctx->opt_v);
    NDE_FREE(ctx);
}

NDE_API nde_mark nde_ctx_mark(nde_ctx *ctx) {
    nde_mark m;
    nde__arena_position(&ctx->meta, &m.meta_block, &m.meta_used);
    nde__arena_position(&ctx->data, &m.data_block, &m.data_used);
    m.tape_len = ctx->tape_len;
    return m;
}

NDE_API void nde_ctx_reset(nde_ctx *ctx, nde_mark m) {
    nde__arena_reset(&ctx->meta, m.meta_block, m.meta_used);
    nde__arena_reset(&ctx->data, m.data_block, m.data_used);
    if (m.tape_len < ctx->tape_len) ctx->tape_len = m.tape_len;
}

NDE_API size_t nde_ctx_peak_bytes(const nde_ctx *ctx) { return ctx->data.peak; }
NDE_API size_t nde_ctx_used_bytes(const nde_ctx *ctx) { return ctx->data.live; }
NDE_API void nde_ctx_reset_peak(nde_ctx *ctx) { ctx->data.peak = ctx->data.live; ctx->meta.peak = ctx->meta.live; }
NDE_API const nde_backend *nde_ctx_backend(const nde_ctx *ctx) { return ctx->be; }
NDE_API int nde_grad_enabled(const nde_ctx *ctx) { return ctx->grad_enabled; }
NDE_API int nde_set_grad_enabled(nde_ctx *ctx, int on) { int old = ctx->grad_enabled; ctx->grad_enabled = on; return old; }
NDE_API int64_t nde_tape_length(const nde_ctx *ctx) { return ctx->tape_len; }
NDE_API void nde_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

NDE_API nde_status nde_ctx_synchronize(nde_ctx *ctx) {
    if (!ctx) return NDE_ERR_ARG;
    nde__backend_check(ctx, ctx->be->synchronize(ctx->be->self), "nde_ctx_synchronize");
    return ctx->status;
}

NDE_API void *nde_ctx_alloc_host(nde_ctx *ctx, size_t bytes) {
    return nde__arena_alloc(ctx, &ctx->meta, bytes, "nde_ctx_alloc_host");
}
NDE_API nde_real *nde_ctx_alloc_reals(nde_ctx *ctx, int64_t count) {
    return (nde_real *)nde__arena_alloc(ctx, &ctx->data, (size_t)count * sizeof(nde_real), "nde_ctx_alloc_reals");
}

/* ------------------------------------------------------------ tensors */
NDE_API const char *nde_shape_str(const nde_tensor *t, char *buf, size_t len) {
    size_t off = 0; int i;
    if (!t) { snprintf(buf, len, "(null)"); return buf; }
    off += (size_t)snprintf(buf + off, len - off, "(");
    for (i = 0; i < t->ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < len) snprintf(buf + off, len - off, t->ndim == 1 ? ")" : ")");
    return buf;
}

static int nde__check_shape(nde_ctx *ctx, int ndim, const int64_t *shape, const char *who) {
    int i;
    if (ndim < 1 || ndim > NDE_MAX_DIMS) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: ndim %d outside 1..%d", who, ndim, NDE_MAX_DIMS);
        return 0;
    }
    for (i = 0; i < ndim; i++) if (shape[i] < 0) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: negative dimension %lld at axis %d", who, (long long)shape[i], i);
        return 0;
    }
    return 1;
}

static nde_tensor *nde__tensor_new(nde_ctx *ctx, int ndim, const int64_t *shape, const char *who) {
    nde_tensor *t; int i; int64_t size = 1;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!nde__check_shape(ctx, ndim, shape, who)) return NULL;
    for (i = 0; i < ndim; i++) size *= shape[i];
    t = (nde_tensor *)nde__arena_alloc(ctx, &ctx->meta, sizeof(nde_tensor), who);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->shape[i] = shape[i];
    for (; i < NDE_MAX_DIMS; i++) t->shape[i] = 1;
    t->size = size;
    t->node = -1;
    t->param = -1;
    t->data = (nde_real *)nde__arena_alloc(ctx, &ctx->data, (size_t)size * sizeof(nde_real), who);
    if (!t->data) return NULL;
    return t;
}

NDE_API nde_tensor *nde_tensor_new(nde_ctx *ctx, int ndim, const int64_t *shape) {
    return nde__tensor_new(ctx, ndim, shape, "nde_tensor_new");
}
NDE_API nde_tensor *nde_tensor_full(nde_ctx *ctx, int ndim, const int64_t *shape, nde_real value) {
    nde_tensor *t = nde__tensor_new(ctx, ndim, shape, "nde_tensor_full");
    if (t) ctx->be->fill(ctx->be->self, t->size, value, t->data);
    return t;
}
NDE_API nde_tensor *nde_tensor_zeros(nde_ctx *ctx, int ndim, const int64_t *shape) {
    return nde_tensor_full(ctx, ndim, shape, NDE_R(0.0));
}
NDE_API nde_tensor *nde_tensor_zeros_like(nde_ctx *ctx, const nde_tensor *t) {
    if (!t) return NULL;
    return nde_tensor_zeros(ctx, t->ndim, t->shape);
}
NDE_API nde_tensor *nde_tensor_from(nde_ctx *ctx, int ndim, const int64_t *shape, const nde_real *host) {
    nde_tensor *t = nde__tensor_new(ctx, ndim, shape, "nde_tensor_from");
    if (t && nde_tensor_set_host(ctx, t, host) != NDE_OK) return NULL;
    return t;
}
NDE_API nde_tensor *nde_tensor_scalar(nde_ctx *ctx, nde_real value) {
    int64_t one = 1;
    return nde_tensor_full(ctx, 1, &one, value);
}
NDE_API nde_status nde_tensor_set_host(nde_ctx *ctx, nde_tensor *t, const nde_real *host) {
    if (!t || !host) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tensor_set_host: NULL tensor or host pointer");
    if (ctx->be->is_device)
        return nde__backend_check(ctx, ctx->be->copy(ctx->be->self, t->data, host, (size_t)t->size * sizeof(nde_real),
                                                     NDE_COPY_TO_DEVICE), "nde_tensor_set_host");
    memcpy(t->data, host, (size_t)t->size * sizeof(nde_real));
    return NDE_OK;
}
NDE_API nde_status nde_tensor_to_host(nde_ctx *ctx, const nde_tensor *t, nde_real *host) {
    if (!t || !host) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tensor_to_host: NULL tensor or host pointer");
    if (ctx->be->is_device)
        return nde__backend_check(ctx, ctx->be->copy(ctx->be->self, host, t->data, (size_t)t->size * sizeof(nde_real),
                                                     NDE_COPY_TO_HOST), "nde_tensor_to_host");
    memcpy(host, t->data, (size_t)t->size * sizeof(nde_real));
    return NDE_OK;
}
NDE_API nde_real nde_tensor_item(nde_ctx *ctx, const nde_tensor *t, int64_t index) {
    nde_real v = NDE_R(0.0);
    if (!t || index < 0 || index >= t->size) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tensor_item: index %lld outside a tensor of %lld elements",
                     (long long)index, (long long)(t ? t->size : 0));
        return (nde_real)NAN;
    }
    if (ctx->be->is_device) {
        if (nde__backend_check(ctx, ctx->be->copy(ctx->be->self, &v, t->data + index, sizeof v, NDE_COPY_TO_HOST),
                               "nde_tensor_item") != NDE_OK)
            return (nde_real)NAN;
    } else v = t->data[index];
    return v;
}
NDE_API nde_status nde_tensor_fill(nde_ctx *ctx, nde_tensor *t, nde_real value) {
    if (!t) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tensor_fill: NULL tensor");
    ctx->be->fill(ctx->be->self, t->size, value, t->data);
    return NDE_OK;
}
NDE_API nde_tensor *nde_tensor_detach(nde_ctx *ctx, const nde_tensor *t) {
    nde_tensor *c;
    if (!t) return NULL;
    c = nde__tensor_new(ctx, t->ndim, t->shape, "nde_tensor_detach");
    if (c) ctx->be->copy(ctx->be->self, c->data, t->data, (size_t)t->size * sizeof(nde_real), NDE_COPY_DEVICE);
    return c;
}
NDE_API nde_status nde_tensor_copy_into(nde_ctx *ctx, nde_tensor *dst, const nde_tensor *src) {
    char sa[64], sb[64];
    if (!dst || !src) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tensor_copy_into: NULL tensor");
    if (dst->size != src->size)
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_tensor_copy_into: dst is %s, src is %s",
                            nde_shape_str(dst, sa, sizeof sa), nde_shape_str(src, sb, sizeof sb));
    return nde__backend_check(ctx, ctx->be->copy(ctx->be->self, dst->data, src->data, (size_t)src->size * sizeof(nde_real),
                                                 NDE_COPY_DEVICE), "nde_tensor_copy_into");
}
NDE_API int nde_tensor_same_shape(const nde_tensor *a, const nde_tensor *b) {
    int i;
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}
NDE_API int nde_tensor_all_finite(nde_ctx *ctx, const nde_tensor *t) {
    return t && ctx->be->all_finite(ctx->be->self, t->size, t->data);
}
NDE_API nde_real *nde_tensor_grad(nde_ctx *ctx, nde_tensor *t) {
    if (!t) return NULL;
    if (!t->grad) {
        t->grad = (nde_real *)nde__arena_alloc(ctx, &ctx->data, (size_t)t->size * sizeof(nde_real), "nde_backward");
        if (t->grad) ctx->be->fill(ctx->be->self, t->size, NDE_R(0.0), t->grad);
    }
    return t->grad;
}

/* ------------------------------------------------------------ tape */
static int nde__needs_grad(nde_ctx *ctx, nde_tensor *a, nde_tensor *b, nde_tensor *c) {
    if (!ctx->grad_enabled) return 0;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
}

/* Append a node producing out; returns it (NULL on failure, error recorded). */
static nde__node *nde__record(nde_ctx *ctx, nde__backward_fn fn, nde_tensor *out,
                              nde_tensor *a, nde_tensor *b, nde_tensor *c) {
    nde__node *n;
    if (ctx->tape_len == ctx->tape_cap) {
        int64_t nc = ctx->tape_cap ? ctx->tape_cap * 2 : 1024;
        nde__node *nt = (nde__node *)NDE_REALLOC(ctx->tape, (size_t)nc * sizeof(nde__node));
        if (!nt) { nde_ctx_fail(ctx, NDE_ERR_OOM, "nde: out of memory growing the tape to %lld nodes", (long long)nc); return NULL; }
        ctx->tape = nt; ctx->tape_cap = nc;
    }
    n = &ctx->tape[ctx->tape_len];
    memset(n, 0, sizeof *n);
    n->backward = fn; n->out = out; n->in[0] = a; n->in[1] = b; n->in[2] = c;
    out->node = (int32_t)ctx->tape_len;
    out->requires_grad = 1;
    ctx->tape_len++;
    return n;
}

/* Gradient buffer of an input that takes gradients, else NULL. */
static nde_real *nde__in_grad(nde_ctx *ctx, nde_tensor *t) {
    if (!t || !t->requires_grad) return NULL;
    return nde_tensor_grad(ctx, t);
}

NDE_API nde_status nde_backward_seed(nde_ctx *ctx, nde_tensor *out, const nde_tensor *seed, int64_t stop_at) {
    int64_t i;
    char sa[64], sb[64];
    if (ctx->status != NDE_OK) return ctx->status;
    if (!out || !seed) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_backward: NULL output or seed");
    if (out->size != seed->size)
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_backward: output is %s but the seed is %s",
                            nde_shape_str(out, sa, sizeof sa), nde_shape_str(seed, sb, sizeof sb));
    if (!out->requires_grad) return NDE_OK;   /* nothing depends on a trainable input */
    if (stop_at < 0) stop_at = 0;
    /* Intermediate gradients start from zero on every pass, so calling backward
       again over an overlapping graph does not re-send stale values; leaves
       (inputs, parameters) accumulate, as in PyTorch. */
    for (i = stop_at; i <= out->node; i++) ctx->tape[i].out->grad = NULL;
    {
        nde_real *g = nde_tensor_grad(ctx, out);
        nde_real one = NDE_R(1.0);
        const nde_real *xs[1];
        if (!g) return ctx->status;
        xs[0] = seed->data;
        ctx->be->lincomb(ctx->be->self, out->size, 1, &one, xs, 1, g);
    }
    {
        int was = ctx->grad_enabled;
        ctx->grad_enabled = 0;
        for (i = out->node; i >= stop_at; i--) {
            nde__node *n = &ctx->tape[i];
            if (!n->out->grad) continue;
            n->backward(ctx, n);
            if (ctx->status != NDE_OK) break;
        }
        ctx->grad_enabled = was;
    }
    return ctx->status;
}

NDE_API nde_status nde_backward(nde_ctx *ctx, nde_tensor *loss) {
    nde_tensor *seed;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!loss) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_backward: NULL loss");
    if (loss->size != 1) {
        char s[64];
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_backward: the loss must have one element, it is %s (use nde_backward_seed)",
                            nde_shape_str(loss, s, sizeof s));
    }
    seed = nde_tensor_full(ctx, loss->ndim, loss->shape, NDE_R(1.0));
    if (!seed) return ctx->status;
    return nde_backward_seed(ctx, loss, seed, 0);
}

NDE_API nde_status nde_vjp(nde_ctx *ctx, nde_fn f, void *user, nde_tensor *x, const nde_tensor *v,
                           nde_tensor **y_out, nde_tensor **x_bar, nde_real *param_grad) {
    int64_t start = ctx->tape_len;
    int was = nde_set_grad_enabled(ctx, 1);
    nde_real *prev_grad = ctx->param_grad;   /* restored after a redirect (nested use) */
    nde_tensor *xl, *y;
    nde_status st;
    if (ctx->status != NDE_OK) { nde_set_grad_enabled(ctx, was); return ctx->status; }
    xl = nde_tensor_detach(ctx, x);
    if (!xl) { nde_set_grad_enabled(ctx, was); return ctx->status; }
    xl->requires_grad = 1;
    y = f(ctx, xl, user);
    nde_set_grad_enabled(ctx, was);
    if (!y) return ctx->status ? ctx->status : nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_vjp: the function returned NULL");
    if (param_grad) nde_params_redirect_grad(ctx, param_grad);
    if (y->requires_grad) {
        /* y's own node index is its last; walk only this call's nodes */
        st = nde_backward_seed(ctx, y, v, start);
    } else {
        st = (y->size == v->size) ? NDE_OK : nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_vjp: f(x) has %lld elements but v has %lld",
                                                        (long long)y->size, (long long)v->size);
    }
    if (param_grad) nde_params_redirect_grad(ctx, prev_grad);
    if (st != NDE_OK) return st;
    if (x_bar) {
        *x_bar = nde_tensor_detach(ctx, xl);
        if (!*x_bar) return ctx->status;
        if (xl->grad) ctx->be->copy(ctx->be->self, (*x_bar)->data, xl->grad, (size_t)xl->size * sizeof(nde_real), NDE_COPY_DEVICE);
        else ctx->be->fill(ctx->be->self, xl->size, NDE_R(0.0), (*x_bar)->data);
    }
    if (y_out) {
        /* y keeps its value but loses its history: tape entries above start are truncated */
        nde_tensor *yd = nde_tensor_detach(ctx, y);
        if (!yd) return ctx->status;
        *y_out = yd;
    }
    ctx->tape_len = start;
    return NDE_OK;
}

/* ------------------------------------------------------------ custom nodes */
typedef struct nde__custom {
    nde_custom_backward_fn backward; void *saved; int num_inputs;
} nde__custom;
static void nde__custom_backward(nde_ctx *ctx, nde__node *n) {
    /* Copy out of the node first: the callback may grow (and move) the tape. */
    nde__custom c = *(nde__custom *)n->saved;
    nde_tensor *out = n->out, *in[NDE_MAX_INPUTS];
    int i;
    for (i = 0; i < NDE_MAX_INPUTS; i++) in[i] = n->in[i];
    c.backward(ctx, out, in, c.num_inputs, c.saved);
}
NDE_API nde_status nde_tape_custom(nde_ctx *ctx, nde_custom_backward_fn backward, nde_tensor *out, int num_inputs,
                                   nde_tensor *const *inputs, void *saved) {
    nde__node *n; nde__custom *c; int i;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!backward || !out || num_inputs < 0 || num_inputs > NDE_MAX_INPUTS || (num_inputs && !inputs))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tape_custom: need a backward function, an output and 0..%d inputs (got %d)",
                            NDE_MAX_INPUTS, num_inputs);
    if (!ctx->grad_enabled) return NDE_OK;
    c = (nde__custom *)nde_ctx_alloc_host(ctx, sizeof *c);
    if (!c) return ctx->status;
    c->backward = backward; c->saved = saved; c->num_inputs = num_inputs;
    n = nde__record(ctx, nde__custom_backward, out, NULL, NULL, NULL);
    if (!n) return ctx->status;
    for (i = 0; i < num_inputs; i++) n->in[i] = inputs[i];
    n->saved = c;
    return NDE_OK;
}

/* ------------------------------------------------------------ broadcasting */
static int nde__broadcast(nde_ctx *ctx, const nde_tensor *a, const nde_tensor *b, int *ndim_out,
                          int64_t shape[NDE_MAX_DIMS], int64_t sa[NDE_MAX_DIMS], int64_t sb[NDE_MAX_DIMS], const char *who) {
    /* Align at the right; produce a 4-D index space (leading 1s). */
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim, i;
    int64_t da[NDE_MAX_DIMS], db[NDE_MAX_DIMS], stride_a = 1, stride_b = 1;
    for (i = 0; i < NDE_MAX_DIMS; i++) { da[i] = 1; db[i] = 1; }
    for (i = 0; i < a->ndim; i++) da[NDE_MAX_DIMS - a->ndim + i] = a->shape[i];
    for (i = 0; i < b->ndim; i++) db[NDE_MAX_DIMS - b->ndim + i] = b->shape[i];
    for (i = NDE_MAX_DIMS - 1; i >= 0; i--) {
        if (da[i] != db[i] && da[i] != 1 && db[i] != 1) {
            char s1[64], s2[64];
            nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", who,
                         nde_shape_str(a, s1, sizeof s1), nde_shape_str(b, s2, sizeof s2));
            return 0;
        }
        shape[i] = da[i] > db[i] ? da[i] : db[i];
        if (da[i] == 0 || db[i] == 0) shape[i] = 0;
        sa[i] = (da[i] == 1) ? 0 : stride_a;
        sb[i] = (db[i] == 1) ? 0 : stride_b;
        stride_a *= da[i];
        stride_b *= db[i];
    }
    *ndim_out = nd;
    return 1;
}

static void nde__contig_strides(const int64_t shape[NDE_MAX_DIMS], int64_t st[NDE_MAX_DIMS]) {
    int i; int64_t s = 1;
    for (i = NDE_MAX_DIMS - 1; i >= 0; i--) { st[i] = s; s *= shape[i]; }
}

/* Reduce a gradient of the full 4-D index space down to t's (broadcast) shape:
   dt += alpha * sum over broadcast dims of g. */
static void nde__reduce_into(nde_ctx *ctx, const int64_t shape[NDE_MAX_DIMS], const nde_real *g, nde_real alpha,
                             nde_tensor *t, nde_real *dt) {
    int64_t ts[NDE_MAX_DIMS], full = 1; int i;
    int64_t td[NDE_MAX_DIMS], stride = 1;
    for (i = 0; i < NDE_MAX_DIMS; i++) { td[i] = 1; full *= shape[i]; }
    for (i = 0; i < t->ndim; i++) td[NDE_MAX_DIMS - t->ndim + i] = t->shape[i];
    for (i = NDE_MAX_DIMS - 1; i >= 0; i--) { ts[i] = (td[i] == 1) ? 0 : stride; stride *= td[i]; }
    if (full == t->size) {
        const nde_real *xs[1]; xs[0] = g;
        ctx->be->lincomb(ctx->be->self, full, 1, &alpha, xs, 1, dt);
    } else {
        ctx->be->reduce_add(ctx->be->self, shape, g, alpha, dt, ts);
    }
}

typedef struct nde__bin_saved { int64_t shape[NDE_MAX_DIMS], sa[NDE_MAX_DIMS], sb[NDE_MAX_DIMS]; } nde__bin_saved;

static void nde__binary_backward(nde_ctx *ctx, nde__node *n) {
    nde_binary_op op = (nde_binary_op)n->iarg[0];
    nde__bin_saved *s = (nde__bin_saved *)n->saved;
    nde_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    nde_real *ga = nde__in_grad(ctx, a), *gb = nde__in_grad(ctx, b);
    int64_t cs[NDE_MAX_DIMS], full = out->size;
    nde_real *tmp = NULL;
    const void *self = ctx->be->self;
    nde__contig_strides(s->shape, cs);
    (void)self;
    if (op == NDE_BINARY_ADD || op == NDE_BINARY_SUB) {
        if (ga) nde__reduce_into(ctx, s->shape, out->grad, NDE_R(1.0), a, ga);
        if (gb) nde__reduce_into(ctx, s->shape, out->grad, op == NDE_BINARY_ADD ? NDE_R(1.0) : NDE_R(-1.0), b, gb);
        return;
    }
    tmp = nde_ctx_alloc_reals(ctx, full);
    if (!tmp) return;
    if (op == NDE_BINARY_MUL) {
        if (ga) { /* dA = dy * b */
            ctx->be->binary(ctx->be->self, NDE_BINARY_MUL, s->shape, out->grad, cs, b->data, s->sb, tmp);
            nde__reduce_into(ctx, s->shape, tmp, NDE_R(1.0), a, ga);
        }
        if (gb) {
            ctx->be->binary(ctx->be->self, NDE_BINARY_MUL, s->shape, out->grad, cs, a->data, s->sa, tmp);
            nde__reduce_into(ctx, s->shape, tmp, NDE_R(1.0), b, gb);
        }
    } else { /* DIV: out = a / b; dA = dy / b; dB = -dy * out / b */
        if (ga) {
            ctx->be->binary(ctx->be->self, NDE_BINARY_DIV, s->shape, out->grad, cs, b->data, s->sb, tmp);
            nde__reduce_into(ctx, s->shape, tmp, NDE_R(1.0), a, ga);
        }
        if (gb) {
            ctx->be->binary(ctx->be->self, NDE_BINARY_MUL, s->shape, out->grad, cs, out->data, cs, tmp);
            ctx->be->binary(ctx->be->self, NDE_BINARY_DIV, s->shape, tmp, cs, b->data, s->sb, tmp);
            nde__reduce_into(ctx, s->shape, tmp, NDE_R(-1.0), b, gb);
        }
    }
}

static nde_tensor *nde__binary(nde_ctx *ctx, nde_binary_op op, nde_tensor *a, nde_tensor *b, const char *who) {
    int nd, i; int64_t shape[NDE_MAX_DIMS], sa[NDE_MAX_DIMS], sb[NDE_MAX_DIMS], oshape[NDE_MAX_DIMS];
    nde_tensor *out;
    if (!ctx || ctx->status != NDE_OK || !a || !b) {
        if (ctx && ctx->status == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL input", who);
        return NULL;
    }
    if (!nde__broadcast(ctx, a, b, &nd, shape, sa, sb, who)) return NULL;
    for (i = 0; i < nd; i++) oshape[i] = shape[NDE_MAX_DIMS - nd + i];
    out = nde__tensor_new(ctx, nd, oshape, who);
    if (!out) return NULL;
    ctx->be->binary(ctx->be->self, op, shape, a->data, sa, b->data, sb, out->data);
    if (nde__needs_grad(ctx, a, b, NULL)) {
        nde__node *n = nde__record(ctx, nde__binary_backward, out, a, b, NULL);
        nde__bin_saved *s;
        if (!n) return NULL;
        s = (nde__bin_saved *)nde_ctx_alloc_host(ctx, sizeof *s);
        if (!s) return NULL;
        memcpy(s->shape, shape, sizeof shape); memcpy(s->sa, sa, sizeof sa); memcpy(s->sb, sb, sizeof sb);
        n->saved = s;
        n->iarg[0] = op;
    }
    return out;
}
NDE_API nde_tensor *nde_add(nde_ctx *ctx, nde_tensor *a, nde_tensor *b) { return nde__binary(ctx, NDE_BINARY_ADD, a, b, "nde_add"); }
NDE_API nde_tensor *nde_sub(nde_ctx *ctx, nde_tensor *a, nde_tensor *b) { return nde__binary(ctx, NDE_BINARY_SUB, a, b, "nde_sub"); }
NDE_API nde_tensor *nde_mul(nde_ctx *ctx, nde_tensor *a, nde_tensor *b) { return nde__binary(ctx, NDE_BINARY_MUL, a, b, "nde_mul"); }
NDE_API nde_tensor *nde_div(nde_ctx *ctx, nde_tensor *a, nde_tensor *b) { return nde__binary(ctx, NDE_BINARY_DIV, a, b, "nde_div"); }

/* ------------------------------------------------------------ unary maps */
static void nde__unary_backward(nde_ctx *ctx, nde__node *n) {
    nde_real *gx = nde__in_grad(ctx, n->in[0]);
    if (!gx) return;
    ctx->be->unary_backward(ctx->be->self, (nde_unary_op)n->iarg[0], n->out->size, n->in[0]->data, n->out->data,
                            n->out->grad, n->rarg[0], gx);
}
static nde_tensor *nde__unary(nde_ctx *ctx, nde_unary_op op, nde_tensor *x, nde_real alpha, const char *who) {
    nde_tensor *out;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL input", who); return NULL; }
    out = nde__tensor_new(ctx, x->ndim, x->shape, who);
    if (!out) return NULL;
    ctx->be->unary(ctx->be->self, op, x->size, x->data, alpha, out->data);
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        nde__node *n = nde__record(ctx, nde__unary_backward, out, x, NULL, NULL);
        if (!n) return NULL;
        n->iarg[0] = op; n->rarg[0] = alpha;
    }
    return out;
}
NDE_API nde_tensor *nde_neg(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_NEG, x, 0, "nde_neg"); }
NDE_API nde_tensor *nde_scale(nde_ctx *ctx, nde_tensor *x, nde_real s) { return nde__unary(ctx, NDE_UNARY_SCALE, x, s, "nde_scale"); }
NDE_API nde_tensor *nde_add_scalar(nde_ctx *ctx, nde_tensor *x, nde_real s) { return nde__unary(ctx, NDE_UNARY_ADD_SCALAR, x, s, "nde_add_scalar"); }
NDE_API nde_tensor *nde_square(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SQUARE, x, 0, "nde_square"); }
NDE_API nde_tensor *nde_sqrt(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SQRT, x, 0, "nde_sqrt"); }
NDE_API nde_tensor *nde_exp(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_EXP, x, 0, "nde_exp"); }
NDE_API nde_tensor *nde_log(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_LOG, x, 0, "nde_log"); }
NDE_API nde_tensor *nde_sin(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SIN, x, 0, "nde_sin"); }
NDE_API nde_tensor *nde_cos(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_COS, x, 0, "nde_cos"); }
NDE_API nde_tensor *nde_tanh(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_TANH, x, 0, "nde_tanh"); }
NDE_API nde_tensor *nde_sigmoid(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SIGMOID, x, 0, "nde_sigmoid"); }
NDE_API nde_tensor *nde_relu(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_RELU, x, 0, "nde_relu"); }
NDE_API nde_tensor *nde_leaky_relu(nde_ctx *ctx, nde_tensor *x, nde_real slope) { return nde__unary(ctx, NDE_UNARY_LEAKY_RELU, x, slope, "nde_leaky_relu"); }
NDE_API nde_tensor *nde_softplus(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SOFTPLUS, x, 0, "nde_softplus"); }
NDE_API nde_tensor *nde_elu(nde_ctx *ctx, nde_tensor *x, nde_real alpha) { return nde__unary(ctx, NDE_UNARY_ELU, x, alpha, "nde_elu"); }
NDE_API nde_tensor *nde_tensor_clone(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_SCALE, x, NDE_R(1.0), "nde_tensor_clone"); }
NDE_API nde_tensor *nde_abs(nde_ctx *ctx, nde_tensor *x) { return nde__unary(ctx, NDE_UNARY_ABS, x, 0, "nde_abs"); }
NDE_API nde_tensor *nde_powi(nde_ctx *ctx, nde_tensor *x, int n) { return nde__unary(ctx, NDE_UNARY_POWI, x, (nde_real)n, "nde_powi"); }

/* ------------------------------------------------------------ matmul */
static void nde__matmul_backward(nde_ctx *ctx, nde__node *n) {
    nde_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    int ta = (int)n->iarg[0], tb = (int)n->iarg[1];
    int64_t m = y->shape[0], nn = y->shape[1], k = n->iarg[2];
    nde_real *ga = nde__in_grad(ctx, a), *gb = nde__in_grad(ctx, b);
    const nde_backend *be = ctx->be;
    /* Y = op(A) op(B). dop(A) = dY op(B)^T (m,k); dop(B) = op(A)^T dY (k,n). */
    if (ga) {
        if (!ta) be->gemm(be->self, 0, !tb, m, k, nn, NDE_R(1.0), y->grad, nn, b->data, tb ? k : nn, NDE_R(1.0), ga, k);
        else     be->gemm(be->self, tb, 1, k, m, nn, NDE_R(1.0), b->data, tb ? k : nn, y->grad, nn, NDE_R(1.0), ga, m);
    }
    if (gb) {
        if (!tb) be->gemm(be->self, !ta, 0, k, nn, m, NDE_R(1.0), a->data, ta ? m : k, y->grad, nn, NDE_R(1.0), gb, nn);
        else     be->gemm(be->self, 1, ta, nn, k, m, NDE_R(1.0), y->grad, nn, a->data, ta ? m : k, NDE_R(1.0), gb, k);
    }
}

NDE_API nde_tensor *nde_matmul(nde_ctx *ctx, nde_tensor *a, nde_tensor *b, int trans_a, int trans_b) {
    int64_t m, k, k2, n, shape[2];
    nde_tensor *y;
    char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!a || !b) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_matmul: NULL input"); return NULL; }
    if (a->ndim != 2 || b->ndim != 2) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_matmul: operands must be 2-D, a is %s, b is %s",
                     nde_shape_str(a, s1, sizeof s1), nde_shape_str(b, s2, sizeof s2));
        return NULL;
    }
    m = trans_a ? a->shape[1] : a->shape[0];
    k = trans_a ? a->shape[0] : a->shape[1];
    k2 = trans_b ? b->shape[1] : b->shape[0];
    n = trans_b ? b->shape[0] : b->shape[1];
    if (k != k2) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_matmul: inner dimensions differ: a%s is %s, b%s is %s",
                     trans_a ? "^T" : "", nde_shape_str(a, s1, sizeof s1), trans_b ? "^T" : "", nde_shape_str(b, s2, sizeof s2));
        return NULL;
    }
    shape[0] = m; shape[1] = n;
    y = nde__tensor_new(ctx, 2, shape, "nde_matmul");
    if (!y) return NULL;
    ctx->be->gemm(ctx->be->self, trans_a, trans_b, m, n, k, NDE_R(1.0), a->data, a->shape[1], b->data, b->shape[1],
                  NDE_R(0.0), y->data, n);
    if (nde__needs_grad(ctx, a, b, NULL)) {
        nde__node *nd = nde__record(ctx, nde__matmul_backward, y, a, b, NULL);
        if (!nd) return NULL;
        nd->iarg[0] = trans_a; nd->iarg[1] = trans_b; nd->iarg[2] = k;
    }
    return y;
}

/* ------------------------------------------------------------ reductions */
static void nde__reduce_backward(nde_ctx *ctx, nde__node *n) {
    /* gx += scale * broadcast(gy) over the saved 4-D index space */
    nde_tensor *x = n->in[0], *y = n->out;
    nde_real *gx = nde__in_grad(ctx, x), *tmp;
    int64_t *s = (int64_t *)n->saved; /* shape[4], y strides[4] */
    int64_t xs[NDE_MAX_DIMS];
    const nde_real *src[1];
    if (!gx) return;
    nde__contig_strides(s, xs);
    tmp = nde_ctx_alloc_reals(ctx, x->size);
    if (!tmp) return;
    ctx->be->fill(ctx->be->self, x->size, NDE_R(0.0), tmp);
    ctx->be->binary(ctx->be->self, NDE_BINARY_ADD, s, tmp, xs, y->grad, s + NDE_MAX_DIMS, tmp);
    src[0] = tmp;
    ctx->be->lincomb(ctx->be->self, x->size, 1, &n->rarg[0], src, 1, gx);
}

static nde_tensor *nde__reduce(nde_ctx *ctx, nde_tensor *x, int axis, int keepdim, int mean, const char *who) {
    int64_t shape4[NDE_MAX_DIMS], ystr[NDE_MAX_DIMS], oshape[NDE_MAX_DIMS];
    int i, nd = 0; int64_t count;
    nde_tensor *y; nde_real scale;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL input", who); return NULL; }
    if (axis >= x->ndim || axis < -1) {
        char s[64];
        nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: axis %d out of range for a tensor of shape %s", who, axis, nde_shape_str(x, s, sizeof s));
        return NULL;
    }
    for (i = 0; i < NDE_MAX_DIMS; i++) shape4[i] = 1;
    for (i = 0; i < x->ndim; i++) shape4[NDE_MAX_DIMS - x->ndim + i] = x->shape[i];
    if (axis < 0) {
        oshape[0] = 1; nd = 1; count = x->size;
        for (i = 0; i < NDE_MAX_DIMS; i++) ystr[i] = 0;
    } else {
        int ax4 = NDE_MAX_DIMS - x->ndim + axis; int64_t st = 1;
        count = x->shape[axis];
        for (i = 0; i < x->ndim; i++) {
            if (i == axis) { if (keepdim) oshape[nd++] = 1; }
            else oshape[nd++] = x->shape[i];
        }
        if (nd == 0) { oshape[0] = 1; nd = 1; }
        for (i = NDE_MAX_DIMS - 1; i >= 0; i--) {
            if (i == ax4) ystr[i] = 0;
            else { ystr[i] = st; st *= shape4[i]; }
        }
    }
    y = nde__tensor_new(ctx, nd, oshape, who);
    if (!y) return NULL;
    scale = mean ? (count ? NDE_R(1.0) / (nde_real)count : NDE_R(0.0)) : NDE_R(1.0);
    ctx->be->fill(ctx->be->self, y->size, NDE_R(0.0), y->data);
    ctx->be->reduce_add(ctx->be->self, shape4, x->data, scale, y->data, ystr);
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        nde__node *n = nde__record(ctx, nde__reduce_backward, y, x, NULL, NULL);
        int64_t *s;
        if (!n) return NULL;
        s = (int64_t *)nde_ctx_alloc_host(ctx, 2 * NDE_MAX_DIMS * sizeof(int64_t));
        if (!s) return NULL;
        memcpy(s, shape4, sizeof shape4); memcpy(s + NDE_MAX_DIMS, ystr, sizeof ystr);
        n->saved = s; n->rarg[0] = scale;
    }
    return y;
}
NDE_API nde_tensor *nde_sum(nde_ctx *ctx, nde_tensor *x) { return nde__reduce(ctx, x, -1, 0, 0, "nde_sum"); }
NDE_API nde_tensor *nde_mean(nde_ctx *ctx, nde_tensor *x) { return nde__reduce(ctx, x, -1, 0, 1, "nde_mean"); }
NDE_API nde_tensor *nde_sum_axis(nde_ctx *ctx, nde_tensor *x, int axis, int keepdim) { return nde__reduce(ctx, x, axis, keepdim, 0, "nde_sum_axis"); }
NDE_API nde_tensor *nde_mean_axis(nde_ctx *ctx, nde_tensor *x, int axis, int keepdim) { return nde__reduce(ctx, x, axis, keepdim, 1, "nde_mean_axis"); }

/* ------------------------------------------------------------ shape ops */
static void nde__reshape_backward(nde_ctx *ctx, nde__node *n) {
    nde_real *gx = nde__in_grad(ctx, n->in[0]);
    nde_real one = NDE_R(1.0); const nde_real *xs[1];
    if (!gx) return;
    xs[0] = n->out->grad;
    ctx->be->lincomb(ctx->be->self, n->out->size, 1, &one, xs, 1, gx);
}
NDE_API nde_tensor *nde_reshape(nde_ctx *ctx, nde_tensor *x, int ndim, const int64_t *shape) {
    int64_t size = 1; int i; nde_tensor *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_reshape: NULL input"); return NULL; }
    if (!nde__check_shape(ctx, ndim, shape, "nde_reshape")) return NULL;
    for (i = 0; i < ndim; i++) size *= shape[i];
    if (size != x->size) {
        char s[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_reshape: cannot reshape %s (%lld elements) to %lld elements",
                     nde_shape_str(x, s, sizeof s), (long long)x->size, (long long)size);
        return NULL;
    }
    /* A view: shares x's data. */
    y = (nde_tensor *)nde__arena_alloc(ctx, &ctx->meta, sizeof(nde_tensor), "nde_reshape");
    if (!y) return NULL;
    memset(y, 0, sizeof *y);
    y->ndim = ndim;
    for (i = 0; i < NDE_MAX_DIMS; i++) y->shape[i] = i < ndim ? shape[i] : 1;
    y->size = size; y->data = x->data; y->node = -1; y->param = -1;
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        if (!nde__record(ctx, nde__reshape_backward, y, x, NULL, NULL)) return NULL;
    }
    return y;
}

static void nde__transpose_backward(nde_ctx *ctx, nde__node *n) {
    nde_real *gx = nde__in_grad(ctx, n->in[0]);
    if (!gx) return;
    ctx->be->transpose(ctx->be->self, n->out->shape[0], n->out->shape[1], n->out->grad, gx, 1);
}
NDE_API nde_tensor *nde_transpose(nde_ctx *ctx, nde_tensor *x) {
    int64_t shape[2]; nde_tensor *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || x->ndim != 2) {
        char s[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_transpose: needs a 2-D tensor, got %s", nde_shape_str(x, s, sizeof s));
        return NULL;
    }
    shape[0] = x->shape[1]; shape[1] = x->shape[0];
    y = nde__tensor_new(ctx, 2, shape, "nde_transpose");
    if (!y) return NULL;
    ctx->be->transpose(ctx->be->self, x->shape[0], x->shape[1], x->data, y->data, 0);
    if (nde__needs_grad(ctx, x, NULL, NULL) && !nde__record(ctx, nde__transpose_backward, y, x, NULL, NULL)) return NULL;
    return y;
}

/* ------------------------------------------------------------ lincomb */
static void nde__lincomb_backward(nde_ctx *ctx, nde__node *n) {
    int count = (int)n->iarg[0], i;
    nde_tensor **xs = (nde_tensor **)n->saved;
    const nde_real *coef = (const nde_real *)(xs + count);
    const nde_real *src[1];
    src[0] = n->out->grad;
    for (i = 0; i < count; i++) {
        nde_real *g = nde__in_grad(ctx, xs[i]);
        if (g) ctx->be->lincomb(ctx->be->self, n->out->size, 1, &coef[i], src, 1, g);
    }
}
NDE_API nde_tensor *nde_lincomb(nde_ctx *ctx, int count, const nde_real *coef, nde_tensor *const *xs) {
    int i, any = 0; nde_tensor *y; const nde_real **ptrs;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (count < 1 || !xs || !coef) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_lincomb: need at least one term"); return NULL; }
    for (i = 0; i < count; i++) {
        if (!xs[i]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_lincomb: term %d is NULL", i); return NULL; }
        if (xs[i]->size != xs[0]->size) {
            char s1[64], s2[64];
            nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_lincomb: term %d is %s, term 0 is %s", i,
                         nde_shape_str(xs[i], s1, sizeof s1), nde_shape_str(xs[0], s2, sizeof s2));
            return NULL;
        }
        if (xs[i]->requires_grad) any = 1;
    }
    y = nde__tensor_new(ctx, xs[0]->ndim, xs[0]->shape, "nde_lincomb");
    ptrs = (const nde_real **)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(nde_real *));
    if (!y || !ptrs) return NULL;
    for (i = 0; i < count; i++) ptrs[i] = xs[i]->data;
    ctx->be->lincomb(ctx->be->self, y->size, count, coef, ptrs, 0, y->data);
    if (any && ctx->grad_enabled) {
        nde__node *n = nde__record(ctx, nde__lincomb_backward, y, NULL, NULL, NULL);
        nde_tensor **sv;
        if (!n) return NULL;
        sv = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)count * (sizeof(nde_tensor *) + sizeof(nde_real)) + sizeof(nde_real));
        if (!sv) return NULL;
        for (i = 0; i < count; i++) sv[i] = xs[i];
        memcpy((void *)(sv + count), coef, (size_t)count * sizeof(nde_real));
        n->saved = sv; n->iarg[0] = count;
    }
    return y;
}

/* ------------------------------------------------------------ losses */
NDE_API nde_tensor *nde_mse_loss(nde_ctx *ctx, nde_tensor *pred, nde_tensor *target) {
    if (pred && target && pred->size != target->size) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_mse_loss: pred is %s, target is %s",
                     nde_shape_str(pred, s1, sizeof s1), nde_shape_str(target, s2, sizeof s2));
        return NULL;
    }
    return nde_mean(ctx, nde_square(ctx, nde_sub(ctx, pred, target)));
}
NDE_API nde_tensor *nde_l1_loss(nde_ctx *ctx, nde_tensor *pred, nde_tensor *target) {
    if (pred && target && pred->size != target->size) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_l1_loss: pred is %s, target is %s",
                     nde_shape_str(pred, s1, sizeof s1), nde_shape_str(target, s2, sizeof s2));
        return NULL;
    }
    return nde_mean(ctx, nde_abs(ctx, nde_sub(ctx, pred, target)));
}

/* ------------------------------------------------------------ concat, slice */
/* View x as (outer, axis_len * inner) rows: a block of columns per input. */
static void nde__axis_split(const nde_tensor *x, int axis, int64_t *outer, int64_t *inner) {
    int i; *outer = 1; *inner = 1;
    for (i = 0; i < axis; i++) *outer *= x->shape[i];
    for (i = axis + 1; i < x->ndim; i++) *inner *= x->shape[i];
}
static void nde__concat_backward(nde_ctx *ctx, nde__node *n) {
    int count = (int)n->iarg[0], axis = (int)n->iarg[1], i;
    nde_tensor **xs = (nde_tensor **)n->saved;
    int64_t outer, inner, off = 0, total = n->out->shape[axis];
    nde__axis_split(n->out, axis, &outer, &inner);
    for (i = 0; i < count; i++) {
        int64_t w = xs[i]->shape[axis] * inner;
        nde_real *g = nde__in_grad(ctx, xs[i]);
        if (g) ctx->be->copy2d(ctx->be->self, outer, w, n->out->grad + off, total * inner, g, w, 1);
        off += w;
    }
}
NDE_API nde_tensor *nde_concat(nde_ctx *ctx, int count, nde_tensor *const *xs, int axis) {
    int i, d, any = 0; int64_t shape[NDE_MAX_DIMS], outer, inner, off = 0; nde_tensor *y;
    char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (count < 1 || !xs || !xs[0]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_concat: need at least one tensor"); return NULL; }
    if (axis < 0 || axis >= xs[0]->ndim) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_concat: axis %d out of range for %d-D tensors", axis, xs[0]->ndim); return NULL; }
    for (d = 0; d < xs[0]->ndim; d++) shape[d] = xs[0]->shape[d];
    shape[axis] = 0;
    for (i = 0; i < count; i++) {
        if (!xs[i]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_concat: tensor %d is NULL", i); return NULL; }
        if (xs[i]->ndim != xs[0]->ndim) goto mismatch;
        for (d = 0; d < xs[0]->ndim; d++) if (d != axis && xs[i]->shape[d] != xs[0]->shape[d]) goto mismatch;
        shape[axis] += xs[i]->shape[axis];
        if (xs[i]->requires_grad) any = 1;
        continue;
    mismatch:
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_concat: tensor %d is %s, tensor 0 is %s (axis %d)", i,
                     nde_shape_str(xs[i], s1, sizeof s1), nde_shape_str(xs[0], s2, sizeof s2), axis);
        return NULL;
    }
    y = nde__tensor_new(ctx, xs[0]->ndim, shape, "nde_concat");
    if (!y) return NULL;
    nde__axis_split(y, axis, &outer, &inner);
    for (i = 0; i < count; i++) {
        int64_t w = xs[i]->shape[axis] * inner;
        ctx->be->copy2d(ctx->be->self, outer, w, xs[i]->data, w, y->data + off, shape[axis] * inner, 0);
        off += w;
    }
    if (any && ctx->grad_enabled) {
        nde__node *n = nde__record(ctx, nde__concat_backward, y, NULL, NULL, NULL);
        nde_tensor **sv;
        if (!n) return NULL;
        sv = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(nde_tensor *));
        if (!sv) return NULL;
        for (i = 0; i < count; i++) sv[i] = xs[i];
        n->saved = sv; n->iarg[0] = count; n->iarg[1] = axis;
    }
    return y;
}

static void nde__slice_backward(nde_ctx *ctx, nde__node *n) {
    nde_tensor *x = n->in[0];
    int axis = (int)n->iarg[0]; int64_t start = n->iarg[1], outer, inner;
    nde_real *g = nde__in_grad(ctx, x);
    if (!g) return;
    nde__axis_split(x, axis, &outer, &inner);
    ctx->be->copy2d(ctx->be->self, outer, n->out->shape[axis] * inner, n->out->grad, n->out->shape[axis] * inner,
                    g + start * inner, x->shape[axis] * inner, 1);
}
NDE_API nde_tensor *nde_slice(nde_ctx *ctx, nde_tensor *x, int axis, int64_t start, int64_t stop) {
    int64_t shape[NDE_MAX_DIMS], outer, inner; int d; nde_tensor *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_slice: NULL input"); return NULL; }
    if (axis < 0 || axis >= x->ndim || start < 0 || stop > x->shape[axis] || start >= stop) {
        char s[64];
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_slice: range [%lld, %lld) on axis %d does not fit %s",
                     (long long)start, (long long)stop, axis, nde_shape_str(x, s, sizeof s));
        return NULL;
    }
    for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[axis] = stop - start;
    y = nde__tensor_new(ctx, x->ndim, shape, "nde_slice");
    if (!y) return NULL;
    nde__axis_split(x, axis, &outer, &inner);
    ctx->be->copy2d(ctx->be->self, outer, shape[axis] * inner, x->data + start * inner, x->shape[axis] * inner,
                    y->data, shape[axis] * inner, 0);
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        nde__node *n = nde__record(ctx, nde__slice_backward, y, x, NULL, NULL);
        if (!n) return NULL;
        n->iarg[0] = axis; n->iarg[1] = start;
    }
    return y;
}

/* ------------------------------------------------------------ gather */
static void nde__gather_backward(nde_ctx *ctx, nde__node *n) {
    nde_real *g = nde__in_grad(ctx, n->in[0]);
    if (!g) return;
    ctx->be->scatter_add_rows(ctx->be->self, n->iarg[0], n->iarg[1], (const int64_t *)n->saved, n->out->grad, g);
}
NDE_API nde_tensor *nde_gather_rows(nde_ctx *ctx, nde_tensor *x, int64_t count, const int64_t *index) {
    int64_t shape[NDE_MAX_DIMS], cols, i; int d; nde_tensor *y; int64_t *idx;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !index || count < 1) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gather_rows: NULL input or empty index"); return NULL; }
    for (i = 0; i < count; i++) if (index[i] < 0 || index[i] >= x->shape[0]) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gather_rows: index[%lld] = %lld outside 0..%lld", (long long)i,
                     (long long)index[i], (long long)x->shape[0] - 1);
        return NULL;
    }
    for (d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[0] = count;
    cols = x->shape[0] ? x->size / x->shape[0] : 0;
    y = nde__tensor_new(ctx, x->ndim, shape, "nde_gather_rows");
    idx = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(int64_t));
    if (!y || !idx) return NULL;
    memcpy(idx, index, (size_t)count * sizeof(int64_t));
    ctx->be->gather_rows(ctx->be->self, count, cols, idx, x->data, y->data);
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        nde__node *n = nde__record(ctx, nde__gather_backward, y, x, NULL, NULL);
        if (!n) return NULL;
        n->saved = idx; n->iarg[0] = count; n->iarg[1] = cols;
    }
    return y;
}

/* ------------------------------------------------------------ sparse (CSR) (zoo issue) */
NDE_API nde_status nde_csr_init(nde_ctx *ctx, nde_csr *a, int64_t rows, int64_t cols, int64_t nnz,
                                const int64_t *row_ptr, const int64_t *col_idx) {
    int64_t i;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!a || !row_ptr || (nnz > 0 && !col_idx) || rows < 1 || cols < 1 || nnz < 0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_csr_init: need a matrix, rows = %lld >= 1, cols = %lld >= 1, nnz = %lld >= 0 and "
                            "the index arrays", (long long)rows, (long long)cols, (long long)nnz);
    memset(a, 0, sizeof *a);
    if (row_ptr[0] != 0 || row_ptr[rows] != nnz)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_csr_init: row_ptr must run from 0 to nnz = %lld (it runs from %lld to %lld)",
                            (long long)nnz, (long long)row_ptr[0], (long long)row_ptr[rows]);
    for (i = 0; i < rows; i++)
        if (row_ptr[i + 1] < row_ptr[i])
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_csr_init: row_ptr decreases at row %lld (%lld then %lld)", (long long)i,
                                (long long)row_ptr[i], (long long)row_ptr[i + 1]);
    for (i = 0; i < nnz; i++)
        if (col_idx[i] < 0 || col_idx[i] >= cols)
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_csr_init: col_idx[%lld] = %lld outside 0..%lld", (long long)i,
                                (long long)col_idx[i], (long long)cols - 1);
    a->row_ptr = (int64_t *)nde__arena_alloc(ctx, &ctx->data, (size_t)(rows + 1) * sizeof(int64_t), "nde_csr_init");
    a->col_idx = (int64_t *)nde__arena_alloc(ctx, &ctx->data, (size_t)(nnz > 0 ? nnz : 1) * sizeof(int64_t), "nde_csr_init");
    if (!a->row_ptr || !a->col_idx) return ctx->status;
    ctx->be->copy(ctx->be->self, a->row_ptr, row_ptr, (size_t)(rows + 1) * sizeof(int64_t),
                  ctx->be->is_device ? NDE_COPY_TO_DEVICE : NDE_COPY_DEVICE);
    if (nnz > 0)
        ctx->be->copy(ctx->be->self, a->col_idx, col_idx, (size_t)nnz * sizeof(int64_t),
                      ctx->be->is_device ? NDE_COPY_TO_DEVICE : NDE_COPY_DEVICE);
    a->rows = rows; a->cols = cols; a->nnz = nnz;
    return ctx->status;
}
static void nde__csr_matmul_backward(nde_ctx *ctx, nde__node *n) {
    const nde_csr *a = (const nde_csr *)n->saved;
    nde_tensor *v = n->in[0], *x = n->in[1], *y = n->out;
    nde_real *gv = nde__in_grad(ctx, v), *gx = nde__in_grad(ctx, x);
    int64_t f = x->shape[1];
    if (gx) ctx->be->csr_matmul(ctx->be->self, a->rows, f, a->row_ptr, a->col_idx, v->data, y->grad, gx, 1, 1);
    if (gv) ctx->be->csr_sddmm(ctx->be->self, a->rows, f, a->row_ptr, a->col_idx, y->grad, x->data, gv);
}
NDE_API nde_tensor *nde_csr_matmul(nde_ctx *ctx, const nde_csr *a, nde_tensor *values, nde_tensor *x) {
    int64_t shape[2]; nde_tensor *y; nde_csr *keep; char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!a || !a->row_ptr || !values || !x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_csr_matmul: NULL matrix, values or input"); return NULL; }
    if (values->size != a->nnz || x->ndim != 2 || x->shape[0] != a->cols) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_csr_matmul: a (%lld x %lld, %lld nonzeros) with values %s and x %s (need (%lld, f))",
                     (long long)a->rows, (long long)a->cols, (long long)a->nnz, nde_shape_str(values, s1, sizeof s1),
                     nde_shape_str(x, s2, sizeof s2), (long long)a->cols);
        return NULL;
    }
    if (!ctx->be->csr_matmul || !ctx->be->csr_sddmm) {
        nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_csr_matmul: the %s backend has no sparse kernels", ctx->be->name);
        return NULL;
    }
    shape[0] = a->rows; shape[1] = x->shape[1];
    y = nde__tensor_new(ctx, 2, shape, "nde_csr_matmul");
    if (!y) return NULL;
    ctx->be->csr_matmul(ctx->be->self, a->rows, x->shape[1], a->row_ptr, a->col_idx, values->data, x->data, y->data, 0, 0);
    if (nde__needs_grad(ctx, values, x, NULL)) {
        nde__node *n = nde__record(ctx, nde__csr_matmul_backward, y, values, x, NULL);
        if (!n) return NULL;
        keep = (nde_csr *)nde_ctx_alloc_host(ctx, sizeof *keep);
        if (!keep) return NULL;
        *keep = *a;
        n->saved = keep;
    }
    return y;
}

/* ------------------------------------------------------------ convolution
   im2col + gemm per image: y_n (O, OH*OW) = W (O, C*KH*KW) col_n. */
/* dst (b, a, p) = src (a, b, p), the first two axes swapped, in one binary launch
   (a multiplication by one: exact). */
static void nde__swap_axes(nde_ctx *ctx, int64_t a, int64_t b, int64_t p, const nde_real *src, nde_real *dst,
                           const nde_real *one) {
    int64_t sh[NDE_MAX_DIMS], ss[NDE_MAX_DIMS], s0[NDE_MAX_DIMS];
    sh[0] = 1; sh[1] = b; sh[2] = a; sh[3] = p;
    ss[0] = 0; ss[1] = p; ss[2] = b * p; ss[3] = 1;
    s0[0] = 0; s0[1] = 0; s0[2] = 0; s0[3] = 0;
    ctx->be->binary(ctx->be->self, NDE_BINARY_MUL, sh, src, ss, one, s0, dst);
}
/* A device scalar 1 in the work arena (NULL on failure). */
static nde_real *nde__one(nde_ctx *ctx) {
    nde_real *one = nde_ctx_alloc_reals(ctx, 1);
    if (one) ctx->be->fill(ctx->be->self, 1, NDE_R(1.0), one);
    return one;
}
/* Backends with im2col_batch run a convolution over many images at once: col
   (K, B*P) holds B images' columns, Y' (O, B*P) = W col is one GEMM, and y (B, O, P)
   is Y' with its first two axes swapped. Backward: dY' from dy by the same swap,
   dW += dY' col^T and dcol = W^T dY' (one GEMM each), col2im over the B images.
   B is the whole batch unless col would pass NDE_CONV_BATCH_REALS reals. */
#ifndef NDE_CONV_BATCH_REALS
#define NDE_CONV_BATCH_REALS ((int64_t)1 << 26)
#endif
static int64_t nde__conv_chunk(int64_t n, int64_t k, int64_t p) {
    int64_t b = NDE_CONV_BATCH_REALS / (k * p > 0 ? k * p : 1);
    return b < 1 ? 1 : (b > n ? n : b);
}
static void nde__conv_backward_batched(nde_ctx *ctx, nde__node *n, nde_real *gx, nde_real *gw) {
    nde_tensor *x = n->in[0], *w = n->in[1], *y = n->out;
    int stride = (int)n->iarg[0], pad = (int)n->iarg[1];
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t O = w->shape[0], KH = w->shape[2], KW = w->shape[3], P = y->shape[2] * y->shape[3];
    int64_t K = C * KH * KW, B = nde__conv_chunk(N, K, P), n0;
    const nde_backend *be = ctx->be;
    nde_real *dyt = nde_ctx_alloc_reals(ctx, O * B * P), *col = nde_ctx_alloc_reals(ctx, K * B * P), *one = nde__one(ctx);
    if (!dyt || !col || !one) return;
    for (n0 = 0; n0 < N; n0 += B) {
        int64_t nb = N - n0 < B ? N - n0 : B, BP = nb * P;
        nde__swap_axes(ctx, nb, O, P, y->grad + n0 * O * P, dyt, one);
        if (gw) {
            be->im2col_batch(be->self, nb, C, H, W, (int)KH, (int)KW, stride, pad, x->data + n0 * C * H * W, col);
            be->gemm(be->self, 0, 1, O, K, BP, NDE_R(1.0), dyt, BP, col, BP, NDE_R(1.0), gw, K);
        }
        if (gx) {
            be->gemm(be->self, 1, 0, K, BP, O, NDE_R(1.0), w->data, K, dyt, BP, NDE_R(0.0), col, BP);
            be->col2im_batch(be->self, nb, C, H, W, (int)KH, (int)KW, stride, pad, col, gx + n0 * C * H * W);
        }
    }
}
static void nde__conv_backward(nde_ctx *ctx, nde__node *n) {
    nde_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    int stride = (int)n->iarg[0], pad = (int)n->iarg[1];
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t O = w->shape[0], KH = w->shape[2], KW = w->shape[3], OH = y->shape[2], OW = y->shape[3];
    int64_t K = C * KH * KW, P = OH * OW, i;
    nde_real *gx = nde__in_grad(ctx, x), *gw = nde__in_grad(ctx, w), *gb = nde__in_grad(ctx, b);
    const nde_backend *be = ctx->be;
    if ((gx || gw) && be->im2col_batch && be->col2im_batch) {
        nde__conv_backward_batched(ctx, n, gx, gw);
    } else if (gx || gw) {
        nde_real *col = nde_ctx_alloc_reals(ctx, K * P);
        if (!col) return;
        for (i = 0; i < N; i++) {
            const nde_real *dy = y->grad + i * O * P;
            if (gw) {
                be->im2col(be->self, C, H, W, (int)KH, (int)KW, stride, pad, x->data + i * C * H * W, col);
                be->gemm(be->self, 0, 1, O, K, P, NDE_R(1.0), dy, P, col, P, NDE_R(1.0), gw, K);
            }
            if (gx) {
                be->gemm(be->self, 1, 0, K, P, O, NDE_R(1.0), w->data, K, dy, P, NDE_R(0.0), col, P);
                be->col2im(be->self, C, H, W, (int)KH, (int)KW, stride, pad, col, gx + i * C * H * W);
            }
        }
    }
    if (gb) {
        int64_t sh[NDE_MAX_DIMS], os[NDE_MAX_DIMS];
        sh[0] = 1; sh[1] = N; sh[2] = O; sh[3] = P;
        os[0] = 0; os[1] = 0; os[2] = 1; os[3] = 0;
        be->reduce_add(be->self, sh, y->grad, NDE_R(1.0), gb, os);
    }
}
NDE_API nde_tensor *nde_conv2d(nde_ctx *ctx, nde_tensor *x, nde_tensor *w, nde_tensor *bias, int stride, int padding) {
    int64_t N, C, H, W, O, KH, KW, OH, OW, K, P, shape[4], i;
    nde_tensor *y; nde_real *col; char s1[64], s2[64];
    const nde_backend *be;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !w) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_conv2d: NULL input or weight"); return NULL; }
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1] || stride < 1 || padding < 0) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_conv2d: x %s (N,C,H,W) and weight %s (O,C,KH,KW) do not fit (stride %d, padding %d)",
                     nde_shape_str(x, s1, sizeof s1), nde_shape_str(w, s2, sizeof s2), stride, padding);
        return NULL;
    }
    N = x->shape[0]; C = x->shape[1]; H = x->shape[2]; W = x->shape[3];
    O = w->shape[0]; KH = w->shape[2]; KW = w->shape[3];
    if (bias && (bias->size != O)) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_conv2d: bias %s must have %lld elements", nde_shape_str(bias, s1, sizeof s1), (long long)O);
        return NULL;
    }
    OH = (H + 2 * padding - KH) / stride + 1; OW = (W + 2 * padding - KW) / stride + 1;
    if (OH < 1 || OW < 1) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_conv2d: kernel %lldx%lld larger than the padded input %s",
                     (long long)KH, (long long)KW, nde_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    shape[0] = N; shape[1] = O; shape[2] = OH; shape[3] = OW;
    y = nde__tensor_new(ctx, 4, shape, "nde_conv2d");
    if (!y) return NULL;
    K = C * KH * KW; P = OH * OW;
    be = ctx->be;
    if (be->im2col_batch && be->col2im_batch) {   /* many images at once (see nde__conv_backward_batched) */
        nde_mark m = nde_ctx_mark(ctx);
        int64_t B = nde__conv_chunk(N, K, P);
        nde_real *yt = nde_ctx_alloc_reals(ctx, O * B * P), *one = nde__one(ctx);
        col = nde_ctx_alloc_reals(ctx, K * B * P);
        if (!col || !yt || !one) return NULL;
        for (i = 0; i < N; i += B) {
            int64_t nb = N - i < B ? N - i : B;
            be->im2col_batch(be->self, nb, C, H, W, (int)KH, (int)KW, stride, padding, x->data + i * C * H * W, col);
            be->gemm(be->self, 0, 0, O, nb * P, K, NDE_R(1.0), w->data, K, col, nb * P, NDE_R(0.0), yt, nb * P);
            nde__swap_axes(ctx, O, nb, P, yt, y->data + i * O * P, one);
        }
        nde_ctx_reset(ctx, m);
    } else {
        nde_mark m = nde_ctx_mark(ctx);
        col = nde_ctx_alloc_reals(ctx, K * P);
        if (!col) return NULL;
        for (i = 0; i < N; i++) {
            be->im2col(be->self, C, H, W, (int)KH, (int)KW, stride, padding, x->data + i * C * H * W, col);
            be->gemm(be->self, 0, 0, O, P, K, NDE_R(1.0), w->data, K, col, P, NDE_R(0.0), y->data + i * O * P, P);
        }
        nde_ctx_reset(ctx, m);
    }
    if (bias) {
        int64_t sh[NDE_MAX_DIMS], sy[NDE_MAX_DIMS], sb[NDE_MAX_DIMS];
        sh[0] = 1; sh[1] = N; sh[2] = O; sh[3] = P;
        sy[0] = 0; sy[1] = O * P; sy[2] = P; sy[3] = 1;
        sb[0] = 0; sb[1] = 0; sb[2] = 1; sb[3] = 0;
        be->binary(be->self, NDE_BINARY_ADD, sh, y->data, sy, bias->data, sb, y->data);
    }
    if (nde__needs_grad(ctx, x, w, bias)) {
        nde__node *n = nde__record(ctx, nde__conv_backward, y, x, w, bias);
        if (!n) return NULL;
        n->iarg[0] = stride; n->iarg[1] = padding;
    }
    return y;
}
NDE_API nde_tensor *nde_conv1d(nde_ctx *ctx, nde_tensor *x, nde_tensor *w, nde_tensor *bias, int stride, int padding) {
    /* (N,C,L) as (N,C,1,L) with a (O,C,1,K) kernel; padding only along L */
    int64_t xs[4], ws[4], ys[3];
    nde_tensor *x4, *w4, *y4, *xp;
    char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !w || x->ndim != 3 || w->ndim != 3 || w->shape[1] != x->shape[1]) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_conv1d: x %s (N,C,L) and weight %s (O,C,K) do not fit",
                     nde_shape_str(x, s1, sizeof s1), nde_shape_str(w, s2, sizeof s2));
        return NULL;
    }
    xp = x;
    if (padding > 0) {
        int64_t zs[3]; nde_tensor *parts[3];
        zs[0] = x->shape[0]; zs[1] = x->shape[1]; zs[2] = padding;
        parts[0] = nde_tensor_zeros(ctx, 3, zs); parts[1] = x; parts[2] = parts[0];
        xp = nde_concat(ctx, 3, parts, 2);
        if (!xp) return NULL;
    } else if (padding < 0) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_conv1d: negative padding %d", padding);
        return NULL;
    }
    xs[0] = xp->shape[0]; xs[1] = xp->shape[1]; xs[2] = 1; xs[3] = xp->shape[2];
    ws[0] = w->shape[0]; ws[1] = w->shape[1]; ws[2] = 1; ws[3] = w->shape[2];
    x4 = nde_reshape(ctx, xp, 4, xs);
    w4 = nde_reshape(ctx, w, 4, ws);
    y4 = nde_conv2d(ctx, x4, w4, bias, stride, 0);
    if (!y4) return NULL;
    ys[0] = y4->shape[0]; ys[1] = y4->shape[1]; ys[2] = y4->shape[3];
    return nde_reshape(ctx, y4, 3, ys);
}

/* ------------------------------------------------------------ group norm */
static void nde__group_norm_backward(nde_ctx *ctx, nde__node *n) {
    nde_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    nde_real *stats = (nde_real *)n->saved;
    int groups = (int)n->iarg[0];
    int64_t N = x->shape[0], C = x->shape[1], S = x->size / (N * C);
    nde_real *gx = nde__in_grad(ctx, x), *gg = nde__in_grad(ctx, gamma), *gb = nde__in_grad(ctx, beta);
    nde_real *tmp_gx = gx;
    if (!gx) { tmp_gx = nde_ctx_alloc_reals(ctx, x->size); if (!tmp_gx) return; }
    ctx->be->group_norm_backward(ctx->be->self, N, C, S, groups, x->data, gamma ? gamma->data : NULL,
                                 stats, stats + N * groups, n->out->grad, tmp_gx, gg, gb);
}
NDE_API nde_tensor *nde_group_norm(nde_ctx *ctx, nde_tensor *x, int groups, nde_tensor *gamma, nde_tensor *beta, nde_real eps) {
    int64_t N, C, S; nde_tensor *y; nde_real *stats; char s1[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || x->ndim < 2 || groups < 1 || x->shape[1] % groups != 0) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_group_norm: x %s needs (N,C,...) with C divisible by groups = %d",
                     nde_shape_str(x, s1, sizeof s1), groups);
        return NULL;
    }
    N = x->shape[0]; C = x->shape[1]; S = x->size / (N * C);
    if ((gamma && gamma->size != C) || (beta && beta->size != C)) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_group_norm: gamma/beta must have C = %lld elements", (long long)C);
        return NULL;
    }
    y = nde__tensor_new(ctx, x->ndim, x->shape, "nde_group_norm");
    stats = nde_ctx_alloc_reals(ctx, 2 * N * groups);
    if (!y || !stats) return NULL;
    ctx->be->group_norm(ctx->be->self, N, C, S, groups, eps, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL,
                        y->data, stats, stats + N * groups);
    if (nde__needs_grad(ctx, x, gamma, beta)) {
        nde__node *n = nde__record(ctx, nde__group_norm_backward, y, x, gamma, beta);
        if (!n) return NULL;
        n->saved = stats; n->iarg[0] = groups;
    }
    return y;
}

/* ------------------------------------------------------------ pooling */
static void nde__avg_pool_backward(nde_ctx *ctx, nde__node *n) {
    nde_tensor *x = n->in[0];
    nde_real *g = nde__in_grad(ctx, x);
    if (!g) return;
    ctx->be->avg_pool2d_backward(ctx->be->self, x->shape[0] * x->shape[1], x->shape[2], x->shape[3],
                                 (int)n->iarg[0], (int)n->iarg[1], n->out->grad, g);
}
NDE_API nde_tensor *nde_avg_pool2d(nde_ctx *ctx, nde_tensor *x, int kernel, int stride) {
    int64_t shape[4]; nde_tensor *y; char s1[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || x->ndim != 4 || kernel < 1 || stride < 1 || x->shape[2] < kernel || x->shape[3] < kernel) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_avg_pool2d: x %s (N,C,H,W) does not fit kernel %d stride %d",
                     nde_shape_str(x, s1, sizeof s1), kernel, stride);
        return NULL;
    }
    shape[0] = x->shape[0]; shape[1] = x->shape[1];
    shape[2] = (x->shape[2] - kernel) / stride + 1; shape[3] = (x->shape[3] - kernel) / stride + 1;
    y = nde__tensor_new(ctx, 4, shape, "nde_avg_pool2d");
    if (!y) return NULL;
    ctx->be->avg_pool2d(ctx->be->self, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], kernel, stride, x->data, y->data);
    if (nde__needs_grad(ctx, x, NULL, NULL)) {
        nde__node *n = nde__record(ctx, nde__avg_pool_backward, y, x, NULL, NULL);
        if (!n) return NULL;
        n->iarg[0] = kernel; n->iarg[1] = stride;
    }
    return y;
}
NDE_API nde_tensor *nde_global_avg_pool(nde_ctx *ctx, nde_tensor *x) {
    int64_t shape[3]; char s1[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || x->ndim != 4) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_global_avg_pool: needs (N,C,H,W), got %s", nde_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    shape[0] = x->shape[0]; shape[1] = x->shape[1]; shape[2] = x->shape[2] * x->shape[3];
    return nde_mean_axis(ctx, nde_reshape(ctx, x, 3, shape), 2, 0);
}

/* ------------------------------------------------------------ softmax, cross-entropy */
static void nde__log_softmax_backward(nde_ctx *ctx, nde__node *n) {
    nde_real *g = nde__in_grad(ctx, n->in[0]);
    if (!g) return;
    ctx->be->log_softmax_backward(ctx->be->self, n->out->shape[0], n->out->shape[1], n->out->data, n->out->grad, g);
}
NDE_API nde_tensor *nde_log_softmax(nde_ctx *ctx, nde_tensor *x) {
    nde_tensor *y; char s1[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || x->ndim != 2) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_log_softmax: needs (n, k), got %s", nde_shape_str(x, s1, sizeof s1));
        return NULL;
    }
    y = nde__tensor_new(ctx, 2, x->shape, "nde_log_softmax");
    if (!y) return NULL;
    ctx->be->log_softmax(ctx->be->self, x->shape[0], x->shape[1], x->data, y->data);
    if (nde__needs_grad(ctx, x, NULL, NULL) && !nde__record(ctx, nde__log_softmax_backward, y, x, NULL, NULL)) return NULL;
    return y;
}
NDE_API nde_tensor *nde_cross_entropy(nde_ctx *ctx, nde_tensor *logits, const int64_t *labels) {
    int64_t n, k, i, *flat; nde_tensor *lp, *picked;
    int64_t fshape[2];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!logits || !labels || logits->ndim != 2) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_cross_entropy: needs logits (n, k) and labels, got %s", nde_shape_str(logits, s1, sizeof s1));
        return NULL;
    }
    n = logits->shape[0]; k = logits->shape[1];
    for (i = 0; i < n; i++) if (labels[i] < 0 || labels[i] >= k) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_cross_entropy: label[%lld] = %lld outside 0..%lld", (long long)i, (long long)labels[i], (long long)k - 1);
        return NULL;
    }
    lp = nde_log_softmax(ctx, logits);
    flat = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(int64_t));
    if (!lp || !flat) return NULL;
    for (i = 0; i < n; i++) flat[i] = i * k + labels[i];
    fshape[0] = n * k; fshape[1] = 1;
    picked = nde_gather_rows(ctx, nde_reshape(ctx, lp, 2, fshape), n, flat);
    return nde_neg(ctx, nde_mean(ctx, picked));
}

/* ------------------------------------------------------------ parameters */
static nde_status nde__params_grow(nde_ctx *ctx, int64_t need) {
    int64_t nc = ctx->param_cap ? ctx->param_cap : 1024;
    nde_real *nd, *ng; int i;
    size_t old = (size_t)ctx->param_count * sizeof(nde_real);
    while (nc < need) nc *= 2;
    nd = (nde_real *)nde__raw_alloc(ctx->data.backend, (size_t)nc * sizeof(nde_real));
    ng = (nde_real *)nde__raw_alloc(ctx->data.backend, (size_t)nc * sizeof(nde_real));
    if (!nd || !ng) {
        nde__raw_free(ctx->data.backend, nd); nde__raw_free(ctx->data.backend, ng);
        return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_param_new: out of memory for %lld parameters", (long long)nc);
    }
    ctx->be->fill(ctx->be->self, nc, NDE_R(0.0), nd);
    ctx->be->fill(ctx->be->self, nc, NDE_R(0.0), ng);
    if (old) {
        ctx->be->copy(ctx->be->self, nd, ctx->param_data, old, NDE_COPY_DEVICE);
        ctx->be->copy(ctx->be->self, ng, ctx->param_grad_own, old, NDE_COPY_DEVICE);
    }
    nde__raw_free(ctx->data.backend, ctx->param_data);
    nde__raw_free(ctx->data.backend, ctx->param_grad_own);
    /* optimizer state is re-created at the next step */
    nde__raw_free(ctx->data.backend, ctx->opt_m); ctx->opt_m = NULL;
    nde__raw_free(ctx->data.backend, ctx->opt_v); ctx->opt_v = NULL;
    ctx->param_data = nd; ctx->param_grad_own = ng; ctx->param_grad = ng; ctx->param_cap = nc;
    for (i = 0; i < ctx->num_params; i++) {
        nde_tensor *t = ctx->params[i].tensor;
        t->data = nd + ctx->params[i].offset;
        t->grad = ng + ctx->params[i].offset;
    }
    return NDE_OK;
}

NDE_API nde_tensor *nde_param_new(nde_ctx *ctx, const char *name, int ndim, const int64_t *shape) {
    int64_t size = 1; int i; nde_tensor *t; nde__param_info *pi;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!nde__check_shape(ctx, ndim, shape, "nde_param_new")) return NULL;
    if (!name || !name[0] || strlen(name) >= sizeof(pi->name)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_param_new: the name must be 1..%d characters", (int)sizeof(pi->name) - 1);
        return NULL;
    }
    if (nde_param_find(ctx, name)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_param_new: a parameter named '%s' exists already", name);
        return NULL;
    }
    for (i = 0; i < ndim; i++) size *= shape[i];
    if (ctx->param_grad != ctx->param_grad_own) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_param_new: cannot add parameters while gradients are redirected");
        return NULL;
    }
    if (ctx->param_count + size > ctx->param_cap && nde__params_grow(ctx, ctx->param_count + size) != NDE_OK) return NULL;
    if (ctx->num_params == ctx->cap_params) {
        int nc = ctx->cap_params ? ctx->cap_params * 2 : 16;
        nde__param_info *np = (nde__param_info *)NDE_REALLOC(ctx->params, (size_t)nc * sizeof *np);
        if (!np) { nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_param_new: out of memory"); return NULL; }
        ctx->params = np; ctx->cap_params = nc;
    }
    t = (nde_tensor *)NDE_MALLOC(sizeof(nde_tensor));
    if (!t) { nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_param_new: out of memory"); return NULL; }
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (i = 0; i < NDE_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->size = size; t->node = -1; t->param = ctx->num_params; t->requires_grad = 1;
    t->data = ctx->param_data + ctx->param_count;
    t->grad = ctx->param_grad + ctx->param_count;
    pi = &ctx->params[ctx->num_params];
    memset(pi, 0, sizeof *pi);
    memcpy(pi->name, name, strlen(name) + 1);
    pi->offset = ctx->param_count; pi->trainable = 1; pi->tensor = t;
    ctx->num_params++;
    ctx->param_count += size;
    /* optimizer state sized to the old count must be re-made */
    nde__raw_free(ctx->data.backend, ctx->opt_m); ctx->opt_m = NULL;
    nde__raw_free(ctx->data.backend, ctx->opt_v); ctx->opt_v = NULL;
    return t;
}
NDE_API int nde_params_num(const nde_ctx *ctx) { return ctx->num_params; }
NDE_API nde_tensor *nde_param_at(nde_ctx *ctx, int i) { return (i >= 0 && i < ctx->num_params) ? ctx->params[i].tensor : NULL; }
NDE_API const char *nde_param_name(const nde_ctx *ctx, int i) { return (i >= 0 && i < ctx->num_params) ? ctx->params[i].name : NULL; }
NDE_API nde_tensor *nde_param_find(nde_ctx *ctx, const char *name) {
    int i;
    for (i = 0; i < ctx->num_params; i++) if (strcmp(ctx->params[i].name, name) == 0) return ctx->params[i].tensor;
    return NULL;
}
NDE_API int64_t nde_params_count(const nde_ctx *ctx) { return ctx->param_count; }
NDE_API int64_t nde_param_offset(const nde_ctx *ctx, int i) { return (i >= 0 && i < ctx->num_params) ? ctx->params[i].offset : -1; }
NDE_API nde_real *nde_params_data(nde_ctx *ctx) { return ctx->param_data; }
NDE_API nde_real *nde_params_grad(nde_ctx *ctx) { return ctx->param_grad; }
NDE_API void nde_zero_grad(nde_ctx *ctx) {
    if (ctx->param_count) ctx->be->fill(ctx->be->self, ctx->param_count, NDE_R(0.0), ctx->param_grad);
}
NDE_API void nde_params_redirect_grad(nde_ctx *ctx, nde_real *buf) {
    int i;
    ctx->param_grad = buf ? buf : ctx->param_grad_own;
    for (i = 0; i < ctx->num_params; i++) {
        nde_tensor *t = ctx->params[i].tensor;
        t->grad = ctx->param_grad + ctx->params[i].offset;
        t->requires_grad = ctx->params[i].trainable;
    }
}
NDE_API void nde_param_set_trainable(nde_ctx *ctx, int i, int trainable) {
    if (i < 0 || i >= ctx->num_params) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_param_set_trainable: index %d outside 0..%d", i, ctx->num_params - 1);
        return;
    }
    ctx->params[i].trainable = trainable ? 1 : 0;
    ctx->params[i].tensor->requires_grad = ctx->params[i].trainable;
}

/* ------------------------------------------------------------ RNG */
NDE_API void nde_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    nde__philox_block(key, counter_hi, counter_lo, out);
}
NDE_API nde_rng nde_rng_new(uint64_t seed, uint64_t stream) { nde_rng r; r.seed = seed; r.stream = stream; r.counter = 0; return r; }
NDE_API nde_rng nde_rng_split(const nde_rng *r, uint64_t child) {
    /* A child stream: hash (stream, child) through Philox itself. */
    uint32_t o[4]; nde_rng c;
    nde_philox4x32(r->seed ^ 0x5DEECE66DULL, r->stream, child, o);
    c.seed = r->seed; c.stream = ((uint64_t)o[0] << 32 | o[1]) ^ (r->stream + 1); c.counter = 0;
    return c;
}
static void nde__cpu_philox_fill(void *self, int kind, uint64_t seed, uint64_t stream, uint64_t counter, int64_t n, nde_real *out) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) out[i] = (nde_real)nde__philox_value(kind, seed, stream, counter + (uint64_t)i);
}
NDE_API void nde_rng_uniform(nde_rng *r, int64_t n, nde_real *out) {
    nde__cpu_philox_fill(NULL, 0, r->seed, r->stream, r->counter, n, out); r->counter += (uint64_t)n;
}
NDE_API void nde_rng_normal(nde_rng *r, int64_t n, nde_real *out) {
    nde__cpu_philox_fill(NULL, 1, r->seed, r->stream, r->counter, n, out); r->counter += (uint64_t)n;
}
NDE_API void nde_rng_rademacher(nde_rng *r, int64_t n, nde_real *out) {
    nde__cpu_philox_fill(NULL, 2, r->seed, r->stream, r->counter, n, out); r->counter += (uint64_t)n;
}
NDE_API double nde_rng_uniform1(nde_rng *r) { uint32_t o[4]; nde_philox4x32(r->seed, r->stream, r->counter++, o); return nde__philox_u01_52(o[0], o[1]); }
NDE_API double nde_rng_normal1(nde_rng *r) { return nde__philox_value(1, r->seed, r->stream, r->counter++); }

static nde_status nde__fill_random(nde_ctx *ctx, nde_tensor *t, nde_rng *r, int kind, nde_real scale, nde_real shift, const char *who) {
    if (!t) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL tensor", who);
    ctx->be->philox_fill(ctx->be->self, kind, r->seed, r->stream, r->counter, t->size, t->data);
    r->counter += (uint64_t)t->size;
    if (scale != NDE_R(1.0) || shift != NDE_R(0.0)) {
        ctx->be->unary(ctx->be->self, NDE_UNARY_SCALE, t->size, t->data, scale, t->data);
        ctx->be->unary(ctx->be->self, NDE_UNARY_ADD_SCALAR, t->size, t->data, shift, t->data);
    }
    return NDE_OK;
}
NDE_API nde_status nde_tensor_fill_normal(nde_ctx *ctx, nde_tensor *t, nde_rng *r, nde_real mean, nde_real std) {
    return nde__fill_random(ctx, t, r, 1, std, mean, "nde_tensor_fill_normal");
}
NDE_API nde_status nde_tensor_fill_uniform(nde_ctx *ctx, nde_tensor *t, nde_rng *r, nde_real lo, nde_real hi) {
    return nde__fill_random(ctx, t, r, 0, hi - lo, lo, "nde_tensor_fill_uniform");
}
NDE_API nde_status nde_tensor_fill_rademacher(nde_ctx *ctx, nde_tensor *t, nde_rng *r) {
    return nde__fill_random(ctx, t, r, 2, NDE_R(1.0), NDE_R(0.0), "nde_tensor_fill_rademacher");
}
NDE_API nde_tensor *nde_tensor_randn(nde_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, uint64_t stream) {
    nde_tensor *t = nde__tensor_new(ctx, ndim, shape, "nde_tensor_randn");
    nde_rng r = nde_rng_new(seed, stream);
    if (t) nde_tensor_fill_normal(ctx, t, &r, NDE_R(0.0), NDE_R(1.0));
    return t;
}
NDE_API nde_tensor *nde_tensor_rand(nde_ctx *ctx, int ndim, const int64_t *shape, uint64_t seed, uint64_t stream) {
    nde_tensor *t = nde__tensor_new(ctx, ndim, shape, "nde_tensor_rand");
    nde_rng r = nde_rng_new(seed, stream);
    if (t) nde_tensor_fill_uniform(ctx, t, &r, NDE_R(0.0), NDE_R(1.0));
    return t;
}

/* ------------------------------------------------------------ layers */
NDE_API nde_tensor *nde_activate(nde_ctx *ctx, nde_tensor *x, nde_activation act) {
    switch (act) {
    case NDE_ACT_NONE: return x;
    case NDE_ACT_TANH: return nde_tanh(ctx, x);
    case NDE_ACT_RELU: return nde_relu(ctx, x);
    case NDE_ACT_SIGMOID: return nde_sigmoid(ctx, x);
    case NDE_ACT_SOFTPLUS: return nde_softplus(ctx, x);
    case NDE_ACT_ELU: return nde_elu(ctx, x, NDE_R(1.0));
    case NDE_ACT_LEAKY_RELU: return nde_leaky_relu(ctx, x, NDE_R(0.01));
    case NDE_ACT_SIN: return nde_sin(ctx, x);
    }
    nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_activate: unknown activation %d", (int)act);
    return NULL;
}

static int64_t nde__fan_in(const nde_tensor *t) {
    int64_t f = 1; int i;
    for (i = 1; i < t->ndim; i++) f *= t->shape[i];
    return t->ndim > 1 ? f : t->shape[0];
}
NDE_API nde_status nde_init_uniform(nde_ctx *ctx, nde_tensor *t, nde_real lo, nde_real hi, uint64_t seed) {
    nde_rng r = nde_rng_new(seed, t && t->param >= 0 ? (uint64_t)t->param : 0);
    return nde_tensor_fill_uniform(ctx, t, &r, lo, hi);
}
/* PyTorch's kaiming_uniform_(a): bound = sqrt(6 / ((1 + a^2) fan_in)). */
NDE_API nde_status nde_init_kaiming_uniform(nde_ctx *ctx, nde_tensor *t, nde_real a, uint64_t seed) {
    double bound;
    if (!t) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_init_kaiming_uniform: NULL tensor");
    bound = sqrt(6.0 / ((1.0 + (double)a * a) * (double)nde__fan_in(t)));
    return nde_init_uniform(ctx, t, (nde_real)-bound, (nde_real)bound, seed);
}
/* kaiming_normal_(a, fan_in): std = sqrt(2 / ((1 + a^2) fan_in)). */
NDE_API nde_status nde_init_kaiming_normal(nde_ctx *ctx, nde_tensor *t, nde_real a, uint64_t seed) {
    nde_rng r;
    if (!t) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_init_kaiming_normal: NULL tensor");
    r = nde_rng_new(seed, t->param >= 0 ? (uint64_t)t->param : 0);
    return nde_tensor_fill_normal(ctx, t, &r, NDE_R(0.0), (nde_real)sqrt(2.0 / ((1.0 + (double)a * a) * (double)nde__fan_in(t))));
}

/* "prefix.suffix" into out (truncated to cap - 1 characters); avoids
   snprintf("%s...") so that -O3 -Wformat-truncation stays quiet. */
static void nde__join_name(char *out, size_t cap, const char *prefix, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix);
    if (a > cap - 2) a = cap - 2;
    memcpy(out, prefix, a);
    out[a] = '.';
    if (b > cap - 2 - a) b = cap - 2 - a;
    memcpy(out + a + 1, suffix, b);
    out[a + 1 + b] = 0;
}

NDE_API nde_status nde_linear_init(nde_ctx *ctx, nde_linear *l, const char *name, int64_t in, int64_t out, int bias, uint64_t seed) {
    char nm[96]; int64_t ws[2]; double bound;
    if (!l || in < 1 || out < 1)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_linear_init: in = %lld and out = %lld must be positive", (long long)in, (long long)out);
    memset(l, 0, sizeof *l);
    l->in = in; l->out = out;
    ws[0] = out; ws[1] = in;
    nde__join_name(nm, sizeof nm, name, "weight");
    l->weight = nde_param_new(ctx, nm, 2, ws);
    if (!l->weight) return ctx->status;
    /* PyTorch Linear: kaiming_uniform_(a = sqrt(5)) gives bound 1/sqrt(in) */
    bound = 1.0 / sqrt((double)in);
    nde_init_uniform(ctx, l->weight, (nde_real)-bound, (nde_real)bound, seed);
    if (bias) {
        nde__join_name(nm, sizeof nm, name, "bias");
        l->bias = nde_param_new(ctx, nm, 1, &out);
        if (!l->bias) return ctx->status;
        nde_init_uniform(ctx, l->bias, (nde_real)-bound, (nde_real)bound, seed);
    }
    return ctx->status;
}
NDE_API nde_tensor *nde_linear_forward(nde_ctx *ctx, const nde_linear *l, nde_tensor *x) {
    nde_tensor *y = nde_matmul(ctx, x, l->weight, 0, 1);
    return l->bias ? nde_add(ctx, y, l->bias) : y;
}
NDE_API nde_status nde_mlp_init(nde_ctx *ctx, nde_mlp *m, const char *name, int nw, const int64_t *widths, nde_activation act, uint64_t seed) {
    int i; char nm[96];
    if (!m || nw < 2 || nw - 1 > NDE_MLP_MAX_LAYERS)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_mlp_init: need 2..%d widths, got %d", NDE_MLP_MAX_LAYERS + 1, nw);
    memset(m, 0, sizeof *m);
    m->num_layers = nw - 1; m->act = act;
    for (i = 0; i < nw - 1; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        nde__join_name(nm, sizeof nm, name, idx);
        if (nde_linear_init(ctx, &m->layer[i], nm, widths[i], widths[i + 1], 1, seed + (uint64_t)i * 7919u) != NDE_OK)
            return ctx->status;
    }
    return NDE_OK;
}
NDE_API nde_tensor *nde_mlp_forward(nde_ctx *ctx, const nde_mlp *m, nde_tensor *x) {
    int i;
    for (i = 0; i < m->num_layers; i++) {
        x = nde_linear_forward(ctx, &m->layer[i], x);
        if (i + 1 < m->num_layers) x = nde_activate(ctx, x, m->act);
    }
    return x;
}

NDE_API nde_status nde_conv2d_init(nde_ctx *ctx, nde_conv2d_layer *l, const char *name, int64_t in, int64_t out,
                                   int kernel, int stride, int padding, int bias, uint64_t seed) {
    char nm[96]; int64_t ws[4]; double bound;
    if (!l || in < 1 || out < 1 || kernel < 1 || stride < 1 || padding < 0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_conv2d_init: bad sizes in %lld out %lld kernel %d stride %d padding %d",
                            (long long)in, (long long)out, kernel, stride, padding);
    memset(l, 0, sizeof *l);
    l->in = in; l->out = out; l->kernel = kernel; l->stride = stride; l->padding = padding;
    ws[0] = out; ws[1] = in; ws[2] = kernel; ws[3] = kernel;
    nde__join_name(nm, sizeof nm, name, "weight");
    l->weight = nde_param_new(ctx, nm, 4, ws);
    if (!l->weight) return ctx->status;
    bound = 1.0 / sqrt((double)(in * kernel * kernel));
    nde_init_uniform(ctx, l->weight, (nde_real)-bound, (nde_real)bound, seed);
    if (bias) {
        nde__join_name(nm, sizeof nm, name, "bias");
        l->bias = nde_param_new(ctx, nm, 1, &out);
        if (!l->bias) return ctx->status;
        nde_init_uniform(ctx, l->bias, (nde_real)-bound, (nde_real)bound, seed);
    }
    return ctx->status;
}
NDE_API nde_tensor *nde_conv2d_forward(nde_ctx *ctx, const nde_conv2d_layer *l, nde_tensor *x) {
    return nde_conv2d(ctx, x, l->weight, l->bias, l->stride, l->padding);
}

/* ------------------------------------------------------------ JETS
   Taylor-mode jets (conventions and rules: JETS at the top of this file).
   Every jet op is a record {kernel, inputs, output, auxiliary jets}. The
   kernel computes coefficient k of the output (and of its auxiliaries) from
   coefficients <= k of the inputs and < k of the output, with taped tensor
   ops. An eager op runs its kernel for k = 0..order. While
   nde_ode_taylor_coeffs records a jet function, each record is also appended
   to the context's list, and the list is replayed once per higher order. */
typedef void (*nde__jet_kernel)(nde_ctx *ctx, nde__jet_rec *r, int k);
struct nde__jet_rec {
    nde__jet_kernel kernel;
    nde_jet *out, *in[3], *aux[2];
    int64_t iarg[4];
    nde_real rarg[2];
    void *extra;
    const char *who;
    nde__jet_rec *next;
};
enum { NDE__JET_NONLINEAR, NDE__JET_LINEAR, NDE__JET_BILINEAR };

static nde_jet *nde__jet_alloc(nde_ctx *ctx, const char *who) {
    nde_jet *j = (nde_jet *)nde__arena_alloc(ctx, &ctx->meta, sizeof(nde_jet), who);
    if (j) memset(j, 0, sizeof *j);
    return j;
}
/* Coefficient k, NULL when it is an exact zero (or past a closed jet's order). */
static nde_tensor *nde__jc(const nde_jet *j, int k) { return (j && k <= j->order) ? j->c[k] : NULL; }
/* Coefficient k of an input: an error if the jet does not know it yet. */
static nde_tensor *nde__jet_in(nde_ctx *ctx, const nde_jet *j, int k, const char *who) {
    if (!j) return NULL;
    if (k > j->order && !j->closed) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: coefficient %d of a jet of order %d is needed: a jet expanded by "
                     "nde_ode_taylor_coeffs must be built from its arguments with nde_jet_* ops", who, k, j->order);
        return NULL;
    }
    return nde__jc(j, k);
}
static int nde__jet_degree(const nde_jet *j) {
    int k = j->order;
    while (k > 0 && !j->c[k]) k--;
    return k;
}
static nde_real nde__factorial(int k) { nde_real f = NDE_R(1.0); int i; for (i = 2; i <= k; i++) f *= (nde_real)i; return f; }

/* t broadcast to the shape of like (t may have fewer elements: a broadcast operand). */
static nde_tensor *nde__jet_fit(nde_ctx *ctx, nde_tensor *t, const nde_tensor *like) {
    if (!t || nde_tensor_same_shape(t, like)) return t;
    if (t->size == like->size) return nde_reshape(ctx, t, like->ndim, like->shape);
    return nde_add(ctx, nde_tensor_zeros_like(ctx, like), t);
}
/* wa a + wb b with NULL as zero (broadcasting); NULL when both are zero. */
static nde_tensor *nde__jet_comb2(nde_ctx *ctx, nde_real wa, nde_tensor *a, nde_real wb, nde_tensor *b) {
    if (!a && !b) return NULL;
    if (!b) return wa == NDE_R(1.0) ? a : nde_scale(ctx, a, wa);
    if (!a) return wb == NDE_R(1.0) ? b : nde_scale(ctx, b, wb);
    if (nde_tensor_same_shape(a, b)) {
        nde_real w[2]; nde_tensor *xs[2];
        w[0] = wa; w[1] = wb; xs[0] = a; xs[1] = b;
        return nde_lincomb(ctx, 2, w, xs);
    }
    return nde_add(ctx, wa == NDE_R(1.0) ? a : nde_scale(ctx, a, wa), wb == NDE_R(1.0) ? b : nde_scale(ctx, b, wb));
}
/* sum_i w[i] t[i] over the nonzero t[i] (all of one shape); NULL if none. */
static nde_tensor *nde__jet_sum_terms(nde_ctx *ctx, int n, const nde_real *w, nde_tensor *const *t) {
    nde_real wk[2 * NDE_JET_MAX_ORDER + 2]; nde_tensor *tk[2 * NDE_JET_MAX_ORDER + 2];
    int i, m = 0;
    for (i = 0; i < n; i++) if (t[i]) { wk[m] = w[i]; tk[m] = t[i]; m++; }
    if (m == 0) return NULL;
    if (m == 1) return wk[0] == NDE_R(1.0) ? tk[0] : nde_scale(ctx, tk[0], wk[0]);
    return nde_lincomb(ctx, m, wk, tk);
}
/* sum_{j=lo..hi} w(j) x_j y_{k-j} with elementwise products; w(j) = (scale_j ? j : 1) * wscale. */
static nde_tensor *nde__jet_cauchy(nde_ctx *ctx, const nde_jet *x, const nde_jet *y, int k, int lo, int hi,
                                   int weight_by_j, nde_real wscale, const char *who) {
    nde_real w[NDE_JET_MAX_ORDER + 1]; nde_tensor *t[NDE_JET_MAX_ORDER + 1];
    int j, n = 0;
    for (j = lo; j <= hi; j++) {
        nde_tensor *a = nde__jet_in(ctx, x, j, who), *b = nde__jet_in(ctx, y, k - j, who);
        if (ctx->status != NDE_OK) return NULL;
        if (!a || !b) continue;
        w[n] = (weight_by_j ? (nde_real)j : NDE_R(1.0)) * wscale;
        t[n] = nde_mul(ctx, a, b);
        n++;
    }
    return nde__jet_sum_terms(ctx, n, w, t);
}
/* wscale * sum_{j=lo..k-lo} v_j v_{k-j}, using the symmetry (half the products). */
static nde_tensor *nde__jet_self_cauchy(nde_ctx *ctx, const nde_jet *v, int k, int lo, nde_real wscale) {
    nde_real w[NDE_JET_MAX_ORDER + 1]; nde_tensor *t[NDE_JET_MAX_ORDER + 1];
    int j, n = 0;
    for (j = lo; 2 * j <= k; j++) {
        nde_tensor *a = nde__jc(v, j), *b = nde__jc(v, k - j);
        if (!a || !b) continue;
        w[n] = (2 * j == k ? NDE_R(1.0) : NDE_R(2.0)) * wscale;
        t[n] = (2 * j == k) ? nde_square(ctx, a) : nde_mul(ctx, a, b);
        n++;
    }
    return nde__jet_sum_terms(ctx, n, w, t);
}

static nde__jet_rec *nde__jet_begin(nde_ctx *ctx, nde__jet_kernel kernel, nde_jet *a, nde_jet *b, nde_jet *c,
                                    int naux, const char *who) {
    nde__jet_rec *r; int i;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!a) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL jet", who); return NULL; }
    r = (nde__jet_rec *)nde__arena_alloc(ctx, &ctx->meta, sizeof *r, who);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->kernel = kernel; r->in[0] = a; r->in[1] = b; r->in[2] = c; r->who = who;
    r->out = nde__jet_alloc(ctx, who);
    for (i = 0; i < naux; i++) r->aux[i] = nde__jet_alloc(ctx, who);
    if (!r->out || (naux > 0 && !r->aux[0]) || (naux > 1 && !r->aux[1])) return NULL;
    return r;
}
/* Order of the result: the smallest order of the open inputs; if every input is
   closed, the largest order, and the result is closed when it is a polynomial
   known in full (linear op; product whose degrees add up within the order;
   any op of constants). */
static nde_jet *nde__jet_finish(nde_ctx *ctx, nde__jet_rec *r, nde_jet *const *ins, int nins, int kind) {
    int i, k, order = -1, all_closed = 1, closed_max = 0, deg_sum = 0, deg_max = 0;
    if (!r) return NULL;
    for (i = 0; i < nins; i++) {
        const nde_jet *j = ins[i];
        if (!j) continue;
        if (!j->c[0] || j->order < 0) {
            nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: input jet %d has no coefficient 0", r->who, i);
            return NULL;
        }
        if (j->closed) {
            int d = nde__jet_degree(j);
            if (j->order > closed_max) closed_max = j->order;
            deg_sum += d; if (d > deg_max) deg_max = d;
        } else {
            all_closed = 0;
            if (order < 0 || j->order < order) order = j->order;
        }
    }
    if (all_closed) order = closed_max;
    for (k = 0; k <= order; k++) {
        r->kernel(ctx, r, k);
        if (ctx->status != NDE_OK) return NULL;
        if (k == 0 && !r->out->c[0]) {
            nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "%s: no value computed", r->who);
            return NULL;
        }
        r->out->order = k;
        for (i = 0; i < 2; i++) if (r->aux[i]) r->aux[i]->order = k;
    }
    if (all_closed)
        r->out->closed = kind == NDE__JET_LINEAR || deg_max == 0 || (kind == NDE__JET_BILINEAR && deg_sum <= order);
    if (ctx->jet_recording && !r->out->closed) {
        if (ctx->jet_rec_tail) ctx->jet_rec_tail->next = r; else ctx->jet_rec_head = r;
        ctx->jet_rec_tail = r;
    }
    return r->out;
}
static nde_jet *nde__jet_run(nde_ctx *ctx, nde__jet_rec *r, int kind) {
    return r ? nde__jet_finish(ctx, r, r->in, 3, kind) : NULL;
}
/* Extend every recorded op to coefficient k (its inputs are extended first:
   records are in creation order). */
static void nde__jet_replay(nde_ctx *ctx, nde__jet_rec *head, int k) {
    nde__jet_rec *r; int i;
    for (r = head; r && ctx->status == NDE_OK; r = r->next) {
        if (r->out->order >= k) continue;
        r->kernel(ctx, r, k);
        if (ctx->status != NDE_OK) return;
        r->out->order = k;
        for (i = 0; i < 2; i++) if (r->aux[i]) r->aux[i]->order = k;
    }
}

/* ---- construction */
NDE_API nde_jet *nde_jet_new(nde_ctx *ctx, int order, nde_tensor *const *coeffs) {
    nde_jet *j; int k; char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (order < 0 || order > NDE_JET_MAX_ORDER || !coeffs || !coeffs[0]) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_new: order %d outside 0..%d or coefficient 0 missing", order, NDE_JET_MAX_ORDER);
        return NULL;
    }
    for (k = 1; k <= order; k++)
        if (coeffs[k] && !nde_tensor_same_shape(coeffs[k], coeffs[0])) {
            nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_jet_new: coefficient %d is %s, coefficient 0 is %s", k,
                         nde_shape_str(coeffs[k], s1, sizeof s1), nde_shape_str(coeffs[0], s2, sizeof s2));
            return NULL;
        }
    j = nde__jet_alloc(ctx, "nde_jet_new");
    if (!j) return NULL;
    j->order = order;
    for (k = 0; k <= order; k++) j->c[k] = coeffs[k];
    return j;
}
NDE_API nde_jet *nde_jet_line(nde_ctx *ctx, nde_tensor *x0, nde_tensor *v, int order) {
    nde_jet *j; char s1[64], s2[64];
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x0 || order < 0 || order > NDE_JET_MAX_ORDER) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_line: NULL point or order %d outside 0..%d", order, NDE_JET_MAX_ORDER);
        return NULL;
    }
    if (v && !nde_tensor_same_shape(v, x0)) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_jet_line: direction %s, point %s", nde_shape_str(v, s1, sizeof s1),
                     nde_shape_str(x0, s2, sizeof s2));
        return NULL;
    }
    j = nde__jet_alloc(ctx, "nde_jet_line");
    if (!j) return NULL;
    j->closed = 1; j->c[0] = x0;
    j->order = order;
    if (v) { if (j->order < 1) j->order = 1; j->c[1] = v; }
    return j;
}
NDE_API nde_jet *nde_jet_const(nde_ctx *ctx, nde_tensor *x, int order) { return nde_jet_line(ctx, x, NULL, order); }

/* A header viewing the snapshot of parameter p (no history, no gradient). */
static nde_tensor *nde__theta0_view(nde_ctx *ctx, const nde_tensor *p) {
    nde_tensor *v = (nde_tensor *)nde__arena_alloc(ctx, &ctx->meta, sizeof(nde_tensor), "nde_jet_param");
    if (!v) return NULL;
    *v = *p;
    v->data = (nde_real *)ctx->jet_theta0 + ctx->params[p->param].offset;
    v->grad = NULL; v->requires_grad = 0; v->node = -1; v->param = -1;
    return v;
}
NDE_API nde_jet *nde_jet_param(nde_ctx *ctx, nde_tensor *p, int order) {
    nde_tensor *t0;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!p) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_param: NULL parameter"); return NULL; }
    if (!ctx->jet_theta0 || p->param < 0) return nde_jet_const(ctx, p, order);
    /* theta(s) = theta0 + s (theta - theta0): Bai et al.'s expansion direction */
    t0 = nde__theta0_view(ctx, p);
    return nde_jet_line(ctx, t0, nde_sub(ctx, p, t0), order);
}
NDE_API nde_tensor *nde_jet_coeff(nde_ctx *ctx, const nde_jet *x, int k) {
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !x->c[0] || k < 0 || k > NDE_JET_MAX_ORDER || (k > x->order && !x->closed)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_coeff: coefficient %d of a jet of order %d", k, x ? x->order : -1);
        return NULL;
    }
    return nde__jc(x, k) ? x->c[k] : nde_tensor_zeros_like(ctx, x->c[0]);
}
NDE_API nde_tensor *nde_jet_derivative(nde_ctx *ctx, const nde_jet *x, int k) {
    nde_tensor *c = nde_jet_coeff(ctx, x, k);
    return k < 2 ? c : nde_scale(ctx, c, nde__factorial(k));
}
NDE_API nde_tensor *nde_jet_eval(nde_ctx *ctx, const nde_jet *x, nde_real s) {
    nde_real w[NDE_JET_MAX_ORDER + 1], p = NDE_R(1.0); int k;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !x->c[0]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_eval: NULL jet"); return NULL; }
    for (k = 0; k <= x->order; k++) { w[k] = p; p *= s; }
    return nde__jet_sum_terms(ctx, x->order + 1, w, x->c);
}

/* ---- linear ops: coefficient by coefficient */
enum {
    NDE__JL_SCALE, NDE__JL_ADD_SCALAR, NDE__JL_SUM, NDE__JL_MEAN, NDE__JL_SUM_AXIS, NDE__JL_MEAN_AXIS,
    NDE__JL_RESHAPE, NDE__JL_TRANSPOSE, NDE__JL_SLICE, NDE__JL_AVG_POOL, NDE__JL_GAP
};
static void nde__jet_linear_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_tensor *x = nde__jet_in(ctx, r->in[0], k, r->who), *y = NULL;
    if (!x) { r->out->c[k] = NULL; return; }
    switch (r->iarg[0]) {
    case NDE__JL_SCALE: y = nde_scale(ctx, x, r->rarg[0]); break;
    case NDE__JL_ADD_SCALAR: y = k == 0 ? nde_add_scalar(ctx, x, r->rarg[0]) : x; break;
    case NDE__JL_SUM: y = nde_sum(ctx, x); break;
    case NDE__JL_MEAN: y = nde_mean(ctx, x); break;
    case NDE__JL_SUM_AXIS: y = nde_sum_axis(ctx, x, (int)r->iarg[1], (int)r->iarg[2]); break;
    case NDE__JL_MEAN_AXIS: y = nde_mean_axis(ctx, x, (int)r->iarg[1], (int)r->iarg[2]); break;
    case NDE__JL_RESHAPE: y = nde_reshape(ctx, x, (int)r->iarg[1], (const int64_t *)r->extra); break;
    case NDE__JL_TRANSPOSE: y = nde_transpose(ctx, x); break;
    case NDE__JL_SLICE: y = nde_slice(ctx, x, (int)r->iarg[1], r->iarg[2], r->iarg[3]); break;
    case NDE__JL_AVG_POOL: y = nde_avg_pool2d(ctx, x, (int)r->iarg[1], (int)r->iarg[2]); break;
    case NDE__JL_GAP: y = nde_global_avg_pool(ctx, x); break;
    }
    r->out->c[k] = y;
}
static nde_jet *nde__jet_linear(nde_ctx *ctx, nde_jet *x, int op, int64_t i1, int64_t i2, int64_t i3, nde_real s,
                                const char *who) {
    nde__jet_rec *r = nde__jet_begin(ctx, nde__jet_linear_kernel, x, NULL, NULL, 0, who);
    if (!r) return NULL;
    r->iarg[0] = op; r->iarg[1] = i1; r->iarg[2] = i2; r->iarg[3] = i3; r->rarg[0] = s;
    return nde__jet_run(ctx, r, NDE__JET_LINEAR);
}
NDE_API nde_jet *nde_jet_scale(nde_ctx *ctx, nde_jet *x, nde_real s) { return nde__jet_linear(ctx, x, NDE__JL_SCALE, 0, 0, 0, s, "nde_jet_scale"); }
NDE_API nde_jet *nde_jet_neg(nde_ctx *ctx, nde_jet *x) { return nde__jet_linear(ctx, x, NDE__JL_SCALE, 0, 0, 0, NDE_R(-1.0), "nde_jet_neg"); }
NDE_API nde_jet *nde_jet_add_scalar(nde_ctx *ctx, nde_jet *x, nde_real s) { return nde__jet_linear(ctx, x, NDE__JL_ADD_SCALAR, 0, 0, 0, s, "nde_jet_add_scalar"); }
NDE_API nde_jet *nde_jet_sum(nde_ctx *ctx, nde_jet *x) { return nde__jet_linear(ctx, x, NDE__JL_SUM, 0, 0, 0, 0, "nde_jet_sum"); }
NDE_API nde_jet *nde_jet_mean(nde_ctx *ctx, nde_jet *x) { return nde__jet_linear(ctx, x, NDE__JL_MEAN, 0, 0, 0, 0, "nde_jet_mean"); }
NDE_API nde_jet *nde_jet_sum_axis(nde_ctx *ctx, nde_jet *x, int axis, int keepdim) { return nde__jet_linear(ctx, x, NDE__JL_SUM_AXIS, axis, keepdim, 0, 0, "nde_jet_sum_axis"); }
NDE_API nde_jet *nde_jet_mean_axis(nde_ctx *ctx, nde_jet *x, int axis, int keepdim) { return nde__jet_linear(ctx, x, NDE__JL_MEAN_AXIS, axis, keepdim, 0, 0, "nde_jet_mean_axis"); }
NDE_API nde_jet *nde_jet_transpose(nde_ctx *ctx, nde_jet *x) { return nde__jet_linear(ctx, x, NDE__JL_TRANSPOSE, 0, 0, 0, 0, "nde_jet_transpose"); }
NDE_API nde_jet *nde_jet_slice(nde_ctx *ctx, nde_jet *x, int axis, int64_t start, int64_t stop) { return nde__jet_linear(ctx, x, NDE__JL_SLICE, axis, start, stop, 0, "nde_jet_slice"); }
NDE_API nde_jet *nde_jet_avg_pool2d(nde_ctx *ctx, nde_jet *x, int kernel, int stride) { return nde__jet_linear(ctx, x, NDE__JL_AVG_POOL, kernel, stride, 0, 0, "nde_jet_avg_pool2d"); }
NDE_API nde_jet *nde_jet_global_avg_pool(nde_ctx *ctx, nde_jet *x) { return nde__jet_linear(ctx, x, NDE__JL_GAP, 0, 0, 0, 0, "nde_jet_global_avg_pool"); }
NDE_API nde_jet *nde_jet_reshape(nde_ctx *ctx, nde_jet *x, int ndim, const int64_t *shape) {
    nde__jet_rec *r = nde__jet_begin(ctx, nde__jet_linear_kernel, x, NULL, NULL, 0, "nde_jet_reshape");
    int64_t *s;
    if (!r) return NULL;
    if (!shape || ndim < 1 || ndim > NDE_MAX_DIMS) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_jet_reshape: ndim %d outside 1..%d", ndim, NDE_MAX_DIMS);
        return NULL;
    }
    s = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)ndim * sizeof(int64_t));
    if (!s) return NULL;
    memcpy(s, shape, (size_t)ndim * sizeof(int64_t));
    r->iarg[0] = NDE__JL_RESHAPE; r->iarg[1] = ndim; r->extra = s;
    return nde__jet_run(ctx, r, NDE__JET_LINEAR);
}

static void nde__jet_addsub_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_tensor *a = nde__jet_in(ctx, r->in[0], k, r->who), *b = nde__jet_in(ctx, r->in[1], k, r->who);
    nde_real sb = r->rarg[0];
    if (k == 0) { r->out->c[0] = sb > 0 ? nde_add(ctx, a, b) : nde_sub(ctx, a, b); return; }
    if (a && b) r->out->c[k] = sb > 0 ? nde_add(ctx, a, b) : nde_sub(ctx, a, b);
    else r->out->c[k] = nde__jet_fit(ctx, nde__jet_comb2(ctx, NDE_R(1.0), a, sb, b), r->out->c[0]);
}
static nde_jet *nde__jet_addsub(nde_ctx *ctx, nde_jet *a, nde_jet *b, nde_real sign, const char *who) {
    nde__jet_rec *r;
    if (ctx && ctx->status == NDE_OK && !b) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL jet", who); return NULL; }
    r = nde__jet_begin(ctx, nde__jet_addsub_kernel, a, b, NULL, 0, who);
    if (r) r->rarg[0] = sign;
    return nde__jet_run(ctx, r, NDE__JET_LINEAR);
}
NDE_API nde_jet *nde_jet_add(nde_ctx *ctx, nde_jet *a, nde_jet *b) { return nde__jet_addsub(ctx, a, b, NDE_R(1.0), "nde_jet_add"); }
NDE_API nde_jet *nde_jet_sub(nde_ctx *ctx, nde_jet *a, nde_jet *b) { return nde__jet_addsub(ctx, a, b, NDE_R(-1.0), "nde_jet_sub"); }

static void nde__jet_concat_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    int count = (int)r->iarg[0], i, any = 0;
    nde_jet **xs = (nde_jet **)r->extra;
    nde_tensor *parts[64];
    for (i = 0; i < count; i++) {
        parts[i] = nde__jet_in(ctx, xs[i], k, r->who);
        if (parts[i]) any = 1;
    }
    if (ctx->status != NDE_OK) return;
    if (!any) { r->out->c[k] = NULL; return; }
    for (i = 0; i < count; i++) if (!parts[i]) parts[i] = nde_tensor_zeros_like(ctx, xs[i]->c[0]);
    r->out->c[k] = nde_concat(ctx, count, parts, (int)r->iarg[1]);
}
NDE_API nde_jet *nde_jet_concat(nde_ctx *ctx, int count, nde_jet *const *xs, int axis) {
    nde__jet_rec *r; nde_jet **sv; int i;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (count < 1 || count > 64 || !xs) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_concat: count %d outside 1..64", count); return NULL; }
    for (i = 0; i < count; i++) if (!xs[i]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_concat: jet %d is NULL", i); return NULL; }
    r = nde__jet_begin(ctx, nde__jet_concat_kernel, xs[0], NULL, NULL, 0, "nde_jet_concat");
    sv = (nde_jet **)nde_ctx_alloc_host(ctx, (size_t)count * sizeof(nde_jet *));
    if (!r || !sv) return NULL;
    for (i = 0; i < count; i++) sv[i] = xs[i];
    r->extra = sv; r->iarg[0] = count; r->iarg[1] = axis;
    return nde__jet_finish(ctx, r, sv, count, NDE__JET_LINEAR);
}

/* ---- bilinear ops: Cauchy products */
enum { NDE__JB_MUL, NDE__JB_MATMUL, NDE__JB_CONV };
static nde_tensor *nde__jet_bilinear1(nde_ctx *ctx, const nde__jet_rec *r, nde_tensor *a, nde_tensor *b, nde_tensor *bias) {
    switch (r->iarg[0]) {
    case NDE__JB_MUL: return nde_mul(ctx, a, b);
    case NDE__JB_MATMUL: return nde_matmul(ctx, a, b, (int)r->iarg[1], (int)r->iarg[2]);
    default: return nde_conv2d(ctx, a, b, bias, (int)r->iarg[1], (int)r->iarg[2]);
    }
}
static void nde__jet_bilinear_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_real w[NDE_JET_MAX_ORDER + 1]; nde_tensor *t[NDE_JET_MAX_ORDER + 1], *bias, *sum;
    int j, n = 0;
    bias = nde__jet_in(ctx, r->in[2], k, r->who);
    if (k == 0) {
        r->out->c[0] = nde__jet_bilinear1(ctx, r, r->in[0]->c[0], r->in[1]->c[0], bias);
        return;
    }
    for (j = 0; j <= k; j++) {
        nde_tensor *a = nde__jet_in(ctx, r->in[0], j, r->who), *b = nde__jet_in(ctx, r->in[1], k - j, r->who);
        if (ctx->status != NDE_OK) return;
        if (!a || !b) continue;
        w[n] = NDE_R(1.0); t[n] = nde__jet_bilinear1(ctx, r, a, b, NULL); n++;
    }
    sum = nde__jet_sum_terms(ctx, n, w, t);
    if (bias) {   /* conv2d bias: (O) added per output channel of (N, O, OH, OW) */
        int64_t bs[4]; bs[0] = 1; bs[1] = bias->size; bs[2] = 1; bs[3] = 1;
        bias = nde_reshape(ctx, bias, 4, bs);
        sum = sum ? nde_add(ctx, sum, bias) : nde__jet_fit(ctx, bias, r->out->c[0]);
    }
    r->out->c[k] = sum;
}
static nde_jet *nde__jet_bilinear(nde_ctx *ctx, int op, nde_jet *a, nde_jet *b, nde_jet *bias, int i1, int i2, const char *who) {
    nde__jet_rec *r;
    if (ctx && ctx->status == NDE_OK && !b) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL jet", who); return NULL; }
    r = nde__jet_begin(ctx, nde__jet_bilinear_kernel, a, b, bias, 0, who);
    if (!r) return NULL;
    r->iarg[0] = op; r->iarg[1] = i1; r->iarg[2] = i2;
    return nde__jet_run(ctx, r, NDE__JET_BILINEAR);
}
NDE_API nde_jet *nde_jet_mul(nde_ctx *ctx, nde_jet *a, nde_jet *b) { return nde__jet_bilinear(ctx, NDE__JB_MUL, a, b, NULL, 0, 0, "nde_jet_mul"); }
NDE_API nde_jet *nde_jet_matmul(nde_ctx *ctx, nde_jet *a, nde_jet *b, int ta, int tb) { return nde__jet_bilinear(ctx, NDE__JB_MATMUL, a, b, NULL, ta, tb, "nde_jet_matmul"); }
NDE_API nde_jet *nde_jet_conv2d(nde_ctx *ctx, nde_jet *x, nde_jet *w, nde_jet *bias, int stride, int padding) {
    return nde__jet_bilinear(ctx, NDE__JB_CONV, x, w, bias, stride, padding, "nde_jet_conv2d");
}

/* ---- nonlinear ops: the recurrences of Griewank & Walther, Table 13.1/13.2 */
static void nde__jet_square_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    if (k == 0) { r->out->c[0] = nde_square(ctx, r->in[0]->c[0]); return; }
    if (!nde__jet_in(ctx, r->in[0], k, r->who) && ctx->status != NDE_OK) return;
    r->out->c[k] = nde__jet_self_cauchy(ctx, r->in[0], k, 0, NDE_R(1.0));
}
NDE_API nde_jet *nde_jet_square(nde_ctx *ctx, nde_jet *x) {
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_square_kernel, x, NULL, NULL, 0, "nde_jet_square"), NDE__JET_NONLINEAR);
}
/* v = a / b: v_k = (a_k - sum_{j=1..k} b_j v_{k-j}) / b_0 */
static void nde__jet_div_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_tensor *ak, *s;
    if (k == 0) { r->out->c[0] = nde_div(ctx, r->in[0]->c[0], r->in[1]->c[0]); return; }
    ak = nde__jet_in(ctx, r->in[0], k, r->who);
    s = nde__jet_cauchy(ctx, r->in[1], r->out, k, 1, k, 0, NDE_R(1.0), r->who);
    s = nde__jet_comb2(ctx, NDE_R(1.0), ak, NDE_R(-1.0), s);
    r->out->c[k] = s ? nde__jet_fit(ctx, nde_div(ctx, s, r->in[1]->c[0]), r->out->c[0]) : NULL;
}
NDE_API nde_jet *nde_jet_div(nde_ctx *ctx, nde_jet *a, nde_jet *b) {
    if (ctx && ctx->status == NDE_OK && !b) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_div: NULL jet"); return NULL; }
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_div_kernel, a, b, NULL, 0, "nde_jet_div"), NDE__JET_NONLINEAR);
}
/* v = exp(a): v_k = (1/k) sum_{j=1..k} j a_j v_{k-j} */
static void nde__jet_exp_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    if (k == 0) { r->out->c[0] = nde_exp(ctx, r->in[0]->c[0]); return; }
    r->out->c[k] = nde__jet_cauchy(ctx, r->in[0], r->out, k, 1, k, 1, NDE_R(1.0) / (nde_real)k, r->who);
}
NDE_API nde_jet *nde_jet_exp(nde_ctx *ctx, nde_jet *x) {
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_exp_kernel, x, NULL, NULL, 0, "nde_jet_exp"), NDE__JET_NONLINEAR);
}
/* v = log(a): v_k = (a_k - (1/k) sum_{j=1..k-1} j v_j a_{k-j}) / a_0 */
static void nde__jet_log_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_tensor *ak, *s;
    if (k == 0) { r->out->c[0] = nde_log(ctx, r->in[0]->c[0]); return; }
    ak = nde__jet_in(ctx, r->in[0], k, r->who);
    s = nde__jet_cauchy(ctx, r->out, r->in[0], k, 1, k - 1, 1, NDE_R(1.0) / (nde_real)k, r->who);
    s = nde__jet_comb2(ctx, NDE_R(1.0), ak, NDE_R(-1.0), s);
    r->out->c[k] = s ? nde_div(ctx, s, r->in[0]->c[0]) : NULL;
}
NDE_API nde_jet *nde_jet_log(nde_ctx *ctx, nde_jet *x) {
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_log_kernel, x, NULL, NULL, 0, "nde_jet_log"), NDE__JET_NONLINEAR);
}
/* v = sqrt(a): v_k = (a_k - sum_{j=1..k-1} v_j v_{k-j}) / (2 v_0) */
static void nde__jet_sqrt_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_tensor *ak, *s;
    if (k == 0) { r->out->c[0] = nde_sqrt(ctx, r->in[0]->c[0]); return; }
    ak = nde__jet_in(ctx, r->in[0], k, r->who);
    s = nde__jet_comb2(ctx, NDE_R(0.5), ak, NDE_R(-0.5), nde__jet_self_cauchy(ctx, r->out, k, 1, NDE_R(1.0)));
    r->out->c[k] = s ? nde_div(ctx, s, r->out->c[0]) : NULL;
}
NDE_API nde_jet *nde_jet_sqrt(nde_ctx *ctx, nde_jet *x) {
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_sqrt_kernel, x, NULL, NULL, 0, "nde_jet_sqrt"), NDE__JET_NONLINEAR);
}
/* s = sin(a), c = cos(a), computed together: s_k = (1/k) sum j a_j c_{k-j},
   c_k = -(1/k) sum j a_j s_{k-j}. out is sin (iarg 0) or cos (iarg 1), aux the other. */
static void nde__jet_sincos_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_jet *sn = r->iarg[0] ? r->aux[0] : r->out, *cs = r->iarg[0] ? r->out : r->aux[0];
    nde_tensor *snk, *csk;
    if (k == 0) {
        sn->c[0] = nde_sin(ctx, r->in[0]->c[0]);
        cs->c[0] = nde_cos(ctx, r->in[0]->c[0]);
        return;
    }
    snk = nde__jet_cauchy(ctx, r->in[0], cs, k, 1, k, 1, NDE_R(1.0) / (nde_real)k, r->who);
    csk = nde__jet_cauchy(ctx, r->in[0], sn, k, 1, k, 1, NDE_R(-1.0) / (nde_real)k, r->who);
    sn->c[k] = snk; cs->c[k] = csk;
}
static nde_jet *nde__jet_sincos(nde_ctx *ctx, nde_jet *x, int cosine, const char *who) {
    nde__jet_rec *r = nde__jet_begin(ctx, nde__jet_sincos_kernel, x, NULL, NULL, 1, who);
    if (r) r->iarg[0] = cosine;
    return nde__jet_run(ctx, r, NDE__JET_NONLINEAR);
}
NDE_API nde_jet *nde_jet_sin(nde_ctx *ctx, nde_jet *x) { return nde__jet_sincos(ctx, x, 0, "nde_jet_sin"); }
NDE_API nde_jet *nde_jet_cos(nde_ctx *ctx, nde_jet *x) { return nde__jet_sincos(ctx, x, 1, "nde_jet_cos"); }
/* v' = w a' with an auxiliary w = 1 - v^2 (tanh, iarg 0) or w = v - v^2
   (sigmoid, iarg 1): v_k = (1/k) sum_{j=1..k} j a_j w_{k-j}, then w_k from v. */
static void nde__jet_tanh_sigmoid_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    int sigm = (int)r->iarg[0];
    nde_jet *v = r->out, *w = r->aux[0];
    if (k == 0) {
        nde_tensor *v0 = sigm ? nde_sigmoid(ctx, r->in[0]->c[0]) : nde_tanh(ctx, r->in[0]->c[0]);
        nde_tensor *sq = nde_square(ctx, v0);
        v->c[0] = v0;
        w->c[0] = sigm ? nde_sub(ctx, v0, sq) : nde_add_scalar(ctx, nde_neg(ctx, sq), NDE_R(1.0));
        return;
    }
    v->c[k] = nde__jet_cauchy(ctx, r->in[0], w, k, 1, k, 1, NDE_R(1.0) / (nde_real)k, r->who);
    v->order = k;   /* the square below reads v_k */
    w->c[k] = nde__jet_comb2(ctx, NDE_R(1.0), sigm ? v->c[k] : NULL, NDE_R(-1.0), nde__jet_self_cauchy(ctx, v, k, 0, NDE_R(1.0)));
}
static nde_jet *nde__jet_tanh_sigmoid(nde_ctx *ctx, nde_jet *x, int sigm, const char *who) {
    nde__jet_rec *r = nde__jet_begin(ctx, nde__jet_tanh_sigmoid_kernel, x, NULL, NULL, 1, who);
    if (r) r->iarg[0] = sigm;
    return nde__jet_run(ctx, r, NDE__JET_NONLINEAR);
}
NDE_API nde_jet *nde_jet_tanh(nde_ctx *ctx, nde_jet *x) { return nde__jet_tanh_sigmoid(ctx, x, 0, "nde_jet_tanh"); }
NDE_API nde_jet *nde_jet_sigmoid(nde_ctx *ctx, nde_jet *x) { return nde__jet_tanh_sigmoid(ctx, x, 1, "nde_jet_sigmoid"); }
/* softplus' = sigmoid: v_k = (1/k) sum_{j=1..k} j a_j sigma_{k-j}, sigma = in[1]. */
static void nde__jet_softplus_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    if (k == 0) { r->out->c[0] = nde_softplus(ctx, r->in[0]->c[0]); return; }
    r->out->c[k] = nde__jet_cauchy(ctx, r->in[0], r->in[1], k, 1, k, 1, NDE_R(1.0) / (nde_real)k, r->who);
}
NDE_API nde_jet *nde_jet_softplus(nde_ctx *ctx, nde_jet *x) {
    nde_jet *sg = nde_jet_sigmoid(ctx, x);
    return nde__jet_run(ctx, nde__jet_begin(ctx, nde__jet_softplus_kernel, x, sg, NULL, 0, "nde_jet_softplus"), NDE__JET_NONLINEAR);
}
/* f'(x) elementwise as a constant tensor, through the backend's backward map. */
static nde_tensor *nde__jet_slope(nde_ctx *ctx, nde_unary_op op, nde_tensor *x, nde_real alpha) {
    nde_tensor *one = nde_tensor_full(ctx, x->ndim, x->shape, NDE_R(1.0));
    nde_tensor *m = nde_tensor_zeros(ctx, x->ndim, x->shape);
    if (!one || !m) return NULL;
    ctx->be->unary_backward(ctx->be->self, op, x->size, x->data, x->data, one->data, alpha, m->data);
    return m;
}
/* Piecewise linear maps (relu, leaky_relu, abs): v_k = f'(a_0) a_k. elu:
   v_k = m a_k + alpha (1 - m) e_k with m = [a_0 > 0] and e = exp(a) (in[1]).
   The constant masks are kept in extra: {f'(a_0) or m, alpha (1 - m)}. */
static void nde__jet_piecewise_kernel(nde_ctx *ctx, nde__jet_rec *r, int k) {
    nde_unary_op op = (nde_unary_op)r->iarg[0];
    nde_tensor *a0 = r->in[0]->c[0], *ak, **mask = (nde_tensor **)r->extra;
    if (k == 0) {
        switch (op) {
        case NDE_UNARY_RELU: r->out->c[0] = nde_relu(ctx, a0); break;
        case NDE_UNARY_LEAKY_RELU: r->out->c[0] = nde_leaky_relu(ctx, a0, r->rarg[0]); break;
        case NDE_UNARY_ELU: r->out->c[0] = nde_elu(ctx, a0, r->rarg[0]); break;
        default: r->out->c[0] = nde_abs(ctx, a0); break;
        }
        mask[0] = nde__jet_slope(ctx, op == NDE_UNARY_ELU ? NDE_UNARY_RELU : op, a0, r->rarg[0]);
        if (op == NDE_UNARY_ELU && mask[0]) {
            mask[1] = nde_tensor_new(ctx, a0->ndim, a0->shape);
            if (!mask[1]) return;
            ctx->be->unary(ctx->be->self, NDE_UNARY_ADD_SCALAR, a0->size, mask[0]->data, NDE_R(-1.0), mask[1]->data);
            ctx->be->unary(ctx->be->self, NDE_UNARY_SCALE, a0->size, mask[1]->data, -r->rarg[0], mask[1]->data);
        }
        return;
    }
    ak = nde__jet_in(ctx, r->in[0], k, r->who);
    if (op != NDE_UNARY_ELU) { r->out->c[k] = ak ? nde_mul(ctx, ak, mask[0]) : NULL; return; }
    {
        nde_tensor *ek = nde__jet_in(ctx, r->in[1], k, r->who);
        r->out->c[k] = nde__jet_comb2(ctx, NDE_R(1.0), ak ? nde_mul(ctx, ak, mask[0]) : NULL,
                                      NDE_R(1.0), ek ? nde_mul(ctx, ek, mask[1]) : NULL);
    }
}
static nde_jet *nde__jet_piecewise(nde_ctx *ctx, nde_jet *x, nde_unary_op op, nde_real alpha, const char *who) {
    nde_jet *e = op == NDE_UNARY_ELU ? nde_jet_exp(ctx, x) : NULL;
    nde__jet_rec *r = nde__jet_begin(ctx, nde__jet_piecewise_kernel, x, e, NULL, 0, who);
    nde_tensor **mask = (nde_tensor **)nde_ctx_alloc_host(ctx, 2 * sizeof(nde_tensor *));
    if (!r || !mask) return NULL;
    mask[0] = mask[1] = NULL;
    r->iarg[0] = op; r->rarg[0] = alpha; r->extra = mask;
    return nde__jet_run(ctx, r, NDE__JET_NONLINEAR);
}
NDE_API nde_jet *nde_jet_relu(nde_ctx *ctx, nde_jet *x) { return nde__jet_piecewise(ctx, x, NDE_UNARY_RELU, 0, "nde_jet_relu"); }
NDE_API nde_jet *nde_jet_leaky_relu(nde_ctx *ctx, nde_jet *x, nde_real slope) { return nde__jet_piecewise(ctx, x, NDE_UNARY_LEAKY_RELU, slope, "nde_jet_leaky_relu"); }
NDE_API nde_jet *nde_jet_elu(nde_ctx *ctx, nde_jet *x, nde_real alpha) { return nde__jet_piecewise(ctx, x, NDE_UNARY_ELU, alpha, "nde_jet_elu"); }
NDE_API nde_jet *nde_jet_abs(nde_ctx *ctx, nde_jet *x) { return nde__jet_piecewise(ctx, x, NDE_UNARY_ABS, 0, "nde_jet_abs"); }

/* x^n: binary powering with Cauchy products; 1 / x^|n| for n < 0. */
NDE_API nde_jet *nde_jet_powi(nde_ctx *ctx, nde_jet *x, int n) {
    nde_jet *result = NULL, *base = x; int e = n < 0 ? -n : n;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!x || !x->c[0]) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_powi: NULL jet"); return NULL; }
    if (e == 0) return nde_jet_const(ctx, nde_tensor_full(ctx, x->c[0]->ndim, x->c[0]->shape, NDE_R(1.0)), x->order);
    while (e) {
        if (e & 1) result = result ? nde_jet_mul(ctx, result, base) : base;
        e >>= 1;
        if (e) base = nde_jet_square(ctx, base);
    }
    if (n < 0) result = nde_jet_div(ctx, nde_jet_const(ctx, nde_tensor_scalar(ctx, NDE_R(1.0)), x->order), result);
    return result;
}
NDE_API nde_jet *nde_jet_activate(nde_ctx *ctx, nde_jet *x, nde_activation act) {
    switch (act) {
    case NDE_ACT_NONE: return x;
    case NDE_ACT_TANH: return nde_jet_tanh(ctx, x);
    case NDE_ACT_RELU: return nde_jet_relu(ctx, x);
    case NDE_ACT_SIGMOID: return nde_jet_sigmoid(ctx, x);
    case NDE_ACT_SOFTPLUS: return nde_jet_softplus(ctx, x);
    case NDE_ACT_ELU: return nde_jet_elu(ctx, x, NDE_R(1.0));
    case NDE_ACT_LEAKY_RELU: return nde_jet_leaky_relu(ctx, x, NDE_R(0.01));
    case NDE_ACT_SIN: return nde_jet_sin(ctx, x);
    }
    nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_activate: unknown activation %d", (int)act);
    return NULL;
}

/* Group norm composed from the rules above: mean over each group, centring,
   biased variance, 1/sqrt(var + eps) (as nde_group_norm), so it is exact. */
NDE_API nde_jet *nde_jet_group_norm(nde_ctx *ctx, nde_jet *x, int groups, nde_jet *gamma, nde_jet *beta, nde_real eps) {
    const nde_tensor *x0; int64_t s3[3], sc[NDE_MAX_DIMS], xs[NDE_MAX_DIMS]; int i;
    nde_jet *xr, *mu, *d, *var, *rstd, *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    x0 = x ? x->c[0] : NULL;
    if (!x0 || x0->ndim < 2 || groups < 1 || x0->shape[1] % groups != 0) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_jet_group_norm: x %s needs (N,C,...) with C divisible by groups = %d",
                     nde_shape_str(x0, s1, sizeof s1), groups);
        return NULL;
    }
    for (i = 0; i < x0->ndim; i++) { xs[i] = x0->shape[i]; sc[i] = 1; }
    sc[1] = x0->shape[1];
    s3[0] = x0->shape[0]; s3[1] = groups; s3[2] = x0->size / (x0->shape[0] * groups);
    xr = nde_jet_reshape(ctx, x, 3, s3);
    mu = nde_jet_mean_axis(ctx, xr, 2, 1);
    d = nde_jet_sub(ctx, xr, mu);
    var = nde_jet_mean_axis(ctx, nde_jet_square(ctx, d), 2, 1);
    rstd = nde_jet_powi(ctx, nde_jet_sqrt(ctx, nde_jet_add_scalar(ctx, var, eps)), -1);
    y = nde_jet_reshape(ctx, nde_jet_mul(ctx, d, rstd), x0->ndim, xs);
    if (gamma) y = nde_jet_mul(ctx, y, nde_jet_reshape(ctx, gamma, x0->ndim, sc));
    if (beta) y = nde_jet_add(ctx, y, nde_jet_reshape(ctx, beta, x0->ndim, sc));
    return y;
}

/* ---- layers on jets */
NDE_API nde_jet *nde_jet_linear_forward(nde_ctx *ctx, const nde_linear *l, nde_jet *x) {
    nde_jet *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!l || !x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_linear_forward: NULL layer or jet"); return NULL; }
    y = nde_jet_matmul(ctx, x, nde_jet_param(ctx, l->weight, x->order), 0, 1);
    return l->bias ? nde_jet_add(ctx, y, nde_jet_param(ctx, l->bias, x->order)) : y;
}
NDE_API nde_jet *nde_jet_mlp_forward(nde_ctx *ctx, const nde_mlp *m, nde_jet *x) {
    int i;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!m) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_mlp_forward: NULL network"); return NULL; }
    for (i = 0; i < m->num_layers; i++) {
        x = nde_jet_linear_forward(ctx, &m->layer[i], x);
        if (i + 1 < m->num_layers) x = nde_jet_activate(ctx, x, m->act);
    }
    return x;
}
NDE_API nde_jet *nde_jet_conv2d_forward(nde_ctx *ctx, const nde_conv2d_layer *l, nde_jet *x) {
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!l || !x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_conv2d_forward: NULL layer or jet"); return NULL; }
    return nde_jet_conv2d(ctx, x, nde_jet_param(ctx, l->weight, x->order),
                          l->bias ? nde_jet_param(ctx, l->bias, x->order) : NULL, l->stride, l->padding);
}

/* ---- forward mode */
NDE_API nde_status nde_jvp(nde_ctx *ctx, nde_jet_fn f, void *user, nde_tensor *x, nde_tensor *v,
                           nde_tensor **y, nde_tensor **jv) {
    nde_tensor *c[2]; nde_jet *xj, *yj;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!f || !x || !v) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jvp: NULL function, point or direction");
    c[0] = x; c[1] = v;
    xj = nde_jet_new(ctx, 1, c);
    if (!xj) return ctx->status;
    yj = f(ctx, xj, user);
    if (!yj) return ctx->status ? ctx->status : nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_jvp: the function returned NULL");
    if (y) *y = yj->c[0];
    if (jv) *jv = nde_jet_coeff(ctx, yj, 1);
    return ctx->status;
}

/* ---- ODE time derivatives */
static nde_jet *nde__ode_coeffs(nde_ctx *ctx, nde_jet_field f, void *user, nde_tensor *t, nde_tensor *z, int order,
                                const char *who) {
    nde_jet *zj, *tj, *y; nde__jet_rec *head; nde_tensor *one; int k;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!f || !z || !t) { nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL field, time or state", who); return NULL; }
    if (order < 0 || order > NDE_JET_MAX_ORDER) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: order %d outside 0..%d (NDE_JET_MAX_ORDER)", who, order, NDE_JET_MAX_ORDER);
        return NULL;
    }
    if (ctx->jet_recording) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: called inside a jet field that is being expanded (nesting is not supported)", who);
        return NULL;
    }
    zj = nde_jet_new(ctx, 0, &z);
    tj = nde_jet_new(ctx, 0, &t);
    one = nde_tensor_full(ctx, t->ndim, t->shape, NDE_R(1.0));
    if (!zj || !tj || !one || order == 0) return zj;
    /* evaluate f once at order 0, recording its jet ops */
    ctx->jet_recording = 1; ctx->jet_rec_head = ctx->jet_rec_tail = NULL;
    y = f(ctx, tj, zj, user);
    head = ctx->jet_rec_head;
    ctx->jet_recording = 0; ctx->jet_rec_head = ctx->jet_rec_tail = NULL;
    if (!y) {
        if (ctx->status == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "%s: the field returned NULL", who);
        return NULL;
    }
    if (!y->c[0] || y->c[0]->size != z->size) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the field returned %s for a state %s", who,
                     nde_shape_str(y->c[0], s1, sizeof s1), nde_shape_str(z, s2, sizeof s2));
        return NULL;
    }
    /* z_{k+1} = [f(t + s, z(s))]_k / (k + 1), extending the recorded program one order at a time */
    for (k = 0; k < order && ctx->status == NDE_OK; k++) {
        nde_tensor *yk;
        if (k > 0) nde__jet_replay(ctx, head, k);
        yk = nde__jet_in(ctx, y, k, who);
        if (ctx->status != NDE_OK) break;
        if (yk && !nde_tensor_same_shape(yk, z)) yk = nde_reshape(ctx, yk, z->ndim, z->shape);
        zj->c[k + 1] = yk ? nde_scale(ctx, yk, NDE_R(1.0) / (nde_real)(k + 1)) : NULL;
        zj->order = k + 1;
        tj->c[k + 1] = k == 0 ? one : NULL;
        tj->order = k + 1;
    }
    return ctx->status == NDE_OK ? zj : NULL;
}
NDE_API nde_jet *nde_ode_taylor_coeffs(nde_ctx *ctx, nde_jet_field f, void *user, nde_real t, nde_tensor *z, int order) {
    return nde__ode_coeffs(ctx, f, user, nde_tensor_scalar(ctx, t), z, order, "nde_ode_taylor_coeffs");
}
NDE_API nde_tensor *nde_jet_field_eval(nde_ctx *ctx, nde_jet_field f, void *user, nde_real t, nde_tensor *z) {
    nde_jet *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!f || !z) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_field_eval: NULL field or state"); return NULL; }
    y = f(ctx, nde_jet_const(ctx, nde_tensor_scalar(ctx, t), 0), nde_jet_new(ctx, 0, &z), user);
    if (!y && ctx->status == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_jet_field_eval: the field returned NULL");
    return y ? y->c[0] : NULL;
}

/* ---- TayNODE regulariser (Kelly et al. 2020) */
NDE_API nde_tensor *nde_taynode_integrand(nde_ctx *ctx, const nde_jet *zc, int K) {
    nde_tensor *c;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!zc || !zc->c[0] || K < 0 || (K > zc->order && !zc->closed)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taynode_integrand: K = %d needs a coefficient jet of order >= K (have %d)",
                     K, zc ? zc->order : -1);
        return NULL;
    }
    c = nde__jc(zc, K);
    if (!c) return nde_tensor_scalar(ctx, NDE_R(0.0));
    return nde_mean(ctx, nde_square(ctx, nde_scale(ctx, c, nde__factorial(K))));   /* mean((d^K z/dt^K)^2) */
}
NDE_API nde_tensor *nde_taynode_reg(nde_ctx *ctx, nde_jet_field f, void *user, int K, int count,
                                    const nde_real *ts, nde_tensor *const *zs) {
    nde_real w[2]; nde_tensor *g[2], *acc = NULL, *prev = NULL; int i;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (count < 2 || !ts || !zs || K < 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taynode_reg: need K >= 1 and at least 2 points (K = %d, count = %d)", K, count);
        return NULL;
    }
    for (i = 0; i < count && ctx->status == NDE_OK; i++) {
        nde_tensor *gi = nde_taynode_integrand(ctx, nde_ode_taylor_coeffs(ctx, f, user, ts[i], zs[i], K), K);
        if (i > 0) {
            /* trapezoid: (t_i - t_{i-1}) (g_{i-1} + g_i) / 2 */
            nde_real h = ts[i] - ts[i - 1];
            nde_tensor *piece;
            w[0] = w[1] = NDE_R(0.5) * h; g[0] = prev; g[1] = gi;
            piece = nde_lincomb(ctx, 2, w, g);
            acc = acc ? nde_add(ctx, acc, piece) : piece;
        }
        prev = gi;
    }
    return ctx->status == NDE_OK ? acc : NULL;
}
/* Gauss-Legendre nodes and weights on [0, 1] (Newton on P_n, in double). */
static void nde__gauss_legendre01(int n, double *x, double *w) {
    int i, it;
    for (i = 0; i < n; i++) {
        double r = cos(3.141592653589793 * ((double)i + 0.75) / ((double)n + 0.5)), dp = 1.0;
        for (it = 0; it < 100; it++) {
            double p0 = 1.0, p1 = r, dr; int j;
            for (j = 2; j <= n; j++) { double p2 = ((2.0 * j - 1.0) * r * p1 - (j - 1.0) * p0) / j; p0 = p1; p1 = p2; }
            if (n == 1) { p1 = r; p0 = 1.0; }
            dp = n * (r * p1 - p0) / (r * r - 1.0);
            dr = p1 / dp;
            r -= dr;
            if (fabs(dr) < 1e-16) break;
        }
        {   /* recompute the derivative at the converged root */
            double p0 = 1.0, p1 = r; int j;
            for (j = 2; j <= n; j++) { double p2 = ((2.0 * j - 1.0) * r * p1 - (j - 1.0) * p0) / j; p0 = p1; p1 = p2; }
            dp = n * (r * p1 - p0) / (r * r - 1.0);
        }
        x[i] = 0.5 * (1.0 + r);
        w[i] = 1.0 / ((1.0 - r * r) * dp * dp);   /* 2/((1-r^2) P'^2) mapped to [0,1] */
    }
}
NDE_API nde_tensor *nde_taynode_step_integral(nde_ctx *ctx, const nde_jet *zc, int K, nde_real h) {
    double x[NDE_JET_MAX_ORDER + 1], wq[NDE_JET_MAX_ORDER + 1];
    nde_real gw[NDE_JET_MAX_ORDER + 1];
    nde_tensor *gs[NDE_JET_MAX_ORDER + 1];
    int p, n, i, k;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!zc || !zc->c[0] || K < 0 || K > zc->order) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taynode_step_integral: K = %d needs a coefficient jet of order >= K (have %d)",
                     K, zc ? zc->order : -1);
        return NULL;
    }
    p = zc->order;
    n = p - K + 1;   /* the integrand has degree 2 (p - K) <= 2n - 1 */
    nde__gauss_legendre01(n, x, wq);
    for (i = 0; i < n; i++) {
        /* d^K/ds^K sum_k z_k s^k = sum_{k>=K} k!/(k-K)! z_k s^(k-K) at s = h x_i */
        nde_real w[NDE_JET_MAX_ORDER + 1]; double s = (double)h * x[i], sp = 1.0;
        for (k = K; k <= p; k++) {
            w[k - K] = (nde_real)(sp * (double)nde__factorial(k) / (double)nde__factorial(k - K));
            sp *= s;
        }
        {
            nde_tensor *d = nde__jet_sum_terms(ctx, n, w, (nde_tensor *const *)(zc->c + K));
            gs[i] = d ? nde_mean(ctx, nde_square(ctx, d)) : NULL;
        }
        gw[i] = (nde_real)(wq[i] * (double)h);
    }
    {
        nde_tensor *r = nde__jet_sum_terms(ctx, n, gw, gs);
        return r ? r : (ctx->status == NDE_OK ? nde_tensor_scalar(ctx, NDE_R(0.0)) : NULL);
    }
}

/* ---- Taylor-Lagrange step (TayLaNets, Djeumou et al. 2022) */
NDE_API nde_tayla_options nde_tayla_options_default(void) {
    nde_tayla_options o;
    memset(&o, 0, sizeof o);
    o.order = 1; o.n_steps = 1;
    return o;
}
NDE_API nde_tensor *nde_tayla_step(nde_ctx *ctx, nde_jet_field f, void *user, const nde_tayla_options *o,
                                   nde_real t, nde_real h, nde_tensor *z, nde_tensor **remainder) {
    nde_jet *zc, *rc; nde_tensor *T, *g, *gam, *tm, *xi, *R, *ck; int K;
    if (remainder) *remainder = NULL;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    K = o ? o->order : 0;
    if (!o || !z || K < 1 || K >= NDE_JET_MAX_ORDER) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tayla_step: NULL options or state, or order K = %d outside 1..%d", K,
                     NDE_JET_MAX_ORDER - 1);
        return NULL;
    }
    zc = nde__ode_coeffs(ctx, f, user, nde_tensor_scalar(ctx, t), z, K, "nde_tayla_step");
    T = zc ? nde_jet_eval(ctx, zc, h) : NULL;          /* sum_{i<=K} h^i z_i */
    if (!T || !o->midpoint) return T;
    g = o->midpoint(ctx, z, o->midpoint_user);
    if (!g) {
        if (ctx->status == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_tayla_step: the midpoint function returned NULL");
        return NULL;
    }
    if (g->size == z->size) {
        gam = nde__jet_fit(ctx, g, z);
        tm = nde_tensor_scalar(ctx, t + NDE_R(0.5) * h);
    } else if (z->ndim == 2 && g->ndim == 2 && g->shape[0] == z->shape[0] && g->shape[1] == z->shape[1] + 1) {
        gam = nde_slice(ctx, g, 1, 0, z->shape[1]);
        tm = nde_add_scalar(ctx, nde_scale(ctx, nde_sigmoid(ctx, nde_slice(ctx, g, 1, z->shape[1], z->shape[1] + 1)), h), t);
    } else {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_tayla_step: the midpoint returned %s for a state %s (need the state's "
                     "shape, or (batch, n + 1) with a time column)", nde_shape_str(g, s1, sizeof s1), nde_shape_str(z, s2, sizeof s2));
        return NULL;
    }
    if (!o->midpoint_unbounded) gam = nde_sigmoid(ctx, gam);
    xi = nde_add(ctx, z, nde_mul(ctx, gam, nde_sub(ctx, T, z)));
    rc = nde__ode_coeffs(ctx, f, user, tm, xi, K + 1, "nde_tayla_step");
    ck = rc ? nde_jet_coeff(ctx, rc, K + 1) : NULL;
    R = ck ? nde_scale(ctx, ck, (nde_real)pow((double)h, (double)(K + 1))) : NULL;   /* h^(K+1) z_{K+1}(xi) */
    if (!R) return NULL;
    if (remainder) *remainder = R;
    return nde_add(ctx, T, R);
}
NDE_API nde_tensor *nde_tayla_solve(nde_ctx *ctx, nde_jet_field f, void *user, const nde_tayla_options *o,
                                    nde_real t0, nde_real t1, nde_tensor *z0, nde_tensor **remainder_l1) {
    nde_tensor *z = z0, *acc = NULL; nde_real h; int i; int64_t batch;
    if (remainder_l1) *remainder_l1 = NULL;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!o || !z0 || o->n_steps < 1 || o->order < 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tayla_solve: need options with order >= 1 and n_steps >= 1 (order %d, n_steps %d)",
                     o ? o->order : -1, o ? o->n_steps : -1);
        return NULL;
    }
    h = (t1 - t0) / (nde_real)o->n_steps;
    batch = z0->ndim >= 2 ? z0->shape[0] : 1;
    for (i = 0; i < o->n_steps && z; i++) {
        nde_tensor *R = NULL;
        z = nde_tayla_step(ctx, f, user, o, t0 + (nde_real)i * h, h, z, remainder_l1 ? &R : NULL);
        if (R) { nde_tensor *s = nde_sum(ctx, nde_abs(ctx, R)); acc = acc ? nde_add(ctx, acc, s) : s; }
    }
    if (remainder_l1 && acc) *remainder_l1 = nde_scale(ctx, acc, NDE_R(1.0) / (nde_real)(batch * o->n_steps));
    return ctx->status == NDE_OK ? z : NULL;
}

/* ---- Taylorized models (Bai et al. 2020) */
NDE_API nde_status nde_taylorized_snapshot(nde_ctx *ctx, nde_taylorized *tz) {
    if (!tz || !tz->theta0) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_snapshot: not initialised");
    if (tz->count != ctx->param_count)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_snapshot: %lld parameters now, %lld at nde_taylorized_init",
                            (long long)ctx->param_count, (long long)tz->count);
    if (tz->count) ctx->be->copy(ctx->be->self, tz->theta0, ctx->param_data, (size_t)tz->count * sizeof(nde_real), NDE_COPY_DEVICE);
    return NDE_OK;
}
NDE_API nde_status nde_taylorized_init(nde_ctx *ctx, nde_taylorized *tz, int order) {
    if (!ctx) return NDE_ERR_ARG;
    if (!tz || order < 1 || order > NDE_JET_MAX_ORDER)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_init: order %d outside 1..%d", order, NDE_JET_MAX_ORDER);
    memset(tz, 0, sizeof *tz);
    tz->order = order;
    tz->count = ctx->param_count;
    tz->theta0 = (nde_real *)ctx->be->alloc(ctx->be->self, (size_t)(tz->count ? tz->count : 1) * sizeof(nde_real));
    if (!tz->theta0) return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_taylorized_init: out of memory for %lld parameters", (long long)tz->count);
    return nde_taylorized_snapshot(ctx, tz);
}
NDE_API void nde_taylorized_free(nde_ctx *ctx, nde_taylorized *tz) {
    if (!ctx || !tz) return;
    if (tz->theta0) ctx->be->free(ctx->be->self, tz->theta0);
    memset(tz, 0, sizeof *tz);
}
NDE_API nde_tensor *nde_taylorized_forward(nde_ctx *ctx, const nde_taylorized *tz, nde_jet_fn f, void *user, nde_tensor *x) {
    const nde_real *prev; nde_jet *y;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (!tz || !tz->theta0 || !f || !x) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_forward: NULL expansion, function or input"); return NULL; }
    if (tz->count != ctx->param_count) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_forward: %lld parameters now, %lld in the snapshot",
                     (long long)ctx->param_count, (long long)tz->count);
        return NULL;
    }
    prev = ctx->jet_theta0;
    ctx->jet_theta0 = tz->theta0;
    y = f(ctx, nde_jet_const(ctx, x, tz->order), user);
    ctx->jet_theta0 = prev;
    if (!y) {
        if (ctx->status == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_taylorized_forward: the function returned NULL");
        return NULL;
    }
    if (y->order < tz->order && !y->closed) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taylorized_forward: the function returned a jet of order %d < %d", y->order, tz->order);
        return NULL;
    }
    return nde_jet_eval(ctx, y, NDE_R(1.0));   /* sum_j D^j f [dtheta]^j / j! */
}

/* ------------------------------------------------------------ optimizers */
static nde_optimizer nde__opt_base(nde_optimizer_kind kind, double lr) {
    nde_optimizer o;
    memset(&o, 0, sizeof o);
    o.kind = kind; o.lr = lr;
    o.alpha = 0.99; o.beta1 = 0.9; o.beta2 = 0.999; o.eps = 1e-8;
    o.schedule.kind = NDE_SCHED_CONSTANT; o.schedule.lr_init = lr; o.schedule.lr_end = lr; o.schedule.factor = 0.1;
    return o;
}
NDE_API nde_optimizer nde_sgd(double lr, double momentum, int nesterov) {
    nde_optimizer o = nde__opt_base(NDE_OPT_SGD, lr); o.momentum = momentum; o.nesterov = nesterov; return o;
}
NDE_API nde_optimizer nde_rmsprop(double lr) { return nde__opt_base(NDE_OPT_RMSPROP, lr); }
NDE_API nde_optimizer nde_adam(double lr) { return nde__opt_base(NDE_OPT_ADAM, lr); }
NDE_API nde_optimizer nde_adamw(double lr, double wd) { nde_optimizer o = nde__opt_base(NDE_OPT_ADAMW, lr); o.weight_decay = wd; return o; }

NDE_API double nde_schedule_lr(const nde_schedule *s, int64_t step) {
    double frac;
    switch (s->kind) {
    case NDE_SCHED_CONSTANT: return s->lr_init;
    case NDE_SCHED_EXPONENTIAL:
        /* lr_init * (lr_end/lr_init)^(step/steps), clamped at lr_end */
        if (s->steps <= 0 || step >= s->steps) return s->lr_end;
        return s->lr_init * pow(s->lr_end / s->lr_init, (double)step / (double)s->steps);
    case NDE_SCHED_COSINE:
        if (s->steps <= 0 || step >= s->steps) return s->lr_end;
        frac = (double)step / (double)s->steps;
        return s->lr_end + 0.5 * (s->lr_init - s->lr_end) * (1.0 + cos(3.141592653589793 * frac));
    case NDE_SCHED_PIECEWISE: {
        double lr = s->lr_init; int i;
        for (i = 0; i < s->num_milestones && i < NDE_SCHED_MAX_MILESTONES; i++) if (step >= s->milestones[i]) lr *= s->factor;
        return lr;
    }
    }
    return s->lr_init;
}
NDE_API double nde_optimizer_lr(const nde_optimizer *o) {
    return o->schedule.kind == NDE_SCHED_CONSTANT ? o->lr : nde_schedule_lr(&o->schedule, o->step);
}

/* Parameters [i, returned index) share parameter i's trainable flag and are
   contiguous in the flat store from *off, *len reals: one kernel (and on a device
   one host read) per run instead of one per parameter. */
static int nde__param_run(const nde_ctx *ctx, int i, int64_t *off, int64_t *len) {
    int j;
    *off = ctx->params[i].offset;
    *len = 0;
    for (j = i; j < ctx->num_params && ctx->params[j].trainable == ctx->params[i].trainable; j++)
        *len += ctx->params[j].tensor->size;
    return j;
}
NDE_API double nde_grad_norm(nde_ctx *ctx) {
    double s = 0.0; int i, j;
    int64_t off, len;
    for (i = 0; i < ctx->num_params; i = j) {
        j = nde__param_run(ctx, i, &off, &len);
        if (ctx->params[i].trainable) s += ctx->be->dot(ctx->be->self, len, ctx->param_grad + off, ctx->param_grad + off);
    }
    return sqrt(s);
}
NDE_API double nde_clip_grad_norm(nde_ctx *ctx, double max_norm) {
    double norm = nde_grad_norm(ctx);
    if (max_norm > 0 && norm > max_norm) {
        nde_real c = (nde_real)(max_norm / (norm + 1e-6)); int i, j;
        int64_t off, len;
        for (i = 0; i < ctx->num_params; i = j) {
            j = nde__param_run(ctx, i, &off, &len);
            if (ctx->params[i].trainable)
                ctx->be->unary(ctx->be->self, NDE_UNARY_SCALE, len, ctx->param_grad + off, c, ctx->param_grad + off);
        }
    }
    return norm;
}

static nde_status nde__opt_state(nde_ctx *ctx, int need_v) {
    size_t bytes = (size_t)(ctx->param_count ? ctx->param_count : 1) * sizeof(nde_real);
    if (!ctx->opt_m) {
        ctx->opt_m = (nde_real *)nde__raw_alloc(ctx->data.backend, bytes);
        if (!ctx->opt_m) return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_optimizer_step: out of memory for optimizer state");
        ctx->be->fill(ctx->be->self, ctx->param_count, NDE_R(0.0), ctx->opt_m);
    }
    if (need_v && !ctx->opt_v) {
        ctx->opt_v = (nde_real *)nde__raw_alloc(ctx->data.backend, bytes);
        if (!ctx->opt_v) return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_optimizer_step: out of memory for optimizer state");
        ctx->be->fill(ctx->be->self, ctx->param_count, NDE_R(0.0), ctx->opt_v);
    }
    return NDE_OK;
}

NDE_API nde_real *nde_optimizer_state(nde_ctx *ctx, int which) {
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (which != 0 && which != 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_optimizer_state: which is %d, must be 0 or 1", which);
        return NULL;
    }
    if (nde__opt_state(ctx, which == 1) != NDE_OK) return NULL;
    return which ? ctx->opt_v : ctx->opt_m;
}

NDE_API nde_status nde_optimizer_step(nde_ctx *ctx, nde_optimizer *o) {
    double lr; int i, j;
    const nde_backend *be = ctx->be;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!o) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_optimizer_step: NULL optimizer");
    if ((o->kind == NDE_OPT_SGD && !be->sgd_step) || (o->kind == NDE_OPT_RMSPROP && !be->rmsprop_step))
        return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_optimizer_step: backend '%s' has no %s kernel; use Adam",
                            be->name, o->kind == NDE_OPT_SGD ? "SGD" : "RMSprop");
    if (o->clip_grad_norm > 0) o->last_grad_norm = nde_clip_grad_norm(ctx, o->clip_grad_norm);
    lr = nde_optimizer_lr(o);
    if (nde__opt_state(ctx, o->kind != NDE_OPT_SGD) != NDE_OK) return ctx->status;
    o->step++;
    /* One kernel per run of consecutive trainable parameters (they are contiguous in the
       flat store; with nothing frozen that is a single call). */
    for (i = 0; i < ctx->num_params; i = j) {
        int64_t off, n;
        j = nde__param_run(ctx, i, &off, &n);
        if (!ctx->params[i].trainable) continue;
        switch (o->kind) {
        case NDE_OPT_SGD:
            be->sgd_step(be->self, n, ctx->param_data + off, ctx->param_grad + off, ctx->opt_m + off, lr,
                         o->momentum, o->dampening, o->nesterov, o->weight_decay, o->step == 1);
            break;
        case NDE_OPT_RMSPROP:
            be->rmsprop_step(be->self, n, ctx->param_data + off, ctx->param_grad + off, ctx->opt_v + off,
                             ctx->opt_m + off, lr, o->alpha, o->eps, o->momentum, o->weight_decay);
            break;
        case NDE_OPT_ADAM:
        case NDE_OPT_ADAMW:
            be->adam_step(be->self, n, ctx->param_data + off, ctx->param_grad + off, ctx->opt_m + off,
                          ctx->opt_v + off, lr, o->beta1, o->beta2, o->eps, o->weight_decay,
                          1.0 - pow(o->beta1, (double)o->step), 1.0 - pow(o->beta2, (double)o->step),
                          o->kind == NDE_OPT_ADAMW);
            break;
        }
    }
    return ctx->status;
}

/* ------------------------------------------------------------ I/O
   NDE_SECTION_IO: parameters as safetensors, arrays as .npy, IDX (MNIST).
   Readers take the file size first and check every length and offset against
   it before allocating or reading; every problem is NDE_ERR_FORMAT (content)
   or NDE_ERR_IO (the operating system said no) with a message naming the file.
   Writers go to "<path>.tmp.<pid>.<ctx>" and rename() it over path only after
   fflush and fclose succeeded, so a failed save leaves the old file intact.
   Scratch buffers come from NDE_MALLOC and are freed before returning. */
#ifdef NDE_NO_STDIO
NDE_API nde_status nde_save_params(nde_ctx *ctx, const char *path) {
    (void)path; return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_save_params: built with NDE_NO_STDIO");
}
NDE_API nde_status nde_load_params(nde_ctx *ctx, const char *path) {
    (void)path; return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_load_params: built with NDE_NO_STDIO");
}
NDE_API nde_status nde_save_npy(nde_ctx *ctx, const char *path, const nde_tensor *t) {
    (void)path; (void)t; return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_save_npy: built with NDE_NO_STDIO");
}
NDE_API nde_tensor *nde_load_npy(nde_ctx *ctx, const char *path) {
    (void)path; nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_load_npy: built with NDE_NO_STDIO"); return NULL;
}
NDE_API nde_tensor *nde_load_idx(nde_ctx *ctx, const char *path) {
    (void)path; nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_load_idx: built with NDE_NO_STDIO"); return NULL;
}
#else
#include <errno.h>
#include <float.h>
#if defined(_WIN32)
#include <process.h>
#define NDE__GETPID() ((long)_getpid())
#elif defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define NDE__GETPID() ((long)getpid())
#else
#define NDE__GETPID() 0L
#endif

#define NDE__IO_CHUNK 8192                         /* bytes per read/write chunk */
#define NDE__ST_MAX_HEADER ((uint64_t)100 << 20)    /* safetensors' own header limit */
typedef unsigned long long nde__ull;

/* ---- element types shared by the three formats. kind: 'f' IEEE float,
   'i' signed, 'u' unsigned, 'b' bfloat16. */
typedef struct nde__dtype { char kind; int size; int big_endian; } nde__dtype;

static uint64_t nde__load_uint(const unsigned char *p, int n, int big_endian) {
    uint64_t v = 0; int i;
    for (i = 0; i < n; i++) v |= (uint64_t)p[big_endian ? n - 1 - i : i] << (8 * i);
    return v;
}
static void nde__store_le(unsigned char *p, uint64_t v, int n) {
    int i;
    for (i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}
/* IEEE 754 binary16 (sign, 5-bit exponent bias 15, 10-bit fraction). */
static double nde__half_to_double(uint32_t h) {
    int e = (int)((h >> 10) & 31u); double m = (double)(h & 1023u), v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m == 0.0 ? HUGE_VAL : NAN;
    else v = ldexp(m + 1024.0, e - 25);
    return (h & 0x8000u) ? -v : v;
}
static double nde__decode(const unsigned char *p, nde__dtype t) {
    uint64_t bits = nde__load_uint(p, t.size, t.big_endian);
    switch (t.kind) {
    case 'f':
        if (t.size == 2) return nde__half_to_double((uint32_t)bits);
        if (t.size == 4) { uint32_t b = (uint32_t)bits; float f; memcpy(&f, &b, 4); return (double)f; }
        { double d; memcpy(&d, &bits, 8); return d; }
    case 'b': { uint32_t b = (uint32_t)bits << 16; float f; memcpy(&f, &b, 4); return (double)f; }
    case 'i':
        if (t.size < 8 && (bits >> (8 * t.size - 1)) & 1u) return (double)bits - ldexp(1.0, 8 * t.size);
        if (t.size == 8 && (bits >> 63)) return -(double)(~bits) - 1.0;
        return (double)bits;
    default: return (double)bits;
    }
}
/* dst[i] = (nde_real)src bytes, checking that finite values fit nde_real. */
static int nde__decode_reals(const unsigned char *src, nde__dtype t, int64_t n, nde_real *dst, double *bad) {
    int64_t i;
    (void)bad;
    for (i = 0; i < n; i++) {
        double d = nde__decode(src + i * t.size, t);
#ifndef NDE_DOUBLE
        if (d == d && fabs(d) > FLT_MAX && fabs(d) != HUGE_VAL) { *bad = d; return 0; }
#endif
        dst[i] = (nde_real)d;
    }
    return 1;
}
static void nde__encode_reals(const nde_real *src, int64_t n, unsigned char *dst) {
    int64_t i;
    for (i = 0; i < n; i++) {
#ifdef NDE_DOUBLE
        uint64_t b; memcpy(&b, &src[i], 8); nde__store_le(dst + i * 8, b, 8);
#else
        uint32_t b; memcpy(&b, &src[i], 4); nde__store_le(dst + i * 4, b, 4);
#endif
    }
}
/* a*b without overflow past INT64_MAX; 0 on overflow. */
static int nde__mul_ok(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a)) return 0;
    *out = a * b; return 1;
}
static const char *nde__errno_str(int err) { return err ? strerror(err) : "unknown error"; }

/* ---- reading: a file with its size, every read checked against it. */
typedef struct nde__rfile { nde_ctx *ctx; FILE *f; const char *path, *who; uint64_t size, pos; } nde__rfile;

static nde_status nde__ropen(nde_ctx *ctx, nde__rfile *r, const char *path, const char *who) {
    long end;
    memset(r, 0, sizeof *r);
    r->ctx = ctx; r->path = path; r->who = who;
    if (!path) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL path", who);
    errno = 0;
    r->f = fopen(path, "rb");
    if (!r->f) return nde_ctx_fail(ctx, NDE_ERR_IO, "%s: cannot open '%s': %s", who, path, nde__errno_str(errno));
    if (fseek(r->f, 0, SEEK_END) != 0 || (end = ftell(r->f)) < 0 || fseek(r->f, 0, SEEK_SET) != 0) {
        int err = errno;
        fclose(r->f); r->f = NULL;
        return nde_ctx_fail(ctx, NDE_ERR_IO, "%s: cannot determine the size of '%s': %s", who, path, nde__errno_str(err));
    }
    r->size = (uint64_t)end;
    return NDE_OK;
}
static void nde__rclose(nde__rfile *r) { if (r->f) fclose(r->f); r->f = NULL; }
static uint64_t nde__rleft(const nde__rfile *r) { return r->size - r->pos; }
/* Reads exactly n bytes; what names them in the message. */
static nde_status nde__rread(nde__rfile *r, void *buf, uint64_t n, const char *what) {
    size_t got;
    if (n > nde__rleft(r))
        return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s' is truncated: %s needs %llu bytes at offset %llu, the file has %llu",
                            r->who, r->path, what, (nde__ull)n, (nde__ull)r->pos, (nde__ull)r->size);
    errno = 0;
    got = fread(buf, 1, (size_t)n, r->f);
    r->pos += got;
    if (got != (size_t)n) {
        if (ferror(r->f))
            return nde_ctx_fail(r->ctx, NDE_ERR_IO, "%s: reading %s from '%s' failed: %s", r->who, what, r->path,
                                nde__errno_str(errno));
        return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s' ended early while reading %s (offset %llu)", r->who,
                            r->path, what, (nde__ull)r->pos);
    }
    return NDE_OK;
}
/* Reads count elements of type t and converts them into host nde_reals. */
static nde_status nde__rread_reals(nde__rfile *r, nde__dtype t, int64_t count, nde_real *dst, const char *what) {
    unsigned char buf[NDE__IO_CHUNK];
    int64_t per = NDE__IO_CHUNK / t.size, done = 0;
    while (done < count) {
        int64_t k = count - done < per ? count - done : per;
        double bad = 0.0;
        if (nde__rread(r, buf, (uint64_t)(k * t.size), what) != NDE_OK) return r->ctx->status;
        if (!nde__decode_reals(buf, t, k, dst + done, &bad))
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': %s holds the value %g, outside the range of float",
                                r->who, r->path, what, bad);
        done += k;
    }
    return NDE_OK;
}

/* ---- writing: temp file, then rename. */
typedef struct nde__wfile { nde_ctx *ctx; FILE *f; char *tmp; const char *path, *who; int err, failed; } nde__wfile;

static nde_status nde__wopen(nde_ctx *ctx, nde__wfile *w, const char *path, const char *who) {
    size_t n;
    memset(w, 0, sizeof *w);
    w->ctx = ctx; w->path = path; w->who = who;
    if (!path || !path[0]) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: empty or NULL path", who);
    n = strlen(path) + 64;
    w->tmp = (char *)NDE_MALLOC(n);
    if (!w->tmp) return nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory", who);
    snprintf(w->tmp, n, "%s.tmp.%ld.%lx", path, NDE__GETPID(), (unsigned long)(uintptr_t)ctx);
    errno = 0;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        nde_status s = nde_ctx_fail(ctx, NDE_ERR_IO, "%s: cannot create '%s' (to save '%s'): %s", who, w->tmp, path,
                                    nde__errno_str(errno));
        NDE_FREE(w->tmp); w->tmp = NULL;
        return s;
    }
    return NDE_OK;
}
static void nde__wwrite(nde__wfile *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n) { w->failed = 1; w->err = errno; }
}
/* Gives up: closes and removes the temp file. */
static void nde__wabort(nde__wfile *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->tmp) { remove(w->tmp); NDE_FREE(w->tmp); }
    w->tmp = NULL;
}
/* Flushes, closes and renames over path; on any failure removes the temp file. */
static nde_status nde__wcommit(nde__wfile *w) {
    const char *step = "writing";
    if (!w->failed) { errno = 0; if (fflush(w->f) != 0) { w->failed = 1; w->err = errno; step = "flushing"; } }
    if (!w->failed) {
        FILE *f = w->f; w->f = NULL; errno = 0;
        if (fclose(f) != 0) { w->failed = 1; w->err = errno; step = "closing"; }
    }
#ifdef _WIN32
    if (!w->failed) remove(w->path);   /* rename does not replace on Windows (not atomic there) */
#endif
    if (!w->failed) { errno = 0; if (rename(w->tmp, w->path) != 0) { w->failed = 1; w->err = errno; step = "renaming"; } }
    if (w->failed) {
        int err = w->err;
        nde__wabort(w);
        return nde_ctx_fail(w->ctx, NDE_ERR_IO, "%s: %s '%s' failed: %s (the old file, if any, is untouched)", w->who,
                            step, w->path, nde__errno_str(err));
    }
    NDE_FREE(w->tmp); w->tmp = NULL;
    return NDE_OK;
}
/* Writes n nde_reals (host memory) as little-endian bytes. */
static void nde__wwrite_reals(nde__wfile *w, const nde_real *x, int64_t n) {
    unsigned char buf[NDE__IO_CHUNK];
    int64_t per = NDE__IO_CHUNK / (int64_t)sizeof(nde_real), done = 0;
    while (done < n && !w->failed) {
        int64_t k = n - done < per ? n - done : per;
        nde__encode_reals(x + done, k, buf);
        nde__wwrite(w, buf, (size_t)k * sizeof(nde_real));
        done += k;
    }
}
/* Host view of n reals of backend memory: src itself on the CPU, else a copy
   that the caller frees with nde__host_view_free. Failure: NULL and an error
   in ctx (src itself may be NULL when n is 0). */
static const nde_real *nde__host_view(nde_ctx *ctx, const nde_real *src, int64_t n, const char *who) {
    nde_real *h;
    if (!ctx->be->is_device) return src;
    h = (nde_real *)NDE_MALLOC((size_t)(n ? n : 1) * sizeof(nde_real));
    if (!h) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory for a host copy of %lld values", who, (long long)n); return NULL; }
    if (n && ctx->be->copy(ctx->be->self, h, src, (size_t)n * sizeof(nde_real), NDE_COPY_TO_HOST) != NDE_OK) {
        NDE_FREE(h);
        nde_ctx_fail(ctx, NDE_ERR_BACKEND, "%s: copying %lld values to the host failed", who, (long long)n);
        return NULL;
    }
    return h;
}
static void nde__host_view_free(nde_ctx *ctx, const nde_real *h, const nde_real *src) {
    (void)ctx;
    if (h && h != src) NDE_FREE((void *)(uintptr_t)h);
}

/* ---- a growable text buffer for headers */
typedef struct nde__text { char *s; size_t len, cap; int oom; } nde__text;
static void nde__text_put(nde__text *t, const char *s, size_t n) {
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t nc = t->cap ? t->cap : 256; char *ns;
        while (nc < t->len + n + 1) nc *= 2;
        ns = (char *)NDE_REALLOC(t->s, nc);
        if (!ns) { t->oom = 1; return; }
        t->s = ns; t->cap = nc;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}
static void nde__text_str(nde__text *t, const char *s) { nde__text_put(t, s, strlen(s)); }
static void nde__text_int(nde__text *t, int64_t v) {
    char b[32]; snprintf(b, sizeof b, "%lld", (long long)v); nde__text_str(t, b);
}
/* s as a JSON string literal. */
static void nde__text_json_string(nde__text *t, const char *s) {
    nde__text_put(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { char e[2]; e[0] = '\\'; e[1] = (char)c; nde__text_put(t, e, 2); }
        else if (c < 0x20) { char e[8]; snprintf(e, sizeof e, "\\u%04x", c); nde__text_put(t, e, 6); }
        else nde__text_put(t, s, 1);
    }
    nde__text_put(t, "\"", 1);
}

/* ------------------------------------------------------------ safetensors
   Layout (huggingface safetensors): u64 little-endian N; N bytes of JSON
   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
    "__metadata__": {string: string}}; then the data section, offsets relative
   to its start, tensors back to back (no holes, no overlap), row-major,
   little-endian. */
typedef struct nde__st_entry {
    char *name; size_t name_len;
    char *dtype_name; nde__dtype dtype; int dtype_ok;
    int ndim; int64_t shape[NDE_MAX_DIMS]; int64_t numel;
    uint64_t begin, end;
} nde__st_entry;

typedef struct nde__json { char *s; size_t n, i; const char *err; } nde__json;

static void nde__json_ws(nde__json *j) {
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) j->i++;
}
static int nde__json_fail(nde__json *j, const char *msg) { if (!j->err) j->err = msg; return 0; }
static int nde__json_peek(nde__json *j) { nde__json_ws(j); return j->i < j->n ? (unsigned char)j->s[j->i] : -1; }
static int nde__json_expect(nde__json *j, char c, const char *msg) {
    if (nde__json_peek(j) != (unsigned char)c) return nde__json_fail(j, msg);
    j->i++; return 1;
}
static int nde__json_hex4(nde__json *j, uint32_t *v) {
    int k; *v = 0;
    if (j->i + 4 > j->n) return nde__json_fail(j, "truncated \\u escape");
    for (k = 0; k < 4; k++) {
        char c = j->s[j->i++]; uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return nde__json_fail(j, "bad hex digit in a \\u escape");
        *v = *v * 16 + d;
    }
    return 1;
}
/* Decodes a string literal in place (the decoded text is never longer) and
   NUL-terminates it. */
static int nde__json_string(nde__json *j, char **out, size_t *len) {
    char *dst;
    if (!nde__json_expect(j, '"', "expected a string")) return 0;
    *out = dst = j->s + j->i;
    for (;;) {
        unsigned char c;
        if (j->i >= j->n) return nde__json_fail(j, "unterminated string");
        c = (unsigned char)j->s[j->i++];
        if (c == '"') break;
        if (c < 0x20) return nde__json_fail(j, "control character inside a string");
        if (c != '\\') { *dst++ = (char)c; continue; }
        if (j->i >= j->n) return nde__json_fail(j, "unterminated escape");
        c = (unsigned char)j->s[j->i++];
        switch (c) {
        case '"': case '\\': case '/': *dst++ = (char)c; break;
        case 'b': *dst++ = '\b'; break;
        case 'f': *dst++ = '\f'; break;
        case 'n': *dst++ = '\n'; break;
        case 'r': *dst++ = '\r'; break;
        case 't': *dst++ = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (!nde__json_hex4(j, &cp)) return 0;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return nde__json_fail(j, "lone low surrogate in a \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->i + 2 > j->n || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
                    return nde__json_fail(j, "lone high surrogate in a \\u escape");
                j->i += 2;
                if (!nde__json_hex4(j, &lo)) return 0;
                if (lo < 0xDC00 || lo > 0xDFFF) return nde__json_fail(j, "bad surrogate pair in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return nde__json_fail(j, "\\u0000 inside a string");
            if (cp < 0x80) *dst++ = (char)cp;
            else if (cp < 0x800) { *dst++ = (char)(0xC0 | (cp >> 6)); *dst++ = (char)(0x80 | (cp & 63)); }
            else if (cp < 0x10000) {
                *dst++ = (char)(0xE0 | (cp >> 12)); *dst++ = (char)(0x80 | ((cp >> 6) & 63)); *dst++ = (char)(0x80 | (cp & 63));
            } else {
                *dst++ = (char)(0xF0 | (cp >> 18)); *dst++ = (char)(0x80 | ((cp >> 12) & 63));
                *dst++ = (char)(0x80 | ((cp >> 6) & 63)); *dst++ = (char)(0x80 | (cp & 63));
            }
            break;
        }
        default: return nde__json_fail(j, "unknown escape in a string");
        }
    }
    *len = (size_t)(dst - *out);
    *dst = 0;   /* fits: at least the closing quote was consumed */
    return 1;
}
/* A non-negative integer without sign, fraction or exponent, below 2^63. */
static int nde__json_uint(nde__json *j, uint64_t *v) {
    size_t start;
    int c = nde__json_peek(j);
    if (c == '-') return nde__json_fail(j, "negative number where a size or offset belongs");
    if (c < '0' || c > '9') return nde__json_fail(j, "expected a non-negative integer");
    start = j->i; *v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        uint64_t d = (uint64_t)(j->s[j->i] - '0');
        if (*v > ((uint64_t)INT64_MAX - d) / 10) return nde__json_fail(j, "integer too large");
        *v = *v * 10 + d; j->i++;
    }
    if (j->s[start] == '0' && j->i - start > 1) return nde__json_fail(j, "integer with a leading zero");
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return nde__json_fail(j, "expected an integer, found a fraction or exponent");
    return 1;
}
/* "F32" etc.: dtype_ok 1 = loadable, 0 = a safetensors dtype nde does not load, -1 = unknown. */
static void nde__st_dtype(nde__st_entry *e) {
    static const char *const other[] = {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64",
                                  "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};
    size_t k;
    e->dtype.big_endian = 0;
    e->dtype_ok = 1;
    if (strcmp(e->dtype_name, "F32") == 0) { e->dtype.kind = 'f'; e->dtype.size = 4; return; }
    if (strcmp(e->dtype_name, "F64") == 0) { e->dtype.kind = 'f'; e->dtype.size = 8; return; }
    if (strcmp(e->dtype_name, "F16") == 0) { e->dtype.kind = 'f'; e->dtype.size = 2; return; }
    if (strcmp(e->dtype_name, "BF16") == 0) { e->dtype.kind = 'b'; e->dtype.size = 2; return; }
    e->dtype_ok = -1;
    for (k = 0; k < sizeof other / sizeof other[0]; k++) if (strcmp(e->dtype_name, other[k]) == 0) e->dtype_ok = 0;
}
/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} */
static int nde__st_parse_tensor(nde__json *j, nde__st_entry *e) {
    int seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
    if (!nde__json_expect(j, '{', "a tensor entry must be an object")) return 0;
    if (nde__json_peek(j) == '}') return nde__json_fail(j, "empty tensor entry");
    for (;;) {
        char *key; size_t klen;
        if (!nde__json_string(j, &key, &klen) || !nde__json_expect(j, ':', "expected ':' after a key")) return 0;
        if (strcmp(key, "dtype") == 0 && !seen_dtype) {
            size_t dl;
            seen_dtype = 1;
            if (!nde__json_string(j, &e->dtype_name, &dl)) return 0;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1; e->ndim = 0; e->numel = 1;
            if (!nde__json_expect(j, '[', "shape must be an array")) return 0;
            if (nde__json_peek(j) == ']') j->i++;
            else for (;;) {
                uint64_t d;
                if (!nde__json_uint(j, &d)) return 0;
                if (!nde__mul_ok(e->numel, (int64_t)d, &e->numel)) return nde__json_fail(j, "shape has too many elements");
                if (e->ndim < NDE_MAX_DIMS) e->shape[e->ndim] = (int64_t)d;
                e->ndim++;
                if (nde__json_peek(j) == ',') { j->i++; continue; }
                if (!nde__json_expect(j, ']', "expected ',' or ']' in a shape")) return 0;
                break;
            }
        } else if (strcmp(key, "data_offsets") == 0 && !seen_offsets) {
            seen_offsets = 1;
            if (!nde__json_expect(j, '[', "data_offsets must be an array") || !nde__json_uint(j, &e->begin) ||
                !nde__json_expect(j, ',', "data_offsets needs two numbers") || !nde__json_uint(j, &e->end) ||
                !nde__json_expect(j, ']', "data_offsets needs exactly two numbers"))
                return 0;
        } else if (strcmp(key, "dtype") == 0 || strcmp(key, "shape") == 0 || strcmp(key, "data_offsets") == 0) {
            return nde__json_fail(j, "a key repeats inside a tensor entry");
        } else {
            return nde__json_fail(j, "unknown key in a tensor entry (expected dtype, shape, data_offsets)");
        }
        if (nde__json_peek(j) == ',') { j->i++; continue; }
        if (!nde__json_expect(j, '}', "expected ',' or '}' in a tensor entry")) return 0;
        break;
    }
    if (!seen_dtype || !seen_shape || !seen_offsets) return nde__json_fail(j, "a tensor entry lacks dtype, shape or data_offsets");
    return 1;
}
/* {string: string, ...} */
static int nde__st_parse_metadata(nde__json *j) {
    if (!nde__json_expect(j, '{', "__metadata__ must be an object")) return 0;
    if (nde__json_peek(j) == '}') { j->i++; return 1; }
    for (;;) {
        char *s; size_t l;
        if (!nde__json_string(j, &s, &l) || !nde__json_expect(j, ':', "expected ':' after a key")) return 0;
        if (nde__json_peek(j) != '"') return nde__json_fail(j, "__metadata__ values must be strings");
        if (!nde__json_string(j, &s, &l)) return 0;
        if (nde__json_peek(j) == ',') { j->i++; continue; }
        return nde__json_expect(j, '}', "expected ',' or '}' in __metadata__");
    }
}
/* The whole header; entries grow with NDE_REALLOC (the caller frees *out). */
static int nde__st_parse_header(nde__json *j, nde__st_entry **out, int *count) {
    int cap = 0, seen_meta = 0;
    *out = NULL; *count = 0;
    if (!nde__json_expect(j, '{', "the header must be a JSON object")) return 0;
    if (nde__json_peek(j) == '}') j->i++;
    else for (;;) {
        char *key; size_t klen; int k;
        if (!nde__json_string(j, &key, &klen) || !nde__json_expect(j, ':', "expected ':' after a key")) return 0;
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta) return nde__json_fail(j, "__metadata__ appears twice");
            seen_meta = 1;
            if (!nde__st_parse_metadata(j)) return 0;
        } else {
            nde__st_entry *e;
            for (k = 0; k < *count; k++)
                if ((*out)[k].name_len == klen && memcmp((*out)[k].name, key, klen) == 0)
                    return nde__json_fail(j, "a tensor name appears twice");
            if (*count == cap) {
                int nc = cap ? cap * 2 : 16;
                nde__st_entry *ne = (nde__st_entry *)NDE_REALLOC(*out, (size_t)nc * sizeof *ne);
                if (!ne) return nde__json_fail(j, "out of memory for the tensor list");
                *out = ne; cap = nc;
            }
            e = &(*out)[*count];
            memset(e, 0, sizeof *e);
            e->name = key; e->name_len = klen;
            (*count)++;
            if (!nde__st_parse_tensor(j, e)) return 0;
        }
        if (nde__json_peek(j) == ',') { j->i++; continue; }
        if (!nde__json_expect(j, '}', "expected ',' or '}' after a tensor entry")) return 0;
        break;
    }
    if (nde__json_peek(j) != -1) return nde__json_fail(j, "text after the closing '}'");
    return 1;
}

static int nde__st_by_begin_cmp(const void *a, const void *b) {
    const nde__st_entry *x = *(const nde__st_entry *const *)a, *y = *(const nde__st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* Each entry against itself and the data section: dtype, byte count, bounds,
   then all of them together: back to back from 0 to data_len. sorted receives
   the entries in file order. */
static nde_status nde__st_check_layout(nde__rfile *r, nde__st_entry *e, int count, uint64_t data_len, nde__st_entry **sorted) {
    int k; uint64_t at = 0;
    for (k = 0; k < count; k++) {
        int64_t bytes = -1;   /* -1: the product overflows */
        nde__st_dtype(&e[k]);
        if (e[k].dtype_ok < 0)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': tensor '%s' has an unknown dtype '%s'", r->who, r->path,
                                e[k].name, e[k].dtype_name);
        if (e[k].dtype_ok == 0)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': tensor '%s' has dtype %s; nde loads F32, F64, F16 and BF16",
                                r->who, r->path, e[k].name, e[k].dtype_name);
        if (e[k].begin > e[k].end || e[k].end > data_len)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT,
                                "%s: '%s': tensor '%s' has data_offsets [%llu, %llu] outside the data section of %llu bytes",
                                r->who, r->path, e[k].name, (nde__ull)e[k].begin, (nde__ull)e[k].end, (nde__ull)data_len);
        if (!nde__mul_ok(e[k].numel, e[k].dtype.size, &bytes) || (uint64_t)bytes != e[k].end - e[k].begin)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT,
                                "%s: '%s': tensor '%s': %lld elements of %s need %lld bytes but data_offsets [%llu, %llu] give %llu",
                                r->who, r->path, e[k].name, (long long)e[k].numel, e[k].dtype_name, (long long)bytes,
                                (nde__ull)e[k].begin, (nde__ull)e[k].end, (nde__ull)(e[k].end - e[k].begin));
        sorted[k] = &e[k];
    }
    qsort(sorted, (size_t)count, sizeof *sorted, nde__st_by_begin_cmp);
    for (k = 0; k < count; k++) {
        if (sorted[k]->begin < at)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': tensors '%s' and '%s' overlap (bytes %llu..%llu)", r->who,
                                r->path, sorted[k - 1]->name, sorted[k]->name, (nde__ull)sorted[k]->begin, (nde__ull)at);
        if (sorted[k]->begin > at)
            return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': bytes %llu..%llu of the data section belong to no tensor",
                                r->who, r->path, (nde__ull)at, (nde__ull)sorted[k]->begin);
        at = sorted[k]->end;
    }
    if (at != data_len)
        return nde_ctx_fail(r->ctx, NDE_ERR_FORMAT, "%s: '%s': %llu bytes after the last tensor belong to no tensor",
                            r->who, r->path, (nde__ull)(data_len - at));
    return NDE_OK;
}

/* Names and shapes against the model: every file tensor must be a parameter
   of the same shape and every parameter must be in the file. index[k] = the
   parameter of entry k. */
static nde_status nde__st_match(nde__rfile *r, const nde__st_entry *e, int count, int *index) {
    nde_ctx *ctx = r->ctx;
    char extra[200] = "", missing[200] = "";
    int k, p, num_extra = 0, num_missing = 0;
    for (k = 0; k < count; k++) {
        index[k] = -1;
        for (p = 0; p < ctx->num_params; p++)
            if (strlen(ctx->params[p].name) == e[k].name_len && memcmp(ctx->params[p].name, e[k].name, e[k].name_len) == 0) {
                index[k] = p; break;
            }
        if (index[k] < 0 && num_extra++ < 3 && strlen(extra) + e[k].name_len + 4 < sizeof extra)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s'%s'", num_extra > 1 ? ", " : "", e[k].name);
    }
    for (p = 0; p < ctx->num_params; p++) {
        int found = 0;
        for (k = 0; k < count && !found; k++) found = index[k] == p;
        if (!found && num_missing++ < 3 && strlen(missing) + strlen(ctx->params[p].name) + 4 < sizeof missing)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s'%s'", num_missing > 1 ? ", " : "",
                     ctx->params[p].name);
    }
    if (num_missing)
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': %d parameter(s) missing from the file: %s%s%s%s", r->who,
                            r->path, num_missing, missing, num_missing > 3 ? ", ..." : "",
                            num_extra ? "; the file has other tensors: " : "", extra);
    if (num_extra)
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': %d tensor(s) in the file are not parameters of the model: %s%s",
                            r->who, r->path, num_extra, extra, num_extra > 3 ? ", ..." : "");
    for (k = 0; k < count; k++) {
        const nde_tensor *t = ctx->params[index[k]].tensor;
        int same = e[k].ndim == t->ndim, d;
        for (d = 0; same && d < t->ndim; d++) same = e[k].shape[d] == t->shape[d];
        if (!same) {
            char want[64], got[80]; size_t off = 0;
            off += (size_t)snprintf(got, sizeof got, "(");
            for (d = 0; d < e[k].ndim && d < NDE_MAX_DIMS && off < sizeof got; d++)
                off += (size_t)snprintf(got + off, sizeof got - off, d ? ", %lld" : "%lld", (long long)e[k].shape[d]);
            if (off < sizeof got) snprintf(got + off, sizeof got - off, e[k].ndim > NDE_MAX_DIMS ? ", ...)" : ")");
            return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': tensor '%s' has shape %s in the file but %s in the model",
                                r->who, r->path, e[k].name, got, nde_shape_str(t, want, sizeof want));
        }
    }
    return NDE_OK;
}

NDE_API nde_status nde_save_params(nde_ctx *ctx, const char *path) {
    const char *who = "nde_save_params";
    nde__text h; nde__wfile w; unsigned char len8[8];
    const nde_real *host; int p, d; int64_t at = 0;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    memset(&h, 0, sizeof h);
    nde__text_str(&h, "{\"__metadata__\":{\"format\":\"pt\",\"nde_version\":\"" NDE_VERSION_STRING "\",\"nde_real_bytes\":\"");
    nde__text_int(&h, (int64_t)sizeof(nde_real));
    nde__text_str(&h, "\"}");
    for (p = 0; p < ctx->num_params; p++) {
        const nde_tensor *t = ctx->params[p].tensor;
        nde__text_str(&h, ",");
        nde__text_json_string(&h, ctx->params[p].name);
        nde__text_str(&h, sizeof(nde_real) == 8 ? ":{\"dtype\":\"F64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (d = 0; d < t->ndim; d++) { if (d) nde__text_str(&h, ","); nde__text_int(&h, t->shape[d]); }
        nde__text_str(&h, "],\"data_offsets\":[");
        nde__text_int(&h, at);
        at += t->size * (int64_t)sizeof(nde_real);
        nde__text_str(&h, ",");
        nde__text_int(&h, at);
        nde__text_str(&h, "]}");
    }
    nde__text_str(&h, "}");
    while (!h.oom && h.len % 8 != 0) nde__text_str(&h, " ");   /* the data section starts 8-aligned */
    if (h.oom) { NDE_FREE(h.s); return nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory for the header", who); }
    host = nde__host_view(ctx, ctx->param_data, ctx->param_count, who);
    if (ctx->status != NDE_OK) { NDE_FREE(h.s); return ctx->status; }   /* host is NULL for an empty CPU store */
    if (nde__wopen(ctx, &w, path, who) == NDE_OK) {
        nde__store_le(len8, (uint64_t)h.len, 8);
        nde__wwrite(&w, len8, 8);
        nde__wwrite(&w, h.s, h.len);
        /* parameters are contiguous in the flat store, in the order written */
        nde__wwrite_reals(&w, host, ctx->param_count);
        nde__wcommit(&w);
    }
    nde__host_view_free(ctx, host, ctx->param_data);
    NDE_FREE(h.s);
    return ctx->status;
}

NDE_API nde_status nde_load_params(nde_ctx *ctx, const char *path) {
    const char *who = "nde_load_params";
    nde__rfile r; unsigned char len8[8]; uint64_t hlen, data_len;
    char *hdr = NULL; nde__st_entry *e = NULL, **sorted = NULL; int count = 0, k, *index = NULL;
    nde_real *stage = NULL; nde__json j;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    if (nde__ropen(ctx, &r, path, who) != NDE_OK) return ctx->status;
    if (nde__rread(&r, len8, 8, "the header length") != NDE_OK) goto done;
    hlen = nde__load_uint(len8, 8, 0);
    if (hlen > nde__rleft(&r)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': the header length %llu exceeds the %llu bytes after the length field",
                     who, path, (nde__ull)hlen, (nde__ull)nde__rleft(&r));
        goto done;
    }
    if (hlen < 2 || hlen > NDE__ST_MAX_HEADER) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': the header length %llu is outside 2..%llu", who, path,
                     (nde__ull)hlen, (nde__ull)NDE__ST_MAX_HEADER);
        goto done;
    }
    hdr = (char *)NDE_MALLOC((size_t)hlen + 1);
    if (!hdr) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory for a %llu-byte header", who, (nde__ull)hlen); goto done; }
    if (nde__rread(&r, hdr, hlen, "the JSON header") != NDE_OK) goto done;
    hdr[hlen] = 0;
    j.s = hdr; j.n = (size_t)hlen; j.i = 0; j.err = NULL;
    if (!nde__st_parse_header(&j, &e, &count)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': bad JSON header at byte %llu: %s", who, path, (nde__ull)j.i, j.err);
        goto done;
    }
    data_len = nde__rleft(&r);
    sorted = (nde__st_entry **)NDE_MALLOC((size_t)(count ? count : 1) * sizeof *sorted);
    index = (int *)NDE_MALLOC((size_t)(count ? count : 1) * sizeof *index);
    stage = (nde_real *)NDE_MALLOC((size_t)(ctx->param_count ? ctx->param_count : 1) * sizeof(nde_real));
    if (!sorted || !index || !stage) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory", who); goto done; }
    if (nde__st_check_layout(&r, e, count, data_len, sorted) != NDE_OK) goto done;
    if (nde__st_match(&r, e, count, index) != NDE_OK) goto done;
    /* sorted order is file order: one forward pass over the data section */
    for (k = 0; k < count; k++) {
        int p = index[sorted[k] - e];
        char what[140];
        snprintf(what, sizeof what, "tensor '%s'", sorted[k]->name);
        if (nde__rread_reals(&r, sorted[k]->dtype, sorted[k]->numel, stage + ctx->params[p].offset, what) != NDE_OK) goto done;
    }
    /* everything read and checked: only now touch the model */
    if (ctx->param_count) {
        if (ctx->be->is_device) {
            if (ctx->be->copy(ctx->be->self, ctx->param_data, stage, (size_t)ctx->param_count * sizeof(nde_real),
                              NDE_COPY_TO_DEVICE) != NDE_OK)
                nde_ctx_fail(ctx, NDE_ERR_BACKEND, "%s: copying the parameters to the device failed", who);
        } else {
            memcpy(ctx->param_data, stage, (size_t)ctx->param_count * sizeof(nde_real));
        }
    }
done:
    nde__rclose(&r);
    NDE_FREE(hdr); NDE_FREE(e); NDE_FREE(sorted); NDE_FREE(index); NDE_FREE(stage);
    return ctx->status;
}

/* ------------------------------------------------------------ .npy
   NumPy format: "\x93NUMPY", major, minor, header length (u16 little-endian
   in 1.0, u32 in 2.0/3.0), then a Python dict literal
   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
   spaces and '\n' so that the data starts 64-aligned, then the data. */
NDE_API nde_status nde_save_npy(nde_ctx *ctx, const char *path, const nde_tensor *t) {
    const char *who = "nde_save_npy";
    char dict[256]; size_t off, total; int d; unsigned char pre[10];
    const nde_real *host; nde__wfile w;
    if (!ctx) return NDE_ERR_ARG;
    if (ctx->status != NDE_OK) return ctx->status;
    if (!t) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL tensor", who);
    off = (size_t)snprintf(dict, sizeof dict, "{'descr': '<f%d', 'fortran_order': False, 'shape': (", (int)sizeof(nde_real));
    for (d = 0; d < t->ndim; d++)
        off += (size_t)snprintf(dict + off, sizeof dict - off, t->ndim == 1 ? "%lld," : (d ? ", %lld" : "%lld"),
                                (long long)t->shape[d]);
    off += (size_t)snprintf(dict + off, sizeof dict - off, "), }");
    total = (10 + off + 1 + 63) / 64 * 64;           /* prefix + dict + '\n', 64-aligned */
    memset(dict + off, ' ', total - 10 - off - 1);
    dict[total - 10 - 1] = '\n';
    memcpy(pre, "\x93NUMPY\x01\x00", 8);
    nde__store_le(pre + 8, (uint64_t)(total - 10), 2);
    host = nde__host_view(ctx, t->data, t->size, who);
    if (ctx->status != NDE_OK) return ctx->status;
    if (nde__wopen(ctx, &w, path, who) == NDE_OK) {
        nde__wwrite(&w, pre, 10);
        nde__wwrite(&w, dict, total - 10);
        nde__wwrite_reals(&w, host, t->size);
        nde__wcommit(&w);
    }
    nde__host_view_free(ctx, host, t->data);
    return ctx->status;
}

/* Parses '<f4' and friends. */
static int nde__npy_descr(const char *s, nde__dtype *t) {
    int size;
    if (strlen(s) < 3 || (s[0] != '<' && s[0] != '>' && s[0] != '|')) return 0;
    size = atoi(s + 2);
    if ((s[2] < '1' || s[2] > '9') || strlen(s) != (size >= 10 ? 4u : 3u)) return 0;
    t->big_endian = s[0] == '>'; t->size = size; t->kind = s[1];
    if (t->kind == 'f') return size == 2 || size == 4 || size == 8;
    if (t->kind == 'i' || t->kind == 'u') return size == 1 || size == 2 || size == 4 || size == 8;
    if (t->kind == 'b' && size == 1) { t->kind = 'u'; return 1; }   /* bool as 0/1 */
    return 0;
}
typedef struct nde__npy_header { char descr[16]; int fortran, ndim; int64_t shape[NDE_MAX_DIMS], numel; } nde__npy_header;

/* The dict literal (keys in any order, ' or " quotes, optional trailing commas). */
static int nde__npy_parse(nde__json *j, nde__npy_header *h) {
    int seen = 0;
    h->ndim = -1; h->fortran = -1; h->descr[0] = 0; h->numel = 1;
    if (!nde__json_expect(j, '{', "the header must start with '{'")) return 0;
    while (nde__json_peek(j) != '}') {
        char q, key[16]; size_t k = 0;
        q = (char)nde__json_peek(j);
        if (q != '\'' && q != '"') return nde__json_fail(j, "expected a quoted key");
        j->i++;
        while (j->i < j->n && j->s[j->i] != q && k + 1 < sizeof key) key[k++] = j->s[j->i++];
        key[k] = 0;
        if (j->i >= j->n || j->s[j->i] != q) return nde__json_fail(j, "unknown or unterminated key");
        j->i++;
        if (!nde__json_expect(j, ':', "expected ':' after a key")) return 0;
        if (strcmp(key, "descr") == 0) {
            q = (char)nde__json_peek(j); k = 0;
            if (q != '\'' && q != '"') return nde__json_fail(j, "descr must be a quoted string");
            j->i++;
            while (j->i < j->n && j->s[j->i] != q && k + 1 < sizeof h->descr) h->descr[k++] = j->s[j->i++];
            h->descr[k] = 0;
            if (j->i >= j->n || j->s[j->i] != q) return nde__json_fail(j, "descr is not a simple type string (structured arrays are not supported)");
            j->i++; seen |= 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            nde__json_ws(j);
            if (j->n - j->i >= 4 && memcmp(j->s + j->i, "True", 4) == 0) { h->fortran = 1; j->i += 4; }
            else if (j->n - j->i >= 5 && memcmp(j->s + j->i, "False", 5) == 0) { h->fortran = 0; j->i += 5; }
            else return nde__json_fail(j, "fortran_order must be True or False");
            seen |= 2;
        } else if (strcmp(key, "shape") == 0) {
            if (!nde__json_expect(j, '(', "shape must be a tuple")) return 0;
            h->ndim = 0;
            while (nde__json_peek(j) != ')') {
                uint64_t d;
                if (!nde__json_uint(j, &d)) return 0;
                if (j->i < j->n && j->s[j->i] == 'L') j->i++;   /* Python 2 long, as in old files */
                if (h->ndim >= NDE_MAX_DIMS) return nde__json_fail(j, "more dimensions than NDE_MAX_DIMS");
                if (!nde__mul_ok(h->numel, (int64_t)d, &h->numel)) return nde__json_fail(j, "shape has too many elements");
                h->shape[h->ndim++] = (int64_t)d;
                if (nde__json_peek(j) == ',') j->i++;
                else if (nde__json_peek(j) != ')') return nde__json_fail(j, "expected ',' or ')' in shape");
            }
            j->i++; seen |= 4;
        } else {
            return nde__json_fail(j, "unknown key (expected descr, fortran_order, shape)");
        }
        if (nde__json_peek(j) == ',') j->i++;
        else if (nde__json_peek(j) != '}') return nde__json_fail(j, "expected ',' or '}'");
    }
    j->i++;
    if (seen != 7) return nde__json_fail(j, "the header lacks descr, fortran_order or shape");
    if (nde__json_peek(j) != -1) return nde__json_fail(j, "text after the closing '}'");
    return 1;
}

NDE_API nde_tensor *nde_load_npy(nde_ctx *ctx, const char *path) {
    const char *who = "nde_load_npy";
    nde__rfile r; unsigned char pre[12]; uint64_t hlen; int lenbytes;
    char *hdr = NULL; nde__npy_header h; nde__dtype dt; nde__json j;
    nde_tensor *t = NULL; nde_real *dst = NULL;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (nde__ropen(ctx, &r, path, who) != NDE_OK) return NULL;
    if (nde__rread(&r, pre, 8, "the magic string and version") != NDE_OK) goto fail;
    if (memcmp(pre, "\x93NUMPY", 6) != 0) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s' is not a .npy file (bad magic string)", who, path); goto fail;
    }
    if (pre[6] < 1 || pre[6] > 3) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': unsupported .npy version %d.%d", who, path, pre[6], pre[7]); goto fail;
    }
    lenbytes = pre[6] == 1 ? 2 : 4;
    if (nde__rread(&r, pre + 8, (uint64_t)lenbytes, "the header length") != NDE_OK) goto fail;
    hlen = nde__load_uint(pre + 8, lenbytes, 0);
    if (hlen > nde__rleft(&r)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': the header length %llu exceeds the %llu bytes left in the file", who,
                     path, (nde__ull)hlen, (nde__ull)nde__rleft(&r));
        goto fail;
    }
    hdr = (char *)NDE_MALLOC((size_t)hlen + 1);
    if (!hdr) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory for the header", who); goto fail; }
    if (nde__rread(&r, hdr, hlen, "the header") != NDE_OK) goto fail;
    hdr[hlen] = 0;
    j.s = hdr; j.n = (size_t)hlen; j.i = 0; j.err = NULL;
    if (!nde__npy_parse(&j, &h)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': bad header at byte %llu: %s", who, path, (nde__ull)j.i, j.err);
        goto fail;
    }
    if (h.fortran) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': fortran_order is True; nde reads C-order arrays only "
                     "(save np.ascontiguousarray(a))", who, path);
        goto fail;
    }
    if (!nde__npy_descr(h.descr, &dt)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': unsupported dtype '%s' (nde reads f2/f4/f8, i1..i8, u1..u8, b1)", who,
                     path, h.descr);
        goto fail;
    }
    if ((uint64_t)h.numel > nde__rleft(&r) / (uint64_t)dt.size || (uint64_t)h.numel * (uint64_t)dt.size != nde__rleft(&r)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': shape holds %lld elements of %d bytes but %llu data bytes follow the header",
                     who, path, (long long)h.numel, dt.size, (nde__ull)nde__rleft(&r));
        goto fail;
    }
    if (h.ndim == 0) { h.ndim = 1; h.shape[0] = 1; }   /* a 0-d array becomes shape (1) */
    t = nde__tensor_new(ctx, h.ndim, h.shape, who);
    if (!t) goto fail;
    dst = ctx->be->is_device ? (nde_real *)NDE_MALLOC((size_t)(t->size ? t->size : 1) * sizeof(nde_real)) : t->data;
    if (!dst) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory", who); goto fail; }
    if (nde__rread_reals(&r, dt, t->size, dst, "the array data") != NDE_OK) goto fail;
    if (dst != t->data && nde_tensor_set_host(ctx, t, dst) != NDE_OK) goto fail;
    if (dst != t->data) NDE_FREE(dst);
    nde__rclose(&r); NDE_FREE(hdr);
    return t;
fail:
    if (t && dst && dst != t->data) NDE_FREE(dst);
    nde__rclose(&r); NDE_FREE(hdr);
    return NULL;
}

/* ------------------------------------------------------------ IDX
   LeCun's MNIST format: 0x00 0x00 type ndims, ndims big-endian u32 sizes,
   then big-endian data. type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64. */
NDE_API nde_tensor *nde_load_idx(nde_ctx *ctx, const char *path) {
    const char *who = "nde_load_idx";
    nde__rfile r; unsigned char magic[4], dims[4 * NDE_MAX_DIMS];
    int64_t shape[NDE_MAX_DIMS], numel = 1; int ndim, d;
    nde__dtype dt; nde_tensor *t = NULL; nde_real *dst = NULL;
    if (!ctx || ctx->status != NDE_OK) return NULL;
    if (nde__ropen(ctx, &r, path, who) != NDE_OK) return NULL;
    if (nde__rread(&r, magic, 4, "the magic number") != NDE_OK) goto fail;
    if (magic[0] == 0x1f && magic[1] == 0x8b) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s' is gzip-compressed; gunzip it first", who, path); goto fail;
    }
    dt.big_endian = 1;
    switch (magic[2]) {
    case 0x08: dt.kind = 'u'; dt.size = 1; break;
    case 0x09: dt.kind = 'i'; dt.size = 1; break;
    case 0x0B: dt.kind = 'i'; dt.size = 2; break;
    case 0x0C: dt.kind = 'i'; dt.size = 4; break;
    case 0x0D: dt.kind = 'f'; dt.size = 4; break;
    case 0x0E: dt.kind = 'f'; dt.size = 8; break;
    default: dt.kind = 0; dt.size = 0; break;
    }
    if (magic[0] != 0 || magic[1] != 0 || !dt.size) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': bad magic number %02x %02x %02x %02x (expected 00 00 <type> <ndims>)",
                     who, path, magic[0], magic[1], magic[2], magic[3]);
        goto fail;
    }
    ndim = magic[3];
    if (ndim < 1 || ndim > NDE_MAX_DIMS) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': %d dimensions, nde supports 1..%d", who, path, ndim, NDE_MAX_DIMS);
        goto fail;
    }
    if (nde__rread(&r, dims, (uint64_t)(4 * ndim), "the dimension sizes") != NDE_OK) goto fail;
    for (d = 0; d < ndim; d++) {
        shape[d] = (int64_t)nde__load_uint(dims + 4 * d, 4, 1);
        if (!nde__mul_ok(numel, shape[d], &numel)) numel = INT64_MAX;
    }
    if ((uint64_t)numel > nde__rleft(&r) / (uint64_t)dt.size || (uint64_t)numel * (uint64_t)dt.size != nde__rleft(&r)) {
        nde_ctx_fail(ctx, NDE_ERR_FORMAT, "%s: '%s': the dimensions hold %lld elements of %d bytes but %llu data bytes follow",
                     who, path, (long long)numel, dt.size, (nde__ull)nde__rleft(&r));
        goto fail;
    }
    t = nde__tensor_new(ctx, ndim, shape, who);
    if (!t) goto fail;
    dst = ctx->be->is_device ? (nde_real *)NDE_MALLOC((size_t)(t->size ? t->size : 1) * sizeof(nde_real)) : t->data;
    if (!dst) { nde_ctx_fail(ctx, NDE_ERR_OOM, "%s: out of memory", who); goto fail; }
    if (nde__rread_reals(&r, dt, t->size, dst, "the data") != NDE_OK) goto fail;
    if (dst != t->data && nde_tensor_set_host(ctx, t, dst) != NDE_OK) goto fail;
    if (dst != t->data) NDE_FREE(dst);
    nde__rclose(&r);
    return t;
fail:
    if (t && dst && dst != t->data) NDE_FREE(dst);
    nde__rclose(&r);
    return NULL;
}
#endif /* NDE_NO_STDIO */

/* ------------------------------------------------------------ CPU backend */
static void *nde__cpu_alloc(void *self, size_t bytes) { (void)self; return NDE_MALLOC(bytes); }
static void nde__cpu_free(void *self, void *p) { (void)self; NDE_FREE(p); }
static nde_status nde__cpu_copy(void *self, void *dst, const void *src, size_t bytes, nde_copy_kind kind) {
    (void)self; (void)kind;
    if (dst != src && bytes) memmove(dst, src, bytes);
    return NDE_OK;
}
static nde_status nde__cpu_sync(void *self) { (void)self; return NDE_OK; }

/* NDE_SECTION_GEMM: the CPU matrix multiply.

   C = alpha op(A) op(B) + beta C, row-major, for float or double. The design
   follows Goto and van de Geijn, "Anatomy of high-performance matrix
   multiplication" (ACM TOMS 34(3), 2008), in the BLIS arrangement:

   - Every operand is addressed through a (row stride, column stride) pair, so
     a transpose is a swap of strides, and C^T = op(B)^T op(A)^T is a swap of
     roles (nde__gemm_mirror). The kernels below pick whichever orientation
     puts a unit stride where they need one.
   - Large products (nde__gemm_packed): for each NC-wide column panel of B and
     each KC-deep slice of k, op(B) is packed into NR-wide slivers (kc x NR,
     row after row; the block stays in the L2 cache). Then, in parallel over
     MR-high row slivers of op(A), each sliver is packed (kc x MR, column after
     column; it stays in L1) and the MR x NR micro-kernel runs it against every
     B sliver. The micro-kernel keeps the MR x NR tile of C in vector registers
     and does one broadcast of A and NR/VLEN fused multiply-adds per row and k.
   - Small products skip packing, whose cost is not repaid when a dimension is
     tiny (the solvers' states have 2 to 64 components): with at most
     NDE__GEMM_TINY_K terms, or at most NDE__GEMM_TINY_ROWS rows of C, the
     "rows" kernel (nde__gemm_rows) vectorises along a row of C and reads rows
     of op(B) in place; with at most NDE__GEMM_TINY_ROWS columns, the "dot"
     kernel (nde__gemm_dot) vectorises along k (rows of op(A) times columns of
     op(B)), or the rows kernel runs on the mirrored product.
   - SIMD through a handful of inline functions on one vector type (nde__vec):
     AVX-512F when __AVX512F__ is defined, else AVX2 with FMA (__AVX2__ and
     __FMA__), else plain C with VLEN 1. Build with -march=native to get them.
   - Buffers: no allocation. The packed B block (NDE__GEMM_KC x NDE__GEMM_NC
     reals, 512 KiB) is an array on the calling thread's stack; each thread
     packs its A sliver (MR x KC reals, at most 24 KiB) into an array on its
     own stack. The CPU backend is a shared constant table, so it cannot own
     buffers, and a static buffer would be global mutable state. A caller on a
     thread with less than about 512 KiB of stack should use a CUDA backend or
     raise its stack size (glibc's default is 8 MiB).
   - Threads (OpenMP): only over independent blocks of C (row slivers, column
     chunks, row groups) and over the slivers being packed. Every element of C
     gets the same operations in the same order whatever the thread count, so
     results are bitwise identical for any number of threads. Products below
     NDE__GEMM_OMP_MIN_FLOPS stay on the calling thread. */

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NDE__UNROLL _Pragma("GCC unroll 16")
#define NDE__INLINE static inline __attribute__((always_inline))
#else
#define NDE__UNROLL
#define NDE__INLINE static inline
#endif

/* ---- the vector type: zero, broadcast, (partial) load and store, fma, sum */
#if defined(__AVX512F__) && !defined(NDE_DOUBLE)
typedef __m512 nde__vec;
#define NDE__VLEN 16
#define NDE__GEMM_MR 12
static inline nde__vec nde__vzero(void) { return _mm512_setzero_ps(); }
static inline nde__vec nde__vset1(nde_real x) { return _mm512_set1_ps(x); }
static inline nde__vec nde__vload(const nde_real *p) { return _mm512_loadu_ps(p); }
static inline void nde__vstore(nde_real *p, nde__vec v) { _mm512_storeu_ps(p, v); }
static inline nde__vec nde__vmul(nde__vec a, nde__vec b) { return _mm512_mul_ps(a, b); }
static inline nde__vec nde__vfma(nde__vec a, nde__vec b, nde__vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline nde__vec nde__vload_n(const nde_real *p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p); }
static inline void nde__vstore_n(nde_real *p, nde__vec v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v); }
static inline nde_real nde__vsum(nde__vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX512F__)
typedef __m512d nde__vec;
#define NDE__VLEN 8
#define NDE__GEMM_MR 12
static inline nde__vec nde__vzero(void) { return _mm512_setzero_pd(); }
static inline nde__vec nde__vset1(nde_real x) { return _mm512_set1_pd(x); }
static inline nde__vec nde__vload(const nde_real *p) { return _mm512_loadu_pd(p); }
static inline void nde__vstore(nde_real *p, nde__vec v) { _mm512_storeu_pd(p, v); }
static inline nde__vec nde__vmul(nde__vec a, nde__vec b) { return _mm512_mul_pd(a, b); }
static inline nde__vec nde__vfma(nde__vec a, nde__vec b, nde__vec c) { return _mm512_fmadd_pd(a, b, c); }
static inline nde__vec nde__vload_n(const nde_real *p, int n) { return _mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1u), p); }
static inline void nde__vstore_n(nde_real *p, nde__vec v, int n) { _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1u), v); }
static inline nde_real nde__vsum(nde__vec v) { return _mm512_reduce_add_pd(v); }
#elif defined(__AVX2__) && defined(__FMA__) && !defined(NDE_DOUBLE)
typedef __m256 nde__vec;
#define NDE__VLEN 8
#define NDE__GEMM_MR 6
static inline __m256i nde__vmask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline nde__vec nde__vzero(void) { return _mm256_setzero_ps(); }
static inline nde__vec nde__vset1(nde_real x) { return _mm256_set1_ps(x); }
static inline nde__vec nde__vload(const nde_real *p) { return _mm256_loadu_ps(p); }
static inline void nde__vstore(nde_real *p, nde__vec v) { _mm256_storeu_ps(p, v); }
static inline nde__vec nde__vmul(nde__vec a, nde__vec b) { return _mm256_mul_ps(a, b); }
static inline nde__vec nde__vfma(nde__vec a, nde__vec b, nde__vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline nde__vec nde__vload_n(const nde_real *p, int n) { return _mm256_maskload_ps(p, nde__vmask(n)); }
static inline void nde__vstore_n(nde_real *p, nde__vec v, int n) { _mm256_maskstore_ps(p, nde__vmask(n), v); }
static inline nde_real nde__vsum(nde__vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256d nde__vec;
#define NDE__VLEN 4
#define NDE__GEMM_MR 6
static inline __m256i nde__vmask(int n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
static inline nde__vec nde__vzero(void) { return _mm256_setzero_pd(); }
static inline nde__vec nde__vset1(nde_real x) { return _mm256_set1_pd(x); }
static inline nde__vec nde__vload(const nde_real *p) { return _mm256_loadu_pd(p); }
static inline void nde__vstore(nde_real *p, nde__vec v) { _mm256_storeu_pd(p, v); }
static inline nde__vec nde__vmul(nde__vec a, nde__vec b) { return _mm256_mul_pd(a, b); }
static inline nde__vec nde__vfma(nde__vec a, nde__vec b, nde__vec c) { return _mm256_fmadd_pd(a, b, c); }
static inline nde__vec nde__vload_n(const nde_real *p, int n) { return _mm256_maskload_pd(p, nde__vmask(n)); }
static inline void nde__vstore_n(nde_real *p, nde__vec v, int n) { _mm256_maskstore_pd(p, nde__vmask(n), v); }
static inline nde_real nde__vsum(nde__vec v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#else
typedef nde_real nde__vec;   /* portable: the compiler may still vectorise */
#define NDE__VLEN 1
#define NDE__GEMM_MR 4
static inline nde__vec nde__vzero(void) { return NDE_R(0.0); }
static inline nde__vec nde__vset1(nde_real x) { return x; }
static inline nde__vec nde__vload(const nde_real *p) { return *p; }
static inline void nde__vstore(nde_real *p, nde__vec v) { *p = v; }
static inline nde__vec nde__vmul(nde__vec a, nde__vec b) { return a * b; }
static inline nde__vec nde__vfma(nde__vec a, nde__vec b, nde__vec c) { return a * b + c; }
static inline nde__vec nde__vload_n(const nde_real *p, int n) { return n > 0 ? *p : NDE_R(0.0); }
static inline void nde__vstore_n(nde_real *p, nde__vec v, int n) { if (n > 0) *p = v; }
static inline nde_real nde__vsum(nde__vec v) { return v; }
#endif

/* dst[r * ldd + c] = src[c * lds + r] for a 4 x 4 block (packing rows of A). */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define NDE__HAVE_TRANSPOSE4 1
#ifdef NDE_DOUBLE
static inline void nde__transpose4(const nde_real *src, int64_t lds, nde_real *dst, int64_t ldd) {
    __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + lds);
    __m256d r2 = _mm256_loadu_pd(src + 2 * lds), r3 = _mm256_loadu_pd(src + 3 * lds);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#else
static inline void nde__transpose4(const nde_real *src, int64_t lds, nde_real *dst, int64_t ldd) {
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds);
    __m128 r2 = _mm_loadu_ps(src + 2 * lds), r3 = _mm_loadu_ps(src + 3 * lds);
    __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);
    __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
    _mm_storeu_ps(dst, _mm_movelh_ps(t0, t2));
    _mm_storeu_ps(dst + ldd, _mm_movehl_ps(t2, t0));
    _mm_storeu_ps(dst + 2 * ldd, _mm_movelh_ps(t1, t3));
    _mm_storeu_ps(dst + 3 * ldd, _mm_movehl_ps(t3, t1));
}
#endif
#endif

/* Blocking. The micro-kernel tile is MR x NR with NR = NV vectors; KC x NC
   is the packed B block (512 KiB in float and double: half the L2 cache of
   a current x86 core). */
#if NDE__VLEN == 1
#define NDE__GEMM_NV 4
#else
#define NDE__GEMM_NV 2
#endif
#define NDE__GEMM_NR (NDE__GEMM_NV * NDE__VLEN)
#define NDE__GEMM_PACK_ROWS 32   /* rows of B per packing task */
#define NDE__GEMM_KC 256
#ifdef NDE_DOUBLE
#define NDE__GEMM_NC 256
#else
#define NDE__GEMM_NC 512
#endif
/* Small-product paths: row groups of the rows/dot kernels, and the width of a
   column chunk of the rows kernel (in vectors). */
#define NDE__GEMM_TINY_ROWS 4
#define NDE__GEMM_TINY_K 8
#define NDE__GEMM_ROWS_NV 4
#define NDE__GEMM_ROWS_W (NDE__GEMM_ROWS_NV * NDE__VLEN)
#define NDE__GEMM_ROWS_PACK_N 1024
#define NDE__GEMM_DOT_KC 1024
/* A product of fewer flops (2mnk) than this runs on one thread: an OpenMP
   fork and join costs a few microseconds. */
#define NDE__GEMM_OMP_MIN_FLOPS (64.0 * (double)NDE_OMP_MIN_WORK)

/* Element (i, j) of a matrix is x[i * rs + j * cs]. */
typedef struct nde__gemm_args {
    int64_t m, n, k;
    nde_real alpha, beta;
    const nde_real *a; int64_t rsa, csa;   /* op(A): m x k */
    const nde_real *b; int64_t rsb, csb;   /* op(B): k x n */
    nde_real *c; int64_t rsc, csc;         /* C:     m x n */
} nde__gemm_args;

/* C^T = op(B)^T op(A)^T: the same product seen from the other side. */
static nde__gemm_args nde__gemm_mirror(const nde__gemm_args *g) {
    nde__gemm_args t = *g;
    t.m = g->n; t.n = g->m;
    t.a = g->b; t.rsa = g->csb; t.csa = g->rsb;
    t.b = g->a; t.rsb = g->csa; t.csb = g->rsa;
    t.rsc = g->csc; t.csc = g->rsc;
    return t;
}

/* Work estimate: the flops, plus the memory traffic of the operands (a skinny
   product with k = 2 writing a 256 x 2000 C is bound by that, not by FMAs). */
static int nde__gemm_threaded(const nde__gemm_args *g) {
    double m = (double)g->m, n = (double)g->n, k = (double)g->k;
    return 2.0 * m * n * k + 16.0 * (m * n + m * k + k * n) >= NDE__GEMM_OMP_MIN_FLOPS;
}

/* 64-byte aligned pointer into a stack array that has NDE__ALIGN bytes spare. */
static nde_real *nde__gemm_align(nde_real *p) {
    return (nde_real *)(void *)((unsigned char *)p + (NDE__ALIGN - (uintptr_t)p % NDE__ALIGN) % NDE__ALIGN);
}

/* C = beta C (C is not read when beta is 0, so NaN there is overwritten). */
static void nde__gemm_scale_c(const nde__gemm_args *g) {
    int64_t i, j;
    for (i = 0; i < g->m; i++) {
        nde_real *ci = g->c + i * g->rsc;
        if (g->beta == NDE_R(0.0)) for (j = 0; j < g->n; j++) ci[j * g->csc] = NDE_R(0.0);
        else if (g->beta != NDE_R(1.0)) for (j = 0; j < g->n; j++) ci[j * g->csc] *= g->beta;
    }
}

/* The update of one vector of C: c = alpha acc + beta c, c not read when beta
   is 0. Every path of the packed kernel goes through it, so a tile computed in
   place and one computed through a temporary give the same bits. */
NDE__INLINE nde__vec nde__gemm_update(nde__vec acc, nde__vec alpha, nde_real beta, nde__vec c) {
    if (beta == NDE_R(0.0)) return nde__vmul(alpha, acc);
    if (beta != NDE_R(1.0)) c = nde__vmul(nde__vset1(beta), c);
    return nde__vfma(alpha, acc, c);
}

/* The same for one element, given alpha acc. */
NDE__INLINE void nde__gemm_update1(nde_real alpha_acc, nde_real beta, nde_real *c) {
    if (beta == NDE_R(0.0)) *c = alpha_acc;
    else if (beta == NDE_R(1.0)) *c = alpha_acc + *c;
    else *c = alpha_acc + beta * *c;
}

/* ---- packed path */

/* Pack an mr x kc block of op(A) (mr <= MR) as kc columns of MR reals,
   dst[p * MR + i] = A(i, p), rows mr..MR-1 zero. */
static void nde__gemm_pack_a(int64_t kc, int64_t mr, const nde_real *a, int64_t rsa, int64_t csa, nde_real *dst) {
    int64_t i, p = 0;
    if (mr == NDE__GEMM_MR && csa == 1) {          /* rows of A contiguous: transpose */
#if defined(NDE__HAVE_TRANSPOSE4) && NDE__GEMM_MR % 4 == 0
        for (; p + 4 <= kc; p += 4)
            for (i = 0; i < NDE__GEMM_MR; i += 4) nde__transpose4(a + i * rsa + p, rsa, dst + p * NDE__GEMM_MR + i, NDE__GEMM_MR);
#endif
        for (; p < kc; p++) {
            NDE__UNROLL for (i = 0; i < NDE__GEMM_MR; i++) dst[p * NDE__GEMM_MR + i] = a[i * rsa + p];
        }
        return;
    }
    for (p = 0; p < kc; p++) {
        const nde_real *ap = a + p * csa;
        nde_real *d = dst + p * NDE__GEMM_MR;
        for (i = 0; i < mr; i++) d[i] = ap[i * rsa];
        for (; i < NDE__GEMM_MR; i++) d[i] = NDE_R(0.0);
    }
}

/* Pack rows p0..p1-1 of a kc x nc block of op(B) into NR-wide slivers of
   kc rows each: dst[s * kc * NR + p * NR + j] = B(p, s * NR + j), columns
   past nc zero. Rows of B are read front to back when contiguous (csb == 1),
   else columns are. */
static void nde__gemm_pack_b(int64_t p0, int64_t p1, int64_t kc, int64_t nc, const nde_real *b, int64_t rsb,
                             int64_t csb, nde_real *dst) {
    int64_t full = nc / NDE__GEMM_NR, s, j, p, p_scalar = p0;
    if (csb == 1) {
        for (p = p0; p < p1; p++) {
            const nde_real *bp = b + p * rsb;
            for (s = 0; s < full; s++) {
                nde_real *d = dst + s * kc * NDE__GEMM_NR + p * NDE__GEMM_NR;
                NDE__UNROLL for (j = 0; j < NDE__GEMM_NV; j++)
                    nde__vstore(d + j * NDE__VLEN, nde__vload(bp + s * NDE__GEMM_NR + j * NDE__VLEN));
            }
        }
    } else {
#ifdef NDE__HAVE_TRANSPOSE4
        if (rsb == 1) {                              /* columns of op(B) contiguous: 4 x 4 transposes */
            int64_t p4 = p0 + (p1 - p0) / 4 * 4;
            for (s = 0; s < full; s++)
                for (p = p0; p < p4; p += 4)
                    for (j = 0; j < NDE__GEMM_NR; j += 4)
                        nde__transpose4(b + (s * NDE__GEMM_NR + j) * csb + p, csb,
                                        dst + s * kc * NDE__GEMM_NR + p * NDE__GEMM_NR + j, NDE__GEMM_NR);
            p_scalar = p4;
        }
#endif
        for (s = 0; s < full; s++)
            for (j = 0; j < NDE__GEMM_NR; j++) {
                const nde_real *bj = b + (s * NDE__GEMM_NR + j) * csb;
                nde_real *d = dst + s * kc * NDE__GEMM_NR + j;
                for (p = p_scalar; p < p1; p++) d[p * NDE__GEMM_NR] = bj[p * rsb];
            }
    }
    if (full * NDE__GEMM_NR < nc) {                  /* the last, partial sliver */
        for (p = p0; p < p1; p++) {
            nde_real *d = dst + full * kc * NDE__GEMM_NR + p * NDE__GEMM_NR;
            for (j = 0; j < NDE__GEMM_NR; j++)
                d[j] = full * NDE__GEMM_NR + j < nc ? b[p * rsb + (full * NDE__GEMM_NR + j) * csb] : NDE_R(0.0);
        }
    }
}

/* The micro-kernel: the full MR x NR tile C = alpha Ap Bp + beta C from a
   packed A sliver (kc x MR) and B sliver (kc x NR). The MR * NV accumulators
   live in registers (12 x 2 zmm with AVX-512, 6 x 2 ymm with AVX2). */
static void nde__gemm_micro(int64_t kc, const nde_real *ap, const nde_real *bp, nde_real alpha, nde_real beta,
                            nde_real *c, int64_t ldc) {
    nde__vec acc[NDE__GEMM_MR][NDE__GEMM_NV], va = nde__vset1(alpha);
    int64_t p;
    int i, j;
    NDE__UNROLL for (i = 0; i < NDE__GEMM_MR; i++)
        NDE__UNROLL for (j = 0; j < NDE__GEMM_NV; j++) acc[i][j] = nde__vzero();
    for (p = 0; p < kc; p++) {
        nde__vec bv[NDE__GEMM_NV];
        NDE__UNROLL for (j = 0; j < NDE__GEMM_NV; j++) bv[j] = nde__vload(bp + j * NDE__VLEN);
        NDE__UNROLL for (i = 0; i < NDE__GEMM_MR; i++) {
            nde__vec ai = nde__vset1(ap[i]);
            NDE__UNROLL for (j = 0; j < NDE__GEMM_NV; j++) acc[i][j] = nde__vfma(ai, bv[j], acc[i][j]);
        }
        ap += NDE__GEMM_MR;
        bp += NDE__GEMM_NR;
    }
    NDE__UNROLL for (i = 0; i < NDE__GEMM_MR; i++) {
        NDE__UNROLL for (j = 0; j < NDE__GEMM_NV; j++) {
            nde_real *cij = c + i * ldc + j * NDE__VLEN;
            nde__vec old = beta == NDE_R(0.0) ? nde__vzero() : nde__vload(cij);
            nde__vstore(cij, nde__gemm_update(acc[i][j], va, beta, old));
        }
    }
}

/* An mr x nr tile of C (edges of C are smaller than MR x NR): in place when
   full, else through an MR x NR temporary holding the valid part of C. */
static void nde__gemm_tile(int64_t kc, const nde_real *ap, const nde_real *bp, nde_real alpha, nde_real beta,
                           nde_real *c, int64_t ldc, int64_t mr, int64_t nr) {
    nde_real tmp_raw[NDE__GEMM_MR * NDE__GEMM_NR + NDE__ALIGN / sizeof(nde_real)];
    nde_real *tmp = nde__gemm_align(tmp_raw);
    int64_t i, j;
    if (mr == NDE__GEMM_MR && nr == NDE__GEMM_NR) { nde__gemm_micro(kc, ap, bp, alpha, beta, c, ldc); return; }
    for (i = 0; i < NDE__GEMM_MR; i++)
        for (j = 0; j < NDE__GEMM_NR; j++)
            tmp[i * NDE__GEMM_NR + j] = (beta != NDE_R(0.0) && i < mr && j < nr) ? c[i * ldc + j] : NDE_R(0.0);
    nde__gemm_micro(kc, ap, bp, alpha, beta, tmp, NDE__GEMM_NR);
    for (i = 0; i < mr; i++)
        for (j = 0; j < nr; j++) c[i * ldc + j] = tmp[i * NDE__GEMM_NR + j];
}

/* The macro-kernel loops around the micro-kernel (C must have csc == 1):
   jc over NC-wide panels, pc over KC-deep slices (beta applies to the first
   slice only), pack the KC x NC block of op(B) (in parallel over its rows),
   then in parallel over MR-high row slivers: pack the A sliver and sweep it
   across the B slivers. kc and nc are balanced so that no block is tiny. */
static void nde__gemm_packed_block(const nde__gemm_args *g, int nde_omp_go) {
    nde_real bbuf_raw[NDE__GEMM_KC * NDE__GEMM_NC + NDE__ALIGN / sizeof(nde_real)];
    nde_real *bbuf = nde__gemm_align(bbuf_raw);
    int64_t k_blocks = (g->k + NDE__GEMM_KC - 1) / NDE__GEMM_KC;
    int64_t kc_max = (g->k + k_blocks - 1) / k_blocks;
    int64_t n_blocks = (g->n + NDE__GEMM_NC - 1) / NDE__GEMM_NC;
    int64_t nc_max = ((g->n + n_blocks - 1) / n_blocks + NDE__GEMM_NR - 1) / NDE__GEMM_NR * NDE__GEMM_NR;
    int64_t m_slivers = (g->m + NDE__GEMM_MR - 1) / NDE__GEMM_MR;
    int64_t jc, pc, t;
    (void)nde_omp_go;
    if (nc_max > NDE__GEMM_NC) nc_max = NDE__GEMM_NC;
    for (jc = 0; jc < g->n; jc += nc_max) {
        int64_t nc = g->n - jc < nc_max ? g->n - jc : nc_max;
        int64_t n_slivers = (nc + NDE__GEMM_NR - 1) / NDE__GEMM_NR;
        for (pc = 0; pc < g->k; pc += kc_max) {
            int64_t kc = g->k - pc < kc_max ? g->k - pc : kc_max;
            nde_real beta = pc == 0 ? g->beta : NDE_R(1.0);
            const nde_real *bblock = g->b + pc * g->rsb + jc * g->csb;
            NDE_OMP_PARALLEL_FOR
            for (t = 0; t < kc; t += NDE__GEMM_PACK_ROWS)
                nde__gemm_pack_b(t, t + NDE__GEMM_PACK_ROWS < kc ? t + NDE__GEMM_PACK_ROWS : kc, kc, nc, bblock,
                                 g->rsb, g->csb, bbuf);
            NDE_OMP_PARALLEL_FOR
            for (t = 0; t < m_slivers; t++) {
                nde_real abuf_raw[NDE__GEMM_MR * NDE__GEMM_KC + NDE__ALIGN / sizeof(nde_real)];
                nde_real *abuf = nde__gemm_align(abuf_raw);
                int64_t i0 = t * NDE__GEMM_MR, s;
                int64_t mr = g->m - i0 < NDE__GEMM_MR ? g->m - i0 : NDE__GEMM_MR;
                nde__gemm_pack_a(kc, mr, g->a + i0 * g->rsa + pc * g->csa, g->rsa, g->csa, abuf);
                for (s = 0; s < n_slivers; s++) {
                    int64_t j0 = s * NDE__GEMM_NR;
                    int64_t nr = nc - j0 < NDE__GEMM_NR ? nc - j0 : NDE__GEMM_NR;
                    nde__gemm_tile(kc, abuf, bbuf + s * kc * NDE__GEMM_NR, g->alpha, beta,
                                   g->c + i0 * g->rsc + jc + j0, g->rsc, mr, nr);
                }
            }
        }
    }
}

/* Threads share out the columns of C when every thread gets at least
   NDE__GEMM_MIN_COLS_PER_THREAD of them: each packs its own blocks of op(B) and
   runs without a barrier (A's slivers are packed once per thread, a cost of
   1/(columns per thread) of the product). Narrower products share out row
   slivers inside one column panel instead. Chunks start on multiples of NR, so
   every element of C sees the same slivers, the same operations in the same
   order, whatever the thread count. */
#define NDE__GEMM_MIN_COLS_PER_THREAD 256
static void nde__gemm_packed(const nde__gemm_args *g) {
    int nde_omp_go = nde__gemm_threaded(g);
#ifdef _OPENMP
    int threads = nde_omp_go ? omp_get_max_threads() : 1;
    if (threads > 1 && g->n >= (int64_t)threads * NDE__GEMM_MIN_COLS_PER_THREAD) {
        int64_t slivers = (g->n + NDE__GEMM_NR - 1) / NDE__GEMM_NR;
        int part;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (part = 0; part < threads; part++) {
            nde__gemm_args sub = *g;
            int64_t j0 = slivers * part / threads * NDE__GEMM_NR;
            int64_t j1 = slivers * (part + 1) / threads * NDE__GEMM_NR;
            if (j1 > g->n) j1 = g->n;
            sub.n = j1 - j0;
            sub.b = g->b + j0 * g->csb;
            sub.c = g->c + j0;
            if (sub.n > 0) nde__gemm_packed_block(&sub, 0);
        }
        return;
    }
#endif
    nde__gemm_packed_block(g, nde_omp_go);
}

/* ---- small products without packing */

/* Rows kernel, one tile: ROWS (1..4) rows of C times a chunk of ncols <=
   ROWS_W columns, C(i, j) = alpha sum_p A(i, p) B(p, j) + beta C(i, j), with
   rows of B contiguous (b[p * rsb + j]). Vectors run along the row of C; the
   last chunk of a row uses partial loads. With csc != 1 (a mirrored product)
   the tile goes through a temporary and a scalar update. rows and full are constants after
   inlining, so the accumulators stay in registers. */
NDE__INLINE void nde__gemm_rows_body(int rows, int full, int64_t k, const nde_real *a, int64_t rsa, int64_t csa,
                                     const nde_real *b, int64_t rsb, int ncols, nde_real alpha, nde_real beta,
                                     nde_real *c, int64_t rsc, int64_t csc) {
    nde__vec acc[NDE__GEMM_TINY_ROWS][NDE__GEMM_ROWS_NV], va = nde__vset1(alpha);
    nde_real tmp[NDE__GEMM_TINY_ROWS * NDE__GEMM_ROWS_W];
    int cnt[NDE__GEMM_ROWS_NV];
    int64_t p;
    int i, j, jj;
    for (j = 0; j < NDE__GEMM_ROWS_NV; j++) {
        int left = ncols - j * NDE__VLEN;
        cnt[j] = left < 0 ? 0 : left > NDE__VLEN ? NDE__VLEN : left;
    }
    NDE__UNROLL for (i = 0; i < rows; i++)
        NDE__UNROLL for (j = 0; j < NDE__GEMM_ROWS_NV; j++) acc[i][j] = nde__vzero();
    for (p = 0; p < k; p++) {
        const nde_real *bp = b + p * rsb;
        nde__vec bv[NDE__GEMM_ROWS_NV];
        NDE__UNROLL for (j = 0; j < NDE__GEMM_ROWS_NV; j++)
            bv[j] = full ? nde__vload(bp + j * NDE__VLEN) : nde__vload_n(bp + j * NDE__VLEN, cnt[j]);
        NDE__UNROLL for (i = 0; i < rows; i++) {
            nde__vec ai = nde__vset1(a[i * rsa + p * csa]);
            NDE__UNROLL for (j = 0; j < NDE__GEMM_ROWS_NV; j++) acc[i][j] = nde__vfma(ai, bv[j], acc[i][j]);
        }
    }
    if (csc != 1) {                                  /* C^T: through a temporary */
        NDE__UNROLL for (i = 0; i < rows; i++)
            NDE__UNROLL for (j = 0; j < NDE__GEMM_ROWS_NV; j++)
                nde__vstore(tmp + i * NDE__GEMM_ROWS_W + j * NDE__VLEN, acc[i][j]);
        for (i = 0; i < rows; i++)
            for (jj = 0; jj < ncols; jj++) nde__gemm_update1(alpha * tmp[i * NDE__GEMM_ROWS_W + jj], beta, c + i * rsc + jj * csc);
        return;
    }
    NDE__UNROLL for (i = 0; i < rows; i++) {
        NDE__UNROLL for (j = 0; j < NDE__GEMM_ROWS_NV; j++) {
            nde_real *cij = c + i * rsc + j * NDE__VLEN;
            if (full) {
                nde__vec old = beta == NDE_R(0.0) ? nde__vzero() : nde__vload(cij);
                nde__vstore(cij, nde__gemm_update(acc[i][j], va, beta, old));
            } else {
                nde__vec old = beta == NDE_R(0.0) ? nde__vzero() : nde__vload_n(cij, cnt[j]);
                nde__vstore_n(cij, nde__gemm_update(acc[i][j], va, beta, old), cnt[j]);
            }
        }
    }
}

static void nde__gemm_rows_tile(int rows, int64_t k, const nde_real *a, int64_t rsa, int64_t csa, const nde_real *b,
                                int64_t rsb, int ncols, nde_real alpha, nde_real beta, nde_real *c, int64_t rsc,
                                int64_t csc) {
    int full = ncols == NDE__GEMM_ROWS_W;
    switch (rows * 2 + full) {
    case 9: nde__gemm_rows_body(4, 1, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 8: nde__gemm_rows_body(4, 0, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 7: nde__gemm_rows_body(3, 1, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 6: nde__gemm_rows_body(3, 0, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 5: nde__gemm_rows_body(2, 1, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 4: nde__gemm_rows_body(2, 0, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    case 3: nde__gemm_rows_body(1, 1, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    default: nde__gemm_rows_body(1, 0, k, a, rsa, csa, b, rsb, ncols, alpha, beta, c, rsc, csc); break;
    }
}

/* Rows kernel driver: tiles of TINY_ROWS rows x ROWS_W columns in row-major
   order, so each thread writes one contiguous stretch of C; in parallel over
   tiles. Rows of op(B) are read in place when contiguous (csb == 1);
   otherwise (only when k <= TINY_K) op(B) is copied, ROWS_PACK_N columns at a
   time, to a row-major buffer first. */
static void nde__gemm_rows(const nde__gemm_args *g) {
    nde_real bbuf[NDE__GEMM_TINY_K * NDE__GEMM_ROWS_PACK_N];
    int64_t groups = (g->m + NDE__GEMM_TINY_ROWS - 1) / NDE__GEMM_TINY_ROWS;
    int64_t block_n = g->csb == 1 ? g->n : NDE__GEMM_ROWS_PACK_N, jb, t, p, j;
    int nde_omp_go = nde__gemm_threaded(g);
    (void)nde_omp_go;
    NDE_ASSERT(g->csb == 1 || g->k <= NDE__GEMM_TINY_K);
    for (jb = 0; jb < g->n; jb += block_n) {
        int64_t nb = g->n - jb < block_n ? g->n - jb : block_n;
        int64_t chunks = (nb + NDE__GEMM_ROWS_W - 1) / NDE__GEMM_ROWS_W, rsb = g->rsb;
        const nde_real *b = g->b + jb * g->csb;
        if (g->csb != 1) {
            for (j = 0; j < nb; j++)
                for (p = 0; p < g->k; p++) bbuf[p * nb + j] = b[p * g->rsb + j * g->csb];
            b = bbuf;
            rsb = nb;
        }
        NDE_OMP_PARALLEL_FOR
        for (t = 0; t < groups * chunks; t++) {
            int64_t i0 = t / chunks * NDE__GEMM_TINY_ROWS, j0 = t % chunks * NDE__GEMM_ROWS_W;
            int rows = (int)(g->m - i0 < NDE__GEMM_TINY_ROWS ? g->m - i0 : NDE__GEMM_TINY_ROWS);
            int ncols = (int)(nb - j0 < NDE__GEMM_ROWS_W ? nb - j0 : NDE__GEMM_ROWS_W);
            nde__gemm_rows_tile(rows, g->k, g->a + i0 * g->rsa, g->rsa, g->csa, b + j0, rsb, ncols, g->alpha, g->beta,
                                g->c + i0 * g->rsc + (jb + j0) * g->csc, g->rsc, g->csc);
        }
    }
}

/* Dot kernel, one tile: ROWS (4 or 1) rows of C times its COLS (1..4)
   columns, each element a dot product along k of a contiguous row of op(A)
   (a[i * rsa + p]) and a contiguous column of op(B) (bt[j * ldbt + p]). The
   vectors run along k, the last one partial; each sum is reduced in a fixed
   order. */
NDE__INLINE void nde__gemm_dot_body(int rows, int cols, int64_t k, const nde_real *a, int64_t rsa,
                                    const nde_real *bt, int64_t ldbt, nde_real alpha, nde_real beta,
                                    nde_real *c, int64_t rsc, int64_t csc) {
    nde__vec acc[NDE__GEMM_TINY_ROWS][NDE__GEMM_TINY_ROWS];
    int64_t p;
    int i, j, tail = (int)(k % NDE__VLEN);
    NDE__UNROLL for (i = 0; i < rows; i++)
        NDE__UNROLL for (j = 0; j < cols; j++) acc[i][j] = nde__vzero();
    for (p = 0; p + NDE__VLEN <= k; p += NDE__VLEN) {
        nde__vec bv[NDE__GEMM_TINY_ROWS];
        NDE__UNROLL for (j = 0; j < cols; j++) bv[j] = nde__vload(bt + j * ldbt + p);
        NDE__UNROLL for (i = 0; i < rows; i++) {
            nde__vec ai = nde__vload(a + i * rsa + p);
            NDE__UNROLL for (j = 0; j < cols; j++) acc[i][j] = nde__vfma(ai, bv[j], acc[i][j]);
        }
    }
    if (tail) {
        nde__vec bv[NDE__GEMM_TINY_ROWS];
        NDE__UNROLL for (j = 0; j < cols; j++) bv[j] = nde__vload_n(bt + j * ldbt + p, tail);
        NDE__UNROLL for (i = 0; i < rows; i++) {
            nde__vec ai = nde__vload_n(a + i * rsa + p, tail);
            NDE__UNROLL for (j = 0; j < cols; j++) acc[i][j] = nde__vfma(ai, bv[j], acc[i][j]);
        }
    }
    NDE__UNROLL for (i = 0; i < rows; i++) {
        NDE__UNROLL for (j = 0; j < cols; j++) {
            nde__gemm_update1(alpha * nde__vsum(acc[i][j]), beta, c + i * rsc + j * csc);
        }
    }
}

static void nde__gemm_dot_tile(int rows, int cols, int64_t k, const nde_real *a, int64_t rsa, const nde_real *bt,
                               int64_t ldbt, nde_real alpha, nde_real beta, nde_real *c, int64_t rsc, int64_t csc) {
    switch ((rows == NDE__GEMM_TINY_ROWS ? 4 : 0) + cols) {
    case 8: nde__gemm_dot_body(4, 4, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 7: nde__gemm_dot_body(4, 3, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 6: nde__gemm_dot_body(4, 2, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 5: nde__gemm_dot_body(4, 1, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 4: nde__gemm_dot_body(1, 4, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 3: nde__gemm_dot_body(1, 3, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    case 2: nde__gemm_dot_body(1, 2, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    default: nde__gemm_dot_body(1, 1, k, a, rsa, bt, ldbt, alpha, beta, c, rsc, csc); break;
    }
}

/* Dot kernel driver for n <= TINY_ROWS columns and rows of op(A) contiguous
   (csa == 1), in parallel over groups of rows. Columns of op(B) are read in
   place when contiguous (rsb == 1); otherwise k is cut into DOT_KC slices and
   each slice of op(B)^T is copied to a small buffer first (beta then applies
   to the first slice only). */
static void nde__gemm_dot(const nde__gemm_args *g) {
    nde_real bt_buf[NDE__GEMM_TINY_ROWS * NDE__GEMM_DOT_KC];
    int64_t groups = (g->m + NDE__GEMM_TINY_ROWS - 1) / NDE__GEMM_TINY_ROWS;
    int64_t kd_max = g->rsb == 1 ? g->k : NDE__GEMM_DOT_KC, p0, p, j, t;
    int cols = (int)g->n;
    int nde_omp_go = nde__gemm_threaded(g);
    (void)nde_omp_go;
    NDE_ASSERT(g->n <= NDE__GEMM_TINY_ROWS && g->csa == 1);
    for (p0 = 0; p0 < g->k; p0 += kd_max) {
        int64_t kd = g->k - p0 < kd_max ? g->k - p0 : kd_max, ldbt = kd;
        nde_real beta = p0 == 0 ? g->beta : NDE_R(1.0);
        const nde_real *bt = bt_buf;
        if (g->rsb == 1) { bt = g->b + p0; ldbt = g->csb; }
        else for (j = 0; j < cols; j++)
                for (p = 0; p < kd; p++) bt_buf[j * kd + p] = g->b[(p0 + p) * g->rsb + j * g->csb];
        NDE_OMP_PARALLEL_FOR
        for (t = 0; t < groups; t++) {
            int64_t i0 = t * NDE__GEMM_TINY_ROWS, i;
            const nde_real *a = g->a + i0 * g->rsa + p0;
            nde_real *c = g->c + i0 * g->rsc;
            if (g->m - i0 >= NDE__GEMM_TINY_ROWS)
                nde__gemm_dot_tile(NDE__GEMM_TINY_ROWS, cols, kd, a, g->rsa, bt, ldbt, g->alpha, beta, c, g->rsc, g->csc);
            else for (i = 0; i < g->m - i0; i++)
                nde__gemm_dot_tile(1, cols, kd, a + i * g->rsa, g->rsa, bt, ldbt, g->alpha, beta, c + i * g->rsc,
                                   g->rsc, g->csc);
        }
    }
}

/* Picks the path for a product with m, n, k >= 1 and alpha != 0. */
static void nde__gemm_dispatch(const nde__gemm_args *g) {
    nde__gemm_args t;
    if (g->n <= NDE__GEMM_TINY_ROWS) {               /* a few columns of C */
        if (g->csa == 1) { nde__gemm_dot(g); return; }
        t = nde__gemm_mirror(g);                     /* rows of C^T along m */
        nde__gemm_rows(&t);
        return;
    }
    if (g->m <= NDE__GEMM_TINY_ROWS) {               /* a few rows of C */
        if (g->csb == 1) { nde__gemm_rows(g); return; }
        t = nde__gemm_mirror(g);                     /* columns of op(B) are contiguous */
        nde__gemm_dot(&t);
        return;
    }
    if (g->k <= NDE__GEMM_TINY_K) { nde__gemm_rows(g); return; }   /* a low-rank update */
    nde__gemm_packed(g);
}

static void nde__cpu_gemm(void *self, int ta, int tb, int64_t m, int64_t n, int64_t k, nde_real alpha,
                          const nde_real *a, int64_t lda, const nde_real *b, int64_t ldb,
                          nde_real beta, nde_real *c, int64_t ldc) {
    nde__gemm_args g;
    (void)self;
    if (m <= 0 || n <= 0) return;
    g.m = m; g.n = n; g.k = k; g.alpha = alpha; g.beta = beta;
    g.a = a; g.rsa = ta ? 1 : lda; g.csa = ta ? lda : 1;
    g.b = b; g.rsb = tb ? 1 : ldb; g.csb = tb ? ldb : 1;
    g.c = c; g.rsc = ldc; g.csc = 1;
    if (k <= 0 || alpha == NDE_R(0.0)) { nde__gemm_scale_c(&g); return; }
    nde__gemm_dispatch(&g);
}

static nde_real nde__softplus1(nde_real x) {
    /* log(1 + e^x) without overflow */
    return x > NDE_R(0.0) ? x + nde__log1p(nde__exp(-x)) : nde__log1p(nde__exp(x));
}
static nde_real nde__sigmoid1(nde_real x) {
    if (x >= NDE_R(0.0)) return NDE_R(1.0) / (NDE_R(1.0) + nde__exp(-x));
    { nde_real e = nde__exp(x); return e / (NDE_R(1.0) + e); }
}
static nde_real nde__powi1(nde_real x, int n) {
    nde_real r = NDE_R(1.0), b = x; int e = n < 0 ? -n : n;
    while (e) { if (e & 1) r *= b; b *= b; e >>= 1; }
    return n < 0 ? NDE_R(1.0) / r : r;
}

static void nde__cpu_unary_range(nde_unary_op op, int64_t n, const nde_real *x, nde_real al, nde_real *y) {
    int64_t i;
#ifndef NDE_DOUBLE
    (void)nde__softplus1; (void)nde__sigmoid1;   /* the float build uses the vectorisable forms */
#endif
    switch (op) {
    case NDE_UNARY_NEG: for (i = 0; i < n; i++) y[i] = -x[i]; break;
    case NDE_UNARY_SCALE: for (i = 0; i < n; i++) y[i] = al * x[i]; break;
    case NDE_UNARY_ADD_SCALAR: for (i = 0; i < n; i++) y[i] = x[i] + al; break;
    case NDE_UNARY_SQUARE: for (i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case NDE_UNARY_SQRT: for (i = 0; i < n; i++) y[i] = nde__sqrt(x[i]); break;
    case NDE_UNARY_EXP: for (i = 0; i < n; i++) y[i] = nde__exp(x[i]); break;
    case NDE_UNARY_LOG: for (i = 0; i < n; i++) y[i] = nde__log(x[i]); break;
    case NDE_UNARY_SIN: for (i = 0; i < n; i++) y[i] = nde__sin(x[i]); break;
    case NDE_UNARY_COS: for (i = 0; i < n; i++) y[i] = nde__cos(x[i]); break;
#ifdef NDE_DOUBLE
    case NDE_UNARY_TANH: for (i = 0; i < n; i++) y[i] = nde__tanh(x[i]); break;
    case NDE_UNARY_SIGMOID: for (i = 0; i < n; i++) y[i] = nde__sigmoid1(x[i]); break;
#else
    case NDE_UNARY_TANH: for (i = 0; i < n; i++) y[i] = nde__tanh_float(x[i]); break;
    case NDE_UNARY_SIGMOID: for (i = 0; i < n; i++) y[i] = nde__sigmoid_float(x[i]); break;
#endif
#ifdef NDE_DOUBLE
    case NDE_UNARY_SOFTPLUS: for (i = 0; i < n; i++) y[i] = nde__softplus1(x[i]); break;
#else
    case NDE_UNARY_SOFTPLUS: for (i = 0; i < n; i++) y[i] = nde__softplus_float(x[i]); break;
#endif
    case NDE_UNARY_RELU: for (i = 0; i < n; i++) y[i] = x[i] > NDE_R(0.0) ? x[i] : NDE_R(0.0); break;
    case NDE_UNARY_LEAKY_RELU: for (i = 0; i < n; i++) y[i] = x[i] > NDE_R(0.0) ? x[i] : al * x[i]; break;
    case NDE_UNARY_ELU: for (i = 0; i < n; i++) y[i] = x[i] > NDE_R(0.0) ? x[i] : al * nde__expm1(x[i]); break;
    case NDE_UNARY_ABS: for (i = 0; i < n; i++) y[i] = nde__fabs(x[i]); break;
    case NDE_UNARY_POWI: for (i = 0; i < n; i++) y[i] = nde__powi1(x[i], (int)al); break;
    }
}

static void nde__cpu_unary_backward_range(nde_unary_op op, int64_t n, const nde_real *x, const nde_real *y,
                                          const nde_real *dy, nde_real al, nde_real *dx) {
    int64_t i;
    switch (op) {
    case NDE_UNARY_NEG: for (i = 0; i < n; i++) dx[i] -= dy[i]; break;
    case NDE_UNARY_SCALE: for (i = 0; i < n; i++) dx[i] += al * dy[i]; break;
    case NDE_UNARY_ADD_SCALAR: for (i = 0; i < n; i++) dx[i] += dy[i]; break;
    case NDE_UNARY_SQUARE: for (i = 0; i < n; i++) dx[i] += NDE_R(2.0) * x[i] * dy[i]; break;
    case NDE_UNARY_SQRT: for (i = 0; i < n; i++) dx[i] += dy[i] / (NDE_R(2.0) * y[i]); break;
    case NDE_UNARY_EXP: for (i = 0; i < n; i++) dx[i] += dy[i] * y[i]; break;
    case NDE_UNARY_LOG: for (i = 0; i < n; i++) dx[i] += dy[i] / x[i]; break;
    case NDE_UNARY_SIN: for (i = 0; i < n; i++) dx[i] += dy[i] * nde__cos(x[i]); break;
    case NDE_UNARY_COS: for (i = 0; i < n; i++) dx[i] -= dy[i] * nde__sin(x[i]); break;
    case NDE_UNARY_TANH: for (i = 0; i < n; i++) dx[i] += dy[i] * (NDE_R(1.0) - y[i] * y[i]); break;
    case NDE_UNARY_SIGMOID: for (i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (NDE_R(1.0) - y[i]); break;
    case NDE_UNARY_RELU: for (i = 0; i < n; i++) dx[i] += x[i] > NDE_R(0.0) ? dy[i] : NDE_R(0.0); break;
    case NDE_UNARY_LEAKY_RELU: for (i = 0; i < n; i++) dx[i] += x[i] > NDE_R(0.0) ? dy[i] : al * dy[i]; break;
#ifdef NDE_DOUBLE
    case NDE_UNARY_SOFTPLUS: for (i = 0; i < n; i++) dx[i] += dy[i] * nde__sigmoid1(x[i]); break;
#else
    case NDE_UNARY_SOFTPLUS: for (i = 0; i < n; i++) dx[i] += dy[i] * nde__sigmoid_float(x[i]); break;
#endif
    case NDE_UNARY_ELU: for (i = 0; i < n; i++) dx[i] += x[i] > NDE_R(0.0) ? dy[i] : dy[i] * (y[i] + al); break;
    case NDE_UNARY_ABS: for (i = 0; i < n; i++) dx[i] += x[i] > NDE_R(0.0) ? dy[i] : (x[i] < NDE_R(0.0) ? -dy[i] : NDE_R(0.0)); break;
    case NDE_UNARY_POWI: for (i = 0; i < n; i++) dx[i] += dy[i] * al * nde__powi1(x[i], (int)al - 1); break;
    }
}

/* Elementwise kernels run over fixed chunks, in parallel when the work is large
   (transcendental ops count 16 per element); each element is computed the same
   way whatever the thread count. */
#define NDE__CHUNK 4096
#define NDE__LINCOMB_MAX 32
static int nde__unary_cost(nde_unary_op op) {
    switch (op) {
    case NDE_UNARY_NEG: case NDE_UNARY_SCALE: case NDE_UNARY_ADD_SCALAR: case NDE_UNARY_SQUARE:
    case NDE_UNARY_RELU: case NDE_UNARY_LEAKY_RELU: case NDE_UNARY_ABS: return 1;
    default: return 16;
    }
}
static void nde__cpu_unary(void *self, nde_unary_op op, int64_t n, const nde_real *x, nde_real al, nde_real *y) {
    int64_t c, chunks = (n + NDE__CHUNK - 1) / NDE__CHUNK;
    int nde_omp_go = n * nde__unary_cost(op) > NDE_OMP_MIN_WORK && chunks > 1;
    (void)self;
    if (!nde_omp_go) { nde__cpu_unary_range(op, n, x, al, y); return; }   /* no OpenMP call at all */
    NDE_OMP_PARALLEL_FOR
    for (c = 0; c < chunks; c++) {
        int64_t lo = c * NDE__CHUNK, len = n - lo < NDE__CHUNK ? n - lo : NDE__CHUNK;
        nde__cpu_unary_range(op, len, x + lo, al, y + lo);
    }
}
static void nde__cpu_unary_backward(void *self, nde_unary_op op, int64_t n, const nde_real *x, const nde_real *y,
                                    const nde_real *dy, nde_real al, nde_real *dx) {
    int64_t c, chunks = (n + NDE__CHUNK - 1) / NDE__CHUNK;
    int nde_omp_go = n * nde__unary_cost(op) > NDE_OMP_MIN_WORK && chunks > 1;
    (void)self;
    if (!nde_omp_go) { nde__cpu_unary_backward_range(op, n, x, y, dy, al, dx); return; }
    NDE_OMP_PARALLEL_FOR
    for (c = 0; c < chunks; c++) {
        int64_t lo = c * NDE__CHUNK, len = n - lo < NDE__CHUNK ? n - lo : NDE__CHUNK;
        nde__cpu_unary_backward_range(op, len, x ? x + lo : NULL, y ? y + lo : NULL, dy + lo, al, dx + lo);
    }
}

static void nde__cpu_fill_range(int64_t n, nde_real v, nde_real *x) {
    int64_t i;
    if (v == NDE_R(0.0) && !signbit(v)) { memset(x, 0, sizeof(nde_real) * (size_t)n); return; }   /* +0.0: all zero bits */
    for (i = 0; i < n; i++) x[i] = v;
}
static void nde__cpu_fill(void *self, int64_t n, nde_real v, nde_real *x) {
    int64_t c, chunks = (n + NDE__CHUNK - 1) / NDE__CHUNK;
    int nde_omp_go = n > NDE_OMP_MIN_WORK && chunks > 1;
    (void)self;
    if (!nde_omp_go) { nde__cpu_fill_range(n, v, x); return; }
    NDE_OMP_PARALLEL_FOR
    for (c = 0; c < chunks; c++) {
        int64_t lo = c * NDE__CHUNK, len = n - lo < NDE__CHUNK ? n - lo : NDE__CHUNK;
        nde__cpu_fill_range(len, v, x + lo);
    }
}

/* Rows r0..r1-1 of the broadcast binary op (a row: the last axis, columns
   j0..j1-1; rows counted over the first three axes). */
static void nde__cpu_binary_block(nde_binary_op op, const int64_t *sh, const nde_real *a, const int64_t *sa,
                                  const nde_real *b, const int64_t *sb, nde_real *out, int64_t r0, int64_t r1,
                                  int64_t j0, int64_t j1) {
    int64_t r, i3, s3a = sa[3], s3b = sb[3];
    int64_t i2 = r0 % sh[2], i1 = r0 / sh[2] % sh[1], i0 = r0 / (sh[2] * sh[1]);
    for (r = r0; r < r1; r++) {
        const nde_real *ap = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
        const nde_real *bp = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        nde_real *o = out + r * sh[3];
        switch (op) {
        case NDE_BINARY_ADD:
            if (s3a == 1 && s3b == 1) for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3] + bp[i3];
            else for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3 * s3a] + bp[i3 * s3b];
            break;
        case NDE_BINARY_SUB: for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3 * s3a] - bp[i3 * s3b]; break;
        case NDE_BINARY_MUL:
            if (s3a == 1 && s3b == 1) for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3] * bp[i3];
            else for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3 * s3a] * bp[i3 * s3b];
            break;
        case NDE_BINARY_DIV: for (i3 = j0; i3 < j1; i3++) o[i3] = ap[i3 * s3a] / bp[i3 * s3b]; break;
        }
        if (++i2 == sh[2]) { i2 = 0; if (++i1 == sh[1]) { i1 = 0; i0++; } }
    }
}
/* Large ops run in parallel over tasks of about NDE__CHUNK elements: whole rows
   when rows are short, pieces of a row when rows are long. Each output element
   is written by one task, so results do not depend on the thread count. */
static void nde__cpu_binary(void *self, nde_binary_op op, const int64_t *sh, const nde_real *a, const int64_t *sa,
                            const nde_real *b, const int64_t *sb, nde_real *out) {
    int64_t rows = sh[0] * sh[1] * sh[2], cols = sh[3];
    int64_t rows_per_task = cols >= NDE__CHUNK ? 1 : NDE__CHUNK / (cols > 0 ? cols : 1);
    int64_t col_tasks = cols > NDE__CHUNK ? (cols + NDE__CHUNK - 1) / NDE__CHUNK : 1;
    int64_t row_tasks = (rows + rows_per_task - 1) / rows_per_task, t;
    int nde_omp_go = rows * cols > NDE_OMP_MIN_WORK && row_tasks * col_tasks > 1;
    (void)self;
    if (!nde_omp_go) { nde__cpu_binary_block(op, sh, a, sa, b, sb, out, 0, rows, 0, cols); return; }
    NDE_OMP_PARALLEL_FOR
    for (t = 0; t < row_tasks * col_tasks; t++) {
        int64_t rt = t / col_tasks, ct = t % col_tasks;
        int64_t r0 = rt * rows_per_task, r1 = r0 + rows_per_task < rows ? r0 + rows_per_task : rows;
        int64_t j0 = ct * NDE__CHUNK, j1 = j0 + NDE__CHUNK < cols ? j0 + NDE__CHUNK : cols;
        nde__cpu_binary_block(op, sh, a, sa, b, sb, out, r0, r1, j0, j1);
    }
}

static void nde__cpu_reduce_add(void *self, const int64_t *sh, const nde_real *x, nde_real alpha,
                                nde_real *out, const int64_t *os) {
    int64_t i0, i1, i2, i3; const nde_real *xp = x; (void)self;
    for (i0 = 0; i0 < sh[0]; i0++)
    for (i1 = 0; i1 < sh[1]; i1++)
    for (i2 = 0; i2 < sh[2]; i2++) {
        nde_real *op = out + i0 * os[0] + i1 * os[1] + i2 * os[2];
        if (os[3] == 0) {
            double s = 0.0;
            for (i3 = 0; i3 < sh[3]; i3++) s += xp[i3];
            op[0] += alpha * (nde_real)s;
        } else {
            for (i3 = 0; i3 < sh[3]; i3++) op[i3 * os[3]] += alpha * xp[i3];
        }
        xp += sh[3];
    }
}

static void nde__cpu_lincomb_range(int64_t n, int count, const nde_real *coef, const nde_real *const *xs,
                                   int acc, nde_real *out) {
    int64_t i; int j;
    if (!acc) {
        const nde_real *x0 = xs[0]; nde_real c0 = coef[0];
        for (i = 0; i < n; i++) out[i] = c0 * x0[i];
        j = 1;
    } else j = 0;
    for (; j < count; j++) {
        const nde_real *xj = xs[j]; nde_real cj = coef[j];
        if (cj == NDE_R(0.0)) continue;
        for (i = 0; i < n; i++) out[i] += cj * xj[i];
    }
}

static void nde__cpu_lincomb(void *self, int64_t n, int count, const nde_real *coef, const nde_real *const *xs,
                             int acc, nde_real *out) {
    int64_t c, chunks = (n + NDE__CHUNK - 1) / NDE__CHUNK;
    int nde_omp_go = n * count > NDE_OMP_MIN_WORK && chunks > 1;
    (void)self;
    if (!nde_omp_go || count > NDE__LINCOMB_MAX) { nde__cpu_lincomb_range(n, count, coef, xs, acc, out); return; }
    NDE_OMP_PARALLEL_FOR
    for (c = 0; c < chunks; c++) {
        const nde_real *part[NDE__LINCOMB_MAX] = {0};
        int64_t lo = c * NDE__CHUNK, len = n - lo < NDE__CHUNK ? n - lo : NDE__CHUNK;
        int j;
        for (j = 0; j < count; j++) part[j] = xs[j] + lo;
        nde__cpu_lincomb_range(len, count, coef, part, acc, out + lo);
    }
}

static void nde__cpu_copy2d(void *self, int64_t rows, int64_t cols, const nde_real *src, int64_t sld,
                            nde_real *dst, int64_t dld, int acc) {
    int64_t r, c; (void)self;
    for (r = 0; r < rows; r++) {
        if (acc) for (c = 0; c < cols; c++) dst[r * dld + c] += src[r * sld + c];
        else memcpy(dst + r * dld, src + r * sld, (size_t)cols * sizeof(nde_real));
    }
}
static void nde__cpu_transpose(void *self, int64_t rows, int64_t cols, const nde_real *src, nde_real *dst, int acc) {
    int64_t r, c; (void)self;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            if (acc) dst[c * rows + r] += src[r * cols + c];
            else dst[c * rows + r] = src[r * cols + c];
        }
}
static void nde__cpu_gather_rows(void *self, int64_t count, int64_t cols, const int64_t *idx, const nde_real *src, nde_real *dst) {
    int64_t i; (void)self;
    for (i = 0; i < count; i++) memcpy(dst + i * cols, src + idx[i] * cols, (size_t)cols * sizeof(nde_real));
}
static void nde__cpu_scatter_add_rows(void *self, int64_t count, int64_t cols, const int64_t *idx, const nde_real *src, nde_real *dst) {
    int64_t i, c; (void)self;
    for (i = 0; i < count; i++) for (c = 0; c < cols; c++) dst[idx[i] * cols + c] += src[i * cols + c];
}
/* sparse CSR (zoo issue): rows in parallel; the transpose scatters serially (deterministic) */
static void nde__cpu_csr_matmul(void *self, int64_t rows, int64_t f, const int64_t *rp, const int64_t *ci,
                                const nde_real *v, const nde_real *x, nde_real *y, int transpose, int accumulate) {
    int64_t i; (void)self;
    if (!transpose) {
        int nde_omp_go = rp[rows] * f > NDE_OMP_MIN_WORK;
        (void)nde_omp_go;
        NDE_OMP_PARALLEL_FOR
        for (i = 0; i < rows; i++) {
            int64_t k, c;
            nde_real *yi = y + i * f;
            if (!accumulate) for (c = 0; c < f; c++) yi[c] = NDE_R(0.0);
            for (k = rp[i]; k < rp[i + 1]; k++) {
                const nde_real *xj = x + ci[k] * f;
                for (c = 0; c < f; c++) yi[c] += v[k] * xj[c];
            }
        }
    } else {
        for (i = 0; i < rows; i++) {
            int64_t k, c;
            const nde_real *xi = x + i * f;
            for (k = rp[i]; k < rp[i + 1]; k++) {
                nde_real *yj = y + ci[k] * f;
                for (c = 0; c < f; c++) yj[c] += v[k] * xi[c];
            }
        }
    }
}
static void nde__cpu_csr_sddmm(void *self, int64_t rows, int64_t f, const int64_t *rp, const int64_t *ci,
                               const nde_real *dy, const nde_real *x, nde_real *dv) {
    int64_t i; int nde_omp_go = rp[rows] * f > NDE_OMP_MIN_WORK;
    (void)self; (void)nde_omp_go;
    NDE_OMP_PARALLEL_FOR
    for (i = 0; i < rows; i++) {
        int64_t k, c;
        for (k = rp[i]; k < rp[i + 1]; k++) {
            nde_real acc = NDE_R(0.0);
            for (c = 0; c < f; c++) acc += dy[i * f + c] * x[ci[k] * f + c];
            dv[k] += acc;
        }
    }
}

/* One row of im2col: image x (C, H, W) at kernel offset (c, i, j) into r[0..OH*OW). */
static void nde__im2col_row(int64_t H, int64_t W, int64_t OH, int64_t OW, int stride, int pad, int64_t c, int i, int j,
                            int64_t lo, int64_t hi, const nde_real *x, nde_real *r) {
    int64_t oh, ow;
    for (oh = 0; oh < OH; oh++, r += OW) {
        int64_t hh = oh * stride - pad + i;
        const nde_real *xr;
        if (hh < 0 || hh >= H) { for (ow = 0; ow < OW; ow++) r[ow] = NDE_R(0.0); continue; }
        for (ow = 0; ow < lo; ow++) r[ow] = NDE_R(0.0);
        if (hi > lo) {
            xr = x + (c * H + hh) * W + lo * stride - pad + j;   /* input of column lo */
            if (stride == 1) for (ow = lo; ow < hi; ow++) r[ow] = xr[ow - lo];
            else for (ow = lo; ow < hi; ow++) r[ow] = xr[(ow - lo) * stride];
        }
        for (ow = hi; ow < OW; ow++) r[ow] = NDE_R(0.0);
    }
}
/* One row of col2im: r[0..OH*OW) accumulated into image x (C, H, W) at offset (c, i, j). */
static void nde__col2im_row(int64_t H, int64_t W, int64_t OH, int64_t OW, int stride, int pad, int64_t c, int i, int j,
                            int64_t lo, int64_t hi, const nde_real *r, nde_real *x) {
    int64_t oh, ow;
    if (hi <= lo) return;
    for (oh = 0; oh < OH; oh++, r += OW) {
        int64_t hh = oh * stride - pad + i;
        nde_real *xr;
        if (hh < 0 || hh >= H) continue;
        xr = x + (c * H + hh) * W + lo * stride - pad + j;   /* input of column lo */
        if (stride == 1) for (ow = lo; ow < hi; ow++) xr[ow - lo] += r[ow];
        else for (ow = lo; ow < hi; ow++) xr[(ow - lo) * stride] += r[ow];
    }
}
/* Output columns ow whose input column ow*stride - pad + j lies inside [0, W):
   [*lo, *hi). */
static void nde__conv_valid_range(int64_t OW, int64_t W, int stride, int pad, int j, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = OW;
    while (l < OW && l * stride - pad + j < 0) l++;
    while (h > l && (h - 1) * stride - pad + j >= W) h--;
    *lo = l; *hi = h;
}
/* x (N, C, H, W) -> col (C*KH*KW, N*OH*OW), image n in columns n*OH*OW onwards
   (N = 1: the single-image im2col). Rows run in parallel (a copy: any thread
   count gives the same result). */
static void nde__cpu_im2col_batch(void *self, int64_t N, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride,
                                  int pad, const nde_real *x, nde_real *col) {
    int64_t OH = (H + 2 * pad - kh) / stride + 1, OW = (W + 2 * pad - kw) / stride + 1, P = OH * OW, rows = C * kh * kw, q;
    int nde_omp_go = rows * N * P > NDE_OMP_MIN_WORK;
    (void)self; (void)nde_omp_go;
    NDE_OMP_PARALLEL_FOR
    for (q = 0; q < rows; q++) {
        int64_t c = q / (kh * kw), lo, hi, n;
        int i = (int)(q / kw % kh), j = (int)(q % kw);
        nde__conv_valid_range(OW, W, stride, pad, j, &lo, &hi);
        for (n = 0; n < N; n++)
            nde__im2col_row(H, W, OH, OW, stride, pad, c, i, j, lo, hi, x + n * C * H * W, col + q * N * P + n * P);
    }
}
/* col (C*KH*KW, N*OH*OW) accumulated into x (N, C, H, W); images in parallel
   (each image's sums run in the same order for any thread count). */
static void nde__cpu_col2im_batch(void *self, int64_t N, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride,
                                  int pad, const nde_real *col, nde_real *x) {
    int64_t OH = (H + 2 * pad - kh) / stride + 1, OW = (W + 2 * pad - kw) / stride + 1, P = OH * OW, rows = C * kh * kw, n;
    int nde_omp_go = rows * N * P > NDE_OMP_MIN_WORK && N > 1;
    (void)self; (void)nde_omp_go;
    NDE_OMP_PARALLEL_FOR
    for (n = 0; n < N; n++) {
        int64_t q, lo, hi;
        for (q = 0; q < rows; q++) {
            int64_t c = q / (kh * kw);
            int i = (int)(q / kw % kh), j = (int)(q % kw);
            nde__conv_valid_range(OW, W, stride, pad, j, &lo, &hi);
            nde__col2im_row(H, W, OH, OW, stride, pad, c, i, j, lo, hi, col + q * N * P + n * P, x + n * C * H * W);
        }
    }
}
static void nde__cpu_im2col(void *self, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride, int pad,
                            const nde_real *x, nde_real *col) {
    nde__cpu_im2col_batch(self, 1, C, H, W, kh, kw, stride, pad, x, col);
}
static void nde__cpu_col2im(void *self, int64_t C, int64_t H, int64_t W, int kh, int kw, int stride, int pad,
                            const nde_real *col, nde_real *x) {
    nde__cpu_col2im_batch(self, 1, C, H, W, kh, kw, stride, pad, col, x);
}
static void nde__cpu_group_norm(void *self, int64_t N, int64_t C, int64_t S, int G, nde_real eps,
                                const nde_real *x, const nde_real *gamma, const nde_real *beta,
                                nde_real *y, nde_real *mean, nde_real *rstd) {
    int64_t n, c, s, cpg = C / G; int g; (void)self;
    for (n = 0; n < N; n++)
        for (g = 0; g < G; g++) {
            const nde_real *xg = x + (n * C + g * cpg) * S;
            nde_real *yg = y + (n * C + g * cpg) * S;
            int64_t cnt = cpg * S; double m = 0.0, v = 0.0, r;
            for (s = 0; s < cnt; s++) m += xg[s];
            m /= (double)cnt;
            for (s = 0; s < cnt; s++) { double d = xg[s] - m; v += d * d; }
            v /= (double)cnt;
            r = 1.0 / sqrt(v + (double)eps);
            mean[n * G + g] = (nde_real)m; rstd[n * G + g] = (nde_real)r;
            for (c = 0; c < cpg; c++) {
                int64_t ch = g * cpg + c;
                nde_real ga = gamma ? gamma[ch] : NDE_R(1.0), be = beta ? beta[ch] : NDE_R(0.0);
                for (s = 0; s < S; s++) yg[c * S + s] = (nde_real)((xg[c * S + s] - m) * r) * ga + be;
            }
        }
}
static void nde__cpu_group_norm_backward(void *self, int64_t N, int64_t C, int64_t S, int G,
                                         const nde_real *x, const nde_real *gamma, const nde_real *mean, const nde_real *rstd,
                                         const nde_real *dy, nde_real *dx, nde_real *dgamma, nde_real *dbeta) {
    /* xhat = (x - m) r; dxhat = dy gamma;
       dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) over the group. */
    int64_t n, c, s, cpg = C / G; int g; (void)self;
    for (n = 0; n < N; n++)
        for (g = 0; g < G; g++) {
            int64_t base = (n * C + g * cpg) * S, cnt = cpg * S;
            double m = mean[n * G + g], r = rstd[n * G + g], sum1 = 0.0, sum2 = 0.0;
            for (c = 0; c < cpg; c++) {
                int64_t ch = g * cpg + c;
                double ga = gamma ? gamma[ch] : 1.0, dg = 0.0, db = 0.0;
                for (s = 0; s < S; s++) {
                    double xh = (x[base + c * S + s] - m) * r, d = dy[base + c * S + s];
                    sum1 += d * ga; sum2 += d * ga * xh; dg += d * xh; db += d;
                }
                if (dgamma) dgamma[ch] += (nde_real)dg;
                if (dbeta) dbeta[ch] += (nde_real)db;
            }
            sum1 /= (double)cnt; sum2 /= (double)cnt;
            for (c = 0; c < cpg; c++) {
                int64_t ch = g * cpg + c;
                double ga = gamma ? gamma[ch] : 1.0;
                for (s = 0; s < S; s++) {
                    double xh = (x[base + c * S + s] - m) * r;
                    dx[base + c * S + s] += (nde_real)(r * (dy[base + c * S + s] * ga - sum1 - xh * sum2));
                }
            }
        }
}
static void nde__cpu_avg_pool2d(void *self, int64_t nc, int64_t H, int64_t W, int k, int st, const nde_real *x, nde_real *y) {
    int64_t OH = (H - k) / st + 1, OW = (W - k) / st + 1, p, oh, ow; int i, j; (void)self;
    nde_real inv = NDE_R(1.0) / (nde_real)(k * k);
    for (p = 0; p < nc; p++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                nde_real s = NDE_R(0.0);
                for (i = 0; i < k; i++) for (j = 0; j < k; j++) s += x[(p * H + oh * st + i) * W + ow * st + j];
                y[(p * OH + oh) * OW + ow] = s * inv;
            }
}
static void nde__cpu_avg_pool2d_backward(void *self, int64_t nc, int64_t H, int64_t W, int k, int st, const nde_real *dy, nde_real *dx) {
    int64_t OH = (H - k) / st + 1, OW = (W - k) / st + 1, p, oh, ow; int i, j; (void)self;
    nde_real inv = NDE_R(1.0) / (nde_real)(k * k);
    for (p = 0; p < nc; p++)
        for (oh = 0; oh < OH; oh++)
            for (ow = 0; ow < OW; ow++) {
                nde_real d = dy[(p * OH + oh) * OW + ow] * inv;
                for (i = 0; i < k; i++) for (j = 0; j < k; j++) dx[(p * H + oh * st + i) * W + ow * st + j] += d;
            }
}
static void nde__cpu_log_softmax(void *self, int64_t n, int64_t k, const nde_real *x, nde_real *y) {
    int64_t i, j; (void)self;
    for (i = 0; i < n; i++) {
        const nde_real *xi = x + i * k; nde_real *yi = y + i * k;
        double mx = xi[0], s = 0.0, lse;
        for (j = 1; j < k; j++) if (xi[j] > mx) mx = xi[j];
        for (j = 0; j < k; j++) s += exp((double)xi[j] - mx);
        lse = mx + log(s);
        for (j = 0; j < k; j++) yi[j] = (nde_real)((double)xi[j] - lse);
    }
}
static void nde__cpu_log_softmax_backward(void *self, int64_t n, int64_t k, const nde_real *y, const nde_real *dy, nde_real *dx) {
    int64_t i, j; (void)self;
    for (i = 0; i < n; i++) {
        double s = 0.0;
        for (j = 0; j < k; j++) s += dy[i * k + j];
        for (j = 0; j < k; j++) dx[i * k + j] += (nde_real)(dy[i * k + j] - exp((double)y[i * k + j]) * s);
    }
}

static double nde__cpu_rms_error_norm(void *self, int64_t n, const nde_real *err, const nde_real *y0, const nde_real *y1,
                                      double rtol, double atol, const nde_real *atol_vec) {
    int64_t i; double s = 0.0; (void)self;
    if (n == 0) return 0.0;
    for (i = 0; i < n; i++) {
        double a0 = fabs((double)y0[i]), a1 = fabs((double)y1[i]);
        double sc = (atol_vec ? (double)atol_vec[i] : atol) + rtol * (a0 > a1 ? a0 : a1);
        if (!isfinite(a1)) return NAN;   /* the proposed state is not finite */
        double e = (double)err[i] / sc;
        s += e * e;
    }
    return sqrt(s / (double)n);
}
static double nde__cpu_dot(void *self, int64_t n, const nde_real *x, const nde_real *y) {
    int64_t i; double s = 0.0; (void)self;
    for (i = 0; i < n; i++) s += (double)x[i] * (double)y[i];
    return s;
}
static double nde__cpu_max_abs(void *self, int64_t n, const nde_real *x) {
    int64_t i; double m = 0.0; (void)self;
    for (i = 0; i < n; i++) {
        double v = fabs((double)x[i]);
        if (v != v) return v;
        if (v > m) m = v;
    }
    return m;
}
static int nde__cpu_all_finite(void *self, int64_t n, const nde_real *x) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) if (!isfinite(x[i])) return 0;
    return 1;
}
static void nde__cpu_adam_step(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *m, nde_real *v,
                               double lr, double b1, double b2, double eps, double wd, double bc1, double bc2, int decoupled) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) {
        double gi = g[i], pi = p[i], mi, vi;
        if (decoupled) pi -= lr * wd * pi;
        else gi += wd * pi;
        mi = b1 * m[i] + (1.0 - b1) * gi;
        vi = b2 * v[i] + (1.0 - b2) * gi * gi;
        m[i] = (nde_real)mi; v[i] = (nde_real)vi;
        /* PyTorch's form: p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
        pi -= (lr / bc1) * mi / (sqrt(vi) / sqrt(bc2) + eps);
        p[i] = (nde_real)pi;
    }
}

static void nde__cpu_sgd_step(void *self, int64_t n, nde_real *p, const nde_real *g0, nde_real *buf, double lr,
                              double momentum, double dampening, int nesterov, double wd, int first) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) {
        double g = g0[i] + wd * p[i];
        if (momentum != 0.0) {
            double b = first ? g : momentum * buf[i] + (1.0 - dampening) * g;
            buf[i] = (nde_real)b;
            g = nesterov ? g + momentum * b : b;
        }
        p[i] = (nde_real)(p[i] - lr * g);
    }
}
static void nde__cpu_rmsprop_step(void *self, int64_t n, nde_real *p, const nde_real *g0, nde_real *sq, nde_real *buf,
                                  double lr, double alpha, double eps, double momentum, double wd) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) {
        double g = g0[i] + wd * p[i];
        double v = alpha * sq[i] + (1.0 - alpha) * g * g;
        double upd = g / (sqrt(v) + eps);
        sq[i] = (nde_real)v;
        if (momentum != 0.0) { buf[i] = (nde_real)(momentum * buf[i] + upd); upd = buf[i]; }
        p[i] = (nde_real)(p[i] - lr * upd);
    }
}

NDE_API const nde_backend *nde_cpu_backend(void) {
    static const nde_backend cpu = {
        "cpu", 0, NULL,
        nde__cpu_alloc, nde__cpu_free, nde__cpu_copy, nde__cpu_sync, nde__cpu_fill,
        nde__cpu_gemm, nde__cpu_unary, nde__cpu_unary_backward, nde__cpu_binary, nde__cpu_reduce_add,
        nde__cpu_lincomb, nde__cpu_copy2d, nde__cpu_transpose, nde__cpu_gather_rows, nde__cpu_scatter_add_rows,
        nde__cpu_im2col, nde__cpu_col2im, nde__cpu_group_norm, nde__cpu_group_norm_backward,
        nde__cpu_avg_pool2d, nde__cpu_avg_pool2d_backward, nde__cpu_log_softmax, nde__cpu_log_softmax_backward,
        nde__cpu_philox_fill, nde__cpu_rms_error_norm, nde__cpu_dot, nde__cpu_max_abs, nde__cpu_all_finite,
        nde__cpu_adam_step, nde__cpu_sgd_step, nde__cpu_rmsprop_step, NULL, nde__cpu_im2col_batch, nde__cpu_col2im_batch,
        nde__cpu_csr_matmul, nde__cpu_csr_sddmm
    };
    return &cpu;
}

#endif /* NDE_CORE_IMPLEMENTATION */

/*
MIT License. Copyright (c) 2026 the nde authors.
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of
the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
*/
