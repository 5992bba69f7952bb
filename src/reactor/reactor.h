/*
 * The reactor: one epoll loop per thread. Every object that registers here is
 * owned by this reactor's thread; nothing here takes a lock.
 *
 * Callbacks never run inside the call that registers them: a deferred call or
 * a timer of 0 ms runs on the next loop iteration; a turn-end call runs at the
 * end of the current one.
 *
 * One turn of the loop: wait for fds (not at all when something is due),
 * dispatch their events, run the timers and deferred calls that are due,
 * then the turn-end calls, which is where a component that batches work
 * (the io_uring store submits its queued requests there, once a turn)
 * flushes it.
 */
#ifndef ISD_REACTOR_H
#define ISD_REACTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct isd_reactor;

/* events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP as epoll reports them (EPOLLERR and
 * EPOLLHUP are also reported as EPOLLIN|EPOLLOUT so the handler reads the error). */
typedef void (*isd_fd_cb)(void *arg, uint32_t events);
typedef void (*isd_task_cb)(void *arg);

/* A timer or deferred call; the caller owns the memory and keeps it alive while armed. */
struct isd_timer {
	uint64_t deadline_ns;           /* monotonic time it fires at */
	isd_task_cb cb;
	void *arg;
	bool armed;
	bool turn_end;                  /* armed by isd_reactor_at_turn_end() */
	TAILQ_ENTRY(isd_timer) link;
};

int isd_reactor_create(struct isd_reactor **out);
/* Frees the loop; every fd must have been removed and every timer stopped. */
void isd_reactor_destroy(struct isd_reactor *r);

/* fd registration; `events` is a mask of EPOLLIN/EPOLLOUT (level-triggered). */
int isd_reactor_add_fd(struct isd_reactor *r, int fd, uint32_t events, isd_fd_cb cb, void *arg);
int isd_reactor_mod_fd(struct isd_reactor *r, int fd, uint32_t events);
int isd_reactor_del_fd(struct isd_reactor *r, int fd);

/* One-shot timer; re-arming an armed timer moves it. */
void isd_timer_init(struct isd_timer *t, isd_task_cb cb, void *arg);
void isd_reactor_timer_start(struct isd_reactor *r, struct isd_timer *t, uint64_t ms);
void isd_reactor_timer_stop(struct isd_reactor *r, struct isd_timer *t);
/* Runs t->cb on the next loop iteration (a 0 ms timer). */
void isd_reactor_defer(struct isd_reactor *r, struct isd_timer *t);
/*
 * Runs t->cb once at the end of this loop turn, after the fd callbacks and the
 * due timers, before the loop waits again (from inside a turn-end call: later
 * in the same round). Arming an armed one does nothing; isd_reactor_timer_stop()
 * disarms it. For batching: arm it when the first piece of work is queued.
 */
void isd_reactor_at_turn_end(struct isd_reactor *r, struct isd_timer *t);

/* Runs until isd_reactor_stop(); returns 0, or -errno if epoll itself failed. */
int isd_reactor_run(struct isd_reactor *r);
/* Safe from a signal handler (writes an eventfd). */
void isd_reactor_stop(struct isd_reactor *r);
/* One iteration: waits at most timeout_ms (-1 forever, 0 poll). Returns 0 or -errno. */
int isd_reactor_poll(struct isd_reactor *r, int timeout_ms);

/*
 * For a loop that embeds this one (the initiator library: its caller polls):
 * the epoll descriptor, readable when an fd is ready, and the milliseconds
 * until the next timer or deferred call is due (0: now; -1: none).
 */
int isd_reactor_fd(const struct isd_reactor *r);
int isd_reactor_next_timeout_ms(struct isd_reactor *r);
/* Runs the timers, deferred and turn-end calls due now, without waiting for or
 * reading fds. */
void isd_reactor_run_due(struct isd_reactor *r);

uint64_t isd_now_ns(void);

#endif
