/*
 * The device server's front door: devices and logical units, I_T nexus state,
 * LUN addressing, and the order in which a command is checked (SAM-5 5.14,
 * SPC-5 5.14): LU exists -> unit attention -> opcode known -> reservation
 * conflict -> the opcode's own CDB checks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "reactor/reactor.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"
#include "util/log.h"

/* Commands from a transport that gives no nexus are all one anonymous nexus. */
static struct isd_scsi_nexus g_anon_nexus;

/*
 * The registry (scsi_int.h): every device of the process, for the copy
 * manager's designator lookup. g_reg_mu guards this list, every write of a
 * dev->lus slot (whose device's monitor is held as well, so the device's own
 * readers need no more), lu->dev once the LU is published, and the copy
 * references (copy_refs, orphan). Order: a device monitor, then g_reg_mu;
 * under g_reg_mu a monitor is only tried, never waited for.
 */
static TAILQ_HEAD(, isd_scsi_dev) g_devs = TAILQ_HEAD_INITIALIZER(g_devs);
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;

struct isd_scsi_nexus *
isd_scsi_cmd_nexus(struct isd_scsi_cmd *cmd)
{
	return cmd->nexus != NULL ? cmd->nexus : &g_anon_nexus;
}

uint32_t
isd_scsi_lun_decode(uint64_t lun_field)
{
	uint8_t b[8];

	put_be64(b, lun_field);
	/* Only the first level is used; a non-zero second..fourth level is some
	 * other device's address, not one of ours. */
	if (b[2] | b[3] | b[4] | b[5] | b[6] | b[7])
		return UINT32_MAX;
	switch (b[0] >> 6) {
	case 0: /* peripheral device addressing: bus identifier must be 0 */
		if ((b[0] & 0x3f) != 0)
			return UINT32_MAX;
		return b[1];
	case 1: /* flat space addressing */
		return ((uint32_t)(b[0] & 0x3f) << 8) | b[1];
	default:
		return UINT32_MAX;
	}
}

uint64_t
isd_scsi_lun_encode(uint32_t lun)
{
	if (lun < 256)
		return (uint64_t)lun << 48;
	return ((uint64_t)(0x40 | ((lun >> 8) & 0x3f)) << 56) | ((uint64_t)(lun & 0xff) << 48);
}

int
isd_scsi_dev_create(const char *name, struct isd_scsi_dev **out)
{
	struct isd_scsi_dev *dev = calloc(1, sizeof(*dev));

	if (dev == NULL)
		return -ENOMEM;
	snprintf(dev->name, sizeof(dev->name), "%s", name != NULL ? name : "");
	TAILQ_INIT(&dev->live);
	isd_monitor_init(&dev->mon);
	if (isd_monitor_init_shared(&dev->fast, &dev->mon) != 0) {
		isd_monitor_destroy(&dev->mon);
		free(dev);
		return -ENOMEM;
	}
	pthread_mutex_lock(&g_reg_mu);
	TAILQ_INSERT_TAIL(&g_devs, dev, link);
	pthread_mutex_unlock(&g_reg_mu);
	*out = dev;
	return 0;
}

static void
lu_free(struct isd_scsi_lu *lu)
{
	struct isd_scsi_itn *itn;

	while ((itn = TAILQ_FIRST(&lu->itns)) != NULL) {
		TAILQ_REMOVE(&lu->itns, itn, link);
		isd_xcopy_held_free(itn);
		free(itn);
	}
	isd_scsi_pr_clear_all(lu);
	isd_scsi_sanitize_stop(lu, false);
	isd_bstore_close(lu->bs);
	isd_scsi_pr_share_stop(lu);
	isd_scsi_sanitize_stop(lu, true);
	for (unsigned i = 0; i < ISD_MONITOR_SLOTS; i++)
		free(lu->slot_io[i]);
	free(lu);
}

/* The caller deregisters the store's memory (gone) before the store goes. */
static void
lu_gone_free_here(void *arg)
{
	struct isd_scsi_lu *lu = arg;

	if (lu->gone != NULL)
		lu->gone(lu->gone_arg, lu->bs);
	lu->gone = NULL;
	lu_free(lu);
}

/*
 * The last holder of a removed LU may be a command or a copy on any reactor,
 * but gone belongs to whoever removed it (the daemon deregisters the memory
 * from tables its control reactor owns) and the store was opened on one
 * reactor: so the free runs on the store's reactor, posted there when the
 * last holder is elsewhere. Nothing reaches the LU any more (out of every
 * table and list, no command or copy holds it), so it waits for the message
 * alone. With one reactor, or in_place (the device's destroy, which runs
 * where its owner tears it down, when no command is left and maybe after
 * the other loops ended), it is freed here.
 */
static void
lu_gone_free(struct isd_scsi_lu *lu, bool in_place)
{
	struct isd_reactor *home = lu->bs != NULL ? lu->bs->reactor : NULL;
	struct isd_reactor *here = isd_reactor_current();

	if (!in_place && isd_monitor_threaded() && home != NULL && here != NULL &&
	    here != home) {
		lu->free_msg.cb = lu_gone_free_here;
		lu->free_msg.arg = lu;
		isd_reactor_post(home, &lu->free_msg);
		return;
	}
	lu_gone_free_here(lu);
}

/*
 * A removed LU whose last command was released: out of dev->removed, then
 * freed, unless copies of other devices still hold it: then it leaves its
 * device (an orphan: no lookup finds it, nothing of the device reaches it)
 * and the last copy's put frees it. Its store stays open until then.
 */
static void
lu_reap(struct isd_scsi_lu *lu, bool in_place)
{
	/* a LU whose device went while a copy of another device held it is on no list */
	struct isd_scsi_lu **pp = lu->dev != NULL ? &lu->dev->removed : NULL;
	bool held;

	while (pp != NULL && *pp != NULL && *pp != lu)
		pp = &(*pp)->removed_next;
	if (pp != NULL && *pp == lu)
		*pp = lu->removed_next;
	lu->removed_next = NULL;
	pthread_mutex_lock(&g_reg_mu);
	held = lu->copy_refs > 0;
	if (held) {
		lu->orphan = true;
		lu->dev = NULL;
	}
	pthread_mutex_unlock(&g_reg_mu);
	if (!held)
		lu_gone_free(lu, in_place);
}

/*
 * lu->refs is atomic: commands on the shared path take and drop their holds
 * from several threads at once. Everything else about a LU's removal happens
 * under the monitor, which no shared section overlaps, so a hold dropped on
 * the shared path never finds the LU removed (release checks that first).
 */
static void
lu_ref_get(struct isd_scsi_lu *lu)
{
	__atomic_fetch_add(&lu->refs, 1, __ATOMIC_RELAXED);
}

static uint32_t
lu_refs(const struct isd_scsi_lu *lu)
{
	return __atomic_load_n(&lu->refs, __ATOMIC_RELAXED);
}

static void
lu_put(struct isd_scsi_lu *lu)
{
	uint32_t left = 0;

	if (lu_refs(lu) > 0)
		left = __atomic_sub_fetch(&lu->refs, 1, __ATOMIC_RELAXED);
	if (left == 0 && lu->removed)
		lu_reap(lu, false);
}

/* A copy's hold, from the thread of the copy's device (any). */
void
isd_scsi_lu_put(struct isd_scsi_lu *lu)
{
	bool last;

	pthread_mutex_lock(&g_reg_mu);
	if (lu->copy_refs > 0)
		lu->copy_refs--;
	last = lu->copy_refs == 0 && lu->orphan;
	pthread_mutex_unlock(&g_reg_mu);
	/*
	 * An orphan: no device, no lookup reaches it, this was its last holder.
	 * Its gone and the free run on the store's reactor (lu_gone_free).
	 */
	if (last)
		lu_gone_free(lu, false);
}

