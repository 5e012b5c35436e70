/**
 * The recipes in docs/deployment.md, one edge at a time: each test sends the headers that edge
 * sends, with the gate configured as the recipe says, and checks the IP the backend is told.
 * The tests' sockets come from 127.0.0.1, which stands in for the edge's own address: a
 * recipe that names the edge's range gets 127.0.0.1 added to it, and nothing else changes.
 */
import type { DecisionBackend } from '@sallyport/core'
import type { GuardRequest } from '@sallyport/express'
import type { GuardContext } from '@sallyport/koa'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, isKoa, type Native, type Site, type SiteOptions, startSite } from './harness.js'

/** The address every test request comes from, standing in for the edge's. */
const EDGE = '127.0.0.1'
/** The client the edge saw; everything left of it in X-Forwarded-For is the client's own writing. */
const CLIENT = '203.0.113.7'
const SPOOFED = '6.6.6.6'

/** Cloudflare's published ranges (https://www.cloudflare.com/ips/), as the recipe lists them. */
const CLOUDFLARE = [
  '173.245.48.0/20',
  '103.21.244.0/22',
  '103.22.200.0/22',
  '103.31.4.0/22',
  '141.101.64.0/18',
  '108.162.192.0/18',
  '190.93.240.0/20',
  '188.114.96.0/20',
  '197.234.240.0/22',
  '198.41.128.0/17',
  '162.158.0.0/15',
  '104.16.0.0/13',
  '104.24.0.0/14',
  '172.64.0.0/13',
  '131.0.72.0/22',
  '2400:cb00::/32',
  '2606:4700::/32',
  '2803:f800::/32',
  '2405:b500::/32',
  '2405:8100::/32',
  '2a06:98c0::/29',
  '2c0f:f248::/32',
]
/** Where Google's front ends connect to backends from. */
const GOOGLE_FRONT_ENDS = ['35.191.0.0/16', '130.211.0.0/22']
/** The external address of a Google Cloud load balancer's forwarding rule (an example). */
const GOOGLE_LB = '34.120.0.10'

interface Seen {
  ip: string | null
  host: string | null
}
const seen: Seen[] = []
const recorder: DecisionBackend = {
  name: 'recorder',
  decide: async (input) => {
    seen.push({ ip: input.ip, host: input.host })
    return { verdict: 'allow' }
  },
}

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
  seen.length = 0
})

async function behind(gate: SiteOptions['gate'], options: Omit<SiteOptions, 'gate'> = {}): Promise<Site> {
  site = await startSite({ ...options, gate: { backend: recorder, ...gate } })
  return site
}

/** Sends one request carrying what the edge forwards (an array is several header lines); returns what the backend saw. */
async function through(current: Site, headers: Record<string, string | string[]>): Promise<Seen | undefined> {
  const call = request(current.url).get('/')
  for (const [name, value] of Object.entries(headers)) call.set(name, value as string)
  const response = await call
  expect(response.status).toBe(200)
  return seen.at(-1)
}

/** `req.ip` or `ctx.ip`: the framework's own answer. */
function frameworkIp(native: Native): string | undefined {
  return isKoa ? (native as GuardContext & { ip: string }).ip : (native as GuardRequest & { ip?: string }).ip
}

describe(`deployment: nginx on the same host (${framework})`, () => {
  it("trustProxy 'loopback' takes the address nginx appended, and the host nginx forwarded", async () => {
    const current = await behind({ trustProxy: 'loopback' })
    const forwarded = { 'X-Forwarded-For': CLIENT, 'X-Forwarded-Host': 'shop.example', 'X-Forwarded-Proto': 'https' }
    expect(await through(current, forwarded)).toEqual({ ip: CLIENT, host: 'shop.example' })
  })

  it('a client-written X-Forwarded-For, even one naming loopback, never wins over what nginx appended', async () => {
    const current = await behind({ trustProxy: 'loopback' })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}` }))?.ip).toBe(CLIENT)
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, 127.0.0.1, ${CLIENT}` }))?.ip).toBe(CLIENT)
  })
})

describe(`deployment: Cloudflare (${framework})`, () => {
  it("straight to the app: with Cloudflare's ranges trusted, cf-connecting-ip is the client", async () => {
    const current = await behind({ trustProxy: [...CLOUDFLARE, EDGE], clientIpHeader: 'cf-connecting-ip' })
    // Cloudflare appends the visitor to an X-Forwarded-For the visitor sent, and sets cf-connecting-ip.
    const forwarded = { 'CF-Connecting-IP': CLIENT, 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}` }
    expect((await through(current, forwarded))?.ip).toBe(CLIENT)
  })

  it('a connection from outside those ranges is judged by its own address: cf-connecting-ip and X-Forwarded-For are ignored', async () => {
    const current = await behind({ trustProxy: CLOUDFLARE, clientIpHeader: 'cf-connecting-ip' })
    const forged = { 'CF-Connecting-IP': SPOOFED, 'X-Forwarded-For': SPOOFED }
    expect((await through(current, forged))?.ip).toBe(EDGE)
  })

  it('in front of nginx: trusting loopback and Cloudflare walks X-Forwarded-For past both to the client', async () => {
    const current = await behind({ trustProxy: ['loopback', ...CLOUDFLARE] })
    // nginx appends the Cloudflare edge it received the request from.
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, 104.16.0.1` }))?.ip).toBe(CLIENT)
    // Someone who reaches nginx without Cloudflare is what nginx appends, whatever they send.
    const direct = { 'CF-Connecting-IP': SPOOFED, 'X-Forwarded-For': `${SPOOFED}, 198.51.100.9` }
    expect((await through(current, direct))?.ip).toBe('198.51.100.9')
  })

  it('in front of nginx with clientIpHeader: nginx is the trusted peer, so the header is believed from anyone nginx lets in', async () => {
    // Why the recipe needs nginx to accept Cloudflare's ranges alone before it sets clientIpHeader.
    const current = await behind({ trustProxy: 'loopback', clientIpHeader: 'cf-connecting-ip' })
    expect((await through(current, { 'CF-Connecting-IP': CLIENT, 'X-Forwarded-For': `${CLIENT}, 104.16.0.1` }))?.ip).toBe(CLIENT)
    expect((await through(current, { 'CF-Connecting-IP': SPOOFED, 'X-Forwarded-For': `${SPOOFED}, 198.51.100.9` }))?.ip).toBe(SPOOFED)
  })
})

