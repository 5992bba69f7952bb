/*
 * Primary commands (SPC-5): INQUIRY and its VPD pages, REQUEST SENSE, REPORT
 * LUNS, MODE SENSE/SELECT, REPORT SUPPORTED OPERATION CODES, START STOP UNIT,
 * PREVENT ALLOW MEDIUM REMOVAL, and SPC-2 RESERVE/RELEASE.
 *
 * Data-in commands decode in setup and build their whole response in exec;
 * the values exec needs are kept in the command (io_pos), not re-read from the
 * CDB, so the transport may reuse the CDB memory after setup.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bstore/bstore.h"
#include "scsi/scsi_int.h"
#include "util/endian.h"

#define INQ_STD_LEN 66

static uint64_t
nexus_id(struct isd_scsi_cmd *cmd)
{
	return isd_scsi_cmd_nexus(cmd)->id;
}

static void
finish_data_in(struct isd_scsi_cmd *cmd, const uint8_t *buf, uint32_t len)
{
	isd_scsi_data_in(cmd, buf, len);
	isd_scsi_cmd_done(cmd);
}

int
isd_spc_setup_tur(struct isd_scsi_cmd *cmd)
{
	return ISD_SCSI_SETUP_DONE;
}

/* ---- INQUIRY ---- */

int
isd_spc_setup_inquiry(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	bool evpd = cdb[1] & 0x01;

	if (cdb[1] & 0x02) {            /* CMDDT: obsolete, must be zero */
		isd_scsi_invalid_cdb(cmd, 1, 1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (!evpd && cdb[2] != 0) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = (uint64_t)evpd << 8 | cdb[2];
	return isd_scsi_setup_data_in(cmd, get_be16(cdb + 3));
}

static uint32_t
inquiry_std(struct isd_scsi_dev *dev, struct isd_scsi_lu *lu, uint8_t *b)
{
	memset(b, 0, INQ_STD_LEN);
	/* Peripheral qualifier 011b / type 1Fh: no LU at this LUN (SPC-5 6.7.2). */
	b[0] = lu != NULL ? 0x00 : 0x7f;
	/*
	 * VERSION: SPC-4. We implement SPC-5 commands, but initiators and
	 * conformance tools of the field (libiscsi 1.19) accept only up to 6.
	 */
	b[2] = 0x06;
	b[3] = 0x10 | 0x02;             /* HISUP, response data format 2 */
	b[4] = INQ_STD_LEN - 5;
	b[5] = 0x08;                    /* 3PC: EXTENDED COPY (xcopy.c) */
	/* TPGS 01b: implicit ALUA only (alua.c), when it is configured */
	if (dev != NULL && dev->alua.group != 0)
		b[5] |= 0x10;
	b[7] = 0x02;                    /* CMDQUE */
	memcpy(b + 8, lu != NULL ? lu->vendor : "ISERD   ", 8);
	memcpy(b + 16, lu != NULL ? lu->product : "iserd disk      ", 16);
	memcpy(b + 32, lu != NULL ? lu->revision : "0001", 4);
	/* Version descriptors: SAM-5, SPC-4, SBC-3, iSCSI (no version claimed). */
	put_be16(b + 58, 0x00a0);
	put_be16(b + 60, 0x0460);
	put_be16(b + 62, 0x04c0);
	put_be16(b + 64, 0x0960);
	return INQ_STD_LEN;
}

static const uint8_t g_vpd_pages[] = { 0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2 };

static uint32_t
vpd_designator(uint8_t *d, uint8_t proto_codeset, uint8_t piv_assoc_type, const void *id,
	       uint32_t len)
{
	d[0] = proto_codeset;
	d[1] = piv_assoc_type;
	d[2] = 0;
	d[3] = (uint8_t)len;
	memcpy(d + 4, id, len);
	return 4 + len;
}

static uint32_t
vpd_83(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *nexus, uint8_t *b)
{
	uint32_t off = 4;
	uint8_t id[300];
	uint32_t n;

	/* NAA IEEE Registered Extended (6h): what EXTENDED COPY's 0xE4 descriptors name */
	isd_scsi_lu_naa(lu, id);
	off += vpd_designator(b + off, 0x01, 0x03, id, 16);
	/* T10 vendor ID: vendor, then product and serial (ASCII). */
	memcpy(id, lu->vendor, 8);
	n = (uint32_t)strlen(lu->serial);
	memcpy(id + 8, lu->product, 16);
	memcpy(id + 24, lu->serial, n);
	off += vpd_designator(b + off, 0x02, 0x01, id, 24 + n);
	if (nexus != NULL) {
		/* Relative target port (PIV=1, association: target port, protocol iSCSI). */
		memset(id, 0, 4);
		put_be16(id + 2, nexus->rel_tgt_port_id);
		off += vpd_designator(b + off, 0x51, 0x94, id, 4);
		/* SCSI name string of the target port, NUL terminated and padded to 4. */
		n = (uint32_t)strnlen(nexus->target_port, sizeof(nexus->target_port) - 1);
		if (n > 0 && n < 250) {
			uint32_t padded = (n + 1 + 3) & ~3u;

			memset(id, 0, padded);
			memcpy(id, nexus->target_port, n);
			off += vpd_designator(b + off, 0x53, 0x98, id, padded);
		}
	}
	/* Target port group (alua.c): with the relative port, how initiators
	 * (Linux scsi_dh_alua) find this path's group in REPORT TARGET PORT GROUPS */
	off += isd_alua_vpd_designator(lu->dev, b + off);
	put_be16(b + 2, (uint16_t)(off - 4));
	return off;
}

static uint32_t
vpd_page(struct isd_scsi_lu *lu, const struct isd_scsi_nexus *nexus, uint8_t page, uint8_t *b)
{
	uint32_t n;

	b[0] = 0x00;            /* peripheral device type: direct access block device */
	b[1] = page;
	switch (page) {
	case 0x00:
		memcpy(b + 4, g_vpd_pages, sizeof(g_vpd_pages));
		put_be16(b + 2, sizeof(g_vpd_pages));
		return 4 + sizeof(g_vpd_pages);
	case 0x80:
		n = (uint32_t)strlen(lu->serial);
		memcpy(b + 4, lu->serial, n);
		put_be16(b + 2, (uint16_t)n);
		return 4 + n;
	case 0x83:
		return vpd_83(lu, nexus, b);
	case 0x8f:
		return isd_xcopy_vpd(lu, b);
	case 0xb0:      /* Block Limits */
		memset(b + 2, 0, 62);
		put_be16(b + 2, 0x3c);
		/* WSNZ 1: a WRITE SAME of 0 blocks is refused. "0 means to the last
		 * LBA" would let one CDB write the whole LU, and libiscsi's test of it
		 * with UNMAP expects zeros back where SBC-4 returns the block sent. */
		b[4] = 0x01;
		b[5] = 0xff;                            /* MAXIMUM COMPARE AND WRITE LENGTH */
		/* OPTIMAL TRANSFER LENGTH GRANULARITY: the physical block */
		put_be16(b + 6, (uint16_t)(1u << lu->lbppb_exp));
		put_be32(b + 8, lu->max_xfer_blocks);
		put_be32(b + 12, lu->max_xfer_blocks);  /* OPTIMAL TRANSFER LENGTH */
		put_be32(b + 20, lu->max_unmap_blocks);
		put_be32(b + 24, lu->max_unmap_descs);
		if (lu->thin && lu->unmap_gran_blocks != 0) {
			/* OPTIMAL UNMAP GRANULARITY: what the store frees whole (an RBD
			 * object), aligned at LBA 0 (UGAVALID, UNMAP GRANULARITY ALIGNMENT 0) */
			put_be32(b + 28, lu->unmap_gran_blocks);
			b[32] = 0x80;
		} else if (lu->thin) {
			put_be32(b + 28, 1u << lu->lbppb_exp);
		}
		put_be64(b + 36, lu->max_ws_blocks);
		/* MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT, ATOMIC TRANSFER LENGTH
		 * GRANULARITY; the two ATOMIC BOUNDARY fields stay 0: no boundaries. */
		put_be32(b + 44, lu->max_atomic_blocks);
		put_be32(b + 48, lu->atomic_align);
		put_be32(b + 52, lu->atomic_gran);
		return 64;
	case 0xb1:      /* Block Device Characteristics */
		memset(b + 2, 0, 62);
		put_be16(b + 2, 0x3c);
		put_be16(b + 4, 1);                     /* MEDIUM ROTATION RATE: non-rotating */
		/* WABEREQ 01b where SANITIZE BLOCK ERASE is offered (thin LUs whose
		 * deallocated blocks read as zeros): a read of an erased block
		 * succeeds; WACEREQ 00b: no CRYPTOGRAPHIC ERASE */
		if (lu->lbprz)
			b[7] = 0x40;
		return 64;
	case 0xb2:      /* Logical Block Provisioning */
		memset(b + 2, 0, 6);
		put_be16(b + 2, 4);
		if (lu->thin) {
			/* LBPU, LBPWS, LBPWS10; LBPRZ (001b) only if deallocated reads zeros */
			b[5] = 0x80 | 0x40 | 0x20 | (lu->lbprz ? 0x04 : 0);
			b[6] = 0x02;                    /* PROVISIONING TYPE: thin */
		}
		return 8;
	default:
		return 0;
	}
}

void
isd_spc_exec_inquiry(struct isd_scsi_cmd *cmd)
{
	uint8_t buf[1024];
	bool evpd = (cmd->io_pos >> 8) & 1;
	uint8_t page = (uint8_t)cmd->io_pos;
	uint32_t n;

	if (!evpd) {
		finish_data_in(cmd, buf, inquiry_std(cmd->dev, cmd->lu, buf));
		return;
	}
	if (cmd->lu == NULL) {
		/* No LU: only the list of pages, under qualifier 011b. */
		if (page != 0x00) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_LU_NOT_SUPPORTED);
			isd_scsi_cmd_done(cmd);
			return;
		}
		memset(buf, 0, 5);
		buf[0] = 0x7f;
		put_be16(buf + 2, 1);
		finish_data_in(cmd, buf, 5);
		return;
	}
	n = vpd_page(cmd->lu, cmd->nexus, page, buf);
	if (n == 0) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		isd_scsi_cmd_done(cmd);
		return;
	}
	finish_data_in(cmd, buf, n);
}

