/*
 * A C program using memsilo.h the way a C caller would: opens a database, provisions a
 * namespace and a scoped key, then loops over successful and failing calls, freeing every
 * returned string and handle. Run under valgrind (make test-go) to prove nothing leaks.
 *
 *   cc -I../include leak_check.c ../../../target/debug/libmemsilo_ffi.a -lm -ldl -lpthread
 *   ./a.out DATA_DIR [ITERATIONS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memsilo.h"

static int failures = 0;

#define CHECK(cond, what)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what);      \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* Runs op and returns its result (caller frees), or NULL after checking the expected code. */
static char *call(const memsilo_handle *h, const char *op, const char *args, int32_t want) {
    char *out = NULL, *err = NULL;
    int32_t rc = memsilo_call(h, op, args, &out, &err);
    if (rc != want) {
        fprintf(stderr, "%s -> %d (want %d): %s\n", op, rc, want, err ? err : "");
        failures++;
    }
    if (rc != MEMSILO_OK) {
        CHECK(out == NULL, "no result on failure");
        CHECK(err != NULL && strstr(err, "\"error\"") != NULL, "an error body");
    }
    memsilo_string_free(err);
    return out;
}

/* Extracts the string value of "key":"..." from JSON text into buf. */
static void json_string(const char *json, const char *key, char *buf, size_t len) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *p = json ? strstr(json, pattern) : NULL;
    buf[0] = '\0';
    if (!p) return;
    p += strlen(pattern);
    size_t n = strcspn(p, "\"");
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATA_DIR [ITERATIONS]\n", argv[0]);
        return 2;
    }
    int iterations = argc > 2 ? atoi(argv[2]) : 200;

    memsilo_handle *root = NULL;
    char *err = NULL;
    if (memsilo_open(argv[1], &root, &err) != MEMSILO_OK) {
        fprintf(stderr, "open: %s\n", err);
        memsilo_string_free(err);
        return 1;
    }
    memsilo_string_free(call(root, "create_namespace", "{\"name\":\"tenant-acme\"}", MEMSILO_OK));
    char *key_json = call(root, "create_key",
                          "{\"name\":\"acme\",\"namespaces\":[{\"namespace\":\"tenant-acme\",\"access\":\"write\"}]}",
                          MEMSILO_OK);
    char key[256];
    json_string(key_json, "key", key, sizeof key);
    memsilo_string_free(key_json);
    CHECK(key[0] != '\0', "created key text");

    float vec[3] = {0.0f, 1.0f, 0.0f};
    for (int i = 0; i < iterations; i++) {
        memsilo_handle *acme = NULL;
        CHECK(memsilo_scoped(root, key, &acme, NULL) == MEMSILO_OK, "scoped");
        memsilo_string_free(call(acme, "store_memory",
                                 "{\"namespace\":\"tenant-acme\",\"content\":\"Q3 roadmap\",\"embedding\":[0,1,0]}",
                                 MEMSILO_OK));
        memsilo_string_free(call(acme, "recall", "{\"namespace\":\"tenant-acme\",\"vector\":[0,1,0],\"top_k\":3}", MEMSILO_OK));
        memsilo_string_free(call(acme, "recall", "{\"namespace\":\"tenant-globex\"}", MEMSILO_FORBIDDEN));
        memsilo_string_free(call(acme, "no_such_op", NULL, MEMSILO_INVALID_ARGUMENT));
        memsilo_string_free(call(acme, "list_namespaces", "{not json", MEMSILO_INVALID_ARGUMENT));
        memsilo_string_free(call(root, "list_namespaces", NULL, MEMSILO_OK));

        char *out = NULL;
        CHECK(memsilo_recall_vector(acme, "tenant-acme", vec, 3, 5, &out, NULL) == MEMSILO_OK, "recall_vector");
        memsilo_string_free(out);
        CHECK(memsilo_recall_vector(acme, NULL, NULL, 0, 5, &out, NULL) == MEMSILO_INVALID_ARGUMENT, "NULL vector");

        memsilo_handle *bad = NULL;
        err = NULL;
        CHECK(memsilo_scoped(root, "msk_nope", &bad, &err) == MEMSILO_UNAUTHORIZED, "bad key");
        CHECK(bad == NULL, "no handle for a bad key");
        memsilo_string_free(err);
        memsilo_close(acme);
    }
    char *ops = NULL;
    CHECK(memsilo_operations(&ops) == MEMSILO_OK && strstr(ops, "\"recall\"") != NULL, "operations");
    memsilo_string_free(ops);
    memsilo_close(root);

    printf("%d passed, %d failed\n", failures == 0 ? 1 : 0, failures == 0 ? 0 : 1);
    return failures == 0 ? 0 : 1;
}
