/*
 * The command table: what we implement, how long its CDB is, which bits of it
 * we look at (the CDB USAGE DATA of REPORT SUPPORTED OPERATION CODES), and
 * how it behaves under unit attentions and reservations.
 */
#include "scsi/scsi_int.h"

#include <pthread.h>

#define LBA8 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff  /* 16-byte CDB: LBA */
#define LEN4 0xff, 0xff, 0xff, 0xff                          /* and length */
#define C 0x07  /* control byte usage: NACA (refused when set) and the obsolete bits */

/* Reservation classes (SPC-5 table 'SPC commands that are allowed in the presence of
 * various reservations' and its SBC-4 counterpart). */
#define ALLOW (ISD_OPF_PR_ALLOW)
#define READ (ISD_OPF_PR_READ)
#define WRITE 0
/* ALUA (alua.c): processed in standby (SB), and also in unavailable and
 * transitioning (UN); every other command gets NOT READY in those states. */
#define SB ISD_OPF_ALUA_SB
#define UN (ISD_OPF_ALUA_SB | ISD_OPF_ALUA_UN)

/* clang-format off */
const struct isd_scsi_op g_isd_scsi_ops[] = {
	{ 0x00, ISD_SCSI_NO_SA, 6, ALLOW, "TEST UNIT READY", isd_spc_setup_tur, NULL,
	  { 0x00, 0, 0, 0, 0, C } },
	{ 0x03, ISD_SCSI_NO_SA, 6,
	  ALLOW | ISD_OPF_UA_EXEMPT | ISD_OPF_NO_LU | ISD_OPF_SPC2_ALLOW | UN, "REQUEST SENSE",
	  isd_spc_setup_request_sense, isd_spc_exec_request_sense, { 0x03, 0x01, 0, 0, 0xff, C } },
	{ 0x08, ISD_SCSI_NO_SA, 6, READ, "READ(6)", isd_sbc_setup_read, isd_sbc_exec_read,
	  { 0x08, 0x1f, 0xff, 0xff, 0xff, C } },
	{ 0x0a, ISD_SCSI_NO_SA, 6, WRITE, "WRITE(6)", isd_sbc_setup_write, isd_sbc_exec_write,
	  { 0x0a, 0x1f, 0xff, 0xff, 0xff, C } },
	{ 0x12, ISD_SCSI_NO_SA, 6,
	  ALLOW | ISD_OPF_UA_EXEMPT | ISD_OPF_NO_LU | ISD_OPF_SPC2_ALLOW | UN, "INQUIRY",
	  isd_spc_setup_inquiry, isd_spc_exec_inquiry, { 0x12, 0x01, 0xff, 0xff, 0xff, C } },
	{ 0x15, ISD_SCSI_NO_SA, 6, WRITE | SB, "MODE SELECT(6)", isd_spc_setup_mode_select,
	  isd_spc_exec_mode_select, { 0x15, 0x11, 0, 0, 0xff, C } },
	{ 0x16, ISD_SCSI_NO_SA, 6, WRITE, "RESERVE(6)", isd_spc_setup_reserve, NULL,
	  { 0x16, 0, 0, 0, 0, C } },
	{ 0x17, ISD_SCSI_NO_SA, 6, WRITE | ISD_OPF_SPC2_ALLOW, "RELEASE(6)", isd_spc_setup_release,
	  NULL, { 0x17, 0, 0, 0, 0, C } },
	{ 0x1a, ISD_SCSI_NO_SA, 6, READ | SB, "MODE SENSE(6)", isd_spc_setup_mode_sense,
	  isd_spc_exec_mode_sense, { 0x1a, 0x08, 0xff, 0xff, 0xff, C } },
	{ 0x1b, ISD_SCSI_NO_SA, 6, READ, "START STOP UNIT", isd_spc_setup_start_stop, NULL,
	  { 0x1b, 0x01, 0, 0x0f, 0xf7, C } },
	{ 0x1e, ISD_SCSI_NO_SA, 6, READ, "PREVENT ALLOW MEDIUM REMOVAL",
	  isd_spc_setup_prevent_allow,
	  NULL, { 0x1e, 0, 0, 0, 0x03, C } },
	/* SB: SPC-5 lets a standby port serve more than its list; Linux's sd sizes a
	 * disk from READ CAPACITY at scan time and a path that got NOT READY stays 0
	 * sectors (and fails every I/O as beyond its end) after it becomes active,
	 * so a dm-multipath failover to it could not complete. LIO does the same. */
	{ 0x25, ISD_SCSI_NO_SA, 10, ALLOW | SB, "READ CAPACITY(10)", isd_sbc_setup_read_capacity10,
	  isd_sbc_exec_read_capacity10, { 0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, C } },
	{ 0x28, ISD_SCSI_NO_SA, 10, READ, "READ(10)", isd_sbc_setup_read, isd_sbc_exec_read,
	  { 0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x2a, ISD_SCSI_NO_SA, 10, WRITE, "WRITE(10)", isd_sbc_setup_write, isd_sbc_exec_write,
	  { 0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x2e, ISD_SCSI_NO_SA, 10, WRITE, "WRITE AND VERIFY(10)", isd_sbc_setup_write,
	  isd_sbc_exec_write, { 0x2e, 0x16, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x2f, ISD_SCSI_NO_SA, 10, READ, "VERIFY(10)", isd_sbc_setup_verify, isd_sbc_exec_verify,
	  { 0x2f, 0x16, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x34, ISD_SCSI_NO_SA, 10, READ, "PRE-FETCH(10)", isd_sbc_setup_prefetch, NULL,
	  { 0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x35, ISD_SCSI_NO_SA, 10, WRITE, "SYNCHRONIZE CACHE(10)", isd_sbc_setup_sync_cache,
	  isd_sbc_exec_sync_cache, { 0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x37, ISD_SCSI_NO_SA, 10, READ, "READ DEFECT DATA(10)", isd_sbc_setup_read_defect_data,
	  isd_sbc_exec_read_defect_data, { 0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x41, ISD_SCSI_NO_SA, 10, WRITE, "WRITE SAME(10)", isd_sbc_setup_write_same,
	  isd_sbc_exec_write_same, { 0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, C } },
	{ 0x42, ISD_SCSI_NO_SA, 10, WRITE | ISD_OPF_THIN, "UNMAP", isd_sbc_setup_unmap,
	  isd_sbc_exec_unmap, { 0x42, 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, C } },
	{ 0x48, 0x01, 10, WRITE | ISD_OPF_HAS_SA, "SANITIZE (OVERWRITE)", isd_sbc_setup_sanitize,
	  isd_sbc_exec_sanitize, { 0x48, 0xa1, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x48, 0x02, 10, WRITE | ISD_OPF_HAS_SA | ISD_OPF_THIN, "SANITIZE (BLOCK ERASE)",
	  isd_sbc_setup_sanitize, isd_sbc_exec_sanitize,
	  { 0x48, 0xa2, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x48, 0x1f, 10, WRITE | ISD_OPF_HAS_SA, "SANITIZE (EXIT FAILURE MODE)",
	  isd_sbc_setup_sanitize, NULL, { 0x48, 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x55, ISD_SCSI_NO_SA, 10, WRITE | SB, "MODE SELECT(10)", isd_spc_setup_mode_select,
	  isd_spc_exec_mode_select, { 0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x56, ISD_SCSI_NO_SA, 10, WRITE, "RESERVE(10)", isd_spc_setup_reserve, NULL,
	  { 0x56, 0, 0, 0, 0, 0, 0, 0, 0, C } },
	{ 0x57, ISD_SCSI_NO_SA, 10, WRITE | ISD_OPF_SPC2_ALLOW, "RELEASE(10)",
	  isd_spc_setup_release, NULL, { 0x57, 0, 0, 0, 0, 0, 0, 0, 0, C } },
	{ 0x5a, ISD_SCSI_NO_SA, 10, READ | SB, "MODE SENSE(10)", isd_spc_setup_mode_sense,
	  isd_spc_exec_mode_sense, { 0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5e, 0x00, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE IN (READ KEYS)",
	  isd_pr_setup_in, isd_pr_exec_in, { 0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5e, 0x01, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE IN (READ RESERVATION)",
	  isd_pr_setup_in, isd_pr_exec_in, { 0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5e, 0x02, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE IN (REPORT CAPABILITIES)",
	  isd_pr_setup_in, isd_pr_exec_in, { 0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5e, 0x03, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE IN (READ FULL STATUS)",
	  isd_pr_setup_in, isd_pr_exec_in, { 0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, C } },
	{ 0x5f, 0x00, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (REGISTER)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x00, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x01, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (RESERVE)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x01, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x02, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (RELEASE)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x02, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x03, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (CLEAR)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x03, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x04, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (PREEMPT)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x04, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x05, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (PREEMPT AND ABORT)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x05, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x5f, 0x06, 10, ALLOW | ISD_OPF_HAS_SA | SB, "PERSISTENT RESERVE OUT (REGISTER AND IGNORE)",
	  isd_pr_setup_out, isd_pr_exec_out,
	  { 0x5f, 0x06, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C } },
	{ 0x83, 0x00, 16, READ | ISD_OPF_HAS_SA, "EXTENDED COPY(LID1)", isd_xcopy_setup,
	  isd_xcopy_exec, { 0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	{ 0x84, 0x00, 16, READ | ISD_OPF_HAS_SA, "RECEIVE COPY RESULTS (COPY STATUS)",
	  isd_xcopy_setup_results, isd_xcopy_exec_results,
	  { 0x84, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	{ 0x84, 0x03, 16, READ | ISD_OPF_HAS_SA, "RECEIVE COPY RESULTS (OPERATING PARAMETERS)",
	  isd_xcopy_setup_results, isd_xcopy_exec_results,
	  { 0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	{ 0x84, 0x04, 16, READ | ISD_OPF_HAS_SA, "RECEIVE COPY RESULTS (FAILED SEGMENT DETAILS)",
	  isd_xcopy_setup_results, isd_xcopy_exec_results,
	  { 0x84, 0x04, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	{ 0x88, ISD_SCSI_NO_SA, 16, READ, "READ(16)", isd_sbc_setup_read, isd_sbc_exec_read,
	  { 0x88, 0x18, LBA8, LEN4, 0x1f, C } },
	{ 0x89, ISD_SCSI_NO_SA, 16, WRITE, "COMPARE AND WRITE", isd_sbc_setup_caw,
	  isd_sbc_exec_caw,
	  { 0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, C } },
	{ 0x8a, ISD_SCSI_NO_SA, 16, WRITE, "WRITE(16)", isd_sbc_setup_write, isd_sbc_exec_write,
	  { 0x8a, 0x18, LBA8, LEN4, 0x1f, C } },
	{ 0x8b, ISD_SCSI_NO_SA, 16, WRITE, "ORWRITE(16)", isd_sbc_setup_orwrite,
	  isd_sbc_exec_orwrite, { 0x8b, 0x18, LBA8, LEN4, 0x1f, C } },
	{ 0x8e, ISD_SCSI_NO_SA, 16, WRITE, "WRITE AND VERIFY(16)", isd_sbc_setup_write,
	  isd_sbc_exec_write,
	  { 0x8e, 0x16, LBA8, LEN4, 0x1f, C } },
	{ 0x8f, ISD_SCSI_NO_SA, 16, READ, "VERIFY(16)", isd_sbc_setup_verify, isd_sbc_exec_verify,
	  { 0x8f, 0x16, LBA8, LEN4, 0x1f, C } },
	{ 0x90, ISD_SCSI_NO_SA, 16, READ, "PRE-FETCH(16)", isd_sbc_setup_prefetch, NULL,
	  { 0x90, 0x02, LBA8, LEN4, 0x1f, C } },
	{ 0x91, ISD_SCSI_NO_SA, 16, WRITE, "SYNCHRONIZE CACHE(16)", isd_sbc_setup_sync_cache,
	  isd_sbc_exec_sync_cache,
	  { 0x91, 0x02, LBA8, LEN4, 0x1f, C } },
	{ 0x93, ISD_SCSI_NO_SA, 16, WRITE, "WRITE SAME(16)", isd_sbc_setup_write_same,
	  isd_sbc_exec_write_same,
	  { 0x93, 0x09, LBA8, LEN4, 0x1f, C } },
	{ 0x9c, ISD_SCSI_NO_SA, 16, WRITE | ISD_OPF_ATOMIC, "WRITE ATOMIC(16)",
	  isd_sbc_setup_write_atomic, isd_sbc_exec_write_atomic,
	  { 0x9c, 0x18, LBA8, 0xff, 0xff, 0xff, 0xff, 0x1f, C } },
	{ 0x9e, 0x10, 16, ALLOW | ISD_OPF_HAS_SA | SB, "READ CAPACITY(16)",
	  isd_sbc_setup_read_capacity16, isd_sbc_exec_read_capacity16,
	  { 0x9e, 0x10, LBA8, LEN4, 0x01, C } },
	{ 0x9e, 0x12, 16, READ | ISD_OPF_HAS_SA, "GET LBA STATUS", isd_sbc_setup_get_lba_status,
	  isd_sbc_exec_get_lba_status,
	  { 0x9e, 0x12, LBA8, LEN4, 0, C } },
	{ 0xa0, ISD_SCSI_NO_SA, 12,
	  ALLOW | ISD_OPF_UA_EXEMPT | ISD_OPF_NO_LU | ISD_OPF_SPC2_ALLOW | UN, "REPORT LUNS",
	  isd_spc_setup_report_luns, isd_spc_exec_report_luns,
	  { 0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	/* SPC-5 6.37; only with ALUA configured. Reservations do not hold it back
	 * (SPC-5 table: allowed under every type, like the other MAINTENANCE IN). */
	{ 0xa3, 0x0a, 12, ALLOW | ISD_OPF_HAS_SA | ISD_OPF_SPC2_ALLOW | ISD_OPF_ALUA | UN,
	  "REPORT TARGET PORT GROUPS", isd_alua_setup_rtpg, isd_alua_exec_rtpg,
	  { 0xa3, 0xea, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, C } },
	/* SB: it only describes the device server; answering it on a standby path
	 * lets an initiator learn the LU before that path becomes active */
	{ 0xa3, 0x0c, 12, ALLOW | ISD_OPF_HAS_SA | ISD_OPF_SPC2_ALLOW | SB,
	  "REPORT SUPPORTED OPERATION CODES", isd_spc_setup_rsoc, isd_spc_exec_rsoc,
	  { 0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, C } },
	{ 0xa8, ISD_SCSI_NO_SA, 12, READ, "READ(12)", isd_sbc_setup_read, isd_sbc_exec_read,
	  { 0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, C } },
	{ 0xaa, ISD_SCSI_NO_SA, 12, WRITE, "WRITE(12)", isd_sbc_setup_write, isd_sbc_exec_write,
	  { 0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, C } },
	{ 0xae, ISD_SCSI_NO_SA, 12, WRITE, "WRITE AND VERIFY(12)", isd_sbc_setup_write,
	  isd_sbc_exec_write,
	  { 0xae, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, C } },
	{ 0xaf, ISD_SCSI_NO_SA, 12, READ, "VERIFY(12)", isd_sbc_setup_verify, isd_sbc_exec_verify,
	  { 0xaf, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, C } },
	{ 0xb7, ISD_SCSI_NO_SA, 12, READ, "READ DEFECT DATA(12)", isd_sbc_setup_read_defect_data,
	  isd_sbc_exec_read_defect_data,
	  { 0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, C } },
};
/* clang-format on */

const size_t g_isd_scsi_nops = sizeof(g_isd_scsi_ops) / sizeof(g_isd_scsi_ops[0]);

/*
 * Every command looks itself up here, so an index by opcode (built once, the
 * first time anyone asks) points at the first entry of each opcode; the
 * table keeps an opcode's entries together, in opcode order (test_cdb checks
 * that). A walk through the whole table cost a WRITE(16) some 300
 * instructions, a binary search 90.
 */
static uint8_t g_op_first[256];         /* index + 1 of an opcode's first entry, 0: none */
static pthread_once_t g_op_once = PTHREAD_ONCE_INIT;

static void
op_index(void)
{
	_Static_assert(sizeof(g_isd_scsi_ops) / sizeof(g_isd_scsi_ops[0]) < 255,
		       "g_op_first holds an index + 1 in a byte");
	for (size_t i = g_isd_scsi_nops; i-- > 0;)
		g_op_first[g_isd_scsi_ops[i].opcode] = (uint8_t)(i + 1);
}

const struct isd_scsi_op *
isd_scsi_op_find(uint8_t opcode, uint16_t sa, bool *opcode_known)
{
	size_t i;

	(void)pthread_once(&g_op_once, op_index);
	i = g_op_first[opcode];
	*opcode_known = i != 0;
	if (i == 0)
		return NULL;
	for (i--; i < g_isd_scsi_nops && g_isd_scsi_ops[i].opcode == opcode; i++) {
		const struct isd_scsi_op *op = &g_isd_scsi_ops[i];

		if (!(op->flags & ISD_OPF_HAS_SA) || op->sa == sa)
			return op;
	}
	return NULL;
}
