/* isd_chaoswriter: one initiator of a kill -9 run over any transport libiscsi
 * speaks (iser:// above all), and the check of what it left behind. The same
 * rule as tests/hostile/test_chaos.py, for a writer that is not Python.
 * Built by the lab's interop scripts into a temp dir:
 *   gcc -O1 -o isd_chaoswriter isd_chaoswriter.c -liscsi
 *
 *   isd_chaoswriter write URL WRITER FIRST NBLOCKS QD LOG
 *     Logs in as iqn.2026-11.test:chaos-WRITER and rewrites [FIRST, FIRST+NBLOCKS)
 *     of the URL's LUN for ever, with up to QD WRITE(10)s outstanding, never two
 *     at once over the same block: 1 to 16 blocks each, one in twenty 64 blocks.
 *     Every 512-byte block written is a function of (WRITER, LBA, generation)
 *     only (block_fill()); generations grow by one per WRITE, across restarts
 *     (a new process starts past the largest in LOG). LOG gets, each line with
 *     one write(2) on an O_APPEND fd, so a kill -9 falls between two lines:
 *       I LBA N GEN    before the command is sent (issued)
 *       A LBA N GEN    after its SCSI Response came back GOOD (acknowledged)
 *     A WRITE answered with UNIT ATTENTION (a LUN added or removed, a capacity
 *     changed: a live change of the target) was not executed; like a real
 *     initiator the writer goes on (the block is written again later), prints
 *     one line and never logs it acknowledged. Any other outcome of a WRITE
 *     ends the process with status 1.
 *
 *   isd_chaoswriter cycles URL N
 *     N logins (initiator names chaos-2000.. chaos-2006), each ending in turn
 *     with a Logout, with the connection dropped, and with the connection
 *     dropped right after a WRITE(10) of 32 KiB went out, each in a child
 *     process; a drop is the child exiting with the connection up, so the
 *     kernel tears it down as when an initiator dies. Exit 0 when every login
 *     succeeded; a Logout libiscsi reports as failed is counted and printed.
 *
 *   isd_chaoswriter check URL WRITER FIRST NBLOCKS LOG
 *     Reads the range back and applies, per block B: let A be the largest
 *     generation acknowledged for a write covering B (-1: none). B must hold
 *     WRITER's block for B, of a generation G issued for B with G >= A (a write
 *     in flight at a kill may or may not have landed, so G > A is allowed; a
 *     smaller G is a lost acknowledged write); or zeros when A is -1. Prints
 *     the blocks checked, acknowledged and newer than acknowledged; exit 0 when
 *     no block breaks the rule, 1 otherwise (the first ten are named).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BS 512u
#define BIG 64u
#define QD_MAX 64
#define MAGIC "ISDCHAOS"

/* Block LBA of writer w at generation gen: a header, then bytes that depend on all three. */
static void
block_fill(uint8_t *b, uint32_t w, uint32_t lba, uint64_t gen)
{
	uint64_t x = ((uint64_t)w << 48) ^ ((uint64_t)lba << 16) ^ gen ^ 0x9e3779b97f4a7c15ull;

	memcpy(b, MAGIC, 8);
	for (int i = 0; i < 4; i++)
		b[8 + i] = (uint8_t)(w >> (24 - 8 * i));
	for (int i = 0; i < 4; i++)
		b[12 + i] = (uint8_t)(lba >> (24 - 8 * i));
	for (int i = 0; i < 8; i++)
		b[16 + i] = (uint8_t)(gen >> (56 - 8 * i));
	for (uint32_t i = 24; i < BS; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(b + i, &x, 8);
	}
}

/* (writer, lba, gen) of a block that is exactly block_fill's, else false. */
static bool
block_parse(const uint8_t *b, uint32_t *w, uint32_t *lba, uint64_t *gen)
{
	uint8_t want[BS];

	if (memcmp(b, MAGIC, 8) != 0)
		return false;
	*w = 0;
	*lba = 0;
	*gen = 0;
	for (int i = 0; i < 4; i++)
		*w = *w << 8 | b[8 + i];
	for (int i = 0; i < 4; i++)
		*lba = *lba << 8 | b[12 + i];
	for (int i = 0; i < 8; i++)
		*gen = *gen << 8 | b[16 + i];
	block_fill(want, *w, *lba, *gen);
	return memcmp(want, b, BS) == 0;
}

/* libiscsi 1.19's iSER transport cancels its RDMA CM thread at iscsi_destroy_context
 * without joining it; a thread already handling the DISCONNECTED event that follows a
 * Logout then writes its error string into the freed context (ASan: heap-use-after-free,
 * 255 bytes, on that thread; without ASan it can corrupt the heap the tool goes on
 * using). Over iSER the context is left to the process's exit instead. */
