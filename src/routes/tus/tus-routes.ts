import contentDisposition from 'content-disposition';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import { answerable, logRequestError, sendPlain, toSluiceError } from '../../http/error-handler.js';
import { absoluteUrl, type UrlOptions } from '../../http/urls.js';
import type { Upload } from '../../ledger/ledger.js';
import type { AppendRequest, UploadService } from '../../service/upload-service.js';
import {
  CHECKSUM_ALGORITHMS,
  OFFSET_OCTET_STREAM,
  TUS_RESUMABLE,
  TUS_VERSION,
  UPLOAD_CONCAT,
  UPLOAD_DEFER_LENGTH,
  UPLOAD_EXPIRES,
  UPLOAD_LENGTH,
  UPLOAD_METADATA,
  UPLOAD_OFFSET,
  checksumValue,
  idFromUrl,
  nonNegativeInteger,
  parseChecksum,
  parseConcat,
  parseMetadata,
} from './tus-headers.js';
import {
  INTEROP_HEADER,
  PARTIAL_UPLOAD,
  UPLOAD_COMPLETE,
  UPLOAD_LIMIT,
  booleanField,
  interopVersion,
  sendUploadResumptionSupported,
  uploadComplete,
  uploadLimit,
} from './ietf.js';

export interface TusRouteOptions {
  service: UploadService;
  tusPath: string;
  maxUploadSize: number;
  urls: UrlOptions;
}

/**
 * What this server implements; Tus-Extension is derived from it. "If the Server supports this
 * extension, it MUST add `<name>` to the `Tus-Extension` header."
 */
export const TUS_EXTENSIONS = [
  'creation',
  'creation-with-upload',
  'creation-defer-length',
  'termination',
  'checksum',
  'checksum-trailer',
  'expiration',
  'concatenation',
  'concatenation-unfinished',
] as const;

/** Statuses the tus protocol defines differently from the native API for the same condition. */
const TUS_STATUS: Partial<Record<SluiceError['code'], number>> = {
  checksum_mismatch: 460, // "460 Checksum Mismatch"
};

/**
 * An error as tus and IETF clients expect it, wherever it was raised (a route, authentication, a
 * rate limit, overload): the protocol's status and headers, and the plain-text body.
 */
export function sendTusError(request: FastifyRequest, reply: FastifyReply, err: SluiceError): FastifyReply {
  // "[...] it MUST respond with the 412 Precondition Failed status and MUST include the Tus-Version header"
  if (err.code === 'tus_version_unsupported') reply.header('tus-version', TUS_VERSION);
  if (request.headers[INTEROP_HEADER] === undefined) reply.header('tus-resumable', TUS_VERSION);
  return sendPlain(request, reply, err, TUS_STATUS[err.code] ?? err.status);
}

/**
 * checksum-trailer: the algorithm is known only once the trailer arrives, so every one that may
 * be named is computed while the body streams, and the named one is checked.
 */
const TRAILER_ALGORITHMS = Object.values(CHECKSUM_ALGORITHMS);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MIME = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/;

/**
 * The tus 1.0.0 endpoint: a thin adapter from tus requests to the upload service. Bodies are left
 * unread by the content-type parser and streamed by the service.
 */
