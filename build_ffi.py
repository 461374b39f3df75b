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

import os

from cffi import FFI

EPOLL_CDEF = """
/* Opaque to Python: the C wait turns each record into a uint64_t key. */
struct epoll_event { ...; };

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
/* epoll_ctl with {events, data.u64 = token}; 0, or -1 with errno. */
int portaio_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint32_t token);

/* One wait, GIL released by cffi.  timeout < 0 blocks; otherwise seconds,
   rounded up to the nanosecond with epoll_pwait2 (Linux >= 5.11) and to the
   millisecond with epoll_wait where the kernel lacks it.  keys has room for
   2 * maxevents uint64_t (maxevents kernel records); the wait leaves one key
   per event at its start: token | events << 24.  Returns the count, or -1
   with errno. */
int portaio_epoll_wait(int epfd, uint64_t *keys, int maxevents, double timeout);
/* poll(0)'s quick wait (see csrc/portaio_quick.h).  A handle per kernel
   fd: users counts the quick waits in flight and a close request.  A quick
   buffer: keys has room for 2 * (its size) uint64_t, room is the most keys a
   wait asks for (Python writes it when the poller's room changes). */
struct portaio_quick_handle { int fd; int paused; ...; };
struct portaio_epoll_quick { struct portaio_quick_handle *handle; uint64_t *keys; int room; ...; };
#define PORTAIO_QUICK_TAKEN ...
/* One zero-timeout wait: the key when one event came, -2 - n for n != 1
   events (the buffer then stays the caller's until it calls
   portaio_epoll_quick_release), PORTAIO_QUICK_TAKEN (-3) when another thread
   holds the buffer or the fd is closing, -1 with errno for a failure. */
int64_t portaio_epoll_wait_now(struct portaio_epoll_quick *q);
/* The key layout of every C wait (csrc/portaio_key.h); _base.FLAGS_SHIFT must agree. */
#define PORTAIO_FLAGS_SHIFT ...
/* Give back a buffer this thread holds; nothing otherwise. */
void portaio_epoll_quick_release(struct portaio_epoll_quick *q);
/* Ask to close h->epfd: 1 if no quick wait is in flight (the caller closes
   it now), 0 if one is (the last one out closes it). */
int portaio_epoll_handle_close(struct portaio_quick_handle *h);
/* 1 once epoll_pwait2 is known to work, 0 if it is missing, -1 if not tried yet. */
int portaio_epoll_precise(void);
"""

_HERE = os.path.dirname(os.path.abspath(__file__))
_CSRC = os.path.join(_HERE, "csrc")
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
"""Every C file is compiled with these: a warning fails the build (CI included)."""


def c_source(name: str) -> str:
    """The text of ``csrc/<name>``, the C compiled into a module (its includes resolve in csrc/)."""
    with open(os.path.join(_CSRC, name), encoding="utf-8") as f:
        return f.read()


def epoll_ffi() -> FFI:
    """The builder of ``portaio._epoll_cffi`` (Linux)."""
    ffi = FFI()
    ffi.cdef(EPOLL_CDEF)
    ffi.set_source(
        "portaio._epoll_cffi",
        c_source("portaio_epoll.c"),
        include_dirs=[_CSRC],
        libraries=["m"],
        extra_compile_args=WARNINGS,
    )
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
#define PORTAIO_K_WRITE ...
#define PORTAIO_K_EXCEPT ...
#define PORTAIO_K_READ_EOF ...
#define PORTAIO_K_WRITE_EOF ...
#define PORTAIO_K_EOF_ERROR ...
#define PORTAIO_K_OOB ...
#define PORTAIO_K_READ_EMPTY ...
#define PORTAIO_K_FAILED ...
#define PORTAIO_K_OTHER ...
#define PORTAIO_K_DATA_SHIFT ...
#define PORTAIO_K_DATA_MAX ...
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
   filters of one registration merged): token | PORTAIO_K_* bits << 24 (the
   summary of its records, see portaio/backends/_kevent.py); other filters
   (timers, signals, wake-ups) get their own key with PORTAIO_K_OTHER and
   their data (clamped to PORTAIO_K_DATA_MAX) shifted by PORTAIO_K_DATA_SHIFT.
   scratch holds nevents + slots ints (slots a power of two >= 2 * nevents).
   Returns the number of keys or -1 with errno. */
