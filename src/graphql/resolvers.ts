/**
 * The gateway's resolvers: each one a call to the api with the caller's credentials. Lists are
 * Relay connections over ListNotifications' keyset pages; subscriptions are WatchNotifications
 * streams, so they start with the current state and never miss or reorder a change.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  Channel as PbChannel,
  NotificationStatus as PbStatus,
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
  Notification,
  NotificationConnection,
  NotificationFilter,
  Resolvers,
} from './generated/resolvers.js';
import {
  callApi,
  channelToPb,
  graphqlErrorFrom,
  notificationFromPb,
  priorityToPb,
  statusToPb,
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
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    const iterator: AsyncIterableIterator<Notification> = {
      async next() {
        try {
          while (!abort.signal.aborted) {
            const read = await stream.next();
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
      pageSize: first ?? 0,
      pageToken: after ?? '',
    };
    const res = await callApi(() => ctx.herald.listNotifications(req, asCaller(ctx)));
    const edges = res.notifications.map((n) => {
      const node = notificationFromPb(n);
      return {
        node,
        cursor: encodePageToken('notifications', { at: new Date(node.createdAt), id: node.id }),
      };
    });
    return {
      edges,
      pageInfo: {
        hasNextPage: res.nextPageToken !== '',
        endCursor: edges.at(-1)?.cursor ?? null,
      },
    };
  }

  /**
   * The user a user token names. Read, not verified: the api verifies the token on every call
   * and refuses a watch of anyone else.
   */
  function userOfToken(ctx: GatewayContext): string {
    const token = /^Bearer\s+(\S+)$/i.exec(ctx.authorization ?? '')?.[1] ?? '';
    try {
      const claims = JSON.parse(
        Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
      ) as { sub?: unknown };
      if (typeof claims.sub === 'string' && claims.sub !== '') return claims.sub;
    } catch {
      // fall through
    }
    throw new GraphQLError('myNotifications needs a user token', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  }

  /** `me` needs a user token: an API key has no "me". */
  function requireUser(ctx: GatewayContext): void {
    if (ctx.authorization !== null && /^Bearer\s+hk_/i.test(ctx.authorization)) {
      throw new GraphQLError('me needs a user token, not an API key', {
        extensions: { code: 'FORBIDDEN' },
      });
    }
  }

  return {
    Query: {
      notification: async (_, { id }, ctx) => {
        try {
          const res = await ctx.herald.getNotification({ id }, asCaller(ctx));
          return res.notification ? notificationFromPb(res.notification, res.events) : null;
        } catch (err) {
          const mapped = graphqlErrorFrom(err);
          if (mapped instanceof GraphQLError && mapped.extensions.code === 'NOT_FOUND') return null;
          throw mapped;
        }
      },
      notifications: (_, args, ctx) => page(ctx, args.filter, args.first, args.after),
      me: (_, __, ctx) => {
        requireUser(ctx);
        return {} as never; // fields below resolve on their own
      },
    },
    Me: {
      notifications: (_, args, ctx) => page(ctx, args.filter, args.first, args.after),
      unreadCount: async (_, __, ctx) => {
        let count = 0;
        let pageToken = '';
        // Until the inbox adds read state: delivered in-app notifications, counted page by page.
        for (let pages = 0; pages < 20; pages++) {
          const res = await callApi(() =>
            ctx.herald.listNotifications(
              {
                channels: [PbChannel.IN_APP],
                statuses: [PbStatus.DELIVERED],
                pageSize: 500,
                pageToken,
              },
              asCaller(ctx),
            ),
          );
          count += res.notifications.length;
          pageToken = res.nextPageToken;
          if (pageToken === '') break;
        }
        return count;
      },
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
          ctx.herald.send(
            {
              userId: input.userId,
              channel: channelToPb(input.channel),
              content: {
                subject: input.content.subject ?? '',
                body: input.content.body ?? '',
                html: input.content.html ?? '',
                title: input.content.title ?? '',
                data: Object.fromEntries(
                  (input.content.data ?? []).map((kv) => [kv.key, kv.value]),
                ),
              },
              to: input.to ?? '',
              idempotencyKey: input.idempotencyKey ?? '',
              priority: input.priority ? priorityToPb(input.priority) : 0,
              category: input.category ?? '',
              sendAt: timestampArg(input.sendAt, 'send_at'),
              metadata: Object.fromEntries((input.metadata ?? []).map((kv) => [kv.key, kv.value])),
              correlationId: input.correlationId ?? '',
            },
            asCaller(ctx),
          ),
        );
        const got = await callApi(() => ctx.herald.getNotification({ id: res.id }, asCaller(ctx)));
        // An answer the api never gives: not the caller's fault, so masked (and logged).
        if (!got.notification) throw new Error(`notification ${res.id} vanished after Send`);
        return {
          notification: notificationFromPb(got.notification, got.events),
          replayed: res.replayed,
        };
      },
      cancelNotification: async (_, { id }, ctx) => {
        const res = await callApi(() => ctx.herald.cancelNotification({ id }, asCaller(ctx)));
        if (!res.notification)
          throw new Error('CancelNotification answered without a notification');
        return notificationFromPb(res.notification);
      },
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
          requireUser(ctx);
          // The feed of the token's user (the api checks the token and refuses any other user),
          // starting with the latest few so a reconnecting client sees the current state.
          return watch(ctx, {
            target: { case: 'userId', value: userOfToken(ctx) },
            initialCount: 20,
          });
        },
        resolve: (n: Notification) => n,
      },
    },
  };
}
