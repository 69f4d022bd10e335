// cc -O2 -std=c99 -Wall -Wextra -Werror -pedantic examples/spiral.c -o build/ex_spiral -lm
/* examples/spiral.c - torchdiffeq's ode_demo in C (workload W1).

   A neural ODE f(t, y) = Linear(50,2)(tanh(Linear(2,50)(y^3))) learns the spiral
   dy/dt = y^3 A, A = [[-0.1, 2.0], [-2.0, -0.1]], y(0) = (2, 0), from random
   windows of batch_time points of the true trajectory on t in [0, 25] (1000
   points). Mean absolute error, RMSprop lr 1e-3, dopri5 rtol 1e-7 atol 1e-9, as
   the original. Every test_freq iterations the whole trajectory is solved from
   y(0) and compared; at the end an SVG (trajectories, phase portrait, learned
   vector field) and the parameters (safetensors) are written.

       make demo                                  (build + run with the defaults)
       ./build/ex_spiral --grad_mode gq --niters 500 --svg out.svg
       ./build/ex_spiral --help
*/
#include "common.h"
#define NDE_IMPLEMENTATION
#include "../nde_adjoint.h"

#define DATA_SIZE 1000
#define T_END 25.0

typedef struct spiral {
    nde_linear l1, l2;
} spiral;

/* the learned field: Linear(50,2)(tanh(Linear(2,50)(y^3))) */
static nde_tensor *model_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    spiral *m = (spiral *)user;
    (void)t;
    return nde_linear_forward(ctx, &m->l2, nde_tanh(ctx, nde_linear_forward(ctx, &m->l1, nde_powi(ctx, y, 3))));
}

/* the true field: y^3 A */
static nde_tensor *true_field(nde_ctx *ctx, nde_tensor *t, nde_tensor *y, void *user) {
    (void)t;
    return nde_matmul(ctx, nde_powi(ctx, y, 3), (nde_tensor *)user, 0, 0);
}

/* batch_size distinct window starts in [0, DATA_SIZE - batch_time) (partial Fisher-Yates). */
static void draw_batch(nde_rng *rng, int batch_time, int batch_size, int *starts) {
    int pool[DATA_SIZE];
    int n = DATA_SIZE - batch_time, i;
    for (i = 0; i < n; i++) pool[i] = i;
    for (i = 0; i < batch_size; i++) {
        int j = i + (int)(nde_rng_uniform1(rng) * (n - i));
        int tmp = pool[i];
        if (j >= n) j = n - 1;
        pool[i] = pool[j];
        pool[j] = tmp;
        starts[i] = pool[i];
    }
}

