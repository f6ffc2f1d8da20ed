import type { Notification, NotificationEvent } from './notification.js';

/**
 * What is broadcast on every status change: the notification as of the change, and the change.
 * Watchers order and de-duplicate by `notification.version` (equal to `event.version`).
 */
export interface StatusEvent {
  notification: Notification;
  event: NotificationEvent;
}
