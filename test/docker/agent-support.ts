import { randomBytes } from 'node:crypto';
import { DockerRuntime } from '../../src/adapters/runtime/docker/docker-runtime.js';
import { RuntimeAgentSandbox } from '../../src/agent/runtime-agent-sandbox.js';
import { testImage } from './runtime-test-image.js';

/**
 * A real sandbox for the agent's Docker tests: Berth's `minimal` image (BERTH_TEST_IMAGE may name
 * another Debian image with bash and coreutils), a workspace at /workspace filled from `files`.
 */
export interface AgentTestSandbox {
  runtime: DockerRuntime;
  id: string;
  sandbox: RuntimeAgentSandbox;
  /** Replaces the workspace with these files (path → text; a `mode` by a `#!` first line: 755). */
  reset(files: Record<string, string>): Promise<void>;
  /** Runs a bash script in the workspace. */
  sh(script: string): Promise<{ exitCode: number; output: string }>;
  remove(): Promise<void>;
}

export async function startAgentTestSandbox(): Promise<AgentTestSandbox> {
  const runtime = new DockerRuntime({ instance: `test-agent-${randomBytes(4).toString('hex')}` });
  const info = await runtime.create({
    image: await testImage(),
    labels: { 'berth.task': 'agent-test' },
    resources: { cpus: 1, memoryMb: 256, pids: 256 },
  });
  await runtime.start(info.id);
  const sandbox = new RuntimeAgentSandbox(runtime, info.id, '/workspace', {
    BERTH_AGENT_TEST: '1',
  });
  const sh = async (script: string): Promise<{ exitCode: number; output: string }> => {
    const result = await runtime.exec(info.id, { script, workdir: '/', timeoutMs: 30_000 });
    return { exitCode: result.exitCode, output: result.output };
  };
  return {
    runtime,
    id: info.id,
    sandbox,
    sh,
    async reset(files) {
      await sh(
        'rm -rf /workspace /outside && mkdir -p /workspace /outside && echo "outside" > /outside/secret.txt',
      );
      for (const [path, text] of Object.entries(files)) {
        await runtime.exec(info.id, {
          argv: [
            'bash',
            '-c',
            'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" -- "$1"',
            'w',
            `/workspace/${path}`,
            text.startsWith('#!') ? '755' : '644',
          ],
          stdin: text,
        });
      }
    },
    async remove() {
      await runtime.remove(info.id);
    },
  };
}
