import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseItem, serializeDictionary } from 'structured-headers';
import { ERRORS, SluiceError, type ErrorCode } from '../../errors.js';
import { nonNegativeInteger } from './tus-headers.js';

/**
 * The IETF "Resumable Uploads for HTTP" draft (draft-ietf-httpbis-resumable-upload), at every
 * interop version a client sends today, side by side on the tus endpoint:
 *
 * - 5: draft-03 (tus-js-client `ietf-draft-03`, Apple URLSession on iOS 17);
 * - 6: draft-04 and -05 (tus-js-client `ietf-draft-05`, iOS 18): appends are
 *   `application/partial-upload`, `Upload-Limit` with `expires`;
 * - 7: draft-06 to -08: every field a structured field (RFC 9651), `expires` renamed `max-age`,
 *   the inconsistent-length problem type;
 * - 8: draft-09 to -11 and the editor's copy: `Accept-Patch` on OPTIONS, `Upload-Limit` on HEAD
 *   and on the creation 104, progress 104s without `Location`.
 */
export const INTEROP_HEADER = 'upload-draft-interop-version';
export const UPLOAD_COMPLETE = 'upload-complete';
export const UPLOAD_LIMIT = 'upload-limit';
export const PARTIAL_UPLOAD = 'application/partial-upload';
export const SUPPORTED_INTEROP = [5, 6, 7, 8] as const;
export type Interop = (typeof SUPPORTED_INTEROP)[number];

type Headers = Record<string, string | string[] | undefined>;

/**
 * The interop version a request speaks, or undefined for a tus (or other) request. "The
 * `Upload-Draft-Interop-Version` field value is an Integer." A version this server does not speak
 * is refused: "Server implementations ... MUST NOT send a 104 ... when the interop version ... is
 * missing or mismatching", and guessing another version's rules would corrupt uploads.
 */
export function interopVersion(headers: Headers): Interop | undefined {
  const raw = headers[INTEROP_HEADER];
  if (raw === undefined) return undefined;
  const value = sfInteger(Array.isArray(raw) ? raw.join(',') : raw);
  if (value !== undefined && (SUPPORTED_INTEROP as readonly number[]).includes(value)) return value as Interop;
  throw new SluiceError('invalid_request', `Upload-Draft-Interop-Version ${String(raw)} is not supported (${SUPPORTED_INTEROP.join(', ')} are)`);
}

/**
 * `Upload-Complete`, a Boolean. From interop 7: "Other values MUST cause the entire header field
 * to be ignored" (the request is then treated as if it had none); before, they are refused.
 */
export function completeField(headers: Headers, v: Interop): boolean | undefined {
  const raw = headers[UPLOAD_COMPLETE];
  if (raw === undefined) return undefined;
  const value = typeof raw === 'string' ? sfItem(raw) : undefined;
  if (typeof value === 'boolean') return value;
  if (v >= 7) return undefined;
  throw new SluiceError('invalid_request', 'Upload-Complete must be ?1 or ?0');
}

/**
 * `Upload-Offset` and `Upload-Length`: from interop 7 an Item whose value "is a non-negative
 * Integer ... Other values MUST cause the entire header field to be ignored"; before, a plain
 * non-negative integer, refused when malformed.
 */
export function integerField(headers: Headers, name: string, v: Interop): number | undefined {
  if (v < 7) return nonNegativeInteger(headers, name);
  const raw = headers[name];
  if (typeof raw !== 'string') return undefined;
  const value = sfInteger(raw);
  return value !== undefined && value >= 0 ? value : undefined;
}

export interface Limits {
  maxSize: number;
  /** Seconds the upload resource has left (on an upload), or a new one gets (before one exists). */
  maxAge?: number | undefined;
}

/**
 * `Upload-Limit`, a Dictionary (interop 6 on). Interop 6 named the lifetime `expires`, 7 on
 * `max-age`. With no limit at all, `min-size=0` still tells the client that limits are announced.
 */