int
isd_scsi_lu_enter(struct isd_scsi_dev *own, struct isd_scsi_lu *lu, struct isd_monitor **held)
{
	int rc = 0;

	*held = NULL;
	/*
	 * lu->dev is read and the monitor tried under the registry mutex: the
	 * device cannot go in between (its destroy orphans its held LUs under
	 * the mutex, then waits for whoever is inside its monitor).
	 */
	pthread_mutex_lock(&g_reg_mu);
	if (lu->dev != NULL && lu->dev != own) {
		if (isd_monitor_try_enter(&lu->dev->mon))
			*held = &lu->dev->mon;
		else
			rc = -EBUSY;
	}
	pthread_mutex_unlock(&g_reg_mu);
	return rc;
}

void
isd_scsi_lu_hold(struct isd_scsi_lu *lu)
{
	lu_ref_get(lu);
}

void
isd_scsi_lu_unhold(struct isd_scsi_lu *lu)
{
	lu_put(lu);
}

void
isd_scsi_dev_destroy(struct isd_scsi_dev *dev)
{
	struct isd_scsi_lu *lu;

	if (dev == NULL)
		return;
	/*
	 * Inside the monitor: a copy of another device may have entered it
	 * (isd_scsi_lu_enter) to look at one of these LUs; once in, no copy
	 * is, and none will be (the LUs leave the registry below).
	 */
	isd_monitor_enter(&dev->mon);
	pthread_mutex_lock(&g_reg_mu);
	TAILQ_REMOVE(&g_devs, dev, link);
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if ((lu = dev->lus[i]) == NULL)
			continue;
		dev->lus[i] = NULL;
		/* as if removed with no command left: lu_reap frees or orphans it */
		lu->removed = true;
		lu->gone = NULL;
		lu->removed_next = dev->removed;
		dev->removed = lu;
	}
	/* a copy that holds one looks no more into this device (isd_scsi_lu_enter) */
	for (lu = dev->removed; lu != NULL; lu = lu->removed_next)
		lu->dev = NULL;
	pthread_mutex_unlock(&g_reg_mu);
	/* no command of this device may be in flight: every LU listed goes now */
	while ((lu = dev->removed) != NULL) {
		dev->removed = lu->removed_next;
		lu->removed_next = NULL;
		lu_reap(lu, true);
	}
	isd_monitor_leave(&dev->mon);
	isd_monitor_destroy(&dev->fast);
	isd_monitor_destroy(&dev->mon);
	for (unsigned i = 0; i < ISD_MONITOR_SLOTS; i++)
		free(dev->slot[i]);
	free(dev);
}

void
isd_scsi_lu_naa(const struct isd_scsi_lu *lu, uint8_t out[16])
{
	/* NAA IEEE Registered Extended (6h): NAA | 60 bits | 64-bit extension (the LUN
	 * number, or the one configured so that gateways present one LU). */
	put_be64(out, (6ull << 60) | lu->naa_id);
	put_be64(out + 8, lu->naa_ext);
}

static struct isd_scsi_lu *
dev_find_naa(struct isd_scsi_dev *dev, const uint8_t *naa, uint32_t len)
{
	uint8_t id[16];

	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		if (dev->lus[i] == NULL)
			continue;
		isd_scsi_lu_naa(dev->lus[i], id);
		if (memcmp(id, naa, len) == 0)
			return dev->lus[i];
	}
	return NULL;
}

struct isd_scsi_lu *
isd_scsi_lu_find_naa(struct isd_scsi_dev *prefer, const uint8_t *naa, uint32_t len)
{
	struct isd_scsi_dev *dev;
	struct isd_scsi_lu *lu = NULL;

	if (len != 16)
		return NULL;
	/* the slots of other devices change under their own monitors: read them here */
	pthread_mutex_lock(&g_reg_mu);
	if (prefer != NULL)
		lu = dev_find_naa(prefer, naa, len);
	TAILQ_FOREACH(dev, &g_devs, link) {
		if (lu != NULL)
			break;
		if (dev != prefer)
			lu = dev_find_naa(dev, naa, len);
	}
	/* held before the mutex goes: a removal now cannot free it under the copy */
	if (lu != NULL)
		lu->copy_refs++;
	pthread_mutex_unlock(&g_reg_mu);
	return lu;
}

static void
dev_luns_changed_in(struct isd_scsi_dev *dev)
{
	if (dev == NULL)
		return;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++)
		if (dev->lus[i] != NULL)
			isd_scsi_ua_raise_all(dev->lus[i], ISD_UA_LUNS_CHANGED, false, 0);
}

static int
dev_remove_lu_in(struct isd_scsi_dev *dev, uint32_t lun,
		       void (*gone)(void *arg, struct isd_bstore *bs), void *arg)
{
	struct isd_scsi_lu *lu;

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS || dev->lus[lun] == NULL)
		return -ENOENT;
	lu = dev->lus[lun];
	/* from now on the number names nothing: new commands get LU NOT SUPPORTED,
	 * and copies no longer find it */
	pthread_mutex_lock(&g_reg_mu);
	dev->lus[lun] = NULL;
	pthread_mutex_unlock(&g_reg_mu);
	dev->nlus--;
	lu->removed = true;
	lu->gone = gone;
	lu->gone_arg = arg;
	isd_scsi_dev_luns_changed(dev);
	if (lu_refs(lu) == 0) {
		lu_reap(lu, false);
		return 0;
	}
	lu->removed_next = dev->removed;
	dev->removed = lu;
	return 0;
}

static uint32_t
lu_busy_in(struct isd_scsi_dev *dev, uint32_t lun)
{
	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS || dev->lus[lun] == NULL)
		return 0;
	return lu_refs(dev->lus[lun]);
}

static int
lu_set_read_only_in(struct isd_scsi_dev *dev, uint32_t lun, bool read_only)
{
	struct isd_scsi_lu *lu;

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS || dev->lus[lun] == NULL)
		return -ENOENT;
	lu = dev->lus[lun];
	if (!read_only && lu->bs->read_only)
		return -EROFS;
	lu->read_only = read_only;
	return 0;
}

