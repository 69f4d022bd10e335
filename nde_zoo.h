/* nde_zoo.h - v0.1.0 - the torchdyn model zoo for nde: augmentation, depth and
   data control, higher-order ODEs, Galerkin (depth-varying) layers, Hamiltonian
   and Lagrangian networks, continuous normalizing flows, ODE-RNN / latent ODE
   pieces with per-sample time spans, graph neural ODEs, hypersolvers and
   multiple shooting (Parareal).
   License: MIT (see the end of nde.h).

USAGE
   Include instead of nde_adjoint.h (it includes nde_adjoint.h, nde_solvers.h
   and nde.h). In exactly ONE C file:

       #define NDE_IMPLEMENTATION      (all of nde; or NDE_ZOO_IMPLEMENTATION for
       #include "nde_zoo.h"            this header alone next to the others)

   Neural SDEs (Brownian tree, Euler-Maruyama, Milstein, Euler-Heun, reversible
   Heun, SRA1, the reversible adjoint) and the symplectic integrators
   (leapfrog, symplectic Euler) live in nde_solvers.h (its SDE and SYMPLECTIC
   blocks); the sparse CSR matmul op in nde.h. This header holds the models.

QUICK START (this program runs in tests/test_zoo.c as quickstart_zoo)

       #define NDE_IMPLEMENTATION
       #include "nde_zoo.h"
       // a Hamiltonian network: H = MLP(q, p), field J grad H by exact jets
       static nde_jet *energy(nde_ctx *ctx, nde_jet *x, void *user) {
           return nde_jet_mlp_forward(ctx, (nde_mlp *)user, x);
       }
       int main(void) {
           nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
           nde_mlp net;
           int64_t widths[3] = {2, 32, 1}, zs[2] = {16, 2};
           nde_mlp_init(ctx, &net, "H", 3, widths, NDE_ACT_TANH, 1);
           nde_hnn hnn = {energy, &net, 1};                 // q and p of dimension 1
           nde_optimizer opt = nde_adam(1e-2);
           for (int it = 0; it < 50; it++) {              // fit the oscillator field (p, -q)
               nde_mark m = nde_ctx_mark(ctx);
               nde_tensor *z = nde_tensor_randn(ctx, 2, zs, 7, it);
               nde_tensor *pq[2] = {nde_slice(ctx, z, 1, 1, 2), nde_neg(ctx, nde_slice(ctx, z, 1, 0, 1))};
               nde_tensor *target = nde_concat(ctx, 2, pq, 1);
               nde_tensor *loss = nde_mse_loss(ctx, nde_hnn_field(ctx, NULL, z, &hnn), target);
               nde_zero_grad(ctx);
               nde_backward(ctx, loss);                    // reverse mode through the jets
               nde_optimizer_step(ctx, &opt);
               nde_ctx_reset(ctx, m);
           }
           int bad = nde_ctx_status(ctx) != NDE_OK;
           nde_ctx_free(ctx);
           return bad;
       }

CONVENTIONS
   States are (batch, features) unless said otherwise; "row-wise" functions
   treat the rows (samples) independently, as an MLP does: the jet-based
   models (HNN, LNN, CNF traces) evaluate the user's function on the batch
   replicated once per derivative direction, which is only correct for row-wise
   functions. Every model is built from taped ops (jets included), so
   nde_backward trains it, and it plugs into nde_solve / nde_odeint /
   nde_odeint_adjoint as an ordinary nde_field_fn.

1. AUGMENTATION, DEPTH, DATA CONTROL, HIGHER ORDER (torchdyn Augmenter, DepthCat,
   DataControl, order > 1)
   nde_augment_zeros(x, dims)       [x, 0] along axis 1 (ANODE: Dupont, Doucet,
                                    Teh 2019); for NCHW that is extra channels
   nde_augmenter                    learned input-layer augmentation [x, Linear(x)]
   nde_depth_cat(t, z)              [z, t] (t as one more column)
   nde_data_control(z, x0)          [z, x0] (the field sees the input)
   nde_higher_order_field           z = [x, x', ..., x^(n-1)] (blocks of `dim`
                                    columns) -> [x', ..., x^(n-1), a(t, z)]: an
                                    order-n neural ODE (order 2: Norcliffe et al. 2020)

2. GALERKIN NEURAL ODEs (Massaroli et al., "Dissecting Neural ODEs", NeurIPS 2020)
   Depth-varying weights theta(t) = sum_k phi_k(t) theta_k, a truncated
   expansion with learned coefficients theta_k, computed as phi(t) @ C (taped in
   t too). Bases (nde_galerkin_basis: kind, n terms):
     FOURIER     1, cos(2 pi t/L), sin(2 pi t/L), cos(4 pi t/L), sin(4 pi t/L), ...
     POLYNOMIAL  1, t, t^2, ..., t^(n-1)
     CHEBYSHEV   T_0(s), ..., T_{n-1}(s), s = 2 (t - lo)/(hi - lo) - 1, by the recurrence
     RBF         exp(-gamma (t - c_k)^2), centres c_k evenly on [lo, hi]
   nde_gal_linear: W(t) (out, in), b(t) (out); nde_gal_conv2d: W(t) (O, C, K, K),
   b(t) (O). Initialised like nde_linear / nde_conv2d_layer, scaled by
   1/sqrt(n) so that theta(t) starts at the same scale.

3. ENERGY MODELS
   nde_energy_grad(energy, x)   grad E(x) for a row-wise scalar E (batch, 1), exact:
                                one order-1 jet over the batch replicated once per
                                input direction e_i (forward mode; the jets are taped,
                                so training differentiates through the gradient:
                                reverse over forward).
   HNN (Greydanus, Dzamba, Yosinski 2019): z = [q, p] (d each), field
       J grad H = [dH/dp, -dH/dq]. With a separable H = T(p) + V(q) the field is
       separable and nde_symplectic_solve (leapfrog) conserves the learned H to
       O(h^2) over long times.
   LNN (Cranmer et al. 2020): z = [q, v] (d each), field [v, a] with
       a = M^-1 (grad_q L - C v),  M = d2L/dv dv,  (C v)_i = sum_j d2L/dv_i dq_j v_j,
       from ONE order-2 jet over the batch replicated 4d + d(d-1)/2 times:
       c2 of the line x + s u is u^T (Hess L) u / 2, so
         M_ii    = 2 c2(e_vi),
         M_ij    = c2(e_vi + e_vj) - c2(e_vi) - c2(e_vj)          (polarization),
         (C v)_i = (c2(e_vi + w) - c2(e_vi - w)) / 2,  w = [v, 0],
         grad_q L = c1(e_qj).
       M is solved per sample by Gaussian elimination without pivoting
       (nde_batched_solve; M must be nonsingular: positive definite for a
       physical Lagrangian). Meant for small d (the cost grows as d^2).

4. CONTINUOUS NORMALIZING FLOWS (Chen et al. 2018; FFJORD, Grathwohl et al. 2019)
   State [z, D] (batch, d + 1); dz/dt = f(t, z), dD/dt = -tr(df/dz), so
       log p_x(x) = log p_base(z(t1)) - D(t1)   for x = z(t0), D(t0) = 0.
   f is written on jets (nde_jet_field). trace NDE_TRACE_EXACT: d JVPs (one jet
   over the batch replicated d times); NDE_TRACE_HUTCHINSON: eps^T J eps with
   one JVP, eps (Rademacher or Gaussian) drawn ONCE per solve by
   nde_cnf_draw_noise (call it before each solve: the same eps at every
   step, so the ODE stays deterministic). nde_normal_logpdf: the standard
   normal base density.

5. LATENT ODE / ODE-RNN (Rubanova, Chen, Duvenaud 2019)
   Per-sample time spans in one batch: nde_per_sample_field integrates each
   sample i over its own [t0_i, t1_i] by the change of variables
   t = t0_i + s (t1_i - t0_i), s in [0, 1]: dz/ds = (t1_i - t0_i) f(t, z). The
   user field then receives t as a (batch, 1) tensor (write time dependence
   with broadcasting ops). nde_odeint_per_sample is the one-call form; the
   wrapper also plugs into nde_odeint_adjoint. A span may be empty or reversed.
   nde_gru: PyTorch's GRUCell. nde_odernn_forward: h' = ODESolve(h) from the
   previous observation time to the next (per sample), then h = GRU(x_k, h')
   where mask is 1 (kept h' where 0). nde_reparameterize and nde_kl_normal:
   the latent ODE's sampling and KL term.

6. GRAPH NEURAL ODEs (Poli et al., "Graph Neural Ordinary Differential
   Equations", 2019)
   nde_gcn_adjacency: A_hat = D^-1/2 (A + I) D^-1/2 (Kipf & Welling 2017) of an
   undirected edge list, as an nde_csr and its values. nde_gcn_forward:
   A_hat (h W^T) + b. nde_gde_field: f(t, h) = GCN2(act(GCN1(h))), the state
   being node features (nodes, features).

7. HYPERSOLVERS (Poli et al., "Hypersolvers", NeurIPS 2020)
   z1 = base step + h^(p+1) g(t, z, f(t, z)), base euler / midpoint / rk4 (order
   p), g a learned correction. nde_hypersolver_residual_loss is the training
   target of the paper: mean || (z_ref(t + h) - base step) / h^(p+1) - g ||^2.

8. MULTIPLE SHOOTING: PARAREAL (Lions, Maday, Turinici 2001; torchdyn's
   MultipleShootingLayer, Massaroli et al. 2021)
   The output intervals [ts[i], ts[i+1]] are the shooting intervals. U_0 = z0,
   the initial guess from the coarse propagator G, then
       U_{i+1}^{k+1} = G(U_i^{k+1}) + F(U_i^k) - G(U_i^k)
   with the fine propagator F. After k iterations the first k values equal the
   sequential fine solve exactly, so num_ts - 1 iterations reproduce it; the
   iteration stops earlier when max |U^{k+1} - U^k| <= tol. All taped:
   backpropagation through the iterations.

ERRORS
   Bad shapes or arguments record NDE_ERR_SHAPE / NDE_ERR_ARG with a message
   naming the function; tensor functions then return NULL.
*/
#ifndef NDE_ZOO_H
#define NDE_ZOO_H

