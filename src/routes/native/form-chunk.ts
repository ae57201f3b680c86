import type { Readable } from 'node:stream';
import busboy from 'busboy';
import type { FastifyRequest } from 'fastify';
import { SluiceError } from '../../errors.js';

export const FORM_DATA = 'multipart/form-data';

/** The fields a form chunk may carry before its file, and what they may hold. */
const FIELDS = new Set(['index', 'offset', 'checksum', 'sha256', 'requestID', 'chunkSize']);

export interface FormChunk {
  /** The text fields that came before the file. */
  fields: Record<string, string>;
  /** The file field's bytes, streamed as they arrive (never buffered whole). */
  file: Readable;
}

export function isFormData(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith(FORM_DATA);
}

/**
 * A chunk sent as `multipart/form-data` (seed 002's `curl -F index=0 -F chunkData=@part`, an HTML
 * form): the text fields first, then one file field, whose bytes are handed over as a stream while
 * busboy parses the body. Fields after the file are not read (they would come too late); a second
 * file is refused.
 */
export function formChunk(request: FastifyRequest, maxChunkSize: number): Promise<FormChunk> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: request.headers,
        limits: { files: 1, fields: FIELDS.size, fieldSize: 256, parts: FIELDS.size + 1, fileSize: maxChunkSize + 1 },
      });
    } catch {
      reject(new SluiceError('invalid_request', 'multipart/form-data needs its boundary'));
      return;
    }
    const fields: Record<string, string> = {};
    let settled = false;
    const fail = (err: SluiceError) => {
      if (settled) return;
      settled = true;
      request.raw.unpipe(parser);
      reject(err);
    };
    parser.on('field', (name, value, info) => {
      if (!FIELDS.has(name))
        return fail(new SluiceError('invalid_request', `unknown form field ${name}; a chunk form has index or offset, checksum, then the file`));
      if (info.valueTruncated) return fail(new SluiceError('invalid_request', `form field ${name} is too long`));
      fields[name] = value;
    });
    parser.on('file', (_name, file) => {
      if (settled) {
        file.resume();
        return;
      }
      settled = true;
      // Past MAX_CHUNK_SIZE the stream is cut: an error, not a short chunk.
      file.once('limit', () => file.destroy(new SluiceError('payload_too_large', `a chunk is at most ${maxChunkSize} bytes`)));
      resolve({ fields, file });
    });
    parser.on('filesLimit', () => {
      request.log.info({ event: 'form_second_file' }, 'a chunk form carried a second file; it was not read');
    });
    parser.on('error', (err: Error) => fail(new SluiceError('invalid_request', `the multipart/form-data body is malformed (${err.message})`)));
    parser.on('close', () => fail(new SluiceError('invalid_request', 'the form has no file field: send the chunk as one file field after index or offset')));
    request.raw.pipe(parser);
  });
}