/* Copies an INQUIRY string, space padded, printable ASCII only (SPC-5 4.3.1). */
static void
ascii_pad(char *dst, size_t width, const char *src, const char *dflt)
{
	size_t i = 0;

	if (src == NULL || src[0] == '\0')
		src = dflt;
	for (; i < width && src[i] != '\0'; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : ' ';
	for (; i < width; i++)
		dst[i] = ' ';
	dst[width] = '\0';
}

/* FNV-1a, to derive stable identifiers when the configuration gives none. */
static uint64_t
fnv1a(const char *s, uint64_t h)
{
	for (; *s != '\0'; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static void
lu_update_capacity(struct isd_scsi_lu *lu)
{
	lu->nblocks = lu->bs->size / lu->block_size;
}

int
isd_scsi_phys_block_check(uint32_t block_size, uint32_t physical_block_size)
{
	uint32_t p = physical_block_size;

	if (p == 0)
		return 0;
	if (block_size == 0 || p < block_size || p > ISD_SCSI_MAX_PHYS_BLOCK || (p & (p - 1)) != 0 ||
	    p % block_size != 0)
		return -EINVAL;
	return 0;
}

static int
dev_add_lu_in(struct isd_scsi_dev *dev, uint32_t lun, const struct isd_scsi_lu_cfg *cfg)
{
	struct isd_scsi_lu *lu;
	char buf[64];

	if (dev == NULL || cfg == NULL || cfg->bstore == NULL || lun >= ISD_SCSI_MAX_LUNS)
		return -EINVAL;
	if (cfg->block_size != 512 && cfg->block_size != 4096)
		return -EINVAL;
	if (cfg->bstore->size < cfg->block_size)
		return -EINVAL;
	if (isd_scsi_phys_block_check(cfg->block_size, cfg->physical_block_size) < 0)
		return -EINVAL;
	if (isd_scsi_alua_state_name(cfg->alua_state) == NULL)
		return -EINVAL;
	if (dev->lus[lun] != NULL)
		return -EEXIST;
	lu = calloc(1, sizeof(*lu));
	if (lu == NULL)
		return -ENOMEM;
	TAILQ_INIT(&lu->itns);
	TAILQ_INIT(&lu->regs);
	TAILQ_INIT(&lu->pr_jobs);
	TAILQ_INIT(&lu->gate_wait);
	lu->dev = dev;
	lu->lun = lun;
	lu->bs = cfg->bstore;
	lu->block_size = cfg->block_size;
	if (cfg->physical_block_size != 0)
		while ((cfg->block_size << lu->lbppb_exp) < cfg->physical_block_size)
			lu->lbppb_exp++;
	lu_update_capacity(lu);
	lu->read_only = cfg->read_only || cfg->bstore->read_only;
	lu->thin = cfg->thin && cfg->bstore->can_discard;
	lu->lbprz = lu->thin && cfg->bstore->discard_zeroes;
	/* what the store frees whole (an RBD object), when it is a whole number of
	 * physical blocks that fits the field */
	if (lu->thin && cfg->bstore->discard_granularity != 0 &&
	    cfg->bstore->discard_granularity % ((uint64_t)lu->block_size << lu->lbppb_exp) == 0 &&
	    cfg->bstore->discard_granularity / lu->block_size <= UINT32_MAX)
		lu->unmap_gran_blocks = (uint32_t)(cfg->bstore->discard_granularity / lu->block_size);
	lu->wce = lu->wce_default = cfg->write_cache;
	ascii_pad(lu->vendor, 8, cfg->vendor, "ISERD");
	ascii_pad(lu->product, 16, cfg->product, "iserd disk");
	ascii_pad(lu->revision, 4, cfg->revision, "0001");
	if (cfg->serial[0] != '\0') {
		snprintf(lu->serial, sizeof(lu->serial), "%s", cfg->serial);
	} else {
		snprintf(buf, sizeof(buf), "%u", lun);
		snprintf(lu->serial, sizeof(lu->serial), "%016llx",
			 (unsigned long long)fnv1a(buf, fnv1a(dev->name, 0xcbf29ce484222325ull)));
	}
	lu->naa_id = cfg->naa_id & 0x0fffffffffffffffull;
	if (lu->naa_id == 0) {
		/* Locally derived, under an OUI-shaped prefix; configs should give one. */
		lu->naa_id = fnv1a(lu->serial, fnv1a(dev->name, 0xcbf29ce484222325ull)) &
			     0x0fffffffffffffffull;
	}
	lu->naa_ext = cfg->naa_ext_set ? cfg->naa_ext : lun;
	lu->alua_state = cfg->alua_state;
	lu->max_xfer_blocks = ISD_SCSI_MAX_XFER / lu->block_size;
	/* 1M blocks per UNMAP: what initiators (and libiscsi's checks) expect as a sane bound */
	lu->max_unmap_blocks = lu->thin ? 0x100000 : 0;
	lu->max_unmap_descs = lu->thin ? 256 : 0;
	/* As LIO: at most 0xffff blocks per WRITE SAME, which bounds the time one command holds the LU. */
	lu->max_ws_blocks = 0xffff;
	/*
	 * WRITE ATOMIC only where a write is one copy into memory made on this
	 * reactor (a RAM store): nothing else on the LU sees half of it. A file
	 * store's write is a request the kernel may split, so it gets none.
	 */
	if (cfg->bstore->mem_base != NULL) {
		lu->max_atomic_blocks = lu->max_xfer_blocks;
		lu->atomic_align = 1u << lu->lbppb_exp;
		lu->atomic_gran = 1u << lu->lbppb_exp;
	}
	/* published: from here on a copy of another device may find it */
	pthread_mutex_lock(&g_reg_mu);
	dev->lus[lun] = lu;
	pthread_mutex_unlock(&g_reg_mu);
	dev->nlus++;
	/* a store shared by gateways keeps the reservations: start from its state */
	isd_scsi_pr_share_start(lu);
	return 0;
}

static void
dev_set_task_ops_in(struct isd_scsi_dev *dev, const struct isd_scsi_task_ops *ops)
{
	if (dev == NULL)
		return;
	if (ops != NULL)
		dev->task_ops = *ops;
	else
		memset(&dev->task_ops, 0, sizeof(dev->task_ops));
}

static uint32_t
dev_lu_count_in(struct isd_scsi_dev *dev)
{
	return dev != NULL ? dev->nlus : 0;
}

static struct isd_scsi_lu *
lu_lookup(struct isd_scsi_dev *dev, uint64_t lun_field)
{
	uint32_t lun = isd_scsi_lun_decode(lun_field);

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS)
		return NULL;
	return dev->lus[lun];
}

static bool
lun_exists_in(struct isd_scsi_dev *dev, uint64_t lun)
{
	return lu_lookup(dev, lun) != NULL;
}

static int
lu_capacity_changed_in(struct isd_scsi_dev *dev, uint32_t lun)
{
	struct isd_scsi_lu *lu;

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS || dev->lus[lun] == NULL)
		return -ENOENT;
	lu = dev->lus[lun];
	lu_update_capacity(lu);
	isd_scsi_ua_raise_all(lu, ISD_UA_CAPACITY_CHANGED, false, 0);
	return 0;
}

/* ---- per-nexus state and unit attentions ---- */

static struct isd_scsi_itn *
itn_find(struct isd_scsi_lu *lu, uint64_t id)
{
	struct isd_scsi_itn *itn;

	TAILQ_FOREACH(itn, &lu->itns, link)
		if (itn->nexus_id == id)
			return itn;
	return NULL;
}

/*
 * A nexus seen for the first time at this LU starts with POWER ON, RESET, OR
 * BUS DEVICE RESET OCCURRED pending (SAM-5 6.3.1), whether or not the
 * transport announced it with isd_scsi_nexus_add().
 */
static void
itn_set_names(struct isd_scsi_itn *itn, const struct isd_scsi_nexus *nexus)
{
	snprintf(itn->iport, sizeof(itn->iport), "%s", nexus->initiator_port);
	snprintf(itn->tport, sizeof(itn->tport), "%s", nexus->target_port);
}

struct isd_scsi_itn *
isd_scsi_itn_find(struct isd_scsi_lu *lu, uint64_t nexus_id)
{
	return itn_find(lu, nexus_id);
}

struct isd_scsi_itn *
isd_scsi_itn_get(struct isd_scsi_lu *lu, struct isd_scsi_nexus *nexus)
{
	struct isd_scsi_itn *itn = itn_find(lu, nexus->id);

	if (itn != NULL)
		return itn;
	itn = calloc(1, sizeof(*itn));
	if (itn == NULL)
		return NULL;
	itn->nexus_id = nexus->id;
	itn_set_names(itn, nexus);
	itn->ua = ISD_UA_POWER_ON;
	TAILQ_INSERT_TAIL(&lu->itns, itn, link);
	return itn;
}

void
isd_scsi_ua_raise_all(struct isd_scsi_lu *lu, uint32_t ua, bool has_except, uint64_t except_id)
{
	struct isd_scsi_itn *itn;

	TAILQ_FOREACH(itn, &lu->itns, link)
		if (!has_except || itn->nexus_id != except_id)
			itn->ua |= ua;
}

static bool
itn_ports_match(const struct isd_scsi_itn *itn, const char *iport, const char *tport)
{
	return strcmp(itn->iport, iport) == 0 && strcmp(itn->tport, tport) == 0;
}

void
isd_scsi_ua_raise_ports(struct isd_scsi_lu *lu, uint32_t ua, const char *iport, const char *tport)
{
	struct isd_scsi_itn *itn;

	TAILQ_FOREACH(itn, &lu->itns, link) {
		if (itn_ports_match(itn, iport, tport))
			itn->ua |= ua;
	}
}

void
isd_scsi_itn_mark_abort(struct isd_scsi_lu *lu, const char *iport, const char *tport)
{
	struct isd_scsi_itn *itn;

	TAILQ_FOREACH(itn, &lu->itns, link) {
		if (itn_ports_match(itn, iport, tport))
			itn->pr_abort = true;
	}
}

static const uint16_t g_ua_asc[] = {
	ISD_ASC_POWER_ON_RESET,
	ISD_ASC_BUS_DEVICE_RESET,
	ISD_ASC_MODE_PARAMS_CHANGED,
	ISD_ASC_RESERVATIONS_PREEMPTED,
	ISD_ASC_RESERVATIONS_RELEASED,
	ISD_ASC_REGISTRATIONS_PREEMPTED,
	ISD_ASC_CAPACITY_CHANGED,
	ISD_ASC_ALUA_CHANGED,
	ISD_ASC_COMMANDS_CLEARED,
	ISD_ASC_REPORTED_LUNS_CHANGED,
	ISD_ASC_INQUIRY_CHANGED,
};

bool
isd_scsi_ua_take(struct isd_scsi_itn *itn, uint16_t *asc_ascq)
{
	unsigned bit;

	if (itn == NULL || itn->ua == 0)
		return false;
	bit = (unsigned)__builtin_ctz(itn->ua);
	if (bit >= sizeof(g_ua_asc) / sizeof(g_ua_asc[0])) {
		itn->ua = 0;
		return false;
	}
	*asc_ascq = g_ua_asc[bit];
	/* A power-on/reset report covers the lesser resets queued behind it. */
	if (bit == 0)
		itn->ua &= ~(ISD_UA_POWER_ON | ISD_UA_LUN_RESET);
	else
		itn->ua &= ~(1u << bit);
	return true;
}

static void
nexus_add_in(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus)
{
	if (dev == NULL || nexus == NULL)
		return;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		struct isd_scsi_lu *lu = dev->lus[i];
		struct isd_scsi_itn *itn;

		if (lu == NULL)
			continue;
		/* A fresh nexus that reuses an id gets a fresh state. */
		itn = itn_find(lu, nexus->id);
		if (itn != NULL) {
			itn_set_names(itn, nexus);
			itn->ua = ISD_UA_POWER_ON;
			itn->prevent = false;
			isd_xcopy_held_free(itn);
		} else if (isd_scsi_itn_get(lu, nexus) == NULL) {
			/* Created on its first command instead. */
			isd_log_warn("scsi: no memory for nexus state on LUN %u", i);
		}
	}
}

