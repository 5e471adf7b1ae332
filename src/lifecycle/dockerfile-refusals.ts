/**
 * What a repository's Dockerfile may not ask the engine to fetch (review 5, finding 1).
 *
 * Threat model. The Dockerfile is repository content (anyone who can push writes it). A build
 * runs its `RUN` steps with no network, but the engine itself (dockerd, on the host's network)
 * executes `FROM`, `ADD <url>` and `COPY --from=<image>`: it would fetch a URL from loopback,
 * the machine's own or bridge addresses or the internet and bake the answer into the image, or
 * contact a registry (a packet off the machine, or an oracle on the host's ports). So before any
 * build the Dockerfile is parsed here (instructions case-insensitive, line continuations with
 * the `# escape=` directive, comment lines inside continuations, `ONBUILD` triggers) and refused,
 * with the line number, when:
 * - an `ADD` source is a URL (anything with `://`, a `scheme:` prefix or `git@`) or uses a
 *   variable (an `ARG`/`ENV` default could hold a URL);
 * - a `COPY --from=` or `RUN --mount=…from=` names anything but an earlier stage (name or index);
 * - a `FROM` uses a variable or `--platform` (either could make the engine pull);
 * and the caller checks that every other `FROM` image (not `scratch`, not an earlier stage) is
 * present in the local engine, never pulling it. What is not covered: `ONBUILD` triggers stored
 * in a local base image (put there by whoever built or loaded it on the server).
 */

export interface DockerfileRefusal {
  line: number;
  message: string;
}

export interface DockerfileCheck {
  refusals: DockerfileRefusal[];
  /** `FROM` images that are neither `scratch` nor an earlier stage: must be local. */
  baseImages: { line: number; image: string }[];
}

interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Joins continuation lines into instructions, skipping comments and blank lines. */
function instructions(text: string): Instruction[] {
  const lines = text.split(/\r?\n/);
  let escape = '\\';
  // Parser directives: `# key=value` lines at the very top.
  for (const raw of lines) {
    const directive = /^\s*#\s*([a-zA-Z]+)\s*=\s*(\S*)\s*$/.exec(raw);
    if (!directive) break;
    if (directive[1]!.toLowerCase() === 'escape' && directive[2] === '`') escape = '`';
  }
  const out: Instruction[] = [];
  let current: Instruction | undefined;
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (current !== undefined && trimmed === '')) return;
    if (current === undefined && trimmed === '') return;
    const continued = trimmed.endsWith(escape);
    const body = continued ? trimmed.slice(0, -1) : trimmed;
    if (current === undefined) {
      const match = /^(\S+)\s*(.*)$/.exec(body);
      current = {
        line: index + 1,
        keyword: (match?.[1] ?? '').toUpperCase(),
        args: match?.[2] ?? '',
      };
    } else current.args += ` ${body}`;
    if (!continued) {
      out.push(current);
      current = undefined;
    }
  });
  if (current !== undefined) out.push(current);
  return out;
}

/** The words of an instruction's arguments (JSON array form or whitespace-separated). */
function words(args: string): string[] {
  const trimmed = args.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // not JSON: Docker treats it as the shell form
    }
  }
  return trimmed.split(/\s+/).filter((word) => word !== '');
}

/** Leading `--flag[=value]` words, and the rest. */
function flags(all: string[]): { flags: string[]; rest: string[] } {
  let i = 0;
  while (i < all.length && all[i]!.startsWith('--')) i++;
  return { flags: all.slice(0, i), rest: all.slice(i) };
}

function isRemote(source: string): boolean {
  return (
    source.includes('://') ||
    /^git@/i.test(source) ||
    /^[a-z][a-z0-9+.-]*:/i.test(source) ||
    source.includes('$')
  );
}

/** Parses a Dockerfile and lists what it may not do (see the threat model above). */
export function checkDockerfile(text: string): DockerfileCheck {
  const refusals: DockerfileRefusal[] = [];
  const baseImages: { line: number; image: string }[] = [];
  const stages: string[] = []; // lower-case stage names, '' for unnamed
  const refuse = (line: number, message: string): void => {
    refusals.push({ line, message });
  };
  // Stages before the current one (the last in `stages`).
  const earlierStage = (name: string) =>
    /^\d+$/.test(name)
      ? Number(name) < stages.length - 1
      : name !== '' && stages.slice(0, -1).includes(name.toLowerCase());

  const check = (instruction: Instruction, onbuild: boolean): void => {
    const { line } = instruction;
    const where = onbuild ? 'ONBUILD ' : '';
    const all = words(instruction.args);
    const parts = flags(all);
    switch (instruction.keyword) {
      case 'FROM': {
        if (onbuild) return refuse(line, 'ONBUILD FROM is not allowed');
        if (parts.flags.length > 0)
          refuse(line, `FROM ${parts.flags.join(' ')} is refused (the engine could pull)`);
        const image = parts.rest[0] ?? '';
        const alias = parts.rest[1]?.toLowerCase() === 'as' ? (parts.rest[2] ?? '') : '';
        if (image.includes('$'))
          refuse(line, `FROM ${image} uses a variable (refused: write the image's name)`);
        else if (image.toLowerCase() !== 'scratch' && !stages.includes(image.toLowerCase()))
          baseImages.push({ line, image });
        stages.push(alias.toLowerCase());
        return;
      }
      case 'ADD': {
        for (const flag of parts.flags)
          if (/^--from=/i.test(flag)) checkFrom(line, `${where}ADD`, flag.slice('--from='.length));
        for (const source of parts.rest.slice(0, -1))
          if (isRemote(source))
            refuse(
              line,
              `${where}ADD ${source}: a URL (or a variable) as a source is refused (the engine would fetch it on the server; commit the file instead)`,
            );
        return;
      }
      case 'COPY':
        for (const flag of parts.flags)
          if (/^--from=/i.test(flag)) checkFrom(line, `${where}COPY`, flag.slice('--from='.length));
        return;
      case 'RUN':
        for (const flag of parts.flags)
          if (/^--mount=/i.test(flag))
            for (const option of flag.slice('--mount='.length).split(','))
              if (/^from=/i.test(option))
                checkFrom(line, `${where}RUN --mount`, option.slice('from='.length));
        return;
      case 'ONBUILD': {
        const match = /^(\S+)\s*(.*)$/.exec(instruction.args.trim());
        if (match) check({ line, keyword: match[1]!.toUpperCase(), args: match[2] ?? '' }, true);
        return;
      }
      default:
        return;
    }
  };
  const checkFrom = (line: number, what: string, name: string): void => {
    if (name.includes('$') || !earlierStage(name))
      refuse(
        line,
        `${what} from "${name}": only an earlier stage of this Dockerfile may be named (an image would be fetched by the engine)`,
      );
  };

  for (const instruction of instructions(text)) check(instruction, false);
  return { refusals, baseImages };
}
