import type { AgentsMd, AgentsMdFile } from './agents-md.js';

/** What the environment offers, as the system prompt describes it. */
export interface AgentEnvironmentInfo {
  name?: string;
  /** Pinned language versions, for example `{ node: "22", python: "3.12" }`. */
  languages?: Record<string, string>;
  internet?: {
    access: 'off' | 'allowlist' | 'on';
    presets?: string[];
    domains?: string[];
    /** Allowed HTTP methods, when limited. */
    methods?: string[];
  };
}

/**
 * The system prompt: who the agent is and how it works, the tools' conventions, what the
 * environment offers (languages, internet policy, allowed domains), the repository's root
 * AGENTS.md and where nested ones are, and the instruction to run the lint and test commands
 * AGENTS.md names before finishing.
 */
export function systemPrompt(input: {
  workdir: string;
  environment?: AgentEnvironmentInfo;
  agentsMd: AgentsMd;
}): string {
  const { workdir, environment, agentsMd } = input;
  const parts: string[] = [
    `You are a coding agent working in a sandboxed container on a checked-out git repository at ${workdir}. ` +
      "Complete the user's task by reading the code, editing files and running commands, then answer with a short summary of what you changed and how you verified it.",
    [
      '# How to work',
      '- Run commands with the `shell` tool (an argv such as ["bash", "-lc", "npm test"]); the repository root is the default working directory.',
      '- Edit files with the `apply_patch` tool only; do not write files through shell redirections or editors unless generating them.',
      '- Keep a short plan with `update_plan` for tasks of more than a couple of steps.',
      "- Make focused changes that fit the code base's style; do not commit, the changes are collected as a diff after you finish.",
      '- When you are done, reply without calling a tool. That reply is the final message the user sees.',
    ].join('\n'),
    environmentSection(environment),
  ];
  const root = agentsMd.root;
  const nested = agentsMd.nestedDirs;
  const agents: string[] = ['# AGENTS.md'];
  if (root) {
    agents.push(
      "The repository's AGENTS.md (its conventions, lint and test commands) follows. Follow it.",
      '<AGENTS.md path="AGENTS.md">',
      root.text.trimEnd(),
      '</AGENTS.md>',
    );
  } else {
    agents.push('The repository has no AGENTS.md at its root.');
  }
  if (nested.length > 0) {
    agents.push(
      `More AGENTS.md files exist in: ${nested.join(', ')}. Each governs its directory and everything below; it is shown to you when you work there. Where they disagree, the AGENTS.md nearest to the file wins.`,
    );
  }
  agents.push(
    "Before you finish, run the lint and test commands that AGENTS.md names (or the project's usual ones if it names none) and fix what fails. Say in your final message which commands you ran and their result.",
  );
  parts.push(agents.join('\n'));
  return parts.join('\n\n');
}

function environmentSection(environment: AgentEnvironmentInfo | undefined): string {
  const lines = ['# Environment'];
  if (environment?.name) lines.push(`- Environment: ${environment.name}`);
  const languages = Object.entries(environment?.languages ?? {});
  lines.push(
    languages.length > 0
      ? `- Language versions: ${languages.map(([name, version]) => `${name} ${version}`).join(', ')}`
      : '- Language versions: what the image provides (check with the usual --version commands).',
  );
  const internet = environment?.internet ?? { access: 'off' as const };
  if (internet.access === 'off') {
    lines.push(
      '- Internet: off. No network access; dependencies must already be installed. Do not try to download anything.',
    );
  } else if (internet.access === 'on') {
    lines.push('- Internet: on, through a logging proxy (HTTP_PROXY/HTTPS_PROXY are set).');
  } else {
    const allowed = [
      ...(internet.presets ?? []).map((p) => `preset ${p}`),
      ...(internet.domains ?? []),
    ];
    lines.push(
      `- Internet: only through a proxy (HTTP_PROXY/HTTPS_PROXY are set) to these domains: ${allowed.length > 0 ? allowed.join(', ') : 'none'}. Other hosts are refused.`,
    );
  }
  if (internet.methods && internet.methods.length > 0)
    lines.push(`- Allowed HTTP methods: ${internet.methods.join(', ')}.`);
  return lines.join('\n');
}

/** The message that shows nested AGENTS.md files when the agent starts working in their directory. */
export function agentsMdMessage(files: AgentsMdFile[]): string {
  return files
    .map(
      (file) =>
        `The directory ${file.dir}/ has its own AGENTS.md; it applies to files there and below and wins over outer ones where they disagree:\n<AGENTS.md path="${file.dir}/AGENTS.md">\n${file.text.trimEnd()}\n</AGENTS.md>`,
    )
    .join('\n\n');
}
