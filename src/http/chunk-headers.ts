import { parseDictionary } from 'structured-headers';
import { SluiceError } from '../errors.js';

export const HEADER_CONTENT_DIGEST = 'content-digest';
export const HEADER_CHUNK_SHA256 = 'x-chunk-sha256';
export const HEADER_CONTENT_RANGE = 'content-range';

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

/**
 * The client's SHA-256 of a request body, from `Content-Digest: sha-256=:<base64>:` (RFC 9530) or
 * `X-Chunk-Sha256: <hex>`, as lowercase hex; undefined when neither is sent. When both are sent
 * they must agree.
 */
export function clientSha256(headers: Record<string, string | string[] | undefined>): string | undefined {
  const fromDigest = parseContentDigest(single(headers[HEADER_CONTENT_DIGEST], HEADER_CONTENT_DIGEST));
  const hex = single(headers[HEADER_CHUNK_SHA256], HEADER_CHUNK_SHA256);
  let fromHex: string | undefined;
  if (hex !== undefined) {
    if (!HEX_SHA256.test(hex.trim())) throw new SluiceError('invalid_request', 'X-Chunk-Sha256 must be 64 hexadecimal digits');
    fromHex = hex.trim().toLowerCase();
  }
  if (fromDigest !== undefined && fromHex !== undefined && fromDigest !== fromHex) {
    throw new SluiceError('invalid_request', 'Content-Digest and X-Chunk-Sha256 disagree');
  }
  return fromDigest ?? fromHex;
}

function parseContentDigest(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let dict: ReturnType<typeof parseDictionary>;
  try {
    dict = parseDictionary(value);
  } catch {
    throw new SluiceError('invalid_request', 'Content-Digest is not a valid structured-field dictionary (RFC 9530)');
  }
  // RFC 9530 §2: the field may carry several algorithms; we verify sha-256 and ignore the others,
  // but a field that offers no algorithm we can check is an error rather than a silent skip.
  const entry = dict.get('sha-256');
  if (!entry) {
    throw new SluiceError('unsupported_digest_algorithm', 'Content-Digest must include sha-256', { supported: ['sha-256'] });
  }
  const [item] = entry;
  if (!(item instanceof ArrayBuffer)) throw new SluiceError('invalid_request', 'Content-Digest sha-256 must be a byte sequence (:base64:)');
  const bytes = Buffer.from(item);
  if (bytes.length !== 32) throw new SluiceError('invalid_request', 'Content-Digest sha-256 must be 32 bytes');
  return bytes.toString('hex');
}

/** Parses `Content-Range: bytes <first>-<last>/<size>` (RFC 9110 §14.4); the size must be known. */
export function parseContentRange(value: string): { first: number; last: number; size: number } {
  const m = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(value.trim());
  if (!m) throw new SluiceError('invalid_range', 'Content-Range must look like "bytes <first>-<last>/<size>"');
  const [first, last, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || !Number.isSafeInteger(size) || first > last || last >= size) {
    throw new SluiceError('invalid_range', `Content-Range ${value} is not a valid range`);
  }
  return { first, last, size };
}

/** A header that must appear once; duplicates are refused rather than guessed at. */
export function single(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) {
    if (value.length > 1) throw new SluiceError('invalid_request', `${name} must be sent once`);
    return value[0];
  }
  return value;
}
