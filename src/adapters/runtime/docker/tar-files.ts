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

/**
 * The content of the first entry of a tar stream, which must be a regular file of at most
 * `maxBytes` (its size, from the entry's header, is checked before any content is read; the
 * content is counted as it arrives too). Anything else is refused and the stream dropped.
 */
export async function readSingleFile(
  archive: Readable,
  filePath: string,
  maxBytes: number,
): Promise<Buffer> {
  const extract = tarStream.extract();
  archive.pipe(extract);
  const drop = (): void => {
    archive.unpipe(extract);
    archive.destroy();
    extract.destroy();
  };
  for await (const entry of extract) {
    if (entry.header.type !== 'file') {
      drop();
      throw new BerthError(
        'invalid_input',
        `${filePath} is not a regular file (it is a ${entry.header.type ?? 'special file'})`,
      );
    }
    const size = entry.header.size ?? 0;
    if (size > maxBytes) {
      drop();
      throw new BerthError(
        'payload_too_large',
        `${filePath} holds ${size} bytes, above the limit of ${maxBytes} for this read`,
        { size, maxBytes },
      );
    }
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of entry as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > size) break;
      chunks.push(chunk);
    }
    drop();
    if (received !== size) {
      throw new BerthError('internal', `${filePath} did not come out of the sandbox whole`, {
        size,
        received,
      });
    }
    return Buffer.concat(chunks, size);
  }
  throw new BerthError('not_found', `${filePath} was not found in the sandbox`);
}