static void
nexus_remove_in(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus)
{
	if (dev == NULL || nexus == NULL)
		return;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
		struct isd_scsi_lu *lu = dev->lus[i];
		struct isd_scsi_itn *itn;

		if (lu == NULL)
			continue;
		/* SPC-2 reservations do not survive the nexus; PR registrations do. */
		if (lu->spc2_held && lu->spc2_nexus == nexus->id)
			lu->spc2_held = false;
		itn = itn_find(lu, nexus->id);
		if (itn != NULL) {
			TAILQ_REMOVE(&lu->itns, itn, link);
			isd_xcopy_held_free(itn);
			free(itn);
		}
	}
}

static void
lu_reset(struct isd_scsi_lu *lu, uint32_t ua, struct isd_scsi_nexus *from)
{
	struct isd_scsi_itn *itn;

	lu->spc2_held = false;
	lu->reset_gen++;
	TAILQ_FOREACH(itn, &lu->itns, link) {
		itn->prevent = false;
		if (from == NULL || itn->nexus_id != from->id)
			itn->ua |= ua;
	}
}

static int
lu_reset_in(struct isd_scsi_dev *dev, uint64_t lun, struct isd_scsi_nexus *from)
{
	struct isd_scsi_lu *lu = lu_lookup(dev, lun);

	if (lu == NULL)
		return -ENOENT;
	/*
	 * SAM-5 6.3.3: a logical unit reset establishes 29h/03h for every I_T
	 * nexus, the one that asked included (as LIO does; libiscsi's
	 * MultipathIO.Reset checks each path, the resetting one too).
	 */
	(void)from;
	lu_reset(lu, ISD_UA_LUN_RESET, NULL);
	return 0;
}

static void
dev_reset_in(struct isd_scsi_dev *dev, struct isd_scsi_nexus *from)
{
	if (dev == NULL)
		return;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++)
		if (dev->lus[i] != NULL)
			lu_reset(dev->lus[i], ISD_UA_POWER_ON, from);
}

/* ---- buffers ---- */

void *
isd_scsi_buf_alloc(struct isd_scsi_cmd *cmd, uint32_t len)
{
	void *p;

	if (len == 0 || cmd->priv_buf != NULL)
		return NULL;
	if (cmd->buf_ops != NULL && cmd->buf_ops->alloc != NULL)
		p = cmd->buf_ops->alloc(cmd->buf_ops->ctx, len,
					cmd->lu != NULL ? cmd->lu->bs->mem_align : 0);
	else
		p = malloc(len);
	if (p == NULL)
		return NULL;
	cmd->priv_buf = p;
	cmd->priv_buf_len = len;
	cmd->iov[0].iov_base = p;
	cmd->iov[0].iov_len = len;
	cmd->iovcnt = 1;
	return p;
}

static void
buf_free(struct isd_scsi_cmd *cmd)
{
	if (cmd->priv_buf != NULL) {
		if (cmd->buf_ops != NULL && cmd->buf_ops->alloc != NULL) {
			if (cmd->buf_ops->free != NULL)
				cmd->buf_ops->free(cmd->buf_ops->ctx, cmd->priv_buf,
						   cmd->priv_buf_len);
		} else {
			free(cmd->priv_buf);
		}
	}
	cmd->priv_buf = NULL;
	cmd->priv_buf_len = 0;
	free(cmd->aux_buf);
	cmd->aux_buf = NULL;
	cmd->aux_len = 0;
}

int
isd_scsi_data_in(struct isd_scsi_cmd *cmd, const void *buf, uint32_t len)
{
	uint32_t n = len < cmd->xfer_len ? len : cmd->xfer_len;
	void *p;

	cmd->data_in_len = 0;
	if (n == 0)
		return 0;
	p = isd_scsi_buf_alloc(cmd, n);
	if (p == NULL) {
		cmd->status = ISD_SAM_BUSY;
		cmd->sense_len = 0;
		return -ENOMEM;
	}
	memcpy(p, buf, n);
	cmd->data_in_len = n;
	return 0;
}

/*
 * EDTL smaller than the CDB's transfer: libiscsi's residual tests
 * (test_write10_residuals.c) expect GOOD with an overflow residual, and only
 * the blocks that fully arrived written. So the buffer is min(edtl, xfer_len)
 * and each command decides in exec what a short data-out means for it.
 */
int
isd_scsi_setup_data_out(struct isd_scsi_cmd *cmd, uint32_t xfer_len)
{
	uint32_t n = cmd->edtl < xfer_len ? cmd->edtl : xfer_len;

	cmd->dir = ISD_SCSI_DIR_OUT;
	cmd->xfer_len = xfer_len;
	cmd->data_out_len = n;
	if (n == 0)
		return ISD_SCSI_SETUP_READY;
	if (cmd->data_out_preset != NULL && cmd->data_out_preset_len >= n) {
		/* all of it came with the command: use it where it lies */
		cmd->iov[0].iov_base = (void *)cmd->data_out_preset;
		cmd->iov[0].iov_len = n;
		cmd->iovcnt = 1;
		cmd->data_out_preset_used = true;
		return ISD_SCSI_SETUP_READY;
	}
	if (isd_scsi_buf_alloc(cmd, n) == NULL) {
		cmd->status = ISD_SAM_BUSY;
		return ISD_SCSI_SETUP_DONE;
	}
	return ISD_SCSI_SETUP_READY;
}

int
isd_scsi_setup_data_in(struct isd_scsi_cmd *cmd, uint32_t alloc_len)
{
	cmd->dir = ISD_SCSI_DIR_IN;
	cmd->xfer_len = alloc_len;
	return ISD_SCSI_SETUP_READY;
}

/* ---- command flow ---- */

static void
cmd_done_call(void *arg)
{
	struct isd_scsi_cmd *cmd = arg;

	cmd->done(cmd);
}

