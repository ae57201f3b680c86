/** A small client of the native API, for the CLI. Errors carry the server's stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
    /** The server's limits named by the error (chunk_size_out_of_range: min_chunk_size, max_chunk_size). */
    readonly limits?: { min?: number; max?: number },
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** An upload as the server shows it: a grid (native chunks) or a stream (tus, IETF) has its own fields. */
export interface UploadInfo {
  id: string;
  file_name: string;
  layout: 'grid' | 'stream';
  protocol: string;
  /** Absent while a stream upload's length is not known yet. */
  size?: number;
  chunk_size?: number;
  total_chunks?: number;
  chunks_received?: number;
  /** A composed stream upload's parts. */
  part_uploads?: string[];
  transfer?: 'server' | 'direct';
  status: string;
  bytes_received: number;
  missing_chunks?: number[];
  missing_chunks_next?: number;
  sha256?: string;
  location?: unknown;
  created_at: string;
}

/** A stored file as GET /v1/files shows it. */
export type FileInfo = UploadInfo & { size: number; content_type: string; metadata: Record<string, string>; download_url?: string };

/** A native (grid) upload: the one kind the CLI creates and resumes. */
export type GridUpload = UploadInfo & { size: number; chunk_size: number; total_chunks: number; chunks_received: number };

export function isGrid(u: UploadInfo): u is GridUpload {
  return u.layout === 'grid';
}

