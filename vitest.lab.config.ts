import { defineConfig } from 'vitest/config';

// The hardware lab's tests (test/lab/): they run only inside the lab VM (`npm run test:lab`), as
// root, against real kernel devices. One emulated CPU without KVM is several times slower than the
// host, so the outer limits are generous; every wait inside a test has its own named deadline.
export default defineConfig({
  test: {
    include: ['test/lab/**/*.lab.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    env: { QRKIOSK_RUN_SOURCES: '1' },
  },
});