void
isd_scsi_cmd_done(struct isd_scsi_cmd *cmd)
{
	if (cmd->status != ISD_SAM_GOOD && cmd->dir == ISD_SCSI_DIR_IN)
		cmd->data_in_len = 0;
	/* counted before the transport sees it: done may release the command */
	isd_scsi_io_done(cmd, false);
	if (cmd->io_flags & ISD_SCSI_IOF_GATED)
		isd_sbc_gate_leave(cmd);
	/* a zero-copy write is done only once its exec ran: all its data is in */
	if (cmd->io_flags & ISD_SCSI_IOF_GATE_DIRECT)
		isd_sbc_gate_direct_leave(cmd);
	/* the transport hears of it outside the monitor (util/monitor.h) */
	if (cmd->done != NULL)
		isd_monitor_after(&cmd->done_call, cmd_done_call, cmd);
}

/* SPC-5 5.14 and table 'commands allowed in the presence of persistent reservations'. */
static bool
reservation_conflict(struct isd_scsi_lu *lu, const struct isd_scsi_op *op,
		     struct isd_scsi_nexus *nexus)
{
	bool registered;

	if (lu->spc2_held && lu->spc2_nexus != nexus->id && !(op->flags & ISD_OPF_SPC2_ALLOW))
		return true;
	if (!lu->pr_held || (op->flags & ISD_OPF_PR_ALLOW))
		return false;
	if (isd_scsi_pr_is_holder(lu, nexus))
		return false;
	registered = isd_scsi_pr_find(lu, nexus) != NULL;
	switch (lu->pr_type) {
	case ISD_PR_WE:
		return !(op->flags & ISD_OPF_PR_READ);
	case ISD_PR_EA:
		return true;
	case ISD_PR_WE_RO:
	case ISD_PR_WE_AR:
		return !registered && !(op->flags & ISD_OPF_PR_READ);
	case ISD_PR_EA_RO:
	case ISD_PR_EA_AR:
		return !registered;
	default:
		return false;
	}
}

bool
isd_scsi_lu_conflict(struct isd_scsi_lu *lu, struct isd_scsi_nexus *nexus, bool write)
{
	static const struct isd_scsi_op rd = { .flags = ISD_OPF_PR_READ };
	static const struct isd_scsi_op wr = { .flags = 0 };

	return reservation_conflict(lu, write ? &wr : &rd, nexus);
}

/* ---- fencing: what a reservation change does to commands already under way ---- */

/*
 * A command passed the reservation check when it started, but its data may
 * reach the store much later (after R2T and Data-Out, an RDMA Read, a file
 * read for COMPARE AND WRITE). Two things keep a nexus that lost access from
 * storing anything after the change:
 *
 *  - isd_scsi_may_store() checks again at the moment data is handed to the
 *    store (every exec, and each step of WRITE SAME, UNMAP, COMPARE AND
 *    WRITE), so a staged write finishes with RESERVATION CONFLICT instead;
 *  - a write with data_out_direct (RAM LU) has no such moment: each Data-Out
 *    is copied, or RDMA-read, straight into LU memory as it arrives, and exec
 *    only reports. Checking there is too late. So the change itself ends those
 *    writes (through the transport's abort_one) before the command that made
 *    it completes: the initiator that made the change sees GOOD only once no
 *    later Data-Out of the fenced writes can land, because their transfers are
 *    gone and the transport discards Data-Out for aborted tasks. An RDMA Read
 *    already posted cannot be called back: the datamover holds the answer
 *    until it has completed (task_cleanup's fence, dm.h), so what of it lands,
 *    lands before GOOD, as part of a command that was under way.
 *
 * PREEMPT AND ABORT also aborts every task of the preempted nexuses on the LU
 * (SPC-5 5.14.11.2.5, as by CLEAR TASK SET on each). With TAS = 0 in our
 * Control mode page, each nexus that lost tasks this way, other than the one
 * that caused it, gets COMMANDS CLEARED BY ANOTHER INITIATOR (SAM-5 5.6).
 */
static bool
fence_match(void *arg, struct isd_scsi_cmd *victim)
{
	struct isd_scsi_cmd *self = arg;
	struct isd_scsi_lu *lu = self->lu;
	struct isd_scsi_nexus *n;
	struct isd_scsi_itn *itn;
	const struct isd_scsi_op *op = victim->op;
	bool hit;

	if (lu == NULL || victim->lu != lu)
		return false;
	n = isd_scsi_cmd_nexus(victim);
	itn = itn_find(lu, n->id);
	hit = (itn != NULL && itn->pr_abort) ||
	      (victim->data_out_direct && op != NULL && reservation_conflict(lu, op, n));
	if (hit && itn != NULL && n->id != isd_scsi_cmd_nexus(self)->id)
		itn->ua |= ISD_UA_CMDS_CLEARED;
	return hit;
}

/* the transport's call, when the aborted tasks are gone */
static void
fence_drained(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	isd_monitor_enter(mon);
	isd_scsi_cmd_done(cmd);
	isd_monitor_leave(mon);
}

static void dev_each_cmd_in(struct isd_scsi_dev *dev,
			    bool (*fn)(void *arg, struct isd_scsi_cmd *cmd), void *arg);

/* One pick of victims: the transport's handle, and who decides. */
struct fence_pick {
	struct isd_scsi_dev *dev;
	struct isd_scsi_cmd *self;
	bool (*match)(void *arg, struct isd_scsi_cmd *victim);
	void *arg;
	void *wait;
};

static bool
fence_pick_one(void *arg, struct isd_scsi_cmd *victim)
{
	struct fence_pick *p = arg;

	if (victim == p->self || victim->aborted || !p->match(p->arg, victim))
		return false;
	return p->dev->task_ops.abort_one(p->dev->task_ops.ctx, victim, p->wait);
}

/*
 * Aborts what match selects among the device's live commands; true when
 * drained(self) will be called later.
 */
static bool
fence_abort(struct isd_scsi_dev *dev, struct isd_scsi_cmd *self,
	    bool (*match)(void *arg, struct isd_scsi_cmd *victim), void *arg,
	    void (*drained)(struct isd_scsi_cmd *self))
{
	const struct isd_scsi_task_ops *ops = &dev->task_ops;
	struct fence_pick p = {.dev = dev, .self = self, .match = match, .arg = arg};

	if (ops->abort_one == NULL)
		return false;
	if (ops->abort_begin != NULL)
		p.wait = ops->abort_begin(ops->ctx, self, drained);
	dev_each_cmd_in(dev, fence_pick_one, &p);
	return p.wait != NULL && ops->abort_end != NULL && ops->abort_end(ops->ctx, p.wait);
}

/* Returns true when drained(cmd) will be called later. */
static bool
fence_run(struct isd_scsi_cmd *cmd, void (*drained)(struct isd_scsi_cmd *))
{
	struct isd_scsi_dev *dev = cmd->lu != NULL ? cmd->lu->dev : NULL;
	struct isd_scsi_itn *itn;
	bool wait;

	if (dev == NULL)
		return false;
	wait = fence_abort(dev, cmd, fence_match, cmd, drained);
	TAILQ_FOREACH(itn, &cmd->lu->itns, link)
		itn->pr_abort = false;
	return wait;
}

void
isd_scsi_fence_done(struct isd_scsi_cmd *cmd)
{
	if (!fence_run(cmd, fence_drained))
		isd_scsi_cmd_done(cmd);
}

void
isd_scsi_fence(struct isd_scsi_cmd *cmd)
{
	(void)fence_run(cmd, NULL);
}

/* Another gateway's PREEMPT AND ABORT: the victims are chosen as by fence_match. */
static bool
fence_match_lu(void *arg, struct isd_scsi_cmd *victim)
{
	struct isd_scsi_lu *lu = arg;
	struct isd_scsi_nexus *n;
	struct isd_scsi_itn *itn;
	const struct isd_scsi_op *op = victim->op;
	bool hit;

	if (victim->lu != lu)
		return false;
	n = isd_scsi_cmd_nexus(victim);
	itn = itn_find(lu, n->id);
	hit = (itn != NULL && itn->pr_abort) ||
	      (victim->data_out_direct && op != NULL && reservation_conflict(lu, op, n));
	if (hit && itn != NULL)
		itn->ua |= ISD_UA_CMDS_CLEARED;
	return hit;
}

