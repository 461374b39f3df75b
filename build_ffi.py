"""cffi builders (API mode) for portaio's kernel bindings.

Every struct and constant is declared with ``...`` so the C compiler takes
sizes, layouts and values from the system headers: glibc packs
``struct epoll_event`` on x86-64, and ``struct kevent`` differs between the
BSDs and macOS, so no layout is written by hand here.

``setup.py`` lists a builder only where its header exists: ``epoll_ffi`` on
Linux, ``kqueue_ffi`` where ``<sys/event.h>`` is found (natively, or a
libkqueue found by ``pkg-config``).
"""

from __future__ import annotations

from cffi import FFI

EPOLL_CDEF = """
typedef union epoll_data { uint64_t u64; ...; } epoll_data_t;
struct epoll_event { uint32_t events; epoll_data_t data; ...; };

#define EPOLL_CLOEXEC ...
#define EPOLL_CTL_ADD ...
#define EPOLL_CTL_MOD ...
#define EPOLL_CTL_DEL ...
#define EPOLLIN ...
#define EPOLLOUT ...
#define EPOLLPRI ...
#define EPOLLERR ...
#define EPOLLHUP ...
#define EPOLLRDHUP ...
#define EPOLLET ...
#define EPOLLONESHOT ...
#define EPOLLEXCLUSIVE ...

#define TFD_CLOEXEC ...
#define TFD_NONBLOCK ...
#define TFD_TIMER_ABSTIME ...
#define CLOCK_MONOTONIC ...
#define EFD_CLOEXEC ...
#define EFD_NONBLOCK ...
#define SFD_CLOEXEC ...
#define SFD_NONBLOCK ...

struct signalfd_siginfo { uint32_t ssi_signo; ...; };

int epoll_create1(int flags);
int timerfd_create(int clockid, int flags);
int eventfd(unsigned int initval, int flags);

/* Arm a timerfd (TFD_TIMER_ABSTIME, CLOCK_MONOTONIC) to fire once at *deadline*,
   in time.monotonic() seconds, rounded up to the next nanosecond so it never
   fires before the float deadline; deadline < 0 disarms it. */
int portaio_timerfd_arm(int fd, double deadline);
/* signalfd(fd, {signums[0..n)}, flags): a new signalfd when fd is -1, else
   replace fd's mask. */
int portaio_signalfd(int fd, const int *signums, int n, int flags);
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);

/* One wait, GIL released by cffi.  timeout < 0 blocks; otherwise seconds,
   rounded up to the nanosecond with epoll_pwait2 (Linux >= 5.11) and to the
   millisecond with epoll_wait where the kernel lacks it. */
int portaio_epoll_wait(int epfd, struct epoll_event *events, int maxevents, double timeout);
/* 1 once epoll_pwait2 is known to work, 0 if it is missing, -1 if not tried yet. */
int portaio_epoll_precise(void);
"""

TIMESPEC_SOURCE = r"""
#include <math.h>
#include <time.h>

/* Seconds as a timespec, rounded up to the nanosecond so a wait never ends
   early; NULL (block) for a negative timeout. */
static struct timespec *portaio_timespec(double timeout, struct timespec *ts)
{
    if (timeout < 0)
        return NULL;
    double whole = floor(timeout);
    ts->tv_sec = (time_t)whole;
    ts->tv_nsec = (long)ceil((timeout - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
    return ts;
}
"""

