/**
 * The tiny app `npm start` deploys through the control plane, so a newcomer can curl a
 * route through the router right away: it answers with what it received, which shows the
 * headers the router adds.
 */
import http from 'node:http';

export interface DemoApp {
  port: number;
  close(): Promise<void>;
}

export async function startDemoApp(name: string): Promise<DemoApp> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify(
      {
        app: name,
        container: `demo-${process.pid}`,
        method: req.method,
        url: req.url,
        headers: req.headers,
      },
      null,
      2,
    );
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${body}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