/*
 * The transport's abort_begin wants the command that asked: a blank one of
 * this device (no task: cb_arg NULL) stands for the other gateway's, matches
 * no task, and carries the callback to run once the aborted execs are done.
 */
struct lu_fence {
	struct isd_scsi_cmd self;       /* first: drained() gets &self */
	void (*done)(void *arg);
	void *arg;
};

static void
fence_lu_drained(struct isd_scsi_cmd *self)
{
	struct lu_fence *f = (struct lu_fence *)self;
	struct isd_monitor *mon = isd_scsi_dev_monitor(f->self.dev);

	isd_monitor_enter(mon);
	f->done(f->arg);
	isd_monitor_leave(mon);
	free(f);
}

static void
fence_lu_in(struct isd_scsi_lu *lu, void (*done)(void *arg), void *arg)
{
	struct isd_scsi_dev *dev = lu->dev;
	struct isd_scsi_itn *itn;
	struct lu_fence *f = calloc(1, sizeof(*f));
	bool wait = false;

	if (f != NULL && dev != NULL) {
		f->self.dev = dev;
		f->self.lu = lu;
		f->done = done;
		f->arg = arg;
		wait = fence_abort(dev, &f->self, fence_match_lu, lu, fence_lu_drained);
	}
	TAILQ_FOREACH(itn, &lu->itns, link)
		itn->pr_abort = false;
	if (!wait) {
		free(f);
		done(arg);
	}
}

bool
isd_scsi_may_store(struct isd_scsi_cmd *cmd)
{
	const struct isd_scsi_op *op = cmd->op;

	if (cmd->aborted) {
		cmd->status = ISD_SAM_TASK_ABORTED;
		cmd->sense_len = 0;
		return false;
	}
	if (cmd->lu != NULL && op != NULL &&
	    reservation_conflict(cmd->lu, op, isd_scsi_cmd_nexus(cmd))) {
		cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		cmd->sense_len = 0;
		return false;
	}
	return true;
}

/* CDB length of an opcode group (SAM-5 5.2); 0 for variable/vendor groups. */
static uint32_t
group_cdb_len(uint8_t opcode)
{
	switch (opcode >> 5) {
	case 0:
		return 6;
	case 1:
	case 2:
		return 10;
	case 4:
		return 16;
	case 5:
		return 12;
	default:
		return 0;
	}
}

static void
cmd_reset_results(struct isd_scsi_cmd *cmd)
{
	cmd->dir = ISD_SCSI_DIR_NONE;
	cmd->xfer_len = 0;
	cmd->iovcnt = 0;
	memset(cmd->iov, 0, sizeof(cmd->iov));
	cmd->status = ISD_SAM_GOOD;
	cmd->sense_len = 0;
	cmd->data_in_len = 0;
	cmd->lu = NULL;
	cmd->priv_buf = NULL;
	cmd->priv_buf_len = 0;
	cmd->aborted = false;
	cmd->lba = 0;
	cmd->nblocks = 0;
	cmd->priv = NULL;
	cmd->op = NULL;
	cmd->io_flags = 0;
	cmd->data_out_len = 0;
	cmd->data_out_direct = false;
	cmd->io_pos = 0;
	cmd->io_end = 0;
	cmd->aux_buf = NULL;
	cmd->aux_len = 0;
}

/* A command finished in setup has nothing left for exec (should exec be called anyway). */
static int
op_setup(struct isd_scsi_cmd *cmd, const struct isd_scsi_op *op)
{
	int rc = op->setup(cmd);

	if (rc != ISD_SCSI_SETUP_READY)
		cmd->op = NULL;
	return rc;
}

/*
 * SBC-4 4.11.1: while a sanitize operation runs, only INQUIRY, REPORT LUNS and
 * REQUEST SENSE (the commands answered even without the LU) are processed; the
 * rest get NOT READY, SANITIZE IN PROGRESS with how far it is. After a failed
 * one, media access gets MEDIUM ERROR until a SANITIZE ends the failure mode.
 */
static bool
sanitize_blocks(struct isd_scsi_cmd *cmd, struct isd_scsi_lu *lu, const struct isd_scsi_op *op)
{
	if (op->flags & ISD_OPF_NO_LU)
		return false;
	if (lu->sanitize != NULL) {
		isd_scsi_check(cmd, ISD_SK_NOT_READY, ISD_ASC_SANITIZE_IN_PROGRESS);
		isd_scsi_sense_progress(cmd, isd_scsi_sanitize_progress(lu));
		return true;
	}
	if (lu->san_failed && op->opcode != 0x48 && !(op->flags & ISD_OPF_PR_ALLOW)) {
		isd_scsi_check(cmd, ISD_SK_MEDIUM_ERROR, ISD_ASC_SANITIZE_FAILED);
		return true;
	}
	return false;
}