export function limitField(v: Interop, limits: Limits): string {
  const dict: Record<string, number> = {};
  if (Number.isFinite(limits.maxSize)) dict['max-size'] = limits.maxSize;
  if (limits.maxAge !== undefined) dict[v === 6 ? 'expires' : 'max-age'] = Math.max(0, Math.floor(limits.maxAge));
  if (Object.keys(dict).length === 0) dict['min-size'] = 0;
  return serializeDictionary(dict);
}

export function booleanField(value: boolean): string {
  return value ? '?1' : '?0';
}

/** RFC 9457 problem types the draft registers, for the errors that mean what they mean. */
const PROBLEM_TYPES: Partial<Record<ErrorCode, string>> = {
  offset_mismatch: 'mismatching-upload-offset',
  inconsistent_length: 'inconsistent-upload-length',
  upload_completed: 'completed-upload',
};

/**
 * An error as a draft client expects it: an RFC 9457 problem document, with the draft's own
 * problem type where one exists ("expected-offset" and "provided-offset" for a mismatching offset,
 * whose response "MUST include the correct offset in the Upload-Offset header field").
 */
export function sendIetfError(request: FastifyRequest, reply: FastifyReply, err: SluiceError, status = err.status): FastifyReply {
  const v = safeVersion(request.headers);
  if (v !== undefined) reply.header(INTEROP_HEADER, String(v));
  const expected = err.extra.offset;
  if (err.code === 'offset_mismatch' && typeof expected === 'number') reply.header('upload-offset', String(expected));
  reply.code(status);
  if (request.method === 'HEAD') return reply.send();
  const named = PROBLEM_TYPES[err.code];
  // (Read leniently whatever the version: it is only reported back.)
  const provided = integerField(request.headers, 'upload-offset', 8);
  return reply.type('application/problem+json').send({
    type: named ? `https://iana.org/assignments/http-problem-types#${named}` : `urn:sluice:problem:${err.code}`,
    title: ERRORS[err.code].title,
    status,
    detail: err.message,
    code: err.code,
    ...(err.code === 'offset_mismatch' && typeof expected === 'number' && { 'expected-offset': expected }),
    ...(err.code === 'offset_mismatch' && provided !== undefined && { 'provided-offset': provided }),
  });
}

function safeVersion(headers: Headers): Interop | undefined {
  try {
    return interopVersion(headers);
  } catch {
    return undefined;
  }
}

/**
 * Sends an interim `104 (Upload Resumption Supported)` response. Node has no API for arbitrary 1xx
 * responses; on HTTP/1.1 an interim response is a status line and fields written before the final
 * response, which is what this does (after any `100 Continue`, which Node sends first: "the server
 * MUST NOT omit the 100 (Continue) response because it has sent ... 104"). "Server implementations
 * of draft versions ... MUST also send ... Upload-Draft-Interop-Version ... to the 104".
 */
export function sendInterim(request: FastifyRequest, reply: FastifyReply, v: Interop, fields: Record<string, string>): void {
  const socket = request.raw.socket;
  if (reply.raw.headersSent || request.raw.httpVersion !== '1.1' || !socket || socket.destroyed || !socket.writable) return;
  let head = 'HTTP/1.1 104 Upload Resumption Supported\r\n';
  for (const [name, value] of Object.entries(fields)) head += `${name}: ${value}\r\n`;
  socket.write(`${head}${INTEROP_HEADER}: ${v}\r\n\r\n`);
}

/** An Item whose value is an Integer (RFC 9651 §3.3.1), not a Decimal such as `8.0`. */
function sfInteger(raw: string): number | undefined {
  const value = sfItem(raw);
  const bare = raw.split(';')[0]?.trim() ?? '';
  return typeof value === 'number' && Number.isSafeInteger(value) && /^-?\d+$/.test(bare) ? value : undefined;
}

function sfItem(raw: string): unknown {
  try {
    return parseItem(raw)[0];
  } catch {
    return undefined;
  }
}
