#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Provision the interpreters the integration tests profile and write
# DIR/manifest.tsv describing them.  See README.md next to this file.
#
# Usage: test/interpreters/provision.sh [DIR]
#   DIR defaults to ${PYFLAME_TEST_INTERPRETERS:-/var/cache/pyflame/interpreters}
#
# Runs as root on Debian 12.  Idempotent: every interpreter that was
# provisioned and verified has a stamp file (DIR/NAME/provisioned holding its
# manifest row); a later run only re-checks that the stamp is current.
# An interpreter that cannot be had is skipped with a "provision: SKIP" line
# on stderr; the script still exits 0 if the manifest could be written.
set -euo pipefail

DIR=${1:-${PYFLAME_TEST_INTERPRETERS:-/var/cache/pyflame/interpreters}}
MIRROR=${PYFLAME_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PYENV_ROOT_DIR=${PYENV_ROOT:-/root/.pyenv}
PYENV_EXPECTED="2.7.18 3.6.15 3.7.16 3.8.18 3.9.18 3.10.13 3.11.7 3.12.1 3.13.0"
# Bump when the layout or the row format changes: invalidates all stamps.
STAMP_FORMAT=1
# Lists younger than this are not fetched again (seconds).
LISTS_MAX_AGE=3600

# Debian interpreters fetched from other suites:
#   name suite minor placement
# placement: "chroot" runs it inside its unpacked tree; "host" runs the
# unpacked (older-libc) interpreter directly on the host with PYTHONHOME,
# falling back to a chroot if that does not work.
DEBIAN_INTERPRETERS="
debian11-2.7  bullseye 2.7  chroot
debian11-3.9  bullseye 3.9  host
debian13-3.13 trixie   3.13 chroot
sid-3.14      sid      3.14 chroot
sid-3.15      sid      3.15 chroot
"

# Free-threaded interpreters (PEP 703; `t` builds): no Debian package has
# one, so each is built with --disable-gil from the release tarball in
# Debian's source package (a deb-src line for SUITE):
#   name suite minor configure-flags
# Only trixie's source package is on the mirror here: sid's python3.14 and
# python3.15 sources are not (404), so 3.14t and 3.15t cannot be built.
FREETHREADED_INTERPRETERS="
built-3.13t trixie 3.13t --enable-shared
"

THREAD_CHECK='import threading, time; t=threading.Thread(target=time.sleep, args=(0.1,)); t.start(); t.join(); print("ok")'
INFO_CODE='import os, sys; print("%d.%d.%d" % sys.version_info[:3]); print(os.path.realpath(sys.executable))'
FT_CODE='import sysconfig; print(int(bool(sysconfig.get_config_var("Py_GIL_DISABLED"))))'
HEADER='name	minor	version	mode	root	python	headers	env'

log() { printf 'provision: %s\n' "$*" >&2; }
skip() { log "SKIP $1: $2"; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (chroot, apt-get)"
    exit 1
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

# Serialise concurrent runs on the same DIR.
exec 9>"$DIR/.lock"
flock 9

NAMES=()          # rows in manifest order

# Host path of PYTHON (a path inside ROOT).
host_path() { # ROOT PYTHON
    if [[ $1 == / ]]; then printf '%s\n' "$2"; else printf '%s%s\n' "$1" "$2"; fi
}

# Run an interpreter the way the manifest row says: env -i, ENV, chroot.
run_py() { # ROOT PYTHON ENV args...
    local root=$1 py=$2 envs=$3
    shift 3
    local -a cmd=(env -i PATH=/usr/local/bin:/usr/bin:/bin)
    if [[ $envs != - ]]; then
        local -a kv
        read -r -a kv <<<"$envs"
        cmd+=("${kv[@]}")
    fi
    if [[ $root != / ]]; then cmd+=("$CHROOT" "$root"); fi
    timeout 60 "${cmd[@]}" "$py" "$@"
}

stamp_key() { # host path of the executable
    stat -L -c '%s:%Y:%i' "$1" 2>/dev/null || echo missing
}

# Reuse a current stamp: prints nothing, returns 0 if NAME is done.
stamp_ok() { # NAME
    local stamp=$DIR/$1/provisioned fmt key row root py
    [[ -f $stamp ]] || return 1
    IFS=$'\t' read -r fmt key row <"$stamp" || return 1
    [[ $fmt == "$STAMP_FORMAT" ]] || return 1
    IFS=$'\t' read -r _ _ _ _ root py _ _ <<<"$row"
    [[ $(stamp_key "$(host_path "$root" "$py")") == "$key" ]]
}

# Check that HEADERS (colon-separated dirs) give <Python.h> of VERSION.
# Prints a reason on failure.
check_headers() { # HEADERS VERSION
    local headers=$1 version=$2 dir out
    local -a inc=() dirs=()
    IFS=: read -r -a dirs <<<"$headers"
    for dir in "${dirs[@]}"; do inc+=(-I "$dir"); done
    if ! command -v cc >/dev/null; then
        [[ -f ${dirs[0]}/Python.h ]] || { echo "no Python.h"; return 1; }
        return 0
    fi
    if ! out=$(printf '#include <Python.h>\nPYFLAME_VERSION PY_MAJOR_VERSION.PY_MINOR_VERSION.PY_MICRO_VERSION\n' |
        cc -E -P "${inc[@]}" -x c - 2>&1); then
        echo "cc cannot preprocess <Python.h>: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        return 1
    fi
    out=$(sed -n 's/^PYFLAME_VERSION *//p' <<<"$out" | tr -d ' ')
    if [[ $out != "$version" ]]; then
        echo "<Python.h> is version '$out', interpreter is $version"
        return 1
    fi
}

# Verify an interpreter, compute version and mode, write its stamp.
# Returns 1 (after printing the reason) if it does not work.
register() { # NAME MINOR ROOT PYTHON HEADERS ENV
    local name=$1 minor=$2 root=$3 py=$4 headers=$5 envs=$6
    local hp info version real mode out why
    hp=$(host_path "$root" "$py")
    if [[ ! -x $hp ]]; then
        echo "no executable $hp"
        return 1
    fi
    if ! info=$(run_py "$root" "$py" "$envs" -c "$INFO_CODE" 2>&1); then
        echo "does not start: $(tail -n 3 <<<"$info" | tr '\n' ' ')"
        return 1
    fi
    version=$(sed -n 1p <<<"$info")
    real=$(sed -n 2p <<<"$info")
    if [[ $version != "${minor%t}".* ]]; then
        echo "reports version '$version', expected ${minor%t}.x"
        return 1
    fi
    # A `t` minor must be a free-threaded build, and the others must not.
    local want_ft=0 ft
    [[ $minor == *t ]] && want_ft=1
    if ! ft=$(run_py "$root" "$py" "$envs" -c "$FT_CODE" 2>&1) || [[ $ft != "$want_ft" ]]; then
        echo "free-threaded build: '$ft', expected $want_ft"
        return 1
    fi
    if ! out=$(run_py "$root" "$py" "$envs" -c "$THREAD_CHECK" 2>&1) || [[ $out != ok ]]; then
        echo "threaded check failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        return 1
    fi
    # Mode: does the executable itself need libpython?
    if ! out=$(readelf -d "$(host_path "$root" "$real")" 2>&1); then
        echo "readelf failed on $real: $out"
        return 1
    fi
    if grep -q 'NEEDED.*\[libpython' <<<"$out"; then mode=shared; else mode=static; fi
    if [[ $headers != - ]] && ! why=$(check_headers "$headers" "$version"); then
        log "WARNING $name: headers unusable ($why); headers column left '-'"
        headers=-
    fi
    mkdir -p "$DIR/$name"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$STAMP_FORMAT" "$(stamp_key "$hp")" \
        "$name" "$minor" "$version" "$mode" "$root" "$py" "$headers" "$envs" \
        >"$DIR/$name/provisioned.tmp"
    mv "$DIR/$name/provisioned.tmp" "$DIR/$name/provisioned"
}

# register, then list NAME in the manifest, or say why it is skipped.
list_or_skip() { # NAME MINOR ROOT PYTHON HEADERS ENV
    local why
    if why=$(register "$@"); then
        NAMES+=("$1")
    else
        skip "$1" "$why"
    fi
}

# ---------------------------------------------------------------- pyenv

provision_pyenv() {
    local versions=() v name minor py inc headers why
    # The expected set, plus whatever else is installed.
    read -r -a versions <<<"$PYENV_EXPECTED"
    if [[ -d $PYENV_ROOT_DIR/versions ]]; then
        for v in "$PYENV_ROOT_DIR"/versions/*/; do
            v=$(basename "$v")
            [[ " ${versions[*]} " == *" $v "* ]] || versions+=("$v")
        done
    fi
    for v in "${versions[@]}"; do
        name=pyenv-$v
        if [[ ! $v =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
            log "ignoring $PYENV_ROOT_DIR/versions/$v: not a CPython X.Y.Z version"
            continue
        fi
        minor=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
        py=$PYENV_ROOT_DIR/versions/$v/bin/python$minor
        if stamp_ok "$name"; then NAMES+=("$name"); continue; fi
        if [[ ! -x $py ]]; then
            skip "$name" "$py not found (pyenv version not installed)"
            continue
        fi
        headers=-
        for inc in "$PYENV_ROOT_DIR/versions/$v/include/python$minor" \
                   "$PYENV_ROOT_DIR/versions/$v/include/python${minor}m"; do
            if [[ -f $inc/Python.h ]]; then headers=$inc; break; fi
        done
        list_or_skip "$name" "$minor" / "$py" "$headers" -
    done
}

# ------------------------------------------------------- Debian 12 (host)

provision_debian12() {
    local name=debian12-3.11 minor=3.11 py=/usr/bin/python3.11 hd why st
    if stamp_ok "$name"; then NAMES+=("$name"); return; fi
    st=$(dpkg-query -W -f='${db:Status-Status} ' python3.11 python3.11-dev 2>/dev/null || true)
    if [[ $st != "installed installed " ]]; then
        log "installing python3.11 python3.11-dev with the host's apt"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-dev >&2; then
            log "apt-get install failed; updating the host's lists and retrying"
            if ! { apt-get update -q >&2 &&
                   DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-dev >&2; }; then
                skip "$name" "apt-get install python3.11 python3.11-dev failed"
                return
            fi
        fi
    fi
    # A clean include tree: -I must not point at all of /usr/include.
    hd=$DIR/$name/headers
    rm -rf "$hd"
    mkdir -p "$hd"
    make_header_links "$hd" / /usr/include "$minor"
    list_or_skip "$name" "$minor" / "$py" "$hd/python$minor:$hd" -
}

# Populate HEADERS_DIR with pythonX.Y and <multiarch>/pythonX.Y links
# to INCLUDE (a host path).  LINK_BASE is what the links point through:
# "/" for absolute targets, or a path relative to HEADERS_DIR.
make_header_links() { # HEADERS_DIR LINK_BASE INCLUDE MINOR
    local hd=$1 base=$2 inc=$3 minor=$4 d triplet
    target() { # path below INCLUDE, depth of the link below HEADERS_DIR
        local rel=$1 depth=$2 up=""
        if [[ $base == / ]]; then printf '%s/%s\n' "$inc" "$rel"; return; fi
        while ((depth-- > 0)); do up+=../; done
        printf '%s%s/%s\n' "$up" "$base" "$rel"
    }
    ln -sfn "$(target "python$minor" 0)" "$hd/python$minor"
    for d in "$inc"/*/"python$minor"; do
        [[ -d $d ]] || continue
        triplet=$(basename "$(dirname "$d")")
        mkdir -p "$hd/$triplet"
        ln -sfn "$(target "$triplet/python$minor" 1)" "$hd/$triplet/python$minor"
    done
}

# ------------------------------------------------- other Debian suites

declare -A SUITE_READY=() SUITE_UPDATED=() SUITE_FAILED=()
MIRROR_DOWN=

suite_apt() { # SUITE apt-get|apt-cache args...
    local suite=$1 tool=$2
    shift 2
    local a=$DIR/apt/$suite
    "$tool" -q \
        -o Dir::Etc::sourcelist="$a/sources.list" \
        -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::Etc::preferencesparts=/dev/null \
        -o Dir::State::Lists="$a/lists" \
        -o Dir::State::status="$a/status" \
        -o Dir::Cache="$a/cache" \
        -o Dir::Cache::pkgcache=pkgcache.bin \
        -o Dir::Cache::srcpkgcache=srcpkgcache.bin \
        -o Dir::Cache::Archives="$a/archives" \
        -o Acquire::Languages=none \
        -o Acquire::Retries=1 \
        -o Acquire::http::Timeout=15 \
        -o APT::Sandbox::User=root \
        "$@"
}

suite_update() { # SUITE [force]
    local suite=$1 force=${2:-} a=$DIR/apt/$1 out
    if [[ -n ${SUITE_UPDATED[$suite]:-} ]]; then return 0; fi
    if [[ -n ${SUITE_FAILED[$suite]:-} || -n $MIRROR_DOWN ]]; then return 1; fi
    if [[ -z ${SUITE_READY[$suite]:-} ]]; then
        mkdir -p "$a/lists/partial" "$a/cache" "$a/archives/partial"
        : >"$a/status"
        printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$suite" >"$a/sources.list"
        SUITE_READY[$suite]=1
    fi
    if [[ -z $force && -f $a/updated ]] &&
       (($(date +%s) - $(stat -c %Y "$a/updated") < LISTS_MAX_AGE)); then
        return 0
    fi
    log "fetching package lists for $suite"
    if ! out=$(suite_apt "$suite" apt-get update 2>&1) || grep -q '^[EW]:' <<<"$out"; then
        grep -E '^(E|W|Err):' <<<"$out" | head -n 5 >&2 || true
        SUITE_FAILED[$suite]=1
        # Unreachable mirror: do not wait for it again for every suite.
        if grep -qiE 'could not (connect|resolve)|temporary failure resolving|timed out|unreachable' <<<"$out"; then
            MIRROR_DOWN=1
        fi
        return 1
    fi
    touch "$a/updated"
    SUITE_UPDATED[$suite]=1
}

# Package names (first alternative, no version) PKG/SUITE depends on.
suite_depends() { # SUITE PKG
    suite_apt "$1" apt-cache show "$2/$1" 2>/dev/null |
        sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',' '\n' |
        sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' |
        sed '/^$/d' | sort -u
}

# Download PKG/SUITE for each PKG into the current directory.
suite_download() { # SUITE PKG...
    local suite=$1 p out
    shift
    local -a specs=()
    for p in "$@"; do specs+=("$p/$suite"); done
    if out=$(suite_apt "$suite" apt-get download "${specs[@]}" 2>&1); then return 0; fi
    # Stale lists (a newer version replaced the listed one)?  Refresh once.
    if [[ -z ${SUITE_UPDATED[$suite]:-} ]] && suite_update "$suite" force &&
       out=$(suite_apt "$suite" apt-get download "${specs[@]}" 2>&1); then
        return 0
    fi
    grep -E '^(E|W|Err):' <<<"$out" | tail -n 5 >&2 || true
    return 1
}

provision_debian_one() { # NAME SUITE MINOR PLACEMENT
    local name=$1 suite=$2 minor=$3 placement=$4
    local base=$DIR/$1 root=$DIR/$1/root dl=$DIR/$1/debs hd=$DIR/$1/headers
    local pkgs=() deps=() p why headers envs py=/usr/bin/python$minor
    if stamp_ok "$name"; then NAMES+=("$name"); return; fi
    if ! suite_update "$suite"; then
        if [[ -n $MIRROR_DOWN ]]; then
            skip "$name" "$MIRROR is unreachable"
        else
            skip "$name" "cannot fetch package lists of $suite from $MIRROR"
        fi
        return
    fi
    pkgs=(libc6 "python$minor-minimal" "libpython$minor-minimal" "libpython$minor-stdlib")
    # The libraries the interpreter executable itself needs.
    mapfile -t deps < <(suite_depends "$suite" "python$minor-minimal")
    if ((${#deps[@]} == 0)); then
        skip "$name" "python$minor-minimal not found in $suite"
        return
    fi
    for p in "${deps[@]}"; do
        case $p in
            python$minor* | libpython$minor*) ;;
            *) [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p") ;;
        esac
    done
    rm -rf "$base"
    mkdir -p "$dl" "$root"
    log "$name: downloading ${pkgs[*]} libpython$minor-dev from $suite"
    if ! (cd "$dl" && suite_download "$suite" "${pkgs[@]}"); then
        skip "$name" "apt-get download from $suite failed"
        return
    fi
    headers=$hd/python$minor:$hd
    if ! (cd "$dl" && suite_download "$suite" "libpython$minor-dev"); then
        log "WARNING $name: libpython$minor-dev/$suite unavailable; no headers"
        headers=-
    fi
    for p in "$dl"/*.deb; do
        if ! dpkg -x "$p" "$root"; then
            skip "$name" "dpkg -x $(basename "$p") failed"
            return
        fi
    done
    rm -rf "$dl"
    # Merged-/usr suites ship everything below usr/: add the top-level links
    # a chroot needs (the ELF interpreter is /lib64/ld-linux-x86-64.so.2).
    for p in lib bin sbin; do
        if [[ ! -e $root/$p && ! -L $root/$p && -d $root/usr/$p ]]; then ln -s "usr/$p" "$root/$p"; fi
    done
    if [[ ! -e $root/lib64 && ! -L $root/lib64 ]]; then
        if [[ -d $root/usr/lib64 ]]; then
            ln -s usr/lib64 "$root/lib64"
        else
            mkdir "$root/lib64"
        fi
    fi
    if [[ ! -e $root/lib64/ld-linux-x86-64.so.2 && ! -L $root/lib64/ld-linux-x86-64.so.2 ]]; then
        ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
    fi
    mkdir -p "$root/proc" "$root/dev" "$root/tmp"
    chmod 1777 "$root/tmp"
    if [[ $headers != - ]]; then
        mkdir -p "$hd"
        make_header_links "$hd" ../root/usr/include "$root/usr/include" "$minor"
    fi
    if [[ $placement == host ]]; then
        envs="PYTHONHOME=$root/usr"
        if why=$(register "$name" "$minor" / "$root$py" "$headers" "$envs"); then
            NAMES+=("$name")
            return
        fi
        log "$name: does not run on the host ($why); trying a chroot"
    fi
    list_or_skip "$name" "$minor" "$root" "$py" "$headers" -
}

provision_debian_suites() {
    local name suite minor placement
    while read -r name suite minor placement; do
        [[ -n $name ]] || continue
        provision_debian_one "$name" "$suite" "$minor" "$placement"
    done <<<"$DEBIAN_INTERPRETERS"
}

# ------------------------------------------- free-threaded, from source

# The release tarball of SUITE's source package PKG, unpacked into DEST.
fetch_source() { # SUITE PKG DEST
    local suite=$1 pkg=$2 dest=$3 a=$DIR/apt/$1-src out tarball
    mkdir -p "$a/lists/partial" "$a/cache" "$a/archives/partial"
    : >"$a/status"
    printf 'deb-src [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$suite" >"$a/sources.list"
    if [[ ! -f $a/updated ]] || (($(date +%s) - $(stat -c %Y "$a/updated") >= LISTS_MAX_AGE)); then
        log "fetching source lists for $suite"
        if ! out=$(suite_apt "$suite-src" apt-get update 2>&1) || grep -q '^[EW]:' <<<"$out"; then
            grep -E '^(E|W|Err):' <<<"$out" | head -n 3
            return 1
        fi
        touch "$a/updated"
    fi
    rm -rf "$dest.dl" "$dest"
    mkdir -p "$dest.dl" "$dest"
    # apt checks the files against the signed Sources list.
    if ! out=$(cd "$dest.dl" && suite_apt "$suite-src" apt-get source --download-only "$pkg/$suite" 2>&1); then
        grep -E '^(E|W|Err):' <<<"$out" | head -n 3
        return 1
    fi
    tarball=$(ls "$dest.dl"/*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n 1)
    [[ -n $tarball ]] || { echo "no orig tarball in $pkg/$suite"; return 1; }
    tar -xf "$tarball" -C "$dest" --strip-components=1 || return 1
    rm -rf "$dest.dl"
}

# Builds NAME with --disable-gil into DIR/NAME/install, once: the stamp of
# a verified build makes a later run cost a check. A few minutes on two
# cores (no PGO/LTO, no test modules).
provision_freethreaded_one() { # NAME SUITE MINOR FLAGS...
    local name=$1 suite=$2 minor=$3
    shift 3
    local base=$DIR/$name base_minor=${minor%t} prefix py why
    prefix=$base/install
    py=$prefix/bin/python$minor
    if stamp_ok "$name"; then NAMES+=("$name"); return; fi
    if [[ ! -x $py ]]; then
        local pkgs=(gcc make libffi-dev zlib1g-dev xz-utils) missing=() p
        for p in "${pkgs[@]}"; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
        done
        if ((${#missing[@]})) &&
           ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 &&
           ! { apt-get update -q >&2 &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }; then
            skip "$name" "cannot install the build dependencies ${missing[*]}"
            return
        fi
        log "$name: fetching the source of python$base_minor from $suite"
        if ! why=$(fetch_source "$suite" "python$base_minor" "$base/src"); then
            skip "$name" "no source: $why"
            return
        fi
        log "$name: building CPython $base_minor with --disable-gil $* (log: $base/build.log)"
        rm -rf "$prefix"
        if ! (cd "$base/src" &&
              ./configure --prefix="$prefix" --disable-gil --without-ensurepip \
                  --disable-test-modules "$@" LDFLAGS="-Wl,-rpath,$prefix/lib" &&
              make -j"$(nproc)" &&
              make install) >"$base/build.log" 2>&1; then
            skip "$name" "the build failed: $(tail -n 3 "$base/build.log" | tr '\n' ' ')"
            return
        fi
        rm -rf "$base/src"
    fi
    list_or_skip "$name" "$minor" / "$py" "$prefix/include/python$minor" -
}

provision_freethreaded() {
    local name suite minor flags
    while read -r name suite minor flags; do
        [[ -n $name ]] || continue
        # shellcheck disable=SC2086  # the flags are words
        provision_freethreaded_one "$name" "$suite" "$minor" $flags
    done <<<"$FREETHREADED_INTERPRETERS"
}

# ------------------------------------------------------------------ main

CHROOT=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH command -v chroot)
if ! command -v readelf >/dev/null; then
    log "installing binutils (readelf)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q binutils >&2
fi

provision_pyenv
provision_debian12
provision_debian_suites
provision_freethreaded
# apt's binary caches (~50 MB each) only speed up this run.
rm -f "$DIR"/apt/*/cache/*.bin

manifest=$DIR/manifest.tsv
{
    printf '%s\n' "$HEADER"
    for name in "${NAMES[@]}"; do
        cut -f3- "$DIR/$name/provisioned"
    done
} >"$manifest.tmp"
mv "$manifest.tmp" "$manifest"

for name in "${NAMES[@]}"; do
    IFS=$'\t' read -r n _ version mode root _ <<<"$(cut -f3- "$DIR/$name/provisioned")"
    printf '%-16s %-8s %-6s %s\n' "$n" "$version" "$mode" "$root"
done
log "${#NAMES[@]} interpreters in $manifest"
