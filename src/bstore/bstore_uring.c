/*
 * File and block-device backing stores over io_uring.
 *
 * One ring per reactor, created when the first store is used on that reactor
 * and freed with the last store that used it. FUA is a RWF_DSYNC write,
 * SYNCHRONIZE CACHE an fdatasync, so the volatile write cache the LU reports
 * is the page cache (buffered I/O) or the device's own cache (direct I/O).
 *
 * Direct I/O (O_DIRECT; the default for dev:, ",direct" for file:) moves
 * data between the device and the command's buffer with no copy and no page
 * cache. The kernel wants offsets and lengths in whole logical blocks
 * (min_block: the LU's block size must be a multiple) and buffers aligned to
 * what statx calls the memory alignment (mem_align). The SCSI layer asks for
 * buffers so aligned (iSER's registered pool is page-aligned anyway); a
 * request whose buffers are not (immediate data used where it arrived, a
 * caller's own) goes through a bounce buffer of the store's: one copy, as
 * buffered I/O would have made anyway.
 *
 * Requests are put in the submission queue as they come and submitted once a
 * reactor turn, by a turn-end call (one io_uring_enter for everything the
 * turn's commands asked). Right after the submit that call reaps the
 * completion queue: a read or write the page cache could serve completed
 * inside io_uring_enter, so its command goes on at once, in the same turn.
 * Completions that come later (the kernel went to the disk, or punted the
 * request to its io-wq workers) wake the reactor through an eventfd watched
 * edge-triggered, so it is never read: one wakeup, no read(2), per batch.
 *
 * Files on tmpfs or ramfs are memory, but those file systems cannot do a
 * read or write without blocking the way io_uring asks first (RWF_NOWAIT is
 * "not supported" there), so io_uring would hand every request to a worker
 * thread: a thread switch and about 10 us per I/O for a memory copy. Their
 * reads and writes are done by the reactor itself instead, with preadv and
 * pwritev at the end of the turn, as a RAM LUN's are; nothing there waits
 * for a device.
 *
 * A request that does not fit in the submission queue waits on a list and goes
 * out when completions have made room. Short reads and writes resubmit the
 * rest. A store may be used from every reactor of a group: what requests
 * change lives in the store's part for the submitting reactor (struct
 * uring_per, by reactor index), so the data path takes no lock; rings belong
 * to their reactor's thread; only the list of rings is shared (guarded by a
 * mutex, touched when a reactor first uses a store and at close).
 */
#define _GNU_SOURCE /* pwritev2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bstore/bstore_int.h"
#include "reactor/reactor.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#define URING_DEPTH 256
#define URING_MAX_IOV 1024

enum uring_op {
	UOP_READ,
	UOP_WRITE,
	UOP_FLUSH,
	UOP_PUNCH,      /* fallocate(PUNCH_HOLE) on a file */
	UOP_BLKDISCARD, /* ioctl on a block device, completed through a deferred call */
};

struct uring_bs;
struct uring_per;

struct uring_req {
	struct uring_bs *ubs;
	struct uring_per *per;          /* the submitting reactor's part of the store */
	enum uring_op op;
	bool fua;
	uint64_t off;
	uint64_t len;                   /* discard length */
	isd_bstore_cb cb;
	void *arg;
	struct isd_monitor *mon;        /* held at submission */
	struct isd_timer timer;         /* UOP_BLKDISCARD completion; a memory file's I/O */
	int status;
	TAILQ_ENTRY(uring_req) link;    /* on the ring's pending list */
	void *bounce;                   /* direct I/O through our own aligned buffer */
	struct iovec *user;             /* then: the caller's buffers (read: copied out) */
	int usercnt;
	int iovcnt;
	struct iovec iov[];             /* our own copy: short transfers advance it */
};

struct uring_ctx {
	struct isd_reactor *r;
	struct io_uring ring;
	int efd;
	struct isd_timer flush;         /* turn-end: submit what the turn queued, reap */
	unsigned refs;
	unsigned inflight;              /* SQEs handed to the kernel and not yet reaped */
	TAILQ_HEAD(, uring_req) pending;
	LIST_ENTRY(uring_ctx) link;
};

/*
 * What a store keeps per reactor that uses it, touched only by that reactor's
 * thread: its ring, and the requests it submitted. Set up by the first
 * request from that reactor (the opening reactor's at open).
 */
struct uring_per {
	struct isd_reactor *r;
	struct uring_ctx *ctx;
	unsigned inflight;              /* this store's requests not yet completed */
	TAILQ_HEAD(, uring_req) deferred;       /* completions waiting on a reactor timer */
};

