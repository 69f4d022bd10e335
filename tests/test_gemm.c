/* tests/test_gemm.c - the CPU backend's gemm (C = alpha op(A) op(B) + beta C)
   against a naive double-precision reference: every path (packed, rows, dot,
   mirrored), edge sizes, all four transposes, padded leading dimensions,
   alpha/beta cases, beta = 0 over NaN, untouched padding, bitwise equality
   across thread counts; and nde_matmul's forward and backward through it. */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "nde_test.h"
#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ull;
static double rnd(void) {   /* xorshift64, uniform in [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 4503599627370496.0 - 1.0;
}

#define PAD_VALUE NDE_R(12345.0)
#ifdef NDE_DOUBLE
#define EPS 2.220446049250313e-16
#else
#define EPS 1.1920929e-07
#endif

typedef struct gemm_case {
    int ta, tb; int64_t m, n, k, lda, ldb, ldc;
    nde_real alpha, beta;
    nde_real *a, *b, *c0, *c;
} gemm_case;

/* Allocates and fills the operands; C (and its padding) with PAD_VALUE, or
   with NaN inside the m x n block when beta is 0. */
static void case_init(gemm_case *g, int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t pad,
                      nde_real alpha, nde_real beta) {
    int64_t arows = ta ? k : m, brows = tb ? n : k, i, j;
    g->ta = ta; g->tb = tb; g->m = m; g->n = n; g->k = k;
    g->lda = (ta ? m : k) + pad; g->ldb = (tb ? k : n) + pad; g->ldc = n + pad;
    g->alpha = alpha; g->beta = beta;
    g->a = (nde_real *)malloc(sizeof(nde_real) * (size_t)(arows * g->lda + 1));
    g->b = (nde_real *)malloc(sizeof(nde_real) * (size_t)(brows * g->ldb + 1));
    g->c0 = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * g->ldc + 1));
    g->c = (nde_real *)malloc(sizeof(nde_real) * (size_t)(m * g->ldc + 1));
    for (i = 0; i < arows * g->lda; i++) g->a[i] = (nde_real)rnd();
    for (i = 0; i < brows * g->ldb; i++) g->b[i] = (nde_real)rnd();
    for (i = 0; i < m; i++)
        for (j = 0; j < g->ldc; j++)
            g->c0[i * g->ldc + j] = j >= n ? PAD_VALUE : beta == NDE_R(0.0) ? (nde_real)NAN : (nde_real)rnd();
    memcpy(g->c, g->c0, sizeof(nde_real) * (size_t)(m * g->ldc));
}
static void case_free(gemm_case *g) { free(g->a); free(g->b); free(g->c0); free(g->c); }

static void case_run(gemm_case *g) {
    const nde_backend *be = nde_cpu_backend();
    be->gemm(be->self, g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta, g->c, g->ldc);
}

/* Largest error relative to the rounding bound (k + 2) eps (|alpha| sum |a b|
   + |beta c0|) + tiny; above 1 is a failure. Padding must be untouched. */
static double case_check(const gemm_case *g, int *pad_ok) {
    double worst = 0.0;
    int64_t i, j, p;
    *pad_ok = 1;
    for (i = 0; i < g->m; i++) {
        for (j = 0; j < g->ldc; j++) {
            double ref = 0.0, mag = 0.0, got = (double)g->c[i * g->ldc + j], c0 = (double)g->c0[i * g->ldc + j], err;
            if (j >= g->n) { if (g->c[i * g->ldc + j] != PAD_VALUE) *pad_ok = 0; continue; }
            for (p = 0; p < g->k; p++) {
                double aip = g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
                double bpj = g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
                ref += aip * bpj; mag += fabs(aip * bpj);
            }
            ref *= (double)g->alpha; mag *= fabs((double)g->alpha);
            if (g->beta != NDE_R(0.0)) { ref += (double)g->beta * c0; mag += fabs((double)g->beta * c0); }
            err = fabs(got - ref) / ((double)(g->k + 2) * EPS * mag + 1e-30);
            if (!(err <= worst)) worst = err;   /* NaN propagates */
        }
    }
    return worst;
}

static int check_shape(int64_t m, int64_t n, int64_t k, int64_t pad, nde_real alpha, nde_real beta) {
    int t, bad = 0;
    for (t = 0; t < 4; t++) {
        gemm_case g; int pad_ok; double e;
        case_init(&g, t & 1, t >> 1, m, n, k, pad, alpha, beta);
        case_run(&g);
        e = case_check(&g, &pad_ok);
        if (!(e <= 1.0) || !pad_ok) {
            fprintf(stderr, "gemm ta=%d tb=%d m=%lld n=%lld k=%lld pad=%lld alpha=%g beta=%g: error/bound %.3g pad %s\n",
                    g.ta, g.tb, (long long)m, (long long)n, (long long)k, (long long)pad, (double)alpha, (double)beta,
                    e, pad_ok ? "ok" : "OVERWRITTEN");
            bad = 1;
        }
        case_free(&g);
    }
    return bad;
}

