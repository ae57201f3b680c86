import { createHmac, timingSafeEqual } from 'node:crypto';

/** Query parameters of a signed upload URL. */
export const EXPIRES_PARAM = 'expires';
export const SIGNATURE_PARAM = 'signature';

/**
 * What a signed URL grants: `upload` - send that upload's chunks and read its status; `download` -
 * read its completed file (a link to hand to a browser, which cannot send an Authorization header).
 */
/** `staged`: the verified bytes of an upload that a pre-publish hook is being asked about. */
export type UrlScope = 'upload' | 'download' | 'staged';

/**
 * Signed URLs: a capability bound to one upload id and one scope, valid until `expires` (Unix
 * seconds), without an Authorization header - nothing else. The signature is HMAC-SHA256 over a
 * string that names its purpose, so it can never be confused with another use of the same key: an
 * upload URL does not download, a download link does not upload.
 */
export class UrlSigner {
  constructor(private readonly key: string) {}

  sign(uploadId: string, expiresAtSeconds: number, scope: UrlScope = 'upload'): string {
    return createHmac('sha256', this.key).update(`sluice-${scope}-url\n${uploadId}\n${expiresAtSeconds}`).digest('base64url');
  }

  /** The query string (without `?`) that grants access to `uploadId` until `expiresAtSeconds`. */
  query(uploadId: string, expiresAtSeconds: number, scope: UrlScope = 'upload'): string {
    return `${EXPIRES_PARAM}=${expiresAtSeconds}&${SIGNATURE_PARAM}=${this.sign(uploadId, expiresAtSeconds, scope)}`;
  }

  /** True when the signature is this server's for this upload and `expires` is still ahead. */
  verify(uploadId: string, expires: string, signature: string, nowSeconds: number, scope: UrlScope = 'upload'): boolean {
    if (!/^\d{1,12}$/.test(expires) || !/^[\w-]{43}$/.test(signature)) return false;
    const expected = Buffer.from(this.sign(uploadId, Number(expires), scope));
    const given = Buffer.from(signature);
    // Constant time: the comparison does not reveal how much of a forged signature was right.
    return given.length === expected.length && timingSafeEqual(given, expected) && Number(expires) > nowSeconds;
  }
}
