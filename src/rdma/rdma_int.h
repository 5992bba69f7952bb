/* What the RDMA layer's files share and nothing above sees. */
#ifndef ISD_RDMA_INT_H
#define ISD_RDMA_INT_H

#include <stdint.h>

/* Registered pool buffers handed out, and slab bytes held (rdma_pool.c). */
void isd_rdma_pool_stats(uint64_t *bufs, uint64_t *slab_bytes);

#endif
