#!/usr/bin/env bash
# Installs the named Debian packages if their marker file or command is missing.
# Usage: scripts/apt-ensure.sh PACKAGE:PATH_OR_COMMAND ...
# Uses sudo only when not root (fresh CI machines run as root without sudo).
set -euo pipefail
missing=()
for spec in "$@"; do
    pkg="${spec%%:*}" probe="${spec#*:}"
    if [[ "$probe" == /* ]]; then [ -e "$probe" ] || missing+=("$pkg"); else command -v "$probe" >/dev/null || missing+=("$pkg"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "apt-ensure: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq "${missing[@]}" >&2
