/* A check of mdb.c's page allocation (PATCHES.md, ninth change): after every
 * commit of a random workload, every page of the file is in exactly one place —
 * a page of a tree (the free list's, the main DB's, a named DB's, an overflow
 * range) or a page number in the free list — and none is left out: the check of
 * LMDB's own mdb_audit (pages in use + free == last page), by page number rather
 * than by count, so a page handed out twice or lost is named. The workload: two
 * named DBs, small txns (a few puts) and large ones (nested txns of hundreds of
 * puts and deletes, some committed, some aborted; some top-level txns aborted),
 * read txns held across several commits whose snapshot must read the same at
 * the end, MDB_MAP_FULL met and the map grown; every value read checked against
 * a model; plain or encrypted (tests/stand_in_cipher.h). It includes mdb.c to walk the pages.
 * Prints the pages the large commits wrote and in how many runs of consecutive
 * pages, and the file's size. `make test-lmdb-alloc` runs it.
 * Usage: alloc_audit DIR plain|enc COMMITS [SEED]; exits 1 on any failure. */
#include "mdb.c"
#include "midl.c"
#include "stand_in_cipher.h"

#define KEYS 30000
static long failures;
#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); failures++; } while (0)

/* value of key k at version r in DB d: 40-400 bytes, every 50th key 5-14 KB (overflow pages) */
static size_t vlen(unsigned d, unsigned k, unsigned r) { return d ? 16 : k % 50 == 0 ? 5000 + (r % 4) * 3000 : 40 + (k * 13 + r * 7) % 360; }
static void mkval(unsigned d, unsigned k, unsigned r, unsigned char *v, size_t *n)
{
	size_t i, len = vlen(d, k, r); uint32_t x = k * 2654435761u ^ r * 40503u ^ d;
	memcpy(v, &k, 4); memcpy(v + 4, &r, 4);
	for (i = 8; i < len; i++) { x = x * 1664525u + 1013904223u; v[i] = x >> 24; }
	*n = len;
}

static MDB_env *env; static MDB_dbi dbs[2];
/* versions (0 = absent): committed, the top txn's, each nested txn's */
static unsigned committed[2][KEYS], top[2][KEYS], child[2][KEYS];

/* every key of both DBs as the model says, and a hash of everything read */
static uint64_t check_all(MDB_txn *txn, unsigned (*want)[KEYS], const char *what)
{
	unsigned char buf[20000]; size_t n; uint64_t h = 0; unsigned d, k, r; MDB_cursor *c; MDB_val key, val; int rc;
	for (d = 0; d < 2; d++) {
		unsigned seen = 0;
		if ((rc = mdb_cursor_open(txn, dbs[d], &c))) { FAIL("%s: cursor %s\n", what, mdb_strerror(rc)); return 0; }
		while (!(rc = mdb_cursor_get(c, &key, &val, MDB_NEXT))) {
			memcpy(&k, key.mv_data, 4); memcpy(&r, (char *)val.mv_data + 4, 4);
			mkval(d, k, r, buf, &n);
			if (key.mv_size != 4 || k >= KEYS || n != val.mv_size || memcmp(buf, val.mv_data, n))
				FAIL("%s: db %u key %u garbled\n", what, d, k);
			else if (want && want[d][k] != r)
				FAIL("%s: db %u key %u at version %u, want %u\n", what, d, k, r, want[d][k]);
			h = mix(h ^ ((uint64_t)d << 62 | (uint64_t)k << 32 | r));
			seen++;
		}
		if (rc != MDB_NOTFOUND) FAIL("%s: scan %s\n", what, mdb_strerror(rc));
		mdb_cursor_close(c);
		if (want) {
			unsigned present = 0;
			for (k = 0; k < KEYS; k++) present += want[d][k] != 0;
			if (present != seen) FAIL("%s: db %u has %u keys, want %u\n", what, d, seen, present);
		}
	}
	return h;
}

/* The page walk: seen[p] counts the places page p is in */
static unsigned char *seen; static pgno_t npages; static long dups, outside;
static pgno_t *written; static size_t nwritten, capwritten; static txnid_t last_txnid;

static void mark(pgno_t p, pgno_t n, txnid_t wrote)
{
	pgno_t i;
	for (i = p; i < p + n; i++) {
		if (i < NUM_METAS || i >= npages) { outside++; continue; }
		if (seen[i]++) dups++;
	}
	if (wrote == last_txnid) {
		if (nwritten + n > capwritten) { capwritten = (capwritten + n) * 2; written = realloc(written, capwritten * sizeof *written); }
		for (i = p; i < p + n; i++) written[nwritten++] = i;
	}
}