EPOLL_SOURCE = r"""
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int portaio_pwait2_state = -1;

int portaio_epoll_precise(void) { return portaio_pwait2_state; }

int portaio_timerfd_arm(int fd, double deadline)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (deadline >= 0) {
        if (deadline > 4e15) /* far beyond any uptime; keeps time_t and the ns maths exact */
            deadline = 4e15;
        double whole = floor(deadline);
        its.it_value.tv_sec = (time_t)whole;
        its.it_value.tv_nsec = (long)ceil((deadline - whole) * 1e9) + 1;
        if (its.it_value.tv_nsec >= 1000000000L) {
            its.it_value.tv_sec += 1;
            its.it_value.tv_nsec -= 1000000000L;
        }
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1; /* zero would disarm */
    }
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

int portaio_signalfd(int fd, const int *signums, int n, int flags)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < n; i++)
        sigaddset(&mask, signums[i]);
    return signalfd(fd, &mask, flags);
}

int portaio_epoll_wait(int epfd, struct epoll_event *events, int maxevents, double timeout)
{
#ifdef SYS_epoll_pwait2
    if (portaio_pwait2_state != 0) {
        struct timespec ts, *tsp = portaio_timespec(timeout, &ts);
        int n = (int)syscall(SYS_epoll_pwait2, epfd, events, maxevents, tsp, NULL, (size_t)0);
        /* Old kernels say ENOSYS; some seccomp filters say EPERM for new syscalls. */
        if (n >= 0 || (errno != ENOSYS && errno != EPERM)) {
            portaio_pwait2_state = 1;
            return n;
        }
        portaio_pwait2_state = 0;
    }
#endif
    int ms = -1;
    if (timeout >= 0) {
        double m = ceil(timeout * 1000.0);
        ms = m > (double)INT_MAX ? INT_MAX : (int)m;
    }
    return epoll_wait(epfd, events, maxevents, ms);
}
"""


def epoll_ffi() -> FFI:
    """The builder of ``portaio._epoll_cffi`` (Linux)."""
    ffi = FFI()
    ffi.cdef(EPOLL_CDEF)
    ffi.set_source("portaio._epoll_cffi", TIMESPEC_SOURCE + EPOLL_SOURCE, libraries=["m"])
    return ffi


# ---------------------------------------------------------------- kqueue
#
# struct kevent differs between systems: NetBSD's filter and flags are 32-bit
# and its kevent() is a renamed symbol (__kevent50/__kevent100), FreeBSD >= 12
# appends ext[4], macOS packs it, udata is an intptr_t on older NetBSD.  So
# the cdef names only the fields portaio reads, lets the compiler choose each
# integer type (the __typeof__ typedefs below), and Python never calls
# kevent() itself: the portaio_kq_* shims do, compiled against the system's
# header, which resolves the renamed symbol.

_KQ_OPTIONAL = (
    # name, the value used when the header lacks it (never sent to a kernel:
    # the PORTAIO_HAVE_<name> flag says 0 and the backend does not use it)
    "EVFILT_USER",
    "EVFILT_TIMER",
    "EVFILT_SIGNAL",
    "EVFILT_EXCEPT",
    "EV_DISPATCH",
    "EV_RECEIPT",
    "EV_OOBAND",
    "NOTE_OOB",
    "NOTE_LOWAT",
    "NOTE_TRIGGER",
    "NOTE_USECONDS",
    "NOTE_NSECONDS",
    "NOTE_SECONDS",
)

