/**
 * The Node.js versions Herald runs on. `engines.node` in package.json says the same (a unit test
 * keeps the two equal); npm only warns about it, so the `herald` command and the benchmarks check
 * it themselves instead of running, slower or subtly different, on a runtime nobody tested.
 */

/** The oldest Node.js release Herald supports. */
export const MIN_NODE_VERSION = '22.18.0';

/** Why this Node.js cannot run Herald, as one line; null when it can. */
export function unsupportedNode(version: string = process.versions.node): string | null {
  const parts = (v: string) => v.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const have = parts(version);
  const need = parts(MIN_NODE_VERSION);
  for (let i = 0; i < need.length; i++) {
    const h = have[i] ?? 0;
    const n = need[i] ?? 0;
    if (h !== n) {
      return h > n
        ? null
        : `Node.js ${MIN_NODE_VERSION} or newer is required, this is ${version}; ` +
            'install Node 24 (README.md, "Quick start") and put it first on PATH';
    }
  }
  return null;
}

/** Exits with status 1 and one line on stderr when this Node.js cannot run Herald. */
export function requireSupportedNode(command: string): void {
  const problem = unsupportedNode();
  if (problem === null) return;
  console.error(`${command}: ${problem}`);
  process.exit(1);
}
