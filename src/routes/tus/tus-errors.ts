import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SluiceError } from '../../errors.js';
import { sendPlain } from '../../http/error-handler.js';
import { INTEROP_HEADER, limitField, sendIetfError, UPLOAD_LIMIT, interopVersion } from './ietf.js';
import { TUS_VERSION } from './tus-headers.js';

/** Statuses the tus protocol defines differently from the native API for the same condition. */
const TUS_STATUS: Partial<Record<SluiceError['code'], number>> = {
  checksum_mismatch: 460, // "460 Checksum Mismatch"
};

export type TusErrorRenderer = (request: FastifyRequest, reply: FastifyReply, err: SluiceError) => FastifyReply;

/**
 * Errors as tus and IETF clients expect them, wherever they were raised (a route, authentication,
 * a rate limit, overload): tus gets the protocol's status, headers and a plain-text body; a draft
 * request an RFC 9457 document (ietf.ts), and "A server that implements [a size restriction] can
 * respond with a 413" that carries `Upload-Limit`.
 */
export function tusErrorRenderer(maxUploadSize: number): TusErrorRenderer {
  return (request, reply, err) => {
    if (request.headers[INTEROP_HEADER] !== undefined) {
      if (err.status === 413) {
        try {
          const v = interopVersion(request.headers);
          if (v !== undefined && v >= 6) reply.header(UPLOAD_LIMIT, limitField(v, { maxSize: maxUploadSize }));
        } catch {
          // an unsupported version gets no limits
        }
      }
      return sendIetfError(request, reply, err);
    }
    // "[...] it MUST respond with the 412 Precondition Failed status and MUST include the Tus-Version header"
    if (err.code === 'tus_version_unsupported') reply.header('tus-version', TUS_VERSION);
    reply.header('tus-resumable', TUS_VERSION);
    return sendPlain(request, reply, err, TUS_STATUS[err.code] ?? err.status);
  };
}
