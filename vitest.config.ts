import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests use the client package's source, so they need no build of it. Only the bare name:
// '@herald/client/gen/...' resolves through the package's exports as usual.
const alias = [
  {
    find: /^@herald\/client$/,
    replacement: fileURLToPath(new URL('./clients/src/node.ts', import.meta.url)),
  },
  // graphql 16 ships CommonJS (`main`) and ESM (`module`) builds without an exports map: Vite picks
  // the ESM one for our sources while graphql-yoga and graphql-armor, loaded by Node, get the
  // CommonJS one. Two GraphQLError classes break yoga's error masking (every GraphQLError of ours
  // becomes "Unexpected error.") and graphql's cross-realm checks. One copy, as in production.
  { find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') },
];

export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias },
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], environment: 'node' },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Two cores: files run two at a time, each with its own database and NATS prefix.
          maxWorkers: 2,
        },
      },
    ],
  },
});