struct uring_bs {
	struct isd_bstore bs;
	int fd;
	bool is_dev;
	bool memfs;                     /* a file on tmpfs/ramfs: preadv/pwritev at turn end */
	bool direct;                    /* opened O_DIRECT */
	struct uring_per per[ISD_REACTOR_MAX];  /* by reactor index */
};

static pthread_mutex_t g_ring_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_bounces;              /* direct requests copied through a bounce buffer */
static LIST_HEAD(, uring_ctx) g_rings = LIST_HEAD_INITIALIZER(g_rings);

static void ring_event(void *arg, uint32_t events);

static void
req_finish(struct uring_req *req, int status)
{
	isd_bstore_cb cb = req->cb;
	void *arg = req->arg;
	struct isd_monitor *mon = req->mon;

	req->per->inflight--;
	if (req->bounce != NULL) {
		if (req->op == UOP_READ && status == 0) {
			const uint8_t *src = req->bounce;

			for (int i = 0; i < req->usercnt; i++) {
				memcpy(req->user[i].iov_base, src, req->user[i].iov_len);
				src += req->user[i].iov_len;
			}
		}
		isd_mem_free(req->bounce);
	}
	isd_mem_free(req);
	isd_bstore_deliver(mon, cb, arg, status);
}

/* Puts the request in the SQ; false when the SQ is full. */
static bool
req_prep(struct uring_ctx *ctx, struct uring_req *req)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->ring);
	int fd = req->ubs->fd;

	if (sqe == NULL)
		return false;
	switch (req->op) {
	case UOP_READ:
		io_uring_prep_readv(sqe, fd, req->iov, (unsigned)req->iovcnt, req->off);
		break;
	case UOP_WRITE:
		io_uring_prep_writev2(sqe, fd, req->iov, (unsigned)req->iovcnt, req->off,
				      req->fua ? RWF_DSYNC : 0);
		break;
	case UOP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case UOP_PUNCH:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)req->off, (off_t)req->len);
		break;
	case UOP_BLKDISCARD:
		/* never queued on the ring */
		break;
	}
	io_uring_sqe_set_data(sqe, req);
	ctx->inflight++;
	return true;
}

static void
ring_submit(struct uring_ctx *ctx)
{
	int rc = io_uring_submit(&ctx->ring);

	/* -EAGAIN/-EBUSY: SQEs stay in the ring and go with the next submit. */
	if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
		isd_log_err("bstore: io_uring_submit: %s", strerror(-rc));
}

static void
req_queue(struct uring_ctx *ctx, struct uring_req *req)
{
	if (!TAILQ_EMPTY(&ctx->pending) || !req_prep(ctx, req)) {
		TAILQ_INSERT_TAIL(&ctx->pending, req, link);
		return;
	}
	isd_reactor_at_turn_end(ctx->r, &ctx->flush);
}

static void
ring_drain_pending(struct uring_ctx *ctx)
{
	struct uring_req *req;
	bool any = false;

	while ((req = TAILQ_FIRST(&ctx->pending)) != NULL) {
		if (!req_prep(ctx, req))
			break;
		TAILQ_REMOVE(&ctx->pending, req, link);
		any = true;
	}
	if (any)
		isd_reactor_at_turn_end(ctx->r, &ctx->flush);
}

/* Drops `n` bytes from the front of the request's iovec after a short transfer. */
static void
req_advance(struct uring_req *req, size_t n)
{
	int i = 0;

	req->off += n;
	while (i < req->iovcnt && n >= req->iov[i].iov_len)
		n -= req->iov[i++].iov_len;
	if (i > 0) {
		memmove(req->iov, req->iov + i, (size_t)(req->iovcnt - i) * sizeof(req->iov[0]));
		req->iovcnt -= i;
	}
	if (req->iovcnt > 0) {
		req->iov[0].iov_base = (uint8_t *)req->iov[0].iov_base + n;
		req->iov[0].iov_len -= n;
	}
}

static void
req_cqe(struct uring_ctx *ctx, struct uring_req *req, int res)
{
	if (res == -EAGAIN || res == -EINTR) {
		req_queue(ctx, req);
		return;
	}
	if (res < 0) {
		req_finish(req, res);
		return;
	}
	if (req->op != UOP_READ && req->op != UOP_WRITE) {
		req_finish(req, 0);
		return;
	}
	if (res == 0) {
		if (req->op == UOP_WRITE) {
			req_finish(req, -EIO);
			return;
		}
		/* Read past the end of a file shorter than its LU: that reads as zeros. */
		for (int i = 0; i < req->iovcnt; i++)
			memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
		req_finish(req, 0);
		return;
	}
	req_advance(req, (size_t)res);
	if (req->iovcnt == 0) {
		req_finish(req, 0);
		return;
	}
	req_queue(ctx, req);
}