/* ---- REQUEST SENSE ---- */

int
isd_spc_setup_request_sense(struct isd_scsi_cmd *cmd)
{
	if (cmd->cdb[1] & 0x01) {       /* DESC: we only build fixed-format sense */
		isd_scsi_invalid_cdb(cmd, 1, 0);
		return ISD_SCSI_SETUP_DONE;
	}
	return isd_scsi_setup_data_in(cmd, cmd->cdb[4]);
}

void
isd_spc_exec_request_sense(struct isd_scsi_cmd *cmd)
{
	uint8_t buf[18];
	uint16_t asc;

	if (cmd->lu == NULL) {
		/* SPC-5 6.39: sense data for an LU that is not there, status GOOD. */
		isd_scsi_sense_fixed(buf, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_LU_NOT_SUPPORTED);
	} else {
		struct isd_scsi_itn *itn = isd_scsi_itn_get(cmd->lu, isd_scsi_cmd_nexus(cmd));

		/* Reports and clears one pending unit attention, like a CHECK CONDITION would. */
		if (itn != NULL && isd_scsi_ua_take(itn, &asc)) {
			isd_scsi_sense_fixed(buf, ISD_SK_UNIT_ATTENTION, asc);
		} else if (cmd->lu->sanitize != NULL) {
			/* SBC-4 4.11.1: how far the sanitize operation is */
			isd_scsi_sense_fixed(buf, ISD_SK_NOT_READY, ISD_ASC_SANITIZE_IN_PROGRESS);
			buf[15] = 0x80;         /* SKSV: PROGRESS INDICATION */
			put_be16(buf + 16, isd_scsi_sanitize_progress(cmd->lu));
		} else
			isd_scsi_sense_fixed(buf, ISD_SK_NO_SENSE, ISD_ASC_NO_ADDITIONAL);
	}
	finish_data_in(cmd, buf, sizeof(buf));
}

