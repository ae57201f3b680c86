import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyInstance {
    /** Told each time a client goes away mid-request (for /metrics). */
    onClientAborted: () => void;
  }
}

/** How the errors of one family of routes are rendered, when it is not the problem document. */
export interface ErrorFamily {
  matches: (request: FastifyRequest) => boolean;
  render: (request: FastifyRequest, reply: FastifyReply, err: SluiceError) => FastifyReply;
}
import { ERRORS, SluiceError, isSluiceError, type ErrorCode } from '../errors.js';
import { socketOf } from './server-factory.js';

export const PROBLEM_JSON = 'application/problem+json';

/** Fastify's own 4xx errors (validation, body parsing) translated to our codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
};

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_request',
  404: 'route_not_found',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  416: 'range_not_satisfiable',
  429: 'rate_limited',
};

/** A request whose client went away: its body stream broke off, or its socket was reset. */
function isClientAbort(err: Partial<FastifyError>): boolean {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.message === 'aborted';
}

/** Turns anything thrown into a SluiceError; unknown errors become a 500 that reveals nothing. */
export function toSluiceError(err: unknown): SluiceError {
  if (isSluiceError(err)) return err;
  const fe = err as Partial<FastifyError> & { validation?: unknown };
  if (isClientAbort(fe)) return new SluiceError('client_aborted', undefined, {}, { cause: err });
  // Out of descriptors is a moment's overload, not a broken server.
  if (fe.code === 'EMFILE' || fe.code === 'ENFILE') {
    return new SluiceError('overloaded', 'the server has too many open files; retry shortly', {}, { cause: err, headers: { 'retry-after': '5' } });
  }
  if (fe.validation) {
    return new SluiceError('invalid_request', fe.message ?? ERRORS.invalid_request.title, { errors: fe.validation });
  }
  // A full disk (a write, an fdatasync, or SQLite) is the client's 507, not an internal error.
  if (fe.code === 'ENOSPC' || fe.code === 'EDQUOT' || fe.code === 'SQLITE_FULL') {
    return new SluiceError('insufficient_storage', 'the disk is full: nothing from this request was recorded', {}, { cause: err });
  }
  const mapped = (fe.code && FASTIFY_CODES[fe.code]) || (fe.statusCode && BY_STATUS[fe.statusCode]);
  if (mapped) return new SluiceError(mapped, fe.message);
  if ((fe as { type?: string }).type === 'entity.parse.failed' || err instanceof SyntaxError) {
    return new SluiceError('invalid_request', 'the JSON body is malformed');
  }
  return new SluiceError('internal_error', undefined, {}, { cause: err });
}

/** Renders an error as an RFC 9457 problem document. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: SluiceError): FastifyReply {
  return reply
    .code(err.status)
    .type(PROBLEM_JSON)
    .send({
      // extra first: it may add members but never replace the standard ones.
      ...err.extra,
      type: `urn:sluice:problem:${err.code}`,
      title: ERRORS[err.code].title,
      status: err.status,
      detail: err.message,
      code: err.code,
      instance: request.url,
      request_id: request.id,
    });
}

/**
 * Renders an error as tus and the IETF draft expect it: the protocol's status and a plain-text
 * `code: detail` body (none for HEAD). The protocol's own headers are the caller's.
 */
export function sendPlain(request: FastifyRequest, reply: FastifyReply, err: SluiceError, status = err.status): FastifyReply {
  reply.code(status);
  if (request.method === 'HEAD') return reply.send();
  return reply.type('text/plain; charset=utf-8').send(`${err.code}: ${err.message}\n`);
}

/**
 * What a client that is still there is told about an error: a body that ended before its
 * declared length (a half-closed connection) is its request's fault, not a vanished client.
 */
export function answerable(err: SluiceError): SluiceError {
  return err.code === 'client_aborted' ? new SluiceError('invalid_request', 'the request body ended before its declared length') : err;
}

/**
 * Logs an error once, the same way for every protocol, and tells whether an answer can still be
 * sent (a client that went away gets none; a consumed body is destroyed too, so look at the socket).
 */
export function logRequestError(request: FastifyRequest, reply: FastifyReply, raw: unknown, err: SluiceError): boolean {
  if (err.code === 'client_aborted') {
    // Not the server's failure: no stack, not at error level; what was durable is recorded.
    request.log.info({ code: err.code, event: 'client_aborted' }, 'the client went away mid-request');
    request.server.onClientAborted?.();
  } else if (err.status >= 500) {
    // The log gets the cause; the client gets only the code and the generic title.
    request.log.error({ err: err.cause ?? raw, code: err.code }, 'request failed');
  } else {
    request.log.info({ code: err.code, detail: err.message }, 'request rejected');
  }
  const canAnswer = !(reply.sent || reply.raw.destroyed || request.raw.socket?.destroyed);
  if (canAnswer) {
    for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
    // The same request, on the node that holds the upload (several nodes on one ledger).
    if (err.code === 'elsewhere') reply.header('location', `${String(err.extra.node_url)}${request.url}`);
    if (!request.raw.complete) lingerThenClose(request, reply);
  }
  return canAnswer;
}

/** How long, and how much, of a refused body is read and discarded after the error response. */
const LINGER_MS = 2000;
const LINGER_BYTES = 16 * 1024 * 1024;

/**
 * A lingering close for a request whose body was refused before it ended. Closing at once would
 * make the client's next bytes draw a TCP reset, and a reset makes the client's kernel discard the
 * error response it has not read yet (and `Connection: close` makes Node close right after the
 * response). So the rest of the body is read and dropped for a bounded time and size, and only
 * then is the socket destroyed - unless the body ends first and the connection can be reused.
 */
function lingerThenClose(request: FastifyRequest, reply: FastifyReply): void {
  const req = request.raw;
  const socket = socketOf(req);
  reply.raw.once('finish', () => {
    // (A socket already gone - a client that vanished - leaves nothing to drain.)
    if (req.complete || !socket || socket.destroyed) return;
    let drained = 0;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    req.on('data', (buf: Buffer) => {
      drained += buf.length;
      if (drained > LINGER_BYTES) socket.destroy();
    });
    req.once('end', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    req.resume();
  });
}

/**
 * The root error handler, for every route and hook: problem documents, or `family`'s rendering for
 * the requests it matches (tus and IETF requests get their plain-text bodies even from errors
 * raised before their routes, such as authentication or overload).
 */
export function registerErrorHandler(app: FastifyInstance, family?: ErrorFamily): void {
  const render = (request: FastifyRequest, reply: FastifyReply, err: SluiceError) =>
    family?.matches(request) ? family.render(request, reply, answerable(err)) : sendProblem(request, reply, answerable(err));
  app.setErrorHandler((raw, request, reply) => {
    const err = toSluiceError(raw);
    if (!logRequestError(request, reply, raw, err)) return reply;
    return render(request, reply, err);
  });
  app.setNotFoundHandler((request, reply) =>
    render(request, reply, new SluiceError('route_not_found', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );
}

/** The same rendering for errors raised while routing (a URL too long or malformed). */
export function frameworkErrorRenderer(family?: ErrorFamily) {
  return (raw: unknown, request: FastifyRequest, reply: FastifyReply): void => {
    const err = toSluiceError(raw);
    if (!logRequestError(request, reply, raw, err)) return;
    void (family?.matches(request) ? family.render(request, reply, answerable(err)) : sendProblem(request, reply, answerable(err)));
  };
}