static void write_picture(nde_ctx *ctx, spiral *model, const char *path, const double *t, const nde_real *true_y,
                          const nde_real *pred_y) {
    double tx[DATA_SIZE], a[DATA_SIZE], b[DATA_SIZE], c[DATA_SIZE], d[DATA_SIZE];
    ex_svg *s = ex_svg_open(path, 1080, 360);
    int i, j;
    if (!s) { fprintf(stderr, "spiral: cannot write %s\n", path); return; }
    for (i = 0; i < DATA_SIZE; i++) {
        tx[i] = t[i];
        a[i] = true_y[2 * i]; b[i] = true_y[2 * i + 1];
        c[i] = pred_y[2 * i]; d[i] = pred_y[2 * i + 1];
    }
    ex_svg_panel(s, 0, 0, 360, 360, 0, T_END, -2, 2, "Trajectories", "t", "x, y");
    ex_svg_polyline(s, DATA_SIZE, tx, 1, a, 1, "#2ca02c", 1.2, 0);
    ex_svg_polyline(s, DATA_SIZE, tx, 1, b, 1, "#98df8a", 1.2, 0);
    ex_svg_polyline(s, DATA_SIZE, tx, 1, c, 1, "#1f77b4", 1.2, 1);
    ex_svg_polyline(s, DATA_SIZE, tx, 1, d, 1, "#aec7e8", 1.2, 1);
    ex_svg_legend(s, 250, 310, "#2ca02c", 0, "true");
    ex_svg_legend(s, 250, 326, "#1f77b4", 1, "learned");
    ex_svg_panel(s, 360, 0, 360, 360, -2, 2, -2, 2, "Phase Portrait", "x", "y");
    ex_svg_polyline(s, DATA_SIZE, a, 1, b, 1, "#2ca02c", 1.2, 0);
    ex_svg_polyline(s, DATA_SIZE, c, 1, d, 1, "#1f77b4", 1.2, 1);
    ex_svg_panel(s, 720, 0, 360, 360, -2, 2, -2, 2, "Learned Vector Field", "x", "y");
    {   /* f on a 21 x 21 grid, arrows scaled to the grid spacing */
        enum { G = 21 };
        nde_mark m = nde_ctx_mark(ctx);
        int64_t shape[2] = {G * G, 2};
        nde_real grid[2 * G * G];
        nde_tensor *y, *tt, *f;
        int was = nde_set_grad_enabled(ctx, 0);
        for (i = 0; i < G; i++)
            for (j = 0; j < G; j++) {
                grid[2 * (i * G + j)] = (nde_real)(-2.0 + 4.0 * j / (G - 1));
                grid[2 * (i * G + j) + 1] = (nde_real)(-2.0 + 4.0 * i / (G - 1));
            }
        y = nde_tensor_from(ctx, 2, shape, grid);
        tt = nde_tensor_scalar(ctx, NDE_R(0.0));
        f = model_field(ctx, tt, y, model);
        if (f) {
            double fmax = 1e-12;
            for (i = 0; i < G * G; i++) {
                double n = sqrt((double)f->data[2 * i] * f->data[2 * i] + (double)f->data[2 * i + 1] * f->data[2 * i + 1]);
                if (n > fmax) fmax = n;
            }
            for (i = 0; i < G * G; i++)
                ex_svg_arrow(s, grid[2 * i], grid[2 * i + 1], 0.18 * f->data[2 * i] / fmax, 0.18 * f->data[2 * i + 1] / fmax,
                             "#444");
        }
        nde_set_grad_enabled(ctx, was);
        nde_ctx_reset(ctx, m);
    }
    if (ex_svg_close(s) != 0) fprintf(stderr, "spiral: writing %s failed\n", path);
}

