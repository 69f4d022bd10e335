/* tests/cuda_emu.h - a sequential CPU stand-in for the parts of the CUDA runtime and
   cuBLAS that nde_cuda.h uses. With -DNDE_CUDA_EMULATE='"tests/cuda_emu.h"' the CUDA
   implementation compiles with a host C++ compiler, so that `make test` runs
   tests/test_cuda.cu's comparisons on machines without a GPU: kernel index
   arithmetic, launch shapes (checked against CUDA's limits), block trees, the
   cuBLAS row/column-major mapping and its argument checks, the last-block
   reduction, stream capture and graph replay.

   What it is not: a model of timing or of the GPU memory model. Blocks run one
   after another. A kernel launched with NDE__CU_LAUNCH_BLOCK runs each thread of a
   block as a fiber that switches at __syncthreads() (in alternating order, so a
   missing barrier tends to show); a kernel launched with NDE__CU_LAUNCH must not call
   __syncthreads() (the emulator aborts if it does). Device memory is host memory,
   so AddressSanitizer sees a kernel's out-of-bounds access, and every copy and
   cuBLAS operand is checked against the live allocations.

   Environment: NDE_EMU_NO_DEVICE=1 makes cudaGetDeviceCount report no device. */
#ifndef NDE_CUDA_EMU_H
#define NDE_CUDA_EMU_H

#include <ucontext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <map>
#include <tuple>
#include <vector>

/* ------------------------------------------------------------ qualifiers, indices */
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

/* ------------------------------------------------------------ runtime types */
enum cudaError_t {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100, cudaErrorInvalidDevice = 101, cudaErrorIllegalAddress = 700,
    cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901
};
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
                      cudaMemcpyDeviceToDevice = 3 };
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
#define cudaStreamNonBlocking 1u
#define cudaHostAllocMapped 2u

struct cudaDeviceProp { char name[256]; int major, minor, multiProcessorCount; size_t totalGlobalMem; };
struct cudaPointerAttributes { cudaMemoryType type; int device; void *devicePointer, *hostPointer; };

struct nde_emu_graph { std::vector<std::function<void()> > ops; };
struct nde_emu_stream { int capturing; int invalidated; nde_emu_graph *graph; };
typedef nde_emu_stream *cudaStream_t;
typedef nde_emu_graph *cudaGraph_t;
typedef nde_emu_graph *cudaGraphExec_t;

/* ------------------------------------------------------------ emulator state */
/* Fibers: on x86-64 a six-register stack switch (glibc's swapcontext makes a
   signal-mask system call at every switch, ten times slower); ucontext elsewhere. */
#if defined(__x86_64__)
#define NDE_EMU_ASM_SWITCH 1
extern "C" void nde_emu_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".globl nde_emu_switch\n"
        ".type nde_emu_switch, @function\n"
        "nde_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size nde_emu_switch, .-nde_emu_switch\n");
#endif
struct nde_emu_fiber {
#ifdef NDE_EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack;
    int state;
};
enum { NDE_EMU_READY = 0, NDE_EMU_WAITING = 1, NDE_EMU_DONE = 2 };
#define NDE_EMU_STACK (64 * 1024)

struct nde_emu_state {
    uint3 thread, block;
    dim3 block_dim, grid_dim;
    int in_fiber;                                  /* the running kernel may use barriers */
    cudaError_t last_error;
    std::map<uintptr_t, size_t> device_allocs;     /* device allocations: base -> bytes */
    std::map<uintptr_t, size_t> host_allocs;       /* pinned host allocations */
    std::vector<nde_emu_fiber> fibers;
#ifdef NDE_EMU_ASM_SWITCH
    void *scheduler_sp;
#else
    ucontext_t scheduler;
#endif
    int current;
    const std::function<void()> *body;
    size_t mem_limit;
};
static nde_emu_state nde_emu;

#define threadIdx (nde_emu.thread)
#define blockIdx (nde_emu.block)
#define blockDim (nde_emu.block_dim)
#define gridDim (nde_emu.grid_dim)

static void nde_emu_abort(const char *what) {
    fprintf(stderr, "cuda_emu: %s\n", what);
    abort();
}
static cudaError_t nde_emu_set(cudaError_t e) {
    if (e != cudaSuccess && nde_emu.last_error == cudaSuccess) nde_emu.last_error = e;
    return e;
}

/* Is [p, p + bytes) inside one live device (or pinned) allocation? */
static int nde_emu_in(const std::map<uintptr_t, size_t> &m, const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    std::map<uintptr_t, size_t>::const_iterator it = m.upper_bound(a);
    if (it == m.begin()) return 0;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}