#include "nde_adjoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- 1. augmentation */
NDE_API nde_tensor *nde_augment_zeros(nde_ctx *ctx, nde_tensor *x, int64_t dims);
typedef struct nde_augmenter { nde_linear layer; int64_t in, dims; } nde_augmenter;
NDE_API nde_status nde_augmenter_init(nde_ctx *ctx, nde_augmenter *a, const char *name, int64_t in, int64_t dims, uint64_t seed);
NDE_API nde_tensor *nde_augmenter_forward(nde_ctx *ctx, const nde_augmenter *a, nde_tensor *x);   /* [x, Linear(x)] */
NDE_API nde_tensor *nde_depth_cat(nde_ctx *ctx, nde_tensor *t, nde_tensor *z);      /* [z, t]; t: 1 element or (batch, 1) */
NDE_API nde_tensor *nde_data_control(nde_ctx *ctx, nde_tensor *z, nde_tensor *x0);  /* [z, x0] */
typedef struct nde_higher_order {
    int order;                 /* n >= 1                                         */
    int64_t dim;               /* columns of x                                   */
    nde_field_fn highest;      /* a(t, z) = x^(n), (batch, dim), z = all blocks    */
    void *user;
} nde_higher_order;
/* An nde_field_fn; user = nde_higher_order *. */
NDE_API nde_tensor *nde_higher_order_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *ho);

/* ---------------------------------------------------------------- 2. Galerkin */
typedef enum nde_basis_kind { NDE_BASIS_FOURIER = 0, NDE_BASIS_POLYNOMIAL, NDE_BASIS_CHEBYSHEV, NDE_BASIS_RBF } nde_basis_kind;
typedef struct nde_galerkin_basis {
    nde_basis_kind kind;
    int n;                     /* terms                                          */
    double period;             /* FOURIER: L (default 1)                         */
    double lo, hi;             /* CHEBYSHEV, RBF: the depth domain (default 0, 1) */
    double gamma;              /* RBF width (default (n / (hi - lo))^2)          */
} nde_galerkin_basis;
NDE_API nde_galerkin_basis nde_galerkin_basis_make(nde_basis_kind kind, int n);
/* phi(t), shape (1, n); t has one element (taped). */
NDE_API nde_tensor *nde_galerkin_basis_eval(nde_ctx *ctx, const nde_galerkin_basis *b, nde_tensor *t);
typedef struct nde_gal_linear {
    nde_galerkin_basis basis; int64_t in, out;
    nde_tensor *coeff_w;       /* (n, out * in)                                  */
    nde_tensor *coeff_b;       /* (n, out)                                       */
} nde_gal_linear;
NDE_API nde_status nde_gal_linear_init(nde_ctx *ctx, nde_gal_linear *l, const char *name, int64_t in, int64_t out,
                                       nde_galerkin_basis basis, uint64_t seed);
NDE_API nde_tensor *nde_gal_linear_weight(nde_ctx *ctx, const nde_gal_linear *l, nde_tensor *t, nde_tensor **bias);
NDE_API nde_tensor *nde_gal_linear_forward(nde_ctx *ctx, const nde_gal_linear *l, nde_tensor *t, nde_tensor *x);
typedef struct nde_gal_conv2d {
    nde_galerkin_basis basis; int64_t in, out; int kernel, stride, padding;
    nde_tensor *coeff_w;       /* (n, out * in * kernel * kernel)                */
    nde_tensor *coeff_b;       /* (n, out)                                       */
} nde_gal_conv2d;
NDE_API nde_status nde_gal_conv2d_init(nde_ctx *ctx, nde_gal_conv2d *l, const char *name, int64_t in, int64_t out,
                                       int kernel, int stride, int padding, nde_galerkin_basis basis, uint64_t seed);
NDE_API nde_tensor *nde_gal_conv2d_weight(nde_ctx *ctx, const nde_gal_conv2d *l, nde_tensor *t, nde_tensor **bias);
NDE_API nde_tensor *nde_gal_conv2d_forward(nde_ctx *ctx, const nde_gal_conv2d *l, nde_tensor *t, nde_tensor *x);

/* ---------------------------------------------------------------- 3. energy models */
/* An nde_jet_fn evaluating nde_jet_mlp_forward(ctx, (nde_mlp *)user, x). */
NDE_API nde_jet *nde_jet_mlp_fn(nde_ctx *ctx, nde_jet *x, void *mlp);
/* grad E (batch, n) of a row-wise scalar E: (batch, n) -> (batch, 1); value
   (optional) receives E(x) (batch, 1). */
NDE_API nde_tensor *nde_energy_grad(nde_ctx *ctx, nde_jet_fn energy, void *user, nde_tensor *x, nde_tensor **value);
typedef struct nde_hnn {
    nde_jet_fn energy;         /* H(x): (batch, 2 dim) -> (batch, 1), row-wise    */
    void *user;
    int64_t dim;               /* d: x = [q (d), p (d)]                           */
} nde_hnn;
NDE_API nde_tensor *nde_hnn_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *hnn);   /* [dH/dp, -dH/dq] */
NDE_API nde_tensor *nde_hnn_energy(nde_ctx *ctx, const nde_hnn *h, nde_tensor *z);          /* H(z) (batch, 1) */
typedef struct nde_lnn {
    nde_jet_fn lagrangian;     /* L(x): (batch, 2 dim) -> (batch, 1), row-wise    */
    void *user;
    int64_t dim;               /* d: x = [q (d), v (d)]                           */
} nde_lnn;
/* The acceleration a (batch, d) at z = [q, v]. */
NDE_API nde_tensor *nde_lnn_acceleration(nde_ctx *ctx, const nde_lnn *l, nde_tensor *z);
NDE_API nde_tensor *nde_lnn_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *lnn);   /* [v, a] */
/* Solve M x = b per row: M (batch, d*d) row-major, b (batch, d); taped,
   Gaussian elimination without pivoting (d <= 16). */
NDE_API nde_tensor *nde_batched_solve(nde_ctx *ctx, nde_tensor *M, nde_tensor *b);

/* ---------------------------------------------------------------- 4. CNF */
typedef enum nde_trace_kind { NDE_TRACE_EXACT = 0, NDE_TRACE_HUTCHINSON } nde_trace_kind;
typedef struct nde_cnf {
    nde_jet_field f;           /* dz/dt on jets, row-wise                        */
    void *user;
    int64_t dim;               /* d                                              */
    nde_trace_kind trace;
    int gaussian_noise;        /* HUTCHINSON: 0 Rademacher, 1 N(0, 1)            */
    nde_tensor *noise;         /* HUTCHINSON: eps (batch, d), nde_cnf_draw_noise */
} nde_cnf;
NDE_API nde_status nde_cnf_draw_noise(nde_ctx *ctx, nde_cnf *c, int64_t batch, nde_rng *rng);
/* An nde_field_fn on s = [z, D] (batch, d + 1); user = nde_cnf *. */
NDE_API nde_tensor *nde_cnf_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *cnf);
/* log N(z; 0, I) per row: (batch, 1). */
NDE_API nde_tensor *nde_normal_logpdf(nde_ctx *ctx, nde_tensor *z);

/* ---------------------------------------------------------------- 5. ODE-RNN, latent ODE */
typedef struct nde_per_sample {
    nde_field_fn f; void *user;
    nde_tensor *t0, *dt;       /* (batch, 1): start and length of each span      */
} nde_per_sample;
/* t0, t1: host arrays of batch times (work-arena tensors are made from them). */
NDE_API nde_status nde_per_sample_init(nde_ctx *ctx, nde_per_sample *ps, nde_field_fn f, void *user, int64_t batch,
                                       const nde_real *t0, const nde_real *t1);
/* An nde_field_fn in s in [0, 1]; user = nde_per_sample *. */
NDE_API nde_tensor *nde_per_sample_field(nde_ctx *ctx, nde_tensor *s, nde_tensor *z, void *ps);
/* z(t1_i) for every sample i, from z0 at t0_i; opts NULL = defaults. */
NDE_API nde_tensor *nde_odeint_per_sample(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, const nde_real *t0,
                                          const nde_real *t1, const nde_solve_options *opts);
typedef struct nde_gru { nde_linear wx, wh; int64_t in, hidden; } nde_gru;
NDE_API nde_status nde_gru_init(nde_ctx *ctx, nde_gru *g, const char *name, int64_t in, int64_t hidden, uint64_t seed);
NDE_API nde_tensor *nde_gru_forward(nde_ctx *ctx, const nde_gru *g, nde_tensor *x, nde_tensor *h);
typedef struct nde_odernn {
    nde_gru cell;
    nde_field_fn f; void *f_user;      /* the hidden dynamics dh/dt = f(t, h)      */
    nde_solve_options opts;            /* the solver between observations         */
} nde_odernn;
/* K observations: xs[k] (batch, in); ts host (batch * K), row i = sample i's
   times in order (increasing, or decreasing to run backwards as an encoder);
   mask NULL or host (batch * K) of 0/1. The state starts at h0 at each
   sample's first time. Returns h after the last observation; hs (optional,
   K pointers) receives h after each. */
