import type { AgentEventBody } from './agent-event.js';

const MAX_LINE = 200;

/**
 * One line (or block) of progress for an agent event, in the style of the lifecycle's
 * formatProgress: the model's words, each tool call, its result's first line, the plan, tokens.
 */
export function formatAgentEvent(event: AgentEventBody, prefix: string): string {
  switch (event.type) {
    case 'agent_turn':
      return event.content !== null && event.content.trim() !== ''
        ? `${prefix}agent: ${indent(event.content.trim(), prefix)}\n`
        : '';
    case 'tool_call':
      return `${prefix}> ${event.tool} ${oneLine(event.arguments)}\n`;
    case 'tool_result': {
      const first = event.output.split('\n')[0] ?? '';
      return `${prefix}< ${event.tool}${event.ok ? '' : ' (failed)'}: ${oneLine(first)}\n`;
    }
    case 'plan':
      return `${prefix}plan:${event.explanation !== undefined ? ` ${oneLine(event.explanation)}` : ''}\n${event.plan
        .map(
          (p) =>
            `${prefix}  [${p.status === 'completed' ? 'x' : p.status === 'in_progress' ? '~' : ' '}] ${oneLine(p.step)}\n`,
        )
        .join('')}`;
    case 'usage': {
      const total = event.promptTokens + event.completionTokens;
      const attempt = event.totalPromptTokens + event.totalCompletionTokens;
      return `${prefix}tokens: prompt ${event.promptTokens}, completion ${event.completionTokens}, total ${total} (attempt total ${attempt})${event.estimated === true ? ' (estimated)' : ''}\n`;
    }
    case 'agent_end':
      return `${prefix}agent ended (${event.reason}) after ${event.turns} turns\n`;
  }
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
}

function indent(text: string, prefix: string): string {
  return text.replace(/\n/g, `\n${prefix}  `);
}
