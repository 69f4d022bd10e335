/* tests/test_cuda.cu - the CUDA backend (nde_cuda.h) against the CPU backend.

   Every entry of the backend table is called on the same data through the CPU table
   and the CUDA table and the results compared; then every op of nde.h, forward and
   backward, runs on a CPU context and a CUDA context; then RNG streams, training
   steps (MLP and a small CNN with each optimizer), jets (JVP, ODE Taylor
   coefficients), solves (rk4 fixed, dopri5 adaptive, taped), every adjoint mode,
   the host-synchronisation budget of a solve, CUDA graph capture and replay (a
   training step, a fixed-step solve), and the error paths. Tolerance: relative 1e-10 in double, 1e-4 in float, with
   elements that cancel towards zero judged against 1% of the array's largest
   magnitude. RNG: uniform and Rademacher bitwise, normal within 1 ulp (float) or
   4 ulp (double; the GPU's log/cos are not the C library's).

   Built by `make cuda` with nvcc (float: build/test_cuda, double: build/test_cuda_f64)
   and by `make test`; with no GPU it prints "SKIP: <reason>" and exits 0. The same
   file runs on any machine under the CPU emulator of tests/cuda_emu.h
   (build/test_cuda_emu_f32, _f64), with smaller sizes where the emulator is slow.
   This file is C++ (nvcc); nde.h's C implementation is in tests/cuda_host.c. */
#include "../nde_adjoint.h"
#include "../nde_cuda.h"
#include "nde_test.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_NAME
#define TEST_NAME "test_cuda"
#endif
#ifdef NDE_DOUBLE
#define TOL 1e-10
#define NORMAL_ULPS 4
#else
#define TOL 1e-4
#define NORMAL_ULPS 1
#endif

static const nde_backend *cpu, *gpu;
static nde_ctx *cc, *gc;      /* a CPU context and a CUDA context */
static int emulated;          /* running under tests/cuda_emu.h: smaller sizes */

/* ---------------------------------------------------------------- comparison */
/* Largest |got - ref| / (|ref| + 1e-2 max|ref|); NaN and Inf must sit at the same places. */
static double rel_err(const nde_real *ref, const nde_real *got, int64_t n) {
    double scale = 0.0, worst = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) if (isfinite((double)ref[i]) && fabs((double)ref[i]) > scale) scale = fabs((double)ref[i]);
    for (i = 0; i < n; i++) {
        double r = ref[i], g = got[i], d;
        if (r != r || g != g) { if (!(r != r && g != g)) return INFINITY; continue; }
        if (isinf(r) || isinf(g)) { if (r != g) return INFINITY; continue; }
        if (r == g) continue;
        d = fabs(g - r) / (fabs(r) + 1e-2 * scale);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}
static void check_close_at(const char *what, const nde_real *ref, const nde_real *got, int64_t n, double tol,
                           const char *file, int line) {
    double e = rel_err(ref, got, n);
    if (e <= tol) { nde_test_passed++; return; }
    nde_test_failed++;
    fprintf(stderr, "FAIL %s:%d: %s: max relative error %.3g > %.1g (n = %lld)\n", file, line, what, e, tol, (long long)n);
}
#define CHECK_CLOSE(what, ref, got, n) check_close_at((what), (ref), (got), (n), TOL, __FILE__, __LINE__)
#define CHECK_CLOSE_TOL(what, ref, got, n, tol) check_close_at((what), (ref), (got), (n), (tol), __FILE__, __LINE__)

/* Distance in units in the last place. */
static uint64_t ulps(nde_real a, nde_real b) {
#ifdef NDE_DOUBLE
    int64_t ia, ib;
    memcpy(&ia, &a, 8); memcpy(&ib, &b, 8);
    if (ia < 0) ia = INT64_MIN - ia;
    if (ib < 0) ib = INT64_MIN - ib;
#else
    int32_t ia, ib;
    memcpy(&ia, &a, 4); memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
#endif
    return ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia;
}
static uint64_t max_ulps(const nde_real *a, const nde_real *b, int64_t n) {
    uint64_t m = 0, u;
    int64_t i;
    for (i = 0; i < n; i++) if ((u = ulps(a[i], b[i])) > m) m = u;
    return m;
}

/* ---------------------------------------------------------------- host values */
static nde_real *host_new(int64_t n) { return (nde_real *)calloc((size_t)(n > 0 ? n : 1), sizeof(nde_real)); }
static nde_real *host_uniform(int64_t n, uint64_t seed, double lo, double hi) {
    nde_real *v = host_new(n);
    nde_rng r = nde_rng_new(seed, 77);
    int64_t i;
    nde_rng_uniform(&r, n, v);
    for (i = 0; i < n; i++) v[i] = (nde_real)(lo + (hi - lo) * (double)v[i]);
    return v;
}
/* ---------------------------------------------------------------- device buffers
   A host array (the CPU side, fed to the CPU table) and its device twin. */
typedef struct pairbuf { int64_t n; nde_real *h, *d; } pairbuf;
static void pb_upload(pairbuf *p) {
    if (p->n) CHECK(gpu->copy(gpu->self, p->d, p->h, (size_t)p->n * sizeof(nde_real), NDE_COPY_TO_DEVICE) == NDE_OK);
}
static pairbuf pb_from(nde_real *host, int64_t n) {
    pairbuf p;
    p.n = n; p.h = host;
    p.d = (nde_real *)gpu->alloc(gpu->self, (size_t)(n > 0 ? n : 1) * sizeof(nde_real));
    CHECK(p.d != NULL);
    pb_upload(&p);
    return p;
}
static pairbuf pb_rand(int64_t n, uint64_t seed, double lo, double hi) { return pb_from(host_uniform(n, seed, lo, hi), n); }
static nde_real *pb_download(const pairbuf *p) {
    nde_real *g = host_new(p->n);
    if (p->n) CHECK(gpu->copy(gpu->self, g, p->d, (size_t)p->n * sizeof(nde_real), NDE_COPY_TO_HOST) == NDE_OK);
    return g;
}
static void pb_check_at(const char *what, const pairbuf *p, double tol, const char *file, int line) {
    nde_real *g = pb_download(p);
    check_close_at(what, p->h, g, p->n, tol, file, line);
    free(g);
}
#define PB_CHECK(what, p) pb_check_at((what), &(p), TOL, __FILE__, __LINE__)
static void pb_free(pairbuf *p) {
    free(p->h);
    gpu->free(gpu->self, p->d);
    p->h = p->d = NULL;
}
static void backend_ok(const char *where) {
    const char *msg = "";
    nde_status st = gpu->synchronize(gpu->self);
    if (st == NDE_OK) { nde_test_passed++; return; }
    nde_cuda_error(gpu, &msg);
    nde_test_failed++;
    fprintf(stderr, "FAIL %s: backend error %d: %s\n", where, st, msg);
    nde_cuda_clear_error(gpu);
}

/* ================================================================ backend entries */
static void test_be_fill_copy(void) {
    int64_t n = 1003;
    pairbuf a = pb_rand(n, 1, -1, 1), b = pb_rand(n, 2, -1, 1);
    nde_real *back;
    cpu->fill(cpu->self, n, NDE_R(3.25), a.h); gpu->fill(gpu->self, n, NDE_R(3.25), a.d); PB_CHECK("fill 3.25", a);
    cpu->fill(cpu->self, n - 5, NDE_R(0.0), a.h + 5); gpu->fill(gpu->self, n - 5, NDE_R(0.0), a.d + 5); PB_CHECK("fill 0", a);
    cpu->fill(cpu->self, 7, NDE_R(-0.0), a.h + 1); gpu->fill(gpu->self, 7, NDE_R(-0.0), a.d + 1);
    back = pb_download(&a);
    CHECK(signbit((double)back[3]) && back[3] == 0);   /* -0.0 is not the zero memset */
    free(back);
    /* device to device at an offset, and copies of nothing */
    cpu->copy(cpu->self, b.h + 10, a.h, 500 * sizeof(nde_real), NDE_COPY_DEVICE);
    CHECK(gpu->copy(gpu->self, b.d + 10, a.d, 500 * sizeof(nde_real), NDE_COPY_DEVICE) == NDE_OK);
    CHECK(gpu->copy(gpu->self, b.d, b.d, 16, NDE_COPY_DEVICE) == NDE_OK);
    CHECK(gpu->copy(gpu->self, b.d, a.d, 0, NDE_COPY_TO_HOST) == NDE_OK);
    PB_CHECK("copy device", b);
    back = pb_download(&b);
    CHECK(rel_err(b.h, back, n) == 0.0);   /* copies are exact */
    free(back);
    pb_free(&a); pb_free(&b);
    backend_ok("fill/copy");
}

static void gemm_case(int ta, int tb, int64_t m, int64_t n, int64_t k, int pad, double alpha, double beta) {
    int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    int64_t ra = ta ? k : m, rb = tb ? n : k;
    pairbuf a = pb_rand(ra * lda, 11, -1, 1), b = pb_rand(rb * ldb, 12, -1, 1), c = pb_rand(m * ldc, 13, -1, 1);
    char what[128];
    if (beta == 0.0) {   /* beta = 0 must not read C: NaN where C is written */
        int64_t i, j;
        for (i = 0; i < m; i++) for (j = 0; j < n; j++) c.h[i * ldc + j] = (nde_real)NAN;
        pb_upload(&c);
    }
    cpu->gemm(cpu->self, ta, tb, m, n, k, (nde_real)alpha, a.h, lda, b.h, ldb, (nde_real)beta, c.h, ldc);
    gpu->gemm(gpu->self, ta, tb, m, n, k, (nde_real)alpha, a.d, lda, b.d, ldb, (nde_real)beta, c.d, ldc);
    snprintf(what, sizeof what, "gemm ta=%d tb=%d m=%lld n=%lld k=%lld pad=%d alpha=%g beta=%g", ta, tb, (long long)m,
             (long long)n, (long long)k, pad, alpha, beta);
    PB_CHECK(what, c);
    pb_free(&a); pb_free(&b); pb_free(&c);
}
static void test_be_gemm(void) {
    int ta, tb;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            gemm_case(ta, tb, 7, 5, 3, 0, 1.0, 0.0);
            gemm_case(ta, tb, 33, 17, 65, 3, 1.5, 1.0);
            gemm_case(ta, tb, 1, 1, 1, 0, -2.0, 0.5);
            gemm_case(ta, tb, 64, 96, 80, 1, 1.0, -0.5);
            gemm_case(ta, tb, 5, 9, 0, 2, 1.0, 0.25);    /* k = 0: C = beta C */
        }
    gemm_case(0, 0, 5, 9, 0, 0, 1.0, 0.0);
    if (!emulated) gemm_case(0, 1, 300, 257, 129, 0, 1.0, 1.0);
    backend_ok("gemm");
}

static void test_be_unary(void) {
    static const char *names[] = {"neg", "scale", "add_scalar", "square", "sqrt", "exp", "log", "sin", "cos", "tanh",
                                  "sigmoid", "relu", "leaky_relu", "softplus", "elu", "abs", "powi"};
    int64_t n = emulated ? 1500 : 70001;
    int op;
    for (op = NDE_UNARY_NEG; op <= NDE_UNARY_POWI; op++) {
        int positive = op == NDE_UNARY_SQRT || op == NDE_UNARY_LOG;
        double lo = positive ? 0.1 : -30, hi = positive ? 10 : 30;
        nde_real al = op == NDE_UNARY_POWI ? NDE_R(-3.0) : NDE_R(0.3);
        pairbuf x, y, dy, dx;
        char what[96];
        if (op == NDE_UNARY_EXP) { lo = -20; hi = 20; }
        if (op == NDE_UNARY_POWI) { lo = 0.5; hi = 2; }
        x = pb_rand(n, 20 + (uint64_t)op, lo, hi);
        x.h[0] = 0; x.h[1] = NDE_R(1e-30); x.h[2] = NDE_R(-1e-30);   /* edge values for relu/abs/elu */
        if (positive || op == NDE_UNARY_POWI) x.h[0] = 1;
        pb_upload(&x);
        y = pb_rand(n, 40, -1, 1); dy = pb_rand(n, 41, -1, 1); dx = pb_rand(n, 42, -1, 1);
        cpu->unary(cpu->self, (nde_unary_op)op, n, x.h, al, y.h);
        gpu->unary(gpu->self, (nde_unary_op)op, n, x.d, al, y.d);
        snprintf(what, sizeof what, "unary %s", names[op]);
        PB_CHECK(what, y);
        cpu->unary_backward(cpu->self, (nde_unary_op)op, n, x.h, y.h, dy.h, al, dx.h);
        gpu->unary_backward(gpu->self, (nde_unary_op)op, n, x.d, y.d, dy.d, al, dx.d);
        snprintf(what, sizeof what, "unary_backward %s", names[op]);
        PB_CHECK(what, dx);
        /* in place: y = f(y) */
        cpu->unary(cpu->self, (nde_unary_op)op, n, x.h, al, x.h);
        gpu->unary(gpu->self, (nde_unary_op)op, n, x.d, al, x.d);
        snprintf(what, sizeof what, "unary %s in place", names[op]);
        PB_CHECK(what, x);
        pb_free(&x); pb_free(&y); pb_free(&dy); pb_free(&dx);
    }
    backend_ok("unary");
}

