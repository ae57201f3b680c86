import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import { HEADER_CONTENT_RANGE, clientSha256, parseContentRange, single } from '../../http/chunk-headers.js';
import type { ChunkAddress, ChunkReceipt as Receipt, UploadService } from '../../service/upload-service.js';
import { FORM_DATA, formChunk, isFormData } from './form-chunk.js';
import { ChunkParams, ChunkReceipt, IdParams, Problem } from './schemas.js';

const OCTET_STREAM = 'application/octet-stream';

const problems = { 400: Problem, 404: Problem, 409: Problem, 410: Problem, 415: Problem, 422: Problem };

/**
 * Chunk uploads: `PUT /v1/uploads/:id/chunks/:index`, or `PUT /v1/uploads/:id` with a
 * `Content-Range` naming exactly one chunk. The body is raw bytes, streamed by the service; the
 * content-type parsers below let it through unread (and only in this plugin's scope). A chunk may
 * also come as a form (`POST /v1/uploads/:id/chunks`, or the PUT by index): its file field streams
 * the same way.
 */
export const chunkRoutes: FastifyPluginAsyncTypebox<{ service: UploadService; maxChunkSize: number }> = async (app, { service, maxChunkSize }) => {
  // Fastify's default JSON and text parsers would read (and buffer) a body: none of them here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(OCTET_STREAM, (_request, _payload, done) => done(null));
  // A form's body is read by busboy in the route, as a stream (form-chunk.ts).
  app.addContentTypeParser(FORM_DATA, (_request, _payload, done) => done(null));
  // A body sent without a Content-Type (curl -T does this) is taken as raw bytes too; any other
  // declared type is refused rather than guessed at.
  app.addContentTypeParser('*', (request, _payload, done) => {
    if (request.headers['content-type'] === undefined) return done(null);
    done(new SluiceError('unsupported_media_type', `chunk bodies are ${OCTET_STREAM}, not ${request.headers['content-type']}`));
  });

  /**
   * A chunk sent as a form: its file field's bytes, at the index of the path, or of its `index`
   * field, or of its `offset` field (a byte offset on the grid); `checksum` or `sha256` (hex) is
   * checked as X-Chunk-Sha256 would be.
   */
  const receiveForm = async (request: FastifyRequest, id: string, pathIndex: number | undefined) => {
    const { fields, file } = await formChunk(request, maxChunkSize);
    try {
      let index = pathIndex;
      if (index === undefined && fields.index !== undefined) {
        if (!/^(0|[1-9]\d{0,8})$/.test(fields.index)) throw new SluiceError('invalid_range', 'the index field is a chunk index (0, 1, ...)');
        index = Number(fields.index);
      }
      if (index === undefined && fields.offset !== undefined) {
        const offset = /^(0|[1-9]\d{0,15})$/.test(fields.offset) ? Number(fields.offset) : Number.NaN;
        const { chunkSize } = await service.get(request.owner, id);
        if (!Number.isSafeInteger(offset) || offset % chunkSize !== 0) {
          throw new SluiceError('invalid_range', `the offset field must be a multiple of the chunk size (${chunkSize})`);
        }
        index = offset / chunkSize;
      }
      if (index === undefined) throw new SluiceError('invalid_range', 'a chunk form needs an index or offset field before its file');
      const digest = fields.sha256 ?? fields.checksum;
      if (digest !== undefined && !/^[0-9a-fA-F]{64}$/.test(digest))
        throw new SluiceError('invalid_request', 'checksum is a SHA-256 in hexadecimal (64 digits)');
      return await service.receiveChunk(request.owner, id, { index }, { stream: file, sha256: digest?.toLowerCase() });
    } finally {
      // Whatever was not read (a refused chunk) is drained, so that the answer can be sent.
      file.resume();
    }
  };

  const receive = (request: FastifyRequest, id: string, address: ChunkAddress) => {
    if (isFormData(request)) return receiveForm(request, id, 'index' in address ? address.index : undefined);
    const length = request.headers['content-length'];
    return service.receiveChunk(request.owner, id, address, {
      stream: request.raw,
      declaredLength: length === undefined || request.headers['transfer-encoding'] !== undefined ? undefined : Number(length),
      sha256: clientSha256(request.headers),
    });
  };

  app.put(
    '/v1/uploads/:id/chunks/:index',
    {
      config: { signedUrl: true },
      schema: { tags: ['chunks'], summary: 'Upload one chunk by index', params: ChunkParams, response: { 200: ChunkReceipt, ...problems } },
    },
    async (request, reply) => present(reply, await receive(request, request.params.id, { index: Number(request.params.index) })),
  );

  app.post(
    '/v1/uploads/:id/chunks',
    {
      config: { signedUrl: true },
      schema: {
        tags: ['chunks'],
        summary: 'Upload one chunk as multipart/form-data: index or offset, optional checksum (SHA-256 hex), then the file field',
        params: IdParams,
        response: { 200: ChunkReceipt, ...problems },
      },
    },
    async (request, reply) => {
      if (!isFormData(request)) throw new SluiceError('unsupported_media_type', `POST .../chunks takes ${FORM_DATA}; PUT .../chunks/:index takes raw bytes`);
      return present(reply, await receiveForm(request, request.params.id, undefined));
    },
  );

  app.put(
    '/v1/uploads/:id',
    {
      config: { signedUrl: true },
      schema: {
        tags: ['chunks'],
        summary: 'Upload one chunk by byte range (Content-Range: bytes first-last/size)',
        params: IdParams,
        response: { 200: ChunkReceipt, ...problems },
      },
    },
    async (request, reply) => {
      const header = single(request.headers[HEADER_CONTENT_RANGE], 'Content-Range');
      if (header === undefined) throw new SluiceError('invalid_range', 'Content-Range is required: bytes <first>-<last>/<size>');
      return present(reply, await receive(request, request.params.id, { range: parseContentRange(header) }));
    },
  );
};

/**
 * A chunk's receipt. Its ETag is its SHA-256: a client of direct uploads (seed 003's local mode)
 * reads it from the header or the body and reports it at finish, as it would an S3 part's.
 */
function present(reply: FastifyReply, { chunk, upload }: Receipt) {
  const etag = `"${chunk.sha256}"`;
  reply.header('etag', etag);
  return {
    index: chunk.index,
    offset: chunk.offset,
    length: chunk.length,
    sha256: chunk.sha256,
    chunks_received: upload.chunksReceived,
    bytes_received: upload.bytesReceived,
    total_chunks: upload.totalChunks,
    part_number: chunk.index + 1,
    etag,
  };
}
