import { pathOnly } from '../skip.js'
import type { DecideContext, DecisionInput } from '../types.js'
import { type NumericIp, parseIp } from './ip-set.js'

/**
 * One request as the rules see it. What costs anything to work out (the parsed IP, the
 * path, the clearance check) is worked out on first use and at most once per request.
 */
export class RequestFacts {
  readonly input: DecisionInput
  readonly #context: DecideContext
  readonly #isCleared: (input: DecisionInput) => boolean
  #ip: NumericIp | null | undefined
  #path: string | undefined
  #loweredPath: string | undefined
  #cleared: boolean | undefined

  constructor(input: DecisionInput, context: DecideContext, isCleared: (input: DecisionInput) => boolean) {
    this.input = input
    this.#context = context
    this.#isCleared = isCleared
  }

  /** The decision's abort signal, read only by conditions that wait on I/O (velocity): creating it costs. */
  get signal(): AbortSignal {
    return this.#context.signal
  }

  /** The client IP as a number (IPv4) or bigint (IPv6), or `null` when there is none. */
  get ip(): NumericIp | null {
    if (this.#ip === undefined) this.#ip = this.input.ip === null ? null : parseIp(this.input.ip)
    return this.#ip
  }

  get userAgent(): string {
    return this.input.headers['user-agent'] ?? ''
  }

  /** The path without its query. */
  get path(): string {
    if (this.#path === undefined) {
      this.#path = pathOnly(this.input.path)
    }
    return this.#path
  }

  get loweredPath(): string {
    if (this.#loweredPath === undefined) this.#loweredPath = this.path.toLowerCase()
    return this.#loweredPath
  }

  /** The request holds a valid clearance from a solved challenge. Asked only when a challenge rule is reached. */
  get cleared(): boolean {
    if (this.#cleared === undefined) {
      try {
        this.#cleared = this.#isCleared(this.input) === true
      } catch {
        this.#cleared = false
      }
    }
    return this.#cleared
  }

  /** Whether `cleared` was asked, so the answer can be reported. */
  get clearanceChecked(): boolean {
    return this.#cleared !== undefined
  }
}
