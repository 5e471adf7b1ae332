import { z } from 'zod';
import type { ToolCall, ToolDefinition } from '../../ports/model-client.js';
import type { AgentTool, ToolContext, ToolOutcome } from './agent-tool.js';
import { applyPatchTool } from './apply-patch-tool.js';
import { shellTool } from './shell-tool.js';
import { updatePlanTool } from './update-plan-tool.js';

/**
 * The agent's tools and their dispatch. A call the agent cannot run (unknown tool, arguments
 * that are not JSON or do not fit the tool's schema) never throws: the model gets a tool result
 * telling it what was wrong, so it can correct itself.
 */
export class ToolBox {
  private readonly tools = new Map<string, AgentTool>();

  constructor(tools: AgentTool[] = [shellTool, applyPatchTool, updatePlanTool] as AgentTool[]) {
    for (const tool of tools) this.tools.set(tool.name, tool);
  }

  get names(): string[] {
    return [...this.tools.keys()];
  }

  /** The tools as the model API describes them (JSON Schema from the zod schemas). */
  definitions(): ToolDefinition[] {
    return [...this.tools.values()].map((tool) => {
      const parameters: Record<string, unknown> = {
        ...z.toJSONSchema(tool.schema, { io: 'input' }),
      };
      delete parameters.$schema;
      return { name: tool.name, description: tool.description, parameters };
    });
  }

  async run(call: ToolCall, context: ToolContext): Promise<ToolOutcome> {
    const tool = this.tools.get(call.name);
    if (!tool) {
      return {
        ok: false,
        output: `Unknown tool ${JSON.stringify(call.name)}. The tools are: ${this.names.join(', ')}.`,
      };
    }
    let raw: unknown;
    try {
      raw = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
    } catch (error) {
      return {
        ok: false,
        output: `The arguments of ${tool.name} are not valid JSON (${error instanceof Error ? error.message : String(error)}). Send one JSON object matching the tool's parameters.`,
      };
    }
    const parsed = tool.schema.safeParse(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (issue) =>
          `${issue.path.length > 0 ? issue.path.join('.') : '(arguments)'}: ${issue.message}`,
      );
      return {
        ok: false,
        output: `Invalid arguments for ${tool.name}: ${problems.join('; ')}. Nothing was run.`,
      };
    }
    return tool.run(parsed.data, context);
  }
}
