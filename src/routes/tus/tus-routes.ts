import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import { answerable, logRequestError, toSluiceError } from '../../http/error-handler.js';
import { absoluteUrl, type UrlOptions } from '../../http/urls.js';
import { inline } from '../../lib/disposition.js';
import { isStored, type Upload } from '../../ledger/ledger.js';
import type { UploadService } from '../../service/upload-service.js';
import { sendDownload } from '../download.js';
import { INTEROP_HEADER, PARTIAL_UPLOAD, UPLOAD_LIMIT, interopVersion, limitField } from './ietf.js';
import { ietfHandlers } from './ietf-routes.js';
import type { TusErrorRenderer } from './tus-errors.js';
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
  idFromUrl,
  nonNegativeInteger,
  parseConcat,
  parseMetadata,
} from './tus-headers.js';
import { appendRequest, contentTypeOf, hasBody, MIME, tusUpload, uploadId } from './tus-requests.js';

export interface TusRouteOptions {
  service: UploadService;
  tusPath: string;
  maxUploadSize: number;
  uploadTtlMs: number;
  urls: UrlOptions;
  renderError: TusErrorRenderer;
  now: () => number;
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

/**
 * The tus 1.0.0 endpoint: a thin adapter from tus requests to the upload service. Bodies are left
 * unread by the content-type parser and streamed by the service.
 */
export const tusRoutes: FastifyPluginAsync<TusRouteOptions> = async (app, opts) => {
  const { service, tusPath, maxUploadSize, urls, renderError } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.setErrorHandler((raw, request, reply) => {
    const err = toSluiceError(raw);
    if (!logRequestError(request, reply, raw, err)) return reply;
    return renderError(request, reply, answerable(err));
  });

  app.addHook('onRequest', async (request, reply) => {
    const interop = interopVersion(request.headers);
    if (interop !== undefined) {
      reply.header(INTEROP_HEADER, String(interop));
      return; // an IETF draft request: no Tus-Resumable
    }
    // "The Tus-Resumable header MUST be included in every request and response except for OPTIONS requests."
    reply.header('tus-resumable', TUS_VERSION);
    // OPTIONS: "the Server MUST ignore the header"; GET is a download, which any HTTP client may
    // make (tusd serves it the same way).
    if (request.method === 'OPTIONS' || request.method === 'GET') return;
    const version = request.headers[TUS_RESUMABLE];
    if (version !== TUS_VERSION) {
      throw new SluiceError(
        'tus_version_unsupported',
        version === undefined ? 'Tus-Resumable is required' : `Tus-Resumable ${String(version)} is not supported`,
      );
    }
  });

  const uploadUrl = (request: FastifyRequest, id: string) => absoluteUrl(request, urls, `${tusPath}/${id}`);
  const ietf = ietfHandlers({ service, maxUploadSize, uploadTtlMs: opts.uploadTtlMs, uploadUrl, now: opts.now });

  const options = async (request: FastifyRequest, reply: FastifyReply) => {
    const interop = interopVersion(request.headers);
    // IETF: "MUST include the Accept-Patch header field in response to an OPTIONS request ... The
    // value ... MUST include the full application/partial-upload media type"; "The Upload-Limit
    // header field SHOULD be included in the response to an OPTIONS request if limits apply."
    return reply
      .code(204)
      .header('tus-version', TUS_VERSION)
      .header('tus-extension', TUS_EXTENSIONS.join(','))
      .header('tus-max-size', String(maxUploadSize))
      .header('tus-checksum-algorithm', Object.keys(CHECKSUM_ALGORITHMS).join(','))
      .header('accept-patch', `${PARTIAL_UPLOAD}, ${OFFSET_OCTET_STREAM}`)
      .header(UPLOAD_LIMIT, limitField(interop ?? 8, { maxSize: maxUploadSize, maxAge: opts.uploadTtlMs / 1000 }))
      .send();
  };
  // The tus and IETF contracts are those specifications; they are not repeated in the OpenAPI document.
  const hidden = { schema: { hide: true } };
  app.options(tusPath, hidden, options);
  app.options(`${tusPath}/:id`, hidden, options);

  const expires = (reply: FastifyReply, upload: Upload) => {
    // "This header MUST be included in every PATCH response if the upload is going to expire."
    if (upload.status === 'uploading') reply.header(UPLOAD_EXPIRES, new Date(upload.expiresAt).toUTCString());
  };

  app.post(tusPath, hidden, async (request, reply) => {
    const interop = interopVersion(request.headers);
    if (interop !== undefined) return ietf.create(request, reply, interop);
    const h = request.headers;
    const concat = parseConcat(h);
    const meta = parseMetadata(h);
    const values = meta?.values ?? {};
    const declared = values.filetype || values.type;
    // "The Server MUST respond with ... Upload-Metadata" as sent, and Upload-Concat likewise.
    const echo: Record<string, string> = {};
    if (meta) echo[UPLOAD_METADATA] = meta.raw;
    if (concat) echo[UPLOAD_CONCAT] = concat.kind === 'final' ? concat.raw : 'partial';
    const common = {
      protocol: 'tus' as const,
      fileName: values.filename || values.name || undefined,
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
      upload = await service.append(request.owner, upload.id, appendRequest(request, 0, nonNegativeInteger(h, UPLOAD_LENGTH)));
      reply.header(UPLOAD_OFFSET, String(upload.bytesReceived));
    }
    expires(reply, upload);
    return reply.code(201).send();
  });

  app.head(`${tusPath}/:id`, hidden, async (request, reply) => {
    const interop = interopVersion(request.headers);
    if (interop !== undefined) return ietf.state(request, reply, interop);
    // A PATCH still attached to this upload is ended first and records what arrived (tusd's lock
    // release): a client asks for the offset when it has given up on that PATCH, and must be told
    // the real one - and be able to send from it.
    await service.interrupted(uploadId(request));
    const upload = await tusUpload(service, request);
    // "The Server MUST prevent the client and/or proxies from caching the response"
    reply.header('cache-control', 'no-store');
    const finalPending = upload.parts !== null && !isStored(upload);
    const echoed = upload.echo ?? {};
    // "The response to a HEAD request for a final upload SHOULD NOT contain the Upload-Offset header
    // unless the concatenation has been successfully finished."
    if (!finalPending) reply.header(UPLOAD_OFFSET, String(isStored(upload) ? upload.size : upload.bytesReceived));
    if (upload.lengthDeferred) reply.header(UPLOAD_DEFER_LENGTH, '1');
    else reply.header(UPLOAD_LENGTH, String(upload.size));
    if (echoed[UPLOAD_METADATA] !== undefined) reply.header(UPLOAD_METADATA, echoed[UPLOAD_METADATA]);
    if (echoed[UPLOAD_CONCAT] !== undefined) reply.header(UPLOAD_CONCAT, echoed[UPLOAD_CONCAT]);
    expires(reply, upload);
    if (upload.status === 'uploading' && !upload.isPart && (await service.hasAllBytes(upload))) {
      // Every byte is here but publishing failed earlier (a store outage): try again now.
      void service.publishIfComplete(upload.id).catch((err: unknown) => request.log.warn({ err }, 'publishing again failed'));
    }
    return reply.code(200).send();
  });

  // GET on the upload URL: the completed file (as tusd serves it), inline, with Range; a draft
  // request is answered like HEAD.
  app.get(`${tusPath}/:id`, hidden, async (request, reply) => {
    const interop = interopVersion(request.headers);
    if (interop !== undefined) return ietf.state(request, reply, interop);
    const upload = await tusUpload(service, request);
    if (!isStored(upload) || upload.location === null) {
      throw new SluiceError('upload_not_completed', `the upload is ${upload.status}; its file can be read once every byte has arrived`, {
        upload_status: upload.status,
      });
    }
    return sendDownload(request, reply, service, upload as Upload & { location: NonNullable<Upload['location']> }, inline(upload.fileName));
  });

  app.patch(`${tusPath}/:id`, hidden, async (request, reply) => {
    const interop = interopVersion(request.headers);
    if (interop !== undefined) return ietf.append(request, reply, interop);
    // "All PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise the server SHOULD return 415"
    if (contentTypeOf(request) !== OFFSET_OCTET_STREAM) {
      throw new SluiceError('unsupported_media_type', `PATCH bodies must be ${OFFSET_OCTET_STREAM}`);
    }
    const offset = nonNegativeInteger(request.headers, UPLOAD_OFFSET);
    if (offset === undefined) throw new SluiceError('invalid_request', 'Upload-Offset is required');
    const { id } = await tusUpload(service, request);
    const upload = await service.append(request.owner, id, appendRequest(request, offset, nonNegativeInteger(request.headers, UPLOAD_LENGTH)));
    expires(reply, upload);
    return reply.code(204).header(UPLOAD_OFFSET, String(upload.bytesReceived)).send();
  });

  app.delete(`${tusPath}/:id`, hidden, async (request, reply) => {
    await tusUpload(service, request);
    await service.terminate(request.owner, uploadId(request));
    return reply.code(204).send();
  });
};
