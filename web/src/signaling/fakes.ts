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

/** Just the offer/answer state machine of RTCPeerConnection (JSEP), with no media or
 * network, so perfect negotiation can be checked deterministically. */
export class FakePeerConnection {
  signalingState: RTCSignalingState = 'stable';
  iceConnectionState: RTCIceConnectionState = 'new';
  connectionState: RTCPeerConnectionState = 'new';
  localDescription: { type: RTCSdpType; sdp: string; toJSON(): object } | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  sctp = null;
  candidates: RTCIceCandidateInit[] = [];
  onnegotiationneeded: (() => void) | null = null;
  onicecandidate: ((event: { candidate: { candidate: string; toJSON(): object } | null }) => void) | null = null;
  oniceconnectionstatechange: (() => void) | null = null;
  onsignalingstatechange: (() => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  ontrack: (() => void) | null = null;
  private session: string;
  private version = 0;

  constructor(session: string) {
    this.session = session;
  }

  createDataChannel(): RTCDataChannel {
    return { readyState: 'connecting', send() {}, close() {} } as unknown as RTCDataChannel;
  }

  getSenders(): RTCRtpSender[] {
    return [];
  }

  async setLocalDescription(): Promise<void> {
    await Promise.resolve(); // the real one is asynchronous too: glare happens in these gaps
    const type: RTCSdpType = this.signalingState === 'have-remote-offer' ? 'answer' : 'offer';
    const sdp = `v=0\r\no=- ${this.session} ${++this.version} IN IP4 127.0.0.1\r\n`;
    this.localDescription = { type, sdp, toJSON: () => ({ type, sdp }) };
    this.setState(type === 'offer' ? 'have-local-offer' : 'stable');
  }

  async setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    await Promise.resolve();
    if (description.type === 'answer' && this.signalingState !== 'have-local-offer') {
      throw new Error(`InvalidStateError: answer in state ${this.signalingState}`);
    }
    // An offer in have-local-offer rolls our own offer back (implicit rollback).
    this.remoteDescription = description;
    this.setState(description.type === 'offer' ? 'have-remote-offer' : 'stable');
  }

  async addIceCandidate(candidate: RTCIceCandidateInit): Promise<void> {
    if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
    this.candidates.push(candidate);
  }

  restartIce(): void {}

  close(): void {
    this.setState('closed');
  }

  private setState(state: RTCSignalingState): void {
    this.signalingState = state;
    this.onsignalingstatechange?.();
  }
}
