import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real targets on their own ports; run files in parallel
    // but keep each file's tests in order.
    fileParallelism: true,
    pool: 'forks',
  },
});
