/* A loop device for tests (loopdev.h). */
#include "loopdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int
isd_test_loop_setup(struct isd_test_loop *l, uint64_t size, uint32_t block_size, char *why,
		    size_t whylen)
{
	struct loop_config lc;
	int ctl, n, rc;

	memset(l, 0, sizeof(*l));
	l->dev_fd = -1;
	l->file_fd = -1;
	snprintf(l->file, sizeof(l->file), "/var/tmp/isd_loop_XXXXXX");
	l->file_fd = mkstemp(l->file);
	if (l->file_fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "mkstemp: %s", strerror(-rc));
		return rc;
	}
	if (ftruncate(l->file_fd, (off_t)size) < 0) {
		rc = -errno;
		snprintf(why, whylen, "ftruncate: %s", strerror(-rc));
		goto err_file;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		rc = -errno;
		snprintf(why, whylen, "/dev/loop-control: %s", strerror(-rc));
		goto err_file;
	}
	/* another process may take the free device first: try again */
	for (int tries = 0; tries < 8; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			rc = -errno;
			snprintf(why, whylen, "LOOP_CTL_GET_FREE: %s", strerror(-rc));
			break;
		}
		snprintf(l->dev, sizeof(l->dev), "/dev/loop%d", n);
		l->dev_fd = open(l->dev, O_RDWR | O_CLOEXEC);
		if (l->dev_fd < 0) {
			rc = -errno;
			snprintf(why, whylen, "%s: %s", l->dev, strerror(-rc));
			break;
		}
		memset(&lc, 0, sizeof(lc));
		lc.fd = (uint32_t)l->file_fd;
		lc.block_size = block_size;
		/* the device goes away with the last close, even if the test dies */
		lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(l->dev_fd, LOOP_CONFIGURE, &lc) == 0) {
			close(ctl);
			/* the loop and file_fd hold it: nothing is left behind if the test dies */
			unlink(l->file);
			return 0;
		}
		rc = -errno;
		snprintf(why, whylen, "LOOP_CONFIGURE %s: %s", l->dev, strerror(-rc));
		close(l->dev_fd);
		l->dev_fd = -1;
		if (rc != -EBUSY)
			break;
	}
	close(ctl);
err_file:
	close(l->file_fd);
	l->file_fd = -1;
	unlink(l->file);
	return rc;
}

void
isd_test_loop_teardown(struct isd_test_loop *l)
{
	if (l->dev_fd >= 0) {
		(void)ioctl(l->dev_fd, LOOP_CLR_FD, 0);
		close(l->dev_fd);
	}
	if (l->file_fd >= 0)
		close(l->file_fd);
	unlink(l->file);
	l->dev_fd = -1;
	l->file_fd = -1;
}
