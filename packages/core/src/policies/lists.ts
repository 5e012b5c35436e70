import { readFileSync, type Stats, statSync, unwatchFile, watchFile } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { type IpRange, IpSet, parseRange } from './ip-set.js'

const DOMAIN_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/
/** A list file larger than this is a mistake (a wrong path, a log file): it is not read. */
const MAX_FILE_BYTES = 64 * 1024 * 1024

/** A lowercase domain without `*.`, a leading dot or the root dot; `null` when it is not one. */
export function normalizeDomain(text: string): string | null {
  let domain = text.toLowerCase()
  if (domain.startsWith('*.')) domain = domain.slice(2)
  else if (domain.startsWith('.')) domain = domain.slice(1)
  if (domain.endsWith('.')) domain = domain.slice(0, -1)
  if (domain.length === 0 || domain.length > 253) return null
  const labels = domain.split('.')
  if (!labels.every((label) => DOMAIN_LABEL.test(label))) return null
  // `1.2.3` is a broken address, not a host name.
  return /^\d+$/.test(labels[labels.length - 1] as string) ? null : domain
}

/** Domains, matched with their subdomains: `mailinator.com` also holds `eu.mailinator.com`. */
export class DomainSet {
  static readonly empty = new DomainSet(new Set())
  readonly #names: ReadonlySet<string>

  constructor(names: ReadonlySet<string>) {
    this.#names = names
  }

  get size(): number {
    return this.#names.size
  }

  /** `domain` must already be lowercase. */
  has(domain: string): boolean {
    if (this.#names.size === 0) return false
    let rest = domain
    for (;;) {
      if (this.#names.has(rest)) return true
      const dot = rest.indexOf('.')
      if (dot < 0) return false
      rest = rest.slice(dot + 1)
    }
  }
}

/** One list, compiled: its IP ranges and its domains. */
export interface CompiledList {
  readonly ips: IpSet
  readonly domains: DomainSet
  /** Lines or entries that were neither an IP, a CIDR range nor a domain. */
  readonly skipped: number
}

export const EMPTY_LIST: CompiledList = Object.freeze({ ips: IpSet.empty, domains: DomainSet.empty, skipped: 0 })

/** What an entry is: IP ranges, a domain, or `false` when it is neither. */
function addEntry(entry: string, ranges: IpRange[], domains: Set<string>): boolean {
  const parsed = parseRange(entry)
  if (parsed !== null) {
    ranges.push(...parsed)
    return true
  }
  const domain = normalizeDomain(entry)
  if (domain === null) return false
  domains.add(domain)
  return true
}

/** Compiles inline entries; `onBad` hears about each one that is unusable. */
export function compileEntries(entries: readonly string[], onBad: (index: number) => void): CompiledList {
  const ranges: IpRange[] = []
  const domains = new Set<string>()
  let skipped = 0
  entries.forEach((entry, index) => {
    if (!addEntry(entry.trim(), ranges, domains)) {
      skipped++
      onBad(index)
    }
  })
  return { ips: new IpSet(ranges), domains: new DomainSet(domains), skipped }
}

const SLICE_LINES = 10_000

/** Parses a list file's lines into `ranges` and `domains`, pausing every few thousand lines; returns the bad-line count. */
function* parseLines(text: string, ranges: IpRange[], domains: Set<string>): Generator<void, number> {
  let skipped = 0
  let count = 0
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#')
    const line = (hash < 0 ? raw : raw.slice(0, hash)).trim()
    if (line.length > 0 && !addEntry(line, ranges, domains)) skipped++
    if (++count % SLICE_LINES === 0) yield
  }
  return skipped
}

/** Compiles a list file's text: one entry per line, `#` comments, blank lines ignored, bad lines counted. */
export function compileText(text: string): CompiledList {
  const ranges: IpRange[] = []
  const domains = new Set<string>()
  const lines = parseLines(text, ranges, domains)
  let step = lines.next()
  while (step.done !== true) step = lines.next()
  return { ips: new IpSet(ranges), domains: new DomainSet(domains), skipped: step.value }
}

/** The same, yielding to the event loop between slices: a reload never stalls requests for long. */
export async function compileTextInSlices(text: string): Promise<CompiledList> {
  const ranges: IpRange[] = []
  const domains = new Set<string>()
  const lines = parseLines(text, ranges, domains)
  let step = lines.next()
  while (step.done !== true) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    step = lines.next()
  }
  return { ips: new IpSet(ranges), domains: new DomainSet(domains), skipped: step.value }
}

