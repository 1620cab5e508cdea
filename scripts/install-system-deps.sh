#!/usr/bin/env bash
# Install the Debian packages baodao needs, and make sure PostgreSQL answers for the tests.
#   install-system-deps.sh build   what `pip install` needs to build pyscard (swig, PC/SC headers, a compiler)
#   install-system-deps.sh test    + pcscd and the vpcd virtual reader, socat, chromium, CJK fonts, PostgreSQL
# Installs only what is missing, so a second run takes a second. Needs root (or sudo) on Debian/Ubuntu.
set -euo pipefail
mode=${1:-build}

build_pkgs=(swig libpcsclite-dev gcc pkg-config)
test_pkgs=(pcscd vsmartcard-vpcd socat chromium fonts-noto-cjk)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
want=("${build_pkgs[@]}")
if [ "$mode" = "test" ]; then want+=("${test_pkgs[@]}"); fi
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if [ "$mode" = "test" ] && ! pg_up && ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "ok installed"; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = "test" ] && ! pg_up; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf=/etc/postgresql/$version/main
  # The tests connect as postgres over 127.0.0.1 without a password, as on our CI machines.
  if ! grep -q "baodao-test" "$conf/pg_hba.conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # baodao-test\nhost all all ::1/128 trust # baodao-test' "$conf/pg_hba.conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
fi
if [ "$mode" = "test" ] && command -v systemctl >/dev/null && systemctl is-active --quiet pcscd.socket 2>/dev/null; then
  # The PC/SC tests run their own pcscd with the vpcd virtual reader; Debian's socket-activated one would hold
  # /run/pcscd/pcscd.comm.
  $SUDO systemctl disable --now pcscd.socket pcscd.service || true
fi
echo "system dependencies ready ($mode)" >&2
