/* The machinery of a quick wait (poll(0)'s fast path, backends/_base.py),
   shared by the epoll and kqueue bindings.

   A quick wait runs without the poller's Python bookkeeping (the count of
   threads in poll() that defers close()), so the two things that
   bookkeeping guards are guarded here, with atomics:

   * the kernel fd is never closed under a quick wait (nor its number reused
     by another open): a handle counts the quick waits in flight and a close
     request; the request closes the fd at once if none is in flight, else
     the last one out closes it (with the backend's own close function);
   * a quick buffer is used by one thread at a time: a second thread finds
     it taken and is told so (PORTAIO_QUICK_TAKEN: it takes the general way).
     When more than one key came, the buffer stays the caller's (HELD) until
     it has read them and called the release, which only the holding
     thread's call does: an exception raised in Python between the wait and
     the release (a signal handler's) is followed by a release in the
     holder's exception path, never by another thread's. */
#ifndef PORTAIO_QUICK_H
#define PORTAIO_QUICK_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#define PORTAIO_QUICK_TAKEN (-3)

struct portaio_quick_handle {
    int fd;
    int paused;     /* non-zero: quick waits are refused (kqueue: keys kept for the general wait) */
    uint32_t users; /* atomic: quick waits in flight << 1 | close requested */
};

enum { PORTAIO_QUICK_IDLE = 0, PORTAIO_QUICK_BUSY = 1, PORTAIO_QUICK_HELD = 2 };

static uint64_t portaio_quick_thread(void) { return (uint64_t)(uintptr_t)pthread_self(); }

/* Ask to close h->fd: 1 if no quick wait is in flight (the caller closes it
   now), 0 if one is (the last one out closes it). */
static int portaio_quick_handle_close(struct portaio_quick_handle *h)
{
    uint32_t before = __atomic_fetch_or(&h->users, 1u, __ATOMIC_ACQ_REL);
    return (before >> 1) == 0 && !(before & 1u);
}

/* Take the buffer whose atomic state is *state and enter the handle: 1, or 0
   when the buffer is another thread's, the fd is closing or quick waits are
   paused. */
static int portaio_quick_enter(uint32_t *state, struct portaio_quick_handle *h)
{
    uint32_t idle = PORTAIO_QUICK_IDLE;
    if (__atomic_load_n(&h->paused, __ATOMIC_ACQUIRE))
        return 0;
    if (!__atomic_compare_exchange_n(state, &idle, PORTAIO_QUICK_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    uint32_t users = __atomic_load_n(&h->users, __ATOMIC_ACQUIRE);
    do {
        if (users & 1u) { /* closing */
            __atomic_store_n(state, PORTAIO_QUICK_IDLE, __ATOMIC_RELEASE);
            return 0;
        }
    } while (!__atomic_compare_exchange_n(&h->users, &users, users + 2u, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    return 1;
}

/* Leave the handle (the last wait out of a closed poller closes the fd with
   close_fd), then leave the buffer HELD by this thread (keys > 1) or idle. */
static void portaio_quick_leave(uint32_t *state, uint64_t *holder, struct portaio_quick_handle *h, int held,
                                int (*close_fd)(int))
{
    if (__atomic_sub_fetch(&h->users, 2u, __ATOMIC_ACQ_REL) == 1u) {
        int saved = errno;
        close_fd(h->fd);
        errno = saved;
    }
    if (held) {
        *holder = portaio_quick_thread();
        __atomic_store_n(state, PORTAIO_QUICK_HELD, __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(state, PORTAIO_QUICK_IDLE, __ATOMIC_RELEASE);
    }
}

/* A quick wait's result for n keys (n < 0: a failure, errno set): the key
   itself for one (keys are never negative: the top bit is masked only to
   keep the conversion defined), -2 - n for n others, -1 for a failure. */
static int64_t portaio_quick_result(int n, const uint64_t *keys)
{
    if (n < 0)
        return -1;
    return n == 1 ? (int64_t)(keys[0] & INT64_MAX) : -2 - (int64_t)n;
}

/* Give back a buffer this thread holds; nothing otherwise. */
static void portaio_quick_give_back(uint32_t *state, const uint64_t *holder)
{
    if (__atomic_load_n(state, __ATOMIC_ACQUIRE) == PORTAIO_QUICK_HELD && *holder == portaio_quick_thread())
        __atomic_store_n(state, PORTAIO_QUICK_IDLE, __ATOMIC_RELEASE);
}

#endif
