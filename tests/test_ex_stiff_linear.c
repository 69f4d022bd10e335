/* tests/test_ex_stiff_linear.c - examples/stiff_linear.c: the data are pairs of
   the exact flow (z(t + dt) = e^(A dt) z(t), A with eigenvalues -1000 and -1),
   drawn in [-0.5, 0.5]^2 and reproducible from the seed; the flags (names,
   range checks); a tiny run of each experiment trains (the midpoint's test
   error falls; the learned dynamics beat the untrained network); a whole run
   writes its CSV rows, plot and checkpoints, and one stopped by --stop_after
   and continued by --resume ends with the same parameters, bit for bit. */
#define EXAMPLE_NO_MAIN
#include "../examples/stiff_linear.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static void test_data(void) {
    double A[4], flow[4], tr_, det;
    dataset d = make_data(3, 50, 0.01, 101, 0), d2 = make_data(3, 50, 0.01, 101, 0), d3 = make_data(3, 50, 0.01, 101, 1);
    int64_t i;
    int same = 1, differs = 0, on_flow = 1, chained = 1, inside = 1;
    stiff_matrix(0, 0, A);
    tr_ = A[0] + A[3];
    det = A[0] * A[3] - A[1] * A[2];
    CHECK_NEAR(tr_, -1001.0, 1e-9, 0.0);   /* eigenvalues -1000 and -1 */
    CHECK_NEAR(det, 1000.0, 1e-9, 0.0);
    stiff_matrix(0.01, 1, flow);
    CHECK(d.n == 150);
    for (i = 0; i < d.n; i++) {
        double y0 = flow[0] * d.x[2 * i] + flow[1] * d.x[2 * i + 1], y1 = flow[2] * d.x[2 * i] + flow[3] * d.x[2 * i + 1];
#ifdef NDE_DOUBLE
        on_flow &= fabs(y0 - d.y[2 * i]) < 1e-12 && fabs(y1 - d.y[2 * i + 1]) < 1e-12;
#else
        on_flow &= fabs(y0 - d.y[2 * i]) < 1e-6 && fabs(y1 - d.y[2 * i + 1]) < 1e-6;
#endif
        if (i % 50) chained &= d.x[2 * i] == d.y[2 * (i - 1)] && d.x[2 * i + 1] == d.y[2 * (i - 1) + 1];
        else inside &= fabs(d.x[2 * i]) <= 0.5 && fabs(d.x[2 * i + 1]) <= 0.5;
        same &= d.x[2 * i] == d2.x[2 * i] && d.y[2 * i + 1] == d2.y[2 * i + 1];
        differs |= d.x[2 * i] != d3.x[2 * i];
    }
    CHECK(on_flow && chained && inside && same && differs);
    free(d.x); free(d.y); free(d2.x); free(d2.y); free(d3.x); free(d3.y);
}

static void test_flags(void) {
    args a;
    char prog[] = "stiff_linear", f1[] = "--nepochs", v1[] = "7", f2[] = "--lr_init=0.5", f3[] = "--skip_midpoint",
         f4[] = "--save", v4[] = "somewhere", bad[] = "x", f5[] = "--dt", v5[] = "-1", f6[] = "--train_batch_size",
         v6[] = "100000";
    char *ok[] = {prog, f1, v1, f2, f3, f4, v4};
    char *bad_value[] = {prog, f1, bad};
    char *bad_range[] = {prog, f5, v5};
    char *too_big[] = {prog, f6, v6};
    args_default(&a);
    CHECK(args_parse(&a, 7, ok) == 0);
    CHECK(a.nepochs == 7 && a.lr_init == 0.5 && a.skip_midpoint == 1 && !strcmp(a.save, "somewhere"));
    CHECK(a.mid_nepochs == 100 && a.test_freq == 1 && a.resume == 0);   /* the defaults stay */
    fprintf(stderr, "(test_ex_stiff_linear: the next three error messages are expected)\n");
    args_default(&a);
    CHECK(args_parse(&a, 3, bad_value) == -1);
    args_default(&a);
    CHECK(args_parse(&a, 3, bad_range) == -1);
    args_default(&a);
    CHECK(args_parse(&a, 3, too_big) == -1);   /* more than the 4000 training pairs */
}

