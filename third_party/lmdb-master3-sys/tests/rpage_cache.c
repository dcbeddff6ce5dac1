/* A check of mdb.c's cache of decrypted pages (PATCHES.md, second and fourth
 * changes), linking mdb.c as the crate builds it: one encrypted env, a writer that
 * checks every value it reads inside its own txns (built with a small
 * MDB_IDL_LOGN, its txns spill, read spilled pages back, rewrite and spill them
 * again), aborts some txns, and readers that check every value they read.
 * The cipher is installed as memsilo installs its own (mdb_env_encrypt_pend: a
 * context, pages sealed in place, the context released once at close; checked),
 * or with "copy" as heed3 installs its function (mdb_env_set_encrypt alone: a
 * copy of the key, pages sealed into a page of their own).
 * `make test-lmdb-cache` builds and runs it, also under ThreadSanitizer.
 * Usage: rpage_cache DIR SECONDS [copy]; exits 1 if any value read was wrong,
 * or the cipher was not called as installed. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lmdb.h"

#define KEYS 3000
#define BATCH 600
#define READERS 4
static int stop, pend;
static long failures, reads, commits, decs, misuses, releases;
/* the context of mdb_env_encrypt_pend: the key first, where enc reads it */
static struct { uint64_t key; } ctx = {0x0102030405060708ull};
static void release(void *c) { if (c != &ctx) misuses++; releases++; }

static uint64_t mix(uint64_t x) { x += 0x9e3779b97f4a7c15ull; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; x = (x ^ (x >> 27)) * 0x94d049bb133111ebull; return x ^ (x >> 31); }

/* a cipher (not a secure one) that, like heed3's, copies the ciphertext into dst
 * and decrypts it there, with an 8-byte tag in the env's 16 bytes of auth data */
static int enc(const MDB_val *src, MDB_val *dst, const MDB_val *key, int encdec)
{
	uint64_t iv[2], h = 0, kk = *(uint64_t *)key[0].mv_data;
	unsigned char *d = dst->mv_data; size_t i;
	/* as installed: memsilo's context, pages sealed where they are written from;
	 * heed3's copy of the key, pages sealed into a page of their own */
	if (pend ? key[0].mv_data != &ctx || key[0].mv_size || (encdec && src->mv_data != dst->mv_data)
		: key[0].mv_size != 8 || (encdec && src->mv_data == dst->mv_data))
		__atomic_fetch_add(&misuses, 1, __ATOMIC_RELAXED);
	memcpy(iv, key[1].mv_data, 16);
	if (!encdec) { __atomic_fetch_add(&decs, 1, __ATOMIC_RELAXED); memcpy(d, src->mv_data, src->mv_size); }
	for (i = 0; i < src->mv_size; i++) {
		unsigned char c = encdec ? ((unsigned char *)src->mv_data)[i] : d[i];
		unsigned char k = (unsigned char)(mix(kk ^ iv[0] * 31 ^ iv[1] * 131 ^ (i >> 3)) >> (8 * (i & 7)));
		unsigned char p = encdec ? c : (unsigned char)(c ^ k);
		d[i] = encdec ? (unsigned char)(c ^ k) : p;
		h = mix(h ^ p ^ (i << 8));
	}
	h = mix(h ^ iv[0] ^ iv[1] << 1);
	if (encdec) { memcpy(key[2].mv_data, &h, 8); memset((char *)key[2].mv_data + 8, 0, 8); return 0; }
	return memcmp(key[2].mv_data, &h, 8) ? -1 : 0;
}

static size_t vlen(unsigned k, unsigned r) { return k >= KEYS ? 3000 : k % 7 == 0 ? 5000 + (k % 4) * 3000 : 40 + (k * 13 + r * 7) % 400; }
static void mkval(unsigned k, unsigned r, unsigned char *v, size_t *n)
{
	size_t i, len = vlen(k, r); uint32_t x = k * 2654435761u ^ r * 40503u;
	memcpy(v, &k, 4); memcpy(v + 4, &r, 4);
	for (i = 8; i < len; i++) { x = x * 1664525u + 1013904223u; v[i] = x >> 24; }
	*n = len;
}
static int checkval(MDB_val *key, MDB_val *val, int want)
{
	unsigned char buf[20000]; size_t n; unsigned k, r;
	if (key->mv_size != 4 || val->mv_size < 8) return -1;
	memcpy(&k, key->mv_data, 4); memcpy(&r, (char *)val->mv_data + 4, 4);
	if (want >= 0 && (unsigned)want != r) return -2;
	mkval(k, r, buf, &n);
	return (n == val->mv_size && !memcmp(buf, val->mv_data, n)) ? 0 : -3;
}

static MDB_env *env; static MDB_dbi dbi;
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED); } while (0)

