/**
 * The `in_app` provider: the stored notification is itself the inbox item, so delivering it means
 * marking it DELIVERED (inline: the worker does so as it claims it, PENDING -> DELIVERED in one
 * statement); frontends read it through ListNotifications / WatchNotifications.
 */
import type { Provider } from '../domain/ports.js';

export function createInAppProvider(): Provider {
  return {
    name: 'in_app',
    inline: true,
    deliver: () => Promise.resolve({}),
  };
}
