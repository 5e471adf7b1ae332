import type { paths } from '../../../src/client/api-schema.gen';

/** The API's shapes, named, from the generated types. */

type Json<R> = R extends { content: { 'application/json': infer B } } ? B : never;

export type Task = Json<paths['/v1/tasks/{id}']['get']['responses']['200']>;
export type Attempt = Task['attempts'][number];
/** A task as the list shows it: each attempt in short (no diffs or command output). */
export type TaskSummary = Json<paths['/v1/tasks']['get']['responses']['200']>['tasks'][number];
export type Environment = Json<paths['/v1/environments/{name}']['get']['responses']['200']>;
export type CacheEntry = Json<
  paths['/v1/environments/{name}/cache']['get']['responses']['200']
>['entries'][number];
export type Token = Json<paths['/v1/tokens']['get']['responses']['200']>['tokens'][number];
export type CreatedToken = Json<paths['/v1/tokens']['post']['responses']['201']>;
export type Session = Json<paths['/v1/session']['get']['responses']['200']>;
export type AttemptEvent = Json<
  paths['/v1/tasks/{id}/attempts/{attempt}/events']['get']['responses']['200']
>['events'][number];
export type PullRequestResult = Json<paths['/v1/tasks/{id}/pr']['post']['responses']['200']>;
