/* nde_cuda.h - v0.1.0 - the CUDA backend for nde.h: device memory, kernels, cuBLAS
   License: MIT (see the end of nde.h).

USAGE
   The same nde program runs on a GPU when its context is created on this backend.
   The declarations below are plain C (include this header from C or C++); the
   implementation is CUDA C++ and is compiled by nvcc from the two-line file
   nde_cuda.cu shipped next to this header:

       // nde_cuda.cu
       #define NDE_CUDA_IMPLEMENTATION
       #include "nde_cuda.h"

   One command builds a program (nvcc compiles app.c as C and nde_cuda.cu as CUDA):

       nvcc -O2 app.c nde_cuda.cu -lcublas -o app

   or in two steps with any C compiler for the program:

       cc -O2 -std=c99 -c app.c
       nvcc -O2 -c nde_cuda.cu
       nvcc app.o nde_cuda.o -lcublas -o app        (or: cc ... -lcudart -lcublas -lstdc++ -lm)

   app.c defines NDE_IMPLEMENTATION as usual (the C part of nde stays C99);
   NDE_IMPLEMENTATION never turns on NDE_CUDA_IMPLEMENTATION. Add -DNDE_DOUBLE to
   BOTH compilations for double precision (the backend checks that they agree).
   Pick the GPU with -arch (e.g. -arch=sm_90 for H100). Never -use_fast_math: it
   changes results against the CPU backend and breaks the NaN checks.

QUICK START (the quick start of nde.h, on the GPU: two lines differ)

       #define NDE_IMPLEMENTATION
       #include "nde.h"
       #include "nde_cuda.h"
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

OPTIONS
   NDE_DOUBLE              every TU: double precision (nde_real), as for nde.h.
   NDE_CUDA_IMPLEMENTATION exactly one nvcc-compiled TU (nde_cuda.cu): the implementation.
   NDE_CUDA_EMULATE        tests only: a header name (e.g. "tests/cuda_emu.h") that stands
                           in for the CUDA runtime and cuBLAS so that the implementation
                           compiles with a host C++ compiler and runs sequentially on the
                           CPU; `make test` uses it to run tests/test_cuda.cu without a GPU.
   Run-time options in nde_cuda_options (nde_cuda_options_default()):
     device       CUDA device index (default 0)
     allow_tf32   1: float GEMMs may use TF32 tensor cores (about 10 bits of mantissa in
                  the products; faster on Ampere/Hopper). Default 0: full FP32. No effect
                  with NDE_DOUBLE.
     stream       a cudaStream_t to run on (cast to void *); NULL (default): the backend
                  creates its own non-blocking stream. All work of a backend is ordered
                  on that one stream.
     debug_sync   1: synchronise after every kernel so that an asynchronous failure is
                  reported by the kernel that caused it (slow; for debugging).

MEMORY
   Context arenas bump-allocate on top of the backend's alloc (one cudaMalloc per
   arena block, never one per op; no managed memory). Tensor data is device memory:
   read it with nde_tensor_to_host / nde_tensor_item, write it with
   nde_tensor_set_host / nde_tensor_from. Host index arrays (nde_gather_rows,
   nde_cross_entropy labels) travel inside the kernel arguments, 256 indices per
   launch, so no host<->device copy and no extra synchronisation is needed.
   Destroy a backend only after every context created on it is freed. Several
   contexts may share a backend (their work is ordered on its one stream); like a
   context, a backend is used by one host thread at a time.

ERRORS
   Every CUDA and cuBLAS call is checked. Compute entries of the backend table return
   void and run asynchronously, so a failure is recorded in the backend (the first one
   wins: the CUDA error name and string, the nde function, file and line) and returned
   by the next copy, synchronize or scalar read; the core copies it into the
   context's sticky error (NDE_ERR_BACKEND) at every host read and in
   nde_ctx_synchronize(). After a failure the backend launches nothing more.
   Out of device memory in alloc returns NULL without poisoning the backend, so the
   context reports NDE_ERR_OOM naming the arena block size and may go on.
   nde_cuda_backend_create() failing (no driver, no device, a bad device index)
   is an ordinary failure with the reason in why; nde_cuda_device_count() lets a
   program or test tell "no GPU here" from a real failure.

DETERMINISM
   No floating-point atomics anywhere: each output element is accumulated by one
   thread, or by one block through a fixed tree (reductions to a scalar use a fixed
   grid that depends only on n, then a fixed-order final pass). Results are bitwise
   identical from run to run on one GPU model and toolkit (cuBLAS guarantees the same
   for GEMM on one stream). Against the CPU backend results agree to rounding: sums
   run in a different order (tolerances in tests/test_cuda.cu: 1e-10 relative in
   double, 1e-4 in float). The Philox streams are the CPU's: uniform and Rademacher
   values are bitwise equal; normal values go through the same double-precision
   Box-Muller, where the GPU's log/cos may differ from the C library's in the last
   bit (float results are then equal or 1 ulp apart).

SCALARS AND SYNCHRONISATION
   rms_error_norm, dot, max_abs and all_finite (the solver's error norm, gradient
   norms, NaN checks) run as ONE kernel each (blocks combine their partial sums in
   the last block to finish) that writes the result to pinned host memory, followed
   by one stream synchronisation. Everything else is asynchronous.
   Solvers (nde_solvers.h) on this backend: an adaptive step attempt costs one host
   synchronisation, its error norm, which is NaN when the proposed state is not
   finite and so is also the NaN check; a fixed-step solve checks the state only
   where an output lands (a few syncs per solve, not per step). Runge-Kutta stage
   combinations are one lincomb kernel each. nde_cuda_counters() counts launches
   and host syncs (tests/test_cuda.cu checks these budgets).

CUDA GRAPHS
   Work whose shapes and addresses repeat (a fixed-step solve, the forward and
   backward of a training step) can be captured once and replayed with one launch:

       nde_mark m = nde_ctx_mark(ctx);
       run(ctx); nde_ctx_reset(ctx, m);             // warm-up: the arenas grow to size
       nde_cuda_graph *g;
       nde_cuda_graph_begin(gpu);
       run(ctx);                                    // recorded, not executed
       nde_cuda_graph_end(gpu, &g);                 // NDE_OK or the reason it failed
       nde_ctx_reset(ctx, m);
       for (...) { nde_tensor_set_host(ctx, x, batch); nde_cuda_graph_launch(g); ... }
       nde_cuda_graph_free(g);

   Because the arenas hand out the same addresses after the same mark, the replay
   reads and writes the same tensors. Rules while capturing: no host reads (copies to
   the host, item, synchronize, norms, all_finite: they fail with a clear message),
   no host-to-device copies (upload inputs into tensors made BEFORE the mark, outside
   the capture), no arena growth (hence the warm-up). Scalars passed to kernels are
   frozen at capture: random draws repeat the same numbers at each replay, and the
   optimizer step (its bias corrections change every step) belongs outside the graph.
   Tensors made inside the captured region are the graph's scratch: copy results
   you want to keep (nde_tensor_copy_into) into tensors made before the mark.
   A fixed-step solve is captured as a loop of nde_rk_step (nde_solvers.h) calls
   over the grid, copying each new state into a state tensor made before the mark
   (tests/test_cuda.cu, test_graph_solve: 20 rk4 steps become one launch). The
   field must not read device values to the host (no nde_tensor_item on t).
   nde_solve itself cannot be captured: it checks z0 on the host and allocates
   the solution's storage.

LIMITS
   GEMM dimensions and leading dimensions must fit in int (cuBLAS); a larger one is
   an NDE_ERR_BACKEND error. Convolution: im2col over the batch (in chunks of at
   most NDE_CONV_BATCH_REALS column values), one GEMM, one axis swap: a few
   launches per convolution whatever the batch size.
   Compute capability 7.5 or later (CUDA 13). Tested compile targets: see the
   Makefile (sm_90 machine code plus compute_80 PTX).
*/
#ifndef NDE_CUDA_H
#define NDE_CUDA_H

#include "nde.h"

#ifndef NDE_CUDA_API
#define NDE_CUDA_API extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nde_cuda_options {
    int device;          /* CUDA device index                                    */
    int allow_tf32;      /* float GEMM may use TF32 tensor cores (opt-in)        */
    void *stream;        /* cudaStream_t to use, or NULL for an own stream       */
    int debug_sync;      /* synchronise after every kernel (debugging)           */
    int real_size;       /* filled by nde_cuda_options_default: guards NDE_DOUBLE */
    int version_major;
} nde_cuda_options;

/* Inline so that it records the CALLER's nde_real size. */
static inline nde_cuda_options nde_cuda_options_default(void) {
    nde_cuda_options o;
    o.device = 0;
    o.allow_tf32 = 0;
    o.stream = NULL;
    o.debug_sync = 0;
    o.real_size = (int)sizeof(nde_real);
    o.version_major = NDE_VERSION_MAJOR;
    return o;
}

/* Number of usable CUDA devices; 0 when there is none or no driver (the reason in
   why, which may be NULL). */
NDE_CUDA_API int nde_cuda_device_count(char *why, size_t why_len);
/* A backend table for one device. On failure *out is NULL and why says why. */
NDE_CUDA_API nde_status nde_cuda_backend_create_opts(const nde_cuda_options *options, const nde_backend **out,
                                                     char *why, size_t why_len);
static inline nde_status nde_cuda_backend_create(int device, const nde_backend **out, char *why, size_t why_len) {
    nde_cuda_options o = nde_cuda_options_default();
    o.device = device;
    return nde_cuda_backend_create_opts(&o, out, why, why_len);
}
/* Frees the stream (if its own), cuBLAS handle and scratch. Free the contexts first. */
NDE_CUDA_API void nde_cuda_backend_destroy(const nde_backend *backend);
NDE_CUDA_API int nde_cuda_is_backend(const nde_backend *backend);
/* The backend's cudaStream_t (as void *), NULL if not a CUDA backend. */
NDE_CUDA_API void *nde_cuda_stream(const nde_backend *backend);
/* The first recorded failure (NDE_OK if none) and its message; clear it to go on
   after an error that left the device usable (not after a sticky CUDA error). */
NDE_CUDA_API nde_status nde_cuda_error(const nde_backend *backend, const char **message);
NDE_CUDA_API void nde_cuda_clear_error(const nde_backend *backend);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB, float, TF32 off" into buf; returns buf. */
NDE_CUDA_API const char *nde_cuda_describe(const nde_backend *backend, char *buf, size_t buf_len);
/* Work items issued (kernels, cuBLAS calls, device copies and memsets) and host
   synchronisations (stream waits: reads to the host, synchronize, scalar
   reductions) since the backend was created. Either pointer may be NULL. */
NDE_CUDA_API void nde_cuda_counters(const nde_backend *backend, int64_t *launches, int64_t *host_syncs);
/* Switch TF32 for float GEMMs on or off later. */
NDE_CUDA_API nde_status nde_cuda_set_tf32(const nde_backend *backend, int allow);

/* CUDA Graphs: see CUDA GRAPHS above. */
typedef struct nde_cuda_graph nde_cuda_graph;
NDE_CUDA_API nde_status nde_cuda_graph_begin(const nde_backend *backend);
NDE_CUDA_API nde_status nde_cuda_graph_end(const nde_backend *backend, nde_cuda_graph **out);
NDE_CUDA_API nde_status nde_cuda_graph_launch(nde_cuda_graph *graph);   /* asynchronous */
NDE_CUDA_API void nde_cuda_graph_free(nde_cuda_graph *graph);
NDE_CUDA_API int nde_cuda_is_capturing(const nde_backend *backend);

