/**
 * Command-line parsing for `herald`: a mistake in the arguments is a UsageError — one line, exit
 * code 2 — never Node's stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Arguments `herald` cannot run with; `herald` prints the message and exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * `parseArgs` with positionals allowed, at most `maxPositionals` of them; Node's own errors (an
 * unknown option, a missing value) become UsageErrors with Node's message.
 */
export function parseCommandLine<O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
  maxPositionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    const { code, message } = err as { code?: string; message: string };
    // Node's text for an unknown option goes on about positionals starting with '-'.
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (unknown) throw new UsageError(`unknown option '${unknown[1]}'`);
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError(message);
    throw err;
  }
  const extra = parsed.positionals.slice(maxPositionals);
  if (extra.length > 0) {
    throw new UsageError(`unexpected argument(s): ${extra.map((a) => `'${a}'`).join(' ')}`);
  }
  return parsed;
}
