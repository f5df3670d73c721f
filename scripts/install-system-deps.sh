#!/usr/bin/env bash
# Install the Debian packages kafkars needs to build and test: a C toolchain for the build
# scripts and the debug builds of `cargo test` (release builds use zig from the venv; OpenSSL,
# zlib and zstd are compiled from source, so no -dev packages), binutils' readelf for the
# packaging tests, Java and Maven for the local broker (Maven also fetches the Schema Registry,
# whose Java 21 comes from PyPI), kcat and curl for the readiness checks. Does nothing when
# everything is present; needs root (or sudo) otherwise, and says which packages are missing.
set -euo pipefail

packages=(build-essential perl pkg-config cmake python3-venv
          default-jdk-headless maven kcat curl)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
# A JDK or Maven installed outside Debian's packages (e.g. a Temurin JDK) also does.
if command -v java >/dev/null && command -v javac >/dev/null; then
  missing=("${missing[@]/default-jdk-headless}")
fi
if command -v mvn >/dev/null; then
  missing=("${missing[@]/maven}")
fi
read -r -a missing <<<"${missing[*]}"

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "kafkars needs these Debian packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=sudo
fi
echo "system packages: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
