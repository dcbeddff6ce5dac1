/* A check of mdb.c's thirteenth change (PATCHES.md): a commit's save of the free
 * list does not spill the txn's dirty pages. mdb_freelist_save sets mt_dirty_room
 * to 0 before it fills in the free-list records it reserved, and the put that fills
 * each (MDB_CURRENT) checked the room (mdb_page_spill), found none, and wrote every
 * dirty page out, a flush of its own before the commit's. A txn that takes free
 * pages and frees others (so that pages are left to save) calls mdb_freelist_save
 * as its commit would and must not have spilled (MDB_TXN_SPILLS); then the same
 * work is committed and every value read back, plain or encrypted
 * (tests/stand_in_cipher.h). It includes mdb.c to call mdb_freelist_save.
 * `make test-lmdb-alloc` runs it.
 * Usage: commit_spill DIR plain|enc; exits 1 on any failure. */
#include "mdb.c"
#include "midl.c"
#include "stand_in_cipher.h"

#define KEYS 40000
static long failures;
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); failures++; } while (0)

static MDB_env *env; static MDB_dbi dbi;

/* key k, 4 bytes scrambled so that puts land all over the tree; value of key k at
 * version r: 100 bytes */
static void mk(unsigned k, unsigned r, uint32_t *key, unsigned char *v)
{
	unsigned i; uint32_t x = k * 2654435761u ^ r;
	*key = k * 2654435761u;
	memcpy(v, &k, 4); memcpy(v + 4, &r, 4);
	for (i = 8; i < 100; i++) { x = x * 1664525u + 1013904223u; v[i] = x >> 24; }
}

static int put(MDB_txn *txn, unsigned k, unsigned r)
{
	uint32_t key; unsigned char v[100]; MDB_val kv = {4, &key}, vv = {100, v};
	mk(k, r, &key, v);
	return mdb_put(txn, dbi, &kv, &vv, 0);
}

static int del(MDB_txn *txn, unsigned k)
{
	uint32_t key = k * 2654435761u; MDB_val kv = {4, &key};
	return mdb_del(txn, dbi, &kv, NULL);
}

/* the work of the txn checked: rewrites every third key (pages copied: the old
 * ones freed, free pages taken) and deletes every seventh */
static int work(MDB_txn *txn, unsigned r)
{
	unsigned k; int rc = 0;
	for (k = 0; k < KEYS && !rc; k += 3) rc = put(txn, k, r);
	for (k = 1; k < KEYS && !rc; k += 7) rc = del(txn, k);
	return rc;
}

static unsigned version(unsigned k, int done)
{
	if (done && k % 7 == 1) return 0;
	return done && k % 3 == 0 ? 3 : 1;
}

int main(int argc, char **argv)
{
	MDB_txn *txn; MDB_val ekey = {32, "0123456789abcdef0123456789abcdef"};
	unsigned k; int rc, encrypted;
	if (argc < 3) { fprintf(stderr, "usage: commit_spill DIR plain|enc\n"); return 2; }
	encrypted = !strcmp(argv[2], "enc");
	mdb_env_create(&env);
	if (encrypted) mdb_env_set_encrypt(env, enc, &ekey, 16);
	mdb_env_set_mapsize(env, 1ul << 30);
	if ((rc = mdb_env_open(env, argv[1], MDB_NOSYNC, 0644))) { fprintf(stderr, "open: %s\n", mdb_strerror(rc)); return 1; }

	/* every key at version 1, then put again in three txns, each of which
	 * copies every leaf and frees the old copies (more pages than the txn
	 * checked takes); then two small commits, so that those are free for the
	 * txn checked (no snapshot holds them) */
	for (rc = 0; rc < 4; rc++) {
		int r;
		mdb_txn_begin(env, NULL, 0, &txn);
		if (!rc) mdb_dbi_open(txn, NULL, 0, &dbi);
		for (k = 0; k < KEYS; k++) if ((r = put(txn, k, 1))) { fprintf(stderr, "put: %s\n", mdb_strerror(r)); return 1; }
		if ((r = mdb_txn_commit(txn))) { fprintf(stderr, "commit: %s\n", mdb_strerror(r)); return 1; }
	}
	for (k = 0; k < 2; k++) {
		mdb_txn_begin(env, NULL, 0, &txn);
		if ((rc = put(txn, 5 + k, 1)) || (rc = mdb_txn_commit(txn))) { fprintf(stderr, "small commit: %s\n", mdb_strerror(rc)); return 1; }
	}

	/* the save of the free list, as the commit calls it */
	mdb_txn_begin(env, NULL, 0, &txn);
	if ((rc = work(txn, 2))) { fprintf(stderr, "work: %s\n", mdb_strerror(rc)); return 1; }
	if ((rc = mdb_freelist_save(txn))) FAIL("mdb_freelist_save: %s\n", mdb_strerror(rc));
	/* (what is left of the free pages it loaded, saved by the puts checked) */
	if (!env->me_pghead || !env->me_pghead[0])
		FAIL("the txn left no free pages to save: nothing checked\n");
	if (txn->mt_flags & MDB_TXN_SPILLS)
		FAIL("saving the free list spilled the txn's dirty pages\n");
	printf("%s: %u free pages saved, %u dirty pages, %s\n", argv[2],
		env->me_pghead ? (unsigned)env->me_pghead[0] : 0, (unsigned)txn->mt_u.dirty_list[0].mid,
		txn->mt_flags & MDB_TXN_SPILLS ? "spilled" : "not spilled");
	mdb_txn_abort(txn);

	/* the same work committed, and read back */
	mdb_txn_begin(env, NULL, 0, &txn);
	if ((rc = work(txn, 3)) || (rc = mdb_txn_commit(txn))) { fprintf(stderr, "commit: %s\n", mdb_strerror(rc)); return 1; }
	mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	for (k = 0; k < KEYS; k++) {
		uint32_t key; unsigned char v[100]; MDB_val kv = {4, &key}, vv;
		unsigned want = version(k, 1);
		mk(k, want ? want : 1, &key, v);
		rc = mdb_get(txn, dbi, &kv, &vv);
		if (!want) { if (rc != MDB_NOTFOUND) FAIL("key %u: deleted, read %s\n", k, mdb_strerror(rc)); }
		else if (rc) FAIL("key %u: %s\n", k, mdb_strerror(rc));
		else if (vv.mv_size != 100 || memcmp(vv.mv_data, v, 100)) FAIL("key %u: wrong value\n", k);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	if (failures) { fprintf(stderr, "%ld failures\n", failures); return 1; }
	return 0;
}
