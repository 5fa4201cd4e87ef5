import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { SignalingClient, backoffDelay, type StatusEvent } from './client';
import { FakeSocket, createFakeSocket } from './fakes';

function client(options: Partial<ConstructorParameters<typeof SignalingClient>[0]> = {}) {
  const c = new SignalingClient({
    roomId: 'room1', clientId: 'alice', token: 'tok-1', url: 'ws://signal.test/ws',
    createSocket: createFakeSocket, random: () => 1, minDelay: 100, maxDelay: 1000, ...options,
  });
  const statuses: StatusEvent[] = [];
  c.on('status', (s) => statuses.push(s));
  return { c, statuses };
}

const joined = (peers: string[] = []) => ({ type: 'joined', data: { roomId: 'room1', clientId: 'alice', peers } });

beforeEach(() => {
  FakeSocket.instances = [];
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe('SignalingClient', () => {
  it('opens /ws with roomId, clientId and the token, and reports joined and presence', () => {
    const { c } = client();
    const events: unknown[] = [];
    c.on('joined', (d) => events.push(['joined', d.peers]));
    c.on('peer-joined', (d) => events.push(['peer-joined', d.clientId]));
    c.on('peer-left', (d) => events.push(['peer-left', d.clientId]));
    c.on('signal', (s) => events.push(['signal', s.type, s.from]));
    c.connect();
    const ws = FakeSocket.latest();
    expect(ws.url.startsWith('ws://signal.test/ws?')).toBe(true);
    expect(Object.fromEntries(ws.query)).toEqual({ roomId: 'room1', clientId: 'alice', token: 'tok-1' });
    ws.serverSends(joined(['bob']));
    ws.serverSends({ type: 'peer-joined', data: { clientId: 'carol' } });
    ws.serverSends({ type: 'offer', from: 'bob', data: { type: 'offer', sdp: 'v=0' } });
    ws.serverSends('not json'); // ignored, not fatal
    ws.serverSends({ type: 'peer-left', data: { clientId: 'carol' } });
    expect(events).toEqual([['joined', ['bob']], ['peer-joined', 'carol'], ['signal', 'offer', 'bob'],
      ['peer-left', 'carol']]);
    expect(c.ready).toBe(true);
  });

  it('queues signals until joined, then sends them in order, addressed or broadcast', () => {
    const { c } = client();
    c.connect();
    c.send('offer', 'bob', { type: 'offer', sdp: 'v=0' });
    c.send('ice-candidate', undefined, { candidate: '' });
    const ws = FakeSocket.latest();
    expect(ws.sent).toEqual([]);
    ws.serverSends(joined(['bob']));
    expect(ws.sent).toEqual([
      { type: 'offer', to: 'bob', data: { type: 'offer', sdp: 'v=0' } },
      { type: 'ice-candidate', data: { candidate: '' } },
    ]);
    c.send('answer', 'bob', { type: 'answer', sdp: 'v=0' });
    expect(ws.sent).toHaveLength(3);
  });

  it.each([1001, 1006, 1012, 1013, 4500, 4503])('reconnects after close %i with backoff, reusing the token', (code) => {
    const { c, statuses } = client();
    c.connect();
    FakeSocket.latest().serverSends(joined());
    FakeSocket.latest().serverCloses(code, 'bye');
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', code, delay: 100 });
    expect(statuses.at(-1)?.message).toBeTruthy();
    expect(FakeSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(FakeSocket.instances).toHaveLength(2);
    expect(FakeSocket.latest().query.get('token')).toBe('tok-1');
    // Still down: the delay doubles, up to the ceiling.
    FakeSocket.latest().serverCloses(1006);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', delay: 200 });
    vi.advanceTimersByTime(200);
    FakeSocket.latest().serverSends(joined());
    expect(c.state).toBe('open');
    // A successful join resets the backoff.
    FakeSocket.latest().serverCloses(1006);
    expect(statuses.at(-1)).toMatchObject({ delay: 100 });
  });

  it.each([
    [4400, 'not valid'], [4403, 'Forbidden'], [4409, 'already connected'], [4410, 'taken over'],
    [4429, 'room is full'], [1008, 'rate limited'], [1009, 'too big'], [4999, '4999'],
  ])('stops for good after close %i and says why', (code, words) => {
    const { c, statuses } = client();
    c.connect();
    c.send('offer', 'bob', {});
    FakeSocket.latest().serverCloses(code as number, 'reason text');
    expect(statuses.at(-1)).toMatchObject({ state: 'closed', code });
    expect(statuses.at(-1)?.message).toContain(words);
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
    expect(c.state).toBe('closed');
  });

  it('renews the token once after a 4401, then gives up on a second one', async () => {
    const renewToken = vi.fn().mockResolvedValue('tok-2');
    const { c, statuses } = client({ renewToken });
    c.connect();
    FakeSocket.latest().serverCloses(4401, 'unauthorized: expired');
    await vi.runAllTimersAsync();
    expect(renewToken).toHaveBeenCalledTimes(1);
    expect(FakeSocket.latest().query.get('token')).toBe('tok-2');
    FakeSocket.latest().serverCloses(4401, 'unauthorized: expired');
    await vi.runAllTimersAsync();
    expect(renewToken).toHaveBeenCalledTimes(1);
    expect(c.state).toBe('closed');
    expect(statuses.at(-1)?.message).toContain('token');
  });

  it('close() is a clean 1000 close and nothing reconnects', () => {
    const { c, statuses } = client();
    c.connect();
    const ws = FakeSocket.latest();
    ws.serverSends(joined());
    c.close();
    expect(ws.closedWith).toEqual([1000, 'bye']);
    expect(statuses.at(-1)).toMatchObject({ state: 'closed', code: 1000 });
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it('reports error frames and stays connected', () => {
    const { c } = client();
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e.code));
    c.connect();
    FakeSocket.latest().serverSends(joined());
    FakeSocket.latest().serverSends({ type: 'error', data: { code: 'unknown-peer', message: 'no such peer' } });
    expect(errors).toEqual(['unknown-peer']);
    expect(c.state).toBe('open');
  });
});

describe('backoffDelay', () => {
  it('doubles from the minimum up to the maximum, with jitter in the upper half', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, 500, 4000, 1))).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect(backoffDelay(3, 500, 4000, 0)).toBe(2000);
  });
});
