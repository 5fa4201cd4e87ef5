import { describe, expect, it, vi } from 'vitest';

import { jsonResponse } from './fakes';
import { JoinError, joinRoom, tokenExpiry } from './rest';

const answer = { roomId: 'r1', clientId: 'alice', token: 'a.b.c', iceServers: [{ urls: 'stun:stun.test' }] };

describe('joinRoom', () => {
  it('posts the clientId to /rooms/{roomId}/join and returns the answer', async () => {
    const fetch = vi.fn().mockResolvedValue(jsonResponse(200, answer));
    expect(await joinRoom({ roomId: 'r1', clientId: 'alice', base: 'http://signal.test', fetch })).toEqual(answer);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('http://signal.test/rooms/r1/join');
    expect(init.method).toBe('POST');
    expect(JSON.parse(init.body)).toEqual({ clientId: 'alice' });
    expect(init.headers.Authorization).toBeUndefined();
  });

  it('posts {} to /rooms/join without ids, with the bearer key in token mode', async () => {
    const fetch = vi.fn().mockResolvedValue(jsonResponse(200, answer));
    await joinRoom({ base: 'http://signal.test', apiKey: 'k', fetch });
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('http://signal.test/rooms/join');
    expect(JSON.parse(init.body)).toEqual({});
    expect(init.headers.Authorization).toBe('Bearer k');
  });

  it.each([
    [409, 'room-full', false, 'The room is full.'],
    [409, 'client-id-taken', false, 'already in the room'],
    [429, 'rate-limited', true, 'Too many joins'],
    [503, 'shutting-down', true, 'shutting down'],
    [503, 'server-full', true, 'server is full'],
    [503, 'room-failed', true, 'room failed'],
    [401, 'unauthorized', false, 'API key'],
    [400, 'invalid-request', false, 'not valid'],
  ])('a %i %s is a JoinError (retryable: %s) with a message for people', async (status, code, retryable, words) => {
    const fetch = vi.fn().mockResolvedValue(jsonResponse(status, { error: { code, message: 'server text' } }));
    const error = await joinRoom({ roomId: 'r1', base: 'http://signal.test', fetch }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JoinError);
    expect(error).toMatchObject({ code, status, retryable, message: 'server text' });
    expect((error as JoinError).userMessage).toContain(words);
  });

  it('turns a network failure and a proxy 502 into retryable errors', async () => {
    const down = vi.fn().mockRejectedValue(new TypeError('Failed to fetch'));
    await expect(joinRoom({ base: 'http://signal.test', fetch: down })).rejects.toMatchObject(
      { code: 'network-error', retryable: true });
    const proxy = vi.fn().mockResolvedValue(new Response('<html>bad gateway</html>', { status: 502 }));
    await expect(joinRoom({ base: 'http://signal.test', fetch: proxy })).rejects.toMatchObject(
      { code: 'http-502', retryable: true });
  });
});

describe('tokenExpiry', () => {
  it('reads exp from a JWT payload, null for anything else', () => {
    const payload = btoa(JSON.stringify({ room: 'r', sub: 'c', exp: 1700000000 })).replace(/=+$/, '');
    expect(tokenExpiry(`h.${payload}.s`)).toBe(1700000000);
    expect(tokenExpiry('garbage')).toBeNull();
  });
});
