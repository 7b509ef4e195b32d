// The etcd suite: lib/datastore/etcd against real etcd processes (Debian etcd-server) on 127.0.0.1,
// started by the tests themselves (test/helpers/etcd.ts). No root needed.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/etcd/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});
