/* nde_solvers.h - v0.1.0 - ODE solvers for nde: explicit Runge-Kutta (fixed and
   adaptive), Adams multistep, an L-stable implicit ESDIRK, dense output, events.
   License: MIT (see the end of nde.h).

USAGE
   Include after (or instead of) nde.h. In exactly ONE C file:

       #define NDE_IMPLEMENTATION      (all of nde; or NDE_SOLVERS_IMPLEMENTATION
       #include "nde_solvers.h"         for this header alone, next to a TU that
                                        defines NDE_CORE_IMPLEMENTATION)

QUICK START (this program runs in tests/test_solvers.c as quickstart_solvers)

       #define NDE_IMPLEMENTATION
       #include "nde_solvers.h"
       // z' = -z, batch of 2 states of dimension 1
       static nde_tensor *decay(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
           (void)t; (void)user;
           return nde_neg(ctx, z);
       }
       int main(void) {
           nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
           nde_real z0v[2] = {1, 2};
           nde_tensor *z0 = nde_tensor_from(ctx, 2, (int64_t[]){2, 1}, z0v);
           double ts[3] = {0.0, 0.5, 1.0};
           nde_solve_options opt = nde_solve_options_default();  // dopri5, rtol 1e-7, atol 1e-9
           nde_solution sol;
           nde_status st = nde_solve(ctx, decay, NULL, z0, 3, ts, &opt, &sol);
           // sol.ys[i] is z(ts[i]); sol.stats.nfe, .accepted, .rejected
           double z1 = nde_tensor_item(ctx, sol.ys[2], 0);     // ~ exp(-1)
           nde_solution_free(ctx, &sol);
           nde_ctx_free(ctx);
           return st != NDE_OK || z1 < 0.3678 || z1 > 0.3679;
       }

VECTOR FIELDS
   typedef nde_tensor *(*nde_field_fn)(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user);
   t is a one-element tensor (read it with nde_tensor_item, or use it in ops, e.g.
   as a time channel); z has the shape of the initial state ([batch, ...], up to
   NDE_MAX_DIMS dimensions). Return f(t, z) with the shape of z, built from nde
   ops. The same function serves plain solves and differentiated solves.

SOLVING
   nde_solve(ctx, f, user, z0, num_ts, ts, &options, &sol) integrates from ts[0]
   through ts[num_ts-1] (strictly increasing, or strictly decreasing to integrate
   backwards in time) and fills sol:
     sol.ys[i]         z(ts[i]) for i < sol.num_out (an ARRAY of tensors, one per
                       output time; nde_solution_stack() stacks them on a new
                       leading axis when z has at most NDE_MAX_DIMS-1 dimensions;
                       nde_odeint() is the one-call stacked form).
     sol.stats         nfe (every f evaluation, Jacobian rows included), njev,
                       nlu, accepted, rejected, newton_failures.
     sol.steps         the accepted steps (options.dense or options.record_steps).
     sol.t_event, sol.z_event, sol.event_index   when the status is NDE_EVENT.
   Output times inside a step come from the step's interpolant (like
   torchdiffeq); the solver never steps past the last output time: the last
   step is shortened to land on it exactly.
   Call nde_solution_free(ctx, &sol) when done (it frees the dense storage; the
   tensors in sol.ys live in the work arena and go with nde_ctx_reset).

GRAD MODES
   If grad mode is on and z0, or f(t0, z0), requires gradients (the field uses
   parameters), every operation producing the solution is recorded on the tape
   (stage combinations with nde_lincomb, the interpolants, ...), so nde_backward
   through the solve gives the exact gradient of the discrete solve ("direct"
   mode). Step-size control, error norms and event location are computed off
   the tape (they do not enter the gradient, as in torchdiffeq). Rejected
   attempts are rolled back, so they cost no tape. Otherwise (grad mode off, or
   nothing requires gradients) the solver resets the work arena after every
   step: memory does not grow with the number of steps. The implicit method
   (kvaerno5) iterates Newton off the tape and re-enters each converged stage
   on the tape as one Newton step with the exact Jacobian at the stage (value
   unchanged, derivative = the implicit-function-theorem derivative of the stage
   equation), so its taped solves are exact too, at the price of one Jacobian
   per stage. Output times are host doubles: d/dt_i is f(t_i, z(t_i)) . dL/dz_i
   (nde_adjoint.h), not a tape gradient.

METHODS (options.method, or nde_method_from_name)
   name            order  error est.  interpolant     note
   euler             1      -        Hermite cubic
   midpoint          2      -        Hermite cubic
   heun              2      -        Hermite cubic   (trapezoidal predictor-corrector)
   ralston           2      -        Hermite cubic
   rk4               4      -        Hermite cubic   classic
   rk4_38            4      -        Hermite cubic   3/8 rule
   bosh3             3      2        Hermite cubic   Bogacki-Shampine, FSAL
   adaptive_heun     2      1        Hermite cubic   FSAL
   fehlberg2         2      1        Hermite cubic   Fehlberg RK1(2)
   dopri5            5      4        own quartic     Dormand-Prince, FSAL, Shampine dense output
   tsit5             5      4        own quartic     Tsitouras 2011, FSAL
   dopri8            8      7        own, degree 6   Prince-Dormand RK8(7)13M + FSAL stage (*)
   explicit_adams   <=8     -        Hermite cubic   Adams-Bashforth, fixed grid
   implicit_adams   <=8     -        Hermite cubic   AB predictor + Adams-Moulton corrector
   kvaerno5          5      4        Hermite cubic   ESDIRK, L-stable, stiffly accurate
   taylor          <=16     -        outputs stepped to   Taylor series on jets, Jorba-Zou steps (see TAYLOR)
   (*) the free interpolant tabulated by torchdiffeq/diffrax: it meets the order
   conditions of the bushy trees to order 5 exactly (6th-order defects ~1e-5);
   measured dense-output convergence ~h^6.
   Methods with an error estimate step adaptively unless options.step_size or
   options.grid is set; the others (and the Adams methods) step on a fixed grid:
   options.grid, else steps of options.step_size (the last one shortened to land
   on the end time), else the output times themselves (as torchdiffeq).
   Adams methods differ from torchdiffeq's explicit_adams/implicit_adams in the
   start-up: torchdiffeq raises the order one step at a time from 1 (which caps
   the global order at 2); here the first order-1 steps are rk4 steps (dopri8
   for orders above 4), so the global order is the nominal one. The Adams
   coefficients are computed for the actual (possibly uneven) grid.

ADAPTIVE STEPPING (the same controller as torchdiffeq's, generalised as diffrax's PID)
   error ratio  E = norm(err / (atol + rtol * max(|y0|, |y1|)))  (RMS over the whole
                tensor, batch included; options.norm replaces the RMS)
   accept       E <= 1
   next step    h * clamp(safety * r_n^(b1/k) * r_{n-1}^(b2/k) * r_{n-2}^(b3/k), ...)
                with r = 1/E, k the method's order, b1 = p+i+d, b2 = -(p+2d), b3 = d;
                clamped to [1, factor_max] on acceptance (accepted steps never
                shrink) and [factor_min, safety] on rejection; the history only
                advances on accepted steps. Defaults: I controller (p=0, i=1, d=0),
                safety 0.9, factors [0.2, 10] = torchdiffeq's.
   first step   Hairer's selection (Hairer, Norsett, Wanner I, II.4), as torchdiffeq.
   step_ts      times the solver must step to exactly; jump_ts also restart f
                (discontinuities: stages at the jump are evaluated just before it,
                the restart just after it, as torchdiffeq's perturb).
   dtmin/dtmax  bounds on |h|; a step at dtmin is accepted whatever its error.
   Non-finite values in a trial step reject it (h *= factor_min); 20 in a row,
   or NaN/Inf in z0 or at an accepted point, stop with NDE_ERR_NONFINITE.

IMPLICIT METHOD (kvaerno5)
   Each stage solves Y = base + h*gamma*f(t_i, Y) by simplified Newton with the
   Jacobian J = df/dz computed by reverse-mode autodiff (one nde_vjp per row, at
   the start of each step) and a dense LU with partial pivoting (in double) of
   I - h*gamma*J. The state is treated as one vector of z->size unknowns (the
   batch is not split), so J is dense: n <= NDE_IMPLICIT_MAX_DIM (4096). Newton
   stops when the scaled update is below newton_kappa (0.03) times the
   tolerance; divergence or no convergence in newton_max_iters (10) rejects the
   step and halves h.

EVENTS
   options.event g(t, z) returns a tensor of any size: each element is one event
   function. After each accepted step the solver looks for sign changes (filtered
   by options.event_direction: +1 rising, -1 falling, 0 both), locates the
   earliest on the step's interpolant with the Illinois method to options.event_tol
   (default 1e-12 in t), stops there and returns NDE_EVENT with sol.t_event,
   sol.z_event (taped in a taped solve) and sol.event_index.

ERRORS (status + a message naming the method, t and h)
   NDE_ERR_ARG       NULL inputs, empty ts, non-monotonic or non-finite ts, bad
                     tolerances/options, a grid that does not span ts, unknown
                     method names (nde_method_from_name).
   NDE_ERR_SHAPE     f returned a tensor whose shape differs from z.
   NDE_ERR_NONFINITE NaN or Inf in z0 or in f.
   NDE_ERR_MAX_STEPS more than options.max_num_steps step attempts.
   NDE_ERR_STEP_UNDERFLOW  the step size fell below the resolution of t.
   NDE_ERR_UNSUPPORTED     a fixed-step implicit step whose Newton iteration fails.
   e.g. "nde_solve (dopri5): at t = 0.99999999999999967, h = 1.1e-16: step size underflow"

BUILDING BLOCKS (for nde_adjoint.h and other code)
   nde_tableau / nde_tableau_get / nde_tableau_by_name   Butcher tableaus
   nde_rk_step            one explicit RK step (taped when grad mode is on)
   nde_error_norm         the scaled error norm above
   nde_step_controller    the PID controller as a pure state machine
   nde_initial_step       Hairer's initial step
   nde_step_eval / nde_solution_eval   dense output of one step / of the solution
   nde_jacobian, nde_lu_factor, nde_lu_solve   the implicit method's linear algebra

ADDING A METHOD (e.g. the Taylor-series solver)
   1. add an enum value before NDE_METHOD_COUNT in nde_method (append: the
      values are part of the ABI);
   2. add its row to nde__methods[] (name, kind, tableau or NULL, order,
      error order: 0 = fixed step only, implicit flag) in the same position;
   3. for a new kind, add a value to nde_method_kind and a case in
      nde__try_step() that fills an nde__attempt (y1, err or NULL, f1 if known,
      the stage derivatives for an RK interpolant) from (t, z, f(t, z), h).
      Everything else (step control, outputs, dense output, events, stats,
      taped/untaped memory handling) is shared.
*/
#ifndef NDE_SOLVERS_H
#define NDE_SOLVERS_H

#include "nde.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- fields */
typedef nde_tensor *(*nde_field_fn)(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user);
/* Event functions: same signature; each element of the result is one g_i(t, z). */
typedef nde_tensor *(*nde_event_fn)(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user);
/* A norm replacing the RMS in step control: scaled = err / (atol + rtol*max(|y0|,|y1|)). */
typedef double (*nde_norm_fn)(nde_ctx *ctx, const nde_tensor *scaled, void *user);

/* ---------------------------------------------------------------- methods */
typedef enum nde_method {
    NDE_EULER = 0, NDE_MIDPOINT, NDE_HEUN, NDE_RALSTON, NDE_RK4, NDE_RK4_38,
    NDE_BOSH3, NDE_ADAPTIVE_HEUN, NDE_FEHLBERG2, NDE_DOPRI5, NDE_TSIT5, NDE_DOPRI8,
    NDE_EXPLICIT_ADAMS, NDE_IMPLICIT_ADAMS, NDE_KVAERNO5,
    NDE_TAYLOR,                /* TAYLOR: the Taylor-series method */
    NDE_METHOD_COUNT
} nde_method;

typedef enum nde_method_kind {
    NDE_KIND_ERK = 0,          /* explicit Runge-Kutta from a tableau        */
    NDE_KIND_ADAMS_EXPLICIT,   /* Adams-Bashforth                            */
    NDE_KIND_ADAMS_IMPLICIT,   /* Adams-Bashforth-Moulton predictor-corrector */
    NDE_KIND_ESDIRK,           /* diagonally implicit RK, explicit 1st stage  */
    NDE_KIND_TAYLOR            /* TAYLOR: Taylor series on jets (nde.h)       */
} nde_method_kind;

#define NDE_RK_MAX_STAGES 14
#define NDE_RK_MAX_DENSE 6
#define NDE_IMPLICIT_MAX_DIM 4096
#define NDE_ADAMS_MAX_ORDER 8

/* A Butcher tableau. Explicit: a is strictly lower triangular. ESDIRK: a[i][i] =
   gamma for i >= 1, a[0][0] = 0 (explicit first stage). */
typedef struct nde_tableau {
    const char *name;
    int stages;
    int order;               /* order of the propagated solution            */
    int embedded_order;      /* order of the embedded solution, 0 = none    */
    int fsal;                /* last stage is f(t + h, y1)                   */
    double gamma;            /* ESDIRK diagonal, 0 for explicit methods     */
    double c[NDE_RK_MAX_STAGES];
    double a[NDE_RK_MAX_STAGES][NDE_RK_MAX_STAGES];
    double b[NDE_RK_MAX_STAGES];
    double b_error[NDE_RK_MAX_STAGES];  /* b - b_hat: err = h sum b_error_i k_i */
    /* Dense output: y(t0 + theta h) = y0 + h sum_i b_i(theta) k_i with
       b_i(theta) = sum_{p < dense_degree} dense[i][p] theta^(p+1);
       dense_degree 0 = Hermite cubic through (y0, f0, y1, f1). */
    int dense_degree;
    double dense[NDE_RK_MAX_STAGES][NDE_RK_MAX_DENSE];
    /* ESDIRK Newton start: k_i ~ sum_j predictor[i][j] k_j (j < i). */
    double predictor[NDE_RK_MAX_STAGES][NDE_RK_MAX_STAGES];
} nde_tableau;

typedef struct nde_method_info {
    nde_method method;
    const char *name;
    nde_method_kind kind;
    const nde_tableau *tableau;   /* NULL for the Adams methods              */
    int order;                    /* convergence order (Adams: default 4)   */
    int error_order;              /* exponent order k of the controller; 0 = no
                                     error estimate (fixed steps only)      */
    int implicit;
} nde_method_info;

NDE_API const nde_method_info *nde_method_get(nde_method m);   /* NULL if out of range */
NDE_API const nde_tableau *nde_tableau_get(nde_method m);      /* NULL if not an RK method */
/* "dopri5", "tsit5", ... ; unknown names record NDE_ERR_ARG listing the known ones. */
NDE_API nde_status nde_method_from_name(nde_ctx *ctx, const char *name, nde_method *out);
NDE_API const nde_tableau *nde_tableau_by_name(nde_ctx *ctx, const char *name);
NDE_API const char *nde_method_name(nde_method m);

/* ---------------------------------------------------------------- options */
/* ---- added for nde_adjoint.h (step callback) ----
   Called after every accepted step with the step's data (t0, h, y0, y1, f0, f1
   and, for methods with their own interpolant, the stage derivatives k), so a
   caller can evaluate the step's interpolant (the Gauss-Legendre adjoint reads
   it at quadrature nodes) or record the step grid without keeping states. The
   tensors are valid during the call only. A non-OK status stops the solve. */
struct nde_step;
typedef nde_status (*nde_step_fn)(nde_ctx *ctx, const struct nde_step *step, void *user);
/* ---- end of the nde_adjoint.h addition ---- */

typedef struct nde_solve_options {
    nde_method method;             /* NDE_DOPRI5                                      */
    double rtol, atol;             /* 1e-7, 1e-9 (torchdiffeq's defaults)            */
    const nde_tensor *atol_tensor; /* per-component atol, shape of z0 (NULL: atol)   */
    nde_norm_fn norm; void *norm_user;  /* NULL: RMS over the whole tensor          */
    double first_step;             /* 0: Hairer's selection                          */
    int64_t max_num_steps;         /* step attempts (accepted + rejected); 100000    */
    double dtmin, dtmax;           /* 0 = unbounded                                  */
    const double *step_ts; int num_step_ts;  /* must be stepped to exactly           */
    const double *jump_ts; int num_jump_ts;  /* discontinuities of f: stepped to, f restarted */
    double safety;                 /* 0.9                                            */
    double factor_min, factor_max; /* 0.2, 10                                        */
    double pcoeff, icoeff, dcoeff; /* 0, 1, 0: I controller                          */
    double step_size;              /* > 0: fixed steps of this size                  */
    const double *grid; int grid_len;  /* fixed steps on this grid (spans ts)        */
    int adams_order;               /* 1..NDE_ADAMS_MAX_ORDER, default 4              */
    int adams_max_iters;           /* implicit Adams corrector iterations, 4         */
    int newton_max_iters;          /* 10                                             */
    double newton_kappa;           /* 0.03                                           */
    int dense;                     /* keep every step's interpolant in sol.steps     */
    int record_steps;              /* keep every accepted step's (t0, h, y0, y1)      */
    nde_step_fn on_step; void *on_step_user;  /* (nde_adjoint.h) after each accepted step */
    nde_event_fn event; void *event_user;
    int event_direction;           /* 0 both, +1 rising, -1 falling                  */
    double event_tol;              /* 1e-12 (absolute, in t)                          */
    int taylor_order;              /* TAYLOR: method order, 0 = from the tolerances   */
} nde_solve_options;

NDE_API nde_solve_options nde_solve_options_default(void);

/* ---------------------------------------------------------------- results */
typedef struct nde_solve_stats {
    int64_t nfe;               /* evaluations of f (Jacobian rows included)     */
    int64_t njev;              /* Jacobian evaluations                          */
    int64_t nlu;               /* LU factorisations                             */
    int64_t accepted, rejected;
    int64_t newton_failures;
} nde_solve_stats;

/* One accepted step [t0, t0 + h] (h < 0 backwards). y0, y1 always; f0, f1 and k
   (the stage derivatives, for methods with their own interpolant) with dense
   output. In an untaped solve the tensors are owned by the solution; in a taped
   solve they are the taped tensors in the work arena. */
typedef struct nde_step {
    double t0, h;
    nde_tensor *y0, *y1, *f0, *f1;
    nde_tensor **k; int num_k;
} nde_step;

struct nde__solution_store;
typedef struct nde_solution {
    nde_method method;
    nde_status status;             /* what nde_solve returned                     */
    int num_ts, num_out;           /* requested outputs / filled outputs          */
    nde_tensor **ys;               /* ys[i] = z(ts[i]), i < num_out                */
    double t_final;                /* where the solve stopped                     */
    nde_tensor *z_final;
    int event_index;               /* NDE_EVENT: which g_i fired, else -1         */
    double t_event;
    nde_tensor *z_event;
    nde_solve_stats stats;
    int taped;                     /* ops were recorded on the tape              */
    int dense;                     /* steps carry interpolants                    */
    int64_t num_steps;             /* dense or record_steps: accepted steps       */
    nde_step *steps;
    struct nde__solution_store *store;
} nde_solution;

/* Integrate z' = f(t, z) from ts[0] over ts[]; opts NULL = defaults. Returns
   NDE_OK, NDE_EVENT or an error (also in sol->status and nde_ctx_status). */
NDE_API nde_status nde_solve(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0,
                             int num_ts, const double *ts, const nde_solve_options *opts,
                             nde_solution *sol);
NDE_API void nde_solution_free(nde_ctx *ctx, nde_solution *sol);
/* z(t) from the dense output (options.dense); a new tensor (taped if the solve was). */
NDE_API nde_tensor *nde_solution_eval(nde_ctx *ctx, const nde_solution *sol, double t);
/* Index of the step containing t, -1 if none. */
NDE_API int64_t nde_solution_find_step(const nde_solution *sol, double t);
/* The interpolant of one step at t (t within the step). */
NDE_API nde_tensor *nde_step_eval(nde_ctx *ctx, const nde_solution *sol, int64_t step, double t);
/* sol->ys stacked on a new leading axis: (num_out, ...z0.shape); taped. */
NDE_API nde_tensor *nde_solution_stack(nde_ctx *ctx, const nde_solution *sol);
/* nde_solve + nde_solution_stack + nde_solution_free; NULL on error (status in ctx). */
NDE_API nde_tensor *nde_odeint(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0,
                               int num_ts, const double *ts, const nde_solve_options *opts);

/* ---------------------------------------------------------------- building blocks */
/* One explicit RK step from (t, z) with step h. k1 = f(t, z) if known (else NULL).
   z_new: the new state (taped when grad mode is on and inputs require grad).
   err: if not NULL, receives h sum b_error_i k_i (untaped; NULL if the tableau has
   no error estimate). stages: if not NULL, an array of tab->stages pointers that
   receives the stage derivatives k_i. */
NDE_API nde_status nde_rk_step(nde_ctx *ctx, const nde_tableau *tab, nde_field_fn f, void *user,
                               double t, nde_tensor *z, double h, nde_tensor *k1,
                               nde_tensor **z_new, nde_tensor **err, nde_tensor **stages);
/* norm(err / (atol + rtol max(|y0|, |y1|))) with the options' tolerances and norm. */
NDE_API double nde_error_norm(nde_ctx *ctx, const nde_solve_options *opts, const nde_tensor *err,
                              const nde_tensor *y0, const nde_tensor *y1);

typedef struct nde_step_controller {
    double safety, factor_min, factor_max;
    double pcoeff, icoeff, dcoeff;
    double order;                  /* k: exponents are beta/k                       */
    double dtmin, dtmax;
    double r_prev1, r_prev2;       /* 1/E of the last two accepted steps            */
} nde_step_controller;
NDE_API nde_step_controller nde_step_controller_init(const nde_solve_options *opts, int error_order);
/* Returns 1 to accept the step of size h with error ratio err_norm, 0 to reject;
   *h_next (same sign as h) is the next step to try. */
NDE_API int nde_step_controller_propose(nde_step_controller *c, double err_norm, double h, double *h_next);

/* Hairer's initial step (torchdiffeq's _select_initial_step); f0 = f(t0, z0) or NULL.
   direction +1/-1; *h0 receives the signed step; *nfe (may be NULL) is increased. */
NDE_API nde_status nde_initial_step(nde_ctx *ctx, nde_field_fn f, void *user, double t0, nde_tensor *z0,
                                    nde_tensor *f0, int error_order, double direction,
                                    const nde_solve_options *opts, double *h0, int64_t *nfe);

/* Hermite cubic on [t0, t0 + h] at theta in [0, 1]; taped. */
NDE_API nde_tensor *nde_hermite_eval(nde_ctx *ctx, nde_tensor *y0, nde_tensor *y1, nde_tensor *f0,
                                     nde_tensor *f1, double h, double theta);

/* Dense Jacobian df/dz at (t, z), row-major n x n doubles (n = z->size), one
   reverse pass per row. Parameter gradients are left untouched. */
NDE_API nde_status nde_jacobian(nde_ctx *ctx, nde_field_fn f, void *user, double t, nde_tensor *z, double *jac);
/* LU with partial pivoting in place (row-major n x n); returns 0, or k+1 if the
   pivot of column k is zero. */
NDE_API int64_t nde_lu_factor(int64_t n, double *a, int64_t *piv);
NDE_API void nde_lu_solve(int64_t n, const double *lu, const int64_t *piv, double *b);
/* Weights w_j = integral over [a, b] of the Lagrange basis polynomial of node
   x_j (m distinct nodes, m <= 16). Used for the Adams coefficients. */
NDE_API void nde_lagrange_weights(int m, const double *x, double a, double b, double *w);

/* ---------------------------------------------------------------- TAYLOR
   The Taylor-series method (method "taylor", NDE_TAYLOR; the jets of nde.h).
   Each step computes the normalised Taylor coefficients z_0..z_p of the
   solution at (t, z) with nde_ode_taylor_coeffs (the field's recorded jet
   program extended one order at a time: O(p^2) products per op) and takes
   z(t + h) = sum_k z_k h^k, evaluated in Horner-free form with one lincomb.
   Order p: options.taylor_order, or 0 for the optimal order of Jorba & Zou
   (2005, sec. 3.2) rounded up: p = ceil(-ln(tol) / 2 + 1), tol = the smaller
   positive tolerance, clamped to 2..NDE_JET_MAX_ORDER.
   Step size (adaptive, the default): from the last two coefficients,
       h = exp(-0.7 / (p - 1)) * min over j in {p-1, p} of (eps / |z_j|_inf)^(1/j),
       eps = max(atol, rtol |z|_inf),
   (Jorba & Zou, "A software package for the numerical integration of ODEs by
   means of high-order Taylor methods", Experimental Mathematics 14, 2005,
   sec. 3.2, with their safety factor; atol_tensor and norm are not used here);
   no step is rejected. The step is also clipped to the next output time, so
   outputs are Taylor values, not interpolants; dtmax and step_ts apply,
   first_step is ignored. With options.step_size or options.grid the steps are
   fixed (outputs between grid points then come from the Hermite interpolant).
   The field must be written on jets: pass nde_jet_field_plain as the field
   and an nde_jet_field_ref as its user data. The same pair serves every other
   method (it evaluates the jet field at order 0). stats.nfe counts one
   evaluation per Taylor coefficient (one extension of the recorded field).
   Taped solves differentiate through the coefficients (direct mode). */
