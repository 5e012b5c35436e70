import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { IpSet, parseIp, parseRange } from '../src/policies/ip-set.js'
import { compileText } from '../src/policies/lists.js'
import { closeAll, engine, judge } from './policies-helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'sallyport-lists-'))
afterEach(closeAll)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
const tempFile = (text?: string): string => {
  const path = join(dir, `list-${++files}.txt`)
  if (text !== undefined) writeFileSync(path, text)
  return path
}

const denyListed = { name: 'listed', verdict: 'deny', when: { ip: { list: 'bad' } } } as const

function ipSet(entries: string[]): IpSet {
  return new IpSet(entries.flatMap((entry) => parseRange(entry) ?? []))
}
const has = (set: IpSet, ip: string) => {
  const parsed = parseIp(ip)
  return parsed !== null && set.has(parsed)
}

describe('IpSet', () => {
  it('merges overlapping and adjacent ranges and finds the edges', () => {
    const set = ipSet(['10.0.0.0/24', '10.0.1.0/24', '10.0.0.128/25', '10.0.3.7', '0.0.0.0/32', '255.255.255.255'])
    expect(set.size).toBe(4)
    for (const ip of ['10.0.0.0', '10.0.1.255', '10.0.3.7', '0.0.0.0', '255.255.255.255']) expect(has(set, ip), ip).toBe(true)
    for (const ip of ['9.255.255.255', '10.0.2.0', '10.0.3.6', '10.0.3.8', '0.0.0.1', '255.255.255.254'])
      expect(has(set, ip), ip).toBe(false)
  })

  it('aligns CIDR ranges with host bits set, and holds IPv6 next to IPv4', () => {
    const set = ipSet(['192.0.2.77/24', '2001:db8::1/64', '::1'])
    expect(has(set, '192.0.2.0')).toBe(true)
    expect(has(set, '2001:db8::ffff:ffff:ffff:ffff')).toBe(true)
    expect(has(set, '2001:db8:0:1::')).toBe(false)
    expect(has(set, '::1')).toBe(true)
    expect(has(set, '::2')).toBe(false)
    expect(has(set, '0.0.0.1')).toBe(false)
  })

  it('folds IPv4-mapped IPv6 in entries and addresses alike', () => {
    const set = ipSet(['::ffff:198.51.100.0/120', '::ffff:c000:0201'])
    expect(has(set, '198.51.100.200')).toBe(true)
    expect(has(set, '::ffff:198.51.100.200')).toBe(true)
    expect(has(set, '192.0.2.1')).toBe(true)
    expect(has(set, '198.51.101.0')).toBe(false)
    // An IPv6 range that spans the whole mapped block spans IPv4 too.
    expect(has(ipSet(['::/0']), '8.8.8.8')).toBe(true)
    expect(has(ipSet(['2000::/3']), '8.8.8.8')).toBe(false)
  })

  it('rejects what is not an address or a CIDR range', () => {
    for (const entry of ['1.2.3', '01.2.3.4', '1.2.3.4/33', '1.2.3.4/', '::1/129', '1.2.3.4/x', 'a.b.c.d', '1.2.3.256', ' ']) {
      expect(parseRange(entry), entry).toBeNull()
    }
  })
})

