/**
 * The vendor quick starts as the READMEs write them: keys straight from `process.env`, whose
 * type is `string | undefined`, under `strict` and `exactOptionalPropertyTypes`. An unset key
 * is refused when the backend is built (SP_INVALID_OPTION naming the variable), not by the
 * compiler.
 */
import { ipqs } from '@sallyport/ipqs'
import { tracenow } from '@sallyport/tracenow'
import { tracer } from '@sallyport/tracer'
import { trustedAccounts } from '@sallyport/trusted-accounts'

export const backends = [
  trustedAccounts({
    secretKey: process.env.TRUSTED_ACCOUNTS_SECRET_KEY,
    publishableKey: process.env.TRUSTED_ACCOUNTS_PUBLISHABLE_KEY,
  }),
  tracenow({ secretKey: process.env.TRACENOW_SECRET_KEY }),
  ipqs({ key: process.env.IPQS_KEY }),
  tracer({ apiKey: process.env.TRACER_API_KEY, baseUrl: 'https://tracer.internal.example' }),
]
