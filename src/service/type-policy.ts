import type { Readable } from 'node:stream';

/** How many leading bytes are enough for file-type to recognise a format. */
const SNIFF_BYTES = 4100;

/** Names for the same type that declarations and detection may disagree on. */
const ALIASES: Record<string, string> = {
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'audio/x-wav': 'audio/wav',
  'audio/wave': 'audio/wav',
  'audio/vnd.wave': 'audio/wav',
  'application/x-zip-compressed': 'application/zip',
  'audio/mp3': 'audio/mpeg',
  'video/x-quicktime': 'video/quicktime',
};

const GENERIC = new Set(['application/octet-stream', 'binary/octet-stream']);

function canonical(type: string): string {
  const base = (type.split(';')[0] ?? '').trim().toLowerCase();
  return ALIASES[base] ?? base;
}

/**
 * ALLOWED_TYPES: the finished file's type, as its magic number says (or as declared, for formats
 * without one such as plain text), must match one of the patterns; and a specific declared type
 * that contradicts the bytes is refused. Returns why the file is refused, or undefined.
 */
export class TypePolicy {
  constructor(private readonly patterns: string[]) {}

  async violation(declared: string, head: Buffer): Promise<string | undefined> {
    // Loaded on first use: only servers with ALLOWED_TYPES pay for file-type's memory.
    const { fileTypeFromBuffer } = await import('file-type');
    const detected = (await fileTypeFromBuffer(head))?.mime;
    const claimed = canonical(declared);
    if (detected && !GENERIC.has(claimed) && canonical(detected) !== claimed) {
      return `the file was declared ${claimed} but its content is ${detected}`;
    }
    const effective = canonical(detected ?? claimed);
    const allowed = this.patterns.some((p) => {
      const [type, sub] = p.split('/');
      const [etype, esub] = effective.split('/');
      return (type === '*' || type === etype) && (sub === '*' || sub === esub);
    });
    return allowed ? undefined : `files of type ${effective} are not allowed (allowed: ${this.patterns.join(', ')})`;
  }
}

/** Reads up to the first `SNIFF_BYTES` of a stream, then stops it. */
export async function readHead(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const buf of stream) {
    parts.push(buf as Buffer);
    size += (buf as Buffer).length;
    if (size >= SNIFF_BYTES) break;
  }
  stream.destroy();
  return Buffer.concat(parts).subarray(0, SNIFF_BYTES);
}
