// The etcd suite against real etcd processes (Debian etcd-server), started by the tests themselves
// (test/helpers/etcd.ts): client.test.ts (lib/datastore/etcd on 127.0.0.1, no root needed), and the
// cluster in etcd end to end on simulated nodes (cluster.test.ts, block-release.test.ts: network
// namespaces, root and a built dist/tabby; etcd runs inside a namespace the nodes reach).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/etcd/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});
