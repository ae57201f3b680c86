import type { FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';

/**
 * The IETF "Resumable Uploads for HTTP" draft, at the interop versions real clients send today:
 * 5 (draft-03: tus-js-client `ietf-draft-03`, Apple URLSession on iOS 17) and 6 (draft-05:
 * tus-js-client `ietf-draft-05`, iOS 18). Served on the tus endpoint by the same routes.
 */
export const INTEROP_HEADER = 'upload-draft-interop-version';
export const UPLOAD_COMPLETE = 'upload-complete';
export const UPLOAD_LIMIT = 'upload-limit';
export const PARTIAL_UPLOAD = 'application/partial-upload';
export const SUPPORTED_INTEROP = [5, 6] as const;

/** The interop version a request speaks, or undefined for a tus (or other) request. */
export function interopVersion(request: FastifyRequest): 5 | 6 | undefined {
  const raw = request.headers[INTEROP_HEADER];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (n === 5 || n === 6) return n;
  throw new SluiceError('invalid_request', `Upload-Draft-Interop-Version ${String(raw)} is not supported (${SUPPORTED_INTEROP.join(', ')} are)`);
}

/** `Upload-Complete` is a structured-field Boolean: `?1` or `?0`. */
export function uploadComplete(request: FastifyRequest): boolean | undefined {
  const raw = request.headers[UPLOAD_COMPLETE];
  if (raw === undefined) return undefined;
  if (raw === '?1') return true;
  if (raw === '?0') return false;
  throw new SluiceError('invalid_request', 'Upload-Complete must be ?1 or ?0');
}

export function booleanField(value: boolean): string {
  return value ? '?1' : '?0';
}

/** `Upload-Limit` (a structured Dictionary): the largest upload this server takes. */
export function uploadLimit(maxUploadSize: number): string {
  return `max-size=${maxUploadSize}`;
}

/**
 * Sends the interim `104 (Upload Resumption Supported)` response with the upload's URL, before the
 * body is read, so that a client interrupted mid-body knows where to resume. Node has no API for
 * arbitrary 1xx responses; on HTTP/1.1 an interim response is just a status line and fields written
 * before the final response, which is what this does.
 */
export function sendUploadResumptionSupported(request: FastifyRequest, reply: FastifyReply, location: string, interop: number): void {
  const socket = request.raw.socket;
  if (reply.raw.headersSent || request.raw.httpVersion !== '1.1' || socket.destroyed) return;
  socket.write(`HTTP/1.1 104 Upload Resumption Supported\r\nLocation: ${location}\r\n${INTEROP_HEADER}: ${interop}\r\n\r\n`);
}