typedef struct nde_jet_field_ref { nde_jet_field f; void *user; } nde_jet_field_ref;
/* An nde_field_fn evaluating the jet field ((nde_jet_field_ref *)ref)->f at order 0. */
NDE_API nde_tensor *nde_jet_field_plain(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *ref);
/* TayNODE R_K (nde_taynode_reg) over a solution's accepted steps: the trapezoid
   rule on the step points t_0 < t_1 < ... (sol from a solve with record_steps
   or dense; in a taped solve the points carry their history, so R_K is
   differentiable through the solve). */
NDE_API nde_tensor *nde_taynode_reg_solution(nde_ctx *ctx, nde_jet_field f, void *user, int K, const nde_solution *sol);

/* ================================================================ SDE
   Stochastic differential equations (added by the zoo issue; this block and
   its implementation block are self-contained):

       dz = f(t, z) dt + g(t, z) dW      (Ito)
       dz = f(t, z) dt + g(t, z) o dW    (Stratonovich)

   THE SDE (nde_sde)
     drift       f, an nde_field_fn (returns z's shape).
     diffusion   g, an nde_field_fn; or diffusion_jet, the same written on jets
                 (nde_jet_field). With diffusion_jet, Milstein's derivative term
                 is an exact forward-mode JVP (nde_jvp); with diffusion alone it
                 is derivative-free (below). If both are given, diffusion is used
                 for plain values. One user pointer serves all three.
     type        NDE_SDE_ITO or NDE_SDE_STRATONOVICH.
     noise       diagonal: W has z's shape; g returns z's shape (or a shape that
                   broadcasts to it, e.g. a (1, d) row); the noise term is g * dW
                   elementwise. g_i should depend on z_i only (the assumption of
                   the diagonal Milstein term, as in torchsde).
                 scalar: one Brownian motion per sample, W of shape (batch, 1)
                   ((1) for a 1-D state); g returns z's shape; the noise term is
                   g * dW broadcast over the columns.
                 additive: g(t) does not depend on z (diagonal W). Ito and
                   Stratonovich coincide, so every method applies.

   METHODS (nde_sde_options.method; nde_sde_method_from_name)
     name             calculus            strong order                 evals/step
     euler            Ito (or additive)   0.5; 1.0 additive            f, g
     milstein         Ito, Stratonovich   1.0                          f, g, JVP of g
     euler_heun       Stratonovich        0.5; 1.0 commutative noise   f, 2 g
     reversible_heun  Stratonovich        0.5; 1.0 additive            f, g
     sra1             additive noise      1.5                          2 f, 2 g
     euler (Euler-Maruyama): z + f h + g dW.
     milstein: z + f h + g dW + 1/2 (g'g) (dW^2 - h)  (Ito; dW^2 for
       Stratonovich), g'g = J_g(z) g(z). Derivative-free without diffusion_jet:
       g'g ~ (g(t, z + g sqrt(h)) - g(t, z)) / sqrt(h) (Kloeden & Platen 11.1,
       Roessler's derivative-free Milstein); strong order 1 either way.
     euler_heun: z~ = z + g dW; z + f h + 1/2 (g(z) + g(z~)) dW (torchsde's).
     reversible_heun: Kidger, Foster, Li, Lyons, "Efficient and Accurate
       Gradients for Neural SDEs" (NeurIPS 2021), eq. (4): the state is
       (y, y^, mu, sigma) with y^_0 = y_0, mu = f(t, y^), sigma = g(t, y^):
         y^_{n+1} = 2 y_n - y^_n + mu_n h + sigma_n dW
         mu_{n+1}, sigma_{n+1} = f, g at (t_{n+1}, y^_{n+1})
         y_{n+1}  = y_n + (mu_n + mu_{n+1}) h/2 + (sigma_n + sigma_{n+1}) dW/2.
       One f and one g per step, and algebraically reversible: the step can
       be undone exactly from its end state.
     sra1: Roessler, "Runge-Kutta methods for the strong approximation of
       solutions of stochastic differential equations", SIAM J. Numer. Anal.
       48 (2010), the SRA1 scheme for additive noise (order 1.5 strong, 2.0
       weak); it uses I_(1,0) = integral over the step of (W_u - W_t) du =
       h (dW/2 + H), H the space-time Levy area of the Brownian path:
         H2 = z + 3/4 h f(t, z) + 3/2 g(t + h) I_(1,0)/h
         z' = z + h (f(t, z) + 2 f(t + 3h/4, H2)) / 3 + g(t + h) dW
                + (g(t) - g(t + h)) I_(1,0)/h.
   The Stratonovich-only methods refuse Ito SDEs with non-additive noise (and
   euler refuses Stratonovich ones) with NDE_ERR_UNSUPPORTED: convert the
   SDE with nde_sde_convert (drift f -/+ 1/2 g'g by an exact JVP) or pick
   another method.

   STEPS
   Fixed: the grid t_0 + k dt (options.dt), or options.grid, merged with the
   output times ts (strictly increasing), so every output is a step end.

   THE BROWNIAN PATH (nde_brownian): a virtual Brownian tree
   A Brownian motion on [t0, t1] of any shape, reproducible from a seed: every
   query is a pure function of (seed, s, t), whatever was queried before and
   in whatever order, so the backward pass (or a second solve) sees exactly
   the same path. The tree bisects [t0, t1] `depth` times. Each node carries
   the increment W and the space-time Levy area H of its interval (Philox 4x32
   normals keyed by (seed, node, element)); a node's halves are drawn from the
   exact conditional law given (W, H) (derived from the Gaussian conditioning
   of (W_mid, H_left, H_right); cf. Foster's and Jelincic-Foster-Kidger's
   bridges):
       W_left = W/2 + 3H/2 + (sqrt(h)/4) Z1,  W_right = W - W_left,
       S = H/2 - (sqrt(h)/4) Z1, R = sqrt(h/12) Z2,
       H_left = (S + R)/2,  H_right = (S - R)/2.
   At the 2^depth + 1 dyadic points t0 + k (t1 - t0) 2^-depth the path is an
   exact Brownian sample (increments and Levy areas of every dyadic interval
   included). Inside a leaf interval the path is the quadratic with the leaf's
   increment and area, W(a + th) = W(a) + th W + 6 th (1 - th) H, so W(s, t)
   and H(s, t) for arbitrary s < t are exact functionals of one continuous
   path (a Brownian sample at resolution tol). tol (nde_brownian_init) sets
   depth = ceil(log2((t1 - t0) / tol)), at most NDE_BROWNIAN_MAX_DEPTH; a query
   costs O(depth) node draws per element, O(1) amortised for increasing
   queries (the last root-to-leaf path is cached). Host memory:
   4 (depth + 1) + 4 doubles per element.
   nde_sde_solve without options.bm builds its own path over
   [ts[0], ts[0] + dt 2^ceil(log2 N)] (N = number of grid steps) with leaves
   of dt/16, so the grid points t_0 + k dt are dyadic points: exact.

   GRADIENTS
   Backpropagation through the solver: with grad mode on and z0 or the
   drift/diffusion at (t0, z0) requiring gradients, every step is recorded on
   the tape (the Brownian increments are constants), so nde_backward gives the
   exact gradient of the discrete solve for that path (any method; Milstein's
   JVP is taped too). Otherwise the solve runs off the tape in constant
   memory. The stochastic adjoint: nde_sdeint_adjoint, reversible Heun's exact
   algebraic reverse (chosen over the continuous Stratonovich adjoint of Li et
   al. 2020: its gradients are those of the discrete solve, not an
   approximation of them). */
typedef enum nde_sde_type { NDE_SDE_ITO = 0, NDE_SDE_STRATONOVICH } nde_sde_type;
typedef enum nde_noise_type { NDE_NOISE_DIAGONAL = 0, NDE_NOISE_SCALAR, NDE_NOISE_ADDITIVE } nde_noise_type;
typedef enum nde_sde_method {
    NDE_SDE_EULER = 0,          /* Euler-Maruyama                              */
    NDE_SDE_MILSTEIN,
    NDE_SDE_EULER_HEUN,
    NDE_SDE_REVERSIBLE_HEUN,
    NDE_SDE_SRA1,
    NDE_SDE_METHOD_COUNT
} nde_sde_method;

typedef struct nde_sde {
    nde_field_fn drift;            /* f(t, z)                                     */
    nde_field_fn diffusion;        /* g(t, z), or NULL with diffusion_jet          */
    nde_jet_field diffusion_jet;   /* g on jets (optional): exact Milstein term    */
    void *user;
    nde_sde_type type;
    nde_noise_type noise;
} nde_sde;

#define NDE_BROWNIAN_MAX_DEPTH 48
typedef struct nde_brownian {
    double t0, t1;
    int ndim; int64_t shape[NDE_MAX_DIMS];
    int64_t size;                  /* elements of W                               */
    int depth;
    uint64_t seed;
    /* cache of the last root-to-leaf path (host, owned) */
    int64_t *node;                 /* node index per level, -1 = none             */
    double *levels;                /* per level: W(a), W(b), G(a), H; G = int W   */
    double *scratch;               /* 4 size: W and G at the two query points     */
} nde_brownian;
/* A path on [t0, t1] (t0 < t1) of the given shape with leaves no wider than
   tol (> 0). Returns NDE_OK or an error (bad arguments, out of memory). */
NDE_API nde_status nde_brownian_init(nde_ctx *ctx, nde_brownian *bm, double t0, double t1, int ndim,
                                     const int64_t *shape, double tol, uint64_t seed);
NDE_API void nde_brownian_free(nde_brownian *bm);
/* Host arrays of bm->size doubles: dw = W(t) - W(s) and, if h is not NULL, the
   space-time Levy area of [min(s,t), max(s,t)]:
   H = (1/|t - s|) integral (W_u - W_min) du - (W_max - W_min)/2. */
NDE_API nde_status nde_brownian_query(nde_ctx *ctx, nde_brownian *bm, double s, double t, double *dw, double *h);
/* The same as tensors of bm's shape (work arena, no history); h may be NULL. */
NDE_API nde_status nde_brownian_increment(nde_ctx *ctx, nde_brownian *bm, double s, double t, nde_tensor **dw,
                                          nde_tensor **h);

typedef struct nde_sde_options {
    nde_sde_method method;         /* NDE_SDE_EULER                               */
    double dt;                     /* step size (> 0), unless grid is given       */
    const double *grid; int grid_len;  /* increasing step grid spanning ts        */
    nde_brownian *bm;              /* the path; NULL: an internal one from seed   */
    uint64_t seed;                 /* internal path's Philox key                  */
} nde_sde_options;
NDE_API nde_sde_options nde_sde_options_default(void);
NDE_API const char *nde_sde_method_name(nde_sde_method m);
/* "euler", "milstein", "euler_heun", "reversible_heun", "sra1". */
NDE_API nde_status nde_sde_method_from_name(nde_ctx *ctx, const char *name, nde_sde_method *out);
/* The shape of W for a state z under sde's noise type. */
NDE_API nde_status nde_sde_noise_shape(nde_ctx *ctx, const nde_sde *sde, const nde_tensor *z, int *ndim, int64_t *shape);
/* Solve from ts[0] (z0) over strictly increasing ts; ys (num_ts pointers)
   receives z(ts[i]) (ys[0] = z0). */
NDE_API nde_status nde_sde_solve(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                 const nde_sde_options *opts, nde_tensor **ys);
/* The same, stacked: (num_ts, ...z0.shape); NULL on error. */
NDE_API nde_tensor *nde_sdeint(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                               const nde_sde_options *opts);
/* The stochastic adjoint (method reversible_heun only): the same values as
   nde_sdeint, recorded as ONE node on the tape. Its backward reconstructs the
   states backwards by reversible Heun's exact algebraic reverse (Kidger,
   Foster, Li, Lyons 2021) on the same Brownian path and backpropagates
   through one step at a time: memory O(1) in the number of steps (plus 12
   bytes a step for the grid), and gradients equal to backpropagation through
   the solver up to the round-off of the reconstruction. Gradients reach z0
   and the parameters (the current parameter-gradient array). A path given in
   options.bm must stay alive until the backward pass. */
NDE_API nde_tensor *nde_sdeint_adjoint(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                       const nde_sde_options *opts);
/* Ito <-> Stratonovich. The same process written in the other calculus: the
   drift becomes f - 1/2 (J_g g) (Ito -> Stratonovich) or f + 1/2 (J_g g)
   (Stratonovich -> Ito), the diffusion is unchanged. J_g g is the exact JVP of
   the diffusion along itself, so src->diffusion_jet is required for diagonal
   and scalar noise (for diagonal noise this is the Ito-Stratonovich correction
   when g_i depends on z_i only, the diagonal-noise assumption above); with
   additive noise the two calculi coincide and the SDE is copied. conv->sde is
   the converted SDE: pass &conv->sde to any solver (an Ito model can then use
   reversible Heun and nde_sdeint_adjoint). It points into conv and to src's
   user data: keep both alive and in place while it is used. Converting to
   the SDE's own type copies it. The correction is taped (gradients flow
   through it); the time it sees is a constant. */
typedef struct nde_sde_conversion {
    nde_sde sde;                   /* the converted SDE                           */
    nde_sde src;                   /* a copy of the original                      */
    double sign;                   /* -1/2 (to Stratonovich) or +1/2 (to Ito)      */
} nde_sde_conversion;
NDE_API nde_status nde_sde_convert(nde_ctx *ctx, const nde_sde *src, nde_sde_type to, nde_sde_conversion *conv);
/* ================================================================ end of SDE */

/* ================================================================ SYMPLECTIC
   Symplectic integrators for separable Hamiltonian systems (added by the zoo
   issue; self-contained like the SDE block). The state z = [q, p] splits its
   LAST axis into two equal halves, q first; f is an ordinary nde_field_fn
   returning [dq/dt, dp/dt] = [dH/dp, -dH/dq]. The methods assume a separable
   field: dq/dt depends on (t, p) only and dp/dt on (t, q) only (H = T(p) + V(q):
   nde_zoo.h's separable HNN, or a second-order system q'' = a(q) with p = q');
   each evaluation of f uses one half of its output.
     NDE_SYMPLECTIC_EULER  p1 = p + h F_p(t, q);  q1 = q + h F_q(t, p1)   order 1
     NDE_LEAPFROG          Stoermer-Verlet, kick-drift-kick:              order 2
                             p_h = p + h/2 F_p(t, q)
                             q1  = q + h F_q(t + h/2, p_h)
                             p1  = p_h + h/2 F_p(t + h, q1)
                           time-reversible; the last kick's F_p is reused by
                           the next step (two evaluations of f a step).
   Both are symplectic maps, so for an autonomous H the energy error stays
   bounded, O(h^order), over exponentially long times instead of drifting
   (Hairer, Lubich, Wanner, "Geometric Numerical Integration", VI and IX).
   Steps: dt merged with the output times ts (strictly increasing) as the SDE
   solver does. Taped when grad mode is on and z0 or f(t0, z0) requires
   gradients (backpropagation through the steps), else constant memory. */
typedef enum nde_symplectic_method { NDE_SYMPLECTIC_EULER = 0, NDE_LEAPFROG } nde_symplectic_method;
/* ys (num_ts pointers) receives z(ts[i]) (ys[0] = z0). */
NDE_API nde_status nde_symplectic_solve(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, int num_ts,
                                        const double *ts, double dt, nde_symplectic_method method, nde_tensor **ys);
/* ================================================================ end of SYMPLECTIC */

#ifdef __cplusplus
}
#endif
#endif /* NDE_SOLVERS_H */

/* ======================================================================== */
/*                              IMPLEMENTATION                              */
/* ======================================================================== */
#if defined(NDE_IMPLEMENTATION) && !defined(NDE_SOLVERS_IMPLEMENTATION)
#define NDE_SOLVERS_IMPLEMENTATION
#endif
#if defined(NDE_SOLVERS_IMPLEMENTATION) && !defined(NDE_SOLVERS_IMPLEMENTATION_DONE)
#define NDE_SOLVERS_IMPLEMENTATION_DONE

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(NDE_MALLOC)
#define NDE_MALLOC(sz) malloc(sz)
#define NDE_REALLOC(p, sz) realloc(p, sz)
#define NDE_FREE(p) free(p)
#endif

/* ------------------------------------------------------------ tableaus
   Coefficients from the papers cited; b_error = b - b_hat. */
static const nde_tableau nde__tab_euler = {
    "euler", 1, 1, 0, 0, 0.0, .c = {0}, .a = {{0}}, .b = {1}, .b_error = {0}
};
static const nde_tableau nde__tab_midpoint = {
    "midpoint", 2, 2, 0, 0, 0.0, .c = {0, 0.5}, .a = {{0}, {0.5}}, .b = {0, 1}, .b_error = {0}
};
static const nde_tableau nde__tab_heun = {
    "heun", 2, 2, 0, 0, 0.0, .c = {0, 1}, .a = {{0}, {1}}, .b = {0.5, 0.5}, .b_error = {0}
};
static const nde_tableau nde__tab_ralston = {
    "ralston", 2, 2, 0, 0, 0.0, .c = {0, 2.0 / 3.0}, .a = {{0}, {2.0 / 3.0}}, .b = {0.25, 0.75}, .b_error = {0}
};
static const nde_tableau nde__tab_rk4 = {
    "rk4", 4, 4, 0, 0, 0.0, .c = {0, 0.5, 0.5, 1},
    .a = {{0}, {0.5}, {0, 0.5}, {0, 0, 1}},
    .b = {1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0}, .b_error = {0}
};
static const nde_tableau nde__tab_rk4_38 = {
    "rk4_38", 4, 4, 0, 0, 0.0, .c = {0, 1.0 / 3.0, 2.0 / 3.0, 1},
    .a = {{0}, {1.0 / 3.0}, {-1.0 / 3.0, 1}, {1, -1, 1}},
    .b = {0.125, 0.375, 0.375, 0.125}, .b_error = {0}
};
/* Bogacki & Shampine, Appl. Math. Lett. 2 (1989). */
static const nde_tableau nde__tab_bosh3 = {
    "bosh3", 4, 3, 2, 1, 0.0, .c = {0, 0.5, 0.75, 1},
    .a = {{0}, {0.5}, {0, 0.75}, {2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0}},
    .b = {2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0},
    .b_error = {2.0 / 9.0 - 7.0 / 24.0, 1.0 / 3.0 - 0.25, 4.0 / 9.0 - 1.0 / 3.0, -0.125}
};
/* Heun's method with Euler embedded; the third stage is f(t + h, y1) (FSAL). */
static const nde_tableau nde__tab_adaptive_heun = {
    "adaptive_heun", 3, 2, 1, 1, 0.0, .c = {0, 1, 1},
    .a = {{0}, {1}, {0.5, 0.5}},
    .b = {0.5, 0.5, 0}, .b_error = {-0.5, 0.5, 0}
};
/* Fehlberg's RK1(2) (NASA TR R-315, 1969), propagating the second-order solution. */
static const nde_tableau nde__tab_fehlberg2 = {
    "fehlberg2", 3, 2, 1, 0, 0.0, .c = {0, 0.5, 1},
    .a = {{0}, {0.5}, {1.0 / 256.0, 255.0 / 256.0}},
    .b = {1.0 / 512.0, 255.0 / 256.0, 1.0 / 512.0},
    .b_error = {1.0 / 512.0 - 1.0 / 256.0, 0, 1.0 / 512.0}
};
/* Dormand & Prince, J. Comp. Appl. Math. 6 (1980); dense output of Shampine,
   Math. Comp. 46 (1986) (Hairer's DOPRI5 d_i), expanded in powers of theta. */
static const nde_tableau nde__tab_dopri5 = {
    "dopri5", 7, 5, 4, 1, 0.0,
    .c = {0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1, 1},
    .a = {{0},
          {0.2},
          {3.0 / 40.0, 9.0 / 40.0},
          {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0},
          {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0},
          {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0},
          {35.0 / 384.0, 0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0}},
    .b = {35.0 / 384.0, 0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0},
    /* Shampine's 4th-order embedded solution (as torchdiffeq's dopri5), not Hairer's DOPRI5 one */
    .b_error = {35.0 / 384.0 - 1951.0 / 21600.0, 0, 500.0 / 1113.0 - 22642.0 / 50085.0, 125.0 / 192.0 - 451.0 / 720.0,
                -2187.0 / 6784.0 + 12231.0 / 42400.0, 11.0 / 84.0 - 649.0 / 6300.0, -1.0 / 60.0},
    .dense_degree = 4,
    .dense = {{1, -2.8535800653862835, 3.0717434641059005, -1.1270175653862835},
              {0, 0, 0, 0},
              {0, 4.0231333792303046, -6.2493215652889997, 2.675424484351598},
              {0, -3.7324019615885042, 10.068970589843675, -5.6855269615885042},
              {0, 2.5548038301849423, -6.3991123773510168, 3.5219323679207912},
              {0, -1.3744241142186024, 3.2726577522467291, -1.7672812570757455},
              {0, 1.3824689317781436, -3.7649378635562871, 2.3824689317781438}}
};
/* Tsitouras, Comput. Math. Appl. 62 (2011), with its dense output polynomials. */
static const nde_tableau nde__tab_tsit5 = {
    "tsit5", 7, 5, 4, 1, 0.0,
    .c = {0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1},
    .a = {{0},
          {0.161},
          {-0.008480655492356989, 0.335480655492357},
          {2.897153057105493, -6.359448489975075, 4.3622954328695815},
          {5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525},
          {5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383},
          {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
           2.324710524099774}},
    .b = {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
          2.324710524099774, 0},
    .b_error = {-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
                0.5823571654525552, -0.45808210592918697, 1.0 / 66.0},
    .dense_degree = 4,
    .dense = {{0.99999999999999978, -2.7637061972748258, 2.9132554618219126, -1.0530884977290216},
              {0, 0.13169999999999998, -0.22339999999999999, 0.1017},
              {0, 3.9302962368947512, -5.9410338721315048, 2.4906272856512528},
              {0, -12.411077166933676, 30.338188630282318, -16.548102889244902},
              {0, 37.509313416511041, -88.178904894766404, 47.379521962819283},
              {0, -27.896526289197286, 65.091894674793679, -34.870657861496611},
              {0, 1.5, -4, 2.5}}
};
/* Prince & Dormand, J. Comp. Appl. Math. 7 (1981): RK8(7)13M, with a 14th stage
   f(t + h, y1) (FSAL) for the dense output of Bogacki & Shampine, Comput. Math.
   Appl. 20 (1990) (coefficients as tabulated by torchdiffeq/diffrax). */