static void
ring_reap(struct uring_ctx *ctx)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&ctx->ring, &cqe) == 0) {
		struct uring_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&ctx->ring, cqe);
		ctx->inflight--;
		/* The callback may submit more and may close other stores, never this ring
		 * (the store being completed still holds its reference). */
		req_cqe(ctx, req, res);
	}
	ring_drain_pending(ctx);
}

/* Edge-triggered: each completion the kernel posts is a new edge, so the
 * eventfd's count is never read (it only grows, and saturates harmlessly). */
static void
ring_event(void *arg, uint32_t events)
{
	struct uring_ctx *ctx = arg;

	(void)events;
	ring_reap(ctx);
}

/* Turn end: one submit for the turn's requests, then what completed inline. */
static void
ring_flush(void *arg)
{
	struct uring_ctx *ctx = arg;

	if (io_uring_sq_ready(&ctx->ring) > 0)
		ring_submit(ctx);
	ring_reap(ctx);
}

static int
ring_get(struct isd_reactor *r, struct uring_ctx **out)
{
	struct uring_ctx *ctx;
	int rc;

	pthread_mutex_lock(&g_ring_lock);
	LIST_FOREACH(ctx, &g_rings, link) {
		if (ctx->r == r) {
			ctx->refs++;
			*out = ctx;
			pthread_mutex_unlock(&g_ring_lock);
			return 0;
		}
	}
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		rc = -ENOMEM;
		goto err_unlock;
	}
	ctx->r = r;
	ctx->refs = 1;
	TAILQ_INIT(&ctx->pending);
	isd_timer_init(&ctx->flush, ring_flush, ctx);
	rc = io_uring_queue_init(URING_DEPTH, &ctx->ring, 0);
	if (rc < 0)
		goto err_free;
	ctx->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctx->efd < 0) {
		rc = -errno;
		goto err_ring;
	}
	rc = io_uring_register_eventfd(&ctx->ring, ctx->efd);
	if (rc < 0)
		goto err_efd;
	rc = isd_reactor_add_fd(r, ctx->efd, EPOLLIN | EPOLLET, ring_event, ctx);
	if (rc < 0)
		goto err_efd;
	LIST_INSERT_HEAD(&g_rings, ctx, link);
	pthread_mutex_unlock(&g_ring_lock);
	*out = ctx;
	return 0;

err_efd:
	close(ctx->efd);
err_ring:
	io_uring_queue_exit(&ctx->ring);
err_free:
	free(ctx);
err_unlock:
	pthread_mutex_unlock(&g_ring_lock);
	return rc;
}

static void
ring_put(struct uring_ctx *ctx)
{
	pthread_mutex_lock(&g_ring_lock);
	if (--ctx->refs > 0) {
		pthread_mutex_unlock(&g_ring_lock);
		return;
	}
	LIST_REMOVE(ctx, link);
	pthread_mutex_unlock(&g_ring_lock);
	isd_reactor_timer_stop(ctx->r, &ctx->flush);
	isd_reactor_del_fd(ctx->r, ctx->efd);
	close(ctx->efd);
	io_uring_queue_exit(&ctx->ring);
	free(ctx);
}

/* The calling reactor's part of the store, its ring set up on first use; NULL
 * when the ring cannot be (no memory, io_uring refused). */
static struct uring_per *
per_here(struct uring_bs *ubs)
{
	struct isd_reactor *r = isd_bstore_reactor_here(&ubs->bs);
	struct uring_per *per = &ubs->per[isd_reactor_index(r)];

	if (per->ctx == NULL) {
		if (ring_get(r, &per->ctx) < 0)
			return NULL;
		per->r = r;
	}
	return per;
}

static struct uring_req *
req_alloc(struct uring_bs *ubs, enum uring_op op, const struct iovec *iov, int iovcnt,
	  int room, uint64_t off, isd_bstore_cb cb, void *arg)
{
	struct uring_per *per = per_here(ubs);
	struct uring_req *req;

	if (per == NULL || iovcnt < 0 || iovcnt > URING_MAX_IOV || room < iovcnt)
		return NULL;
	req = isd_mem_zalloc(sizeof(*req) + (size_t)room * sizeof(struct iovec));
	if (req == NULL)
		return NULL;
	req->ubs = ubs;
	req->per = per;
	req->op = op;
	req->off = off;
	req->cb = cb;
	req->arg = arg;
	req->mon = isd_monitor_current();
	if (iovcnt > 0)
		memcpy(req->iov, iov, (size_t)iovcnt * sizeof(struct iovec));
	req->iovcnt = iovcnt;
	return req;
}