#ifdef __cplusplus
}
#endif
#endif /* NDE_CUDA_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if defined(NDE_CUDA_IMPLEMENTATION) && !defined(NDE_CUDA_IMPLEMENTATION_DONE)
#define NDE_CUDA_IMPLEMENTATION_DONE

#ifndef __cplusplus
#error "nde_cuda.h: NDE_CUDA_IMPLEMENTATION is CUDA C++: compile nde_cuda.cu with nvcc"
#endif

#ifdef NDE_CUDA_EMULATE
#include NDE_CUDA_EMULATE
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__FAST_MATH__) || defined(__USE_FAST_MATH__)
#error "nde_cuda.h: do not build with fast math: it changes results and removes NaN checks"
#endif

/* Kernel launches. A "block" kernel's threads cooperate through shared memory and
   __syncthreads(); the emulator needs to know which kernels do. */
#ifdef NDE_CUDA_EMULATE
#define NDE__CU_LAUNCH(kernel, grid, block, stream, ...) \
    nde_emu_launch_kernel((grid), (block), 0, (stream), kernel, __VA_ARGS__)
#define NDE__CU_LAUNCH_BLOCK(kernel, grid, block, stream, ...) \
    nde_emu_launch_kernel((grid), (block), 1, (stream), kernel, __VA_ARGS__)
#else
#define NDE__CU_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#define NDE__CU_LAUNCH_BLOCK(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#define NDE__CU_THREADS 256              /* threads per block (a power of two)       */
#define NDE__CU_MAX_BLOCKS (1 << 20)     /* grid cap for grid-stride loops           */
#define NDE__CU_REDUCE_BLOCKS 1024       /* most blocks of a reduction to a scalar   */
#define NDE__CU_TERMS 16                 /* lincomb terms per launch                 */
#define NDE__CU_INDEX_CHUNK 256          /* host indices per gather/scatter launch   */
#define NDE__CU_MAGIC 0x6E646563u        /* "ndec" */

/* ------------------------------------------------------------ backend state */
struct nde__cuda {
    nde_backend table;           /* first member: the table handed out points here */
    unsigned magic;
    int device;
    cudaStream_t stream;
    int own_stream;
    cublasHandle_t blas;
    void *blas_workspace;
    int allow_tf32, debug_sync;
    int capturing;
    int64_t launches, syncs;     /* nde_cuda_counters */
    char device_name[256];
    int cc_major, cc_minor, sm_count;
    size_t device_bytes;
    double *partials;            /* NDE__CU_REDUCE_BLOCKS doubles (device)           */
    unsigned int *counter;       /* blocks finished, for the last-block reduction   */
    double *result_host;         /* pinned, mapped: the scalar result               */
    double *result_dev;          /* its device address                              */
    nde_status status;
    char message[512];
};
typedef struct nde__cuda nde__cuda;

struct nde_cuda_graph {
    nde__cuda *s;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

static void nde__cu_fail(nde__cuda *s, nde_status st, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void nde__cu_fail(nde__cuda *s, nde_status st, const char *fmt, ...) {
    va_list ap;
    if (s->status != NDE_OK) return;
    s->status = st;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof s->message, fmt, ap);
    va_end(ap);
}

/* A CUDA runtime result into the backend's sticky error; returns 1 if fine. */
static int nde__cu_ok(nde__cuda *s, cudaError_t e, const char *who, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 1;
    nde__cu_fail(s, NDE_ERR_BACKEND, "%s: %s: %s (%s) at %s:%d", who, what, cudaGetErrorName(e), cudaGetErrorString(e),
                 file, line);
    return 0;
}
static int nde__cu_blas_ok(nde__cuda *s, cublasStatus_t e, const char *who, const char *what, const char *file, int line) {
    if (e == CUBLAS_STATUS_SUCCESS) return 1;
    nde__cu_fail(s, NDE_ERR_BACKEND, "%s: %s: %s (%s) at %s:%d", who, what, cublasGetStatusName(e),
                 cublasGetStatusString(e), file, line);
    return 0;
}
#define NDE__CU_CHECK(s, call, who) nde__cu_ok((s), (call), (who), #call, __FILE__, __LINE__)
#define NDE__CU_BLAS_CHECK(s, call, who) nde__cu_blas_ok((s), (call), (who), #call, __FILE__, __LINE__)

/* Called before any work: the right device, and nothing after a failure. */
static int nde__cu_enter(nde__cuda *s) {
    int cur = -1;
    if (s->status != NDE_OK) return 0;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != s->device)
        if (!NDE__CU_CHECK(s, cudaSetDevice(s->device), "nde_cuda")) return 0;
    return 1;
}
/* Waits for the stream (counted); returns 1 if fine. */
static int nde__cu_sync(nde__cuda *s, const char *who) {
    s->syncs++;
    return NDE__CU_CHECK(s, cudaStreamSynchronize(s->stream), who);
}
/* After a launch: configuration errors now, execution errors now in debug mode. */
static void nde__cu_launched(nde__cuda *s, const char *who) {
    s->launches++;
    NDE__CU_CHECK(s, cudaGetLastError(), who);
    if (s->debug_sync && !s->capturing) nde__cu_sync(s, who);
}
/* Host reads are impossible while a graph is being captured. */
static int nde__cu_not_capturing(nde__cuda *s, const char *who) {
    if (!s->capturing) return 1;
    nde__cu_fail(s, NDE_ERR_BACKEND,
                 "%s: a host read or upload while a CUDA graph is being captured; move it outside "
                 "nde_cuda_graph_begin/end", who);
    return 0;
}

static unsigned nde__cu_grid(int64_t n) {
    int64_t b = (n + NDE__CU_THREADS - 1) / NDE__CU_THREADS;
    if (b < 1) b = 1;
    if (b > NDE__CU_MAX_BLOCKS) b = NDE__CU_MAX_BLOCKS;
    return (unsigned)b;
}

/* ------------------------------------------------------------ device helpers */
static __device__ inline int64_t nde__cu_first(void) { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
static __device__ inline int64_t nde__cu_step(void) { return (int64_t)blockDim.x * gridDim.x; }

#ifdef NDE_DOUBLE
static __device__ inline nde_real nde__cu_exp(nde_real x) { return exp(x); }
static __device__ inline nde_real nde__cu_log(nde_real x) { return log(x); }
static __device__ inline nde_real nde__cu_sqrt(nde_real x) { return sqrt(x); }
static __device__ inline nde_real nde__cu_tanh(nde_real x) { return tanh(x); }
static __device__ inline nde_real nde__cu_sin(nde_real x) { return sin(x); }
static __device__ inline nde_real nde__cu_cos(nde_real x) { return cos(x); }
static __device__ inline nde_real nde__cu_fabs(nde_real x) { return fabs(x); }
static __device__ inline nde_real nde__cu_log1p(nde_real x) { return log1p(x); }
static __device__ inline nde_real nde__cu_expm1(nde_real x) { return expm1(x); }
#else
static __device__ inline nde_real nde__cu_exp(nde_real x) { return expf(x); }
static __device__ inline nde_real nde__cu_log(nde_real x) { return logf(x); }
static __device__ inline nde_real nde__cu_sqrt(nde_real x) { return sqrtf(x); }
static __device__ inline nde_real nde__cu_tanh(nde_real x) { return tanhf(x); }
static __device__ inline nde_real nde__cu_sin(nde_real x) { return sinf(x); }
static __device__ inline nde_real nde__cu_cos(nde_real x) { return cosf(x); }
static __device__ inline nde_real nde__cu_fabs(nde_real x) { return fabsf(x); }
static __device__ inline nde_real nde__cu_log1p(nde_real x) { return log1pf(x); }
static __device__ inline nde_real nde__cu_expm1(nde_real x) { return expm1f(x); }
#endif

/* Sum of v over the block (blockDim.x a power of two) by a fixed tree; every thread
   must call it; sh holds blockDim.x doubles. Returns the sum to every thread. */
static __device__ double nde__cu_block_sum(double v, double *sh) {
    unsigned t = threadIdx.x, half;
    sh[t] = v;
    __syncthreads();
    for (half = blockDim.x / 2; half > 0; half >>= 1) {
        if (t < half) sh[t] += sh[t + half];
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();
    return v;
}
static __device__ double nde__cu_block_max(double v, double *sh) {
    unsigned t = threadIdx.x, half;
    sh[t] = v;
    __syncthreads();
    for (half = blockDim.x / 2; half > 0; half >>= 1) {
        if (t < half && sh[t + half] > sh[t]) sh[t] = sh[t + half];
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();
    return v;
}

/* ------------------------------------------------------------ memory */
static void *nde__cu_alloc(void *self, size_t bytes) {
    nde__cuda *s = (nde__cuda *)self;
    void *p = NULL;
    cudaError_t e;
    if (!nde__cu_enter(s)) return NULL;
    if (s->capturing) {
        nde__cu_fail(s, NDE_ERR_BACKEND,
                     "nde_cuda alloc: %zu bytes requested while a CUDA graph is being captured; run the captured "
                     "code once before capturing so that the arenas already hold their blocks", bytes);
        return NULL;
    }
    e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();       /* not sticky: the context reports NDE_ERR_OOM */
        return NULL;
    }
    if (!nde__cu_ok(s, e, "nde_cuda alloc", "cudaMalloc", __FILE__, __LINE__)) return NULL;
    return p;
}
static void nde__cu_free(void *self, void *p) {
    nde__cuda *s = (nde__cuda *)self;
    if (!p) return;
    if (s->capturing) {
        nde__cu_fail(s, NDE_ERR_BACKEND, "nde_cuda free: device memory freed while a CUDA graph is being captured; "
                     "run the captured code once before capturing so that the arenas already hold their blocks");
        return;
    }
    /* Free even after a failure: the memory belongs to the caller's context. */
    NDE__CU_CHECK(s, cudaFree(p), "nde_cuda free");
}

static int nde__cu_is_pinned(const void *host) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, host) != cudaSuccess) { (void)cudaGetLastError(); return 0; }
    return a.type == cudaMemoryTypeHost;
}

static nde_status nde__cu_copy(void *self, void *dst, const void *src, size_t bytes, nde_copy_kind kind) {
    nde__cuda *s = (nde__cuda *)self;
    const char *who = "nde_cuda copy";
    if (!nde__cu_enter(s)) return s->status;
    if (!bytes || dst == src) return s->status;
    switch (kind) {
    case NDE_COPY_DEVICE:
        s->launches++;
        NDE__CU_CHECK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s->stream), who);
        break;
    case NDE_COPY_TO_DEVICE:
        if (!nde__cu_not_capturing(s, "nde_cuda copy to device")) break;
        /* From pageable memory the call returns once the data is staged, so the caller
           may reuse its buffer at once; from pinned memory it would not, so wait. */
        s->launches++;
        NDE__CU_CHECK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream), who);
        if (nde__cu_is_pinned(src)) nde__cu_sync(s, who);
        break;
    case NDE_COPY_TO_HOST:
        if (!nde__cu_not_capturing(s, "nde_cuda copy to host")) break;
        s->launches++;
        if (NDE__CU_CHECK(s, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream), who))
            nde__cu_sync(s, who);
        break;
    default:
        nde__cu_fail(s, NDE_ERR_ARG, "nde_cuda copy: unknown copy kind %d", (int)kind);
    }
    return s->status;
}

static nde_status nde__cu_synchronize(void *self) {
    nde__cuda *s = (nde__cuda *)self;
    if (!nde__cu_enter(s)) return s->status;
    if (!nde__cu_not_capturing(s, "nde_cuda synchronize")) return s->status;
    if (nde__cu_sync(s, "nde_cuda synchronize"))
        NDE__CU_CHECK(s, cudaGetLastError(), "nde_cuda synchronize");
    return s->status;
}

