import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { SluiceError } from '../errors.js';

/**
 * Passes bytes through while hashing them, and fails in `flush` - before the stream ends - when the
 * digest or the length is not what was expected. A consumer that publishes what it reads (a rename
 * after draining, an S3 multipart upload) therefore never completes with unverified bytes.
 */
export function verifying(source: Readable, expectedSha256: string, expectedSize: number, onBytes?: (total: number) => void): Readable {
  const hash = createHash('sha256');
  let seen = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      seen += chunk.length;
      onBytes?.(seen);
      cb(null, chunk);
    },
    flush(cb) {
      const actual = hash.digest('hex');
      if (seen !== expectedSize || actual !== expectedSha256) {
        cb(new SluiceError('file_checksum_mismatch', `the file's SHA-256 is ${actual}, expected ${expectedSha256}`, { sha256: actual }));
      } else {
        cb();
      }
    },
  });
  source.on('error', (err) => check.destroy(err));
  return source.pipe(check);
}
