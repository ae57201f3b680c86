// The peer we measure against: @tus/server with @tus/file-store, as its README sets it up.
// PORT and DIR come from the bench; it prints "listening" once it accepts connections.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const tus = new Server({ path: '/files', datastore: new FileStore({ directory: process.env.DIR }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
