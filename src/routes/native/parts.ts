import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';
import type { UrlSigner } from '../../http/signed-url.js';
import { absoluteUrl, type UrlOptions } from '../../http/urls.js';
import type { Upload } from '../../ledger/ledger.js';
import type { UploadService } from '../../service/upload-service.js';
import { IdParams, PartList, PartParams, PartReportBody, PartsQuery, PartTarget, PartUrlBody, Problem, UploadSummary } from './schemas.js';
import { presentUpload } from './present.js';

export interface PartRouteOptions {
  service: UploadService;
  urls: UrlOptions;
  signer: UrlSigner;
  directUrlTtlMs: number;
  now: () => number;
}

type Target = {
  part_number: number;
  size: number;
  url?: string;
  method?: 'PUT';
  headers?: Record<string, string>;
  expires_at?: string;
  etag?: string;
  sha256?: string;
};

const problems = { 400: Problem, 404: Problem, 409: Problem, 410: Problem };

/** Part URLs of direct uploads: presigned S3 requests, or this server's own signed chunk URLs. */
export function partTargets({ service, urls, signer, directUrlTtlMs, now }: PartRouteOptions) {
  const partSize = (upload: Upload, index: number) => Math.min(upload.chunkSize, upload.size - index * upload.chunkSize);

  /** With local storage, a part is a chunk: its URL is the signed chunk URL, its ETag its SHA-256. */
  const localTarget = (request: FastifyRequest, upload: Upload, index: number, sha256?: string): Target => {
    const expiresAt = Math.floor((now() + directUrlTtlMs) / 1000);
    const base = absoluteUrl(request, urls, `/v1/uploads/${upload.id}`);
    return {
      part_number: index + 1,
      size: partSize(upload, index),
      url: `${base}/chunks/${index}?${signer.query(upload.id, expiresAt)}`,
      method: 'PUT',
      // The server checks a declared digest itself (X-Chunk-Sha256), as S3 checks its checksum header.
      headers: { 'content-type': 'application/octet-stream', ...(sha256 && { 'x-chunk-sha256': sha256 }) },
      expires_at: new Date(expiresAt * 1000).toISOString(),
    };
  };

  /** Parts from index `from`, at most `limit`: where to send each, and what was reported. */
  const page = async (request: FastifyRequest, upload: Upload, from: number, limit: number): Promise<{ parts: Target[]; next_part?: number }> => {
    const end = Math.min(upload.totalChunks, from + limit);
    const parts: Target[] = [];
    if (service.directBackend === 'store') {
      for (const [i, view] of (await service.directParts(upload, from, limit)).entries()) {
        const index = from + i;
        parts.push({
          part_number: index + 1,
          size: partSize(upload, index),
          ...(view.target && {
            url: view.target.url,
            method: view.target.method,
            headers: view.target.headers,
            expires_at: new Date(view.target.expiresAt).toISOString(),
          }),
          ...(view.part?.etag && { etag: view.part.etag }),
          ...(view.part?.sha256 && { sha256: view.part.sha256 }),
        });
      }
    } else {
      const received = new Map((await service.receivedChunks(upload, from, limit)).map((c) => [c.index, c]));
      for (let index = from; index < end; index++) {
        const chunk = received.get(index);
        parts.push({
          ...(upload.status === 'uploading' ? localTarget(request, upload, index) : { part_number: index + 1, size: partSize(upload, index) }),
          ...(chunk && { etag: `"${chunk.sha256}"`, sha256: chunk.sha256 }),
        });
      }
    }
    return { parts, ...(end < upload.totalChunks && { next_part: end + 1 }) };
  };

  return { page, localTarget };
}

/**
 * Direct uploads' parts (seed 003): the part URLs, fresh ones for expired ones, and the client's
 * report of each part it sent. One client works against both backends: with S3 the parts go to
 * the bucket and are reported here; with local storage they go to this server's chunk URLs, whose
 * answers already record them.
 */
export const partRoutes: FastifyPluginAsyncTypebox<PartRouteOptions> = async (app, opts) => {
  const { service } = opts;
  const targets = partTargets(opts);

  app.get(
    '/v1/uploads/:id/parts',
    {
      schema: {
        tags: ['direct'],
        summary: 'Part URLs of a direct upload (fresh ones each time), and what was reported',
        params: IdParams,
        querystring: PartsQuery,
        response: { 200: PartList, ...problems },
      },
    },
    async (request) => {
      const upload = await service.status(request.owner, request.params.id);
      const from = Number(request.query.from ?? 1) - 1;
      return targets.page(request, upload, from, Number(request.query.limit ?? 100));
    },
  );

  app.post(
    '/v1/uploads/:id/parts/:n/url',
    {
      schema: {
        tags: ['direct'],
        summary: 'A URL for one part; with its sha256, the store refuses other bytes',
        params: PartParams,
        body: PartUrlBody,
        response: { 200: PartTarget, ...problems },
      },
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const index = Number(request.params.n) - 1;
      const sha256 = request.body?.sha256?.toLowerCase();
      if (service.directBackend === 'local') {
        const upload = await service.status(request.owner, request.params.id);
        if (upload.status !== 'uploading')
          throw new SluiceError('upload_not_writable', `upload ${upload.id} is ${upload.status}`, { upload_status: upload.status });
        if (index >= upload.totalChunks) throw new SluiceError('invalid_range', `part numbers of this upload are 1 to ${upload.totalChunks}`);
        return targets.localTarget(request, upload, index, sha256);
      }
      const target = await service.directPartUrl(request.owner, request.params.id, index, sha256);
      const upload = await service.get(request.owner, request.params.id);
      return {
        part_number: index + 1,
        size: Math.min(upload.chunkSize, upload.size - index * upload.chunkSize),
        url: target.url,
        method: target.method,
        headers: target.headers,
        expires_at: new Date(target.expiresAt).toISOString(),
      };
    },
  );

  app.put(
    '/v1/uploads/:id/parts/:n',
    {
      schema: {
        tags: ['direct'],
        summary: 'Report a part sent to its URL (its ETag, and its SHA-256 if known)',
        params: PartParams,
        body: PartReportBody,
        response: { 200: UploadSummary, ...problems },
      },
    },
    async (request) => {
      const index = Number(request.params.n) - 1;
      const { etag, sha256 } = request.body;
      if (service.directBackend === 'local') {
        // The chunk's own answer recorded it; a report only confirms that the ETags agree.
        const upload = await service.status(request.owner, request.params.id);
        const [chunk] = await service.receivedChunks(upload, index, 1);
        if (!chunk || chunk.index !== index) throw new SluiceError('chunks_missing', `part ${index + 1} has not arrived`, { missing_chunks: [index] });
        if (chunk.sha256 !== etag.replace(/"/g, '')) {
          throw new SluiceError('chunk_conflict', `part ${index + 1} arrived with ETag "${chunk.sha256}"`, { index });
        }
        return presentUpload(upload);
      }
      return presentUpload(await service.reportPart(request.owner, request.params.id, index, etag, sha256?.toLowerCase()));
    },
  );
};
