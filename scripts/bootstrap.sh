#!/usr/bin/env bash
# Set up everything the project needs, from nothing: a Python 3.12/3.13
# interpreter, the virtualenv (.venv) and the project installed in it (editable,
# with the [test] extras). Called by ./run; safe to call directly and repeatedly.
#
# Fast path (everything already set up): no output, no network, a few ms.
#
# Finding Python (first that really works wins):
#   $TREADMILL_PYTHON; python3.13, python3.12, python3 on PATH; pyenv and uv
#   builds; /usr/local/bin, /usr/bin, /opt/homebrew/bin; our own cached build.
# If none works and this is Debian, CPython 3.13 is built once from Debian's
# python3.13 source package (suite trixie), downloaded with apt through a
# private sources list that reuses this machine's Debian mirror and archive
# keyring (the machine's own apt configuration and state are not touched).
#
# The MQTT tests' tools (tests/mosquitto.py starts a private broker): when the
# mosquitto broker or the openssl CLI is missing (looked for on PATH and in
# /usr/sbin, checked on every run without starting a process), Debian's
# packages are installed with apt-get (as root, or with `sudo -n` if that
# works; `apt-get update` only if the install fails for want of package
# lists). Output goes to a log; one line says what happened. Never fatal:
# without root, on macOS (`brew install mosquitto`) or without apt, one line
# says what to install and only the MQTT tests fail. The package's own system
# broker (a service on port 1883, started or not as Debian decides) is not
# used: the tests run theirs on free ports.
#
# Environment:
#   TREADMILL_PYTHON=/path/to/python   use this interpreter (must be 3.12/3.13)
#   TREADMILL_FORCE_BUILD=1            ignore every interpreter except the cached
#                                      build (built if absent): the fresh-machine path
#   TREADMILL_CACHE_DIR=dir            default ${XDG_CACHE_HOME:-~/.cache}/backward-treadmill
#   TREADMILL_VENV=dir                 default <repo>/.venv
#   TREADMILL_DEBIAN_SUITE=suite       default trixie
#
# Works with bash 3.2 (macOS): no mapfile, no associative arrays, no empty
# array expansions under set -u.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TREADMILL_VENV:-$root/.venv}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
cache_root="${TREADMILL_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:?HOME is not set (or set TREADMILL_CACHE_DIR)}/.cache}/backward-treadmill}"
prefix="$cache_root/python-3.13"
cached_python="$prefix/bin/python3.13"
debian_suite="${TREADMILL_DEBIAN_SUITE:-trixie}"

stamp="$venv/.treadmill-stamp"         # hash of pyproject.toml after a successful pip install
marker="$venv/.treadmill-python"       # line 1: base interpreter, line 2: request (see below)

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }
no_python() {
    echo "Python 3.12 or 3.13 is needed: install it (e.g. from python.org or your package manager) or set TREADMILL_PYTHON=/path/to/python3.13" >&2
    exit 1
}

# What the caller asked for. An empty request accepts whatever valid venv exists.
if [[ "${TREADMILL_FORCE_BUILD:-}" == 1 ]]; then
    request="build:$prefix"
elif [[ -n "${TREADMILL_PYTHON:-}" ]]; then
    request="python:$TREADMILL_PYTHON"
else
    request=""
fi

file_hash() {
    local h
    if command -v sha256sum >/dev/null 2>&1; then
        h="$(sha256sum <"$1")"
    elif command -v shasum >/dev/null 2>&1; then
        h="$(shasum -a 256 <"$1")"
    else
        h="$(cksum <"$1")"
    fi
    printf '%s' "${h%% *}"
}

# Does the venv's python run, and is it 3.12/3.13?
venv_works() {
    [[ -x "$venv/bin/python" ]] &&
        "$venv/bin/python" -I -S -c 'import sys; sys.exit(0 if (3, 12) <= sys.version_info[:2] < (3, 14) else 1)' >/dev/null 2>&1
}

