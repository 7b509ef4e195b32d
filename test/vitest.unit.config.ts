import { defineConfig } from 'vitest/config';

// Pure logic: no root, no kernel. Runs in seconds.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    root: new URL('..', import.meta.url).pathname,
  },
});
