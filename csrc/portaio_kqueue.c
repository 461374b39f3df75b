/* portaio's kqueue bindings (macOS, the BSDs, or libkqueue), compiled into
   portaio._kqueue_cffi by build_ffi.py with -Wall -Wextra -Werror.  The
   declarations cffi sees are KQUEUE_CDEF in build_ffi.py.  Python never
   calls kevent() itself: these shims do, compiled against the system's
   header, which resolves NetBSD's renamed symbol and each system's layout
   of struct kevent. */
#include <sys/types.h>
#include <sys/event.h>

#include "portaio_key.h"
#include "portaio_quick.h"
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "portaio_timespec.h"

typedef __typeof__(((struct kevent *)0)->ident) kq_ident_t;
typedef __typeof__(((struct kevent *)0)->filter) kq_filter_t;
typedef __typeof__(((struct kevent *)0)->flags) kq_flags_t;
typedef __typeof__(((struct kevent *)0)->fflags) kq_fflags_t;
typedef __typeof__(((struct kevent *)0)->data) kq_data_t;

#if defined(EVFILT_LIBKQUEUE) || defined(__linux__)
#define PORTAIO_LIBKQUEUE 1
#else
#define PORTAIO_LIBKQUEUE 0
#endif

/* The summary of one fd's kevents in one wait, ORed into its key; the
   Python side (portaio/backends/_kevent.py, summarize and translate_bits)
   reads it, and its K_* constants are these. */
#define PORTAIO_K_READ 0x1
#define PORTAIO_K_WRITE 0x2
#define PORTAIO_K_EXCEPT 0x4
/* EV_EOF on the read or the except filter. */
#define PORTAIO_K_READ_EOF 0x8
#define PORTAIO_K_WRITE_EOF 0x10
/* EV_EOF with a non-zero fflags: the socket's pending error. */
#define PORTAIO_K_EOF_ERROR 0x20
/* NOTE_OOB in an except record's fflags (not at EOF). */
#define PORTAIO_K_OOB 0x40
/* A read record with nothing to read (data <= 0). */
#define PORTAIO_K_READ_EMPTY 0x80
/* EV_ERROR: the kernel refused the filter. */
#define PORTAIO_K_FAILED 0x100
#define PORTAIO_K_OTHER 0x200
/* A PORTAIO_K_OTHER key (timer, signal, wake-up) carries its data, clamped
   to 22 bits, above this shift: a signal's delivery count. */
