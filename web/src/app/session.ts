// Who we are in a room, kept per tab (sessionStorage) so that a reload rejoins the call
// as the same client with the same token instead of appearing as a stranger.

import { tokenExpiry, type JoinAnswer } from '../signaling';

const KEY = 'signaling-session:';
const MARGIN_SECONDS = 60; // a token this close to expiry is not worth reusing

export function loadSession(roomId: string, storage: Storage = sessionStorage, now = Date.now()): JoinAnswer | null {
  try {
    const saved = JSON.parse(storage.getItem(KEY + roomId) ?? 'null') as JoinAnswer | null;
    if (!saved || saved.roomId !== roomId || typeof saved.token !== 'string') return null;
    const exp = tokenExpiry(saved.token);
    if (exp !== null && exp * 1000 < now + MARGIN_SECONDS * 1000) return null;
    return saved;
  } catch {
    return null;
  }
}

export function saveSession(answer: JoinAnswer, storage: Storage = sessionStorage): void {
  storage.setItem(KEY + answer.roomId, JSON.stringify(answer));
}

export function forgetSession(roomId: string, storage: Storage = sessionStorage): void {
  storage.removeItem(KEY + roomId);
}

/** A room id nobody guesses: in open mode the room id is what lets a client in. */
export function newRoomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, '0')).join('');
}
