import http from 'node:http';

/**
 * A minimal client of the IETF resumable-upload draft (interop 7 and 8), written from the draft
 * for the tests: an "optimistic upload creation" that learns the upload URL from the 104, and
 * resumption by offset retrieval and append when the transfer breaks. Uses Node's own HTTP client
 * (its 'information' event delivers each 1xx response).
 */
export interface DraftUpload {
  /** The upload resource, from the creation 104. */
  location: string | undefined;
  /** Every interim response the server sent, in order. */
  interim: { status: number; headers: Record<string, string | string[] | undefined> }[];
  status: number | undefined;
  body: string;
}

/**
 * POSTs `data` with `Upload-Complete: ?1`; with `breakAfter`, the connection is destroyed after
 * that many bytes of the body (the 104 has arrived by then or not, as on a real network).
 */
export function optimisticCreate(endpoint: string, version: 7 | 8, data: Buffer, breakAfter?: number): Promise<DraftUpload> {
  return new Promise((resolve) => {
    const result: DraftUpload = { location: undefined, interim: [], status: undefined, body: '' };
    const req = http.request(endpoint, {
      method: 'POST',
      headers: {
        'upload-draft-interop-version': String(version),
        'upload-complete': '?1',
        'content-length': String(data.length),
        'content-type': 'application/octet-stream',
      },
    });
    req.on('information', (info) => {
      result.interim.push({ status: info.statusCode, headers: info.headers });
      // "Client implementations ... MUST ignore a 104 ... with missing or mismatching interop version"
      if (info.statusCode === 104 && info.headers['upload-draft-interop-version'] === String(version) && info.headers.location) {
        result.location ??= String(info.headers.location);
      }
    });
    req.on('response', (res) => {
      result.status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (d) => (result.body += d));
      res.on('end', () => resolve(result));
    });
    req.on('error', () => resolve(result));
    if (breakAfter === undefined) {
      req.end(data);
      return;
    }
    req.write(data.subarray(0, breakAfter), () => {
      // Give the server time to take the bytes in, then lose the connection.
      setTimeout(() => req.destroy(), 300);
    });
  });
}

/** Offset retrieval, then an append of the rest that completes the upload. */
export async function resume(
  location: string,
  version: 7 | 8,
  data: Buffer,
): Promise<{ offset: number; status: number; complete: string | null; body: string }> {
  const v = { 'upload-draft-interop-version': String(version) };
  const head = await fetch(location, { method: 'HEAD', headers: v });
  const offset = Number(head.headers.get('upload-offset'));
  if (head.headers.get('upload-complete') === '?1') return { offset, status: head.status, complete: '?1', body: '' };
  const res = await fetch(location, {
    method: 'PATCH',
    headers: { ...v, 'upload-offset': String(offset), 'upload-complete': '?1', 'content-type': 'application/partial-upload' },
    body: new Uint8Array(data.subarray(offset)),
  });
  return { offset, status: res.status, complete: res.headers.get('upload-complete'), body: await res.text() };
}
