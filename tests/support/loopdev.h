/*
 * A real block device for tests: a loop device over a sparse file, with the
 * logical block size asked. Needs root and /dev/loop-control; a test without
 * them is skipped with the reason.
 */
#ifndef ISD_TEST_LOOPDEV_H
#define ISD_TEST_LOOPDEV_H

#include <stddef.h>
#include <stdint.h>

struct isd_test_loop {
	char dev[32];           /* "/dev/loopN" */
	char file[64];          /* the backing file */
	int dev_fd;             /* held open: the device detaches when it closes */
	int file_fd;            /* the backing file, to read what reached the device */
};

/*
 * Sets one up of size bytes: 0; -errno with the reason in why (no root, no
 * loop driver) when it cannot.
 */
int isd_test_loop_setup(struct isd_test_loop *l, uint64_t size, uint32_t block_size, char *why,
			size_t whylen);
/* Detaches the device and removes the file. */
void isd_test_loop_teardown(struct isd_test_loop *l);

#endif