NDE_API nde_tensor *nde_odernn_forward(nde_ctx *ctx, const nde_odernn *r, nde_tensor *h0, int K, nde_tensor *const *xs,
                                       const nde_real *ts, const nde_real *mask, nde_tensor **hs);
/* mu + exp(logvar / 2) eps, eps ~ N(0, 1) from (seed, stream). */
NDE_API nde_tensor *nde_reparameterize(nde_ctx *ctx, nde_tensor *mu, nde_tensor *logvar, uint64_t seed, uint64_t stream);
/* KL(N(mu, exp(logvar)) || N(0, 1)), summed over features, mean over rows: shape (1). */
NDE_API nde_tensor *nde_kl_normal(nde_ctx *ctx, nde_tensor *mu, nde_tensor *logvar);

/* ---------------------------------------------------------------- 6. graphs */
/* edges: num_edges pairs (i, j), undirected, i != j, each once. values
   receives A_hat's nonzeros (nnz = nodes + 2 num_edges). */
NDE_API nde_status nde_gcn_adjacency(nde_ctx *ctx, int64_t nodes, int64_t num_edges, const int64_t *edges, nde_csr *a,
                                     nde_tensor **values);
typedef struct nde_gcn { nde_linear lin; const nde_csr *a; nde_tensor *values; } nde_gcn;
NDE_API nde_status nde_gcn_init(nde_ctx *ctx, nde_gcn *g, const char *name, const nde_csr *a, nde_tensor *values,
                                int64_t in, int64_t out, uint64_t seed);
NDE_API nde_tensor *nde_gcn_forward(nde_ctx *ctx, const nde_gcn *g, nde_tensor *h);
typedef struct nde_gde { nde_gcn layer[2]; nde_activation act; } nde_gde;
NDE_API nde_tensor *nde_gde_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *h, void *gde);   /* GCN2(act(GCN1(h))) */

/* ---------------------------------------------------------------- 7. hypersolvers */
/* g(t, z, dz = f(t, z)) -> the correction, shape of z. */
typedef nde_tensor *(*nde_hyper_fn)(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, nde_tensor *dz, void *user);
typedef struct nde_hypersolver {
    nde_method base;           /* NDE_EULER, NDE_MIDPOINT or NDE_RK4             */
    nde_hyper_fn g; void *g_user;  /* NULL: the plain base method                */
} nde_hypersolver;
NDE_API nde_tensor *nde_hypersolver_step(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user,
                                         double t, nde_tensor *z, double h);
/* steps equal steps per output interval; ys (num_ts pointers), ys[0] = z0. */
NDE_API nde_status nde_hypersolve(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user, nde_tensor *z0,
                                  int num_ts, const double *ts, int steps, nde_tensor **ys);
NDE_API nde_tensor *nde_hypersolver_residual_loss(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user,
                                                  double t, nde_tensor *z, double h, nde_tensor *z_next);

/* ---------------------------------------------------------------- 8. Parareal */
typedef struct nde_parareal_options {
    nde_method coarse, fine;   /* NDE_EULER, NDE_RK4 (fixed-step methods)         */
    int coarse_steps, fine_steps;  /* per shooting interval: 1, 4                 */
    int max_iters;             /* 0 = num_ts - 1 (exact)                          */
    double tol;                /* stop when max |U^{k+1} - U^k| <= tol (0: never) */
} nde_parareal_options;
NDE_API nde_parareal_options nde_parareal_options_default(void);
/* ys (num_ts pointers) receives U_i; iters (optional) the iterations done. */
NDE_API nde_status nde_parareal(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, int num_ts, const double *ts,
                                const nde_parareal_options *o, nde_tensor **ys, int *iters);

#ifdef __cplusplus
}
#endif
#endif /* NDE_ZOO_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if defined(NDE_IMPLEMENTATION) && !defined(NDE_ZOO_IMPLEMENTATION)
#define NDE_ZOO_IMPLEMENTATION
#endif
#if defined(NDE_ZOO_IMPLEMENTATION) && !defined(NDE_ZOO_IMPLEMENTATION_DONE)
#define NDE_ZOO_IMPLEMENTATION_DONE

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(NDE_MALLOC)
#define NDE_MALLOC(sz) malloc(sz)
#define NDE_REALLOC(p, sz) realloc(p, sz)
#define NDE_FREE(p) free(p)
#endif

static int nde__zoo_ok(nde_ctx *ctx) { return ctx && nde_ctx_status(ctx) == NDE_OK; }
static nde_tensor *nde__zoo_cat2(nde_ctx *ctx, nde_tensor *a, nde_tensor *b, int axis) {
    nde_tensor *xs[2];
    xs[0] = a; xs[1] = b;
    return (a && b) ? nde_concat(ctx, 2, xs, axis) : NULL;
}
static int nde__zoo_is_matrix(nde_ctx *ctx, const nde_tensor *x, const char *who) {
    char s1[64];
    if (x && x->ndim == 2) return 1;
    nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: needs a (batch, features) tensor, got %s", who, nde_shape_str(x, s1, sizeof s1));
    return 0;
}

/* ------------------------------------------------------------ 1. augmentation */
NDE_API nde_tensor *nde_augment_zeros(nde_ctx *ctx, nde_tensor *x, int64_t dims) {
    int64_t shp[NDE_MAX_DIMS]; int i;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!x || x->ndim < 2 || dims < 0) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_augment_zeros: need x with at least 2 dimensions and dims >= 0 (dims = %lld)", (long long)dims);
        return NULL;
    }
    if (dims == 0) return x;
    for (i = 0; i < x->ndim; i++) shp[i] = x->shape[i];
    shp[1] = dims;
    return nde__zoo_cat2(ctx, x, nde_tensor_zeros(ctx, x->ndim, shp), 1);
}
NDE_API nde_status nde_augmenter_init(nde_ctx *ctx, nde_augmenter *a, const char *name, int64_t in, int64_t dims, uint64_t seed) {
    if (!a || in < 1 || dims < 1)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_augmenter_init: in = %lld and dims = %lld must be positive", (long long)in, (long long)dims);
    a->in = in; a->dims = dims;
    return nde_linear_init(ctx, &a->layer, name, in, dims, 1, seed);
}
NDE_API nde_tensor *nde_augmenter_forward(nde_ctx *ctx, const nde_augmenter *a, nde_tensor *x) {
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!a || !nde__zoo_is_matrix(ctx, x, "nde_augmenter_forward")) return NULL;
    return nde__zoo_cat2(ctx, x, nde_linear_forward(ctx, &a->layer, x), 1);
}
NDE_API nde_tensor *nde_depth_cat(nde_ctx *ctx, nde_tensor *t, nde_tensor *z) {
    int64_t shp[2];
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!t || !nde__zoo_is_matrix(ctx, z, "nde_depth_cat")) return NULL;
    if (t->size != 1 && t->size != z->shape[0]) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_depth_cat: t %s must have 1 or batch elements for z %s", nde_shape_str(t, s1, sizeof s1),
                     nde_shape_str(z, s2, sizeof s2));
        return NULL;
    }
    shp[0] = z->shape[0]; shp[1] = 1;
    if (t->size == 1) t = nde_add(ctx, nde_tensor_zeros(ctx, 2, shp), nde_reshape(ctx, t, 1, shp + 1));
    else t = nde_reshape(ctx, t, 2, shp);
    return nde__zoo_cat2(ctx, z, t, 1);
}
NDE_API nde_tensor *nde_data_control(nde_ctx *ctx, nde_tensor *z, nde_tensor *x0) {
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!nde__zoo_is_matrix(ctx, z, "nde_data_control") || !nde__zoo_is_matrix(ctx, x0, "nde_data_control")) return NULL;
    if (z->shape[0] != x0->shape[0]) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_data_control: z has %lld rows, x0 %lld", (long long)z->shape[0], (long long)x0->shape[0]);
        return NULL;
    }
    return nde__zoo_cat2(ctx, z, x0, 1);
}
NDE_API nde_tensor *nde_higher_order_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const nde_higher_order *ho = (const nde_higher_order *)user;
    nde_tensor *parts[2], *a;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!ho || !ho->highest || ho->order < 1 || ho->dim < 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_higher_order_field: need an nde_higher_order with order >= 1, dim >= 1 and a function");
        return NULL;
    }
    if (!nde__zoo_is_matrix(ctx, z, "nde_higher_order_field")) return NULL;
    if (z->shape[1] != ho->order * ho->dim) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_higher_order_field: the state has %lld columns; order %d x dim %lld = %lld",
                     (long long)z->shape[1], ho->order, (long long)ho->dim, (long long)(ho->order * ho->dim));
        return NULL;
    }
    a = ho->highest(ctx, t, z, ho->user);
    if (!a) {
        if (nde__zoo_ok(ctx)) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_higher_order_field: the function returned NULL");
        return NULL;
    }
    if (a->ndim != 2 || a->shape[0] != z->shape[0] || a->shape[1] != ho->dim) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_higher_order_field: the highest derivative is %s, need (%lld, %lld)",
                     nde_shape_str(a, s1, sizeof s1), (long long)z->shape[0], (long long)ho->dim);
        return NULL;
    }
    if (ho->order == 1) return a;
    parts[0] = nde_slice(ctx, z, 1, ho->dim, z->shape[1]);    /* x', ..., x^(n-1) */
    parts[1] = a;
    return nde_concat(ctx, 2, parts, 1);
}