int main(int argc, char **argv) {
    const char *method_name = "dopri5", *grad_name = "direct", *svg_path = "spiral.svg", *params_path = "spiral.safetensors";
    int niters = 2000, batch_time = 10, batch_size = 20, test_freq = 20, seed = 0, adjoint = 0, verbose = 0, threads = 0;
    double rtol = 1e-7, atol = 1e-9, lr = 1e-3;
    ex_flag flags[] = {
        {"method", EX_STRING, &method_name, "solver (dopri5, tsit5, rk4, bosh3, ...)"},
        {"grad_mode", EX_STRING, &grad_name, "direct, checkpoint, adjoint, interp, gq, gq_step"},
        {"adjoint", EX_BOOL, &adjoint, "same as --grad_mode adjoint (torchdiffeq's flag)"},
        {"niters", EX_INT, &niters, "training iterations"},
        {"batch_time", EX_INT, &batch_time, "points per training window"},
        {"batch_size", EX_INT, &batch_size, "windows per batch"},
        {"test_freq", EX_INT, &test_freq, "iterations between full-trajectory tests"},
        {"rtol", EX_DOUBLE, &rtol, "relative tolerance"},
        {"atol", EX_DOUBLE, &atol, "absolute tolerance"},
        {"lr", EX_DOUBLE, &lr, "RMSprop learning rate"},
        {"seed", EX_INT, &seed, "random seed (batches, initial weights)"},
        {"svg", EX_STRING, &svg_path, "picture to write"},
        {"params", EX_STRING, &params_path, "parameters to write (safetensors)"},
        {"threads", EX_INT, &threads, "OpenMP threads (0: default)"},
        {"verbose", EX_BOOL, &verbose, "print every test like ode_demo"},
    };
    int rc = ex_parse_flags(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                            "train a neural ODE on torchdiffeq's spiral (ode_demo)");
    nde_ctx *ctx;
    nde_solve_options opt;
    nde_adjoint_options adj;
    nde_adjoint_stats stats;
    nde_optimizer rms;
    spiral model;
    nde_tensor *A, *y0;
    nde_real true_a[4] = {NDE_R(-0.1), NDE_R(2.0), NDE_R(-2.0), NDE_R(-0.1)}, y0v[2] = {NDE_R(2.0), NDE_R(0.0)};
    static double t[DATA_SIZE];
    static nde_real true_y[2 * DATA_SIZE], pred_y[2 * DATA_SIZE];
    int64_t two2[2] = {2, 2}, one2[2] = {1, 2}, i;
    nde_rng rng;
    ex_progress bar;
    double test_loss = NAN, last_loss = NAN, best_loss = INFINITY;
    int best_it = 0;
    nde_method method;
    nde_grad_mode mode;
    int it, *starts;

    if (rc) return rc < 0 ? 2 : 0;
    bar = ex_progress_start(niters);
    if (niters < 0 || batch_time < 2 || batch_time >= DATA_SIZE || batch_size < 1 ||
        batch_size > DATA_SIZE - batch_time || test_freq < 1 || !(rtol > 0) || !(atol > 0)) {
        fprintf(stderr, "spiral: need niters >= 0, 2 <= batch_time < %d, 1 <= batch_size <= %d - batch_time, "
                        "test_freq >= 1, rtol, atol > 0\n", DATA_SIZE, DATA_SIZE);
        return 2;
    }
    if (threads > 0) nde_set_num_threads(threads);
    ctx = nde_ctx_new(nde_ctx_desc_default());
    if (!ctx) { fprintf(stderr, "spiral: out of memory\n"); return 1; }
    if (nde_method_from_name(ctx, method_name, &method) != NDE_OK ||
        nde_grad_mode_from_name(ctx, adjoint ? "adjoint" : grad_name, &mode) != NDE_OK) {
        fprintf(stderr, "spiral: %s\n", nde_ctx_message(ctx));
        nde_ctx_free(ctx);
        return 2;
    }
    opt = nde_solve_options_default();
    opt.method = method; opt.rtol = rtol; opt.atol = atol;
    adj = nde_adjoint_options_default(mode);
    adj.stats = &stats;
    starts = (int *)malloc((size_t)batch_size * sizeof(int));

    /* the data: the true spiral at 1000 times (dopri5, rtol 1e-7, atol 1e-9) */
    for (i = 0; i < DATA_SIZE; i++) t[i] = T_END * (double)i / (DATA_SIZE - 1);
    {
        nde_solve_options o = nde_solve_options_default();
        nde_solution sol;
        int was = nde_set_grad_enabled(ctx, 0);
        A = nde_tensor_from(ctx, 2, two2, true_a);
        y0 = nde_tensor_from(ctx, 2, one2, y0v);
        if (nde_solve(ctx, true_field, A, y0, DATA_SIZE, t, &o, &sol) == NDE_OK)
            for (i = 0; i < DATA_SIZE; i++) nde_tensor_to_host(ctx, sol.ys[i], true_y + 2 * i);
        nde_solution_free(ctx, &sol);
        nde_set_grad_enabled(ctx, was);
    }

    /* the model: weights N(0, 0.1), biases 0, as ode_demo */
    nde_linear_init(ctx, &model.l1, "net.0", 2, 50, 1, (uint64_t)seed);
    nde_linear_init(ctx, &model.l2, "net.2", 50, 2, 1, (uint64_t)seed + 1);
    rng = nde_rng_new((uint64_t)seed, 1);
    nde_tensor_fill_normal(ctx, model.l1.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill_normal(ctx, model.l2.weight, &rng, NDE_R(0.0), NDE_R(0.1));
    nde_tensor_fill(ctx, model.l1.bias, NDE_R(0.0));
    nde_tensor_fill(ctx, model.l2.bias, NDE_R(0.0));
    rms = nde_rmsprop(lr);
    rng = nde_rng_new((uint64_t)seed, 2);
    if (nde_ctx_status(ctx) != NDE_OK) goto fail;

    printf("spiral: %s, gradient mode %s, rtol %g, atol %g, %d iterations of %d windows x %d points\n",
           nde_method_name(method), nde_grad_mode_name(mode), rtol, atol, niters, batch_size, batch_time);
    bar = ex_progress_start(niters);
    for (it = 1; it <= niters; it++) {
        nde_mark m = nde_ctx_mark(ctx);
        int64_t bshape[2], tshape = batch_time, yshape[3];
        nde_real *by0 = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)batch_size * 2 * sizeof(nde_real));
        nde_real *by = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)batch_time * batch_size * 2 * sizeof(nde_real));
        nde_real *bt = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)batch_time * sizeof(nde_real));
        nde_tensor *z0, *tt, *target, *pred, *loss;
        int b, k;
        if (!by0 || !by || !bt) goto fail;
        draw_batch(&rng, batch_time, batch_size, starts);
        for (b = 0; b < batch_size; b++) {
            by0[2 * b] = true_y[2 * starts[b]];
            by0[2 * b + 1] = true_y[2 * starts[b] + 1];
            for (k = 0; k < batch_time; k++) {
                by[(k * batch_size + b) * 2] = true_y[2 * (starts[b] + k)];
                by[(k * batch_size + b) * 2 + 1] = true_y[2 * (starts[b] + k) + 1];
            }
        }
        for (k = 0; k < batch_time; k++) bt[k] = (nde_real)t[k];
        bshape[0] = batch_size; bshape[1] = 2;
        yshape[0] = batch_time; yshape[1] = batch_size; yshape[2] = 2;
        z0 = nde_tensor_from(ctx, 2, bshape, by0);
        tt = nde_tensor_from(ctx, 1, &tshape, bt);
        target = nde_tensor_from(ctx, 3, yshape, by);
        pred = nde_odeint_adjoint(ctx, model_field, &model, z0, tt, &opt, &adj, NULL);
        loss = nde_l1_loss(ctx, pred, target);
        nde_zero_grad(ctx);
        nde_backward(ctx, loss);
        nde_optimizer_step(ctx, &rms);
        if (nde_ctx_status(ctx) != NDE_OK) goto fail;
        last_loss = nde_tensor_item(ctx, loss, 0);
        nde_ctx_reset(ctx, m);

        if (it % test_freq == 0 || it == niters) {
            nde_solution sol;
            int was = nde_set_grad_enabled(ctx, 0);
            double s = 0.0;
            m = nde_ctx_mark(ctx);
            y0 = nde_tensor_from(ctx, 2, one2, y0v);
            if (nde_solve(ctx, model_field, &model, y0, DATA_SIZE, t, &opt, &sol) == NDE_OK)
                for (i = 0; i < DATA_SIZE; i++) nde_tensor_to_host(ctx, sol.ys[i], pred_y + 2 * i);
            nde_solution_free(ctx, &sol);
            nde_set_grad_enabled(ctx, was);
            nde_ctx_reset(ctx, m);
            if (nde_ctx_status(ctx) != NDE_OK) goto fail;
            for (i = 0; i < 2 * DATA_SIZE; i++) s += fabs((double)pred_y[i] - (double)true_y[i]);
            test_loss = s / (2.0 * DATA_SIZE);
            if (test_loss < best_loss) { best_loss = test_loss; best_it = it; }
            if (verbose) printf("Iter %04d | Total Loss %.6f\n", it, test_loss);
        }
        ex_progress_update(&bar, it, "loss %.4f  test %.4f  nfe %lld+%lld", last_loss, test_loss,
                           (long long)stats.nfe_forward, (long long)stats.nfe_backward);
    }
    ex_progress_finish(&bar);
    printf("spiral: test loss (mean |pred - true| over the 1000-point trajectory) %.6f at the end, best %.6f at "
           "iteration %d; %.1f s\n", test_loss, best_loss, best_it, ex_progress_elapsed(&bar));
    if (niters == 0) {
        nde_solution sol;
        int was = nde_set_grad_enabled(ctx, 0);
        y0 = nde_tensor_from(ctx, 2, one2, y0v);
        if (nde_solve(ctx, model_field, &model, y0, DATA_SIZE, t, &opt, &sol) == NDE_OK)
            for (i = 0; i < DATA_SIZE; i++) nde_tensor_to_host(ctx, sol.ys[i], pred_y + 2 * i);
        nde_solution_free(ctx, &sol);
        nde_set_grad_enabled(ctx, was);
    }
    write_picture(ctx, &model, svg_path, t, true_y, pred_y);
    if (nde_save_params(ctx, params_path) != NDE_OK) goto fail;
    printf("spiral: picture (true vs learned trajectories, phase portrait, vector field) in %s\n", svg_path);
    printf("spiral: parameters in %s\n", params_path);
    free(starts);
    nde_ctx_free(ctx);
    return 0;
fail:
    ex_progress_finish(&bar);
    fprintf(stderr, "spiral: %s\n", nde_ctx_message(ctx));
    free(starts);
    nde_ctx_free(ctx);
    return 1;
}