static const nde_tableau nde__tab_dopri8 = {
    "dopri8", 14, 8, 7, 1, 0.0,
    .c = {0, 1.0 / 18.0, 1.0 / 12.0, 1.0 / 8.0, 5.0 / 16.0, 3.0 / 8.0, 59.0 / 400.0, 93.0 / 200.0,
          5490023248.0 / 9719169821.0, 13.0 / 20.0, 1201146811.0 / 1299019798.0, 1, 1, 1},
    .a = {{0},
          {1.0 / 18.0},
          {1.0 / 48.0, 1.0 / 16.0},
          {1.0 / 32.0, 0, 3.0 / 32.0},
          {5.0 / 16.0, 0, -75.0 / 64.0, 75.0 / 64.0},
          {3.0 / 80.0, 0, 0, 3.0 / 16.0, 3.0 / 20.0},
          {29443841.0 / 614563906.0, 0, 0, 77736538.0 / 692538347.0, -28693883.0 / 1125000000.0,
           23124283.0 / 1800000000.0},
          {16016141.0 / 946692911.0, 0, 0, 61564180.0 / 158732637.0, 22789713.0 / 633445777.0,
           545815736.0 / 2771057229.0, -180193667.0 / 1043307555.0},
          {39632708.0 / 573591083.0, 0, 0, -433636366.0 / 683701615.0, -421739975.0 / 2616292301.0,
           100302831.0 / 723423059.0, 790204164.0 / 839813087.0, 800635310.0 / 3783071287.0},
          {246121993.0 / 1340847787.0, 0, 0, -37695042795.0 / 15268766246.0, -309121744.0 / 1061227803.0,
           -12992083.0 / 490766935.0, 6005943493.0 / 2108947869.0, 393006217.0 / 1396673457.0,
           123872331.0 / 1001029789.0},
          {-1028468189.0 / 846180014.0, 0, 0, 8478235783.0 / 508512852.0, 1311729495.0 / 1432422823.0,
           -10304129995.0 / 1701304382.0, -48777925059.0 / 3047939560.0, 15336726248.0 / 1032824649.0,
           -45442868181.0 / 3398467696.0, 3065993473.0 / 597172653.0},
          {185892177.0 / 718116043.0, 0, 0, -3185094517.0 / 667107341.0, -477755414.0 / 1098053517.0,
           -703635378.0 / 230739211.0, 5731566787.0 / 1027545527.0, 5232866602.0 / 850066563.0,
           -4093664535.0 / 808688257.0, 3962137247.0 / 1805957418.0, 65686358.0 / 487910083.0},
          {403863854.0 / 491063109.0, 0, 0, -5068492393.0 / 434740067.0, -411421997.0 / 543043805.0,
           652783627.0 / 914296604.0, 11173962825.0 / 925320556.0, -13158990841.0 / 6184727034.0,
           3936647629.0 / 1978049680.0, -160528059.0 / 685178525.0, 248638103.0 / 1413531060.0, 0},
          {14005451.0 / 335480064.0, 0, 0, 0, 0, -59238493.0 / 1068277825.0, 181606767.0 / 758867731.0,
           561292985.0 / 797845732.0, -1041891430.0 / 1371343529.0, 760417239.0 / 1151165299.0,
           118820643.0 / 751138087.0, -528747749.0 / 2220607170.0, 0.25}},
    .b = {14005451.0 / 335480064.0, 0, 0, 0, 0, -59238493.0 / 1068277825.0, 181606767.0 / 758867731.0,
          561292985.0 / 797845732.0, -1041891430.0 / 1371343529.0, 760417239.0 / 1151165299.0,
          118820643.0 / 751138087.0, -528747749.0 / 2220607170.0, 0.25, 0},
    .b_error = {14005451.0 / 335480064.0 - 13451932.0 / 455176623.0, 0, 0, 0, 0,
                -59238493.0 / 1068277825.0 + 808719846.0 / 976000145.0,
                181606767.0 / 758867731.0 - 1757004468.0 / 5645159321.0,
                561292985.0 / 797845732.0 - 656045339.0 / 265891186.0,
                -1041891430.0 / 1371343529.0 + 3867574721.0 / 1518517206.0,
                760417239.0 / 1151165299.0 - 465885868.0 / 322736535.0,
                118820643.0 / 751138087.0 - 53011238.0 / 667516719.0,
                -528747749.0 / 2220607170.0 - 2.0 / 45.0, 0.25, 0},
    .dense_degree = 6,
    .dense = {{1, -6.6910181737837595697, 19.9990069333683970610, -30.0610568289666450593, 22.1396504998094068976,
               -6.3448349392860401388},
              {0}, {0}, {0}, {0},
              {0, -7.6142658045872677172, 52.2273532792945524050, -121.4999627731334642623, 116.4422149550342161651,
               -39.6107919852202505218},
              {0, 10.7281392630428866124, -46.8919164181093621583, 83.1721004639847717481, -67.1451318825957197185,
               20.3761213808791436958},
              {0, 0.5526637063753648783, -0.1890893225010595467, 9.5724507555993664382, -16.5672243527496524646,
               7.3347098826795362023},
              {0, 4.2186562625665153803, -35.7075975946222072821, 87.8406057677205645007, -89.9916014847245016028,
               32.8801774352459155182},
              {0, -0.6627209125361597559, 6.2736448083240352160, -17.4152107770762969005, 22.6237489648532849093,
               -10.1588990526426760954},
              {0, -1.2636789001135462218, 10.3160881272450748458, -28.5903289514790976966, 32.2362340167355370113,
               -12.5401268098782561200},
              {0, 5.4106037898590422230, -34.7650769866611817349, 81.6630950584341412934, -82.1020315488359848644,
               29.5553001484516038033},
              {0, -7.0321379067945741781, 47.7457971078225540396, -114.9375291377009418170, 116.2662185791119533462,
               -41.7923486424390588923},
              {0, 2.3537586759714983486, -19.0082099341608028453, 50.2558364226176017553, -53.9020777466385396792,
               20.3006925822100825485}}
};
/* Kvaerno, BIT 44 (2004): ESDIRK 5(4), 7 stages, L-stable, stiffly accurate.
   Newton predictors as used by OrdinaryDiffEq.jl / diffrax. */
#define NDE__KV_G 0.26
static const nde_tableau nde__tab_kvaerno5 = {
    "kvaerno5", 7, 5, 4, 1, NDE__KV_G,
    .c = {0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1, 1},
    .a = {{0},
          {NDE__KV_G, NDE__KV_G},
          {0.13, 0.84033320996790809, NDE__KV_G},
          {0.22371961478320505, 0.47675532319799699, -0.06470895363112615, NDE__KV_G},
          {0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998, NDE__KV_G},
          {0.13855640231268224, 0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676, NDE__KV_G},
          {0.13659751177640291, 0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
           0.06962479448202728, NDE__KV_G}},
    .b = {0.13659751177640291, 0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
          0.06962479448202728, NDE__KV_G},
    .b_error = {0.13659751177640291 - 0.13855640231268224, 0, -0.05496908796538376 + 0.04245337201752043,
                -0.04118626728321046 - 0.02446657898003141, 0.62993304899016403 - 0.61943039072480676,
                0.06962479448202728 - NDE__KV_G, NDE__KV_G},
    .predictor = {{0},
                  {1.0},
                  {-1.366025403784441, 2.3660254037844357},
                  {-0.19650552613122207, 0.8113579546496623, 0.38514757148155954},
                  {0.10375304369958693, 0.937994698066431, -0.04174774176601781, 0},
                  {-0.17281112873898072, 0.6235784481025847, 0.5492326806363959, 0, 0},
                  {0.13855640231268224, 0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676,
                   NDE__KV_G}}
};
#undef NDE__KV_G

/* The method table: one row per nde_method, in enum order. */
static const nde_method_info nde__methods[NDE_METHOD_COUNT] = {
    {NDE_EULER, "euler", NDE_KIND_ERK, &nde__tab_euler, 1, 0, 0},
    {NDE_MIDPOINT, "midpoint", NDE_KIND_ERK, &nde__tab_midpoint, 2, 0, 0},
    {NDE_HEUN, "heun", NDE_KIND_ERK, &nde__tab_heun, 2, 0, 0},
    {NDE_RALSTON, "ralston", NDE_KIND_ERK, &nde__tab_ralston, 2, 0, 0},
    {NDE_RK4, "rk4", NDE_KIND_ERK, &nde__tab_rk4, 4, 0, 0},
    {NDE_RK4_38, "rk4_38", NDE_KIND_ERK, &nde__tab_rk4_38, 4, 0, 0},
    {NDE_BOSH3, "bosh3", NDE_KIND_ERK, &nde__tab_bosh3, 3, 3, 0},
    {NDE_ADAPTIVE_HEUN, "adaptive_heun", NDE_KIND_ERK, &nde__tab_adaptive_heun, 2, 2, 0},
    {NDE_FEHLBERG2, "fehlberg2", NDE_KIND_ERK, &nde__tab_fehlberg2, 2, 2, 0},
    {NDE_DOPRI5, "dopri5", NDE_KIND_ERK, &nde__tab_dopri5, 5, 5, 0},
    {NDE_TSIT5, "tsit5", NDE_KIND_ERK, &nde__tab_tsit5, 5, 5, 0},
    {NDE_DOPRI8, "dopri8", NDE_KIND_ERK, &nde__tab_dopri8, 8, 8, 0},
    {NDE_EXPLICIT_ADAMS, "explicit_adams", NDE_KIND_ADAMS_EXPLICIT, NULL, 4, 0, 0},
    {NDE_IMPLICIT_ADAMS, "implicit_adams", NDE_KIND_ADAMS_IMPLICIT, NULL, 4, 0, 0},
    {NDE_KVAERNO5, "kvaerno5", NDE_KIND_ESDIRK, &nde__tab_kvaerno5, 5, 5, 1},
    {NDE_TAYLOR, "taylor", NDE_KIND_TAYLOR, NULL, 10, 10, 0}   /* TAYLOR: order set by taylor_order */
};

NDE_API const nde_method_info *nde_method_get(nde_method m) {
    if ((int)m < 0 || (int)m >= NDE_METHOD_COUNT) return NULL;
    return &nde__methods[m];
}
NDE_API const nde_tableau *nde_tableau_get(nde_method m) {
    const nde_method_info *mi = nde_method_get(m);
    return mi ? mi->tableau : NULL;
}
NDE_API const char *nde_method_name(nde_method m) {
    const nde_method_info *mi = nde_method_get(m);
    return mi ? mi->name : "(invalid method)";
}
NDE_API nde_status nde_method_from_name(nde_ctx *ctx, const char *name, nde_method *out) {
    char known[512]; size_t off = 0; int i;
    for (i = 0; i < NDE_METHOD_COUNT; i++) {
        if (name && strcmp(name, nde__methods[i].name) == 0) {
            if (out) *out = (nde_method)i;
            return NDE_OK;
        }
    }
    known[0] = 0;
    for (i = 0; i < NDE_METHOD_COUNT && off < sizeof known; i++)
        off += (size_t)snprintf(known + off, sizeof known - off, i ? ", %s" : "%s", nde__methods[i].name);
    return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_method_from_name: unknown method '%s' (known: %s)",
                        name ? name : "(null)", known);
}
NDE_API const nde_tableau *nde_tableau_by_name(nde_ctx *ctx, const char *name) {
    nde_method m = NDE_DOPRI5;
    if (nde_method_from_name(ctx, name, &m) != NDE_OK) return NULL;
    if (!nde__methods[m].tableau)
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_tableau_by_name: '%s' is not a Runge-Kutta method", name);
    return nde__methods[m].tableau;
}

NDE_API nde_solve_options nde_solve_options_default(void) {
    nde_solve_options o;
    memset(&o, 0, sizeof o);
    o.method = NDE_DOPRI5;
    o.rtol = 1e-7;
    o.atol = 1e-9;
    o.max_num_steps = 100000;
    o.safety = 0.9;
    o.factor_min = 0.2;
    o.factor_max = 10.0;
    o.icoeff = 1.0;
    o.adams_order = 4;
    o.adams_max_iters = 4;
    o.newton_max_iters = 10;
    o.newton_kappa = 0.03;
    o.event_tol = 1e-12;
    return o;
}

/* ------------------------------------------------------------ small linear algebra */
NDE_API int64_t nde_lu_factor(int64_t n, double *a, int64_t *piv) {
    int64_t i, j, k;
    for (k = 0; k < n; k++) {
        int64_t p = k; double best = fabs(a[k * n + k]);
        for (i = k + 1; i < n; i++) if (fabs(a[i * n + k]) > best) { best = fabs(a[i * n + k]); p = i; }
        piv[k] = p;
        if (!(best > 0.0)) return k + 1;
        if (p != k)
            for (j = 0; j < n; j++) { double tmp = a[k * n + j]; a[k * n + j] = a[p * n + j]; a[p * n + j] = tmp; }
        for (i = k + 1; i < n; i++) {
            double l = a[i * n + k] / a[k * n + k];
            a[i * n + k] = l;
            if (l != 0.0) for (j = k + 1; j < n; j++) a[i * n + j] -= l * a[k * n + j];
        }
    }
    return 0;
}
NDE_API void nde_lu_solve(int64_t n, const double *lu, const int64_t *piv, double *b) {
    int64_t i, j;
    for (i = 0; i < n; i++) if (piv[i] != i) { double tmp = b[i]; b[i] = b[piv[i]]; b[piv[i]] = tmp; }
    for (i = 1; i < n; i++) { double s = b[i]; for (j = 0; j < i; j++) s -= lu[i * n + j] * b[j]; b[i] = s; }
    for (i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (j = i + 1; j < n; j++) s -= lu[i * n + j] * b[j];
        b[i] = s / lu[i * n + i];
    }
}

NDE_API void nde_lagrange_weights(int m, const double *x, double a, double b, double *w) {
    double poly[16];
    int j, l, p, deg;
    for (j = 0; j < m && j < 16; j++) {
        double integral = 0.0, apow = a, bpow = b;
        for (p = 0; p < 16; p++) poly[p] = 0.0;
        poly[0] = 1.0; deg = 0;
        for (l = 0; l < m; l++) {
            double denom;
            if (l == j) continue;
            denom = x[j] - x[l];
            /* poly *= (x - x_l) / denom */
            for (p = deg + 1; p >= 1; p--) poly[p] = (poly[p - 1] - x[l] * poly[p]) / denom;
            poly[0] = -x[l] * poly[0] / denom;
            deg++;
        }
        for (p = 0; p <= deg; p++) {
            integral += poly[p] * (bpow - apow) / (double)(p + 1);
            apow *= a; bpow *= b;
        }
        w[j] = integral;
    }
}

/* ------------------------------------------------------------ field evaluation */
static nde_tensor *nde__eval(nde_ctx *ctx, nde_field_fn f, void *user, double t, nde_tensor *z,
                             int64_t *nfe, const char *who) {
    nde_tensor *tt, *k;
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    tt = nde_tensor_scalar(ctx, (nde_real)t);
    if (!tt) return NULL;
    k = f(ctx, tt, z, user);
    if (nfe) (*nfe)++;
    if (!k) {
        if (nde_ctx_status(ctx) == NDE_OK)
            nde_ctx_fail(ctx, NDE_ERR_USER_FN, "%s: the vector field returned NULL at t = %.17g", who, t);
        return NULL;
    }
    if (!nde_tensor_same_shape(k, z)) {
        char s1[64], s2[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the vector field returned shape %s for a state of shape %s (at t = %.17g)",
                     who, nde_shape_str(k, s1, sizeof s1), nde_shape_str(z, s2, sizeof s2), t);
        return NULL;
    }
    return k;
}

static nde_status nde__ctx_err(nde_ctx *ctx) {
    nde_status s = nde_ctx_status(ctx);
    return s != NDE_OK ? s : nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_solvers: an operation failed without an error");
}

/* out = sum coef_i x_i computed with the backend, never taped. */
static nde_tensor *nde__raw_lincomb(nde_ctx *ctx, int count, const nde_real *coef, nde_tensor *const *xs) {
    const nde_backend *be = nde_ctx_backend(ctx);
    const nde_real *ptrs[NDE_RK_MAX_STAGES + 4];
    nde_tensor *out;
    int i;
    if (count < 1 || count > NDE_RK_MAX_STAGES + 4) {
        nde_ctx_fail(ctx, NDE_ERR_INTERNAL, "nde_solvers: a linear combination of %d terms", count);
        return NULL;
    }
    out = nde_tensor_new(ctx, xs[0]->ndim, xs[0]->shape);
    if (!out) return NULL;
    for (i = 0; i < count; i++) ptrs[i] = xs[i]->data;
    be->lincomb(be->self, out->size, count, coef, ptrs, 0, out->data);
    return out;
}

/* ------------------------------------------------------------ explicit RK step */
static nde_status nde__erk_step(nde_ctx *ctx, const nde_tableau *tab, nde_field_fn f, void *user, double t,
                                nde_tensor *z, double h, nde_tensor *k1, int perturb_end, nde_tensor **z_new,
                                nde_tensor **err, nde_tensor **k, int64_t *nfe, const char *who) {
    nde_tensor *xs[NDE_RK_MAX_STAGES + 1];
    nde_real co[NDE_RK_MAX_STAGES + 1];
    nde_tensor *y1 = NULL;
    int s = tab->stages, i, j, m;
    k[0] = k1 ? k1 : nde__eval(ctx, f, user, t, z, nfe, who);
    if (!k[0]) return nde__ctx_err(ctx);
    for (i = 1; i < s; i++) {
        nde_tensor *yi;
        double ti = t + tab->c[i] * h;
        if (tab->c[i] == 1.0) ti = perturb_end ? nextafter(t + h, t) : t + h;
        m = 0; xs[m] = z; co[m++] = NDE_R(1.0);
        for (j = 0; j < i; j++)
            if (tab->a[i][j] != 0.0) { xs[m] = k[j]; co[m++] = (nde_real)(h * tab->a[i][j]); }
        yi = (m == 1) ? z : nde_lincomb(ctx, m, co, xs);
        if (!yi) return nde__ctx_err(ctx);
        if (tab->fsal && i == s - 1) y1 = yi;
        k[i] = nde__eval(ctx, f, user, ti, yi, nfe, who);
        if (!k[i]) return nde__ctx_err(ctx);
    }
    if (!y1) {
        m = 0; xs[m] = z; co[m++] = NDE_R(1.0);
        for (j = 0; j < s; j++)
            if (tab->b[j] != 0.0) { xs[m] = k[j]; co[m++] = (nde_real)(h * tab->b[j]); }
        y1 = nde_lincomb(ctx, m, co, xs);
        if (!y1) return nde__ctx_err(ctx);
    }
    if (err) {
        *err = NULL;
        if (tab->embedded_order > 0) {
            m = 0;
            for (j = 0; j < s; j++)
                if (tab->b_error[j] != 0.0) { xs[m] = k[j]; co[m++] = (nde_real)(h * tab->b_error[j]); }
            *err = nde__raw_lincomb(ctx, m, co, xs);
            if (!*err) return nde__ctx_err(ctx);
        }
    }
    *z_new = y1;
    return NDE_OK;
}

NDE_API nde_status nde_rk_step(nde_ctx *ctx, const nde_tableau *tab, nde_field_fn f, void *user,
                               double t, nde_tensor *z, double h, nde_tensor *k1,
                               nde_tensor **z_new, nde_tensor **err, nde_tensor **stages) {
    nde_tensor *k[NDE_RK_MAX_STAGES];
    nde_status st;
    int i;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!tab || !f || !z || !z_new)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_rk_step: NULL tableau, field, state or output");
    if (tab->gamma != 0.0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_rk_step: '%s' is implicit; nde_rk_step takes explicit tableaus",
                            tab->name);
    if (!(h == h) || !(t == t))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_rk_step: t = %g, h = %g", t, h);
    st = nde__erk_step(ctx, tab, f, user, t, z, h, k1, 0, z_new, err, k, NULL, "nde_rk_step");
    if (st == NDE_OK && stages) for (i = 0; i < tab->stages; i++) stages[i] = k[i];
    return st;
}

/* ------------------------------------------------------------ error norm */
NDE_API double nde_error_norm(nde_ctx *ctx, const nde_solve_options *o, const nde_tensor *err,
                              const nde_tensor *y0, const nde_tensor *y1) {
    const nde_backend *be = nde_ctx_backend(ctx);
    if (!err || !y0 || !y1 || !o) return NAN;
    if (!o->norm)
        return be->rms_error_norm(be->self, err->size, err->data, y0->data, y1->data, o->rtol, o->atol,
                                  o->atol_tensor ? o->atol_tensor->data : NULL);
    {
        /* scale = atol + rtol * max(|y0|, |y1|), max(a, b) = (a + b + |a - b|) / 2 */
        nde_mark m = nde_ctx_mark(ctx);
        int was = nde_set_grad_enabled(ctx, 0);
        nde_tensor *a0 = nde_abs(ctx, (nde_tensor *)y0), *a1 = nde_abs(ctx, (nde_tensor *)y1);
        nde_tensor *mx = nde_scale(ctx, nde_add(ctx, nde_add(ctx, a0, a1), nde_abs(ctx, nde_sub(ctx, a0, a1))), NDE_R(0.5));
        nde_tensor *sc = nde_scale(ctx, mx, (nde_real)o->rtol);
        nde_tensor *scaled;
        double r = NAN;
        sc = o->atol_tensor ? nde_add(ctx, sc, (nde_tensor *)o->atol_tensor) : nde_add_scalar(ctx, sc, (nde_real)o->atol);
        scaled = nde_div(ctx, (nde_tensor *)err, sc);
        if (scaled) r = o->norm(ctx, scaled, o->norm_user);
        nde_set_grad_enabled(ctx, was);
        nde_ctx_reset(ctx, m);
        return r;
    }
}

/* ------------------------------------------------------------ step controller */
NDE_API nde_step_controller nde_step_controller_init(const nde_solve_options *o, int error_order) {
    nde_step_controller c;
    nde_solve_options d = nde_solve_options_default();
    if (!o) o = &d;
    c.safety = o->safety; c.factor_min = o->factor_min; c.factor_max = o->factor_max;
    c.pcoeff = o->pcoeff; c.icoeff = o->icoeff; c.dcoeff = o->dcoeff;
    c.order = error_order > 0 ? (double)error_order : 1.0;
    c.dtmin = o->dtmin; c.dtmax = o->dtmax;
    c.r_prev1 = 1.0; c.r_prev2 = 1.0;
    return c;
}

/* PID step-size control in the form of diffrax's PIDController; with the default
   (p, i, d) = (0, 1, 0) it is torchdiffeq's _optimal_step_size. */
NDE_API int nde_step_controller_propose(nde_step_controller *c, double err, double h, double *h_next) {
    double ah = fabs(h), factor, r, b1, b2, b3;
    int accept;
    if (!(err == err)) {                       /* NaN: reject, shrink as much as allowed */
        *h_next = h * c->factor_min;
        return 0;
    }
    accept = err <= 1.0;
    r = err > 0.0 ? 1.0 / err : INFINITY;
    b1 = (c->pcoeff + c->icoeff + c->dcoeff) / c->order;
    b2 = -(c->pcoeff + 2.0 * c->dcoeff) / c->order;
    b3 = c->dcoeff / c->order;
    if (isinf(r)) factor = c->factor_max;
    else factor = c->safety * pow(r, b1) * pow(c->r_prev1, b2) * pow(c->r_prev2, b3);
    if (accept) {
        if (factor < 1.0) factor = 1.0;
        if (factor > c->factor_max) factor = c->factor_max;
        c->r_prev2 = c->r_prev1;
        c->r_prev1 = isinf(r) ? 1.0 : r;      /* a perfect step says nothing about the next */
    } else {
        if (factor > c->safety) factor = c->safety;
        if (factor < c->factor_min) factor = c->factor_min;
    }
    ah *= factor;
    if (c->dtmax > 0.0 && ah > c->dtmax) ah = c->dtmax;
    if (c->dtmin > 0.0 && ah < c->dtmin) ah = c->dtmin;
    if (c->dtmin > 0.0 && fabs(h) <= c->dtmin) accept = 1;   /* forced at the minimum step */
    *h_next = h < 0 ? -ah : ah;
    return accept;
}

/* ------------------------------------------------------------ initial step */
NDE_API nde_status nde_initial_step(nde_ctx *ctx, nde_field_fn f, void *user, double t0, nde_tensor *z0,
                                    nde_tensor *f0, int error_order, double direction,
                                    const nde_solve_options *o, double *h0_out, int64_t *nfe) {
    nde_solve_options d = nde_solve_options_default();
    nde_mark m = nde_ctx_mark(ctx);
    int was = nde_set_grad_enabled(ctx, 0);
    double d0, d1, d2, h0, h1, dir = direction < 0 ? -1.0 : 1.0;
    nde_tensor *y1, *f1, *xs[2];
    nde_real co[2];
    if (!o) o = &d;
    if (nde_ctx_status(ctx) != NDE_OK) { nde_set_grad_enabled(ctx, was); return nde_ctx_status(ctx); }
    if (!f0) f0 = nde__eval(ctx, f, user, t0, z0, nfe, "nde_initial_step");
    if (!f0) { nde_set_grad_enabled(ctx, was); return nde__ctx_err(ctx); }
    d0 = nde_error_norm(ctx, o, z0, z0, z0);
    d1 = nde_error_norm(ctx, o, f0, z0, z0);
    h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    xs[0] = z0; xs[1] = f0; co[0] = NDE_R(1.0); co[1] = (nde_real)(dir * h0);
    y1 = nde__raw_lincomb(ctx, 2, co, xs);
    f1 = y1 ? nde__eval(ctx, f, user, t0 + dir * h0, y1, nfe, "nde_initial_step") : NULL;
    if (!f1) { nde_set_grad_enabled(ctx, was); nde_ctx_reset(ctx, m); return nde__ctx_err(ctx); }
    xs[0] = f1; xs[1] = f0; co[0] = NDE_R(1.0); co[1] = NDE_R(-1.0);
    d2 = nde_error_norm(ctx, o, nde__raw_lincomb(ctx, 2, co, xs), z0, z0) / h0;
    if (d1 <= 1e-15 && d2 <= 1e-15) h1 = fmax(1e-6, h0 * 1e-3);
    else h1 = pow(0.01 / fmax(d1, d2), 1.0 / (double)(error_order > 0 ? error_order : 1));
    nde_set_grad_enabled(ctx, was);
    nde_ctx_reset(ctx, m);
    if (!(h0 == h0) || !(h1 == h1)) return nde_ctx_fail(ctx, NDE_ERR_NONFINITE,
        "nde_initial_step: at t = %.17g: NaN in the initial step selection (f(t0, z0) or f(t0 + h0, ...) is not finite)", t0);
    *h0_out = dir * fmin(100.0 * h0, h1);
    return NDE_OK;
}

/* ------------------------------------------------------------ interpolation */
NDE_API nde_tensor *nde_hermite_eval(nde_ctx *ctx, nde_tensor *y0, nde_tensor *y1, nde_tensor *f0,
                                     nde_tensor *f1, double h, double th) {
    nde_tensor *xs[4];
    nde_real co[4];
    double t2 = th * th, t3 = t2 * th;
    if (!y0 || !y1 || !f0 || !f1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_hermite_eval: NULL end value or derivative");
        return NULL;
    }
    xs[0] = y0; co[0] = (nde_real)(2.0 * t3 - 3.0 * t2 + 1.0);
    xs[1] = f0; co[1] = (nde_real)(h * (t3 - 2.0 * t2 + th));
    xs[2] = y1; co[2] = (nde_real)(-2.0 * t3 + 3.0 * t2);
    xs[3] = f1; co[3] = (nde_real)(h * (t3 - t2));
    return nde_lincomb(ctx, 4, co, xs);
}

