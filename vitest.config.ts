import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests use the client package's source, so they need no build of it. Only the bare name:
// '@herald/client/gen/...' resolves through the package's exports as usual.
const alias = [
  {
    find: /^@herald\/client$/,
    replacement: fileURLToPath(new URL('./clients/src/node.ts', import.meta.url)),
  },
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
