import { defineConfig } from 'vitest/config';

// Runs the built dist/tabby (or $TABBY_BIN) in network namespaces these tests create: needs root.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
  },
});
