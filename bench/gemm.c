/* bench/gemm.c - workload W0 (../shared/WORKLOADS.md): C = A B in float for
   (M,N,K) in (512,256,64), (512,256,256), (1024,1024,1024), (256,2000,2),
   (256,2,2000), through nde's CPU backend, on 1 thread and on all threads.
   GFLOP/s (2MNK per product) is the median over SAMPLES timed samples after a
   warm-up, each sample long enough (>= 20 ms) to time; pct_peak divides by
   the FMA peak measured here for the same thread count (bench_common.h).

   Built with -DNDE_BENCH_OPENBLAS and -lopenblas (bench/Makefile does that
   when Debian's libopenblas-dev is installed), the same shapes run through
   cblas_sgemm too, for comparison only; nde never links OpenBLAS.

   Machine-readable lines:
   BENCH lib=nde workload=W0 shape=MxNxK threads=T gflops=... pct_peak=... */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c99 */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "bench_common.h"
#ifdef NDE_BENCH_OPENBLAS
#include <cblas.h>
#endif

#define SAMPLES 9
#define MIN_SAMPLE_SECONDS 0.02

typedef struct shape { int64_t m, n, k; } shape;
static const shape W0[] = { {512, 256, 64}, {512, 256, 256}, {1024, 1024, 1024}, {256, 2000, 2}, {256, 2, 2000} };
#define NUM_SHAPES ((int)(sizeof W0 / sizeof W0[0]))

typedef struct operands { nde_real *a, *b, *c; } operands;

static operands operands_new(shape s) {
    operands o;
    int64_t i;
    o.a = (nde_real *)malloc(sizeof(nde_real) * (size_t)(s.m * s.k));
    o.b = (nde_real *)malloc(sizeof(nde_real) * (size_t)(s.k * s.n));
    o.c = (nde_real *)malloc(sizeof(nde_real) * (size_t)(s.m * s.n));
    for (i = 0; i < s.m * s.k; i++) o.a[i] = (nde_real)((double)(i % 17) / 17.0 - 0.5);
    for (i = 0; i < s.k * s.n; i++) o.b[i] = (nde_real)((double)(i % 13) / 13.0 - 0.5);
    for (i = 0; i < s.m * s.n; i++) o.c[i] = 0;
    return o;
}
static void operands_free(operands *o) { free(o->a); free(o->b); free(o->c); }

static void run_nde(shape s, operands *o) {
    const nde_backend *be = nde_cpu_backend();
    be->gemm(be->self, 0, 0, s.m, s.n, s.k, NDE_R(1.0), o->a, s.k, o->b, s.n, NDE_R(0.0), o->c, s.n);
}
#ifdef NDE_BENCH_OPENBLAS
static void run_openblas(shape s, operands *o) {
#ifdef NDE_DOUBLE
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s.m, (int)s.n, (int)s.k, 1.0, o->a, (int)s.k, o->b,
                (int)s.n, 0.0, o->c, (int)s.n);
#else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s.m, (int)s.n, (int)s.k, 1.0f, o->a, (int)s.k, o->b,
                (int)s.n, 0.0f, o->c, (int)s.n);
#endif
}
#endif

/* Median GFLOP/s of fn over SAMPLES samples of `reps` calls each. */
static double time_gflops(void (*fn)(shape, operands *), shape s, operands *o) {
    double flops = 2.0 * (double)s.m * (double)s.n * (double)s.k, g[SAMPLES], t;
    long reps = 1, r;
    int i;
    fn(s, o);                                        /* warm-up, and size the sample */
    for (;;) {
        t = bench_now();
        for (r = 0; r < reps; r++) fn(s, o);
        t = bench_now() - t;
        if (t >= MIN_SAMPLE_SECONDS) break;
        reps = t > 0 ? (long)(reps * 1.5 * MIN_SAMPLE_SECONDS / t) + 1 : reps * 10;
    }
    for (i = 0; i < SAMPLES; i++) {
        t = bench_now();
        for (r = 0; r < reps; r++) fn(s, o);
        t = bench_now() - t;
        g[i] = flops * (double)reps / t * 1e-9;
    }
    return bench_median(g, SAMPLES);
}

int main(void) {
    int max_t = bench_max_threads(), threads[2], nt = 0, ti, si;
    double peak[2];
    const char *dtype = sizeof(nde_real) == 8 ? "f64" : "f32";
    threads[nt++] = 1;
    if (max_t > 1) threads[nt++] = max_t;
    for (ti = 0; ti < nt; ti++) {
        peak[ti] = bench_fma_peak(sizeof(nde_real) == 8, threads[ti], 10);
        printf("BENCH lib=peak workload=fma dtype=%s isa=%s threads=%d gflops=%.1f\n", dtype, BENCH_ISA, threads[ti], peak[ti]);
    }
    for (ti = 0; ti < nt; ti++) {
        bench_set_threads(threads[ti]);
        for (si = 0; si < NUM_SHAPES; si++) {
            operands o = operands_new(W0[si]);
            double g = time_gflops(run_nde, W0[si], &o);
            printf("BENCH lib=nde workload=W0 shape=%lldx%lldx%lld dtype=%s threads=%d gflops=%.1f pct_peak=%.1f\n",
                   (long long)W0[si].m, (long long)W0[si].n, (long long)W0[si].k, dtype, threads[ti], g,
                   100.0 * g / peak[ti]);
            fflush(stdout);
            operands_free(&o);
        }
    }
#ifdef NDE_BENCH_OPENBLAS
    for (ti = 0; ti < nt; ti++) {
        openblas_set_num_threads(threads[ti]);
        for (si = 0; si < NUM_SHAPES; si++) {
            operands o = operands_new(W0[si]);
            double g = time_gflops(run_openblas, W0[si], &o);
            printf("BENCH lib=openblas workload=W0 shape=%lldx%lldx%lld dtype=%s threads=%d gflops=%.1f pct_peak=%.1f\n",
                   (long long)W0[si].m, (long long)W0[si].n, (long long)W0[si].k, dtype, threads[ti], g,
                   100.0 * g / peak[ti]);
            fflush(stdout);
            operands_free(&o);
        }
    }
#else
    printf("# OpenBLAS comparison skipped (built without -DNDE_BENCH_OPENBLAS; apt-get install libopenblas-dev)\n");
#endif
    return 0;
}
