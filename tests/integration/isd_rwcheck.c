/* isd_rwcheck: writes a file to an iSCSI LUN and/or reads a range of it back
 * into a file, with libiscsi, so that the test script can compare with cmp.
 * Built by tests/integration/test_libiscsi_tools.sh into a temp dir:
 *   gcc -O1 -o isd_rwcheck isd_rwcheck.c -liscsi
 * Usage: isd_rwcheck [-i iqn] [-l lba] [-c chunk] [-w infile] [-r outfile -n bytes] [-s] [-F]
 *                    [-u N] [-U N] URL
 *   -w  writes infile at LBA -l in chunks of -c bytes (WRITE(10), WRITE(16) past 2^32)
 *   -r  reads -n bytes (default: size of the -w file) from LBA -l into outfile (READ(16))
 *   -s  SYNCHRONIZE CACHE(10) after writing
 *   -F  every write with FUA set
 *   -U  UNMAP N blocks from LBA -l (one command per 8192 blocks), nothing else
 *   -C  COMPARE AND WRITE check of N blocks at LBA -l: a matching CAW writes, a
 *       CAW that differs at byte 300 gets MISCOMPARE with INFORMATION 300 and
 *       writes nothing
 *   -W  WRITE SAME(16) check: one patterned block to N blocks at LBA -l, read back
 *   -G  GET LBA STATUS with allocation length N from LBA -l to the end of the LUN, one
 *       command after the other (each from where the last answer ended): prints
 *       "lbas LBA BLOCKS STATUS" per descriptor (0 mapped, 1 deallocated), then
 *       "lbas-commands N"
 *   -u  UNMAP check, N rounds: WRITE(16) 'a' to N blocks at LBA -l, then for i = 1..N UNMAP
 *       blocks 0..i-1 and READ(10) them into a buffer filled with 0x77: all must read zero
 *       (the LUN reports LBPRZ); the first bad round is printed byte by byte
 * Exit 0 when every command returned GOOD and every read returned all its data.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

static int task_ok(struct iscsi_context *iscsi, struct scsi_task *t, const char *what,
		   uint64_t lba);

/* -u: UNMAP then READ must give zeros, round after round */
static int
unmap_check(struct iscsi_context *iscsi, int lun, uint64_t lba, uint32_t bs, int rounds)
{
	size_t max = (size_t)rounds * bs;
	unsigned char *w = malloc(max), *r = malloc(max);
	struct scsi_task *t;
	int bad = 0;

	if (w == NULL || r == NULL)
		return 1;
	memset(w, 'a', max);
	t = iscsi_write16_sync(iscsi, lun, lba, w, (uint32_t)max, bs, 0, 0, 0, 0, 0);
	if (!task_ok(iscsi, t, "WRITE(16)", lba))
		return 1;
	scsi_free_scsi_task(t);
	for (int i = 1; i <= rounds; i++) {
		struct unmap_list l = { lba, (uint32_t)i };
		struct scsi_iovec v = { r, (size_t)i * bs };

		t = iscsi_unmap_sync(iscsi, lun, 0, 0, &l, 1);
		if (!task_ok(iscsi, t, "UNMAP", lba))
			return 1;
		scsi_free_scsi_task(t);
		memset(r, 0x77, max);
		t = iscsi_read10_iov_sync(iscsi, lun, (uint32_t)lba, (uint32_t)i * bs, bs, 0, 0, 0, 0,
					  0, &v, 1);
		if (!task_ok(iscsi, t, "READ(10)", lba))
			return 1;
		scsi_free_scsi_task(t);
		for (size_t k = 0; k < (size_t)i * bs; k++) {
			if (r[k] == 0)
				continue;
			if (bad++ == 0) {
				fprintf(stderr, "round %d: byte %zu of %zu is 0x%02x:", i, k,
					(size_t)i * bs, r[k]);
				for (size_t m = k; m < k + 32 && m < (size_t)i * bs; m++)
					fprintf(stderr, " %02x", r[m]);
				fprintf(stderr, "\n");
			}
			break;
		}
	}
	free(w);
	free(r);
	printf("UNMAP check: %d rounds, %d read back non-zero\n", rounds, bad);
	return bad ? 1 : 0;
}