/* NumPy broadcasting of two 4-D shapes into strides, as nde.h does. */
static void bcast_strides(const int64_t *da, const int64_t *db, int64_t *shape, int64_t *sa, int64_t *sb) {
    int64_t ta = 1, tb = 1;
    int i;
    for (i = 3; i >= 0; i--) {
        shape[i] = da[i] > db[i] ? da[i] : db[i];
        sa[i] = da[i] == 1 ? 0 : ta;
        sb[i] = db[i] == 1 ? 0 : tb;
        ta *= da[i]; tb *= db[i];
    }
}
static void test_be_binary(void) {
    static const int64_t shapes[][2][4] = {
        {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {1, 1, 1, 1}}, {{1, 1, 1, 1}, {2, 3, 4, 5}},
        {{1, 1, 7, 9}, {1, 1, 1, 9}}, {{1, 1, 7, 9}, {1, 1, 7, 1}}, {{4, 3, 5, 6}, {1, 3, 1, 1}},
        {{4, 1, 3, 1}, {1, 5, 1, 2}}, {{1, 1, 1, 3000}, {1, 1, 1, 3000}}};
    int s, op;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (op = NDE_BINARY_ADD; op <= NDE_BINARY_DIV; op++) {
            int64_t shape[4], sa[4], sb[4], na = 1, nb = 1, n;
            int i;
            char what[96];
            pairbuf a, b, o;
            for (i = 0; i < 4; i++) { na *= shapes[s][0][i]; nb *= shapes[s][1][i]; }
            bcast_strides(shapes[s][0], shapes[s][1], shape, sa, sb);
            n = shape[0] * shape[1] * shape[2] * shape[3];
            a = pb_rand(na, 50, -2, 2); b = pb_rand(nb, 51, 0.5, 2); o = pb_rand(n, 52, -1, 1);
            cpu->binary(cpu->self, (nde_binary_op)op, shape, a.h, sa, b.h, sb, o.h);
            gpu->binary(gpu->self, (nde_binary_op)op, shape, a.d, sa, b.d, sb, o.d);
            snprintf(what, sizeof what, "binary op %d shapes case %d", op, s);
            PB_CHECK(what, o);
            if (na == n) {   /* in place into a */
                cpu->binary(cpu->self, (nde_binary_op)op, shape, a.h, sa, b.h, sb, a.h);
                gpu->binary(gpu->self, (nde_binary_op)op, shape, a.d, sa, b.d, sb, a.d);
                snprintf(what, sizeof what, "binary op %d shapes case %d in place", op, s);
                PB_CHECK(what, a);
            }
            pb_free(&a); pb_free(&b); pb_free(&o);
        }
    backend_ok("binary");
}

static void reduce_case(const int64_t *shape, unsigned reduced_mask, nde_real alpha) {
    int64_t os[4], st = 1, n = shape[0] * shape[1] * shape[2] * shape[3], nout = 1;
    int d;
    char what[128];
    pairbuf x, out;
    for (d = 3; d >= 0; d--) {
        if (reduced_mask & (1u << d)) os[d] = 0;
        else { os[d] = st; st *= shape[d]; nout *= shape[d]; }
    }
    x = pb_rand(n, 60 + reduced_mask, -1, 1);
    out = pb_rand(nout, 61, -1, 1);
    cpu->reduce_add(cpu->self, shape, x.h, alpha, out.h, os);
    gpu->reduce_add(gpu->self, shape, x.d, alpha, out.d, os);
    snprintf(what, sizeof what, "reduce_add shape (%lld,%lld,%lld,%lld) reduced mask %u", (long long)shape[0],
             (long long)shape[1], (long long)shape[2], (long long)shape[3], reduced_mask);
    PB_CHECK(what, out);
    pb_free(&x); pb_free(&out);
}
static void test_be_reduce(void) {
    static const int64_t small[4] = {3, 4, 5, 6};
    int64_t big_inner[4] = {1, 1, 1, 100003}, rows[4] = {1, 1, 3000, 64}, cols[4] = {1, 1, 64, 5000};
    int64_t few[4] = {1, 1, 5000, 3}, many[4] = {1, 1, 40, 4096}, mixed[4] = {7, 1, 33, 65};
    unsigned mask;
    for (mask = 0; mask < 16; mask++) reduce_case(small, mask, NDE_R(0.5));
    if (emulated) { big_inner[3] = 20011; rows[2] = 600; cols[3] = 700; few[2] = 900; many[3] = 2100; }
    reduce_case(big_inner, 8u, NDE_R(1.0));          /* one output, a long row: block tree */
    reduce_case(rows, 4u, NDE_R(1.0));                /* bias gradient (batch, out) -> out */
    reduce_case(cols, 8u, NDE_R(-1.0));               /* row sums */
    reduce_case(few, 4u, NDE_R(2.0));                 /* few outputs, long columns */
    reduce_case(many, 4u, NDE_R(1.0));                /* many outputs: a thread each */
    reduce_case(mixed, 5u, NDE_R(0.25));              /* two reduced dims */
    reduce_case(mixed, 10u, NDE_R(0.25));             /* innermost and another */
    backend_ok("reduce_add");
}

static void test_be_lincomb(void) {
    int64_t n = emulated ? 999 : 100003;
    int count, acc;
    for (count = 1; count <= 20; count += (count < 4 ? 1 : 5))
        for (acc = 0; acc < 2; acc++) {
            pairbuf xs[20], out = pb_rand(n, 70, -1, 1);
            const nde_real *hp[20], *dp[20];
            nde_real coef[20];
            char what[64];
            int j;
            for (j = 0; j < count; j++) {
                xs[j] = pb_rand(n, 71 + (uint64_t)j, -1, 1);
                coef[j] = (nde_real)(0.5 * (j + 1) * (j % 2 ? -1 : 1));
                if (j == 2) {   /* a zero coefficient skips its term, NaN and all (as on the CPU) */
                    coef[j] = 0;
                    xs[j].h[5] = (nde_real)NAN;
                    pb_upload(&xs[j]);
                }
                hp[j] = xs[j].h; dp[j] = xs[j].d;
            }
            cpu->lincomb(cpu->self, n, count, coef, hp, acc, out.h);
            gpu->lincomb(gpu->self, n, count, coef, dp, acc, out.d);
            snprintf(what, sizeof what, "lincomb count %d accumulate %d", count, acc);
            PB_CHECK(what, out);
            for (j = 0; j < count; j++) pb_free(&xs[j]);
            pb_free(&out);
        }
    {   /* out aliasing a term: out = 2 out + 3 x */
        pairbuf x = pb_rand(n, 80, -1, 1), out = pb_rand(n, 81, -1, 1);
        nde_real coef[2] = {NDE_R(2.0), NDE_R(3.0)};
        const nde_real *hp[2], *dp[2];
        hp[0] = out.h; hp[1] = x.h; dp[0] = out.d; dp[1] = x.d;
        cpu->lincomb(cpu->self, n, 2, coef, hp, 0, out.h);
        gpu->lincomb(gpu->self, n, 2, coef, dp, 0, out.d);
        PB_CHECK("lincomb in place", out);
        pb_free(&x); pb_free(&out);
    }
    backend_ok("lincomb");
}

static void test_be_copy2d_transpose(void) {
    static const int64_t sizes[][2] = {{1, 1}, {33, 65}, {100, 3}, {3, 100}, {64, 64}, {31, 32}, {257, 129}};
    int acc, i;
    for (acc = 0; acc < 2; acc++) {
        pairbuf src = pb_rand(37 * 25, 90, -1, 1), dst = pb_rand(37 * 30, 91, -1, 1);
        cpu->copy2d(cpu->self, 37, 19, src.h, 25, dst.h, 30, acc);
        gpu->copy2d(gpu->self, 37, 19, src.d, 25, dst.d, 30, acc);
        PB_CHECK(acc ? "copy2d accumulate" : "copy2d", dst);
        pb_free(&src); pb_free(&dst);
        for (i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
            int64_t r = sizes[i][0], c = sizes[i][1];
            char what[64];
            pairbuf s = pb_rand(r * c, 92, -1, 1), d = pb_rand(r * c, 93, -1, 1);
            cpu->transpose(cpu->self, r, c, s.h, d.h, acc);
            gpu->transpose(gpu->self, r, c, s.d, d.d, acc);
            snprintf(what, sizeof what, "transpose %lldx%lld accumulate %d", (long long)r, (long long)c, acc);
            PB_CHECK(what, d);
            pb_free(&s); pb_free(&d);
        }
    }
    if (!emulated) {   /* more row tiles than gridDim.y may hold */
        int64_t r = 65535 * 32 + 70, c = 2;
        pairbuf s = pb_rand(r * c, 94, -1, 1), d = pb_rand(r * c, 95, -1, 1);
        cpu->transpose(cpu->self, r, c, s.h, d.h, 0);
        gpu->transpose(gpu->self, r, c, s.d, d.d, 0);
        PB_CHECK("transpose with more than 65535 row tiles", d);
        pb_free(&s); pb_free(&d);
    }
    backend_ok("copy2d/transpose");
}

static void test_be_rows(void) {
    int64_t count = 600, src_rows = 50, i;
    int64_t cols_list[2] = {7, 1};
    int dup, ci;
    for (ci = 0; ci < 2; ci++)
        for (dup = 0; dup < 2; dup++) {
            int64_t cols = cols_list[ci], *idx = (int64_t *)malloc((size_t)count * sizeof(int64_t));
            int64_t rows = dup ? src_rows : count + 11;
            char what[96];
            pairbuf src, dst, g, acc;
            /* distinct: a permutation-like spread; repeated: many rows hit the same index */
            for (i = 0; i < count; i++) idx[i] = dup ? (i * 7) % src_rows : (i * 601) % rows;   /* 601 is prime to 611 */
            src = pb_rand(rows * cols, 100, -1, 1);
            dst = pb_rand(count * cols, 101, -1, 1);
            cpu->gather_rows(cpu->self, count, cols, idx, src.h, dst.h);
            gpu->gather_rows(gpu->self, count, cols, idx, src.d, dst.d);
            snprintf(what, sizeof what, "gather_rows cols %lld %s", (long long)cols, dup ? "repeated" : "distinct");
            PB_CHECK(what, dst);
            g = pb_rand(count * cols, 102, -1, 1);
            acc = pb_rand(rows * cols, 103, -1, 1);
            cpu->scatter_add_rows(cpu->self, count, cols, idx, g.h, acc.h);
            gpu->scatter_add_rows(gpu->self, count, cols, idx, g.d, acc.d);
            snprintf(what, sizeof what, "scatter_add_rows cols %lld %s", (long long)cols, dup ? "repeated" : "distinct");
            PB_CHECK(what, acc);
            free(idx);
            pb_free(&src); pb_free(&dst); pb_free(&g); pb_free(&acc);
        }
    backend_ok("gather/scatter rows");
}

static void test_be_conv(void) {
    static const int geo[][7] = {   /* C, H, W, kh, kw, stride, pad */
        {3, 7, 6, 3, 2, 2, 1}, {2, 5, 5, 3, 3, 1, 0}, {4, 9, 8, 1, 1, 1, 0}, {2, 10, 11, 3, 3, 3, 2}, {1, 4, 4, 5, 5, 1, 2}};
    int i;
    for (i = 0; i < (int)(sizeof geo / sizeof geo[0]); i++) {
        int64_t C = geo[i][0], H = geo[i][1], W = geo[i][2];
        int kh = geo[i][3], kw = geo[i][4], st = geo[i][5], pad = geo[i][6];
        int64_t OH = (H + 2 * pad - kh) / st + 1, OW = (W + 2 * pad - kw) / st + 1, K = C * kh * kw;
        char what[64];
        pairbuf x = pb_rand(C * H * W, 110, -1, 1), col = pb_rand(K * OH * OW, 111, -1, 1);
        pairbuf g = pb_rand(K * OH * OW, 112, -1, 1), dx = pb_rand(C * H * W, 113, -1, 1);
        cpu->im2col(cpu->self, C, H, W, kh, kw, st, pad, x.h, col.h);
        gpu->im2col(gpu->self, C, H, W, kh, kw, st, pad, x.d, col.d);
        snprintf(what, sizeof what, "im2col geometry %d", i);
        PB_CHECK(what, col);
        cpu->col2im(cpu->self, C, H, W, kh, kw, st, pad, g.h, dx.h);
        gpu->col2im(gpu->self, C, H, W, kh, kw, st, pad, g.d, dx.d);
        snprintf(what, sizeof what, "col2im geometry %d", i);
        PB_CHECK(what, dx);
        pb_free(&x); pb_free(&col); pb_free(&g); pb_free(&dx);
    }
    backend_ok("im2col/col2im");
}

