/* The stand-in cipher (not a secure one) and random numbers of tests/alloc_audit.c
 * (those tests/rpage_cache.c had before it installed its cipher the memsilo way). Like heed3's, it copies the
 * ciphertext into dst and decrypts it there, with an 8-byte tag in the env's 16 bytes
 * of auth data; stand_in_decrypts counts its decryptions. */
#include <stdint.h>
#include <string.h>
#include "lmdb.h"

static long stand_in_decrypts;

static uint64_t mix(uint64_t x) { x += 0x9e3779b97f4a7c15ull; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; x = (x ^ (x >> 27)) * 0x94d049bb133111ebull; return x ^ (x >> 31); }

static int enc(const MDB_val *src, MDB_val *dst, const MDB_val *key, int encdec)
{
	uint64_t iv[2], h = 0, kk = *(uint64_t *)key[0].mv_data;
	unsigned char *d = dst->mv_data; size_t i;
	memcpy(iv, key[1].mv_data, 16);
	if (!encdec) { __atomic_fetch_add(&stand_in_decrypts, 1, __ATOMIC_RELAXED); memcpy(d, src->mv_data, src->mv_size); }
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