static nde_status nde__cu_last_error(void *self, const char **message) {
    nde__cuda *s = (nde__cuda *)self;
    if (message) *message = s->message;
    return s->status;
}

/* ------------------------------------------------------------ fill */
static __global__ void nde__k_fill(int64_t n, nde_real v, nde_real *x) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) x[i] = v;
}
static void nde__cu_fill(void *self, int64_t n, nde_real v, nde_real *x) {
    nde__cuda *s = (nde__cuda *)self;
    nde_real zero = 0;
    if (n <= 0 || !nde__cu_enter(s)) return;
    if (memcmp(&v, &zero, sizeof v) == 0) {   /* +0.0: all bytes zero */
        s->launches++;
        NDE__CU_CHECK(s, cudaMemsetAsync(x, 0, (size_t)n * sizeof(nde_real), s->stream), "nde_cuda fill");
        return;
    }
    NDE__CU_LAUNCH(nde__k_fill, nde__cu_grid(n), NDE__CU_THREADS, s->stream, n, v, x);
    nde__cu_launched(s, "nde_cuda fill");
}

/* ------------------------------------------------------------ gemm (cuBLAS)
   cuBLAS is column-major. A row-major matrix with leading dimension ld is, read
   column-major, its transpose with the same ld. So row-major C = op(A) op(B) is
   column-major C^T = op(B)^T op(A)^T: call gemm(op_b, op_a, n, m, k, B, ldb, A, lda, C, ldc)
   with op_x = transposed exactly when trans_x is set. */
static __global__ void nde__k_scale(int64_t rows, int64_t cols, nde_real beta, nde_real *c, int64_t ldc) {
    for (int64_t i = nde__cu_first(); i < rows * cols; i += nde__cu_step()) {
        nde_real *p = c + (i / cols) * ldc + i % cols;
        *p = beta == (nde_real)0 ? (nde_real)0 : beta * *p;
    }
}
static int nde__cu_fits_int(int64_t v) { return v >= 0 && v <= 2147483647; }

static void nde__cu_gemm(void *self, int ta, int tb, int64_t m, int64_t n, int64_t k, nde_real alpha,
                         const nde_real *a, int64_t lda, const nde_real *b, int64_t ldb,
                         nde_real beta, nde_real *c, int64_t ldc) {
    nde__cuda *s = (nde__cuda *)self;
    cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!nde__cu_enter(s) || m <= 0 || n <= 0) return;
    if (!nde__cu_fits_int(m) || !nde__cu_fits_int(n) || !nde__cu_fits_int(k) || !nde__cu_fits_int(lda) ||
        !nde__cu_fits_int(ldb) || !nde__cu_fits_int(ldc)) {
        nde__cu_fail(s, NDE_ERR_BACKEND, "nde_cuda gemm: m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld: cuBLAS "
                     "needs every size below 2^31", (long long)m, (long long)n, (long long)k, (long long)lda,
                     (long long)ldb, (long long)ldc);
        return;
    }
    if (k == 0) {   /* C = beta C, as the CPU backend does */
        if (beta != (nde_real)1) {
            NDE__CU_LAUNCH(nde__k_scale, nde__cu_grid(m * n), NDE__CU_THREADS, s->stream, m, n, beta, c, ldc);
            nde__cu_launched(s, "nde_cuda gemm");
        }
        return;
    }
#ifdef NDE_DOUBLE
    NDE__CU_BLAS_CHECK(s, cublasDgemm(s->blas, op_b, op_a, (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda,
                                      &beta, c, (int)ldc), "nde_cuda gemm");
#else
    NDE__CU_BLAS_CHECK(s, cublasSgemm(s->blas, op_b, op_a, (int)n, (int)m, (int)k, &alpha, b, (int)ldb, a, (int)lda,
                                      &beta, c, (int)ldc), "nde_cuda gemm");
#endif
    nde__cu_launched(s, "nde_cuda gemm");
}

/* ------------------------------------------------------------ unary maps
   The same formulas as the CPU backend in nde.h, term by term. */
static __device__ nde_real nde__cu_sigmoid1(nde_real x) {
    if (x >= (nde_real)0) return (nde_real)1 / ((nde_real)1 + nde__cu_exp(-x));
    nde_real e = nde__cu_exp(x);
    return e / ((nde_real)1 + e);
}
static __device__ nde_real nde__cu_softplus1(nde_real x) {
    return x > (nde_real)0 ? x + nde__cu_log1p(nde__cu_exp(-x)) : nde__cu_log1p(nde__cu_exp(x));
}
static __device__ nde_real nde__cu_powi1(nde_real x, int n) {
    nde_real r = (nde_real)1, b = x;
    int e = n < 0 ? -n : n;
    while (e) { if (e & 1) r *= b; b *= b; e >>= 1; }
    return n < 0 ? (nde_real)1 / r : r;
}
static __device__ nde_real nde__cu_unary1(int op, nde_real x, nde_real al) {
    switch (op) {
    case NDE_UNARY_NEG: return -x;
    case NDE_UNARY_SCALE: return al * x;
    case NDE_UNARY_ADD_SCALAR: return x + al;
    case NDE_UNARY_SQUARE: return x * x;
    case NDE_UNARY_SQRT: return nde__cu_sqrt(x);
    case NDE_UNARY_EXP: return nde__cu_exp(x);
    case NDE_UNARY_LOG: return nde__cu_log(x);
    case NDE_UNARY_SIN: return nde__cu_sin(x);
    case NDE_UNARY_COS: return nde__cu_cos(x);
    case NDE_UNARY_TANH: return nde__cu_tanh(x);
    case NDE_UNARY_SIGMOID: return nde__cu_sigmoid1(x);
    case NDE_UNARY_RELU: return x > (nde_real)0 ? x : (nde_real)0;
    case NDE_UNARY_LEAKY_RELU: return x > (nde_real)0 ? x : al * x;
    case NDE_UNARY_SOFTPLUS: return nde__cu_softplus1(x);
    case NDE_UNARY_ELU: return x > (nde_real)0 ? x : al * nde__cu_expm1(x);
    case NDE_UNARY_ABS: return nde__cu_fabs(x);
    case NDE_UNARY_POWI: return nde__cu_powi1(x, (int)al);
    }
    return x;
}
/* The increment of dx for one element: dx += result. */
static __device__ nde_real nde__cu_unary_grad1(int op, nde_real x, nde_real y, nde_real dy, nde_real al) {
    switch (op) {
    case NDE_UNARY_NEG: return -dy;
    case NDE_UNARY_SCALE: return al * dy;
    case NDE_UNARY_ADD_SCALAR: return dy;
    case NDE_UNARY_SQUARE: return (nde_real)2 * x * dy;
    case NDE_UNARY_SQRT: return dy / ((nde_real)2 * y);
    case NDE_UNARY_EXP: return dy * y;
    case NDE_UNARY_LOG: return dy / x;
    case NDE_UNARY_SIN: return dy * nde__cu_cos(x);
    case NDE_UNARY_COS: return -(dy * nde__cu_sin(x));
    case NDE_UNARY_TANH: return dy * ((nde_real)1 - y * y);
    case NDE_UNARY_SIGMOID: return dy * y * ((nde_real)1 - y);
    case NDE_UNARY_RELU: return x > (nde_real)0 ? dy : (nde_real)0;
    case NDE_UNARY_LEAKY_RELU: return x > (nde_real)0 ? dy : al * dy;
    case NDE_UNARY_SOFTPLUS: return dy * nde__cu_sigmoid1(x);
    case NDE_UNARY_ELU: return x > (nde_real)0 ? dy : dy * (y + al);
    case NDE_UNARY_ABS: return x > (nde_real)0 ? dy : (x < (nde_real)0 ? -dy : (nde_real)0);
    case NDE_UNARY_POWI: return dy * al * nde__cu_powi1(x, (int)al - 1);
    }
    return (nde_real)0;
}
static __global__ void nde__k_unary(int op, int64_t n, const nde_real *x, nde_real al, nde_real *y) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) y[i] = nde__cu_unary1(op, x[i], al);
}
static __global__ void nde__k_unary_backward(int op, int64_t n, const nde_real *x, const nde_real *y,
                                             const nde_real *dy, nde_real al, nde_real *dx) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step())
        dx[i] += nde__cu_unary_grad1(op, x ? x[i] : (nde_real)0, y ? y[i] : (nde_real)0, dy[i], al);
}
static void nde__cu_unary(void *self, nde_unary_op op, int64_t n, const nde_real *x, nde_real al, nde_real *y) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_unary, nde__cu_grid(n), NDE__CU_THREADS, s->stream, (int)op, n, x, al, y);
    nde__cu_launched(s, "nde_cuda unary");
}
static void nde__cu_unary_backward(void *self, nde_unary_op op, int64_t n, const nde_real *x, const nde_real *y,
                                   const nde_real *dy, nde_real al, nde_real *dx) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_unary_backward, nde__cu_grid(n), NDE__CU_THREADS, s->stream, (int)op, n, x, y, dy, al, dx);
    nde__cu_launched(s, "nde_cuda unary_backward");
}

/* ------------------------------------------------------------ broadcasting binary */
struct nde__cu_dims { int64_t d[4]; };
static nde__cu_dims nde__cu_dims_of(const int64_t *v) {
    nde__cu_dims r;
    int i;
    for (i = 0; i < 4; i++) r.d[i] = v[i];
    return r;
}
static __device__ inline nde_real nde__cu_binary1(int op, nde_real x, nde_real y) {
    switch (op) {
    case NDE_BINARY_ADD: return x + y;
    case NDE_BINARY_SUB: return x - y;
    case NDE_BINARY_MUL: return x * y;
    default: return x / y;
    }
}
/* General strides; I is the index type (unsigned 32-bit division is several times cheaper
   on a GPU than 64-bit, and these kernels are otherwise memory-bound). */
template <typename I>
static __global__ void nde__k_binary(int op, I n, nde__cu_dims shape, const nde_real *a, nde__cu_dims sa,
                                     const nde_real *b, nde__cu_dims sb, nde_real *out) {
    I d1 = (I)shape.d[1], d2 = (I)shape.d[2], d3 = (I)shape.d[3];
    for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += (I)(blockDim.x * gridDim.x)) {
        I t = i, i3 = t % d3, i2, i1, i0;
        t /= d3; i2 = t % d2;
        t /= d2; i1 = t % d1;
        i0 = t / d1;
        nde_real x = a[i0 * (I)sa.d[0] + i1 * (I)sa.d[1] + i2 * (I)sa.d[2] + i3 * (I)sa.d[3]];
        nde_real y = b[i0 * (I)sb.d[0] + i1 * (I)sb.d[1] + i2 * (I)sb.d[2] + i3 * (I)sb.d[3]];
        out[i] = nde__cu_binary1(op, x, y);
    }
}
/* Each operand either laid out like the output or a single value: no index arithmetic. */
static __global__ void nde__k_binary_flat(int op, int64_t n, const nde_real *a, int a_scalar, const nde_real *b,
                                          int b_scalar, nde_real *out) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step())
        out[i] = nde__cu_binary1(op, a[a_scalar ? 0 : i], b[b_scalar ? 0 : i]);
}
/* 1: strides of a contiguous tensor of this shape, 0: all zero, -1: other. */
static int nde__cu_stride_kind(const int64_t *shape, const int64_t *st) {
    int64_t c = 1;
    int d, contiguous = 1, zero = 1;
    for (d = 3; d >= 0; d--) {
        if (shape[d] != 1 && st[d] != c) contiguous = 0;
        if (shape[d] != 1 && st[d] != 0) zero = 0;
        c *= shape[d];
    }
    return contiguous ? 1 : (zero ? 0 : -1);
}
static int64_t nde__cu_max_offset(const int64_t *shape, const int64_t *st) {
    int64_t m = 0;
    int d;
    for (d = 0; d < 4; d++) m += (shape[d] - 1) * (st[d] < 0 ? -st[d] : st[d]);
    return m;
}
static void nde__cu_binary(void *self, nde_binary_op op, const int64_t *shape, const nde_real *a, const int64_t *sa,
                           const nde_real *b, const int64_t *sb, nde_real *out) {
    nde__cuda *s = (nde__cuda *)self;
    int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    int ka = nde__cu_stride_kind(shape, sa), kb = nde__cu_stride_kind(shape, sb);
    if (n <= 0 || !nde__cu_enter(s)) return;
    if (ka >= 0 && kb >= 0) {
        NDE__CU_LAUNCH(nde__k_binary_flat, nde__cu_grid(n), NDE__CU_THREADS, s->stream, (int)op, n, a, ka == 0, b, kb == 0,
                       out);
    } else if (n <= 2147483647 && nde__cu_max_offset(shape, sa) <= 2147483647 && nde__cu_max_offset(shape, sb) <= 2147483647) {
        NDE__CU_LAUNCH(nde__k_binary<uint32_t>, nde__cu_grid(n), NDE__CU_THREADS, s->stream, (int)op, (uint32_t)n,
                       nde__cu_dims_of(shape), a, nde__cu_dims_of(sa), b, nde__cu_dims_of(sb), out);
    } else {
        NDE__CU_LAUNCH(nde__k_binary<int64_t>, nde__cu_grid(n), NDE__CU_THREADS, s->stream, (int)op, n,
                       nde__cu_dims_of(shape), a, nde__cu_dims_of(sa), b, nde__cu_dims_of(sb), out);
    }
    nde__cu_launched(s, "nde_cuda binary");
}