static void tiny_args(args *a, const char *save) {
    args_default(a);
    a->num_traj = 4; a->num_test = 2; a->traj_duration = 0.2; a->train_batch_size = 20; a->test_batch_size = 20;
    a->mid_nepochs = 3; a->nepochs = 3; a->mid_freq_update = 2;
    a->save = save; a->quiet = 1;
}

static void test_tiny_runs(void) {
    args a;
    dataset tr, te;
    eval_result mid[2], dyn, untrained;
    outputs o;
    char dir[64];
    strcpy(dir, "/tmp/nde_test_sl_XXXXXX");
    if (!mkdtemp(dir)) { CHECK(0); return; }
    memset(mid, 0, sizeof mid); memset(&dyn, 0, sizeof dyn); memset(&untrained, 0, sizeof untrained);
    memset(&o, 0, sizeof o);
    args_default(&a);
    a.num_traj = 4; a.num_test = 2; a.traj_duration = 0.5; a.train_batch_size = 50; a.test_batch_size = 50;
    a.mid_nepochs = 15; a.nepochs = 15; a.mid_freq_update = 2; a.save = dir; a.quiet = 1;
    tr = make_data(a.num_traj, 50, a.dt, 101, 0);
    te = make_data(a.num_test, 50, a.dt, 101, 1);
    CHECK(learn_midpoint(&a, &tr, &te, &o, mid) == 0);
    CHECK(mid[1].loss == mid[1].loss && mid[1].loss < mid[0].loss);
    CHECK(learn_dynamics(&a, &tr, &te, M_TAYLA, &o, &dyn) == 0);
    a.nepochs = 0;
    CHECK(learn_dynamics(&a, &tr, &te, M_TAYLA, &o, &untrained) == 0);
    CHECK(dyn.loss == dyn.loss && dyn.loss < 0.8 * untrained.loss);
    a.nepochs = 5;
    CHECK(learn_dynamics(&a, &tr, &te, M_RK4, &o, &dyn) == 0 && dyn.loss == dyn.loss);
    /* the record: 15, 15, 0 and 5 epochs; a test error at every epoch (--test_freq 1) */
    CHECK(o.num_curves == 4 && o.curve[0].n == 15 && o.curve[1].n == 15 && o.curve[2].n == 0 && o.curve[3].n == 5);
    CHECK(o.curve[0].err[14] == mid[1].loss && o.curve[3].err[4] == dyn.loss && !o.stopped);
    CHECK(o.num_points == 4 + 3 && o.point[0].err == mid[1].loss);
    outputs_free(&o);
    free(tr.x); free(tr.y); free(te.x); free(te.y);
    nde_test_remove_dir(dir);
}

/* The lines of a CSV file without their last field (the processor time),
   sorted, joined; NULL if it cannot be read. */
static int cmp_lines(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }
static char *csv_without_times(const char *path, int *rows) {
    char line[256], *lines[64], *out;
    int n = 0, i;
    size_t total = 1;
    FILE *f = fopen(path, "r");
    *rows = 0;
    if (!f) return NULL;
    while (n < 64 && fgets(line, sizeof line, f)) {
        char *comma = strrchr(line, ',');
        if (comma) *comma = 0;
        lines[n] = (char *)malloc(strlen(line) + 2);
        if (!lines[n]) break;
        strcpy(lines[n], line);
        strcat(lines[n], "\n");
        total += strlen(lines[n++]);
    }
    fclose(f);
    qsort(lines, (size_t)n, sizeof *lines, cmp_lines);
    out = (char *)malloc(total);
    if (out) out[0] = 0;
    for (i = 0; i < n; i++) { if (out) strcat(out, lines[i]); free(lines[i]); }
    *rows = n;
    return out;
}
static int same_params(const char *dir_a, const char *dir_b) {
    static const char *const names[] = {"ckpt_midpoint.safetensors", "ckpt_dyn_tayla.safetensors",
                                        "ckpt_dyn_rk4.safetensors", "ckpt_dyn_dopri5.safetensors"};
    int i, same = 1;
    for (i = 0; i < 4; i++) same &= nde_test_same_file(dir_a, dir_b, names[i]);
    return same;
}

