/**
 * What one attempt used (issue 17): model tokens in and out, the sandbox's CPU time and peak
 * memory as the engine counted them, and the wall time from its start to its end. Recorded once,
 * when the attempt has finished; the usage route adds them up.
 */
export interface AttemptUsage {
  attemptId: string;
  taskId: string;
  environmentId: string;
  /** The submitting token's name (null for tasks older than that field). */
  createdBy: string | null;
  /** When the attempt finished (ISO-8601); its UTC day groups it. */
  finishedAt: string;
  /** The model's prompt tokens (input), 0 for a `--command` task. */
  inputTokens: number;
  /** The model's completion tokens (output). */
  outputTokens: number;
  /** CPU time of the sandbox's processes; null when the engine's figures could not be read. */
  cpuSeconds: number | null;
  /** The sandbox's peak memory; null when the engine does not report it (cgroup v2). */
  peakMemoryBytes: number | null;
  wallMs: number;
}

export const USAGE_GROUPINGS = ['environment', 'token', 'day'] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

/** One line of a usage report: the sums of the attempts that finished in the range. */
export interface UsageGroup {
  /** The environment id, the token name (`(unknown)` for older tasks) or the UTC day. */
  key: string;
  attempts: number;
  inputTokens: number;
  outputTokens: number;
  cpuSeconds: number;
  /** The largest peak of the group's attempts. */
  peakMemoryBytes: number;
  wallSeconds: number;
}
