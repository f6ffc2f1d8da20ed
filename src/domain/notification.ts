/**
 * The notification model: channels, priorities, statuses and the transitions allowed between
 * them. The transition table lives here and nowhere else; storage makes every update conditional
 * on the statuses this module says may lead to the new one.
 */
/** Delivery channels, in the order of the contract's enum. */
export const CHANNELS = ['email', 'sms', 'push', 'in_app', 'webhook'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Priorities, lowest first. Each priority is also the name of its queue lane. */
export const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const;
export type Priority = (typeof PRIORITIES)[number];
export type Lane = Priority;
/** Lanes in the order a worker drains them: highest first. */
export const LANES_BY_URGENCY: readonly Lane[] = ['critical', 'high', 'normal', 'low'];

export const STATUSES = [
  'PENDING',
  'SCHEDULED',
  'PROCESSING',
  'RETRYING',
  'DELIVERED',
  'FAILED',
  'CANCELLED',
  'SUPPRESSED',
] as const;
export type Status = (typeof STATUSES)[number];

/**
 * Besides these, PROCESSING → PROCESSING: a claim may take over a PROCESSING row whose lease has
 * run out (its worker was lost), as the next attempt. Storage writes that case out with the lease
 * condition, so it is not listed here (statusesLeadingTo('PROCESSING') must not include it).
 */
const TRANSITIONS: Record<Status, readonly Status[]> = {
  PENDING: ['PROCESSING', 'SCHEDULED', 'CANCELLED', 'SUPPRESSED'],
  SCHEDULED: ['PENDING', 'CANCELLED', 'SUPPRESSED'],
  PROCESSING: ['DELIVERED', 'RETRYING', 'FAILED'],
  RETRYING: ['PROCESSING', 'FAILED', 'CANCELLED'],
  DELIVERED: [],
  // A replay from the dead letters starts the notification over under a new generation.
  FAILED: ['PENDING'],
  CANCELLED: [],
  SUPPRESSED: [],
};

/** Where delivery ends. FAILED is terminal too: only an explicit replay moves it on. */
const TERMINAL: readonly Status[] = ['DELIVERED', 'FAILED', 'CANCELLED', 'SUPPRESSED'];

/** The statuses from which `to` may be entered; storage makes its updates conditional on them. */
export function statusesLeadingTo(to: Status): Status[] {
  return STATUSES.filter((from) => TRANSITIONS[from].includes(to));
}

/** True for the statuses a notification never leaves. */
export function isTerminal(status: Status): boolean {
  return TERMINAL.includes(status);
}

/** The message itself; which parts are required depends on the channel. */
export interface Content {
  subject?: string;
  body?: string;
  html?: string;
  title?: string;
  data?: Record<string, string>;
}

/** One stored notification. */
export interface Notification {
  id: string;
  tenantId: string;
  userId: string;
  channel: Channel;
  priority: Priority;
  category: string | null;
  content: Content;
  to: string | null;
  idempotencyKey: string | null;
  correlationId: string | null;
  metadata: Record<string, string>;
  status: Status;
  /** Delivery attempts started so far; the fencing token for every worker write. */
  attempt: number;
  /**
   * Attempts that do not count against the retry budget: those before the last replay, and those
   * that reached no provider (every circuit open). The budget is `attempt - attemptFloor`.
   */
  attemptFloor: number;
  /** Increases by one with every status change. */
  version: number;
  /** Bumped when the notification is re-published under a new message id (replay, reconcile). */
  generation: number;
  sendAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
  nextAttemptAt: Date | null;
  leaseUntil: Date | null;
  publishedAt: Date | null;
  provider: string | null;
  providerMessageId: string | null;
  lastError: string | null;
  /** When it entered the dead letters (FAILED); null once replayed or purged. */
  deadLetteredAt: Date | null;
  /** The template version the content was rendered from, when sent by template. */
  template: PinnedTemplate | null;
  /** Why it is SUPPRESSED, or why its delivery was deferred (SCHEDULED by quiet hours). */
  statusReason: string | null;
  /** In-app inbox state (in_app notifications): when the user saw, read or archived it. */
  seenAt: Date | null;
  readAt: Date | null;
  archivedAt: Date | null;
}

/** The exact template version (and locale variant) a notification was rendered from. */
export interface PinnedTemplate {
  id: string;
  version: number;
  locale: string;
}

/** One entry of a notification's status history. */
export interface NotificationEvent {
  notificationId: string;
  version: number;
  status: Status;
  attempt: number;
  provider: string | null;
  error: string | null;
  /** The notification's generation when it changed (a replay starts a new one). */
  generation: number;
  time: Date;
  /**
   * Set for a change of in-app inbox state (the status stays DELIVERED through those); absent or
   * null for a status change.
   */
  inboxChange?: InboxChange | null;
}

/** Changes of an in-app notification's inbox state, in the order of the contract's enum. */
export const INBOX_CHANGES = ['SEEN', 'READ', 'UNREAD', 'ARCHIVED', 'UNARCHIVED'] as const;
export type InboxChange = (typeof INBOX_CHANGES)[number];

export type InboxState = Pick<Notification, 'seenAt' | 'readAt' | 'archivedAt'>;

/**
 * The inbox state after `change` made at `at`. Storage makes the same change (and only when it
 * changes something), so replaying a notification's inbox events from the start rebuilds its
 * state at any version.
 */
export function applyInboxChange(state: InboxState, change: InboxChange, at: Date): InboxState {
  switch (change) {
    case 'SEEN':
      return { ...state, seenAt: state.seenAt ?? at };
    case 'READ':
      return { ...state, readAt: at, seenAt: state.seenAt ?? at };
    case 'UNREAD':
      return { ...state, readAt: null };
    case 'ARCHIVED':
      return { ...state, archivedAt: at };
    case 'UNARCHIVED':
      return { ...state, archivedAt: null };
  }
}
