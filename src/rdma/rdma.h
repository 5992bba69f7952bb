/*
 * A thin layer over libibverbs/librdmacm that the iSER datamover (and later the
 * initiator) builds on:
 *
 *   - devices: one struct isd_rdma_dev per verbs context, with its protection
 *     domain and queried attributes, shared by every connection on it;
 *   - the memory registry: a region (a RAM LUN, a buffer-pool slab) is added
 *     once and registered on every device that is or will be open, with local
 *     access only; a data path looks up the lkey of an address range with
 *     isd_rdma_mem_find();
 *   - which access rights memory gets (isd_rdma_access_plan, pure), and the
 *     per-command registrations with remote access an iWARP RDMA Read sink
 *     needs (isd_rdma_remote_mr_reg), counted while they live;
 *   - the registered data-buffer pool (isd_rdma_buf_alloc/free) with size
 *     classes carved from registered slabs;
 *   - completion queues whose completion channel sits on a reactor;
 *   - RLIMIT_MEMLOCK: raised once at start, and named in every registration
 *     error it may have caused.
 *
 * Threading: any thread may use all of it. Devices and the registry change
 * under a lock; registry lookups take none (rdma_dev.c says how removal
 * waits for them); the pool keeps a cache per thread in front of a locked
 * depot (rdma_pool.c); the counters are atomic or per thread. A CQ belongs
 * to the reactor it was created on.
 */
#ifndef ISD_RDMA_H
#define ISD_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <infiniband/verbs.h>

struct isd_reactor;

#define ISD_RDMA_MAX_DEVS 16

/* ---- access rights (rdma_access.c; pure) ---- */

enum isd_rdma_fabric {
	ISD_RDMA_FABRIC_IB = 0,
	ISD_RDMA_FABRIC_ROCE,
	ISD_RDMA_FABRIC_IWARP,
};

enum isd_rdma_mem_kind {
	ISD_RDMA_MEM_POOL = 0,          /* registered buffer-pool slabs and big buffers */
	ISD_RDMA_MEM_LUN,               /* a RAM LUN's memory */
	ISD_RDMA_MEM_LUN_RO,            /* a read-only RAM LUN's memory */
};

enum isd_rdma_use {
	ISD_RDMA_USE_STANDING = 0,      /* the registration a region keeps while it exists */
	ISD_RDMA_USE_WRITE_SOURCE,      /* our RDMA Write reads from it (SCSI READ) */
	ISD_RDMA_USE_READ_SINK,         /* our RDMA Read places into it (SCSI WRITE) */
};

struct isd_rdma_access {
	int standing;                   /* IBV_ACCESS_* of the region's lifelong MR: local only */
	int per_cmd;                    /* 0, or the access of a registration for one command */
};

/*
 * The access rights for memory of `kind` used as `use` on `fabric`: the
 * standing registration is local only (LOCAL_WRITE; nothing for a read-only
 * LUN); an iWARP RDMA Read sink also needs a per-command registration with
 * LOCAL_WRITE | REMOTE_WRITE covering that command's bytes (the sink STag
 * travels to the peer in the Read Request). -EACCES for a read sink in a
 * read-only LUN, -EINVAL for an unknown value.
 */
int isd_rdma_access_plan(enum isd_rdma_fabric fabric, enum isd_rdma_mem_kind kind,
			 enum isd_rdma_use use, struct isd_rdma_access *out);
/* Whether access flags grant a peer anything (remote read/write/atomic, MW bind). */
bool isd_rdma_access_is_remote(int access);
const char *isd_rdma_fabric_name(enum isd_rdma_fabric fabric);

/* One open RDMA device (verbs context) and its PD. Refcounted; lives until the
 * last user puts it (the listening portal holds one for each device it opened). */
struct isd_rdma_dev {
	struct ibv_context *ctx;        /* not owned: rdma_cm's context for the device */
	struct ibv_pd *pd;
	struct ibv_device_attr attr;
	bool iwarp;                     /* transport is iWARP: read sinks need REMOTE_WRITE */
	enum isd_rdma_fabric fabric;
	int index;                      /* slot in the registry's per-region MR table */
	int refs;
	char name[IBV_SYSFS_NAME_MAX];
	LIST_ENTRY(isd_rdma_dev) link;
};

/*
 * Raises RLIMIT_MEMLOCK's soft limit to its hard limit (to infinity if we may).
 * Idempotent. Never fails: what could not be raised shows up later in the
 * registration error message. The daemon's iSER portal calls it before it
 * registers anything; the initiator library never does (a library does not
 * change its process's limits: its caller decides).
 */
void isd_rdma_init(void);

/* The open device for a verbs context: opened (PD allocated, every region of the
 * registry registered on it) the first time. err gets one line on failure. */