static int nde_emu_device_range(const void *p, size_t bytes) { return nde_emu_in(nde_emu.device_allocs, p, bytes); }

/* ------------------------------------------------------------ kernel execution */
static void nde_emu_set_thread(const dim3 &b, unsigned linear) {
    nde_emu.thread.x = linear % b.x;
    nde_emu.thread.y = (linear / b.x) % b.y;
    nde_emu.thread.z = linear / (b.x * b.y);
}
/* Fiber <-> scheduler. */
static void nde_emu_to_scheduler(void) {
#ifdef NDE_EMU_ASM_SWITCH
    nde_emu_switch(&nde_emu.fibers[nde_emu.current].sp, nde_emu.scheduler_sp);
#else
    swapcontext(&nde_emu.fibers[nde_emu.current].ctx, &nde_emu.scheduler);
#endif
}
static void nde_emu_to_fiber(int i) {
    nde_emu.current = i;
#ifdef NDE_EMU_ASM_SWITCH
    nde_emu_switch(&nde_emu.scheduler_sp, nde_emu.fibers[i].sp);
#else
    swapcontext(&nde_emu.scheduler, &nde_emu.fibers[i].ctx);
#endif
}
static void nde_emu_fiber_entry(void) {
    (*nde_emu.body)();
    nde_emu.fibers[nde_emu.current].state = NDE_EMU_DONE;
#ifdef NDE_EMU_ASM_SWITCH
    nde_emu_to_scheduler();   /* never resumed */
    nde_emu_abort("a finished fiber was resumed");
#endif
    /* ucontext: returning resumes uc_link, the scheduler */
}
static void nde_emu_fiber_start(nde_emu_fiber *f) {
#ifdef NDE_EMU_ASM_SWITCH
    /* A frame that nde_emu_switch "returns" into: six saved registers, then the entry
       address on a 16-byte boundary (so the entry sees the stack as after a call). */
    uintptr_t top = ((uintptr_t)f->stack + NDE_EMU_STACK) & ~(uintptr_t)15;
    void **slot = (void **)(top - 16);
    int r;
    *slot = (void *)nde_emu_fiber_entry;
    for (r = 1; r <= 6; r++) slot[-r] = NULL;
    f->sp = (void *)(slot - 6);
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = NDE_EMU_STACK;
    f->ctx.uc_link = &nde_emu.scheduler;
    makecontext(&f->ctx, nde_emu_fiber_entry, 0);
#endif
    f->state = NDE_EMU_READY;
}
inline void __syncthreads(void) {
    if (!nde_emu.in_fiber)
        nde_emu_abort("__syncthreads() in a kernel launched with NDE__CU_LAUNCH (use NDE__CU_LAUNCH_BLOCK)");
    nde_emu.fibers[nde_emu.current].state = NDE_EMU_WAITING;
    nde_emu_to_scheduler();
}
static void nde_emu_free_stacks(void) {
    size_t i;
    for (i = 0; i < nde_emu.fibers.size(); i++) free(nde_emu.fibers[i].stack);
    nde_emu.fibers.clear();
}
static void nde_emu_run_block_fibers(const dim3 &b, const std::function<void()> &body) {
    unsigned n = b.x * b.y * b.z, i;
    volatile int phase = 0;   /* live across the switches */
    if (nde_emu.fibers.size() < n) {
        size_t old = nde_emu.fibers.size();
        if (!old) atexit(nde_emu_free_stacks);
        nde_emu.fibers.resize(n);
        for (i = (unsigned)old; i < n; i++) nde_emu.fibers[i].stack = (char *)malloc(NDE_EMU_STACK);
    }
    nde_emu.body = &body;
    for (i = 0; i < n; i++) nde_emu_fiber_start(&nde_emu.fibers[i]);
    nde_emu.in_fiber = 1;
    for (;;) {
        unsigned done = 0, k;
        for (k = 0; k < n; k++) {
            i = (phase & 1) ? n - 1 - k : k;     /* alternate the order between barriers */
            if (nde_emu.fibers[i].state != NDE_EMU_READY) continue;
            nde_emu_set_thread(b, i);
            nde_emu_to_fiber((int)i);
        }
        for (k = 0; k < n; k++) if (nde_emu.fibers[k].state == NDE_EMU_DONE) done++;
        if (done == n) break;
        if (done) nde_emu_abort("__syncthreads() not reached by every thread of a block (some returned early)");
        for (k = 0; k < n; k++) nde_emu.fibers[k].state = NDE_EMU_READY;
        phase++;
    }
    nde_emu.in_fiber = 0;
}
static void nde_emu_run(dim3 g, dim3 b, int coop, const std::function<void()> &body) {
    unsigned bx, by, bz, t;
    nde_emu.grid_dim = g;
    nde_emu.block_dim = b;
    for (bz = 0; bz < g.z; bz++)
        for (by = 0; by < g.y; by++)
            for (bx = 0; bx < g.x; bx++) {
                nde_emu.block.x = bx; nde_emu.block.y = by; nde_emu.block.z = bz;
                if (coop) nde_emu_run_block_fibers(b, body);
                else
                    for (t = 0; t < b.x * b.y * b.z; t++) { nde_emu_set_thread(b, t); body(); }
            }
}
/* Runs now, or records into the graph of a capturing stream. */
static cudaError_t nde_emu_enqueue(cudaStream_t st, const std::function<void()> &op) {
    if (st && st->capturing) {
        if (st->invalidated) return nde_emu_set(cudaErrorStreamCaptureInvalidated);
        st->graph->ops.push_back(op);
    } else {
        op();
    }
    return cudaSuccess;
}
/* Checks CUDA's launch limits (compute capability 9.0). */
static void nde_emu_launch(dim3 g, dim3 b, int coop, cudaStream_t st, const std::function<void()> &body) {
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
        g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        nde_emu_set(cudaErrorInvalidConfiguration);
        return;
    }
    nde_emu_enqueue(st, [=]() { nde_emu_run(g, b, coop, body); });
}