static int walk(MDB_cursor *mc, pgno_t pg)
{
	MDB_page *mp; unsigned i; int rc;
	if ((rc = MDB_PAGE_GET(mc, pg, 1, &mp))) { FAIL("walk: page %" Yu ": %s\n", pg, mdb_strerror(rc)); return rc; }
	mark(pg, 1, mp->mp_txnid);
	for (i = 0; !rc && i < NUMKEYS(mp); i++) {
		MDB_node *node = NODEPTR(mp, i);
		if (IS_BRANCH(mp)) {
			rc = walk(mc, NODEPGNO(node));
		} else if (IS_LEAF2(mp)) {
			break;
		} else if (node->mn_flags & F_BIGDATA) {
			MDB_ovpage ov; MDB_page *op;
			memcpy(&ov, NODEDATA(node), sizeof ov);
			if ((rc = MDB_PAGE_GET(mc, ov.op_pgno, ov.op_pages, &op))) { FAIL("walk: overflow %" Yu ": %s\n", ov.op_pgno, mdb_strerror(rc)); break; }
			mark(ov.op_pgno, ov.op_pages, op->mp_txnid);
			MDB_PAGE_UNREF(mc->mc_txn, op);
		} else if (node->mn_flags & F_SUBDATA) {
			MDB_db db;
			memcpy(&db, NODEDATA(node), sizeof db);
			if (db.md_root != P_INVALID) rc = walk(mc, db.md_root);
		}
	}
	MDB_PAGE_UNREF(mc->mc_txn, mp);
	return rc;
}

static int pgcmp(const void *a, const void *b) { pgno_t x = *(const pgno_t *)a, y = *(const pgno_t *)b; return x < y ? -1 : x > y; }

/* After a commit: every page in exactly one place. Returns the pages the commit
 * wrote and sets *runs to their runs of consecutive pages. */
static size_t audit(size_t *runs)
{
	MDB_txn *txn; MDB_cursor mc, *fc; MDB_val key, val; pgno_t p; size_t i; int rc; long missing = 0;
	*runs = 0;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) { FAIL("audit begin %s\n", mdb_strerror(rc)); return 0; }
	npages = txn->mt_next_pgno; last_txnid = txn->mt_txnid;
	seen = calloc(npages, 1); dups = outside = 0; nwritten = 0;
	/* the free list's page numbers */
	mdb_cursor_open(txn, FREE_DBI, &fc);
	while (!(rc = mdb_cursor_get(fc, &key, &val, MDB_NEXT))) {
		MDB_ID *idl = val.mv_data, j;
		for (j = 1; j <= idl[0]; j++) mark(idl[j], 1, 0);
	}
	if (rc != MDB_NOTFOUND) FAIL("audit: free list %s\n", mdb_strerror(rc));
	mdb_cursor_close(fc);
	/* the trees: the free list's own, the main DB's and through it the named DBs' */
	for (i = FREE_DBI; i <= MAIN_DBI; i++) {
		mdb_cursor_init(&mc, txn, i, NULL);
		if (txn->mt_dbs[i].md_root != P_INVALID) walk(&mc, txn->mt_dbs[i].md_root);
	}
	for (p = NUM_METAS; p < npages; p++) missing += !seen[p];
	if (dups || outside || missing)
		FAIL("audit txn %" Yu ": %ld pages in two places, %ld outside the file, %ld in none (of %" Yu ")\n",
			last_txnid, dups, outside, missing, npages);
	mdb_txn_abort(txn);
	free(seen);
	qsort(written, nwritten, sizeof *written, pgcmp);
	for (i = 0, *runs = 0; i < nwritten; i++) *runs += !i || written[i] != written[i - 1] + 1;
	return nwritten;
}

struct held { MDB_txn *txn; uint64_t hash; int until; };

