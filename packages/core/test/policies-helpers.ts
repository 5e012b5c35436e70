import type { IncomingHttpHeaders } from 'node:http'
import type { DecideContext, DecisionInput, Logger, RequestView } from '@sallyport/core'
import { type LocalPoliciesBackend, type LocalPoliciesOptions, localPolicies } from '../src/local-policies.js'

export const SECRET = 'a-test-secret-that-is-long-enough-0123456789'

export const CHROME_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
export const FIREFOX_UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0'

/** What Chrome sends for a page load. */
export const BROWSER_HEADERS: Record<string, string> = {
  host: 'site.example',
  'user-agent': CHROME_UA,
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
  'sec-ch-ua': '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
  'sec-ch-ua-mobile': '?0',
  'sec-ch-ua-platform': '"Windows"',
}

export interface InputInit extends Partial<Omit<DecisionInput, 'cookie'>> {
  cookies?: Record<string, string>
}

/** A DecisionInput as the gate would build it: a browser page load from 203.0.113.9 unless told otherwise. */
export function input(init: InputInit = {}): DecisionInput {
  const { cookies = {}, ...rest } = init
  return {
    ip: '203.0.113.9',
    method: 'GET',
    path: '/',
    host: 'site.example',
    headers: { ...BROWSER_HEADERS },
    cookieNames: Object.keys(cookies),
    checkpoint: null,
    cookie: (name) => cookies[name],
    ...rest,
  }
}

export function ctx(signal: AbortSignal = new AbortController().signal): DecideContext {
  return { signal, deadline: performance.now() + 1000, retries: 0 }
}

export const silent: Logger = { warn() {}, error() {} }

const opened: LocalPoliciesBackend[] = []

/** A local engine with a fixed secret and a silent logger; `closeAll` releases every one. */
export function engine(options: LocalPoliciesOptions = {}): LocalPoliciesBackend {
  const backend = localPolicies({ secret: SECRET, logger: silent, ...options })
  opened.push(backend)
  return backend
}

export async function closeAll(): Promise<void> {
  await Promise.all(opened.splice(0).map((backend) => backend.close?.()))
}

/** The verdict and reason the engine gives `init`. */
export async function judge(backend: LocalPoliciesBackend, init: InputInit = {}): Promise<[string, string | null]> {
  const reply = await backend.decide(input(init), ctx())
  return [reply.verdict, reply.reason ?? null]
}

export function view(
  init: { method?: string; url?: string; headers?: IncomingHttpHeaders; remoteAddress?: string } = {},
): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'GET',
    url: init.url ?? '/',
    headers: init.headers ?? { ...BROWSER_HEADERS },
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}
