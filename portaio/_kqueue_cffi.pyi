# Types of the compiled module portaio._kqueue_cffi (built by build_ffi.kqueue_ffi
# from csrc/portaio_kqueue.c), so that mypy --strict checks every lib call.
from typing import Any

class _FFI:
    NULL: Any
    errno: int
    def new(self, cdecl: str, init: Any = ...) -> Any: ...
    def unpack(self, cdata: Any, length: int) -> list[Any]: ...
    def buffer(self, cdata: Any, size: int = ...) -> Any: ...

class _Lib:
    EVFILT_READ: int
    EVFILT_WRITE: int
    EV_ADD: int
    EV_DELETE: int
    EV_ENABLE: int
    EV_DISABLE: int
    EV_ONESHOT: int
    EV_CLEAR: int
    EV_EOF: int
    EV_ERROR: int
    PORTAIO_LIBKQUEUE: int
    PORTAIO_K_READ: int
    PORTAIO_K_WRITE: int
    PORTAIO_K_EXCEPT: int
    PORTAIO_K_READ_EOF: int
    PORTAIO_K_WRITE_EOF: int
    PORTAIO_K_EOF_ERROR: int
    PORTAIO_K_OOB: int
    PORTAIO_K_READ_EMPTY: int
    PORTAIO_K_FAILED: int
    PORTAIO_K_OTHER: int
    PORTAIO_K_DATA_SHIFT: int
    PORTAIO_K_DATA_MAX: int
    PORTAIO_HAVE_EVFILT_USER: int
    PORTAIO_EVFILT_USER: int
    PORTAIO_HAVE_EVFILT_TIMER: int
    PORTAIO_EVFILT_TIMER: int
    PORTAIO_HAVE_EVFILT_SIGNAL: int
    PORTAIO_EVFILT_SIGNAL: int
    PORTAIO_HAVE_EVFILT_EXCEPT: int
    PORTAIO_EVFILT_EXCEPT: int
    PORTAIO_HAVE_EV_DISPATCH: int
    PORTAIO_EV_DISPATCH: int
    PORTAIO_HAVE_EV_RECEIPT: int
    PORTAIO_EV_RECEIPT: int
    PORTAIO_HAVE_NOTE_OOB: int
    PORTAIO_NOTE_OOB: int
    PORTAIO_HAVE_NOTE_LOWAT: int
    PORTAIO_NOTE_LOWAT: int
    PORTAIO_HAVE_NOTE_TRIGGER: int
    PORTAIO_NOTE_TRIGGER: int
    PORTAIO_HAVE_NOTE_USECONDS: int
    PORTAIO_NOTE_USECONDS: int
    PORTAIO_HAVE_NOTE_NSECONDS: int
    PORTAIO_NOTE_NSECONDS: int
    PORTAIO_HAVE_NOTE_SECONDS: int
    PORTAIO_NOTE_SECONDS: int
    def portaio_kq_open(self) -> int: ...
    def portaio_kq_close(self, kq: int) -> int: ...
    def portaio_kq_set(
        self, changes: Any, i: int, ident: int, filter: int, flags: int, fflags: int, data: int, token: int
    ) -> None: ...
    def portaio_kq_apply(self, kq: int, changes: Any, n: int, errors: Any) -> int: ...
    def portaio_kq_wait(
        self, kq: int, events: Any, nevents: int, timeout: float, keys: Any, scratch: Any, slots: int
    ) -> int: ...
    def portaio_kq_user_add(self, kq: int, ident: int, token: int) -> int: ...
    def portaio_kq_user_trigger(self, kq: int, ident: int, token: int) -> int: ...
    def portaio_kq_timer(self, kq: int, ident: int, seconds: float, token: int) -> int: ...
    PORTAIO_QUICK_TAKEN: int
    def portaio_kq_wait_now(self, q: Any) -> int: ...
    def portaio_kq_quick_release(self, q: Any) -> None: ...
    def portaio_kq_handle_close(self, h: Any) -> int: ...

ffi: _FFI
lib: _Lib
