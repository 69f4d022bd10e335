/* bench/peak.c - the measured FMA peak of this machine (GFLOP/s), float and
   double, on 1 thread and on all threads. nde's GEMM benchmark (bench/gemm.c)
   divides by the same measurement. Prints machine-readable lines:
   BENCH lib=peak workload=fma dtype=f32 isa=avx512 threads=1 gflops=... */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c99 */
#include "bench_common.h"

int main(void) {
    int d, t, max_t = bench_max_threads();
    printf("# FMA peak: %d independent FMA chains per thread, best of 5 runs\n", PEAK_CHAINS);
    for (d = 0; d < 2; d++) {
        for (t = 1; t <= max_t; t = t < max_t && 2 * t > max_t ? max_t : 2 * t) {
            double g = bench_fma_peak(d, t, 5);
            printf("BENCH lib=peak workload=fma dtype=%s isa=%s threads=%d gflops=%.1f per_thread=%.1f\n",
                   d ? "f64" : "f32", BENCH_ISA, t, g, g / t);
            if (t == max_t) break;
        }
    }
    return 0;
}
