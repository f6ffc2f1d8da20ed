/**
 * Jobs on the work-queue streams: one message per delivery attempt chain, identified by
 * `<notification id>:<generation>` so a re-publish of the same generation (outbox retry after a
 * lost ack) is dropped by JetStream, while a replay (new generation) is a new job.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { UnavailableError } from '../../domain/errors.js';
import type { Channel, Lane } from '../../domain/notification.js';
import type { Job, JobQueue } from '../../domain/ports.js';
import { consumerName, jobSubject, streamName } from './layout.js';
import type { NatsLayout } from './layout.js';

/** What goes on the wire; channel and lane are the subject. */
interface JobPayload {
  id: string;
  tenantId: string;
  generation: number;
}

export interface JobPublisher extends JobQueue {
  /**
   * Publishes the job and waits for JetStream's ack. Resolves also when the stream dropped it as
   * a duplicate of the same id and generation. Rejects with {@link UnavailableError} when the
   * ack does not come in time (or no stream listens on the subject).
   */
  publish(job: Job): Promise<void>;
}

/** The JetStream message id of a job: `<id>:<generation>`. */
export function jobMsgId(job: Pick<Job, 'id' | 'generation'>): string {
  return `${job.id}:${job.generation}`;
}

/** Publishes jobs to `jobSubject(layout, channel, lane)`; `timeoutMs` (default 2000) per ack. */
export function createJobPublisher(
  js: JetStreamClient,
  layout: NatsLayout,
  opts: { timeoutMs?: number } = {},
): JobPublisher {
  const timeout = opts.timeoutMs ?? 2000;
  return {
    async publish(job) {
      const subject = jobSubject(layout, job.channel, job.lane);
      const stream = streamName(layout, job.channel);
      const payload: JobPayload = {
        id: job.id,
        tenantId: job.tenantId,
        generation: job.generation,
      };
      try {
        await js.publish(subject, JSON.stringify(payload), {
          msgID: jobMsgId(job),
          expect: { streamName: stream },
          timeout,
        });
      } catch (err) {
        // The server answered and refused: a configuration problem, not an outage.
        if (err instanceof JetStreamApiError) throw err;
        throw new UnavailableError(`NATS JetStream stream ${stream}`, { cause: err });
      }
    },
  };
}

/**
 * Reads a job message delivered by the consumer of (`channel`, `lane`). Throws an Error naming
 * the subject for a payload that is not a job: such a message can never succeed (poison), so
 * the caller should `term()` it.
 */
export function decodeJob(msg: Pick<JsMsg, 'data' | 'subject'>, channel: Channel, lane: Lane): Job {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(msg.data));
  } catch (cause) {
    throw new Error(`malformed job on ${msg.subject}: not JSON`, { cause });
  }
  const problem = payloadProblem(value);
  if (problem !== undefined) throw new Error(`malformed job on ${msg.subject}: ${problem}`);
  const p = value as JobPayload;
  return { id: p.id, tenantId: p.tenantId, channel, lane, generation: p.generation };
}

function payloadProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'not a JSON object';
  }
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' || v.id === '') return 'id must be a non-empty string';
  if (typeof v.tenantId !== 'string' || v.tenantId === '') {
    return 'tenantId must be a non-empty string';
  }
  if (typeof v.generation !== 'number' || !Number.isSafeInteger(v.generation) || v.generation < 0) {
    return 'generation must be a non-negative integer';
  }
  return undefined;
}

/** The durable pull consumer of one lane (created by `ensureStreams`). */
export function getJobConsumer(
  js: JetStreamClient,
  layout: NatsLayout,
  channel: Channel,
  lane: Lane,
): Promise<Consumer> {
  return js.consumers.get(streamName(layout, channel), consumerName(channel, lane));
}