static int
cmd_setup(struct isd_scsi_cmd *cmd)
{
	const struct isd_scsi_op *op;
	struct isd_scsi_nexus *nexus = isd_scsi_cmd_nexus(cmd);
	struct isd_scsi_itn *itn;
	struct isd_scsi_lu *lu;
	bool opcode_known;
	uint32_t need;
	uint16_t asc;
	uint8_t opcode;
	int rc;

	cmd_reset_results(cmd);
	if (cmd->cdb == NULL || cmd->cdb_len < 6 || cmd->cdb_len > 260) {
		isd_scsi_invalid_cdb(cmd, 0, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	opcode = cmd->cdb[0];
	op = isd_scsi_op_find(opcode, cmd->cdb[1] & 0x1f, &opcode_known);
	lu = lu_lookup(cmd->dev, cmd->lun);
	if (lu == NULL) {
		/* SPC-5 4.? / SAM-5: INQUIRY, REPORT LUNS and REQUEST SENSE answer for
		 * a LUN that is not there; everything else is LU NOT SUPPORTED. */
		if (op == NULL || !(op->flags & ISD_OPF_NO_LU)) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_LU_NOT_SUPPORTED);
			return ISD_SCSI_SETUP_DONE;
		}
		cmd->op = op;
		return op_setup(cmd, op);
	}
	cmd->lu = lu;
	/* held until release, so that a removal waits for this command */
	cmd->lu_ref = lu;
	lu_ref_get(lu);
	itn = isd_scsi_itn_get(lu, nexus);
	if (itn == NULL) {
		cmd->status = ISD_SAM_BUSY;
		return ISD_SCSI_SETUP_DONE;
	}
	if ((op == NULL || !(op->flags & ISD_OPF_UA_EXEMPT)) && isd_scsi_ua_take(itn, &asc)) {
		isd_scsi_check(cmd, ISD_SK_UNIT_ATTENTION, asc);
		return ISD_SCSI_SETUP_DONE;
	}
	if (op == NULL && opcode_known) {
		/* A known opcode with a service action we do not implement. */
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	/* REPORT TARGET PORT GROUPS without ALUA: answered as before it existed,
	 * a MAINTENANCE IN service action we do not implement. */
	if (op != NULL && (op->flags & ISD_OPF_ALUA) && cmd->dev->alua.group == 0) {
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	if (op == NULL || ((op->flags & ISD_OPF_THIN) && !lu->thin) ||
	    ((op->flags & ISD_OPF_ATOMIC) && lu->max_atomic_blocks == 0)) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_INVALID_OPCODE);
		isd_scsi_sense_field(cmd, true, 0, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	need = op->cdb_len != 0 ? op->cdb_len : group_cdb_len(opcode);
	if (need == 0 || cmd->cdb_len < need) {
		isd_scsi_invalid_cdb(cmd, 0, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	/* NACA: we do not support ACA (INQUIRY NORMACA = 0), so NACA = 1 is invalid. */
	if (cmd->cdb[need - 1] & 0x04) {
		isd_scsi_invalid_cdb(cmd, (uint16_t)(need - 1), 2);
		return ISD_SCSI_SETUP_DONE;
	}
	/* SPC-5 5.16.2.4: the access state is checked before reservations (a
	 * standby path answers NOT READY whoever holds the LU). */
	if (isd_alua_refuses(cmd, lu, op))
		return ISD_SCSI_SETUP_DONE;
	if (reservation_conflict(lu, op, nexus)) {
		cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		return ISD_SCSI_SETUP_DONE;
	}
	if (sanitize_blocks(cmd, lu, op))
		return ISD_SCSI_SETUP_DONE;
	cmd->op = op;
	rc = op_setup(cmd, op);
	/* anything that may now write ends what a BLOCK ERASE left deallocated */
	if (rc == ISD_SCSI_SETUP_READY && !(op->flags & (ISD_OPF_PR_READ | ISD_OPF_PR_ALLOW)))
		lu->erased = false;
	return rc;
}

static int
cmd_setup_in(struct isd_scsi_cmd *cmd)
{
	uint64_t t0 = cmd->arrival_ns != 0 ? cmd->arrival_ns : isd_now_ns();
	int rc;

	/* live until release, whatever setup decides: release is owed either way */
	cmd->fast = false;
	if (cmd->dev != NULL && !cmd->live) {
		TAILQ_INSERT_TAIL(&cmd->dev->live, cmd, live_link);
		cmd->live = true;
		cmd->live_on = &cmd->dev->live;
	}
	rc = cmd_setup(cmd);

	/* counted once the LU it goes to is known; one finished here is complete */
	isd_scsi_io_start(cmd, t0);
	if (rc == ISD_SCSI_SETUP_DONE)
		isd_scsi_io_done(cmd, false);
	return rc;
}

static void
cmd_exec_in(struct isd_scsi_cmd *cmd)
{
	const struct isd_scsi_op *op = cmd->op;

	if (cmd->aborted) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (op == NULL || op->exec == NULL || cmd->status != ISD_SAM_GOOD) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	/* The reservation may have changed while the data-out came in (see fencing). */
	if (!isd_scsi_may_store(cmd)) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	op->exec(cmd);
}

static void
cmd_abort_in(struct isd_scsi_cmd *cmd)
{
	cmd->aborted = true;
	cmd->status = ISD_SAM_TASK_ABORTED;
	cmd->sense_len = 0;
	cmd->data_in_len = 0;
	isd_scsi_io_done(cmd, false);
}

static void
cmd_cancel_in(struct isd_scsi_cmd *cmd)
{
	cmd->aborted = true;
	(void)isd_scsi_sanitize_cancel(cmd);
}

/*
 * fn may release the command it is shown, or others (an abort on the spot
 * frees the task): after it did, the walk starts again from the head and
 * skips what this pass has shown already. A pass costs the live commands
 * times the local aborts, which are rare.
 */
static void
dev_each_cmd_in(struct isd_scsi_dev *dev, bool (*fn)(void *arg, struct isd_scsi_cmd *cmd),
		void *arg)
{
	uint64_t gen = ++dev->walk_gen;
	struct isd_scsi_live *list;
	struct isd_scsi_cmd *cmd;

	/* the device's list, then each slot's (the shared path's commands) */
again:
	for (int i = -1; i < ISD_MONITOR_SLOTS; i++) {
		if (i < 0)
			list = &dev->live;
		else if (dev->slot[i] != NULL)
			list = &dev->slot[i]->live;
		else
			continue;
		TAILQ_FOREACH(cmd, list, live_link) {
			if (cmd->walk_gen == gen)
				continue;
			cmd->walk_gen = gen;
			if (fn(arg, cmd))
				goto again;
		}
	}
}

static void
cmd_release_in(struct isd_scsi_cmd *cmd)
{
	if (cmd->live) {
		TAILQ_REMOVE(cmd->live_on, cmd, live_link);
		cmd->live = false;
		cmd->live_on = NULL;
	}
	/* set up, then neither run nor aborted: the transport gave it up */
	isd_scsi_io_done(cmd, true);
	/* a zero-copy write that never ran: none of its data can land any more
	 * (the datamover's fence, dm.h; sbc.c, the gate) */
	if (cmd->io_flags & ISD_SCSI_IOF_GATE_DIRECT)
		isd_sbc_gate_direct_leave(cmd);
	buf_free(cmd);
	cmd->iovcnt = 0;
	cmd->op = NULL;
	if (cmd->lu_ref != NULL) {
		struct isd_scsi_lu *lu = cmd->lu_ref;

		cmd->lu_ref = NULL;
		lu_put(lu);
	}
}

/*
 * ---- the shared path: READ and WRITE on a quiet LU ----
 *
 * With several reactors, a READ or WRITE whose LU has nothing unusual about
 * it is set up, run and released under the device's shared face (dev->fast,
 * util/monitor.h; each step a section of its own), so commands of different
 * reactors do not take turns in the monitor. What such a section reads (the LU table, the LU's
 * reservation, unit attention, sanitize, ALUA and size, the nexus's state)
 * is written only under the monitor, which no shared section overlaps: it
 * is what it was when the command looked, for the whole section. What it
 * writes is its own: the command, the LU's hold count (atomic), and the
 * thread's slot (its live list, its share of the device's and the LU's
 * figures), which the monitor's holders walk and sum. So a PREEMPT AND
 * ABORT, a reset or a LU removal (under the monitor) finds every command
 * that got past setup on a live list, and every command that sets up after
 * it sees what it changed and takes the monitor, as does exec's check of
 * the reservation. A write to a store with a write gate (file, block
 * device, RBD) passes it counted atomically, or runs its exec under the
 * monitor when it would wait there (sbc.c).
 */

static bool
fast_opcode(uint8_t opcode)
{
	switch (opcode) {
	case 0x08: case 0x0a:                   /* READ(6), WRITE(6) */
	case 0x28: case 0x2a: case 0x2e:        /* READ(10), WRITE(10), WRITE AND VERIFY(10) */
	case 0x88: case 0x8a: case 0x8e:        /* (16) */
	case 0xa8: case 0xaa: case 0xae:        /* (12) */
		return true;
	default:
		return false;
	}
}

/* This thread's slot of dev (and its share of lu's figures), made at first use. */
static struct isd_scsi_dev_slot *
fast_slot(struct isd_scsi_dev *dev, struct isd_scsi_lu *lu, struct isd_io_stats **lu_io)
{
	int s = isd_monitor_slot();
	struct isd_scsi_dev_slot *ds;

	if (s < 0)
		return NULL;
	ds = dev->slot[s];
	if (ds == NULL) {
		ds = calloc(1, sizeof(*ds));
		if (ds == NULL)
			return NULL;
		TAILQ_INIT(&ds->live);
		dev->slot[s] = ds;
	}
	if (lu->slot_io[s] == NULL) {
		lu->slot_io[s] = calloc(1, sizeof(*lu->slot_io[s]));
		if (lu->slot_io[s] == NULL)
			return NULL;
	}
	*lu_io = lu->slot_io[s];
	return ds;
}

/* A command set up on the shared path, on the thread whose slot has it. */
static bool
fast_here(const struct isd_scsi_cmd *cmd)
{
	int s = isd_monitor_slot();

	return cmd->fast && cmd->live && s >= 0 && cmd->dev->slot[s] != NULL &&
	       cmd->live_on == &cmd->dev->slot[s]->live;
}

/* Under the shared face. -EAGAIN, having changed nothing, when it needs the monitor. */
static int
cmd_setup_fast(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_dev *dev = cmd->dev;
	const struct isd_scsi_op *op;
	struct isd_scsi_dev_slot *ds;
	struct isd_io_stats *lu_io;
	struct isd_scsi_itn *itn;
	struct isd_scsi_lu *lu;
	bool known;
	uint64_t t0;
	int rc;

	if (cmd->live || cmd->cdb == NULL || cmd->cdb_len < 6 || cmd->cdb_len > 260)
		return -EAGAIN;
	op = isd_scsi_op_find(cmd->cdb[0], cmd->cdb[1] & 0x1f, &known);
	if (op == NULL || (op->setup != isd_sbc_setup_read && op->setup != isd_sbc_setup_write))
		return -EAGAIN;
	/* short, or NACA set: the monitor's path answers it */
	if (op->cdb_len == 0 || cmd->cdb_len < op->cdb_len || (cmd->cdb[op->cdb_len - 1] & 0x04))
		return -EAGAIN;
	lu = lu_lookup(dev, cmd->lun);
	if (lu == NULL || lu->erased || lu->sanitize != NULL || lu->san_failed ||
	    lu->spc2_held || lu->pr_held)
		return -EAGAIN;
	if (dev->alua.group != 0 && lu->alua_state != ISD_ALUA_ACTIVE_OPTIMIZED &&
	    lu->alua_state != ISD_ALUA_ACTIVE_NON_OPTIMIZED)
		return -EAGAIN;
	/* a nexus new to the LU, or with a unit attention to report: the monitor */
	itn = itn_find(lu, isd_scsi_cmd_nexus(cmd)->id);
	if (itn == NULL || itn->ua != 0)
		return -EAGAIN;
	ds = fast_slot(dev, lu, &lu_io);
	if (ds == NULL)
		return -EAGAIN;

	t0 = cmd->arrival_ns != 0 ? cmd->arrival_ns : isd_now_ns();
	cmd_reset_results(cmd);
	cmd->fast = true;
	TAILQ_INSERT_TAIL(&ds->live, cmd, live_link);
	cmd->live = true;
	cmd->live_on = &ds->live;
	cmd->lu = lu;
	cmd->lu_ref = lu;
	lu_ref_get(lu);
	cmd->op = op;
	rc = op_setup(cmd, op);
	cmd->io_dev_st = &ds->io;
	cmd->io_lu_st = lu_io;
	ds->cmds++;
	isd_scsi_io_start(cmd, t0);
	if (rc == ISD_SCSI_SETUP_DONE)
		isd_scsi_io_done(cmd, false);
	return rc;
}

bool
isd_scsi_shared_here(const struct isd_scsi_cmd *cmd)
{
	return cmd->fast && cmd->dev != NULL && isd_monitor_shared(&cmd->dev->fast);
}

/* Under the shared face: false, having done nothing, when the LU was removed
 * (the last hold may free it: the monitor's work). */
static bool
cmd_release_fast(struct isd_scsi_cmd *cmd)
{
	if (cmd->lu_ref != NULL && cmd->lu_ref->removed)
		return false;
	cmd_release_in(cmd);
	return true;
}

/* ---- the ways in from outside: each enters the device's monitor ---- */

int
isd_scsi_dev_add_lu(struct isd_scsi_dev *dev, uint32_t lun, const struct isd_scsi_lu_cfg *cfg)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = dev_add_lu_in(dev, lun, cfg);
	isd_monitor_leave(mon);
	return rc;
}

void
isd_scsi_dev_set_task_ops(struct isd_scsi_dev *dev, const struct isd_scsi_task_ops *ops)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	dev_set_task_ops_in(dev, ops);
	isd_monitor_leave(mon);
}

uint32_t
isd_scsi_dev_lu_count(struct isd_scsi_dev *dev)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	uint32_t rc;

	isd_monitor_enter(mon);
	rc = dev_lu_count_in(dev);
	isd_monitor_leave(mon);
	return rc;
}

bool
isd_scsi_lun_exists(struct isd_scsi_dev *dev, uint64_t lun)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	bool rc;

	isd_monitor_enter(mon);
	rc = lun_exists_in(dev, lun);
	isd_monitor_leave(mon);
	return rc;
}

