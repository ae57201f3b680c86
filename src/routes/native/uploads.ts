import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SluiceError } from '../../errors.js';
import type { UploadService } from '../../service/upload-service.js';
import type { FastifyRequest } from 'fastify';
import { absoluteUrl, type UrlOptions } from '../../http/urls.js';
import type { UrlSigner } from '../../http/signed-url.js';
import { partTargets } from './parts.js';
import { decodeCursor, encodeCursor, presentUpload, withDownloadLink } from './present.js';
import {
  CreateUploadBody,
  CreatedUpload,
  FinishBody,
  FinishResult,
  IdParams,
  ListQuery,
  Problem,
  StatusQuery,
  UploadList,
  UploadStatusBody,
  UploadSummary,
} from './schemas.js';

export interface NativeRouteOptions {
  service: UploadService;
  urls: UrlOptions;
  signer: UrlSigner;
  signedUrlTtlMs: number;
  directUrlTtlMs: number;
  now: () => number;
}

/** Part URLs in a direct upload's creation answer; GET .../parts?from= pages through the rest. */
const FIRST_PARTS = 100;

/** Missing chunk indexes per status answer unless the client asks for another page size. */
const MISSING_PAGE = 1000;

const problems = { 400: Problem, 404: Problem, 409: Problem, 410: Problem, 413: Problem, 422: Problem, 503: Problem };

