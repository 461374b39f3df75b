# Types of the compiled module portaio._epoll_cffi (built by build_ffi.epoll_ffi
# from csrc/portaio_epoll.c), so that mypy --strict checks every lib call.
from typing import Any

class _FFI:
    NULL: Any
    errno: int
    def new(self, cdecl: str, init: Any = ...) -> Any: ...
    def unpack(self, cdata: Any, length: int) -> list[Any]: ...
    def buffer(self, cdata: Any, size: int = ...) -> Any: ...
    def sizeof(self, cdecl: str) -> int: ...

class _Lib:
    EPOLL_CLOEXEC: int
    EPOLL_CTL_ADD: int
    EPOLL_CTL_MOD: int
    EPOLL_CTL_DEL: int
    EPOLLIN: int
    EPOLLOUT: int
    EPOLLPRI: int
    EPOLLERR: int
    EPOLLHUP: int
    EPOLLRDHUP: int
    EPOLLET: int
    EPOLLONESHOT: int
    EPOLLEXCLUSIVE: int
    TFD_CLOEXEC: int
    TFD_NONBLOCK: int
    TFD_TIMER_ABSTIME: int
    CLOCK_MONOTONIC: int
    EFD_CLOEXEC: int
    EFD_NONBLOCK: int
    SFD_CLOEXEC: int
    SFD_NONBLOCK: int
    def epoll_create1(self, flags: int) -> int: ...
    def timerfd_create(self, clockid: int, flags: int) -> int: ...
    def eventfd(self, initval: int, flags: int) -> int: ...
    def portaio_timerfd_arm(self, fd: int, deadline: float) -> int: ...
    def portaio_signalfd(self, fd: int, signums: Any, n: int, flags: int) -> int: ...
    def portaio_epoll_ctl(self, epfd: int, op: int, fd: int, events: int, token: int) -> int: ...
    def portaio_epoll_wait(self, epfd: int, keys: Any, maxevents: int, timeout: float) -> int: ...
    PORTAIO_QUICK_TAKEN: int
    PORTAIO_FLAGS_SHIFT: int
    def portaio_epoll_wait_now(self, q: Any) -> int: ...
    def portaio_epoll_quick_release(self, q: Any) -> None: ...
    def portaio_epoll_handle_close(self, h: Any) -> int: ...
    def portaio_epoll_precise(self) -> int: ...

ffi: _FFI
lib: _Lib
