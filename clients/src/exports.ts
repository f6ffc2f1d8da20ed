/** What both entry points (Node and browsers) export besides their createHeraldClient. */
export * from '../gen/herald/v1/notification_pb.js';
export * from '../gen/herald/v1/dead_letter_pb.js';
export * from '../gen/herald/v1/admin_pb.js';
export * from '../gen/herald/v1/recipient_pb.js';
export * from '../gen/herald/v1/template_pb.js';
export * from '../gen/herald/v1/preference_pb.js';
export * from '../gen/herald/v1/inbox_pb.js';
export { createHeraldInterceptor } from './options.js';
export type { HeraldClient, HeraldClientOptions, HeraldProtocol } from './options.js';
