import { SluiceError } from '../../errors.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** tus 1.0.0 header names (lowercase, as Node presents them). */
export const TUS_RESUMABLE = 'tus-resumable';
export const UPLOAD_OFFSET = 'upload-offset';
export const UPLOAD_LENGTH = 'upload-length';
export const UPLOAD_DEFER_LENGTH = 'upload-defer-length';
export const UPLOAD_METADATA = 'upload-metadata';
export const UPLOAD_CONCAT = 'upload-concat';
export const UPLOAD_CHECKSUM = 'upload-checksum';
export const UPLOAD_EXPIRES = 'upload-expires';
export const METHOD_OVERRIDE = 'x-http-method-override';

export const TUS_VERSION = '1.0.0';
export const OFFSET_OCTET_STREAM = 'application/offset+octet-stream';

/** tus checksum algorithm names → Node's hash names. "The Server MUST support at least ... sha1". */
export const CHECKSUM_ALGORITHMS: Record<string, string> = { sha1: 'sha1', md5: 'md5', sha256: 'sha256' };

type Headers = Record<string, string | string[] | undefined>;

function one(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  if (Array.isArray(v)) {
    if (v.length > 1) throw new SluiceError('invalid_request', `${name} must be sent once`);
    return v[0];
  }
  return v;
}

/** A header that "MUST be a non-negative integer". */
export function nonNegativeInteger(headers: Headers, name: string): number | undefined {
  const raw = one(headers, name);
  if (raw === undefined) return undefined;
  if (!/^\d{1,16}$/.test(raw.trim())) throw new SluiceError('invalid_request', `${name} must be a non-negative integer`);
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n)) throw new SluiceError('invalid_request', `${name} is too large`);
  return n;
}

export interface ParsedMetadata {
  /** Decoded values (UTF-8); keys as sent. */
  values: Record<string, string>;
  /** The header exactly as received, to echo on HEAD. */
  raw: string;
}

/**
 * Upload-Metadata: comma-separated `key base64value` pairs. "The key MUST NOT contain spaces and
 * commas and MUST NOT be empty ... the value MUST be Base64 encoded. All keys MUST be unique. The
 * value MAY be empty", in which case the space may be left out.
 */
export function parseMetadata(headers: Headers): ParsedMetadata | undefined {
  const raw = one(headers, UPLOAD_METADATA);
  if (raw === undefined) return undefined;
  if (raw.length > 16 * 1024) throw new SluiceError('invalid_request', 'Upload-Metadata is too long');
  const values: Record<string, string> = {};
  if (raw.trim() === '') return { values, raw };
  for (const pair of raw.split(',')) {
    const m = /^\s*([^\s,]+)(?: ([A-Za-z0-9+/]*={0,2}))?\s*$/.exec(pair);
    if (!m) throw new SluiceError('invalid_request', `Upload-Metadata pair "${pair.slice(0, 40)}" is not "key base64value"`);
    const key = m[1] as string;
    const b64 = m[2] ?? '';
    if (b64.length % 4 !== 0) throw new SluiceError('invalid_request', `Upload-Metadata value of ${key} is not Base64`);
    if (Object.hasOwn(values, key)) throw new SluiceError('invalid_request', `Upload-Metadata key ${key} appears twice`);
    // Bytes that are not UTF-8 are refused, not replaced by U+FFFD.
    try {
      values[key] = UTF8.decode(Buffer.from(b64, 'base64'));
    } catch {
      throw new SluiceError('invalid_request', `Upload-Metadata value of ${key} is not UTF-8`);
    }
  }
  return { values, raw };
}

/** Upload-Checksum: `<algorithm> <base64 digest>`; an algorithm we do not support is a 400. */
export function parseChecksum(headers: Headers): { algorithm: string; digest: Buffer } | undefined {
  const raw = one(headers, UPLOAD_CHECKSUM);
  if (raw === undefined) return undefined;
  return checksumValue(raw);
}

export function checksumValue(raw: string): { algorithm: string; digest: Buffer } {
  const m = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(raw.trim());
  if (!m) throw new SluiceError('invalid_request', 'Upload-Checksum must be "<algorithm> <base64 digest>"');
  const algorithm = CHECKSUM_ALGORITHMS[m[1] as string];
  if (!algorithm) {
    throw new SluiceError('checksum_algorithm_unsupported', `checksum algorithm ${m[1]} is not supported`, { supported: Object.keys(CHECKSUM_ALGORITHMS) });
  }
  return { algorithm, digest: Buffer.from(m[2] as string, 'base64') };
}

export type Concat = { kind: 'partial' } | { kind: 'final'; urls: string[]; raw: string };

/** Upload-Concat: `partial`, or `final;` and a space-separated list of partial upload URLs. */
export function parseConcat(headers: Headers): Concat | undefined {
  const raw = one(headers, UPLOAD_CONCAT);
  if (raw === undefined) return undefined;
  const value = raw.trim();
  if (value === 'partial') return { kind: 'partial' };
  const m = /^final;(.+)$/.exec(value);
  if (!m) throw new SluiceError('invalid_request', 'Upload-Concat must be "partial" or "final;<url> <url> ..."');
  const urls = (m[1] as string).trim().split(/ +/).filter(Boolean);
  if (urls.length === 0 || urls.length > 10_000) throw new SluiceError('invalid_request', 'Upload-Concat lists no partial uploads');
  return { kind: 'final', urls, raw: value };
}

/** The upload id at the end of a partial upload's URL (absolute or relative) under `tusPath`. */
export function idFromUrl(url: string, tusPath: string): string {
  let pathname: string;
  try {
    pathname = new URL(url, 'http://placeholder').pathname;
  } catch {
    throw new SluiceError('invalid_request', `${url} is not a URL`);
  }
  const prefix = `${tusPath}/`;
  const id = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : '';
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) {
    throw new SluiceError('invalid_request', `${url} is not an upload URL of this server`);
  }
  return id;
}
