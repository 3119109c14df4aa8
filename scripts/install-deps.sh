#!/usr/bin/env bash
# Installs the Debian packages spindle's tests and benchmarks use as real peers:
#   libiscsi-bin      iscsi-ls/-inq/-test-cu: initiator and conformance suite
#   qemu-utils        qemu-img convert/compare/bench over iscsi:// ...
#   qemu-block-extra  ... whose iscsi driver lives in this package
#   tgt               tgtd, the baseline target for benchmarks
#   sg3-utils         SCSI command tools
#   redis-server      cluster-state tests without a Docker engine
#   redis-sentinel    ... and their Sentinel failover tests
#   openssl           throwaway CA and certificates for the Redis TLS tests
#   genisoimage       genisoimage and isoinfo: ISO9660 images for the CD-ROM device tests
#
# Idempotent: does nothing (not even `apt-get update`) when everything is installed.
# Package post-install scripts must not leave services running: a tgtd holding port 3260,
# a redis-server on 6379 or a redis-sentinel on 26379 would collide with what the tests
# start themselves.
set -euo pipefail

PACKAGES=(libiscsi-bin qemu-utils qemu-block-extra tgt sg3-utils redis-server redis-sentinel openssl genisoimage)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all packages present (${PACKAGES[*]})"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install-deps: missing packages (${missing[*]}) and not root and no sudo; install them by hand" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Keep package scripts from starting daemons: a policy-rc.d that says "no" (exit 101) is
# honoured by invoke-rc.d and deb-systemd-invoke alike. Only installed if there is none
# already (containers usually ship one), and removed again afterwards.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
cleanup() {
  if [ "$added_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from spindle scripts/install-deps.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  added_policy=1
fi

# Daemons running before we start are not ours to stop.
tgtd_before=" $( (pgrep -x tgtd || true) | tr "\n" " ") "
redis_before=" $( (pgrep -x redis-server || true) | tr "\n" " ") "
sentinel_before=" $( (pgrep -x redis-sentinel || true) | tr "\n" " ") "

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# Belt and braces for systems where the policy was not honoured: stop and disable the
# services the packages may have started, then end any daemon that appeared during install.
stop_service() {
  local svc=$1
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
      "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  fi
}
kill_new() {
  local name=$1 before=$2 pid
  for pid in $(pgrep -x "$name" || true); do
    case "$before" in *" $pid "*) continue ;; esac
    echo "install-deps: stopping $name (pid $pid) started by the package install"
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
  done
}
for p in "${missing[@]}"; do
  case "$p" in
    tgt) stop_service tgt; kill_new tgtd "$tgtd_before" ;;
    redis-server) stop_service redis-server; kill_new redis-server "$redis_before" ;;
    redis-sentinel) stop_service redis-sentinel; kill_new redis-sentinel "$sentinel_before" ;;
  esac
done

for p in "${PACKAGES[@]}"; do
  installed "$p" || { echo "install-deps: $p failed to install" >&2; exit 1; }
done
echo "install-deps: done"
