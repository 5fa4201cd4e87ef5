// The wire contract of docs/protocol.md, as types and as the client's reading of every
// error and close code: what to tell the user, and whether trying again can help.

export type Id = string;

/** 1 to 64 characters of A-Z a-z 0-9 _ - (roomId and clientId). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** The answer of POST /rooms/join. */
export interface JoinAnswer {
  roomId: Id;
  clientId: Id;
  token: string;
  iceServers: RTCIceServer[];
}

export type SignalType = 'offer' | 'answer' | 'ice-candidate';

export interface SignalFrame {
  type: SignalType;
  from: Id;
  data: RTCSessionDescriptionInit | RTCIceCandidateInit;
}

export interface JoinedData {
  roomId: Id;
  clientId: Id;
  peers: Id[];
}

export interface ErrorData {
  code: string;
  message: string;
}

export type ServerFrame =
  | { type: 'joined'; data: JoinedData }
  | { type: 'peer-joined'; data: { clientId: Id } }
  | { type: 'peer-left'; data: { clientId: Id } }
  | { type: 'error'; data: ErrorData }
  | SignalFrame;

/** What a close code means to a user, and whether reconnecting can help. */
export interface CloseMeaning {
  retryable: boolean;
  /** `token`: reconnecting can help once, with a new token (4401). */
  renewToken?: boolean;
  message: string;
}

// protocol.md, "Close codes". Retryable: we missed the server's pings (1000), the
// server went away (1001), the network dropped or the upgrade was refused (1006), a
// proxy restarted (1012), we read too slowly (1013), the room crashed and is rebuilt on
// next use (4500), the room moved to another backend (4502), the process is full for
// now (4503). Everything else would fail the same way again.
export const CLOSE_CODES: Readonly<Record<number, CloseMeaning>> = {
  // The server sends 1000 only when we stopped answering its pings (Tornado's close);
  // our own leave is handled before this table is consulted.
  1000: { retryable: true, message: 'The server stopped hearing from us (ping timed out); reconnecting…' },
  1001: { retryable: true, message: 'The server is shutting down or restarting; reconnecting…' },
  1006: { retryable: true, message: 'The connection to the server dropped; reconnecting…' },
  1002: { retryable: false, message: 'The server dropped the connection for a protocol error.' },
  1008: { retryable: false, message: 'Disconnected for sending too much (rate limited). Reload to try again.' },
  1009: { retryable: false, message: 'Disconnected: a message was too big for the server.' },
  1011: { retryable: true, message: 'The server hit an internal error; reconnecting…' },
  1012: { retryable: true, message: 'The server (or its proxy) is restarting; reconnecting…' },
  1013: { retryable: true, message: 'The connection fell behind (slow reader); reconnecting…' },
  4400: { retryable: false, message: 'The room or client id is not valid.' },
  4401: { retryable: false, renewToken: true, message: 'Not authorized: the token is missing, invalid or expired.' },
  4403: { retryable: false, message: 'Forbidden: the token is for another room or client.' },
  4409: { retryable: false, message: 'This client id is already connected in the room.' },
  4410: { retryable: false, message: 'This call was taken over by a newer connection (another tab?).' },
  4429: { retryable: false, message: 'The room is full.' },
  4500: { retryable: true, message: 'The room failed on the server; rejoining…' },
  4502: { retryable: true, message: 'The room moved to another server; rejoining…' },
  4503: { retryable: true, message: 'The server is full right now; retrying…' },
};

export function closeMeaning(code: number, reason = ''): CloseMeaning {
  const known = CLOSE_CODES[code];
  if (known) return known;
  const why = reason ? `: ${reason}` : '';
  return { retryable: false, message: `Disconnected by the server (${code}${why}).` };
}

// protocol.md, "REST": the join's error codes. Retryable ones are worth a later try
// with the same request; the others need the user (or the app) to change something.
export const JOIN_ERRORS: Readonly<Record<string, { retryable: boolean; message: string }>> = {
  'invalid-request': { retryable: false, message: 'The room or client id is not valid.' },
  unauthorized: { retryable: false, message: 'This server needs an API key to join (token mode).' },
  'client-id-taken': { retryable: false, message: 'That name is already in the room.' },
  'room-full': { retryable: false, message: 'The room is full.' },
  'rate-limited': { retryable: true, message: 'Too many joins from your address; retrying…' },
  'server-full': { retryable: true, message: 'The server is full right now; retrying…' },
  'shutting-down': { retryable: true, message: 'The server is shutting down; reconnecting…' },
  'room-failed': { retryable: true, message: 'The room failed on the server; retrying…' },
  'room-moved': { retryable: true, message: 'The room is moving to another server; retrying…' },
  'not-found': { retryable: false, message: 'This server has no join endpoint (wrong address?).' },
  'method-not-allowed': { retryable: false, message: 'The server refused the join request (wrong method).' },
  'network-error': { retryable: true, message: 'Cannot reach the server; retrying…' },
};

// protocol.md, "Error frames": the server refused one of our frames; the socket stays open.
export const FRAME_ERRORS: Readonly<Record<string, string>> = {
  'invalid-json': 'The server could not parse a message we sent.',
  'invalid-message': 'The server refused a malformed message.',
  'binary-not-supported': 'The server accepts text messages only.',
  'frame-too-large': 'A message was too large for the server.',
  'from-mismatch': 'A message claimed to be from someone else.',
  'unknown-peer': 'A message was addressed to someone no longer in the room.',
  'peer-queue-full': 'A peer that is still connecting has too many messages waiting.',
  'rate-limited': 'Sending too fast: the server dropped a message.',
};

export function frameErrorMessage(error: ErrorData): string {
  return FRAME_ERRORS[error.code] ?? `The server refused a message: ${error.code}: ${error.message}`;
}
