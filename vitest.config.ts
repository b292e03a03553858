import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Worker processes: the e2e tests spawn many processes and send signals.
    pool: 'forks',
    // The machine has 2 cores; the e2e tests are mostly waiting and run concurrently inside their file.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 5_000 },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          // outside /tmp: every test container gets a fresh /tmp (test/helpers/stasis.ts, inNamespace)
          env: { TMPDIR: '/var/tmp/stasis-e2e' },
          // Generous: a slow run on a busy 2-core machine is not a failure; the helpers bound every wait.
          testTimeout: 120_000,
          hookTimeout: 30_000,
          maxConcurrency: 5,
        },
      },
      {
        extends: true,
        test: {
          // Alone, after the rest (scripts/test.sh): it keeps both CPUs busy on purpose.
          name: 'stress',
          include: ['test/stress/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 15 * 60_000,
          hookTimeout: 60 * 60_000,
        },
      },
    ],
  },
});
