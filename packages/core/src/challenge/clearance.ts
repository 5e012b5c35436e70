import { createHmac, timingSafeEqual } from 'node:crypto'
import ipaddr from 'ipaddr.js'

/** The cookie a solved challenge earns. Its value names no one: an expiry and a MAC. */
export const CLEARANCE_COOKIE = 'sallyport_clearance'

/**
 * What a clearance is bound to: the client's network (IPv4 /24, IPv6 /48, so a phone
 * moving between addresses of one carrier keeps it) and its user agent. A cookie copied
 * to another network or browser no longer verifies.
 */
export function clearanceBinding(ip: string | null, userAgent: string | undefined): string {
  let network = 'none'
  if (ip !== null && ipaddr.isValid(ip)) {
    const address = ipaddr.parse(ip)
    const bits = address.kind() === 'ipv4' ? 24 : 48
    const bytes = address.toByteArray()
    const kept = bytes.map((byte, index) => {
      const from = index * 8
      if (from + 8 <= bits) return byte
      if (from >= bits) return 0
      return byte & (0xff << (8 - (bits - from)))
    })
    network = `${address.kind()}:${kept.join('.')}/${bits}`
  }
  // Bounded: the UA a backend sees is capped, and the binding must be the same on both paths.
  return `${network}|${(userAgent ?? '').slice(0, 512)}`
}

function mac(secret: string, expires: number, binding: string): string {
  return createHmac('sha256', secret).update(`v1.${expires}.${binding}`).digest('base64url')
}

/** `v1.<expiry seconds>.<mac>` */
export function issueClearance(secret: string, binding: string, expiresAtMs: number): string {
  const expires = Math.floor(expiresAtMs / 1000)
  return `v1.${expires}.${mac(secret, expires, binding)}`
}

const CLEARANCE = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/

/** True when `value` was issued with `secret` for this binding and has not expired. */
export function verifyClearance(value: string | undefined, secret: string, binding: string, nowMs: number): boolean {
  if (value === undefined) return false
  const match = CLEARANCE.exec(value)
  if (match === null) return false
  const expires = Number(match[1])
  if (expires * 1000 <= nowMs) return false
  const expected = Buffer.from(mac(secret, expires, binding))
  const given = Buffer.from(match[2] ?? '')
  return given.length === expected.length && timingSafeEqual(given, expected)
}
