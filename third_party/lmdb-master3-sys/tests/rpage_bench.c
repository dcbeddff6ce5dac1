/* CPU per read of mdb.c, plain against encrypted (PATCHES.md, fourth change): a
 * table of ROWS rows of 100 bytes, then THREADS threads each reading random rows
 * in read txns of 1,000 gets (two cursor descents' worth of pages per get), for
 * SECONDS. Prints the process's CPU per get. The cipher is a cheap stand-in (a
 * page is decrypted once and then kept; the cipher's own cost is not measured).
 * Then the cost of a first read: every page read once by a scan of a newly opened
 * env (see cold()).
 * Then, with a fifth argument "write", what a writer pays instead (see writes()).
 * Usage: rpage_bench DIR plain|enc THREADS SECONDS [write] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lmdb.h"

#define ROWS 200000
static MDB_env *env; static MDB_dbi dbi; static int stop; static long gets;

static int enc(const MDB_val *src, MDB_val *dst, const MDB_val *key, int encdec)
{
	size_t i; unsigned char *d = dst->mv_data; const unsigned char *s = src->mv_data;
	for (i = 0; i < src->mv_size; i++) d[i] = s[i] ^ 0x5a;
	if (encdec) memset(key[2].mv_data, 0, key[2].mv_size);
	return 0;
}

static void *reader(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull; long n = 0; MDB_txn *txn; MDB_val k, v; int i;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
		for (i = 0; i < 1000; i++) {
			uint32_t key; x ^= x << 13; x ^= x >> 7; x ^= x << 17; key = __builtin_bswap32((uint32_t)(x % ROWS));
			k.mv_data = &key; k.mv_size = 4;
			if (mdb_get(txn, dbi, &k, &v)) { fprintf(stderr, "get failed\n"); exit(1); }
			n++;
		}
		mdb_txn_abort(txn);
	}
	__atomic_fetch_add(&gets, n, __ATOMIC_RELAXED);
	return NULL;
}

static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* Every page of the table read once, by a cursor scan in a new read txn of a newly
 * opened env (nothing decrypted yet), ROUNDS times: CPU per page read, so per page
 * decrypted when encrypted. */
#define ROUNDS 20
static int cold(const char *dir, int encrypted, MDB_val *key)
{
	double c0, t = 0; long pages = 0; int r;
	for (r = 0; r < ROUNDS; r++) {
		MDB_txn *txn; MDB_cursor *mc; MDB_val k, v; MDB_stat st;
		mdb_env_create(&env);
		if (encrypted) mdb_env_set_encrypt(env, enc, key, 16);
		mdb_env_set_mapsize(env, 1ul << 30);
		if (mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_RDONLY, 0644)) return 2;
		c0 = cpu();
		mdb_txn_begin(env, NULL, MDB_RDONLY, &txn); mdb_dbi_open(txn, NULL, 0, &dbi);
		mdb_cursor_open(txn, dbi, &mc);
		while (!mdb_cursor_get(mc, &k, &v, MDB_NEXT)) ;
		mdb_cursor_close(mc);
		mdb_stat(txn, dbi, &st);
		mdb_txn_abort(txn);
		t += cpu() - c0;
		pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
		mdb_env_close(env);
	}
	printf("%s cold scans: %ld pages, %.3f µs CPU per page\n", encrypted ? "enc" : "plain", pages, t * 1e6 / pages);
	return 0;
}

/* What a write txn's reads cost: TXNS txns of 1,000 puts each of random keys (16
 * bytes) and values of 400 bytes into one table of a growing env, as the model
 * bench's batched stores do; every put reads and touches (copies) the pages on
 * its path, and those the last commit wrote are read again by the next txn.
 * Prints CPU and pages decrypted per txn; the first WARM txns are not counted. */
static long decs;
static int enc64(const MDB_val *src, MDB_val *dst, const MDB_val *key, int encdec)
{
	/* cheaper still (8 bytes a step), so what is left is the cache's own cost;
	 * counts the pages opened */
	size_t i; uint64_t *d = dst->mv_data; const uint64_t *s = src->mv_data;
	for (i = 0; i < src->mv_size / 8; i++) d[i] = s[i] ^ 0x5a5a5a5a5a5a5a5aull;
	if (encdec) memset(key[2].mv_data, 0, key[2].mv_size);
	else decs++;
	return 0;
}

#define TXNS 120
#define WARM 20
static int writes(const char *dir, int encrypted, MDB_val *key)
{
	uint64_t x = 88172645463325252ull; double c0 = 0; int t, i; char val[400];
	mdb_env_create(&env);
	if (encrypted) mdb_env_set_encrypt(env, enc64, key, 16);
	mdb_env_set_mapsize(env, 4ul << 30);
	if (mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS, 0644)) return 2;
	memset(val, 7, sizeof val);
	for (t = 0; t < TXNS; t++) {
		MDB_txn *txn;
		if (t == WARM) { c0 = cpu(); decs = 0; }
		mdb_txn_begin(env, NULL, 0, &txn);
		if (!t) mdb_dbi_open(txn, NULL, 0, &dbi);
		for (i = 0; i < 1000; i++) {
			uint64_t k[2]; MDB_val kk = {16, k}, vv = {sizeof val, val};
			x ^= x << 13; x ^= x >> 7; x ^= x << 17; k[0] = x; k[1] = t;
			if (mdb_put(txn, dbi, &kk, &vv, 0)) { fprintf(stderr, "put failed\n"); exit(1); }
		}
		if (mdb_txn_commit(txn)) { fprintf(stderr, "commit failed\n"); exit(1); }
	}
	printf("%s writes: %d txns of 1,000 puts, %.1f µs CPU per txn, %ld pages decrypted per txn\n",
		encrypted ? "enc" : "plain", TXNS - WARM, (cpu() - c0) * 1e6 / (TXNS - WARM), decs / (TXNS - WARM));
	mdb_env_close(env);
	return 0;
}

int main(int argc, char **argv)
{
	int threads = atoi(argv[3]), i; double secs = atof(argv[4]), c0; pthread_t th[64];
	uint64_t kb[4] = {1, 2, 3, 4}; MDB_val key = {32, kb}; MDB_txn *txn; char val[100];
	struct timespec w = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
	if (argc > 5 && !strcmp(argv[5], "write"))
		return writes(argv[1], !strcmp(argv[2], "enc"), &key);
	mdb_env_create(&env);
	if (!strcmp(argv[2], "enc")) mdb_env_set_encrypt(env, enc, &key, 16);
	mdb_env_set_mapsize(env, 1ul << 30); mdb_env_set_maxreaders(env, 126);
	if (mdb_env_open(env, argv[1], MDB_NOSYNC | MDB_NOTLS, 0644)) return 2;
	mdb_txn_begin(env, NULL, 0, &txn); mdb_dbi_open(txn, NULL, 0, &dbi);
	memset(val, 7, sizeof val);
	for (i = 0; i < ROWS; i++) {
		uint32_t k = __builtin_bswap32(i); MDB_val kk = {4, &k}, vv = {sizeof val, val};
		mdb_put(txn, dbi, &kk, &vv, MDB_APPEND);
	}
	mdb_txn_commit(txn);
	c0 = cpu();
	for (i = 0; i < threads; i++) pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	nanosleep(&w, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < threads; i++) pthread_join(th[i], NULL);
	printf("%s %d threads: %ld gets, %.3f µs CPU per get\n", argv[2], threads, gets, (cpu() - c0) * 1e6 / gets);
	mdb_env_close(env);
	return cold(argv[1], !strcmp(argv[2], "enc"), &key);
}