int
isd_scsi_lu_capacity_changed(struct isd_scsi_dev *dev, uint32_t lun)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = lu_capacity_changed_in(dev, lun);
	isd_monitor_leave(mon);
	return rc;
}

void
isd_scsi_dev_luns_changed(struct isd_scsi_dev *dev)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	dev_luns_changed_in(dev);
	isd_monitor_leave(mon);
}

int
isd_scsi_dev_remove_lu(struct isd_scsi_dev *dev, uint32_t lun,
		       void (*gone)(void *arg, struct isd_bstore *bs), void *arg)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = dev_remove_lu_in(dev, lun, gone, arg);
	isd_monitor_leave(mon);
	return rc;
}

uint32_t
isd_scsi_lu_busy(struct isd_scsi_dev *dev, uint32_t lun)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	uint32_t rc;

	isd_monitor_enter(mon);
	rc = lu_busy_in(dev, lun);
	isd_monitor_leave(mon);
	return rc;
}

int
isd_scsi_lu_set_read_only(struct isd_scsi_dev *dev, uint32_t lun, bool read_only)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = lu_set_read_only_in(dev, lun, read_only);
	isd_monitor_leave(mon);
	return rc;
}

void
isd_scsi_nexus_add(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	nexus_add_in(dev, nexus);
	isd_monitor_leave(mon);
}

void
isd_scsi_nexus_remove(struct isd_scsi_dev *dev, struct isd_scsi_nexus *nexus)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	nexus_remove_in(dev, nexus);
	isd_monitor_leave(mon);
}

int
isd_scsi_lu_reset(struct isd_scsi_dev *dev, uint64_t lun, struct isd_scsi_nexus *from)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = lu_reset_in(dev, lun, from);
	isd_monitor_leave(mon);
	return rc;
}

void
isd_scsi_dev_reset(struct isd_scsi_dev *dev, struct isd_scsi_nexus *from)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	dev_reset_in(dev, from);
	isd_monitor_leave(mon);
}

int
isd_scsi_cmd_setup(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);
	int rc;

	if (mon != NULL && isd_monitor_threaded() && cmd->cdb != NULL && cmd->cdb_len >= 6 &&
	    fast_opcode(cmd->cdb[0])) {
		isd_monitor_enter(&cmd->dev->fast);
		rc = cmd_setup_fast(cmd);
		isd_monitor_leave(&cmd->dev->fast);
		if (rc != -EAGAIN)
			return rc;
	}
	isd_monitor_enter(mon);
	rc = cmd_setup_in(cmd);
	isd_monitor_leave(mon);
	return rc;
}

void
isd_scsi_cmd_exec(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	if (fast_here(cmd)) {
		isd_monitor_enter(&cmd->dev->fast);
		/* a write that would wait at the LU's write gate waits under the monitor */
		if (isd_sbc_gate_shared_ok(cmd)) {
			cmd_exec_in(cmd);
			isd_monitor_leave(&cmd->dev->fast);
			return;
		}
		isd_monitor_leave(&cmd->dev->fast);
	}
	isd_monitor_enter(mon);
	cmd_exec_in(cmd);
	isd_monitor_leave(mon);
}

void
isd_scsi_cmd_abort(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	isd_monitor_enter(mon);
	cmd_abort_in(cmd);
	isd_monitor_leave(mon);
}

void
isd_scsi_cmd_cancel(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);

	isd_monitor_enter(mon);
	cmd_cancel_in(cmd);
	isd_monitor_leave(mon);
}

void
isd_scsi_cmd_release(struct isd_scsi_cmd *cmd)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(cmd->dev);
	bool done;

	if (fast_here(cmd)) {
		isd_monitor_enter(&cmd->dev->fast);
		done = cmd_release_fast(cmd);
		isd_monitor_leave(&cmd->dev->fast);
		if (done)
			return;
	}

	isd_monitor_enter(mon);
	cmd_release_in(cmd);
	isd_monitor_leave(mon);
}

void
isd_scsi_dev_each_cmd(struct isd_scsi_dev *dev, bool (*fn)(void *arg, struct isd_scsi_cmd *cmd),
		      void *arg)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);

	isd_monitor_enter(mon);
	dev_each_cmd_in(dev, fn, arg);
	isd_monitor_leave(mon);
}

void
isd_scsi_fence_lu(struct isd_scsi_lu *lu, void (*done)(void *arg), void *arg)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(lu->dev);

	isd_monitor_enter(mon);
	fence_lu_in(lu, done, arg);
	isd_monitor_leave(mon);
}
