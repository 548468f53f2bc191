// Run with: npx vitest run --config examples/testing/vitest/vitest.config.ts
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('.', import.meta.url).pathname,
    include: ['*.test.ts'],
    // Each test file in a process of its own: the kit's exit hook and its
    // children's IPC channels are tied to the test process.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
