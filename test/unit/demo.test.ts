/**
 * The README's main command ends in the demo: run it as a user would (against the built
 * packages) so a change that breaks a step fails CI instead of the first visitor's try.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const demo = fileURLToPath(new URL('../../examples/express-site/demo.mjs', import.meta.url))

describe('pnpm demo', () => {
  it('walks every step as printed and exits 0', async () => {
    const { stdout } = await run(process.execPath, [demo], {
      cwd: fileURLToPath(new URL('../../examples/express-site/', import.meta.url)),
      timeout: 60_000,
    })
    expect(stdout).toMatch(/Summary: all 7 steps .* behaved as expected/)
    expect(stdout).not.toContain('FAILED')
  }, 90_000)
})