describe('list files', () => {
  it('read one entry per line, skip comments and count bad lines', async () => {
    const path = tempFile(
      [
        '# Tor exits, fetched daily',
        '',
        '198.51.100.7',
        '203.0.113.0/24   # a whole range',
        'not an address!',
        '300.1.1.1',
        '2001:db8::/32',
        'mailinator.com',
      ].join('\r\n'),
    )
    const backend = engine({ lists: { bad: { file: path } }, rules: [denyListed] })
    expect(backend.listStatus('bad')).toMatchObject({ file: path, ranges: 3, domains: 1, skipped: 2, loads: 1, problem: null })
    expect(backend.warnings).toEqual([
      expect.objectContaining({ code: 'SP_WARN_LIST_UNREADABLE', message: expect.stringContaining('2 line(s)') }),
    ])
    expect(await judge(backend, { ip: '198.51.100.7' })).toEqual(['deny', 'listed'])
    expect(await judge(backend, { ip: '203.0.113.255' })).toEqual(['deny', 'listed'])
    expect(await judge(backend, { ip: '2001:db8:1::1' })).toEqual(['deny', 'listed'])
    expect(await judge(backend, { ip: '198.51.100.8' })).toEqual(['allow', null])
  })

  it('reload when the file changes, is replaced, removed and recreated', async () => {
    const path = tempFile('198.51.100.1\n')
    const logged: Array<Record<string, unknown>> = []
    const logger = { warn: (object: Record<string, unknown>) => void logged.push(object), error() {} }
    const backend = engine({ lists: { bad: { file: path, reloadIntervalMs: 20 } }, rules: [denyListed], logger })
    expect(await judge(backend, { ip: '198.51.100.1' })).toEqual(['deny', 'listed'])

    await writeFile(path, '198.51.100.2\n198.51.100.3\n')
    await vi.waitFor(async () => expect(await judge(backend, { ip: '198.51.100.2' })).toEqual(['deny', 'listed']), { timeout: 3000 })
    expect(await judge(backend, { ip: '198.51.100.1' })).toEqual(['allow', null])

    // The usual way to update a list: write a new file and rename it over the old one.
    await writeFile(`${path}.next`, '192.0.2.0/24\n')
    await rename(`${path}.next`, path)
    await vi.waitFor(async () => expect(await judge(backend, { ip: '192.0.2.9' })).toEqual(['deny', 'listed']), { timeout: 3000 })
    expect(await judge(backend, { ip: '198.51.100.2' })).toEqual(['allow', null])

    await rm(path)
    await vi.waitFor(() => expect(backend.listStatus('bad')?.problem).toMatch(/does not exist/), { timeout: 3000 })
    expect(await judge(backend, { ip: '192.0.2.9' })).toEqual(['allow', null])
    expect(logged).toContainEqual(expect.objectContaining({ code: 'SP_WARN_LIST_UNREADABLE', list: 'bad' }))

    await writeFile(path, '192.0.2.9\n')
    await vi.waitFor(async () => expect(await judge(backend, { ip: '192.0.2.9' })).toEqual(['deny', 'listed']), { timeout: 3000 })
    expect(backend.listStatus('bad')).toMatchObject({ problem: null, ranges: 1 })
  })

  it('treat a missing file as an empty list with a warning, and pick it up once it appears', async () => {
    const path = tempFile()
    const backend = engine({ lists: { bad: { file: path, reloadIntervalMs: 20 } }, rules: [denyListed] })
    expect(backend.warnings).toEqual([expect.objectContaining({ code: 'SP_WARN_LIST_UNREADABLE', message: expect.stringContaining(path) })])
    expect(backend.listStatus('bad')).toMatchObject({ ranges: 0, problem: expect.stringMatching(/does not exist/) })
    expect(await judge(backend, { ip: '198.51.100.1' })).toEqual(['allow', null])
    await writeFile(path, '198.51.100.1\n')
    await vi.waitFor(async () => expect(await judge(backend, { ip: '198.51.100.1' })).toEqual(['deny', 'listed']), { timeout: 3000 })
  })

  it('hold domains for emailDomain conditions', async () => {
    const path = tempFile('mailinator.com\n*.guerrillamail.com\nyopmail.com.\n')
    const backend = engine({
      lists: { disposable: { file: path } },
      rules: [{ name: 'disposable', verdict: 'review', when: { emailDomain: { list: 'disposable' } } }],
    })
    const signup = (email: string) => ({ checkpoint: { event: 'signup', status: 'attempted' as const, email } })
    expect(await judge(backend, signup('a@sharklasers.guerrillamail.com'))).toEqual(['review', 'disposable'])
    expect(await judge(backend, signup('a@YOPMAIL.com'))).toEqual(['review', 'disposable'])
    expect(await judge(backend, signup('a@gmail.com'))).toEqual(['allow', null])
  })

  it('match 100 000 entries exactly, range edges and IPv6 included', async () => {
    // Disjoint blocks with a gap after each, in shuffled order: every edge is checkable.
    const base = 0x0b00_0000 // 11.0.0.0
    const v4 = (value: number) => [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.')
    const blocks: Array<{ line: string; first: string; last: string; before: string; after: string }> = []
    for (let index = 0; index < 90_000; index++) {
      const start = base + index * 32
      if (index % 3 === 0) {
        blocks.push({ line: v4(start + 5), first: v4(start + 5), last: v4(start + 5), before: v4(start + 4), after: v4(start + 6) })
      } else {
        blocks.push({ line: `${v4(start)}/28`, first: v4(start), last: v4(start + 15), before: v4(start - 1), after: v4(start + 16) })
      }
    }
    // IPv6 /48s on every other prefix: 2001:db8:2::/48, 2001:db8:4::/48, …
    const v6 = (group: number) => `2001:db8:${group.toString(16)}`
    for (let index = 1; index <= 10_000; index++) {
      const group = index * 2
      blocks.push({
        line: `${v6(group)}::/48`,
        first: `${v6(group)}::`,
        last: `${v6(group)}:ffff:ffff:ffff:ffff:ffff`,
        before: `${v6(group - 1)}:ffff:ffff:ffff:ffff:ffff`,
        after: `${v6(group + 1)}::`,
      })
    }
    const lines = blocks.map((block) => block.line)
    for (let index = lines.length - 1; index > 0; index--) {
      const other = Math.floor(Math.random() * (index + 1))
      ;[lines[index], lines[other]] = [lines[other] as string, lines[index] as string]
    }
    const text = `# generated\n${lines.join('\n')}\n`
    const path = tempFile(text)
    const backend = engine({ lists: { bad: { file: path } }, rules: [denyListed] })
    expect(backend.listStatus('bad')).toMatchObject({ skipped: 0, problem: null })
    expect(backend.listStatus('bad')?.ranges).toBe(100_000)

    // Every edge of every entry, against the same compiled structure the engine holds.
    const { ips } = compileText(text)
    const wrong: string[] = []
    for (const block of blocks) {
      if (!has(ips, block.first)) wrong.push(`${block.first} missing`)
      if (!has(ips, block.last)) wrong.push(`${block.last} missing`)
      if (has(ips, block.before)) wrong.push(`${block.before} listed`)
      if (has(ips, block.after)) wrong.push(`${block.after} listed`)
    }
    expect(wrong.slice(0, 5)).toEqual([])

    // And a sample through the engine itself.
    for (const block of blocks.filter((_block, index) => index % 997 === 0)) {
      expect(await judge(backend, { ip: block.first })).toEqual(['deny', 'listed'])
      expect(await judge(backend, { ip: block.last })).toEqual(['deny', 'listed'])
      expect(await judge(backend, { ip: block.after })).toEqual(['allow', null])
    }
    expect(await judge(backend, { ip: '2001:db8::1' })).toEqual(['allow', null])
    expect(await judge(backend, { ip: '::ffff:11.0.0.5' })).toEqual(['deny', 'listed'])
    expect(await judge(backend, { ip: '10.255.255.255' })).toEqual(['allow', null])
  }, 30_000)
})