/* ------------------------------------------------------------ 2. Galerkin */
NDE_API nde_galerkin_basis nde_galerkin_basis_make(nde_basis_kind kind, int n) {
    nde_galerkin_basis b;
    b.kind = kind; b.n = n; b.period = 1.0; b.lo = 0.0; b.hi = 1.0;
    b.gamma = (double)n * (double)n;
    return b;
}
NDE_API nde_tensor *nde_galerkin_basis_eval(nde_ctx *ctx, const nde_galerkin_basis *b, nde_tensor *t) {
    nde_tensor **terms, *t11;
    int64_t one11[2] = {1, 1};
    int k;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!b || b->n < 1 || b->n > 256 || !t || t->size != 1 || (int)b->kind < 0 || b->kind > NDE_BASIS_RBF) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_galerkin_basis_eval: need a basis with 1..256 terms of a known kind and a one-element t");
        return NULL;
    }
    if ((b->kind == NDE_BASIS_FOURIER && !(b->period > 0)) || ((b->kind == NDE_BASIS_CHEBYSHEV || b->kind == NDE_BASIS_RBF) && !(b->hi > b->lo))) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_galerkin_basis_eval: period = %g (> 0), domain [%g, %g] (lo < hi)", b->period, b->lo, b->hi);
        return NULL;
    }
    terms = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)b->n * sizeof(nde_tensor *));
    t11 = nde_reshape(ctx, t, 2, one11);
    if (!terms || !t11) return NULL;
    switch (b->kind) {
    case NDE_BASIS_FOURIER:
        for (k = 0; k < b->n; k++) {
            int freq = (k + 1) / 2;
            double w = 6.283185307179586 * (double)freq / b->period;
            if (k == 0) terms[k] = nde_tensor_full(ctx, 2, one11, NDE_R(1.0));
            else terms[k] = (k % 2) ? nde_cos(ctx, nde_scale(ctx, t11, (nde_real)w)) : nde_sin(ctx, nde_scale(ctx, t11, (nde_real)w));
        }
        break;
    case NDE_BASIS_POLYNOMIAL:
        for (k = 0; k < b->n; k++) terms[k] = k == 0 ? nde_tensor_full(ctx, 2, one11, NDE_R(1.0)) : nde_powi(ctx, t11, k);
        break;
    case NDE_BASIS_CHEBYSHEV: {
        nde_tensor *s = nde_add_scalar(ctx, nde_scale(ctx, t11, (nde_real)(2.0 / (b->hi - b->lo))),
                                       (nde_real)(-2.0 * b->lo / (b->hi - b->lo) - 1.0));
        for (k = 0; k < b->n; k++) {
            if (k == 0) terms[k] = nde_tensor_full(ctx, 2, one11, NDE_R(1.0));
            else if (k == 1) terms[k] = s;
            else terms[k] = nde_sub(ctx, nde_scale(ctx, nde_mul(ctx, s, terms[k - 1]), NDE_R(2.0)), terms[k - 2]);  /* T_{k} = 2 s T_{k-1} - T_{k-2} */
        }
        break;
    }
    case NDE_BASIS_RBF:
        for (k = 0; k < b->n; k++) {
            double c = b->n > 1 ? b->lo + (b->hi - b->lo) * (double)k / (double)(b->n - 1) : 0.5 * (b->lo + b->hi);
            terms[k] = nde_exp(ctx, nde_scale(ctx, nde_square(ctx, nde_add_scalar(ctx, t11, (nde_real)-c)), (nde_real)-b->gamma));
        }
        break;
    }
    return nde_concat(ctx, b->n, terms, 1);
}
static nde_status nde__gal_coeffs(nde_ctx *ctx, const char *name, nde_galerkin_basis basis, int64_t wsize, int64_t out,
                                  double bound, uint64_t seed, nde_tensor **cw, nde_tensor **cb) {
    char nm[96];
    int64_t shp[2];
    double scale = bound / sqrt((double)basis.n);
    if (basis.n < 1 || basis.n > 256) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: a basis of %d terms (1..256)", name, basis.n);
    shp[0] = basis.n; shp[1] = wsize;
    snprintf(nm, sizeof nm, "%.80s.coeff_w", name);
    *cw = nde_param_new(ctx, nm, 2, shp);
    shp[1] = out;
    snprintf(nm, sizeof nm, "%.80s.coeff_b", name);
    *cb = nde_param_new(ctx, nm, 2, shp);
    if (!*cw || !*cb) return nde_ctx_status(ctx);
    nde_init_uniform(ctx, *cw, (nde_real)-scale, (nde_real)scale, seed);
    nde_init_uniform(ctx, *cb, (nde_real)-scale, (nde_real)scale, seed + 1);
    return nde_ctx_status(ctx);
}
NDE_API nde_status nde_gal_linear_init(nde_ctx *ctx, nde_gal_linear *l, const char *name, int64_t in, int64_t out,
                                       nde_galerkin_basis basis, uint64_t seed) {
    if (!l || in < 1 || out < 1)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gal_linear_init: in = %lld and out = %lld must be positive", (long long)in, (long long)out);
    memset(l, 0, sizeof *l);
    l->basis = basis; l->in = in; l->out = out;
    return nde__gal_coeffs(ctx, name, basis, out * in, out, 1.0 / sqrt((double)in), seed, &l->coeff_w, &l->coeff_b);
}
NDE_API nde_tensor *nde_gal_linear_weight(nde_ctx *ctx, const nde_gal_linear *l, nde_tensor *t, nde_tensor **bias) {
    nde_tensor *phi;
    int64_t ws[2], bs = 0;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!l || !l->coeff_w) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gal_linear_weight: uninitialised layer"); return NULL; }
    phi = nde_galerkin_basis_eval(ctx, &l->basis, t);
    ws[0] = l->out; ws[1] = l->in; bs = l->out;
    if (bias) *bias = nde_reshape(ctx, nde_matmul(ctx, phi, l->coeff_b, 0, 0), 1, &bs);      /* sum_k phi_k b_k */
    return nde_reshape(ctx, nde_matmul(ctx, phi, l->coeff_w, 0, 0), 2, ws);                  /* sum_k phi_k W_k */
}
NDE_API nde_tensor *nde_gal_linear_forward(nde_ctx *ctx, const nde_gal_linear *l, nde_tensor *t, nde_tensor *x) {
    nde_tensor *b = NULL, *w = nde_gal_linear_weight(ctx, l, t, &b);
    return nde_add(ctx, nde_matmul(ctx, x, w, 0, 1), b);
}
NDE_API nde_status nde_gal_conv2d_init(nde_ctx *ctx, nde_gal_conv2d *l, const char *name, int64_t in, int64_t out,
                                       int kernel, int stride, int padding, nde_galerkin_basis basis, uint64_t seed) {
    if (!l || in < 1 || out < 1 || kernel < 1 || stride < 1 || padding < 0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gal_conv2d_init: bad sizes in %lld out %lld kernel %d stride %d padding %d",
                            (long long)in, (long long)out, kernel, stride, padding);
    memset(l, 0, sizeof *l);
    l->basis = basis; l->in = in; l->out = out; l->kernel = kernel; l->stride = stride; l->padding = padding;
    return nde__gal_coeffs(ctx, name, basis, out * in * kernel * kernel, out, 1.0 / sqrt((double)(in * kernel * kernel)), seed,
                           &l->coeff_w, &l->coeff_b);
}
NDE_API nde_tensor *nde_gal_conv2d_weight(nde_ctx *ctx, const nde_gal_conv2d *l, nde_tensor *t, nde_tensor **bias) {
    nde_tensor *phi;
    int64_t ws[4], bs;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!l || !l->coeff_w) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gal_conv2d_weight: uninitialised layer"); return NULL; }
    phi = nde_galerkin_basis_eval(ctx, &l->basis, t);
    ws[0] = l->out; ws[1] = l->in; ws[2] = l->kernel; ws[3] = l->kernel; bs = l->out;
    if (bias) *bias = nde_reshape(ctx, nde_matmul(ctx, phi, l->coeff_b, 0, 0), 1, &bs);
    return nde_reshape(ctx, nde_matmul(ctx, phi, l->coeff_w, 0, 0), 4, ws);
}
NDE_API nde_tensor *nde_gal_conv2d_forward(nde_ctx *ctx, const nde_gal_conv2d *l, nde_tensor *t, nde_tensor *x) {
    nde_tensor *b = NULL, *w = nde_gal_conv2d_weight(ctx, l, t, &b);
    return w ? nde_conv2d(ctx, x, w, b, l->stride, l->padding) : NULL;
}

/* ------------------------------------------------------------ 3. energy models */
NDE_API nde_jet *nde_jet_mlp_fn(nde_ctx *ctx, nde_jet *x, void *mlp) { return nde_jet_mlp_forward(ctx, (const nde_mlp *)mlp, x); }

/* The line X + s V with X = K copies of x (K B, n) stacked along the rows and V
   the K direction blocks (each (B, n)). */