/* im2col_batch / col2im_batch against the CPU's per-image entries laid out as a batch. */
static void test_be_conv_batch(void) {
    static const int geo[][7] = {{3, 7, 6, 3, 2, 2, 1}, {2, 5, 5, 3, 3, 1, 0}, {1, 4, 4, 5, 5, 1, 2}};
    int i;
    for (i = 0; i < (int)(sizeof geo / sizeof geo[0]); i++) {
        int64_t N = 3, C = geo[i][0], H = geo[i][1], W = geo[i][2];
        int kh = geo[i][3], kw = geo[i][4], st = geo[i][5], pad = geo[i][6];
        int64_t P = ((H + 2 * pad - kh) / st + 1) * ((W + 2 * pad - kw) / st + 1), K = C * kh * kw, n, r;
        char what[64];
        pairbuf x = pb_rand(N * C * H * W, 114, -1, 1), col = pb_rand(K * N * P, 115, -1, 1);
        pairbuf g = pb_rand(K * N * P, 116, -1, 1), dx = pb_rand(N * C * H * W, 117, -1, 1);
        nde_real *tmp = host_new(K * P);
        for (n = 0; n < N; n++) {
            cpu->im2col(cpu->self, C, H, W, kh, kw, st, pad, x.h + n * C * H * W, tmp);
            for (r = 0; r < K; r++) memcpy(col.h + r * N * P + n * P, tmp + r * P, (size_t)P * sizeof(nde_real));
            for (r = 0; r < K; r++) memcpy(tmp + r * P, g.h + r * N * P + n * P, (size_t)P * sizeof(nde_real));
            cpu->col2im(cpu->self, C, H, W, kh, kw, st, pad, tmp, dx.h + n * C * H * W);
        }
        gpu->im2col_batch(gpu->self, N, C, H, W, kh, kw, st, pad, x.d, col.d);
        gpu->col2im_batch(gpu->self, N, C, H, W, kh, kw, st, pad, g.d, dx.d);
        snprintf(what, sizeof what, "im2col_batch geometry %d", i);
        PB_CHECK(what, col);
        snprintf(what, sizeof what, "col2im_batch geometry %d", i);
        PB_CHECK(what, dx);
        free(tmp);
        pb_free(&x); pb_free(&col); pb_free(&g); pb_free(&dx);
    }
    backend_ok("im2col_batch/col2im_batch");
}

static void group_norm_case(int64_t N, int64_t C, int64_t S, int G, int affine, int dparams) {
    int64_t n = N * C * S;
    char what[96];
    pairbuf x = pb_rand(n, 120, -3, 5), y = pb_rand(n, 121, -1, 1), mean = pb_rand(N * G, 122, -1, 1);
    pairbuf rstd = pb_rand(N * G, 123, -1, 1), ga = pb_rand(C, 124, 0.5, 1.5), be = pb_rand(C, 125, -1, 1);
    pairbuf dy = pb_rand(n, 126, -1, 1), dx = pb_rand(n, 127, -1, 1), dga = pb_rand(C, 128, -1, 1), dbe = pb_rand(C, 129, -1, 1);
    cpu->group_norm(cpu->self, N, C, S, G, NDE_R(1e-5), x.h, affine ? ga.h : NULL, affine ? be.h : NULL, y.h, mean.h, rstd.h);
    gpu->group_norm(gpu->self, N, C, S, G, NDE_R(1e-5), x.d, affine ? ga.d : NULL, affine ? be.d : NULL, y.d, mean.d, rstd.d);
    snprintf(what, sizeof what, "group_norm N%lld C%lld S%lld G%d affine %d", (long long)N, (long long)C, (long long)S, G, affine);
    PB_CHECK(what, y);
    PB_CHECK("group_norm mean", mean);
    PB_CHECK("group_norm rstd", rstd);
    /* the backward from the CPU's saved statistics on both sides */
    pb_upload(&mean); pb_upload(&rstd);
    cpu->group_norm_backward(cpu->self, N, C, S, G, x.h, affine ? ga.h : NULL, mean.h, rstd.h, dy.h, dx.h,
                             dparams ? dga.h : NULL, dparams ? dbe.h : NULL);
    gpu->group_norm_backward(gpu->self, N, C, S, G, x.d, affine ? ga.d : NULL, mean.d, rstd.d, dy.d, dx.d,
                             dparams ? dga.d : NULL, dparams ? dbe.d : NULL);
    snprintf(what, sizeof what, "group_norm_backward dx N%lld C%lld S%lld G%d", (long long)N, (long long)C, (long long)S, G);
    PB_CHECK(what, dx);
    PB_CHECK("group_norm_backward dgamma", dga);
    PB_CHECK("group_norm_backward dbeta", dbe);
    pb_free(&x); pb_free(&y); pb_free(&mean); pb_free(&rstd); pb_free(&ga); pb_free(&be);
    pb_free(&dy); pb_free(&dx); pb_free(&dga); pb_free(&dbe);
}
static void test_be_group_norm(void) {
    group_norm_case(3, 6, 10, 3, 1, 1);
    group_norm_case(2, 4, 7, 4, 0, 0);
    group_norm_case(2, 4, 7, 1, 1, 0);
    group_norm_case(4, 8, emulated ? 300 : 5000, 2, 1, 1);
    backend_ok("group_norm");
}

static void test_be_pool(void) {
    static const int geo[][4] = {{7, 9, 3, 2}, {8, 8, 2, 2}, {6, 5, 3, 1}, {5, 5, 5, 1}, {9, 9, 2, 3}};
    int i;
    for (i = 0; i < (int)(sizeof geo / sizeof geo[0]); i++) {
        int64_t nc = 5, H = geo[i][0], W = geo[i][1];
        int k = geo[i][2], st = geo[i][3];
        int64_t OH = (H - k) / st + 1, OW = (W - k) / st + 1;
        char what[64];
        pairbuf x = pb_rand(nc * H * W, 130, -1, 1), y = pb_rand(nc * OH * OW, 131, -1, 1);
        pairbuf dy = pb_rand(nc * OH * OW, 132, -1, 1), dx = pb_rand(nc * H * W, 133, -1, 1);
        cpu->avg_pool2d(cpu->self, nc, H, W, k, st, x.h, y.h);
        gpu->avg_pool2d(gpu->self, nc, H, W, k, st, x.d, y.d);
        snprintf(what, sizeof what, "avg_pool2d geometry %d", i);
        PB_CHECK(what, y);
        cpu->avg_pool2d_backward(cpu->self, nc, H, W, k, st, dy.h, dx.h);
        gpu->avg_pool2d_backward(gpu->self, nc, H, W, k, st, dy.d, dx.d);
        snprintf(what, sizeof what, "avg_pool2d_backward geometry %d", i);
        PB_CHECK(what, dx);
        pb_free(&x); pb_free(&y); pb_free(&dy); pb_free(&dx);
    }
    backend_ok("avg_pool2d");
}

static void test_be_softmax(void) {
    static const int64_t sz[][2] = {{7, 10}, {3, 1000}, {2, 1}, {64, 33}, {1, 257}};
    int i;
    for (i = 0; i < (int)(sizeof sz / sizeof sz[0]); i++) {
        int64_t n = sz[i][0], k = sz[i][1];
        char what[64];
        pairbuf x = pb_rand(n * k, 140, -20, 20), y = pb_rand(n * k, 141, -1, 1);
        pairbuf dy = pb_rand(n * k, 142, -1, 1), dx = pb_rand(n * k, 143, -1, 1);
        cpu->log_softmax(cpu->self, n, k, x.h, y.h);
        gpu->log_softmax(gpu->self, n, k, x.d, y.d);
        snprintf(what, sizeof what, "log_softmax %lldx%lld", (long long)n, (long long)k);
        PB_CHECK(what, y);
        pb_upload(&y);
        cpu->log_softmax_backward(cpu->self, n, k, y.h, dy.h, dx.h);
        gpu->log_softmax_backward(gpu->self, n, k, y.d, dy.d, dx.d);
        snprintf(what, sizeof what, "log_softmax_backward %lldx%lld", (long long)n, (long long)k);
        PB_CHECK(what, dx);
        pb_free(&x); pb_free(&y); pb_free(&dy); pb_free(&dx);
    }
    backend_ok("log_softmax");
}

static void test_be_philox(void) {
    int64_t n = emulated ? 4001 : 100001;
    int kind;
    for (kind = 0; kind < 3; kind++) {
        pairbuf o = pb_rand(n, 150, 0, 1);
        nde_real *g;
        uint64_t u;
        uint64_t seed = 0x123456789ABCDEF0ULL, stream = 0xFEDCBA9876543210ULL, counter = 0xFFFFFFFFFFFFFF00ULL;
        cpu->philox_fill(cpu->self, kind, seed, stream, counter, n, o.h);
        gpu->philox_fill(gpu->self, kind, seed, stream, counter, n, o.d);
        g = pb_download(&o);
        u = max_ulps(o.h, g, n);
        if (kind == 1) {
            if (u > NORMAL_ULPS) fprintf(stderr, "philox normal: %llu ulps\n", (unsigned long long)u);
            CHECK(u <= NORMAL_ULPS);
        } else {
            if (u) fprintf(stderr, "philox kind %d: %llu ulps (must be bitwise)\n", kind, (unsigned long long)u);
            CHECK(u == 0);
        }
        free(g);
        pb_free(&o);
    }
    backend_ok("philox_fill");
}

static void test_be_scalars(void) {
    int64_t n = emulated ? 30011 : 1000003;
    pairbuf err = pb_rand(n, 160, -1e-3, 1e-3), y0 = pb_rand(n, 161, -5, 5), y1 = pb_rand(n, 162, -5, 5);
    pairbuf atol = pb_rand(n, 163, 1e-7, 1e-5);
    double r, g;
    int trial;
    r = cpu->rms_error_norm(cpu->self, n, err.h, y0.h, y1.h, 1e-4, 1e-6, NULL);
    g = gpu->rms_error_norm(gpu->self, n, err.d, y0.d, y1.d, 1e-4, 1e-6, NULL);
    CHECK_NEAR(g, r, 0, 1e-12);
    r = cpu->rms_error_norm(cpu->self, n, err.h, y0.h, y1.h, 1e-3, 0, atol.h);
    g = gpu->rms_error_norm(gpu->self, n, err.d, y0.d, y1.d, 1e-3, 0, atol.d);
    CHECK_NEAR(g, r, 0, 1e-12);
    CHECK(gpu->rms_error_norm(gpu->self, 0, err.d, y0.d, y1.d, 1e-3, 1e-6, NULL) == 0.0);
    r = cpu->rms_error_norm(cpu->self, 5, err.h, y0.h, y1.h, 1e-3, 1e-6, NULL);   /* one block */
    g = gpu->rms_error_norm(gpu->self, 5, err.d, y0.d, y1.d, 1e-3, 1e-6, NULL);
    CHECK_NEAR(g, r, 0, 1e-12);
    r = cpu->dot(cpu->self, n, y0.h, y1.h);
    g = gpu->dot(gpu->self, n, y0.d, y1.d);
    CHECK_NEAR(g, r, 1e-9 * sqrt((double)n), 1e-12);
    /* run to run: the same bits */
    for (trial = 0; trial < 3; trial++) CHECK(gpu->dot(gpu->self, n, y0.d, y1.d) == g);
    CHECK(gpu->max_abs(gpu->self, n, y0.d) == cpu->max_abs(cpu->self, n, y0.h));
    CHECK(gpu->all_finite(gpu->self, n, y0.d) == 1);
    /* one Inf at the very end, one NaN in the middle */
    y0.h[n - 1] = (nde_real)INFINITY;
    pb_upload(&y0);
    CHECK(gpu->all_finite(gpu->self, n, y0.d) == 0 && cpu->all_finite(cpu->self, n, y0.h) == 0);
    CHECK(isinf(gpu->max_abs(gpu->self, n, y0.d)));
    CHECK(gpu->all_finite(gpu->self, n - 1, y0.d) == 1);
    y0.h[n / 2] = (nde_real)NAN;
    pb_upload(&y0);
    CHECK(isnan(gpu->max_abs(gpu->self, n, y0.d)) && isnan(cpu->max_abs(cpu->self, n, y0.h)));
    CHECK(gpu->all_finite(gpu->self, n / 2 + 1, y0.d) == 0);
    CHECK(gpu->all_finite(gpu->self, n / 2, y0.d) == 1);
    CHECK(isnan(gpu->dot(gpu->self, n, y0.d, y1.d)));
    CHECK(gpu->all_finite(gpu->self, 0, y0.d) == 1 && gpu->max_abs(gpu->self, 0, y0.d) == 0.0);
    pb_free(&err); pb_free(&y0); pb_free(&y1); pb_free(&atol);
    backend_ok("scalar reductions");
}

