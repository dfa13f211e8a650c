import { configDefaults, defineConfig } from 'vitest/config';

// The end-to-end tests start real processes (agents, Chromium, socat) on a 2-core machine; under
// load a start can take a few seconds. Each wait inside a test has its own deadline that names
// what it waited for; this outer limit only has to be larger than those.
export default defineConfig({
  test: {
    // test/lab/ runs only inside the hardware lab VM (npm run test:lab, vitest.lab.config.ts)
    exclude: [...configDefaults.exclude, 'test/lab/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // child processes started through bin/qrkiosk.js run the sources under test, never dist/
    env: { QRKIOSK_RUN_SOURCES: '1' },
  },
});
