const MiB = 1024 * 1024;

/**
 * The part size the server uses for a direct upload of `size` bytes: its default part size, grown
 * (in whole MiB) so that the file needs at most 10,000 parts, and never under S3's 5 MiB.
 */
export function partSize(size, configured) {
  const chosen = Math.max(configured, Math.ceil(size / 10_000), 5 * MiB);
  return Math.ceil(chosen / MiB) * MiB;
}

/** A part's SHA-256, hex: signed into its URL, so that S3 refuses other bytes. */
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
