import { describe, expect, it } from 'vitest';
import { allowList, formBody, messageOf, parseApi, serviceError, wantsTouch, withAllowList } from './form';

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

  it('turns the picked models and the typed AAGUIDs into one allow-list', () => {
    const a = 'CB69481E-8FF7-4039-93EC-0A2729A154A8';
    expect(allowList([a.toLowerCase()], `\n ${a} \nee882879-721c-4913-9775-3dfcce97072a\n`)).toEqual([
      'cb69481e-8ff7-4039-93ec-0a2729a154a8',
      'ee882879-721c-4913-9775-3dfcce97072a',
    ]);
    expect(allowList([], '  \n')).toEqual([]);
  });

  it('writes the allow-list into the definition and leaves the rest as it was', () => {
    const spec = JSON.stringify({ priority: 1, selector: { kind: 'group', value: 'x' }, policy: { min_authenticators: 2 } });
    const out = JSON.parse(withAllowList(spec, ['a-1']) ?? 'null');
    expect(out).toEqual({
      priority: 1,
      selector: { kind: 'group', value: 'x' },
      policy: { min_authenticators: 2, aaguid_allow_list: ['a-1'] },
    });
    expect(JSON.parse(withAllowList('{"priority": 1}', []) ?? 'null').policy).toEqual({ aaguid_allow_list: [] });
    expect(withAllowList('{"priority": ', ['a'])).toBeNull();
    expect(withAllowList('[1, 2]', ['a'])).toBeNull();
  });
});