static void
end_context(struct iscsi_context *iscsi, const char *url)
{
	if (strncmp(url, "iser://", 7) != 0)
		iscsi_destroy_context(iscsi);
}

static struct iscsi_context *
login(const char *url_s, uint32_t writer, int *lun)
{
	char init[128];
	struct iscsi_context *iscsi;
	struct iscsi_url *url;

	snprintf(init, sizeof(init), "iqn.2026-11.test:chaos-%" PRIu32, writer);
	iscsi = iscsi_create_context(init);
	if (iscsi == NULL)
		return NULL;
	url = iscsi_parse_full_url(iscsi, url_s);
	if (url == NULL) {
		fprintf(stderr, "bad url: %s\n", iscsi_get_error(iscsi));
		return NULL;
	}
	iscsi_set_session_type(iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
	if (iscsi_full_connect_sync(iscsi, url->portal, url->lun) != 0) {
		fprintf(stderr, "writer %" PRIu32 ": login failed: %s\n", writer,
			iscsi_get_error(iscsi));
		return NULL;
	}
	*lun = url->lun;
	iscsi_destroy_url(url);
	/* the unit attentions of a new nexus */
	for (int i = 0; i < 4; i++) {
		struct scsi_task *t = iscsi_testunitready_sync(iscsi, *lun);
		int st = t != NULL ? t->status : -1;

		if (t != NULL)
			scsi_free_scsi_task(t);
		if (st == SCSI_STATUS_GOOD)
			break;
	}
	return iscsi;
}

/* The largest generation on an I line of LOG (0 if none). */
static uint64_t
last_gen(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[128];
	uint64_t g = 0, x;
	unsigned long lba, n;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == 'I' && sscanf(line, "I %lu %lu %" SCNu64, &lba, &n, &x) == 3 && x > g)
			g = x;
	}
	fclose(f);
	return g;
}

struct slot {
	bool busy;
	uint32_t lba, n;
	uint64_t gen;
	uint8_t data[BIG * BS];
};

static struct slot g_slot[QD_MAX];
static int g_logfd;
static struct stat g_logst;     /* what g_logfd was opened on */
static uint8_t *g_busy; /* per block of the range: a WRITE outstanding */
static uint32_t g_first;
static int g_failed;

static void
log_line(char kind, const struct slot *s)
{
	char buf[96];
	int n = snprintf(buf, sizeof(buf), "%c %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", kind, s->lba,
			 s->n, s->gen);
	struct stat st;

	/* a client library that closes a descriptor it does not own would hand our
	 * number to its next open: then stop, rather than write the log elsewhere */
	if (fstat(g_logfd, &st) != 0 || st.st_dev != g_logst.st_dev || st.st_ino != g_logst.st_ino) {
		fprintf(stderr, "log: descriptor %d no longer is the log (closed under us)\n", g_logfd);
		exit(2);
	}
	if (write(g_logfd, buf, (size_t)n) != n) {
		perror("log");
		exit(2);
	}
}

static void
write_cb(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
	struct scsi_task *t = command_data;
	struct slot *s = private_data;

	if (status == SCSI_STATUS_CHECK_CONDITION && t != NULL &&
	    t->sense.key == SCSI_SENSE_UNIT_ATTENTION) {
		fprintf(stderr, "WRITE(10) at %" PRIu32 " x %" PRIu32 ": unit attention %04x, going on\n",
			s->lba, s->n, t->sense.ascq);
	} else if (status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "WRITE(10) at %" PRIu32 " x %" PRIu32 ": status %d: %s\n", s->lba,
			s->n, status, iscsi_get_error(iscsi));
		g_failed = 1;
	} else {
		log_line('A', s);
	}
	memset(g_busy + (s->lba - g_first), 0, s->n);
	s->busy = false;
	if (t != NULL)
		scsi_free_scsi_task(t);
}

