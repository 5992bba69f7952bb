/*
 * Asymmetric logical unit access (SPC-5 5.16), implicit ALUA only: the
 * access state of each LU in this gateway's target port group, the commands
 * each state lets through, and REPORT TARGET PORT GROUPS (SPC-5 6.37).
 *
 * SET TARGET PORT GROUPS is not offered (INQUIRY TPGS = 01b): the states are
 * set by whoever knows which gateway owns the data (configuration, the
 * control socket, a store that follows a cluster lock), not by initiators.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "scsi/scsi_int.h"
#include "util/endian.h"

/* The supported-states bits of a descriptor: what isd_alua_refuses() implements.
 * T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP; no offline, no LBA dependent. */
#define RTPG_SUP_BITS 0x8f

#define RTPG_FMT_EXT 0x01               /* PARAMETER DATA FORMAT 001b: extended header */

static bool
state_valid(int state)
{
	return isd_scsi_alua_state_name(state) != NULL;
}

const char *
isd_scsi_alua_state_name(int state)
{
	switch (state) {
	case ISD_ALUA_ACTIVE_OPTIMIZED:
		return "active/optimized";
	case ISD_ALUA_ACTIVE_NON_OPTIMIZED:
		return "active/non-optimized";
	case ISD_ALUA_STANDBY:
		return "standby";
	case ISD_ALUA_UNAVAILABLE:
		return "unavailable";
	case ISD_ALUA_TRANSITIONING:
		return "transitioning";
	default:
		return NULL;
	}
}

int
isd_scsi_alua_state_parse(const char *s, enum isd_scsi_alua_state *out)
{
	static const struct {
		const char *name;
		enum isd_scsi_alua_state st;
	} names[] = {
		{ "active/optimized", ISD_ALUA_ACTIVE_OPTIMIZED },
		{ "ao", ISD_ALUA_ACTIVE_OPTIMIZED },
		{ "active/non-optimized", ISD_ALUA_ACTIVE_NON_OPTIMIZED },
		{ "an", ISD_ALUA_ACTIVE_NON_OPTIMIZED },
		{ "ano", ISD_ALUA_ACTIVE_NON_OPTIMIZED },
		{ "standby", ISD_ALUA_STANDBY },
		{ "unavailable", ISD_ALUA_UNAVAILABLE },
		{ "transitioning", ISD_ALUA_TRANSITIONING },
	};

	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].st;
			return 0;
		}
	}
	return -EINVAL;
}

enum isd_scsi_alua_state
isd_scsi_alua_peer_state(enum isd_scsi_alua_state ours, uint8_t nonowner)
{
	/*
	 * One gateway owns the data at a time (a store that follows a cluster
	 * lock): while we own it the others are in the state non-owners are put
	 * in (configured: active/non-optimized where they serve through the owner
	 * or take the lock on first write, standby where they are kept idle);
	 * while we do not, the owner is one of them. Initiators (Linux
	 * scsi_dh_alua) set every group's state from whichever path reported
	 * last, so this must agree with what the peers report of themselves.
	 */
	if (ours != ISD_ALUA_ACTIVE_OPTIMIZED)
		return ISD_ALUA_ACTIVE_OPTIMIZED;
	return nonowner != 0 ? (enum isd_scsi_alua_state)nonowner : ISD_ALUA_ACTIVE_NON_OPTIMIZED;
}

/*
 * TPGS, the VPD 0x83 designators and RTPG describe the configuration: when it
 * changes under running nexuses, SPC-5 6.7.1 has the device server establish
 * INQUIRY DATA HAS CHANGED for them (none exist yet when a device is built).
 */
static void
alua_changed(struct isd_scsi_dev *dev, const struct isd_scsi_alua_cfg *now)
{
	if (memcmp(&dev->alua, now, sizeof(*now)) == 0)
		return;
	dev->alua = *now;
	for (uint32_t i = 0; i < ISD_SCSI_MAX_LUNS; i++)
		if (dev->lus[i] != NULL)
			isd_scsi_ua_raise_all(dev->lus[i], ISD_UA_INQUIRY_CHANGED, false, 0);
}