export const tusRoutes: FastifyPluginAsync<TusRouteOptions> = async (app, { service, tusPath, maxUploadSize, urls }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.setErrorHandler((raw, request, reply) => {
    const err = toSluiceError(raw);
    if (!logRequestError(request, reply, raw, err)) return reply;
    return sendTusError(request, reply, answerable(err));
  });

  app.addHook('onRequest', async (request, reply) => {
    const interop = interopVersion(request);
    if (interop !== undefined) {
      reply.header(INTEROP_HEADER, String(interop));
      return; // an IETF draft request: no Tus-Resumable
    }
    // "The Tus-Resumable header MUST be included in every request and response except for OPTIONS requests."
    reply.header('tus-resumable', TUS_VERSION);
    if (request.method === 'OPTIONS') return; // "the Server MUST ignore the header"
    const version = request.headers[TUS_RESUMABLE];
    if (version !== TUS_VERSION) {
      throw new SluiceError(
        'tus_version_unsupported',
        version === undefined ? 'Tus-Resumable is required' : `Tus-Resumable ${String(version)} is not supported`,
      );
    }
  });

  const options = async (_request: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(204)
      .header('tus-version', TUS_VERSION)
      .header('tus-extension', TUS_EXTENSIONS.join(','))
      .header('tus-max-size', String(maxUploadSize))
      .header('tus-checksum-algorithm', Object.keys(CHECKSUM_ALGORITHMS).join(','))
      .header(UPLOAD_LIMIT, uploadLimit(maxUploadSize))
      .send();
  // The tus and IETF contracts are those specifications; they are not repeated in the OpenAPI document.
  const hidden = { schema: { hide: true } };
  app.options(tusPath, hidden, options);
  app.options(`${tusPath}/:id`, hidden, options);

  const uploadUrl = (request: FastifyRequest, id: string) => absoluteUrl(request, urls, `${tusPath}/${id}`);
  const expires = (reply: FastifyReply, upload: Upload) => {
    // "This header MUST be included in every PATCH response if the upload is going to expire."
    if (upload.status === 'uploading') reply.header(UPLOAD_EXPIRES, new Date(upload.expiresAt).toUTCString());
  };

  app.post(tusPath, hidden, async (request, reply) => {
    const interop = interopVersion(request);
    if (interop !== undefined) return ietfCreate(request, reply, interop);
    const h = request.headers;
    const concat = parseConcat(h);
    const meta = parseMetadata(h);
    const values = meta?.values ?? {};
    const fileName = values.filename || values.name || 'upload';
    const declared = values.filetype || values.type;
    // "The Server MUST respond with ... Upload-Metadata" as sent, and Upload-Concat likewise.
    const echo: Record<string, string> = {};
    if (meta) echo[UPLOAD_METADATA] = meta.raw;
    if (concat) echo[UPLOAD_CONCAT] = concat.kind === 'final' ? concat.raw : 'partial';
    const common = {
      protocol: 'tus' as const,
      fileName,
      contentType: declared && MIME.test(declared) ? declared : 'application/octet-stream',
      metadata: values,
      echo: Object.keys(echo).length > 0 ? echo : null,
    };
    const withBody = contentTypeOf(request) === OFFSET_OCTET_STREAM;

    if (concat?.kind === 'final') {
      // "The Client MUST NOT include the Upload-Length header in the final upload creation."
      if (h[UPLOAD_LENGTH] !== undefined) throw new SluiceError('invalid_request', 'a final upload takes no Upload-Length');
      if (withBody) throw new SluiceError('invalid_request', 'a final upload takes no body');
      const ids = concat.urls.map((u) => idFromUrl(u, tusPath));
      const upload = await service.createComposed(request.owner, ids, common);
      request.log = request.log.child({ uploadId: upload.id });
      expires(reply, upload);
      return reply.code(201).header('location', uploadUrl(request, upload.id)).send();
    }

    const length = nonNegativeInteger(h, UPLOAD_LENGTH);
    const defer = h[UPLOAD_DEFER_LENGTH];
    // "If the Upload-Defer-Length header contains any other value than 1 the server should return 400"
    if (defer !== undefined && defer !== '1') throw new SluiceError('invalid_request', 'Upload-Defer-Length must be 1');
    if (defer !== undefined && length !== undefined) throw new SluiceError('invalid_request', 'send Upload-Length or Upload-Defer-Length, not both');
    if (defer === undefined && length === undefined) throw new SluiceError('invalid_request', 'Upload-Length or Upload-Defer-Length: 1 is required');
    if (!withBody && hasBody(request)) throw new SluiceError('unsupported_media_type', `a creation body must be ${OFFSET_OCTET_STREAM}`);

    let upload = await service.createStream(request.owner, { ...common, size: length, isPart: concat?.kind === 'partial' });
    request.log = request.log.child({ uploadId: upload.id });
    reply.header('location', uploadUrl(request, upload.id));
    if (withBody) {
      // creation-with-upload: "similar rules as for the PATCH request and response apply"
      upload = await service.append(request.owner, upload.id, appendRequest(request, 0));
      reply.header(UPLOAD_OFFSET, String(upload.bytesReceived));
    }
    expires(reply, upload);
    return reply.code(201).send();
  });

  app.head(`${tusPath}/:id`, hidden, async (request, reply) => {
    // A PATCH that has just ended (or broken off) records its durable bytes first (milliseconds),
    // so that a client resuming after a network error reads the offset it must continue from.
    await service.settled(uploadId(request));
    const upload = await tusUpload(service, request);
    // "The Server MUST prevent the client and/or proxies from caching the response"
    reply.header('cache-control', 'no-store');
    const finalPending = upload.parts !== null && upload.status !== 'completed';
    const echoed = upload.echo ?? {};
    // "The response to a HEAD request for a final upload SHOULD NOT contain the Upload-Offset header
    // unless the concatenation has been successfully finished."
    if (!finalPending) reply.header(UPLOAD_OFFSET, String(upload.status === 'completed' ? upload.size : upload.bytesReceived));
    if (upload.lengthDeferred) reply.header(UPLOAD_DEFER_LENGTH, '1');
    else reply.header(UPLOAD_LENGTH, String(upload.size));
    if (echoed[UPLOAD_METADATA] !== undefined) reply.header(UPLOAD_METADATA, echoed[UPLOAD_METADATA]);
    if (echoed[UPLOAD_CONCAT] !== undefined) reply.header(UPLOAD_CONCAT, echoed[UPLOAD_CONCAT]);
    expires(reply, upload);
    const interop = interopVersion(request);
    const allBytes = await service.hasAllBytes(upload);
    if (interop !== undefined) {
      reply.header(UPLOAD_COMPLETE, booleanField(allBytes || upload.status !== 'uploading'));
      reply.header(UPLOAD_LIMIT, uploadLimit(maxUploadSize));
    }
    if (upload.status === 'uploading' && !upload.isPart && allBytes) {
      // Every byte is here but publishing failed earlier (a store outage): try again now.
      void service.publishIfComplete(upload.id).catch((err: unknown) => request.log.warn({ err }, 'publishing again failed'));
    }
    // tus answers HEAD with 200; the IETF draft with 204.
    return reply.code(interop === undefined ? 200 : 204).send();
  });

  app.patch(`${tusPath}/:id`, hidden, async (request, reply) => {
    const interop = interopVersion(request);
    if (interop !== undefined) return ietfAppend(request, reply, interop);
    // "All PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise the server SHOULD return 415"
    if (contentTypeOf(request) !== OFFSET_OCTET_STREAM) {
      throw new SluiceError('unsupported_media_type', `PATCH bodies must be ${OFFSET_OCTET_STREAM}`);
    }
    const offset = nonNegativeInteger(request.headers, UPLOAD_OFFSET);
    if (offset === undefined) throw new SluiceError('invalid_request', 'Upload-Offset is required');
    const { id } = await tusUpload(service, request);
    const upload = await service.append(request.owner, id, appendRequest(request, offset));
    expires(reply, upload);
    return reply.code(204).header(UPLOAD_OFFSET, String(upload.bytesReceived)).send();
  });

  /**
   * IETF draft upload creation: the POST carries (part of) the representation itself, in whatever
   * media type it has. `Upload-Complete: ?1` means the body is all of it.
   */
  async function ietfCreate(request: FastifyRequest, reply: FastifyReply, interop: 5 | 6) {
    const complete = uploadComplete(request);
    if (complete === undefined) throw new SluiceError('invalid_request', 'Upload-Complete is required');
    const h = request.headers;
    let size = nonNegativeInteger(h, UPLOAD_LENGTH);
    const declaredLength = h['content-length'] === undefined || h['transfer-encoding'] !== undefined ? undefined : Number(h['content-length']);
    if (size === undefined && complete && declaredLength !== undefined) size = declaredLength;
    const type = contentTypeOf(request);
    let fileName = 'upload';
    if (h['content-disposition']) {
      try {
        fileName = contentDisposition.parse(h['content-disposition']).parameters.filename ?? fileName;
      } catch {
        throw new SluiceError('invalid_request', 'Content-Disposition is malformed');
      }
    }
    let upload = await service.createStream(request.owner, {
      protocol: 'ietf',
      fileName,
      contentType: type && MIME.test(type) && type !== PARTIAL_UPLOAD ? type : 'application/octet-stream',
      metadata: {},
      echo: null,
      size,
      isPart: false,
    });
    request.log = request.log.child({ uploadId: upload.id });
    const location = uploadUrl(request, upload.id);
    reply.header('location', location);
    if (hasBody(request) || complete) {
      sendUploadResumptionSupported(request, reply, location, interop);
      upload = await service.append(request.owner, upload.id, { ...appendRequest(request, 0), length: undefined, complete });
    }
    expires(reply, upload);
    const done = upload.status === 'completed';
    return reply
      .code(done ? 200 : 201)
      .header(UPLOAD_OFFSET, String(upload.bytesReceived))
      .header(UPLOAD_COMPLETE, booleanField(done || complete))
      .send();
  }

  /** IETF draft append: like a tus PATCH, with `Upload-Complete` marking the last part. */
  async function ietfAppend(request: FastifyRequest, reply: FastifyReply, interop: 5 | 6) {
    // Interop 6 (draft-05) labels appended bytes with their own media type.
    if (interop >= 6 && contentTypeOf(request) !== PARTIAL_UPLOAD) {
      throw new SluiceError('unsupported_media_type', `appends must be ${PARTIAL_UPLOAD}`);
    }
    const complete = uploadComplete(request);
    if (complete === undefined) throw new SluiceError('invalid_request', 'Upload-Complete is required');
    const offset = nonNegativeInteger(request.headers, UPLOAD_OFFSET);
    if (offset === undefined) throw new SluiceError('invalid_request', 'Upload-Offset is required');
    const { id } = await tusUpload(service, request);
    const upload = await service.append(request.owner, id, { ...appendRequest(request, offset), complete });
    expires(reply, upload);
    const done = upload.status === 'completed';
    return reply
      .code(done ? 200 : 204)
      .header(UPLOAD_OFFSET, String(upload.bytesReceived))
      .header(UPLOAD_COMPLETE, booleanField(done))
      .send();
  }

  app.delete(`${tusPath}/:id`, hidden, async (request, reply) => {
    await tusUpload(service, request);
    await service.terminate(request.owner, uploadId(request));
    return reply.code(204).send();
  });
};

function uploadId(request: FastifyRequest): string {
  const { id } = request.params as { id: string };
  if (!UUID.test(id)) throw new SluiceError('not_found', 'no such upload');
  return id;
}

/** The tus view of an upload: gone ones answer 404 (terminated) or 410 (expired, failed). */
async function tusUpload(service: UploadService, request: FastifyRequest): Promise<Upload> {
  const upload = await service.status(request.owner, uploadId(request));
  if (upload.layout !== 'stream') throw new SluiceError('not_found', 'this upload was created with the native API');
  if (upload.status === 'aborted') throw new SluiceError('not_found', 'the upload was terminated');
  if (upload.status === 'expired') throw new SluiceError('upload_expired');
  if (upload.status === 'failed') throw new SluiceError('upload_expired', `the upload failed: ${upload.failure ?? ''}`);
  return upload;
}

function appendRequest(request: FastifyRequest, offset: number): AppendRequest {
  const h = request.headers;
  const length = h['content-length'];
  const chunked = h['transfer-encoding'] !== undefined;
  const checksum = parseChecksum(h);
  // checksum-trailer: the digest arrives after the body, announced by `Trailer: Upload-Checksum`.
  const trailer = !checksum && /(^|,)\s*upload-checksum\s*(,|$)/i.test(String(h.trailer ?? '')) && chunked;
  return {
    offset,
    stream: request.raw,
    declaredLength: length === undefined || chunked ? undefined : Number(length),
    length: nonNegativeInteger(h, UPLOAD_LENGTH),
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

function contentTypeOf(request: FastifyRequest): string | undefined {
  return request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