int main(int argc, char **argv)
{
	int encrypted = argc > 2 && !strcmp(argv[2], "enc"), commits = argc > 3 ? atoi(argv[3]) : 300, done = 0, aborted = 0, fulls = 0, i, rc, nheld = 0;
	uint64_t s = argc > 4 ? strtoull(argv[4], NULL, 10) : 1, keyb[4] = {1, 2, 3, 4};
	MDB_val ekey = {32, keyb}; MDB_txn *txn, *ch; struct held held[4];
	size_t mapsize = 16 << 20, large_pages = 0, large_runs = 0, large = 0;
	unsigned char buf[20000]; size_t n;

	if (argc < 3) { fprintf(stderr, "usage: alloc_audit DIR plain|enc COMMITS [SEED]\n"); return 2; }
	mdb_env_create(&env);
	if (encrypted) mdb_env_set_encrypt(env, enc, &ekey, 16);
	mdb_env_set_mapsize(env, mapsize);
	mdb_env_set_maxdbs(env, 4);
	if ((rc = mdb_env_open(env, argv[1], MDB_NOSYNC | MDB_NOTLS, 0644))) { fprintf(stderr, "open %s\n", mdb_strerror(rc)); return 2; }
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, "a", MDB_CREATE, &dbs[0]); mdb_dbi_open(txn, "b", MDB_CREATE, &dbs[1]);
	mdb_txn_commit(txn);

	while (done < commits && failures < 20) {
		int big = (s = mix(s)) % 5 < 2, children = big ? 1 + (s >> 8) % 5 : 1, c, full = 0;
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) { FAIL("begin %s\n", mdb_strerror(rc)); break; }
		memcpy(top, committed, sizeof top);
		for (c = 0; c < children && !full; c++) {
			int ops = big ? 300 + (s = mix(s)) % 1200 : 1 + (s = mix(s)) % 10, o;
			MDB_txn *w = txn;
			if (big) { if ((rc = mdb_txn_begin(env, txn, 0, &ch))) { FAIL("child %s\n", mdb_strerror(rc)); break; } w = ch; }
			memcpy(child, top, sizeof child);
			for (o = 0; o < ops; o++) {
				unsigned k = (s = mix(s)) % KEYS, d = (s >> 40) % 4 == 0, op = (s >> 20) % 10; MDB_val key = {4, &k}, val;
				if (op < 7) {
					unsigned r = (unsigned)(s >> 44) | 1;
					mkval(d, k, r, buf, &n); val.mv_size = n; val.mv_data = buf;
					rc = mdb_put(w, dbs[d], &key, &val, 0);
					if (!rc) child[d][k] = r;
				} else if (op < 9) {
					rc = mdb_del(w, dbs[d], &key, NULL);
					if (rc == MDB_NOTFOUND) { if (child[d][k]) FAIL("del: db %u key %u missing\n", d, k); rc = 0; }
					else if (!rc) child[d][k] = 0;
				} else {
					rc = mdb_get(w, dbs[d], &key, &val);
					if (rc == MDB_NOTFOUND) { if (child[d][k]) FAIL("get: db %u key %u missing\n", d, k); rc = 0; }
					else if (!rc) {
						unsigned r; memcpy(&r, (char *)val.mv_data + 4, 4); mkval(d, k, r, buf, &n);
						if (r != child[d][k] || n != val.mv_size || memcmp(buf, val.mv_data, n)) FAIL("get: db %u key %u wrong\n", d, k);
					}
				}
				if (rc == MDB_MAP_FULL) { full = 1; break; }
				if (rc) { FAIL("op %s\n", mdb_strerror(rc)); break; }
			}
			if (!big) { memcpy(top, child, sizeof top); break; }
			if (full || (s = mix(s)) % 5 == 0) { mdb_txn_abort(ch); continue; }
			if ((rc = mdb_txn_commit(ch))) { if (rc == MDB_MAP_FULL) { full = 1; break; } FAIL("child commit %s\n", mdb_strerror(rc)); break; }
			memcpy(top, child, sizeof top);
		}
		if (!full && (s = mix(s)) % 10 == 0) { mdb_txn_abort(txn); aborted++; continue; }
		if (!full && (rc = mdb_txn_commit(txn))) { if (rc != MDB_MAP_FULL) { FAIL("commit %s\n", mdb_strerror(rc)); break; } full = 1; }
		else if (full) mdb_txn_abort(txn);
		if (full) {
			/* as memsilo does: the map grows, the write is tried again later */
			for (i = 0; i < nheld; i++) {
				if (check_all(held[i].txn, NULL, "held snapshot") != held[i].hash) FAIL("a held snapshot changed\n");
				mdb_txn_abort(held[i].txn);
			}
			nheld = 0; fulls++;
			if ((rc = mdb_env_set_mapsize(env, mapsize *= 2))) { FAIL("mapsize %s\n", mdb_strerror(rc)); break; }
			continue;
		}
		memcpy(committed, top, sizeof committed);
		done++;
		{
			size_t runs, pages = audit(&runs);
			if (big) { large++; large_pages += pages; large_runs += runs; }
		}
		if (done % 10 == 0) {
			mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
			check_all(txn, committed, "after commit");
			mdb_txn_abort(txn);
		}
		/* snapshots held across commits: their pages must not be reused */
		for (i = 0; i < nheld; i++) {
			if (--held[i].until > 0) continue;
			if (check_all(held[i].txn, NULL, "held snapshot") != held[i].hash) FAIL("a held snapshot changed\n");
			mdb_txn_abort(held[i].txn);
			held[i--] = held[--nheld];
		}
		if (nheld < 4 && (s = mix(s)) % 3 == 0) {
			mdb_txn_begin(env, NULL, MDB_RDONLY, &held[nheld].txn);
			held[nheld].hash = check_all(held[nheld].txn, committed, "new snapshot");
			held[nheld].until = 1 + (s >> 16) % 8;
			nheld++;
		}
	}
	for (i = 0; i < nheld; i++) {
		if (check_all(held[i].txn, NULL, "held snapshot") != held[i].hash) FAIL("a held snapshot changed\n");
		mdb_txn_abort(held[i].txn);
	}
	{
		MDB_envinfo info; mdb_env_info(env, &info);
		printf("%s: %d commits (%zu large: %.0f pages, %.0f runs a commit), %d aborted, %d map full; %" Yu " pages; failures %ld\n",
			encrypted ? "enc" : "plain", done, large, large ? (double)large_pages / large : 0, large ? (double)large_runs / large : 0,
			aborted, fulls, info.me_last_pgno + 1, failures);
	}
	mdb_env_close(env);
	free(written);
	return failures ? 1 : 0;
}
