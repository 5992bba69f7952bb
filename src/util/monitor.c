/*
 * Monitors (monitor.h). Each thread keeps the monitors it holds, innermost
 * last, each with a count, and a queue of deferred calls that run when the
 * last one is left.
 */
#include "util/monitor.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

enum held_mode {
	H_EXCL,         /* a monitor, its mutex taken */
	H_SHARED,       /* a face, entered shared: this thread's slot flag is up */
	H_FACE_EXCL,    /* a face entered exclusively: its monitor's mutex taken */
	H_FACE_NESTED,  /* a face entered while its monitor was held: nothing taken */
};

struct held {
	struct isd_monitor *m;
	unsigned depth;
	enum held_mode mode;
};

static __thread struct {
	struct held held[ISD_MONITOR_NEST];
	unsigned n;
	struct isd_monitor_call *head, *tail;
	bool draining;
} t_mon;

static atomic_bool g_threaded;
static atomic_int g_slots;                      /* slots given out so far */
static __thread int t_slot = -2;                /* -2: none asked for yet */

void
isd_monitor_init(struct isd_monitor *m)
{
	pthread_mutex_init(&m->mu, NULL);
	m->writer = 0;
	m->rd = NULL;
	m->excl = NULL;
}

int
isd_monitor_init_shared(struct isd_monitor *face, struct isd_monitor *m)
{
	size_t sz = sizeof(struct isd_monitor_rd) * ISD_MONITOR_SLOTS;

	m->rd = aligned_alloc(_Alignof(struct isd_monitor_rd), sz);
	if (m->rd == NULL)
		return -ENOMEM;
	memset(m->rd, 0, sz);
	isd_monitor_init(face);
	face->excl = m;
	return 0;
}

void
isd_monitor_destroy(struct isd_monitor *m)
{
	pthread_mutex_destroy(&m->mu);
	if (m->excl == NULL)
		free(m->rd);
	m->rd = NULL;
}

void
isd_monitor_set_threaded(bool on)
{
	atomic_store(&g_threaded, on);
}

bool
isd_monitor_threaded(void)
{
	return atomic_load_explicit(&g_threaded, memory_order_relaxed);
}

int
isd_monitor_slot(void)
{
	if (t_slot == -2) {
		int s = atomic_fetch_add(&g_slots, 1);

		t_slot = s < ISD_MONITOR_SLOTS ? s : -1;
	}
	return t_slot;
}

static void pause_a_little(unsigned *spins);

static int
slots_used(void)
{
	int n = atomic_load(&g_slots);

	return n < ISD_MONITOR_SLOTS ? n : ISD_MONITOR_SLOTS;
}

/*
 * With the mutex held: raise the writer flag, then wait for the readers in
 * their sections (they never wait for anything while in one, so this ends).
 * A slot given out after the count was read belongs to a thread that will
 * see the flag (both sequentially consistent).
 */
static void
wait_readers(struct isd_monitor *m)
{
	int n;

	__atomic_store_n(&m->writer, 1, __ATOMIC_SEQ_CST);
	n = slots_used();
	for (int i = 0; i < n; i++) {
		unsigned spins = 0;

		while (__atomic_load_n(&m->rd[i].active, __ATOMIC_SEQ_CST))
			pause_a_little(&spins);
	}
}

static void
excl_lock(struct isd_monitor *m)
{
	pthread_mutex_lock(&m->mu);
	if (m->rd != NULL)
		wait_readers(m);
}

static bool
excl_trylock(struct isd_monitor *m)
{
	if (pthread_mutex_trylock(&m->mu) != 0)
		return false;
	if (m->rd != NULL)
		wait_readers(m);
	return true;
}

static void
excl_unlock(struct isd_monitor *m)
{
	if (m->rd != NULL)
		__atomic_store_n(&m->writer, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&m->mu);
}

static struct held *
find(const struct isd_monitor *m)
{
	for (unsigned i = 0; i < t_mon.n; i++)
		if (t_mon.held[i].m == m)
			return &t_mon.held[i];
	return NULL;
}

static struct held *
push(struct isd_monitor *m, enum held_mode mode)
{
	struct held *h;

	if (t_mon.n == ISD_MONITOR_NEST) {
		isd_log_err("monitor: more than %d monitors held at once", ISD_MONITOR_NEST);
		abort();
	}
	h = &t_mon.held[t_mon.n++];
	h->m = m;
	h->depth = 1;
	h->mode = mode;
	return h;
}

/*
 * A thread in a shared section waits for nothing: entering a monitor
 * exclusively from there could wait for its own flag (the same monitor), or
 * for a thread that waits for it (another monitor's holder trying this one).
 */
static void
check_not_shared(void)
{
	for (unsigned i = 0; i < t_mon.n; i++) {
		if (t_mon.held[i].mode == H_SHARED) {
			isd_log_err("monitor: a monitor entered exclusively inside a shared section");
			abort();
		}
	}
}

