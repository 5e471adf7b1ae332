import tar from 'tar-stream';

export interface ArchiveFile {
  /** Path relative to the directory the archive is extracted in. */
  name: string;
  data: Buffer | string;
  mode?: number;
}

/** A tar archive of the given files (owned by root), for `putArchive`. */
export async function tarArchive(files: readonly ArchiveFile[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const file of files) {
    const data = typeof file.data === 'string' ? Buffer.from(file.data, 'utf8') : file.data;
    pack.entry({ name: file.name, mode: file.mode ?? 0o644, uid: 0, gid: 0 }, data);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