# Is the existing venv one we made, for the current request?
venv_acceptable() {
    local interp="" req=""
    venv_works || return 1
    [[ -f "$marker" ]] || return 1
    { IFS= read -r interp || true; IFS= read -r req || true; } <"$marker"
    [[ -n "$interp" ]] || return 1
    [[ -z "$request" || "$req" == "$request" ]]
}

# Is everything up to date (venv acceptable and project installed for this pyproject.toml)?
up_to_date() {
    local have=""
    venv_acceptable || return 1
    [[ -f "$stamp" ]] || return 1
    IFS= read -r have <"$stamp" || true
    [[ "$have" == "$want_hash" ]]
}

want_hash="$(file_hash "$root/pyproject.toml")"

# ---- the MQTT tests' tools: mosquitto, openssl -------------------------------
# Defined here, run on every path out (the fast path too: a machine set up
# before the MQTT tests existed gets them on its next ./run).

have_tool() {  # builtins only: this runs on the fast path
    local d
    command -v "$1" >/dev/null 2>&1 && return 0
    # Debian puts the broker in /usr/sbin, not on a user's PATH; Homebrew in its sbin.
    for d in /usr/sbin /usr/local/sbin /opt/homebrew/sbin; do
        [[ -x "$d/$1" ]] && return 0
    done
    return 1
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo -n "$@"; fi
}

test_tools() {
    local missing="" log failed p
    have_tool mosquitto || missing="mosquitto"
    have_tool openssl || missing="${missing:+$missing }openssl"
    [[ -z "$missing" ]] && return 0
    if [[ "$(uname -s)" == Darwin ]]; then
        say "the MQTT tests need $missing: brew install $missing"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "the MQTT tests need $missing: install it with your package manager"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]] && ! { command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; }; then
        say "the MQTT tests need $missing: sudo apt-get install -y --no-install-recommends $missing"
        return 0
    fi
    mkdir -p "$cache_root"
    log="$cache_root/test-tools-install.log"
    failed="$cache_root/test-tools-failed"
    # After a failure (offline, broken apt), retry once an hour, not on every ./run.
    if [[ -f "$failed" && -n "$(find "$failed" -mmin -60 2>/dev/null)" ]]; then
        say "the MQTT tests need $missing (installing failed less than an hour ago, see $log)"
        return 0
    fi
    say "installing $missing (Debian packages, for the MQTT tests), log: $log"
    # stdin and all output away from the caller's terminal or pipe: a service
    # the package starts must not hold the pipe of a `./run test | tee` open.
    # $missing is unquoted on purpose: one word per package.
    # shellcheck disable=SC2086
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=120 $missing >"$log" 2>&1 </dev/null; then
        # A fresh image has no package lists; old ones point at files the mirror has dropped.
        if grep -q -E 'Unable to locate package|has no installation candidate|Failed to fetch|apt-get update' "$log"; then
            # shellcheck disable=SC2086
            as_root apt-get -q -o DPkg::Lock::Timeout=120 update >>"$log" 2>&1 </dev/null &&
                as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                    -o DPkg::Lock::Timeout=120 $missing >>"$log" 2>&1 </dev/null || true
        fi
    fi
    # Judge by the result, not apt's status: a package whose service failed to
    # start leaves apt unhappy but the programs in place.
    rm -f "$failed"
    for p in $missing; do
        if ! have_tool "$p"; then
            say "could not install $p (see $log); the MQTT tests fail until it is installed"
            : >"$failed"
        fi
    done
}

# ---- fast path -------------------------------------------------------------
if up_to_date; then
    test_tools
    exit 0
fi

# ---- slow path: from here on, progress goes to stderr ----------------------
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

mkdir -p "$cache_root"
# One bootstrap at a time per cache dir (two ./run started together on a fresh
# machine would otherwise both build Python). flock is util-linux; skip without it.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_root/bootstrap.lock"
    if ! flock -n 9; then
        say "waiting for another bootstrap to finish (lock: $cache_root/bootstrap.lock)"
        flock 9
    fi
    if up_to_date; then
        test_tools
        exit 0
    fi
fi