static void test_run_and_resume(void) {
    char dir_a[64], dir_b[64], pa[512], pb[512], *csv_a, *csv_b;
    args a;
    outputs oa, ob;
    int rows_a, rows_b;
    strcpy(dir_a, "/tmp/nde_test_sl_a_XXXXXX");
    strcpy(dir_b, "/tmp/nde_test_sl_b_XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) { CHECK(0); return; }
    /* uninterrupted */
    tiny_args(&a, dir_a);
    CHECK(run_all(&a, &oa) == 0);
    CHECK(oa.num_curves == 4 && oa.curve[0].n == 3 && oa.curve[3].n == 3 && oa.num_points == 7 && !oa.stopped);
    /* stopped after epoch 1 of every training (the schedules span 3 epochs), then resumed */
    tiny_args(&a, dir_b);
    a.stop_after = 1;
    CHECK(run_all(&a, &ob) == 0);
    CHECK(ob.num_curves == 4 && ob.curve[0].n == 1 && ob.curve[2].n == 1 && ob.stopped);
    outputs_free(&ob);
    a.stop_after = 0; a.resume = 1;
    CHECK(run_all(&a, &ob) == 0);
    CHECK(ob.num_curves == 4 && ob.curve[1].n == 3 && !ob.stopped);
    CHECK(same_params(dir_a, dir_b));
    CHECK(ob.curve[1].loss[0] == oa.curve[1].loss[0] && ob.curve[1].err[2] == oa.curve[1].err[2]);   /* record kept */
    CHECK(ob.point[4].err == oa.point[4].err && ob.point[6].err == oa.point[6].err);
    ex_path(pa, sizeof pa, dir_a, "/log.csv", NULL);
    ex_path(pb, sizeof pb, dir_b, "/log.csv", NULL);
    csv_a = csv_without_times(pa, &rows_a);
    csv_b = csv_without_times(pb, &rows_b);
    CHECK(rows_a == 1 + 3 + 3 * 3 && rows_b == rows_a);   /* header, 3 midpoint epochs, 3 x 3 dynamics epochs */
    CHECK(csv_a && csv_b && !strcmp(csv_a, csv_b));
    CHECK(csv_a && strstr(csv_a, "experiment,method,epoch,train_loss,test_error\n") &&
          strstr(csv_a, "midpoint,tayla,3,") && strstr(csv_a, "dynamics,dopri5,3,"));
    free(csv_a); free(csv_b);
    ex_path(pa, sizeof pa, dir_a, "/stiff_linear.svg", NULL);
    ex_path(pb, sizeof pb, dir_b, "/stiff_linear.svg", NULL);
    CHECK(ex_file_exists(pa) && ex_file_exists(pb));
    outputs_free(&ob);
    /* resuming a finished run trains nothing more */
    tiny_args(&a, dir_a);
    a.resume = 1;
    CHECK(run_all(&a, &ob) == 0);
    CHECK(ob.curve[0].n == 3 && ob.point[4].err == oa.point[4].err && same_params(dir_a, dir_b));
    ex_path(pa, sizeof pa, dir_a, "/log.csv", NULL);
    csv_a = csv_without_times(pa, &rows_a);
    CHECK(rows_a == 13);
    free(csv_a);
    outputs_free(&ob);
    /* other --nepochs: the checkpoints do not fit */
    a.nepochs = 4;
    fprintf(stderr, "(test_ex_stiff_linear: the next error message is expected)\n");
    CHECK(run_all(&a, &ob) == 1);
    outputs_free(&ob);
    outputs_free(&oa);
    nde_test_remove_dir(dir_a);
    nde_test_remove_dir(dir_b);
}

int main(void) {
    test_data();
    test_flags();
    test_tiny_runs();
    test_run_and_resume();
    return nde_test_finish("test_ex_stiff_linear");
}
