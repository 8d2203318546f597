#!/usr/bin/env bash
# A private CPython assembled from Debian's binary .debs, for a Home Assistant lane whose Python
# the machine lacks: no source build, no change to the system's apt sources, lists, libc or
# installed packages. Prints the interpreter's path as the last stdout line.
#   scripts/debian-python.sh 3.14   Python >= 3.14.2 (Home Assistant 2026.3 and newer), from sid
#   scripts/debian-python.sh 3.13   Python >= 3.13.2 (Home Assistant 2025.5 to 2026.2), from trixie
#   HOME_AGENT_PYTHON=$(scripts/debian-python.sh 3.14) VENV=.venv scripts/setup
# env: DEBIAN_PYTHON_ROOT (/opt/py<ver>root)  DEBIAN_PYTHON_WORK (/var/tmp/py<ver>-debian)
#      DEBIAN_PYTHON_SUITE (sid for 3.14, trixie for 3.13)
# Idempotent: a finished root carries $ROOT/.python-ok and is only re-checked by import.
# Takes about 10 s and 45 MB of downloads (package lists and .debs) the first time.
set -euo pipefail
VER=${1:-}
case $VER in
  3.14) SUITE_DEFAULT=sid ;;
  3.13) SUITE_DEFAULT=trixie ;;
  *) sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
MINOR=${VER#3.}
ROOT=${DEBIAN_PYTHON_ROOT:-/opt/py${VER/./}root}
WORK=${DEBIAN_PYTHON_WORK:-/var/tmp/py${VER/./}-debian}
SUITE=${DEBIAN_PYTHON_SUITE:-$SUITE_DEFAULT}
PY=$ROOT/usr/bin/python$VER
LIB=$ROOT/usr/lib/x86_64-linux-gnu
LDSO=$LIB/ld-linux-x86-64.so.2
log() { echo "[debian-python $VER] $*" >&2; }
CHECK="import sys, ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, hashlib, zoneinfo, venv, ensurepip
sys.exit(sys.version_info[:2] != (3, $MINOR) or sys.version_info < (3, $MINOR, 2))"

build_root() {
  [ "$(uname -m)" = x86_64 ] || { log "only x86_64 is supported; install Python $VER.2+ yourself"; exit 1; }
  # Private apt config: only $SUITE, own lists/cache, empty dpkg status -> system apt state untouched.
  rm -rf "$WORK"; mkdir -p "$WORK/parts" "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs" "$WORK/tools"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$SUITE" > "$WORK/parts/$SUITE.sources"
  local O=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/parts"
           -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache"
           -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
  log "apt-get update ($SUITE, private lists in $WORK)"
  apt-get "${O[@]}" update >&2
  # Dependency closure of the interpreter, minus maintainer-script/data packages it does not need.
  local pkgs
  pkgs=$(apt-cache "${O[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
           --no-breaks --no-replaces --no-enhances "python$VER" "python$VER-venv" "python$VER-dev" libstdc++6 \
         | grep -v '^[ <]' | sort -u \
         | grep -vxE 'debconf|cdebconf|libdebian-installer[0-9]*|libnewt.*|libslang.*|libtextwrap.*|libselinux.*|libpcre2.*|ca-certificates|openssl|tzdata|netbase|gcc-[0-9]+-base|perl.*')
  log "downloading: $(echo $pkgs) patchelf"
  # shellcheck disable=SC2086
  (cd "$WORK/debs" && apt-get "${O[@]}" download $pkgs >&2)
  # patchelf is a tool here, not part of the root: unpacked aside and run on the root's own ld.so,
  # so nothing is installed on the system.
  (cd "$WORK/tools" && apt-get "${O[@]}" download patchelf >&2 && dpkg -x patchelf_*.deb .)
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  local d
  for d in "$WORK"/debs/*.deb; do dpkg -x "$d" "$ROOT"; done
  patchelf() { "$LDSO" --library-path "$LIB" "$WORK/tools/usr/bin/patchelf" "$@"; }
  # Run directly on the root's ld.so (the system's glibc is older); DT_RPATH (not RUNPATH) is
  # also honoured for lib-dynload modules and their dependencies, so no LD_LIBRARY_PATH is ever
  # needed. --no-sort: patchelf 0.18's header sorting yields an interpreter that segfaults.
  patchelf --no-sort --set-interpreter "$LDSO" --force-rpath --set-rpath "$LIB" "$PY"
  # Debian's ensurepip looks in the compile-time /usr/share/python-wheels (the system's, possibly
  # older pip there); point it at the wheels inside this root instead (3.13 and 3.14 spell it
  # differently).
  sed -i -e "s|(_pkg_dir := sysconfig.get_config_var('WHEEL_PKG_DIR'))|(_pkg_dir := os.path.join(sys.base_prefix, 'share', 'python-wheels'))|" \
    -e "s|^_pkg_dir = sysconfig.get_config_var('WHEEL_PKG_DIR')|_pkg_dir = os.path.join(sys.base_prefix, 'share', 'python-wheels')|" \
    "$ROOT/usr/lib/python$VER/ensurepip/__init__.py"
  grep -q "sys.base_prefix, 'share', 'python-wheels'" "$ROOT/usr/lib/python$VER/ensurepip/__init__.py"
  # Every extension module must resolve all its libraries inside the root.
  local f
  for f in "$ROOT"/usr/lib/python"$VER"/lib-dynload/*.so; do
    if "$LDSO" --library-path "$LIB" --list "$f" | grep -q 'not found'; then
      log "unresolved libs in $f"; "$LDSO" --library-path "$LIB" --list "$f" >&2; exit 1
    fi
  done
  "$PY" -c "$CHECK
bad = sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l and not l.split()[-1].startswith('$ROOT/')})
sys.exit('libs outside root: %s' % bad if bad else 0)"
  touch "$ROOT/.python-ok"
}

if [ -f "$ROOT/.python-ok" ] && "$PY" -c "$CHECK" 2>/dev/null; then
  log "interpreter ready: $("$PY" -VV | head -1)"
else
  t0=$SECONDS; build_root; log "interpreter built in $((SECONDS - t0))s: $("$PY" -V)"
fi
echo "$PY"