/* ---- REPORT LUNS ---- */

int
isd_spc_setup_report_luns(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint32_t alloc = get_be32(cdb + 6);

	/* SELECT REPORT: 00h all, 01h well known only (we have none), 02h all. */
	if (cdb[2] > 0x02) {
		isd_scsi_invalid_cdb(cmd, 2, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	/* SPC-5 6.33: an ALLOCATION LENGTH under 16 is invalid. */
	if (alloc < 16) {
		isd_scsi_invalid_cdb(cmd, 6, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = cdb[2];
	return isd_scsi_setup_data_in(cmd, alloc);
}

void
isd_spc_exec_report_luns(struct isd_scsi_cmd *cmd)
{
	uint8_t buf[8 + ISD_SCSI_MAX_LUNS * 8];
	struct isd_scsi_dev *dev = cmd->dev;
	uint32_t off = 8;

	memset(buf, 0, 8);
	if (cmd->io_pos != 0x01 && dev != NULL) {
		for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++) {
			if (dev->lus[i] == NULL)
				continue;
			put_be64(buf + off, isd_scsi_lun_encode(i));
			off += 8;
		}
	}
	put_be32(buf, off - 8);
	finish_data_in(cmd, buf, off);
}

/* ---- mode pages ---- */

#define MODE_CACHING_LEN 20
#define MODE_CONTROL_LEN 12
#define MODE_IEC_LEN 12

/* pc: 0 current, 1 changeable, 2 default. Returns bytes written (0: unknown page). */
static uint32_t
mode_page(struct isd_scsi_lu *lu, uint8_t page, uint8_t pc, uint8_t *b)
{
	switch (page) {
	case 0x08:
		memset(b, 0, MODE_CACHING_LEN);
		b[0] = 0x08;
		b[1] = MODE_CACHING_LEN - 2;
		if (pc == 1)
			b[2] = 0x04;                    /* WCE is the one changeable bit */
		else if (pc == 2 ? lu->wce_default : lu->wce)
			b[2] = 0x04;
		return MODE_CACHING_LEN;
	case 0x0a:
		memset(b, 0, MODE_CONTROL_LEN);
		b[0] = 0x0a;
		b[1] = MODE_CONTROL_LEN - 2;
		if (pc == 1) {
			b[4] = 0x08;                    /* SWP is the one changeable bit */
		} else {
			b[2] = 0x02;                    /* GLTSD: no saved log parameters */
			b[3] = 0x10;    /* QUEUE ALGORITHM MODIFIER 1: unrestricted */
			if (pc == 0 && lu->swp)
				b[4] = 0x08;            /* SWP: software write protect */
			put_be16(b + 8, 0xffff);        /* BUSY TIMEOUT PERIOD: unlimited */
		}
		return MODE_CONTROL_LEN;
	case 0x1c:
		memset(b, 0, MODE_IEC_LEN);
		b[0] = 0x1c;
		b[1] = MODE_IEC_LEN - 2;
		if (pc != 1)
			b[2] = 0x08;                    /* DEXCPT: no exception reporting */
		return MODE_IEC_LEN;
	default:
		return 0;
	}
}

uint32_t
isd_spc_mode_pages(struct isd_scsi_lu *lu, uint8_t page, uint8_t pc, uint8_t *buf)
{
	static const uint8_t all[] = { 0x08, 0x0a, 0x1c };
	uint32_t off = 0;

	if (page != 0x3f)
		return mode_page(lu, page, pc, buf);
	for (size_t i = 0; i < sizeof(all); i++)
		off += mode_page(lu, all[i], pc, buf + off);
	return off;
}

#define MS_PC(x) ((uint8_t)((x) >> 8) & 3)
#define MS_DBD 0x10000ull
#define MS_LLBAA 0x20000ull
#define MS_10 0x40000ull

int
isd_spc_setup_mode_sense(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	bool is10 = cdb[0] == 0x5a;
	uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];

	if (pc == 3) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_SAVING_NOT_SUPPORTED);
		isd_scsi_sense_field(cmd, true, 2, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	if (page != 0x08 && page != 0x0a && page != 0x1c && page != 0x3f) {
		isd_scsi_invalid_cdb(cmd, 2, 5);
		return ISD_SCSI_SETUP_DONE;
	}
	/* No subpages; 0x3F/0xFF ("all pages and subpages") is the same as 0x3F/0. */
	if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) {
		isd_scsi_invalid_cdb(cmd, 3, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = page | (uint64_t)pc << 8;
	if (cdb[1] & 0x08)
		cmd->io_pos |= MS_DBD;
	if (is10 && (cdb[1] & 0x10))
		cmd->io_pos |= MS_LLBAA;
	if (is10)
		cmd->io_pos |= MS_10;
	return isd_scsi_setup_data_in(cmd, is10 ? get_be16(cdb + 7) : cdb[4]);
}

void
isd_spc_exec_mode_sense(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	uint8_t buf[256];
	bool is10 = cmd->io_pos & MS_10;
	bool llbaa = cmd->io_pos & MS_LLBAA;
	uint32_t hdr = is10 ? 8 : 4;
	uint32_t bdl = (cmd->io_pos & MS_DBD) ? 0 : (llbaa ? 16 : 8);
	uint8_t devspec = 0x10;         /* DPOFUA */
	uint32_t total;

	memset(buf, 0, hdr + bdl);
	if (isd_scsi_lu_wp(lu))
		devspec |= 0x80;        /* WP: read-only LU, or SWP set */
	total = hdr + bdl + isd_spc_mode_pages(lu, (uint8_t)cmd->io_pos, MS_PC(cmd->io_pos),
					      buf + hdr + bdl);
	if (is10) {
		put_be16(buf, (uint16_t)(total - 2));
		buf[3] = devspec;
		buf[4] = llbaa ? 0x01 : 0;      /* LONGLBA */
		put_be16(buf + 6, (uint16_t)bdl);
	} else {
		buf[0] = (uint8_t)(total - 1);
		buf[2] = devspec;
		buf[3] = (uint8_t)bdl;
	}
	if (bdl == 8) {
		put_be32(buf + hdr, lu->nblocks > 0xffffffffull ? 0xffffffffu :
				    (uint32_t)lu->nblocks);
		put_be24(buf + hdr + 5, lu->block_size);
	} else if (bdl == 16) {
		put_be64(buf + hdr, lu->nblocks);
		put_be32(buf + hdr + 12, lu->block_size);
	}
	finish_data_in(cmd, buf, total);
}

int
isd_spc_setup_mode_select(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	bool is10 = cdb[0] == 0x55;
	uint32_t len = is10 ? get_be16(cdb + 7) : cdb[4];

	if (cdb[1] & 0x01) {            /* SP: nothing can be saved */
		isd_scsi_invalid_cdb(cmd, 1, 0);
		return ISD_SCSI_SETUP_DONE;
	}
	if (len > 0 && !(cdb[1] & 0x10)) {      /* PF = 0: vendor-specific pages, none here */
		isd_scsi_invalid_cdb(cmd, 1, 4);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = is10;
	return isd_scsi_setup_data_out(cmd, len);
}

static bool
mode_select_apply(struct isd_scsi_cmd *cmd, bool *changed)
{
	struct isd_scsi_lu *lu = cmd->lu;
	const uint8_t *p = cmd->iov[0].iov_base;
	uint32_t len = cmd->data_out_len;
	bool is10 = cmd->io_pos & 1;
	uint32_t hdr = is10 ? 8 : 4;
	uint32_t bdl, off;
	bool wce = lu->wce;
	bool swp = lu->swp;

	if (len < hdr) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return false;
	}
	bdl = is10 ? get_be16(p + 6) : p[3];
	if (bdl > len - hdr) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		return false;
	}
	if (bdl != 0) {
		bool longlba = is10 && (p[4] & 0x01);
		uint32_t dlen = longlba ? 16 : 8;
		const uint8_t *d = p + hdr;
		uint64_t nb;
		uint32_t bs;

		/* One descriptor (bdl <= len - hdr was checked), and it may not change
		 * the geometry. */
		if (bdl != dlen) {
			isd_scsi_invalid_param(cmd, is10 ? 6 : 3, -1);
			return false;
		}
		nb = longlba ? get_be64(d) : get_be32(d);
		bs = longlba ? get_be32(d + 12) : get_be24(d + 5);
		if (bs != 0 && bs != lu->block_size) {
			isd_scsi_invalid_param(cmd, (uint16_t)(hdr + (longlba ? 12 : 5)), -1);
			return false;
		}
		if (nb != 0 && nb != lu->nblocks &&
		    !(!longlba && nb == 0xffffffffu && lu->nblocks > 0xffffffffu)) {
			isd_scsi_invalid_param(cmd, (uint16_t)hdr, -1);
			return false;
		}
	}
	for (off = hdr + bdl; off < len;) {
		uint8_t cur[32], mask[32];
		uint8_t page, plen;
		uint32_t n;

		if (len - off < 2) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
			return false;
		}
		page = p[off] & 0x3f;
		plen = p[off + 1];
		if (p[off] & 0x40) {    /* SPF: no subpages here */
			isd_scsi_invalid_param(cmd, (uint16_t)off, 6);
			return false;
		}
		if ((uint32_t)plen + 2 > len - off) {
			isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
			return false;
		}
		n = page == 0x3f ? 0 : mode_page(lu, page, 0, cur);
		if (n == 0) {
			isd_scsi_invalid_param(cmd, (uint16_t)off, 5);
			return false;
		}
		if ((uint32_t)plen + 2 != n) {
			isd_scsi_invalid_param(cmd, (uint16_t)(off + 1), -1);
			return false;
		}
		mode_page(lu, page, 1, mask);
		/* Only changeable bits may differ from the current values. */
		for (uint32_t i = 2; i < n; i++) {
			if ((p[off + i] ^ cur[i]) & ~mask[i]) {
				isd_scsi_invalid_param(cmd, (uint16_t)(off + i), -1);
				return false;
			}
		}
		if (page == 0x08)
			wce = p[off + 2] & 0x04;
		else if (page == 0x0a)
			swp = p[off + 4] & 0x08;
		off += n;
	}
	/* Nothing changes before the whole list checked out. */
	*changed = wce != lu->wce || swp != lu->swp;
	lu->wce = wce;
	lu->swp = swp;
	return true;
}

void
isd_spc_exec_mode_select(struct isd_scsi_cmd *cmd)
{
	bool changed = false;

	if (cmd->xfer_len == 0) {
		isd_scsi_cmd_done(cmd);
		return;
	}
	/* Never act on a parameter list that did not fully arrive. */
	if (cmd->data_out_len < cmd->xfer_len) {
		isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST, ISD_ASC_PARAM_LIST_LENGTH);
		isd_scsi_cmd_done(cmd);
		return;
	}
	if (mode_select_apply(cmd, &changed) && changed) {
		/* SPC-5 5.14: MODE PARAMETERS CHANGED for every other I_T nexus. */
		isd_scsi_ua_raise_all(cmd->lu, ISD_UA_MODE_CHANGED, true, nexus_id(cmd));
	}
	isd_scsi_cmd_done(cmd);
}

