import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { BerthError } from '../../../errors/berth-error.js';

/** A tar archive holding one regular file at `name` (relative; parents are created by the engine). */
export async function singleFileTar(name: string, data: Buffer, mode: number): Promise<Buffer> {
  const pack = tarStream.pack();
  pack.entry(
    { name, size: data.length, mode, type: 'file', mtime: new Date(), uid: 0, gid: 0 },
    data,
  );
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The content of the first entry of a tar stream, which must be a regular file. */
export async function readSingleFile(archive: Readable, filePath: string): Promise<Buffer> {
  const extract = tarStream.extract();
  archive.pipe(extract);
  for await (const entry of extract) {
    if (entry.header.type !== 'file') {
      entry.resume();
      archive.destroy();
      throw new BerthError(
        'invalid_input',
        `${filePath} is not a regular file (it is a ${entry.header.type ?? 'special file'})`,
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
    archive.destroy();
    return Buffer.concat(chunks);
  }
  throw new BerthError('not_found', `${filePath} was not found in the sandbox`);
}
