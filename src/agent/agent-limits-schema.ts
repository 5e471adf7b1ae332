import { z } from 'zod';

/**
 * The agent's limits as a server configuration or a task may give them (all optional; what is
 * missing comes from the server's limits, then DEFAULT_AGENT_LIMITS in agent-loop.ts).
 */
export const agentLimitsSchema = z.strictObject({
  maxTurns: z.number().int().min(1).max(1000).optional(),
  wallTimeMs: z
    .number()
    .int()
    .min(1000)
    .max(24 * 3600_000)
    .optional(),
  maxTokens: z.number().int().min(1000).max(1_000_000_000).optional(),
  loopRepeats: z.number().int().min(2).max(100).optional(),
});

export type AgentLimitsInput = z.infer<typeof agentLimitsSchema>;