static int
task_ok(struct iscsi_context *iscsi, struct scsi_task *t, const char *what, uint64_t lba)
{
	if (t == NULL) {
		fprintf(stderr, "%s @lba %llu: no task: %s\n", what, (unsigned long long)lba,
			iscsi_get_error(iscsi));
		return 0;
	}
	if (t->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "%s @lba %llu: status 0x%x sense key 0x%x asc/ascq 0x%04x: %s\n",
			what, (unsigned long long)lba, t->status, t->sense.key, t->sense.ascq,
			iscsi_get_error(iscsi));
		scsi_free_scsi_task(t);
		return 0;
	}
	return 1;
}

/* The INFORMATION field of the sense data (fixed or descriptor format); -1 when absent. */
static long long
sense_info(const struct scsi_task *t)
{
	const unsigned char *sb;
	int n;

	if (t->datain.data == NULL || t->datain.size < 2 + 8)
		return -1;
	/* the data segment: SenseLength (2 bytes), then the sense data */
	sb = t->datain.data + 2;
	n = t->datain.size - 2;
	if ((sb[0] & 0x7f) == 0x70 || (sb[0] & 0x7f) == 0x71) {
		if (!(sb[0] & 0x80) || n < 7)
			return -1;
		return ((long long)sb[3] << 24) | (sb[4] << 16) | (sb[5] << 8) | sb[6];
	}
	for (int at = 8; at + 12 <= n; at += 2 + sb[at + 1]) {
		if (sb[at] == 0x00) {
			long long v = 0;

			for (int i = 0; i < 8; i++)
				v = (v << 8) | sb[at + 4 + i];
			return v;
		}
	}
	return -1;
}

/* -C: a CAW that matches writes; one that differs at byte 300 is refused there. */
static int
caw_check(struct iscsi_context *iscsi, int lun, uint64_t lba, uint32_t bs, uint64_t nblocks,
	  int n)
{
	size_t half = (size_t)n * bs;
	unsigned char *buf = malloc(2 * half), *r = malloc(half);
	struct scsi_task *t;
	long long info;

	if (buf == NULL || r == NULL || n < 1 || n > 255 || lba + n > nblocks || bs < 512)
		return 1;
	memset(buf, 'A', half);
	t = iscsi_write16_sync(iscsi, lun, lba, buf, (uint32_t)half, bs, 0, 0, 0, 0, 0);
	if (!task_ok(iscsi, t, "WRITE(16)", lba))
		return 1;
	scsi_free_scsi_task(t);
	memset(buf + half, 'B', half);
	t = iscsi_compareandwrite_sync(iscsi, lun, lba, buf, (uint32_t)(2 * half), bs, 0, 0, 0, 0,
				       0);
	if (!task_ok(iscsi, t, "COMPARE AND WRITE (matching)", lba))
		return 1;
	scsi_free_scsi_task(t);
	/* now B: a compare differing at byte 300 must fail there */
	memset(buf, 'B', half);
	buf[300] = 'X';
	memset(buf + half, 'C', half);
	t = iscsi_compareandwrite_sync(iscsi, lun, lba, buf, (uint32_t)(2 * half), bs, 0, 0, 0, 0,
				       0);
	if (t == NULL || t->status != SCSI_STATUS_CHECK_CONDITION ||
	    t->sense.key != SCSI_SENSE_MISCOMPARE) {
		fprintf(stderr, "COMPARE AND WRITE (differing): no MISCOMPARE\n");
		return 1;
	}
	info = sense_info(t);
	scsi_free_scsi_task(t);
	if (info != 300) {
		fprintf(stderr, "MISCOMPARE INFORMATION %lld, expected 300\n", info);
		return 1;
	}
	t = iscsi_read16_sync(iscsi, lun, lba, (uint32_t)half, bs, 0, 0, 0, 0, 0);
	if (!task_ok(iscsi, t, "READ(16)", lba))
		return 1;
	if (t->datain.size != (int)half) {
		fprintf(stderr, "READ(16): short\n");
		return 1;
	}
	for (size_t i = 0; i < half; i++) {
		if (t->datain.data[i] != 'B') {
			fprintf(stderr, "after the CAWs byte %zu is %02x, expected 'B'\n", i,
				t->datain.data[i]);
			return 1;
		}
	}
	scsi_free_scsi_task(t);
	printf("COMPARE AND WRITE: match written, miscompare at 300 refused\n");
	free(buf);
	free(r);
	return 0;
}