static void
uring_deferred_done(void *arg)
{
	struct uring_req *req = arg;

	TAILQ_REMOVE(&req->per->deferred, req, link);
	req_finish(req, req->status);
}

/* Completes a request that never went to the kernel, from the reactor. */
static void
req_defer(struct uring_req *req, int status)
{
	req->status = status;
	isd_timer_init(&req->timer, uring_deferred_done, req);
	TAILQ_INSERT_TAIL(&req->per->deferred, req, link);
	isd_reactor_defer(req->per->r, &req->timer);
}

/* A memory file's read or write, done by the reactor (see the top of the file). */
static int
memfs_rw(struct uring_req *req)
{
	int fd = req->ubs->fd;

	while (req->iovcnt > 0) {
		ssize_t n;

		if (req->op == UOP_READ)
			n = preadv(fd, req->iov, req->iovcnt, (off_t)req->off);
		else
			n = pwritev2(fd, req->iov, req->iovcnt, (off_t)req->off,
				     req->fua ? RWF_DSYNC : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (req->op == UOP_WRITE)
				return -EIO;
			/* past the end of a file shorter than its LU: zeros */
			for (int i = 0; i < req->iovcnt; i++)
				memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
			return 0;
		}
		req_advance(req, (size_t)n);
	}
	return 0;
}

static void
memfs_run(void *arg)
{
	struct uring_req *req = arg;

	TAILQ_REMOVE(&req->per->deferred, req, link);
	req_finish(req, memfs_rw(req));
}

/* Direct I/O takes the buffers as they are: each aligned, each whole blocks. */
static bool
dio_aligned(const struct uring_bs *ubs, const struct iovec *iov, int iovcnt)
{
	uintptr_t am = ubs->bs.mem_align > 1 ? ubs->bs.mem_align - 1 : 0;

	for (int i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iov[i].iov_base & am) != 0 || iov[i].iov_len % ubs->bs.min_block != 0)
			return false;
	}
	return true;
}

/*
 * The request moves len bytes through one aligned buffer of the store's
 * instead of the caller's; a write's data is copied in now, a read's out at
 * completion (req_finish).
 */
static int
req_bounce(struct uring_req *req, uint64_t len)
{
	uint8_t *b = isd_mem_alloc_aligned((size_t)len, req->ubs->bs.mem_align);
	uint8_t *dst = b;

	if (b == NULL)
		return -ENOMEM;
	req->user = &req->iov[1];
	req->usercnt = req->iovcnt;
	memmove(req->user, req->iov, (size_t)req->iovcnt * sizeof(struct iovec));
	if (req->op == UOP_WRITE) {
		for (int i = 0; i < req->usercnt; i++) {
			memcpy(dst, req->user[i].iov_base, req->user[i].iov_len);
			dst += req->user[i].iov_len;
		}
	}
	req->bounce = b;
	req->iov[0].iov_base = b;
	req->iov[0].iov_len = (size_t)len;
	req->iovcnt = 1;
	__atomic_add_fetch(&g_bounces, 1, __ATOMIC_RELAXED);
	return 0;
}

uint64_t
isd_bstore_direct_bounces(void)
{
	return __atomic_load_n(&g_bounces, __ATOMIC_RELAXED);
}

static int
uring_rw(struct isd_bstore *bs, enum uring_op op, const struct iovec *iov, int iovcnt,
	 uint64_t off, bool fua, isd_bstore_cb cb, void *arg)
{
	struct uring_bs *ubs = (struct uring_bs *)bs;
	struct uring_req *req;
	uint64_t len = 0;
	bool bounce = false;
	int n = 0;

	if (iovcnt < 0 || iovcnt > URING_MAX_IOV)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	if (ubs->direct) {
		/* the device's blocks are the least a request can move */
		if (off % bs->min_block != 0 || len % bs->min_block != 0)
			return -EINVAL;
		bounce = len > 0 && !dio_aligned(ubs, iov, iovcnt);
	}
	/* a bounced request keeps the caller's iovec after its own one entry */
	req = req_alloc(ubs, op, iov, iovcnt, bounce ? iovcnt + 1 : iovcnt, off, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	/* Empty entries would make the short-transfer arithmetic stall. */
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len != 0)
			req->iov[n++] = iov[i];
	req->iovcnt = n;
	req->fua = fua;
	if (bounce && req_bounce(req, len) < 0) {
		isd_mem_free(req);
		return -ENOMEM;
	}
	req->per->inflight++;
	if (n == 0) {
		/* Nothing to move: complete from the reactor without bothering the kernel. */
		req_defer(req, 0);
		return 0;
	}
	if (ubs->memfs) {
		isd_timer_init(&req->timer, memfs_run, req);
		TAILQ_INSERT_TAIL(&req->per->deferred, req, link);
		isd_reactor_at_turn_end(req->per->r, &req->timer);
		return 0;
	}
	req_queue(req->per->ctx, req);
	return 0;
}

