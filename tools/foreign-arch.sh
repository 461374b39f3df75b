#!/usr/bin/env bash
# Run the whole test suite in a Debian userland of another architecture.
#
#   tools/foreign-arch.sh arm64      # aarch64: 16-byte struct epoll_event, through qemu-user
#   tools/foreign-arch.sh i386       # 32-bit x86 userland, run natively by an x86-64 kernel
#   tools/foreign-arch.sh arm64 -- -k conformance -x   # pytest arguments after --
#
# Needs root on a Debian/Ubuntu host (debootstrap, chroot, mounts).  The first
# run builds a minimal Debian root (debootstrap) with a venv holding portaio's
# build and test dependencies, cached under $PORTAIO_FOREIGN_CACHE (default
# /var/tmp/portaio-foreign/<suite>-<arch>; delete it to start over).  Every
# run copies this tree into the root, installs it there as the README's test
# line does (non-editable, compiled) and runs pytest on every backend
# (epoll, poll and select; kqueue is reported unavailable), then prints the
# summary.  The exit status is pytest's.
#
# Under qemu-user the tests know it without being told: the userland's
# machine (uname, which qemu translates) differs from the kernel's own
# (/proc/sys/kernel/arch, which qemu does not), and only then are the few
# tests qemu cannot emulate skipped, each with that reason (tests/conftest.py).
set -euo pipefail

# The script run in the root: install the copied tree as the README's test line
# does (compiled, not editable), then pytest.
inside_script() {
    cat <<'EOF'
set -euo pipefail
cd /src
if [ ! -x /opt/venv/bin/pytest ]; then
    python3 -m venv /opt/venv
    # The build requirements too: the install below builds without isolation,
    # so a cached run does not download setuptools and cffi again.
    /opt/venv/bin/pip install -q --disable-pip-version-check \
        'setuptools>=77' 'cffi>=1.16' wheel 'pytest>=7' 'pytest-timeout>=2.1' 'hypothesis>=6'
fi
/opt/venv/bin/pip install -q --disable-pip-version-check --no-build-isolation '.[test]'
echo "userland $(uname -m) ($(getconf LONG_BIT)-bit), kernel $(cat /proc/sys/kernel/arch 2>/dev/null || echo ?)," \
    "$(/opt/venv/bin/python -c 'import sys; print(sys.implementation.name, sys.version.split()[0])')"
(cd / && /opt/venv/bin/python -c 'import portaio; print("installed portaio, backends:", portaio.available_backends())')
exec /opt/venv/bin/pytest -p no:cacheprovider "$@"
EOF
}

main() {
    usage() { echo "usage: $0 ARCH [-- PYTEST-ARGS...]   (ARCH: arm64, i386, or another Debian arch)" >&2; exit 2; }
    [ $# -ge 1 ] || usage
    arch=$1; shift
    if [ $# -gt 0 ]; then [ "$1" = -- ] || usage; shift; fi
    pytest_args=("$@")

    suite=${PORTAIO_FOREIGN_SUITE:-bookworm}
    mirror=${PORTAIO_FOREIGN_MIRROR:-http://deb.debian.org/debian}
    cache=${PORTAIO_FOREIGN_CACHE:-/var/tmp/portaio-foreign}
    root="$cache/$suite-$arch"
    repo=$(cd "$(dirname "$0")/.." && pwd)
    start=$SECONDS

    say() { printf '=== foreign-arch %s: %s\n' "$arch" "$*"; }
    [ "$(id -u)" = 0 ] || { echo "$0: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

    # The host machine names and the Debian architecture names differ.
    host_deb=$(dpkg --print-architecture)
    qemu_arch=""
    case "$host_deb:$arch" in
        amd64:amd64 | amd64:i386 | arm64:arm64 | arm64:armhf) ;;  # the kernel runs these itself
        *)
            case "$arch" in
                arm64) qemu_arch=aarch64 ;; armhf | armel) qemu_arch=arm ;; i386) qemu_arch=i386 ;;
                amd64) qemu_arch=x86_64 ;; ppc64el) qemu_arch=ppc64le ;; s390x) qemu_arch=s390x ;;
                riscv64) qemu_arch=riscv64 ;; *) echo "$0: no qemu mapping for $arch" >&2; exit 2 ;;
            esac ;;
    esac

    if [ -n "$qemu_arch" ]; then
        # Emulated, Python runs 10-20x slower: the suite's 120 s per-test timeout
        # would cut the long reliability tests (10,000 poller lifecycles, the
        # differential state machine) short rather than find a hang.
        pytest_args=(-o "timeout=${PORTAIO_FOREIGN_TIMEOUT:-900}" "${pytest_args[@]}")
    fi

    need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    if [ -n "$qemu_arch" ]; then
        [ -e "/usr/bin/qemu-$qemu_arch-static" ] || need+=(qemu-user-static)
        command -v update-binfmts >/dev/null || need+=(binfmt-support)
    fi
    if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi

    if [ -n "$qemu_arch" ]; then
        # The kernel hands foreign binaries to qemu through binfmt_misc; the F flag
        # (qemu-user-static's default) opens the interpreter now, so it works in a chroot.
        binfmt=/proc/sys/fs/binfmt_misc
        [ -e "$binfmt/status" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
        [ -e "$binfmt/qemu-$qemu_arch" ] || update-binfmts --enable "qemu-$qemu_arch"
        grep -qx enabled "$binfmt/qemu-$qemu_arch" || { echo "$0: binfmt qemu-$qemu_arch is disabled" >&2; exit 1; }
    fi

    if [ ! -e "$root/.debootstrap-done" ]; then
        say "building a Debian $suite $arch root in $root (once; cached)"
        rm -rf "$root"
        mkdir -p "$cache"
        debootstrap --arch="$arch" --variant=minbase \
            --include=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates \
            "$suite" "$root" "$mirror" >"$cache/debootstrap-$suite-$arch.log" 2>&1 ||
            { tail -20 "$cache/debootstrap-$suite-$arch.log"; exit 1; }
        touch "$root/.debootstrap-done"
    fi

    # pip inside the root reaches the package index as the host does: same name
    # servers, same proxy settings, same trust store (a host behind a
    # TLS-inspecting proxy trusts its CA there, and the fresh root would not).
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/certs/host-ca-certificates.crt"
    pass_env=(PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt)
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL; do
        [ -z "${!var:-}" ] || pass_env+=("$var=${!var}")
    done
    # The repository as committed plus any uncommitted edits, without build products or venvs.
    rm -rf "$root/src" && mkdir -p "$root/src"
    tar -C "$repo" --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.so' --exclude=./docs/_build \
        --exclude=./.tox --exclude='./.*_cache' --exclude=./.hypothesis -cf - . | tar -C "$root/src" -xf -

    inside=$(inside_script)

    how=natively; [ -z "$qemu_arch" ] || how="through qemu-$qemu_arch"
    say "installing portaio and running the suite ($how)"
    # A private mount namespace: /proc, /sys and /dev vanish with it, even on failure.
    status=0
    unshare --mount --propagation private -- bash -c '
        set -e
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs tmpfs "$root/tmp"
        env=(); while [ "$1" != -- ]; do env+=("$1"); shift; done; shift
        exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            "${env[@]}" bash -c "$@"
    ' _ "$root" "${pass_env[@]}" -- "$inside" inside "${pytest_args[@]}" || status=$?
    say "done in $((SECONDS - start)) s (pytest exit status $status)"
    exit "$status"
}

# Everything runs from main, which bash has read whole before it starts: editing
# this file during a run (the suite takes a while under qemu) cannot break it.
main "$@"; exit $?