/* ---- REPORT SUPPORTED OPERATION CODES ---- */

static bool
op_listed(const struct isd_scsi_op *op, struct isd_scsi_lu *lu)
{
	if ((op->flags & ISD_OPF_THIN) && (lu == NULL || !lu->thin))
		return false;
	if ((op->flags & ISD_OPF_ATOMIC) && (lu == NULL || lu->max_atomic_blocks == 0))
		return false;
	/* SANITIZE BLOCK ERASE only where an erased block reads as zeros (sanitize.c) */
	if (op->setup == isd_sbc_setup_sanitize && op->sa == 0x02 && (lu == NULL || !lu->lbprz))
		return false;
	if ((op->flags & ISD_OPF_ALUA) && (lu == NULL || lu->dev == NULL || lu->dev->alua.group == 0))
		return false;
	return true;
}

static bool
opcode_has_sa(uint8_t opcode)
{
	for (size_t i = 0; i < g_isd_scsi_nops; i++)
		if (g_isd_scsi_ops[i].opcode == opcode)
			return g_isd_scsi_ops[i].flags & ISD_OPF_HAS_SA;
	return false;
}

int
isd_spc_setup_rsoc(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint8_t opts = cdb[2] & 0x07;
	uint8_t req_op = cdb[3];
	uint16_t req_sa = get_be16(cdb + 4);

	if (opts > 3) {
		isd_scsi_invalid_cdb(cmd, 2, 2);
		return ISD_SCSI_SETUP_DONE;
	}
	/* Option 1 names an opcode without service actions, option 2 one with. */
	if (opts == 1 && opcode_has_sa(req_op)) {
		isd_scsi_invalid_cdb(cmd, 3, -1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (opts == 2 && !opcode_has_sa(req_op)) {
		bool known = false;

		for (size_t i = 0; i < g_isd_scsi_nops; i++)
			known |= g_isd_scsi_ops[i].opcode == req_op;
		if (known) {
			isd_scsi_invalid_cdb(cmd, 3, -1);
			return ISD_SCSI_SETUP_DONE;
		}
	}
	cmd->io_pos = opts | ((uint64_t)(cdb[2] & 0x80) << 1) | (uint64_t)req_op << 16 |
		      (uint64_t)req_sa << 24;
	return isd_scsi_setup_data_in(cmd, get_be32(cdb + 6));
}

static uint32_t
rsoc_timeouts(uint8_t *b)
{
	memset(b, 0, 12);
	put_be16(b, 0x0a);
	put_be32(b + 4, 30);    /* nominal, seconds */
	put_be32(b + 8, 60);    /* recommended */
	return 12;
}

void
isd_spc_exec_rsoc(struct isd_scsi_cmd *cmd)
{
	uint8_t buf[4096];
	uint8_t opts = cmd->io_pos & 0x07;
	bool rctd = cmd->io_pos & 0x100;
	uint8_t req_op = (uint8_t)(cmd->io_pos >> 16);
	uint16_t req_sa = (uint16_t)(cmd->io_pos >> 24);
	const struct isd_scsi_op *found = NULL;
	uint32_t off;

	if (opts == 0) {
		off = 4;
		for (size_t i = 0; i < g_isd_scsi_nops; i++) {
			const struct isd_scsi_op *op = &g_isd_scsi_ops[i];

			if (!op_listed(op, cmd->lu))
				continue;
			if (off + 20 > sizeof(buf))
				break;
			memset(buf + off, 0, 8);
			buf[off] = op->opcode;
			if (op->flags & ISD_OPF_HAS_SA) {
				put_be16(buf + off + 2, op->sa);
				buf[off + 5] |= 0x01;   /* SERVACTV */
			}
			put_be16(buf + off + 6, op->cdb_len);
			if (rctd) {
				buf[off + 5] |= 0x02;   /* CTDP */
				off += 8 + rsoc_timeouts(buf + off + 8);
			} else {
				off += 8;
			}
		}
		put_be32(buf, off - 4);
		finish_data_in(cmd, buf, off);
		return;
	}
	for (size_t i = 0; i < g_isd_scsi_nops; i++) {
		const struct isd_scsi_op *op = &g_isd_scsi_ops[i];

		if (op->opcode != req_op || !op_listed(op, cmd->lu))
			continue;
		if (!(op->flags & ISD_OPF_HAS_SA) || op->sa == req_sa) {
			found = op;
			break;
		}
	}
	/* Option 3 on an opcode without service actions: the SA field must be 0. */
	if (found != NULL && opts == 3 && !(found->flags & ISD_OPF_HAS_SA) && req_sa != 0)
		found = NULL;
	memset(buf, 0, 4);
	if (found == NULL) {
		buf[1] = 0x01;                  /* SUPPORT: not supported */
		finish_data_in(cmd, buf, 4);
		return;
	}
	buf[1] = 0x03 | (rctd ? 0x80 : 0);      /* SUPPORT: as the standard says; CTDP */
	put_be16(buf + 2, found->cdb_len);
	memcpy(buf + 4, found->usage, found->cdb_len);
	off = 4 + found->cdb_len;
	if (rctd)
		off += rsoc_timeouts(buf + off);
	finish_data_in(cmd, buf, off);
}

/* ---- START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL ---- */

int
isd_spc_setup_start_stop(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint8_t pc = cdb[4] >> 4;
	struct isd_scsi_itn *itn;

	switch (pc) {
	case 0x0: case 0x1: case 0x2: case 0x3: case 0x5: case 0x7: case 0xa: case 0xb:
		break;
	default:
		isd_scsi_invalid_cdb(cmd, 4, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	/* LOEJ with START = 0 is an eject: refused while any nexus prevents removal. */
	if (pc == 0 && (cdb[4] & 0x03) == 0x02) {
		TAILQ_FOREACH(itn, &cmd->lu->itns, link) {
			if (itn->prevent) {
				isd_scsi_check(cmd, ISD_SK_ILLEGAL_REQUEST,
					       ISD_ASC_MEDIUM_REMOVAL_PREVENTED);
				return ISD_SCSI_SETUP_DONE;
			}
		}
	}
	/* The medium is always spinning: nothing else to do. */
	return ISD_SCSI_SETUP_DONE;
}

int
isd_spc_setup_prevent_allow(struct isd_scsi_cmd *cmd)
{
	uint8_t prevent = cmd->cdb[4] & 0x03;
	struct isd_scsi_itn *itn;

	if (prevent > 1) {              /* 10b and 11b are for media changers */
		isd_scsi_invalid_cdb(cmd, 4, 1);
		return ISD_SCSI_SETUP_DONE;
	}
	itn = isd_scsi_itn_get(cmd->lu, isd_scsi_cmd_nexus(cmd));
	if (itn == NULL) {
		cmd->status = ISD_SAM_BUSY;
		return ISD_SCSI_SETUP_DONE;
	}
	itn->prevent = prevent;
	return ISD_SCSI_SETUP_DONE;
}

/* ---- SPC-2 RESERVE / RELEASE (6 and 10) ---- */


int
isd_spc_setup_reserve(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	/* RESERVE(10): third-party reservations (3RDPTY, LONGID) are not supported. */
	if (cmd->cdb[0] == 0x56 && (cmd->cdb[1] & 0x12)) {
		isd_scsi_invalid_cdb(cmd, 1, (cmd->cdb[1] & 0x10) ? 4 : 1);
		return ISD_SCSI_SETUP_DONE;
	}
	/* With a persistent reservation (CRH = 1, SPC-5 5.14.3): GOOD for its holder
	 * without other effect, a conflict for everyone else. */
	if (lu->pr_held) {
		if (!isd_scsi_pr_is_holder(lu, isd_scsi_cmd_nexus(cmd)))
			cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		return ISD_SCSI_SETUP_DONE;
	}
	if (lu->spc2_held && lu->spc2_nexus != nexus_id(cmd)) {
		cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		return ISD_SCSI_SETUP_DONE;
	}
	lu->spc2_held = true;
	lu->spc2_nexus = nexus_id(cmd);
	/* Other nexuses' writes landing straight in the LU end now (dev.c, fencing);
	 * none of them has store I/O to wait for, their data is placed as it arrives. */
	isd_scsi_fence(cmd);
	return ISD_SCSI_SETUP_DONE;
}

int
isd_spc_setup_release(struct isd_scsi_cmd *cmd)
{
	struct isd_scsi_lu *lu = cmd->lu;
	if (cmd->cdb[0] == 0x57 && (cmd->cdb[1] & 0x12)) {
		isd_scsi_invalid_cdb(cmd, 1, (cmd->cdb[1] & 0x10) ? 4 : 1);
		return ISD_SCSI_SETUP_DONE;
	}
	if (lu->pr_held) {
		if (!isd_scsi_pr_is_holder(lu, isd_scsi_cmd_nexus(cmd)))
			cmd->status = ISD_SAM_RESERVATION_CONFLICT;
		return ISD_SCSI_SETUP_DONE;
	}
	/* SPC-2 7.17: a RELEASE from a nexus that holds nothing is GOOD and changes nothing. */
	if (lu->spc2_held && lu->spc2_nexus == nexus_id(cmd))
		lu->spc2_held = false;
	return ISD_SCSI_SETUP_DONE;
}
