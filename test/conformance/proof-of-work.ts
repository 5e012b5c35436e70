import { createHash } from 'node:crypto'

interface PageChallenge {
  challenge: { parameters: { salt: string; nonce: string; keyPrefix: string } }
  max: number
}

/**
 * Does what the challenge page's script does: finds the counter whose SHA-256 key has the
 * signed prefix, and returns the `payload` field the page posts to the verify route.
 */
export function solveChallengePage(html: string): string {
  const json = /<script type="application\/json" id="sp-challenge">([^<]*)<\/script>/.exec(html)?.[1]
  const data = JSON.parse(json ?? 'null') as PageChallenge
  const { salt, nonce, keyPrefix } = data.challenge.parameters
  const base = Buffer.concat([Buffer.from(salt, 'hex'), Buffer.from(nonce, 'hex'), Buffer.alloc(4)])
  for (let counter = 0; counter <= data.max; counter++) {
    base.writeUInt32BE(counter, base.length - 4)
    const key = createHash('sha256').update(base).digest('hex')
    if (key.startsWith(keyPrefix)) return JSON.stringify({ challenge: data.challenge, solution: { counter, derivedKey: key } })
  }
  throw new Error('unsolvable')
}
