import { SallyportError } from '@sallyport/core'
import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../src/store.js'

describe('MemoryStore', () => {
  it('counts within a window and starts again after it', async () => {
    let now = 1_000
    const store = new MemoryStore({ now: () => now })
    expect(await store.increment('a', 100)).toEqual({ count: 1, expiresAt: 1_100 })
    expect(await store.increment('a', 100)).toEqual({ count: 2, expiresAt: 1_100 })
    expect(await store.get('a')).toBe(2)
    now = 1_099
    expect(await store.increment('a', 100)).toEqual({ count: 3, expiresAt: 1_100 })
    now = 1_100
    expect(await store.get('a')).toBeUndefined()
    expect(await store.increment('a', 100)).toEqual({ count: 1, expiresAt: 1_200 })
    await store.delete('a')
    expect(await store.get('a')).toBeUndefined()
  })

  it('counts concurrent increments exactly', async () => {
    const store = new MemoryStore()
    const counts = await Promise.all(Array.from({ length: 100 }, () => store.increment('k', 1000)))
    expect(counts.map(({ count }) => count).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, index) => index + 1))
  })

  it('stays bounded under a flood of distinct keys, dropping the oldest first', async () => {
    const store = new MemoryStore({ maxKeys: 1000 })
    await store.increment('oldest', 60_000)
    for (let index = 0; index < 50_000; index++) await store.increment(`flood-${index}`, 60_000)
    expect(store.size).toBe(1000)
    expect(await store.get('oldest')).toBeUndefined()
    expect(await store.get('flood-49999')).toBe(1)
    expect(await store.get('flood-48999')).toBe(undefined)
    expect(await store.get('flood-49000')).toBe(1)
  })

  it('sheds expired keys as it writes, so memory follows traffic down', async () => {
    let now = 0
    const store = new MemoryStore({ now: () => now })
    for (let index = 0; index < 400; index++) await store.increment(`old-${index}`, 10)
    now = 100
    for (let index = 0; index < 100; index++) await store.increment(`new-${index}`, 10)
    expect(store.size).toBe(100)
  })

  it('rejects a size that is not a positive integer', () => {
    for (const maxKeys of [0, -1, 1.5, Number.NaN]) expect(() => new MemoryStore({ maxKeys })).toThrow(SallyportError)
  })

  it('empties on close', async () => {
    const store = new MemoryStore()
    await store.increment('a', 1000)
    await store.close()
    expect(store.size).toBe(0)
  })
})