static nde_jet *nde__zoo_direction_jet(nde_ctx *ctx, nde_tensor *x, int K, nde_tensor *const *dirs, int order) {
    nde_tensor **copies = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)K * sizeof(nde_tensor *));
    int k;
    if (!copies) return NULL;
    for (k = 0; k < K; k++) copies[k] = x;
    return nde_jet_line(ctx, nde_concat(ctx, K, copies, 0), nde_concat(ctx, K, dirs, 0), order);
}
/* The unit direction e_col for every row of a (rows, n) tensor. */
static nde_tensor *nde__zoo_unit(nde_ctx *ctx, int64_t rows, int64_t n, int64_t col, int64_t col2, nde_real w2) {
    nde_real *h = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(rows * n) * sizeof(nde_real));
    int64_t shp[2], i;
    if (!h) return NULL;
    memset(h, 0, (size_t)(rows * n) * sizeof(nde_real));
    for (i = 0; i < rows; i++) {
        h[i * n + col] = NDE_R(1.0);
        if (col2 >= 0) h[i * n + col2] += w2;
    }
    shp[0] = rows; shp[1] = n;
    return nde_tensor_from(ctx, 2, shp, h);
}
/* Rows [k B, (k + 1) B) of a (K B, 1) coefficient as (B, 1). */
static nde_tensor *nde__zoo_block(nde_ctx *ctx, nde_tensor *c, int64_t B, int k) { return nde_slice(ctx, c, 0, k * B, (k + 1) * B); }
static nde_jet *nde__zoo_call_scalar(nde_ctx *ctx, nde_jet_fn fn, void *user, nde_jet *x, int64_t rows, const char *who) {
    nde_jet *y = fn(ctx, x, user);
    if (!y) {
        if (nde__zoo_ok(ctx)) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "%s: the scalar function returned NULL", who);
        return NULL;
    }
    if (!y->c[0] || y->c[0]->size != rows) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the scalar function must return (%lld, 1), got %s", who, (long long)rows,
                     nde_shape_str(y->c[0], s1, sizeof s1));
        return NULL;
    }
    return y;
}

NDE_API nde_tensor *nde_energy_grad(nde_ctx *ctx, nde_jet_fn energy, void *user, nde_tensor *x, nde_tensor **value) {
    int64_t B, n, i, shp[2];
    nde_tensor **dirs, *c1;
    nde_jet *y;
    if (value) *value = NULL;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!energy || !nde__zoo_is_matrix(ctx, x, "nde_energy_grad")) return NULL;
    B = x->shape[0]; n = x->shape[1];
    dirs = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_tensor *));
    if (!dirs) return NULL;
    for (i = 0; i < n; i++) dirs[i] = nde__zoo_unit(ctx, B, n, i, -1, 0);
    y = nde__zoo_call_scalar(ctx, energy, user, nde__zoo_direction_jet(ctx, x, (int)n, dirs, 1), n * B, "nde_energy_grad");
    if (!y) return NULL;
    if (value) *value = nde_reshape(ctx, nde__zoo_block(ctx, nde_reshape(ctx, y->c[0], 2, (int64_t[]){n * B, 1}), B, 0), 2,
                                    (int64_t[]){B, 1});
    c1 = nde_jet_coeff(ctx, y, 1);                  /* block i: dE/dx_i */
    shp[0] = n; shp[1] = B;
    return nde_transpose(ctx, nde_reshape(ctx, c1, 2, shp));
}
NDE_API nde_tensor *nde_hnn_energy(nde_ctx *ctx, const nde_hnn *h, nde_tensor *z) {
    nde_jet *y;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!h || !h->energy || !nde__zoo_is_matrix(ctx, z, "nde_hnn_energy")) return NULL;
    y = nde__zoo_call_scalar(ctx, h->energy, h->user, nde_jet_const(ctx, z, 0), z->shape[0], "nde_hnn_energy");
    return y ? y->c[0] : NULL;
}
NDE_API nde_tensor *nde_hnn_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const nde_hnn *h = (const nde_hnn *)user;
    nde_tensor *g;
    (void)t;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!h || !h->energy || h->dim < 1) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_hnn_field: need an nde_hnn with an energy and dim >= 1"); return NULL; }
    if (!nde__zoo_is_matrix(ctx, z, "nde_hnn_field")) return NULL;
    if (z->shape[1] != 2 * h->dim) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_hnn_field: the state has %lld columns, need 2 dim = %lld", (long long)z->shape[1],
                     (long long)(2 * h->dim));
        return NULL;
    }
    g = nde_energy_grad(ctx, h->energy, h->user, z, NULL);
    return nde__zoo_cat2(ctx, nde_slice(ctx, g, 1, h->dim, 2 * h->dim), nde_neg(ctx, nde_slice(ctx, g, 1, 0, h->dim)), 1);
}

NDE_API nde_tensor *nde_batched_solve(nde_ctx *ctx, nde_tensor *M, nde_tensor *b) {
    nde_tensor *a[16][17];
    int64_t d, i, j, k;
    char s1[64], s2[64];
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!M || !b || M->ndim != 2 || b->ndim != 2 || b->shape[1] < 1 || b->shape[1] > 16 || M->shape[0] != b->shape[0] ||
        M->shape[1] != b->shape[1] * b->shape[1]) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_batched_solve: M %s must be (batch, d*d) and b %s (batch, d), d <= 16",
                     nde_shape_str(M, s1, sizeof s1), nde_shape_str(b, s2, sizeof s2));
        return NULL;
    }
    d = b->shape[1];
    for (i = 0; i < d; i++) {
        for (j = 0; j < d; j++) a[i][j] = nde_slice(ctx, M, 1, i * d + j, i * d + j + 1);
        a[i][d] = nde_slice(ctx, b, 1, i, i + 1);
    }
    for (k = 0; k < d; k++)            /* eliminate below the pivot a[k][k] */
        for (i = k + 1; i < d; i++) {
            nde_tensor *m = nde_div(ctx, a[i][k], a[k][k]);
            for (j = k + 1; j <= d; j++) a[i][j] = nde_sub(ctx, a[i][j], nde_mul(ctx, m, a[k][j]));
        }
    for (i = d - 1; i >= 0; i--) {     /* back substitution into a[i][d] */
        nde_tensor *r = a[i][d];
        for (j = i + 1; j < d; j++) r = nde_sub(ctx, r, nde_mul(ctx, a[i][j], a[j][d]));
        a[i][d] = nde_div(ctx, r, a[i][i]);
    }
    {
        nde_tensor *cols[16];
        for (i = 0; i < d; i++) cols[i] = a[i][d];
        return nde_ctx_status(ctx) == NDE_OK ? nde_concat(ctx, (int)d, cols, 1) : NULL;
    }
}

NDE_API nde_tensor *nde_lnn_acceleration(nde_ctx *ctx, const nde_lnn *l, nde_tensor *z) {
    int64_t B, d, n, i, j;
    int K, k, kq, kd, ko, kc;
    nde_tensor **dirs, *c1, *c2, *w, *Mv, *rhs, **mij, **gq, **cv;
    nde_jet *y;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!l || !l->lagrangian || l->dim < 1 || l->dim > 16) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_lnn_acceleration: need an nde_lnn with a Lagrangian and 1 <= dim <= 16");
        return NULL;
    }
    if (!nde__zoo_is_matrix(ctx, z, "nde_lnn_acceleration")) return NULL;
    B = z->shape[0]; d = l->dim; n = 2 * d;
    if (z->shape[1] != n) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_lnn_acceleration: the state has %lld columns, need 2 dim = %lld", (long long)z->shape[1], (long long)n);
        return NULL;
    }
    /* directions: e_qj (d) | e_vi (d) | e_vi + e_vj, i < j | e_vi + w, e_vi - w (2d); w = [v, 0] */
    K = (int)(4 * d + d * (d - 1) / 2);
    kq = 0; kd = (int)d; ko = (int)(2 * d); kc = (int)(2 * d + d * (d - 1) / 2);
    dirs = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)K * sizeof(nde_tensor *));
    if (!dirs) return NULL;
    w = nde__zoo_cat2(ctx, nde_slice(ctx, z, 1, d, n), nde_tensor_zeros(ctx, 2, (int64_t[]){B, d}), 1);
    k = 0;
    for (j = 0; j < d; j++) dirs[k++] = nde__zoo_unit(ctx, B, n, j, -1, 0);
    for (i = 0; i < d; i++) dirs[k++] = nde__zoo_unit(ctx, B, n, d + i, -1, 0);
    for (i = 0; i < d; i++) for (j = i + 1; j < d; j++) dirs[k++] = nde__zoo_unit(ctx, B, n, d + i, d + j, NDE_R(1.0));
    for (i = 0; i < d; i++) {
        nde_tensor *u = nde__zoo_unit(ctx, B, n, d + i, -1, 0);
        dirs[k++] = nde_add(ctx, u, w);
        dirs[k++] = nde_sub(ctx, u, w);
    }
    y = nde__zoo_call_scalar(ctx, l->lagrangian, l->user, nde__zoo_direction_jet(ctx, z, K, dirs, 2), (int64_t)K * B,
                             "nde_lnn_acceleration");
    if (!y) return NULL;
    c1 = nde_reshape(ctx, nde_jet_coeff(ctx, y, 1), 2, (int64_t[]){(int64_t)K * B, 1});
    c2 = nde_reshape(ctx, nde_jet_coeff(ctx, y, 2), 2, (int64_t[]){(int64_t)K * B, 1});
    mij = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)(d * d + 2 * d) * sizeof(nde_tensor *));
    if (!mij || !c1 || !c2) return NULL;
    gq = mij + d * d; cv = gq + d;
    for (i = 0; i < d; i++) mij[i * d + i] = nde_scale(ctx, nde__zoo_block(ctx, c2, B, kd + (int)i), NDE_R(2.0));   /* M_ii */
    k = ko;
    for (i = 0; i < d; i++)
        for (j = i + 1; j < d; j++, k++) {   /* M_ij = c2(e_i + e_j) - c2(e_i) - c2(e_j) */
            nde_tensor *m = nde_sub(ctx, nde__zoo_block(ctx, c2, B, k),
                                    nde_add(ctx, nde__zoo_block(ctx, c2, B, kd + (int)i), nde__zoo_block(ctx, c2, B, kd + (int)j)));
            mij[i * d + j] = m; mij[j * d + i] = m;
        }
    for (j = 0; j < d; j++) gq[j] = nde__zoo_block(ctx, c1, B, kq + (int)j);                                      /* dL/dq_j */
    for (i = 0; i < d; i++)   /* (C v)_i = (c2(e_vi + w) - c2(e_vi - w)) / 2 */
        cv[i] = nde_scale(ctx, nde_sub(ctx, nde__zoo_block(ctx, c2, B, kc + 2 * (int)i), nde__zoo_block(ctx, c2, B, kc + 2 * (int)i + 1)),
                          NDE_R(0.5));
    Mv = nde_concat(ctx, (int)(d * d), mij, 1);
    rhs = nde_sub(ctx, nde_concat(ctx, (int)d, gq, 1), nde_concat(ctx, (int)d, cv, 1));
    return nde_batched_solve(ctx, Mv, rhs);
}
NDE_API nde_tensor *nde_lnn_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const nde_lnn *l = (const nde_lnn *)user;
    nde_tensor *a;
    (void)t;
    a = nde_lnn_acceleration(ctx, l, z);
    return a ? nde__zoo_cat2(ctx, nde_slice(ctx, z, 1, l->dim, 2 * l->dim), a, 1) : NULL;
}