static int
uring_read(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off,
	   isd_bstore_cb cb, void *arg)
{
	return uring_rw(bs, UOP_READ, iov, iovcnt, off, false, cb, arg);
}

static int
uring_write(struct isd_bstore *bs, const struct iovec *iov, int iovcnt, uint64_t off, bool fua,
	    isd_bstore_cb cb, void *arg)
{
	if (bs->read_only)
		return -EROFS;
	return uring_rw(bs, UOP_WRITE, iov, iovcnt, off, fua, cb, arg);
}

static int
uring_flush(struct isd_bstore *bs, isd_bstore_cb cb, void *arg)
{
	struct uring_bs *ubs = (struct uring_bs *)bs;
	struct uring_req *req = req_alloc(ubs, UOP_FLUSH, NULL, 0, 0, 0, cb, arg);

	if (req == NULL)
		return -ENOMEM;
	req->per->inflight++;
	req_queue(req->per->ctx, req);
	return 0;
}

static int
uring_discard(struct isd_bstore *bs, uint64_t off, uint64_t len, isd_bstore_cb cb, void *arg)
{
	struct uring_bs *ubs = (struct uring_bs *)bs;
	struct uring_req *req;

	if (bs->read_only)
		return -EROFS;
	if (!bs->can_discard)
		return -EOPNOTSUPP;
	if (off > bs->size || len > bs->size - off)
		return -EINVAL;
	req = req_alloc(ubs, ubs->is_dev ? UOP_BLKDISCARD : UOP_PUNCH, NULL, 0, 0, off, cb, arg);
	if (req == NULL)
		return -ENOMEM;
	req->len = len;
	req->per->inflight++;
	if (ubs->is_dev) {
		uint64_t range[2] = { off, len };

		/*
		 * There is no io_uring opcode for BLKDISCARD on the kernels we target;
		 * the ioctl only queues the discard in the block layer, so running it
		 * here is cheap. Its result is delivered from the reactor.
		 */
		req_defer(req, len == 0 ? 0 : (ioctl(ubs->fd, BLKDISCARD, range) < 0 ? -errno : 0));
		return 0;
	}
	if (len == 0) {
		req_defer(req, 0);
		return 0;
	}
	req_queue(req->per->ctx, req);
	return 0;
}

static void
uring_destroy(struct isd_bstore *bs)
{
	struct uring_bs *ubs = (struct uring_bs *)bs;
	struct uring_req *req;

	/*
	 * Every reactor that used the store is idle by now (stopped, or the
	 * caller's own), since their timer lists and rings are touched here.
	 */
	for (unsigned i = 0; i < ISD_REACTOR_MAX; i++) {
		struct uring_per *per = &ubs->per[i];

		if (per->ctx == NULL)
			continue;
		/* Completions that never reached the kernel are dropped with the store. */
		while ((req = TAILQ_FIRST(&per->deferred)) != NULL) {
			TAILQ_REMOVE(&per->deferred, req, link);
			isd_reactor_timer_stop(per->r, &req->timer);
			per->inflight--;
			isd_mem_free(req->bounce);
			isd_mem_free(req);
		}
		/*
		 * The owner promised nothing is in flight; if it lied, wait for the
		 * kernel to finish with the buffers before they can be freed under it.
		 */
		while (per->inflight > 0 && per->ctx->inflight > 0) {
			struct io_uring_cqe *cqe;

			if (io_uring_wait_cqe(&per->ctx->ring, &cqe) < 0)
				break;
			ring_reap(per->ctx);
		}
		ring_put(per->ctx);
	}
	if (ubs->fd >= 0)
		close(ubs->fd);
	free(ubs);
}

/*
 * A file grows when the new size is past its end; it is never truncated, so
 * that a smaller LUN keeps the data past its end (as size= at open does). A
 * device is sized again: a device that grew is seen, and the new size must fit.
 */