/* Every path and edge: zero, one, primes, around the tile sizes, the tiny
   thresholds (4 rows/columns, 8 terms), several k and n blocks. */
static void test_shapes(void) {
    static const int64_t shapes[][3] = {
        {0, 5, 3}, {5, 0, 3}, {5, 3, 0}, {0, 0, 0}, {1, 1, 1}, {1, 1, 7}, {1, 7, 1}, {7, 1, 1},
        {2, 2, 2}, {3, 5, 7}, {4, 4, 4}, {5, 5, 5}, {4, 5, 9}, {5, 4, 9}, {5, 5, 8}, {5, 5, 9},
        {13, 17, 1}, {17, 13, 2}, {20, 50, 2}, {20, 2, 50}, {50, 2, 20}, {2, 50, 20},
        {31, 37, 41}, {12, 32, 16}, {11, 33, 17}, {13, 31, 19}, {25, 65, 3}, {64, 64, 64},
        {97, 101, 103}, {3, 257, 131}, {257, 3, 131}, {1, 300, 600}, {300, 1, 600}, {131, 67, 1030},
        {61, 259, 263}, {100, 130, 520}, {37, 1100, 9}, {1100, 7, 37}, {21, 3, 2100}
    };
    static const nde_real ab[][2] = { {1, 0}, {NDE_R(-0.75), NDE_R(1.5)}, {1, 1} };
    int s, c, bad = 0;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (c = 0; c < 3; c++)
            bad |= check_shape(shapes[s][0], shapes[s][1], shapes[s][2], s % 3 == 0 ? 0 : 3 + s % 5, ab[c][0], ab[c][1]);
    CHECK(!bad);
}

/* alpha = 0 only scales C (beta 0 clears NaN); k = 0 likewise. */
static void test_alpha_zero(void) {
    gemm_case g; int pad_ok;
    case_init(&g, 0, 0, 9, 11, 13, 2, NDE_R(0.0), NDE_R(0.0));
    case_run(&g);
    CHECK(case_check(&g, &pad_ok) <= 1.0 && pad_ok);
    CHECK(g.c[0] == NDE_R(0.0) && g.c[8 * g.ldc + 10] == NDE_R(0.0));
    case_free(&g);
    case_init(&g, 1, 1, 9, 11, 0, 2, NDE_R(2.0), NDE_R(-3.0));
    case_run(&g);
    CHECK(case_check(&g, &pad_ok) <= 1.0 && pad_ok);
    CHECK(g.c[5 * g.ldc + 3] == NDE_R(-3.0) * g.c0[5 * g.ldc + 3]);
    case_free(&g);
}

/* A NaN in A reaches exactly the row of C it belongs to. */
static void test_nan_propagates(void) {
    gemm_case g; int64_t j, row_nan = 1, other_finite = 1;
    case_init(&g, 0, 0, 40, 70, 30, 0, NDE_R(1.0), NDE_R(0.0));
    g.a[7 * g.lda + 5] = (nde_real)NAN;
    case_run(&g);
    for (j = 0; j < g.n; j++) {
        row_nan &= g.c[7 * g.ldc + j] != g.c[7 * g.ldc + j];
        other_finite &= g.c[6 * g.ldc + j] == g.c[6 * g.ldc + j] && g.c[8 * g.ldc + j] == g.c[8 * g.ldc + j];
    }
    CHECK(row_nan && other_finite);
    case_free(&g);
}

/* Large enough to open an OpenMP region on every path: the bits of C must
   not depend on the number of threads. */
