/**
 * The gateway's resolvers: each one a call to the api with the caller's credentials. Lists are
 * Relay connections over ListNotifications' keyset pages; subscriptions are WatchNotifications
 * streams, so they start with the current state and never miss or reorder a change.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  InboxChange as PbInboxChange,
  InboxFilter as PbInboxFilter,
  MarkOutcome as PbMarkOutcome,
  type WatchNotificationsResponse,
} from '@herald/client';
import type {
  ListNotificationsRequestSchema,
  WatchNotificationsRequestSchema,
} from '@herald/client/gen/herald/v1/notification_pb';
import { GraphQLError } from 'graphql';
import { encodePageToken } from '../domain/page-token.js';
import { asCaller, type GatewayContext } from './context.js';
import type {
  InboxFilter,
  MarkOutcome,
  Notification,
  NotificationConnection,
  NotificationFilter,
  Resolvers,
  SendNotificationResult,
} from './generated/resolvers.js';
import {
  badInputResult,
  callApi,
  callApiOrNull,
  channelToPb,
  connectionOf,
  firstArg,
  graphqlErrorFrom,
  notificationFromPb,
  preferencesFromPb,
  preferencesInputToPb,
  recipientFromPb,
  recipientInputToPb,
  recordOf,
  sendRequestFromInput,
  sendResultFromPb,
  statsFromPb,
  statusToPb,
  templateFromPb,
  templatePreviewFromPb,
  timestampArg,
} from './mapping.js';

export interface ResolverOptions {
  /** Subscriptions one credential may hold open at once. */
  maxSubscriptionsPerCaller: number;
  /**
   * Aborted when the gateway closes: every subscription then ends as a client leaving would (its
   * api stream cancelled, nothing reported as an error).
   */
  closing?: AbortSignal;
}

type ListInit = MessageInitShape<typeof ListNotificationsRequestSchema>;
type WatchInit = MessageInitShape<typeof WatchNotificationsRequestSchema>;

