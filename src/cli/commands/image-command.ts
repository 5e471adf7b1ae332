import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { BerthError } from '../../errors/berth-error.js';
import { BASE_IMAGE_NAMES, type BaseImageName } from '../../images/image-builder.js';

/** `berth image build minimal|universal`. */
export function registerImageCommand(program: Command, ctx?: CliContext): void {
  const out = (line: string): void => {
    if (ctx !== undefined) ctx.out(line);
    else process.stdout.write(`${line}\n`);
  };
  const image = program.command('image').description("Berth's base images");
  image
    .command('build')
    .description('build a base image on this machine (debootstrap: no container registry needed)')
    .argument('<name>', `one of: ${BASE_IMAGE_NAMES.join(', ')}`)
    .option(
      '--base-source <source>',
      'debootstrap (default) or registry (FROM debian:bookworm)',
      'debootstrap',
    )
    .option('--docker-socket <path>', 'the Docker engine socket')
    .option('--json', 'print the built image as JSON (progress goes to stderr)')
    .action(
      async (
        name: string,
        options: { baseSource: string; dockerSocket?: string; json?: boolean },
      ) => {
        if (!(BASE_IMAGE_NAMES as readonly string[]).includes(name)) {
          throw new BerthError(
            'invalid_input',
            `unknown image "${name}"; use one of: ${BASE_IMAGE_NAMES.join(', ')}`,
          );
        }
        if (options.baseSource !== 'debootstrap' && options.baseSource !== 'registry') {
          throw new BerthError('invalid_input', '--base-source must be debootstrap or registry');
        }
        const socket = options.dockerSocket ?? ctx?.config().dockerSocket;
        const { buildImage } = await import('../../images/build-image.js');
        const progress = options.json && ctx !== undefined ? (line: string) => ctx.err(line) : out;
        const controller = new AbortController();
        const onSignal = (): void => controller.abort();
        process.once('SIGINT', onSignal);
        try {
          const built = await buildImage(name as BaseImageName, {
            baseSource: options.baseSource,
            onProgress: progress,
            signal: controller.signal,
            ...(socket !== undefined ? { runtimeSocket: socket } : {}),
          });
          if (options.json && ctx !== undefined) ctx.json({ image: built.ref, id: built.id });
          else out(`built ${built.ref} (${built.id})`);
        } finally {
          process.off('SIGINT', onSignal);
        }
      },
    );
}
