/*
 * The reactor: one epoll loop per thread. Every object that registers here is
 * owned by this reactor's thread; nothing here takes a lock.
 *
 * Callbacks never run inside the call that registers them: a deferred call or
 * a timer of 0 ms runs on the next loop iteration; a turn-end call runs at the
 * end of the current one.
 *
 * One turn of the loop: wait for fds (not at all when something is due),
 * dispatch their events, run the messages other threads posted, the timers
 * and deferred calls that are due, then the turn-end calls, which is where a
 * component that batches work (the io_uring store submits its queued
 * requests there, once a turn) flushes it.
 *
 * Other threads reach a reactor only through isd_reactor_post() (a lock-free
 * inbox and the reactor's eventfd) and isd_reactor_stop().
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
	bool deferred;                  /* armed by isd_reactor_defer() */
	TAILQ_ENTRY(isd_timer) link;
};

/*
 * A message from another thread (or this one): cb(arg) runs on the target
 * reactor's thread, in the order posted by each poster. The poster owns the
 * memory until cb runs; cb may free it.
 */
struct isd_reactor_msg {
	struct isd_reactor_msg *next;
	isd_task_cb cb;
	void *arg;
};

/*
 * How the loop waits when it has nothing to do:
 *   EVENT     sleeps in epoll_wait until an fd, a timer or a message is due;
 *   POLL      never sleeps: busy polls epoll (for a core reserved to iserd);
 *   ADAPTIVE  busy polls for poll_us after the last turn that did work, then
 *             sleeps like EVENT: a loaded reactor skips the sleep/wake cost,
 *             an idle one burns nothing (the default). While its sleeps keep
 *             being cut short by new work (under 8 x poll_us), the spin
 *             doubles, up to 8 x poll_us; a longer sleep sets it back.
 */
