import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that need a real Docker engine: the docker folder and any `*.docker.test.ts`. */
const DOCKER_TESTS = ['test/docker/**', 'test/**/*.docker.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
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