/* ------------------------------------------------------------ 4. CNF */
NDE_API nde_status nde_cnf_draw_noise(nde_ctx *ctx, nde_cnf *c, int64_t batch, nde_rng *rng) {
    int64_t shp[2];
    if (!c || !rng || batch < 1 || c->dim < 1) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_cnf_draw_noise: need a CNF with dim >= 1, batch >= 1 and an RNG");
    shp[0] = batch; shp[1] = c->dim;
    c->noise = nde_tensor_new(ctx, 2, shp);
    if (!c->noise) return nde_ctx_status(ctx);
    return c->gaussian_noise ? nde_tensor_fill_normal(ctx, c->noise, rng, NDE_R(0.0), NDE_R(1.0)) : nde_tensor_fill_rademacher(ctx, c->noise, rng);
}
NDE_API nde_tensor *nde_cnf_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *s, void *user) {
    const nde_cnf *c = (const nde_cnf *)user;
    int64_t B, d, i;
    int K;
    nde_tensor *z, **dirs, *f, *c1, *tr;
    nde_jet *tj, *y;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!c || !c->f || c->dim < 1) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_cnf_field: need an nde_cnf with a field and dim >= 1"); return NULL; }
    if (!nde__zoo_is_matrix(ctx, s, "nde_cnf_field")) return NULL;
    B = s->shape[0]; d = c->dim;
    if (s->shape[1] != d + 1) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_cnf_field: the state has %lld columns, need dim + 1 = %lld ([z, log-density])",
                     (long long)s->shape[1], (long long)(d + 1));
        return NULL;
    }
    if (c->trace == NDE_TRACE_HUTCHINSON && (!c->noise || c->noise->shape[0] != B || c->noise->shape[1] != d)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_cnf_field: the Hutchinson estimator needs noise (%lld, %lld) from nde_cnf_draw_noise "
                     "before the solve", (long long)B, (long long)d);
        return NULL;
    }
    z = nde_slice(ctx, s, 1, 0, d);
    K = c->trace == NDE_TRACE_HUTCHINSON ? 1 : (int)d;
    dirs = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)K * sizeof(nde_tensor *));
    if (!dirs || !z) return NULL;
    if (c->trace == NDE_TRACE_HUTCHINSON) dirs[0] = c->noise;
    else for (i = 0; i < d; i++) dirs[i] = nde__zoo_unit(ctx, B, d, i, -1, 0);
    tj = nde_jet_const(ctx, t ? t : nde_tensor_scalar(ctx, NDE_R(0.0)), 1);
    y = c->f(ctx, tj, nde__zoo_direction_jet(ctx, z, K, dirs, 1), c->user);
    if (!y) {
        if (nde__zoo_ok(ctx)) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_cnf_field: the field returned NULL");
        return NULL;
    }
    if (!y->c[0] || y->c[0]->size != (int64_t)K * B * d) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_cnf_field: the field returned %s for a state (%lld, %lld)", nde_shape_str(y->c[0], s1, sizeof s1),
                     (long long)((int64_t)K * B), (long long)d);
        return NULL;
    }
    f = nde_slice(ctx, nde_reshape(ctx, y->c[0], 2, (int64_t[]){(int64_t)K * B, d}), 0, 0, B);
    c1 = nde_reshape(ctx, nde_jet_coeff(ctx, y, 1), 2, (int64_t[]){(int64_t)K * B, d});
    /* e_i^T J e_i per block (exact) or eps^T J eps (Hutchinson), then summed over the blocks */
    tr = nde_sum_axis(ctx, nde_mul(ctx, c1, nde_concat(ctx, K, dirs, 0)), 1, 1);
    tr = nde_sum_axis(ctx, nde_reshape(ctx, tr, 2, (int64_t[]){(int64_t)K, B}), 0, 0);
    return nde__zoo_cat2(ctx, f, nde_neg(ctx, nde_reshape(ctx, tr, 2, (int64_t[]){B, 1})), 1);
}
NDE_API nde_tensor *nde_normal_logpdf(nde_ctx *ctx, nde_tensor *z) {
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!nde__zoo_is_matrix(ctx, z, "nde_normal_logpdf")) return NULL;
    return nde_add_scalar(ctx, nde_scale(ctx, nde_sum_axis(ctx, nde_square(ctx, z), 1, 1), NDE_R(-0.5)),
                          (nde_real)(-0.5 * (double)z->shape[1] * log(6.283185307179586)));
}

