# Shared by the hack/build-*.sh scripts (sourced, not run): where the versioned cache lives, whether a
# cache entry is complete, one build at a time per entry, and the Go settings for building from the
# module proxy.
#
# The cache lives outside the work tree by default ($XDG_CACHE_HOME/svid-operator, i.e.
# ~/.cache/svid-operator) so fresh clones on the same machine reuse it; SVID_CACHE_DIR moves it.

# The cache's root directory.
svid_cache_root() {
  echo "${SVID_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/svid-operator}"
}

# all_executable DIR NAME...: true when every NAME is an executable file in DIR.
all_executable() {
  local dir=$1 name
  shift
  for name in "$@"; do [[ -x "$dir/$name" ]] || return 1; done
}

# lock_cache DIR: creates DIR and holds its lock (file descriptor 9) until the script exits, so a
# parallel run waits for a build instead of racing it.
lock_cache() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

# go_from_module_proxy: never let the go command fetch a different toolchain (only the module proxy is
# reachable) and do not stamp VCS information (the wrapper modules are not repositories).
go_from_module_proxy() {
  export GOTOOLCHAIN=local
  export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
}
