export * from './ipqs.js'
export { type FakeServer, type Fault, type RecordedRequest, type ScriptedReply, type ScriptedReplyLike, startFakeServer } from './server.js'
export * from './tracenow.js'
export * from './tracer.js'
export {
  type CheckRequestBody,
  type FakeTrustedAccounts,
  type FakeTrustedAccountsOptions,
  fakeTrustedAccounts,
  type TrustedAccountsReply,
} from './trusted-accounts.js'
