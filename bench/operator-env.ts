// The malloc settings the image runs the operator with (Dockerfile ENV), for the launchers that measure it
// (bench/cluster.ts, hack/profile-wave.ts, hack/profile-idle.ts); `npm start` sets the same in package.json.
//  - MALLOC_ARENA_MAX=2: glibc otherwise makes one arena per thread (see the Dockerfile).
//  - GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096: allocations of 4 KiB and more get pages of their own,
//    returned on free. A wave of issuances makes many short-lived allocations of 4-64 KiB (TLS records,
//    buffers); from the brk heap they left ~20 MB freed but resident afterwards (malloc's `[heap]` 24-27 MB
//    against ~7 MB idle, hack/profile-wave.ts), which only malloc_trim gave back. With this threshold `[heap]`
//    stayed at 14-15 MB after 2,000 and 5,000 identities (README, "Where the memory per identity goes").
//    A fixed threshold also stops glibc raising it after large frees (its dynamic threshold).
export const MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=4096';

/**
 * The operator's environment as the image sets it; each variable can be overridden from the launcher's own
 * environment (an empty value turns a setting off), to measure what it is worth.
 */
export function imageMallocEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? '2',
    GLIBC_TUNABLES: env.GLIBC_TUNABLES ?? MALLOC_TUNABLES,
  };
}