int portaio_kq_wait(int kq, struct kevent *events, int nevents, double timeout,
                    uint64_t *keys, int *scratch, int slots);
/* EVFILT_USER: add ident (EV_CLEAR, the token in udata), or trigger it
   (with the same token: a trigger replaces udata too).
   Thread- and signal-safe (no shared buffer).  0, or -1 with errno. */
int portaio_kq_user_add(int kq, uintptr_t ident, uint64_t token);
int portaio_kq_user_trigger(int kq, uintptr_t ident, uint64_t token);
/* EVFILT_TIMER ident as a one-shot firing after seconds, rounded up in the
   finest unit the system has (NOTE_NSECONDS, NOTE_USECONDS, else ms);
   seconds < 0 deletes it.  0, or -1 with errno. */
int portaio_kq_timer(int kq, uintptr_t ident, double seconds, uint64_t token);

/* poll(0)'s quick wait (csrc/portaio_quick.h): a handle per kqueue, and
   buffers of size records: events, keys, scratch (size + slots ints, -1)
   and slots as portaio_kq_wait takes them; room (<= size) is the most
   records a wait asks for.  Returns as portaio_epoll_wait_now. */
struct portaio_quick_handle { int fd; int paused; ...; };
struct portaio_kq_quick {
    struct portaio_quick_handle *handle;
    struct kevent *events;
    uint64_t *keys;
    int *scratch;
    int slots;
    int room;
    ...;
};
#define PORTAIO_QUICK_TAKEN ...
int64_t portaio_kq_wait_now(struct portaio_kq_quick *q);
void portaio_kq_quick_release(struct portaio_kq_quick *q);
/* Ask to close h->fd: 1 if no quick wait is in flight (the caller closes it
   now with portaio_kq_close), 0 if one is (the last one out does). */
int portaio_kq_handle_close(struct portaio_quick_handle *h);
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

    if sys.platform == "win32":
        return None, "Windows has no kqueue (the afd backend is its O(ready) one)"
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
        c_source("portaio_kqueue.c"),
        include_dirs=[_CSRC, *flags.get("include_dirs", [])],
        library_dirs=flags.get("library_dirs", []),
        libraries=libraries,
        extra_link_args=flags.get("extra_link_args", []),
        extra_compile_args=WARNINGS,
    )
    return ffi


# ---------------------------------------------------------------- afd (Windows)
#
# The state machine lives in csrc/portaio_afd.c (its essay explains the AFD
# driver); Python only calls its seven functions.  The cdef is the part of
# csrc/portaio_afd.h between the cffi markers, so the declarations exist once.
# The same C is compiled by mingw-w64 with -Wall -Wextra -Werror and tested
# under Wine by tools/wine-afd-test.sh; here, on Windows, by the compiler
# setuptools finds (MSVC, at its default warning level).  portaio_afd.c is a
# translation unit of its own: the Windows headers it needs (winsock2.h before
# windows.h) never meet Python.h, which cffi's wrapper includes first.


def afd_cdef() -> str:
    """The declarations of ``csrc/portaio_afd.h`` that cffi reads."""
    text = c_source("portaio_afd.h")
    return text.split("/* cffi-begin */", 1)[1].split("/* cffi-end */", 1)[0]


def afd_ffi() -> FFI:
    """The builder of ``portaio._afd_cffi`` (Windows)."""
    ffi = FFI()
    ffi.cdef(afd_cdef())
    ffi.set_source(
        "portaio._afd_cffi",
        '#include "portaio_afd.h"\n',
        sources=[os.path.relpath(os.path.join(_CSRC, "portaio_afd.c"))],
        include_dirs=[_CSRC],
        libraries=["ws2_32"],
    )
    return ffi


if __name__ == "__main__":
    import sys

    if sys.platform.startswith("linux"):
        epoll_ffi().compile(verbose=True)
    if sys.platform == "win32":
        afd_ffi().compile(verbose=True)
    kqueue_flags, kqueue_why = kqueue_build_flags()
    if kqueue_flags is not None:
        kqueue_ffi().compile(verbose=True)
    print(f"kqueue module: {'built with ' if kqueue_flags is not None else 'not built: '}{kqueue_why}")