/* The interpolant of step s at time t (tab: the method's tableau or NULL). */
static nde_tensor *nde__step_interp(nde_ctx *ctx, const nde_tableau *tab, const nde_step *s, double t) {
    double th = (t - s->t0) / s->h;
    if (s->num_k > 0 && tab && tab->dense_degree > 0) {
        nde_tensor *xs[NDE_RK_MAX_STAGES + 1];
        nde_real co[NDE_RK_MAX_STAGES + 1];
        int i, p, m = 0;
        xs[m] = s->y0; co[m++] = NDE_R(1.0);
        for (i = 0; i < s->num_k && i < tab->stages; i++) {
            double bi = 0.0, tp = th;
            for (p = 0; p < tab->dense_degree; p++) { bi += tab->dense[i][p] * tp; tp *= th; }
            if (bi != 0.0) { xs[m] = s->k[i]; co[m++] = (nde_real)(s->h * bi); }
        }
        return nde_lincomb(ctx, m, co, xs);
    }
    if (!s->f0 || !s->f1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_step_eval: the step has no dense output (set options.dense)");
        return NULL;
    }
    return nde_hermite_eval(ctx, s->y0, s->y1, s->f0, s->f1, s->h, th);
}

/* ------------------------------------------------------------ Jacobian */
typedef struct nde__jac_user { nde_field_fn f; void *user; nde_tensor *t; } nde__jac_user;
static nde_tensor *nde__jac_fn(nde_ctx *ctx, nde_tensor *x, void *u) {
    nde__jac_user *ju = (nde__jac_user *)u;
    return ju->f(ctx, ju->t, x, ju->user);
}

NDE_API nde_status nde_jacobian(nde_ctx *ctx, nde_field_fn f, void *user, double t, nde_tensor *z, double *jac) {
    nde_mark m0 = nde_ctx_mark(ctx);
    int64_t n, i, j, np;
    nde__jac_user ju;
    nde_tensor *v;
    nde_real *e, *row, *scratch = NULL;
    nde_real *grad_target = nde_params_grad(ctx);   /* nde_vjp resets a redirection: restore it */
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!f || !z || !jac) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jacobian: NULL field, state or output");
    n = z->size;
    ju.f = f; ju.user = user; ju.t = nde_tensor_scalar(ctx, (nde_real)t);
    v = nde_tensor_zeros(ctx, z->ndim, z->shape);
    e = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_real));
    row = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_real));
    np = nde_params_count(ctx);
    if (np > 0) scratch = nde_ctx_alloc_reals(ctx, np);   /* parameter part of each VJP, discarded */
    if (!ju.t || !v || !e || !row || (np > 0 && !scratch)) { nde_ctx_reset(ctx, m0); return nde__ctx_err(ctx); }
    for (j = 0; j < n; j++) e[j] = NDE_R(0.0);
    for (i = 0; i < n; i++) {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *xbar = NULL, *y = NULL;
        e[i] = NDE_R(1.0);
        if (i > 0) e[i - 1] = NDE_R(0.0);
        nde_tensor_set_host(ctx, v, e);
        if (nde_vjp(ctx, nde__jac_fn, &ju, z, v, &y, &xbar, scratch) != NDE_OK) {
            if (scratch) nde_params_redirect_grad(ctx, grad_target);
            nde_ctx_reset(ctx, m0);
            return nde__ctx_err(ctx);
        }
        if (scratch) nde_params_redirect_grad(ctx, grad_target);
        if (!nde_tensor_same_shape(y, z)) {
            char s1[64], s2[64];
            nde_ctx_reset(ctx, m0);
            return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_jacobian: the vector field returned shape %s for a state of shape %s",
                                nde_shape_str(y, s1, sizeof s1), nde_shape_str(z, s2, sizeof s2));
        }
        nde_tensor_to_host(ctx, xbar, row);
        for (j = 0; j < n; j++) jac[i * n + j] = (double)row[j];
        nde_ctx_reset(ctx, m);
    }
    nde_ctx_reset(ctx, m0);
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ solution storage
   Untaped solves copy what the dense output needs into blocks owned by the
   solution (host blocks for headers, backend blocks for values). Blocks never
   move, so tensor headers and pointers into them stay valid. */
typedef struct nde__pool_block {
    struct nde__pool_block *next;
    unsigned char *mem;
    size_t cap, used;
} nde__pool_block;

struct nde__solution_store {
    const nde_backend *be;
    nde__pool_block *host, *data;     /* newest first */
    int64_t cap_steps;
    const nde_tableau *tab;           /* the method's tableau (RK interpolants) */
};

static void *nde__pool_alloc(struct nde__solution_store *s, size_t bytes, int device) {
    nde__pool_block **head = device ? &s->data : &s->host, *b = *head;
    bytes = (bytes + 63) / 64 * 64;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = b ? b->cap * 2 : ((size_t)1 << 16);
        nde__pool_block *nb;
        if (cap < bytes) cap = bytes;
        if (cap > ((size_t)1 << 28) && bytes <= ((size_t)1 << 28)) cap = (size_t)1 << 28;
        nb = (nde__pool_block *)NDE_MALLOC(sizeof *nb);
        if (!nb) return NULL;
        nb->mem = device ? (unsigned char *)s->be->alloc(s->be->self, cap + 64) : (unsigned char *)NDE_MALLOC(cap + 64);
        if (!nb->mem) { NDE_FREE(nb); return NULL; }
        nb->cap = cap; nb->used = (size_t)((64 - ((uintptr_t)nb->mem % 64)) % 64);
        nb->cap += nb->used;
        nb->next = *head; *head = nb;
        b = nb;
    }
    b->used += bytes;
    return b->mem + b->used - bytes;
}

static void nde__store_free(struct nde__solution_store *s) {
    int dev;
    if (!s) return;
    for (dev = 0; dev < 2; dev++) {
        nde__pool_block *b = dev ? s->data : s->host;
        while (b) {
            nde__pool_block *nx = b->next;
            if (dev) s->be->free(s->be->self, b->mem); else NDE_FREE(b->mem);
            NDE_FREE(b);
            b = nx;
        }
    }
    NDE_FREE(s);
}

NDE_API void nde_solution_free(nde_ctx *ctx, nde_solution *sol) {
    (void)ctx;
    if (!sol) return;
    NDE_FREE(sol->steps);
    nde__store_free(sol->store);
    sol->steps = NULL; sol->store = NULL; sol->num_steps = 0;
}

/* ------------------------------------------------------------ the driver */
typedef struct nde__attempt {
    nde_tensor *y1, *err, *f1;          /* f1 = f(t + h, y1) when the method has it */
    nde_tensor *k[NDE_RK_MAX_STAGES];   /* stage derivatives (RK interpolant)        */
    int num_k;
    int failed;                         /* Newton failure: reject and shrink        */
} nde__attempt;

typedef struct nde__run {
    nde_ctx *ctx;
    const nde_backend *be;
    nde_field_fn f; void *user;
    nde_solve_options o;
    const nde_method_info *mi;
    nde_solution *sol;
    char who[64];
    int taped;
    double dir, t, t_end;
    int num_ts; const double *ts; int next_out;
    nde_tensor *z, *fz;              /* state and f(t, z) (NULL: not computed yet) */
    nde_tensor *zbuf, *fbuf, *evbuf; /* untaped: persistent storage                */
    /* events */
    int ng; double *g_prev, *g_new;
    /* Adams history, newest first */
    int hist_len; double hist_t[NDE_ADAMS_MAX_ORDER];
    nde_tensor *hist_f[NDE_ADAMS_MAX_ORDER], *hist_buf[NDE_ADAMS_MAX_ORDER];
    /* implicit */
    double *jac, *lu, *jac2, *lu2, *hvec; int64_t *piv, *piv2; nde_real *hreal;
    int jac_valid; double jac_t;
    /* TAYLOR: the coefficients at (taylor_t, taylor_z), and where they were allocated */
    nde_jet *taylor_c; nde_tensor *taylor_z; double taylor_t; nde_mark taylor_mark; int taylor_have_mark;
    /* step_ts / jump_ts sorted along the direction */
    double *step_ts, *jump_ts; int nstep, njump, istep, ijump;
    double t_checked;                /* the state was last found finite here */
} nde__run;

/* On a device backend each NaN/Inf check is a host synchronisation, so without
   events or step callbacks the solver checks only where it must: an adaptive step
   is vetted by its error norm (NaN for a non-finite state: one host read per
   attempt), a fixed-step state where an output lands and at the end (a non-finite
   state stays non-finite, z + h sum b_i k_i, so it is still caught), and f only at
   the start. On the CPU every step is checked. */
static int nde__check_every_step(const nde__run *r) {
    return !r->be->is_device || r->o.event || r->o.on_step;
}

static nde_status nde__fail_at(nde__run *r, nde_status st, double h, const char *what) {
    return nde_ctx_fail(r->ctx, st, "%s: at t = %.17g, h = %.3g: %s", r->who, r->t, h, what);
}

/* untaped: copy x into the persistent buffer; taped: keep x itself. */
static nde_tensor *nde__keep(nde__run *r, nde_tensor *buf, nde_tensor *x) {
    if (r->taped || !x) return x;
    if (buf != x) nde_tensor_copy_into(r->ctx, buf, x);
    return buf;
}

/* A copy of x owned by the solution (untaped) or x itself (taped). */
static nde_tensor *nde__store_tensor(nde__run *r, nde_tensor *x) {
    struct nde__solution_store *s = r->sol->store;
    nde_tensor *t;
    if (!x) return NULL;
    if (r->taped) return x;
    t = (nde_tensor *)nde__pool_alloc(s, sizeof(nde_tensor), 0);
    if (!t) { nde_ctx_fail(r->ctx, NDE_ERR_OOM, "%s: out of memory for the dense output", r->who); return NULL; }
    *t = *x;
    t->grad = NULL; t->requires_grad = 0; t->node = -1; t->param = -1;
    t->data = (nde_real *)nde__pool_alloc(s, (size_t)x->size * sizeof(nde_real), 1);
    if (!t->data) { nde_ctx_fail(r->ctx, NDE_ERR_OOM, "%s: out of memory for the dense output", r->who); return NULL; }
    r->be->copy(r->be->self, t->data, x->data, (size_t)x->size * sizeof(nde_real), NDE_COPY_DEVICE);
    return t;
}

static nde_status nde__record_step(nde__run *r, const nde_step *cur) {
    nde_solution *sol = r->sol;
    struct nde__solution_store *s = sol->store;
    nde_step *rec;
    if (sol->num_steps == s->cap_steps) {
        int64_t nc = s->cap_steps ? s->cap_steps * 2 : 64;
        nde_step *ns = (nde_step *)NDE_REALLOC(sol->steps, (size_t)nc * sizeof(nde_step));
        if (!ns) return nde_ctx_fail(r->ctx, NDE_ERR_OOM, "%s: out of memory recording %lld steps", r->who, (long long)nc);
        sol->steps = ns; s->cap_steps = nc;
    }
    rec = &sol->steps[sol->num_steps];
    memset(rec, 0, sizeof *rec);
    rec->t0 = cur->t0; rec->h = cur->h;
    rec->y0 = nde__store_tensor(r, cur->y0);
    rec->y1 = nde__store_tensor(r, cur->y1);
    if (r->o.dense) {
        if (cur->num_k > 0) {
            int i;
            rec->k = (nde_tensor **)nde__pool_alloc(s, (size_t)cur->num_k * sizeof(nde_tensor *), 0);
            if (!rec->k) return nde_ctx_fail(r->ctx, NDE_ERR_OOM, "%s: out of memory for the dense output", r->who);
            for (i = 0; i < cur->num_k; i++) rec->k[i] = nde__store_tensor(r, cur->k[i]);
            rec->num_k = cur->num_k;
            rec->f0 = rec->k[0];
            rec->f1 = (cur->f1 == cur->k[cur->num_k - 1]) ? rec->k[cur->num_k - 1] : nde__store_tensor(r, cur->f1);
        } else {
            rec->f0 = nde__store_tensor(r, cur->f0);
            rec->f1 = nde__store_tensor(r, cur->f1);
        }
    }
    if (nde_ctx_status(r->ctx) != NDE_OK) return nde_ctx_status(r->ctx);
    sol->num_steps++;
    return NDE_OK;
}

/* f(t, z) at the current point, kept across arena resets. */
static nde_status nde__ensure_f(nde__run *r) {
    nde_mark m;
    nde_tensor *k;
    if (r->fz) return NDE_OK;
    m = nde_ctx_mark(r->ctx);
    k = nde__eval(r->ctx, r->f, r->user, r->t, r->z, &r->sol->stats.nfe, r->who);
    if (!k) return nde__ctx_err(r->ctx);
    if ((nde__check_every_step(r) || r->sol->stats.accepted == 0) && !nde_tensor_all_finite(r->ctx, k))
        return nde__fail_at(r, NDE_ERR_NONFINITE, 0.0, "the vector field returned NaN or Inf");
    r->fz = nde__keep(r, r->fbuf, k);
    if (!r->taped) nde_ctx_reset(r->ctx, m);
    return NDE_OK;
}

/* f at t = t_jump + 0 after a discontinuity. */
static nde_status nde__restart_f(nde__run *r) {
    nde_mark m = nde_ctx_mark(r->ctx);
    nde_tensor *k = nde__eval(r->ctx, r->f, r->user, nextafter(r->t, r->t + r->dir), r->z, &r->sol->stats.nfe, r->who);
    if (!k) return nde__ctx_err(r->ctx);
    r->fz = nde__keep(r, r->fbuf, k);
    if (!r->taped) nde_ctx_reset(r->ctx, m);
    return NDE_OK;
}

/* ---- events */
static nde_status nde__eval_g(nde__run *r, double t, nde_tensor *z, double *g) {
    nde_mark m = nde_ctx_mark(r->ctx);
    int was = nde_set_grad_enabled(r->ctx, 0);
    nde_tensor *tt = nde_tensor_scalar(r->ctx, (nde_real)t);
    nde_tensor *gv = tt ? r->o.event(r->ctx, tt, z, r->o.event_user) : NULL;
    int i;
    nde_set_grad_enabled(r->ctx, was);
    if (!gv) {
        nde_ctx_reset(r->ctx, m);
        if (nde_ctx_status(r->ctx) == NDE_OK)
            return nde_ctx_fail(r->ctx, NDE_ERR_USER_FN, "%s: the event function returned NULL at t = %.17g", r->who, t);
        return nde_ctx_status(r->ctx);
    }
    if (r->ng == 0) r->ng = (int)gv->size;
    if (gv->size != r->ng || r->ng < 1) {
        nde_ctx_reset(r->ctx, m);
        return nde_ctx_fail(r->ctx, NDE_ERR_SHAPE, "%s: the event function returned %lld values at t = %.17g, %d before",
                            r->who, (long long)gv->size, t, r->ng);
    }
    if (g) {
        nde_real buf[64];
        for (i = 0; i < r->ng; i += 64) {
            int j, cnt = r->ng - i < 64 ? r->ng - i : 64;
            const nde_backend *be = r->be;
            be->copy(be->self, buf, gv->data + i, (size_t)cnt * sizeof(nde_real),
                     be->is_device ? NDE_COPY_TO_HOST : NDE_COPY_DEVICE);
            for (j = 0; j < cnt; j++) g[i + j] = (double)buf[j];
        }
    }
    nde_ctx_reset(r->ctx, m);
    return nde_ctx_status(r->ctx);
}

/* g_i on the step's interpolant at theta (no tape). */
static double nde__g_at(nde__run *r, const nde_step *cur, int i, double th, nde_status *st) {
    nde_mark m = nde_ctx_mark(r->ctx);
    int was = nde_set_grad_enabled(r->ctx, 0);
    double t = cur->t0 + th * cur->h, v = NAN;
    nde_tensor *z = th >= 1.0 ? cur->y1 : nde__step_interp(r->ctx, r->mi->tableau, cur, t);
    nde_set_grad_enabled(r->ctx, was);
    if (!z) { *st = nde__ctx_err(r->ctx); nde_ctx_reset(r->ctx, m); return v; }
    *st = nde__eval_g(r, t, z, r->g_new);
    if (*st == NDE_OK) v = r->g_new[i];
    nde_ctx_reset(r->ctx, m);
    return v;
}

/* Earliest sign change of g over the step; *theta = -1 if none. Illinois
   (modified regula falsi) on theta in [0, 1], to event_tol in t. */
static nde_status nde__find_event(nde__run *r, const nde_step *cur, double *theta, int *which) {
    nde_status st;
    int i;
    double best = 2.0, tol;
    double *g0 = r->g_prev, *g1;
    *theta = -1.0; *which = -1;
    st = nde__eval_g(r, cur->t0 + cur->h, cur->y1, r->g_new);
    if (st != NDE_OK) return st;
    g1 = (double *)nde_ctx_alloc_host(r->ctx, (size_t)r->ng * sizeof(double));
    if (!g1) return nde__ctx_err(r->ctx);
    memcpy(g1, r->g_new, (size_t)r->ng * sizeof(double));
    tol = fmax(r->o.event_tol, 4.0 * DBL_EPSILON * fabs(cur->t0 + cur->h)) / fabs(cur->h);
    for (i = 0; i < r->ng; i++) {
        double a = 0.0, b = 1.0, fa = g0[i], fb = g1[i];
        int side = 0, it, rising = fa < 0;
        if (fa == 0.0 || !(fb == fb) || (fa < 0 && fb < 0) || (fa > 0 && fb > 0)) continue;
        if ((r->o.event_direction > 0 && !rising) || (r->o.event_direction < 0 && rising)) continue;
        for (it = 0; it < 200 && b - a > tol && fb != 0.0; it++) {
            double c = (a * fb - b * fa) / (fb - fa), fc;
            if (!(c > a && c < b)) c = 0.5 * (a + b);
            fc = nde__g_at(r, cur, i, c, &st);
            if (st != NDE_OK) return st;
            if (fc == 0.0) { b = c; fb = 0.0; break; }
            if ((fc < 0) == (fb < 0)) { b = c; fb = fc; if (side == -1) fa *= 0.5; side = -1; }
            else { a = c; fa = fc; if (side == +1) fb *= 0.5; side = +1; }
        }
        if (b < best) { best = b; *which = i; }
    }
    if (*which >= 0) *theta = best;
    else memcpy(r->g_prev, g1, (size_t)r->ng * sizeof(double));
    return NDE_OK;
}

/* ---- one accepted step: outputs, events, dense output, state update */
static int nde__before(const nde__run *r, double a, double b) { return r->dir * (b - a) > 0; }  /* a before b */

static nde_status nde__set_output(nde__run *r, int j, nde_tensor *v) {
    if (!v) return nde__ctx_err(r->ctx);
    if (r->taped) r->sol->ys[j] = v;
    else nde_tensor_copy_into(r->ctx, r->sol->ys[j], v);
    return nde_ctx_status(r->ctx);
}

static nde_status nde__accept(nde__run *r, double h, double t1, nde__attempt *a, int jump) {
    nde_step cur;
    nde_status st;
    const nde_tableau *tab = r->mi->tableau;
    int has_poly = a->num_k > 0 && tab && tab->dense_degree > 0;
    int inside = r->next_out < r->num_ts && nde__before(r, r->ts[r->next_out], t1);
    int need_interp = r->o.dense || r->o.event || r->o.on_step || inside;
    double t_stop = t1, th_ev = -1.0;
    int which = -1;
    if (!a->f1 && need_interp && !has_poly) {
        /* f at the end of the step, for the Hermite interpolant (and the next step) */
        a->f1 = nde__eval(r->ctx, r->f, r->user, jump ? nextafter(t1, r->t) : t1, a->y1, &r->sol->stats.nfe, r->who);
        if (!a->f1) return nde__ctx_err(r->ctx);
    }
    memset(&cur, 0, sizeof cur);
    cur.t0 = r->t; cur.h = h; cur.y0 = r->z; cur.y1 = a->y1; cur.f0 = r->fz; cur.f1 = a->f1;
    if (has_poly) { cur.k = a->k; cur.num_k = a->num_k; }
    if (r->o.event) {
        st = nde__find_event(r, &cur, &th_ev, &which);
        if (st != NDE_OK) return st;
        if (which >= 0) t_stop = (th_ev >= 1.0) ? t1 : r->t + th_ev * h;
    }
    /* outputs in (t, t_stop] */
    while (r->next_out < r->num_ts && !nde__before(r, t_stop, r->ts[r->next_out])) {
        double to = r->ts[r->next_out];
        if (which >= 0 && to == t_stop && th_ev < 1.0) break;   /* the event comes first */
        st = nde__set_output(r, r->next_out, to == t1 ? a->y1 : nde__step_interp(r->ctx, tab, &cur, to));
        if (st != NDE_OK) return st;
        r->next_out++;
    }
    if (r->o.dense || r->o.record_steps) {
        st = nde__record_step(r, &cur);
        if (st != NDE_OK) return st;
    }
    if (r->o.on_step) {   /* nde_adjoint.h addition */
        st = r->o.on_step(r->ctx, &cur, r->o.on_step_user);
        if (st != NDE_OK) return st;
    }
    r->sol->stats.accepted++;
    if (which >= 0) {
        nde_tensor *ze = th_ev >= 1.0 ? a->y1 : nde__step_interp(r->ctx, tab, &cur, t_stop);
        if (!ze) return nde__ctx_err(r->ctx);
        r->sol->z_event = nde__keep(r, r->evbuf, ze);
        r->sol->t_event = t_stop;
        r->sol->event_index = which;
        r->t = t_stop;
        r->z = r->sol->z_event;
        return NDE_EVENT;
    }
    r->t = t1;
    r->z = nde__keep(r, r->zbuf, a->y1);
    r->fz = (a->f1 && !jump) ? nde__keep(r, r->fbuf, a->f1) : NULL;
    if (jump) return nde__restart_f(r);
    return nde_ctx_status(r->ctx);
}

/* ---- Adams-Bashforth / Adams-Moulton on the actual grid */
static nde_status nde__adams_push(nde__run *r) {
    nde_tensor *slot;
    int q = r->o.adams_order, j;
    if (r->hist_len > 0 && r->hist_t[0] == r->t) return NDE_OK;
    slot = r->taped ? NULL : (r->hist_len == q ? r->hist_f[q - 1] : r->hist_buf[r->hist_len]);
    for (j = (r->hist_len < q ? r->hist_len : q - 1); j > 0; j--) { r->hist_f[j] = r->hist_f[j - 1]; r->hist_t[j] = r->hist_t[j - 1]; }
    r->hist_f[0] = r->taped ? r->fz : nde__keep(r, slot, r->fz);
    r->hist_t[0] = r->t;
    if (r->hist_len < q) r->hist_len++;
    return nde_ctx_status(r->ctx);
}

static nde_status nde__adams_attempt(nde__run *r, double h, nde__attempt *a) {
    int q = r->o.adams_order, j, it;
    double x[NDE_ADAMS_MAX_ORDER + 1] = {0}, w[NDE_ADAMS_MAX_ORDER + 1];   /* = {0}: quiet gcc -O1 -Wmaybe-uninitialized */
    nde_tensor *xs[NDE_ADAMS_MAX_ORDER + 2];
    nde_real co[NDE_ADAMS_MAX_ORDER + 2];
    double t1 = r->t + h;
    nde_status st = nde__adams_push(r);
    if (st != NDE_OK) return st;
    if (r->hist_len < q) {
        /* start-up: a one-step method of at least the Adams order */
        const nde_tableau *boot = q <= 4 ? &nde__tab_rk4 : &nde__tab_dopri8;
        return nde__erk_step(r->ctx, boot, r->f, r->user, r->t, r->z, h, r->fz, 0, &a->y1, NULL, a->k,
                             &r->sol->stats.nfe, r->who);
    }
    /* predictor: y1 = y_n + h sum_j w_j f_{n-j}, w from the nodes (t_{n-j} - t_n) / h */
    for (j = 0; j < q; j++) x[j] = (r->hist_t[j] - r->t) / h;
    nde_lagrange_weights(q, x, 0.0, 1.0, w);
    xs[0] = r->z; co[0] = NDE_R(1.0);
    for (j = 0; j < q; j++) { xs[j + 1] = r->hist_f[j]; co[j + 1] = (nde_real)(h * w[j]); }
    a->y1 = nde_lincomb(r->ctx, q + 1, co, xs);
    if (!a->y1) return nde__ctx_err(r->ctx);
    if (r->mi->kind != NDE_KIND_ADAMS_IMPLICIT) return NDE_OK;
    /* corrector (Adams-Moulton of order q): nodes 1, 0, x_1, ..., x_{q-2} */
    x[0] = 1.0;
    for (j = 0; j + 1 < q; j++) x[j + 1] = (r->hist_t[j] - r->t) / h;
    nde_lagrange_weights(q, x, 0.0, 1.0, w);
    for (it = 0; it < r->o.adams_max_iters; it++) {
        nde_tensor *fp = nde__eval(r->ctx, r->f, r->user, t1, a->y1, &r->sol->stats.nfe, r->who), *yc, *d;
        nde_tensor *dx[2];
        nde_real dc[2] = {NDE_R(1.0), NDE_R(-1.0)};
        double dn;
        if (!fp) return nde__ctx_err(r->ctx);
        xs[0] = r->z; co[0] = NDE_R(1.0);
        xs[1] = fp; co[1] = (nde_real)(h * w[0]);
        for (j = 1; j < q; j++) { xs[j + 1] = r->hist_f[j - 1]; co[j + 1] = (nde_real)(h * w[j]); }
        yc = nde_lincomb(r->ctx, q + 1, co, xs);
        if (!yc) return nde__ctx_err(r->ctx);
        dx[0] = yc; dx[1] = a->y1;
        d = nde__raw_lincomb(r->ctx, 2, dc, dx);
        dn = d ? nde_error_norm(r->ctx, &r->o, d, a->y1, yc) : NAN;
        a->y1 = yc;
        if (!(dn > 1e-3)) break;          /* converged (or NaN: caught by the finiteness check) */
    }
    return nde_ctx_status(r->ctx);
}

