/* examples/common.h - small helpers shared by the nde examples and benchmarks:
   command-line flags, a wall clock, a progress bar, an SVG plot writer, and
   the median of a sample. Header-only, all functions static.

   Include it FIRST (before nde.h or any system header): it asks for POSIX
   clock_gettime where available.

   FLAGS
       int iters = 100; double lr = 1e-3; const char *method = "dopri5"; int adjoint = 0;
       ex_flag flags[] = {
           {"niters", EX_INT, &iters, "training iterations"},
           {"lr", EX_DOUBLE, &lr, "learning rate"},
           {"method", EX_STRING, &method, "solver"},
           {"adjoint", EX_BOOL, &adjoint, "use the adjoint"},
       };
       int rc = ex_parse_flags(argc, argv, flags, 4, "train a model");
       if (rc) return rc < 0 ? 2 : 0;     // rc > 0: --help was printed
   Accepted forms: --name value, --name=value; booleans also --name (1) and
   --no-name (0). Unknown flags and bad numbers print a message and usage.

   PROGRESS BAR
       ex_progress p = ex_progress_start(iters);
       ... ex_progress_update(&p, it + 1, "loss %.4f  nfe %d", loss, nfe); ...
       ex_progress_finish(&p);
   Redraws one stderr line with '\r' at most 10 times a second.

   SVG
       ex_svg *s = ex_svg_open("out.svg", 900, 300);
       ex_svg_panel(s, 0, 0, 300, 300, -2, 2, -2, 2, "Phase portrait", "x", "y");
       ex_svg_polyline(s, n, xs, 1, ys, 1, "#2ca02c", 1.5, 0);
       ex_svg_close(s);                  // written to a temp file, renamed at the end
   ex_svg_series() draws a whole line chart (auto ranges, legend, log10 x);
   ex_svg_series_range() the same with a fixed y range and legend corner;
   ex_svg_color(i) is the color of series i.

   LISTS, FILES, CSV
       ex_parse_doubles("0.5,1,2", v, 8) -> 3;  ex_split_words("euler,rk4", buf, n, items, 8) -> 2
       ex_mkdir(dir); FILE *log = ex_csv_open("run/log.csv", "epoch,loss", resume);

   NDE HELPERS (this header includes ../nde.h: define NDE_IMPLEMENTATION, if
   wanted, before including it)
       ex_permutation(seed, stream, n, perm)      Philox shuffle (reproducible)
       ex_load_images(ctx, data_dir, train, &set) MNIST IDX from data_dir, or the
                                                  bundled 8x8 digits (data_dir NULL)
       ex_images_standardize(&train, &test)       zero mean, unit variance
       ex_spheres(...)                            points on concentric shells
       ex_batch_images / ex_batch_rows            a batch as a tensor
       ex_ctx_finish(ctx)                         print the context's error, free it, 1 if failed
       ex_checkpoint_save / ex_checkpoint_load    parameters (safetensors) and
                                                  optimizer state + counters (.npy)
       ex_midpoint_args, ex_midpoint_flags,       TayLaNets' separate midpoint updates:
       ex_midpoint_optimizer, ex_midpoint_update  flags, second optimizer, one update
       ex_params_train_only, ex_optimize_steps    trainable groups, a few optimizer steps
*/
#ifndef NDE_EXAMPLES_COMMON_H
#define NDE_EXAMPLES_COMMON_H

#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__) || defined(__clang__)
#define EX_UNUSED __attribute__((unused))
#define EX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EX_UNUSED
#define EX_PRINTF(a, b)
#endif

/* ---------------------------------------------------------------- clock */
/* Wall-clock seconds from an arbitrary origin. */
static EX_UNUSED double ex_now(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / (double)CLOCKS_PER_SEC;
#endif
}

/* ---------------------------------------------------------------- flags */
typedef enum ex_flag_kind { EX_INT, EX_DOUBLE, EX_STRING, EX_BOOL } ex_flag_kind;
typedef struct ex_flag {
    const char *name;    /* without the leading "--" */
    ex_flag_kind kind;
    void *value;         /* int*, double*, const char**, int* */
    const char *help;
} ex_flag;

static EX_UNUSED void ex_print_usage(const char *prog, const char *about, const ex_flag *flags, int count) {
    int i;
    fprintf(stderr, "%s%s%s\nflags:\n", prog, about ? ": " : "", about ? about : "");
    for (i = 0; i < count; i++) {
        char def[64];
        switch (flags[i].kind) {
        case EX_INT: snprintf(def, sizeof def, "%d", *(int *)flags[i].value); break;
        case EX_DOUBLE: snprintf(def, sizeof def, "%g", *(double *)flags[i].value); break;
        case EX_STRING: snprintf(def, sizeof def, "%s", *(const char **)flags[i].value); break;
        case EX_BOOL: snprintf(def, sizeof def, "%s", *(int *)flags[i].value ? "on" : "off"); break;
        }
        fprintf(stderr, "  --%-14s %s (default %s)\n", flags[i].name, flags[i].help ? flags[i].help : "", def);
    }
}

static int ex__set_flag(const ex_flag *f, const char *text) {
    char *end = NULL;
    switch (f->kind) {
    case EX_INT: {
        long v = strtol(text, &end, 10);
        if (!*text || *end) return 0;
        *(int *)f->value = (int)v;
        return 1;
    }
    case EX_DOUBLE: {
        double v = strtod(text, &end);
        if (!*text || *end) return 0;
        *(double *)f->value = v;
        return 1;
    }
    case EX_STRING: *(const char **)f->value = text; return 1;
    case EX_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "on")) { *(int *)f->value = 1; return 1; }
        if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "off")) { *(int *)f->value = 0; return 1; }
        return 0;
    }
    return 0;
}