KQUEUE_CDEF = (
    """
typedef int... kq_ident_t;
typedef int... kq_filter_t;
typedef int... kq_flags_t;
typedef int... kq_fflags_t;
typedef int... kq_data_t;
struct kevent {
    kq_ident_t ident; kq_filter_t filter; kq_flags_t flags; kq_fflags_t fflags; kq_data_t data; ...;
};

#define EVFILT_READ ...
#define EVFILT_WRITE ...
#define EV_ADD ...
#define EV_DELETE ...
#define EV_ENABLE ...
#define EV_DISABLE ...
#define EV_ONESHOT ...
#define EV_CLEAR ...
#define EV_EOF ...
#define EV_ERROR ...

/* 1 when built against libkqueue (Linux and other non-BSD systems). */
#define PORTAIO_LIBKQUEUE ...

/* Bits of the low half of a key from portaio_kq_wait. */
#define PORTAIO_K_READ ...
#define PORTAIO_K_READ_EOF ...
#define PORTAIO_K_WRITE ...
#define PORTAIO_K_WRITE_EOF ...
#define PORTAIO_K_ERROR ...
#define PORTAIO_K_PRIORITY ...
#define PORTAIO_K_OTHER ...
"""
    + "".join(f"#define PORTAIO_HAVE_{name} ...\n#define PORTAIO_{name} ...\n" for name in _KQ_OPTIONAL)
    + """
int portaio_kq_open(void);
/* close() the kqueue; under libkqueue, also wait until it has really freed it
   (see the source).  0, or -1 with errno. */
int portaio_kq_close(int kq);
/* Fill changes[i] (EV_SET), the token in udata. */
void portaio_kq_set(struct kevent *changes, int i, uintptr_t ident, int filter, unsigned int flags,
                    unsigned int fflags, int64_t data, uint64_t token);
/* Apply n <= 8 changes in one kevent() call where EV_RECEIPT exists (one per
   change elsewhere), never reading events; errors[i] receives each change's
   errno (0: done).  Returns 0, or -1 with errno if the call itself failed. */
int portaio_kq_apply(int kq, struct kevent *changes, int n, int *errors);
/* One wait, GIL released by cffi; timeout < 0 blocks, else seconds rounded
   up to the nanosecond.  Writes one key per fd to keys (the read and write
   filters of one registration merged): token << 32 | PORTAIO_K_* bits,
   and to datas the read filter's data (bytes left) or the first one's;
   other filters (timers, signals, wake-ups) get their own key with
   PORTAIO_K_OTHER and their data in datas.  scratch holds nevents + slots
   ints (slots a power of two >= 2 * nevents).  Returns the number of keys
   or -1 with errno. */
int portaio_kq_wait(int kq, struct kevent *events, int nevents, double timeout,
                    uint64_t *keys, int64_t *datas, int *scratch, int slots);
/* EVFILT_USER: add ident (EV_CLEAR, the token in udata), or trigger it
   (with the same token: a trigger replaces udata too).
   Thread- and signal-safe (no shared buffer).  0, or -1 with errno. */
int portaio_kq_user_add(int kq, uintptr_t ident, uint64_t token);
int portaio_kq_user_trigger(int kq, uintptr_t ident, uint64_t token);
/* EVFILT_TIMER ident as a one-shot firing after seconds, rounded up in the
   finest unit the system has (NOTE_NSECONDS, NOTE_USECONDS, else ms);
   seconds < 0 deletes it.  0, or -1 with errno. */
int portaio_kq_timer(int kq, uintptr_t ident, double seconds, uint64_t token);
"""
)

KQUEUE_SOURCE = (
    r"""
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

#define PORTAIO_K_READ 0x1
#define PORTAIO_K_READ_EOF 0x2
#define PORTAIO_K_WRITE 0x4
#define PORTAIO_K_WRITE_EOF 0x8
#define PORTAIO_K_ERROR 0x10
#define PORTAIO_K_PRIORITY 0x20
#define PORTAIO_K_OTHER 0x40
"""
    + "".join(
        f"#ifdef {name}\n#define PORTAIO_HAVE_{name} 1\n#define PORTAIO_{name} {name}\n"
        f"#else\n#define PORTAIO_HAVE_{name} 0\n#define PORTAIO_{name} 0\n#endif\n"
        for name in _KQ_OPTIONAL
    )
    + r"""
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
    uint32_t bits = 0;
    int eof = (ev->flags & EV_EOF) != 0;
    if (ev->flags & EV_ERROR)
        return PORTAIO_K_ERROR;
    if (ev->filter == EVFILT_READ) {
        bits = PORTAIO_K_READ | (eof ? PORTAIO_K_READ_EOF : 0);
#ifdef EV_OOBAND
        if (ev->flags & EV_OOBAND)
            bits |= PORTAIO_K_PRIORITY;
#endif
    } else if (ev->filter == EVFILT_WRITE) {
        bits = PORTAIO_K_WRITE | (eof ? PORTAIO_K_WRITE_EOF : 0);
#ifdef EVFILT_EXCEPT
    } else if (ev->filter == EVFILT_EXCEPT) {
        bits = PORTAIO_K_PRIORITY;
#endif
    } else {
        return PORTAIO_K_OTHER;
    }
    /* With EV_EOF, fflags holds the socket's pending error (a reset).
       libkqueue instead leaves the fflags the filter was added with (our
       NOTE_LOWAT) unless epoll said EPOLLERR. */
#if PORTAIO_LIBKQUEUE && defined(NOTE_LOWAT)
    if (eof && ev->fflags && !(ev->filter == EVFILT_READ && ev->fflags == NOTE_LOWAT))
#else
    if (eof && ev->fflags)
#endif
        bits |= PORTAIO_K_ERROR;
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
                    uint64_t *keys, int64_t *datas, int *scratch, int slots)
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
        uint64_t token = (uint64_t)(uintptr_t)ev->udata & 0xFFFFFFFFu;
        uint32_t bits = portaio_kq_bits(ev);
        unsigned int h;
        key_of[i] = -1;
        if (bits & PORTAIO_K_OTHER) {
            datas[m] = (int64_t)ev->data;
            keys[m++] = token << 32 | bits | ((uint64_t)(uint16_t)ev->filter << 8);
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
        if (table[h] >= 0 && (keys[key_of[table[h]]] >> 32) == token) {
            key_of[i] = key_of[table[h]];
            keys[key_of[i]] |= bits;
            if (ev->filter == EVFILT_READ)
                datas[key_of[i]] = (int64_t)ev->data;
            continue;
        }
        table[h] = i;
        key_of[i] = m;
        datas[m] = (int64_t)ev->data;
        keys[m++] = token << 32 | bits;
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
"""
)