# Print the real executable of a working 3.12/3.13 interpreter with the modules
# we need; fail silently otherwise (pyenv shims for versions that are not
# selected fail with "command not found", Debian's python3 is 3.11, ...).
check_python() {
    "$1" -I -c '
import sys
if not (3, 12) <= sys.version_info[:2] < (3, 14):
    sys.exit(1)
import ssl, sqlite3, ctypes, zlib, venv, ensurepip
print(sys.executable)
' 2>/dev/null
}

# All candidate interpreters, in order of preference, one per line.
candidates() {
    local pyenv_root="${PYENV_ROOT:-${HOME:-/nonexistent}/.pyenv}"
    local uv_root="${XDG_DATA_HOME:-${HOME:-/nonexistent}/.local/share}/uv/python"
    local v d f list i
    if [[ "${TREADMILL_FORCE_BUILD:-}" != 1 ]]; then
        for v in python3.13 python3.12 python3; do
            if command -v "$v" >/dev/null 2>&1; then command -v "$v"; fi
        done
        shopt -s nullglob
        for v in 3.13 3.12; do
            for d in "$pyenv_root/versions/$v" "$uv_root/cpython-$v"; do
                # newest first (glob order is ascending)
                list=("$d"*/bin/python"$v")
                i=${#list[@]}
                while ((i > 0)); do i=$((i - 1)); echo "${list[$i]}"; done
            done
        done
        shopt -u nullglob
        for d in /usr/local/bin /usr/bin /opt/homebrew/bin; do
            for v in 3.13 3.12; do
                f="$d/python$v"
                if [[ -x "$f" ]]; then echo "$f"; fi
            done
        done
    fi
    echo "$cached_python"
}

# ---- building CPython 3.13 from Debian's source package ---------------------

# Prints "URI<TAB>KEYRING" of this machine's main Debian archive (not security),
# taken from the apt sources for the machine's own suite.
debian_mirror() {
    local codename="" f out=""
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        out="$(awk -v cn="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; signed = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^#/ || line ~ /^[ \t]/ || index(line, ":") == 0) continue
                    k = tolower(substr(line, 1, index(line, ":") - 1))
                    v = substr(line, index(line, ":") + 1)
                    gsub(/^[ \t]+|[ \t]+$/, "", v)
                    if (k == "types") types = v
                    else if (k == "uris") uris = v
                    else if (k == "suites") suites = v
                    else if (k == "signed-by") signed = v
                    else if (k == "enabled") enabled = tolower(v)
                }
                if (enabled == "no" || uris == "") next
                if (types !~ /(^|[ \t])deb(-src)?([ \t]|$)/) next
                if (uris ~ /security/) next
                n = split(suites, s, /[ \t]+/); ok = 0
                for (j = 1; j <= n; j++)
                    if ((cn != "" && s[j] == cn) || (cn == "" && s[j] !~ /-/)) ok = 1
                if (!ok) next
                split(uris, u, /[ \t]+/)
                if (signed !~ /^\//) signed = ""
                print u[1] "\t" signed
                exit
            }' "$f")"
        if [[ -n "$out" ]]; then
            shopt -u nullglob
            printf '%s\n' "$out"
            return 0
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        out="$(awk -v cn="$codename" '
            $1 == "deb" || $1 == "deb-src" {
                i = 2; opts = ""
                if ($2 ~ /^\[/) {
                    while (i <= NF) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break }; i++ }
                }
                uri = $i; suite = $(i + 1)
                if (uri ~ /security/) next
                if ((cn != "" && suite == cn) || (cn == "" && suite !~ /-/)) {
                    gsub(/\[/, "", opts); gsub(/\]/, "", opts)
                    signed = ""
                    if (match(opts, /signed-by=[^ ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                    if (signed !~ /^\//) signed = ""
                    print uri "\t" signed
                    exit
                }
            }' "$f")"
        if [[ -n "$out" ]]; then
            shopt -u nullglob
            printf '%s\n' "$out"
            return 0
        fi
    done
    shopt -u nullglob
    return 1
}

build_log="$cache_root/python-3.13-build.log"
build_tmp=()   # temp dirs removed on exit

cleanup_build() {
    local d
    if ((${#build_tmp[@]} > 0)); then
        for d in "${build_tmp[@]}"; do rm -rf "$d"; done
    fi
}

in_dir() { (cd "$1" && shift && "$@"); }

# Run a build step with its output in the log; on failure show the log's tail.
step() {
    local what="$1" hint="$2"
    shift 2
    printf '\n===== %s: %s\n' "$what" "$*" >>"$build_log"
    if ! "$@" >>"$build_log" 2>&1; then
        {
            echo "bootstrap: error: $what failed; last 30 lines of $build_log:"
            tail -n 30 "$build_log"
            echo "bootstrap: hint: $hint"
        } >&2
        exit 1
    fi
}

install_build_deps() {
    local pkgs=(build-essential pkg-config libssl-dev libsqlite3-dev libffi-dev zlib1g-dev
        libreadline-dev libbz2-dev liblzma-dev libncurses-dev uuid-dev libgdbm-dev xz-utils)
    local missing=() p installed
    installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${pkgs[@]}" 2>/dev/null || true) "
    for p in "${pkgs[@]}"; do
        case "$installed" in *" $p=installed "*) ;; *) missing+=("$p") ;; esac
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ "$(id -u)" != 0 ]]; then
        die "to build Python 3.13, first install: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    say "installing build dependencies: ${missing[*]}"
    step "apt-get update" "check that 'apt-get update' works on this machine" \
        apt-get -q update
    step "installing build dependencies" "check that 'apt-get install ${missing[*]}' works on this machine" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build_python() {
    local mirror uri keyring aptdir workdir stage orig f opts jobs py version

    # Debian only (the build uses Debian's source package and apt).
    if [[ "$(uname -s)" != Linux || ! -r /etc/os-release ]] || ! command -v apt-get >/dev/null 2>&1; then
        no_python
    fi
    # shellcheck disable=SC1091
    if [[ "$(. /etc/os-release && echo "${ID:-}")" != debian ]]; then
        no_python
    fi
    if ! mirror="$(debian_mirror)"; then
        say "no Debian archive found in /etc/apt/sources.list{,.d} to download Python's source from"
        no_python
    fi
    uri="${mirror%%$'\t'*}"
    keyring="${mirror#*$'\t'}"
    if [[ -z "$keyring" && -r /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    fi

    : >"$build_log"
    SECONDS=0
    trap cleanup_build EXIT
    # Leftovers of a build that was killed (we hold the lock: nobody else is building).
    rm -rf "$cache_root"/build.* "$prefix.tmp"
    install_build_deps
    say "building Python 3.13 from Debian source (one time only, about 5 minutes), log: $build_log"

    # Private apt configuration and state: sources list, lists, caches, status.
    # The dir is world-readable and the download dir owned by _apt so that apt
    # can keep its download sandbox when running as root.
    aptdir="$(mktemp -d "${TMPDIR:-/tmp}/treadmill-apt.XXXXXX")"
    build_tmp+=("$aptdir")
    chmod 755 "$aptdir"
    mkdir -p "$aptdir/empty" "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/dl"
    : >"$aptdir/status"
    if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
        chown _apt "$aptdir/dl"
    fi
    opts=""
    if [[ -n "$keyring" ]]; then opts="[signed-by=$keyring] "; fi
    printf 'deb-src %s%s %s main\n' "$opts" "$uri" "$debian_suite" >"$aptdir/sources.list"
    cat "$aptdir/sources.list" >>"$build_log"
    local apt=(apt-get -q
        -o "Dir::Etc::SourceList=$aptdir/sources.list"
        -o "Dir::Etc::SourceParts=$aptdir/empty"
        -o "Dir::State::Lists=$aptdir/lists"
        -o "Dir::Cache=$aptdir/cache"
        -o "Dir::State::status=$aptdir/status")
    step "apt-get update ($debian_suite sources)" \
        "could not fetch the Debian '$debian_suite' source index from $uri (network? signature?)" \
        "${apt[@]}" --error-on=any update
    step "downloading the python3.13 source package" \
        "could not download python3.13/$debian_suite from $uri" \
        in_dir "$aptdir/dl" "${apt[@]}" source --download-only "python3.13/$debian_suite"

    orig=""
    for f in "$aptdir"/dl/python3.13_*.orig.tar.*; do
        case "$f" in *.asc) ;; *) [[ -f "$f" ]] && orig="$f" ;; esac
    done
    [[ -n "$orig" ]] || die "no python3.13 .orig.tar.* in the downloaded source package (see $build_log)"

    # Build in the cache dir (on disk; /tmp may be a small tmpfs).
    workdir="$(mktemp -d "$cache_root/build.XXXXXX")"
    build_tmp+=("$workdir")
    mkdir "$workdir/src"
    step "unpacking $(basename "$orig")" "is xz-utils installed?" \
        tar -xf "$orig" -C "$workdir/src" --strip-components=1
    rm -rf "$aptdir"

    jobs="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
    local hint="see $build_log; set TREADMILL_PYTHON=/path/to/python3.13 to use an existing Python instead"
    step "configure" "$hint" \
        in_dir "$workdir/src" ./configure --prefix="$prefix" --disable-test-modules
    step "make" "$hint" \
        make -C "$workdir/src" -j"$jobs"
    # Install into a staging root (paths inside stay those of $prefix), check
    # it, then move it into place: a killed build never leaves a half-installed
    # interpreter at $prefix.
    stage="$prefix.tmp"
    rm -rf "$stage"
    build_tmp+=("$stage")
    step "make install" "$hint" \
        make -C "$workdir/src" install DESTDIR="$stage"
    py="$stage$prefix/bin/python3.13"
    step "checking the new interpreter" \
        "a module was not built; look for 'necessary bits' / 'Failed to build' in $build_log" \
        "$py" -I -c 'import sys, ssl, sqlite3, ctypes, readline, zlib, bz2, lzma, venv, ensurepip; print(sys.version)'
    rm -rf "$prefix"
    mv "$stage$prefix" "$prefix"
    rm -rf "$workdir" "$stage"
    version="$("$cached_python" -c 'import platform; print(platform.python_version())')"
    say "built Python $version in $((SECONDS / 60))m$((SECONDS % 60))s: $prefix"
    trap - EXIT
}

# ---- interpreter + venv -----------------------------------------------------

make_venv() {  # $1 = interpreter; fails if venv creation fails
    rm -rf "$venv"
    "$1" -I -m venv --prompt backward-treadmill "$venv" >&2 &&
        printf '%s\n%s\n' "$1" "$request" >"$marker"
}

if ! venv_acceptable; then
    if [[ -e "$venv" ]]; then
        say "recreating $venv"
    fi
    made=""
    if [[ -n "${TREADMILL_PYTHON:-}" && "${TREADMILL_FORCE_BUILD:-}" != 1 ]]; then
        py="$(check_python "$TREADMILL_PYTHON")" ||
            die "TREADMILL_PYTHON=$TREADMILL_PYTHON is not a working Python 3.12/3.13 (with ssl, sqlite3, ctypes, venv)"
        say "creating $venv with $py"
        make_venv "$py" || die "could not create a virtualenv with $py"
        made=1
    else
        while IFS= read -r c; do
            py="$(check_python "$c")" || continue
            say "creating $venv with $py"
            if make_venv "$py"; then
                made=1
                break
            fi
            say "could not create a virtualenv with $py; trying the next Python"
        done < <(candidates)
    fi
    if [[ -z "$made" ]]; then
        build_python
        py="$(check_python "$cached_python")" || die "the Python built in $prefix does not work (see $build_log)"
        say "creating $venv with $py"
        make_venv "$py" || die "could not create a virtualenv with $py"
    fi
fi

say "installing the project and its dependencies into $venv (pip install -e '.[test]')"
rm -f "$stamp"
(cd "$root" && "$venv/bin/python" -m pip install -q -e '.[test]' >&2) ||
    die "pip install -e '.[test]' failed (see above)"
printf '%s\n' "$want_hash" >"$stamp"
test_tools
say "ready"
