export { bodyStreamUnread, onResponseAbandoned, peerGone, readRequestBody } from './body.js'
export { type BreakerOptions, type BreakerState, CircuitBreaker, DEFAULT_BREAKER } from './breaker.js'
export { type CacheOptions, DecisionCache } from './cache.js'
export {
  type ChallengeService,
  type ChallengeServiceOptions,
  CLEARANCE_COOKIE,
  createChallengeService,
} from './challenge/index.js'
export { checkOptions, type OptionCheck } from './check-options.js'
export type { CheckpointSpec, CompiledCheckpoint, Extractor } from './checkpoint.js'
export { compileTrust, normalizeIp, resolveClientIp, resolveHost, resolveProtocol, type TrustProxy } from './client-ip.js'
export { pause, within } from './deadline.js'
export {
  failureOf,
  invalidCheckpoint,
  invalidOption,
  isUnsetKey,
  noClientIp,
  SallyportError,
  type SallyportErrorCode,
  type SallyportErrorDetails,
  unsetKey,
} from './errors.js'
export { createGate, type Gate } from './gate.js'
export {
  ALWAYS_SENSITIVE_HEADERS,
  CLIENT_HEADER_PREFIXES,
  CLIENT_HEADERS,
  DEFAULT_SENSITIVE_HEADERS,
  type HeaderAccess,
  pathForBackends,
  readCookies,
  sanitizeHeaders,
} from './headers.js'
export { type HttpBackendOptions, httpBackend } from './http-backend.js'
export { type LocalPoliciesBackend, type LocalPoliciesOptions, localPolicies } from './local-policies.js'
export { consoleLogger, type Logger, type WarningCode } from './logger.js'
export type { ChallengeHook, ChallengeOptions, DenyOptions, GateOptions, OnError } from './options.js'
export { AUTOMATION_USER_AGENTS, defaultRules } from './policies/defaults.js'
export type { ListStatus } from './policies/lists.js'
export { strictRules } from './policies/strict.js'
export type {
  CheckpointTest,
  Condition,
  HeaderTest,
  ListRef,
  ListSource,
  PathPattern,
  Pattern,
  Rule,
  SignalTest,
  VelocityKey,
  VelocityTest,
} from './policies/types.js'
export { returnOrigin, returnUrl, safeRedirectTarget } from './redirect.js'
export { type CookieCheck, checkSetCookie, MAX_FORWARDED_COOKIES } from './set-cookie.js'
/**
 * For backend authors: `shape`, a small checker in zod's vocabulary, and `checkOptions`, which
 * checks a factory's options with one and throws `SP_INVALID_OPTION` in Sallyport's words.
 */
export {
  type AnyShape,
  type ArrayShape,
  formatPath,
  type Infer,
  type Issue,
  type IssueCode,
  type NumberShape,
  type ObjectOutput,
  type ObjectShape,
  type SafeParseResult,
  Shape,
  ShapeError,
  type StringShape,
  shape,
} from './shape.js'
export type { SkipRule } from './skip.js'
export { MemoryStore, type MemoryStoreOptions, type Store } from './store.js'
export { type HttpReply, type HttpRequest, parseJson, statusError, Transport, type TransportOptions } from './transport.js'
export type {
  Action,
  BackendPages,
  BackendRoutes,
  BackendVerdict,
  Checkpoint,
  CheckpointStatus,
  DecideContext,
  Decision,
  DecisionBackend,
  DecisionInput,
  FailureClass,
  Outcome,
  RequestView,
  ServedRequest,
  ServedResponse,
  TrustFunction,
  Verdict,
} from './types.js'
export { CHECKPOINT_STATUSES, FAILURE_CLASSES, VERDICTS } from './types.js'
/**
 * For backend authors: an HTTP decision service as a backend from its options, its request and
 * its reply mapping (`httpVendor`), and `boundedText` for text copied from a reply.
 */
export { boundedText, type HttpVendorCall, type HttpVendorSpec, httpVendor, vendorOptions } from './vendor.js'