/* 0: parsed; 1: --help printed; -1: an error was printed. */
static EX_UNUSED int ex_parse_flags(int argc, char **argv, const ex_flag *flags, int count, const char *about) {
    int i, k;
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *name;
        size_t len;
        int negate = 0, found = -1;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { ex_print_usage(argv[0], about, flags, count); return 1; }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], arg);
            ex_print_usage(argv[0], about, flags, count);
            return -1;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        for (k = 0; k < count && found < 0; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) found = k;
        if (found < 0 && len > 3 && !strncmp(name, "no-", 3)) {
            for (k = 0; k < count && found < 0; k++)
                if (flags[k].kind == EX_BOOL && strlen(flags[k].name) == len - 3 && !strncmp(flags[k].name, name + 3, len - 3)) {
                    found = k; negate = 1;
                }
        }
        if (found < 0) {
            fprintf(stderr, "%s: unknown flag '%s'\n", argv[0], arg);
            ex_print_usage(argv[0], about, flags, count);
            return -1;
        }
        if (flags[found].kind == EX_BOOL && !eq) { *(int *)flags[found].value = !negate; continue; }
        {
            const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val || negate || !ex__set_flag(&flags[found], val)) {
                fprintf(stderr, "%s: bad or missing value for --%s\n", argv[0], flags[found].name);
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- progress bar */
typedef struct ex_progress { long total; double start, last_draw; int drawn; } ex_progress;

static EX_UNUSED ex_progress ex_progress_start(long total) {
    ex_progress p;
    p.total = total > 0 ? total : 1;
    p.start = ex_now();
    p.last_draw = -1.0;
    p.drawn = 0;
    return p;
}
/* Elapsed seconds since ex_progress_start. */
static EX_UNUSED double ex_progress_elapsed(const ex_progress *p) { return ex_now() - p->start; }

static EX_UNUSED EX_PRINTF(3, 4) void ex_progress_update(ex_progress *p, long done, const char *fmt, ...) {
    enum { WIDTH = 24 };
    char bar[WIDTH + 1], msg[160];
    double now = ex_now();
    int i, fill;
    va_list ap;
    if (done < p->total && p->last_draw >= 0.0 && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    fill = (int)((double)WIDTH * (double)done / (double)p->total);
    if (fill > WIDTH) fill = WIDTH;
    for (i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = 0;
    msg[0] = 0;
    if (fmt) { va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap); }
    fprintf(stderr, "\r[%s] %ld/%ld  %s  %.1fs ", bar, done, p->total, msg, now - p->start);
    fflush(stderr);
    p->drawn = 1;
}
static EX_UNUSED void ex_progress_finish(ex_progress *p) {
    if (p->drawn) fputc('\n', stderr);
    p->drawn = 0;
}

/* ---------------------------------------------------------------- statistics */
static int ex__cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* Median of n values (sorts them in place). */
static EX_UNUSED double ex_median(double *v, int n) {
    if (n < 1) return NAN;
    qsort(v, (size_t)n, sizeof *v, ex__cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---------------------------------------------------------------- SVG */
typedef struct ex_svg {
    FILE *f;
    char path[512], tmp[540];
    /* current panel: pixel box and data ranges */
    double px, py, pw, ph, x0, x1, y0, y1;
    int clip;            /* id of the current panel's clip path */
} ex_svg;

static EX_UNUSED ex_svg *ex_svg_open(const char *path, int width, int height) {
    ex_svg *s = (ex_svg *)calloc(1, sizeof *s);
    if (!s) return NULL;
    if (strlen(path) >= sizeof s->path) { free(s); return NULL; }
    strcpy(s->path, path);
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp", path);
    s->f = fopen(s->tmp, "w");
    if (!s->f) { free(s); return NULL; }
    fprintf(s->f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    return s;
}

/* Data coordinates of the current panel to pixels. */
static double ex__svg_x(const ex_svg *s, double x) { return s->px + (x - s->x0) / (s->x1 - s->x0) * s->pw; }
static double ex__svg_y(const ex_svg *s, double y) { return s->py + s->ph - (y - s->y0) / (s->y1 - s->y0) * s->ph; }

static EX_UNUSED void ex_svg_text(ex_svg *s, double x, double y, const char *anchor, const char *text) {
    fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text>\n", x, y, anchor, text);
}

/* A panel in the pixel box (x, y, w, h) showing [x0,x1] x [y0,y1], with a frame,
   ticks at the ends and the middle, a title and axis labels. Later drawing
   calls use its coordinates and are clipped to it. */
static EX_UNUSED void ex_svg_panel(ex_svg *s, double x, double y, double w, double h, double x0, double x1,
                                   double y0, double y1, const char *title, const char *xlabel, const char *ylabel) {
    double m = 40.0;
    int i;
    s->px = x + m; s->py = y + 24.0; s->pw = w - m - 12.0; s->ph = h - 24.0 - m;
    s->x0 = x0; s->x1 = x1 > x0 ? x1 : x0 + 1.0; s->y0 = y0; s->y1 = y1 > y0 ? y1 : y0 + 1.0;
    fprintf(s->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            s->px, s->py, s->pw, s->ph);
    if (title) ex_svg_text(s, s->px + s->pw / 2, y + 16.0, "middle", title);
    if (xlabel) ex_svg_text(s, s->px + s->pw / 2, s->py + s->ph + 32.0, "middle", xlabel);
    if (ylabel)
        fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">%s</text>\n",
                x + 12.0, s->py + s->ph / 2, x + 12.0, s->py + s->ph / 2, ylabel);
    for (i = 0; i <= 2; i++) {
        char lab[32];
        double vx = s->x0 + (s->x1 - s->x0) * i / 2.0, vy = s->y0 + (s->y1 - s->y0) * i / 2.0;
        snprintf(lab, sizeof lab, "%.4g", vx);
        ex_svg_text(s, ex__svg_x(s, vx), s->py + s->ph + 14.0, "middle", lab);
        snprintf(lab, sizeof lab, "%.3g", vy);
        ex_svg_text(s, s->px - 4.0, ex__svg_y(s, vy) + 4.0, "end", lab);
    }
    s->clip++;
    fprintf(s->f, "<clipPath id=\"c%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
            s->clip, s->px, s->py, s->pw, s->ph);
}

/* n points (x[i*xs], y[i*ys]) joined by a line; dashed != 0 for a dashed line. */
static EX_UNUSED void ex_svg_polyline(ex_svg *s, int n, const double *x, int xs, const double *y, int ys,
                                      const char *color, double width, int dashed) {
    int i;
    fprintf(s->f, "<polyline clip-path=\"url(#c%d)\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s points=\"",
            s->clip, color, width, dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (i = 0; i < n; i++) {
        double px = ex__svg_x(s, x[(long)i * xs]), py = ex__svg_y(s, y[(long)i * ys]);
        if (px < s->px - 1e4 || px > s->px + 1e4 || py < s->py - 1e4 || py > s->py + 1e4 || px != px || py != py) continue;
        fprintf(s->f, "%.1f,%.1f ", px, py);
    }
    fprintf(s->f, "\"/>\n");
}

/* An arrow from (x, y) along (dx, dy), both in data units. */
static EX_UNUSED void ex_svg_arrow(ex_svg *s, double x, double y, double dx, double dy, const char *color) {
    double ax = ex__svg_x(s, x), ay = ex__svg_y(s, y), bx = ex__svg_x(s, x + dx), by = ex__svg_y(s, y + dy);
    double ux = bx - ax, uy = by - ay, len = sqrt(ux * ux + uy * uy), hx, hy;
    if (!(len > 0.5)) return;
    ux /= len; uy /= len;
    hx = 0.35 * len < 5.0 ? 0.35 * len : 5.0;
    hy = 0.5 * hx;
    fprintf(s->f, "<path clip-path=\"url(#c%d)\" d=\"M%.1f,%.1f L%.1f,%.1f M%.1f,%.1f L%.1f,%.1f L%.1f,%.1f\" "
                  "stroke=\"%s\" fill=\"none\" stroke-width=\"1\"/>\n",
            s->clip, ax, ay, bx, by, bx - hx * ux + hy * uy, by - hx * uy - hy * ux, bx, by, bx - hx * ux - hy * uy,
            by - hx * uy + hy * ux, color);
}

/* A circle of radius r pixels (outline only) at the data point (x, y). */
static EX_UNUSED void ex_svg_circle(ex_svg *s, double x, double y, double r, const char *color) {
    fprintf(s->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
            ex__svg_x(s, x), ex__svg_y(s, y), r, color);
}

/* A legend entry (colored line + label) at pixel position (x, y). */
static EX_UNUSED void ex_svg_legend(ex_svg *s, double x, double y, const char *color, int dashed, const char *label) {
    fprintf(s->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", x, y - 4,
            x + 20, y - 4, color, dashed ? " stroke-dasharray=\"6,4\"" : "");
    ex_svg_text(s, x + 24, y, "start", label);
}

/* Finish the file: 0 on success (the file is renamed into place), -1 on error. */
static EX_UNUSED int ex_svg_close(ex_svg *s) {
    int bad;
    if (!s) return -1;
    fprintf(s->f, "</svg>\n");
    bad = ferror(s->f) != 0;
    bad |= fclose(s->f) != 0;
    if (!bad) bad = rename(s->tmp, s->path) != 0;
    if (bad) remove(s->tmp);
    free(s);
    return bad ? -1 : 0;
}

/* The color of series i in ex_svg_series (ten, repeating). */
static EX_UNUSED const char *ex_svg_color(int i) {
    static const char *const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return colors[(i % 10 + 10) % 10];
}

/* A line chart in the pixel box (x, y, w, h): count series (xs[i][j], ys[i][j]),
   j < n[i], with labels (NULL entries: no legend line). The x range covers
   every point; the y range is [y_lo, y_hi], or where either is NaN, covers
   every point (padded by 5 %); log_x plots log10(x) (labelled as such). The
   legend sits in the panel's corner legend_pos: 0 top-right, 1 top-left,
   2 bottom-right, 3 bottom-left. */
static EX_UNUSED void ex_svg_series_range(ex_svg *s, double x, double y, double w, double h, const char *title,
                                          const char *xlabel, const char *ylabel, int count, const double *const *xs,
                                          const double *const *ys, const int *n, const char *const *labels, int log_x,
                                          int legend_pos, double y_lo, double y_hi) {
    double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL, pad;
    char xl[96];
    int i, j, shown = 0;
    for (i = 0; i < count; i++)
        for (j = 0; j < n[i]; j++) {
            double vx = log_x ? log10(xs[i][j]) : xs[i][j], vy = ys[i][j];
            if (vx != vx || vy != vy || fabs(vx) == HUGE_VAL || fabs(vy) == HUGE_VAL) continue;
            if (vx < x0) x0 = vx;
            if (vx > x1) x1 = vx;
            if (vy < y0) y0 = vy;
            if (vy > y1) y1 = vy;
        }
    if (x0 > x1) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    pad = 0.05 * (y1 - y0 > 0 ? y1 - y0 : 1.0);
    y0 -= pad; y1 += pad;
    if (y_lo == y_lo && y_hi == y_hi && y_hi > y_lo) { y0 = y_lo; y1 = y_hi; }
    snprintf(xl, sizeof xl, log_x ? "log10 %s" : "%s", xlabel ? xlabel : "");
    ex_svg_panel(s, x, y, w, h, x0, x1, y0, y1, title, xl, ylabel);
    for (i = 0; i < count; i++) {
        double *tx = (double *)malloc((size_t)(n[i] > 0 ? n[i] : 1) * sizeof(double));
        const char *c = ex_svg_color(i);
        if (!tx) continue;
        for (j = 0; j < n[i]; j++) tx[j] = log_x ? log10(xs[i][j]) : xs[i][j];
        ex_svg_polyline(s, n[i], tx, 1, ys[i], 1, c, 1.6, i >= 10);
        for (j = 0; j < n[i]; j++)
            fprintf(s->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"/>\n", ex__svg_x(s, tx[j]),
                    ex__svg_y(s, ys[i][j]), c);
        free(tx);
        if (labels && labels[i]) {
            double lx = (legend_pos & 1) ? s->px + 8 : s->px + s->pw - 150;
            double ly = (legend_pos & 2) ? s->py + s->ph - 8 - 15 * (count - 1 - shown) : s->py + 16 + 15 * shown;
            ex_svg_legend(s, lx, ly, c, i >= 10, labels[i]);
            shown++;
        }
    }
}
/* ex_svg_series_range with the y range fitted to the points; the legend
   top-left when legend_left, else top-right. */
static EX_UNUSED void ex_svg_series(ex_svg *s, double x, double y, double w, double h, const char *title,
                                    const char *xlabel, const char *ylabel, int count, const double *const *xs,
                                    const double *const *ys, const int *n, const char *const *labels, int log_x,
                                    int legend_left) {
    ex_svg_series_range(s, x, y, w, h, title, xlabel, ylabel, count, xs, ys, n, labels, log_x, legend_left ? 1 : 0, NAN,
                        NAN);
}

/* ---------------------------------------------------------------- lists */
/* "0.5,1,2" -> out[0..2]; returns the count, or -1 if an entry is not a number
   or there are more than max. */
static EX_UNUSED int ex_parse_doubles(const char *text, double *out, int max) {
    int count = 0;
    const char *p = text;
    if (!p || !*p) return 0;
    for (;;) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || count >= max) return -1;
        out[count++] = v;
        while (*end == ' ') end++;
        if (*end == 0) return count;
        if (*end != ',') return -1;
        p = end + 1;
    }
}
/* "euler,rk4" -> items (pointers into buf, a copy of text); returns the count,
   or -1 if text does not fit buf or there are more than max (empty items too). */
static EX_UNUSED int ex_split_words(const char *text, char *buf, size_t buf_len, const char **items, int max) {
    int count = 0;
    char *p;
    if (!text || strlen(text) >= buf_len) return -1;
    strcpy(buf, text);
    if (!*buf) return 0;
    p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (!*p || count >= max) return -1;
        items[count++] = p;
        if (!comma) return count;
        p = comma + 1;
    }
}

/* ---------------------------------------------------------------- files */
#ifdef _WIN32
#include <direct.h>
#define EX__MKDIR(p) _mkdir(p)
#else
#include <sys/stat.h>
#include <sys/types.h>
#define EX__MKDIR(p) mkdir((p), 0777)
#endif
#include <errno.h>
/* Creates a directory (one level); 0 if it exists afterwards. */
static EX_UNUSED int ex_mkdir(const char *path) {
    if (EX__MKDIR(path) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "cannot create directory '%s': %s\n", path, strerror(errno));
    return -1;
}
/* buf = a b c (any may be NULL), without snprintf (quiet under
   -Wformat-truncation); 0, or -1 (buf empty) if it does not fit. */
static EX_UNUSED int ex_path(char *buf, size_t len, const char *a, const char *b, const char *c) {
    const char *parts[3];
    size_t used = 0, n;
    int i;
    parts[0] = a; parts[1] = b; parts[2] = c;
    for (i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        n = strlen(parts[i]);
        if (used + n + 1 > len) { if (len) buf[0] = 0; return -1; }
        memcpy(buf + used, parts[i], n);
        used += n;
    }
    if (len) buf[used] = 0;
    return 0;
}
static EX_UNUSED int ex_file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}
/* A CSV log: appended to when append is set and the file exists, else created
   with the header line. Line buffered, so a crash loses at most one line. */
static EX_UNUSED FILE *ex_csv_open(const char *path, const char *header, int append) {
    int existed = append && ex_file_exists(path);
    FILE *f = fopen(path, existed ? "a" : "w");
    if (!f) { fprintf(stderr, "cannot open '%s': %s\n", path, strerror(errno)); return NULL; }
    setvbuf(f, NULL, _IOLBF, 0);
    if (!existed) fprintf(f, "%s\n", header);
    return f;
}

#endif /* NDE_EXAMPLES_COMMON_H */

/* ======================================================================== */
/*                     helpers that need nde.h                              */
/* ======================================================================== */
#ifndef NDE_EXAMPLES_COMMON_NDE_H
#define NDE_EXAMPLES_COMMON_NDE_H
#include "../nde.h"

/* ---------------------------------------------------------------- end of a run */
/* Ends a run on its own context: prints the context's error, if any, frees
   the context, and returns 1 after an error, 0 otherwise. */
static EX_UNUSED int ex_ctx_finish(nde_ctx *ctx) {
    int failed = nde_ctx_status(ctx) != NDE_OK;
    if (failed) fprintf(stderr, "error: %s\n", nde_ctx_message(ctx));
    nde_ctx_free(ctx);
    return failed;
}

/* ---------------------------------------------------------------- shuffling */
/* perm = a uniformly random permutation of 0..n-1 (Fisher-Yates with Philox
   draws of the stream (seed, stream)): the same on every machine and rerun. */
static EX_UNUSED void ex_permutation(uint64_t seed, uint64_t stream, int64_t n, int64_t *perm) {
    nde_rng r = nde_rng_new(seed, stream);
    int64_t i;
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(nde_rng_uniform1(&r) * (double)(i + 1)), t;
        if (j > i) j = i;
        t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* ---------------------------------------------------------------- image sets */
typedef struct ex_images {
    int64_t n, channels, height, width;
    nde_real *x;          /* (n, channels, height, width), values in [0, 1] (host) */
    int64_t *y;           /* labels 0..9 */
    char source[512];     /* the images file read */
} ex_images;

static void ex__data_file(char *buf, size_t len, const char *data_dir, const char *name) {
    if (data_dir) {
        ex_path(buf, len, data_dir, "/", name);
    } else {
        /* the bundled files beside this header */
        char here[512];
        const char *slash = strrchr(__FILE__, '/');
        size_t dirlen = slash ? (size_t)(slash - __FILE__ + 1) : 0;
        if (dirlen >= sizeof here) dirlen = 0;
        memcpy(here, __FILE__, dirlen);
        here[dirlen] = 0;
        ex_path(buf, len, here, "data/", name);
    }
}

/* The training or test split: MNIST's IDX files (train-images-idx3-ubyte,
   train-labels-idx1-ubyte, t10k-...; uncompressed) from data_dir, or with
   data_dir NULL the bundled 8x8 digits (examples/data/digits-{train,test}-...).
   max_n > 0 keeps only the first max_n images. Pixels are divided by 255.
   Free with ex_images_free. */
static EX_UNUSED nde_status ex_load_images(nde_ctx *ctx, const char *data_dir, int train, int64_t max_n, ex_images *out) {
    char img_path[512], lab_path[512];
    nde_mark m = nde_ctx_mark(ctx);
    nde_tensor *ti, *tl;
    nde_real *lab = NULL;
    int64_t i, per_image;
    memset(out, 0, sizeof *out);
    if (data_dir) {
        ex__data_file(img_path, sizeof img_path, data_dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte");
        ex__data_file(lab_path, sizeof lab_path, data_dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte");
    } else {
        ex__data_file(img_path, sizeof img_path, NULL, train ? "digits-train-images-idx3-ubyte" : "digits-test-images-idx3-ubyte");
        ex__data_file(lab_path, sizeof lab_path, NULL, train ? "digits-train-labels-idx1-ubyte" : "digits-test-labels-idx1-ubyte");
    }
    ti = nde_load_idx(ctx, img_path);
    tl = nde_load_idx(ctx, lab_path);
    if (!ti || !tl) return nde_ctx_status(ctx);
    if (ti->ndim != 3 || tl->ndim != 1 || tl->shape[0] != ti->shape[0]) {
        nde_ctx_reset(ctx, m);
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ex_load_images: '%s' must be (n, h, w) and '%s' (n)", img_path, lab_path);
    }
    out->n = (max_n > 0 && max_n < ti->shape[0]) ? max_n : ti->shape[0];
    out->channels = 1; out->height = ti->shape[1]; out->width = ti->shape[2];
    per_image = out->height * out->width;
    out->x = (nde_real *)malloc((size_t)(ti->size ? ti->size : 1) * sizeof(nde_real));
    out->y = (int64_t *)malloc((size_t)(out->n ? out->n : 1) * sizeof(int64_t));
    lab = (nde_real *)malloc((size_t)(tl->size ? tl->size : 1) * sizeof(nde_real));
    if (!out->x || !out->y || !lab) {
        free(out->x); free(out->y); free(lab); memset(out, 0, sizeof *out);
        nde_ctx_reset(ctx, m);
        return nde_ctx_fail(ctx, NDE_ERR_OOM, "ex_load_images: out of memory");
    }
    nde_tensor_to_host(ctx, ti, out->x);
    nde_tensor_to_host(ctx, tl, lab);
    for (i = 0; i < out->n * per_image; i++) out->x[i] /= NDE_R(255.0);
    for (i = 0; i < out->n; i++) {
        out->y[i] = (int64_t)lab[i];
        if (lab[i] < 0 || lab[i] > 9 || (nde_real)out->y[i] != lab[i]) {
            free(out->x); free(out->y); free(lab); memset(out, 0, sizeof *out);
            nde_ctx_reset(ctx, m);
            return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ex_load_images: '%s': label %lld is not a digit", lab_path, (long long)i);
        }
    }
    free(lab);
    ex_path(out->source, sizeof out->source, img_path, NULL, NULL);
    nde_ctx_reset(ctx, m);
    return NDE_OK;
}
static EX_UNUSED void ex_images_free(ex_images *set) {
    free(set->x); free(set->y);
    memset(set, 0, sizeof *set);
}
/* Subtracts the training set's pixel mean and divides by its standard
   deviation, in both sets (the research codes' per-channel normalisation). */
static EX_UNUSED void ex_images_standardize(ex_images *train, ex_images *test) {
    int64_t per = train->height * train->width, c, i, j;
    for (c = 0; c < train->channels; c++) {
        double sum = 0.0, sq = 0.0, mean, std;
        for (i = 0; i < train->n; i++)
            for (j = 0; j < per; j++) {
                double v = (double)train->x[(i * train->channels + c) * per + j];
                sum += v; sq += v * v;
            }
        mean = sum / (double)(train->n * per);
        std = sqrt(sq / (double)(train->n * per) - mean * mean);
        if (!(std > 0)) std = 1.0;
        for (i = 0; i < train->n; i++)
            for (j = 0; j < per; j++) {
                nde_real *v = &train->x[(i * train->channels + c) * per + j];
                *v = (nde_real)(((double)*v - mean) / std);
            }
        for (i = 0; test && i < test->n; i++)
            for (j = 0; j < per; j++) {
                nde_real *v = &test->x[(i * test->channels + c) * per + j];
                *v = (nde_real)(((double)*v - mean) / std);
            }
    }
}
/* Images idx[0..count-1] of set as a (count, C, H, W) tensor; labels into y (may be NULL). */
static EX_UNUSED nde_tensor *ex_batch_images(nde_ctx *ctx, const ex_images *set, const int64_t *idx, int64_t count, int64_t *y) {
    int64_t shape[4], per = set->channels * set->height * set->width, i;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(count * per) * sizeof(nde_real));
    if (!host) return NULL;
    for (i = 0; i < count; i++) {
        memcpy(host + i * per, set->x + idx[i] * per, (size_t)per * sizeof(nde_real));
        if (y) y[i] = set->y[idx[i]];
    }
    shape[0] = count; shape[1] = set->channels; shape[2] = set->height; shape[3] = set->width;
    return nde_tensor_from(ctx, 4, shape, host);
}
/* Rows idx[0..count-1] of a host matrix x (n, dim) as a (count, dim) tensor. */
static EX_UNUSED nde_tensor *ex_batch_rows(nde_ctx *ctx, const nde_real *x, int64_t dim, const int64_t *idx, int64_t count) {
    int64_t shape[2], i;
    nde_real *host = (nde_real *)nde_ctx_alloc_host(ctx, (size_t)(count * dim) * sizeof(nde_real));
    if (!host) return NULL;
    for (i = 0; i < count; i++) memcpy(host + i * dim, x + idx[i] * dim, (size_t)dim * sizeof(nde_real));
    shape[0] = count; shape[1] = dim;
    return nde_tensor_from(ctx, 2, shape, host);
}

/* ---------------------------------------------------------------- shells
   count[s] points on shell s (radius in [r_lo[s], r_hi[s]]) with label[s], for
   s < num_shells, in dim dimensions: direction = a normalised standard normal
   vector; radius r_lo + (r_hi - r_lo) u^(1/dim), u ~ U(0, 1) (Dupont et al.'s
   recipe, also used by Ott et al.). x (sum count, dim) row-major, y labels, in
   shell order. Deterministic in rng. */
static EX_UNUSED void ex_spheres(nde_rng *rng, int dim, int num_shells, const double *r_lo, const double *r_hi,
                                 const int64_t *count, const int64_t *label, nde_real *x, int64_t *y) {
    int s, d;
    int64_t i, row = 0;
    for (s = 0; s < num_shells; s++)
        for (i = 0; i < count[s]; i++, row++) {
            double norm2 = 0.0, r, u;
            nde_real *p = x + row * dim;
            for (d = 0; d < dim; d++) {
                double g = nde_rng_normal1(rng);
                p[d] = (nde_real)g;
                norm2 += g * g;
            }
            u = nde_rng_uniform1(rng);
            r = r_lo[s] + (r_hi[s] - r_lo[s]) * pow(u, 1.0 / dim);
            for (d = 0; d < dim; d++) p[d] = (nde_real)(r * (double)p[d] / sqrt(norm2 > 0 ? norm2 : 1.0));
            y[row] = label[s];
        }
}

/* ---------------------------------------------------------------- checkpoints
   <prefix>.safetensors: the parameters (nde_save_params; PyTorch reads it).
   <prefix>.state.npy: one vector of nde_real: a header, the caller's counters
   (doubles), a checksum of the parameters, and both optimizer state arrays.
   Each double is stored bit-exactly as four 16-bit pieces (exact in float). Both
   files are written atomically; the checksum catches a pair from different
   saves. */
#define EX_CKPT_MAGIC 20251123.0
enum { EX_CKPT_HEAD = 5 };   /* magic, version, param count, step, number of counters */

static void ex__put_double(nde_real *dst, double v) {
    uint64_t bits;
    int k;
    memcpy(&bits, &v, sizeof bits);
    for (k = 0; k < 4; k++) dst[k] = (nde_real)(double)((bits >> (16 * k)) & 0xFFFFu);
}
static double ex__get_double(const nde_real *src) {
    uint64_t bits = 0;
    double v;
    int k;
    for (k = 0; k < 4; k++) bits |= ((uint64_t)src[k] & 0xFFFFu) << (16 * k);
    memcpy(&v, &bits, sizeof v);
    return v;
}
/* A 1-D tensor header over n reals of backend memory (not in the arena). */
static nde_tensor ex__flat_view(nde_real *data, int64_t n) {
    nde_tensor v;
    memset(&v, 0, sizeof v);
    v.ndim = 1; v.shape[0] = n; v.shape[1] = v.shape[2] = v.shape[3] = 1;
    v.size = n; v.data = data; v.node = -1; v.param = -1;
    return v;
}
/* A checksum of the parameters that depends on every value and its position. */
static double ex__params_checksum(nde_ctx *ctx) {
    int64_t n = nde_params_count(ctx), i;
    nde_real *host = (nde_real *)malloc((size_t)(n ? n : 1) * sizeof(nde_real));
    nde_tensor view = ex__flat_view(nde_params_data(ctx), n);
    double sum = 0.0;
    if (!host) return NAN;
    if (n) nde_tensor_to_host(ctx, &view, host);
    for (i = 0; i < n; i++) sum += (double)host[i] * (1.0 + (double)(i % 7)) + 1e-3 * (double)host[i] * (double)host[i];
    free(host);
    return sum;
}

static EX_UNUSED nde_status ex_checkpoint_save(nde_ctx *ctx, const char *prefix, const nde_optimizer *opt,
                                               const double *counters, int num_counters) {
    char path[1024];
    int64_t n = nde_params_count(ctx), len = 4 * (EX_CKPT_HEAD + num_counters + 1) + 2 * n, i;
    nde_mark m = nde_ctx_mark(ctx);
    nde_real *host = (nde_real *)malloc((size_t)len * sizeof(nde_real));
    nde_tensor *t;
    int w;
    if (!host) return nde_ctx_fail(ctx, NDE_ERR_OOM, "ex_checkpoint_save: out of memory");
    ex__put_double(host + 0, EX_CKPT_MAGIC);
    ex__put_double(host + 4, 1.0);
    ex__put_double(host + 8, (double)n);
    ex__put_double(host + 12, (double)opt->step);
    ex__put_double(host + 16, (double)num_counters);
    for (i = 0; i < num_counters; i++) ex__put_double(host + 4 * (EX_CKPT_HEAD + i), counters[i]);
    ex__put_double(host + 4 * (EX_CKPT_HEAD + num_counters), ex__params_checksum(ctx));
    for (w = 0; w < 2; w++) {
        nde_real *state = nde_optimizer_state(ctx, w);
        nde_tensor view;
        if (!state) { free(host); return nde_ctx_status(ctx); }
        view = ex__flat_view(state, n);
        if (n) nde_tensor_to_host(ctx, &view, host + 4 * (EX_CKPT_HEAD + num_counters + 1) + w * n);
    }
    t = nde_tensor_from(ctx, 1, &len, host);
    free(host);
    ex_path(path, sizeof path, prefix, ".state.npy", NULL);
    if (t) nde_save_npy(ctx, path, t);
    nde_ctx_reset(ctx, m);
    ex_path(path, sizeof path, prefix, ".safetensors", NULL);
    if (nde_ctx_status(ctx) == NDE_OK) nde_save_params(ctx, path);
    return nde_ctx_status(ctx);
}

/* Restores parameters, optimizer state (opt->step too) and num_counters
   counters saved by ex_checkpoint_save. opt must be configured as when saved. */
static EX_UNUSED nde_status ex_checkpoint_load(nde_ctx *ctx, const char *prefix, nde_optimizer *opt, double *counters,
                                               int num_counters) {
    char path[1024];
    int64_t n = nde_params_count(ctx), len = 4 * (EX_CKPT_HEAD + num_counters + 1) + 2 * n, i;
    nde_mark m = nde_ctx_mark(ctx);
    nde_real *host;
    nde_tensor *t;
    int w;
    ex_path(path, sizeof path, prefix, ".state.npy", NULL);
    t = nde_load_npy(ctx, path);
    if (!t) return nde_ctx_status(ctx);
    if (t->ndim != 1 || t->size != len) {
        long long held = (long long)t->size;   /* t lives in the arena released here */
        nde_ctx_reset(ctx, m);
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ex_checkpoint_load: '%s' holds %lld values, this model needs %lld "
                            "(%lld parameters, %d counters)", path, held, (long long)len, (long long)n, num_counters);
    }
    host = (nde_real *)malloc((size_t)len * sizeof(nde_real));
    if (!host) { nde_ctx_reset(ctx, m); return nde_ctx_fail(ctx, NDE_ERR_OOM, "ex_checkpoint_load: out of memory"); }
    nde_tensor_to_host(ctx, t, host);
    nde_ctx_reset(ctx, m);
    if (ex__get_double(host) != EX_CKPT_MAGIC || ex__get_double(host + 4) != 1.0 ||
        ex__get_double(host + 8) != (double)n || ex__get_double(host + 16) != (double)num_counters) {
        free(host);
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ex_checkpoint_load: '%s' is not a checkpoint of this model", path);
    }
    ex_path(path, sizeof path, prefix, ".safetensors", NULL);
    if (nde_load_params(ctx, path) != NDE_OK) { free(host); return nde_ctx_status(ctx); }
    if (ex__params_checksum(ctx) != ex__get_double(host + 4 * (EX_CKPT_HEAD + num_counters))) {
        free(host);
        return nde_ctx_fail(ctx, NDE_ERR_FORMAT, "ex_checkpoint_load: '%s' and its .state.npy come from different saves", path);
    }
    opt->step = (int64_t)ex__get_double(host + 12);
    for (i = 0; i < num_counters; i++) counters[i] = ex__get_double(host + 4 * (EX_CKPT_HEAD + i));
    for (w = 0; w < 2; w++) {
        nde_real *state = nde_optimizer_state(ctx, w);
        nde_tensor view;
        if (!state) { free(host); return nde_ctx_status(ctx); }
        view = ex__flat_view(state, n);
        if (n) nde_tensor_set_host(ctx, &view, host + 4 * (EX_CKPT_HEAD + num_counters + 1) + w * n);
    }
    free(host);
    return nde_ctx_status(ctx);
}

/* ---------------------------------------------------------------- TayLaNets' midpoint training
   TayLaNets' separate midpoint updates (taylanets_mnist.c, ffjord.c): every
   --mid_freq_update iterations, --mid_num_grad_iter steps of a second Adam
   optimizer (betas 0.999, 0.9999; learning rate decaying exponentially from
   --mid_lr_init to --mid_lr_end over the midpoint steps; decoupled
   --mid_w_decay; --mid_grad_clip on the global norm, the research code clips
   unit-wise) on the midpoint network alone; --mid_freq_update <= 0 trains
   the midpoint jointly with the main loss. Both optimizers live on one
   context: the optimizer state arrays hold one slot per parameter and a step
   touches only the trainable parameters, so with disjoint trainable groups
   the two optimizers' moments never mix, ex_checkpoint_save keeps both, and
   only the midpoint optimizer's step count needs saving (as a counter). */
typedef struct ex_midpoint_args {
    int freq_update, num_grad_iter;
    double lr_init, lr_end, w_decay, grad_clip;
} ex_midpoint_args;

/* Writes the six --mid_* flags, bound to mid, into out[0 .. EX_MIDPOINT_NUM_FLAGS - 1]
   (a program appends them to its own flag table, see ffjord.c's main). */
enum { EX_MIDPOINT_NUM_FLAGS = 6 };
static EX_UNUSED void ex_midpoint_flags(ex_flag *out, ex_midpoint_args *mid) {
    const ex_flag flags[EX_MIDPOINT_NUM_FLAGS] = {
        {"mid_freq_update", EX_INT, &mid->freq_update, "train the midpoint separately every N iterations (<= 0: jointly)"},
        {"mid_num_grad_iter", EX_INT, &mid->num_grad_iter, "Adam steps per midpoint update"},
        {"mid_lr_init", EX_DOUBLE, &mid->lr_init, "initial learning rate of the midpoint updates"},
        {"mid_lr_end", EX_DOUBLE, &mid->lr_end, "final learning rate of the midpoint updates (exponential decay)"},
        {"mid_w_decay", EX_DOUBLE, &mid->w_decay, "decoupled weight decay of the midpoint updates"},
        {"mid_grad_clip", EX_DOUBLE, &mid->grad_clip, "gradient-norm clipping of the midpoint updates (0: off)"},
    };
    memcpy(out, flags, sizeof flags);
}

static EX_UNUSED int ex_midpoint_separate(const ex_midpoint_args *mid) { return mid->freq_update > 0; }

/* 1 when the settings are usable (only checked for separate updates), else
   prints why, prefixed by prog, and returns 0. */
static EX_UNUSED int ex_midpoint_args_check(const char *prog, const ex_midpoint_args *mid) {
    const char *why = NULL;
    if (!ex_midpoint_separate(mid)) return 1;
    if (mid->num_grad_iter < 1) why = "--mid_num_grad_iter must be >= 1";
    else if (!(mid->lr_init > 0) || !(mid->lr_end > 0)) why = "--mid_lr_init and --mid_lr_end must be > 0";
    else if (mid->lr_end > mid->lr_init) why = "--mid_lr_end must be <= --mid_lr_init";
    else if (!(mid->w_decay >= 0)) why = "--mid_w_decay must be >= 0";
    else if (!(mid->grad_clip >= 0)) why = "--mid_grad_clip must be >= 0 (0: off)";
    if (!why) return 1;
    fprintf(stderr, "%s: %s (with --mid_freq_update %d)\n", prog, why, mid->freq_update);
    return 0;
}

/* The midpoint optimizer for a run of total_iters main iterations: its
   learning rate decays over the total_iters / freq_update * num_grad_iter
   midpoint steps (the research code meant this count; its ffjord_tabular
   multiplies by mid_lr_init instead of mid_num_grad_iter). */
static EX_UNUSED nde_optimizer ex_midpoint_optimizer(const ex_midpoint_args *mid, int64_t total_iters) {
    nde_optimizer o = mid->w_decay > 0 ? nde_adamw(mid->lr_init, mid->w_decay) : nde_adam(mid->lr_init);
    o.beta1 = 0.999; o.beta2 = 0.9999;
    o.clip_grad_norm = mid->grad_clip;
    o.schedule.kind = NDE_SCHED_EXPONENTIAL;
    o.schedule.lr_init = mid->lr_init; o.schedule.lr_end = mid->lr_end;
    o.schedule.steps = ex_midpoint_separate(mid) ? total_iters / mid->freq_update * mid->num_grad_iter + 1 : 1;
    return o;
}

/* Only the parameters [first, end) (inside = 1) or only the others
   (inside = 0) receive gradients and optimizer steps. */
static EX_UNUSED void ex_params_train_only(nde_ctx *ctx, int first, int end, int inside) {
    int i, n = nde_params_num(ctx);
    for (i = 0; i < n; i++) nde_param_set_trainable(ctx, i, (i >= first && i < end) == inside);
}

/* A scalar loss built on ctx (a tensor of one value), NULL on error. */
typedef nde_tensor *(*ex_loss_fn)(nde_ctx *ctx, void *user);

/* num_steps steps of opt on loss(ctx, user), rebuilt for each step (the arena
   is reset after each). Returns the loss before the last step (NAN if none). */
static EX_UNUSED double ex_optimize_steps(nde_ctx *ctx, nde_optimizer *opt, int num_steps, ex_loss_fn loss, void *user) {
    double last = NAN;
    int i;
    for (i = 0; i < num_steps && nde_ctx_status(ctx) == NDE_OK; i++) {
        nde_mark mk = nde_ctx_mark(ctx);
        nde_tensor *l = loss(ctx, user);
        if (l) {
            last = nde_tensor_item(ctx, l, 0);
            nde_zero_grad(ctx);
            nde_backward(ctx, l);
            nde_optimizer_step(ctx, opt);
        }
        nde_ctx_reset(ctx, mk);
    }
    return last;
}

/* One separate midpoint update: mid->num_grad_iter steps of opt on loss with
   only the midpoint parameters [first, end) trainable; afterwards only the
   others are (the dynamics train with the midpoint frozen). Returns the
   objective before the last step. */
static EX_UNUSED double ex_midpoint_update(nde_ctx *ctx, int first, int end, const ex_midpoint_args *mid, nde_optimizer *opt,
                                           ex_loss_fn loss, void *user) {
    double last;
    ex_params_train_only(ctx, first, end, 1);
    last = ex_optimize_steps(ctx, opt, mid->num_grad_iter, loss, user);
    ex_params_train_only(ctx, first, end, 0);
    return last;
}

#endif /* NDE_EXAMPLES_COMMON_NDE_H */
