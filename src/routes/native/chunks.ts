import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import { HEADER_CONTENT_RANGE, clientSha256, parseContentRange, single } from '../../http/chunk-headers.js';
import type { ChunkAddress, ChunkReceipt as Receipt, UploadService } from '../../service/upload-service.js';
import { ChunkParams, ChunkReceipt, IdParams, Problem } from './schemas.js';

const OCTET_STREAM = 'application/octet-stream';

const problems = { 400: Problem, 404: Problem, 409: Problem, 410: Problem, 415: Problem, 422: Problem };

/**
 * Chunk uploads: `PUT /v1/uploads/:id/chunks/:index`, or `PUT /v1/uploads/:id` with a
 * `Content-Range` naming exactly one chunk. The body is raw bytes, streamed by the service; the
 * content-type parser below lets it through unread (and only in this plugin's scope).
 */
export const chunkRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  // Fastify's default JSON and text parsers would read (and buffer) a body: none of them here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(OCTET_STREAM, (_request, _payload, done) => done(null));
  // A body sent without a Content-Type (curl -T does this) is taken as raw bytes too; any other
  // declared type is refused rather than guessed at.
  app.addContentTypeParser('*', (request, _payload, done) => {
    if (request.headers['content-type'] === undefined) return done(null);
    done(new SluiceError('unsupported_media_type', `chunk bodies are ${OCTET_STREAM}, not ${request.headers['content-type']}`));
  });

  const receive = (request: FastifyRequest, id: string, address: ChunkAddress) => {
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