static void *reader(void *arg)
{
	uint64_t s = (uintptr_t)arg * 7777;
	MDB_txn *txn; MDB_cursor *c; MDB_val k, v; int rc, i;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) { FAIL("begin %s\n", mdb_strerror(rc)); break; }
		if ((s = mix(s)) % 4 == 0) {
			mdb_cursor_open(txn, dbi, &c);
			while (!(rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))) { if (checkval(&k, &v, -1)) FAIL("scan garbled\n"); }
			if (rc != MDB_NOTFOUND) FAIL("scan %s\n", mdb_strerror(rc));
			mdb_cursor_close(c);
		} else for (i = 0; i < 200; i++) {
			unsigned key = (s = mix(s)) % (KEYS + BATCH);
			k.mv_data = &key; k.mv_size = 4;
			rc = mdb_get(txn, dbi, &k, &v);
			if (rc == 0) { if (checkval(&k, &v, -1)) FAIL("reader garbled key %u\n", key); }
			else if (rc != MDB_NOTFOUND) FAIL("get %s\n", mdb_strerror(rc));
		}
		mdb_txn_abort(txn);
		__atomic_fetch_add(&reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static unsigned committed[KEYS + BATCH], cur[KEYS + BATCH];

static void writer(double secs)
{
	uint64_t s = 1; MDB_txn *txn; MDB_val k, v; unsigned char buf[20000]; size_t n; int rc, i;
	struct timespec t0, t; unsigned round = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		/* and 20 commits at least, however loaded the machine */
		if (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs && commits >= 20) break;
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) { FAIL("wbegin %s\n", mdb_strerror(rc)); return; }
		memcpy(cur, committed, sizeof cur);
		int ops = 200 + (s = mix(s)) % 3000;
		if ((s = mix(s)) % 2 == 0) {
			/* a spill round: past the dirty list, read spilled values back, rewrite them, again */
			int it, step = 2 + (s >> 20) % 6;
			ops = 0;
			for (it = 0; it < 4; it++) {
				for (i = 0; i < BATCH; i++) {
					unsigned key = KEYS + i;
					if (it && i % step == 0) {
						k.mv_data = &key; k.mv_size = 4;
						rc = mdb_get(txn, dbi, &k, &v);
						if (rc || checkval(&k, &v, cur[key])) FAIL("spill round %d: key %u wrong (want round %u) rc %d\n", it, key, cur[key], rc);
					}
					if (it == 0 || i % step == 0 || (s = mix(s)) % 2) {
						round++;
						mkval(key, round, buf, &n); v.mv_data = buf; v.mv_size = n; k.mv_data = &key; k.mv_size = 4;
						if ((rc = mdb_put(txn, dbi, &k, &v, 0))) { FAIL("put %s\n", mdb_strerror(rc)); break; }
						cur[key] = round;
					}
				}
			}
		}
		for (i = 0; i < ops; i++) {
			unsigned key = (s = mix(s)) % KEYS, op = (s >> 32) % 10;
			k.mv_data = &key; k.mv_size = 4;
			if (op < 5) {
				round++;
				mkval(key, round, buf, &n); v.mv_data = buf; v.mv_size = n;
				if ((rc = mdb_put(txn, dbi, &k, &v, 0))) { FAIL("put %s\n", mdb_strerror(rc)); break; }
				cur[key] = round;
			} else if (op < 6) {
				rc = mdb_del(txn, dbi, &k, NULL);
				if (rc && rc != MDB_NOTFOUND) { FAIL("del %s\n", mdb_strerror(rc)); break; }
				cur[key] = 0;
			} else {
				rc = mdb_get(txn, dbi, &k, &v);
				if (rc == MDB_NOTFOUND) { if (cur[key]) FAIL("writer: key %u missing, want round %u\n", key, cur[key]); }
				else if (rc) { FAIL("wget %s\n", mdb_strerror(rc)); break; }
				else if (checkval(&k, &v, cur[key])) FAIL("writer: key %u wrong (want round %u)\n", key, cur[key]);
			}
		}
		if ((s = mix(s)) % 8 == 0) { mdb_txn_abort(txn); continue; }
		if ((rc = mdb_txn_commit(txn))) { FAIL("commit %s\n", mdb_strerror(rc)); return; }
		memcpy(committed, cur, sizeof cur);
		commits++;
		/* a fresh txn checks everything committed */
		if ((s = mix(s)) % 16 == 0) {
			mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
			for (i = 0; i < KEYS + BATCH; i++) {
				unsigned key = i; k.mv_data = &key; k.mv_size = 4;
				rc = mdb_get(txn, dbi, &k, &v);
				if (rc == MDB_NOTFOUND) { if (committed[i]) FAIL("after commit: key %u missing\n", i); }
				else if (rc || checkval(&k, &v, committed[i])) FAIL("after commit: key %u wrong\n", i);
			}
			mdb_txn_abort(txn);
		}
	}
}

int main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 2;
	uint64_t keyb = ctx.key; MDB_val key = {8, &keyb}; MDB_txn *txn; pthread_t th[READERS]; int i, rc;
	pend = !(argc > 3 && !strcmp(argv[3], "copy"));
	if (pend && mdb_env_encrypt_pend(enc, &ctx, release)) { fprintf(stderr, "pend\n"); return 2; }
	mdb_env_create(&env);
	mdb_env_set_encrypt(env, enc, &key, 16);
	if (mdb_env_encrypt_unpend()) { fprintf(stderr, "not taken\n"); return 2; }
	mdb_env_set_mapsize(env, 1ul << 30);
	mdb_env_set_maxreaders(env, 64);
	if ((rc = mdb_env_open(env, argv[1], MDB_NOSYNC | MDB_NOTLS, 0644))) { fprintf(stderr, "open %s\n", mdb_strerror(rc)); return 2; }
	mdb_txn_begin(env, NULL, 0, &txn); mdb_dbi_open(txn, NULL, 0, &dbi); mdb_txn_commit(txn);
	for (i = 0; i < READERS; i++) pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	writer(secs);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < READERS; i++) pthread_join(th[i], NULL);
	mdb_env_close(env);
	if (releases != pend) { fprintf(stderr, "released %ld times\n", releases); failures++; }
	if (misuses) { fprintf(stderr, "%ld calls not as installed\n", misuses); failures++; }
	printf("failures %ld reads %ld commits %ld decrypts %ld (%s)\n", failures, reads, commits, decs,
		pend ? "mdb_env_encrypt_pend" : "copy");
	return failures ? 1 : 0;
}
