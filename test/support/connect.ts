/** Helpers for asserting on the errors of Connect calls. */
import { ConnectError } from '@connectrpc/connect';
import { BadRequestSchema } from '@herald/client/gen/google/rpc/error_details_pb';

/** Awaits a call that must fail and returns its error as a ConnectError; throws if it succeeds. */
export async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected the call to fail');
}

/** The fields the error's google.rpc.BadRequest details name, in order. */
export function violatedFields(err: ConnectError): string[] {
  return err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
}