static int
dev_set_alua_in(struct isd_scsi_dev *dev, const struct isd_scsi_alua_cfg *cfg)
{
	struct isd_scsi_alua_cfg a;

	if (dev == NULL)
		return -EINVAL;
	if (cfg == NULL || cfg->group == 0) {
		memset(&a, 0, sizeof(a));
		alua_changed(dev, &a);
		return 0;
	}
	if (cfg->npeers > ISD_SCSI_ALUA_MAX_PEERS)
		return -EINVAL;
	/* a non-owner is never optimized (two owners), nor in transition for good */
	if (cfg->peer_state != 0 && cfg->peer_state != ISD_ALUA_ACTIVE_NON_OPTIMIZED &&
	    cfg->peer_state != ISD_ALUA_STANDBY && cfg->peer_state != ISD_ALUA_UNAVAILABLE)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->npeers; i++) {
		if (cfg->peers[i].group == 0 || cfg->peers[i].group == cfg->group)
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (cfg->peers[j].group == cfg->peers[i].group)
				return -EINVAL;
	}
	/* compared whole: what lies beyond npeers must not make a difference */
	memset(&a, 0, sizeof(a));
	a.group = cfg->group;
	a.rtpi = cfg->rtpi;
	a.transition_secs = cfg->transition_secs;
	a.peer_state = cfg->peer_state;
	a.npeers = cfg->npeers;
	memcpy(a.peers, cfg->peers, cfg->npeers * sizeof(cfg->peers[0]));
	alua_changed(dev, &a);
	return 0;
}

static int
lu_set_alua_state_in(struct isd_scsi_dev *dev, uint32_t lun, enum isd_scsi_alua_state state)
{
	struct isd_scsi_lu *lu;

	if (dev == NULL || lun >= ISD_SCSI_MAX_LUNS || dev->lus[lun] == NULL)
		return -ENOENT;
	if (!state_valid((int)state))
		return -EINVAL;
	lu = dev->lus[lun];
	if (lu->alua_state == state)
		return 0;
	lu->alua_state = (uint8_t)state;
	lu->alua_changed = true;
	/* SPC-5 5.16.2.6: every I_T nexus learns of the change, this gateway's and
	 * (through their own gateways) the others'; with ALUA off nobody sees
	 * states, so nothing is raised. */
	if (dev->alua.group != 0)
		isd_scsi_ua_raise_all(lu, ISD_UA_ALUA_CHANGED, false, 0);
	return 0;
}

bool
isd_alua_refuses(struct isd_scsi_cmd *cmd, struct isd_scsi_lu *lu, const struct isd_scsi_op *op)
{
	if (cmd->dev == NULL || cmd->dev->alua.group == 0)
		return false;
	switch (lu->alua_state) {
	case ISD_ALUA_STANDBY:
		if (op->flags & ISD_OPF_ALUA_SB)
			return false;
		isd_scsi_check(cmd, ISD_SK_NOT_READY, ISD_ASC_ALUA_STANDBY);
		return true;
	case ISD_ALUA_UNAVAILABLE:
		if (op->flags & ISD_OPF_ALUA_UN)
			return false;
		isd_scsi_check(cmd, ISD_SK_NOT_READY, ISD_ASC_ALUA_UNAVAILABLE);
		return true;
	case ISD_ALUA_TRANSITIONING:
		if (op->flags & ISD_OPF_ALUA_UN)
			return false;
		isd_scsi_check(cmd, ISD_SK_NOT_READY, ISD_ASC_ALUA_TRANSITION);
		return true;
	default:        /* both active states process every command */
		return false;
	}
}

uint32_t
isd_alua_vpd_designator(const struct isd_scsi_dev *dev, uint8_t *d)
{
	if (dev == NULL || dev->alua.group == 0)
		return 0;
	/* Target port group (5h), association target port, PIV with protocol iSCSI,
	 * as the Relative Target Port designator beside it. */
	d[0] = 0x51;
	d[1] = 0x95;
	d[2] = 0;
	d[3] = 4;
	memset(d + 4, 0, 2);
	put_be16(d + 6, dev->alua.group);
	return 8;
}

/* ---- REPORT TARGET PORT GROUPS ---- */