/* ------------------------------------------------------------ 5. ODE-RNN, latent ODE */
NDE_API nde_status nde_per_sample_init(nde_ctx *ctx, nde_per_sample *ps, nde_field_fn f, void *user, int64_t batch,
                                       const nde_real *t0, const nde_real *t1) {
    nde_real *d;
    int64_t i, shp[2];
    if (!ps || !f || !t0 || !t1 || batch < 1) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_per_sample_init: NULL argument or batch < 1");
    d = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)batch * sizeof(nde_real));
    if (!d) return nde_ctx_status(ctx);
    for (i = 0; i < batch; i++) {
        if (!isfinite((double)t0[i]) || !isfinite((double)t1[i]))
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_per_sample_init: span %lld = [%g, %g] is not finite", (long long)i,
                                (double)t0[i], (double)t1[i]);
        d[i] = t1[i] - t0[i];
    }
    shp[0] = batch; shp[1] = 1;
    ps->f = f; ps->user = user;
    ps->t0 = nde_tensor_from(ctx, 2, shp, t0);
    ps->dt = nde_tensor_from(ctx, 2, shp, d);
    return nde_ctx_status(ctx);
}
NDE_API nde_tensor *nde_per_sample_field(nde_ctx *ctx, nde_tensor *s, nde_tensor *z, void *user) {
    const nde_per_sample *ps = (const nde_per_sample *)user;
    nde_tensor *t, *k;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!ps || !ps->f || !ps->t0 || !s || !z || z->shape[0] != ps->t0->shape[0]) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_per_sample_field: need an initialised nde_per_sample for a batch of %lld",
                     (long long)(z ? z->shape[0] : 0));
        return NULL;
    }
    t = nde_add(ctx, ps->t0, nde_mul(ctx, ps->dt, s));          /* t_i = t0_i + s (t1_i - t0_i) */
    k = ps->f(ctx, t, z, ps->user);
    if (!k) {
        if (nde__zoo_ok(ctx)) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_per_sample_field: the field returned NULL");
        return NULL;
    }
    if (z->ndim == 2) return nde_mul(ctx, k, ps->dt);
    {   /* (batch, ...) states: dt as (batch, 1, ...) */
        int64_t shp[NDE_MAX_DIMS]; int i;
        shp[0] = z->shape[0];
        for (i = 1; i < z->ndim; i++) shp[i] = 1;
        return nde_mul(ctx, k, nde_reshape(ctx, ps->dt, z->ndim, shp));
    }
}
NDE_API nde_tensor *nde_odeint_per_sample(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, const nde_real *t0,
                                          const nde_real *t1, const nde_solve_options *opts) {
    nde_per_sample ps;
    nde_solution sol;
    double span[2] = {0.0, 1.0};
    nde_tensor *out = NULL;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!z0) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odeint_per_sample: NULL z0"); return NULL; }
    if (nde_per_sample_init(ctx, &ps, f, user, z0->shape[0], t0, t1) != NDE_OK) return NULL;
    if (nde_solve(ctx, nde_per_sample_field, &ps, z0, 2, span, opts, &sol) == NDE_OK) out = sol.ys[1];
    nde_solution_free(ctx, &sol);
    return out;
}
NDE_API nde_status nde_gru_init(nde_ctx *ctx, nde_gru *g, const char *name, int64_t in, int64_t hidden, uint64_t seed) {
    char nm[96];
    if (!g || in < 1 || hidden < 1)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gru_init: in = %lld and hidden = %lld must be positive", (long long)in, (long long)hidden);
    memset(g, 0, sizeof *g);
    g->in = in; g->hidden = hidden;
    snprintf(nm, sizeof nm, "%.80s.x", name);
    if (nde_linear_init(ctx, &g->wx, nm, in, 3 * hidden, 1, seed) != NDE_OK) return nde_ctx_status(ctx);
    /* PyTorch initialises both with U(-1/sqrt(hidden), 1/sqrt(hidden)) */
    nde_init_uniform(ctx, g->wx.weight, (nde_real)(-1.0 / sqrt((double)hidden)), (nde_real)(1.0 / sqrt((double)hidden)), seed);
    nde_init_uniform(ctx, g->wx.bias, (nde_real)(-1.0 / sqrt((double)hidden)), (nde_real)(1.0 / sqrt((double)hidden)), seed + 1);
    snprintf(nm, sizeof nm, "%.80s.h", name);
    return nde_linear_init(ctx, &g->wh, nm, hidden, 3 * hidden, 1, seed + 2);
}
NDE_API nde_tensor *nde_gru_forward(nde_ctx *ctx, const nde_gru *g, nde_tensor *x, nde_tensor *h) {
    nde_tensor *gx, *gh, *r, *zg, *nn;
    int64_t H;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!g || !x || !h || h->ndim != 2 || h->shape[1] != g->hidden) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_gru_forward: h %s must be (batch, %lld)", nde_shape_str(h, s1, sizeof s1),
                     (long long)(g ? g->hidden : 0));
        return NULL;
    }
    H = g->hidden;
    gx = nde_linear_forward(ctx, &g->wx, x);
    gh = nde_linear_forward(ctx, &g->wh, h);
    /* r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r h_n), h' = (1 - z) n + z h */
    r = nde_sigmoid(ctx, nde_add(ctx, nde_slice(ctx, gx, 1, 0, H), nde_slice(ctx, gh, 1, 0, H)));
    zg = nde_sigmoid(ctx, nde_add(ctx, nde_slice(ctx, gx, 1, H, 2 * H), nde_slice(ctx, gh, 1, H, 2 * H)));
    nn = nde_tanh(ctx, nde_add(ctx, nde_slice(ctx, gx, 1, 2 * H, 3 * H), nde_mul(ctx, r, nde_slice(ctx, gh, 1, 2 * H, 3 * H))));
    return nde_add(ctx, nn, nde_mul(ctx, zg, nde_sub(ctx, h, nn)));
}
NDE_API nde_tensor *nde_odernn_forward(nde_ctx *ctx, const nde_odernn *r, nde_tensor *h0, int K, nde_tensor *const *xs,
                                       const nde_real *ts, const nde_real *mask, nde_tensor **hs) {
    nde_real *t0, *t1, *mk;
    nde_tensor *h = h0;
    int64_t B, i, shp[2];
    int k;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!r || !r->f || !h0 || K < 1 || !xs || !ts || h0->ndim != 2) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_odernn_forward: need the model, h0 (batch, hidden), K >= 1 observations and their times");
        return NULL;
    }
    B = h0->shape[0];
    t0 = (nde_real *)nde_ctx_alloc_host(ctx, 3 * (size_t)B * sizeof(nde_real));
    if (!t0) return NULL;
    t1 = t0 + B; mk = t1 + B;
    shp[0] = B; shp[1] = 1;
    for (k = 0; k < K && h; k++) {
        nde_tensor *hn;
        if (!xs[k] || xs[k]->shape[0] != B) {
            nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_odernn_forward: observation %d must have %lld rows", k, (long long)B);
            return NULL;
        }
        if (k > 0) {   /* evolve every sample from its previous observation time to its next */
            for (i = 0; i < B; i++) { t0[i] = ts[i * K + k - 1]; t1[i] = ts[i * K + k]; }
            h = nde_odeint_per_sample(ctx, r->f, r->f_user, h, t0, t1, &r->opts);
        }
        hn = nde_gru_forward(ctx, &r->cell, xs[k], h);
        if (mask) {
            nde_tensor *m;
            for (i = 0; i < B; i++) mk[i] = mask[i * K + k];
            m = nde_tensor_from(ctx, 2, shp, mk);
            hn = nde_add(ctx, h, nde_mul(ctx, m, nde_sub(ctx, hn, h)));
        }
        h = hn;
        if (hs) hs[k] = h;
    }
    return nde__zoo_ok(ctx) ? h : NULL;
}
NDE_API nde_tensor *nde_reparameterize(nde_ctx *ctx, nde_tensor *mu, nde_tensor *logvar, uint64_t seed, uint64_t stream) {
    nde_tensor *eps;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!mu || !logvar || !nde_tensor_same_shape(mu, logvar)) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_reparameterize: mu and logvar must have one shape");
        return NULL;
    }
    eps = nde_tensor_randn(ctx, mu->ndim, mu->shape, seed, stream);
    return nde_add(ctx, mu, nde_mul(ctx, nde_exp(ctx, nde_scale(ctx, logvar, NDE_R(0.5))), eps));
}
NDE_API nde_tensor *nde_kl_normal(nde_ctx *ctx, nde_tensor *mu, nde_tensor *logvar) {
    nde_tensor *terms;
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!mu || !logvar || !nde_tensor_same_shape(mu, logvar) || mu->ndim != 2) {
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_kl_normal: mu and logvar must be (batch, features) of one shape");
        return NULL;
    }
    /* 1/2 sum (mu^2 + e^logvar - 1 - logvar) */
    terms = nde_sub(ctx, nde_add(ctx, nde_square(ctx, mu), nde_exp(ctx, logvar)), nde_add_scalar(ctx, logvar, NDE_R(1.0)));
    return nde_scale(ctx, nde_sum(ctx, terms), (nde_real)(0.5 / (double)mu->shape[0]));
}

/* ------------------------------------------------------------ 6. graphs */
static int nde__zoo_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}
NDE_API nde_status nde_gcn_adjacency(nde_ctx *ctx, int64_t nodes, int64_t num_edges, const int64_t *edges, nde_csr *a,
                                     nde_tensor **values) {
    int64_t *deg, *rp, *ci, *fill, e, i, nnz;
    nde_real *v;
    nde_status st;
    if (!a || !values || nodes < 1 || num_edges < 0 || (num_edges > 0 && !edges))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gcn_adjacency: need nodes >= 1, num_edges >= 0, the edges and outputs");
    for (e = 0; e < num_edges; e++) {
        int64_t p = edges[2 * e], q = edges[2 * e + 1];
        if (p < 0 || q < 0 || p >= nodes || q >= nodes || p == q)
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gcn_adjacency: edge %lld = (%lld, %lld): need distinct nodes in 0..%lld",
                                (long long)e, (long long)p, (long long)q, (long long)nodes - 1);
    }
    nnz = nodes + 2 * num_edges;
    deg = (int64_t *)NDE_MALLOC((size_t)(3 * nodes + 1 + nnz) * sizeof(int64_t));
    v = (nde_real *)NDE_MALLOC((size_t)nnz * sizeof(nde_real));
    if (!deg || !v) { NDE_FREE(deg); NDE_FREE(v); return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_gcn_adjacency: out of memory"); }
    rp = deg + nodes; fill = rp + nodes + 1; ci = fill + nodes;
    for (i = 0; i < nodes; i++) deg[i] = 1;                      /* the self-loop */
    for (e = 0; e < num_edges; e++) { deg[edges[2 * e]]++; deg[edges[2 * e + 1]]++; }
    rp[0] = 0;
    for (i = 0; i < nodes; i++) { rp[i + 1] = rp[i] + deg[i]; fill[i] = rp[i]; ci[fill[i]++] = i; }
    for (e = 0; e < num_edges; e++) {
        int64_t p = edges[2 * e], q = edges[2 * e + 1];
        ci[fill[p]++] = q; ci[fill[q]++] = p;
    }
    for (i = 0; i < nodes; i++) {
        int64_t k;
        qsort(ci + rp[i], (size_t)(rp[i + 1] - rp[i]), sizeof(int64_t), nde__zoo_cmp_i64);
        for (k = rp[i] + 1; k < rp[i + 1]; k++)
            if (ci[k] == ci[k - 1]) {
                long long other = (long long)ci[k];
                NDE_FREE(deg); NDE_FREE(v);
                return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gcn_adjacency: the edge (%lld, %lld) is listed twice", (long long)i, other);
            }
        for (k = rp[i]; k < rp[i + 1]; k++) v[k] = (nde_real)(1.0 / sqrt((double)deg[i] * (double)deg[ci[k]]));
    }
    st = nde_csr_init(ctx, a, nodes, nodes, nnz, rp, ci);
    *values = st == NDE_OK ? nde_tensor_from(ctx, 1, &nnz, v) : NULL;
    NDE_FREE(deg); NDE_FREE(v);
    return nde_ctx_status(ctx);
}
NDE_API nde_status nde_gcn_init(nde_ctx *ctx, nde_gcn *g, const char *name, const nde_csr *a, nde_tensor *values,
                                int64_t in, int64_t out, uint64_t seed) {
    if (!g || !a || !values) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gcn_init: NULL layer, matrix or values");
    g->a = a; g->values = values;
    return nde_linear_init(ctx, &g->lin, name, in, out, 1, seed);
}
NDE_API nde_tensor *nde_gcn_forward(nde_ctx *ctx, const nde_gcn *g, nde_tensor *h) {
    if (!nde__zoo_ok(ctx)) return NULL;
    if (!g || !g->a) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gcn_forward: uninitialised layer"); return NULL; }
    /* A_hat (h W^T) + b */
    return nde_add(ctx, nde_csr_matmul(ctx, g->a, g->values, nde_matmul(ctx, h, g->lin.weight, 0, 1)), g->lin.bias);
}
NDE_API nde_tensor *nde_gde_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *h, void *user) {
    const nde_gde *g = (const nde_gde *)user;
    (void)t;
    if (!g) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_gde_field: NULL model"); return NULL; }
    return nde_gcn_forward(ctx, &g->layer[1], nde_activate(ctx, nde_gcn_forward(ctx, &g->layer[0], h), g->act));
}