/* The launch: like CUDA, the arguments are converted and copied now (a graph
   replays the values of capture time, not what the pointers show later). */
template <typename... Params, typename... Args>
static void nde_emu_launch_kernel(dim3 g, dim3 b, int coop, cudaStream_t st, void (*kernel)(Params...), Args... args) {
    std::tuple<Params...> bound(args...);
    nde_emu_launch(g, b, coop, st, [=]() { std::apply(kernel, bound); });
}

/* ------------------------------------------------------------ device functions */
inline void __threadfence(void) {}
inline unsigned int atomicAdd(unsigned int *p, unsigned int v) {
    unsigned int old = *p;
    *p = old + v;
    return old;
}
template <typename T> inline T __ldcg(const T *p) { return *p; }

/* ------------------------------------------------------------ runtime API */
inline const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    }
    return "cudaErrorUnknown";
}
inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (emulator)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    }
    return "unknown error";
}
inline cudaError_t cudaGetLastError(void) {
    cudaError_t e = nde_emu.last_error;
    nde_emu.last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaGetDeviceCount(int *n) {
    const char *no = getenv("NDE_EMU_NO_DEVICE");
    if (no && no[0] && no[0] != '0') { *n = 0; return nde_emu_set(cudaErrorNoDevice); }
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : nde_emu_set(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return nde_emu_set(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "nde CPU emulator");
    p->major = 9; p->minor = 0; p->multiProcessorCount = 1;
    p->totalGlobalMem = (size_t)1 << 32;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags) {
    (void)flags;
    *st = (cudaStream_t)calloc(1, sizeof(nde_emu_stream));
    return *st ? cudaSuccess : nde_emu_set(cudaErrorMemoryAllocation);
}
inline cudaError_t cudaStreamDestroy(cudaStream_t st) { free(st); return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    if (st && st->capturing) { st->invalidated = 1; return nde_emu_set(cudaErrorStreamCaptureUnsupported); }
    return cudaSuccess;
}
inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    size_t limit = nde_emu.mem_limit ? nde_emu.mem_limit : ((size_t)1 << 32);
    if (bytes > limit) { *p = NULL; return nde_emu_set(cudaErrorMemoryAllocation); }
    *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!*p) return nde_emu_set(cudaErrorMemoryAllocation);
    nde_emu.device_allocs[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}
inline cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (!nde_emu.device_allocs.erase((uintptr_t)p)) return nde_emu_set(cudaErrorInvalidValue);
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    (void)flags;
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return nde_emu_set(cudaErrorMemoryAllocation);
    nde_emu.host_allocs[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void *p) {
    if (!nde_emu.host_allocs.erase((uintptr_t)p)) return nde_emu_set(cudaErrorInvalidValue);
    free(p);
    return cudaSuccess;
}
inline cudaError_t cudaHostGetDevicePointer(void **d, void *h, unsigned flags) {
    (void)flags;
    if (!nde_emu_in(nde_emu.host_allocs, h, 1)) return nde_emu_set(cudaErrorInvalidValue);
    *d = h;
    return cudaSuccess;
}
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    memset(a, 0, sizeof *a);
    if (nde_emu_in(nde_emu.device_allocs, p, 1)) a->type = cudaMemoryTypeDevice;
    else if (nde_emu_in(nde_emu.host_allocs, p, 1)) a->type = cudaMemoryTypeHost;
    else a->type = cudaMemoryTypeUnregistered;
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t st) {
    int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev && !nde_emu_device_range(dst, bytes)) || (src_dev && !nde_emu_device_range(src, bytes)))
        return nde_emu_set(cudaErrorInvalidValue);
    if (st && st->capturing && kind != cudaMemcpyDeviceToDevice) {
        st->invalidated = 1;   /* pageable host memory cannot be captured */
        return nde_emu_set(cudaErrorStreamCaptureUnsupported);
    }
    return nde_emu_enqueue(st, [=]() { memmove(dst, src, bytes); });
}
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t st) {
    if (!nde_emu_device_range(p, bytes)) return nde_emu_set(cudaErrorInvalidValue);
    return nde_emu_enqueue(st, [=]() { memset(p, v, bytes); });
}
inline cudaError_t cudaMemset(void *p, int v, size_t bytes) { return cudaMemsetAsync(p, v, bytes, NULL); }
inline cudaError_t cudaStreamBeginCapture(cudaStream_t st, cudaStreamCaptureMode mode) {
    (void)mode;
    if (!st || st->capturing) return nde_emu_set(cudaErrorInvalidValue);
    st->capturing = 1;
    st->invalidated = 0;
    st->graph = new nde_emu_graph();
    return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *g) {
    *g = NULL;
    if (!st || !st->capturing) return nde_emu_set(cudaErrorInvalidValue);
    st->capturing = 0;
    if (st->invalidated) {
        delete st->graph;
        st->graph = NULL;
        return nde_emu_set(cudaErrorStreamCaptureInvalidated);
    }
    *g = st->graph;
    st->graph = NULL;
    return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    (void)flags;
    *exec = new nde_emu_graph(*g);
    return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t st) {
    size_t i;
    if (st && st->capturing) return nde_emu_set(cudaErrorStreamCaptureUnsupported);
    for (i = 0; i < exec->ops.size(); i++) exec->ops[i]();
    return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) { delete exec; return cudaSuccess; }
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }

