import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SluiceError } from '../../errors.js';
import type { StagedReads } from '../../events/hook-client.js';
import type { UploadService } from '../../service/upload-service.js';
import { presentUpload } from './present.js';
import { Binary, IdParams, Problem, UploadSummary } from './schemas.js';

export interface EventRouteOptions {
  service: UploadService;
  staged: StagedReads;
  /** PROCESSOR_TOKEN: the only credential POST /v1/uploads/:id/processing takes. */
  processorToken: string | undefined;
}

const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^(0|[1-9][0-9]{0,15})$', description: 'Events after this id (0, or the last id seen)' })),
    limit: Type.Optional(Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: '1 to 1000 (default 100)' })),
  },
  { additionalProperties: false },
);

const EventItem = Type.Object({
  id: Type.Integer({ description: "Ascending; a webhook's webhook-id is evt_<id>" }),
  type: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  upload_id: Type.String({ format: 'uuid' }),
  data: Type.Record(Type.String(), Type.Unknown()),
});

const ProcessingBody = Type.Object(
  {
    status: Type.Union([Type.Literal('completed'), Type.Literal('failed')]),
    outputs: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'What processing made (a thumbnail URL, a transcode id, ...)' })),
    message: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

const BEARER = /^Bearer (.+)$/i;

/**
 * The application's side of events: the caller's own events in order (GET /v1/events, the same ids
 * as the webhooks), a post-processor's answer, and the staged bytes a pre-publish hook reads.
 */
export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, { service, staged, processorToken }) => {
  app.get(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary: "The caller's events after `after`, oldest first (catch up without webhooks)",
        querystring: EventsQuery,
        response: { 200: Type.Object({ events: Type.Array(EventItem), next_after: Type.Integer() }), 400: Problem },
      },
    },
    async (request) => {
      const after = Number(request.query.after ?? 0);
      const limit = Number(request.query.limit ?? 100);
      const events = await service.events(request.owner, after, limit);
      return {
        events: events.map((e) => ({ id: e.id, type: e.type, timestamp: new Date(e.createdAt).toISOString(), upload_id: e.uploadId, data: e.data })),
        next_after: events.at(-1)?.id ?? after,
      };
    },
  );

  app.post(
    '/v1/uploads/:id/processing',
    {
      // The processor is a service, not a user: it shows PROCESSOR_TOKEN, checked here.
      config: { public: true },
      schema: {
        tags: ['events'],
        summary: "A post-processor's answer: the upload becomes completed (with outputs) or failed (its file is removed)",
        params: IdParams,
        body: ProcessingBody,
        response: { 200: UploadSummary, 401: Problem, 404: Problem, 409: Problem },
      },
    },
    async (request) => {
      const given = BEARER.exec(request.headers.authorization ?? '')?.[1];
      if (processorToken === undefined || given === undefined || !sameSecret(given, processorToken)) {
        throw new SluiceError(
          'unauthorized',
          'this route takes the PROCESSOR_TOKEN as "Authorization: Bearer <token>"',
          {},
          { headers: { 'www-authenticate': 'Bearer realm="sluice-processor"' } },
        );
      }
      const { status, outputs, message } = request.body;
      return presentUpload(await service.processed(request.params.id, { status, outputs, message }));
    },
  );

  app.get(
    '/v1/uploads/:id/staged',
    {
      config: { signedUrl: 'staged' },
      schema: {
        tags: ['events'],
        summary: 'The verified bytes a pre-publish hook is being asked about (its signed staged_url, only while it is asked)',
        params: IdParams,
        response: { 200: Binary, 401: Problem, 403: Problem, 404: Problem },
      },
    },
    async (request, reply) => {
      const bytes = request.viaSignedUrl ? staged.get(request.params.id) : undefined;
      if (!bytes) throw new SluiceError('not_found', `no staged bytes of upload ${request.params.id} are being checked now`);
      return reply
        .type('application/octet-stream')
        .header('content-length', String(bytes.size))
        .header('x-content-sha256', bytes.sha256)
        .send(await bytes.open());
    },
  );
};

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
