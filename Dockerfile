# syntax=docker/dockerfile:1
# Operator image (default target) and the example mTLS workload image (--target example). There is no
# Docker engine on CI machines, so this file is kept correct by review and by hack/e2e-kind.sh, which
# builds both targets and runs them in a kind cluster.

# Build with dev dependencies: TypeScript compiles the mTLS library workspace (packages/mtls) to
# packages/mtls/dist, then src/ and examples/ to dist/ (they import the library by its package name).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/mtls/package.json ./packages/mtls/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY packages/mtls/tsconfig.json ./packages/mtls/
COPY packages/mtls/src ./packages/mtls/src
COPY src ./src
COPY examples ./examples
RUN npx tsc -p packages/mtls/tsconfig.json && npx tsc -p tsconfig.build.json

# Production dependencies only. npm links the workspace: node_modules/@svid-operator/mtls -> packages/mtls.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/mtls/package.json ./packages/mtls/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
# tini reaps zombies and forwards SIGTERM so the operator can release its Lease and exit cleanly.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/packages/mtls/dist ./packages/mtls/dist
COPY packages/mtls/package.json ./packages/mtls/
COPY package.json ./
# A numeric non-root UID, so Pod Security "restricted" (runAsNonRoot) can verify it without a passwd entry.
USER 65532:65532

# The example server/client used by hack/e2e-kind.sh: `args: [examples/server.js, --svid-dir, ...]`.
FROM runtime AS example
WORKDIR /app/dist
ENTRYPOINT ["/usr/bin/tini", "--", "node"]

# The operator (default). Nothing writes to the filesystem: it runs with readOnlyRootFilesystem.
# Memory flags, measured by `npm run bench` (which runs the operator the same way) with 10,000 identities:
# after a burst of issuances V8 kept a large young generation and a generously grown old space, and glibc
# one malloc arena per thread; --optimize-for-size, a 2 MB semi-space and two arenas cut resident memory
# by about half for some CPU.
# --liftoff-only: the only WebAssembly the operator runs is undici's llhttp (the HTTP parser of its API
# requests and watches). By default V8 recompiles its hot functions with the optimizing compiler, and each
# compile frees multi-MB zones (7.5, 3.7, 1.9 MB, ...), which raises glibc's dynamic mmap threshold: later
# allocations come from the brk heap and ~10 MB of freed memory stays resident (malloc_trim(0) from gdb on
# the idle operator released 9.7-10.5 MB). Idle RSS, hack/profile-idle.ts: 87.7-89.2 MB without the flag,
# 78.0-80.3 MB with it. A fixed glibc mmap threshold (GLIBC_TUNABLES) helped only some runs (80.6-89.0 MB).
# Set from inside the process (v8.setFlagsFromString at start) it had no effect (87.7, 87.9 MB).
# GLIBC_TUNABLES mmap_threshold=4096: a wave of issuances makes many short-lived 4-64 KiB allocations (TLS
# records, buffers); from the brk heap they left ~20 MB freed but resident (malloc's [heap] 24-27 MB after
# 2,000-5,000 identities, ~7 MB idle); with their own pages it stayed at 14-15 MB (hack/profile-wave.ts).
# The same settings in `npm start` and the bench: bench/operator-env.ts.
FROM runtime
ENV MALLOC_ARENA_MAX=2 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--optimize-for-size", "--max-semi-space-size=2", "--liftoff-only", "dist/src/operator/main.js"]
