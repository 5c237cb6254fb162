#!/usr/bin/env bash
# Google Research Football (gfootball 2.10.2) into a Python environment: bash scripts/install_football.sh PYTHON
#
# gfootball is published as source only, and its C++ engine needs Debian build packages. The wheel
# is built once per machine, in a scratch venv with the old build tools it needs (setuptools 65.5,
# wheel 0.38.4, numpy < 2, psutil), and cached in $DIFFER_WHEEL_CACHE (default
# ~/.cache/differ/wheels); later installs take the cached wheel (seconds). At run time it needs
# `six` (imported, not declared) and gym 0.26.2 (the raw observations differ uses work with it).
# Build packages: installed with apt-get when run as root, else named in one message.
set -euo pipefail
PY="${1:?usage: install_football.sh PYTHON}"
VERSION=2.10.2
CACHE="${DIFFER_WHEEL_CACHE:-$HOME/.cache/differ/wheels}"
RUNTIME=(six gym==0.26.2)
DEBS=(build-essential cmake libgl1-mesa-dev libegl-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev
      libsdl2-gfx-dev libboost-python-dev libboost-thread-dev libboost-system-dev libboost-filesystem-dev)
SELF="bash scripts/setup.sh football"

if "$PY" -c "import gfootball, gym, six, importlib.metadata as m; assert m.version('gfootball') == '$VERSION'" 2>/dev/null; then
  echo "football: gfootball $VERSION already installed"
  exit 0
fi
# the wheel this interpreter and machine take, e.g. gfootball-2.10.2-cp311-cp311-linux_x86_64.whl
NAME=$("$PY" -c "import sys, sysconfig; t = f'cp{sys.version_info[0]}{sys.version_info[1]}'; p = sysconfig.get_platform().replace('-', '_').replace('.', '_'); print(f'gfootball-$VERSION-{t}-{t}-{p}.whl')")
mkdir -p "$CACHE"
WHEEL="$CACHE/$NAME"

if [ ! -f "$WHEEL" ]; then
  missing=()
  if command -v dpkg-query >/dev/null; then
    for p in "${DEBS[@]}"; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
  else
    echo "football: not a Debian system: cannot check the build packages (the equivalents of ${DEBS[*]}); trying the build"
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "football: installing ${#missing[@]} Debian build packages (apt-get)"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "football: gfootball's engine needs Debian build packages that are missing; install them with" >&2
      echo "  sudo apt-get install ${missing[*]}" >&2
      echo "then run: $SELF" >&2
      exit 1
    fi
  fi
  echo "football: building the gfootball $VERSION wheel (once per machine, ~7-15 min on 2 cores) into $CACHE"
  BUILD=$(mktemp -d)
  trap 'rm -rf "$BUILD"' EXIT
  LOG="$CACHE/gfootball-build.log"
  # the build tools gfootball needs, in a scratch venv: the differ venv keeps its own versions
  if ! { "$PY" -m venv "$BUILD/venv" &&
         "$BUILD/venv/bin/python" -m pip install -q "setuptools==65.5.0" "wheel==0.38.4" psutil "numpy<2" &&
         # the engine's compile script runs `python3 -c "import psutil"`: the build venv first on PATH
         PATH="$BUILD/venv/bin:$PATH" TMPDIR="$BUILD" "$BUILD/venv/bin/python" -m pip wheel -q --no-cache-dir \
           --no-build-isolation --no-deps "gfootball==$VERSION" -w "$BUILD/wheels"; } >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "football: building gfootball $VERSION failed (the end of $LOG is above); fix the cause and run: $SELF" >&2
    exit 1
  fi
  if [ ! -f "$BUILD/wheels/$NAME" ]; then
    echo "football: the build made $(ls "$BUILD/wheels"), not $NAME; run: $SELF" >&2
    exit 1
  fi
  # into the cache under a temporary name, then renamed: an interrupted copy never looks like a wheel
  cp "$BUILD/wheels/$NAME" "$WHEEL.partial" && mv "$WHEEL.partial" "$WHEEL"
fi
if ! "$PY" -m pip install -q "$WHEEL" "${RUNTIME[@]}" ||
   ! "$PY" -c "import contextlib, io; contextlib.redirect_stderr(io.StringIO()).__enter__(); import gfootball.env"; then
  echo "football: the cached wheel $WHEEL does not install or import here; delete it and run: $SELF" >&2
  exit 1
fi
echo "football: gfootball $VERSION installed from $WHEEL"
