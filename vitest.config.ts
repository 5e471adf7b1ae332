import { configDefaults, defineConfig } from 'vitest/config';
import { siteSetupAllow } from './test/support/site-setup-allow.js';

/** Tests that need a real Docker engine: the docker folder and any `*.docker.test.ts`. */
const DOCKER_TESTS = ['test/docker/**', 'test/**/*.docker.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The setup network refuses what is not public: this machine's registries may not be (a
    // site mirror, an intercepting proxy). Tests that run setup read it from here.
    env: { BERTH_SETUP_ALLOW: siteSetupAllow() },
    reporters: ['default'],
    // `npm test` runs both projects (every test/**/*.test.ts); `npm run test:unit` only `unit`.
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...DOCKER_TESTS],
        },
      },
      {
        extends: true,
        test: {
          name: 'docker',
          include: DOCKER_TESTS.map((glob) => (glob.endsWith('/**') ? `${glob}/*.test.ts` : glob)),
        },
      },
    ],
  },
});