static int
uring_resize(struct isd_bstore *bs, uint64_t size, char *why, size_t whylen)
{
	struct uring_bs *ubs = (struct uring_bs *)bs;
	struct stat st;
	uint64_t have;

	if (ubs->is_dev) {
		if (ioctl(ubs->fd, BLKGETSIZE64, &have) < 0) {
			int e = errno;

			snprintf(why, whylen, "cannot size %s: %s", bs->desc, strerror(e));
			return -e;
		}
		if (size > have) {
			snprintf(why, whylen, "%s has only %llu bytes", bs->desc,
				 (unsigned long long)have);
			return -EINVAL;
		}
		bs->size = size;
		return 0;
	}
	if (fstat(ubs->fd, &st) < 0) {
		int e = errno;

		snprintf(why, whylen, "cannot stat %s: %s", bs->desc, strerror(e));
		return -e;
	}
	if ((uint64_t)st.st_size < size) {
		if (bs->read_only) {
			snprintf(why, whylen, "%s is opened read-only and shorter than %llu bytes",
				 bs->desc, (unsigned long long)size);
			return -EROFS;
		}
		if (ftruncate(ubs->fd, (off_t)size) < 0) {
			int e = errno;

			snprintf(why, whylen, "cannot extend %s: %s", bs->desc, strerror(e));
			return -e;
		}
	}
	bs->size = size;
	return 0;
}

static const struct isd_bstore_ops uring_ops = {
	.name = "uring",
	.read = uring_read,
	.write = uring_write,
	.flush = uring_flush,
	.discard = uring_discard,
	.destroy = uring_destroy,
	.resize = uring_resize,
};

/*
 * What direct I/O on fd needs: the kernel says it through statx (Linux 6.1
 * for files, 6.11 for block devices); before that a device's logical block
 * size, both for offsets and for memory, is what the kernel checked. A file
 * whose kernel does not say gets its file system's block size, which is
 * never too little. -EOPNOTSUPP: the file system cannot do direct I/O.
 */
static int
dio_align(int fd, bool is_dev, const struct stat *st, uint32_t *min_block, uint32_t *mem_align)
{
	struct statx stx;
	int lbs;

	memset(&stx, 0, sizeof(stx));
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) != 0) {
		if (stx.stx_dio_offset_align == 0)
			return -EOPNOTSUPP;
		*min_block = stx.stx_dio_offset_align;
		*mem_align = stx.stx_dio_mem_align;
	} else if (is_dev) {
		if (ioctl(fd, BLKSSZGET, &lbs) < 0)
			return -errno;
		*min_block = (uint32_t)lbs;
		*mem_align = (uint32_t)lbs;
	} else {
		*min_block = (uint32_t)st->st_blksize;
		*mem_align = (uint32_t)st->st_blksize;
	}
	/* what isd_mem_alloc_aligned can give, and sizes a kernel could ask */
	if (*min_block == 0 || (*min_block & (*min_block - 1)) != 0 || *min_block > 65536 ||
	    (*mem_align & (*mem_align - 1)) != 0 || *mem_align > 65536)
		return -EINVAL;
	if (*mem_align == 0)
		*mem_align = 1;
	return 0;
}

