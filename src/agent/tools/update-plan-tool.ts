import { z } from 'zod';
import type { AgentTool } from './agent-tool.js';

const updatePlanArgs = z.strictObject({
  plan: z
    .array(
      z.strictObject({
        step: z.string().min(1).max(500),
        status: z.enum(['pending', 'in_progress', 'completed']),
      }),
    )
    .min(1)
    .max(50)
    .describe('The whole plan, in order; at most one step in_progress.'),
  explanation: z.string().max(2000).optional().describe('Why the plan changed, in a sentence.'),
});

export type UpdatePlanArgs = z.infer<typeof updatePlanArgs>;

/** `update_plan`: the agent's short plan, shown in the attempt's log. */
export const updatePlanTool: AgentTool<UpdatePlanArgs> = {
  name: 'update_plan',
  description:
    'Record your plan for the task (a few short steps with their status) so the user can follow along. Send the whole plan each time.',
  schema: updatePlanArgs,
  run(args, context) {
    const plan = args.plan.map((p) => ({ step: context.mask(p.step), status: p.status }));
    context.emit({
      type: 'plan',
      plan,
      ...(args.explanation !== undefined ? { explanation: context.mask(args.explanation) } : {}),
    });
    const active = args.plan.filter((p) => p.status === 'in_progress').length;
    const note = active > 1 ? ' Note: keep at most one step in_progress.' : '';
    return Promise.resolve({
      output: `Plan updated (${args.plan.length} steps).${note}`,
      ok: true,
    });
  },
};
