/* bench/bench_workload.h - shared by the workload benchmarks bench/w*.c: command
   line, the peers' data and initial parameters, the timing loop, the output.

   Each workload program times one training iteration (forward solve, loss,
   backward, optimizer step) for each gradient mode it is asked for and prints

     BENCH lib=nde workload=W3 mode=direct ms=<median> nfe_f=<n> nfe_b=<n> loss=<x> iters=<n> ...

   (the line format of bench/peers/common.py, so compare.py reads both), then a
   readable table. The protocol is the peers' one: before EVERY iteration the
   initial parameters are restored (untimed; the optimizer state is kept), so
   every iteration does the same work as the first; loss and NFE are those of
   the first iteration; the time is the median over the timed iterations after
   the warm-up ones.

   Data: the peers draw the data and the initial parameters with numpy (recipe
   in bench/peers/common.py) and `common.py --dump DIR` writes them as raw
   float32/int32 files DIR/<W>/<name>.bin listed in DIR/<W>/manifest.txt.
   --data DIR (default: ./data, then bench/data, where peers/run_all.sh writes
   them) loads those, so nde starts from the same numbers as the peers. Without
   a dump (no Python venv) a workload falls back to the same recipe drawn with
   nde's Philox generator (same distributions, different numbers) and says
   data=synthetic.

   Flags: --iters N (timed), --warmup N, --modes direct,adjoint, --quick
   (iters 3, warmup 1), --threads N (2), --data DIR.

   Gradient modes: any of nde_adjoint.h's names (direct, checkpoint, adjoint =
   backsolve, interp, gq, gq_step); every solve goes through
   nde_odeint_adjoint with that mode and its default options, and the NFE come
   from its nde_adjoint_stats (nfe_b: evaluations of the backward pass, a VJP
   counting one; 0 in direct mode, which replays the tape, as in torch).

   Include this after #define NDE_IMPLEMENTATION and _POSIX_C_SOURCE (clock_gettime). */
#ifndef NDE_BENCH_WORKLOAD_H
#define NDE_BENCH_WORKLOAD_H

#include "../nde_adjoint.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct bw_args {
    int iters, warmup, threads, quick;
    char modes[128];          /* comma-separated */
    const char *data_dir;     /* NULL: the defaults above */
} bw_args;

static inline double bw_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bw_cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static inline void bw_usage(const char *prog, const char *modes) {
    fprintf(stderr, "usage: %s [--iters N] [--warmup N] [--modes %s] [--quick] [--threads N] [--data DIR]\n",
            prog, modes);
}

