import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn real processes (kubectl, sshd, the CLIs); two cores, so keep the pool small.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