/* ---- ESDIRK (kvaerno5) with simplified Newton */
static nde_status nde__newton_delta(nde__run *r, nde_tensor *res, nde_tensor *delta) {
    int64_t i, n = res->size;
    nde_tensor_to_host(r->ctx, res, r->hreal);
    for (i = 0; i < n; i++) r->hvec[i] = (double)r->hreal[i];
    nde_lu_solve(n, r->lu, r->piv, r->hvec);
    for (i = 0; i < n; i++) r->hreal[i] = (nde_real)r->hvec[i];
    return nde_tensor_set_host(r->ctx, delta, r->hreal);
}

/* Taped solves: the converged stage Y* (off the tape) re-enters the tape as one
   Newton step with the exact Jacobian at Y*,
       Y = Y* - (I - h gamma J(Y*))^{-1} (Y* - base - h gamma f(t_i, Y*)),
   whose value is Y* (to the Newton tolerance) and whose derivative with respect
   to base and the parameters is the implicit-function-theorem derivative of the
   stage equation (the derivative with respect to the constant Y* vanishes). */
static nde_status nde__ift_stage(nde__run *r, double ti, double hg, nde_tensor *base, nde_tensor *ystar, nde_tensor **y_out) {
    nde_ctx *ctx = r->ctx;
    int64_t n = ystar->size, i, j, shp[2];
    nde_tensor *fy, *g, *minv_t, *corr, *xs[3];
    nde_real co[3];
    if (nde_jacobian(ctx, r->f, r->user, ti, ystar, r->jac2) != NDE_OK) return nde__ctx_err(ctx);
    r->sol->stats.njev++; r->sol->stats.nfe += n;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) r->lu2[i * n + j] = (i == j ? 1.0 : 0.0) - hg * r->jac2[i * n + j];
    r->sol->stats.nlu++;
    if (nde_lu_factor(n, r->lu2, r->piv2) != 0)
        return nde__fail_at(r, NDE_ERR_NONFINITE, hg, "singular Newton matrix at a converged stage");
    /* minv_t[j][i] = (M^{-1})[i][j]: row j of minv_t is M^{-1} e_j */
    shp[0] = n; shp[1] = n;
    minv_t = nde_tensor_new(ctx, 2, shp);
    if (!minv_t) return nde__ctx_err(ctx);
    for (j = 0; j < n; j++) {
        for (i = 0; i < n; i++) r->hvec[i] = i == j ? 1.0 : 0.0;
        nde_lu_solve(n, r->lu2, r->piv2, r->hvec);
        for (i = 0; i < n; i++) r->hreal[i] = (nde_real)r->hvec[i];
        r->be->copy(r->be->self, minv_t->data + j * n, r->hreal, (size_t)n * sizeof(nde_real),
                    r->be->is_device ? NDE_COPY_TO_DEVICE : NDE_COPY_DEVICE);
    }
    fy = nde__eval(ctx, r->f, r->user, ti, ystar, &r->sol->stats.nfe, r->who);
    if (!fy) return nde__ctx_err(ctx);
    xs[0] = ystar; xs[1] = base; xs[2] = fy;
    co[0] = NDE_R(1.0); co[1] = NDE_R(-1.0); co[2] = (nde_real)(-hg);
    g = nde_lincomb(ctx, 3, co, xs);
    shp[0] = 1; shp[1] = n;
    corr = nde_matmul(ctx, nde_reshape(ctx, g, 2, shp), minv_t, 0, 0);     /* g^T M^{-T} = (M^{-1} g)^T */
    corr = nde_reshape(ctx, corr, ystar->ndim, ystar->shape);
    if (!corr) return nde__ctx_err(ctx);
    xs[0] = ystar; xs[1] = corr; co[0] = NDE_R(1.0); co[1] = NDE_R(-1.0);
    *y_out = nde_lincomb(ctx, 2, co, xs);
    return *y_out ? NDE_OK : nde__ctx_err(ctx);
}

static nde_status nde__esdirk_attempt(nde__run *r, double h, nde__attempt *a) {
    const nde_tableau *tab = r->mi->tableau;
    nde_ctx *ctx = r->ctx;
    int64_t n = r->z->size, i, j;
    int s = tab->stages, st_i, m, it;
    double hg = h * tab->gamma;
    nde_tensor *xs[NDE_RK_MAX_STAGES + 1], *Y = NULL, *delta;
    nde_real co[NDE_RK_MAX_STAGES + 1];
    a->k[0] = r->fz;
    if (!r->jac_valid || r->jac_t != r->t) {
        if (nde_jacobian(ctx, r->f, r->user, r->t, r->z, r->jac) != NDE_OK) return nde__ctx_err(ctx);
        r->sol->stats.njev++; r->sol->stats.nfe += n;
        r->jac_valid = 1; r->jac_t = r->t;
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) r->lu[i * n + j] = (i == j ? 1.0 : 0.0) - hg * r->jac[i * n + j];
    r->sol->stats.nlu++;
    if (nde_lu_factor(n, r->lu, r->piv) != 0) { a->failed = 1; return NDE_OK; }
    delta = nde_tensor_new(ctx, r->z->ndim, r->z->shape);
    if (!delta) return nde__ctx_err(ctx);
    for (st_i = 1; st_i < s; st_i++) {
        double ti = r->t + tab->c[st_i] * h, prev = 0.0;
        nde_tensor *base, *kg;
        int converged = 0, was = nde_set_grad_enabled(ctx, 0);   /* Newton runs off the tape */
        /* base = z + h sum_{j<i} a_ij k_j; start from k_i ~ sum_j predictor_ij k_j */
        m = 0; xs[m] = r->z; co[m++] = NDE_R(1.0);
        for (j = 0; j < st_i; j++) if (tab->a[st_i][j] != 0.0) { xs[m] = a->k[j]; co[m++] = (nde_real)(h * tab->a[st_i][j]); }
        base = m == 1 ? r->z : nde_lincomb(ctx, m, co, xs);
        m = 0; xs[m] = base; co[m++] = NDE_R(1.0);
        for (j = 0; j < st_i; j++) if (tab->predictor[st_i][j] != 0.0) { xs[m] = a->k[j]; co[m++] = (nde_real)(hg * tab->predictor[st_i][j]); }
        Y = nde_lincomb(ctx, m, co, xs);
        if (!base || !Y) { nde_set_grad_enabled(ctx, was); return nde__ctx_err(ctx); }
        for (it = 0; it < r->o.newton_max_iters; it++) {
            nde_tensor *fY = nde__eval(ctx, r->f, r->user, ti, Y, &r->sol->stats.nfe, r->who), *res;
            double dn, rate;
            if (!fY) { nde_set_grad_enabled(ctx, was); return nde__ctx_err(ctx); }
            /* residual of Y = base + h gamma f(Y); (I - h gamma J) delta = residual */
            xs[0] = base; xs[1] = fY; xs[2] = Y;
            co[0] = NDE_R(1.0); co[1] = (nde_real)hg; co[2] = NDE_R(-1.0);
            res = nde_lincomb(ctx, 3, co, xs);
            if (!res || nde__newton_delta(r, res, delta) != NDE_OK) { nde_set_grad_enabled(ctx, was); return nde__ctx_err(ctx); }
            xs[0] = Y; xs[1] = delta; co[0] = NDE_R(1.0); co[1] = NDE_R(1.0);
            Y = nde_lincomb(ctx, 2, co, xs);
            if (!Y) { nde_set_grad_enabled(ctx, was); return nde__ctx_err(ctx); }
            dn = nde_error_norm(ctx, &r->o, delta, Y, Y);
            if (!(dn == dn) || isinf(dn)) break;
            if (dn == 0.0) { converged = 1; break; }
            if (it > 0) {
                rate = dn / prev;
                if (rate >= 1.0) break;                                    /* diverging */
                if (rate / (1.0 - rate) * dn <= r->o.newton_kappa) { converged = 1; break; }
            } else if (dn <= 1e-2 * r->o.newton_kappa) { converged = 1; break; }
            prev = dn;
        }
        nde_set_grad_enabled(ctx, was);
        if (!converged) { a->failed = 1; r->sol->stats.newton_failures++; return NDE_OK; }
        if (r->taped) {
            nde_status st;
            m = 0; xs[m] = r->z; co[m++] = NDE_R(1.0);
            for (j = 0; j < st_i; j++) if (tab->a[st_i][j] != 0.0) { xs[m] = a->k[j]; co[m++] = (nde_real)(h * tab->a[st_i][j]); }
            base = m == 1 ? r->z : nde_lincomb(ctx, m, co, xs);
            if (!base) return nde__ctx_err(ctx);
            st = nde__ift_stage(r, ti, hg, base, Y, &Y);
            if (st != NDE_OK) return st;
        }
        /* k_i = (Y_i - base_i) / (h gamma) */
        xs[0] = Y; xs[1] = base; co[0] = (nde_real)(1.0 / hg); co[1] = (nde_real)(-1.0 / hg);
        kg = nde_lincomb(ctx, 2, co, xs);
        if (!kg) return nde__ctx_err(ctx);
        a->k[st_i] = kg;
    }
    a->y1 = Y;                                       /* stiffly accurate: y1 = Y_s */
    m = 0;
    for (j = 0; j < s; j++) if (tab->b_error[j] != 0.0) { xs[m] = a->k[j]; co[m++] = (nde_real)(h * tab->b_error[j]); }
    a->err = nde__raw_lincomb(ctx, m, co, xs);
    a->f1 = a->k[s - 1];
    a->num_k = 0;                                    /* Hermite interpolant */
    return a->err ? NDE_OK : nde__ctx_err(ctx);
}

/* ------------------------------------------------------------ TAYLOR
   The Taylor-series method (documentation: TAYLOR in the declarations). */
NDE_API nde_tensor *nde_jet_field_plain(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *ref) {
    nde_jet_field_ref *r = (nde_jet_field_ref *)ref;
    nde_jet *y;
    if (!r || !r->f) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_jet_field_plain: the user data must be an nde_jet_field_ref"); return NULL; }
    y = r->f(ctx, nde_jet_const(ctx, t, 0), nde_jet_new(ctx, 0, &z), r->user);
    if (!y && nde_ctx_status(ctx) == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_jet_field_plain: the jet field returned NULL");
    return y ? y->c[0] : NULL;
}

/* Order p: options.taylor_order or Jorba & Zou's optimal order for the tolerance. */
static int nde__taylor_order(const nde__run *r) {
    double tol = r->o.rtol > 0 && (r->o.atol <= 0 || r->o.rtol < r->o.atol) ? r->o.rtol : r->o.atol;
    int p;
    if (r->o.taylor_order > 0) return r->o.taylor_order;
    p = tol > 0 ? (int)ceil(-0.5 * log(tol) + 1.0) : NDE_JET_MAX_ORDER;
    return p < 2 ? 2 : (p > NDE_JET_MAX_ORDER ? NDE_JET_MAX_ORDER : p);
}

/* The coefficients at (r->t, r->z), computed once per point. */
static nde_status nde__taylor_coeffs(nde__run *r) {
    nde_jet_field_ref *ref = (nde_jet_field_ref *)r->user;
    int p = nde__taylor_order(r);
    if (r->taylor_c && r->taylor_z == r->z && r->taylor_t == r->t) return NDE_OK;
    if (r->f != nde_jet_field_plain || !ref || !ref->f)
        return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "%s: the taylor method needs a field written on jets: pass "
                            "nde_jet_field_plain as the field and an nde_jet_field_ref as its user data", r->who);
    if (r->o.taylor_order < 0 || p < 1 || p > NDE_JET_MAX_ORDER)
        return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "%s: taylor_order = %d outside 1..%d (0: from the tolerances)", r->who,
                            r->o.taylor_order, NDE_JET_MAX_ORDER);
    r->taylor_c = nde_ode_taylor_coeffs(r->ctx, ref->f, ref->user, (nde_real)r->t, r->z, p);
    if (!r->taylor_c) return nde__ctx_err(r->ctx);
    r->taylor_z = r->z; r->taylor_t = r->t;
    r->sol->stats.nfe += p;
    return NDE_OK;
}

/* Adaptive stepping: release the last point's coefficients (untaped), compute
   this point's, and the Jorba-Zou step from the last two (see TAYLOR). */
static nde_status nde__taylor_step_size(nde__run *r, double *h) {
    const nde_backend *be = r->be;
    double zmax, eps, rho = HUGE_VAL, hh;
    int p, j;
    nde_status st;
    if (!r->taped && r->taylor_have_mark) nde_ctx_reset(r->ctx, r->taylor_mark);
    r->taylor_c = NULL;
    r->taylor_mark = nde_ctx_mark(r->ctx); r->taylor_have_mark = 1;
    st = nde__taylor_coeffs(r);
    if (st != NDE_OK) return st;
    p = r->taylor_c->order;
    if (p < 2) return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "%s: adaptive taylor steps need taylor_order >= 2 (it is %d); "
                                   "use step_size for order 1", r->who, p);
    zmax = be->max_abs(be->self, r->z->size, r->z->data);
    eps = fmax(r->o.atol, r->o.rtol * zmax);
    for (j = p - 1; j <= p; j++) {
        nde_tensor *c = r->taylor_c->c[j];
        double cm = c ? be->max_abs(be->self, c->size, c->data) : 0.0;
        if (cm > 0) rho = fmin(rho, pow(eps / cm, 1.0 / (double)j));
    }
    hh = exp(-0.7 / (double)(p - 1)) * rho;   /* Jorba & Zou's safety factor */
    if (r->o.dtmax > 0 && hh > r->o.dtmax) hh = r->o.dtmax;
    if (r->next_out < r->num_ts && fabs(r->ts[r->next_out] - r->t) < hh) hh = fabs(r->ts[r->next_out] - r->t);
    if (!(hh < HUGE_VAL)) hh = fabs(r->t_end - r->t);   /* a polynomial solution: no bound */
    *h = r->dir * hh;
    return NDE_OK;
}

static nde_status nde__taylor_attempt(nde__run *r, double h, nde__attempt *a) {
    nde_status st = nde__taylor_coeffs(r);
    if (st != NDE_OK) return st;
    a->y1 = nde_jet_eval(r->ctx, r->taylor_c, (nde_real)h);   /* sum_k z_k h^k */
    a->num_k = 0;                                             /* Hermite interpolant if one is needed */
    return a->y1 ? NDE_OK : nde__ctx_err(r->ctx);
}

NDE_API nde_tensor *nde_taynode_reg_solution(nde_ctx *ctx, nde_jet_field f, void *user, int K, const nde_solution *sol) {
    double *ts; nde_real *tr; nde_tensor **zs; int64_t i, n;
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!sol || !sol->steps || sol->num_steps < 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taynode_reg_solution: the solution has no recorded steps (solve with record_steps or dense)");
        return NULL;
    }
    n = sol->num_steps + 1;
    if (n > 0x7fffffff) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_taynode_reg_solution: %lld steps", (long long)n); return NULL; }
    ts = (double *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(double));
    tr = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_real));
    zs = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_tensor *));
    if (!ts || !tr || !zs) return NULL;
    for (i = 0; i < sol->num_steps; i++) { ts[i] = sol->steps[i].t0; zs[i] = sol->steps[i].y0; }
    ts[n - 1] = sol->steps[n - 2].t0 + sol->steps[n - 2].h;
    zs[n - 1] = sol->steps[n - 2].y1;
    for (i = 0; i < n; i++) tr[i] = (nde_real)ts[i];
    return nde_taynode_reg(ctx, f, user, K, (int)n, tr, zs);
}

/* One trial step of the method from (r->t, r->z, r->fz) with step h. */
static nde_status nde__try_step(nde__run *r, double h, int jump, nde__attempt *a) {
    const nde_tableau *tab = r->mi->tableau;
    nde_status st;
    memset(a, 0, sizeof *a);
    switch (r->mi->kind) {
    case NDE_KIND_ERK:
        st = nde__erk_step(r->ctx, tab, r->f, r->user, r->t, r->z, h, r->fz, jump, &a->y1, &a->err, a->k,
                           &r->sol->stats.nfe, r->who);
        if (st != NDE_OK) return st;
        a->num_k = tab->stages;
        if (tab->fsal) a->f1 = a->k[tab->stages - 1];
        return NDE_OK;
    case NDE_KIND_ADAMS_EXPLICIT:
    case NDE_KIND_ADAMS_IMPLICIT:
        return nde__adams_attempt(r, h, a);
    case NDE_KIND_ESDIRK:
        return nde__esdirk_attempt(r, h, a);
    case NDE_KIND_TAYLOR:                            /* TAYLOR */
        return nde__taylor_attempt(r, h, a);
    }
    return nde_ctx_fail(r->ctx, NDE_ERR_INTERNAL, "%s: unknown method kind %d", r->who, (int)r->mi->kind);
}

/* ---- the two loops */
static nde_status nde__loop_fixed(nde__run *r, const double *grid, int64_t n_grid) {
    int64_t i;
    for (i = 0; i + 1 < n_grid; i++) {
        double t1 = grid[i + 1], h = t1 - grid[i];
        nde__attempt a;
        nde_mark m;
        nde_status st;
        if (i >= r->o.max_num_steps) {
            char what[96];
            snprintf(what, sizeof what, "max_num_steps (%lld) exceeded", (long long)r->o.max_num_steps);
            return nde__fail_at(r, NDE_ERR_MAX_STEPS, h, what);
        }
        st = nde__ensure_f(r);
        if (st != NDE_OK) return st;
        m = nde_ctx_mark(r->ctx);
        st = nde__try_step(r, h, 0, &a);
        if (st != NDE_OK) return st;
        if (a.failed)
            return nde__fail_at(r, NDE_ERR_UNSUPPORTED, h,
                                "the Newton iteration did not converge and fixed steps cannot be rejected "
                                "(use adaptive stepping or a smaller step_size)");
        if (nde__check_every_step(r) || i + 2 == n_grid ||
            (r->next_out < r->num_ts && !nde__before(r, t1, r->ts[r->next_out]))) {
            if (!nde_tensor_all_finite(r->ctx, a.y1)) {
                char what[160];
                if (r->t_checked == r->t) snprintf(what, sizeof what, "the state became NaN or Inf");
                else snprintf(what, sizeof what, "the state became NaN or Inf after t = %.17g (on a device, fixed "
                              "steps are checked where outputs land)", r->t_checked);
                return nde__fail_at(r, NDE_ERR_NONFINITE, h, what);
            }
            r->t_checked = t1;
        }
        st = nde__accept(r, h, t1, &a, 0);
        if (!r->taped) nde_ctx_reset(r->ctx, m);
        if (st != NDE_OK) return st;
    }
    return NDE_OK;
}

static nde_status nde__loop_adaptive(nde__run *r) {
    nde_step_controller c = nde_step_controller_init(&r->o, r->mi->error_order);
    double h;
    int64_t attempts = 0;
    int nonfinite = 0;
    nde_status st = nde__ensure_f(r);
    if (st != NDE_OK) return st;
    if (r->o.first_step > 0) h = r->dir * r->o.first_step;
    else {
        st = nde_initial_step(r->ctx, r->f, r->user, r->t, r->z, r->fz, r->mi->error_order, r->dir, &r->o, &h,
                              &r->sol->stats.nfe);
        if (st != NDE_OK) return st;
    }
    if (r->o.dtmax > 0 && fabs(h) > r->o.dtmax) h = r->dir * r->o.dtmax;
    while (nde__before(r, r->t, r->t_end)) {
        double h_try = h, t1, h_next, errn;
        int clipped = 0, jump = 0, accept;
        nde__attempt a;
        nde_mark m;
        if (attempts >= r->o.max_num_steps) {
            char what[96];
            snprintf(what, sizeof what, "max_num_steps (%lld) exceeded", (long long)r->o.max_num_steps);
            return nde__fail_at(r, NDE_ERR_MAX_STEPS, h, what);
        }
        attempts++;
        if (r->mi->kind == NDE_KIND_TAYLOR) {           /* TAYLOR: the Jorba-Zou step at this point */
            st = nde__taylor_step_size(r, &h);
            if (st != NDE_OK) return st;
            h_try = h;
        }
        if (r->o.dtmin > 0 && fabs(h_try) < r->o.dtmin) h_try = r->dir * r->o.dtmin;
        t1 = r->t + h_try;
        /* land on t_end exactly, and never leave a sliver behind */
        if (!nde__before(r, t1, r->t_end) || fabs(r->t_end - t1) <= 64.0 * DBL_EPSILON * fabs(r->t_end)) {
            t1 = r->t_end; h_try = t1 - r->t;
        }
        while (r->istep < r->nstep && !nde__before(r, r->t, r->step_ts[r->istep])) r->istep++;
        while (r->ijump < r->njump && !nde__before(r, r->t, r->jump_ts[r->ijump])) r->ijump++;
        if (r->istep < r->nstep && nde__before(r, r->step_ts[r->istep], t1)) { t1 = r->step_ts[r->istep]; h_try = t1 - r->t; clipped = 1; }
        if (r->ijump < r->njump && !nde__before(r, t1, r->jump_ts[r->ijump])) {
            t1 = r->jump_ts[r->ijump]; h_try = t1 - r->t; jump = 1; clipped = 1;
        }
        if (t1 == r->t || fabs(h_try) <= 4.0 * DBL_EPSILON * fabs(r->t) || fabs(h_try) < DBL_MIN) {
            if (nonfinite)   /* the steps shrank because of NaN/Inf: say so */
                return nde__fail_at(r, NDE_ERR_NONFINITE, h_try, "NaN or Inf in the vector field or the state "
                                    "(rejected steps shrank to underflow)");
            return nde__fail_at(r, NDE_ERR_STEP_UNDERFLOW, h_try, "step size underflow");
        }
        st = nde__ensure_f(r);
        if (st != NDE_OK) return st;
        m = nde_ctx_mark(r->ctx);
        st = nde__try_step(r, h_try, jump, &a);
        if (st != NDE_OK) return st;
        if (a.failed) {                                   /* Newton failure: reject, halve */
            nde_ctx_reset(r->ctx, m);
            r->sol->stats.rejected++;
            h = 0.5 * h_try;
            continue;
        }
        errn = a.err ? nde_error_norm(r->ctx, &r->o, a.err, r->z, a.y1) : 0.0;
        /* the built-in norm is NaN for a non-finite y1: then it is the only host read */
        if (!(errn == errn) || isinf(errn) || ((!a.err || r->o.norm) && !nde_tensor_all_finite(r->ctx, a.y1))) {
            nde_ctx_reset(r->ctx, m);
            r->sol->stats.rejected++;
            if (++nonfinite > 20) return nde__fail_at(r, NDE_ERR_NONFINITE, h_try, "NaN or Inf in the vector field or the state");
            h = h_try * r->o.factor_min;
            continue;
        }
        accept = nde_step_controller_propose(&c, errn, h_try, &h_next);
        if (accept) nonfinite = 0;
        if (accept) {
            st = nde__accept(r, h_try, t1, &a, jump);
            if (!r->taped) nde_ctx_reset(r->ctx, m);
            if (st != NDE_OK) return st;
            if (clipped && fabs(h_next) < fabs(h)) h_next = h;  /* a clipped step says little about h */
        } else {
            nde_ctx_reset(r->ctx, m);
            r->sol->stats.rejected++;
        }
        h = h_next;
    }
    return NDE_OK;
}

