import { describe, expect, it } from 'vitest';
import { formBody, messageOf, parseApi, serviceError, wantsTouch } from './form';

describe('console forms', () => {
  it('names only the API and the changing methods', () => {
    expect(parseApi('POST /api/v1/admin/enrolment-tickets')).toEqual({
      method: 'POST',
      path: '/api/v1/admin/enrolment-tickets',
    });
    expect(parseApi('DELETE /api/v1/admin/staff/p-1')).toEqual({ method: 'DELETE', path: '/api/v1/admin/staff/p-1' });
    expect(parseApi('GET /api/v1/admin/people')).toBeNull();
    expect(parseApi('POST https://elsewhere.example/api/v1/x')).toBeNull();
    expect(parseApi('POST /me/sign-out')).toBeNull();
    expect(parseApi(undefined)).toBeNull();
  });

  it('nests dotted field names', () => {
    expect(
      formBody([
        ['person_id', 'p1'],
        ['proofing.method', 'hr_record_match'],
        ['proofing.detail', 'badge photo'],
      ]),
    ).toEqual({ person_id: 'p1', proofing: { method: 'hr_record_match', detail: 'badge photo' } });
  });

  it('sends the fields it is told are numbers as numbers, and leaves out empty ones', () => {
    expect(
      formBody(
        [
          ['days', '14'],
          ['reason', 'travelling'],
          ['scope', ''],
        ],
        ['days'],
      ),
    ).toEqual({ days: 14, reason: 'travelling' });
  });

  it('reads the service error shape and asks for a touch only when told to', () => {
    const e = serviceError(403, { error: { code: 'fresh_touch_required', message: 'touch your key' } });
    expect(e.code).toBe('fresh_touch_required');
    expect(wantsTouch(e)).toBe(true);
    expect(messageOf(e)).toBe('touch your key');
    const other = serviceError(403, { error: { code: 'role_forbidden', message: 'no' } });
    expect(wantsTouch(other)).toBe(false);
    expect(serviceError(502, 'nonsense').code).toBe('http_502');
    expect(messageOf({ name: 'NotAllowedError' })).toMatch(/cancelled or timed out/);
  });
});
