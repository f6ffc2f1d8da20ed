// `npm run check`: regenerate code and fail if it changed, lint the contract, typecheck, lint,
// check formatting. Run by CI before the tests.
import { execSync } from 'node:child_process';

/** @param {string} cmd */
const run = (cmd) => {
  console.log(`$ ${cmd}`);
  try {
    execSync(cmd, { stdio: 'inherit' });
  } catch {
    console.error(`check failed: ${cmd}`);
    process.exit(1);
  }
};

run('buf lint');
run('buf generate');
run('node scripts/codegen.js');
const stale = execSync(
  'git status --porcelain -- clients/gen src/graphql/generated clients/graphql/generated.ts',
  { encoding: 'utf8' },
).trim();
if (stale) {
  console.error(`Generated code is stale; run \`npm run generate\` and commit:\n${stale}`);
  process.exit(1);
}
// The root project imports @herald/client through its built declarations.
run('tsc -p clients/tsconfig.json');
run('tsc -p tsconfig.json');
// The example frontend and the typed operations, against the browser's lib and no Node types.
run('tsc -p clients/graphql/tsconfig.json');
run('eslint .');
run('prettier --check .');
