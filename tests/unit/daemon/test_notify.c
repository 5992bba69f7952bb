/*
 * Unit tests for daemon/notify.c: the sd_notify(3) messages iserd.service
 * (Type=notify) depends on, read from a datagram socket that stands in for
 * systemd's NOTIFY_SOCKET.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

struct fixture {
	int fd;
	char path[108];
};

static int
setup(void **state)
{
	static struct fixture fx;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 2};

	snprintf(fx.path, sizeof(fx.path), "%s/iserd-notify-%d.sock",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	unlink(fx.path);
	fx.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fx.fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fx.path);
	if (bind(fx.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	setsockopt(fx.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setenv("NOTIFY_SOCKET", fx.path, 1);
	*state = &fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	unsetenv("NOTIFY_SOCKET");
	close(fx->fd);
	unlink(fx->path);
	return 0;
}

static const char *
next_msg(struct fixture *fx)
{
	static char buf[1024];
	ssize_t n = recv(fx->fd, buf, sizeof(buf) - 1, 0);

	assert_true(n > 0);
	buf[n] = '\0';
	return buf;
}

static void
test_messages(void **state)
{
	struct fixture *fx = *state;
	const char *m;
	unsigned long long usec;
	char *end;

#ifndef ISERD_HAVE_SYSTEMD
	skip();
#endif
	isd_notify_ready("serving");
	assert_string_equal(next_msg(fx), "READY=1\nSTATUS=serving");
	isd_notify_ready(NULL);
	assert_string_equal(next_msg(fx), "READY=1");
	isd_notify_stopping();
	assert_string_equal(next_msg(fx), "STOPPING=1\nSTATUS=shutting down");
	isd_notify_reloading();
	m = next_msg(fx);
	assert_int_equal(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
	usec = strtoull(m + 27, &end, 10);
	assert_true(usec > 0);
	assert_int_equal(*end, '\0');
	/* a newline cannot smuggle a second assignment (READY=1) into STATUS= */
	isd_notify_status("%d portals\nREADY=1", 2);
	assert_string_equal(next_msg(fx), "STATUS=2 portals READY=1");
	isd_notify_ready("a\nb");
	assert_string_equal(next_msg(fx), "READY=1\nSTATUS=a b");
}

static void
test_no_socket(void **state)
{
	(void)state;
	/* not under systemd: nothing happens, nothing fails */
	unsetenv("NOTIFY_SOCKET");
	isd_notify_ready("x");
	isd_notify_stopping();
	isd_notify_reloading();
	isd_notify_status("y");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages),
	    cmocka_unit_test(test_no_socket),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
