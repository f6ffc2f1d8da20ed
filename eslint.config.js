// Type-aware lint. no-floating-promises is an error: a forgotten await on an ack or a write is a
// lost or duplicated notification.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'clients/dist/',
      'clients/gen/',
      'coverage/',
      'src/graphql/generated/',
      'clients/graphql/generated.ts',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js', 'scripts/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' },
      ],
    },
  },
  {
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '../infra/*',
                '../server/*',
                '../workers/*',
                '../scheduler/*',
                '../providers/*',
                '../graphql/*',
                '@mikro-orm/*',
                '@nats-io/*',
                'ioredis',
                'pino',
                'node:*',
                '@connectrpc/*',
              ],
              message: 'domain/ is pure: no I/O libraries and nothing outside domain/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['eslint.config.js', 'vitest.config.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