export function createResolvers(options: ResolverOptions): Resolvers<GatewayContext> {
  const open = new Map<string, number>();

  /** Counts a subscription against the caller's cap for as long as it runs. */
  function hold(ctx: GatewayContext): () => void {
    const key = ctx.authorization ?? '';
    const n = open.get(key) ?? 0;
    if (n >= options.maxSubscriptionsPerCaller) {
      throw new GraphQLError(
        `at most ${options.maxSubscriptionsPerCaller} subscriptions at once per caller`,
        { extensions: { code: 'RATE_LIMITED' } },
      );
    }
    open.set(key, n + 1);
    return () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left === 0) open.delete(key);
      else open.set(key, left);
    };
  }

  /**
   * A Watch stream as a subscription. It takes one of the caller's places at once, so a refusal is
   * an error of the subscribe call rather than of its stream, and gives it back (cancelling the api
   * stream) as soon as the client leaves: also while a read is pending, when an async generator's
   * return() would wait for the next change, which may never come.
   */
  function watch(ctx: GatewayContext, req: WatchInit): AsyncIterableIterator<Notification> {
    if (options.closing?.aborted) {
      throw new GraphQLError('the gateway is shutting down', {
        extensions: { code: 'UNAVAILABLE' },
      });
    }
    const release = hold(ctx);
    const abort = new AbortController();
    const end = () => {
      if (abort.signal.aborted) return;
      abort.abort();
      release();
      options.closing?.removeEventListener('abort', end);
    };
    options.closing?.addEventListener('abort', end, { once: true });
    let stream: AsyncIterator<WatchNotificationsResponse>;
    try {
      stream = ctx.herald
        .watchNotifications(req, { ...asCaller(ctx, abort.signal), timeoutMs: 0 })
        [Symbol.asyncIterator]();
    } catch (err) {
      end();
      throw graphqlErrorFrom(err);
    }
    // The call is under way already, and only a read awaits its outcome: the first read starts
    // now, so a watch ended before anyone read it (myUnreadCount reads a count first) cannot leave
    // the call's rejection unhandled, which would end the process.
    let ahead: Promise<IteratorResult<WatchNotificationsResponse>> | null = stream.next();
    ahead.catch(() => undefined);
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    const iterator: AsyncIterableIterator<Notification> = {
      async next() {
        try {
          while (!abort.signal.aborted) {
            const reading = ahead ?? stream.next();
            ahead = null;
            const read = await reading;
            if (read.done) break;
            if (read.value.notification) {
              return { done: false, value: notificationFromPb(read.value.notification) };
            }
          }
          end();
          return done;
        } catch (err) {
          if (abort.signal.aborted) return done;
          end();
          throw graphqlErrorFrom(err);
        }
      },
      return: () => {
        end();
        return Promise.resolve(done);
      },
      throw: (err: unknown) => {
        end();
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async function page(
    ctx: GatewayContext,
    filter: NotificationFilter | null | undefined,
    first: number | null | undefined,
    after: string | null | undefined,
  ): Promise<NotificationConnection> {
    const req: ListInit = {
      userId: filter?.userId ?? '',
      statuses: (filter?.statuses ?? []).map(statusToPb),
      channels: (filter?.channels ?? []).map(channelToPb),
      createdAfter: timestampArg(filter?.createdAfter, 'created_after'),
      createdBefore: timestampArg(filter?.createdBefore, 'created_before'),
      pageSize: firstArg(first),
      pageToken: after ?? '',
    };
    const res = await callApi(() => ctx.herald.listNotifications(req, asCaller(ctx)));
    return connectionOf(
      res.notifications,
      res.nextPageToken,
      (n) => notificationFromPb(n),
      (_, n) => encodePageToken('notifications', { at: new Date(n.createdAt), id: n.id }),
    );
  }

  /** A Relay connection over one ListInbox page (of the token's user). */
  async function inboxPage(
    ctx: GatewayContext,
    filter: InboxFilter | null | undefined,
    first: number | null | undefined,
    after: string | null | undefined,
  ): Promise<NotificationConnection> {
    const res = await callApi(() =>
      ctx.herald.inbox.listInbox(
        {
          filter: filter ? PbInboxFilter[filter] : PbInboxFilter.UNSPECIFIED,
          pageSize: firstArg(first),
          pageToken: after ?? '',
        },
        asCaller(ctx),
      ),
    );
    return connectionOf(
      res.notifications,
      res.nextPageToken,
      (n) => notificationFromPb(n),
      (_, n) => {
        // The api pages the inbox by delivery, and every inbox item was delivered.
        if (!n.deliveredAt) throw new Error(`inbox item ${n.id} has no deliveredAt`);
        return encodePageToken('inbox', { at: new Date(n.deliveredAt), id: n.id });
      },
    );
  }

  async function unreadCount(ctx: GatewayContext): Promise<number> {
    const res = await callApi(() => ctx.herald.inbox.getUnreadCount({}, asCaller(ctx)));
    return Number(res.unreadCount);
  }

  /**
   * The unread count, then its new value after each change `changes` reports (repeats left
   * out). The first value is read at once, maybe before the api's stream is live, so `changes`
   * must start with the current state of the user's latest notification when there is one
   * (initialCount 1): the api reads that only once its live subscription is in place, and the
   * count is read again after it, so a delivery in between is not missed. A user the api finds
   * no notification of then had no delivery before the stream went live either, so the first
   * value stands until a change comes. Leaving ends `changes` at once, as watch() does.
   */
  function unreadCounts(
    ctx: GatewayContext,
    changes: AsyncIterableIterator<Notification>,
  ): AsyncIterableIterator<number> {
    let last: number | null = null;
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    const iterator: AsyncIterableIterator<number> = {
      async next() {
        try {
          if (last === null) {
            last = await unreadCount(ctx);
            return { done: false, value: last };
          }
          for (;;) {
            if ((await changes.next()).done) return done;
            const n = await unreadCount(ctx);
            if (n !== last) {
              last = n;
              return { done: false, value: n };
            }
          }
        } catch (err) {
          await changes.return?.();
          throw err;
        }
      },
      return: async () => {
        await changes.return?.();
        return done;
      },
      throw: async (err: unknown) => {
        await changes.return?.();
        throw err instanceof Error ? err : new Error(String(err));
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** `me` needs a user token: an API key has no "me". */
  function requireUser(ctx: GatewayContext, what = 'me'): void {
    if (ctx.authorization !== null && /^Bearer\s+hk_/i.test(ctx.authorization)) {
      throw new GraphQLError(`${what} needs a user token, not an API key`, {
        extensions: { code: 'FORBIDDEN' },
      });
    }
  }

  return {
    Query: {
      notification: async (_, { id }, ctx) => {
        const res = await callApiOrNull(() => ctx.herald.getNotification({ id }, asCaller(ctx)));
        return res?.notification ? notificationFromPb(res.notification, res.events) : null;
      },
      notifications: (_, args, ctx) => page(ctx, args.filter, args.first, args.after),
      stats: async (_, args, ctx) =>
        statsFromPb(
          await callApi(() =>
            ctx.herald.getStats(
              {
                createdAfter: timestampArg(args.createdAfter, 'created_after'),
                createdBefore: timestampArg(args.createdBefore, 'created_before'),
                channels: (args.channels ?? []).map(channelToPb),
              },
              asCaller(ctx),
            ),
          ),
        ),
      me: (_, __, ctx) => {
        requireUser(ctx);
        return {} as never; // fields below resolve on their own
      },
      template: async (_, { id, version }, ctx) => {
        const res = await callApiOrNull(() =>
          ctx.herald.templates.getTemplate({ id, version: version ?? 0 }, asCaller(ctx)),
        );
        return res?.template ? templateFromPb(res.template) : null;
      },
      templates: async (_, { first, after, includeArchived }, ctx) => {
        const res = await callApi(() =>
          ctx.herald.templates.listTemplates(
            {
              pageSize: firstArg(first),
              pageToken: after ?? '',
              includeArchived: includeArchived ?? false,
            },
            asCaller(ctx),
          ),
        );
        return connectionOf(res.templates, res.nextPageToken, templateFromPb, (t) =>
          encodePageToken('templates', { id: t.id }),
        );
      },
      previewTemplate: async (_, { id, version, locale, variables, channel }, ctx) =>
        templatePreviewFromPb(
          await callApi(() =>
            ctx.herald.templates.previewTemplate(
              {
                id,
                version: version ?? 0,
                locale: locale ?? '',
                variables: recordOf(variables),
                channel: channel ? channelToPb(channel) : undefined,
              },
              asCaller(ctx),
            ),
          ),
        ),
      recipient: async (_, { userId }, ctx) => {
        const res = await callApiOrNull(() =>
          ctx.herald.recipients.getRecipient({ userId }, asCaller(ctx)),
        );
        return res?.recipient ? recipientFromPb(res.recipient) : null;
      },
    },
    Me: {
      notifications: (_, args, ctx) => page(ctx, args.filter, args.first, args.after),
      // An empty user_id is the token's user: the api confines a user token to it.
      preferences: async (_, __, ctx) =>
        preferencesFromPb(
          await callApi(() => ctx.herald.preferences.getPreferences({}, asCaller(ctx))),
        ),
      inbox: (_, args, ctx) => inboxPage(ctx, args.filter, args.first, args.after),
      unreadCount: (_, __, ctx) => unreadCount(ctx),
    },
    Notification: {
      events: async (parent, _, ctx) => {
        const loaded = parent as typeof parent & { eventsLoaded?: boolean };
        if (loaded.eventsLoaded) return parent.events;
        const res = await callApi(() =>
          ctx.herald.getNotification({ id: parent.id }, asCaller(ctx)),
        );
        return res.notification ? notificationFromPb(res.notification, res.events).events : [];
      },
    },
    Mutation: {
      sendNotification: async (_, { input }, ctx) => {
        const res = await callApi(() =>
          ctx.herald.send(sendRequestFromInput(input), asCaller(ctx)),
        );
        const got = await callApi(() => ctx.herald.getNotification({ id: res.id }, asCaller(ctx)));
        // An answer the api never gives: not the caller's fault, so masked (and logged).
        if (!got.notification) throw new Error(`notification ${res.id} vanished after Send`);
        return {
          notification: notificationFromPb(got.notification, got.events),
          replayed: res.replayed,
        };
      },
      sendNotifications: async (_, { inputs }, ctx) => {
        // An input the gateway cannot map (an unparseable sendAt) fails on its own. The api gets
        // an empty item in its place, which it refuses without storing anything or using quota,
        // so the other inputs keep their indexes (the api names their fields items[i].…), the
        // counts stay right and the api still judges the batch's size.
        const own = new Map<number, SendNotificationResult>();
        const items = inputs.map((input, i) => {
          try {
            return sendRequestFromInput(input, `items[${i}].`);
          } catch (err) {
            own.set(i, badInputResult(err));
            return {};
          }
        });
        const res = await callApi(() => ctx.herald.sendBatch({ items }, asCaller(ctx)));
        return {
          results: res.results.map((r, i) => own.get(i) ?? sendResultFromPb(r)),
          acceptedCount: res.acceptedCount,
          failedCount: res.failedCount,
        };
      },
      deliverNow: async (_, { id }, ctx) => {
        const res = await callApi(() => ctx.herald.deliverNow({ id }, asCaller(ctx)));
        if (!res.notification) throw new Error('DeliverNow answered without a notification');
        return notificationFromPb(res.notification);
      },
      updateMyPreferences: async (_, { input }, ctx) => {
        requireUser(ctx);
        const res = await callApi(() =>
          ctx.herald.preferences.updatePreferences(
            { preferences: preferencesInputToPb(input) },
            asCaller(ctx),
          ),
        );
        return preferencesFromPb(res);
      },
      cancelNotification: async (_, { id }, ctx) => {
        const res = await callApi(() => ctx.herald.cancelNotification({ id }, asCaller(ctx)));
        if (!res.notification)
          throw new Error('CancelNotification answered without a notification');
        return notificationFromPb(res.notification);
      },
      markNotifications: async (_, { ids, action }, ctx) => {
        requireUser(ctx, 'markNotifications');
        const res = await callApi(() =>
          ctx.herald.inbox.markInbox({ ids, action: PbInboxChange[action] }, asCaller(ctx)),
        );
        return {
          results: res.results.map((r) => ({
            id: r.id,
            outcome: PbMarkOutcome[r.outcome] as MarkOutcome,
            notification: r.notification ? notificationFromPb(r.notification) : null,
          })),
          unreadCount: Number(res.unreadCount),
        };
      },
      markAllRead: async (_, __, ctx) => {
        requireUser(ctx, 'markAllRead');
        const res = await callApi(() => ctx.herald.inbox.markAllRead({}, asCaller(ctx)));
        return { marked: Number(res.marked), unreadCount: Number(res.unreadCount) };
      },
      upsertRecipient: async (_, { input }, ctx) => {
        const res = await callApi(() =>
          ctx.herald.recipients.upsertRecipient(
            { recipient: recipientInputToPb(input) },
            asCaller(ctx),
          ),
        );
        if (!res.recipient) throw new Error('UpsertRecipient answered without a recipient');
        return recipientFromPb(res.recipient);
      },
      deleteRecipient: async (_, { userId }, ctx) =>
        (await callApi(() => ctx.herald.recipients.deleteRecipient({ userId }, asCaller(ctx))))
          .deleted,
      registerPushToken: async (_, { userId, token }, ctx) => {
        const res = await callApi(() =>
          ctx.herald.recipients.registerPushToken({ userId, token }, asCaller(ctx)),
        );
        if (!res.recipient) throw new Error('RegisterPushToken answered without a recipient');
        return recipientFromPb(res.recipient);
      },
      removePushToken: async (_, { userId, token }, ctx) =>
        (
          await callApi(() =>
            ctx.herald.recipients.removePushToken({ userId, token }, asCaller(ctx)),
          )
        ).removed,
    },
    Subscription: {
      notificationUpdated: {
        subscribe: (_, { id, afterVersion }, ctx) =>
          watch(ctx, {
            target: { case: 'notificationId', value: id },
            // Without it the stream starts with the current state.
            afterVersion:
              afterVersion === null || afterVersion === undefined
                ? undefined
                : BigInt(afterVersion),
          }),
        resolve: (n: Notification) => n,
      },
      myNotifications: {
        subscribe: (_, __, ctx) => {
          requireUser(ctx, 'myNotifications');
          // The feed of the token's user (an empty user_id: the api fills in the user of the token
          // it verified), starting with the latest few so a reconnecting client sees the current
          // state.
          return watch(ctx, {
            target: { case: 'userId', value: '' },
            initialCount: 20,
          });
        },
        resolve: (n: Notification) => n,
      },
      myUnreadCount: {
        subscribe: (_, __, ctx) => {
          requireUser(ctx, 'myUnreadCount');
          // Every change of the user's notifications may move the count; the latest one's state
          // comes first (see unreadCounts).
          const changes = watch(ctx, {
            target: { case: 'userId', value: '' },
            initialCount: 1,
          });
          return unreadCounts(ctx, changes);
        },
        resolve: (n: number) => n,
      },
    },
  };
}
