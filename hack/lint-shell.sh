#!/usr/bin/env bash
# Parses and lints every shell script (bash -n, ShellCheck). Installs ShellCheck from Debian's archive
# when it is missing and we may (root with apt-get), so `npm test` needs nothing installed by hand.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v shellcheck >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "lint-shell: installing shellcheck from Debian's archive" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2
  else
    echo "lint-shell: shellcheck is not installed; install it (apt-get install shellcheck, brew install shellcheck)" >&2
    exit 1
  fi
fi

scripts=(hack/*.sh .ci/run)
for script in "${scripts[@]}"; do bash -n "$script"; done
shellcheck -x "${scripts[@]}"
echo "lint-shell: ${#scripts[@]} scripts ok"