/* ------------------------------------------------------------ reduce_add
   out[i . out_strides] += alpha * x[i] over a 4-D index space; out_strides are 0 on
   the reduced dimensions. Each output element has exactly one writer (no atomics).
   Two kernels: one thread per output element walking its reduced elements in the
   CPU's order (many outputs, or short reductions), or one block per output element
   summing through a fixed tree (few outputs with long reductions). */
struct nde__cu_reduce_plan {
    int64_t shape[4], xs[4], os[4];
    int kept[4], num_kept, red[4], num_red;
    int64_t nout, nred;
};
static __device__ int64_t nde__cu_plan_out_offset(const nde__cu_reduce_plan *p, int64_t o, int64_t *x_base) {
    /* o enumerates the kept dimensions lexicographically */
    int64_t off = 0, xb = 0;
    for (int j = p->num_kept - 1; j >= 0; j--) {
        int d = p->kept[j];
        int64_t idx = o % p->shape[d];
        o /= p->shape[d];
        off += idx * p->os[d];
        xb += idx * p->xs[d];
    }
    *x_base = xb;
    return off;
}
static __device__ int64_t nde__cu_plan_red_offset(const nde__cu_reduce_plan *p, int64_t r) {
    int64_t xo = 0;
    for (int j = p->num_red - 1; j >= 0; j--) {
        int d = p->red[j];
        xo += (r % p->shape[d]) * p->xs[d];
        r /= p->shape[d];
    }
    return xo;
}
static __global__ void nde__k_reduce_thread(nde__cu_reduce_plan p, const nde_real *x, nde_real alpha, nde_real *out) {
    for (int64_t o = nde__cu_first(); o < p.nout; o += nde__cu_step()) {
        int64_t xb, off = nde__cu_plan_out_offset(&p, o, &xb);
        nde_real acc = out[off];
        if (p.os[3] == 0 && p.shape[3] > 1) {
            /* innermost dimension reduced: each row summed in double first, as on the CPU */
            int64_t rows = p.nred / p.shape[3];
            for (int64_t r = 0; r < rows; r++) {
                const nde_real *row = x + xb + nde__cu_plan_red_offset(&p, r * p.shape[3]);
                double sum = 0.0;
                for (int64_t i = 0; i < p.shape[3]; i++) sum += row[i];
                acc += alpha * (nde_real)sum;
            }
        } else {
            for (int64_t r = 0; r < p.nred; r++) acc += alpha * x[xb + nde__cu_plan_red_offset(&p, r)];
        }
        out[off] = acc;
    }
}
static __global__ void nde__k_reduce_block(nde__cu_reduce_plan p, const nde_real *x, nde_real alpha, nde_real *out) {
    __shared__ double sh[NDE__CU_THREADS];
    for (int64_t o = blockIdx.x; o < p.nout; o += gridDim.x) {   /* uniform over the block */
        int64_t xb, off = nde__cu_plan_out_offset(&p, o, &xb);
        double sum = 0.0;
        for (int64_t r = threadIdx.x; r < p.nred; r += blockDim.x) sum += x[xb + nde__cu_plan_red_offset(&p, r)];
        sum = nde__cu_block_sum(sum, sh);
        if (threadIdx.x == 0) out[off] += alpha * (nde_real)sum;
    }
}
static void nde__cu_reduce_add(void *self, const int64_t *shape, const nde_real *x, nde_real alpha,
                               nde_real *out, const int64_t *os) {
    nde__cuda *s = (nde__cuda *)self;
    nde__cu_reduce_plan p;
    int d;
    int64_t st = 1, n = shape[0] * shape[1] * shape[2] * shape[3];
    if (n <= 0 || !nde__cu_enter(s)) return;
    memset(&p, 0, sizeof p);
    p.nout = 1; p.nred = 1;
    for (d = 3; d >= 0; d--) { p.xs[d] = st; st *= shape[d]; }
    for (d = 0; d < 4; d++) {
        p.shape[d] = shape[d]; p.os[d] = os[d];
        if (os[d] != 0) { p.kept[p.num_kept++] = d; p.nout *= shape[d]; }
        else { p.red[p.num_red++] = d; p.nred *= shape[d]; }
    }
    /* Rows contiguous in x (innermost reduced) or few outputs: a block per output. */
    if (p.nred >= 32 && ((p.os[3] == 0 && shape[3] >= 32) || p.nout < 2048)) {
        int64_t g = p.nout < NDE__CU_MAX_BLOCKS ? p.nout : NDE__CU_MAX_BLOCKS;
        NDE__CU_LAUNCH_BLOCK(nde__k_reduce_block, (unsigned)g, NDE__CU_THREADS, s->stream, p, x, alpha, out);
    } else {
        NDE__CU_LAUNCH(nde__k_reduce_thread, nde__cu_grid(p.nout), NDE__CU_THREADS, s->stream, p, x, alpha, out);
    }
    nde__cu_launched(s, "nde_cuda reduce_add");
}

/* ------------------------------------------------------------ lincomb
   out = sum_j c_j x_j, the CPU's order: out = c_0 x_0 (or the old out when
   accumulating), then += c_j x_j for the nonzero c_j. Terms travel in the kernel
   arguments, NDE__CU_TERMS per launch. */
struct nde__cu_terms {
    const nde_real *x[NDE__CU_TERMS];
    nde_real c[NDE__CU_TERMS];
    int count;
};
static __global__ void nde__k_lincomb(int64_t n, nde__cu_terms t, int acc, nde_real *out) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) {
        int j = 0;
        nde_real v;
        if (acc) v = out[i];
        else { v = t.c[0] * t.x[0][i]; j = 1; }
        for (; j < t.count; j++)
            if (t.c[j] != (nde_real)0) v += t.c[j] * t.x[j][i];
        out[i] = v;
    }
}
static void nde__cu_lincomb(void *self, int64_t n, int count, const nde_real *coef, const nde_real *const *xs,
                            int acc, nde_real *out) {
    nde__cuda *s = (nde__cuda *)self;
    int start = 0;
    if (n <= 0 || count < 1 || !nde__cu_enter(s)) return;
    while (start < count) {
        nde__cu_terms t;
        int j;
        memset(&t, 0, sizeof t);
        t.count = count - start < NDE__CU_TERMS ? count - start : NDE__CU_TERMS;
        for (j = 0; j < t.count; j++) { t.x[j] = xs[start + j]; t.c[j] = coef[start + j]; }
        NDE__CU_LAUNCH(nde__k_lincomb, nde__cu_grid(n), NDE__CU_THREADS, s->stream, n, t, start > 0 ? 1 : acc, out);
        nde__cu_launched(s, "nde_cuda lincomb");
        start += t.count;
    }
}

/* ------------------------------------------------------------ copy2d, transpose */
static __global__ void nde__k_copy2d(int64_t rows, int64_t cols, const nde_real *src, int64_t sld, nde_real *dst,
                                     int64_t dld, int acc) {
    for (int64_t i = nde__cu_first(); i < rows * cols; i += nde__cu_step()) {
        int64_t r = i / cols, c = i % cols;
        if (acc) dst[r * dld + c] += src[r * sld + c];
        else dst[r * dld + c] = src[r * sld + c];
    }
}
static void nde__cu_copy2d(void *self, int64_t rows, int64_t cols, const nde_real *src, int64_t sld,
                           nde_real *dst, int64_t dld, int acc) {
    nde__cuda *s = (nde__cuda *)self;
    if (rows <= 0 || cols <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_copy2d, nde__cu_grid(rows * cols), NDE__CU_THREADS, s->stream, rows, cols, src, sld, dst,
                   dld, acc);
    nde__cu_launched(s, "nde_cuda copy2d");
}

#define NDE__CU_TILE 32
/* dst (cols, rows) (+)= src (rows, cols)^T through a padded shared tile (coalesced
   reads and writes); blocks of 32 x 8 threads, each thread 4 rows of the tile. */
static __global__ void nde__k_transpose(int64_t rows, int64_t cols, const nde_real *src, nde_real *dst, int acc) {
    __shared__ nde_real tile[NDE__CU_TILE][NDE__CU_TILE + 1];
    int64_t c0 = (int64_t)blockIdx.x * NDE__CU_TILE;
    for (int64_t r0 = (int64_t)blockIdx.y * NDE__CU_TILE; r0 < rows; r0 += (int64_t)gridDim.y * NDE__CU_TILE) {
        for (int j = threadIdx.y; j < NDE__CU_TILE; j += blockDim.y) {
            int64_t r = r0 + j, c = c0 + threadIdx.x;
            if (r < rows && c < cols) tile[j][threadIdx.x] = src[r * cols + c];
        }
        __syncthreads();
        for (int j = threadIdx.y; j < NDE__CU_TILE; j += blockDim.y) {
            int64_t c = c0 + j, r = r0 + threadIdx.x;
            if (r < rows && c < cols) {
                nde_real v = tile[threadIdx.x][j];
                if (acc) dst[c * rows + r] += v;
                else dst[c * rows + r] = v;
            }
        }
        __syncthreads();
    }
}
static void nde__cu_transpose(void *self, int64_t rows, int64_t cols, const nde_real *src, nde_real *dst, int acc) {
    nde__cuda *s = (nde__cuda *)self;
    int64_t gx = (cols + NDE__CU_TILE - 1) / NDE__CU_TILE, gy = (rows + NDE__CU_TILE - 1) / NDE__CU_TILE;
    if (rows <= 0 || cols <= 0 || !nde__cu_enter(s)) return;
    if (gx > 2147483647) {
        nde__cu_fail(s, NDE_ERR_BACKEND, "nde_cuda transpose: %lld columns is too many", (long long)cols);
        return;
    }
    if (gy > 65535) gy = 65535;   /* the kernel loops over the remaining row tiles */
    NDE__CU_LAUNCH_BLOCK(nde__k_transpose, dim3((unsigned)gx, (unsigned)gy, 1), dim3(NDE__CU_TILE, 8, 1), s->stream,
                         rows, cols, src, dst, acc);
    nde__cu_launched(s, "nde_cuda transpose");
}