/* ------------------------------------------------------------ 7. hypersolvers */
static const nde_tableau *nde__hyper_tableau(nde_ctx *ctx, const nde_hypersolver *hs, const char *who) {
    if (!hs || (hs->base != NDE_EULER && hs->base != NDE_MIDPOINT && hs->base != NDE_RK4)) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: the base method must be euler, midpoint or rk4", who);
        return NULL;
    }
    return nde_tableau_get(hs->base);
}
/* The base step and, via *k1, f(t, z). */
static nde_tensor *nde__hyper_base(nde_ctx *ctx, const nde_tableau *tab, nde_field_fn f, void *user, double t, nde_tensor *z,
                                   double h, nde_tensor **k1) {
    nde_tensor *stages[NDE_RK_MAX_STAGES] = {NULL}, *z1 = NULL;
    if (nde_rk_step(ctx, tab, f, user, t, z, h, NULL, &z1, NULL, stages) != NDE_OK) return NULL;
    *k1 = stages[0];
    return z1;
}
static nde_tensor *nde__hyper_g(nde_ctx *ctx, const nde_hypersolver *hs, double t, nde_tensor *z, nde_tensor *k1, const char *who) {
    nde_tensor *g = hs->g(ctx, nde_tensor_scalar(ctx, (nde_real)t), z, k1, hs->g_user);
    if (!g) {
        if (nde__zoo_ok(ctx)) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "%s: the correction returned NULL", who);
        return NULL;
    }
    if (!nde_tensor_same_shape(g, z)) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the correction returned %s for a state %s", who, nde_shape_str(g, s1, sizeof s1),
                     nde_shape_str(z, s2, sizeof s2));
        return NULL;
    }
    return g;
}
NDE_API nde_tensor *nde_hypersolver_step(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user,
                                         double t, nde_tensor *z, double h) {
    const nde_tableau *tab;
    nde_tensor *k1 = NULL, *z1;
    if (!nde__zoo_ok(ctx)) return NULL;
    tab = nde__hyper_tableau(ctx, hs, "nde_hypersolver_step");
    if (!tab) return NULL;
    z1 = nde__hyper_base(ctx, tab, f, user, t, z, h, &k1);
    if (!z1 || !hs->g) return z1;
    return nde_add(ctx, z1, nde_scale(ctx, nde__hyper_g(ctx, hs, t, z, k1, "nde_hypersolver_step"),
                                      (nde_real)pow(h, (double)(tab->order + 1))));   /* + h^(p+1) g */
}
NDE_API nde_status nde_hypersolve(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user, nde_tensor *z0,
                                  int num_ts, const double *ts, int steps, nde_tensor **ys) {
    int i, k;
    nde_tensor *z = z0;
    if (!ctx) return NDE_ERR_ARG;
    if (!nde__zoo_ok(ctx)) return nde_ctx_status(ctx);
    if (!z0 || !ys || !ts || num_ts < 1 || steps < 1)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_hypersolve: need z0, outputs, num_ts >= 1 times and steps >= 1 (steps = %d)", steps);
    if (!nde__hyper_tableau(ctx, hs, "nde_hypersolve")) return nde_ctx_status(ctx);
    ys[0] = z0;
    for (i = 1; i < num_ts && z; i++) {
        double h = (ts[i] - ts[i - 1]) / steps;
        for (k = 0; k < steps && z; k++) z = nde_hypersolver_step(ctx, hs, f, user, ts[i - 1] + k * h, z, h);
        ys[i] = z;
    }
    return nde_ctx_status(ctx);
}
NDE_API nde_tensor *nde_hypersolver_residual_loss(nde_ctx *ctx, const nde_hypersolver *hs, nde_field_fn f, void *user,
                                                  double t, nde_tensor *z, double h, nde_tensor *z_next) {
    const nde_tableau *tab;
    nde_tensor *k1 = NULL, *z1, *target, *g;
    if (!nde__zoo_ok(ctx)) return NULL;
    tab = nde__hyper_tableau(ctx, hs, "nde_hypersolver_residual_loss");
    if (!tab || !hs->g) { if (tab) nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_hypersolver_residual_loss: no correction network"); return NULL; }
    {   /* the base step is the target's constant part: no gradient through it */
        int was = nde_set_grad_enabled(ctx, 0);
        z1 = nde__hyper_base(ctx, tab, f, user, t, z, h, &k1);
        nde_set_grad_enabled(ctx, was);
    }
    if (!z1) return NULL;
    target = nde_scale(ctx, nde_sub(ctx, z_next, z1), (nde_real)pow(h, -(double)(tab->order + 1)));
    g = nde__hyper_g(ctx, hs, t, z, k1, "nde_hypersolver_residual_loss");
    return g ? nde_mse_loss(ctx, g, target) : NULL;
}

/* ------------------------------------------------------------ 8. Parareal */
NDE_API nde_parareal_options nde_parareal_options_default(void) {
    nde_parareal_options o;
    o.coarse = NDE_EULER; o.fine = NDE_RK4; o.coarse_steps = 1; o.fine_steps = 4; o.max_iters = 0; o.tol = 0.0;
    return o;
}
/* steps fixed-step RK steps of a method from (t0, z) to t1. */
static nde_tensor *nde__pr_propagate(nde_ctx *ctx, const nde_tableau *tab, nde_field_fn f, void *user, double t0, double t1,
                                     int steps, nde_tensor *z) {
    double h = (t1 - t0) / steps;
    int k;
    for (k = 0; k < steps && z; k++) {
        nde_tensor *z1 = NULL;
        if (nde_rk_step(ctx, tab, f, user, t0 + k * h, z, h, NULL, &z1, NULL, NULL) != NDE_OK) return NULL;
        z = z1;
    }
    return z;
}
NDE_API nde_status nde_parareal(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, int num_ts, const double *ts,
                                const nde_parareal_options *opts, nde_tensor **ys, int *iters) {
    nde_parareal_options o = opts ? *opts : nde_parareal_options_default();
    const nde_tableau *tg, *tf;
    nde_tensor **U, **G, **Fv;
    int N = num_ts - 1, i, k, K;
    if (iters) *iters = 0;
    if (!ctx) return NDE_ERR_ARG;
    if (!nde__zoo_ok(ctx)) return nde_ctx_status(ctx);
    if (!f || !z0 || !ys || !ts || num_ts < 2 || o.coarse_steps < 1 || o.fine_steps < 1 || o.max_iters < 0 || !(o.tol >= 0))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_parareal: need a field, z0, outputs, at least 2 times, coarse/fine steps >= 1, "
                            "max_iters >= 0 and tol >= 0");
    tg = nde_tableau_get(o.coarse); tf = nde_tableau_get(o.fine);
    if (!tg || !tf || tg->embedded_order > 0 || tf->embedded_order > 0 || tg->gamma != 0 || tf->gamma != 0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_parareal: coarse and fine must be fixed-step explicit RK methods (euler, midpoint, "
                            "heun, ralston, rk4, rk4_38)");
    K = o.max_iters > 0 ? o.max_iters : N;
    U = (nde_tensor **)nde_ctx_alloc_host(ctx, 3 * (size_t)num_ts * sizeof(nde_tensor *));
    if (!U) return nde_ctx_status(ctx);
    G = U + num_ts; Fv = G + num_ts;
    /* the coarse initial guess U^0 */
    U[0] = z0;
    for (i = 0; i < N; i++) {
        G[i] = nde__pr_propagate(ctx, tg, f, user, ts[i], ts[i + 1], o.coarse_steps, U[i]);
        U[i + 1] = G[i];
    }
    for (k = 0; k < K && nde__zoo_ok(ctx); k++) {
        double change = 0.0;
        /* the fine sweep over every interval (independent: parallel in time) */
        for (i = k; i < N; i++) Fv[i] = nde__pr_propagate(ctx, tf, f, user, ts[i], ts[i + 1], o.fine_steps, U[i]);
        /* the sequential coarse correction; intervals before k are converged */
        for (i = k; i < N && nde__zoo_ok(ctx); i++) {
            nde_tensor *gnew = i == k ? G[i] : nde__pr_propagate(ctx, tg, f, user, ts[i], ts[i + 1], o.coarse_steps, U[i]);
            nde_real co[3] = {NDE_R(1.0), NDE_R(1.0), NDE_R(-1.0)};
            nde_tensor *xs[3], *un;
            xs[0] = gnew; xs[1] = Fv[i]; xs[2] = G[i];
            un = (i == k) ? Fv[i] : nde_lincomb(ctx, 3, co, xs);     /* U_{k+1} = F(U_k) exactly */
            if (!un) break;
            {
                const nde_backend *be = nde_ctx_backend(ctx);
                nde_mark m = nde_ctx_mark(ctx);
                nde_real c2[2] = {NDE_R(1.0), NDE_R(-1.0)};
                const nde_real *pp[2];
                nde_real *diff = nde_ctx_alloc_reals(ctx, un->size);
                if (diff) {
                    double mx;
                    pp[0] = un->data; pp[1] = U[i + 1]->data;
                    be->lincomb(be->self, un->size, 2, c2, pp, 0, diff);
                    mx = be->max_abs(be->self, un->size, diff);
                    if (mx > change || mx != mx) change = mx;
                }
                nde_ctx_reset(ctx, m);
            }
            G[i] = gnew;
            U[i + 1] = un;
        }
        if (iters) *iters = k + 1;
        if (o.tol > 0 && change <= o.tol) break;
    }
    for (i = 0; i < num_ts; i++) ys[i] = U[i];
    return nde_ctx_status(ctx);
}

#endif /* NDE_ZOO_IMPLEMENTATION */
