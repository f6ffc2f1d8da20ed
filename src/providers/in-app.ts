/**
 * The `in_app` provider: the stored notification is itself the inbox item, so delivering it means
 * marking it DELIVERED; frontends read it through ListNotifications / WatchNotifications.
 */
import type { Provider } from '../domain/ports.js';

export function createInAppProvider(): Provider {
  return {
    name: 'in_app',
    deliver: () => Promise.resolve({}),
  };
}
