/**
 * The docs are read on the npm registry, where nobody can check them against the code: these
 * checks read the sources as text and fail when an option, a checkpoint field or a code the
 * middleware logs or throws is missing from the page a user would look it up on, or when a
 * page still lists a code that no longer exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

const packages = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
const sources = packages.flatMap((name) => sourceFiles(`packages/${name}/src`))

/** The top-level field names of `export interface <name>` in a source file, in order. */
function interfaceFields(path: string, name: string): string[] {
  const text = read(path)
  const start = text.search(new RegExp(`^export interface ${name}\\b[^{]*\\{$`, 'm'))
  if (start < 0) throw new Error(`interface ${name} not found in ${path}`)
  const body = text.slice(start, text.indexOf('\n}', start))
  return [...body.matchAll(/^ {2}(\w+)\??[:(]/gm)].map((match) => match[1] as string)
}

/** The keys of the `schemas` record in core's options.ts: every option `guard()` accepts. */
function schemaKeys(): string[] {
  const text = read('packages/core/src/options.ts')
  const start = text.indexOf('const schemas: Record<keyof GateOptions')
  if (start < 0) throw new Error('the `schemas` record was not found in packages/core/src/options.ts')
  const body = text.slice(start, text.indexOf('\n}\n', start))
  return [...body.matchAll(/^ {2}(\w+): \[/gm)].map((match) => match[1] as string)
}

/** The string literals of a `type <name> = | 'a' | 'b'` union in a source file. */
function unionMembers(path: string, name: string): string[] {
  const text = read(path)
  const match = new RegExp(`type ${name} =((?:\\s*\\|?\\s*'[^']+')+)`).exec(text)
  if (match === null) throw new Error(`type ${name} not found in ${path}`)
  return [...(match[1] as string).matchAll(/'([^']+)'/g)].map((member) => member[1] as string)
}

/** `SP_BREAKER_${state}`: the states gate.ts logs, spelled as it spells them. */
const templates: Record<string, string[]> = {
  SP_BREAKER_: unionMembers('packages/core/src/breaker.ts', 'BreakerState').map(
    (state) => `SP_BREAKER_${state.toUpperCase().replace('-', '_')}`,
  ),
}

/** Every code the sources can log or throw. A bare prefix (`SP_WARN_` in validation, `SP_BACKEND_*` in prose) is no code. */
function sourceCodes(): Map<string, string[]> {
  const codes = new Map<string, string[]>()
  const add = (code: string, path: string): void => {
    codes.set(code, [...(codes.get(code) ?? []), path])
  }
  for (const path of sources) {
    const text = read(path)
    for (const match of text.matchAll(/\bSP_[A-Z0-9_]+/g)) {
      const code = match[0]
      if (!code.endsWith('_')) {
        add(code, path)
        continue
      }
      if (!text.startsWith('${', (match.index ?? 0) + code.length)) continue
      const expanded = templates[code]
      if (expanded === undefined) throw new Error(`${path} builds codes from \`${code}\${…}\`: teach this test what they expand to`)
      for (const each of expanded) add(each, path)
    }
  }
  return codes
}

/** The lines of a Markdown file from a heading matching `heading` to the next heading of that level or higher. */
function section(markdown: string, heading: RegExp): string[] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((line) => /^#{1,6} /.test(line) && heading.test(line))
  if (start < 0) return []
  const level = (lines[start] as string).indexOf(' ')
  const end = lines.findIndex((line, index) => index > start && /^#{1,6} /.test(line) && line.indexOf(' ') <= level)
  return lines.slice(start + 1, end < 0 ? undefined : end)
}

/** Whether a table in `lines` has a row for `name`: a line starting with "| `name`" (or "| `name(…)`"). */
function hasRow(lines: string[], name: string): boolean {
  return lines.some((line) => line.startsWith(`| \`${name}\``) || line.startsWith(`| \`${name}(`))
}

function missingRows(lines: string[], names: string[]): string[] {
  return names.filter((name) => !hasRow(lines, name))
}

// Missing, it reads as empty: every code is then reported missing rather than the file failing to load.
const codesPage = existsSync(join(root, 'packages/core/CODES.md')) ? read('packages/core/CODES.md') : ''

describe('CODES.md', () => {
  const codes = sourceCodes()

  it('finds the codes in the sources', () => {
    // A parser that finds nothing would pass every check below.
    expect(codes.has('SP_INVALID_OPTION')).toBe(true)
    expect(codes.has('SP_BREAKER_HALF_OPEN')).toBe(true)
    expect(codes.has('SP_WARN_XFF_UNTRUSTED')).toBe(true)
  })

  it('explains every code the middleware can log or throw', () => {
    const headings = new Set([...codesPage.matchAll(/^#{2,4} `(SP_[A-Z0-9_]+)`/gm)].map((match) => match[1]))
    const missing = [...codes].filter(([code]) => !headings.has(code)).map(([code, paths]) => `${code} (${[...new Set(paths)].join(', ')})`)
    expect(missing, 'codes in packages/*/src without their own heading in packages/core/CODES.md').toEqual([])
  })

  it('lists no code the sources no longer have', () => {
    const listed = new Set([...codesPage.matchAll(/\bSP_[A-Z0-9_]+/g)].map((match) => match[0]).filter((code) => !code.endsWith('_')))
    expect([...listed].filter((code) => !codes.has(code))).toEqual([])
  })

  it('puts thrown errors and warnings in their groups', () => {
    const errors = unionMembers('packages/core/src/errors.ts', 'SallyportErrorCode')
    const warnings = unionMembers('packages/core/src/logger.ts', 'WarningCode')
    const thrown = section(codesPage, /thrown errors/i).join('\n')
    const warned = section(codesPage, /warnings/i).join('\n')
    expect(errors.filter((code) => !thrown.includes(`\`${code}\``))).toEqual([])
    expect(warnings.filter((code) => !warned.includes(`\`${code}\``))).toEqual([])
  })
})

describe('option tables', () => {
  const gateOptions = schemaKeys()
  const checkpointFields = interfaceFields('packages/core/src/checkpoint.ts', 'CheckpointSpec')

  it('parses every GateOptions key from the schemas record', () => {
    expect(gateOptions.length).toBeGreaterThan(20)
    expect([...gateOptions].sort()).toEqual([...interfaceFields('packages/core/src/options.ts', 'GateOptions')].sort())
    expect(checkpointFields).toContain('awaitCompleteSignals')
  })

  for (const readme of ['README.md', 'packages/core/README.md', 'packages/express/README.md', 'packages/koa/README.md']) {
    it(`${readme} has a row for every gate option`, () => {
      expect(missingRows(section(read(readme), /^## (gate )?options$/i), gateOptions)).toEqual([])
    })
  }

  for (const readme of ['packages/core/README.md', 'packages/express/README.md', 'packages/koa/README.md']) {
    it(`${readme} has a row for every checkpoint field`, () => {
      const rows = section(read(readme), /checkpoint/i).filter((line) => line.startsWith('|'))
      const firstCells = rows.map((line) => line.split('|')[1] ?? '')
      expect(checkpointFields.filter((field) => !firstCells.some((cell) => cell.includes(`\`${field}\``)))).toEqual([])
    })
  }

  it('names every breaker and cache setting beside the option', () => {
    const nested = [
      ...interfaceFields('packages/core/src/breaker.ts', 'BreakerOptions'),
      ...interfaceFields('packages/core/src/cache.ts', 'CacheOptions'),
    ]
    for (const readme of ['README.md', 'packages/core/README.md', 'packages/express/README.md', 'packages/koa/README.md']) {
      const text = section(read(readme), /^## (gate )?options$/i).join('\n')
      expect(
        nested.filter((name) => !text.includes(name)),
        readme,
      ).toEqual([])
    }
  })

  const backends: Array<[readme: string, source: string, type: string, heading: RegExp]> = [
    ['packages/core/README.md', 'packages/core/src/local-policies.ts', 'LocalPoliciesOptions', /localPolicies\(options\)/],
    ['packages/core/README.md', 'packages/core/src/http-backend.ts', 'HttpBackendOptions', /httpBackend\(options\)/],
    ['packages/trusted-accounts/README.md', 'packages/trusted-accounts/src/index.ts', 'TrustedAccountsOptions', /^## options$/i],
    ['packages/tracenow/README.md', 'packages/tracenow/src/options.ts', 'TraceNowOptions', /^## options$/i],
    ['packages/ipqs/README.md', 'packages/ipqs/src/options.ts', 'IpqsOptions', /^## options$/i],
    ['packages/tracer/README.md', 'packages/tracer/src/index.ts', 'TracerOptions', /^## options$/i],
    ['packages/redis/README.md', 'packages/redis/src/index.ts', 'RedisStoreOptions', /^## options$/i],
    [
      'packages/testing/README.md',
      'packages/testing/src/trusted-accounts.ts',
      'FakeTrustedAccountsOptions',
      /fakeTrustedAccounts\(options\?\)/,
    ],
  ]
  for (const [readme, source, type, heading] of backends) {
    it(`${readme} has a row for every ${type} field`, () => {
      const fields = interfaceFields(source, type)
      expect(fields.length).toBeGreaterThan(0)
      expect(missingRows(section(read(readme), heading), fields)).toEqual([])
    })
  }
})

describe('links in the packages', () => {
  const readmes = ['README.md', ...packages.map((name) => `packages/${name}/README.md`)]
  const codesUrl = 'https://github.com/sallyport/sallyport/blob/main/packages/core/CODES.md'

  for (const readme of readmes) {
    it(`${readme} links CODES.md by its absolute address`, () => {
      expect(read(readme).includes(`](${codesUrl}`), `no link to ${codesUrl}`).toBe(true)
    })
  }

  // The npm registry shows a package's README away from the repository: a relative link there is dead.
  for (const readme of readmes.filter((path) => path !== 'README.md')) {
    it(`${readme} has no relative links`, () => {
      const links = [...read(readme).matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] as string)
      expect(links.filter((target) => !/^(https?:|mailto:|#)/.test(target))).toEqual([])
    })
  }

  // An absolute link into the repository is only as good as the file it names.
  for (const readme of readmes) {
    it(`${readme} links only files that exist in the repository`, () => {
      const prefix = 'https://github.com/sallyport/sallyport/blob/main/'
      const targets = [...read(readme).matchAll(/\]\((https:\/\/github\.com\/sallyport\/sallyport\/blob\/main\/[^)\s#]+)/g)].map((match) =>
        (match[1] as string).slice(prefix.length),
      )
      expect(targets.filter((target) => !existsSync(new URL(`../../${target}`, import.meta.url)))).toEqual([])
    })
  }

  it('links POLICIES.md by its absolute address wherever it is linked', () => {
    for (const readme of readmes) {
      for (const match of read(readme).matchAll(/\]\(([^)\s]*POLICIES\.md[^)\s]*)\)/g)) {
        expect(match[1], readme).toMatch(/^https:\/\/github\.com\/sallyport\/sallyport\/blob\/main\/packages\/core\/POLICIES\.md/)
      }
    }
  })
})