int
isd_bstore_uring_open(struct isd_reactor *r, const char *path, bool is_dev, uint64_t size,
		      bool read_only, bool direct, struct isd_bstore **out, char *err,
		      size_t err_len)
{
	struct uring_bs *ubs;
	struct stat st;
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
	int rc;

	if (!is_dev && size > 0 && !read_only)
		flags |= O_CREAT;
	ubs = calloc(1, sizeof(*ubs));
	if (ubs == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < ISD_REACTOR_MAX; i++)
		TAILQ_INIT(&ubs->per[i].deferred);
	ubs->fd = open(path, flags, 0600);
	if (ubs->fd < 0) {
		rc = -errno;
		if (rc == -EINVAL && direct)
			snprintf(err, err_len,
				 "cannot open %s for direct I/O: %s (its file system cannot; "
				 "give ,buffered)",
				 path, strerror(-rc));
		else
			snprintf(err, err_len, "cannot open %s: %s", path, strerror(-rc));
		goto err_free;
	}
	if (fstat(ubs->fd, &st) < 0) {
		rc = -errno;
		snprintf(err, err_len, "cannot stat %s: %s", path, strerror(-rc));
		goto err_close;
	}
	if (is_dev) {
		if (!S_ISBLK(st.st_mode)) {
			rc = -EINVAL;
			snprintf(err, err_len, "%s is not a block device", path);
			goto err_close;
		}
		if (ioctl(ubs->fd, BLKGETSIZE64, &ubs->bs.size) < 0) {
			rc = -errno;
			snprintf(err, err_len, "cannot size %s: %s", path, strerror(-rc));
			goto err_close;
		}
		ubs->bs.can_discard = true;
		/* BLKDISCARD promises nothing about what the range reads back as. */
		ubs->bs.discard_zeroes = false;
	} else {
		if (!S_ISREG(st.st_mode)) {
			rc = -EINVAL;
			snprintf(err, err_len, "%s is not a regular file (dev: is for devices)",
				 path);
			goto err_close;
		}
		if (size == 0) {
			size = (uint64_t)st.st_size;
		} else if ((uint64_t)st.st_size < size && !read_only &&
			   ftruncate(ubs->fd, (off_t)size) < 0) {
			rc = -errno;
			snprintf(err, err_len, "cannot extend %s: %s", path, strerror(-rc));
			goto err_close;
		}
		ubs->bs.size = size;
		ubs->bs.can_discard = true;
		ubs->bs.discard_zeroes = true;  /* a punched hole reads as zeros */
		{
			struct statfs sfs;

			ubs->memfs = fstatfs(ubs->fd, &sfs) == 0 &&
				     (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
		}
	}
	if (ubs->bs.size == 0) {
		rc = -EINVAL;
		snprintf(err, err_len, "%s is empty (give size=)", path);
		goto err_close;
	}
	ubs->bs.min_block = 1;
	if (direct) {
		rc = dio_align(ubs->fd, is_dev, &st, &ubs->bs.min_block, &ubs->bs.mem_align);
		if (rc < 0) {
			snprintf(err, err_len, "%s: cannot tell the alignment direct I/O needs: %s%s",
				 path, strerror(-rc), rc == -EOPNOTSUPP ? " (give ,buffered)" : "");
			goto err_close;
		}
		if (ubs->bs.size % ubs->bs.min_block != 0) {
			rc = -EINVAL;
			snprintf(err, err_len,
				 "%s: %llu bytes is not a whole number of its %u-byte blocks, "
				 "which direct I/O moves (give ,buffered)",
				 path, (unsigned long long)ubs->bs.size, ubs->bs.min_block);
			goto err_close;
		}
		ubs->direct = true;
	}
	rc = ring_get(r, &ubs->per[isd_reactor_index(r)].ctx);
	ubs->per[isd_reactor_index(r)].r = r;
	if (rc < 0) {
		snprintf(err, err_len, "cannot set up io_uring: %s", strerror(-rc));
		goto err_close;
	}
	ubs->is_dev = is_dev;
	ubs->bs.ops = &uring_ops;
	ubs->bs.reactor = r;
	ubs->bs.read_only = read_only;
	snprintf(ubs->bs.desc, sizeof(ubs->bs.desc), "%s:%s", is_dev ? "dev" : "file", path);
	*out = &ubs->bs;
	return 0;

err_close:
	close(ubs->fd);
err_free:
	free(ubs);
	return rc;
}

/* ---- the file: and dev: kinds ---------------------------------------- */

extern const struct isd_bstore_kind isd_bstore_kind_file;
extern const struct isd_bstore_kind isd_bstore_kind_dev;

/*
 * "PATH[,opt...]": size=SIZE (file only), ro, direct and buffered. A path
 * cannot contain a comma; that is documented with the specs. *direct is
 * the I/O mode asked for, or the kind's default (dev: direct, file: buffered).
 */
static int
parse_path_opts(const char *rest, bool is_file, struct isd_bstore_spec *out, bool *direct,
		char *why, size_t whylen)
{
	const char *comma = strchr(rest, ',');
	size_t plen = comma ? (size_t)(comma - rest) : strlen(rest);
	char opt[64], sz[32];

	if (plen == 0) {
		isd_seterr(why, whylen, "%s",
			   is_file ? "file: needs a path, e.g. file:/var/lib/disk.img,size=10G"
				   : "dev: needs a device path, e.g. dev:/dev/sdb");
		return -EINVAL;
	}
	if (plen >= sizeof(out->path)) {
		isd_seterr(why, whylen, "path too long");
		return -EINVAL;
	}
	memcpy(out->path, rest, plen);
	out->path[plen] = '\0';
	out->size = 0;
	*direct = !is_file;
	while (comma != NULL) {
		const char *o = comma + 1;
		size_t olen;

		comma = strchr(o, ',');
		olen = comma ? (size_t)(comma - o) : strlen(o);
		if (olen >= sizeof(opt)) {
			isd_seterr(why, whylen, "unknown option '%.*s' (paths cannot contain ',')",
				   (int)olen, o);
			return -EINVAL;
		}
		memcpy(opt, o, olen);
		opt[olen] = '\0';
		if (is_file && strncmp(opt, "size=", 5) == 0) {
			if (isd_parse_size(opt + 5, &out->size) < 0 || out->size == 0) {
				isd_seterr(why, whylen, "bad size '%s' (use e.g. 512M, 1G)",
					   opt + 5);
				return -EINVAL;
			}
		} else if (strcmp(opt, "ro") == 0) {
			out->read_only = true;
		} else if (strcmp(opt, "direct") == 0) {
			*direct = true;
		} else if (strcmp(opt, "buffered") == 0) {
			*direct = false;
		} else {
			isd_seterr(why, whylen,
				   "unknown option '%s' (%s; paths cannot contain ',')", opt,
				   is_file ? "size=SIZE, ro, direct or buffered"
					   : "ro, direct or buffered");
			return -EINVAL;
		}
	}
	out->kind = is_file ? &isd_bstore_kind_file : &isd_bstore_kind_dev;
	/* canonical: the read_only flag travels separately; the I/O mode only
	 * when it is not the kind's default */
	sz[0] = '\0';
	if (out->size != 0) {
		memcpy(sz, ",size=", 7);
		isd_bstore_size_format(out->size, sz + 6, sizeof(sz) - 6);
	}
	snprintf(out->canon, sizeof(out->canon), "%s:%s%s%s", is_file ? "file" : "dev", out->path,
		 sz, *direct == !is_file ? "" : (*direct ? ",direct" : ",buffered"));
	return 0;
}

static int
file_parse(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen)
{
	bool direct;

	return parse_path_opts(rest, true, out, &direct, why, whylen);
}

static int
dev_parse(const char *rest, struct isd_bstore_spec *out, char *why, size_t whylen)
{
	bool direct;

	return parse_path_opts(rest, false, out, &direct, why, whylen);
}

/* The I/O mode of a canonical spec (its options follow the path's comma). */
static bool
spec_direct(const struct isd_bstore_spec *spec, bool is_dev)
{
	const char *o = strchr(spec->canon, ',');

	while (o != NULL) {
		o++;
		if (strncmp(o, "direct", 6) == 0 && (o[6] == ',' || o[6] == '\0'))
			return true;
		if (strncmp(o, "buffered", 8) == 0 && (o[8] == ',' || o[8] == '\0'))
			return false;
		o = strchr(o, ',');
	}
	return is_dev;
}

static int
file_check(const struct isd_bstore_spec *spec, char *why, size_t whylen)
{
	struct stat st;

	if (stat(spec->path, &st) < 0) {
		int e = errno;

		/* file:PATH,size=S creates a missing file */
		if (e == ENOENT && spec->size != 0)
			return 0;
		isd_seterr(why, whylen, "%s", strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		isd_seterr(why, whylen, "not a regular file%s",
			   S_ISBLK(st.st_mode) ? " (use dev: for block devices)" : "");
		return -EINVAL;
	}
	return 0;
}

static int
dev_check(const struct isd_bstore_spec *spec, char *why, size_t whylen)
{
	struct stat st;

	if (stat(spec->path, &st) < 0) {
		int e = errno;

		isd_seterr(why, whylen, "%s", strerror(e));
		return -e;
	}
	if (!S_ISBLK(st.st_mode)) {
		isd_seterr(why, whylen, "not a block device");
		return -ENOTBLK;
	}
	return 0;
}

static int
file_create(struct isd_reactor *r, const struct isd_bstore_spec *spec, struct isd_bstore **out,
	    char *err, size_t err_len)
{
	return isd_bstore_uring_open(r, spec->path, false, spec->size, spec->read_only,
				     spec_direct(spec, false), out, err, err_len);
}

static int
dev_create(struct isd_reactor *r, const struct isd_bstore_spec *spec, struct isd_bstore **out,
	   char *err, size_t err_len)
{
	return isd_bstore_uring_open(r, spec->path, true, 0, spec->read_only,
				     spec_direct(spec, true), out, err, err_len);
}

const struct isd_bstore_kind isd_bstore_kind_file = {
	.scheme = "file",
	.usage = "file:PATH[,size=SIZE][,ro][,direct]",
	.help = "regular file; size= creates",
	.product = "FILEDISK",
	.thin = true,
	.parse = file_parse,
	.check = file_check,
	.create = file_create,
};

/* Thin only when the device can discard: a disk without it gets no UNMAP. */
const struct isd_bstore_kind isd_bstore_kind_dev = {
	.scheme = "dev",
	.usage = "dev:PATH[,ro][,buffered]",
	.help = "block device",
	.product = "BLOCKDEV",
	.thin = false,
	.own_size = true,
	.parse = dev_parse,
	.check = dev_check,
	.create = dev_create,
};
