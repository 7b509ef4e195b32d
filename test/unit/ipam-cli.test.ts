import { describe, expect, it } from 'vitest';
import { formatAge } from '../../cmd/cli/ipam';

describe('formatAge (tabby ipam list)', () => {
  it('is seconds, then minutes and seconds, hours and minutes, days and hours', () => {
    expect(formatAge(-5)).toBe('0s');
    expect(formatAge(42_900)).toBe('42s');
    expect(formatAge(192_000)).toBe('3m12s');
    expect(formatAge(2 * 3600_000 + 5 * 60_000 + 59_000)).toBe('2h05m');
    expect(formatAge(3 * 86400_000 + 4 * 3600_000)).toBe('3d04h');
  });
});
