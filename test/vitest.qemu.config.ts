import { defineConfig } from 'vitest/config';

// Boots a stock Debian kernel under qemu (software emulation) once and runs the qemu scenarios in it
// (test/qemu/). Needs root, test/setup.sh's packages and a built dist/tabby.
export default defineConfig({
  test: {
    include: ['test/qemu/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 420_000,
    maxWorkers: 1,
  },
});
