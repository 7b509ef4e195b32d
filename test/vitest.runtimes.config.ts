import { defineConfig } from 'vitest/config';

// tabby under real CNI clients: libcni (a Go client built here), the upstream cnitool (built from
// ../shared/tools/cnitool), containerd (ctr) and podman, chained with the reference plugins, and
// `tabby install`. Needs root, a built dist/tabby (or $TABBY_BIN) and the packages test/setup.sh
// installs. One file at a time: containerd and podman run plugins in the root network namespace, and
// they and cnitool share /var/lib/cni.
export default defineConfig({
  test: {
    include: ['test/runtimes/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