/* ------------------------------------------------------------ gather / scatter rows
   The host index array travels in the kernel arguments, NDE__CU_INDEX_CHUNK indices
   per launch: no device scratch, no synchronisation, and CUDA-graph safe. */
struct nde__cu_index_chunk {
    int64_t idx[NDE__CU_INDEX_CHUNK];
    int count;
};
static __global__ void nde__k_gather_rows(nde__cu_index_chunk ch, int64_t cols, const nde_real *src, nde_real *dst) {
    for (int64_t t = nde__cu_first(); t < (int64_t)ch.count * cols; t += nde__cu_step()) {
        int64_t i = t / cols, c = t % cols;
        dst[i * cols + c] = src[ch.idx[i] * cols + c];
    }
}
/* Distinct indices: one thread per element. */
static __global__ void nde__k_scatter_rows(nde__cu_index_chunk ch, int64_t cols, const nde_real *src, nde_real *dst) {
    for (int64_t t = nde__cu_first(); t < (int64_t)ch.count * cols; t += nde__cu_step()) {
        int64_t i = t / cols, c = t % cols;
        dst[ch.idx[i] * cols + c] += src[i * cols + c];
    }
}
/* Repeated indices: one thread per column walks the rows in order (the CPU's order). */
static __global__ void nde__k_scatter_rows_serial(nde__cu_index_chunk ch, int64_t cols, const nde_real *src, nde_real *dst) {
    for (int64_t c = nde__cu_first(); c < cols; c += nde__cu_step())
        for (int i = 0; i < ch.count; i++) dst[ch.idx[i] * cols + c] += src[(int64_t)i * cols + c];
}
static int nde__cu_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : (x > y);
}
static int nde__cu_distinct(const nde__cu_index_chunk *ch) {
    int64_t sorted[NDE__CU_INDEX_CHUNK];
    int i;
    memcpy(sorted, ch->idx, (size_t)ch->count * sizeof(int64_t));
    qsort(sorted, (size_t)ch->count, sizeof(int64_t), nde__cu_cmp_i64);
    for (i = 1; i < ch->count; i++) if (sorted[i] == sorted[i - 1]) return 0;
    return 1;
}
static void nde__cu_rows(nde__cuda *s, int scatter, int64_t count, int64_t cols, const int64_t *index,
                         const nde_real *src, nde_real *dst) {
    int64_t start;
    const char *who = scatter ? "nde_cuda scatter_add_rows" : "nde_cuda gather_rows";
    if (count <= 0 || cols <= 0 || !nde__cu_enter(s)) return;
    for (start = 0; start < count; start += NDE__CU_INDEX_CHUNK) {
        nde__cu_index_chunk ch;
        int64_t n = count - start < NDE__CU_INDEX_CHUNK ? count - start : NDE__CU_INDEX_CHUNK;
        memcpy(ch.idx, index + start, (size_t)n * sizeof(int64_t));
        ch.count = (int)n;
        if (!scatter) {
            NDE__CU_LAUNCH(nde__k_gather_rows, nde__cu_grid(n * cols), NDE__CU_THREADS, s->stream, ch, cols, src,
                           dst + start * cols);
        } else if (nde__cu_distinct(&ch)) {
            NDE__CU_LAUNCH(nde__k_scatter_rows, nde__cu_grid(n * cols), NDE__CU_THREADS, s->stream, ch, cols,
                           src + start * cols, dst);
        } else {
            NDE__CU_LAUNCH(nde__k_scatter_rows_serial, nde__cu_grid(cols), NDE__CU_THREADS, s->stream, ch, cols,
                           src + start * cols, dst);
        }
        nde__cu_launched(s, who);
    }
}
static void nde__cu_gather_rows(void *self, int64_t count, int64_t cols, const int64_t *index, const nde_real *src,
                                nde_real *dst) {
    nde__cu_rows((nde__cuda *)self, 0, count, cols, index, src, dst);
}
static void nde__cu_scatter_add_rows(void *self, int64_t count, int64_t cols, const int64_t *index,
                                     const nde_real *src, nde_real *dst) {
    nde__cu_rows((nde__cuda *)self, 1, count, cols, index, src, dst);
}

/* ------------------------------------------------------------ im2col / col2im */
struct nde__cu_conv_geom { int64_t c, h, w, oh, ow; int kh, kw, stride, pad; };
static nde__cu_conv_geom nde__cu_geom(int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad) {
    nde__cu_conv_geom g;
    g.c = c; g.h = h; g.w = w; g.kh = kh; g.kw = kw; g.stride = stride; g.pad = pad;
    g.oh = (h + 2 * pad - kh) / stride + 1;
    g.ow = (w + 2 * pad - kw) / stride + 1;
    return g;
}
/* col row (c, i, j), column (oh, ow) = x[c, oh*stride - pad + i, ow*stride - pad + j] or 0 */
static __global__ void nde__k_im2col(nde__cu_conv_geom g, const nde_real *x, nde_real *col) {
    int64_t total = g.c * g.kh * g.kw * g.oh * g.ow;
    for (int64_t t = nde__cu_first(); t < total; t += nde__cu_step()) {
        int64_t r = t, ow = r % g.ow, oh, j, i, c;
        r /= g.ow; oh = r % g.oh;
        r /= g.oh; j = r % g.kw;
        r /= g.kw; i = r % g.kh;
        c = r / g.kh;
        int64_t hh = oh * g.stride - g.pad + i, ww = ow * g.stride - g.pad + j;
        col[t] = (hh >= 0 && hh < g.h && ww >= 0 && ww < g.w) ? x[(c * g.h + hh) * g.w + ww] : (nde_real)0;
    }
}
/* One thread per image element gathers its kernel taps in the CPU's (i, j) order. */
static __global__ void nde__k_col2im(nde__cu_conv_geom g, const nde_real *col, nde_real *x) {
    int64_t total = g.c * g.h * g.w, plane = g.oh * g.ow;
    for (int64_t t = nde__cu_first(); t < total; t += nde__cu_step()) {
        int64_t w = t % g.w, h = (t / g.w) % g.h, c = t / (g.w * g.h);
        nde_real acc = x[t];
        for (int i = 0; i < g.kh; i++) {
            int64_t hn = h + g.pad - i, oh;
            if (hn < 0 || hn % g.stride != 0) continue;
            oh = hn / g.stride;
            if (oh >= g.oh) continue;
            for (int j = 0; j < g.kw; j++) {
                int64_t wn = w + g.pad - j, ow;
                if (wn < 0 || wn % g.stride != 0) continue;
                ow = wn / g.stride;
                if (ow >= g.ow) continue;
                acc += col[((c * g.kh + i) * g.kw + j) * plane + oh * g.ow + ow];
            }
        }
        x[t] = acc;
    }
}
static void nde__cu_im2col(void *self, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                           const nde_real *x, nde_real *col) {
    nde__cuda *s = (nde__cuda *)self;
    nde__cu_conv_geom g = nde__cu_geom(c, h, w, kh, kw, stride, pad);
    int64_t total = c * kh * kw * g.oh * g.ow;
    if (total <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_im2col, nde__cu_grid(total), NDE__CU_THREADS, s->stream, g, x, col);
    nde__cu_launched(s, "nde_cuda im2col");
}
static void nde__cu_col2im(void *self, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride, int pad,
                           const nde_real *col, nde_real *x) {
    nde__cuda *s = (nde__cuda *)self;
    nde__cu_conv_geom g = nde__cu_geom(c, h, w, kh, kw, stride, pad);
    int64_t total = c * h * w;
    if (total <= 0 || g.oh <= 0 || g.ow <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_col2im, nde__cu_grid(total), NDE__CU_THREADS, s->stream, g, col, x);
    nde__cu_launched(s, "nde_cuda col2im");
}

/* The same over a batch: col (K, n*P), image b's columns from b*P; x (n, C, H, W). */
static __global__ void nde__k_im2col_batch(nde__cu_conv_geom g, int64_t n, const nde_real *x, nde_real *col) {
    int64_t plane = g.oh * g.ow, total = g.c * g.kh * g.kw * n * plane;
    for (int64_t t = nde__cu_first(); t < total; t += nde__cu_step()) {
        int64_t r = t, p = r % plane, b, j, i, c;
        r /= plane; b = r % n;
        r /= n; j = r % g.kw;
        r /= g.kw; i = r % g.kh;
        c = r / g.kh;
        int64_t oh = p / g.ow, ow = p % g.ow;
        int64_t hh = oh * g.stride - g.pad + i, ww = ow * g.stride - g.pad + j;
        col[t] = (hh >= 0 && hh < g.h && ww >= 0 && ww < g.w) ? x[((b * g.c + c) * g.h + hh) * g.w + ww] : (nde_real)0;
    }
}
static __global__ void nde__k_col2im_batch(nde__cu_conv_geom g, int64_t n, const nde_real *col, nde_real *x) {
    int64_t total = n * g.c * g.h * g.w, plane = g.oh * g.ow, ld = n * plane;
    for (int64_t t = nde__cu_first(); t < total; t += nde__cu_step()) {
        int64_t w = t % g.w, h = (t / g.w) % g.h, c = (t / (g.w * g.h)) % g.c, b = t / (g.w * g.h * g.c);
        nde_real acc = x[t];
        for (int i = 0; i < g.kh; i++) {
            int64_t hn = h + g.pad - i, oh;
            if (hn < 0 || hn % g.stride != 0) continue;
            oh = hn / g.stride;
            if (oh >= g.oh) continue;
            for (int j = 0; j < g.kw; j++) {
                int64_t wn = w + g.pad - j, ow;
                if (wn < 0 || wn % g.stride != 0) continue;
                ow = wn / g.stride;
                if (ow >= g.ow) continue;
                acc += col[((c * g.kh + i) * g.kw + j) * ld + b * plane + oh * g.ow + ow];
            }
        }
        x[t] = acc;
    }
}
static void nde__cu_im2col_batch(void *self, int64_t n, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride,
                                 int pad, const nde_real *x, nde_real *col) {
    nde__cuda *s = (nde__cuda *)self;
    nde__cu_conv_geom g = nde__cu_geom(c, h, w, kh, kw, stride, pad);
    int64_t total = c * kh * kw * n * g.oh * g.ow;
    if (total <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_im2col_batch, nde__cu_grid(total), NDE__CU_THREADS, s->stream, g, n, x, col);
    nde__cu_launched(s, "nde_cuda im2col_batch");
}
static void nde__cu_col2im_batch(void *self, int64_t n, int64_t c, int64_t h, int64_t w, int kh, int kw, int stride,
                                 int pad, const nde_real *col, nde_real *x) {
    nde__cuda *s = (nde__cuda *)self;
    nde__cu_conv_geom g = nde__cu_geom(c, h, w, kh, kw, stride, pad);
    int64_t total = n * c * h * w;
    if (total <= 0 || g.oh <= 0 || g.ow <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_col2im_batch, nde__cu_grid(total), NDE__CU_THREADS, s->stream, g, n, col, x);
    nde__cu_launched(s, "nde_cuda col2im_batch");
}

/* ------------------------------------------------------------ group norm
   Forward: one block per (n, group); mean and variance in double, two passes, as on
   the CPU. Backward: one block per (n, group) for dx, and one block per channel for
   dgamma/dbeta (sums over n and the spatial size; no atomics). */