#define PORTAIO_K_DATA_SHIFT 10
#define PORTAIO_K_DATA_MAX 0x3FFFFF
#ifdef EVFILT_USER
#define PORTAIO_HAVE_EVFILT_USER 1
#define PORTAIO_EVFILT_USER EVFILT_USER
#else
#define PORTAIO_HAVE_EVFILT_USER 0
#define PORTAIO_EVFILT_USER 0
#endif
#ifdef EVFILT_TIMER
#define PORTAIO_HAVE_EVFILT_TIMER 1
#define PORTAIO_EVFILT_TIMER EVFILT_TIMER
#else
#define PORTAIO_HAVE_EVFILT_TIMER 0
#define PORTAIO_EVFILT_TIMER 0
#endif
#ifdef EVFILT_SIGNAL
#define PORTAIO_HAVE_EVFILT_SIGNAL 1
#define PORTAIO_EVFILT_SIGNAL EVFILT_SIGNAL
#else
#define PORTAIO_HAVE_EVFILT_SIGNAL 0
#define PORTAIO_EVFILT_SIGNAL 0
#endif
#ifdef EVFILT_EXCEPT
#define PORTAIO_HAVE_EVFILT_EXCEPT 1
#define PORTAIO_EVFILT_EXCEPT EVFILT_EXCEPT
#else
#define PORTAIO_HAVE_EVFILT_EXCEPT 0
#define PORTAIO_EVFILT_EXCEPT 0
#endif
#ifdef EV_DISPATCH
#define PORTAIO_HAVE_EV_DISPATCH 1
#define PORTAIO_EV_DISPATCH EV_DISPATCH
#else
#define PORTAIO_HAVE_EV_DISPATCH 0
#define PORTAIO_EV_DISPATCH 0
#endif
#ifdef EV_RECEIPT
#define PORTAIO_HAVE_EV_RECEIPT 1
#define PORTAIO_EV_RECEIPT EV_RECEIPT
#else
#define PORTAIO_HAVE_EV_RECEIPT 0
#define PORTAIO_EV_RECEIPT 0
#endif
#ifdef NOTE_OOB
#define PORTAIO_HAVE_NOTE_OOB 1
#define PORTAIO_NOTE_OOB NOTE_OOB
#else
#define PORTAIO_HAVE_NOTE_OOB 0
#define PORTAIO_NOTE_OOB 0
#endif
#ifdef NOTE_LOWAT
#define PORTAIO_HAVE_NOTE_LOWAT 1
#define PORTAIO_NOTE_LOWAT NOTE_LOWAT
#else
#define PORTAIO_HAVE_NOTE_LOWAT 0
#define PORTAIO_NOTE_LOWAT 0
#endif
#ifdef NOTE_TRIGGER
#define PORTAIO_HAVE_NOTE_TRIGGER 1
#define PORTAIO_NOTE_TRIGGER NOTE_TRIGGER
#else
#define PORTAIO_HAVE_NOTE_TRIGGER 0
#define PORTAIO_NOTE_TRIGGER 0
#endif
#ifdef NOTE_USECONDS
#define PORTAIO_HAVE_NOTE_USECONDS 1
#define PORTAIO_NOTE_USECONDS NOTE_USECONDS
#else
#define PORTAIO_HAVE_NOTE_USECONDS 0
#define PORTAIO_NOTE_USECONDS 0
#endif
#ifdef NOTE_NSECONDS
#define PORTAIO_HAVE_NOTE_NSECONDS 1
#define PORTAIO_NOTE_NSECONDS NOTE_NSECONDS
#else
#define PORTAIO_HAVE_NOTE_NSECONDS 0
#define PORTAIO_NOTE_NSECONDS 0
#endif
#ifdef NOTE_SECONDS
#define PORTAIO_HAVE_NOTE_SECONDS 1
#define PORTAIO_NOTE_SECONDS NOTE_SECONDS
#else
#define PORTAIO_HAVE_NOTE_SECONDS 0
#define PORTAIO_NOTE_SECONDS 0
#endif

int portaio_kq_open(void)
{
    int kq = kqueue();
#if defined(FD_CLOEXEC) && defined(F_SETFD)
    /* Native kqueues are never inherited by fork() but survive exec(). */
    if (kq >= 0)
        (void)fcntl(kq, F_SETFD, FD_CLOEXEC);
#endif
    return kq;
}

#if PORTAIO_LIBKQUEUE && defined(__GNUC__)
/* libkqueue notices a closed kqueue later, from a monitoring thread; until
   then it counts the number as its own, and its fork handler closes it in a
   child even if it names another file by then.  Its Linux backend (2.7)
   exports this call to finish pending closes at once; older ones lack it. */
extern void libkqueue_drain_pending_close(void) __attribute__((weak));
#endif

int portaio_kq_close(int kq)
{
    int rc = close(kq);
#if PORTAIO_LIBKQUEUE && defined(__GNUC__)
    if (rc == 0 && libkqueue_drain_pending_close)
        libkqueue_drain_pending_close();
#endif
    return rc;
}

void portaio_kq_set(struct kevent *changes, int i, uintptr_t ident, int filter, unsigned int flags,
                    unsigned int fflags, int64_t data, uint64_t token)
{
    struct kevent *kev = &changes[i];
    memset(kev, 0, sizeof(*kev));
    kev->ident = ident;
    kev->filter = (kq_filter_t)filter;
    kev->flags = (kq_flags_t)flags;
    kev->fflags = (kq_fflags_t)fflags;
    kev->data = (kq_data_t)data;
    kev->udata = (__typeof__(kev->udata))(uintptr_t)token;
}

int portaio_kq_apply(int kq, struct kevent *changes, int n, int *errors)
{
    static const struct timespec zero = {0, 0};
    int i;
    if (n < 0 || n > 8) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < n; i++)
        errors[i] = 0;
#ifdef EV_RECEIPT
    {
        struct kevent out[8];
        int m, j;
        for (i = 0; i < n; i++)
            changes[i].flags |= EV_RECEIPT;
        m = kevent(kq, changes, n, out, n, &zero);
        if (m < 0)
            return -1;
        /* Receipts come back in change order; match them by filter too. */
        for (j = 0, i = 0; j < m; j++) {
            if (!(out[j].flags & EV_ERROR))
                continue;
            while (i < n && (changes[i].filter != out[j].filter || changes[i].ident != out[j].ident))
                i++;
            if (i == n)
                break;
            errors[i++] = (int)out[j].data;
        }
    }
