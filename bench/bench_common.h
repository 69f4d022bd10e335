/* bench/bench_common.h - shared by the C benchmarks: a wall clock, medians,
   thread control, and the measured FMA peak of this machine.

   The peak is measured, not computed from a data sheet: each thread runs
   PEAK_CHAINS independent chains of vector fused multiply-adds (enough to hide
   the FMA latency on current x86 cores) for a fixed count, and the best of a
   few runs is reported as flop/s (2 flops per lane per FMA). The vector width
   is the one nde's matmul uses for the same build flags: AVX-512 when
   __AVX512F__ is defined, else AVX2+FMA, else scalar.

   Define _POSIX_C_SOURCE (200809L) before the first #include of the program:
   bench_now() uses clock_gettime, which -std=c99 hides otherwise. */
#ifndef NDE_BENCH_COMMON_H
#define NDE_BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}
/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline void bench_set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}
static inline int bench_max_threads(void) {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

#if defined(__AVX512F__)
#define BENCH_ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#define BENCH_ISA "avx2"
#else
#define BENCH_ISA "scalar"
#endif

#define PEAK_CHAINS 12
#if defined(__GNUC__)
#define PEAK_UNROLL _Pragma("GCC unroll 12")
#else
#define PEAK_UNROLL
#endif

/* iters x PEAK_CHAINS vector FMAs; returns the lane count of one vector so
   the caller can count flops. The result goes to *sink so nothing is elided. */
static inline int peak_kernel_float(long iters, float *sink) {
    long it; int i;
#if defined(__AVX512F__)
    __m512 acc[PEAK_CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    PEAK_UNROLL for (i = 1; i < PEAK_CHAINS; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    *sink = _mm512_reduce_add_ps(acc[0]);
    return 16;
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 acc[PEAK_CHAINS], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    float out[8];
    PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    PEAK_UNROLL for (i = 1; i < PEAK_CHAINS; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(out, acc[0]);
    *sink = out[0];
    return 8;
#else
    float acc[PEAK_CHAINS], x = 0.999999f, y = 1e-7f;
    for (i = 0; i < PEAK_CHAINS; i++) acc[i] = (float)i;
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = acc[i] * x + y;
    for (i = 1; i < PEAK_CHAINS; i++) acc[0] += acc[i];
    *sink = acc[0];
    return 1;
#endif
}

static inline int peak_kernel_double(long iters, double *sink) {
    long it; int i;
#if defined(__AVX512F__)
    __m512d acc[PEAK_CHAINS], x = _mm512_set1_pd(0.999999), y = _mm512_set1_pd(1e-7);
    PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_set1_pd((double)i);
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_fmadd_pd(acc[i], x, y);
    PEAK_UNROLL for (i = 1; i < PEAK_CHAINS; i++) acc[0] = _mm512_add_pd(acc[0], acc[i]);
    *sink = _mm512_reduce_add_pd(acc[0]);
    return 8;
#elif defined(__AVX2__) && defined(__FMA__)
    __m256d acc[PEAK_CHAINS], x = _mm256_set1_pd(0.999999), y = _mm256_set1_pd(1e-7);
    double out[4];
    PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_set1_pd((double)i);
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_fmadd_pd(acc[i], x, y);
    PEAK_UNROLL for (i = 1; i < PEAK_CHAINS; i++) acc[0] = _mm256_add_pd(acc[0], acc[i]);
    _mm256_storeu_pd(out, acc[0]);
    *sink = out[0];
    return 4;
#else
    double acc[PEAK_CHAINS], x = 0.999999, y = 1e-7;
    for (i = 0; i < PEAK_CHAINS; i++) acc[i] = (double)i;
    for (it = 0; it < iters; it++) PEAK_UNROLL for (i = 0; i < PEAK_CHAINS; i++) acc[i] = acc[i] * x + y;
    for (i = 1; i < PEAK_CHAINS; i++) acc[0] += acc[i];
    *sink = acc[0];
    return 1;
#endif
}

/* Measured FMA peak in GFLOP/s over `threads` threads (each runs the kernel;
   wall time of the slowest), best of `runs`. */
static inline double bench_fma_peak(int is_double, int threads, int runs) {
    const long iters = 4000000;
    double best = 0.0;
    int r, threads_before = bench_max_threads();
    for (r = 0; r < runs; r++) {
        double t0, t, lanes_total = 0.0, sink_total = 0.0;
        bench_set_threads(threads);
        t0 = bench_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : lanes_total, sink_total)
#endif
        {
            float sf = 0.0f; double sd = 0.0;
            int lanes = is_double ? peak_kernel_double(iters, &sd) : peak_kernel_float(iters, &sf);
            lanes_total += (double)lanes;
            sink_total += (double)sf + sd;
        }
        t = bench_now() - t0;
        if (sink_total == 12345.678) printf("(sink)\n");
        {
            double gflops = 2.0 * lanes_total * (double)PEAK_CHAINS * (double)iters / t * 1e-9;
            if (gflops > best) best = gflops;
        }
    }
    bench_set_threads(threads_before);   /* the caller's thread count, untouched */
    return best;
}
#endif
