import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/each-file.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn real processes (kubectl, sshd, the CLIs); two cores, so keep the pool small.
    maxWorkers: 2,
    minWorkers: 1,
    // Each worker runs its files in one module graph instead of a fresh one per file: collecting a file
    // re-imported vitest, yaml and the product (~1.7 s of CPU per file, 60 files). Tests restore what
    // they change in the process (env, umask, cwd) and harnesses stop what they start, so files do not
    // see each other.
    isolate: false,
  },
});
