#!/usr/bin/env bash
# Builds spire-server and spire-agent (github.com/spiffe/spire) from the Go module proxy into a cache
# directory keyed by the pinned version, for the Workload API interop tests and the bench. Prints the
# bin directory as its last line. Nothing is rebuilt while the binaries for the pinned version are there.
#
# The cache is the control plane's ($XDG_CACHE_HOME/svid-operator, i.e. ~/.cache/svid-operator, or
# SVID_CACHE_DIR). The proxy serves github.com/spiffe/spire by exact version even though it refuses to list
# the module's versions.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib/build-cache.sh
source "$here/lib/build-cache.sh"

# The SPIRE release the interop tests run against. Changing it changes the cache key.
SPIRE_VERSION="${SPIRE_VERSION:-v1.13.3}"

cache_root="$(svid_cache_root)"
dest="$cache_root/spire-${SPIRE_VERSION}"
bin="$dest/bin"
binaries=(spire-server spire-agent)

complete() { all_executable "$bin" "${binaries[@]}"; }

if complete; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "build-spire: Go is required (https://go.dev/dl) and was not found on PATH" >&2; exit 1; }
# spire-server's SQLite datastore (github.com/mattn/go-sqlite3) needs cgo, so a C compiler.
command -v "${CC:-cc}" >/dev/null || { echo "build-spire: a C compiler (cc) is required for spire-server's SQLite datastore (cgo); install gcc" >&2; exit 1; }

go_from_module_proxy
export CGO_ENABLED=1

lock_cache "$dest"
if complete; then
  echo "$bin"
  exit 0
fi

# `go install …@version` asks the proxy for the module's version list (to report deprecations), which the
# proxy refuses for github.com/spiffe/spire. So the release's own module is downloaded by exact version and
# built in a copy of it, with its own go.mod and go.sum: the dependency versions and hashes are exactly the
# release's (no resolution, no checksum-database lookups beyond the release itself).
work="$dest/src"
rm -rf "$work" "$bin.tmp"
mkdir -p "$bin.tmp"
echo "build-spire: downloading github.com/spiffe/spire@$SPIRE_VERSION (first run only)" >&2
module_dir="$(cd "$dest" && go mod download -json "github.com/spiffe/spire@$SPIRE_VERSION" | sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
[[ -n "$module_dir" && -f "$module_dir/go.mod" ]] || { echo "build-spire: the module download did not report a source directory" >&2; exit 1; }
cp -R "$module_dir" "$work"
chmod -R u+w "$work"

for b in "${binaries[@]}"; do
  echo "build-spire: building $b $SPIRE_VERSION (first run only; minutes on 2 cores)" >&2
  start=$SECONDS
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp/$b" "./cmd/$b")
  echo "build-spire: $b built in $((SECONDS - start))s" >&2
done

rm -rf "$bin"
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "$bin"