enum isd_reactor_mode {
	ISD_REACTOR_EVENT = 0,
	ISD_REACTOR_POLL,
	ISD_REACTOR_ADAPTIVE,
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
/*
 * Runs t->cb soon: in the current iteration when armed before its timers run
 * (from an fd callback or a message), else in the next one; deferred timers
 * run in the order armed, before the timers that are due. Reads no clock.
 * Deferring a deferred timer leaves it where it is; an armed timer moves.
 */
void isd_reactor_defer(struct isd_reactor *r, struct isd_timer *t);
/*
 * Runs t->cb once at the end of this loop turn, after the fd callbacks and the
 * due timers, before the loop waits again (from inside a turn-end call: later
 * in the same round). Arming an armed one does nothing; isd_reactor_timer_stop()
 * disarms it. For batching: arm it when the first piece of work is queued.
 */
void isd_reactor_at_turn_end(struct isd_reactor *r, struct isd_timer *t);

/*
 * Posts m to r from any thread; lock-free (one atomic exchange, plus an eventfd
 * write when r's inbox was empty). m->cb runs on r's thread, never inside this
 * call, even when the poster is r's own thread. Only a loop that sleeps in
 * isd_reactor_poll/run is woken: one embedded through isd_reactor_fd() sees
 * posts at its next isd_reactor_run_due().
 */
void isd_reactor_post(struct isd_reactor *r, struct isd_reactor_msg *m);
/* Sets how r waits when idle (see enum isd_reactor_mode); poll_us for ADAPTIVE. */
void isd_reactor_set_mode(struct isd_reactor *r, enum isd_reactor_mode mode, unsigned poll_us);
/*
 * The reactor whose loop runs on the calling thread (set by isd_reactor_run
 * and isd_reactor_poll), or NULL on a thread that runs none.
 */
struct isd_reactor *isd_reactor_current(void);
/* The number given at isd_reactor_set_index (0 by default): a reactor's place in its group. */
unsigned isd_reactor_index(const struct isd_reactor *r);
void isd_reactor_set_index(struct isd_reactor *r, unsigned index);

/* Counters of one reactor's loop, for stats and tests (read from its own thread,
 * or approximately from another). */
struct isd_reactor_stats {
	uint64_t turns;                 /* loop iterations */
	uint64_t sleeps;                /* epoll_wait calls that could block */
	uint64_t msgs;                  /* posted messages run */
	uint64_t poll_us;               /* ADAPTIVE: how long it spins after work now */
	enum isd_reactor_mode mode;     /* as set; read it with the reactor paused */
};
void isd_reactor_get_stats(const struct isd_reactor *r, struct isd_reactor_stats *out);

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
/*
 * The clock (isd_now_ns) read once when r's current turn began to dispatch,
 * before its fd callbacks, messages, timers and turn-end calls: for stamps
 * that a turn's length does not matter to (when a connection last received),
 * at no clock read of their own. Its owner thread only.
 */
uint64_t isd_reactor_turn_ns(const struct isd_reactor *r);

/*
 * A group of reactors, one per thread: reactor 0 belongs to the thread that
 * creates the group (it runs it itself, with isd_reactor_run), the others
 * each get a thread of their own at isd_reactor_group_start. cpus, when not
 * NULL, pins reactor i to cpus[i % ncpus].
 */
struct isd_reactor_group;

#define ISD_REACTOR_MAX 256             /* reactors in one group */

int isd_reactor_group_create(unsigned n, struct isd_reactor_group **out);
unsigned isd_reactor_group_size(const struct isd_reactor_group *g);
struct isd_reactor *isd_reactor_group_get(const struct isd_reactor_group *g, unsigned i);
/* Starts the threads of reactors 1..n-1 (pinned when cpus is given); reactor 0
 * is pinned to cpus[0] on the calling thread. 0, or -errno (nothing started). */
int isd_reactor_group_start(struct isd_reactor_group *g, const int *cpus, unsigned ncpus);
/* Stops reactors 1..n-1 and joins their threads (reactor 0 is the caller's to stop). */
void isd_reactor_group_join(struct isd_reactor_group *g);
/*
 * Stops the world for a control operation: called on reactor 0's thread,
 * returns once every other reactor of the started group sits idle at a
 * barrier between two of its turns (they run no callback until resume).
 * What the caller then changes, any reactor sees after resume (the barrier's
 * mutex orders it). For rare work only: reloads, control methods, scrapes.
 * Nesting is counted: only the outermost resume releases them.
 */
void isd_reactor_group_pause(struct isd_reactor_group *g);
void isd_reactor_group_resume(struct isd_reactor_group *g);
/*
 * Both on the reactor r belongs to: pause/resume its group when r is reactor
 * 0 of a started group of more than one; nothing otherwise (a lone reactor, a
 * NULL one). For the control paths, which hold a reactor, not a group.
 */
void isd_reactor_pause_others(struct isd_reactor *r);
void isd_reactor_resume_others(struct isd_reactor *r);
/* The group r belongs to, or NULL for a reactor made by isd_reactor_create. */
struct isd_reactor_group *isd_reactor_group_of(const struct isd_reactor *r);
/* Whether the group's threads run (between start and join). Reactor 0's thread. */
bool isd_reactor_group_started(const struct isd_reactor_group *g);

/*
 * Placement. Each reactor counts the connections a datamover put on it
 * (atomically: the count goes up where the connection is placed, down on the
 * connection's own thread when it is freed). pick returns the reactor of a
 * started group with the fewest (ties: the lowest index) and counts the new
 * connection on it; for a group that has not started, reactor 0.
 */
struct isd_reactor *isd_reactor_group_pick(struct isd_reactor_group *g);

/* A set of reactors by index (a portal's placement); empty: every reactor. */
struct isd_reactor_mask {
	uint64_t bits[ISD_REACTOR_MAX / 64];
};

static inline void
isd_reactor_mask_add(struct isd_reactor_mask *s, unsigned i)
{
	if (i < ISD_REACTOR_MAX)
		s->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static inline bool
isd_reactor_mask_has(const struct isd_reactor_mask *s, unsigned i)
{
	return i < ISD_REACTOR_MAX && (s->bits[i / 64] >> (i % 64) & 1u) != 0;
}

static inline bool
isd_reactor_mask_empty(const struct isd_reactor_mask *s)
{
	for (unsigned k = 0; k < ISD_REACTOR_MAX / 64; k++)
		if (s->bits[k] != 0)
			return false;
	return true;
}

/*
 * As isd_reactor_group_pick, among the reactors of `in` only: the fewest
 * connections there (ties: the lowest index). A NULL or empty set, or one
 * that names no reactor of the group, means every reactor.
 */
struct isd_reactor *isd_reactor_group_pick_in(struct isd_reactor_group *g,
					      const struct isd_reactor_mask *in);
void isd_reactor_conns_add(struct isd_reactor *r, int delta);
unsigned isd_reactor_conns(const struct isd_reactor *r);

/* Frees every reactor (after join); each must be empty as for isd_reactor_destroy. */
void isd_reactor_group_destroy(struct isd_reactor_group *g);

#endif