/* Parses argv into a; returns 0, or 1 after printing the usage. */
static inline int bw_parse(int argc, char **argv, bw_args *a, int iters, int warmup, const char *modes) {
    int i;
    a->iters = iters; a->warmup = warmup; a->threads = 2; a->quick = 0; a->data_dir = NULL;
    snprintf(a->modes, sizeof a->modes, "%s", modes);
    for (i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--quick")) { a->quick = 1; continue; }
        if (!v) { bw_usage(argv[0], modes); return 1; }
        if (!strcmp(s, "--iters")) a->iters = atoi(v);
        else if (!strcmp(s, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(s, "--threads")) a->threads = atoi(v);
        else if (!strcmp(s, "--modes")) snprintf(a->modes, sizeof a->modes, "%s", v);
        else if (!strcmp(s, "--data")) a->data_dir = v;
        else { bw_usage(argv[0], modes); return 1; }
        i++;
    }
    if (a->quick) { a->iters = 3; a->warmup = 1; }
    if (a->iters < 1 || a->warmup < 0 || a->threads < 1) { bw_usage(argv[0], modes); return 1; }
#ifdef _OPENMP
    omp_set_num_threads(a->threads);
#endif
    return 0;
}

/* ------------------------------------------------------------ data */
/* Reads DIR/<w>/<name>.bin (count float32 or int32 values, as the manifest says)
   into out (float or int32_t array). Returns 1 if read, 0 if there is no dump;
   a dump that is there but does not fit is fatal (exit 2). */
static inline int bw_load_raw(const bw_args *a, const char *w, const char *name, int64_t count, int is_int, void *out) {
    const char *dirs[3];
    char path[1024], line[512];
    int nd = 0, d;
    if (a->data_dir) dirs[nd++] = a->data_dir;
    else { dirs[nd++] = "data"; dirs[nd++] = "bench/data"; }
    for (d = 0; d < nd; d++) {
        FILE *man, *f;
        int64_t found = -1;
        snprintf(path, sizeof path, "%s/%s/manifest.txt", dirs[d], w);
        man = fopen(path, "r");
        if (!man) continue;
        while (fgets(line, sizeof line, man)) {
            char nm[128], dt[16];
            int64_t dims[4] = {1, 1, 1, 1}, prod = 1;
            int k, got = sscanf(line, "%127s %15s %lld %lld %lld %lld", nm, dt, (long long *)&dims[0],
                                (long long *)&dims[1], (long long *)&dims[2], (long long *)&dims[3]);
            if (got < 2 || strcmp(nm, name)) continue;
            for (k = 0; k < got - 2; k++) prod *= dims[k];
            if ((!strcmp(dt, "int32")) != is_int) {
                fprintf(stderr, "bench: %s: %s is %s, expected %s\n", path, name, dt, is_int ? "int32" : "float32");
                exit(2);
            }
            found = prod;
        }
        fclose(man);
        if (found < 0) continue;
        if (found != count) {
            fprintf(stderr, "bench: %s: %s has %lld values, expected %lld\n", path, name, (long long)found, (long long)count);
            exit(2);
        }
        snprintf(path, sizeof path, "%s/%s/%s.bin", dirs[d], w, name);
        f = fopen(path, "rb");
        if (!f || fread(out, 4, (size_t)count, f) != (size_t)count) {
            fprintf(stderr, "bench: cannot read %lld values from %s\n", (long long)count, path);
            exit(2);
        }
        fclose(f);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ timing */
typedef struct bw_iter {
    double loss;
    int64_t nfe_f, nfe_b;
} bw_iter;

typedef struct bw_result {
    double ms, first_ms, min_ms;
    bw_iter first, last;
    int iters;
} bw_result;

/* Runs reset (untimed) + step warmup + iters times; the median of the timed ones. */
static inline bw_result bw_time(const bw_args *a, void (*reset)(void *), bw_iter (*step)(void *), void *user) {
    bw_result r;
    int i, n = a->warmup + a->iters;
    double *times = (double *)malloc(sizeof(double) * (size_t)a->iters);
    memset(&r, 0, sizeof r);
    if (!times) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    for (i = 0; i < n; i++) {
        double t0, dt;
        bw_iter it;
        if (reset) reset(user);
        t0 = bw_now();
        it = step(user);
        dt = (bw_now() - t0) * 1e3;
        if (i == 0) { r.first = it; r.first_ms = dt; }
        r.last = it;
        if (i >= a->warmup) times[i - a->warmup] = dt;
    }
    qsort(times, (size_t)a->iters, sizeof *times, bw_cmp_double);
    r.ms = a->iters % 2 ? times[a->iters / 2] : 0.5 * (times[a->iters / 2 - 1] + times[a->iters / 2]);
    r.min_ms = times[0];
    r.iters = a->iters;
    free(times);
    return r;
}

/* The BENCH line (peers' format) plus `extra` (" key=value ..."). */
static inline void bw_print(const char *w, const char *mode, const bw_result *r, const char *extra) {
    printf("BENCH lib=nde workload=%s mode=%s ms=%.3f nfe_f=%lld nfe_b=%lld loss=%.7g iters=%d%s\n", w, mode, r->ms,
           (long long)r->first.nfe_f, (long long)r->first.nfe_b, r->first.loss, r->iters, extra ? extra : "");
    fflush(stdout);
}

/* Readable table rows: call bw_table_head once, then bw_table_row per mode. */
static inline void bw_table_head(const char *title) {
    printf("\n%s\n  %-9s %11s %11s %8s %8s %14s\n", title, "mode", "median ms", "min ms", "nfe_f", "nfe_b", "loss");
}
static inline void bw_table_row(const char *mode, const bw_result *r) {
    printf("  %-9s %11.3f %11.3f %8lld %8lld %14.7g\n", mode, r->ms, r->min_ms, (long long)r->first.nfe_f,
           (long long)r->first.nfe_b, r->first.loss);
}

/* ------------------------------------------------------------ nde helpers */
#define BW_MAX_MODES 8
/* The modes of a->modes as nde_grad_mode values; returns their count (exit 2 on
   an unknown name). */
static inline int bw_modes(const bw_args *a, nde_grad_mode *out) {
    char buf[128], *tok;
    int n = 0;
    nde_ctx *probe = nde_ctx_new(nde_ctx_desc_default());
    snprintf(buf, sizeof buf, "%s", a->modes);
    for (tok = strtok(buf, ","); tok && n < BW_MAX_MODES; tok = strtok(NULL, ",")) {
        if (nde_grad_mode_from_name(probe, tok, &out[n]) != NDE_OK) {
            fprintf(stderr, "bench: %s\n", nde_ctx_message(probe));
            exit(2);
        }
        n++;
    }
    nde_ctx_free(probe);
    return n;
}

/* Stops the program with the context's message if it holds an error. */
static inline void bw_check(nde_ctx *ctx, const char *where) {
    if (nde_ctx_status(ctx) != NDE_OK) {
        fprintf(stderr, "bench %s: %s\n", where, nde_ctx_message(ctx));
        exit(2);
    }
}

/* Fills t from the peers' dump (returns 1), or with N(0,1) from Philox (returns 0). */
static inline int bw_tensor(nde_ctx *ctx, const bw_args *a, const char *w, const char *name, nde_tensor *t, uint64_t seed) {
    float *buf = (float *)malloc(sizeof(float) * (size_t)t->size);
    nde_real *vals = (nde_real *)malloc(sizeof(nde_real) * (size_t)t->size);
    int64_t i;
    int got;
    if (!buf || !vals) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    got = bw_load_raw(a, w, name, t->size, 0, buf);
    if (got) {
        for (i = 0; i < t->size; i++) vals[i] = (nde_real)buf[i];
        nde_tensor_set_host(ctx, t, vals);
    } else {
        nde_rng r = nde_rng_new(seed, 0);
        nde_tensor_fill_normal(ctx, t, &r, NDE_R(0.0), NDE_R(1.0));
    }
    free(buf);
    free(vals);
    return got;
}

/* A parameter of the given shape: the dump's values, or U(-bound, bound). */
static inline int bw_param(nde_ctx *ctx, const bw_args *a, const char *w, const char *name, int ndim,
                           const int64_t *shape, double bound, uint64_t seed, nde_tensor **out) {
    nde_tensor *p = nde_param_new(ctx, name, ndim, shape);
    int got;
    *out = p;
    if (!p) return 0;
    got = bw_tensor(ctx, a, w, name, p, seed);
    if (!got) nde_init_uniform(ctx, p, (nde_real)-bound, (nde_real)bound, seed);
    return got;
}

/* Linear(in, out) with PyTorch's layout and default init (weight (out, in)). */
static inline int bw_linear(nde_ctx *ctx, const bw_args *a, const char *w, nde_linear *l, const char *wname,
                            const char *bname, int64_t in, int64_t out, uint64_t seed) {
    int64_t ws[2], bs[1];
    double bound = 1.0 / sqrt((double)in);
    int g1, g2;
    ws[0] = out; ws[1] = in; bs[0] = out;
    l->in = in; l->out = out;
    g1 = bw_param(ctx, a, w, wname, 2, ws, bound, seed, &l->weight);
    g2 = bw_param(ctx, a, w, bname, 1, bs, bound, seed + 1000, &l->bias);
    return g1 && g2;
}

/* A host copy of the flat parameters (to restore before every iteration). */
static inline nde_real *bw_snapshot_params(nde_ctx *ctx) {
    size_t n = (size_t)nde_params_count(ctx);
    nde_real *p = (nde_real *)malloc(sizeof(nde_real) * (n ? n : 1));
    if (!p) { fprintf(stderr, "bench: out of memory\n"); exit(2); }
    memcpy(p, nde_params_data(ctx), sizeof(nde_real) * n);
    return p;
}

/* z at the times of t (a 1-D tensor) stacked, (len(t), ...z0.shape), by
   nde_odeint_adjoint in `mode`; it->nfe_f is set here, it->nfe_b by
   bw_solve_finish after the backward pass. */
static nde_adjoint_stats bw_adjoint_stats;
static inline nde_tensor *bw_solve(nde_ctx *ctx, nde_grad_mode mode, nde_field_fn f, void *user, nde_tensor *z0,
                                   nde_tensor *t, const nde_solve_options *o, bw_iter *it) {
    nde_adjoint_options adj = nde_adjoint_options_default(mode);
    nde_tensor *zs;
    memset(&bw_adjoint_stats, 0, sizeof bw_adjoint_stats);
    adj.stats = &bw_adjoint_stats;
    zs = nde_odeint_adjoint(ctx, f, user, z0, t, o, &adj, NULL);
    it->nfe_f = bw_adjoint_stats.nfe_forward;
    it->nfe_b = 0;
    it->loss = NAN;
    return zs;
}
/* z(t1) from z(t0) = z0 (shape of z0). */
static inline nde_tensor *bw_solve_to(nde_ctx *ctx, nde_grad_mode mode, nde_field_fn f, void *user, nde_tensor *z0,
                                      double t0, double t1, const nde_solve_options *o, bw_iter *it) {
    nde_real tv[2];
    nde_tensor *t, *zs;
    int64_t two = 2;
    tv[0] = (nde_real)t0; tv[1] = (nde_real)t1;
    t = nde_tensor_from(ctx, 1, &two, tv);
    zs = bw_solve(ctx, mode, f, user, z0, t, o, it);
    return zs ? nde_reshape(ctx, nde_slice(ctx, zs, 0, 1, 2), z0->ndim, z0->shape) : NULL;
}
static inline void bw_solve_finish(bw_iter *it) {
    it->nfe_b = bw_adjoint_stats.nfe_backward;
}

#endif
