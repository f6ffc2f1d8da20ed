import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIN_NODE_VERSION, unsupportedNode } from '../../src/runtime.js';

describe('unsupportedNode', () => {
  it('is the minimum that package.json engines.node declares', () => {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      engines: { node: string };
    };
    const declared = /^>=(\d+)\.(\d+)(?:\.(\d+))?$/.exec(pkg.engines.node);
    expect(declared).not.toBeNull();
    const [, major, minor, patch = '0'] = declared as RegExpExecArray;
    expect(MIN_NODE_VERSION).toBe(`${major}.${minor}.${patch}`);
  });

  it.each(['22.18.0', '22.18.1', '22.19.0', '23.0.0', '24.21.0', '30.1.2'])(
    'accepts Node %s',
    (version) => {
      expect(unsupportedNode(version)).toBeNull();
    },
  );

  it.each(['22.17.9', '22.0.0', '20.20.2', '18.19.0', '21.99.99'])(
    'refuses Node %s, naming both versions and what to do',
    (version) => {
      const problem = unsupportedNode(version);
      expect(problem).toContain(`this is ${version}`);
      expect(problem).toContain(`${MIN_NODE_VERSION} or newer`);
      expect(problem).toContain('install Node 24');
    },
  );

  it('checks the running Node by default (this test runs on a supported one)', () => {
    expect(unsupportedNode()).toBeNull();
  });
});