/** What `listStatus(name)` reports about a named list. */
export interface ListStatus {
  /** The file, for file lists. */
  file: string | null
  /** Disjoint IP ranges held, after merging overlaps. */
  ranges: number
  domains: number
  /** Entries skipped because they were neither an IP, a CIDR range nor a domain. */
  skipped: number
  /** Times the list was (re)loaded. */
  loads: number
  /** When it was last loaded, epoch ms. */
  loadedAt: number
  /** Why the last load found no file or could not read it, else `null`. */
  problem: string | null
}

/** A named list as rules hold it: `current` is swapped whole when its file reloads. */
export interface ListHandle {
  readonly current: CompiledList
}

class InlineList implements ListHandle {
  readonly current: CompiledList
  readonly #loadedAt = Date.now()

  constructor(list: CompiledList) {
    this.current = list
  }

  status(): ListStatus {
    const { ips, domains, skipped } = this.current
    return { file: null, ranges: ips.size, domains: domains.size, skipped, loads: 1, loadedAt: this.#loadedAt, problem: null }
  }

  close(): void {}
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT'
}

function describe(error: unknown, kept: boolean): string {
  if (isMissing(error)) return 'the file does not exist; the list is empty until it appears'
  const code = (error as NodeJS.ErrnoException | null)?.code ?? String(error)
  return `the file could not be read (${code}); ${kept ? 'the last good version stays in use' : 'the list is empty'}`
}

function tooLarge(size: number): void {
  if (size > MAX_FILE_BYTES) throw Object.assign(new Error('file too large'), { code: 'EFBIG' })
}

/**
 * A list read from a file, watched by polling its stat (`fs.watchFile`, never keeping the
 * process alive). The first load happens at construction; reloads read and compile off the
 * request path and swap the whole list at once, so a request sees the old list or the new one.
 */
class FileList implements ListHandle {
  current: CompiledList = EMPTY_LIST
  readonly #path: string
  readonly #report: (message: string) => void
  readonly #listener: (current: Stats, previous: Stats) => void
  #loads = 0
  #loadedAt = 0
  #problem: string | null = null
  #loading = false
  #again = false
  #closed = false

  constructor(path: string, intervalMs: number, report: (message: string) => void) {
    this.#path = path
    this.#report = report
    this.#listener = (current, previous) => {
      if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return
      void this.#reload()
    }
    watchFile(path, { persistent: false, interval: intervalMs }, this.#listener)
  }

  /** Synchronous first load, at construction: requests never wait on it. Returns the problem, if any. */
  loadNow(): string | null {
    try {
      tooLarge(statSync(this.#path).size)
      this.#set(compileText(readFileSync(this.#path, 'utf8')), null)
    } catch (error) {
      this.#set(EMPTY_LIST, describe(error, false))
    }
    return this.#message()
  }

  async #reload(): Promise<void> {
    if (this.#closed) return
    if (this.#loading) {
      this.#again = true
      return
    }
    this.#loading = true
    try {
      tooLarge((await stat(this.#path)).size)
      this.#set(await compileTextInSlices(await readFile(this.#path, 'utf8')), null)
    } catch (error) {
      // A missing file is an empty list, as at start-up; an unreadable one keeps the last good list.
      const missing = isMissing(error)
      this.#set(missing ? EMPTY_LIST : this.current, describe(error, !missing))
    } finally {
      this.#loading = false
    }
    const message = this.#message()
    if (message !== null) this.#report(message)
    if (this.#again) {
      this.#again = false
      await this.#reload()
    }
  }

  #set(list: CompiledList, problem: string | null): void {
    this.current = list
    this.#problem = problem
    this.#loads++
    this.#loadedAt = Date.now()
  }

  #message(): string | null {
    if (this.#problem !== null) return `${this.#path}: ${this.#problem}.`
    const { skipped } = this.current
    return skipped === 0 ? null : `${this.#path}: ${skipped} line(s) are neither an IP, a CIDR range nor a domain and were skipped.`
  }

  status(): ListStatus {
    const { ips, domains, skipped } = this.current
    return {
      file: this.#path,
      ranges: ips.size,
      domains: domains.size,
      skipped,
      loads: this.#loads,
      loadedAt: this.#loadedAt,
      problem: this.#problem,
    }
  }

  close(): void {
    this.#closed = true
    unwatchFile(this.#path, this.#listener)
  }
}

export type NamedList = InlineList | FileList

export function inlineList(list: CompiledList): NamedList {
  return new InlineList(list)
}

export function fileList(path: string, intervalMs: number, report: (message: string) => void): FileList {
  return new FileList(path, intervalMs, report)
}
