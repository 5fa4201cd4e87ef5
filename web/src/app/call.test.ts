import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { JoinError, type JoinAnswer } from '../signaling';
import { FakeSocket } from '../signaling/fakes';
import { Call } from './call';
import { loadSession } from './session';

const answer: JoinAnswer = { roomId: 'r1', clientId: 'alice', token: 'tok', iceServers: [] };

beforeEach(() => {
  FakeSocket.instances = [];
  sessionStorage.clear();
  vi.stubGlobal('WebSocket', FakeSocket);
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe('Call', () => {
  it('joins over REST, opens the WebSocket with the token, and keeps the seat for a reload', async () => {
    const join = vi.fn().mockResolvedValue(answer);
    const call = new Call({ roomId: 'r1', clientId: 'alice', join });
    await call.start();
    expect(join).toHaveBeenCalledWith({ roomId: 'r1', clientId: 'alice', apiKey: undefined });
    expect(FakeSocket.latest().query.get('token')).toBe('tok');
    FakeSocket.latest().serverSends({ type: 'joined', data: { roomId: 'r1', clientId: 'alice', peers: [] } });
    expect(call.current).toMatchObject({ status: 'open', statusMessage: 'Connected', clientId: 'alice' });
    expect(loadSession('r1')).toEqual(answer);
    // A reload: the saved seat is reused, no new REST join.
    const again = new Call({ roomId: 'r1', join });
    await again.start();
    expect(join).toHaveBeenCalledTimes(1);
    expect(FakeSocket.latest().query.get('clientId')).toBe('alice');
    call.leave();
    expect(loadSession('r1')).toBeNull();
  });

  it('says the room is full and stops', async () => {
    const join = vi.fn().mockRejectedValue(new JoinError('room-full', 409, 'room is full'));
    const call = new Call({ roomId: 'r1', join });
    await call.start();
    expect(call.current).toMatchObject({ status: 'closed', statusMessage: 'The room is full.', statusCode: 'room-full' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(join).toHaveBeenCalledTimes(1);
  });

  it('retries a rate-limited join with backoff and says so', async () => {
    const join = vi.fn()
      .mockRejectedValueOnce(new JoinError('rate-limited', 429, 'slow down'))
      .mockResolvedValueOnce(answer);
    const call = new Call({ roomId: 'r1', join });
    await call.start();
    expect(call.current.status).toBe('reconnecting');
    expect(call.current.statusMessage).toMatch(/^Too many joins from your address; retrying… \(next try in/);
    await vi.advanceTimersByTimeAsync(1000);
    expect(join).toHaveBeenCalledTimes(2);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it('shows a server shutdown as reconnecting, and a full room on the socket as the end', async () => {
    const call = new Call({ roomId: 'r1', join: vi.fn().mockResolvedValue(answer) });
    await call.start();
    FakeSocket.latest().serverSends({ type: 'joined', data: { roomId: 'r1', clientId: 'alice', peers: [] } });
    FakeSocket.latest().serverCloses(1001, 'shutting-down: server shutting down');
    expect(call.current).toMatchObject({ status: 'reconnecting', statusCode: '1001' });
    expect(call.current.statusMessage).toContain('shutting down or restarting; reconnecting');
    await vi.advanceTimersByTimeAsync(15_000); // the retry: still "reconnecting" until joined
    expect(FakeSocket.instances).toHaveLength(2);
    expect(call.current.status).toBe('reconnecting');
    FakeSocket.latest().serverCloses(4429, 'room-full: the room is full');
    expect(call.current).toMatchObject({ status: 'closed', statusMessage: 'The room is full.', statusCode: '4429' });
    expect(call.current.notices.some((n) => n.includes('The room is full.'))).toBe(true);
  });
});