static void test_thread_determinism(void) {
#ifdef _OPENMP
    static const int64_t shapes[][3] = {
        {200, 300, 130}, {256, 2000, 2}, {256, 3, 2000}, {2, 2000, 300}, {1500, 2, 600}, {97, 1000, 300}
    };
    int s, t, same = 1;
    int prev = omp_get_max_threads();
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        for (t = 0; t < 4; t++) {
            gemm_case g1, g2;
            case_init(&g1, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1, NDE_R(0.5), NDE_R(0.25));
            case_init(&g2, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1, NDE_R(0.5), NDE_R(0.25));
            memcpy(g2.a, g1.a, sizeof(nde_real) * (size_t)((t & 1 ? g1.k : g1.m) * g1.lda));
            memcpy(g2.b, g1.b, sizeof(nde_real) * (size_t)((t >> 1 ? g1.n : g1.k) * g1.ldb));
            memcpy(g2.c, g1.c, sizeof(nde_real) * (size_t)(g1.m * g1.ldc));
            omp_set_num_threads(1); case_run(&g1);
            omp_set_num_threads(2); case_run(&g2);
            if (memcmp(g1.c, g2.c, sizeof(nde_real) * (size_t)(g1.m * g1.ldc)) != 0) {
                fprintf(stderr, "gemm %lldx%lldx%lld ta=%d tb=%d: 1 and 2 threads differ\n", (long long)shapes[s][0],
                        (long long)shapes[s][1], (long long)shapes[s][2], t & 1, t >> 1);
                same = 0;
            }
            case_free(&g1); case_free(&g2);
        }
    }
    omp_set_num_threads(prev);
    CHECK(same);
#else
    SKIP("built without OpenMP");
#endif
}

/* nde_matmul forward and both gradients through the kernel, for each
   transpose, against the reference: L = sum(W * op(A) op(B)). */
static void test_matmul_op(void) {
    static const int64_t dims[][3] = { {37, 41, 29}, {3, 50, 20}, {50, 2, 20}, {64, 70, 5} };
    int d, t;
    for (d = 0; d < 4; d++) {
        for (t = 0; t < 4; t++) {
            nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
            int ta = t & 1, tb = t >> 1;
            int64_t m = dims[d][0], n = dims[d][1], k = dims[d][2], i, j, p;
            int64_t sa[2], sb[2], sw[2];
            nde_tensor *a, *b, *w, *y, *l;
            double worst = 0.0;
            sa[0] = ta ? k : m; sa[1] = ta ? m : k; sb[0] = tb ? n : k; sb[1] = tb ? k : n; sw[0] = m; sw[1] = n;
            a = nde_tensor_randn(ctx, 2, sa, 1, (uint64_t)t);
            b = nde_tensor_randn(ctx, 2, sb, 2, (uint64_t)t);
            w = nde_tensor_randn(ctx, 2, sw, 3, (uint64_t)t);
            a->requires_grad = b->requires_grad = 1;
            y = nde_matmul(ctx, a, b, ta, tb);
            l = nde_sum(ctx, nde_mul(ctx, y, w));
            CHECK(nde_backward(ctx, l) == NDE_OK);
            if (nde_ctx_status(ctx) != NDE_OK) { fprintf(stderr, "%s\n", nde_ctx_message(ctx)); nde_ctx_free(ctx); continue; }
            for (i = 0; i < m; i++) {
                for (p = 0; p < k; p++) {
                    /* dL/dop(A)(i,p) = sum_j W(i,j) op(B)(p,j) */
                    double ga = 0.0, got = ta ? a->grad[p * m + i] : a->grad[i * k + p];
                    for (j = 0; j < n; j++) ga += (double)w->data[i * n + j] * (tb ? b->data[j * k + p] : b->data[p * n + j]);
                    if (fabs(got - ga) > worst) worst = fabs(got - ga);
                }
                for (j = 0; j < n; j++) {
                    double yy = 0.0;
                    for (p = 0; p < k; p++) yy += (double)(ta ? a->data[p * m + i] : a->data[i * k + p]) * (tb ? b->data[j * k + p] : b->data[p * n + j]);
                    if (fabs((double)y->data[i * n + j] - yy) > worst) worst = fabs((double)y->data[i * n + j] - yy);
                }
            }
            for (p = 0; p < k; p++)
                for (j = 0; j < n; j++) {
                    /* dL/dop(B)(p,j) = sum_i op(A)(i,p) W(i,j) */
                    double gb = 0.0, got = tb ? b->grad[j * k + p] : b->grad[p * n + j];
                    for (i = 0; i < m; i++) gb += (double)(ta ? a->data[p * m + i] : a->data[i * k + p]) * w->data[i * n + j];
                    if (fabs(got - gb) > worst) worst = fabs(got - gb);
                }
            CHECK_NEAR(worst, 0.0, 200.0 * EPS * (double)(k > m ? (k > n ? k : n) : (m > n ? m : n)), 0.0);
            nde_ctx_free(ctx);
        }
    }
}

int main(void) {
    printf("test_gemm: %s, %d-lane vectors, %dx%d micro-tile\n", sizeof(nde_real) == 8 ? "double" : "float",
           NDE__VLEN, NDE__GEMM_MR, NDE__GEMM_NR);
    test_shapes();
    test_alpha_zero();
    test_nan_propagates();
    test_thread_determinism();
    test_matmul_op();
    return nde_test_finish("test_gemm");
}