static __global__ void nde__k_group_norm(int64_t C, int64_t S, int G, nde_real eps, const nde_real *x,
                                         const nde_real *gamma, const nde_real *beta, nde_real *y, nde_real *mean,
                                         nde_real *rstd) {
    __shared__ double sh[NDE__CU_THREADS];
    int64_t ng = blockIdx.x, n = ng / G, cpg = C / G, cnt = cpg * S;
    int g = (int)(ng % G);
    int64_t base = (n * C + (int64_t)g * cpg) * S;
    double m = 0.0, v = 0.0, r;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) m += x[base + i];
    m = nde__cu_block_sum(m, sh) / (double)cnt;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) { double d = x[base + i] - m; v += d * d; }
    v = nde__cu_block_sum(v, sh) / (double)cnt;
    r = 1.0 / sqrt(v + (double)eps);
    if (threadIdx.x == 0) { mean[ng] = (nde_real)m; rstd[ng] = (nde_real)r; }
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
        int64_t ch = (int64_t)g * cpg + i / S;
        nde_real ga = gamma ? gamma[ch] : (nde_real)1, be = beta ? beta[ch] : (nde_real)0;
        y[base + i] = (nde_real)((x[base + i] - m) * r) * ga + be;
    }
}
static __global__ void nde__k_group_norm_dx(int64_t C, int64_t S, int G, const nde_real *x, const nde_real *gamma,
                                            const nde_real *mean, const nde_real *rstd, const nde_real *dy,
                                            nde_real *dx) {
    __shared__ double sh[NDE__CU_THREADS];
    int64_t ng = blockIdx.x, n = ng / G, cpg = C / G, cnt = cpg * S;
    int g = (int)(ng % G);
    int64_t base = (n * C + (int64_t)g * cpg) * S;
    double m = mean[ng], r = rstd[ng], sum1 = 0.0, sum2 = 0.0;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
        double ga = gamma ? (double)gamma[(int64_t)g * cpg + i / S] : 1.0;
        double xh = (x[base + i] - m) * r, d = dy[base + i];
        sum1 += d * ga;
        sum2 += d * ga * xh;
    }
    sum1 = nde__cu_block_sum(sum1, sh) / (double)cnt;
    sum2 = nde__cu_block_sum(sum2, sh) / (double)cnt;
    for (int64_t i = threadIdx.x; i < cnt; i += blockDim.x) {
        double ga = gamma ? (double)gamma[(int64_t)g * cpg + i / S] : 1.0;
        double xh = (x[base + i] - m) * r;
        dx[base + i] += (nde_real)(r * (dy[base + i] * ga - sum1 - xh * sum2));
    }
}
static __global__ void nde__k_group_norm_dparams(int64_t N, int64_t C, int64_t S, int G, const nde_real *x,
                                                 const nde_real *mean, const nde_real *rstd, const nde_real *dy,
                                                 nde_real *dgamma, nde_real *dbeta) {
    __shared__ double sh[NDE__CU_THREADS];
    int64_t ch = blockIdx.x, cpg = C / G, g = ch / cpg;
    double dg = 0.0, db = 0.0;
    for (int64_t e = threadIdx.x; e < N * S; e += blockDim.x) {
        int64_t n = e / S, i = (n * C + ch) * S + e % S;
        double xh = (x[i] - (double)mean[n * G + g]) * (double)rstd[n * G + g], d = dy[i];
        dg += d * xh;
        db += d;
    }
    dg = nde__cu_block_sum(dg, sh);
    db = nde__cu_block_sum(db, sh);
    if (threadIdx.x == 0) {
        if (dgamma) dgamma[ch] += (nde_real)dg;
        if (dbeta) dbeta[ch] += (nde_real)db;
    }
}
static int nde__cu_grid_ok(nde__cuda *s, int64_t blocks, const char *who) {
    if (blocks <= 2147483647) return 1;
    nde__cu_fail(s, NDE_ERR_BACKEND, "%s: %lld blocks exceed the grid limit", who, (long long)blocks);
    return 0;
}
static void nde__cu_group_norm(void *self, int64_t n, int64_t c, int64_t sp, int groups, nde_real eps,
                               const nde_real *x, const nde_real *gamma, const nde_real *beta,
                               nde_real *y, nde_real *mean, nde_real *rstd) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || c <= 0 || groups < 1 || !nde__cu_enter(s)) return;
    if (!nde__cu_grid_ok(s, n * groups, "nde_cuda group_norm")) return;
    NDE__CU_LAUNCH_BLOCK(nde__k_group_norm, (unsigned)(n * groups), NDE__CU_THREADS, s->stream, c, sp, groups, eps, x,
                         gamma, beta, y, mean, rstd);
    nde__cu_launched(s, "nde_cuda group_norm");
}
static void nde__cu_group_norm_backward(void *self, int64_t n, int64_t c, int64_t sp, int groups,
                                        const nde_real *x, const nde_real *gamma, const nde_real *mean,
                                        const nde_real *rstd, const nde_real *dy, nde_real *dx, nde_real *dgamma,
                                        nde_real *dbeta) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || c <= 0 || groups < 1 || !nde__cu_enter(s)) return;
    if (!nde__cu_grid_ok(s, n * groups, "nde_cuda group_norm_backward")) return;
    NDE__CU_LAUNCH_BLOCK(nde__k_group_norm_dx, (unsigned)(n * groups), NDE__CU_THREADS, s->stream, c, sp, groups, x,
                         gamma, mean, rstd, dy, dx);
    nde__cu_launched(s, "nde_cuda group_norm_backward");
    if (dgamma || dbeta) {
        NDE__CU_LAUNCH_BLOCK(nde__k_group_norm_dparams, (unsigned)c, NDE__CU_THREADS, s->stream, n, c, sp, groups, x,
                             mean, rstd, dy, dgamma, dbeta);
        nde__cu_launched(s, "nde_cuda group_norm_backward");
    }
}

/* ------------------------------------------------------------ average pooling */
static __global__ void nde__k_avg_pool(int64_t nc, int64_t H, int64_t W, int k, int st, const nde_real *x,
                                       nde_real *y) {
    int64_t OH = (H - k) / st + 1, OW = (W - k) / st + 1;
    nde_real inv = (nde_real)1 / (nde_real)(k * k);
    for (int64_t t = nde__cu_first(); t < nc * OH * OW; t += nde__cu_step()) {
        int64_t ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
        nde_real sum = (nde_real)0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) sum += x[(p * H + oh * st + i) * W + ow * st + j];
        y[t] = sum * inv;
    }
}
/* One thread per input element adds the windows covering it, in the CPU's order. */
static __global__ void nde__k_avg_pool_backward(int64_t nc, int64_t H, int64_t W, int k, int st, const nde_real *dy,
                                                nde_real *dx) {
    int64_t OH = (H - k) / st + 1, OW = (W - k) / st + 1;
    nde_real inv = (nde_real)1 / (nde_real)(k * k);
    for (int64_t t = nde__cu_first(); t < nc * H * W; t += nde__cu_step()) {
        int64_t w = t % W, h = (t / W) % H, p = t / (W * H);
        /* windows oh with oh*st <= h <= oh*st + k - 1 */
        int64_t oh_lo = h - k + 1 <= 0 ? 0 : (h - k + 1 + st - 1) / st, oh_hi = h / st;
        int64_t ow_lo = w - k + 1 <= 0 ? 0 : (w - k + 1 + st - 1) / st, ow_hi = w / st;
        nde_real acc = dx[t];
        if (oh_hi > OH - 1) oh_hi = OH - 1;
        if (ow_hi > OW - 1) ow_hi = OW - 1;
        for (int64_t oh = oh_lo; oh <= oh_hi; oh++)
            for (int64_t ow = ow_lo; ow <= ow_hi; ow++) acc += dy[(p * OH + oh) * OW + ow] * inv;
        dx[t] = acc;
    }
}
static void nde__cu_avg_pool2d(void *self, int64_t nc, int64_t h, int64_t w, int k, int st, const nde_real *x,
                               nde_real *y) {
    nde__cuda *s = (nde__cuda *)self;
    int64_t total = nc * ((h - k) / st + 1) * ((w - k) / st + 1);
    if (nc <= 0 || k < 1 || st < 1 || h < k || w < k || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_avg_pool, nde__cu_grid(total), NDE__CU_THREADS, s->stream, nc, h, w, k, st, x, y);
    nde__cu_launched(s, "nde_cuda avg_pool2d");
}
static void nde__cu_avg_pool2d_backward(void *self, int64_t nc, int64_t h, int64_t w, int k, int st,
                                        const nde_real *dy, nde_real *dx) {
    nde__cuda *s = (nde__cuda *)self;
    if (nc <= 0 || k < 1 || st < 1 || h < k || w < k || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_avg_pool_backward, nde__cu_grid(nc * h * w), NDE__CU_THREADS, s->stream, nc, h, w, k, st,
                   dy, dx);
    nde__cu_launched(s, "nde_cuda avg_pool2d_backward");
}

/* ------------------------------------------------------------ log-softmax
   One block per row; the block size follows the row length (32 .. 256). */
static __global__ void nde__k_log_softmax(int64_t k, const nde_real *x, nde_real *y) {
    __shared__ double sh[NDE__CU_THREADS];
    const nde_real *xi = x + (int64_t)blockIdx.x * k;
    nde_real *yi = y + (int64_t)blockIdx.x * k;
    double mx = xi[0], sum = 0.0, lse;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) if (xi[j] > mx) mx = xi[j];
    mx = nde__cu_block_max(mx, sh);
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) sum += exp((double)xi[j] - mx);
    lse = mx + log(nde__cu_block_sum(sum, sh));
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) yi[j] = (nde_real)((double)xi[j] - lse);
}
static __global__ void nde__k_log_softmax_backward(int64_t k, const nde_real *y, const nde_real *dy, nde_real *dx) {
    __shared__ double sh[NDE__CU_THREADS];
    int64_t row = (int64_t)blockIdx.x * k;
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) sum += dy[row + j];
    sum = nde__cu_block_sum(sum, sh);
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x)
        dx[row + j] += (nde_real)(dy[row + j] - exp((double)y[row + j]) * sum);
}
static unsigned nde__cu_row_threads(int64_t k) {
    unsigned t = 32;
    while (t < NDE__CU_THREADS && (int64_t)t < k) t *= 2;
    return t;
}
static void nde__cu_log_softmax(void *self, int64_t n, int64_t k, const nde_real *x, nde_real *y) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || k <= 0 || !nde__cu_enter(s) || !nde__cu_grid_ok(s, n, "nde_cuda log_softmax")) return;
    NDE__CU_LAUNCH_BLOCK(nde__k_log_softmax, (unsigned)n, nde__cu_row_threads(k), s->stream, k, x, y);
    nde__cu_launched(s, "nde_cuda log_softmax");
}
static void nde__cu_log_softmax_backward(void *self, int64_t n, int64_t k, const nde_real *y, const nde_real *dy,
                                         nde_real *dx) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || k <= 0 || !nde__cu_enter(s) || !nde__cu_grid_ok(s, n, "nde_cuda log_softmax_backward")) return;
    NDE__CU_LAUNCH_BLOCK(nde__k_log_softmax_backward, (unsigned)n, nde__cu_row_threads(k), s->stream, k, y, dy, dx);
    nde__cu_launched(s, "nde_cuda log_softmax_backward");
}

/* ------------------------------------------------------------ Philox
   nde.h's own inline mapping nde__philox_value (compiled here for the device), so
   the streams are the CPU's by construction. */
static __global__ void nde__k_philox(int kind, uint64_t seed, uint64_t stream, uint64_t counter, int64_t n,
                                     nde_real *out) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step())
        out[i] = (nde_real)nde__philox_value(kind, seed, stream, counter + (uint64_t)i);
}
static void nde__cu_philox_fill(void *self, int kind, uint64_t seed, uint64_t stream, uint64_t counter, int64_t n,
                                nde_real *out) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_philox, nde__cu_grid(n), NDE__CU_THREADS, s->stream, kind, seed, stream, counter, n, out);
    nde__cu_launched(s, "nde_cuda philox_fill");
}