def kqueue_build_flags() -> tuple[dict[str, list[str]] | None, str]:
    """How to compile against a kqueue here: (extension keywords, or None, and why).

    macOS and the BSDs have ``<sys/event.h>`` natively.  Elsewhere a libkqueue
    found by ``pkg-config libkqueue`` (``PKG_CONFIG_PATH`` may point at any
    prefix) is used; its library directory becomes an rpath so the module
    loads without ``LD_LIBRARY_PATH``.
    """
    import shutil
    import subprocess
    import sys

    if sys.platform == "darwin" or "bsd" in sys.platform or sys.platform.startswith("dragonfly"):
        return {}, f"native kqueue ({sys.platform})"
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    if pkg_config is None:
        return None, "no <sys/event.h> on this system and no pkg-config to look for a libkqueue"

    def query(*args: str) -> list[str]:
        out = subprocess.run([pkg_config, *args, "libkqueue"], capture_output=True, text=True, check=True)
        return out.stdout.split()

    try:
        query("--exists")
        includes = [flag[2:] for flag in query("--cflags-only-I")]
        lib_dirs = [flag[2:] for flag in query("--libs-only-L")]
        libs = [flag[2:] for flag in query("--libs-only-l")]
        version = " ".join(query("--modversion"))
    except (OSError, subprocess.CalledProcessError):
        return None, "no <sys/event.h> on this system and `pkg-config --exists libkqueue` fails"
    return {
        "include_dirs": includes,
        "library_dirs": lib_dirs,
        "libraries": libs or ["kqueue"],
        "extra_link_args": [f"-Wl,-rpath,{d}" for d in lib_dirs],
    }, f"libkqueue {version} (pkg-config)"


def kqueue_ffi() -> FFI:
    """The builder of ``portaio._kqueue_cffi`` (macOS, the BSDs, or a libkqueue)."""
    flags, why = kqueue_build_flags()
    if flags is None:
        raise RuntimeError(f"portaio: cannot build the kqueue module: {why}")
    ffi = FFI()
    ffi.cdef(KQUEUE_CDEF)
    libraries = [*flags.get("libraries", []), "m"]
    ffi.set_source(
        "portaio._kqueue_cffi",
        TIMESPEC_SOURCE + KQUEUE_SOURCE,
        include_dirs=flags.get("include_dirs", []),
        library_dirs=flags.get("library_dirs", []),
        libraries=libraries,
        extra_link_args=flags.get("extra_link_args", []),
    )
    return ffi


if __name__ == "__main__":
    import sys

    if sys.platform.startswith("linux"):
        epoll_ffi().compile(verbose=True)
    kqueue_flags, kqueue_why = kqueue_build_flags()
    if kqueue_flags is not None:
        kqueue_ffi().compile(verbose=True)
    print(f"kqueue module: {'built with ' if kqueue_flags is not None else 'not built: '}{kqueue_why}")
