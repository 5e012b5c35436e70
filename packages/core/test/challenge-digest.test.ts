import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DIGEST_SOURCE } from '../src/challenge/page.js'

// The page's solver hashes in plain JavaScript; it must agree with SHA-256 exactly, or no
// browser could ever pass the challenge.
const digestBlock = new Function(`${DIGEST_SOURCE}; return digestBlock`)() as (block: Uint32Array) => Uint32Array

function challengeBlock(prefix: Buffer, counter: number): Uint32Array {
  const block = new Uint32Array(16)
  for (let i = 0; i < 8; i++) block[i] = prefix.readUInt32BE(i * 4)
  block[8] = counter
  block[9] = 0x80000000
  block[15] = 36 * 8
  return block
}

describe('the challenge page solver', () => {
  it.each([0, 1, 255, 65_536, 4_294_967_295])('hashes salt || nonce || counter %i like node:crypto', (counter) => {
    const prefix = randomBytes(32)
    const input = Buffer.concat([prefix, Buffer.alloc(4)])
    input.writeUInt32BE(counter, 32)
    const expected = createHash('sha256').update(input).digest('hex')
    const words = digestBlock(challengeBlock(prefix, counter))
    expect(Array.from(words, (word) => word.toString(16).padStart(8, '0')).join('')).toBe(expected)
  })
})
