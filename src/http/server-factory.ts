import http from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, type ErrorCode } from '../errors.js';
import type { Config } from '../config.js';
import { METHOD_OVERRIDE } from '../routes/tus/tus-headers.js';

const OVERRIDABLE = new Set(['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The HTTP server, created here so that two things happen before Fastify routes a request:
 *
 * - tus: "The X-HTTP-Method-Override request header MUST be a string which MUST be interpreted as
 *   the request's method by the Server, if the header is presented. The actual method of the
 *   request MUST be ignored." Applied to the tus endpoint only.
 * - the limits Fastify would otherwise set itself: a socket silent for IDLE_TIMEOUT is closed, a
 *   request head must arrive within HEADERS_TIMEOUT and fit in MAX_HEADER_SIZE, and a request body
 *   may take as long as it needs while bytes keep flowing.
 */
export function serverFactory(config: Config) {
  return (handler: http.RequestListener): http.Server => {
    // maxHeaderSize: a larger request head is answered 431 by Node itself.
    const server = http.createServer(
      {
        maxHeaderSize: config.maxHeaderSize,
        // Node enforces headersTimeout only when it checks its connections (every 30 s by default).
        connectionsCheckingInterval: Math.max(100, Math.min(config.headersTimeoutMs / 2, 5000)),
      },
      (req, res) => {
        const override = req.headers[METHOD_OVERRIDE];
        if (typeof override === 'string' && req.url?.startsWith(`${config.tusPath}`)) {
          const method = override.trim().toUpperCase();
          if (OVERRIDABLE.has(method)) req.method = method;
        }
        handler(req, res);
      },
    );
    server.on('clientError', answerClientError);
    server.setTimeout(config.idleTimeoutMs);
    // A client trickling its request head (slow-loris) is cut off after HEADERS_TIMEOUT.
    server.headersTimeout = config.headersTimeoutMs;
    server.keepAliveTimeout = 72_000;
    server.requestTimeout = 0;
    return server;
  };
}

/**
 * Requests Node's parser rejects before Fastify sees them (a malformed head, Content-Length with
 * Transfer-Encoding, an oversized head, a head that took too long) still get a problem document
 * with a stable code, and the connection is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code: ErrorCode =
    err.code === 'HPE_HEADER_OVERFLOW' ? 'request_header_too_large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'invalid_request';
  const { status, title } = ERRORS[code];
  const body = JSON.stringify({ type: `urn:sluice:problem:${code}`, title, status, detail: title, code });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