export class Api {
  constructor(
    readonly server: string,
    private readonly token: string | undefined,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers: {
          ...(this.token && { authorization: `Bearer ${this.token}` }),
          ...(body !== undefined && !(body instanceof Uint8Array) && { 'content-type': 'application/json' }),
          ...headers,
        },
        // Chunks are Buffers over plain ArrayBuffers (read from the file), which fetch sends as they are.
        ...(body !== undefined && { body: body instanceof Uint8Array ? (body as Uint8Array<ArrayBuffer>) : JSON.stringify(body) }),
      });
    } catch (err) {
      throw new ApiError(
        0,
        'network_error',
        `cannot reach ${this.server}: ${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message}`,
      );
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    const json = text && /json/.test(res.headers.get('content-type') ?? '') ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      throw new ApiError(
        res.status,
        String(json.code ?? `http_${res.status}`),
        String(json.detail ?? (text || res.statusText)),
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
        typeof json.min_chunk_size === 'number' || typeof json.max_chunk_size === 'number'
          ? { min: json.min_chunk_size as number | undefined, max: json.max_chunk_size as number | undefined }
          : undefined,
      );
    }
    return json as T;
  }

  create(body: { file_name: string; size: number; chunk_size?: number; content_type?: string; transfer?: 'direct' }): Promise<UploadInfo> {
    return this.call('POST', '/v1/uploads', body);
  }
  /** A direct upload's URL for part `n` (1-based); with its SHA-256, the store checks the bytes. */
  partUrl(id: string, n: number, sha256: string): Promise<{ url: string; method: 'PUT'; headers: Record<string, string> }> {
    return this.call('POST', `/v1/uploads/${encodeURIComponent(id)}/parts/${n}/url`, { sha256 });
  }
  reportPart(id: string, n: number, etag: string, sha256: string): Promise<UploadInfo> {
    return this.call('PUT', `/v1/uploads/${encodeURIComponent(id)}/parts/${n}`, { etag, sha256 });
  }
  /**
   * PUTs a part to its URL - the store's (S3) or this server's own - and returns the ETag it
   * answered. Errors are ApiErrors, so the same retry rules apply.
   */
  async putPart(target: { url: string; headers: Record<string, string> }, bytes: Uint8Array): Promise<string> {
    let res: Response;
    try {
      res = await fetch(target.url, { method: 'PUT', headers: target.headers, body: bytes as Uint8Array<ArrayBuffer> });
    } catch (err) {
      throw new ApiError(0, 'network_error', `cannot reach the part URL: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new ApiError(res.status, res.status === 403 ? 'part_url_refused' : `http_${res.status}`, text.slice(0, 300) || res.statusText);
    const etag = res.headers.get('etag');
    if (!etag) throw new ApiError(res.status, 'no_etag', 'the part URL answered without an ETag (a bucket CORS rule must expose ETag)');
    return etag;
  }
  status(id: string, missingAfter?: number): Promise<UploadInfo> {
    const query = missingAfter === undefined ? '' : `?missing_after=${missingAfter}&missing_limit=10000`;
    return this.call('GET', `/v1/uploads/${encodeURIComponent(id)}${query}`);
  }
  /** Every missing chunk index of an upload, following the status pages. */
  async missingChunks(upload: UploadInfo): Promise<number[]> {
    // A just-created upload carries no list: ask for the first page.
    if (upload.missing_chunks === undefined) upload = await this.status(upload.id);
    const missing = [...(upload.missing_chunks ?? [])];
    for (let next = upload.missing_chunks_next; next !== undefined; ) {
      const page = await this.status(upload.id, next);
      missing.push(...(page.missing_chunks ?? []));
      next = page.missing_chunks_next;
    }
    return missing;
  }
  putChunk(id: string, index: number, bytes: Uint8Array, sha256: string): Promise<{ chunks_received: number }> {
    return this.call('PUT', `/v1/uploads/${encodeURIComponent(id)}/chunks/${index}`, bytes, {
      'content-type': 'application/octet-stream',
      'x-chunk-sha256': sha256,
    });
  }
  finish(id: string, sha256: string): Promise<{ id: string; sha256: string; size: number; location: unknown }> {
    return this.call('POST', `/v1/uploads/${encodeURIComponent(id)}/finish`, { sha256 });
  }
  abort(id: string): Promise<void> {
    return this.call('DELETE', `/v1/uploads/${encodeURIComponent(id)}`);
  }
  /** Stored files that pass the filters (GET /v1/files query parameters), newest first, up to `max`. */
  async files(filters: Record<string, string>, max: number): Promise<FileInfo[]> {
    const all: FileInfo[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ ...filters, limit: String(Math.min(1000, max - all.length)), ...(cursor && { cursor }) });
      const page: { files: FileInfo[]; next_cursor: string | null } = await this.call('GET', `/v1/files?${query}`);
      all.push(...page.files);
      cursor = page.next_cursor;
    } while (cursor && all.length < max);
    return all;
  }
  file(id: string): Promise<FileInfo> {
    return this.call('GET', `/v1/files/${encodeURIComponent(id)}`);
  }
  updateFile(id: string, change: { metadata?: Record<string, string>; file_name?: string }): Promise<FileInfo> {
    return this.call('PATCH', `/v1/files/${encodeURIComponent(id)}`, change);
  }
  deleteFile(id: string): Promise<void> {
    return this.call('DELETE', `/v1/files/${encodeURIComponent(id)}`);
  }
  async list(): Promise<UploadInfo[]> {
    const all: UploadInfo[] = [];
    let cursor: string | null = null;
    do {
      const page: { uploads: UploadInfo[]; next_cursor: string | null } = await this.call('GET', `/v1/uploads?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      all.push(...page.uploads);
      cursor = page.next_cursor;
    } while (cursor);
    return all;
  }
  /** The completed file's bytes as a web stream, with its length. */
  async download(id: string): Promise<{ body: ReadableStream<Uint8Array>; size: number }> {
    const res = await fetch(`${this.server}/v1/uploads/${encodeURIComponent(id)}/content`, {
      headers: { ...(this.token && { authorization: `Bearer ${this.token}` }) },
    }).catch((err: Error) => {
      throw new ApiError(0, 'network_error', `cannot reach ${this.server}: ${err.message}`);
    });
    if (!res.ok || !res.body) {
      const json = (await res.json().catch(() => ({}))) as { code?: string; detail?: string };
      throw new ApiError(res.status, json.code ?? `http_${res.status}`, json.detail ?? res.statusText);
    }
    return { body: res.body, size: Number(res.headers.get('content-length') ?? 0) };
  }
}