/* ------------------------------------------------------------ reductions to a host scalar
   One kernel: each block reduces a fixed slice through a fixed tree into
   partials[block]; the last block to finish (an integer ticket, no float atomics)
   combines the partials in index order and writes the result to pinned host memory.
   The grid depends only on n, so the result is the same at every run. */
enum { NDE__CU_RED_DOT, NDE__CU_RED_RMS, NDE__CU_RED_MAXABS, NDE__CU_RED_NONFINITE };
struct nde__cu_red_args {
    int op;
    int64_t n;
    const nde_real *x, *y, *z, *atol_vec;
    double rtol, atol;
};
static __device__ double nde__cu_red_combine(int op, double a, double b) {
    if (op != NDE__CU_RED_MAXABS) return a + b;
    if (a != a) return a;          /* NaN wins */
    if (b != b) return b;
    return a > b ? a : b;
}
static __device__ double nde__cu_red_term(const nde__cu_red_args *a, int64_t i) {
    switch (a->op) {
    case NDE__CU_RED_DOT: return (double)a->x[i] * (double)a->y[i];
    case NDE__CU_RED_RMS: {
        /* x = err, y = y0, z = y1 */
        double a0 = fabs((double)a->y[i]), a1 = fabs((double)a->z[i]);
        double sc = (a->atol_vec ? (double)a->atol_vec[i] : a->atol) + a->rtol * (a0 > a1 ? a0 : a1);
        double e = (double)a->x[i] / sc;
        return isfinite(a1) ? e * e : (double)NAN;   /* a non-finite y1 poisons the norm */
    }
    case NDE__CU_RED_MAXABS: return fabs((double)a->x[i]);
    default: return isfinite((double)a->x[i]) ? 0.0 : 1.0;
    }
}
static __device__ double nde__cu_block_combine(int op, double v, double *sh) {
    unsigned t = threadIdx.x, half;
    sh[t] = v;
    __syncthreads();
    for (half = blockDim.x / 2; half > 0; half >>= 1) {
        if (t < half) sh[t] = nde__cu_red_combine(op, sh[t], sh[t + half]);
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();
    return v;
}
static __global__ void nde__k_reduce_scalar(nde__cu_red_args a, double *partials, unsigned int *counter,
                                            double *result) {
    __shared__ double sh[NDE__CU_THREADS];
    __shared__ int is_last;
    double acc = 0.0;
    for (int64_t i = nde__cu_first(); i < a.n; i += nde__cu_step()) acc = nde__cu_red_combine(a.op, acc, nde__cu_red_term(&a, i));
    acc = nde__cu_block_combine(a.op, acc, sh);
    if (threadIdx.x == 0) {
        partials[blockIdx.x] = acc;
        __threadfence();                                   /* publish before taking a ticket */
        is_last = atomicAdd(counter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!is_last) return;                                  /* uniform over the block */
    __threadfence();
    acc = 0.0;
    for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) acc = nde__cu_red_combine(a.op, acc, __ldcg(partials + b));
    acc = nde__cu_block_combine(a.op, acc, sh);
    if (threadIdx.x == 0) {
        *result = a.op == NDE__CU_RED_RMS ? sqrt(acc / (double)a.n) : acc;
        *counter = 0;                                      /* ready for the next call */
    }
}
static double nde__cu_reduce(nde__cuda *s, nde__cu_red_args a, const char *who) {
    int64_t blocks = (a.n + NDE__CU_THREADS * 4 - 1) / (NDE__CU_THREADS * 4);
    if (!nde__cu_enter(s) || !nde__cu_not_capturing(s, who)) return NAN;
    if (blocks > NDE__CU_REDUCE_BLOCKS) blocks = NDE__CU_REDUCE_BLOCKS;
    if (blocks < 1) blocks = 1;
    *s->result_host = NAN;
    NDE__CU_LAUNCH_BLOCK(nde__k_reduce_scalar, (unsigned)blocks, NDE__CU_THREADS, s->stream, a, s->partials, s->counter,
                         s->result_dev);
    nde__cu_launched(s, who);
    if (s->status != NDE_OK) return NAN;
    if (!nde__cu_sync(s, who)) return NAN;
    return *(volatile double *)s->result_host;
}
static nde__cu_red_args nde__cu_red(int op, int64_t n, const nde_real *x, const nde_real *y, const nde_real *z) {
    nde__cu_red_args a;
    memset(&a, 0, sizeof a);
    a.op = op; a.n = n; a.x = x; a.y = y; a.z = z;
    return a;
}
static double nde__cu_rms_error_norm(void *self, int64_t n, const nde_real *err, const nde_real *y0, const nde_real *y1,
                                     double rtol, double atol, const nde_real *atol_vec) {
    nde__cu_red_args a = nde__cu_red(NDE__CU_RED_RMS, n, err, y0, y1);
    if (n <= 0) return 0.0;
    a.rtol = rtol; a.atol = atol; a.atol_vec = atol_vec;
    return nde__cu_reduce((nde__cuda *)self, a, "nde_cuda rms_error_norm");
}
static double nde__cu_dot(void *self, int64_t n, const nde_real *x, const nde_real *y) {
    if (n <= 0) return 0.0;
    return nde__cu_reduce((nde__cuda *)self, nde__cu_red(NDE__CU_RED_DOT, n, x, y, NULL), "nde_cuda dot");
}
static double nde__cu_max_abs(void *self, int64_t n, const nde_real *x) {
    if (n <= 0) return 0.0;
    return nde__cu_reduce((nde__cuda *)self, nde__cu_red(NDE__CU_RED_MAXABS, n, x, NULL, NULL), "nde_cuda max_abs");
}
static int nde__cu_all_finite(void *self, int64_t n, const nde_real *x) {
    double bad;
    if (n <= 0) return 1;
    bad = nde__cu_reduce((nde__cuda *)self, nde__cu_red(NDE__CU_RED_NONFINITE, n, x, NULL, NULL), "nde_cuda all_finite");
    return bad == 0.0;   /* NaN (a failure) reads as not finite */
}

/* ------------------------------------------------------------ optimizers (the CPU's formulas) */
static __global__ void nde__k_adam(int64_t n, nde_real *p, const nde_real *g, nde_real *m, nde_real *v, double lr,
                                   double b1, double b2, double eps, double wd, double bc1, double bc2, int decoupled) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) {
        double gi = g[i], pi = p[i], mi, vi;
        if (decoupled) pi -= lr * wd * pi;
        else gi += wd * pi;
        mi = b1 * m[i] + (1.0 - b1) * gi;
        vi = b2 * v[i] + (1.0 - b2) * gi * gi;
        m[i] = (nde_real)mi;
        v[i] = (nde_real)vi;
        pi -= (lr / bc1) * mi / (sqrt(vi) / sqrt(bc2) + eps);
        p[i] = (nde_real)pi;
    }
}
static void nde__cu_adam_step(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *m, nde_real *v,
                              double lr, double b1, double b2, double eps, double wd, double bc1, double bc2,
                              int decoupled) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_adam, nde__cu_grid(n), NDE__CU_THREADS, s->stream, n, p, g, m, v, lr, b1, b2, eps, wd, bc1,
                   bc2, decoupled);
    nde__cu_launched(s, "nde_cuda adam_step");
}
static __global__ void nde__k_sgd(int64_t n, nde_real *p, const nde_real *g0, nde_real *buf, double lr,
                                  double momentum, double dampening, int nesterov, double wd, int first) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) {
        double g = g0[i] + wd * p[i];
        if (momentum != 0.0) {
            double b = first ? g : momentum * buf[i] + (1.0 - dampening) * g;
            buf[i] = (nde_real)b;
            g = nesterov ? g + momentum * b : b;
        }
        p[i] = (nde_real)(p[i] - lr * g);
    }
}
static void nde__cu_sgd_step(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *buf, double lr,
                             double momentum, double dampening, int nesterov, double wd, int first) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_sgd, nde__cu_grid(n), NDE__CU_THREADS, s->stream, n, p, g, buf, lr, momentum, dampening,
                   nesterov, wd, first);
    nde__cu_launched(s, "nde_cuda sgd_step");
}
static __global__ void nde__k_rmsprop(int64_t n, nde_real *p, const nde_real *g0, nde_real *sq, nde_real *buf,
                                      double lr, double alpha, double eps, double momentum, double wd) {
    for (int64_t i = nde__cu_first(); i < n; i += nde__cu_step()) {
        double g = g0[i] + wd * p[i];
        double v = alpha * sq[i] + (1.0 - alpha) * g * g;
        double upd = g / (sqrt(v) + eps);
        sq[i] = (nde_real)v;
        if (momentum != 0.0) { buf[i] = (nde_real)(momentum * buf[i] + upd); upd = buf[i]; }
        p[i] = (nde_real)(p[i] - lr * upd);
    }
}
static void nde__cu_rmsprop_step(void *self, int64_t n, nde_real *p, const nde_real *g, nde_real *sq, nde_real *buf,
                                 double lr, double alpha, double eps, double momentum, double wd) {
    nde__cuda *s = (nde__cuda *)self;
    if (n <= 0 || !nde__cu_enter(s)) return;
    NDE__CU_LAUNCH(nde__k_rmsprop, nde__cu_grid(n), NDE__CU_THREADS, s->stream, n, p, g, sq, buf, lr, alpha, eps,
                   momentum, wd);
    nde__cu_launched(s, "nde_cuda rmsprop_step");
}

