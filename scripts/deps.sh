#!/usr/bin/env bash
# Make sure Debian packages are installed.
#
#   scripts/deps.sh PKG...            # run it
#   source scripts/deps.sh; earlyexit_require_packages PKG...
#
# Already installed: nothing happens. Missing and running as root: installs them
# with apt-get. Missing and not root: prints the exact sudo command and fails.

earlyexit_require_packages() {
  if [ "$#" -eq 0 ]; then
    return 0
  fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: dpkg-query not found (not a Debian/Ubuntu system);" \
         "make sure these are installed: $*" >&2
    return 0
  fi

  local missing=() pkg status
  for pkg in "$@"; do
    status="$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)"
    case "$status" in
      *"install ok installed"*) ;;
      *) missing+=("$pkg") ;;
    esac
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi

  if [ "$(id -u)" -eq 0 ]; then
    echo "deps.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: not root, so not installing them. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

# Executed (not sourced): check the packages named on the command line.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  earlyexit_require_packages "$@"
fi