/* ---- setup */
static int nde__cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A sorted copy (along the direction) of the times strictly after t0. */
static nde_status nde__sorted_times(nde__run *r, const double *src, int n, const char *name, double **out, int *count) {
    int i, k = 0;
    double *d;
    *out = NULL; *count = 0;
    if (n <= 0) return NDE_OK;
    if (!src) return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "nde_solve: %s is NULL with %d entries", name, n);
    d = (double *)nde_ctx_alloc_host(r->ctx, (size_t)n * sizeof(double));
    if (!d) return nde__ctx_err(r->ctx);
    for (i = 0; i < n; i++) {
        if (!isfinite(src[i])) return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "nde_solve: %s[%d] = %g is not finite", name, i, src[i]);
        if (nde__before(r, r->t, src[i])) d[k++] = src[i];
    }
    qsort(d, (size_t)k, sizeof(double), nde__cmp_double);
    if (r->dir < 0) for (i = 0; i < k / 2; i++) { double tmp = d[i]; d[i] = d[k - 1 - i]; d[k - 1 - i] = tmp; }
    *out = d; *count = k;
    return NDE_OK;
}

static nde_status nde__check_inputs(nde_ctx *ctx, nde_field_fn f, nde_tensor *z0, int num_ts, const double *ts,
                                    const nde_solve_options *o, nde_solution *sol) {
    int i;
    if (!sol) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: NULL solution");
    if (!f || !z0) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: NULL vector field or initial state");
    if (num_ts < 1 || !ts) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: empty ts (num_ts = %d): need at least one output time", num_ts);
    for (i = 0; i < num_ts; i++)
        if (!isfinite(ts[i])) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: ts[%d] = %g is not finite", i, ts[i]);
    if (num_ts > 1) {
        int up = ts[1] > ts[0];
        for (i = 1; i < num_ts; i++)
            if (up ? !(ts[i] > ts[i - 1]) : !(ts[i] < ts[i - 1]))
                return nde_ctx_fail(ctx, NDE_ERR_ARG,
                                    "nde_solve: ts must be strictly monotonic (increasing or decreasing): ts[%d] = %.17g after ts[%d] = %.17g",
                                    i, ts[i], i - 1, ts[i - 1]);
    }
    if (!nde_method_get(o->method)) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: unknown method %d", (int)o->method);
    if (!(o->rtol >= 0) || !(o->atol >= 0) || !isfinite(o->rtol) || !isfinite(o->atol) ||
        (o->rtol == 0 && o->atol == 0 && !o->atol_tensor))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: rtol = %g, atol = %g: need finite values >= 0, not both 0", o->rtol, o->atol);
    if (o->atol_tensor && o->atol_tensor->size != z0->size) {
        char s1[64], s2[64];
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_solve: atol_tensor is %s but the state is %s",
                            nde_shape_str(o->atol_tensor, s1, sizeof s1), nde_shape_str(z0, s2, sizeof s2));
    }
    if (!(o->safety > 0 && o->safety <= 1) || !(o->factor_min > 0 && o->factor_min <= 1) || !(o->factor_max >= 1))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: safety = %g, factor_min = %g, factor_max = %g: need 0 < safety <= 1, "
                            "0 < factor_min <= 1 <= factor_max", o->safety, o->factor_min, o->factor_max);
    if (o->max_num_steps < 1) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: max_num_steps = %lld < 1", (long long)o->max_num_steps);
    if (!(o->step_size >= 0) || !isfinite(o->step_size) || !(o->first_step >= 0) || !isfinite(o->first_step) ||
        !(o->dtmin >= 0) || !(o->dtmax >= 0) || (o->dtmax > 0 && o->dtmin > o->dtmax))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: step_size = %g, first_step = %g, dtmin = %g, dtmax = %g: need values >= 0 "
                            "and dtmin <= dtmax", o->step_size, o->first_step, o->dtmin, o->dtmax);
    if (o->adams_order < 1 || o->adams_order > NDE_ADAMS_MAX_ORDER || o->adams_max_iters < 1 || o->newton_max_iters < 1 ||
        !(o->newton_kappa > 0))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: adams_order = %d (1..%d), adams_max_iters = %d, newton_max_iters = %d, "
                            "newton_kappa = %g: out of range", o->adams_order, NDE_ADAMS_MAX_ORDER, o->adams_max_iters,
                            o->newton_max_iters, o->newton_kappa);
    if (o->grid_len > 0 && !o->grid) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solve: grid is NULL with grid_len %d", o->grid_len);
    if (!nde_tensor_all_finite(ctx, z0)) return nde_ctx_fail(ctx, NDE_ERR_NONFINITE, "nde_solve: the initial state has NaN or Inf");
    return NDE_OK;
}

/* The fixed-step grid: options.grid, steps of step_size, or ts. */
static nde_status nde__make_grid(nde__run *r, double **grid, int64_t *n_grid) {
    const nde_solve_options *o = &r->o;
    double t0 = r->ts[0], T = r->t_end;
    int64_t i, n;
    double *g;
    if (o->grid_len > 0) {
        if (o->grid_len < 2 || o->grid[0] != t0 || o->grid[o->grid_len - 1] != T)
            return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "nde_solve: the grid must start at ts[0] = %.17g and end at ts[%d] = %.17g "
                                "(it has %d points from %.17g to %.17g)", t0, r->num_ts - 1, T, o->grid_len, o->grid[0],
                                o->grid[o->grid_len - 1]);
        for (i = 1; i < o->grid_len; i++)
            if (!nde__before(r, o->grid[i - 1], o->grid[i]))
                return nde_ctx_fail(r->ctx, NDE_ERR_ARG, "nde_solve: the grid must be strictly monotonic along ts: grid[%lld] = %.17g "
                                    "after grid[%lld] = %.17g", (long long)i, o->grid[i], (long long)(i - 1), o->grid[i - 1]);
        *grid = (double *)o->grid; *n_grid = o->grid_len;
        return NDE_OK;
    }
    if (o->step_size <= 0) { *grid = (double *)r->ts; *n_grid = r->num_ts; return NDE_OK; }
    {
        double steps = ceil(fabs(T - t0) / o->step_size * (1.0 - 1e-12));
        if (steps < 1) steps = 1;
        if (steps > (double)o->max_num_steps) {
            char what[160];
            snprintf(what, sizeof what, "max_num_steps (%lld) exceeded: step_size %g needs %.0f steps",
                     (long long)o->max_num_steps, o->step_size, steps);
            return nde__fail_at(r, NDE_ERR_MAX_STEPS, r->dir * o->step_size, what);
        }
        n = (int64_t)steps + 1;
    }
    g = (double *)nde_ctx_alloc_host(r->ctx, (size_t)n * sizeof(double));
    if (!g) return nde__ctx_err(r->ctx);
    for (i = 0; i < n - 1; i++) g[i] = t0 + r->dir * (double)i * o->step_size;
    g[n - 1] = T;
    *grid = g; *n_grid = n;
    return NDE_OK;
}

static nde_status nde__setup_buffers(nde__run *r, nde_tensor *z0) {
    nde_ctx *ctx = r->ctx;
    int i;
    const int64_t *shp = z0->shape;
    int nd = z0->ndim;
    if (!r->taped) {
        r->zbuf = nde_tensor_new(ctx, nd, shp);
        r->fbuf = nde_tensor_new(ctx, nd, shp);
        if (r->o.event) r->evbuf = nde_tensor_new(ctx, nd, shp);
        for (i = 0; i < r->num_ts; i++) r->sol->ys[i] = nde_tensor_new(ctx, nd, shp);
        if (r->mi->kind == NDE_KIND_ADAMS_EXPLICIT || r->mi->kind == NDE_KIND_ADAMS_IMPLICIT)
            for (i = 0; i < r->o.adams_order; i++) r->hist_buf[i] = nde_tensor_new(ctx, nd, shp);
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
        nde_tensor_copy_into(ctx, r->zbuf, z0);
        nde_tensor_copy_into(ctx, r->fbuf, r->fz);
        nde_tensor_copy_into(ctx, r->sol->ys[0], z0);
        r->z = r->zbuf; r->fz = r->fbuf;
    } else {
        r->sol->ys[0] = z0;
    }
    if (r->mi->implicit) {
        int64_t n = z0->size;
        if (n > NDE_IMPLICIT_MAX_DIM)
            return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "%s: the implicit method uses a dense %lld x %lld Jacobian; the limit is "
                                "NDE_IMPLICIT_MAX_DIM = %d unknowns", r->who, (long long)n, (long long)n, NDE_IMPLICIT_MAX_DIM);
        r->jac = (double *)nde_ctx_alloc_host(ctx, (size_t)(n * n) * sizeof(double));
        r->lu = (double *)nde_ctx_alloc_host(ctx, (size_t)(n * n) * sizeof(double));
        r->hvec = (double *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(double));
        r->piv = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(int64_t));
        r->hreal = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_real));
        if (r->taped) {
            r->jac2 = (double *)nde_ctx_alloc_host(ctx, (size_t)(n * n) * sizeof(double));
            r->lu2 = (double *)nde_ctx_alloc_host(ctx, (size_t)(n * n) * sizeof(double));
            r->piv2 = (int64_t *)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(int64_t));
        }
        if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    }
    if (r->o.event) {
        nde_status st = nde__eval_g(r, r->t, r->z, NULL);
        if (st != NDE_OK) return st;
        r->g_prev = (double *)nde_ctx_alloc_host(ctx, (size_t)r->ng * sizeof(double));
        r->g_new = (double *)nde_ctx_alloc_host(ctx, (size_t)r->ng * sizeof(double));
        if (!r->g_prev || !r->g_new) return nde__ctx_err(ctx);
        st = nde__eval_g(r, r->t, r->z, r->g_prev);
        if (st != NDE_OK) return st;
    }
    return nde_ctx_status(ctx);
}

static nde_status nde__solve(nde__run *r, nde_tensor *z0) {
    nde_ctx *ctx = r->ctx;
    nde_solution *sol = r->sol;
    nde_status st;
    int adaptive;
    sol->ys = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)r->num_ts * sizeof(nde_tensor *));
    sol->store = (struct nde__solution_store *)NDE_MALLOC(sizeof(struct nde__solution_store));
    if (!sol->ys || !sol->store) return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_solve: out of memory");
    memset(sol->store, 0, sizeof *sol->store);
    sol->store->be = r->be;
    sol->store->tab = r->mi->tableau;
    r->t = r->ts[0];
    r->t_checked = r->t;
    r->t_end = r->ts[r->num_ts - 1];
    r->dir = r->t_end >= r->t ? 1.0 : -1.0;
    r->z = z0;
    if (r->num_ts == 1) {
        sol->ys[0] = nde_grad_enabled(ctx) && z0->requires_grad ? z0 : nde_tensor_detach(ctx, z0);
        sol->num_out = 1; sol->z_final = sol->ys[0]; sol->t_final = r->t;
        return nde_ctx_status(ctx);
    }
    /* f(t0, z0) decides whether this solve is taped */
    r->fz = nde__eval(ctx, r->f, r->user, r->t, z0, &sol->stats.nfe, r->who);
    if (!r->fz) return nde__ctx_err(ctx);
    if (!nde_tensor_all_finite(ctx, r->fz)) return nde__fail_at(r, NDE_ERR_NONFINITE, 0.0, "the vector field returned NaN or Inf");
    r->taped = nde_grad_enabled(ctx) && (z0->requires_grad || r->fz->requires_grad);
    sol->taped = r->taped;
    if (!r->taped) nde_set_grad_enabled(ctx, 0);
    st = nde__setup_buffers(r, z0);
    if (st != NDE_OK) return st;
    r->next_out = 1;
    st = nde__sorted_times(r, r->o.step_ts, r->o.num_step_ts, "step_ts", &r->step_ts, &r->nstep);
    if (st == NDE_OK) st = nde__sorted_times(r, r->o.jump_ts, r->o.num_jump_ts, "jump_ts", &r->jump_ts, &r->njump);
    if (st != NDE_OK) return st;
    adaptive = r->mi->error_order > 0 && r->o.step_size <= 0 && r->o.grid_len <= 0;
    if (adaptive) st = nde__loop_adaptive(r);
    else {
        double *grid = NULL; int64_t n_grid = 0;
        st = nde__make_grid(r, &grid, &n_grid);
        if (st == NDE_OK) st = nde__loop_fixed(r, grid, n_grid);
    }
    sol->num_out = r->next_out;
    sol->t_final = r->t;
    sol->z_final = r->z;
    if (st == NDE_OK && r->o.dense && sol->num_steps > 0 && !sol->steps[sol->num_steps - 1].f1) {
        /* the last Hermite step still needs f(t_end, z(t_end)) */
        st = nde__ensure_f(r);
        if (st == NDE_OK) {
            nde_step *last = &sol->steps[sol->num_steps - 1];
            last->f1 = r->taped ? r->fz : nde__store_tensor(r, r->fz);
            st = nde_ctx_status(ctx);
        }
    }
    return st;
}

NDE_API nde_status nde_solve(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0,
                             int num_ts, const double *ts, const nde_solve_options *opts, nde_solution *sol) {
    nde__run r;
    nde_solve_options d = nde_solve_options_default();
    nde_status st;
    int was;
    if (sol) { memset(sol, 0, sizeof *sol); sol->event_index = -1; sol->status = NDE_ERR_ARG; }
    if (!ctx) return NDE_ERR_ARG;
    if (nde_ctx_status(ctx) != NDE_OK) { if (sol) sol->status = nde_ctx_status(ctx); return nde_ctx_status(ctx); }
    if (!opts) opts = &d;
    st = nde__check_inputs(ctx, f, z0, num_ts, ts, opts, sol);
    if (st != NDE_OK) { if (sol) sol->status = st; return st; }
    memset(&r, 0, sizeof r);
    r.ctx = ctx; r.be = nde_ctx_backend(ctx); r.f = f; r.user = user; r.o = *opts; r.sol = sol;
    r.mi = nde_method_get(opts->method);
    r.num_ts = num_ts; r.ts = ts;
    snprintf(r.who, sizeof r.who, "nde_solve (%s)", r.mi->name);
    sol->method = opts->method;
    sol->dense = opts->dense;
    /* untaped solves run with grad mode off; the decision is made on f(t0, z0) */
    was = nde_grad_enabled(ctx);
    st = nde__solve(&r, z0);
    nde_set_grad_enabled(ctx, was);
    if (st == NDE_OK && nde_ctx_status(ctx) != NDE_OK) st = nde_ctx_status(ctx);
    sol->status = st;
    return st;
}

/* ------------------------------------------------------------ dense output */
NDE_API int64_t nde_solution_find_step(const nde_solution *sol, double t) {
    int64_t lo = 0, hi;
    double dir;
    if (!sol || sol->num_steps == 0) return -1;
    dir = sol->steps[0].h < 0 ? -1.0 : 1.0;
    hi = sol->num_steps - 1;
    if (dir * (t - sol->steps[0].t0) < 0) return -1;
    {
        const nde_step *last = &sol->steps[hi];
        double end = (hi == sol->num_steps - 1 && sol->status == NDE_EVENT) ? sol->t_final : last->t0 + last->h;
        if (dir * (t - end) > 0) return -1;
    }
    while (lo < hi) {   /* last step whose t0 is at or before t */
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (dir * (t - sol->steps[mid].t0) >= 0) lo = mid; else hi = mid - 1;
    }
    return lo;
}

NDE_API nde_tensor *nde_step_eval(nde_ctx *ctx, const nde_solution *sol, int64_t i, double t) {
    const nde_step *s;
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!sol || i < 0 || i >= sol->num_steps) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_step_eval: step %lld outside the %lld recorded steps", (long long)i,
                     (long long)(sol ? sol->num_steps : 0));
        return NULL;
    }
    s = &sol->steps[i];
    if (!sol->dense) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_step_eval: the solution has no dense output (set options.dense = 1)");
        return NULL;
    }
    if (t == s->t0 + s->h) return nde_tensor_clone(ctx, s->y1);
    return nde__step_interp(ctx, sol->store ? sol->store->tab : NULL, s, t);
}

NDE_API nde_tensor *nde_solution_eval(nde_ctx *ctx, const nde_solution *sol, double t) {
    int64_t i;
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!sol || !sol->dense) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solution_eval: the solution has no dense output (set options.dense = 1)");
        return NULL;
    }
    i = nde_solution_find_step(sol, t);
    if (i < 0) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solution_eval: t = %.17g is outside the solved interval [%.17g, %.17g]", t,
                     sol->num_steps ? sol->steps[0].t0 : 0.0, sol->t_final);
        return NULL;
    }
    return nde_step_eval(ctx, sol, i, t);
}

NDE_API nde_tensor *nde_solution_stack(nde_ctx *ctx, const nde_solution *sol) {
    nde_mark m;
    nde_tensor **parts;
    int i, j;
    int64_t shp[NDE_MAX_DIMS];
    if (nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!sol || !sol->ys || sol->num_out < 1) {
        nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_solution_stack: no outputs");
        return NULL;
    }
    if (sol->ys[0]->ndim >= NDE_MAX_DIMS) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_solution_stack: states of shape %s have %d dimensions; stacking needs at most %d "
                     "(use sol.ys[i])", nde_shape_str(sol->ys[0], s1, sizeof s1), sol->ys[0]->ndim, NDE_MAX_DIMS - 1);
        return NULL;
    }
    m = nde_ctx_mark(ctx);
    (void)m;
    parts = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)sol->num_out * sizeof(nde_tensor *));
    if (!parts) return NULL;
    shp[0] = 1;
    for (j = 0; j < sol->ys[0]->ndim; j++) shp[j + 1] = sol->ys[0]->shape[j];
    for (i = 0; i < sol->num_out; i++) {
        parts[i] = nde_reshape(ctx, sol->ys[i], sol->ys[0]->ndim + 1, shp);
        if (!parts[i]) return NULL;
    }
    return nde_concat(ctx, sol->num_out, parts, 0);
}

NDE_API nde_tensor *nde_odeint(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0,
                               int num_ts, const double *ts, const nde_solve_options *opts) {
    nde_solution sol;
    nde_tensor *out = NULL;
    nde_status st = nde_solve(ctx, f, user, z0, num_ts, ts, opts, &sol);
    if (st == NDE_OK) out = nde_solution_stack(ctx, &sol);
    nde_solution_free(ctx, &sol);
    return out;
}

/* ================================================================ SDE
   (declarations and documentation: the SDE block at the top of this file) */

/* ------------------------------------------------------------ Brownian tree */
/* Two independent N(0, 1) from one Philox block (Box-Muller on 52-bit uniforms). */
static void nde__bm_normals(uint64_t seed, uint64_t node, int64_t elem, double *z1, double *z2) {
    uint32_t o[4];
    double u1, u2, r;
    nde_philox4x32(seed, node, (uint64_t)elem, o);
    u1 = ((double)(((uint64_t)o[0] << 20) | (uint64_t)(o[1] >> 12)) + 0.5) * (1.0 / 4503599627370496.0);
    u2 = ((double)(((uint64_t)o[2] << 20) | (uint64_t)(o[3] >> 12)) + 0.5) * (1.0 / 4503599627370496.0);
    r = sqrt(-2.0 * log(u1));
    *z1 = r * cos(6.283185307179586 * u2);
    *z2 = r * sin(6.283185307179586 * u2);
}

NDE_API nde_status nde_brownian_init(nde_ctx *ctx, nde_brownian *bm, double t0, double t1, int ndim,
                                     const int64_t *shape, double tol, uint64_t seed) {
    int i, depth;
    int64_t size = 1;
    if (!bm) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_brownian_init: NULL path");
    memset(bm, 0, sizeof *bm);
    if (!isfinite(t0) || !isfinite(t1) || !(t1 > t0) || !(tol > 0) || !isfinite(tol))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_brownian_init: need finite t0 < t1 and tol > 0 (t0 = %g, t1 = %g, tol = %g)",
                            t0, t1, tol);
    if (ndim < 1 || ndim > NDE_MAX_DIMS || !shape)
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_brownian_init: ndim %d outside 1..%d", ndim, NDE_MAX_DIMS);
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 1) return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_brownian_init: dimension %d is %lld", i, (long long)shape[i]);
        size *= shape[i];
    }
    depth = 0;
    while (depth < NDE_BROWNIAN_MAX_DEPTH && (t1 - t0) / ldexp(1.0, depth) > tol) depth++;
    bm->t0 = t0; bm->t1 = t1; bm->ndim = ndim; bm->size = size; bm->depth = depth; bm->seed = seed;
    for (i = 0; i < NDE_MAX_DIMS; i++) bm->shape[i] = i < ndim ? shape[i] : 1;
    bm->node = (int64_t *)NDE_MALLOC((size_t)(depth + 1) * sizeof(int64_t));
    bm->levels = (double *)NDE_MALLOC((size_t)(depth + 1) * 4 * (size_t)size * sizeof(double));
    bm->scratch = (double *)NDE_MALLOC(4 * (size_t)size * sizeof(double));
    if (!bm->node || !bm->levels || !bm->scratch) {
        nde_brownian_free(bm);
        return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_brownian_init: out of memory for %lld elements at depth %d",
                            (long long)size, depth);
    }
    for (i = 0; i <= depth; i++) bm->node[i] = -1;
    return NDE_OK;
}

NDE_API void nde_brownian_free(nde_brownian *bm) {
    if (!bm) return;
    NDE_FREE(bm->node); NDE_FREE(bm->levels); NDE_FREE(bm->scratch);
    bm->node = NULL; bm->levels = NULL; bm->scratch = NULL;
}

/* Level L of the cache: W(a), W(b), G(a), H of the node, each bm->size doubles. */
static double *nde__bm_level(nde_brownian *bm, int level, int which) {
    return bm->levels + ((size_t)level * 4 + (size_t)which) * (size_t)bm->size;
}

/* Fill cache level L with node i (its parent at level L-1 is cached). */
static void nde__bm_fill(nde_brownian *bm, int level, int64_t i) {
    int64_t n = bm->size, e;
    double *wa = nde__bm_level(bm, level, 0), *wb = nde__bm_level(bm, level, 1);
    double *ga = nde__bm_level(bm, level, 2), *hh = nde__bm_level(bm, level, 3);
    double T = bm->t1 - bm->t0;
    if (level == 0) {
        double sw = sqrt(T), sh = sqrt(T / 12.0);
        for (e = 0; e < n; e++) {
            double z1, z2;
            nde__bm_normals(bm->seed, 0, e, &z1, &z2);
            wa[e] = 0.0; ga[e] = 0.0; wb[e] = sw * z1; hh[e] = sh * z2;
        }
    } else {
        const double *pwa = nde__bm_level(bm, level - 1, 0), *pwb = nde__bm_level(bm, level - 1, 1);
        const double *pga = nde__bm_level(bm, level - 1, 2), *ph = nde__bm_level(bm, level - 1, 3);
        double h = ldexp(T, -(level - 1));                          /* parent width */
        uint64_t parent_id = ((uint64_t)1 << (level - 1)) + (uint64_t)(i >> 1);
        int right = (int)(i & 1);
        double q = sqrt(h) / 4.0, r12 = sqrt(h / 12.0);
        for (e = 0; e < n; e++) {
            double z1, z2, W = pwb[e] - pwa[e], H = ph[e], wl, s, r, hl;
            nde__bm_normals(bm->seed, parent_id, e, &z1, &z2);
            wl = 0.5 * W + 1.5 * H + q * z1;      /* W(mid) - W(a) given (W, H) */
            s = 0.5 * H - q * z1;                 /* H_left + H_right           */
            r = r12 * z2;                         /* H_left - H_right           */
            hl = 0.5 * (s + r);
            if (!right) {
                wa[e] = pwa[e]; wb[e] = pwa[e] + wl; ga[e] = pga[e]; hh[e] = hl;
            } else {
                wa[e] = pwa[e] + wl; wb[e] = pwb[e];
                ga[e] = pga[e] + 0.5 * h * (pwa[e] + 0.5 * wl + hl);   /* G(mid) = G(a) + int_a^mid W */
                hh[e] = 0.5 * (s - r);
            }
        }
    }
    bm->node[level] = i;
}

/* W(t) and G(t) = int_{t0}^t W for every element. */
static void nde__bm_point(nde_brownian *bm, double t, double *w, double *g) {
    double T = bm->t1 - bm->t0, frac = (t - bm->t0) / T, th, h;
    int64_t n = bm->size, e, i = 0;
    int L;
    const double *wa, *wb, *ga, *hh;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    for (L = 0; L <= bm->depth; L++) {
        int64_t cnt = (int64_t)1 << L;
        i = (int64_t)floor(frac * (double)cnt);
        if (i > cnt - 1) i = cnt - 1;
        if (bm->node[L] != i) nde__bm_fill(bm, L, i);   /* node values depend on the node only */
    }
    L = bm->depth;
    h = ldexp(T, -L);
    th = (t - (bm->t0 + (double)i * h)) / h;
    if (th < 0) th = 0;
    if (th > 1) th = 1;
    wa = nde__bm_level(bm, L, 0); wb = nde__bm_level(bm, L, 1); ga = nde__bm_level(bm, L, 2); hh = nde__bm_level(bm, L, 3);
    for (e = 0; e < n; e++) {
        double W = wb[e] - wa[e], H = hh[e];
        /* the leaf's quadratic W(a) + th W + 6 th (1 - th) H and its integral */
        w[e] = wa[e] + th * W + 6.0 * th * (1.0 - th) * H;
        g[e] = ga[e] + h * (th * wa[e] + 0.5 * W * th * th + H * (3.0 * th * th - 2.0 * th * th * th));
    }
}

