import { Type } from 'typebox';

/** JSON schemas of the native API; they validate requests, shape responses and feed the OpenAPI document. */

export const Sha256Hex = Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256, hexadecimal' });

// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators are refused in names.
const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$';

export const CreateUploadBody = Type.Object(
  {
    file_name: Type.String({ minLength: 1, maxLength: 255, pattern: NO_CONTROL, description: 'Original file name; metadata only, never a path' }),
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Total size in bytes' }),
    sha256: Type.Optional(Sha256Hex),
    chunk_size: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    content_type: Type.Optional(Type.String({ maxLength: 255, pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\\s*;.*)?$' })),
    metadata: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 4096 }), { maxProperties: 64 })),
    transfer: Type.Optional(
      Type.Union([Type.Literal('server'), Type.Literal('direct')], {
        description: 'direct: the answer lists part URLs and the client PUTs each part to its URL (straight to S3 with the S3 backend)',
      }),
    ),
    part_sha256: Type.Optional(
      Type.Array(Sha256Hex, { maxItems: 10_000, description: "direct: each part's SHA-256, in order; S3 refuses a part with other bytes" }),
    ),
  },
  { additionalProperties: false },
);

const PartNumber = Type.Integer({ minimum: 1, maximum: 10_000 });

export const FinishBody = Type.Object(
  {
    sha256: Type.Optional(Sha256Hex),
    parts: Type.Optional(
      Type.Array(Type.Object({ part_number: PartNumber, etag: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }), {
        maxItems: 10_000,
        description: 'direct: the parts sent and their ETags (instead of reporting each one)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const PartParams = Type.Object({ id: Type.String({ format: 'uuid' }), n: Type.String({ pattern: '^[1-9][0-9]{0,4}$' }) });
export const PartsQuery = Type.Object(
  {
    from: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: 'first part number, default 1' })),
    limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: '1 to 1000 parts, default 100' })),
  },
  { additionalProperties: false },
);
export const PartUrlBody = Type.Object({ sha256: Type.Optional(Sha256Hex) }, { additionalProperties: false });
export const PartReportBody = Type.Object(
  { etag: Type.String({ minLength: 1, maxLength: 200 }), sha256: Type.Optional(Sha256Hex) },
  { additionalProperties: false },
);

export const PartTarget = Type.Object({
  part_number: Type.Integer(),
  size: Type.Integer(),
  url: Type.Optional(Type.String({ description: 'PUT the part here (absent once the upload takes no more parts)' })),
  method: Type.Optional(Type.Literal('PUT')),
  headers: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'send these headers as given: they are signed' })),
  expires_at: Type.Optional(Type.String({ format: 'date-time' })),
  etag: Type.Optional(Type.String({ description: 'the ETag reported for it' })),
  sha256: Type.Optional(Type.String()),
});
export const PartList = Type.Object({
  parts: Type.Array(PartTarget),
  next_part: Type.Optional(Type.Integer({ description: 'the next page starts here' })),
});

export const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });
export const ChunkParams = Type.Object({
  id: Type.String({ format: 'uuid' }),
  // Path and query values are strings (no type coercion); digits only, bounded length.
  index: Type.String({ pattern: '^(0|[1-9][0-9]{0,8})$' }),
});

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]?|[1-4][0-9][0-9]|500)$', description: '1 to 500, default 50' })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const StatusQuery = Type.Object(
  {
    missing_after: Type.Optional(
      Type.String({ pattern: '^(0|[1-9][0-9]{0,8})$', description: "List missing chunks after this index (the previous page's missing_chunks_next)" }),
    ),
    missing_limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,3}|10000)$', description: '1 to 10000 missing chunk indexes per page, default 1000' })),
    // A signed upload URL carries its capability in the query string.
    expires: Type.Optional(Type.String({ maxLength: 20 })),
    signature: Type.Optional(Type.String({ maxLength: 100 })),
  },
  { additionalProperties: false },
);

export const Location = Type.Union([
  Type.Object({ backend: Type.Literal('local'), path: Type.String() }),
  Type.Object({ backend: Type.Literal('s3'), bucket: Type.String(), key: Type.String() }),
]);