/* ------------------------------------------------------------ create / destroy */
static void nde__cu_why(char *why, size_t len, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void nde__cu_why(char *why, size_t len, const char *fmt, ...) {
    va_list ap;
    if (!why || !len) return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

int nde_cuda_device_count(char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        nde__cu_why(why, why_len, "no usable CUDA device: cudaGetDeviceCount: %s (%s)", cudaGetErrorName(e),
                    cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) nde__cu_why(why, why_len, "no CUDA device found");
    else nde__cu_why(why, why_len, "%d CUDA device(s)", n);
    return n;
}

static void nde__cu_release(nde__cuda *s) {
    if (s->blas) cublasDestroy(s->blas);
    if (s->blas_workspace) cudaFree(s->blas_workspace);
    if (s->partials) cudaFree(s->partials);
    if (s->counter) cudaFree(s->counter);
    if (s->result_host) cudaFreeHost(s->result_host);
    if (s->own_stream && s->stream) cudaStreamDestroy(s->stream);
    s->magic = 0;
    free(s);
}

static void nde__cu_fill_table(nde__cuda *s) {
    nde_backend *t = &s->table;
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->is_device = 1;
    t->self = s;
    t->alloc = nde__cu_alloc;
    t->free = nde__cu_free;
    t->copy = nde__cu_copy;
    t->synchronize = nde__cu_synchronize;
    t->fill = nde__cu_fill;
    t->gemm = nde__cu_gemm;
    t->unary = nde__cu_unary;
    t->unary_backward = nde__cu_unary_backward;
    t->binary = nde__cu_binary;
    t->reduce_add = nde__cu_reduce_add;
    t->lincomb = nde__cu_lincomb;
    t->copy2d = nde__cu_copy2d;
    t->transpose = nde__cu_transpose;
    t->gather_rows = nde__cu_gather_rows;
    t->scatter_add_rows = nde__cu_scatter_add_rows;
    t->im2col = nde__cu_im2col;
    t->col2im = nde__cu_col2im;
    t->group_norm = nde__cu_group_norm;
    t->group_norm_backward = nde__cu_group_norm_backward;
    t->avg_pool2d = nde__cu_avg_pool2d;
    t->avg_pool2d_backward = nde__cu_avg_pool2d_backward;
    t->log_softmax = nde__cu_log_softmax;
    t->log_softmax_backward = nde__cu_log_softmax_backward;
    t->philox_fill = nde__cu_philox_fill;
    t->rms_error_norm = nde__cu_rms_error_norm;
    t->dot = nde__cu_dot;
    t->max_abs = nde__cu_max_abs;
    t->all_finite = nde__cu_all_finite;
    t->adam_step = nde__cu_adam_step;
    t->sgd_step = nde__cu_sgd_step;
    t->rmsprop_step = nde__cu_rmsprop_step;
    t->last_error = nde__cu_last_error;
    t->im2col_batch = nde__cu_im2col_batch;
    t->col2im_batch = nde__cu_col2im_batch;
}

static nde__cuda *nde__cu_self(const nde_backend *be) {
    nde__cuda *s = (nde__cuda *)(const void *)be;
    if (!be || be->name == NULL || strcmp(be->name, "cuda") != 0 || be->self != (const void *)be) return NULL;
    return s->magic == NDE__CU_MAGIC ? s : NULL;
}

/* The setup steps after the state exists; returns 0 with the reason in s->message. */
static int nde__cu_setup(nde__cuda *s, const nde_cuda_options *o) {
    const char *who = "nde_cuda_backend_create";
    cudaDeviceProp prop;
    size_t ws;
    if (!NDE__CU_CHECK(s, cudaSetDevice(o->device), who)) return 0;
    if (!NDE__CU_CHECK(s, cudaGetDeviceProperties(&prop, o->device), who)) return 0;
    snprintf(s->device_name, sizeof s->device_name, "%s", prop.name);
    s->cc_major = prop.major;
    s->cc_minor = prop.minor;
    s->sm_count = prop.multiProcessorCount;
    s->device_bytes = prop.totalGlobalMem;
    if (o->stream) s->stream = (cudaStream_t)o->stream;
    else {
        if (!NDE__CU_CHECK(s, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), who)) return 0;
        s->own_stream = 1;
    }
    if (!NDE__CU_BLAS_CHECK(s, cublasCreate(&s->blas), who)) return 0;
    if (!NDE__CU_BLAS_CHECK(s, cublasSetStream(s->blas, s->stream), who)) return 0;
    /* A fixed workspace (set after the stream, which resets it) keeps cuBLAS from
       allocating during CUDA graph capture; 32 MiB is NVIDIA's advice for Hopper. */
    ws = prop.major >= 9 ? ((size_t)32 << 20) : ((size_t)4 << 20);
    if (!NDE__CU_CHECK(s, cudaMalloc(&s->blas_workspace, ws), who)) return 0;
    if (!NDE__CU_BLAS_CHECK(s, cublasSetWorkspace(s->blas, s->blas_workspace, ws), who)) return 0;
#ifndef NDE_DOUBLE
    if (!NDE__CU_BLAS_CHECK(s, cublasSetMathMode(s->blas, o->allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                            who)) return 0;
#endif
    if (!NDE__CU_CHECK(s, cudaMalloc((void **)&s->partials, NDE__CU_REDUCE_BLOCKS * sizeof(double)), who)) return 0;
    if (!NDE__CU_CHECK(s, cudaMalloc((void **)&s->counter, sizeof(unsigned int)), who)) return 0;
    if (!NDE__CU_CHECK(s, cudaMemset(s->counter, 0, sizeof(unsigned int)), who)) return 0;
    if (!NDE__CU_CHECK(s, cudaHostAlloc((void **)&s->result_host, sizeof(double), cudaHostAllocMapped), who)) return 0;
    if (!NDE__CU_CHECK(s, cudaHostGetDevicePointer((void **)&s->result_dev, s->result_host, 0), who)) return 0;
    return NDE__CU_CHECK(s, cudaDeviceSynchronize(), who);
}

nde_status nde_cuda_backend_create_opts(const nde_cuda_options *o, const nde_backend **out,
                                                                char *why, size_t why_len) {
    nde__cuda *s;
    int count;
    if (out) *out = NULL;
    if (!o || !out) {
        nde__cu_why(why, why_len, "nde_cuda_backend_create: NULL options or output pointer");
        return NDE_ERR_ARG;
    }
    if (o->real_size != (int)sizeof(nde_real)) {
        nde__cu_why(why, why_len,
                    "nde_cuda_backend_create: the caller uses nde_real of %d bytes, nde_cuda.cu was compiled with %d: "
                    "define NDE_DOUBLE in every translation unit or in none", o->real_size, (int)sizeof(nde_real));
        return NDE_ERR_CONFIG;
    }
    if (o->version_major != NDE_VERSION_MAJOR) {
        nde__cu_why(why, why_len, "nde_cuda_backend_create: header version %d, nde_cuda.cu version %d", o->version_major,
                    NDE_VERSION_MAJOR);
        return NDE_ERR_CONFIG;
    }
    count = nde_cuda_device_count(why, why_len);
    if (count == 0) return NDE_ERR_BACKEND;
    if (o->device < 0 || o->device >= count) {
        nde__cu_why(why, why_len, "nde_cuda_backend_create: device %d does not exist (%d device(s))", o->device, count);
        return NDE_ERR_ARG;
    }
    s = (nde__cuda *)calloc(1, sizeof *s);
    if (!s) {
        nde__cu_why(why, why_len, "nde_cuda_backend_create: out of host memory");
        return NDE_ERR_OOM;
    }
    s->magic = NDE__CU_MAGIC;
    s->device = o->device;
    s->allow_tf32 = o->allow_tf32;
    s->debug_sync = o->debug_sync;
    if (!nde__cu_setup(s, o)) {
        nde__cu_why(why, why_len, "%s", s->message);
        nde__cu_release(s);
        return NDE_ERR_BACKEND;
    }
    nde__cu_fill_table(s);
    *out = &s->table;
    nde__cu_why(why, why_len, "ok");
    return NDE_OK;
}

void nde_cuda_backend_destroy(const nde_backend *be) {
    nde__cuda *s = nde__cu_self(be);
    if (!s) return;
    cudaSetDevice(s->device);
    if (s->capturing) {
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(s->stream, &g) == cudaSuccess && g) cudaGraphDestroy(g);
    }
    cudaStreamSynchronize(s->stream);
    (void)cudaGetLastError();
    nde__cu_release(s);
}
int nde_cuda_is_backend(const nde_backend *be) { return nde__cu_self(be) != NULL; }
void *nde_cuda_stream(const nde_backend *be) {
    nde__cuda *s = nde__cu_self(be);
    return s ? (void *)s->stream : NULL;
}
nde_status nde_cuda_error(const nde_backend *be, const char **message) {
    nde__cuda *s = nde__cu_self(be);
    if (!s) {
        if (message) *message = "nde_cuda_error: not a CUDA backend";
        return NDE_ERR_ARG;
    }
    return nde__cu_last_error(s, message);
}
void nde_cuda_clear_error(const nde_backend *be) {
    nde__cuda *s = nde__cu_self(be);
    if (!s) return;
    s->status = NDE_OK;
    s->message[0] = 0;
}
void nde_cuda_counters(const nde_backend *be, int64_t *launches, int64_t *host_syncs) {
    nde__cuda *s = nde__cu_self(be);
    if (launches) *launches = s ? s->launches : 0;
    if (host_syncs) *host_syncs = s ? s->syncs : 0;
}
const char *nde_cuda_describe(const nde_backend *be, char *buf, size_t len) {
    nde__cuda *s = nde__cu_self(be);
    if (!buf || !len) return buf;
    if (!s) snprintf(buf, len, "not a CUDA backend");
    else
        snprintf(buf, len, "%s, sm_%d%d, %d SMs, %.1f GiB, %s, TF32 %s", s->device_name, s->cc_major, s->cc_minor,
                 s->sm_count, (double)s->device_bytes / (1024.0 * 1024.0 * 1024.0),
                 sizeof(nde_real) == 8 ? "double" : "float", s->allow_tf32 ? "on" : "off");
    return buf;
}
nde_status nde_cuda_set_tf32(const nde_backend *be, int allow) {
    nde__cuda *s = nde__cu_self(be);
    if (!s) return NDE_ERR_ARG;
    if (!nde__cu_enter(s)) return s->status;
    s->allow_tf32 = allow;
#ifndef NDE_DOUBLE
    NDE__CU_BLAS_CHECK(s, cublasSetMathMode(s->blas, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                       "nde_cuda_set_tf32");
#endif
    return s->status;
}

/* ------------------------------------------------------------ CUDA graphs */
int nde_cuda_is_capturing(const nde_backend *be) {
    nde__cuda *s = nde__cu_self(be);
    return s ? s->capturing : 0;
}
nde_status nde_cuda_graph_begin(const nde_backend *be) {
    nde__cuda *s = nde__cu_self(be);
    const char *who = "nde_cuda_graph_begin";
    if (!s) return NDE_ERR_ARG;
    if (!nde__cu_enter(s)) return s->status;
    if (s->capturing) {
        nde__cu_fail(s, NDE_ERR_ARG, "%s: a capture is already under way", who);
        return s->status;
    }
    /* Thread-local mode: calls that are unsafe during capture fail in this thread. */
    if (NDE__CU_CHECK(s, cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), who)) s->capturing = 1;
    return s->status;
}
nde_status nde_cuda_graph_end(const nde_backend *be, nde_cuda_graph **out) {
    nde__cuda *s = nde__cu_self(be);
    const char *who = "nde_cuda_graph_end";
    cudaGraph_t graph = NULL;
    cudaError_t e;
    nde_cuda_graph *g;
    if (out) *out = NULL;
    if (!s || !out) return NDE_ERR_ARG;
    if (!s->capturing) {
        nde__cu_fail(s, NDE_ERR_ARG, "%s: no capture is under way (call nde_cuda_graph_begin first)", who);
        return s->status;
    }
    s->capturing = 0;
    cudaSetDevice(s->device);
    e = cudaStreamEndCapture(s->stream, &graph);
    if (s->status != NDE_OK) {                 /* something failed inside the capture */
        if (graph) cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return s->status;
    }
    if (!nde__cu_ok(s, e, who, "cudaStreamEndCapture", __FILE__, __LINE__)) {
        if (graph) cudaGraphDestroy(graph);
        return s->status;
    }
    g = (nde_cuda_graph *)calloc(1, sizeof *g);
    if (!g) {
        cudaGraphDestroy(graph);
        nde__cu_fail(s, NDE_ERR_OOM, "%s: out of host memory", who);
        return s->status;
    }
    g->s = s;
    g->graph = graph;
    if (!NDE__CU_CHECK(s, cudaGraphInstantiate(&g->exec, graph, 0), who)) {
        cudaGraphDestroy(graph);
        free(g);
        return s->status;
    }
    *out = g;
    return NDE_OK;
}
nde_status nde_cuda_graph_launch(nde_cuda_graph *g) {
    nde__cuda *s;
    if (!g) return NDE_ERR_ARG;
    s = g->s;
    if (!nde__cu_enter(s)) return s->status;
    if (s->capturing) {
        nde__cu_fail(s, NDE_ERR_ARG, "nde_cuda_graph_launch: cannot launch a graph while capturing");
        return s->status;
    }
    NDE__CU_CHECK(s, cudaGraphLaunch(g->exec, s->stream), "nde_cuda_graph_launch");
    s->launches++;
    if (s->debug_sync) nde__cu_sync(s, "nde_cuda_graph_launch");
    return s->status;
}
void nde_cuda_graph_free(nde_cuda_graph *g) {
    if (!g) return;
    cudaSetDevice(g->s->device);
    cudaStreamSynchronize(g->s->stream);
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->graph) cudaGraphDestroy(g->graph);
    free(g);
}

#endif /* NDE_CUDA_IMPLEMENTATION */