static void test_be_optimizers(void) {
    int64_t n = emulated ? 2001 : 50001;
    int variant, step;
    for (variant = 0; variant < 6; variant++) {
        pairbuf p = pb_rand(n, 170, -1, 1), m = pb_rand(n, 171, -0.1, 0.1), v = pb_rand(n, 172, 0, 0.01);
        char what[64];
        for (step = 1; step <= 3; step++) {
            pairbuf g = pb_rand(n, 180 + (uint64_t)step, -1, 1);
            switch (variant) {
            case 0: case 1: {
                double bc1 = 1 - pow(0.9, step), bc2 = 1 - pow(0.999, step);
                cpu->adam_step(cpu->self, n, p.h, g.h, m.h, v.h, 1e-2, 0.9, 0.999, 1e-8, 0.01, bc1, bc2, variant);
                gpu->adam_step(gpu->self, n, p.d, g.d, m.d, v.d, 1e-2, 0.9, 0.999, 1e-8, 0.01, bc1, bc2, variant);
                break;
            }
            case 2: case 3:
                cpu->sgd_step(cpu->self, n, p.h, g.h, m.h, 0.1, variant == 2 ? 0.0 : 0.9, 0.1, variant == 3, 0.01, step == 1);
                gpu->sgd_step(gpu->self, n, p.d, g.d, m.d, 0.1, variant == 2 ? 0.0 : 0.9, 0.1, variant == 3, 0.01, step == 1);
                break;
            default:
                cpu->rmsprop_step(cpu->self, n, p.h, g.h, v.h, m.h, 1e-2, 0.99, 1e-8, variant == 5 ? 0.9 : 0.0, 0.01);
                gpu->rmsprop_step(gpu->self, n, p.d, g.d, v.d, m.d, 1e-2, 0.99, 1e-8, variant == 5 ? 0.9 : 0.0, 0.01);
                break;
            }
            pb_free(&g);
        }
        snprintf(what, sizeof what, "optimizer variant %d: params", variant);
        PB_CHECK(what, p);
        snprintf(what, sizeof what, "optimizer variant %d: first state", variant);
        PB_CHECK(what, m);
        snprintf(what, sizeof what, "optimizer variant %d: second state", variant);
        PB_CHECK(what, v);
        pb_free(&p); pb_free(&m); pb_free(&v);
    }
    backend_ok("optimizers");
}

static void test_be_table_complete(void) {
    /* every entry of the table is set (the core would reject a missing required one) */
    const void *const *entry = (const void *const *)(const void *)&gpu->alloc;
    size_t count = (sizeof(nde_backend) - offsetof(nde_backend, alloc)) / sizeof(void *), i, missing = 0;
    for (i = 0; i < count; i++) if (!entry[i]) missing++;
    CHECK(missing == 0);
    CHECK(gpu->is_device == 1 && strcmp(gpu->name, "cuda") == 0);
    CHECK(nde_cuda_is_backend(gpu) && !nde_cuda_is_backend(cpu));
}

/* ================================================================ ops, forward and backward */
#define MAX_IN 3
typedef nde_tensor *(*op_fn)(nde_ctx *ctx, nde_tensor **in, void *user);
typedef struct op_case {
    const char *name; op_fn f; void *user; int nin;
    int ndim[MAX_IN]; int64_t shape[MAX_IN][4];
    int positive;   /* inputs in [0.5, 1.5] */
} op_case;
typedef struct op_result { nde_real *y, *grad[MAX_IN]; int64_t ny; int ok; } op_result;

static int64_t case_size(const op_case *c, int i) {
    int64_t n = 1;
    int d;
    for (d = 0; d < c->ndim[i]; d++) n *= c->shape[i][d];
    return n;
}
static void read_backend(nde_ctx *ctx, const nde_real *src, int64_t n, nde_real *dst) {
    const nde_backend *be = nde_ctx_backend(ctx);
    if (n) be->copy(be->self, dst, src, (size_t)n * sizeof(nde_real), NDE_COPY_TO_HOST);
}
static void run_op(nde_ctx *ctx, const op_case *c, nde_real **in_host, op_result *r) {
    nde_mark m = nde_ctx_mark(ctx);
    nde_tensor *in[MAX_IN], *y, *w, *loss;
    nde_real *wh;
    int i;
    memset(r, 0, sizeof *r);
    for (i = 0; i < c->nin; i++) {
        in[i] = nde_tensor_from(ctx, c->ndim[i], c->shape[i], in_host[i]);
        if (in[i]) in[i]->requires_grad = 1;
    }
    y = c->f(ctx, in, c->user);
    if (y) {
        r->ny = y->size;
        r->y = host_new(y->size);
        nde_tensor_to_host(ctx, y, r->y);
        wh = host_uniform(y->size, 4242, -1, 1);
        w = nde_tensor_from(ctx, y->ndim, y->shape, wh);
        free(wh);
        loss = nde_sum(ctx, nde_mul(ctx, y, w));
        nde_backward(ctx, loss);
        for (i = 0; i < c->nin; i++) {
            r->grad[i] = host_new(case_size(c, i));
            if (in[i] && in[i]->grad) read_backend(ctx, in[i]->grad, case_size(c, i), r->grad[i]);
        }
    }
    nde_ctx_synchronize(ctx);
    r->ok = nde_ctx_status(ctx) == NDE_OK;
    if (!r->ok) {
        fprintf(stderr, "op %s on %s: %s\n", c->name, nde_ctx_backend(ctx)->name, nde_ctx_message(ctx));
        nde_ctx_clear_error(ctx);
        nde_cuda_clear_error(gpu);
    }
    nde_ctx_reset(ctx, m);
}
static void op_result_free(op_result *r) {
    int i;
    free(r->y);
    for (i = 0; i < MAX_IN; i++) free(r->grad[i]);
}
static void run_case(const op_case *c) {
    nde_real *in_host[MAX_IN];
    op_result a, b;
    int i;
    char what[128];
    for (i = 0; i < c->nin; i++)
        in_host[i] = c->positive ? host_uniform(case_size(c, i), 500 + (uint64_t)i, 0.5, 1.5)
                                 : host_uniform(case_size(c, i), 500 + (uint64_t)i, -2, 2);
    run_op(cc, c, in_host, &a);
    run_op(gc, c, in_host, &b);
    CHECK(a.ok && b.ok);
    if (a.ok && b.ok) {
        CHECK(a.ny == b.ny);
        snprintf(what, sizeof what, "%s forward", c->name);
        CHECK_CLOSE(what, a.y, b.y, a.ny);
        for (i = 0; i < c->nin; i++) {
            snprintf(what, sizeof what, "%s gradient of input %d", c->name, i);
            CHECK_CLOSE(what, a.grad[i], b.grad[i], case_size(c, i));
        }
    }
    op_result_free(&a); op_result_free(&b);
    for (i = 0; i < c->nin; i++) free(in_host[i]);
}

static nde_tensor *f_add(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_add(c, x[0], x[1]); }
static nde_tensor *f_sub(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_sub(c, x[0], x[1]); }
static nde_tensor *f_mul(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mul(c, x[0], x[1]); }
static nde_tensor *f_div(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_div(c, x[0], x[1]); }
typedef nde_tensor *(*unary_op)(nde_ctx *, nde_tensor *);
static nde_tensor *f_unary(nde_ctx *c, nde_tensor **x, void *u) { return (*(unary_op *)u)(c, x[0]); }
static nde_tensor *f_scale(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_scale(c, x[0], NDE_R(-2.5)); }
static nde_tensor *f_add_scalar(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_add_scalar(c, x[0], NDE_R(0.75)); }
static nde_tensor *f_leaky(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_leaky_relu(c, x[0], NDE_R(0.1)); }
static nde_tensor *f_elu(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_elu(c, x[0], NDE_R(0.7)); }
static nde_tensor *f_powi(nde_ctx *c, nde_tensor **x, void *u) { return nde_powi(c, x[0], *(int *)u); }
static nde_tensor *f_act(nde_ctx *c, nde_tensor **x, void *u) { return nde_activate(c, x[0], *(nde_activation *)u); }
static nde_tensor *f_matmul(nde_ctx *c, nde_tensor **x, void *u) { int *t = (int *)u; return nde_matmul(c, x[0], x[1], t[0], t[1]); }
static nde_tensor *f_sum(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_sum(c, x[0]); }
static nde_tensor *f_mean(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mean(c, x[0]); }
static nde_tensor *f_sum_axis(nde_ctx *c, nde_tensor **x, void *u) { return nde_sum_axis(c, x[0], *(int *)u, 0); }
static nde_tensor *f_mean_axis(nde_ctx *c, nde_tensor **x, void *u) { return nde_mean_axis(c, x[0], *(int *)u, 1); }
static nde_tensor *f_transpose(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_transpose(c, x[0]); }
static nde_tensor *f_reshape(nde_ctx *c, nde_tensor **x, void *u) { int64_t s[2] = {4, 6}; (void)u; return nde_tanh(c, nde_reshape(c, x[0], 2, s)); }
static nde_tensor *f_concat(nde_ctx *c, nde_tensor **x, void *u) { nde_tensor *xs[3]; xs[0] = x[0]; xs[1] = x[1]; xs[2] = x[0]; return nde_concat(c, 3, xs, *(int *)u); }
static nde_tensor *f_slice(nde_ctx *c, nde_tensor **x, void *u) { return nde_slice(c, x[0], *(int *)u, 1, 3); }
static nde_tensor *f_gather(nde_ctx *c, nde_tensor **x, void *u) {
    int64_t idx[700], i; (void)u;
    for (i = 0; i < 700; i++) idx[i] = (i * 13) % x[0]->shape[0];   /* repeats: scatter in order */
    return nde_gather_rows(c, x[0], 700, idx);
}
static nde_tensor *f_conv2d(nde_ctx *c, nde_tensor **x, void *u) { int *sp = (int *)u; return nde_conv2d(c, x[0], x[1], x[2], sp[0], sp[1]); }
static nde_tensor *f_conv2d_nobias(nde_ctx *c, nde_tensor **x, void *u) { int *sp = (int *)u; return nde_conv2d(c, x[0], x[1], NULL, sp[0], sp[1]); }
static nde_tensor *f_conv1d(nde_ctx *c, nde_tensor **x, void *u) { int *sp = (int *)u; return nde_conv1d(c, x[0], x[1], x[2], sp[0], sp[1]); }
static nde_tensor *f_gnorm(nde_ctx *c, nde_tensor **x, void *u) { return nde_group_norm(c, x[0], *(int *)u, x[1], x[2], NDE_R(1e-5)); }
static nde_tensor *f_gnorm_plain(nde_ctx *c, nde_tensor **x, void *u) { return nde_group_norm(c, x[0], *(int *)u, NULL, NULL, NDE_R(1e-5)); }
static nde_tensor *f_avgpool(nde_ctx *c, nde_tensor **x, void *u) { int *ks = (int *)u; return nde_avg_pool2d(c, x[0], ks[0], ks[1]); }
static nde_tensor *f_gap(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_global_avg_pool(c, x[0]); }
static nde_tensor *f_logsm(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_log_softmax(c, x[0]); }
static nde_tensor *f_xent(nde_ctx *c, nde_tensor **x, void *u) {
    int64_t lab[300], i; (void)u;
    for (i = 0; i < x[0]->shape[0] && i < 300; i++) lab[i] = (i * 7) % x[0]->shape[1];
    return nde_cross_entropy(c, x[0], lab);
}
static nde_tensor *f_mse(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mse_loss(c, x[0], x[1]); }
static nde_tensor *f_l1(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_l1_loss(c, x[0], x[1]); }
static nde_tensor *f_lincomb(nde_ctx *c, nde_tensor **x, void *u) {
    nde_real co[19]; nde_tensor *xs[19]; int i; (void)u;
    for (i = 0; i < 19; i++) { co[i] = (nde_real)(0.25 * (i - 9)); xs[i] = x[i % 2]; }
    return nde_lincomb(c, 19, co, xs);
}
static nde_tensor *f_clone(nde_ctx *c, nde_tensor **x, void *u) { (void)u; return nde_mul(c, nde_tensor_clone(c, x[0]), x[0]); }
static nde_tensor *f_detach_mix(nde_ctx *c, nde_tensor **x, void *u) {
    (void)u;   /* gradient flows only through the second factor */
    return nde_mul(c, nde_tensor_detach(c, x[0]), nde_sin(c, x[0]));
}

static void set_shape(op_case *c, int i, int nd, int64_t a, int64_t b, int64_t cc_, int64_t d) {
    c->ndim[i] = nd; c->shape[i][0] = a; c->shape[i][1] = b; c->shape[i][2] = cc_; c->shape[i][3] = d;
}
static op_case mk(const char *name, op_fn f, void *user, int nin, int positive) {
    op_case c;
    memset(&c, 0, sizeof c);
    c.name = name; c.f = f; c.user = user; c.nin = nin; c.positive = positive;
    return c;
}

