/*
 * The target core's upcall table (dm.h): what every passive connection's
 * datamover calls up through. A file of its own, so that a unit test can
 * stand in for one upcall with the linker's --wrap.
 */
#include "iscsi/core.h"

const struct isd_dm_upcalls isd_conn_dm_upcalls = {
	.control_notify = isd_conn_control_notify,
	.pdu_error_notify = isd_conn_pdu_error_notify,
	.data_completion_notify = isd_conn_data_completion_notify,
	.terminate_notify = isd_conn_terminate_notify,
	.fence_hold = isd_conn_fence_hold,
	.fence_release = isd_conn_fence_release,
	.stamp_sn = isd_conn_stamp_sn,
	.count_copy = isd_conn_count_copy,
};