const UploadStatus = Type.Union([
  Type.Literal('uploading'),
  Type.Literal('finishing'),
  Type.Literal('processing'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('aborted'),
  Type.Literal('expired'),
]);

/** A raw byte stream in a response (documented as binary; never run through the JSON serializer). */
export const Binary = Type.Unsafe<NodeJS.ReadableStream>({ type: 'string', format: 'binary' });

const uploadFields = {
  id: Type.String({ format: 'uuid' }),
  file_name: Type.String(),
  layout: Type.Union([Type.Literal('grid'), Type.Literal('stream')], {
    description: 'grid: chunks at offsets, in any order (this API); stream: bytes appended at the end (tus, IETF)',
  }),
  protocol: Type.Union([Type.Literal('native'), Type.Literal('tus'), Type.Literal('ietf')], { description: 'The API that created it' }),
  size: Type.Optional(Type.Integer({ description: "Absent while a stream upload's length is not known yet" })),
  chunk_size: Type.Optional(Type.Integer({ description: 'grid uploads only' })),
  total_chunks: Type.Optional(Type.Integer({ description: 'grid uploads only' })),
  chunks_received: Type.Optional(Type.Integer({ description: 'grid uploads only' })),
  part_uploads: Type.Optional(
    Type.Array(Type.String({ format: 'uuid' }), { description: 'A composed stream upload (tus concatenation): its parts, in order' }),
  ),
  transfer: Type.Union([Type.Literal('server'), Type.Literal('direct')]),
  status: UploadStatus,
  content_type: Type.String(),
  metadata: Type.Record(Type.String(), Type.String()),
  bytes_received: Type.Integer(),
  progress: Type.Number({ description: 'bytes_received / size, from 0 to 1' }),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time' }),
  completed_at: Type.Optional(Type.String({ format: 'date-time' })),
  sha256: Type.Optional(Type.String()),
  location: Type.Optional(Location),
  failure: Type.Optional(Type.String()),
  processing: Type.Optional(
    Type.Object(
      {
        status: Type.Union([Type.Literal('completed'), Type.Literal('failed')]),
        outputs: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        message: Type.Optional(Type.String()),
      },
      { description: "The post-processor's answer (POST_PROCESS_URL): what it made, or why it failed" },
    ),
  ),
  download_url: Type.Optional(
    Type.String({ description: 'Completed uploads, in status and list answers: a signed link to the file that needs no token (SIGNED_URL_TTL)' }),
  ),
};

export const UploadSummary = Type.Object(uploadFields);

const signedUrlFields = {
  upload_url: Type.String({ description: 'Signed URL: PUT chunks with Content-Range and read status, no token needed' }),
  chunk_url_template: Type.String({ description: 'Signed URL for PUT of one chunk; replace {index}' }),
  upload_url_expires_at: Type.String({ format: 'date-time' }),
};

export const UploadStatusBody = Type.Object({
  ...uploadFields,
  upload_url: Type.Optional(signedUrlFields.upload_url),
  chunk_url_template: Type.Optional(signedUrlFields.chunk_url_template),
  upload_url_expires_at: Type.Optional(signedUrlFields.upload_url_expires_at),
  finish_progress: Type.Optional(Type.Number({ description: 'While finishing: fraction of the file verified and stored, 0 to 1' })),
  missing_chunks: Type.Array(Type.Integer(), { description: 'Indexes of chunks not yet received, ascending: one page of at most missing_limit' }),
  missing_chunks_count: Type.Integer({ description: 'How many chunks are missing in all' }),
  missing_chunks_next: Type.Optional(
    Type.Integer({ description: 'Present when more missing chunks follow this page: pass it as missing_after for the next page' }),
  ),
});

export const CreatedUpload = Type.Object({
  ...uploadFields,
  ...signedUrlFields,
  part_size: Type.Optional(Type.Integer({ description: 'direct: every part but the last is this long' })),
  parts: Type.Optional(Type.Array(PartTarget, { description: 'direct: the first page of part URLs' })),
  next_part: Type.Optional(Type.Integer({ description: 'direct: GET /v1/uploads/{id}/parts?from= this for the rest' })),
  expires_in: Type.Optional(Type.Integer({ description: 'direct: seconds the part URLs stay valid' })),
});

export const ChunkReceipt = Type.Object({
  index: Type.Integer(),
  offset: Type.Integer(),
  length: Type.Integer(),
  sha256: Type.String(),
  chunks_received: Type.Integer(),
  bytes_received: Type.Integer(),
  total_chunks: Type.Integer(),
  part_number: Type.Integer({ description: 'index + 1, for clients of direct uploads' }),
  etag: Type.String({ description: "the chunk's SHA-256, quoted; also the ETag header" }),
});

export const FinishResult = Type.Object({
  id: Type.String(),
  status: UploadStatus,
  sha256: Type.String(),
  size: Type.Integer(),
  location: Location,
  sha256_checked: Type.Boolean({
    description: "true: the file matched a SHA-256 its client gave (the whole file's, or each direct part's); false: sha256 is the digest the server computed",
  }),
  processing: uploadFields.processing,
  failure: Type.Optional(Type.String()),
});

export const UploadList = Type.Object({
  uploads: Type.Array(UploadSummary),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

const ProblemDocument = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    instance: Type.String(),
    request_id: Type.String(),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details' },
);

/** An error response: an RFC 9457 problem document, served as application/problem+json. */
export const Problem = {
  description: 'Error (RFC 9457 problem details with a stable `code`)',
  content: { 'application/problem+json': { schema: ProblemDocument } },
};
