/** One command an attempt ran in its sandbox, as the results show it. */
export interface CommandRecord {
  command: string;
  exitCode: number;
  /** stdout and stderr interleaved, secret values masked, bounded (head and tail). */
  output: string;
  /** The phase it ran in (`agent` for the agent's own commands). */
  phase: string;
  durationMs: number;
  timedOut: boolean;
  /** Killed by the sandbox's memory limit (`resources.memoryMb`), where the runtime can tell. */
  outOfMemory?: boolean;
}