NDE_API nde_status nde_brownian_query(nde_ctx *ctx, nde_brownian *bm, double s, double t, double *dw, double *hout) {
    double lo, hi, len, span;
    double *ws, *gs, *wt, *gt;
    int64_t e;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!bm || !bm->levels || !dw) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_brownian_query: NULL or uninitialised path or output");
    span = bm->t1 - bm->t0;
    if (!(s >= bm->t0 - 1e-12 * span && s <= bm->t1 + 1e-12 * span && t >= bm->t0 - 1e-12 * span && t <= bm->t1 + 1e-12 * span))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_brownian_query: [%.17g, %.17g] is outside the path's interval [%.17g, %.17g]",
                            s, t, bm->t0, bm->t1);
    ws = bm->scratch; gs = ws + bm->size; wt = gs + bm->size; gt = wt + bm->size;
    lo = s < t ? s : t; hi = s < t ? t : s; len = hi - lo;
    nde__bm_point(bm, lo, ws, gs);
    nde__bm_point(bm, hi, wt, gt);
    for (e = 0; e < bm->size; e++) {
        double inc = wt[e] - ws[e];
        dw[e] = s <= t ? inc : -inc;
        if (hout) hout[e] = len > 0 ? (gt[e] - gs[e] - len * ws[e]) / len - 0.5 * inc : 0.0;
    }
    return NDE_OK;
}

static nde_tensor *nde__host_to_tensor(nde_ctx *ctx, const nde_brownian *bm, const double *v) {
    nde_real *buf = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)bm->size * sizeof(nde_real));
    int64_t e;
    if (!buf) return NULL;
    for (e = 0; e < bm->size; e++) buf[e] = (nde_real)v[e];
    return nde_tensor_from(ctx, bm->ndim, bm->shape, buf);
}

NDE_API nde_status nde_brownian_increment(nde_ctx *ctx, nde_brownian *bm, double s, double t, nde_tensor **dw,
                                          nde_tensor **h) {
    double *a, *b = NULL;
    nde_status st;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!bm || !bm->levels || !dw) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_brownian_increment: NULL or uninitialised path or output");
    a = (double *)nde_ctx_alloc_host(ctx, (size_t)bm->size * sizeof(double) * (h ? 2 : 1));
    if (!a) return nde_ctx_status(ctx);
    if (h) b = a + bm->size;
    st = nde_brownian_query(ctx, bm, s, t, a, b);
    if (st != NDE_OK) return st;
    *dw = nde__host_to_tensor(ctx, bm, a);
    if (h) *h = nde__host_to_tensor(ctx, bm, b);
    return nde_ctx_status(ctx);
}

/* ------------------------------------------------------------ SDE methods */
static const char *const nde__sde_names[NDE_SDE_METHOD_COUNT] = {
    "euler", "milstein", "euler_heun", "reversible_heun", "sra1"
};
NDE_API const char *nde_sde_method_name(nde_sde_method m) {
    return ((int)m >= 0 && m < NDE_SDE_METHOD_COUNT) ? nde__sde_names[m] : "unknown";
}
NDE_API nde_status nde_sde_method_from_name(nde_ctx *ctx, const char *name, nde_sde_method *out) {
    int i;
    for (i = 0; name && i < NDE_SDE_METHOD_COUNT; i++)
        if (strcmp(name, nde__sde_names[i]) == 0) { if (out) *out = (nde_sde_method)i; return NDE_OK; }
    return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_method_from_name: unknown SDE method '%s' (known: euler, milstein, "
                        "euler_heun, reversible_heun, sra1)", name ? name : "(null)");
}
NDE_API nde_sde_options nde_sde_options_default(void) {
    nde_sde_options o;
    memset(&o, 0, sizeof o);
    o.method = NDE_SDE_EULER;
    return o;
}
NDE_API nde_status nde_sde_noise_shape(nde_ctx *ctx, const nde_sde *sde, const nde_tensor *z, int *ndim, int64_t *shape) {
    int i;
    if (!sde || !z || !ndim || !shape) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_noise_shape: NULL argument");
    if (sde->noise == NDE_NOISE_SCALAR) {
        *ndim = z->ndim >= 2 ? 2 : 1;
        shape[0] = z->ndim >= 2 ? z->shape[0] : 1;
        if (z->ndim >= 2) shape[1] = 1;
        return NDE_OK;
    }
    if (sde->noise != NDE_NOISE_DIAGONAL && sde->noise != NDE_NOISE_ADDITIVE)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_noise_shape: unknown noise type %d", (int)sde->noise);
    *ndim = z->ndim;
    for (i = 0; i < z->ndim; i++) shape[i] = z->shape[i];
    return NDE_OK;
}

typedef struct nde__sde_run {
    nde_ctx *ctx;
    const nde_sde *sde;
    nde_sde_method method;
    nde_brownian *bm;
    char who[48];
} nde__sde_run;

static nde_tensor *nde__sde_drift(nde__sde_run *r, double t, nde_tensor *z) {
    return nde__eval(r->ctx, r->sde->drift, r->sde->user, t, z, NULL, r->who);
}
static nde_tensor *nde__sde_diffusion(nde__sde_run *r, double t, nde_tensor *z) {
    nde_tensor *g;
    if (nde_ctx_status(r->ctx) != NDE_OK) return NULL;
    if (r->sde->diffusion) g = r->sde->diffusion(r->ctx, nde_tensor_scalar(r->ctx, (nde_real)t), z, r->sde->user);
    else g = nde_jet_field_eval(r->ctx, r->sde->diffusion_jet, r->sde->user, (nde_real)t, z);
    if (!g && nde_ctx_status(r->ctx) == NDE_OK)
        nde_ctx_fail(r->ctx, NDE_ERR_USER_FN, "%s: the diffusion returned NULL at t = %.17g", r->who, t);
    return g;
}
/* g * dW with the result checked to have z's shape (broadcasting is allowed). */
static nde_tensor *nde__sde_noise(nde__sde_run *r, nde_tensor *g, nde_tensor *dw, const nde_tensor *z) {
    nde_tensor *p = nde_mul(r->ctx, g, dw);
    if (p && p->size != z->size) {
        char s1[64], s2[64], s3[64];
        nde_ctx_fail(r->ctx, NDE_ERR_SHAPE, "%s: the diffusion returned %s; with noise %s of shape %s it must give the state's shape %s",
                     r->who, nde_shape_str(g, s1, sizeof s1), r->sde->noise == NDE_NOISE_SCALAR ? "scalar" : "diagonal",
                     nde_shape_str(dw, s2, sizeof s2), nde_shape_str(z, s3, sizeof s3));
        return NULL;
    }
    if (p && !nde_tensor_same_shape(p, z)) p = nde_reshape(r->ctx, p, z->ndim, z->shape);
    return p;
}
static nde_tensor *nde__sum3(nde_ctx *ctx, nde_real a, nde_tensor *x, nde_real b, nde_tensor *y, nde_real c, nde_tensor *w) {
    nde_real co[3]; nde_tensor *xs[3];
    int n = 0;
    if (x) { co[n] = a; xs[n++] = x; }
    if (y) { co[n] = b; xs[n++] = y; }
    if (w) { co[n] = c; xs[n++] = w; }
    if (nde_ctx_status(ctx) != NDE_OK || n == 0) return NULL;
    return nde_lincomb(ctx, n, co, xs);
}

/* Milstein's g'g = J_g(z) g(z): an exact JVP through the jet diffusion. */
typedef struct nde__sde_jvp_user { const nde_sde *sde; double t; } nde__sde_jvp_user;
static nde_jet *nde__sde_diffusion_jet(nde_ctx *ctx, nde_jet *x, void *user) {
    nde__sde_jvp_user *u = (nde__sde_jvp_user *)user;
    nde_jet *tj = nde_jet_const(ctx, nde_tensor_scalar(ctx, (nde_real)u->t), x ? x->order : 0);
    return u->sde->diffusion_jet(ctx, tj, x, u->sde->user);
}
static nde_tensor *nde__sde_gdg(nde__sde_run *r, double t, double h, nde_tensor *z, nde_tensor *g) {
    nde_ctx *ctx = r->ctx;
    if (r->sde->diffusion_jet) {
        nde__sde_jvp_user u;
        nde_tensor *y = NULL, *jv = NULL, *v = g;
        u.sde = r->sde; u.t = t;
        if (!nde_tensor_same_shape(v, z)) v = nde_add(ctx, nde_tensor_zeros_like(ctx, z), v);   /* a broadcast g */
        if (nde_jvp(ctx, nde__sde_diffusion_jet, &u, z, v, &y, &jv) != NDE_OK) return NULL;
        return jv;
    } else {
        /* derivative-free: (g(t, z + g sqrt(h)) - g(t, z)) / sqrt(h) */
        nde_real sq = (nde_real)sqrt(fabs(h));
        nde_tensor *zb = nde_add(ctx, z, nde_scale(ctx, g, sq));
        nde_tensor *gb = nde__sde_diffusion(r, t, zb);
        return nde_scale(ctx, nde_sub(ctx, gb, g), NDE_R(1.0) / sq);
    }
}

/* ------------------------------------------------------------ Ito <-> Stratonovich */
static nde_tensor *nde__conv_diffusion(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const nde_sde_conversion *c = (const nde_sde_conversion *)user;
    return c->src.diffusion(ctx, t, z, c->src.user);
}
static nde_jet *nde__conv_diffusion_jet(nde_ctx *ctx, nde_jet *t, nde_jet *z, void *user) {
    const nde_sde_conversion *c = (const nde_sde_conversion *)user;
    return c->src.diffusion_jet(ctx, t, z, c->src.user);
}
/* f(t, z) + sign (J_g g)(t, z) */
static nde_tensor *nde__conv_drift(nde_ctx *ctx, nde_tensor *t, nde_tensor *z, void *user) {
    const nde_sde_conversion *c = (const nde_sde_conversion *)user;
    nde__sde_jvp_user u;
    nde_tensor *f, *g, *y = NULL, *jv = NULL;
    double tv = t ? (double)nde_tensor_item(ctx, t, 0) : 0.0;
    f = c->src.drift(ctx, t, z, c->src.user);
    if (!f || nde_ctx_status(ctx) != NDE_OK) return NULL;
    u.sde = &c->src; u.t = tv;
    g = c->src.diffusion ? c->src.diffusion(ctx, t, z, c->src.user)
                         : nde_jet_field_eval(ctx, c->src.diffusion_jet, c->src.user, (nde_real)tv, z);
    if (!g) {
        if (nde_ctx_status(ctx) == NDE_OK) nde_ctx_fail(ctx, NDE_ERR_USER_FN, "nde_sde_convert: the diffusion returned NULL at t = %.17g", tv);
        return NULL;
    }
    if (!nde_tensor_same_shape(g, z)) g = nde_add(ctx, nde_tensor_zeros_like(ctx, z), g);   /* a broadcast g */
    if (nde_jvp(ctx, nde__sde_diffusion_jet, &u, z, g, &y, &jv) != NDE_OK) return NULL;
    return nde_lincomb(ctx, 2, (nde_real[]){NDE_R(1.0), (nde_real)c->sign}, (nde_tensor *[]){f, jv});
}
NDE_API nde_status nde_sde_convert(nde_ctx *ctx, const nde_sde *src, nde_sde_type to, nde_sde_conversion *conv) {
    if (!ctx) return NDE_ERR_ARG;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!src || !conv) return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_convert: NULL SDE or output");
    if (to != NDE_SDE_ITO && to != NDE_SDE_STRATONOVICH)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_convert: unknown target type %d", (int)to);
    if (!src->drift || (!src->diffusion && !src->diffusion_jet))
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_convert: the SDE needs a drift and a diffusion");
    memset(conv, 0, sizeof *conv);
    conv->src = *src;
    conv->sde = *src;
    conv->sde.type = to;
    if (to == src->type || src->noise == NDE_NOISE_ADDITIVE) return NDE_OK;
    if (!src->diffusion_jet)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sde_convert: converting %s noise needs diffusion_jet (the correction "
                            "1/2 g'g is an exact JVP of the diffusion)", src->noise == NDE_NOISE_SCALAR ? "scalar" : "diagonal");
    conv->sign = to == NDE_SDE_STRATONOVICH ? -0.5 : 0.5;
    conv->sde.drift = nde__conv_drift;
    conv->sde.diffusion = src->diffusion ? nde__conv_diffusion : NULL;
    conv->sde.diffusion_jet = nde__conv_diffusion_jet;
    conv->sde.user = conv;
    return NDE_OK;
}

/* One step from (t, state) of size h with increment dw (and Levy area lh for
   sra1). state: y, or (y, y^, mu, sigma) for reversible Heun. */
static nde_status nde__sde_step(nde__sde_run *r, double t, double h, nde_tensor **s, nde_tensor **out) {
    nde_ctx *ctx = r->ctx;
    nde_tensor *dw = NULL, *lh = NULL, *z = s[0];
    nde_real hh = (nde_real)h;
    if (nde_brownian_increment(ctx, r->bm, t, t + h, &dw, r->method == NDE_SDE_SRA1 ? &lh : NULL) != NDE_OK)
        return nde__ctx_err(ctx);
    switch (r->method) {
    case NDE_SDE_EULER: {
        nde_tensor *f = nde__sde_drift(r, t, z), *g = nde__sde_diffusion(r, t, z);
        out[0] = nde__sum3(ctx, NDE_R(1.0), z, hh, f, NDE_R(1.0), nde__sde_noise(r, g, dw, z));
        break;
    }
    case NDE_SDE_MILSTEIN: {
        nde_tensor *f = nde__sde_drift(r, t, z), *g = nde__sde_diffusion(r, t, z), *corr = NULL;
        if (r->sde->noise != NDE_NOISE_ADDITIVE) {
            /* 1/2 g'g (dW^2 - h) (Ito) or 1/2 g'g dW^2 (Stratonovich) */
            nde_tensor *gdg = nde__sde_gdg(r, t, h, z, g), *q = nde_square(ctx, dw);
            if (r->sde->type == NDE_SDE_ITO) q = nde_add_scalar(ctx, q, -hh);
            corr = nde__sde_noise(r, gdg, q, z);
        }
        out[0] = nde__sum3(ctx, NDE_R(1.0), z, hh, f, NDE_R(1.0), nde__sde_noise(r, g, dw, z));
        if (corr) out[0] = nde__sum3(ctx, NDE_R(1.0), out[0], NDE_R(0.5), corr, 0, NULL);
        break;
    }
    case NDE_SDE_EULER_HEUN: {
        nde_tensor *f = nde__sde_drift(r, t, z), *g = nde__sde_diffusion(r, t, z);
        nde_tensor *zt = nde_add(ctx, z, nde__sde_noise(r, g, dw, z));
        nde_tensor *g2 = nde__sde_diffusion(r, t + h, zt);
        nde_tensor *gs = nde_scale(ctx, nde_add(ctx, g, g2), NDE_R(0.5));
        out[0] = nde__sum3(ctx, NDE_R(1.0), z, hh, f, NDE_R(1.0), nde__sde_noise(r, gs, dw, z));
        break;
    }
    case NDE_SDE_REVERSIBLE_HEUN: {
        nde_tensor *y = s[0], *yh = s[1], *mu = s[2], *sg = s[3], *yh1, *mu1, *sg1;
        yh1 = nde__sum3(ctx, NDE_R(2.0), y, NDE_R(-1.0), yh, hh, mu);
        yh1 = nde_add(ctx, yh1, nde__sde_noise(r, sg, dw, y));
        mu1 = nde__sde_drift(r, t + h, yh1);
        sg1 = nde__sde_diffusion(r, t + h, yh1);
        out[0] = nde__sum3(ctx, NDE_R(1.0), y, NDE_R(0.5) * hh, mu, NDE_R(0.5) * hh, mu1);
        out[0] = nde_add(ctx, out[0], nde__sde_noise(r, nde_scale(ctx, nde_add(ctx, sg, sg1), NDE_R(0.5)), dw, y));
        out[1] = yh1; out[2] = mu1; out[3] = sg1;
        break;
    }
    case NDE_SDE_SRA1: {
        /* Roessler (2010) SRA1: c0 = (0, 3/4), c1 = (1, 0), A0_21 = 3/4, B0_21 = 3/2,
           alpha = (1/3, 2/3), beta1 = (1, 0), beta2 = (-1, 1); I10/h = dW/2 + H */
        nde_tensor *i10h = nde__sum3(ctx, NDE_R(0.5), dw, NDE_R(1.0), lh, 0, NULL);
        nde_tensor *f1 = nde__sde_drift(r, t, z), *g0 = nde__sde_diffusion(r, t, z), *g1 = nde__sde_diffusion(r, t + h, z);
        nde_tensor *H2 = nde__sum3(ctx, NDE_R(1.0), z, NDE_R(0.75) * hh, f1, NDE_R(1.5), nde__sde_noise(r, g1, i10h, z));
        nde_tensor *f2 = nde__sde_drift(r, t + 0.75 * h, H2);
        nde_tensor *y = nde__sum3(ctx, NDE_R(1.0), z, hh / NDE_R(3.0), f1, NDE_R(2.0) * hh / NDE_R(3.0), f2);
        y = nde__sum3(ctx, NDE_R(1.0), y, NDE_R(1.0), nde__sde_noise(r, g1, dw, z), NDE_R(1.0),
                      nde__sde_noise(r, nde_sub(ctx, g0, g1), i10h, z));
        out[0] = y;
        break;
    }
    default:
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: unknown method %d", r->who, (int)r->method);
    }
    return nde_ctx_status(ctx) == NDE_OK && out[0] ? NDE_OK : nde__ctx_err(ctx);
}

static nde_status nde__sde_check(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                 const nde_sde_options *o, const char *who) {
    int i;
    nde_sde_method m;
    if (!sde || !sde->drift || (!sde->diffusion && !sde->diffusion_jet) || !z0)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: need an SDE with a drift and a diffusion (or diffusion_jet), and z0", who);
    if ((int)sde->type < 0 || sde->type > NDE_SDE_STRATONOVICH || (int)sde->noise < 0 || sde->noise > NDE_NOISE_ADDITIVE)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: unknown SDE type %d or noise type %d", who, (int)sde->type, (int)sde->noise);
    m = o->method;
    if ((int)m < 0 || m >= NDE_SDE_METHOD_COUNT) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: unknown SDE method %d", who, (int)m);
    if (sde->noise != NDE_NOISE_ADDITIVE) {
        if (m == NDE_SDE_EULER && sde->type != NDE_SDE_ITO)
            return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "%s: euler (Euler-Maruyama) converges to the Ito solution; this SDE is "
                                "Stratonovich: use euler_heun, reversible_heun or milstein", who);
        if ((m == NDE_SDE_EULER_HEUN || m == NDE_SDE_REVERSIBLE_HEUN) && sde->type != NDE_SDE_STRATONOVICH)
            return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "%s: %s converges to the Stratonovich solution; this SDE is Ito: use "
                                "euler or milstein", who, nde__sde_names[m]);
        if (m == NDE_SDE_SRA1)
            return nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "%s: sra1 needs additive noise (noise = NDE_NOISE_ADDITIVE)", who);
    }
    if (num_ts < 1 || !ts) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: empty ts (num_ts = %d)", who, num_ts);
    for (i = 0; i < num_ts; i++) {
        if (!isfinite(ts[i])) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: ts[%d] = %g is not finite", who, i, ts[i]);
        if (i > 0 && !(ts[i] > ts[i - 1]))
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: ts must be strictly increasing: ts[%d] = %.17g after ts[%d] = %.17g", who, i,
                                ts[i], i - 1, ts[i - 1]);
    }
    if (o->grid_len > 0 || o->grid) {
        if (!o->grid || o->grid_len < 2)
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: grid needs at least 2 points (grid_len = %d)", who, o->grid_len);
        for (i = 1; i < o->grid_len; i++)
            if (!(o->grid[i] > o->grid[i - 1]))
                return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: the grid must be strictly increasing (grid[%d] = %.17g)", who, i, o->grid[i]);
        if (o->grid[0] > ts[0] || o->grid[o->grid_len - 1] < ts[num_ts - 1])
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: the grid [%.17g, %.17g] does not span ts [%.17g, %.17g]", who, o->grid[0],
                                o->grid[o->grid_len - 1], ts[0], ts[num_ts - 1]);
    } else {
        if (!(o->dt > 0) || !isfinite(o->dt))
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: dt = %g: need a step size > 0 (or a grid)", who, o->dt);
        if ((ts[num_ts - 1] - ts[0]) / o->dt > 1e9)
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: dt = %g gives more than 1e9 steps over [%g, %g]", who, o->dt, ts[0], ts[num_ts - 1]);
    }
    if (o->bm) {
        int nd; int64_t shp[NDE_MAX_DIMS], size = 1;
        nde_sde_noise_shape(ctx, sde, z0, &nd, shp);
        for (i = 0; i < nd; i++) size *= shp[i];
        if (!o->bm->levels || o->bm->size != size)
            return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the Brownian path has %lld elements, the noise needs %lld", who,
                                (long long)o->bm->size, (long long)size);
        if (o->bm->t0 > ts[0] || o->bm->t1 < ts[num_ts - 1])
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: the Brownian path's interval [%.17g, %.17g] does not cover ts [%.17g, %.17g]",
                                who, o->bm->t0, o->bm->t1, ts[0], ts[num_ts - 1]);
    }
    if (!nde_tensor_all_finite(ctx, z0)) return nde_ctx_fail(ctx, NDE_ERR_NONFINITE, "%s: the initial state has NaN or Inf", who);
    return NDE_OK;
}

/* The next step end after t (at most `until`): the grid merged with the outputs. */
static double nde__sde_next(const nde_sde_options *o, double t0, double t, double until, int64_t *k) {
    double nxt, eps;
    if (o->grid) {
        eps = 1e-12 * (o->grid[o->grid_len - 1] - o->grid[0]);
        while (*k < o->grid_len && o->grid[*k] <= t + eps) (*k)++;
        nxt = *k < o->grid_len ? o->grid[*k] : until;
    } else {
        eps = 1e-9 * o->dt;
        while (t0 + (double)(*k + 1) * o->dt <= t + eps) (*k)++;
        nxt = t0 + (double)(*k + 1) * o->dt;
    }
    return nxt >= until - eps ? until : nxt;
}

/* The path of a solve without options.bm: a tree whose dyadic points include
   the grid t0 + k dt (exact there); the adjoint rebuilds the same one. */
static nde_status nde__sde_own_path(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                    const nde_sde_options *opts, nde_brownian *own) {
    int nd, i; int64_t shp[NDE_MAX_DIMS];
    double span = ts[num_ts - 1] - ts[0];
    nde_sde_noise_shape(ctx, sde, z0, &nd, shp);
    if (opts->grid) {
        double mn = span;
        for (i = 1; i < opts->grid_len; i++) if (opts->grid[i] - opts->grid[i - 1] < mn) mn = opts->grid[i] - opts->grid[i - 1];
        return nde_brownian_init(ctx, own, ts[0], ts[0] + (span > 0 ? span : 1.0), nd, shp, (span > 0 ? mn : 1.0) / 16.0,
                                 opts->seed);
    } else {
        double n = span > 0 ? ceil(span / opts->dt - 1e-9) : 1.0, p2 = 1.0;
        while (p2 < n) p2 *= 2.0;
        return nde_brownian_init(ctx, own, ts[0], ts[0] + p2 * opts->dt, nd, shp, opts->dt / 16.0, opts->seed);
    }
}

/* The solve on an initialised run (r->bm set). final (optional, 4 slots)
   receives the last state (y, and y^, mu, sigma for reversible Heun). */