/** Create, inspect, list, finish and abort uploads: thin translations to the upload service. */
export const uploadRoutes: FastifyPluginAsyncTypebox<NativeRouteOptions> = async (app, { service, urls, signer, signedUrlTtlMs, directUrlTtlMs, now }) => {
  const parts = partTargets({ service, urls, signer, directUrlTtlMs, now });
  // JSON only: a text/plain body is refused (415) rather than parsed and half-validated.
  app.removeContentTypeParser('text/plain');
  // "JSON text exchanged between systems that are not part of a closed ecosystem MUST be encoded
  // using UTF-8" (RFC 8259 section 8.1): a body that says it is another charset is refused, not
  // read as UTF-8.
  app.addHook('onRequest', async (request) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(request.headers['content-type'] ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      throw new SluiceError('unsupported_media_type', `JSON bodies are UTF-8; charset=${charset} is not accepted`);
    }
  });
  /**
   * Signed URLs that let their holder send this upload's chunks and read its status without a
   * token: `upload_url` (Content-Range PUTs, status) and `chunk_url_template` ({index} replaced).
   */
  const signedUrls = (request: FastifyRequest, id: string) => {
    const expiresAt = Math.floor((now() + signedUrlTtlMs) / 1000);
    const query = signer.query(id, expiresAt);
    const base = absoluteUrl(request, urls, `/v1/uploads/${id}`);
    return {
      upload_url: `${base}?${query}`,
      chunk_url_template: `${base}/chunks/{index}?${query}`,
      upload_url_expires_at: new Date(expiresAt * 1000).toISOString(),
    };
  };

  const withLink = withDownloadLink({ urls, signer, signedUrlTtlMs, now });

  app.post(
    '/v1/uploads',
    { schema: { tags: ['uploads'], summary: 'Create an upload session', body: CreateUploadBody, response: { 201: CreatedUpload, ...problems } } },
    async (request, reply) => {
      const b = request.body;
      const input = {
        fileName: b.file_name,
        size: b.size,
        sha256: b.sha256?.toLowerCase(),
        chunkSize: b.chunk_size,
        contentType: b.content_type,
        metadata: b.metadata,
      };
      const direct = b.transfer === 'direct';
      const partSha256 = b.part_sha256?.map((d) => d.toLowerCase());
      if (partSha256 && !direct) throw new SluiceError('invalid_request', 'part_sha256 is for direct uploads ("transfer": "direct")');
      // With local storage a direct upload's parts are this server's chunks, at signed chunk URLs.
      const upload =
        direct && service.directBackend === 'store' ? await service.createDirect(request.owner, input, partSha256) : await service.create(request.owner, input);
      request.log = request.log.child({ uploadId: upload.id });
      const url = absoluteUrl(request, urls, `/v1/uploads/${upload.id}`);
      const first = direct ? await parts.page(request, upload, 0, FIRST_PARTS) : undefined;
      if (first && partSha256 && service.directBackend === 'local') {
        for (const p of first.parts) {
          const digest = partSha256[p.part_number - 1];
          if (digest && p.headers) p.headers['x-chunk-sha256'] = digest;
        }
      }
      return reply
        .code(201)
        .header('location', url)
        .send({
          ...presentUpload(upload),
          ...signedUrls(request, upload.id),
          ...(first && {
            part_size: upload.chunkSize,
            parts: first.parts,
            ...(first.next_part !== undefined && { next_part: first.next_part }),
            expires_in: Math.floor(directUrlTtlMs / 1000),
          }),
        });
    },
  );

  app.get(
    '/v1/uploads/:id',
    {
      config: { signedUrl: true },
      schema: {
        tags: ['uploads'],
        summary: 'Status of an upload',
        params: IdParams,
        querystring: StatusQuery,
        response: { 200: UploadStatusBody, ...problems },
      },
    },
    async (request) => {
      const upload = await service.status(request.owner, request.params.id);
      const finishProgress = service.finishProgress(upload);
      // Paged, so that a 100,000-chunk upload's status stays a small answer (and a small query).
      const limit = Number(request.query.missing_limit ?? MISSING_PAGE);
      const from = request.query.missing_after === undefined ? 0 : Number(request.query.missing_after) + 1;
      const page = await service.missingChunks(upload, limit + 1, from);
      const missing = page.slice(0, limit);
      return {
        ...(request.viaSignedUrl ? presentUpload(upload) : withLink(request, upload)),
        missing_chunks: missing,
        missing_chunks_count: service.missingCount(upload),
        ...(page.length > limit && { missing_chunks_next: missing[missing.length - 1] as number }),
        ...(finishProgress !== undefined && { finish_progress: finishProgress }),
        // A token holder may refresh the signed URLs; a signed URL cannot extend itself.
        ...(upload.status === 'uploading' && upload.layout === 'grid' && !request.viaSignedUrl && signedUrls(request, upload.id)),
      };
    },
  );

  app.get(
    '/v1/uploads',
    { schema: { tags: ['uploads'], summary: "The caller's uploads, newest first", querystring: ListQuery, response: { 200: UploadList, 400: Problem } } },
    async (request) => {
      const limit = Number(request.query.limit ?? 50);
      let after: { createdAt: number; id: string } | undefined;
      if (request.query.cursor !== undefined) {
        after = decodeCursor(request.query.cursor);
        if (!after) throw new SluiceError('invalid_request', 'cursor is not one this server returned');
      }
      // One extra row tells whether there is a next page without a COUNT.
      const rows = await service.list(request.owner, limit + 1, after);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { uploads: page.map((u) => withLink(request, u)), next_cursor: rows.length > limit && last ? encodeCursor(last) : null };
    },
  );

  app.post(
    '/v1/uploads/:id/finish',
    {
      schema: {
        tags: ['uploads'],
        summary: 'Verify and store a fully received upload',
        description:
          'With `Prefer: respond-async` the answer is 202 as soon as finishing has started; poll the status URL in `Location`. ' +
          'With a post-processor (POST_PROCESS_URL), `Prefer: wait=N` waits up to N seconds for its answer (status `processing` until then).',
        params: IdParams,
        body: FinishBody,
        response: { 200: FinishResult, 202: UploadSummary, ...problems },
      },
      // `curl -X POST .../finish` sends no body at all; that means "no fields".
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request, reply) => {
      const reported = request.body?.parts?.map((p) => ({ index: p.part_number - 1, etag: p.etag }));
      const { upload, done } = await service.startFinish(request.owner, request.params.id, request.body?.sha256?.toLowerCase(), reported);
      // RFC 7240: respond-async lets the server answer before the work is done.
      if (upload.status !== 'completed' && /(^|[,;\s])respond-async([,;\s]|$)/i.test(String(request.headers.prefer ?? ''))) {
        return reply
          .code(202)
          .header('location', absoluteUrl(request, urls, `/v1/uploads/${upload.id}`))
          .header('preference-applied', 'respond-async')
          .send(presentUpload(upload));
      }
      let finished = await done;
      // RFC 7240 "wait=N": with a post-processor, wait up to N seconds (at most a minute) for its answer.
      const wait = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?/i.exec(String(request.headers.prefer ?? ''))?.[1];
      if (finished.status === 'processing' && wait !== undefined) finished = await service.waitProcessed(finished, Math.min(Number(wait), 60) * 1000);
      return {
        id: finished.id,
        status: finished.status,
        sha256: finished.sha256 as string,
        size: finished.size,
        location: finished.location as NonNullable<typeof finished.location>,
        // Whether the file was checked against a digest its client gave (the whole file's, or each
        // direct part's); false: `sha256` is what the server computed (REQUIRE_FILE_SHA256 is off).
        sha256_checked:
          request.body?.sha256 !== undefined || finished.expectedSha256 !== null || (finished.transfer === 'direct' && finished.multipart !== null),
        ...(finished.processing !== null && { processing: finished.processing }),
        ...(finished.failure !== null && finished.status === 'failed' && { failure: finished.failure }),
      };
    },
  );

  app.delete(
    '/v1/uploads/:id',
    { schema: { tags: ['uploads'], summary: 'Abort an upload and remove its bytes', params: IdParams, response: { 204: Type.Null(), ...problems } } },
    async (request, reply) => {
      await service.abort(request.owner, request.params.id);
      return reply.code(204).send(null);
    },
  );
};
