/**
 * The `log` provider: "delivers" by writing the rendered message as one JSON line to its own
 * output (stdout unless a file is configured). This output is the delivery itself, so unlike the
 * application log it contains the recipient and the content. Used in development and tests.
 */
import { appendFileSync, writeSync } from 'node:fs';
import type { Notification } from '../domain/notification.js';
import type { Provider } from '../domain/ports.js';

export function createLogProvider(options: { file?: string } = {}): Provider {
  const write = options.file
    ? (line: string) => appendFileSync(options.file as string, line)
    : (line: string) => {
        writeSync(1, line);
      };
  return {
    name: 'log',
    deliver(n: Notification) {
      // One synchronous write per delivery: a line is either fully written or not at all, which
      // lets a crash test count deliveries exactly.
      write(
        `${JSON.stringify({
          provider: 'log',
          notificationId: n.id,
          attempt: n.attempt,
          channel: n.channel,
          pid: process.pid,
          userId: n.userId,
          to: n.to,
          content: n.content,
          deliveredAt: new Date().toISOString(),
        })}\n`,
      );
      return Promise.resolve({ providerMessageId: `log-${n.id}` });
    },
  };
}
