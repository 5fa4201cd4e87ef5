// POST /rooms/join (or /rooms/{roomId}/join): reserves the clientId, returns the token
// for the WebSocket and the iceServers for RTCPeerConnection.

import { JOIN_ERRORS, type JoinAnswer } from './protocol';

export class JoinError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;

  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = 'JoinError';
    this.code = code;
    this.status = status;
    // Unknown codes: a 5xx (a proxy's 502 while the backend restarts) is worth a retry.
    this.retryable = JOIN_ERRORS[code]?.retryable ?? status >= 500;
  }

  /** What to show the user. */
  get userMessage(): string {
    return JOIN_ERRORS[this.code]?.message ?? `Could not join (${this.code}): ${this.message}`;
  }
}

export interface JoinOptions {
  roomId?: string;
  clientId?: string;
  /** Origin of the service; default: the page's own. */
  base?: string;
  /** Bearer key for token mode. */
  apiKey?: string;
  fetch?: typeof fetch;
}

export async function joinRoom(options: JoinOptions = {}): Promise<JoinAnswer> {
  const { roomId, clientId, apiKey } = options;
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = options.base ?? globalThis.location.origin;
  const path = roomId ? `/rooms/${encodeURIComponent(roomId)}/join` : '/rooms/join';
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let response: Response;
  try {
    response = await doFetch(new URL(path, base).toString(), {
      method: 'POST',
      headers,
      body: JSON.stringify(clientId ? { clientId } : {}),
      cache: 'no-store',
    });
  } catch (error) {
    throw new JoinError('network-error', 0, String(error));
  }
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new JoinError(error?.code ?? `http-${response.status}`, response.status,
      error?.message ?? response.statusText);
  }
  const answer = body as Partial<JoinAnswer> | null;
  if (!answer || typeof answer.token !== 'string' || typeof answer.clientId !== 'string'
      || typeof answer.roomId !== 'string') {
    throw new JoinError('bad-answer', response.status, 'the join answer is not what the protocol says');
  }
  return { roomId: answer.roomId, clientId: answer.clientId, token: answer.token,
    iceServers: Array.isArray(answer.iceServers) ? answer.iceServers : [] };
}

/** The `exp` claim of a JWT (seconds since the epoch), or null if it has none. */
export function tokenExpiry(token: string): number | null {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(payload)) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}
