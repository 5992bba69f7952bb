/* What the stores of this directory share beyond the public header. */
#ifndef ISD_BSTORE_INT_H
#define ISD_BSTORE_INT_H

#include "bstore/bstore.h"

int isd_bstore_ram_create(struct isd_reactor *r, uint64_t size, struct isd_bstore **out);

/*
 * Opens a regular file (is_dev false) or a block device (is_dev true) for I/O
 * through the reactor's io_uring, with O_DIRECT when direct. For a file,
 * size > 0 creates it when absent and extends it when shorter; size 0 takes
 * the file's own size.
 */
int isd_bstore_uring_open(struct isd_reactor *r, const char *path, bool is_dev, uint64_t size,
			  bool read_only, bool direct, struct isd_bstore **out, char *err,
			  size_t err_len);

#endif
