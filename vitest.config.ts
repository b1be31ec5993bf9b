import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/each-file.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn real processes (kubectl, sshd, the CLIs) and wait on them: one worker more than the two
    // cores fills those waits. A fixed pool: tinypool retires a worker that falls idle while others run,
    // and with isolate: false that retirement can reject the run at its end ("Terminating worker thread")
    // and leave the retired worker behind.
    maxWorkers: 3,
    minWorkers: 3,
    // Each worker runs its files in one module graph instead of a fresh one per file: collecting a file
    // re-imported vitest, yaml and the product (~1.7 s of CPU per file, 60 files). Each file starts from
    // a fresh CLI's process state (test/each-file.ts); tests restore what they change in the process
    // (env, umask, cwd) and harnesses stop what they start.
    isolate: false,
  },
});