/* ------------------------------------------------------------ cuBLAS */
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1, CUBLAS_STATUS_INVALID_VALUE = 7,
                      CUBLAS_STATUS_EXECUTION_FAILED = 13 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
struct nde_emu_blas { cudaStream_t stream; void *workspace; cublasMath_t math; };
typedef nde_emu_blas *cublasHandle_t;

inline const char *cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
inline const char *cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "success" : "an invalid value was used as an argument (emulator)";
}
inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)calloc(1, sizeof(nde_emu_blas));
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) { free(h); return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t st) {
    h->stream = st;
    h->workspace = NULL;   /* as in cuBLAS: a new stream resets the workspace */
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    if (bytes && !nde_emu_device_range(ws, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    h->workspace = ws;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { h->math = m; return CUBLAS_STATUS_SUCCESS; }

/* Column-major C (m x n) = alpha op(A) op(B) + beta C, with cuBLAS's argument checks. */
template <typename T>
static cublasStatus_t nde_emu_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const T *alpha, const T *A, int lda, const T *B, int ldb, const T *beta, T *C,
                                   int ldc) {
    int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    T al = *alpha, be = *beta;
    if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!h->workspace) return CUBLAS_STATUS_NOT_INITIALIZED;   /* nde sets one; graphs need it */
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if ((k > 0 && (!nde_emu_device_range(A, ((size_t)(a_cols - 1) * lda + a_rows) * sizeof(T)) ||
                   !nde_emu_device_range(B, ((size_t)(b_cols - 1) * ldb + b_rows) * sizeof(T)))) ||
        !nde_emu_device_range(C, ((size_t)(n - 1) * ldc + m) * sizeof(T)))
        return CUBLAS_STATUS_INVALID_VALUE;
    nde_emu_enqueue(h->stream, [=]() {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                T acc = 0;
                for (int p = 0; p < k; p++) {
                    T a = ta == CUBLAS_OP_N ? A[i + (size_t)p * lda] : A[p + (size_t)i * lda];
                    T b = tb == CUBLAS_OP_N ? B[p + (size_t)j * ldb] : B[j + (size_t)p * ldb];
                    acc += a * b;
                }
                T *c = C + i + (size_t)j * ldc;
                *c = be == (T)0 ? al * acc : al * acc + be * *c;
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float *alpha, const float *A, int lda, const float *B, int ldb,
                                  const float *beta, float *C, int ldc) {
    return nde_emu_gemm<float>(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const double *alpha, const double *A, int lda, const double *B, int ldb,
                                  const double *beta, double *C, int ldc) {
    return nde_emu_gemm<double>(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

#endif /* NDE_CUDA_EMU_H */