int
isd_alua_setup_rtpg(struct isd_scsi_cmd *cmd)
{
	const uint8_t *cdb = cmd->cdb;
	uint8_t fmt = cdb[1] >> 5;

	/* PARAMETER DATA FORMAT: 000b length only, 001b extended header; the rest
	 * is reserved. The field is bits 7..5, the pointer names its top bit. */
	if (fmt > RTPG_FMT_EXT) {
		isd_scsi_invalid_cdb(cmd, 1, 7);
		return ISD_SCSI_SETUP_DONE;
	}
	cmd->io_pos = fmt;
	return isd_scsi_setup_data_in(cmd, get_be32(cdb + 6));
}

static uint32_t
rtpg_desc(uint8_t *d, uint16_t group, uint8_t state, uint8_t status, const uint16_t *ports,
	  uint32_t nports)
{
	memset(d, 0, 8);
	d[0] = state & 0x0f;            /* PREF 0: no group is preferred over another */
	d[1] = RTPG_SUP_BITS;
	put_be16(d + 2, group);
	d[5] = status;
	d[7] = (uint8_t)nports;
	for (uint32_t i = 0; i < nports; i++) {
		memset(d + 8 + 4 * i, 0, 2);
		put_be16(d + 8 + 4 * i + 2, ports[i]);
	}
	return 8 + 4 * nports;
}

void
isd_alua_exec_rtpg(struct isd_scsi_cmd *cmd)
{
	/* header 8 + ours (2 ports) + every peer (1 port) */
	uint8_t buf[8 + (8 + 8) + ISD_SCSI_ALUA_MAX_PEERS * (8 + 4)];
	const struct isd_scsi_alua_cfg *a = &cmd->dev->alua;
	struct isd_scsi_lu *lu = cmd->lu;
	bool ext = cmd->io_pos == RTPG_FMT_EXT;
	uint16_t ports[2];
	uint32_t nports = 0, off;
	uint8_t peer;
	uint16_t rtpi = isd_scsi_cmd_nexus(cmd)->rel_tgt_port_id;

	memset(buf, 0, 8);
	off = ext ? 8 : 4;
	if (ext) {
		buf[4] = RTPG_FMT_EXT << 4;     /* FORMAT TYPE 001b */
		buf[5] = a->transition_secs;    /* IMPLICIT TRANSITION TIME */
	}
	/* Our group: the target's port, and the port this nexus came in on when it
	 * is another one (a portal group with its own TPGT). 0 is no port id. */
	if (a->rtpi != 0)
		ports[nports++] = a->rtpi;
	if (rtpi != 0 && rtpi != a->rtpi)
		ports[nports++] = rtpi;
	/* STATUS CODE 02h: the state was changed by the device server itself
	 * (implicit), which is how every change here is made. */
	off += rtpg_desc(buf + off, a->group, lu->alua_state, lu->alua_changed ? 0x02 : 0x00, ports,
			 nports);
	peer = (uint8_t)isd_scsi_alua_peer_state(lu->alua_state, a->peer_state);
	for (uint32_t i = 0; i < a->npeers && i < ISD_SCSI_ALUA_MAX_PEERS; i++) {
		uint16_t p = a->peers[i].rtpi;

		off += rtpg_desc(buf + off, a->peers[i].group, peer, 0x00, &p, p != 0 ? 1 : 0);
	}
	/* RETURN DATA LENGTH: the bytes after it (the extended header's included),
	 * as initiators (Linux scsi_dh_alua, sg_rtpg) read it */
	put_be32(buf, off - 4);
	isd_scsi_data_in(cmd, buf, off);
	isd_scsi_cmd_done(cmd);
}

/* ---- the ways in from outside: each enters the device's monitor ---- */

int
isd_scsi_dev_set_alua(struct isd_scsi_dev *dev, const struct isd_scsi_alua_cfg *cfg)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = dev_set_alua_in(dev, cfg);
	isd_monitor_leave(mon);
	return rc;
}

int
isd_scsi_lu_set_alua_state(struct isd_scsi_dev *dev, uint32_t lun, enum isd_scsi_alua_state state)
{
	struct isd_monitor *mon = isd_scsi_dev_monitor(dev);
	int rc;

	isd_monitor_enter(mon);
	rc = lu_set_alua_state_in(dev, lun, state);
	isd_monitor_leave(mon);
	return rc;
}