static void test_ops(void) {
    static unary_op un[] = {nde_neg, nde_square, nde_exp, nde_sin, nde_cos, nde_tanh, nde_sigmoid, nde_relu, nde_softplus, nde_abs};
    static const char *un_names[] = {"neg", "square", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "softplus", "abs"};
    static unary_op pos[] = {nde_sqrt, nde_log};
    static nde_activation acts[] = {NDE_ACT_NONE, NDE_ACT_TANH, NDE_ACT_RELU, NDE_ACT_SIGMOID, NDE_ACT_SOFTPLUS,
                                    NDE_ACT_ELU, NDE_ACT_LEAKY_RELU, NDE_ACT_SIN};
    static int tt[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    static int ax0 = 0, ax1 = 1, ax2 = 2, ax3 = 3, p3 = 3, pm2 = -2, g2 = 2, g1 = 1, g4 = 4;
    static int conv_a[2] = {1, 1}, conv_b[2] = {2, 0}, conv_c[2] = {1, 0}, pool[2] = {2, 2}, pool2[2] = {3, 1};
    op_fn bins[4] = {f_add, f_sub, f_mul, f_div};
    const char *bin_names[4] = {"add", "sub", "mul", "div"};
    int64_t big = emulated ? 3000 : 100000;
    op_case c;
    int i, k;
    for (k = 0; k < 4; k++) {
        c = mk(bin_names[k], bins[k], NULL, 2, k == 3);
        set_shape(&c, 0, 2, 33, 40, 1, 1); set_shape(&c, 1, 2, 33, 40, 1, 1); run_case(&c);
        set_shape(&c, 1, 1, 1, 1, 1, 1); run_case(&c);                                    /* scalar */
        set_shape(&c, 1, 1, 40, 1, 1, 1); run_case(&c);                                   /* row */
        set_shape(&c, 1, 2, 33, 1, 1, 1); run_case(&c);                                   /* column */
        set_shape(&c, 0, 1, 40, 1, 1, 1); set_shape(&c, 1, 2, 33, 40, 1, 1); run_case(&c); /* broadcast a */
        set_shape(&c, 0, 4, 4, 3, 6, 5); set_shape(&c, 1, 4, 1, 3, 1, 1); run_case(&c);   /* per channel */
        set_shape(&c, 0, 4, 4, 1, 6, 1); set_shape(&c, 1, 4, 1, 3, 1, 5); run_case(&c);   /* both broadcast */
    }
    for (i = 0; i < (int)(sizeof un / sizeof un[0]); i++) {
        c = mk(un_names[i], f_unary, &un[i], 1, 0); set_shape(&c, 0, 2, 30, 50, 1, 1); run_case(&c);
    }
    for (i = 0; i < 2; i++) { c = mk(i ? "log" : "sqrt", f_unary, &pos[i], 1, 1); set_shape(&c, 0, 1, 701, 1, 1, 1); run_case(&c); }
    for (i = 0; i < (int)(sizeof acts / sizeof acts[0]); i++) {
        c = mk("activation", f_act, &acts[i], 1, 0); set_shape(&c, 0, 2, 16, 20, 1, 1); run_case(&c);
    }
    c = mk("scale", f_scale, NULL, 1, 0); set_shape(&c, 0, 1, 513, 1, 1, 1); run_case(&c);
    c = mk("add_scalar", f_add_scalar, NULL, 1, 0); set_shape(&c, 0, 1, 513, 1, 1, 1); run_case(&c);
    c = mk("leaky_relu", f_leaky, NULL, 1, 0); set_shape(&c, 0, 1, 999, 1, 1, 1); run_case(&c);
    c = mk("elu", f_elu, NULL, 1, 0); set_shape(&c, 0, 1, 999, 1, 1, 1); run_case(&c);
    c = mk("powi3", f_powi, &p3, 1, 0); set_shape(&c, 0, 1, 600, 1, 1, 1); run_case(&c);
    c = mk("powi-2", f_powi, &pm2, 1, 1); set_shape(&c, 0, 1, 600, 1, 1, 1); run_case(&c);
    for (k = 0; k < 4; k++) {
        c = mk("matmul", f_matmul, tt[k], 2, 0);
        set_shape(&c, 0, 2, tt[k][0] ? 48 : 37, tt[k][0] ? 37 : 48, 1, 1);
        set_shape(&c, 1, 2, tt[k][1] ? 29 : 48, tt[k][1] ? 48 : 29, 1, 1);
        run_case(&c);
    }
    c = mk("sum", f_sum, NULL, 1, 0); set_shape(&c, 0, 1, big, 1, 1, 1); run_case(&c);
    c = mk("mean", f_mean, NULL, 1, 0); set_shape(&c, 0, 3, 20, 30, 40, 1); run_case(&c);
    c = mk("sum_axis0", f_sum_axis, &ax0, 1, 0); set_shape(&c, 0, 3, 200, 3, 40, 1); run_case(&c);
    c = mk("sum_axis1", f_sum_axis, &ax1, 1, 0); set_shape(&c, 0, 3, 2, 300, 4, 1); run_case(&c);
    c = mk("sum_axis3", f_sum_axis, &ax3, 1, 0); set_shape(&c, 0, 4, 2, 3, 4, 500); run_case(&c);
    c = mk("mean_axis2", f_mean_axis, &ax2, 1, 0); set_shape(&c, 0, 3, 20, 3, 400, 1); run_case(&c);
    c = mk("transpose", f_transpose, NULL, 1, 0); set_shape(&c, 0, 2, 70, 45, 1, 1); run_case(&c);
    c = mk("reshape", f_reshape, NULL, 1, 0); set_shape(&c, 0, 3, 2, 3, 4, 1); run_case(&c);
    c = mk("concat0", f_concat, &ax0, 2, 0); set_shape(&c, 0, 2, 2, 3, 1, 1); set_shape(&c, 1, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("concat1", f_concat, &ax1, 2, 0); set_shape(&c, 0, 3, 2, 3, 2, 1); set_shape(&c, 1, 3, 2, 1, 2, 1); run_case(&c);
    c = mk("slice1", f_slice, &ax1, 1, 0); set_shape(&c, 0, 3, 2, 4, 3, 1); run_case(&c);
    c = mk("slice0", f_slice, &ax0, 1, 0); set_shape(&c, 0, 2, 4, 3, 1, 1); run_case(&c);
    c = mk("gather_rows", f_gather, NULL, 1, 0); set_shape(&c, 0, 2, 50, 3, 1, 1); run_case(&c);
    c = mk("conv2d", f_conv2d, conv_a, 3, 0);
    set_shape(&c, 0, 4, 2, 3, 9, 8); set_shape(&c, 1, 4, 4, 3, 3, 3); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("conv2d_s2", f_conv2d, conv_b, 3, 0);
    set_shape(&c, 0, 4, 2, 2, 9, 10); set_shape(&c, 1, 4, 3, 2, 2, 3); set_shape(&c, 2, 1, 3, 1, 1, 1); run_case(&c);
    c = mk("conv2d_nobias", f_conv2d_nobias, conv_c, 2, 0);
    set_shape(&c, 0, 4, 3, 4, 6, 6); set_shape(&c, 1, 4, 5, 4, 1, 1); run_case(&c);
    c = mk("conv1d", f_conv1d, conv_a, 3, 0);
    set_shape(&c, 0, 3, 2, 3, 17, 1); set_shape(&c, 1, 3, 4, 3, 3, 1); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("group_norm", f_gnorm, &g2, 3, 0);
    set_shape(&c, 0, 4, 3, 4, 9, 7); set_shape(&c, 1, 1, 4, 1, 1, 1); set_shape(&c, 2, 1, 4, 1, 1, 1); run_case(&c);
    c = mk("group_norm_g1", f_gnorm, &g1, 3, 0);
    set_shape(&c, 0, 3, 2, 6, 50, 1); set_shape(&c, 1, 1, 6, 1, 1, 1); set_shape(&c, 2, 1, 6, 1, 1, 1); run_case(&c);
    c = mk("group_norm_plain", f_gnorm_plain, &g4, 1, 0); set_shape(&c, 0, 4, 2, 8, 5, 5); run_case(&c);
    c = mk("avg_pool2d", f_avgpool, pool, 1, 0); set_shape(&c, 0, 4, 2, 2, 8, 6); run_case(&c);
    c = mk("avg_pool2d_k3s1", f_avgpool, pool2, 1, 0); set_shape(&c, 0, 4, 1, 2, 7, 9); run_case(&c);
    c = mk("global_avg_pool", f_gap, NULL, 1, 0); set_shape(&c, 0, 4, 2, 3, 5, 5); run_case(&c);
    c = mk("log_softmax", f_logsm, NULL, 1, 0); set_shape(&c, 0, 2, 30, 10, 1, 1); run_case(&c);
    c = mk("log_softmax_wide", f_logsm, NULL, 1, 0); set_shape(&c, 0, 2, 3, 700, 1, 1); run_case(&c);
    c = mk("cross_entropy", f_xent, NULL, 1, 0); set_shape(&c, 0, 2, 300, 10, 1, 1); run_case(&c);
    c = mk("mse", f_mse, NULL, 2, 0); set_shape(&c, 0, 2, 30, 20, 1, 1); set_shape(&c, 1, 2, 30, 20, 1, 1); run_case(&c);
    c = mk("l1", f_l1, NULL, 2, 0); set_shape(&c, 0, 2, 30, 20, 1, 1); set_shape(&c, 1, 2, 30, 20, 1, 1); run_case(&c);
    c = mk("lincomb19", f_lincomb, NULL, 2, 0); set_shape(&c, 0, 2, 30, 20, 1, 1); set_shape(&c, 1, 2, 30, 20, 1, 1); run_case(&c);
    c = mk("clone", f_clone, NULL, 1, 0); set_shape(&c, 0, 1, 500, 1, 1, 1); run_case(&c);
    c = mk("detach", f_detach_mix, NULL, 1, 0); set_shape(&c, 0, 1, 500, 1, 1, 1); run_case(&c);
    backend_ok("ops");
}

/* ================================================================ RNG through the API */
static void test_rng_api(void) {
    int64_t shape[2] = {37, emulated ? 29 : 2900};
    int64_t n = shape[0] * shape[1];
    nde_mark mc = nde_ctx_mark(cc), mg = nde_ctx_mark(gc);
    nde_real *a = host_new(n), *b = host_new(n);
    nde_tensor *tc, *tg;
    nde_rng rc = nde_rng_new(9, 3), rg = nde_rng_new(9, 3);
    tc = nde_tensor_randn(cc, 2, shape, 123, 456); tg = nde_tensor_randn(gc, 2, shape, 123, 456);
    nde_tensor_to_host(cc, tc, a); nde_tensor_to_host(gc, tg, b);
    CHECK(max_ulps(a, b, n) <= NORMAL_ULPS);
    tc = nde_tensor_rand(cc, 2, shape, 123, 457); tg = nde_tensor_rand(gc, 2, shape, 123, 457);
    nde_tensor_to_host(cc, tc, a); nde_tensor_to_host(gc, tg, b);
    CHECK(max_ulps(a, b, n) == 0);
    /* a stream continued over several fills matches one host draw */
    nde_tensor_fill_uniform(gc, tg, &rg, NDE_R(-1.0), NDE_R(3.0));
    nde_tensor_fill_rademacher(gc, tg, &rg);
    nde_tensor_to_host(gc, tg, b);
    nde_tensor_fill_uniform(cc, tc, &rc, NDE_R(-1.0), NDE_R(3.0));
    nde_tensor_fill_rademacher(cc, tc, &rc);
    nde_tensor_to_host(cc, tc, a);
    CHECK(max_ulps(a, b, n) == 0 && rc.counter == rg.counter && rc.counter == 2 * (uint64_t)n);
    nde_tensor_fill_normal(gc, tg, &rg, NDE_R(2.0), NDE_R(0.5));
    nde_tensor_to_host(gc, tg, b);
    nde_rng_normal(&rc, n, a);   /* the host generator, scaled the same way */
    {
        int64_t i;
        for (i = 0; i < n; i++) a[i] = a[i] * NDE_R(0.5) + NDE_R(2.0);
    }
    CHECK(max_ulps(a, b, n) <= NORMAL_ULPS + 1);
    CHECK(nde_ctx_status(gc) == NDE_OK);
    free(a); free(b);
    nde_ctx_reset(cc, mc); nde_ctx_reset(gc, mg);
}

/* ================================================================ training steps */
static void compare_params(const char *what, nde_ctx *c1, nde_ctx *c2, double tol) {
    int64_t n = nde_params_count(c1);
    nde_real *a = host_new(n), *b = host_new(n);
    CHECK(n == nde_params_count(c2));
    read_backend(c1, nde_params_data(c1), n, a);
    read_backend(c2, nde_params_data(c2), n, b);
    check_close_at(what, a, b, n, tol, __FILE__, __LINE__);
    free(a); free(b);
}
static nde_ctx *ctx_on(const nde_backend *be) {
    nde_ctx_desc d = nde_ctx_desc_default();
    d.backend = be;
    d.arena_block_bytes = (size_t)1 << 16;   /* small: the arenas grow over several blocks */
    return nde_ctx_new(d);
}

static nde_tensor *mlp_loss(nde_ctx *ctx, const nde_mlp *net, int64_t batch, int it) {
    int64_t xs[2] = {batch, 3}, ys[2] = {batch, 2};
    nde_real *xh = host_uniform(batch * 3, 900 + (uint64_t)it, -1, 1), *yh = host_uniform(batch * 2, 950 + (uint64_t)it, -1, 1);
    nde_tensor *x = nde_tensor_from(ctx, 2, xs, xh), *y = nde_tensor_from(ctx, 2, ys, yh);
    free(xh); free(yh);
    return nde_mse_loss(ctx, nde_mlp_forward(ctx, net, x), y);
}
static void train_mlp(nde_optimizer proto, const char *name) {
    nde_ctx *c1 = ctx_on(NULL), *c2 = ctx_on(gpu);
    nde_mlp n1, n2;
    int64_t widths[4] = {3, 32, 32, 2};
    nde_optimizer o1 = proto, o2 = proto;
    int it;
    char what[96];
    nde_mlp_init(c1, &n1, "mlp", 4, widths, NDE_ACT_TANH, 31);
    nde_mlp_init(c2, &n2, "mlp", 4, widths, NDE_ACT_TANH, 31);
    snprintf(what, sizeof what, "%s: initial parameters (bitwise)", name);
    compare_params(what, c1, c2, 0.0);
    for (it = 0; it < 5; it++) {
        nde_mark m1 = nde_ctx_mark(c1), m2 = nde_ctx_mark(c2);
        nde_tensor *l1 = mlp_loss(c1, &n1, 64, it), *l2 = mlp_loss(c2, &n2, 64, it);
        nde_real v1, v2;
        int64_t syncs0, syncs1;
        nde_zero_grad(c1); nde_backward(c1, l1); nde_optimizer_step(c1, &o1);
        v1 = nde_tensor_item(c1, l1, 0);
        /* forward, backward and the optimizer step queue work without waiting for it;
           gradient clipping reads one norm (one reduction over the flat gradient) */
        nde_cuda_counters(gpu, NULL, &syncs0);
        nde_zero_grad(c2); nde_backward(c2, l2); nde_optimizer_step(c2, &o2);
        nde_cuda_counters(gpu, NULL, &syncs1);
        CHECK(syncs1 - syncs0 == (proto.clip_grad_norm > 0 ? 1 : 0));
        v2 = nde_tensor_item(c2, l2, 0);
        snprintf(what, sizeof what, "%s: loss at step %d", name, it);
        check_close_at(what, &v1, &v2, 1, TOL, __FILE__, __LINE__);
        nde_ctx_reset(c1, m1); nde_ctx_reset(c2, m2);
    }
    snprintf(what, sizeof what, "%s: parameters after 5 steps", name);
    compare_params(what, c1, c2, TOL * 10);
    if (proto.clip_grad_norm > 0) CHECK_NEAR(o2.last_grad_norm, o1.last_grad_norm, 0, TOL);
    CHECK(nde_ctx_synchronize(c2) == NDE_OK);
    if (nde_ctx_status(c2) != NDE_OK) fprintf(stderr, "%s: %s\n", name, nde_ctx_message(c2));
    CHECK(nde_ctx_status(c1) == NDE_OK);
    nde_ctx_free(c1); nde_ctx_free(c2);
}

/* conv -> group norm -> relu -> avg pool -> linear -> cross-entropy */
typedef struct cnn { nde_conv2d_layer conv; nde_tensor *gamma, *beta; nde_linear head; } cnn;
static void cnn_init(nde_ctx *ctx, cnn *m) {
    int64_t c4 = 4;
    nde_conv2d_init(ctx, &m->conv, "conv", 1, 4, 3, 1, 1, 1, 5);
    m->gamma = nde_param_new(ctx, "gn.gamma", 1, &c4);
    m->beta = nde_param_new(ctx, "gn.beta", 1, &c4);
    nde_init_uniform(ctx, m->gamma, NDE_R(0.5), NDE_R(1.5), 6);
    nde_init_uniform(ctx, m->beta, NDE_R(-0.1), NDE_R(0.1), 7);
    nde_linear_init(ctx, &m->head, "head", 4 * 4 * 4, 10, 1, 8);
}
static nde_tensor *cnn_loss(nde_ctx *ctx, const cnn *m, int it) {
    int64_t xs[4] = {12, 1, 8, 8}, flat[2] = {12, 64}, labels[12], i;
    nde_real *xh = host_uniform(12 * 64, 700 + (uint64_t)it, -1, 1);
    nde_tensor *x = nde_tensor_from(ctx, 4, xs, xh), *h;
    free(xh);
    for (i = 0; i < 12; i++) labels[i] = (i * 3 + it) % 10;
    h = nde_conv2d_forward(ctx, &m->conv, x);
    h = nde_relu(ctx, nde_group_norm(ctx, h, 2, m->gamma, m->beta, NDE_R(1e-5)));
    h = nde_reshape(ctx, nde_avg_pool2d(ctx, h, 2, 2), 2, flat);
    return nde_cross_entropy(ctx, nde_linear_forward(ctx, &m->head, h), labels);
}
static void train_cnn(nde_optimizer proto, const char *name) {
    nde_ctx *c1 = ctx_on(NULL), *c2 = ctx_on(gpu);
    cnn m1, m2;
    nde_optimizer o1 = proto, o2 = proto;
    int it;
    char what[96];
    cnn_init(c1, &m1); cnn_init(c2, &m2);
    snprintf(what, sizeof what, "%s: initial parameters (bitwise)", name);
    compare_params(what, c1, c2, 0.0);
    for (it = 0; it < 3; it++) {
        nde_mark a = nde_ctx_mark(c1), b = nde_ctx_mark(c2);
        nde_tensor *l1 = cnn_loss(c1, &m1, it), *l2 = cnn_loss(c2, &m2, it);
        nde_real v1, v2;
        nde_zero_grad(c1); nde_zero_grad(c2);
        nde_backward(c1, l1); nde_backward(c2, l2);
        v1 = nde_tensor_item(c1, l1, 0); v2 = nde_tensor_item(c2, l2, 0);
        nde_optimizer_step(c1, &o1); nde_optimizer_step(c2, &o2);
        snprintf(what, sizeof what, "%s: loss at step %d", name, it);
        check_close_at(what, &v1, &v2, 1, TOL, __FILE__, __LINE__);
        nde_ctx_reset(c1, a); nde_ctx_reset(c2, b);
    }
    snprintf(what, sizeof what, "%s: parameters after 3 steps", name);
    compare_params(what, c1, c2, TOL * 10);
    CHECK(nde_ctx_synchronize(c2) == NDE_OK);
    if (nde_ctx_status(c2) != NDE_OK) fprintf(stderr, "%s: %s\n", name, nde_ctx_message(c2));
    nde_ctx_free(c1); nde_ctx_free(c2);
}
static void test_training(void) {
    nde_optimizer clip = nde_adamw(1e-3, 0.01);
    clip.clip_grad_norm = 0.05;
    train_mlp(nde_adam(1e-3), "mlp adam");
    train_mlp(clip, "mlp adamw clipped");
    train_mlp(nde_sgd(1e-2, 0.9, 1), "mlp sgd nesterov");
    train_mlp(nde_sgd(1e-2, 0.0, 0), "mlp sgd");
    train_mlp(nde_rmsprop(1e-3), "mlp rmsprop");
    {
        nde_optimizer r = nde_rmsprop(1e-3);
        r.momentum = 0.9;
        train_mlp(r, "mlp rmsprop momentum");
    }
    train_cnn(nde_adam(1e-3), "cnn adam");
    train_cnn(nde_sgd(1e-2, 0.9, 0), "cnn sgd momentum");
}

/* A frozen parameter in the middle splits the optimizer's runs. */
static void test_frozen_param(void) {
    nde_ctx *c1 = ctx_on(NULL), *c2 = ctx_on(gpu);
    nde_mlp n1, n2;
    int64_t widths[3] = {3, 8, 2};
    nde_optimizer o1 = nde_adam(1e-2), o2 = nde_adam(1e-2);
    int it;
    nde_mlp_init(c1, &n1, "m", 3, widths, NDE_ACT_RELU, 3);
    nde_mlp_init(c2, &n2, "m", 3, widths, NDE_ACT_RELU, 3);
    nde_param_set_trainable(c1, 1, 0); nde_param_set_trainable(c2, 1, 0);
    {
        int64_t xs[2] = {16, 3}, ys[2] = {16, 2};
        nde_real *xh = host_uniform(48, 1, -1, 1), *yh = host_uniform(32, 2, -1, 1);
        for (it = 0; it < 3; it++) {
            nde_mark a = nde_ctx_mark(c1), b = nde_ctx_mark(c2);
            nde_tensor *l1 = nde_mse_loss(c1, nde_mlp_forward(c1, &n1, nde_tensor_from(c1, 2, xs, xh)), nde_tensor_from(c1, 2, ys, yh));
            nde_tensor *l2 = nde_mse_loss(c2, nde_mlp_forward(c2, &n2, nde_tensor_from(c2, 2, xs, xh)), nde_tensor_from(c2, 2, ys, yh));
            nde_zero_grad(c1); nde_zero_grad(c2);
            nde_backward(c1, l1); nde_backward(c2, l2);
            nde_optimizer_step(c1, &o1); nde_optimizer_step(c2, &o2);
            nde_ctx_reset(c1, a); nde_ctx_reset(c2, b);
        }
        free(xh); free(yh);
    }
    compare_params("adam with a frozen parameter", c1, c2, TOL * 10);
    {   /* the frozen bias kept its initial value on the device too */
        nde_tensor *b = nde_param_at(c2, 1);
        nde_real *h = host_new(b->size), *h1 = host_new(b->size);
        nde_ctx *c3 = ctx_on(NULL);
        nde_mlp n3;
        nde_mlp_init(c3, &n3, "m", 3, widths, NDE_ACT_RELU, 3);
        nde_tensor_to_host(c2, b, h);
        nde_tensor_to_host(c3, nde_param_at(c3, 1), h1);
        CHECK(rel_err(h1, h, b->size) == 0.0);
        free(h); free(h1);
        nde_ctx_free(c3);
    }
    CHECK(nde_ctx_synchronize(c2) == NDE_OK);
    nde_ctx_free(c1); nde_ctx_free(c2);
}

/* ================================================================ CUDA graphs */
typedef struct graph_step { nde_mlp net; nde_tensor *x, *y, *loss_out; } graph_step;
static void graph_step_run(nde_ctx *ctx, graph_step *g) {
    nde_tensor *loss = nde_mse_loss(ctx, nde_mlp_forward(ctx, &g->net, g->x), g->y);
    nde_zero_grad(ctx);
    nde_backward(ctx, loss);
    nde_tensor_copy_into(ctx, g->loss_out, loss);
}
static void graph_step_init(nde_ctx *ctx, graph_step *g) {
    int64_t widths[4] = {3, 16, 16, 2}, xs[2] = {32, 3}, ys[2] = {32, 2}, one = 1;
    nde_mlp_init(ctx, &g->net, "g", 4, widths, NDE_ACT_TANH, 17);
    g->x = nde_tensor_zeros(ctx, 2, xs);
    g->y = nde_tensor_zeros(ctx, 2, ys);
    g->loss_out = nde_tensor_zeros(ctx, 1, &one);
}
static void test_graph(void) {
    nde_ctx *c1 = ctx_on(NULL), *c2 = ctx_on(gpu);
    graph_step s1, s2;
    nde_cuda_graph *graph = NULL;
    nde_optimizer o1 = nde_adam(1e-2), o2 = nde_adam(1e-2);
    nde_mark m;
    int it;
    graph_step_init(c1, &s1); graph_step_init(c2, &s2);
    m = nde_ctx_mark(c2);
    graph_step_run(c2, &s2);                 /* warm-up: the arena reaches its size */
    nde_ctx_reset(c2, m);
    CHECK(nde_cuda_graph_begin(gpu) == NDE_OK);
    CHECK(nde_cuda_is_capturing(gpu) == 1);
    graph_step_run(c2, &s2);
    CHECK(nde_cuda_graph_end(gpu, &graph) == NDE_OK && graph != NULL);
    nde_ctx_reset(c2, m);
    if (!graph) {
        const char *msg = "";
        nde_cuda_error(gpu, &msg);
        fprintf(stderr, "graph capture failed: %s | %s\n", msg, nde_ctx_message(c2));
        nde_cuda_clear_error(gpu); nde_ctx_clear_error(c2);
        nde_ctx_free(c1); nde_ctx_free(c2);
        return;
    }
    for (it = 0; it < 4; it++) {
        nde_real *xh = host_uniform(96, 1000 + (uint64_t)it, -1, 1), *yh = host_uniform(64, 1100 + (uint64_t)it, -1, 1);
        nde_real l1, l2;
        nde_mark m1 = nde_ctx_mark(c1);
        nde_tensor_set_host(c1, s1.x, xh); nde_tensor_set_host(c1, s1.y, yh);
        nde_tensor_set_host(c2, s2.x, xh); nde_tensor_set_host(c2, s2.y, yh);
        graph_step_run(c1, &s1);
        CHECK(nde_cuda_graph_launch(graph) == NDE_OK);
        l1 = nde_tensor_item(c1, s1.loss_out, 0);
        l2 = nde_tensor_item(c2, s2.loss_out, 0);
        check_close_at("graph replay: loss", &l1, &l2, 1, TOL, __FILE__, __LINE__);
        {
            int64_t n = nde_params_count(c1);
            nde_real *g1 = host_new(n), *g2 = host_new(n);
            read_backend(c1, nde_params_grad(c1), n, g1);
            read_backend(c2, nde_params_grad(c2), n, g2);
            CHECK_CLOSE("graph replay: parameter gradients", g1, g2, n);
            free(g1); free(g2);
        }
        nde_optimizer_step(c1, &o1); nde_optimizer_step(c2, &o2);   /* eager, outside the graph */
        nde_ctx_reset(c1, m1);
        free(xh); free(yh);
    }
    compare_params("graph replay: parameters after 4 steps", c1, c2, TOL * 10);
    nde_cuda_graph_free(graph);
    CHECK(nde_ctx_synchronize(c2) == NDE_OK);
    /* capture misuse: a host read inside the capture fails with a clear message */
    m = nde_ctx_mark(c2);
    CHECK(nde_cuda_graph_begin(gpu) == NDE_OK);
    (void)nde_tensor_item(c2, s2.loss_out, 0);
    CHECK(nde_cuda_graph_end(gpu, &graph) == NDE_ERR_BACKEND && graph == NULL);
    CHECK(nde_ctx_status(c2) == NDE_ERR_BACKEND);
    CHECK_MSG(nde_ctx_message(c2), "graph is being captured");
    CHECK_MSG(nde_ctx_message(c2), "nde_tensor_item");
    nde_ctx_clear_error(c2); nde_cuda_clear_error(gpu);
    CHECK(nde_cuda_is_capturing(gpu) == 0);
    /* growing the arena inside a capture is refused, not silently wrong */
    CHECK(nde_cuda_graph_begin(gpu) == NDE_OK);
    {
        int64_t huge[1] = {(int64_t)1 << 22};
        CHECK(nde_tensor_zeros(c2, 1, huge) == NULL);
    }
    CHECK(nde_cuda_graph_end(gpu, &graph) == NDE_ERR_BACKEND);
    CHECK_MSG(nde_ctx_message(c2), "run the captured code once before capturing");
    nde_ctx_clear_error(c2); nde_cuda_clear_error(gpu);
    nde_ctx_reset(c2, m);
    CHECK(nde_cuda_graph_end(gpu, &graph) == NDE_ERR_ARG);   /* nothing to end */
    nde_cuda_clear_error(gpu);
    nde_ctx_free(c1); nde_ctx_free(c2);
}


/* ================================================================ jets */
static nde_jet *jet_mlp(nde_ctx *ctx, nde_jet *x, void *user) { return nde_jet_mlp_forward(ctx, (const nde_mlp *)user, x); }
static nde_jet *jet_field(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    (void)t;
    return nde_jet_tanh(ctx, nde_jet_mlp_forward(ctx, (const nde_mlp *)user, z));
}
static void read_tensor(nde_ctx *ctx, nde_tensor *t, nde_real *host) { if (t) nde_tensor_to_host(ctx, t, host); }
static void test_jets(void) {
    nde_ctx *c[2];
    nde_mlp net[2];
    int64_t widths[3] = {4, 16, 4}, xs[2] = {8, 4};
    nde_real *xh = host_uniform(32, 60, -1, 1), *vh = host_uniform(32, 61, -1, 1);
    nde_real *y[2], *jv[2], *coef[2];
    int i, k;
    for (i = 0; i < 2; i++) {
        nde_tensor *x, *v, *yt = NULL, *jt = NULL;
        nde_jet *zc;
        c[i] = ctx_on(i ? gpu : NULL);
        nde_mlp_init(c[i], &net[i], "j", 3, widths, NDE_ACT_TANH, 5);
        x = nde_tensor_from(c[i], 2, xs, xh);
        v = nde_tensor_from(c[i], 2, xs, vh);
        y[i] = host_new(32); jv[i] = host_new(32); coef[i] = host_new(5 * 32);
        CHECK(nde_jvp(c[i], jet_mlp, &net[i], x, v, &yt, &jt) == NDE_OK);
        read_tensor(c[i], yt, y[i]);
        read_tensor(c[i], jt, jv[i]);
        zc = nde_ode_taylor_coeffs(c[i], jet_field, &net[i], NDE_R(0.3), x, 4);
        CHECK(zc != NULL);
        for (k = 0; zc && k <= 4; k++) read_tensor(c[i], nde_jet_coeff(c[i], zc, k), coef[i] + k * 32);
        CHECK(nde_ctx_synchronize(c[i]) == NDE_OK);
        if (nde_ctx_status(c[i]) != NDE_OK) fprintf(stderr, "jets: %s\n", nde_ctx_message(c[i]));
    }
    CHECK_CLOSE("jvp: value", y[0], y[1], 32);
    CHECK_CLOSE("jvp: directional derivative", jv[0], jv[1], 32);
    for (k = 0; k <= 4; k++) {
        char what[64];
        snprintf(what, sizeof what, "ODE Taylor coefficient %d", k);
        CHECK_CLOSE(what, coef[0] + k * 32, coef[1] + k * 32, 32);
    }
    for (i = 0; i < 2; i++) { free(y[i]); free(jv[i]); free(coef[i]); nde_ctx_free(c[i]); }
    free(xh); free(vh);
}

/* ================================================================ solves */
typedef struct field_user { nde_mlp net; int nan_after; } field_user;
/* f(t, z) = tanh-MLP(z) * (1 + t/2); NaN once t passes nan_after (if set) */
static nde_tensor *mlp_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    field_user *u = (field_user *)user;
    nde_tensor *y = nde_mul(ctx, nde_mlp_forward(ctx, &u->net, z), nde_add_scalar(ctx, nde_scale(ctx, t, NDE_R(0.5)), NDE_R(1.0)));
    if (u->nan_after && nde_tensor_item(ctx, t, 0) > (nde_real)u->nan_after * NDE_R(0.1))   /* a host read */
        y = nde_mul(ctx, y, nde_tensor_scalar(ctx, (nde_real)NAN));
    return y;
}
/* The same field without the host read of t (capturable). */
static nde_tensor *mlp_field_plain(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    field_user *u = (field_user *)user;
    return nde_mul(ctx, nde_mlp_forward(ctx, &u->net, z), nde_add_scalar(ctx, nde_scale(ctx, t, NDE_R(0.5)), NDE_R(1.0)));
}
static void field_init(nde_ctx *ctx, field_user *u) {
    int64_t widths[4] = {4, 32, 32, 4};
    memset(u, 0, sizeof *u);
    nde_mlp_init(ctx, &u->net, "field", 4, widths, NDE_ACT_TANH, 77);
}
static const int64_t solve_shape[2] = {16, 4};

/* Solves on both backends; compares the outputs, the statistics, and the host
   synchronisations the device spent (at most budget). */
static void solve_case(const char *name, nde_solve_options o, int64_t sync_budget_const, int per_attempt) {
    double ts[3] = {0.0, 1.5, 4.0};
    nde_real *z0h = host_uniform(64, 31, -1, 1), *out[2];
    nde_solve_stats stats[2];
    int64_t syncs0 = 0, syncs1 = 0, launches0 = 0, launches1 = 0;
    int i, j;
    char what[128];
    for (i = 0; i < 2; i++) {
        nde_ctx *c = ctx_on(i ? gpu : NULL);
        field_user u;
        nde_solution sol;
        nde_tensor *z0;
        nde_status st;
        field_init(c, &u);
        z0 = nde_tensor_from(c, 2, solve_shape, z0h);
        nde_set_grad_enabled(c, 0);
        if (i) { nde_ctx_synchronize(c); nde_cuda_counters(gpu, &launches0, &syncs0); }
        st = nde_solve(c, mlp_field, &u, z0, 3, ts, &o, &sol);
        if (i) nde_cuda_counters(gpu, &launches1, &syncs1);
        CHECK(st == NDE_OK);
        if (st != NDE_OK) fprintf(stderr, "%s: %s\n", name, nde_ctx_message(c));
        out[i] = host_new(3 * 64);
        for (j = 0; j < sol.num_out && j < 3; j++) read_tensor(c, sol.ys[j], out[i] + j * 64);
        stats[i] = sol.stats;
        nde_solution_free(c, &sol);
        nde_ctx_free(c);
    }
    snprintf(what, sizeof what, "%s: outputs", name);
    CHECK_CLOSE(what, out[0], out[1], 3 * 64);
#ifdef NDE_DOUBLE
    CHECK(stats[0].accepted == stats[1].accepted && stats[0].rejected == stats[1].rejected && stats[0].nfe == stats[1].nfe);
#endif
    {
        int64_t used = syncs1 - syncs0, budget = sync_budget_const + (per_attempt ? stats[1].accepted + stats[1].rejected : 0);
        printf("%s: %s: %lld accepted + %lld rejected steps, %lld f evaluations, %lld host syncs, %lld launches\n",
               TEST_NAME, name, (long long)stats[1].accepted, (long long)stats[1].rejected, (long long)stats[1].nfe,
               (long long)used, (long long)(launches1 - launches0));
        if (used > budget)
            fprintf(stderr, "%s: %lld host syncs for %lld accepted + %lld rejected steps (budget %lld)\n", name,
                    (long long)used, (long long)stats[1].accepted, (long long)stats[1].rejected, (long long)budget);
        CHECK(used <= budget);
    }
    free(out[0]); free(out[1]); free(z0h);
}

static void test_solves(void) {
    nde_solve_options o = nde_solve_options_default();
    /* rk4, fixed steps: z0 and f(z0) checked, then the state where the two outputs
       land, not at each of the 40 steps */
    o.method = NDE_RK4; o.step_size = 0.1;
    solve_case("rk4 fixed step", o, 4, 0);
    /* dopri5, adaptive: one host read per step attempt (the error norm) */
    o = nde_solve_options_default();
    o.method = NDE_DOPRI5;
    o.rtol = sizeof(nde_real) == 8 ? 1e-8 : 1e-5;
    o.atol = o.rtol * 1e-2;
    solve_case("dopri5 adaptive", o, 8, 1);
    o.method = NDE_TSIT5;
    solve_case("tsit5 adaptive", o, 8, 1);
    o.method = NDE_BOSH3; o.rtol = 1e-4; o.atol = 1e-6;
    solve_case("bosh3 adaptive", o, 8, 1);
}

/* A state that turns NaN is caught on the device too. */
static void test_solve_nonfinite(void) {
    double ts[2] = {0.0, 1.0};
    nde_real *z0h = host_uniform(64, 32, -1, 1);
    int adaptive;
    for (adaptive = 0; adaptive < 2; adaptive++) {
        nde_ctx *c = ctx_on(gpu);
        field_user u;
        nde_solution sol;
        nde_solve_options o = nde_solve_options_default();
        nde_tensor *z0;
        field_init(c, &u);
        u.nan_after = 5;   /* t > 0.5 */
        if (!adaptive) { o.method = NDE_RK4; o.step_size = 0.05; }
        z0 = nde_tensor_from(c, 2, solve_shape, z0h);
        nde_set_grad_enabled(c, 0);
        CHECK(nde_solve(c, mlp_field, &u, z0, 2, ts, &o, &sol) == NDE_ERR_NONFINITE);
        CHECK_MSG(nde_ctx_message(c), "NaN or Inf");
        nde_solution_free(c, &sol);
        nde_ctx_free(c);
    }
    free(z0h);
}

/* Gradients through solves: the taped solve and every adjoint mode. */
static void test_adjoints(void) {
    static const nde_grad_mode modes[] = {NDE_GRAD_DIRECT, NDE_GRAD_CHECKPOINT, NDE_GRAD_BACKSOLVE,
                                          NDE_GRAD_INTERPOLATED, NDE_GRAD_GAUSS, NDE_GRAD_GAUSS_STEP};
    nde_real tv[3] = {NDE_R(0.0), NDE_R(0.3), NDE_R(0.8)}, *z0h = host_uniform(64, 33, -1, 1);
    int64_t nt = 3;
    int mi;
    for (mi = 0; mi < (int)(sizeof modes / sizeof modes[0]); mi++) {
        nde_real *z[2], *gp[2], *gz0[2];
        int64_t np = 0;
        int i;
        char what[96];
        for (i = 0; i < 2; i++) {
            nde_ctx *c = ctx_on(i ? gpu : NULL);
            field_user u;
            nde_solve_options so = nde_solve_options_default();
            nde_adjoint_options ao = nde_adjoint_options_default(modes[mi]);
            nde_tensor *z0, *t, *zs, *loss;
            field_init(c, &u);
            so.rtol = 1e-6; so.atol = 1e-8;
            if (modes[mi] == NDE_GRAD_CHECKPOINT) ao.checkpoints = 3;
            z0 = nde_tensor_from(c, 2, solve_shape, z0h);
            z0->requires_grad = 1;
            t = nde_tensor_from(c, 1, &nt, tv);
            zs = nde_odeint_adjoint(c, mlp_field, &u, z0, t, &so, &ao, NULL);
            loss = nde_mean(c, nde_square(c, zs));
            nde_zero_grad(c);
            nde_backward(c, loss);
            np = nde_params_count(c);
            z[i] = host_new(3 * 64); gp[i] = host_new(np); gz0[i] = host_new(64);
            if (zs) read_tensor(c, zs, z[i]);
            read_backend(c, nde_params_grad(c), np, gp[i]);
            if (z0->grad) read_backend(c, z0->grad, 64, gz0[i]);
            CHECK(nde_ctx_synchronize(c) == NDE_OK);
            if (nde_ctx_status(c) != NDE_OK) fprintf(stderr, "adjoint %s: %s\n", nde_grad_mode_name(modes[mi]), nde_ctx_message(c));
            nde_ctx_free(c);
        }
        snprintf(what, sizeof what, "adjoint %s: solution", nde_grad_mode_name(modes[mi]));
        CHECK_CLOSE(what, z[0], z[1], 3 * 64);
        snprintf(what, sizeof what, "adjoint %s: parameter gradient", nde_grad_mode_name(modes[mi]));
        CHECK_CLOSE_TOL(what, gp[0], gp[1], np, TOL * 10);
        snprintf(what, sizeof what, "adjoint %s: z0 gradient", nde_grad_mode_name(modes[mi]));
        CHECK_CLOSE_TOL(what, gz0[0], gz0[1], 64, TOL * 10);
        for (i = 0; i < 2; i++) { free(z[i]); free(gp[i]); free(gz0[i]); }
    }
    free(z0h);
}

/* A fixed-step rk4 solve as ONE CUDA graph: nde_rk_step over the grid, captured
   once, replayed for new initial states; against nde_solve on the CPU. */
static void test_graph_solve(void) {
    const int steps = 20;
    const double h = 0.05;
    nde_ctx *c1 = ctx_on(NULL), *c2 = ctx_on(gpu);
    field_user u1, u2;
    nde_tensor *z;
    nde_cuda_graph *graph = NULL;
    nde_mark m;
    int64_t launches0, launches1;
    int pass, i;
    field_init(c1, &u1); field_init(c2, &u2);
    nde_set_grad_enabled(c1, 0); nde_set_grad_enabled(c2, 0);
    z = nde_tensor_zeros(c2, 2, solve_shape);   /* the state, made before the mark */
    m = nde_ctx_mark(c2);
    for (pass = 0; pass < 2; pass++) {          /* 0: warm-up, 1: capture */
        if (pass == 1) CHECK(nde_cuda_graph_begin(gpu) == NDE_OK);
        for (i = 0; i < steps; i++) {
            nde_tensor *z1 = NULL;
            nde_rk_step(c2, nde_tableau_get(NDE_RK4), mlp_field_plain, &u2, i * h, z, h, NULL, &z1, NULL, NULL);
            nde_tensor_copy_into(c2, z, z1);
            nde_ctx_reset(c2, m);
        }
        if (pass == 1) CHECK(nde_cuda_graph_end(gpu, &graph) == NDE_OK && graph != NULL);
    }
    if (!graph) {
        const char *msg = "";
        nde_cuda_error(gpu, &msg);
        fprintf(stderr, "solve capture failed: %s | %s\n", msg, nde_ctx_message(c2));
        nde_cuda_clear_error(gpu); nde_ctx_clear_error(c2);
    }
    for (pass = 0; graph && pass < 3; pass++) {
        nde_real *z0h = host_uniform(64, 200 + (uint64_t)pass, -1, 1), *a = host_new(64), *b = host_new(64);
        double ts[2] = {0.0, steps * h};
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        nde_mark mc = nde_ctx_mark(c1);
        o.method = NDE_RK4; o.step_size = h;
        CHECK(nde_solve(c1, mlp_field, &u1, nde_tensor_from(c1, 2, solve_shape, z0h), 2, ts, &o, &sol) == NDE_OK);
        read_tensor(c1, sol.ys[1], a);
        nde_solution_free(c1, &sol);
        nde_ctx_reset(c1, mc);
        nde_tensor_set_host(c2, z, z0h);
        nde_cuda_counters(gpu, &launches0, NULL);
        CHECK(nde_cuda_graph_launch(graph) == NDE_OK);
        nde_cuda_counters(gpu, &launches1, NULL);
        CHECK(launches1 - launches0 == 1);       /* the whole solve is one launch */
        nde_tensor_to_host(c2, z, b);
        CHECK_CLOSE("rk4 solve replayed from a CUDA graph", a, b, 64);
        free(z0h); free(a); free(b);
    }
    nde_cuda_graph_free(graph);
    CHECK(nde_ctx_synchronize(c2) == NDE_OK);
    nde_ctx_free(c1); nde_ctx_free(c2);
}

/* ================================================================ errors and options */
static void test_errors(void) {
    const nde_backend *be = NULL;
    char why[512];
    const char *msg = "";
    nde_cuda_options o = nde_cuda_options_default();
    nde_real dummy = 0;
    /* bad device index, precision mismatch */
    o.device = 1000;
    CHECK(nde_cuda_backend_create_opts(&o, &be, why, sizeof why) == NDE_ERR_ARG && be == NULL);
    CHECK_MSG(why, "device 1000 does not exist");
    o = nde_cuda_options_default();
    o.real_size = (int)sizeof(nde_real) == 4 ? 8 : 4;
    CHECK(nde_cuda_backend_create_opts(&o, &be, why, sizeof why) == NDE_ERR_CONFIG && be == NULL);
    CHECK_MSG(why, "NDE_DOUBLE");
    nde_cuda_backend_destroy(cpu);        /* not a CUDA table: ignored */
    nde_cuda_backend_destroy(NULL);
    /* a recorded failure surfaces at synchronize, then in a context at the next read */
    gpu->gemm(gpu->self, 0, 0, (int64_t)1 << 32, 1, 1, NDE_R(1.0), &dummy, 1, &dummy, 1, NDE_R(0.0), &dummy, 1);
    CHECK(gpu->synchronize(gpu->self) == NDE_ERR_BACKEND);
    CHECK(nde_cuda_error(gpu, &msg) == NDE_ERR_BACKEND);
    CHECK_MSG(msg, "below 2^31");
    {
        int64_t two = 2;
        nde_mark m = nde_ctx_mark(gc);
        nde_tensor *t = nde_tensor_zeros(gc, 1, &two);   /* launches nothing after a failure */
        CHECK(t != NULL);
        CHECK(isnan((double)nde_tensor_item(gc, t, 1)));
        CHECK(nde_ctx_status(gc) == NDE_ERR_BACKEND);
        CHECK_MSG(nde_ctx_message(gc), "nde_tensor_item: backend 'cuda' failed");
        CHECK_MSG(nde_ctx_message(gc), "2^31");
        nde_ctx_clear_error(gc);
        nde_cuda_clear_error(gpu);
        CHECK(nde_ctx_synchronize(gc) == NDE_OK);
        nde_ctx_reset(gc, m);
    }
    /* out of device memory: a clear NDE_ERR_OOM, the backend stays usable */
    {
        int64_t huge[2] = {(int64_t)1 << 24, (int64_t)1 << 24};   /* 2^48 reals */
        int64_t two = 2;
        nde_mark m = nde_ctx_mark(gc);
        CHECK(nde_tensor_new(gc, 2, huge) == NULL);
        CHECK(nde_ctx_status(gc) == NDE_ERR_OOM);
        CHECK_MSG(nde_ctx_message(gc), "out of memory");
        CHECK(nde_cuda_error(gpu, NULL) == NDE_OK);
        nde_ctx_clear_error(gc);
        CHECK(nde_tensor_item(gc, nde_tensor_full(gc, 1, &two, NDE_R(1.5)), 1) == NDE_R(1.5));
        CHECK(nde_ctx_status(gc) == NDE_OK);
        nde_ctx_reset(gc, m);
    }
    CHECK(gpu->alloc(gpu->self, (size_t)1 << 50) == NULL && nde_cuda_error(gpu, NULL) == NDE_OK);
}

/* A second backend on the first one's stream, with TF32 allowed and debug syncs. */
static void test_second_backend(void) {
    nde_cuda_options o = nde_cuda_options_default();
    const nde_backend *be2 = NULL;
    char why[256], desc[256];
    o.stream = nde_cuda_stream(gpu);
    o.allow_tf32 = 1;
    o.debug_sync = 1;
    CHECK(nde_cuda_backend_create_opts(&o, &be2, why, sizeof why) == NDE_OK);
    if (!be2) { fprintf(stderr, "second backend: %s\n", why); return; }
    CHECK(nde_cuda_stream(be2) == nde_cuda_stream(gpu));
    nde_cuda_describe(be2, desc, sizeof desc);
    CHECK(strstr(desc, "TF32 on") != NULL);
    {
        nde_ctx *c = ctx_on(be2);
        int64_t sa[2] = {40, 50}, sb[2] = {50, 30};
        nde_real *ah = host_uniform(2000, 1, -1, 1), *bh = host_uniform(1500, 2, -1, 1);
        nde_real *r1 = host_new(1200), *r2 = host_new(1200);
        nde_mark m = nde_ctx_mark(cc);
        nde_tensor_to_host(c, nde_matmul(c, nde_tensor_from(c, 2, sa, ah), nde_tensor_from(c, 2, sb, bh), 0, 0), r2);
        nde_tensor_to_host(cc, nde_matmul(cc, nde_tensor_from(cc, 2, sa, ah), nde_tensor_from(cc, 2, sb, bh), 0, 0), r1);
        /* TF32 keeps 10 mantissa bits of each product's operands */
        CHECK_CLOSE_TOL("matmul with TF32 allowed", r1, r2, 1200, sizeof(nde_real) == 4 ? 2e-2 : TOL);
        CHECK(nde_ctx_synchronize(c) == NDE_OK);
        CHECK(nde_cuda_set_tf32(be2, 0) == NDE_OK);
        nde_tensor_to_host(c, nde_matmul(c, nde_tensor_from(c, 2, sa, ah), nde_tensor_from(c, 2, sb, bh), 0, 0), r2);
        CHECK_CLOSE("matmul with TF32 switched off", r1, r2, 1200);
        nde_ctx_reset(cc, m);
        free(ah); free(bh); free(r1); free(r2);
        nde_ctx_free(c);
    }
    nde_cuda_backend_destroy(be2);
    backend_ok("second backend");   /* the shared stream survives the second backend */
}

int main(void) {
    char why[512], desc[256];
    int count = nde_cuda_device_count(why, sizeof why);
    if (count == 0) {
        printf("SKIP: %s\n", why);
        printf("%s: 1 skipped\n", TEST_NAME);
        printf("%s: 0 passed, 0 failed\n", TEST_NAME);
        return 0;
    }
    if (nde_cuda_backend_create(0, &gpu, why, sizeof why) != NDE_OK) {
        fprintf(stderr, "FAIL: %d device(s) but nde_cuda_backend_create failed: %s\n", count, why);
        nde_test_failed++;
        return nde_test_finish(TEST_NAME);
    }
    cpu = nde_cpu_backend();
    nde_cuda_describe(gpu, desc, sizeof desc);
    emulated = strstr(desc, "emulator") != NULL && !getenv("NDE_TEST_FULL");
    printf("%s: on %s\n", TEST_NAME, desc);
    cc = ctx_on(NULL);
    gc = ctx_on(gpu);
    test_be_table_complete();
    test_be_fill_copy();
    test_be_gemm();
    test_be_unary();
    test_be_binary();
    test_be_reduce();
    test_be_lincomb();
    test_be_copy2d_transpose();
    test_be_rows();
    test_be_conv();
    test_be_conv_batch();
    test_be_group_norm();
    test_be_pool();
    test_be_softmax();
    test_be_philox();
    test_be_scalars();
    test_be_optimizers();
    test_ops();
    test_rng_api();
    test_training();
    test_frozen_param();
    test_graph();
    test_jets();
    test_solves();
    test_solve_nonfinite();
    test_adjoints();
    test_graph_solve();
    test_errors();
    test_second_backend();
    CHECK(nde_ctx_status(cc) == NDE_OK && nde_ctx_status(gc) == NDE_OK);
    nde_ctx_free(cc);
    nde_ctx_free(gc);
    nde_cuda_backend_destroy(gpu);
    return nde_test_finish(TEST_NAME);
}
