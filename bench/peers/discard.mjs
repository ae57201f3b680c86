// The ceiling on this machine: an HTTP server that reads every body and throws it away.
import http from 'node:http';

const server = http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (b) => (bytes += b.length));
  req.on('end', () => res.end(JSON.stringify({ bytes })));
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
