#!/usr/bin/env bash
# Installs the Debian packages tapegrad builds with, when they are missing. As root it installs
# them; otherwise it prints the one apt-get line to run and fails.
set -euo pipefail
# Extra packages for one target (make fuzz: clang) come as arguments.
packages=(cmake make g++ libeigen3-dev libspdlog-dev libfmt-dev libgtest-dev nlohmann-json3-dev
  zlib1g-dev libcli11-dev libbenchmark-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "tapegrad: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "tapegrad needs: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
