/**
 * The labels every resource Berth makes carries. The reaper and `list` calls select by them, so a
 * resource without `berth.managed=true` and the instance label is never touched by Berth.
 */
export const BERTH_LABELS = {
  managed: 'berth.managed',
  instance: 'berth.instance',
  task: 'berth.task',
  attempt: 'berth.attempt',
  cache: 'berth.cache',
  kind: 'berth.kind',
} as const;

export type ResourceKind = 'sandbox' | 'cache' | 'snapshot' | 'network' | 'image';

/** The labels that mark a resource as Berth's, for one orchestrator instance. */
export function managedLabels(instance: string): Record<string, string> {
  return { [BERTH_LABELS.managed]: 'true', [BERTH_LABELS.instance]: instance };
}
