import { ConfigError, loadConfig } from './config.js';
import { applyMemoryProfile } from './lib/memory-profile.js';

/**
 * `npm start`: loads the configuration once, builds the app and serves until SIGTERM/SIGINT, then
 * stops accepting, lets in-flight requests finish (bounded by SHUTDOWN_TIMEOUT) and closes the
 * database.
 */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // Before the server's modules load (hence the dynamic imports): V8 flags shape the code
  // compiled after them.
  const serving = applyMemoryProfile(config.memoryProfile);
  const [{ default: closeWithGrace }, { buildApp }, { StartupError }] = await Promise.all([
    import('close-with-grace'),
    import('./app.js'),
    import('./core.js'),
  ]);
  let app: Awaited<ReturnType<typeof buildApp>>['app'];
  let authenticator: Awaited<ReturnType<typeof buildApp>>['authenticator'];
  try {
    ({ app, authenticator } = await buildApp(config));
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  closeWithGrace({ delay: config.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });
  await app.listen({ port: config.port, host: config.host });
  serving();
  app.log.info({ dataDir: config.dataDir, storage: config.storage.backend, memoryProfile: config.memoryProfile }, 'sluice is ready');
  if (authenticator.anonymous) {
    const loopback = /^(127\.|::1$|localhost$)/.test(config.host);
    app.log.warn(
      { event: 'anonymous_mode', host: config.host },
      loopback
        ? 'no authentication is configured (AUTH_TOKENS, JWT_SECRET or JWT_JWKS_URL): every client is the same anonymous user'
        : `no authentication is configured and the server listens on ${config.host}: anyone who can reach it can upload, read and delete every upload`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
