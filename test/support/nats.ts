/** Shared helpers for tests that talk to NATS. */
import { randomBytes } from 'node:crypto';
import type { NatsLayout } from '../../src/infra/nats/layout.js';

/** The shared nats-server (2.9, JetStream) the integration tests use; `NATS_URL` overrides. */
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** A layout no other test uses, so each test's subjects and streams are its own. */
export function randomLayout(): NatsLayout {
  const id = randomBytes(5).toString('hex');
  return { subjectPrefix: `t${id}`, streamPrefix: `T${id.toUpperCase()}` };
}
