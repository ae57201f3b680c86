/**
 * The one error table: every error a client can see has a stable machine-readable code, an HTTP
 * status and a default human message. Protocol adapters render these (problem+json for the native
 * API); the domain code only ever throws `SluiceError`.
 */
export const ERRORS = {
  // Not an error for the client: the upload's bytes are on another node, which its Location names.
  elsewhere: { status: 307, title: 'The upload is on another node; repeat the request there' },
  invalid_request: { status: 400, title: 'The request is malformed' },
  invalid_range: { status: 400, title: "The chunk index or byte range is not on the upload's chunk grid" },
  inconsistent_length: { status: 400, title: 'The upload length values disagree' },
  chunk_length_mismatch: { status: 400, title: 'The body length does not match the chunk' },
  chunk_size_out_of_range: { status: 400, title: "chunk_size is outside the server's limits" },
  too_many_chunks: { status: 400, title: 'The upload would need more chunks than the server allows' },
  sha256_required: { status: 400, title: 'A whole-file SHA-256 is required to finish' },
  unsupported_digest_algorithm: { status: 400, title: 'No supported digest algorithm was given' },
  request_timeout: { status: 408, title: 'The request did not arrive in time' },
  unauthorized: { status: 401, title: 'Authentication is required' },
  invalid_signature: { status: 403, title: 'The signed URL is invalid or has expired' },
  checksum_algorithm_unsupported: { status: 400, title: 'The checksum algorithm is not supported' },
  concat_final_immutable: { status: 403, title: 'A final (concatenated) upload cannot be written to' },
  rejected_by_hook: { status: 403, title: "The application's hook refused the upload" },
  not_found: { status: 404, title: 'No such upload' },
  route_not_found: { status: 404, title: 'No such route' },
  chunk_conflict: { status: 409, title: 'This chunk was already received with different bytes' },
  chunk_in_progress: { status: 409, title: 'This chunk is being received by another request' },
  upload_not_writable: { status: 409, title: 'The upload no longer accepts chunks' },
  chunks_missing: { status: 409, title: 'Chunks are missing' },
  part_in_use: { status: 409, title: 'The upload is a part of a composed upload that is not finished' },
  offset_mismatch: { status: 409, title: "Upload-Offset does not match the upload's offset" },
  upload_not_completed: { status: 409, title: 'The upload is not completed' },
  not_processing: { status: 409, title: 'The upload is not waiting for its post-processor' },
  upload_completed: { status: 410, title: 'The upload is already complete' },
  upload_expired: { status: 410, title: 'The upload has expired' },
  tus_version_unsupported: { status: 412, title: 'The Tus-Resumable version is not supported' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  uri_too_long: { status: 414, title: 'The URL is too long' },
  upload_too_large: { status: 413, title: 'The upload is larger than the server allows' },
  quota_exceeded: { status: 413, title: "The upload would exceed the user's quota" },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  range_not_satisfiable: { status: 416, title: 'The requested range is not satisfiable' },
  type_not_allowed: { status: 415, title: 'The file type is not allowed or does not match the content' },
  checksum_mismatch: { status: 422, title: 'The chunk does not match its checksum' },
  file_checksum_mismatch: { status: 422, title: 'The file does not match its SHA-256' },
  request_header_too_large: { status: 431, title: 'The request head is too large' },
  too_many_uploads: { status: 429, title: 'Too many unfinished uploads for this user' },
  rate_limited: { status: 429, title: 'Too many requests; slow down' },
  internal_error: { status: 500, title: 'Internal server error' },
  // Never sent (the client is gone); logged at info and counted, not treated as a server error.
  client_aborted: { status: 499, title: 'The client closed the connection before the request ended' },
  overloaded: { status: 503, title: 'The server is overloaded; try again shortly' },
  insufficient_storage: { status: 507, title: 'Not enough disk space for this upload' },
  shutting_down: { status: 503, title: 'The server is shutting down; resume from the recorded offset' },
  storage_unavailable: { status: 503, title: 'The storage backend is unavailable; try again later' },
  auth_unavailable: { status: 503, title: 'The token cannot be checked now; try again later' },
  node_unavailable: { status: 503, title: 'The node that holds the upload cannot be reached; try again later' },
  hook_unavailable: { status: 503, title: "The application's hook could not be asked; try again later" },
  staging_failed: { status: 503, title: 'Writing to the staging disk failed; nothing was recorded, send it again' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class SluiceError extends Error {
  readonly status: number;

  /**
   * @param code   stable code from ERRORS
   * @param detail a message specific to this occurrence (safe to show to the client)
   * @param extra  extra members of the problem document (e.g. `missing_chunks`)
   */
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly extra: Record<string, unknown> = {},
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(detail ?? ERRORS[code].title, options);
    this.name = 'SluiceError';
    this.status = ERRORS[code].status;
    this.headers = options?.headers ?? {};
  }

  /** Response headers the error needs (e.g. WWW-Authenticate), whatever the protocol renders it. */
  readonly headers: Record<string, string>;
}

export function isSluiceError(err: unknown): err is SluiceError {
  return err instanceof SluiceError;
}