static void
pause_a_little(unsigned *spins)
{
	if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else {
		sched_yield();
	}
}

static void
face_enter(struct isd_monitor *f)
{
	struct isd_monitor *m = f->excl;
	int s = isd_monitor_slot();
	unsigned spins = 0;

	if (find(m) != NULL) {
		push(f, H_FACE_NESTED);
		return;
	}
	if (t_mon.n > 0 || s < 0) {
		check_not_shared();
		excl_lock(m);
		push(f, H_FACE_EXCL);
		return;
	}
	for (;;) {
		__atomic_store_n(&m->rd[s].active, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&m->writer, __ATOMIC_SEQ_CST))
			break;
		/* a writer is in or waiting: out of its way until it is done */
		__atomic_store_n(&m->rd[s].active, 0, __ATOMIC_RELEASE);
		while (__atomic_load_n(&m->writer, __ATOMIC_ACQUIRE))
			pause_a_little(&spins);
	}
	push(f, H_SHARED);
}

void
isd_monitor_enter(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return;
	/* the common case first: the one entered last, entered again */
	if (t_mon.n > 0 && t_mon.held[t_mon.n - 1].m == m) {
		t_mon.held[t_mon.n - 1].depth++;
		return;
	}
	h = find(m);
	if (h != NULL) {
		h->depth++;
		return;
	}
	if (m->excl != NULL) {
		face_enter(m);
		return;
	}
	check_not_shared();
	push(m, H_EXCL);
	excl_lock(m);
}

bool
isd_monitor_try_enter(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return true;
	h = find(m);
	if (h != NULL) {
		h->depth++;
		return true;
	}
	if (m->excl != NULL) {
		face_enter(m);
		return true;
	}
	check_not_shared();
	if (t_mon.n == ISD_MONITOR_NEST) {
		isd_log_err("monitor: more than %d monitors held at once", ISD_MONITOR_NEST);
		abort();
	}
	if (!excl_trylock(m))
		return false;
	push(m, H_EXCL);
	return true;
}

static __attribute__((noinline)) void
drain(void)
{
	struct isd_monitor_call *c;

	/* a deferred call that enters and leaves a monitor comes back here: the
	 * outer loop runs what it queues */
	if (t_mon.draining)
		return;
	t_mon.draining = true;
	while ((c = t_mon.head) != NULL) {
		t_mon.head = c->next;
		if (t_mon.head == NULL)
			t_mon.tail = NULL;
		c->next = NULL;
		c->fn(c->arg);
	}
	t_mon.draining = false;
}

static void
let_go(const struct held *h)
{
	switch (h->mode) {
	case H_EXCL:
		excl_unlock(h->m);
		break;
	case H_SHARED:
		__atomic_store_n(&h->m->excl->rd[t_slot].active, 0, __ATOMIC_RELEASE);
		break;
	case H_FACE_EXCL:
		excl_unlock(h->m->excl);
		break;
	case H_FACE_NESTED:
		break;
	}
}

void
isd_monitor_leave(struct isd_monitor *m)
{
	struct held *h;

	if (m == NULL || !isd_monitor_threaded())
		return;
	/* the common case: the innermost one, left for good */
	h = t_mon.n > 0 ? &t_mon.held[t_mon.n - 1] : NULL;
	if (h != NULL && h->m == m) {
		if (--h->depth > 0)
			return;
		let_go(h);
		if (--t_mon.n == 0 && t_mon.head != NULL)
			drain();
		return;
	}
	h = find(m);
	if (h == NULL) {
		isd_log_err("monitor: left one this thread does not hold");
		abort();
	}
	if (--h->depth > 0)
		return;
	let_go(h);
	t_mon.n--;
	for (struct held *e = &t_mon.held[t_mon.n]; h < e; h++)
		h[0] = h[1];
	if (t_mon.n == 0 && t_mon.head != NULL)
		drain();
}

bool
isd_monitor_shared(const struct isd_monitor *face)
{
	const struct held *h = find(face);

	return h != NULL && h->mode == H_SHARED;
}

struct isd_monitor *
isd_monitor_current(void)
{
	return t_mon.n > 0 ? t_mon.held[t_mon.n - 1].m : NULL;
}

bool
isd_monitor_held(const struct isd_monitor *m)
{
	return m != NULL && find(m) != NULL;
}

void
isd_monitor_after(struct isd_monitor_call *c, void (*fn)(void *arg), void *arg)
{
	c->fn = fn;
	c->arg = arg;
	c->next = NULL;
	if (t_mon.n == 0 && !t_mon.draining) {
		/* also with one reactor, where nothing is ever held */
		fn(arg);
		return;
	}
	if (t_mon.tail != NULL)
		t_mon.tail->next = c;
	else
		t_mon.head = c;
	t_mon.tail = c;
}
