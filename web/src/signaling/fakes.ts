// Test doubles for the browser's WebSocket and fetch: just enough of each, driven by
// the test (the "server" side), recording what the client did.

export class FakeSocket {
  static instances: FakeSocket[] = [];
  readonly url: string;
  readyState = 0; // CONNECTING
  sent: unknown[] = [];
  closedWith: [number | undefined, string | undefined] | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;

  constructor(url: string) {
    this.url = url;
    FakeSocket.instances.push(this);
  }

  static latest(): FakeSocket {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }

  // -- the server's side --
  serverSends(frame: object | string): void {
    this.readyState = 1; // OPEN
    const data = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.onmessage?.({ data } as MessageEvent);
  }

  serverCloses(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason } as CloseEvent);
  }
}

export function createFakeSocket(url: string): WebSocket {
  return new FakeSocket(url) as unknown as WebSocket;
}

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}
