/* tests/test_io.c - nde.h file I/O: safetensors (round trip, a file written by
   Python's safetensors, corrupt files), .npy (round trip, files written by
   numpy, corrupt files), IDX, atomic writes. Reference files: tests/data/,
   made once by tests/data/make_reference.py. Scratch files go to a fresh
   directory under /tmp that is removed at the end. */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp, setrlimit, opendir */
#define NDE_IMPLEMENTATION
#include "../nde.h"
#include "nde_test.h"
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch_dir[256];

/* ---------------------------------------------------------------- helpers */
static void data_path(char *buf, size_t n, const char *name) {
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__ + 1) : 0;
    snprintf(buf, n, "%.*sdata/%s", dirlen, __FILE__, name);
}
static void scratch_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", scratch_dir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}
/* The whole file in a malloc'ed buffer (NULL if it cannot be read). */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb"); unsigned char *b; long len;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); len = ftell(f); fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)len;
    return b;
}
static int count_entries(const char *dir) {
    DIR *d = opendir(dir); struct dirent *e; int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}
/* Removes dir and everything below it. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir); struct dirent *e; char p[768]; struct stat st;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else remove(p);
    }
    closedir(d);
    rmdir(dir);
}
/* A safetensors file from a header text and raw data (no padding). */
static void st_write(const char *path, const char *json, const void *data, size_t data_len) {
    size_t hl = strlen(json), i;
    unsigned char *b = (unsigned char *)malloc(8 + hl + data_len + 1);
    for (i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    if (data_len) memcpy(b + 8 + hl, data, data_len);
    write_bytes(path, b, 8 + hl + data_len);
    free(b);
}
static void put_f32(unsigned char *p, float v) { uint32_t b; int i; memcpy(&b, &v, 4); for (i = 0; i < 4; i++) p[i] = (unsigned char)(b >> (8 * i)); }
static void put_f64(unsigned char *p, double v) { uint64_t b; int i; memcpy(&b, &v, 8); for (i = 0; i < 8; i++) p[i] = (unsigned char)(b >> (8 * i)); }

/* The call failed with status and a message holding fragment; clears the error. */
static void expect_error(nde_ctx *ctx, nde_status got, nde_status want, const char *fragment) {
    CHECK(got == want);
    CHECK(nde_ctx_status(ctx) == want);
    CHECK_MSG(nde_ctx_message(ctx), fragment);
    if (got != want) fprintf(stderr, "  status %d (%s), wanted %d\n", got, nde_ctx_message(ctx), want);
    nde_ctx_clear_error(ctx);
}

/* ---------------------------------------------------------------- safetensors */
static void make_small_model(nde_ctx *ctx) {
    int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[4] = {1, 2, 2, 1};
    nde_param_new(ctx, "layer.a", 2, sa);
    nde_param_new(ctx, "layer.b", 1, sb);
    nde_param_new(ctx, "conv \"quoted\\name\"", 4, sc);   /* JSON escaping */
}

static void test_params_round_trip(void) {
    nde_ctx *a = nde_ctx_new(nde_ctx_desc_default()), *b = nde_ctx_new(nde_ctx_desc_default());
    char path[512]; unsigned char *bytes; size_t n; uint64_t hlen = 0; int i;
    make_small_model(a);
    make_small_model(b);
    for (i = 0; i < nde_params_num(a); i++) nde_init_uniform(a, nde_param_at(a, i), NDE_R(-3.0), NDE_R(3.0), 99);
    scratch_path(path, sizeof path, "round.safetensors");
    CHECK(nde_save_params(a, path) == NDE_OK);
    CHECK(nde_load_params(b, path) == NDE_OK);
    CHECK(nde_params_count(b) == 14);
    CHECK(memcmp(nde_params_data(a), nde_params_data(b), 14 * sizeof(nde_real)) == 0);
    /* the layout itself: u64 length, header padded to 8, data section */
    bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    if (bytes) {
        for (i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
        CHECK(hlen % 8 == 0);
        CHECK(8 + hlen + 14 * sizeof(nde_real) == n);
        CHECK(bytes[8] == '{');
        CHECK(memcmp(bytes + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0);
        CHECK(strstr((char *)bytes + 8, sizeof(nde_real) == 8 ? "\"dtype\":\"F64\"" : "\"dtype\":\"F32\"") != NULL);
        CHECK(strstr((char *)bytes + 8, "\"conv \\\"quoted\\\\name\\\"\"") != NULL);
        CHECK(strstr((char *)bytes + 8, "\"layer.b\":{\"dtype\"") != NULL);
        /* the first value of layer.a, little-endian right after the header */
        {
            nde_real v0;
            unsigned char le[8]; memset(le, 0, sizeof le);
            memcpy(&v0, nde_params_data(a), sizeof v0);
            if (sizeof(nde_real) == 8) put_f64(le, (double)v0); else put_f32(le, (float)v0);
            CHECK(memcmp(bytes + 8 + hlen, le, sizeof(nde_real)) == 0);
        }
        free(bytes);
    }
    /* an empty model saves and loads */
    {
        nde_ctx *e = nde_ctx_new(nde_ctx_desc_default());
        scratch_path(path, sizeof path, "empty.safetensors");
        CHECK(nde_save_params(e, path) == NDE_OK);
        CHECK(nde_load_params(e, path) == NDE_OK);
        nde_ctx_free(e);
    }
    CHECK(nde_ctx_status(a) == NDE_OK && nde_ctx_status(b) == NDE_OK);
    nde_ctx_free(a); nde_ctx_free(b);
}

/* tests/data/reference.safetensors, written by Python's safetensors: F32,
   F64, F16 tensors in the order safetensors chose. */
static void test_reference_safetensors(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s_w0[2] = {3, 2}, s_b0[1] = {3}, s_w1[2] = {1, 3}, s_b1[1] = {1}, s_cw[4] = {2, 1, 2, 2};
    nde_tensor *w0 = nde_param_new(ctx, "net.0.weight", 2, s_w0);
    nde_tensor *b0 = nde_param_new(ctx, "net.0.bias", 1, s_b0);
    nde_tensor *w1 = nde_param_new(ctx, "net.1.weight", 2, s_w1);
    nde_tensor *b1 = nde_param_new(ctx, "net.1.bias", 1, s_b1);
    nde_tensor *cw = nde_param_new(ctx, "conv.weight", 4, s_cw);
    const float w0v[6] = {0.5f, -1.25f, 2.0f, 3.75f, -0.125f, 1e-3f};
    const double b0v[3] = {1.0 / 3.0, -2.0 / 3.0, 1e10};
    const double w1v[3] = {0.5, -2.0, 65504.0};
    char path[512]; int i, ok;
    data_path(path, sizeof path, "reference.safetensors");
    CHECK(nde_load_params(ctx, path) == NDE_OK);
    if (nde_ctx_status(ctx) != NDE_OK) fprintf(stderr, "  %s\n", nde_ctx_message(ctx));
    for (ok = 1, i = 0; i < 6; i++) ok &= w0->data[i] == (nde_real)w0v[i];
    CHECK(ok);
    for (ok = 1, i = 0; i < 3; i++) ok &= b0->data[i] == (nde_real)b0v[i];   /* F64 rounded once */
    CHECK(ok);
    for (ok = 1, i = 0; i < 3; i++) ok &= w1->data[i] == (nde_real)w1v[i];   /* F16, exact */
    CHECK(ok);
    CHECK(b1->data[0] == NDE_R(-7.5));
    CHECK_NEAR(b0->data[0], 1.0 / 3.0, 0.0, NDE_REAL_EPS);
    for (ok = 1, i = 0; i < 8; i++) ok &= cw->data[i] == (nde_real)(i * 0.25 - 1.0);
    CHECK(ok);
    nde_ctx_free(ctx);
}

/* The two-tensor model used by the hand-made files: w (2,2), b (2). */
static nde_ctx *wb_model(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t sw[2] = {2, 2}, sb[1] = {2};
    nde_param_new(ctx, "w", 2, sw);
    nde_param_new(ctx, "b", 1, sb);
    nde_tensor_fill(ctx, nde_param_at(ctx, 0), NDE_R(9.0));
    nde_tensor_fill(ctx, nde_param_at(ctx, 1), NDE_R(9.0));
    return ctx;
}
static int wb_untouched(nde_ctx *ctx) {
    int i, ok = 1;
    for (i = 0; i < 6; i++) ok &= nde_params_data(ctx)[i] == NDE_R(9.0);
    return ok;
}
/* Loads a hand-made file into the w/b model and expects a failure that leaves it as it was. */
static void expect_st_error(const char *json, const void *data, size_t len, nde_status want, const char *fragment) {
    nde_ctx *ctx = wb_model();
    char path[512];
    scratch_path(path, sizeof path, "bad.safetensors");
    st_write(path, json, data, len);
    expect_error(ctx, nde_load_params(ctx, path), want, fragment);
    CHECK(wb_untouched(ctx));
    if (!wb_untouched(ctx)) fprintf(stderr, "  (model changed by the failed load of %s)\n", json);
    nde_ctx_free(ctx);
}

static void test_safetensors_handmade(void) {
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}";
    unsigned char data[64]; char path[512]; int i;
    nde_ctx *ctx = wb_model();
    for (i = 0; i < 4; i++) put_f32(data + 4 * i, (float)(i + 1) * 0.5f);
    put_f64(data + 16, 0.1); put_f64(data + 24, -1e-3);
    scratch_path(path, sizeof path, "good.safetensors");
    /* F32 and F64 both load in either build */
    st_write(path, good, data, 32);
    CHECK(nde_load_params(ctx, path) == NDE_OK);
    CHECK(nde_params_data(ctx)[0] == NDE_R(0.5) && nde_params_data(ctx)[3] == NDE_R(2.0));
    CHECK(nde_params_data(ctx)[4] == (nde_real)0.1 && nde_params_data(ctx)[5] == (nde_real)-1e-3);
    /* BF16: the upper half of a float32 */
    {
        const char *j = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
        unsigned char d[16];
        const uint16_t bf[4] = {0x3F80, 0xC040, 0x3E00, 0x4B80};   /* 1, -3, 0.125, 2^24 */
        for (i = 0; i < 4; i++) { d[2 * i] = (unsigned char)(bf[i] & 255); d[2 * i + 1] = (unsigned char)(bf[i] >> 8); }
        put_f32(d + 8, 4.0f); put_f32(d + 12, -4.0f);
        st_write(path, j, d, 16);
        CHECK(nde_load_params(ctx, path) == NDE_OK);
        CHECK(nde_params_data(ctx)[0] == NDE_R(1.0) && nde_params_data(ctx)[1] == NDE_R(-3.0));
        CHECK(nde_params_data(ctx)[2] == NDE_R(0.125) && nde_params_data(ctx)[3] == NDE_R(16777216.0));
        CHECK(nde_params_data(ctx)[5] == NDE_R(-4.0));
    }
    /* whitespace, metadata anywhere, escapes in keys, padding */
    {
        const char *j = " { \"__metadata__\" : { \"a\\\"b\" : \"\\u00e9\\ud83d\\ude00\" } ,\n"
                        "\"\\u0077\":{\"shape\":[2, 2],\"dtype\":\"F32\",\"data_offsets\":[0,16]},"
                        "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]} }        ";
        st_write(path, j, data, 32);
        CHECK(nde_load_params(ctx, path) == NDE_OK);
        CHECK(nde_params_data(ctx)[1] == NDE_R(1.0));
    }
    nde_ctx_free(ctx);

    /* JSON that is not (or not the right) JSON */
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", data, 16, NDE_ERR_FORMAT, "bad JSON header");
    expect_st_error("[1, 2]                  ", data, 0, NDE_ERR_FORMAT, "must be a JSON object");
    expect_st_error("{\"w\" 1}", data, 0, NDE_ERR_FORMAT, "expected ':'");
    expect_st_error("{} trailing", data, 0, NDE_ERR_FORMAT, "text after the closing");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT, "negative number");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2.0],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT, "fraction");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16],\"x\":1}}", data, 16, NDE_ERR_FORMAT, "unknown key");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2]}}", data, 16, NDE_ERR_FORMAT, "lacks dtype, shape or data_offsets");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT, "appears twice");
    expect_st_error("{\"__metadata__\":{\"n\":3}}", data, 0, NDE_ERR_FORMAT, "values must be strings");
    expect_st_error("{\"w\\q\":{}}", data, 0, NDE_ERR_FORMAT, "unknown escape");
    expect_st_error("{\"w\\ud800\":{}}", data, 0, NDE_ERR_FORMAT, "surrogate");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT, "too large");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT, "too many elements");
    /* dtypes */
    expect_st_error("{\"w\":{\"dtype\":\"F33\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT, "unknown dtype 'F33'");
    expect_st_error("{\"w\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT, "has dtype I32");
    /* offsets: out of range, inconsistent with the shape, overlapping, holes */
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,1000]}}", data, 32, NDE_ERR_FORMAT, "outside the data section");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT, "outside the data section");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT, "need 24 bytes");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[8,24]}}", data, 24, NDE_ERR_FORMAT, "overlap");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[24,40]}}", data, 40, NDE_ERR_FORMAT, "belong to no tensor");
    expect_st_error(good, data, 40, NDE_ERR_FORMAT, "8 bytes after the last tensor");
    /* the file against the model */
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT,
                    "tensor 'w' has shape (4) in the file but (2, 2) in the model");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2,1,1,1],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 32, NDE_ERR_FORMAT,
                    "shape (2, 2, 1, 1, ...) in the file");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", data, 16, NDE_ERR_FORMAT,
                    "1 parameter(s) missing from the file: 'b'");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                    "\"zz\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]},"
                    "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", data, 36, NDE_ERR_FORMAT,
                    "not parameters of the model: 'zz'");
