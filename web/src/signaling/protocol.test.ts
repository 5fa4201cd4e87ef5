// The client knows every code the server documents: docs/protocol.md is the contract.
import { describe, expect, it } from 'vitest';

import doc from '../../../docs/protocol.md?raw';
import { CLOSE_CODES, FRAME_ERRORS, JOIN_ERRORS } from './protocol';

function section(title: string): string {
  const start = doc.indexOf(title);
  const end = doc.indexOf('\n#', start + title.length);
  return doc.slice(start, end === -1 ? undefined : end);
}

describe('the client reads every documented code', () => {
  const closeRows = [...section('### Close codes').matchAll(/^\| (\d{4}) \| [^|]+\| ([^|]+)\|$/gm)];

  it.each(closeRows.map((m) => [Number(m[1]), m[2].trim()]))('close code %i', (code, advice) => {
    const meaning = CLOSE_CODES[code as number];
    expect(meaning, `no entry for ${code}`).toBeDefined();
    // The doc says "reconnect" or "retry" exactly for the codes worth retrying
    // (1013: "reconnect" after a slow read; 4401: with a new token, handled apart).
    const docRetries = /\breconnect\b|retry/.test(advice as string) && !/do not reconnect/.test(advice as string);
    expect(meaning.retryable, `${code}: ${advice}`).toBe(docRetries);
  });

  it('has the whole close table (sanity check of the parse)', () => {
    expect(closeRows.length).toBeGreaterThanOrEqual(12);
  });

  const restCodes = [...section('### `POST /rooms/join`').matchAll(/^\| \d{3} \| `([a-z-]+)` \|/gm)].map((m) => m[1]);
  it.each(restCodes)('REST error %s', (code) => {
    expect(JOIN_ERRORS[code]).toBeDefined();
  });

  const frameCodes = [...section('### Error frames').matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
  it.each(frameCodes)('error frame %s', (code) => {
    expect(FRAME_ERRORS[code]).toBeDefined();
  });

  it('found the REST and frame tables', () => {
    expect(restCodes.length).toBeGreaterThanOrEqual(10);
    expect(frameCodes.length).toBeGreaterThanOrEqual(8);
  });
});
