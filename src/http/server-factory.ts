import http from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, SluiceError, type ErrorCode } from '../errors.js';
import type { Config } from '../config.js';
import { METHOD_OVERRIDE } from '../routes/tus/tus-headers.js';

const OVERRIDABLE = new Set(['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

/** The request being handled on a socket: its handler answers whatever goes wrong with its body. */
const handling = new WeakMap<Duplex, http.IncomingMessage>();
/** Each request's socket, as it was when the request began (a request whose body failed may lose it). */
const sockets = new WeakMap<http.IncomingMessage, Duplex>();

/** The connection a request came on, even after Node detached it from the request. */
export function socketOf(req: http.IncomingMessage): Duplex | null {
  return sockets.get(req) ?? req.socket ?? null;
}

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
        handling.set(req.socket, req);
        sockets.set(req, req.socket);
        res.once('close', () => handling.delete(req.socket));
        handler(req, res);
      },
    );
    server.setTimeout(config.idleTimeoutMs);
    // A socket silent for IDLE_TIMEOUT is closed - but a request whose body went silent first has
    // its body fail (what arrived is recorded) and is answered 408 in its protocol's format before
    // the connection closes, as a client still listening can then resume from the right offset.
    server.on('timeout', (socket: Duplex) => {
      const req = handling.get(socket);
      if (!req || req.complete || req.listenerCount('error') === 0 || !socket.writable) {
        socket.destroy();
        return;
      }
      req.emit('error', new SluiceError('request_timeout', `no byte of the body arrived for ${config.idleTimeoutMs} ms`));
      const timer = setTimeout(() => socket.destroy(), 2000);
      socket.once('close', () => clearTimeout(timer));
    });
    // A client trickling its request head (slow-loris) is cut off after HEADERS_TIMEOUT.
    server.headersTimeout = config.headersTimeoutMs;
    server.keepAliveTimeout = 72_000;
    server.requestTimeout = 0;
    return server;
  };
}

/**
 * Fastify's `clientErrorHandler` (it registers it on the server, in place of its own JSON answer).
 * Requests Node's parser rejects before Fastify sees them (a malformed head, Content-Length with
 * Transfer-Encoding, an oversized head, a head that took too long) still get a problem document
 * with a stable code, and the connection is closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // A body that broke off (the client half-closed mid-body): the body stream fails as for a client
  // that went away, and its route answers, in its protocol's format, once it has recorded what
  // arrived; the connection is closed after that answer.
  const req = handling.get(socket);
  // (Only while something reads the body: an error nobody listens for would be thrown.)
  if (req && !req.complete && req.listenerCount('error') > 0) {
    req.emit('error', Object.assign(new Error('aborted'), { code: 'ECONNRESET', cause: err }));
    // Whatever the answer does, the connection ends soon: its parser is gone. (Not unref'd: a
    // server closing waits for this connection, and so for this timer.)
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.once('close', () => clearTimeout(timer));
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