#else
    for (i = 0; i < n; i++)
        if (kevent(kq, &changes[i], 1, NULL, 0, &zero) < 0)
            errors[i] = errno;
#endif
    return 0;
}

static uint32_t portaio_kq_bits(const struct kevent *ev)
{
    uint32_t bits;
    int eof = (ev->flags & EV_EOF) != 0;
    if (ev->flags & EV_ERROR)
        return PORTAIO_K_FAILED;
    if (ev->filter == EVFILT_READ) {
        bits = PORTAIO_K_READ | (eof ? PORTAIO_K_READ_EOF : 0) | (ev->data <= 0 ? PORTAIO_K_READ_EMPTY : 0);
    } else if (ev->filter == EVFILT_WRITE) {
        bits = PORTAIO_K_WRITE | (eof ? PORTAIO_K_WRITE_EOF : 0);
#if defined(EVFILT_EXCEPT) && defined(NOTE_OOB)
    } else if (ev->filter == EVFILT_EXCEPT) {
        /* xnu's except filter is the read filter: it fires for plain data
           and at EOF too (where fflags becomes the socket's error); urgent
           data is NOTE_OOB alone. */
        bits = PORTAIO_K_EXCEPT | (eof ? PORTAIO_K_READ_EOF : ((ev->fflags & NOTE_OOB) ? PORTAIO_K_OOB : 0));
#endif
    } else {
        return PORTAIO_K_OTHER;
    }
    /* With EV_EOF, fflags holds the socket's pending error (a reset, a
       refused connect); the backend registers no fflags on these filters,
       so libkqueue's copy of the registered ones is 0 too. */
    if (eof && ev->fflags)
        bits |= PORTAIO_K_EOF_ERROR;
    return bits;
}

int portaio_kq_user_add(int kq, uintptr_t ident, uint64_t token)
{
#ifdef EVFILT_USER
    static const struct timespec zero = {0, 0};
    struct kevent kev;
    portaio_kq_set(&kev, 0, ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, token);
    return kevent(kq, &kev, 1, NULL, 0, &zero) < 0 ? -1 : 0;
#else
    errno = ENOSYS;
    return -1;
#endif
}

int portaio_kq_user_trigger(int kq, uintptr_t ident, uint64_t token)
{
#if defined(EVFILT_USER) && defined(NOTE_TRIGGER)
    static const struct timespec zero = {0, 0};
    struct kevent kev;
    /* Every change to a knote replaces its udata, a trigger's too. */
    portaio_kq_set(&kev, 0, ident, EVFILT_USER, 0, NOTE_TRIGGER, 0, token);
    return kevent(kq, &kev, 1, NULL, 0, &zero) < 0 ? -1 : 0;
#else
    errno = ENOSYS;
    return -1;
#endif
}

int portaio_kq_timer(int kq, uintptr_t ident, double seconds, uint64_t token)
{
#ifdef EVFILT_TIMER
    static const struct timespec zero = {0, 0};
    struct kevent kev;
    unsigned int fflags = 0;
    double units;
    int64_t data;
    if (seconds < 0) {
        portaio_kq_set(&kev, 0, ident, EVFILT_TIMER, EV_DELETE, 0, 0, token);
        return kevent(kq, &kev, 1, NULL, 0, &zero) < 0 ? -1 : 0;
    }
#if defined(NOTE_NSECONDS)
    fflags = NOTE_NSECONDS;
    units = ceil(seconds * 1e9);
#elif defined(NOTE_USECONDS)
    fflags = NOTE_USECONDS;
    units = ceil(seconds * 1e6);
#else
    units = ceil(seconds * 1e3); /* the default unit: milliseconds */
#endif
#ifdef NOTE_CRITICAL
    fflags |= NOTE_CRITICAL; /* macOS: no coalescing with other timers */
#endif
    /* Clamped to what data holds: a timer firing before the deadline is
       re-armed by the caller, which never reports a timer early. */
    if (units > (sizeof(kq_data_t) >= 8 ? 9.0e18 : 2147483647.0))
        units = sizeof(kq_data_t) >= 8 ? 9.0e18 : 2147483647.0;
    data = units < 1 ? 1 : (int64_t)units;
    portaio_kq_set(&kev, 0, ident, EVFILT_TIMER, EV_ADD | EV_ONESHOT, fflags, data, token);
    return kevent(kq, &kev, 1, NULL, 0, &zero) < 0 ? -1 : 0;
#else
    errno = ENOSYS;
    return -1;
#endif
}

