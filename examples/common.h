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
        snprintf(lab, sizeof lab, "%g", vx);
        ex_svg_text(s, ex__svg_x(s, vx), s->py + s->ph + 14.0, "middle", lab);
        snprintf(lab, sizeof lab, "%g", vy);
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

#endif /* NDE_EXAMPLES_COMMON_H */