static nde_status nde__sde_integrate(nde__sde_run *r, nde_tensor *z0, int num_ts, const double *ts,
                                     const nde_sde_options *opts, nde_tensor **ys, nde_tensor **final) {
    nde_ctx *ctx = r->ctx;
    nde_tensor *state[4], *buf[4], *next[4];
    int nstate = r->method == NDE_SDE_REVERSIBLE_HEUN ? 4 : 1, taped, i, j, was = nde_grad_enabled(ctx);
    int64_t k = 0;
    double t;
    {   /* taped when gradients can flow: z0, or the drift/diffusion at (t0, z0) */
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *f0 = nde__sde_drift(r, ts[0], z0), *g0 = nde__sde_diffusion(r, ts[0], z0);
        taped = was && (z0->requires_grad || (f0 && f0->requires_grad) || (g0 && g0->requires_grad));
        nde_ctx_reset(ctx, m);
    }
    if (!taped) nde_set_grad_enabled(ctx, 0);
    ys[0] = z0;
    state[0] = z0;
    if (nstate == 4) {
        state[1] = z0;
        state[2] = nde__sde_drift(r, ts[0], z0);
        state[3] = nde__sde_diffusion(r, ts[0], z0);
    }
    for (j = 0; j < nstate; j++) buf[j] = NULL;
    if (!taped) {
        for (i = 1; i < num_ts; i++) ys[i] = nde_tensor_new(ctx, z0->ndim, z0->shape);
        for (j = 0; j < nstate && state[j]; j++) {
            buf[j] = nde_tensor_new(ctx, state[j]->ndim, state[j]->shape);
            if (buf[j]) nde_tensor_copy_into(ctx, buf[j], state[j]);
            state[j] = buf[j];
        }
    }
    t = ts[0];
    for (i = 1; i < num_ts && nde_ctx_status(ctx) == NDE_OK; i++) {
        while (t < ts[i] && nde_ctx_status(ctx) == NDE_OK) {
            double t1 = nde__sde_next(opts, ts[0], t, ts[i], &k);
            nde_mark m = nde_ctx_mark(ctx);
            if (nde__sde_step(r, t, t1 - t, state, next) != NDE_OK) break;
            for (j = 0; j < nstate; j++) {
                if (taped) state[j] = next[j];
                else if (nde_tensor_copy_into(ctx, buf[j], next[j]) != NDE_OK) break;
            }
            if (!taped) nde_ctx_reset(ctx, m);
            t = t1;
        }
        if (nde_ctx_status(ctx) != NDE_OK) break;
        if (!nde_tensor_all_finite(ctx, state[0]))
            nde_ctx_fail(ctx, NDE_ERR_NONFINITE, "%s: NaN or Inf in the state at t = %.17g", r->who, ts[i]);
        else if (taped) ys[i] = state[0];
        else nde_tensor_copy_into(ctx, ys[i], state[0]);
    }
    if (final) for (j = 0; j < 4; j++) final[j] = j < nstate ? state[j] : NULL;
    nde_set_grad_enabled(ctx, was);
    return nde_ctx_status(ctx);
}

NDE_API nde_status nde_sde_solve(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                 const nde_sde_options *opts, nde_tensor **ys) {
    nde__sde_run r;
    nde_sde_options d = nde_sde_options_default();
    nde_brownian own;
    nde_status st;
    if (!ctx) return NDE_ERR_ARG;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!opts) opts = &d;
    memset(&r, 0, sizeof r);
    r.ctx = ctx; r.sde = sde; r.method = opts->method;
    snprintf(r.who, sizeof r.who, "nde_sde_solve (%s)", nde_sde_method_name(opts->method));
    if (!ys) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL output array", r.who);
    st = nde__sde_check(ctx, sde, z0, num_ts, ts, opts, r.who);
    if (st != NDE_OK) return st;
    memset(&own, 0, sizeof own);
    if (opts->bm) r.bm = opts->bm;
    else {
        st = nde__sde_own_path(ctx, sde, z0, num_ts, ts, opts, &own);
        if (st != NDE_OK) return st;
        r.bm = &own;
    }
    st = nde__sde_integrate(&r, z0, num_ts, ts, opts, ys, NULL);
    if (!opts->bm) nde_brownian_free(&own);
    return st;
}

/* ys[0..n-1] stacked on a new leading axis. */
static nde_tensor *nde__sde_stack(nde_ctx *ctx, int n, nde_tensor **ys) {
    nde_tensor **parts = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)n * sizeof(nde_tensor *));
    int64_t shp[NDE_MAX_DIMS];
    int i, j;
    if (!parts) return NULL;
    shp[0] = 1;
    for (j = 0; j < ys[0]->ndim; j++) shp[j + 1] = ys[0]->shape[j];
    for (i = 0; i < n; i++) parts[i] = nde_reshape(ctx, ys[i], ys[0]->ndim + 1, shp);
    return nde_concat(ctx, n, parts, 0);
}

NDE_API nde_tensor *nde_sdeint(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                               const nde_sde_options *opts) {
    nde_tensor **ys;
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!z0 || num_ts < 1) { nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_sdeint: NULL z0 or num_ts = %d", num_ts); return NULL; }
    if (z0->ndim >= NDE_MAX_DIMS) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_sdeint: a state of shape %s cannot be stacked (use nde_sde_solve)",
                     nde_shape_str(z0, s1, sizeof s1));
        return NULL;
    }
    ys = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)num_ts * sizeof(nde_tensor *));
    if (!ys) return NULL;
    if (nde_sde_solve(ctx, sde, z0, num_ts, ts, opts, ys) != NDE_OK) return NULL;
    return nde__sde_stack(ctx, num_ts, ys);
}

/* ------------------------------------------------------------ the reversible adjoint
   The forward solve runs off the tape and keeps only its final state
   (y, y^, mu, sigma). The backward walks the steps in reverse: it undoes each
   step algebraically (Kidger et al. 2021, eq. (5)),
       y^_n = 2 y_{n+1} - y^_{n+1} - mu_{n+1} h - sigma_{n+1} dW,
       mu_n, sigma_n = f, g at (t_n, y^_n),
       y_n  = y_{n+1} - (mu_n + mu_{n+1}) h/2 - (sigma_n + sigma_{n+1}) dW/2,
   with the same dW (the path is a pure function of the seed), then records
   that one forward step from the reconstructed state, backpropagates the
   adjoint (y, y^, mu, sigma)_bar through it (a VJP, parameters included) and
   releases it. */
typedef struct nde__sdeadj {
    nde_sde sde;
    nde_sde_options o;
    int num_ts;
    double *ts;
    nde_tensor *z0;
    nde_tensor *fin[4];     /* the forward's final state, no history */
} nde__sdeadj;

/* Backpropagate sum_k <bars_k, outs_k> over the tape above start (into the
   leaves' gradients and the current parameter-gradient array). */
static nde_status nde__sdeadj_vjp(nde_ctx *ctx, int n, nde_tensor **outs, nde_tensor **bars, int64_t start) {
    nde_tensor *acc = NULL;
    int k;
    for (k = 0; k < n; k++) {
        nde_tensor *d;
        if (!outs[k] || !bars[k] || !outs[k]->requires_grad) continue;
        d = nde_sum(ctx, nde_mul(ctx, outs[k], bars[k]));
        acc = acc ? nde_add(ctx, acc, d) : d;
    }
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!acc) return NDE_OK;
    return nde_backward_seed(ctx, acc, nde_tensor_scalar(ctx, NDE_R(1.0)), start);
}

/* The step grid of a solve, again (deterministic): times[0..*nsteps] and, for
   each point, the output index it is (or -1). Host memory, NDE_FREE both. */
static nde_status nde__sde_grid(nde_ctx *ctx, const nde_sde_options *o, int num_ts, const double *ts, double **times,
                                int **out_at, int64_t *nsteps) {
    int64_t cap = 64, n = 0, k = 0;
    double *tg = (double *)NDE_MALLOC((size_t)cap * sizeof(double)), t = ts[0];
    int *oa = (int *)NDE_MALLOC((size_t)cap * sizeof(int)), i;
    for (i = 1; i < num_ts && tg && oa; i++) {
        while (t < ts[i] && tg && oa) {
            t = nde__sde_next(o, ts[0], t, ts[i], &k);
            if (n + 2 > cap) {
                double *ntg = (double *)NDE_REALLOC(tg, (size_t)cap * 2 * sizeof(double));
                int *noa = ntg ? (int *)NDE_REALLOC(oa, (size_t)cap * 2 * sizeof(int)) : NULL;
                if (ntg) tg = ntg;
                if (noa) oa = noa;
                if (!ntg || !noa) { NDE_FREE(tg); NDE_FREE(oa); tg = NULL; oa = NULL; break; }
                cap *= 2;
            }
            n++;
            tg[n] = t; oa[n] = -1;
        }
        if (tg && oa) oa[n] = i;
    }
    if (!tg || !oa) {
        NDE_FREE(tg); NDE_FREE(oa);
        return nde_ctx_fail(ctx, NDE_ERR_OOM, "nde_sdeint_adjoint: out of memory for the step grid");
    }
    tg[0] = ts[0]; oa[0] = 0;
    *times = tg; *out_at = oa; *nsteps = n;
    return NDE_OK;
}

/* dst += the slice `index` of a stacked gradient (raw backend arrays). */
static void nde__sdeadj_add_slice(nde_ctx *ctx, nde_tensor *dst, const nde_real *stacked, int64_t index) {
    const nde_backend *be = nde_ctx_backend(ctx);
    const nde_real *src = stacked + index * dst->size;
    nde_real one = NDE_R(1.0);
    be->lincomb(be->self, dst->size, 1, &one, &src, 1, dst->data);
}

static void nde__sdeadj_backward(nde_ctx *ctx, nde_tensor *out, nde_tensor *const *inputs, int num_inputs, void *saved) {
    nde__sdeadj *A = (nde__sdeadj *)saved;
    nde_mark m0;
    nde__sde_run r;
    nde_brownian own;
    nde_tensor *S[4], *B[4];
    double *tg = NULL;
    int *out_at = NULL, j, was = nde_grad_enabled(ctx);
    int64_t nsteps = 0, n;
    (void)num_inputs;
    /* z0's gradient buffer outlives this call: allocate it before the mark */
    if (inputs[0] && inputs[0]->requires_grad && !nde_tensor_grad(ctx, inputs[0])) return;
    m0 = nde_ctx_mark(ctx);
    memset(&r, 0, sizeof r); memset(&own, 0, sizeof own);
    r.ctx = ctx; r.sde = &A->sde; r.method = NDE_SDE_REVERSIBLE_HEUN;
    snprintf(r.who, sizeof r.who, "nde_sdeint_adjoint (backward)");
    if (A->o.bm) r.bm = A->o.bm;
    else if (nde__sde_own_path(ctx, &A->sde, A->z0, A->num_ts, A->ts, &A->o, &own) != NDE_OK) return;
    else r.bm = &own;
    if (nde__sde_grid(ctx, &A->o, A->num_ts, A->ts, &tg, &out_at, &nsteps) != NDE_OK) goto done;
    for (j = 0; j < 4; j++) {
        S[j] = nde_tensor_detach(ctx, A->fin[j]);
        B[j] = nde_tensor_zeros_like(ctx, A->fin[j]);
    }
    if (nde_ctx_status(ctx) != NDE_OK) goto done;
    nde__sdeadj_add_slice(ctx, B[0], out->grad, A->num_ts - 1);
    nde_set_grad_enabled(ctx, 0);
    for (n = nsteps - 1; n >= 0 && nde_ctx_status(ctx) == NDE_OK; n--) {
        nde_mark m = nde_ctx_mark(ctx);
        double tn = tg[n], h = tg[n + 1] - tg[n];
        nde_real hh = (nde_real)h;
        nde_tensor *dw = NULL, *P[4], *L[4], *O[4], *G[4];
        int64_t start;
        /* undo the step (off the tape) */
        if (nde_brownian_increment(ctx, r.bm, tn, tn + h, &dw, NULL) != NDE_OK) break;
        P[1] = nde__sum3(ctx, NDE_R(2.0), S[0], NDE_R(-1.0), S[1], -hh, S[2]);
        P[1] = nde_sub(ctx, P[1], nde__sde_noise(&r, S[3], dw, S[0]));
        P[2] = nde__sde_drift(&r, tn, P[1]);
        P[3] = nde__sde_diffusion(&r, tn, P[1]);
        P[0] = nde__sum3(ctx, NDE_R(1.0), S[0], NDE_R(-0.5) * hh, P[2], NDE_R(-0.5) * hh, S[2]);
        P[0] = nde_sub(ctx, P[0], nde__sde_noise(&r, nde_scale(ctx, nde_add(ctx, P[3], S[3]), NDE_R(0.5)), dw, S[0]));
        if (nde_ctx_status(ctx) != NDE_OK) break;
        /* record the forward step from there and pull the adjoint back through it */
        nde_set_grad_enabled(ctx, 1);
        start = nde_tape_length(ctx);
        for (j = 0; j < 4; j++) { L[j] = nde_tensor_detach(ctx, P[j]); if (L[j]) L[j]->requires_grad = 1; }
        if (nde__sde_step(&r, tn, h, L, O) == NDE_OK) nde__sdeadj_vjp(ctx, 4, O, B, start);
        nde_set_grad_enabled(ctx, 0);
        for (j = 0; j < 4; j++) G[j] = L[j] ? nde_tensor_zeros_like(ctx, L[j]) : NULL;
        if (nde_ctx_status(ctx) != NDE_OK) break;
        for (j = 0; j < 4; j++) {
            if (L[j]->grad) nde_ctx_backend(ctx)->copy(nde_ctx_backend(ctx)->self, G[j]->data, L[j]->grad,
                                                       (size_t)L[j]->size * sizeof(nde_real), NDE_COPY_DEVICE);
            nde_tensor_copy_into(ctx, S[j], P[j]);
            nde_tensor_copy_into(ctx, B[j], G[j]);
        }
        nde_ctx_reset(ctx, m);
        if (n > 0 && out_at[n] > 0) nde__sdeadj_add_slice(ctx, B[0], out->grad, out_at[n]);   /* dL/dy(ts[i]) */
    }
    /* the start (y, y^, mu, sigma)_0 = (z0, z0, f(t0, z0), g(t0, z0)) */
    if (nde_ctx_status(ctx) == NDE_OK) {
        int want_z = inputs[0] && inputs[0]->requires_grad;
        nde_tensor *zl = nde_tensor_detach(ctx, A->z0), *O[4];
        nde_real *gz;
        int64_t start;
        nde_set_grad_enabled(ctx, 1);
        start = nde_tape_length(ctx);
        if (zl) zl->requires_grad = want_z;
        O[0] = NULL; O[1] = NULL;
        O[2] = zl ? nde__sde_drift(&r, A->ts[0], zl) : NULL;
        O[3] = zl ? nde__sde_diffusion(&r, A->ts[0], zl) : NULL;
        nde__sdeadj_vjp(ctx, 4, O, B, start);
        nde_set_grad_enabled(ctx, 0);
        gz = want_z ? nde_tensor_grad(ctx, inputs[0]) : NULL;
        if (gz && zl && nde_ctx_status(ctx) == NDE_OK) {
            const nde_backend *be = nde_ctx_backend(ctx);
            const nde_real *src[4];
            nde_real co[4];
            int cnt = 0;
            src[cnt] = B[0]->data; co[cnt++] = NDE_R(1.0);                 /* y_0 = z0  */
            src[cnt] = B[1]->data; co[cnt++] = NDE_R(1.0);                 /* y^_0 = z0 */
            src[cnt] = out->grad; co[cnt++] = NDE_R(1.0);                  /* output 0 is z0 */
            if (zl->grad) { src[cnt] = zl->grad; co[cnt++] = NDE_R(1.0); } /* through mu_0, sigma_0 */
            be->lincomb(be->self, zl->size, cnt, co, src, 1, gz);
        }
    }
done:
    nde_set_grad_enabled(ctx, was);
    NDE_FREE(tg); NDE_FREE(out_at);
    if (!A->o.bm) nde_brownian_free(&own);
    nde_ctx_reset(ctx, m0);
}

NDE_API nde_tensor *nde_sdeint_adjoint(nde_ctx *ctx, const nde_sde *sde, nde_tensor *z0, int num_ts, const double *ts,
                                       const nde_sde_options *opts) {
    nde__sde_run r;
    nde_sde_options d = nde_sde_options_default();
    nde_brownian own;
    nde__sdeadj *A;
    nde_tensor **ys, *fin[4], *packed = NULL, *zd;
    int j, was;
    if (!ctx || nde_ctx_status(ctx) != NDE_OK) return NULL;
    if (!opts) opts = &d;
    memset(&r, 0, sizeof r);
    r.ctx = ctx; r.sde = sde; r.method = opts->method;
    snprintf(r.who, sizeof r.who, "nde_sdeint_adjoint");
    if (nde__sde_check(ctx, sde, z0, num_ts, ts, opts, r.who) != NDE_OK) return NULL;
    if (opts->method != NDE_SDE_REVERSIBLE_HEUN) {
        nde_ctx_fail(ctx, NDE_ERR_UNSUPPORTED, "nde_sdeint_adjoint: the adjoint reverses reversible_heun steps; the method is %s "
                     "(use nde_sdeint to backpropagate through other methods)", nde_sde_method_name(opts->method));
        return NULL;
    }
    if (z0->ndim >= NDE_MAX_DIMS) {
        char s1[64];
        nde_ctx_fail(ctx, NDE_ERR_SHAPE, "nde_sdeint_adjoint: a state of shape %s cannot be stacked", nde_shape_str(z0, s1, sizeof s1));
        return NULL;
    }
    A = (nde__sdeadj *)nde_ctx_alloc_host(ctx, sizeof *A);
    ys = (nde_tensor **)nde_ctx_alloc_host(ctx, (size_t)num_ts * sizeof(nde_tensor *));
    if (!A || !ys) return NULL;
    memset(A, 0, sizeof *A);
    A->sde = *sde; A->o = *opts; A->num_ts = num_ts; A->z0 = z0;
    A->ts = (double *)nde_ctx_alloc_host(ctx, (size_t)num_ts * sizeof(double));
    if (!A->ts) return NULL;
    memcpy(A->ts, ts, (size_t)num_ts * sizeof(double));
    memset(&own, 0, sizeof own);
    if (opts->bm) r.bm = opts->bm;
    else {
        if (nde__sde_own_path(ctx, sde, z0, num_ts, ts, opts, &own) != NDE_OK) return NULL;
        r.bm = &own;
    }
    was = nde_set_grad_enabled(ctx, 0);
    zd = nde_tensor_detach(ctx, z0);
    if (zd && nde__sde_integrate(&r, zd, num_ts, ts, opts, ys, fin) == NDE_OK) {
        packed = nde__sde_stack(ctx, num_ts, ys);
        for (j = 0; j < 4; j++) A->fin[j] = fin[j];
    }
    nde_set_grad_enabled(ctx, was);
    if (!opts->bm) nde_brownian_free(&own);
    if (!packed) return NULL;
    if (nde_tape_custom(ctx, nde__sdeadj_backward, packed, 1, &z0, A) != NDE_OK) return NULL;
    return packed;
}
/* ================================================================ end of SDE */

/* ================================================================ SYMPLECTIC
   (declarations and documentation: the SYMPLECTIC block at the top) */
typedef struct nde__symp {
    nde_ctx *ctx; nde_field_fn f; void *user; int axis; int64_t half; const char *who;
} nde__symp;

/* One half ([0, half) = dq/dt, [half, 2 half) = dp/dt) of f(t, [q, p]). */
static nde_tensor *nde__symp_half(nde__symp *s, double t, nde_tensor *q, nde_tensor *p, int which) {
    nde_tensor *parts[2], *z, *k;
    parts[0] = q; parts[1] = p;
    z = nde_concat(s->ctx, 2, parts, s->axis);
    k = z ? nde__eval(s->ctx, s->f, s->user, t, z, NULL, s->who) : NULL;
    return k ? nde_slice(s->ctx, k, s->axis, which ? s->half : 0, which ? 2 * s->half : s->half) : NULL;
}

NDE_API nde_status nde_symplectic_solve(nde_ctx *ctx, nde_field_fn f, void *user, nde_tensor *z0, int num_ts,
                                        const double *ts, double dt, nde_symplectic_method method, nde_tensor **ys) {
    nde__symp s;
    nde_sde_options grid = nde_sde_options_default();
    nde_tensor *q, *p, *fp = NULL, *qbuf = NULL, *pbuf = NULL, *fpbuf = NULL, *parts[2];
    int i, taped, was;
    int64_t k = 0;
    double t;
    if (!ctx) return NDE_ERR_ARG;
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    s.ctx = ctx; s.f = f; s.user = user;
    s.who = method == NDE_LEAPFROG ? "nde_symplectic_solve (leapfrog)" : "nde_symplectic_solve (symplectic_euler)";
    if (!f || !z0 || !ys || num_ts < 1 || !ts)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: NULL field, state, ts or outputs (num_ts = %d)", s.who, num_ts);
    if (method != NDE_SYMPLECTIC_EULER && method != NDE_LEAPFROG)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "nde_symplectic_solve: unknown method %d", (int)method);
    s.axis = z0->ndim - 1;
    if (z0->shape[s.axis] % 2 != 0) {
        char s1[64];
        return nde_ctx_fail(ctx, NDE_ERR_SHAPE, "%s: the state %s must split its last axis into equal halves [q, p]", s.who,
                            nde_shape_str(z0, s1, sizeof s1));
    }
    s.half = z0->shape[s.axis] / 2;
    if (!(dt > 0) || !isfinite(dt)) return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: dt = %g must be > 0", s.who, dt);
    for (i = 0; i < num_ts; i++)
        if (!isfinite(ts[i]) || (i > 0 && !(ts[i] > ts[i - 1])))
            return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: ts must be finite and strictly increasing (ts[%d] = %g)", s.who, i, ts[i]);
    if ((ts[num_ts - 1] - ts[0]) / dt > 1e9)
        return nde_ctx_fail(ctx, NDE_ERR_ARG, "%s: dt = %g gives more than 1e9 steps", s.who, dt);
    if (!nde_tensor_all_finite(ctx, z0)) return nde_ctx_fail(ctx, NDE_ERR_NONFINITE, "%s: the initial state has NaN or Inf", s.who);
    grid.dt = dt;
    was = nde_grad_enabled(ctx);
    q = nde_slice(ctx, z0, s.axis, 0, s.half);
    p = nde_slice(ctx, z0, s.axis, s.half, 2 * s.half);
    {
        nde_mark m = nde_ctx_mark(ctx);
        nde_tensor *k0 = q && p ? nde__eval(ctx, f, user, ts[0], z0, NULL, s.who) : NULL;
        taped = was && (z0->requires_grad || (k0 && k0->requires_grad));
        nde_ctx_reset(ctx, m);
    }
    if (nde_ctx_status(ctx) != NDE_OK) return nde_ctx_status(ctx);
    if (!taped) {
        nde_set_grad_enabled(ctx, 0);
        q = nde_tensor_detach(ctx, q); p = nde_tensor_detach(ctx, p);
        qbuf = q; pbuf = p;
        for (i = 1; i < num_ts; i++) ys[i] = nde_tensor_new(ctx, z0->ndim, z0->shape);
        if (method == NDE_LEAPFROG && q) {   /* F_p(t0, q0), kept across steps */
            nde_mark m;
            fpbuf = nde_tensor_new(ctx, q->ndim, q->shape);
            m = nde_ctx_mark(ctx);
            fp = nde__symp_half(&s, ts[0], q, p, 1);
            if (fp && fpbuf) nde_tensor_copy_into(ctx, fpbuf, fp);
            nde_ctx_reset(ctx, m);
            fp = fpbuf;
        }
    }
    ys[0] = z0;
    t = ts[0];
    for (i = 1; i < num_ts && nde_ctx_status(ctx) == NDE_OK; i++) {
        while (t < ts[i] && nde_ctx_status(ctx) == NDE_OK) {
            double t1 = nde__sde_next(&grid, ts[0], t, ts[i], &k), h = t1 - t;
            nde_real hh = (nde_real)h;
            nde_mark m = nde_ctx_mark(ctx);
            nde_tensor *q1, *p1, *fp1 = NULL;
            if (method == NDE_LEAPFROG) {
                nde_tensor *ph;
                if (!fp) fp = nde__symp_half(&s, t, q, p, 1);
                ph = nde__sum3(ctx, NDE_R(1.0), p, NDE_R(0.5) * hh, fp, 0, NULL);
                q1 = nde__sum3(ctx, NDE_R(1.0), q, hh, nde__symp_half(&s, t + 0.5 * h, q, ph, 0), 0, NULL);
                fp1 = nde__symp_half(&s, t1, q1, ph, 1);
                p1 = nde__sum3(ctx, NDE_R(1.0), ph, NDE_R(0.5) * hh, fp1, 0, NULL);
            } else {
                p1 = nde__sum3(ctx, NDE_R(1.0), p, hh, nde__symp_half(&s, t, q, p, 1), 0, NULL);
                q1 = nde__sum3(ctx, NDE_R(1.0), q, hh, nde__symp_half(&s, t, q, p1, 0), 0, NULL);
            }
            if (nde_ctx_status(ctx) != NDE_OK || !q1 || !p1) break;
            if (taped) { q = q1; p = p1; fp = fp1; }
            else {
                nde_tensor_copy_into(ctx, qbuf, q1);
                nde_tensor_copy_into(ctx, pbuf, p1);
                if (fp1) nde_tensor_copy_into(ctx, fpbuf, fp1);
                nde_ctx_reset(ctx, m);
            }
            t = t1;
        }
        if (nde_ctx_status(ctx) != NDE_OK) break;
        parts[0] = q; parts[1] = p;
        if (taped) ys[i] = nde_concat(ctx, 2, parts, s.axis);
        else {
            nde_mark m = nde_ctx_mark(ctx);
            nde_tensor *z = nde_concat(ctx, 2, parts, s.axis);
            if (z) nde_tensor_copy_into(ctx, ys[i], z);
            nde_ctx_reset(ctx, m);
        }
        if (ys[i] && !nde_tensor_all_finite(ctx, ys[i]))
            nde_ctx_fail(ctx, NDE_ERR_NONFINITE, "%s: NaN or Inf in the state at t = %.17g", s.who, ts[i]);
    }
    nde_set_grad_enabled(ctx, was);
    return nde_ctx_status(ctx);
}
/* ================================================================ end of SYMPLECTIC */

#endif /* NDE_SOLVERS_IMPLEMENTATION */