int portaio_kq_wait(int kq, struct kevent *events, int nevents, double timeout,
                    uint64_t *keys, int *scratch, int slots)
{
    struct timespec ts, *tsp;
    int n, i, m = 0;
    int *key_of = scratch;          /* record index -> key index */
    int *table = scratch + nevents; /* ident hash -> record index, -1 empty */
    unsigned int mask = (unsigned int)slots - 1;

    tsp = portaio_timespec(timeout, &ts);
    n = kevent(kq, NULL, 0, events, nevents, tsp);
    if (n <= 0)
        return n;
    for (i = 0; i < n; i++) {
        const struct kevent *ev = &events[i];
        uint64_t token = (uint64_t)(uintptr_t)ev->udata & PORTAIO_TOKEN_MASK;
        uint32_t bits = portaio_kq_bits(ev);
        unsigned int h;
        key_of[i] = -1;
        if (bits & PORTAIO_K_OTHER) {
            int64_t data = (int64_t)ev->data;
            if (data < 0)
                data = 0;
            if (data > PORTAIO_K_DATA_MAX)
                data = PORTAIO_K_DATA_MAX;
            keys[m++] = portaio_key(token, (uint64_t)bits | (uint64_t)data << PORTAIO_K_DATA_SHIFT);
            continue;
        }
        /* Merge the filters of one fd into one key (linear probing). */
        h = ((unsigned int)ev->ident * 2654435761u) & mask;
        while (table[h] >= 0) {
            int j = table[h];
            if (events[j].ident == ev->ident)
                break;
            h = (h + 1) & mask;
        }
        if (table[h] >= 0 && (keys[key_of[table[h]]] & PORTAIO_TOKEN_MASK) == token) {
            key_of[i] = key_of[table[h]];
            keys[key_of[i]] |= (uint64_t)bits << PORTAIO_FLAGS_SHIFT;
            continue;
        }
        table[h] = i;
        key_of[i] = m;
        keys[m++] = portaio_key(token, bits);
    }
    /* Leave the table empty for the next call. */
    for (i = 0; i < n; i++) {
        unsigned int h = ((unsigned int)events[i].ident * 2654435761u) & mask;
        while (table[h] >= 0) {
            table[h] = -1;
            h = (h + 1) & mask;
        }
    }
    return m;
}

/* ------------------------------------------------------------ quick wait

   poll(0)'s fast path, as portaio_epoll_wait_now (one argument, the only
   key as the result; the buffer and the kqueue fd guarded as
   portaio_quick.h says).  It asks for room records, and merged keys are
   never more than the records, so it never has keys left over; the general
   wait, which can (portaio/backends/kqueue.py keeps them for its next
   call), pauses quick waits on the handle until it has reported them. */
struct portaio_kq_quick {
    struct portaio_quick_handle *handle;
    struct kevent *events; /* size records */
    uint64_t *keys;        /* size keys */
    int *scratch;          /* size + slots ints, -1 */
    int slots;             /* a power of two >= 2 * size */
    int room;              /* the most records a wait asks for (<= size); written by Python */
    uint32_t state;        /* atomic: PORTAIO_QUICK_IDLE, _BUSY or _HELD */
    uint64_t holder;       /* the thread holding a HELD buffer */
};

int portaio_kq_handle_close(struct portaio_quick_handle *h) { return portaio_quick_handle_close(h); }

int64_t portaio_kq_wait_now(struct portaio_kq_quick *q)
{
    struct portaio_quick_handle *h = q->handle;
    if (!portaio_quick_enter(&q->state, h))
        return PORTAIO_QUICK_TAKEN;
    int room = __atomic_load_n(&q->room, __ATOMIC_RELAXED);
    int n = room > 0 ? portaio_kq_wait(h->fd, q->events, room, 0.0, q->keys, q->scratch, q->slots) : 0;
    /* A key's bits stay below bit 56 (PORTAIO_K_DATA_MAX): never negative. */
    int64_t result = portaio_quick_result(n, q->keys);
    portaio_quick_leave(&q->state, &q->holder, h, n > 1, portaio_kq_close);
    return result;
}

void portaio_kq_quick_release(struct portaio_kq_quick *q) { portaio_quick_give_back(&q->state, &q->holder); }
