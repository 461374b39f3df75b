#!/usr/bin/env bash
# Build portaio's AFD-poll state machine (csrc/portaio_afd.c) and its C-level
# conformance checks (tests/wine/afd_test.c) with mingw-w64, warnings as
# errors, and run them under Wine.  Installs gcc-mingw-w64-x86-64 and wine64
# with apt-get when they are missing.  Bounded in time: the run is killed
# after PORTAIO_WINE_TIMEOUT seconds (default 240), and every Wine process
# of our prefix is stopped afterwards, whatever happened.
#
#   tools/wine-afd-test.sh            build and run
#   PORTAIO_WINE_PREFIX=DIR ...       the Wine prefix to use (created on first
#                                     use, ~10-30 s; default: a cache dir)
set -euo pipefail
cd "$(dirname "$0")/.."

CC=x86_64-w64-mingw32-gcc
find_wine() {
    if command -v wine64 >/dev/null 2>&1; then command -v wine64
    elif [ -x /usr/lib/wine/wine64 ]; then echo /usr/lib/wine/wine64
    elif command -v wine >/dev/null 2>&1; then command -v wine
    fi
}
find_wineserver() {
    if command -v wineserver >/dev/null 2>&1; then command -v wineserver
    elif [ -x /usr/lib/wine/wineserver ]; then echo /usr/lib/wine/wineserver
    fi
}

missing=()
command -v "$CC" >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
[ -n "$(find_wine)" ] || missing+=(wine64)
if [ ${#missing[@]} -gt 0 ]; then
    echo "wine-afd-test: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
WINE=$(find_wine)
WINESERVER=$(find_wineserver)
[ -n "$WINE" ] || { echo "wine-afd-test: no wine64 after installing it"; exit 1; }

export WINEPREFIX="${PORTAIO_WINE_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/portaio-wine-prefix}"
export WINEDEBUG=-all WINEARCH=win64 WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY WAYLAND_DISPLAY
mkdir -p "$(dirname "$WINEPREFIX")"

build=$(mktemp -d "${TMPDIR:-/tmp}/portaio-wine.XXXXXX")
stop_wine() {
    # wineserver -k ends the prefix's processes; if the server itself died,
    # its helpers (winedevice.exe, ...) are found by their WINEPREFIX.
    [ -n "$WINESERVER" ] && timeout 20 "$WINESERVER" -k >/dev/null 2>&1 || true
    for pid in $(pgrep -f '\.exe' 2>/dev/null || true); do
        if tr '\0' '\n' 2>/dev/null </proc/"$pid"/environ | grep -qxF "WINEPREFIX=$WINEPREFIX"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}
trap 'stop_wine; rm -rf "$build"' EXIT

echo "wine-afd-test: $("$CC" --version | head -1); $("$WINE" --version 2>/dev/null || echo wine)"
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -Icsrc \
    -o "$build/afd_test.exe" tests/wine/afd_test.c csrc/portaio_afd.c -lws2_32

# 2,000 sockets are 2,000 Unix fds in Wine's processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start=$(date +%s.%N)
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "wine-afd-test: creating the Wine prefix $WINEPREFIX (first run only)"
    timeout -k 10 180 "$WINE" cmd /c exit >/dev/null 2>&1 || true
fi
rc=0
timeout -k 10 "${PORTAIO_WINE_TIMEOUT:-240}" "$WINE" "$build/afd_test.exe" >"$build/log" 2>&1 || rc=$?
cat "$build/log"
end=$(date +%s.%N)
printf 'wine-afd-test: exit %d after %.1f s (Wine start-up included)\n' "$rc" "$(echo "$end - $start" | bc)"
[ "$rc" = 124 ] && echo "wine-afd-test: TIMED OUT"
exit "$rc"
