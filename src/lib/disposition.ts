import contentDisposition from 'content-disposition';

/** Letters without their accents ("é" → "e"): NFKD splits them off as combining marks. */
export function stripAccents(name: string): string {
  return name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
}

/**
 * `Content-Disposition: attachment` for a client's file name (RFC 6266): a quoted, ASCII-only
 * `filename` (unknown characters as "?") and, when that lost anything, the exact name as UTF-8 in
 * `filename*` (RFC 8187). Header values stay ASCII, which S3 request signing also needs.
 */
export function attachment(fileName: string): string {
  const fallback = stripAccents(fileName).replace(/[^\x20-\x7e]/g, '?');
  return contentDisposition(fileName, { fallback });
}

/** `Content-Disposition: inline` with the file name, encoded as for `attachment`. */
export function inline(fileName: string): string {
  const fallback = stripAccents(fileName).replace(/[^\x20-\x7e]/g, '?');
  return contentDisposition(fileName, { type: 'inline', fallback });
}