#ifndef NDE_DOUBLE
    {   /* a double that no float can hold */
        unsigned char d2[32];
        memcpy(d2, data, 32); put_f64(d2 + 16, 1e300);
        expect_st_error(good, d2, 32, NDE_ERR_FORMAT, "outside the range of float");
    }
#endif
    /* no such file; a directory; no path */
    {
        nde_ctx *c = wb_model();
        scratch_path(path, sizeof path, "does-not-exist.safetensors");
        expect_error(c, nde_load_params(c, path), NDE_ERR_IO, "No such file");
        expect_error(c, nde_load_params(c, scratch_dir), NDE_ERR_IO, "Is a directory");
        expect_error(c, nde_load_params(c, NULL), NDE_ERR_ARG, "NULL path");
        expect_error(c, nde_save_params(c, NULL), NDE_ERR_ARG, "NULL path");
        CHECK(wb_untouched(c));
        nde_ctx_free(c);
    }
}

/* Truncations and a huge header length of a file nde wrote, then random damage. */
static void test_safetensors_truncated(void) {
    nde_ctx *src = nde_ctx_new(nde_ctx_desc_default()), *ctx = nde_ctx_new(nde_ctx_desc_default());
    char path[512], bad[512]; unsigned char *bytes, *copy; size_t n, hlen = 0; int i, k;
    make_small_model(src);
    make_small_model(ctx);
    for (i = 0; i < nde_params_num(src); i++) nde_init_uniform(src, nde_param_at(src, i), NDE_R(-1.0), NDE_R(1.0), 3);
    scratch_path(path, sizeof path, "trunc-src.safetensors");
    scratch_path(bad, sizeof bad, "trunc.safetensors");
    CHECK(nde_save_params(src, path) == NDE_OK);
    bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    if (!bytes) { nde_ctx_free(src); nde_ctx_free(ctx); return; }
    for (i = 0; i < 8; i++) hlen |= (size_t)bytes[i] << (8 * i);
    {
        struct { size_t at; const char *fragment; } cut[] = {
            {0, "truncated: the header length needs 8 bytes"}, {5, "truncated: the header length"},
            {8, "the header length"}, {8 + 10, "exceeds"}, {0, "exceeds"},
            {0, "outside the data section"}, {0, "outside the data section"},
        };
        cut[4].at = 8 + hlen - 1;
        cut[5].at = 8 + hlen;
        cut[6].at = n - 1;
        for (k = 0; k < (int)(sizeof cut / sizeof cut[0]); k++) {
            write_bytes(bad, bytes, cut[k].at);
            expect_error(ctx, nde_load_params(ctx, bad), NDE_ERR_FORMAT, cut[k].fragment);
        }
    }
    /* header lengths far past the file */
    copy = (unsigned char *)malloc(n);
    memcpy(copy, bytes, n);
    for (i = 0; i < 8; i++) copy[i] = 0xff;
    write_bytes(bad, copy, n);
    expect_error(ctx, nde_load_params(ctx, bad), NDE_ERR_FORMAT, "the header length 18446744073709551615 exceeds");
    memcpy(copy, bytes, 8); copy[7] = 0x40;
    write_bytes(bad, copy, n);
    expect_error(ctx, nde_load_params(ctx, bad), NDE_ERR_FORMAT, "exceeds");
    /* random damage: never a crash, always OK or a message naming the function and file */
    {
        uint64_t s = 12345;
        int bad_msgs = 0;
        for (k = 0; k < 300; k++) {
            size_t len = n, flips, f;
            memcpy(copy, bytes, n);
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            if ((s >> 60) < 4) len = (size_t)((s >> 20) % n);
            flips = 1 + (size_t)((s >> 40) % 3);
            for (f = 0; f < flips; f++) {
                size_t at;
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                at = (size_t)((s >> 24) % (8 + hlen + 8));   /* mostly the length and header */
                if (at < n) copy[at] = (unsigned char)(s >> 56);
            }
            write_bytes(bad, copy, len);
            if (nde_load_params(ctx, bad) != NDE_OK) {
                const char *m = nde_ctx_message(ctx);
                if (strncmp(m, "nde_load_params: '", 18) != 0 || !strstr(m, "trunc.safetensors")) {
                    if (bad_msgs++ < 3) fprintf(stderr, "  unexpected message: %s\n", m);
                }
                nde_ctx_clear_error(ctx);
            }
        }
        CHECK(bad_msgs == 0);
    }
    free(copy); free(bytes);
    nde_ctx_free(src); nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- npy */
static void test_npy_round_trip(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    int64_t s3[3] = {2, 3, 4}, s1[1] = {5};
    nde_tensor *x = nde_tensor_randn(ctx, 3, s3, 5, 0), *v = nde_tensor_randn(ctx, 1, s1, 6, 0), *y;
    char path[512]; unsigned char *b; size_t n;
    scratch_path(path, sizeof path, "x.npy");
    CHECK(nde_save_npy(ctx, path, x) == NDE_OK);
    y = nde_load_npy(ctx, path);
    CHECK(y && nde_tensor_same_shape(x, y) && memcmp(x->data, y->data, 24 * sizeof(nde_real)) == 0);
    b = read_bytes(path, &n);
    if (b) {
        size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
        CHECK(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
        CHECK((10 + hl) % 64 == 0 && b[10 + hl - 1] == '\n');
        CHECK(n == 10 + hl + 24 * sizeof(nde_real));
        CHECK(strstr((char *)b + 10, sizeof(nde_real) == 8 ? "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }"
                                                           : "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }") != NULL);
        free(b);
    }
    scratch_path(path, sizeof path, "v.npy");
    CHECK(nde_save_npy(ctx, path, v) == NDE_OK);
    y = nde_load_npy(ctx, path);
    CHECK(y && y->ndim == 1 && y->shape[0] == 5 && memcmp(v->data, y->data, 5 * sizeof(nde_real)) == 0);
    b = read_bytes(path, &n);
    if (b) { CHECK(strstr((char *)b + 10, "'shape': (5,), }") != NULL); free(b); }
    expect_error(ctx, nde_save_npy(ctx, path, NULL), NDE_ERR_ARG, "NULL tensor");
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    nde_ctx_free(ctx);
}

static nde_tensor *load_ref_npy(nde_ctx *ctx, const char *name) {
    char path[512];
    nde_tensor *t;
    data_path(path, sizeof path, name);
    t = nde_load_npy(ctx, path);
    if (!t) fprintf(stderr, "  %s: %s\n", name, nde_ctx_message(ctx));
    return t;
}

/* Files written by numpy (tests/data/make_reference.py). */
static void test_npy_reference(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_tensor *t; int i, ok;
    t = load_ref_npy(ctx, "ref_f4.npy");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    for (ok = t != NULL, i = 0; t && i < 6; i++) ok &= t->data[i] == (nde_real)(i - 2.5);
    CHECK(ok);
    t = load_ref_npy(ctx, "ref_f8.npy");
    CHECK(t && t->ndim == 1 && t->shape[0] == 4);
    CHECK(t && t->data[0] == (nde_real)(1.0 / 3.0));
    CHECK(t && t->data[1] == (nde_real)-1e-300);    /* -0 in float */
    CHECK(t && t->data[2] == (nde_real)1e30 && t->data[3] == (nde_real)0.1);
    t = load_ref_npy(ctx, "ref_i4.npy");
    CHECK(t && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == 3 && t->data[0] == NDE_R(-3.0) && t->data[2] == NDE_R(7.0));
    t = load_ref_npy(ctx, "ref_i8.npy");
    CHECK(t && t->data[0] == (nde_real)-1099511627776.0 && t->data[1] == NDE_R(5.0));
    t = load_ref_npy(ctx, "ref_u1.npy");
    CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 2 && t->shape[2] == 1);
    CHECK(t && t->data[0] == NDE_R(0.0) && t->data[1] == NDE_R(1.0) && t->data[2] == NDE_R(128.0) && t->data[3] == NDE_R(255.0));
    t = load_ref_npy(ctx, "ref_f8_big.npy");
    CHECK(t && t->data[0] == NDE_R(1.5) && t->data[1] == NDE_R(-2.25));
    t = load_ref_npy(ctx, "ref_scalar.npy");
    CHECK(t && t->ndim == 1 && t->shape[0] == 1 && t->data[0] == NDE_R(42.0));
    t = load_ref_npy(ctx, "ref_f4_v2.npy");
    CHECK(t && t->size == 3 && t->data[2] == NDE_R(3.0));
    {
        char path[512];
        data_path(path, sizeof path, "ref_fortran.npy");
        CHECK(nde_load_npy(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "fortran_order is True");
    }
    nde_ctx_free(ctx);
}

/* A .npy file from a header dict and data bytes (v1.0). */
static void npy_write(const char *path, const char *dict, const void *data, size_t n) {
    unsigned char b[512]; size_t hl = strlen(dict);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hl & 255); b[9] = (unsigned char)(hl >> 8);
    memcpy(b + 10, dict, hl);
    memcpy(b + 10 + hl, data, n);
    write_bytes(path, b, 10 + hl + n);
}
static void expect_npy_error(const char *path, const char *fragment) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    CHECK(nde_load_npy(ctx, path) == NULL);
    expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, fragment);
    nde_ctx_free(ctx);
}
static void test_npy_corrupt(void) {
    char path[512]; unsigned char d[64]; int i;
    for (i = 0; i < 64; i++) d[i] = 0;
    scratch_path(path, sizeof path, "bad.npy");
    write_bytes(path, "\x93NUMPZ\x01\x00\x10\x00", 10);
    expect_npy_error(path, "bad magic");
    write_bytes(path, "\x93NUM", 4);
    expect_npy_error(path, "truncated");
    write_bytes(path, "\x93NUMPY\x04\x00\x10\x00", 10);
    expect_npy_error(path, "unsupported .npy version 4.0");
    write_bytes(path, "\x93NUMPY\x01\x00\xff\xff{}", 12);
    expect_npy_error(path, "the header length 65535 exceeds");
    npy_write(path, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", d, 8);
    expect_npy_error(path, "fortran_order is True");
    npy_write(path, "{'descr': '<f4', 'shape': (2,), }\n", d, 8);
    expect_npy_error(path, "lacks descr, fortran_order or shape");
    npy_write(path, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", d, 16);
    expect_npy_error(path, "unsupported dtype '<c8'");
    npy_write(path, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", d, 8);
    expect_npy_error(path, "bad header");
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", d, 20);
    expect_npy_error(path, "6 elements of 4 bytes but 20 data bytes");
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", d, 28);
    expect_npy_error(path, "but 28 data bytes");
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }\n", d, 4);
    expect_npy_error(path, "more dimensions than NDE_MAX_DIMS");
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n", d, 4);
    expect_npy_error(path, "too many elements");
    {   /* keys in another order, double quotes, Python 2 longs */
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default()); nde_tensor *t;
        npy_write(path, "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"|u1\"}\n", "\x07\x09", 2);
        t = nde_load_npy(ctx, path);
        CHECK(t && t->ndim == 2 && t->shape[1] == 2 && t->data[1] == NDE_R(9.0));
        nde_ctx_free(ctx);
    }
    npy_write(path, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }\n", d, 8);
    expect_npy_error(path, "True or False");
    npy_write(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", d, 8);
    expect_npy_error(path, "unknown key");
    {   /* version 3.0: a u32 header length, otherwise as 1.0 */
        const char *dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n";
        unsigned char b[128]; size_t hl = strlen(dict);
        nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default()); nde_tensor *t;
        memcpy(b, "\x93NUMPY\x03\x00", 8);
        b[8] = (unsigned char)hl; b[9] = b[10] = b[11] = 0;
        memcpy(b + 12, dict, hl);
        b[12 + hl] = 0xfe; b[13 + hl] = 0xff; b[14 + hl] = 0x00; b[15 + hl] = 0x01;   /* -2, 256 */
        write_bytes(path, b, 16 + hl);
        t = nde_load_npy(ctx, path);
        CHECK(t && t->size == 2 && t->data[0] == NDE_R(-2.0) && t->data[1] == NDE_R(256.0));
        nde_ctx_free(ctx);
    }
    /* the real file cut anywhere fails cleanly */
    {
        unsigned char *b; size_t n, cut;
        data_path(path, sizeof path, "ref_f4.npy");
        b = read_bytes(path, &n);
        CHECK(b != NULL);
        scratch_path(path, sizeof path, "cut.npy");
        for (cut = 0; b && cut < n; cut += 7) {
            nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
            write_bytes(path, b, cut);
            CHECK(nde_load_npy(ctx, path) == NULL && nde_ctx_status(ctx) == NDE_ERR_FORMAT);
            CHECK_MSG(nde_ctx_message(ctx), "nde_load_npy: '");
            nde_ctx_free(ctx);
        }
        free(b);
    }
}

/* ---------------------------------------------------------------- IDX */
static void test_idx(void) {
    nde_ctx *ctx = nde_ctx_new(nde_ctx_desc_default());
    char path[512]; nde_tensor *t; int i, ok;
    const unsigned char img[12] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
    data_path(path, sizeof path, "ref_images.idx3-ubyte");
    t = nde_load_idx(ctx, path);
    CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 2);
    for (ok = t != NULL, i = 0; t && i < 12; i++) ok &= t->data[i] == (nde_real)img[i];
    CHECK(ok);
    data_path(path, sizeof path, "ref_labels.idx1-ubyte");
    t = nde_load_idx(ctx, path);
    CHECK(t && t->ndim == 1 && t->shape[0] == 2 && t->data[0] == NDE_R(7.0) && t->data[1] == NDE_R(3.0));
    data_path(path, sizeof path, "ref_f32.idx");
    t = nde_load_idx(ctx, path);
    CHECK(t && t->size == 3 && t->data[0] == NDE_R(1.5) && t->data[1] == NDE_R(-0.25) && t->data[2] == NDE_R(1e6));
    {   /* signed 16-bit, big-endian */
        const unsigned char f[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x00};
        scratch_path(path, sizeof path, "i16.idx");
        write_bytes(path, f, sizeof f);
        t = nde_load_idx(ctx, path);
        CHECK(t && t->data[0] == NDE_R(-2.0) && t->data[1] == NDE_R(256.0));
    }
    CHECK(nde_ctx_status(ctx) == NDE_OK);
    /* corrupt */
    {
        const unsigned char good[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
        const unsigned char gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
        const unsigned char badtype[] = {0, 0, 0x0A, 1, 0, 0, 0, 1, 0};
        const unsigned char nodims[] = {0, 0, 0x08, 0};
        const unsigned char fivedims[] = {0, 0, 0x08, 5, 0, 0, 0, 1};
        const unsigned char huge[] = {0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
        size_t cut;
        scratch_path(path, sizeof path, "bad.idx");
        for (cut = 0; cut < sizeof good; cut++) {
            write_bytes(path, good, cut);
            CHECK(nde_load_idx(ctx, path) == NULL);
            expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, cut < 12 ? "truncated" : "6 elements of 1 bytes but");
        }
        write_bytes(path, good, sizeof good);
        CHECK(nde_load_idx(ctx, path) != NULL);
        write_bytes(path, gz, sizeof gz);
        CHECK(nde_load_idx(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "gzip-compressed");
        write_bytes(path, badtype, sizeof badtype);
        CHECK(nde_load_idx(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "bad magic number 00 00 0a 01");
        write_bytes(path, nodims, sizeof nodims);
        CHECK(nde_load_idx(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "0 dimensions");
        write_bytes(path, fivedims, sizeof fivedims);
        CHECK(nde_load_idx(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "5 dimensions");
        write_bytes(path, huge, sizeof huge);
        CHECK(nde_load_idx(ctx, path) == NULL);
        expect_error(ctx, nde_ctx_status(ctx), NDE_ERR_FORMAT, "but 1 data bytes follow");
    }
    nde_ctx_free(ctx);
}

/* ---------------------------------------------------------------- atomic writes */
static void test_atomic_writes(void) {
    nde_ctx *small = nde_ctx_new(nde_ctx_desc_default()), *big = nde_ctx_new(nde_ctx_desc_default());
    int64_t sb[2] = {100, 100};
    char path[512], dirpath[300]; unsigned char *before, *after; size_t nb, na; int entries;
    make_small_model(small);
    nde_init_uniform(small, nde_param_at(small, 0), NDE_R(-1.0), NDE_R(1.0), 1);
    nde_param_new(big, "huge", 2, sb);
    /* a directory that does not exist: clean failure, nothing created */
    entries = count_entries(scratch_dir);
    snprintf(path, sizeof path, "%s/no-such-dir/p.safetensors", scratch_dir);
    expect_error(small, nde_save_params(small, path), NDE_ERR_IO, "No such file or directory");
    snprintf(path, sizeof path, "%s/no-such-dir/p.npy", scratch_dir);
    expect_error(small, nde_save_npy(small, path, nde_param_at(small, 0)), NDE_ERR_IO, "no-such-dir/p.npy");
    CHECK(count_entries(scratch_dir) == entries);

    /* a write that fails half-way (file size limit) leaves the old file as it was, and no temp file */
    scratch_path(dirpath, sizeof dirpath, "atomic");
    mkdir(dirpath, 0700);
    snprintf(path, sizeof path, "%s/model.safetensors", dirpath);
    CHECK(nde_save_params(small, path) == NDE_OK);
    before = read_bytes(path, &nb);
    {
        struct rlimit old, lim;
        if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
            void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
            lim = old; lim.rlim_cur = 4096;
            if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
                nde_status s = nde_save_params(big, path);   /* 80 KB of values */
                setrlimit(RLIMIT_FSIZE, &old);
                expect_error(big, s, NDE_ERR_IO, "File too large");
                after = read_bytes(path, &na);
                CHECK(before && after && na == nb && memcmp(before, after, nb) == 0);
                free(after);
                CHECK(count_entries(dirpath) == 1);
                CHECK(nde_load_params(small, path) == NDE_OK);
            } else {
                SKIP("setrlimit(RLIMIT_FSIZE) refused");
            }
            signal(SIGXFSZ, prev);
        }
    }
    free(before);
    /* rename onto a directory fails: reported, temp file removed */
    snprintf(path, sizeof path, "%s/is-a-dir", dirpath);
    mkdir(path, 0700);
    expect_error(small, nde_save_params(small, path), NDE_ERR_IO, "renaming");
    CHECK(count_entries(dirpath) == 2);
    /* a context holding an error writes nothing */
    snprintf(path, sizeof path, "%s/never.safetensors", dirpath);
    nde_ctx_fail(small, NDE_ERR_SHAPE, "earlier error");
    CHECK(nde_save_params(small, path) == NDE_ERR_SHAPE);
    CHECK(nde_save_npy(small, path, nde_param_at(small, 0)) == NDE_ERR_SHAPE);
    CHECK(nde_load_npy(small, path) == NULL);
    CHECK(count_entries(dirpath) == 2);
    nde_ctx_clear_error(small);
    nde_ctx_free(small); nde_ctx_free(big);
}

/* ---------------------------------------------------------------- device backends
   A pretend device: the CPU kernels, but its memory holds every byte XOR 0xA5,
   so I/O code that reads or writes backend memory directly instead of going
   through be->copy sees (or leaves) garbage. */
static void scramble(void *p, size_t n) {
    unsigned char *b = (unsigned char *)p; size_t i;
    for (i = 0; i < n; i++) b[i] ^= 0xA5;
}
static nde_status fake_copy(void *self, void *dst, const void *src, size_t bytes, nde_copy_kind kind) {
    (void)self;
    if (dst != src && bytes) memmove(dst, src, bytes);
    if (kind != NDE_COPY_DEVICE) scramble(dst, bytes);
    return NDE_OK;
}
static void fake_fill(void *self, int64_t n, nde_real v, nde_real *x) {
    int64_t i; (void)self;
    for (i = 0; i < n; i++) x[i] = v;
    scramble(x, (size_t)n * sizeof(nde_real));
}
static void test_device_backend(void) {
    nde_backend fake = *nde_cpu_backend();
    nde_ctx_desc desc = nde_ctx_desc_default();
    nde_ctx *dev, *cpu;
    nde_real vals[14], back[14];
    char path[512]; int i, k, ok;
    fake.name = "fake-device"; fake.is_device = 1; fake.copy = fake_copy; fake.fill = fake_fill;
    desc.backend = &fake;
    dev = nde_ctx_new(desc);
    cpu = nde_ctx_new(nde_ctx_desc_default());
    make_small_model(dev);
    make_small_model(cpu);
    for (i = 0; i < 14; i++) vals[i] = (nde_real)(i * 0.75 - 4.0);
    for (k = 0, i = 0; k < nde_params_num(dev); i += (int)nde_param_at(dev, k)->size, k++)
        nde_tensor_set_host(dev, nde_param_at(dev, k), vals + i);
    /* device -> file -> CPU */
    scratch_path(path, sizeof path, "dev.safetensors");
    CHECK(nde_save_params(dev, path) == NDE_OK);
    CHECK(nde_load_params(cpu, path) == NDE_OK);
    CHECK(memcmp(nde_params_data(cpu), vals, sizeof vals) == 0);
    /* CPU -> file -> device */
    for (i = 0; i < 14; i++) nde_params_data(cpu)[i] = (nde_real)(100 - i);
    CHECK(nde_save_params(cpu, path) == NDE_OK);
    CHECK(nde_load_params(dev, path) == NDE_OK);
    for (ok = 1, k = 0, i = 0; k < nde_params_num(dev); i += (int)nde_param_at(dev, k)->size, k++) {
        nde_tensor_to_host(dev, nde_param_at(dev, k), back + i);
    }
    for (i = 0; i < 14; i++) ok &= back[i] == (nde_real)(100 - i);
    CHECK(ok);
    /* .npy both ways, IDX into the device */
    {
        int64_t s[2] = {2, 7};
        nde_tensor *t = nde_tensor_from(dev, 2, s, vals), *u;
        scratch_path(path, sizeof path, "dev.npy");
        CHECK(nde_save_npy(dev, path, t) == NDE_OK);
        u = nde_load_npy(cpu, path);
        CHECK(u && u->size == 14 && memcmp(u->data, vals, sizeof vals) == 0);
        u = nde_load_npy(dev, path);
        CHECK(u && u->size == 14 && nde_tensor_to_host(dev, u, back) == NDE_OK && memcmp(back, vals, sizeof vals) == 0);
        data_path(path, sizeof path, "ref_images.idx3-ubyte");
        u = nde_load_idx(dev, path);
        CHECK(u && u->size == 12 && nde_tensor_to_host(dev, u, back) == NDE_OK && back[0] == NDE_R(0.0) && back[11] == NDE_R(255.0));
    }
    CHECK(nde_ctx_status(dev) == NDE_OK && nde_ctx_status(cpu) == NDE_OK);
    if (nde_ctx_status(dev) != NDE_OK) fprintf(stderr, "  %s\n", nde_ctx_message(dev));
    nde_ctx_free(dev); nde_ctx_free(cpu);
}

/* With NDE_IO_EXPORT_DIR set, writes files for tests/data/check_nde_files.py
   (the by-hand check that Python's safetensors and numpy read what nde writes). */
static void export_for_python(void) {
    const char *dir = getenv("NDE_IO_EXPORT_DIR");
    nde_ctx *ctx; char path[512]; int i, k;
    int64_t s0[2] = {3, 4}, s1[1] = {3}, s2[4] = {2, 1, 2, 2};
    if (!dir) return;
    ctx = nde_ctx_new(nde_ctx_desc_default());
    nde_param_new(ctx, "layer.0.weight", 2, s0);
    nde_param_new(ctx, "layer.0.bias", 1, s1);
    nde_param_new(ctx, "conv \"odd\" name", 4, s2);
    for (k = 0; k < nde_params_num(ctx); k++) {
        nde_tensor *t = nde_param_at(ctx, k);
        for (i = 0; i < t->size; i++) t->data[i] = (nde_real)((i - 5 + 100 * k) / 7.0);
    }
    snprintf(path, sizeof path, "%s/nde_params_f%d.safetensors", dir, (int)sizeof(nde_real) * 8);
    CHECK(nde_save_params(ctx, path) == NDE_OK);
    snprintf(path, sizeof path, "%s/nde_array_f%d.npy", dir, (int)sizeof(nde_real) * 8);
    CHECK(nde_save_npy(ctx, path, nde_param_at(ctx, 2)) == NDE_OK);
    printf("wrote %s/nde_params_f%d.safetensors and nde_array_f%d.npy\n", dir, (int)sizeof(nde_real) * 8,
           (int)sizeof(nde_real) * 8);
    nde_ctx_free(ctx);
}

int main(void) {
    strcpy(scratch_dir, "/tmp/nde_test_io_XXXXXX");
    if (!mkdtemp(scratch_dir)) { perror("mkdtemp"); return 1; }
    test_params_round_trip();
    test_reference_safetensors();
    test_safetensors_handmade();
    test_safetensors_truncated();
    test_npy_round_trip();
    test_npy_reference();
    test_npy_corrupt();
    test_idx();
    test_atomic_writes();
    test_device_backend();
    export_for_python();
    remove_tree(scratch_dir);
    return nde_test_finish("test_io");
}
