import contentDisposition from 'content-disposition';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import { clientSha256 } from '../../http/chunk-headers.js';
import { isStored, type Upload } from '../../ledger/ledger.js';
import type { AppendRequest, UploadService } from '../../service/upload-service.js';
import { presentUpload } from '../native/present.js';
import { booleanField, completeField, integerField, type Interop, limitField, PARTIAL_UPLOAD, sendInterim, UPLOAD_COMPLETE, UPLOAD_LIMIT } from './ietf.js';
import { UPLOAD_LENGTH, UPLOAD_OFFSET } from './tus-headers.js';
import { appendRequest, contentTypeOf, declaredLength, hasBody, MIME, tusUpload, uploadId } from './tus-requests.js';

export interface IetfOptions {
  service: UploadService;
  maxUploadSize: number;
  uploadTtlMs: number;
  uploadUrl: (request: FastifyRequest, id: string) => string;
  now: () => number;
}

/**
 * The IETF draft's requests on the tus endpoint, at every interop version (see ietf.ts): upload
 * creation, offset retrieval (HEAD, and GET, answered the same way), and append. Each is a call
 * on the same upload service as tus; only the fields and status codes differ.
 */
export function ietfHandlers({ service, maxUploadSize, uploadTtlMs, uploadUrl, now }: IetfOptions) {
  const limits = (v: Interop, upload?: Upload) =>
    limitField(v, { maxSize: maxUploadSize, maxAge: upload ? (upload.expiresAt - now()) / 1000 : uploadTtlMs / 1000 });

  /** The request's own body options: its digest, strict lengths and progress 104s (interop 7 on). */
  const body = (request: FastifyRequest, reply: FastifyReply, v: Interop, offset: number, length: number | undefined): AppendRequest => {
    const req = appendRequest(request, offset, length);
    // "the client can include the Content-Digest header field ... If the digests don't match the
    // server SHOULD consider the transfer failed, not append the content to the upload resource".
    const sha256 = clientSha256(request.headers);
    if (sha256 !== undefined) req.checksum = { algorithms: ['sha256'], expected: () => ({ algorithm: 'sha256', digest: Buffer.from(sha256, 'hex') }) };
    if (v >= 7) {
      // "If the length is known, the server MUST prevent the offset from exceeding the upload length
      // by rejecting the request once the offset exceeds the length, marking the upload resource
      // invalid and rejecting any further interaction with it."
      req.strictLength = true;
      // "the server SHOULD send interim responses with a 104 ... and the Upload-Offset header field
      // set to the current offset" - sent only once that offset is durable, since "Upload-Offset
      // ... serves as ... a guarantee that no retransmission of it will be necessary".
      req.onDurable = (at) => sendInterim(request, reply, v, { 'Upload-Offset': String(at) });
    }
    return req;
  };

  /** The response that completes an upload "comes from the targeted resource processing" it. */
  const completing = (reply: FastifyReply, upload: Upload) =>
    reply.code(200).header(UPLOAD_OFFSET, String(upload.size)).header(UPLOAD_COMPLETE, booleanField(true)).type('application/json').send(presentUpload(upload));

  /**
   * Upload creation: the POST carries (part of) the representation itself, in whatever media type
   * it has; `Upload-Complete: ?1` means the body is all of it.
   */
  async function create(request: FastifyRequest, reply: FastifyReply, v: Interop) {
    const h = request.headers;
    const complete = completeField(h, v);
    if (complete === undefined) throw new SluiceError('invalid_request', 'Upload-Complete is required');
    // "If the request includes the Upload-Complete field value set to true and a valid
    // Content-Length ... the length is then the sum of the current offset and the Content-Length";
    // "If indicators (1) and (2) are both present in the same request, their indicated lengths MUST match."
    let size = integerField(h, UPLOAD_LENGTH, v);
    const contentLength = declaredLength(request);
    if (complete && contentLength !== undefined) {
      if (size !== undefined && size !== contentLength) {
        throw new SluiceError('inconsistent_length', `Upload-Length ${size} and Content-Length ${contentLength} of a complete upload disagree`);
      }
      size = contentLength;
    }
    const type = contentTypeOf(request);
    let upload = await service.createStream(request.owner, {
      protocol: 'ietf',
      fileName: fileNameOf(request),
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
      // "When sent, it MUST include Location ... and MUST include the Upload-Limit header field with
      // the corresponding limits if existing."
      sendInterim(request, reply, v, { Location: location, ...(v >= 6 && { 'Upload-Limit': limits(v, upload) }) });
      upload = await service.append(request.owner, upload.id, { ...body(request, reply, v, 0, undefined), complete });
    }
    if (isStored(upload)) return completing(reply, upload);
    // "If the Upload-Complete header field is set to false ... the server MUST include the Location
    // response header field ... and MUST include the Upload-Limit header field". "Servers are
    // RECOMMENDED to use the 201 (Created) status code."
    if (v >= 6) reply.header(UPLOAD_LIMIT, limits(v, upload));
    return reply.code(201).header(UPLOAD_OFFSET, String(upload.bytesReceived)).header(UPLOAD_COMPLETE, booleanField(complete)).send();
  }

  /**
   * Offset retrieval. "If an upload resource receives a new request to retrieve the offset ...
   * while a previous request ... is still ongoing, the resource SHOULD ... [terminate] the previous
   * request before processing the new request": an append still attached is ended first and
   * records what arrived, so that "the offset sent by the server MUST be accepted in a subsequent
   * request to append". GET is answered the same way, without content.
   */
  async function state(request: FastifyRequest, reply: FastifyReply, v: Interop) {
    await service.interrupted(uploadId(request));
    const upload = await tusUpload(service, request);
    const complete = upload.status !== 'uploading' || (await service.hasAllBytes(upload));
    if (upload.status === 'uploading' && complete) {
      // Every byte is here but publishing failed earlier (a store outage): try again now.
      void service.publishIfComplete(upload.id).catch((err: unknown) => request.log.warn({ err }, 'publishing again failed'));
    }
    // "MUST include the offset ..., MUST include the completeness state ..., MUST include the
    // length ... unless the client has not supplied one, MUST indicate the limits ..., and SHOULD
    // include the Cache-Control header field with the value no-store".
    reply
      .header('cache-control', 'no-store')
      .header(UPLOAD_OFFSET, String(isStored(upload) ? upload.size : upload.bytesReceived))
      .header(UPLOAD_COMPLETE, booleanField(complete));
    if (!upload.lengthDeferred) reply.header(UPLOAD_LENGTH, String(upload.size));
    if (v >= 6) reply.header(UPLOAD_LIMIT, limits(v, upload.status === 'uploading' ? upload : undefined));
    return reply.code(204).send();
  }

  /** Upload append: a PATCH of `application/partial-upload` bytes at the upload's offset. */
  async function append(request: FastifyRequest, reply: FastifyReply, v: Interop) {
    // Interop 6 on labels appended bytes with their own media type.
    if (v >= 6 && contentTypeOf(request) !== PARTIAL_UPLOAD) throw new SluiceError('unsupported_media_type', `appends must be ${PARTIAL_UPLOAD}`);
    const h = request.headers;
    const complete = completeField(h, v);
    if (complete === undefined) throw new SluiceError('invalid_request', 'Upload-Complete is required');
    const offset = integerField(h, UPLOAD_OFFSET, v);
    if (offset === undefined) throw new SluiceError('invalid_request', 'Upload-Offset is required');
    const current = await tusUpload(service, request);
    if (current.status !== 'uploading') {
      // "If the upload is already complete, the server MUST NOT modify the upload resource and MUST
      // reject the request": a non-empty body "MUST [be treated] as an inconsistent length failure";
      // an empty one gets 410 with the completed-upload problem type.
      if (hasBody(request)) throw new SluiceError('inconsistent_length', 'the upload is already complete and takes no more bytes');
      throw new SluiceError('upload_completed', 'the upload is already complete');
    }
    // A length implied from a wrong offset means nothing: the offset is answered first (the
    // service checks it again under the upload's lease).
    if (offset !== current.bytesReceived) {
      throw new SluiceError('offset_mismatch', `the bytes start at offset ${offset}, the upload is at ${current.bytesReceived}`, {
        offset: current.bytesReceived,
      });
    }
    let length = integerField(h, UPLOAD_LENGTH, v);
    const contentLength = declaredLength(request);
    if (complete && contentLength !== undefined) {
      const implied = offset + contentLength;
      if (length !== undefined && length !== implied) {
        throw new SluiceError('inconsistent_length', `Upload-Length ${length} disagrees with the ${implied} bytes this request completes`);
      }
      length = implied;
    }
    const upload = await service.append(request.owner, current.id, { ...body(request, reply, v, offset, length), complete });
    if (isStored(upload)) return completing(reply, upload);
    // "the upload resource acknowledges the appended data by sending a 2xx (Successful) response
    // with the Upload-Complete header field set to false".
    return reply.code(204).header(UPLOAD_OFFSET, String(upload.bytesReceived)).header(UPLOAD_COMPLETE, booleanField(false)).send();
  }

  return { create, state, append };
}

/**
 * "The Content-Disposition header field can be used to transmit a filename. For this purpose, the
 * inline disposition type is RECOMMENDED." Without one the service names the upload by its id.
 */
function fileNameOf(request: FastifyRequest): string | undefined {
  const header = request.headers['content-disposition'];
  if (!header) return undefined;
  try {
    const { parameters } = contentDisposition.parse(header);
    return parameters.filename || undefined;
  } catch {
    throw new SluiceError('invalid_request', 'Content-Disposition is malformed');
  }
}