int isd_rdma_dev_get(struct ibv_context *ctx, struct isd_rdma_dev **out, char *err,
		     size_t err_len);
void isd_rdma_dev_put(struct isd_rdma_dev *d);

/*
 * Registers [base, base+len) with `access` on d's PD. On ENOMEM/EPERM/EFAULT the
 * message names RLIMIT_MEMLOCK, its current value and the fix. Local access
 * only: remote access flags are refused (-EPERM); those registrations go
 * through isd_rdma_remote_mr_reg.
 */
int isd_rdma_mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access,
		    struct ibv_mr **out, char *err, size_t err_len);
void isd_rdma_mr_dereg(struct ibv_mr *mr);
/*
 * A registration with remote access for one command (an iWARP RDMA Read sink),
 * counted in remote_mrs while it lives and in remote_mrs_total. The caller
 * deregisters it with isd_rdma_remote_mr_dereg once the command's RDMA
 * operations are complete, before the memory is used for anything else.
 */
int isd_rdma_remote_mr_reg(struct isd_rdma_dev *d, void *base, size_t len, int access,
			   struct ibv_mr **out, char *err, size_t err_len);
void isd_rdma_remote_mr_dereg(struct ibv_mr *mr);

/* ---- memory registry ---- */

/*
 * Adds a region of `kind` and registers it on every open device (and on every
 * device opened later) with the standing access isd_rdma_access_plan gives it
 * (local only). Returns 0, -EEXIST if base is already a region, -ENOMEM, or
 * the registration error (err says why).
 */
int isd_rdma_mem_add(void *base, size_t len, enum isd_rdma_mem_kind kind, char *err,
		     size_t err_len);
/* Deregisters and forgets the region that starts at base. */
void isd_rdma_mem_remove(void *base);
/* lkey on device d of a registered region covering [addr, addr+len), and the
 * region's kind (kind may be NULL). 0 or -ENOENT. */
int isd_rdma_mem_find(struct isd_rdma_dev *d, const void *addr, size_t len, uint32_t *lkey,
		      enum isd_rdma_mem_kind *kind);

/* ---- registered data-buffer pool ---- */

/* Buffers up to this size come from size-class slabs; larger ones are registered
 * one by one (still zero copy, slower to allocate). */
#define ISD_RDMA_POOL_CLASS_MAX (1u << 20)
#define ISD_RDMA_POOL_SLAB (4u << 20)
/* Bytes of slabs the pool may hold; past it, buffers are registered one by one. */
#define ISD_RDMA_POOL_LIMIT (256u << 20)

/* A buffer of at least len bytes (4 KiB aligned), registered on every device. NULL
 * when memory or registration fails. */
void *isd_rdma_buf_alloc(size_t len);
void isd_rdma_buf_free(void *buf, size_t len);
/* Frees every idle slab (at exit, for leak checks). */
void isd_rdma_pool_trim(void);

/* ---- completion queues on a reactor ---- */

typedef void (*isd_rdma_cq_cb)(void *arg);

/* A CQ with its own completion channel, whose fd is on reactor r. When the CQ
 * has work, cb(arg) runs from the reactor; it polls with isd_rdma_cq_poll(). */
struct isd_rdma_cq {
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	struct isd_reactor *r;
	isd_rdma_cq_cb cb;
	void *arg;
	unsigned int unacked;           /* CQ events not yet acknowledged */
	bool on_reactor;
};

int isd_rdma_cq_create(struct isd_rdma_dev *d, struct isd_reactor *r, int depth,
		       isd_rdma_cq_cb cb, void *arg, struct isd_rdma_cq **out);
void isd_rdma_cq_destroy(struct isd_rdma_cq *cq);
/* Re-arms notification (after a poll came back short). */
int isd_rdma_cq_arm(struct isd_rdma_cq *cq);

/* ---- counters for leak checks ---- */
struct isd_rdma_stats {
	uint64_t devs;                  /* open devices */
	uint64_t mrs;                   /* live memory registrations (remote ones included) */
	uint64_t remote_mrs;            /* live registrations with remote access */
	uint64_t remote_mrs_total;      /* registrations with remote access ever made */
	uint64_t cqs;
	uint64_t qps;                   /* maintained by users through isd_rdma_count_qp */
	uint64_t regions;               /* registry regions */
	uint64_t bufs;                  /* pool buffers handed out */
	uint64_t slab_bytes;
};
void isd_rdma_get_stats(struct isd_rdma_stats *out);
void isd_rdma_count_qp(int delta);

/* "RLIMIT_MEMLOCK 8 MiB" style description of the current limit (for messages). */
void isd_rdma_memlock_str(char *out, size_t len);

#endif
