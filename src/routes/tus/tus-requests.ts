import type { FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import type { Upload } from '../../ledger/ledger.js';
import type { AppendRequest, UploadService } from '../../service/upload-service.js';
import { CHECKSUM_ALGORITHMS, checksumValue, parseChecksum } from './tus-headers.js';

/** What the tus and IETF handlers share: reading an upload's id, its state and an append's body. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MIME = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/;

/**
 * checksum-trailer: the algorithm is known only once the trailer arrives, so every one that may
 * be named is computed while the body streams, and the named one is checked.
 */
const TRAILER_ALGORITHMS = Object.values(CHECKSUM_ALGORITHMS);

export function uploadId(request: FastifyRequest): string {
  const { id } = request.params as { id: string };
  if (!UUID.test(id)) throw new SluiceError('not_found', 'no such upload');
  return id;
}

/** The tus view of an upload: gone ones answer 404 (terminated) or 410 (expired, failed). */
export async function tusUpload(service: UploadService, request: FastifyRequest): Promise<Upload> {
  const upload = await service.status(request.owner, uploadId(request));
  if (upload.layout !== 'stream') throw new SluiceError('not_found', 'this upload was created with the native API');
  if (upload.status === 'aborted') throw new SluiceError('not_found', 'the upload was terminated');
  if (upload.status === 'expired') throw new SluiceError('upload_expired');
  if (upload.status === 'failed') throw new SluiceError('upload_expired', `the upload failed: ${upload.failure ?? ''}`);
  return upload;
}

/** A tus PATCH's (or creation-with-upload's) body, with its checksum header or trailer. */
export function appendRequest(request: FastifyRequest, offset: number, length: number | undefined): AppendRequest {
  const h = request.headers;
  const checksum = parseChecksum(h);
  // checksum-trailer: the digest arrives after the body, announced by `Trailer: Upload-Checksum`.
  const trailer = !checksum && /(^|,)\s*upload-checksum\s*(,|$)/i.test(String(h.trailer ?? '')) && h['transfer-encoding'] !== undefined;
  return {
    offset,
    stream: request.raw,
    declaredLength: declaredLength(request),
    length,
    // checksum: "the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be
    // updated" when it does not match - the service records a checksummed body all or nothing.
    checksum: trailer
      ? {
          algorithms: TRAILER_ALGORITHMS,
          expected: () => {
            const value = request.raw.trailers['upload-checksum'];
            if (value === undefined) throw new SluiceError('invalid_request', 'the announced Upload-Checksum trailer did not arrive');
            return checksumValue(value);
          },
        }
      : checksum && { algorithms: [checksum.algorithm], expected: () => checksum },
  };
}

/** Content-Length, when the body has one (not with a transfer coding). */
export function declaredLength(request: FastifyRequest): number | undefined {
  const h = request.headers;
  return h['content-length'] === undefined || h['transfer-encoding'] !== undefined ? undefined : Number(h['content-length']);
}

export function contentTypeOf(request: FastifyRequest): string | undefined {
  return request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
}

export function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