/* -W: WRITE SAME(16) of one patterned block, then every block reads as the pattern. */
static int
ws_check(struct iscsi_context *iscsi, int lun, uint64_t lba, uint32_t bs, uint64_t nblocks,
	 uint32_t n)
{
	unsigned char *pat = malloc(bs);
	struct scsi_task *t;

	if (pat == NULL || lba + n > nblocks || n > 65536)
		return 1;
	for (uint32_t i = 0; i < bs; i++)
		pat[i] = (unsigned char)(i * 7 + 3);
	t = iscsi_writesame16_sync(iscsi, lun, lba, pat, bs, n, 0, 0, 0, 0);
	if (!task_ok(iscsi, t, "WRITE SAME(16)", lba))
		return 1;
	scsi_free_scsi_task(t);
	for (uint32_t b = 0; b < n; b += 256) {
		uint32_t k = n - b < 256 ? n - b : 256;

		t = iscsi_read16_sync(iscsi, lun, lba + b, k * bs, bs, 0, 0, 0, 0, 0);
		if (!task_ok(iscsi, t, "READ(16)", lba + b))
			return 1;
		if (t->datain.size != (int)(k * bs))
			return 1;
		for (uint32_t i = 0; i < k; i++) {
			if (memcmp(t->datain.data + (size_t)i * bs, pat, bs) != 0) {
				fprintf(stderr, "block %llu is not the pattern\n",
					(unsigned long long)(lba + b + i));
				return 1;
			}
		}
		scsi_free_scsi_task(t);
	}
	printf("WRITE SAME: %u blocks at lba %llu read back as the pattern\n", n,
	       (unsigned long long)lba);
	free(pat);
	return 0;
}