static int
run_writer(const char *url, uint32_t writer, uint32_t first, uint32_t nblocks, int qd,
	   const char *logpath)
{
	struct iscsi_context *iscsi;
	uint64_t gen = last_gen(logpath);
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	int lun;

	if (qd < 1 || qd > QD_MAX || nblocks < BIG)
		return 2;
	g_logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (g_logfd >= 0) {
		/* far above the numbers a client library's sockets and devices get */
		int hi = fcntl(g_logfd, F_DUPFD_CLOEXEC, 900);

		if (hi >= 0) {
			close(g_logfd);
			g_logfd = hi;
		}
	}
	g_busy = calloc(nblocks, 1);
	if (g_logfd < 0 || g_busy == NULL || fstat(g_logfd, &g_logst) != 0)
		return 2;
	g_first = first;
	iscsi = login(url, writer, &lun);
	if (iscsi == NULL)
		return 1;
	while (!g_failed) {
		struct pollfd pfd;

		for (int i = 0; i < qd; i++) {
			struct slot *s = &g_slot[i];
			uint32_t n, off;
			bool clash = false;

			if (s->busy)
				continue;
			n = rand_r(&seed) % 20 == 0 ? BIG : 1 + (uint32_t)rand_r(&seed) % 16;
			off = (uint32_t)rand_r(&seed) % (nblocks - n + 1);
			for (uint32_t k = 0; k < n && !clash; k++)
				clash = g_busy[off + k] != 0;
			if (clash)
				continue;
			s->lba = first + off;
			s->n = n;
			s->gen = ++gen;
			for (uint32_t k = 0; k < n; k++)
				block_fill(s->data + k * BS, writer, s->lba + k, s->gen);
			log_line('I', s);
			memset(g_busy + off, 1, n);
			s->busy = true;
			if (iscsi_write10_task(iscsi, lun, s->lba, s->data, n * BS, BS, 0, 0, 0, 0, 0,
					       write_cb, s) == NULL) {
				fprintf(stderr, "cannot send WRITE(10): %s\n", iscsi_get_error(iscsi));
				return 1;
			}
		}
		pfd.fd = iscsi_get_fd(iscsi);
		pfd.events = (short)iscsi_which_events(iscsi);
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			return 1;
		if (iscsi_service(iscsi, pfd.revents) < 0) {
			fprintf(stderr, "iscsi_service: %s\n", iscsi_get_error(iscsi));
			return 1;
		}
	}
	return 1;
}

static int
run_check(const char *url, uint32_t writer, uint32_t first, uint32_t nblocks, const char *logpath)
{
	struct iscsi_context *iscsi;
	int64_t *acked = malloc(nblocks * sizeof(*acked));
	uint64_t *held = malloc(nblocks * sizeof(*held));
	uint8_t *has = calloc(nblocks, 1), *found = calloc(nblocks, 1), *zero = calloc(nblocks, 1);
	uint8_t buf[128 * BS];
	uint32_t n_acked = 0, newer = 0, bad = 0;
	unsigned long lines = 0, bad_lines = 0;
	char *text = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int lun;

	if (acked == NULL || held == NULL || has == NULL || found == NULL || zero == NULL)
		return 2;
	iscsi = login(url, 1000 + writer, &lun);
	if (iscsi == NULL)
		return 1;
	for (uint32_t lba = first; lba < first + nblocks; lba += 128) {
		uint32_t n = first + nblocks - lba < 128 ? first + nblocks - lba : 128;
		struct scsi_task *t = iscsi_read10_sync(iscsi, lun, lba, n * BS, BS, 0, 0, 0, 0, 0);

		if (t == NULL || t->status != SCSI_STATUS_GOOD || t->datain.size < (int)(n * BS)) {
			fprintf(stderr, "READ(10) at %" PRIu32 " failed: %s\n", lba,
				iscsi_get_error(iscsi));
			return 1;
		}
		memcpy(buf, t->datain.data, n * BS);
		scsi_free_scsi_task(t);
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = lba - first + k, w, l;
			uint64_t g;
			static const uint8_t z[BS];

			acked[i] = -1;
			if (block_parse(buf + k * BS, &w, &l, &g)) {
				if (w != writer || l != lba + k)
					continue;       /* reported below */
				has[i] = 1;
				held[i] = g;
			} else {
				zero[i] = memcmp(buf + k * BS, z, BS) == 0;
			}
		}
	}
	iscsi_logout_sync(iscsi);
	end_context(iscsi, url);

	/* the whole log, split at newlines; a piece that is not one well-formed line
	 * (the last one, cut by a kill, or anything else) is counted and shown */
	f = fopen(logpath, "r");
	if (f == NULL)
		return 2;
	while ((len = getline(&text, &cap, f)) > 0) {
		unsigned long lba, n;
		uint64_t gen;
		char kind, end;

		if ((size_t)len != strlen(text) || text[len - 1] != '\n' ||
		    sscanf(text, "%c %lu %lu %" SCNu64 "%c", &kind, &lba, &n, &gen, &end) != 5 ||
		    end != '\n' || (kind != 'A' && kind != 'I')) {
			if (bad_lines++ < 3) {
				printf("log line %lu unreadable (%zd bytes):", lines + 1, len);
				for (ssize_t k = 0; k < len && k < 48; k++)
					printf(" %02x", (unsigned char)text[k]);
				printf("\n");
			}
			lines++;
			continue;
		}
		lines++;
		if (lba < first || lba + n > (unsigned long)first + nblocks)
			continue;
		for (unsigned long b = lba - first; b < lba - first + n; b++) {
			if (kind == 'A' && (int64_t)gen > acked[b])
				acked[b] = (int64_t)gen;
			else if (kind == 'I' && has[b] && held[b] == gen)
				found[b] = 1;
		}
	}
	free(text);
	fclose(f);
	for (uint32_t i = 0; i < nblocks; i++) {
		const char *why = NULL;
		char msg[160];

		if (acked[i] >= 0)
			n_acked++;
		if (!has[i]) {
			if (acked[i] >= 0 || !zero[i])
				why = zero[i] ? "zeros" : "not a block of this writer";
		} else if (!found[i]) {
			why = "a generation never issued for it";
		} else if ((int64_t)held[i] < acked[i]) {
			why = "an older generation than acknowledged (lost write)";
		} else if ((int64_t)held[i] > acked[i]) {
			newer++;
		}
		if (why != NULL) {
			snprintf(msg, sizeof(msg), "LBA %" PRIu32 ": %s (holds %" PRIu64
				 ", last acknowledged %" PRId64 ")", first + i, why,
				 has[i] ? held[i] : 0, acked[i]);
			if (bad++ < 10)
				printf("%s\n", msg);
		}
	}
	printf("writer %" PRIu32 ": %" PRIu32 " blocks checked, %" PRIu32
	       " acknowledged, %" PRIu32 " newer than acknowledged, %" PRIu32
	       " bad; log %lu lines, %lu unreadable\n",
	       writer, nblocks, n_acked, newer, bad, lines, bad_lines);
	return bad ? 1 : 0;
}

