/* What a commit's page writes cost the kernel, without LMDB (README, issue #16): a
 * file of 100,000 pages of 4 KiB written once and read through a shared mapping, as
 * LMDB's data.mdb is, then 20 "commits" of 2,475 pages (an upsert batch of 1,000 at
 * 100k) each followed by fdatasync, the pages either scattered over the file (one
 * pwrite each, as mdb_page_flush writes pages whose numbers are not consecutive) or
 * one run of consecutive pages (pwritev of 64 pages, as it writes a run). The file is
 * first written either in 256 KiB writes (the page cache then holds it in large
 * folios, as it holds runs LMDB wrote) or page by page and mapped with MADV_RANDOM
 * (single-page folios). Prints the process's kernel CPU per page written and the
 * wall time per commit. Usage: write_cost DIR scatter|run large|small */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PS 4096
#define PAGES 100000L
#define DIRTY 2475
#define COMMITS 20
#define IOV 64

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

static double secs(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv)
{
	char path[4096], *buf, *map, *pages;
	struct iovec iov[IOV];
	struct rusage r0, r1;
	struct timespec w0, w1;
	long pg[DIRTY], i, calls = 0;
	volatile long sum = 0;
	int fd, c, scatter, large;

	if (argc != 4) {
		fprintf(stderr, "usage: write_cost DIR scatter|run large|small\n");
		return 2;
	}
	scatter = !strcmp(argv[2], "scatter");
	large = !strcmp(argv[3], "large");
	snprintf(path, sizeof(path), "%s/write_cost.dat", argv[1]);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) {
		perror(path);
		return 1;
	}
	buf = malloc(IOV * PS);
	memset(buf, 7, IOV * PS);
	for (i = 0; i < PAGES; i += large ? IOV : 1)
		if (pwrite(fd, buf, large ? IOV * PS : PS, i * PS) < 0) {
			perror("pwrite");
			return 1;
		}
	fdatasync(fd);
	map = mmap(NULL, PAGES * PS, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (!large)
		madvise(map, PAGES * PS, MADV_RANDOM);
	for (i = 0; i < PAGES; i++)
		sum += map[i * PS];
	pages = malloc((size_t)DIRTY * PS);
	memset(pages, 9, (size_t)DIRTY * PS);
	srand(1);
	getrusage(RUSAGE_SELF, &r0);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	for (c = 0; c < COMMITS; c++) {
		if (scatter) {
			for (i = 0; i < DIRTY; i++)
				pg[i] = (long)rand() % PAGES;
			qsort(pg, DIRTY, sizeof(long), cmp);
			for (i = 0; i < DIRTY; i++, calls++)
				if (pwrite(fd, pages + i * PS, PS, pg[i] * PS) != PS) {
					perror("pwrite");
					return 1;
				}
		} else {
			long base = (long)rand() % (PAGES - DIRTY);
			for (i = 0; i < DIRTY; i += IOV, calls++) {
				int k, n = DIRTY - i < IOV ? (int)(DIRTY - i) : IOV;
				for (k = 0; k < n; k++) {
					iov[k].iov_base = pages + (i + k) * PS;
					iov[k].iov_len = PS;
				}
				if (pwritev(fd, iov, n, (base + i) * PS) != (ssize_t)n * PS) {
					perror("pwritev");
					return 1;
				}
			}
		}
		fdatasync(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &w1);
	getrusage(RUSAGE_SELF, &r1);
	printf("%-7s pages, %-5s folios: %4ld write calls a commit, kernel %5.2f us a page, wall %5.1f ms a commit\n",
		argv[2], argv[3], calls / COMMITS,
		(secs(r1.ru_stime) - secs(r0.ru_stime)) * 1e6 / (COMMITS * DIRTY),
		((w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9) * 1e3 / COMMITS);
	unlink(path);
	return 0;
}