/* -G: the whole map from lba, as descriptors; each answer must start where asked */
static int
lba_status_walk(struct iscsi_context *iscsi, int lun, uint64_t lba, uint64_t nblocks,
		uint32_t alloc)
{
	unsigned cmds = 0;

	while (lba < nblocks) {
		struct scsi_task *t = iscsi_get_lba_status_sync(iscsi, lun, lba, alloc);
		const unsigned char *d;
		uint32_t plen, n;

		if (!task_ok(iscsi, t, "GET LBA STATUS", lba))
			return 1;
		cmds++;
		d = t->datain.data;
		if (t->datain.size < 24 || (plen = (uint32_t)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3]) < 20) {
			fprintf(stderr, "GET LBA STATUS at %llu: %d bytes, no descriptor\n",
				(unsigned long long)lba, t->datain.size);
			return 1;
		}
		n = (plen - 4) / 16;
		if ((uint32_t)t->datain.size < 8 + 16 * n)
			n = ((uint32_t)t->datain.size - 8) / 16;
		for (uint32_t i = 0; i < n; i++) {
			const unsigned char *e = d + 8 + 16 * i;
			uint64_t start = 0;
			uint32_t cnt = (uint32_t)e[8] << 24 | e[9] << 16 | e[10] << 8 | e[11];

			for (int k = 0; k < 8; k++)
				start = start << 8 | e[k];
			if (start != lba || cnt == 0) {
				fprintf(stderr, "GET LBA STATUS: descriptor %u at %llu+%u, expected %llu\n",
					i, (unsigned long long)start, cnt, (unsigned long long)lba);
				return 1;
			}
			printf("lbas %llu %u %u\n", (unsigned long long)start, cnt, e[12] & 0x0f);
			lba += cnt;
		}
		scsi_free_scsi_task(t);
	}
	printf("lbas-commands %u\n", cmds);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *init = "iqn.2026-11.org.iserd:rwcheck", *wfile = NULL, *rfile = NULL;
	size_t chunk = 256 * 1024, nbytes = 0;
	uint64_t lba0 = 0;
	int c, do_sync = 0, unmap_rounds = 0, fua = 0;
	uint64_t unmap_blocks = 0;

	int caw = 0;	/* blocks */
	uint32_t ws_blocks = 0, lbas_alloc = 0;

	while ((c = getopt(argc, argv, "i:l:c:w:r:n:su:FU:C:W:G:")) != -1) {
		switch (c) {
		case 'i': init = optarg; break;
		case 'l': lba0 = strtoull(optarg, NULL, 0); break;
		case 'c': chunk = strtoul(optarg, NULL, 0); break;
		case 'w': wfile = optarg; break;
		case 'r': rfile = optarg; break;
		case 'n': nbytes = strtoul(optarg, NULL, 0); break;
		case 's': do_sync = 1; break;
		case 'u': unmap_rounds = atoi(optarg); break;
		case 'F': fua = 1; break;
		case 'U': unmap_blocks = strtoull(optarg, NULL, 0); break;
		case 'C': caw = atoi(optarg); break;
		case 'W': ws_blocks = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'G': lbas_alloc = (uint32_t)strtoul(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || chunk == 0 || unmap_rounds < 0 || unmap_rounds > 65535) {
		fprintf(stderr, "usage: %s [-i iqn] [-l lba] [-c chunk] [-w in] [-r out -n bytes] [-s] "
			"[-F] [-u rounds] [-U blocks] [-C blocks] [-W blocks] [-G alloc] URL\n",
			argv[0]);
		return 2;
	}
	struct iscsi_context *iscsi = iscsi_create_context(init);
	if (iscsi == NULL)
		return 1;
	/* Before the URL is parsed: "?header_digest=crc32c" in the URL overrides it. */
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	struct iscsi_url *url = iscsi_parse_full_url(iscsi, argv[optind]);
	if (url == NULL) {
		fprintf(stderr, "bad url: %s\n", iscsi_get_error(iscsi));
		return 1;
	}
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "login failed: %s\n", iscsi_get_error(iscsi));
		return 1;
	}
	int lun = url->lun;
	bool iser = strncmp(argv[optind], "iser://", 7) == 0;
	struct scsi_task *t = iscsi_readcapacity16_sync(iscsi, lun);
	if (!task_ok(iscsi, t, "READ CAPACITY(16)", 0))
		return 1;
	struct scsi_readcapacity16 *rc16 = scsi_datain_unmarshall(t);
	if (rc16 == NULL) {
		fprintf(stderr, "cannot parse READ CAPACITY(16) data\n");
		return 1;
	}
	uint32_t bs = rc16->block_length;
	uint64_t nblocks = rc16->returned_lba + 1;
	scsi_free_scsi_task(t);
	if (bs == 0 || chunk % bs) {
		fprintf(stderr, "chunk %zu is not a multiple of the block size %u\n", chunk, bs);
		return 1;
	}
	if (lbas_alloc > 0)
		return lba_status_walk(iscsi, lun, lba0, nblocks, lbas_alloc);
	if (unmap_rounds > 0) {
		if (lba0 + (uint64_t)unmap_rounds > nblocks || lba0 > 0xffffffffull - unmap_rounds) {
			fprintf(stderr, "-u %d at lba %llu: past the end of the LUN\n", unmap_rounds,
				(unsigned long long)lba0);
			return 1;
		}
		return unmap_check(iscsi, lun, lba0, bs, unmap_rounds);
	}
	if (caw)
		return caw_check(iscsi, lun, lba0, bs, nblocks, caw);
	if (ws_blocks > 0)
		return ws_check(iscsi, lun, lba0, bs, nblocks, ws_blocks);
	if (unmap_blocks > 0) {
		if (lba0 > nblocks || unmap_blocks > nblocks - lba0) {
			fprintf(stderr, "-U %llu at lba %llu: past the end of the LUN\n",
				(unsigned long long)unmap_blocks, (unsigned long long)lba0);
			return 1;
		}
		for (uint64_t done = 0; done < unmap_blocks;) {
			uint64_t n = unmap_blocks - done < 8192 ? unmap_blocks - done : 8192;
			struct unmap_list l = { lba0 + done, (uint32_t)n };

			t = iscsi_unmap_sync(iscsi, lun, 0, 0, &l, 1);
			if (!task_ok(iscsi, t, "UNMAP", lba0 + done))
				return 1;
			scsi_free_scsi_task(t);
			done += n;
		}
		printf("unmapped %llu blocks at lba %llu\n", (unsigned long long)unmap_blocks,
		       (unsigned long long)lba0);
		return 0;
	}
	unsigned char *buf = malloc(chunk);
	if (buf == NULL)
		return 1;

	if (wfile != NULL) {
		FILE *f = fopen(wfile, "rb");
		if (f == NULL) {
			perror(wfile);
			return 1;
		}
		size_t n, off = 0;
		while ((n = fread(buf, 1, chunk, f)) > 0) {
			uint64_t lba = lba0 + off / bs;
			if (n % bs) {
				fprintf(stderr, "%s: size not a multiple of %u\n", wfile, bs);
				return 1;
			}
			if (lba + n / bs > nblocks) {
				fprintf(stderr, "write past the end of the LUN (%llu blocks)\n",
					(unsigned long long)nblocks);
				return 1;
			}
			if (lba + n / bs <= 0xffffffffull && n / bs <= 0xffff)
				t = iscsi_write10_sync(iscsi, lun, (uint32_t)lba, buf, n, bs, 0, 0, fua,
						       0, 0);
			else
				t = iscsi_write16_sync(iscsi, lun, lba, buf, n, bs, 0, 0, fua, 0, 0);
			if (!task_ok(iscsi, t, "WRITE", lba))
				return 1;
			scsi_free_scsi_task(t);
			off += n;
		}
		fclose(f);
		if (nbytes == 0)
			nbytes = off;
		if (do_sync) {
			t = iscsi_synchronizecache10_sync(iscsi, lun, 0, 0, 0, 0);
			if (!task_ok(iscsi, t, "SYNCHRONIZE CACHE(10)", 0))
				return 1;
			scsi_free_scsi_task(t);
		}
		printf("wrote %zu bytes at lba %llu\n", off, (unsigned long long)lba0);
	}
	if (rfile != NULL) {
		FILE *f = fopen(rfile, "wb");
		if (f == NULL) {
			perror(rfile);
			return 1;
		}
		size_t off = 0;
		while (off < nbytes) {
			size_t n = nbytes - off < chunk ? nbytes - off : chunk;
			uint64_t lba = lba0 + off / bs;
			t = iscsi_read16_sync(iscsi, lun, lba, n, bs, 0, 0, 0, 0, 0);
			if (!task_ok(iscsi, t, "READ(16)", lba))
				return 1;
			if (t->datain.size != (int)n) {
				fprintf(stderr, "READ(16) @lba %llu: got %d bytes, wanted %zu\n",
					(unsigned long long)lba, t->datain.size, n);
				return 1;
			}
			if (fwrite(t->datain.data, 1, n, f) != n) {
				perror(rfile);
				return 1;
			}
			scsi_free_scsi_task(t);
			off += n;
		}
		if (fclose(f) != 0) {
			perror(rfile);
			return 1;
		}
		printf("read %zu bytes at lba %llu\n", off, (unsigned long long)lba0);
	}
	free(buf);
	iscsi_logout_sync(iscsi);
	iscsi_destroy_url(url);
	/* libiscsi 1.19's iSER transport cancels its RDMA CM thread at iscsi_destroy_context
	 * without joining it; a thread already handling the DISCONNECTED event that follows a
	 * Logout then writes its error string into the freed context (ASan: heap-use-after-free,
	 * 255 bytes, on that thread; without ASan it can corrupt the heap the tool goes on
	 * using). Over iSER the context is left to the process's exit instead. */
	if (!iser)
		iscsi_destroy_context(iscsi);
	return 0;
}