static void
ignore_cb(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
	(void)iscsi;
	(void)status;
	(void)command_data;
	(void)private_data;
}

/* One login in a child process, so that this process never holds verbs state
 * across a fork: kind 0 ends with a Logout; 1 exits with the connection up, so
 * the kernel tears it down as when an initiator dies; 2 the same right after a
 * WRITE went out. Returns 0 when the child's login (and Logout) succeeded. */
static int
cycle(const char *url, uint32_t i, int kind)
{
	static uint8_t data[BIG * BS];
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct iscsi_context *iscsi;
		int lun;

		iscsi = login(url, 2000 + i % 7, &lun);
		if (iscsi == NULL)
			_exit(1);
		if (kind == 0) {
			/* libiscsi's iSER transport may report the flush of its receives
			 * after the target's disconnect as a failed Logout: counted, not
			 * fatal (the login was good; what iserd keeps is checked after) */
			if (iscsi_logout_sync(iscsi) != 0) {
				fprintf(stderr, "cycle %" PRIu32 ": logout reported an error: %s\n",
					i, iscsi_get_error(iscsi));
				_exit(3);
			}
			end_context(iscsi, url);
		} else if (kind == 2) {
			if (iscsi_write10_task(iscsi, lun, 0, data, sizeof(data), BS, 0, 0, 0, 0, 0,
					       ignore_cb, NULL) == NULL)
				_exit(1);
			(void)iscsi_service(iscsi, POLLOUT);
		}
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 3 ? 1 : -1;
}

/* N logins that end in turn with a Logout, a dropped connection, and a dropped
 * connection with a WRITE just sent. */
static int
run_cycles(const char *url, uint32_t n)
{
	uint32_t logout_errors = 0;

	for (uint32_t i = 0; i < n; i++) {
		int rc = cycle(url, i, (int)(i % 3));

		if (rc < 0) {
			fprintf(stderr, "cycle %" PRIu32 " (%s) failed\n", i,
				i % 3 == 0 ? "logout" : i % 3 == 1 ? "drop" : "drop with a WRITE");
			return 1;
		}
		logout_errors += rc > 0;
	}
	printf("%" PRIu32 " login cycles (logout, drop, drop with a WRITE in flight);"
	       " %" PRIu32 " logouts reported an error by the initiator\n", n, logout_errors);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "cycles") == 0)
		return run_cycles(argv[2], (uint32_t)strtoul(argv[3], NULL, 0));
	if (argc == 8 && strcmp(argv[1], "write") == 0)
		return run_writer(argv[2], (uint32_t)strtoul(argv[3], NULL, 0),
				  (uint32_t)strtoul(argv[4], NULL, 0),
				  (uint32_t)strtoul(argv[5], NULL, 0), atoi(argv[6]), argv[7]);
	if (argc == 7 && strcmp(argv[1], "check") == 0)
		return run_check(argv[2], (uint32_t)strtoul(argv[3], NULL, 0),
				 (uint32_t)strtoul(argv[4], NULL, 0),
				 (uint32_t)strtoul(argv[5], NULL, 0), argv[6]);
	fprintf(stderr, "usage: isd_chaoswriter write URL WRITER FIRST NBLOCKS QD LOG\n"
			"       isd_chaoswriter cycles URL N\n"
			"       isd_chaoswriter check URL WRITER FIRST NBLOCKS LOG\n");
	return 2;
}