describe(`deployment: AWS Application Load Balancer (${framework})`, () => {
  it('a hop count of 1 takes the address the ALB appended, with or without the client port', async () => {
    const current = await behind({ trustProxy: 1 })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}` }))?.ip).toBe(CLIENT)
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}:51234` }))?.ip).toBe(CLIENT)
  })

  it('trusting the VPC range instead gives the same client', async () => {
    const current = await behind({ trustProxy: ['10.0.0.0/16', EDGE] })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}` }))?.ip).toBe(CLIENT)
  })
})

describe(`deployment: Google Cloud external Application Load Balancer (${framework})`, () => {
  it("a hop count of 2 skips the load balancer's own entry", async () => {
    const current = await behind({ trustProxy: 2 })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, ${GOOGLE_LB}` }))?.ip).toBe(CLIENT)
  })

  it("Google's front-end ranges need the load balancer's address beside them; the ranges alone stop at it", async () => {
    const forwarded = { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, ${GOOGLE_LB}` }
    const withLb = await behind({ trustProxy: [...GOOGLE_FRONT_ENDS, GOOGLE_LB, EDGE] })
    expect((await through(withLb, forwarded))?.ip).toBe(CLIENT)
    await withLb.close()

    const rangesOnly = await behind({ trustProxy: [...GOOGLE_FRONT_ENDS, EDGE] })
    expect((await through(rangesOnly, forwarded))?.ip).toBe(GOOGLE_LB)
  })
})

describe(`deployment: Kubernetes ingress-nginx (${framework})`, () => {
  it('by default, trusting the pod range takes the one address ingress-nginx writes', async () => {
    const current = await behind({ trustProxy: ['10.244.0.0/16', EDGE] })
    expect((await through(current, { 'X-Forwarded-For': CLIENT }))?.ip).toBe(CLIENT)
  })

  it('with compute-full-forwarded-for behind a load balancer, trusting the pod and balancer ranges walks past both', async () => {
    const current = await behind({ trustProxy: ['10.244.0.0/16', '10.0.0.0/16', EDGE] })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, 10.0.1.5` }))?.ip).toBe(CLIENT)
  })
})

describe(`deployment: Heroku, Render, Fly.io (${framework})`, () => {
  it('Heroku: a hop count of 1 takes the address the router appended, on one line or on the last of several', async () => {
    const current = await behind({ trustProxy: 1 })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}` }))?.ip).toBe(CLIENT)
    expect((await through(current, { 'X-Forwarded-For': [SPOOFED, `7.7.7.7, ${CLIENT}`] }))?.ip).toBe(CLIENT)
  })

  it('Render: a hop count of 2 skips the Cloudflare edge the Render proxy appended', async () => {
    const current = await behind({ trustProxy: 2 })
    expect((await through(current, { 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, 104.22.17.40` }))?.ip).toBe(CLIENT)
  })

  it('Fly.io: fly-client-ip from the Fly proxy is the client, whatever X-Forwarded-For says', async () => {
    const current = await behind({ trustProxy: 1, clientIpHeader: 'fly-client-ip' })
    // Fly appends the client, then the app's own public address.
    const forwarded = { 'Fly-Client-IP': CLIENT, 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, 198.51.100.77`, 'Fly-Forwarded-Port': '443' }
    expect((await through(current, forwarded))?.ip).toBe(CLIENT)
  })
})

describe(`deployment: the framework's own setting (${framework})`, () => {
  it.each([
    ['AWS ALB, Heroku', 1, `${SPOOFED}, ${CLIENT}`],
    ['Google Cloud, Render', 2, `${SPOOFED}, ${CLIENT}, ${GOOGLE_LB}`],
  ])('%s: with only the framework set to %i hops, the judged IP is the one the framework reports', async (_edge, hops, chain) => {
    const reported: Array<string | undefined> = []
    const current = await behind({ onDecision: (_decision, native) => reported.push(frameworkIp(native)) }, { frameworkHops: hops })
    expect((await through(current, { 'X-Forwarded-For': chain }))?.ip).toBe(CLIENT)
    expect(reported).toEqual([CLIENT])
  })

  it('Fly.io: the framework set to 2 hops reports the same client as fly-client-ip', async () => {
    const reported: Array<string | undefined> = []
    const gate = {
      trustProxy: 1,
      clientIpHeader: 'fly-client-ip',
      onDecision: (_decision: unknown, native: Native) => reported.push(frameworkIp(native)),
    }
    const current = await behind(gate, { frameworkHops: 2 })
    const forwarded = { 'Fly-Client-IP': CLIENT, 'X-Forwarded-For': `${SPOOFED}, ${CLIENT}, 198.51.100.77` }
    expect((await through(current, forwarded))?.ip).toBe(CLIENT)
    expect(reported).toEqual([CLIENT])
  })
})
