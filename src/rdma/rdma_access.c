/*
 * Which access rights target memory gets, per fabric, per kind of memory and
 * per use. Pure: no verbs object is touched (only the IBV_ACCESS_* constants),
 * so every case is unit-tested without a device.
 *
 * The rule (no standing remote access to target memory): the target is the
 * active side of every RDMA transfer. Its RDMA Write reads the source through
 * a local key, its RDMA Read places into the sink through a local key, and on
 * InfiniBand and RoCE that is all the sink needs. An iWARP RDMA Read Request
 * carries the sink STag to the peer, and the Read Response is placed as a
 * tagged message on that STag, which RFC 5040 checks for remote write access:
 * there the sink gets a registration of its own, for that command's bytes
 * only, dropped as soon as the command's Reads are complete. Nothing is ever
 * registered with remote read access.
 */
#include "rdma/rdma.h"

#include <errno.h>
#include <string.h>

int
isd_rdma_access_plan(enum isd_rdma_fabric fabric, enum isd_rdma_mem_kind kind,
		     enum isd_rdma_use use, struct isd_rdma_access *out)
{
	memset(out, 0, sizeof(*out));
	switch (kind) {
	case ISD_RDMA_MEM_POOL:
	case ISD_RDMA_MEM_LUN:
		/* RDMA Read sinks on IB/RoCE and received data need local write */
		out->standing = IBV_ACCESS_LOCAL_WRITE;
		break;
	case ISD_RDMA_MEM_LUN_RO:
		/* only ever an RDMA Write source: local read is implied */
		out->standing = 0;
		break;
	default:
		return -EINVAL;
	}
	switch (use) {
	case ISD_RDMA_USE_STANDING:
	case ISD_RDMA_USE_WRITE_SOURCE:
		return 0;
	case ISD_RDMA_USE_READ_SINK:
		if (kind == ISD_RDMA_MEM_LUN_RO)
			return -EACCES;         /* a read-only LUN never receives data */
		if (fabric == ISD_RDMA_FABRIC_IWARP)
			out->per_cmd = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
		return 0;
	default:
		return -EINVAL;
	}
}

bool
isd_rdma_access_is_remote(int access)
{
	return (access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
			  IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND)) != 0;
}

const char *
isd_rdma_fabric_name(enum isd_rdma_fabric fabric)
{
	switch (fabric) {
	case ISD_RDMA_FABRIC_IB:
		return "InfiniBand";
	case ISD_RDMA_FABRIC_ROCE:
		return "RoCE";
	case ISD_RDMA_FABRIC_IWARP:
		return "iWARP";
	}
	return "?";
}
